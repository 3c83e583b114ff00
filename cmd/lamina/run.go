package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/catalog/catalogrpc"
	"github.com/lamina-bio/lamina/instance"
	"github.com/lamina-bio/lamina/lineage"
	"github.com/lamina-bio/lamina/stage"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
)

// runsCatalog is the catalog a lineage command talks to: the mount
// daemon's when one is up (the only way runs get tracked through the
// mount), else the catalog itself.
type runsCatalog struct {
	catalog.Catalog
	daemon     bool
	mountpoint string
	name       string        // the instance's
	scratch    stage.Scratch // the instance's scratch names
}

func openRuns(c *cli.Context) (*runsCatalog, error) {
	dirs, err := instance.UserDirs()
	if err != nil {
		return nil, err
	}
	s, err := dirs.Current(c.String("instance"))
	if err != nil {
		return nil, err
	}
	moveFromCache(c.App.ErrWriter, dirs, s) // layout.go
	cat, err := openRunsCatalog(s)          // postgres.go
	if err != nil {
		return nil, err
	}
	rc := &runsCatalog{Catalog: cat, name: s.Name, scratch: scratchPatterns(s)}
	if _, ok := cat.(*catalogrpc.Client); ok {
		rc.daemon = true
		if st, err := readState(dirs, s.Name); err == nil {
			rc.mountpoint = st.Mountpoint
		}
	}
	return rc, nil
}

// paramFlags are --transform and --param; the help gives the transform's
// default, what the command names the run when --transform is not given.
func paramFlags(transformDefault string) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "transform", Aliases: []string{"t"}, Usage: "name of the transform", DefaultText: transformDefault},
		// Values are kept whole: a list (genes=CD4,CD8) or padding is part
		// of the value (KeepSpace here, App.DisableSliceFlagSeparator in Main).
		&cli.StringSliceFlag{Name: "param", Aliases: []string{"p"}, KeepSpace: true,
			Usage: "a parameter NAME=VALUE, kept verbatim (integers, decimals and true/false written canonically are typed); repeat for more"},
	}
}

// runnable says, as a shell would, why name cannot run: exit 127 for a
// command not found (or a script whose #! interpreter is missing), 126
// for one that is not executable. A command found in a relative PATH
// entry (".") runs, as it does from a shell (newCommand).
func runnable(name string) error {
	path, err := exec.LookPath(name)
	if errors.Is(err, exec.ErrDot) {
		err = nil
	}
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
			// A file of that name in PATH that is not executable: bash
			// says permission denied, 126.
			for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
				if fi, err := os.Stat(filepath.Join(dir, name)); !strings.Contains(name, "/") && err == nil && fi.Mode().IsRegular() {
					return exitf(126, "%s: cannot run it: %s is not executable", name, filepath.Join(dir, name))
				}
			}
			return exitf(127, "%s: command not found", name)
		}
		var ee *exec.Error
		if errors.As(err, &ee) {
			err = ee.Err
		}
		return exitf(126, "%s: cannot run it: %v", name, err)
	}
	line, ok := bytes.CutPrefix(fileHead(path, 256), []byte("#!"))
	if !ok {
		return nil
	}
	if i := bytes.IndexByte(line, '\n'); i >= 0 {
		line = line[:i]
	}
	if fields := strings.Fields(string(line)); len(fields) > 0 {
		if _, err := os.Stat(fields[0]); errors.Is(err, fs.ErrNotExist) {
			return exitf(127, "%s: its interpreter %s does not exist", name, fields[0])
		}
	}
	return nil
}

// textFile reports whether the file at p begins as text (no NUL byte in
// its first bytes): an executable that the kernel cannot run (ENOEXEC)
// is given to sh only then, as shells do; a binary of another machine
// stays "exec format error".
func textFile(p string) bool {
	head := fileHead(p, 512)
	return head != nil && bytes.IndexByte(head, 0) < 0
}

// fileHead returns up to n bytes from the start of the file at p; nil if
// it cannot be read.
func fileHead(p string, n int) []byte {
	f, err := os.Open(p)
	if err != nil {
		return nil
	}
	defer f.Close()
	head := make([]byte, n)
	m, _ := io.ReadFull(f, head)
	return head[:m]
}

