package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/lineage"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"
)

const (
	// The shell's cgroup before tracking, so that finish can move it back.
	envTrackCgroup = "LAMINA_TRACK_CGROUP"
	// The run a `track start` began in this shell. LAMINA_RUN alone does
	// not say so: inside `lamina run -- bash` it names the outer run, which
	// ends when its command exits, not at a `track finish`.
	envTrack = "LAMINA_TRACK"
)

// finishHint is how to end a tracked shell: finish prints the unset that
// takes the marker out of the shell, so it must be eval'd like start.
const finishHint = `eval "$(lamina track finish)"`

func cmdTrack() *cli.Command {
	return &cli.Command{
		Name:  "track",
		Usage: "make an interactive shell a run: eval \"$(lamina track start -t NAME)\" … " + finishHint,
		Subcommands: []*cli.Command{
			{
				Name:  "start",
				Usage: "start a run for the calling shell; prints the shell code to eval",
				Flags: paramFlags("interactive"),
				Action: func(c *cli.Context) error {
					// Printed to a terminal, the exports reach no shell: the
					// shell would be tracked (moved into the run's cgroup)
					// without LAMINA_RUN, and `track finish` could not end the
					// run. Any other stdout (the pipe of $(…), a file to
					// source) is taken as captured: a pipe to eval cannot be
					// told from a pipe to another command.
					if isTerminal(c.App.Writer) {
						name := "NAME"
						if t := c.String("transform"); t != "" {
							name = shellQuote(t)
						}
						return exitf(2, "track start prints shell code that sets %s in the calling shell; run it as: eval \"$(lamina track start --transform %s)\" (nothing was started)", lineage.EnvRun, name)
					}
					cat, err := openRuns(c)
					if err != nil {
						return err
					}
					defer cat.Close()
					// A marker of a run that ended (a `track finish` without
					// eval) is replaced by the new run's; a live one, or one
					// of another catalog, is refused.
					if old := os.Getenv(lineage.EnvRun); old != "" {
						r, stale, err := markedRun(c.Context, cat)
						if errors.Is(err, catalog.ErrNotFound) {
							return errUnknownRun(old, cat.name)
						}
						if err == nil && stale == "" && os.Getenv(envTrack) != old {
							return exitf(2, "this shell runs inside run %s, which `lamina run` started and which ends when its command exits; a tracked shell cannot start inside it", old)
						}
						if err != nil || stale == "" {
							return exitf(2, "this shell is already in run %s; finish it first: %s", old, finishHint)
						}
						fmt.Fprintf(c.App.ErrWriter, "lamina: replacing the stale %s=%s (%s)\n", lineage.EnvRun, r.UID, stale)
					}
					if c.String("transform") == "" {
						c.Set("transform", "interactive")
					}
					lineage.SweepCgroups()               // of tracked shells closed without finish
					shell := lineage.Shell(os.Getppid()) // not a $(…) subshell
					r, _, err := newRun(c, cat, procArgv(shell), "")
					if err != nil {
						return err
					}
					r.RootPID = shell
					if r.RootStart, err = lineage.ProcStart(shell); err != nil {
						return err
					}
					out := ""
					undo := func() {}
					if cat.daemon {
						cg, err := lineage.NewCgroup(fmt.Sprintf("lamina-track-%d", shell))
						if err == nil {
							from := selfCgroup()
							if err = cg.Move(shell); err == nil {
								r.Cgroup = cg.Path
								out = fmt.Sprintf("export %s=%s\n", envTrackCgroup, shellQuote(from+":"+cg.Path))
								// A shell left in the cgroup without the
								// exports would be credited to a run it
								// cannot finish.
								undo = func() {
									if (&lineage.Cgroup{Dir: cgroupDir(from)}).Move(shell) == nil {
										cg.Remove()
									}
								}
							} else {
								cg.Remove()
							}
						}
						if err != nil { // said, not silent: the mount then sees less
							fmt.Fprintf(c.App.ErrWriter, "lamina: warning: the run has no cgroup of its own (%v): what the shell's processes read and write is credited to it only while they descend from the shell\n", err)
						}
					}
					if r, err = cat.StartRun(c.Context, r); err != nil {
						undo()
						return err
					}
					if _, err := fmt.Fprintf(c.App.Writer, "export %s=%s %s=%s\n%s", lineage.EnvRun, r.UID, envTrack, r.UID, out); err != nil {
						undo()
						one := 1
						cat.FinishRun(context.WithoutCancel(c.Context), r.UID, catalog.RunEnd{FinishedAt: time.Now(), ExitCode: &one})
						return fmt.Errorf("track start: print the shell code: %w", err)
					}
					fmt.Fprintf(c.App.ErrWriter, "lamina: run %s started for this shell (pid %d); end it with: %s\n", r.UID, shell, finishHint)
					return nil
				},
			},
			{
				Name:  "finish",
				Usage: "finish the shell's run (prints `unset LAMINA_RUN` for eval)",
				Action: func(c *cli.Context) error {
					uid := os.Getenv(lineage.EnvRun)
					cgroup := os.Getenv(envTrackCgroup)
					if uid == "" {
						// A start whose output went to a pipe or a file
						// rather than to eval left a run on this shell that
						// no variable names: finish that one.
						cat, err := openRuns(c)
						if err != nil {
							return err
						}
						defer cat.Close()
						r, ok, err := unnamedRun(c.Context, cat)
						if err != nil {
							return fmt.Errorf("track finish: look for a run rooted at this shell: %w", err)
						}
						if !ok {
							return exitf(2, "this shell is not in a run (no %s)", lineage.EnvRun)
						}
						uid, cgroup = r.UID, ""
						if r.Cgroup != "" {
							cgroup = path.Dir(r.Cgroup) + ":" + r.Cgroup
						}
						return finishTracked(c, cat, uid, cgroup, fmt.Sprintf("this shell has no %s but is the root of run %s (a track start not eval'd): finishing it", lineage.EnvRun, uid))
					}
					cat, err := openRuns(c)
					if err != nil {
						return err
					}
					defer cat.Close()
					ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
					defer cancel()
					// A finished run stays finished: a second finish would
					// rewrite its end. The unset goes out anyway, so that the
					// eval form clears the marker a bare finish left behind.
					r, stale, err := markedRun(ctx, cat)
					if errors.Is(err, catalog.ErrNotFound) {
						// A track start of another instance in this shell
						// since this one's: its run is the one to finish.
						return errUnknownRun(uid, cat.name)
					}
					if err == nil && r.Status != catalog.RunRunning {
						fmt.Fprintf(c.App.Writer, "unset %s %s %s\n", lineage.EnvRun, envTrack, envTrackCgroup)
						return exitf(2, "run %s is already over (%s): nothing to finish; take it out of this shell with: unset %s (%s does)",
							uid, stale, lineage.EnvRun, finishHint)
					}
					if os.Getenv(envTrack) != uid {
						return exitf(2, "run %s was not started by `lamina track start` in this shell: `lamina run` started it, and it ends when its command exits", uid)
					}
					return finishTracked(c, cat, uid, cgroup, "")
				},
			},
		},
	}
}

