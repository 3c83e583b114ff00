package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/catalog"
	lfs "github.com/lamina-bio/lamina/fs"
	"github.com/lamina-bio/lamina/instance"
	"github.com/lamina-bio/lamina/lineage"
	"golang.org/x/sys/unix"
)

// TestTrackFinishWithoutEval: a `track finish` not eval'd leaves
// LAMINA_RUN naming a finished run in the shell. That run is not finished
// again, not the parent of a new run, and no obstacle to a new track start.
func TestTrackFinishWithoutEval(t *testing.T) {
	e := newEnv(t)
	e.init()
	runs := func() map[string]catalog.Run {
		var rs []catalog.Run
		e.jsonOut(&rs, "runs", "ls", "--format", "json")
		m := map[string]catalog.Run{}
		for _, r := range rs {
			m[r.Name] = r
		}
		return m
	}
	start := func(name string) string {
		out, stderr, err := e.run("track", "start", "--transform", name)
		line, ok := strings.CutPrefix(strings.SplitN(out, "\n", 2)[0], "export ")
		uid, _ := strings.CutPrefix(strings.Fields(line)[0], lineage.EnvRun+"=")
		if err != nil || !ok || !strings.Contains(line, envTrack+"="+uid) {
			t.Fatalf("track start: %q, %v", out, err)
		}
		if !strings.Contains(stderr, `eval "$(lamina track finish)"`) {
			t.Errorf("track start hint: %s", stderr)
		}
		t.Setenv(lineage.EnvRun, uid)
		t.Setenv(envTrack, uid)
		return uid
	}
	first := start("explore")
	_, summary, err := e.run("track", "finish") // not eval'd: the marker stays
	if err != nil {
		t.Fatal(err)
	}
	// The summary names the transform's kind as recorded (it said
	// "interactive" for a transform runs show calls "named").
	var rec catalog.RunRecord
	e.jsonOut(&rec, "runs", "show", first, "--format", "json")
	if want := "explore (" + rec.Transform.Kind + ")"; rec.Transform.Kind == "" || !strings.Contains(summary, want) {
		t.Errorf("finish summary %q; want %q, the recorded kind", summary, want)
	}
	end := runs()["explore"].FinishedAt

	out, _, err := e.run("track", "finish")
	if err == nil || codeOf(err) != 2 || !strings.Contains(err.Error(), "nothing to finish") || !strings.Contains(err.Error(), "unset "+lineage.EnvRun) {
		t.Fatalf("second finish: %v (exit %d)", err, codeOf(err))
	}
	if !strings.HasPrefix(out, "unset "+lineage.EnvRun) {
		t.Errorf("second finish prints %q, want the unset for eval", out)
	}
	if got := runs()["explore"].FinishedAt; !got.Equal(*end) {
		t.Errorf("finished_at rewritten: %v, was %v", got, end)
	}

	_, stderr, err := e.run("run", "--transform", "nested", "--", "true")
	if err != nil {
		t.Fatal(err)
	}
	if p := runs()["nested"].Parent; p != "" {
		t.Errorf("a run under a stale marker has parent %s", p)
	}
	if strings.Count(stderr, "stale") != 1 || !strings.Contains(stderr, "unset "+lineage.EnvRun) {
		t.Errorf("no single warning about the stale marker:\n%s", stderr)
	}

	second := start("again")
	if second == first {
		t.Fatal("track start over a stale marker reused its run")
	}
	// A live run still refuses a second start and parents a nested run.
	if err := e.fails("already in run", "track", "start", "--transform", "third"); codeOf(err) != 2 {
		t.Errorf("exit %d", codeOf(err))
	}
	e.ok("run", "--transform", "child", "--", "true")
	if p := runs()["child"].Parent; p != second {
		t.Errorf("child of a live run has parent %q, want %s", p, second)
	}
	e.ok("track", "finish")
}