// newCommand is exec.Command for a tracked run's command: one found in a
// relative PATH entry runs, as from a shell (runnable).
func newCommand(argv []string) *exec.Cmd {
	cmd := exec.Command(argv[0], argv[1:]...)
	if errors.Is(cmd.Err, exec.ErrDot) {
		cmd.Err = nil
	}
	return cmd
}

// newRun fills in a run of transform t for argv, a child of parent ("" for
// none).
func newRun(c *cli.Context, cat catalog.Catalog, argv []string, parent string) (catalog.Run, catalog.Transform, error) {
	params, err := lineage.ParseParams(c.StringSlice("param"))
	if err != nil {
		return catalog.Run{}, catalog.Transform{}, exitf(2, "%v", err)
	}
	cwd, _ := os.Getwd()
	detected := lineage.DetectTransform(argv, c.String("transform"), cwd)
	t, err := cat.SaveTransform(c.Context, detected)
	if err != nil {
		return catalog.Run{}, t, err
	}
	// The transform of the same bytes run before keeps that run's path:
	// this run's is its own (catalog.Run.Source).
	t.Path = detected.Path
	host, _ := os.Hostname()
	name := ""
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	r := catalog.Run{Transform: t.UID, Name: t.Name, Parent: parent, Params: params,
		Source: detected.Path, Cwd: cwd, User: name, Host: host, HostID: lineage.HostID(), Env: lineage.EnvSummary(os.Environ()), StartedAt: time.Now()}
	r.SetArgv(argv) // an argument that is not UTF-8 kept byte for byte
	return r, t, nil
}