// errUnknownRun is the refusal of a LAMINA_RUN naming run uid, of which
// instance name's catalog has no record: a run of another instance (a
// track start of it in this shell) or a marker left over (set by hand, a
// catalog since reset). Which one, the catalog cannot tell.
func errUnknownRun(uid, name string) error {
	return exitf(2, "%s names run %s, of which instance %q has no record. If a track start of another instance in this shell set it, finish that run first with `eval \"$(lamina --instance OTHER track finish)\"`, then this instance's; "+
		"if it is no run of yours (left over, or set by hand), clear it with: unset %s %s %s",
		lineage.EnvRun, uid, name, lineage.EnvRun, envTrack, envTrackCgroup)
}

// finishTracked ends the tracked shell's run uid, moves the shell back out
// of the run's cgroup (cgroup is "FROM:PATH", as envTrackCgroup holds it;
// "" for none), prints the unset for eval and the run's summary. note, if
// not "", goes to stderr once the finish is not refused.
func finishTracked(c *cli.Context, cat *runsCatalog, uid, cgroup, note string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	from, path, tracked := strings.Cut(cgroup, ":/")
	shell := lineage.Shell(os.Getppid())
	now := cgroupOf(strconv.Itoa(shell))
	if tracked && strings.HasPrefix(now, "/"+path+"/") {
		// Only a track start (of another instance: one instance refuses
		// a second) puts the shell below the run's cgroup. Moving it out
		// of there would take it out of that live run too.
		return exitf(2, "this shell is in cgroup %s, below that of run %s: a run started in this shell since is live; finish that one first (lamina --instance NAME track finish)", now, uid)
	}
	if note != "" {
		fmt.Fprintf(c.App.ErrWriter, "lamina: %s\n", note)
	}
	zero := 0
	r, err := cat.FinishRun(ctx, uid, catalog.RunEnd{FinishedAt: time.Now(), ExitCode: &zero})
	if err != nil {
		return err
	}
	if tracked && now != "/"+path {
		// Moved since (by hand, by a session manager): it stays there.
		fmt.Fprintf(c.App.ErrWriter, "lamina: this shell is in cgroup %s, not in the run's %s: left there\n", now, "/"+path)
		(&lineage.Cgroup{Dir: cgroupDir("/" + path)}).Remove()
	} else if tracked {
		back := &lineage.Cgroup{Dir: cgroupDir(from)}
		back.Move(os.Getpid()) // this process too, or the cgroup stays busy
		if ppid := os.Getppid(); ppid != lineage.Shell(ppid) {
			back.Move(ppid) // the $(…) subshell in between
		}
		if back.Move(shell) == nil {
			(&lineage.Cgroup{Dir: cgroupDir("/" + path)}).Remove()
		}
	}
	fmt.Fprintf(c.App.Writer, "unset %s %s %s\n", lineage.EnvRun, envTrack, envTrackCgroup)
	_, err = printRunSummary(ctx, c, cat, uid, catalog.Transform{Name: r.Name})
	return err
}