// TestTrackInsideLaminaRun: inside `lamina run -- bash`, LAMINA_RUN names
// the outer run. A `track finish` there must not end it (its command is
// still running), and a `track start` must not claim to be nested in a
// tracked shell.
func TestTrackInsideLaminaRun(t *testing.T) {
	e := newEnv(t)
	e.init()
	t.Setenv(lineage.EnvRun, "")
	t.Setenv(envTrack, "")
	bin := mntBinary(t)
	script := bin + " track finish; echo finish=$?; " + bin + " track start --transform inner; echo start=$?"
	out, stderr, err := e.run("run", "--transform", "outer", "--", "sh", "-c", script)
	if err != nil {
		t.Fatalf("lamina run: %v\n%s", err, stderr)
	}
	_ = out
	var rs []catalog.Run
	e.jsonOut(&rs, "runs", "ls", "--format", "json")
	if len(rs) != 1 || rs[0].Name != "outer" || rs[0].ExitCode == nil || *rs[0].ExitCode != 0 {
		t.Fatalf("runs: %+v", rs)
	}
	for _, want := range []string{"finish=2", "start=2", "`lamina run` started it", "cannot start inside it"} {
		if !strings.Contains(stderr+out, want) {
			t.Errorf("no %q in the command's output:\n%s\n%s", want, out, stderr)
		}
	}
}

// TestTrackStartInSubshell: with a redirection inside "$(…)" bash runs
// lamina in a subshell it forked, which exits at once; the run belongs to
// the shell that evals, so a nested lamina run is its child, not a run
// under a stale marker.
func TestTrackStartInSubshell(t *testing.T) {
	e := newEnv(t)
	e.init()
	t.Setenv(lineage.EnvRun, "")
	t.Setenv(envTrack, "")
	bin := mntBinary(t)
	script := `eval "$(` + bin + ` track start --transform sub 2>/dev/null)"; echo shell=$$; ` +
		bin + ` run --transform inner -- true; eval "$(` + bin + ` track finish 2>/dev/null)"; echo "left=$LAMINA_RUN."`
	out, err := exec.Command("bash", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("bash: %v\n%s", err, out)
	}
	var shell int
	for _, l := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(l, "shell="); ok {
			shell, _ = strconv.Atoi(v)
		}
	}
	var rs []catalog.Run
	e.jsonOut(&rs, "runs", "ls", "--format", "json")
	byName := map[string]catalog.Run{}
	for _, r := range rs {
		byName[r.Name] = r
	}
	sub, inner := byName["sub"], byName["inner"]
	if shell == 0 || sub.RootPID != shell {
		t.Fatalf("the tracked run's root is pid %d, want the shell %d\n%s", sub.RootPID, shell, out)
	}
	if inner.Parent != sub.UID || sub.Status != catalog.RunOK || !strings.Contains(string(out), "left=.") || strings.Contains(string(out), "stale") {
		t.Fatalf("inner parent %q (want %s), sub %s\n%s", inner.Parent, sub.UID, sub.Status, out)
	}
}

// openPty returns the two ends of a new pseudo-terminal.
func openPty(t *testing.T) (ptm, pts *os.File) {
	t.Helper()
	ptm, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { ptm.Close() })
	if err := unix.IoctlSetPointerInt(int(ptm.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(ptm.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	pts, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pts.Close() })
	return ptm, pts
}

// TestTrackStartToTerminal: `track start` printing to a terminal is not
// eval'd, so the shell would be tracked without LAMINA_RUN and could not
// finish the run: it starts nothing and says how to run it.
func TestTrackStartToTerminal(t *testing.T) {
	e := newEnv(t)
	e.init()
	t.Setenv(lineage.EnvRun, "")
	t.Setenv(envTrack, "")
	_, pts := openPty(t)
	shell := lineage.Shell(os.Getppid())
	cgroup, _ := os.ReadFile("/proc/" + strconv.Itoa(shell) + "/cgroup")
	var stderr bytes.Buffer
	err := Main([]string{"lamina", "track", "start", "--transform", "x"}, pts, &stderr)
	if err == nil || codeOf(err) != 2 || !strings.Contains(err.Error(), `eval "$(lamina track start`) || !strings.Contains(err.Error(), "nothing was started") {
		t.Fatalf("track start to a terminal: %v (exit %d)", err, codeOf(err))
	}
	var rs []catalog.Run
	e.jsonOut(&rs, "runs", "ls", "--format", "json")
	if len(rs) != 0 {
		t.Errorf("runs started: %+v", rs)
	}
	if now, _ := os.ReadFile("/proc/" + strconv.Itoa(shell) + "/cgroup"); string(now) != string(cgroup) {
		t.Errorf("the shell moved from cgroup %s to %s", cgroup, now)
	}
}