func cmdRun() *cli.Command {
	return &cli.Command{
		Name:      "run",
		Usage:     "run a command as a tracked run: what it reads under the mount is its input, what it writes its output",
		ArgsUsage: "[--transform NAME] [--param K=V]... -- CMD [ARGS...]",
		Description: "Run it on files under the mount: lamina records what it reads as inputs, what it writes as outputs.\n\n" + examples(
			"lamina run -- python normalize.py ~/lamina/raw/counts.csv ~/lamina/norm/counts.csv",
			"lamina run --transform qc -p min_genes=200 -- Rscript qc.R ~/lamina/norm/counts.csv"),
		Flags: paramFlags("the script the command runs, else the program"),
		Action: func(c *cli.Context) error {
			argv := c.Args().Slice()
			if len(argv) == 0 {
				return exitf(2, "usage: lamina run [--transform NAME] [--param K=V]... -- CMD [ARGS...]")
			}
			// A command that cannot run records no run, and says so as a
			// shell would (exit 127 not found, 126 not executable): its
			// start failing was taken for a cgroup's and retried.
			if err := runnable(argv[0]); err != nil {
				return err
			}
			// Catch the signals before anything runs: from here on they go
			// to the command (forward), and this process waits for it.
			sigs := make(chan os.Signal, 8)
			signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
			defer signal.Stop(sigs)
			lineage.SweepCgroups() // of runs over whose processes outlived them
			cat, err := openRuns(c)
			if err != nil {
				return err
			}
			defer func() { cat.Close() }() // finishRun may replace it
			warned := false                // said once, not again after the run
			if !cat.daemon {
				// Only a mount sees what the command reads and writes.
				if dirs, err := instance.UserDirs(); err == nil {
					if s, err := dirs.Current(c.String("instance")); err == nil {
						if _, ok := liveMount(dirs, s); !ok {
							fmt.Fprintf(c.App.ErrWriter, "lamina: warning: instance %s is not mounted: the run is recorded, but nothing the command reads or writes can be tracked (lamina mount DIR first, and use paths under it)\n", s.Name)
							warned = true
						}
					}
				}
			}
			r, t, err := newRun(c, cat, argv, parentRun(c, cat))
			if err != nil {
				return err
			}
			// This process is the run's registered root: the command is its
			// child, so nothing the command does escapes attribution.
			if r.RootPID, r.RootStart, err = lineage.Self(); err != nil {
				return err
			}
			var cg *lineage.Cgroup
			// Said once, and only where a cgroup could be made: a tree
			// this process may not write (read-only, not delegated) is
			// the machine's setup, which a warning on every run would
			// not change.
			noCgroup := func(err error) {
				fmt.Fprintf(c.App.ErrWriter, "lamina: warning: the run has no cgroup of its own (%v): what the command's processes read and write is credited to it only while they descend from it\n", err)
			}
			if cat.daemon {
				if cg, err = lineage.NewCgroup(fmt.Sprintf("lamina-run-%d", r.RootPID)); err == nil {
					r.Cgroup = cg.Path
					// Removed when empty; one a process outlives stays
					// until the next lamina run sweeps it (SweepCgroups).
					defer cg.Remove()
				} else if !errors.Is(err, lineage.ErrNoCgroups) {
					noCgroup(err)
				}
			}
			r.Split = lineage.IsSnakemake(argv)
			// The caller's redirects on the mount (< in, > out): the mount
			// saw the caller open them, not the run (run_fds.go).
			var fds []inheritedFd
			if cat.daemon {
				fds = inheritedFds(cat.mountpoint, cat.scratch)
				r.Redirects = redirectKeys(fds)
			}
			if r, err = cat.StartRun(c.Context, r); err != nil {
				return err
			}
			takeInherited(c.Context, c.App.ErrWriter, cat, r.UID, fds)
			cmd := newCommand(argv)
			cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, c.App.Writer, c.App.ErrWriter
			cmd.Env = append(os.Environ(), lineage.EnvRun+"="+r.UID)
			if cg != nil {
				if fd, err := syscall.Open(cg.Dir, syscall.O_DIRECTORY|syscall.O_RDONLY, 0); err == nil {
					defer syscall.Close(fd)
					cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
				}
			}
			code, sig := 0, ""
			err = cmd.Start()
			if errors.Is(err, syscall.ENOEXEC) && textFile(cmd.Path) {
				// An executable text file without #!: a shell runs it
				// with sh, and so does this.
				sh := newCommand(append([]string{"/bin/sh", cmd.Path}, argv[1:]...))
				sh.Stdin, sh.Stdout, sh.Stderr, sh.Env, sh.SysProcAttr = cmd.Stdin, cmd.Stdout, cmd.Stderr, cmd.Env, cmd.SysProcAttr
				cmd = sh
				err = cmd.Start()
			}
			if err != nil && cmd.SysProcAttr != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrPermission) {
				// No room in the cgroup tree: the parent chain still works.
				noCgroup(err)
				args := cmd.Args
				cmd = newCommand(args)
				cmd.Stdin, cmd.Stdout, cmd.Stderr, cmd.Env = os.Stdin, c.App.Writer, c.App.ErrWriter, append(os.Environ(), lineage.EnvRun+"="+r.UID)
				err = cmd.Start()
			}
			if err != nil {
				code = 126 // found but not runnable, as a shell says
				if errors.Is(err, fs.ErrNotExist) {
					code = 127
				}
				fmt.Fprintf(c.App.ErrWriter, "lamina: %v\n", err)
			} else {
				done := make(chan struct{})
				go func() {
					for {
						select {
						case s := <-sigs:
							forwardSignal(cmd.Process, s.(syscall.Signal))
						case <-done:
							return
						}
					}
				}()
				code, sig = exitStatus(cmd.Wait())
				close(done)
			}
			// Finish with a fresh context: an interrupted run is recorded too.
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			creditInherited(ctx, c.App.ErrWriter, cat, r.UID, fds)
			// Processes the command left in its cgroup work for the run
			// until they exit: recorded, for a daemon that starts meanwhile.
			left := cg != nil && cg.Busy()
			if cat, err = finishRun(ctx, c, cat, r.UID, catalog.RunEnd{FinishedAt: time.Now(), ExitCode: &code, Signal: sig, ProcsLeft: left}); err != nil {
				// The command's status is what the caller needs most.
				fmt.Fprintf(c.App.ErrWriter, "lamina: warning: the end of run %s (exit %d) could not be recorded, it stays running until a `lamina runs ls` sees its process gone: %v\n",
					r.UID, code, explain(err))
				return exitf(code, "")
			}
			if r.Split {
				// Its job runs end with it: the daemon's tracker ended them
				// already, unless the daemon died (kill -9) and nothing else
				// would. Their outcome is unknown until Snakemake's records
				// amend them (nameJobs).
				lineage.EndJobs(ctx, cat, r.UID, catalog.RunEnd{FinishedAt: time.Now(), Abandoned: true, Note: lineage.OrphanNote})
				nameJobs(ctx, cat, r, t, argv)
			}
			if rec, err := printRunSummary(ctx, c, cat, r.UID, t); err != nil {
				fmt.Fprintf(c.App.ErrWriter, "lamina: warning: run %s: %v\n", r.UID, explain(err))
			} else if len(rec.Inputs) == 0 && len(rec.Outputs) == 0 && !warned {
				if note := trackedWhere(c); note != "" {
					fmt.Fprintf(c.App.ErrWriter, "lamina: note: %s\n", note)
				}
			}
			if code != 0 {
				return exitf(code, "")
			}
			return nil
		},
	}
}