// unnamedRun finds the live run whose root is the calling shell, as a
// `track start` not eval'd leaves it: tracked (its cgroup and root pid)
// though LAMINA_RUN is not set. A `lamina run -- bash` whose shell unset
// the variable is not one: its shell's parent is lamina.
func unnamedRun(ctx context.Context, cat catalog.Catalog) (catalog.Run, bool, error) {
	shell := lineage.Shell(os.Getppid())
	start, err := lineage.ProcStart(shell)
	if err != nil {
		return catalog.Run{}, false, nil
	}
	if self, err := os.Executable(); err == nil {
		if ppid, err := procParent(shell); err == nil {
			if exe, _ := os.Readlink("/proc/" + strconv.Itoa(ppid) + "/exe"); exe == self {
				return catalog.Run{}, false, nil
			}
		}
	}
	// Every live run of that pid, however many runs came since.
	runs, err := cat.ListRuns(ctx, catalog.RunQuery{RootPID: shell, Status: catalog.RunRunning})
	if err != nil {
		return catalog.Run{}, false, err
	}
	host, _ := os.Hostname()
	argv := procArgv(shell)
	for _, r := range runs {
		// The argv tells a track start's run (the shell's command line)
		// from a `lamina run` whose process this is (its root, with the
		// command's argv): `lamina run -- env -u LAMINA_RUN lamina track
		// finish` must not end the run it is in.
		if r.Status == catalog.RunRunning && r.RootPID == shell && r.RootStart == start && lineage.Here(r, host) &&
			(r.Cgroup == "" || path.Base(r.Cgroup) == fmt.Sprintf("lamina-track-%d", shell)) && slices.Equal(r.Args(), argv) {
			return r, true, nil
		}
	}
	return catalog.Run{}, false, nil
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// procParent returns the parent of process pid.
func procParent(pid int) (int, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "PPid:"); ok {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no PPid", pid)
}

func procArgv(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
}

func selfCgroup() string { return cgroupOf("self") }

// cgroupOf returns the cgroup v2 of process pid ("self" for this one).
func cgroupOf(pid string) string {
	b, _ := os.ReadFile("/proc/" + pid + "/cgroup")
	for _, l := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(l, "0::"); ok {
			return p
		}
	}
	return "/"
}

func cgroupDir(p string) string { return lineage.CgroupRoot() + p }

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