// TestTrackFinishNotEvald: a `track start` whose output went to a pipe or
// a file, not to eval, leaves a run rooted at the shell with no LAMINA_RUN;
// `track finish` finishes that run rather than refusing and leaving it
// running (and crediting the shell's reads and writes to it).
func TestTrackFinishNotEvald(t *testing.T) {
	e := newEnv(t)
	e.init()
	t.Setenv(lineage.EnvRun, "")
	t.Setenv(envTrack, "")
	t.Setenv(envTrackCgroup, "")
	e.ok("track", "start", "--transform", "piped") // printed into a buffer: not eval'd
	out, stderr, err := e.run("track", "finish")
	if err != nil || !strings.Contains(stderr, "not eval'd") || !strings.HasPrefix(out, "unset "+lineage.EnvRun) {
		t.Fatalf("finish without LAMINA_RUN: %v\n%s%s", err, out, stderr)
	}
	var rs []catalog.Run
	e.jsonOut(&rs, "runs", "ls", "--format", "json")
	if len(rs) != 1 || rs[0].Name != "piped" || rs[0].Status != catalog.RunOK {
		t.Fatalf("runs: %+v", rs)
	}
	if err := e.fails("not in a run", "track", "finish"); codeOf(err) != 2 {
		t.Errorf("a second finish: exit %d", codeOf(err))
	}
}

// bashOut runs script in bash with e's environment and returns the
// values of its KEY=VALUE lines.
func (e *mntEnv) bashOut(script string) (map[string]string, string) {
	e.t.Helper()
	cmd := exec.Command("bash", "-c", script)
	cmd.Env = append(e.env, "L="+e.bin, lineage.EnvRun+"=", envTrack+"=", envTrackCgroup+"=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		e.t.Fatalf("bash: %v\n%s", err, out)
	}
	m := map[string]string{}
	for _, l := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && !strings.Contains(k, " ") {
			m[k] = v
		}
	}
	return m, string(out)
}

// TestTrackFinishNestedShell: two instances' track starts not eval'd put
// the shell in the outer run's cgroup, then in the inner's below it.
// Finishing the outer first would take the shell out of the live inner
// run: it is refused, the inner is finished first, then the outer, and
// the shell ends where it began.
func TestTrackFinishNestedShell(t *testing.T) {
	e := newMntEnv(t)
	e.ok("init", "--storage", e.dir+"/storage2", "--name", "m2")
	for _, name := range []string{"m", "m2"} {
		mnt := filepath.Join(e.dir, "mnt-"+name)
		os.MkdirAll(mnt, 0o755)
		e.ok("--instance", name, "mount", mnt)
		t.Cleanup(func() {
			e.run("--instance", name, "umount", mnt)
			if _, ok := lfs.MountInfo(mnt); ok {
				lfs.ForceUnmount(mnt)
			}
		})
	}
	cg := `$(grep ^0:: /proc/$$/cgroup)`
	m, out := e.bashOut(`echo begin=` + cg + `
		$L --instance m track start --transform outer >/dev/null
		$L --instance m2 track start --transform inner >/dev/null; echo inner=` + cg + `
		$L --instance m track finish >/dev/null; echo outer1=$?; echo after1=` + cg + `
		$L --instance m2 track finish >/dev/null; echo inner2=$?; echo after2=` + cg + `
		$L --instance m track finish >/dev/null; echo outer2=$?; echo end=` + cg + `; true`)
	if m["outer1"] != "2" || !strings.Contains(out, "finish that one first") || m["after1"] != m["inner"] {
		t.Fatalf("finishing the outer run with the inner live: exit %s, shell in %s (inner %s)\n%s", m["outer1"], m["after1"], m["inner"], out)
	}
	// The refusal alone, not "…: finishing it" before it.
	if before, _, _ := strings.Cut(out, "finish that one first"); strings.Count(before, "finishing it") != 0 {
		t.Errorf("a refused finish said it was finishing:\n%s", out)
	}
	if m["inner2"] != "0" || m["outer2"] != "0" || m["end"] != m["begin"] || m["begin"] == "" {
		t.Fatalf("inner then outer: exits %s %s, shell ends in %s, began in %s\n%s", m["inner2"], m["outer2"], m["end"], m["begin"], out)
	}
}