// exitStatus returns the exit code of a command Wait returned err for,
// 128+N and the signal's name when signal N killed it (as shells do).
func exitStatus(err error) (code int, sig string) {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		if err != nil {
			return 1, ""
		}
		return 0, ""
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal()), unix.SignalName(ws.Signal())
	}
	return ee.ExitCode(), ""
}

// forwardSignal passes a signal lamina run received on to the command,
// as the same signal. A terminal sends SIGINT (Ctrl-C) and SIGQUIT
// (Ctrl-\) to its whole foreground process group, which the command
// shares with lamina run: while that group is in the foreground the
// command has the signal already, and a second one would break into its
// clean-up (a second KeyboardInterrupt in Python), so those two are not
// passed on then, as a shell waiting for a foreground job does not.
func forwardSignal(p *os.Process, s syscall.Signal) {
	if (s == syscall.SIGINT || s == syscall.SIGQUIT) && foreground() {
		return
	}
	p.Signal(s)
}

// foreground reports whether this process's group is the foreground
// group of its controlling terminal.
func foreground() bool {
	f, err := os.Open("/dev/tty")
	if err != nil {
		return false // no controlling terminal: nothing sent the group a key signal
	}
	defer f.Close()
	pg, err := unix.IoctlGetInt(int(f.Fd()), unix.TIOCGPGRP)
	return err == nil && pg == syscall.Getpgrp()
}

// finishRun records the end of run uid in the catalog that answers now:
// the mount daemon may have stopped (umount) or started (mount) since the
// run began, and the catalog picked then no longer answers, or waits on
// the lock the daemon holds. It returns the catalog that recorded it.
func finishRun(ctx context.Context, c *cli.Context, cat *runsCatalog, uid string, end catalog.RunEnd) (*runsCatalog, error) {
	var errs []error
	if !cat.daemon {
		// A daemon started meanwhile holds the catalog file: ask it.
		if now, err := openRuns(c); err == nil && now.daemon {
			if _, err := now.FinishRun(ctx, uid, end); err == nil {
				cat.Close()
				return now, nil
			} else {
				errs = append(errs, err)
			}
			now.Close()
		}
	}
	_, err := cat.FinishRun(ctx, uid, end)
	if err == nil {
		return cat, nil
	}
	errs = append(errs, err)
	if cat.daemon {
		// The daemon went away (umount): the catalog itself, or a new daemon.
		if now, err := openRuns(c); err == nil {
			if _, err := now.FinishRun(ctx, uid, end); err == nil {
				cat.Close()
				return now, nil
			} else {
				errs = append(errs, err)
			}
			now.Close()
		}
	}
	return cat, errors.Join(errs...)
}

// mountLinks reads the links of the mount at mnt through the kernel, for
// a process that is not the mount's (the daemon reads its own records:
// fs.Mount.LinkTarget).
func mountLinks(mnt string) lineage.LinkReader {
	if mnt == "" {
		return nil
	}
	return func(key string) (string, bool) {
		t, err := os.Readlink(filepath.Join(mnt, filepath.FromSlash(key)))
		return t, err == nil
	}
}

// nameJobs names a Snakemake run's job runs (the child runs the tracker
// made, RootPID 0) by rule, from Snakemake's own records: a job its
// metadata records done is ok, with the start and end recorded there; one
// its log reports failed is failed; any other keeps the end the tracker
// gave it (abandoned unless both it and the pipeline ended well). A job's run becomes a run of its
// rule: a transform of kind "rule" named after it and versioned by the
// Snakefile's digest (t is the pipeline's), so that `runs ls --transform
// RULE` lists it and its sidecar names a transform that is its own.
func nameJobs(ctx context.Context, cat *runsCatalog, r catalog.Run, t catalog.Transform, argv []string) {
	rec, err := cat.RunRecord(ctx, r.UID)
	if err != nil {
		return
	}
	workdir := lineage.SnakemakeWorkdir(argv, r.Cwd)
	jobs := lineage.SnakemakeJobs(workdir, r.StartedAt)
	// The mount's links are read through it: this is no FUSE handler.
	resolve := lineage.KeyResolver(cat.mountpoint, mountLinks(cat.mountpoint))
	keyOf := func(p string) string {
		if !filepath.IsAbs(p) {
			p = filepath.Join(workdir, p)
		}
		if cat.mountpoint == "" {
			return p
		}
		// Through a symlink or a bind mount into the mount too
		// (work/data -> the mount's wf: its key wf/out/x.txt).
		if key, ok := resolve(p); ok {
			return key
		}
		rel, err := filepath.Rel(cat.mountpoint, p)
		if err != nil {
			return p
		}
		return filepath.ToSlash(rel)
	}
	rules := map[string]string{} // rule → transform uid
	owner := map[string]string{} // key of a job's output → the job's run
	matched := map[string]bool{} // jobID of the jobs a child run was
	ruleTransform := func(rule string) string {
		if _, ok := rules[rule]; !ok {
			if rt, err := cat.SaveTransform(ctx, catalog.Transform{Name: rule, Kind: "rule", Path: t.Path, Digest: t.Digest}); err == nil {
				rules[rule] = rt.UID
			}
		}
		return rules[rule]
	}
	for _, ch := range rec.Children {
		crec, err := cat.RunRecord(ctx, ch)
		// Only the job runs the daemon's tracker made (no root process of
		// their own) are named here: a child run with a root registered
		// itself (a nested `lamina run` or `track start` in a rule's
		// shell) and keeps its own name, transform and status.
		if err != nil || crec.Run.RootPID != 0 {
			continue
		}
		var outs []string
		for _, u := range crec.Outputs {
			if v, err := cat.ByUID(ctx, u); err == nil {
				outs = append(outs, v.Key)
			}
		}
		j, ok := lineage.MatchJob(jobs, crec.Run.Argv, outs, keyOf)
		if !ok {
			continue
		}
		matched[jobID(j)] = true
		for _, o := range j.Outputs {
			owner[keyOf(o)] = ch
		}
		end := catalog.RunEnd{Name: j.Rule, Transform: ruleTransform(j.Rule)}
		switch {
		case j.Failed:
			one := 1
			end.ExitCode = &one
			// Its end is its log's error block (whole seconds: one in
			// the second the run started is taken as that start), not the
			// pipeline's end, which the tracker gave it.
			if start := crec.Run.StartedAt; !j.Finished.IsZero() && !j.Finished.Before(start.Add(-time.Second)) {
				end.FinishedAt = maxTime(j.Finished, start)
			}
		case j.Done:
			// Snakemake recorded the job done: ok, with its own times
			// (the tracker could only end it with the pipeline). Its
			// endtime is its output's mtime: one a job set into the past
			// (cp -p) is no end.
			zero := 0
			end.ExitCode = &zero
			if !j.Finished.IsZero() && (j.Started.IsZero() || !j.Finished.Before(j.Started)) {
				end.FinishedAt, end.StartedAt = j.Finished, j.Started
			}
		}
		// Neither: Snakemake never said how the job ended (it was killed
		// first, say); the run keeps the end the tracker gave it.
		cat.FinishRun(ctx, ch, end)
	}
	// A job that failed before it opened anything under the mount has no
	// run: it gets one now, failed, so that the pipeline's run shows it.
	for _, j := range jobs {
		if !j.Failed || matched[jobID(j)] {
			continue
		}
		at := j.Finished
		if at.IsZero() || at.Before(r.StartedAt.Add(-time.Second)) {
			at = time.Now()
		}
		jr := catalog.Run{Transform: ruleTransform(j.Rule), Name: j.Rule, Parent: r.UID, Source: r.Source, Cwd: workdir, User: r.User, Host: r.Host, HostID: r.HostID, StartedAt: at}
		if j.Shell != "" {
			jr.Argv = []string{"bash", "-c", j.Shell}
		}
		if jr.Transform == "" {
			continue
		}
		if started, err := cat.StartRun(ctx, jr); err == nil {
			one := 1
			cat.FinishRun(ctx, started.UID, catalog.RunEnd{FinishedAt: at, ExitCode: &one})
		}
	}
	creditJobOutputs(ctx, cat, rec, owner, lineage.SnakemakeBenchmarks(workdir, r.StartedAt), keyOf)
}