// TestTrackStartLeftoverCgroup: a finish while a background job of the
// shell still runs cannot remove the run's cgroup; once the job is gone,
// a track start meanwhile warns that its run has none, and once the job
// is gone the next track start in that shell takes the empty cgroup
// rather than silently starting a run with none.
func TestTrackStartLeftoverCgroup(t *testing.T) {
	e := newMntEnv(t)
	e.mount(filepath.Join(e.dir, "lab"))
	m, out := e.bashOut(`echo begin=$(grep ^0:: /proc/$$/cgroup)
		eval "$($L track start --transform first)"
		sleep 60 & bg=$!
		eval "$($L track finish)"
		eval "$($L track start --transform busy)"
		eval "$($L track finish)"
		kill $bg; wait $bg
		eval "$($L track start --transform second)"
		eval "$($L track finish)"; echo end=$(grep ^0:: /proc/$$/cgroup); true`)
	runs := e.runsByName()
	if runs["first"].Cgroup == "" {
		t.Fatal("the first run has no cgroup (is the cgroup v2 tree writable?)")
	}
	// While the job runs, the cgroup is not the next run's: it has none, and says so.
	if runs["busy"].Cgroup != "" || !strings.Contains(out, "no cgroup of its own") {
		t.Errorf("the run started while the leftover cgroup was busy: cgroup %q\n%s", runs["busy"].Cgroup, out)
	}
	if runs["second"].Cgroup == "" || m["end"] != m["begin"] {
		t.Fatalf("second run's cgroup %q; the shell ends in %s, began in %s\n%s", runs["second"].Cgroup, m["end"], m["begin"], out)
	}
	if _, err := os.Stat(lineage.CgroupRoot() + runs["second"].Cgroup); err == nil {
		t.Errorf("the cgroup %s stayed", runs["second"].Cgroup)
	}
}

// TestTrackFinishInLaminaRun: with no mount the run of `lamina run` has no
// cgroup, and its root is the lamina process: a finish without LAMINA_RUN
// inside it is not the root of a tracked shell's run and ends nothing.
func TestTrackFinishInLaminaRun(t *testing.T) {
	e := newEnv(t)
	e.init()
	t.Setenv(lineage.EnvRun, "")
	t.Setenv(envTrack, "")
	t.Setenv(envTrackCgroup, "")
	_, stderr, err := e.run("run", "--transform", "w", "--", "env", "-u", lineage.EnvRun, mntBinary(t), "track", "finish")
	if err == nil || !strings.Contains(stderr, "not in a run") || strings.Contains(stderr, "finishing it") {
		t.Fatalf("track finish inside lamina run: %v\n%s", err, stderr)
	}
}