// jobID tells Snakemake jobs apart within one run's records.
func jobID(j lineage.SnakemakeJob) string {
	return j.Rule + "\x00" + j.Shell + "\x00" + strings.Join(j.Outputs, "\x00")
}

// creditJobOutputs gives each job's run the versions of its outputs that
// Snakemake's own process wrote (touch() outputs, benchmark files, a
// shadow output moved in from outside the mount): they were outputs of
// the pipeline's run, downstream of every input of the workflow. owner
// maps a job's output key to its run; benchmarks a benchmark file to its
// job's first output.
func creditJobOutputs(ctx context.Context, cat *runsCatalog, rec catalog.RunRecord, owner, benchmarks map[string]string, keyOf func(string) string) {
	for b, o := range benchmarks {
		if ch, ok := owner[keyOf(o)]; ok {
			owner[keyOf(b)] = ch
		}
	}
	byRun := map[string][]string{}
	for _, u := range rec.Outputs {
		if v, err := cat.ByUID(ctx, u); err == nil && owner[v.Key] != "" {
			byRun[owner[v.Key]] = append(byRun[owner[v.Key]], u)
		}
	}
	for ch, us := range byRun {
		if _, err := cat.CreditOutputs(ctx, ch, us); err != nil {
			fmt.Fprintf(os.Stderr, "lamina: warning: crediting %d outputs of run %s to its job's run %s: %v\n", len(us), rec.Run.UID, ch, explain(err))
		}
	}
}

// printRunSummary says on stderr how run uid went. The transform is the
// one recorded (t if the record has none), so the summary's kind is what
// `runs show` says: a track start's said "interactive" for "named".
func printRunSummary(ctx context.Context, c *cli.Context, cat catalog.Catalog, uid string, t catalog.Transform) (catalog.RunRecord, error) {
	rec, err := cat.RunRecord(ctx, uid)
	if err != nil {
		return rec, err
	}
	if rec.Transform.Name != "" {
		t = rec.Transform
	}
	r := rec.Run
	d := time.Duration(0)
	if r.FinishedAt != nil {
		d = r.FinishedAt.Sub(r.StartedAt).Round(time.Millisecond)
	}
	var extra []string
	if n := len(rec.Children); n > 0 {
		extra = append(extra, plural(n, "child run"))
	}
	fmt.Fprintf(c.App.ErrWriter, "lamina: run %s  %s (%s)  %s in %s: %s, %s%s\n", r.UID, t.Name, t.Kind, runStatus(r), d,
		plural(len(rec.Inputs), "input"), plural(len(rec.Outputs), "output"), strings.Join(append([]string{""}, extra...), ", "))
	return rec, nil
}

// trackedWhere is the note after a run that recorded no input and no
// output: only paths under the instance's mount are seen, and where that
// is (a command given local paths looked tracked, and was not).
func trackedWhere(c *cli.Context) string {
	const what = "only what the command reads or writes under the mount of instance"
	dirs, err := instance.UserDirs()
	if err != nil {
		return ""
	}
	s, err := dirs.Current(c.String("instance"))
	if err != nil {
		return ""
	}
	if st, ok := liveMount(dirs, s); ok && st.Mountpoint != "" {
		return fmt.Sprintf("%s %s is tracked: paths under %s, not elsewhere", what, s.Name, st.Mountpoint)
	}
	return fmt.Sprintf("%s %s is tracked, and it is not mounted (lamina mount DIR, then give the command paths under DIR)", what, s.Name)
}

// runStatus is how a run's status reads: "ok (exit 0)", "failed (exit
// 3)", "failed (killed by SIGINT, exit 130)", "abandoned (how it ended
// is unknown)", "running". Abandoned is a run whose process vanished
// unfinished, or a Snakemake job whose pipeline stopped before it said
// how the job ended: "its process vanished" was wrong for the latter.
func runStatus(r catalog.Run) string {
	switch {
	case r.Status == catalog.RunAbandoned && r.Note != "":
		return r.Status + " (how it ended is unknown: " + r.Note + ")"
	case r.Status == catalog.RunAbandoned:
		return r.Status + " (how it ended is unknown)"
	case r.Signal != "" && r.ExitCode != nil:
		return fmt.Sprintf("%s (killed by %s, exit %d)", r.Status, r.Signal, *r.ExitCode)
	case r.ExitCode != nil:
		return fmt.Sprintf("%s (exit %d)", r.Status, *r.ExitCode)
	}
	return r.Status
}

func plural(n int, s string) string {
	if n == 1 {
		return "1 " + s
	}
	return fmt.Sprintf("%d %ss", n, s)
}

// trackedRun returns the run this process works for, as the mount
// decides for a process it sees: the run its LAMINA_RUN names, if that run
// is still running and its registered root process is alive, checked
// against the root's start time so that a reused pid never matches
// (DESIGN §5), or, if it ended, one that lingers (processes its command
// left running work for it, as the mount credits them). "" when
// there is none: no marker, a marker of another catalog, or a stale one
// left in a shell after its run ended.
func trackedRun(ctx context.Context, cat catalog.Catalog) string {
	r, stale, _ := markedRun(ctx, cat)
	if stale != "" && !lingers(r) {
		return ""
	}
	return r.UID
}

// lingers reports whether run r, ended, lingers: processes its command
// left in its cgroup still run, and work for it (lineage.Lingers), as the
// mount accepts their marker.
func lingers(r catalog.Run) bool {
	host, _ := os.Hostname()
	return lineage.Lingers(r, host)
}

// markedRun looks up the run LAMINA_RUN names. It returns the zero Run when
// there is no marker or it names no run of this catalog; stale says why a
// run it does name no longer counts (it finished, or its root process is
// gone), "" when the run is live.
func markedRun(ctx context.Context, cat catalog.Catalog) (r catalog.Run, stale string, err error) {
	uid := os.Getenv(lineage.EnvRun)
	if uid == "" {
		return r, "", nil
	}
	if !isRunUID(uid) {
		return r, "", errNotRunUID // marker.go
	}
	rec, err := cat.RunRecord(ctx, uid)
	if err != nil {
		return r, "", err
	}
	r = rec.Run
	if r.Status != catalog.RunRunning {
		at := ""
		if r.FinishedAt != nil {
			at = " at " + r.FinishedAt.Local().Format(time.DateTime)
		}
		return r, "it finished" + at, nil
	}
	if host, _ := os.Hostname(); r.RootPID > 0 && lineage.Here(r, host) {
		if start, err := lineage.ProcStart(r.RootPID); err != nil || start != r.RootStart {
			return r, fmt.Sprintf("its process (pid %d) is gone", r.RootPID), nil
		}
	}
	return r, "", nil
}

// parentRun is the parent of a new run: the live run LAMINA_RUN names, or
// the ended one that lingers (lingers). A marker of a run that
// ended (left in a shell by a `track finish` without eval, or by a killed
// `lamina run`) is not a parent otherwise; the user is told once how to
// clear it. A marker of another catalog is dropped silently.
func parentRun(c *cli.Context, cat catalog.Catalog) string {
	r, stale, err := markedRun(c.Context, cat)
	if err != nil {
		badMarker(c.App.ErrWriter) // marker.go
		return ""
	}
	if stale != "" && !lingers(r) {
		fmt.Fprintf(c.App.ErrWriter, "lamina: ignoring the stale %s=%s (%s); clear it with: unset %s\n", lineage.EnvRun, r.UID, stale, lineage.EnvRun)
		return ""
	}
	return r.UID
}

// trackGet records a `lamina get` by a process working for run (see
// trackedRun) as an input of the run, unless the run or one of its
// children wrote the version, or wrote its bytes again.
func trackGet(ctx context.Context, cat catalog.Catalog, run string, v catalog.Version) {
	if run == "" {
		return
	}
	// Nor one it wrote again before this get (Runs.Reruns): the get comes
	// after, so it reads the run's own output. An older daemon knows none.
	again, _ := cat.Reruns(ctx, v.UID)
	for _, by := range append([]string{v.Run}, again...) {
		for w, i := by, 0; w != "" && i < 32; i++ {
			if w == run {
				return
			}
			rec, err := cat.RunRecord(ctx, w)
			if err != nil {
				break
			}
			w = rec.Run.Parent
		}
	}
	if err := cat.AddInputs(ctx, run, []string{v.UID}); err != nil && !errors.Is(err, catalog.ErrNotFound) {
		fmt.Fprintf(os.Stderr, "lamina: recording %s as an input of run %s: %v\n", v.Ref(), run, err)
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