// TestTrackFinishManyRuns: the run a track start not eval'd left is found
// however many runs came after it; a catalog that cannot be opened is
// said, not taken for "not in a run".
func TestTrackFinishManyRuns(t *testing.T) {
	e := newEnv(t)
	e.init()
	t.Setenv(lineage.EnvRun, "")
	t.Setenv(envTrack, "")
	t.Setenv(envTrackCgroup, "")
	e.ok("track", "start", "--transform", "piped")
	dirs, err := instance.UserDirs()
	if err != nil {
		t.Fatal(err)
	}
	s, err := dirs.Current("")
	if err != nil {
		t.Fatal(err)
	}
	cat, err := openCatalog(s, false)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := cat.SaveTransform(t.Context(), catalog.Transform{Name: "later", Kind: "named"})
	if err != nil {
		t.Fatal(err)
	}
	zero := 0
	for range 1001 {
		r, err := cat.StartRun(t.Context(), catalog.Run{Transform: tr.UID, StartedAt: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		cat.FinishRun(t.Context(), r.UID, catalog.RunEnd{FinishedAt: time.Now(), ExitCode: &zero})
	}
	cat.Close()
	if _, stderr, err := e.run("track", "finish"); err != nil || !strings.Contains(stderr, "not eval'd") {
		t.Fatalf("finish after 1001 runs: %v\n%s", err, stderr)
	}

	e.ok("track", "start", "--transform", "again")
	if err := os.WriteFile(s.Catalog, []byte("not a catalog"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, stderr, err := e.run("track", "finish"); err == nil || strings.Contains(err.Error()+stderr, "not in a run") {
		t.Fatalf("finish with the catalog unreadable: %v\n%s", err, stderr)
	}
}

// TestTrackFinishOtherInstancesRun: eval'd track starts of two instances
// in one shell leave LAMINA_RUN naming the second's run; a finish of the
// first instance says so and how to go on, not `no run "…"` (exit 1).
func TestTrackFinishOtherInstancesRun(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("init", "--storage", e.path("storage2"), "--name", "other")
	t.Setenv(lineage.EnvRun, "")
	t.Setenv(envTrack, "")
	t.Setenv(envTrackCgroup, "")
	e.ok("--instance", "test", "track", "start", "--transform", "outer") // not eval'd
	out := e.ok("--instance", "other", "track", "start", "--transform", "inner")
	line, _ := strings.CutPrefix(strings.SplitN(out, "\n", 2)[0], "export ")
	uid, _ := strings.CutPrefix(strings.Fields(line)[0], lineage.EnvRun+"=")
	t.Setenv(lineage.EnvRun, uid)
	t.Setenv(envTrack, uid)
	err := e.fails(lineage.EnvRun+" names run "+uid+`, of which instance "test" has no record. If a track start of another instance in this shell set it, finish that run first with `+"`eval \"$(lamina --instance OTHER track finish)\"`", "--instance", "test", "track", "finish")
	if codeOf(err) != 2 {
		t.Errorf("exit %d", codeOf(err))
	}
	e.ok("--instance", "other", "track", "finish")
	t.Setenv(lineage.EnvRun, "")
	t.Setenv(envTrack, "")
	e.ok("--instance", "test", "track", "finish")
}

// TestTrackUnknownRun: a LAMINA_RUN naming a run no catalog here knows
// (left over, set by hand) was called another instance's run, with no way
// to clear it; track start told to finish it, which then failed. Both say
// the catalog has no record of it and how to unset the marker.
func TestTrackUnknownRun(t *testing.T) {
	e := newEnv(t)
	e.init()
	t.Setenv(lineage.EnvRun, "0123456789abcdef")
	t.Setenv(envTrack, "")
	t.Setenv(envTrackCgroup, "")
	for _, args := range [][]string{{"track", "finish"}, {"track", "start", "--transform", "x"}} {
		_, errs, err := e.run(args...)
		if codeOf(err) != 2 {
			t.Errorf("lamina %s with an unknown LAMINA_RUN: exit %d, %v", strings.Join(args, " "), codeOf(err), err)
		}
		msg := errs
		if err != nil {
			msg += err.Error()
		}
		for _, want := range []string{`names run 0123456789abcdef, of which instance "test" has no record`, "unset LAMINA_RUN LAMINA_TRACK LAMINA_TRACK_CGROUP"} {
			if !strings.Contains(msg, want) {
				t.Errorf("lamina %s with an unknown LAMINA_RUN: %s\nwant %q", strings.Join(args, " "), msg, want)
			}
		}
		if strings.Contains(msg, "most likely") || strings.Contains(msg, "already in run") {
			t.Errorf("lamina %s with an unknown LAMINA_RUN guesses: %s", strings.Join(args, " "), msg)
		}
	}
}

// TestRunWarnsWithoutCgroup: a `lamina run` whose cgroup cannot be made
// while the instance is mounted and the tree is writable (here a busy
// leftover of its name) says so once, as track start does; a run that
// gets its cgroup says nothing. Before, it went on silently.
func TestRunWarnsWithoutCgroup(t *testing.T) {
	e := newMntEnv(t)
	e.mount(filepath.Join(e.dir, "lab"))
	m, out := e.bashOut(`$L run --transform plain -- true
		cg=` + lineage.CgroupRoot() + `$(sed -n 's/^0:://p' /proc/$$/cgroup)
		( c="$cg/lamina-run-$BASHPID"; mkdir "$c"; sleep 60 & echo $! > "$c/cgroup.procs"; echo $! > ` + e.dir + `/sleeper
		  exec $L run --transform busy -- true ); echo busy=$?
		s=$(cat ` + e.dir + `/sleeper); echo sleeper=$s; kill $s
		for i in $(seq 100); do rmdir "$cg"/lamina-run-* 2>/dev/null && break; sleep 0.1; done; true`)
	runs := e.runsByName()
	if runs["plain"].Cgroup == "" {
		t.Fatalf("the plain run has no cgroup (is the cgroup v2 tree writable?)\n%s", out)
	}
	if m["sleeper"] == "" {
		t.Fatalf("no process held the cgroup\n%s", out)
	}
	if m["busy"] != "0" || runs["busy"].Cgroup != "" || strings.Count(out, "warning: the run has no cgroup of its own") != 1 {
		t.Errorf("a run whose cgroup is busy: exit %s, cgroup %q\n%s", m["busy"], runs["busy"].Cgroup, out)
	}
}
