package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/lamina-bio/lamina/catalog"
)

// TestRunParamsVerbatim: --param values are kept whole (no splitting on
// commas, no trimming), typed only when they round-trip, and a name given
// twice is a usage error.
func TestRunParamsVerbatim(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("run", "--transform", "p", "-p", "genes=CD4,CD8", "-p", "filter=a,b=c", "-p", "sp=  5 ",
		"-p", "sample=007", "-p", "tool_version=1.10", "-p", "big=123456789012345678901", "-p", "n=200", "-p", "x=0.5", "--", "true")
	var rs []catalog.Run
	e.jsonOut(&rs, "runs", "ls", "--format", "json")
	if len(rs) != 1 {
		t.Fatalf("runs %+v", rs)
	}
	want := map[string]any{"genes": "CD4,CD8", "filter": "a,b=c", "sp": "  5 ", "sample": "007", "tool_version": "1.10",
		"big": "123456789012345678901", "n": 200.0, "x": 0.5}
	if !reflect.DeepEqual(rs[0].Params, want) {
		t.Fatalf("params %#v\nwant %#v", rs[0].Params, want)
	}
	if err := e.fails("given twice", "run", "-p", "a=1", "-p", "a=2", "--", "true"); codeOf(err) != 2 {
		t.Fatalf("duplicate param: exit %d, want 2", codeOf(err))
	}
	e.jsonOut(&rs, "runs", "ls", "--format", "json")
	if len(rs) != 1 {
		t.Fatalf("a refused run was recorded: %+v", rs)
	}
}

// startRun starts `lamina run` (the test binary as lamina) with args and
// waits until the command prints "ready"; it returns the process and the
// command's output so far.
func (e *env) startRun(t *testing.T, args ...string) (*exec.Cmd, *bufio.Reader) {
	t.Helper()
	cmd := e.child(append([]string{"run"}, args...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errb bytes.Buffer
	cmd.Stderr = &errb
	// No controlling terminal: lamina run then forwards SIGINT as well.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	r := bufio.NewReader(out)
	line, err := r.ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		t.Fatalf("the command said %q (%v)\n%s", line, err, errb.String())
	}
	return cmd, r
}

// TestRunForwardsSignals: a signal lamina run gets goes to the command as
// that signal (not SIGTERM), lamina run waits for the command to end and
// records how: its exit code, or the signal that killed it.
func TestRunForwardsSignals(t *testing.T) {
	e := newEnv(t)
	e.init()
	py := func(handle string) string {
		return "import signal, sys, time\n" + handle + "\nprint('ready', flush=True)\ntime.sleep(60)\n"
	}
	for _, tc := range []struct {
		name   string
		sig    syscall.Signal
		script string
		code   int
		signal string
		status string
	}{
		{"SIGINT handled", syscall.SIGINT, py("signal.signal(signal.SIGINT, lambda *a: sys.exit(5))"), 5, "", "failed (exit 5)"},
		{"SIGINT", syscall.SIGINT, py("signal.signal(signal.SIGINT, signal.SIG_DFL)"), 130, "SIGINT", "failed (killed by SIGINT, exit 130)"},
		{"SIGHUP", syscall.SIGHUP, py(""), 129, "SIGHUP", "failed (killed by SIGHUP, exit 129)"},
		{"SIGTERM handled", syscall.SIGTERM, py("signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))"), 0, "", "ok (exit 0)"},
		{"SIGQUIT", syscall.SIGQUIT, py("signal.signal(signal.SIGQUIT, lambda *a: sys.exit(6))"), 6, "", "failed (exit 6)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := strings.ReplaceAll(tc.name, " ", "-")
			cmd, _ := e.startRun(t, "--transform", name, "--", "python3", "-c", tc.script)
			cmd.Process.Signal(tc.sig)
			err := cmd.Wait()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			}
			if code != tc.code {
				t.Fatalf("lamina run: %v, exit %d; want %d", err, code, tc.code)
			}
			var rs []catalog.Run
			e.jsonOut(&rs, "runs", "ls", "--format", "json", "--transform", name)
			if len(rs) != 1 || rs[0].ExitCode == nil || *rs[0].ExitCode != tc.code || rs[0].Signal != tc.signal {
				t.Fatalf("runs %+v", rs)
			}
			if show := e.ok("runs", "show", rs[0].UID); !strings.Contains(show, "status:    "+tc.status+"\n") {
				t.Fatalf("runs show, want status %q:\n%s", tc.status, show)
			}
		})
	}
}

// TestRunArgvNotUTF8: an argument that is not UTF-8 is kept byte for
// byte (JSON text cannot carry it as a string).
func TestRunArgvNotUTF8(t *testing.T) {
	e := newEnv(t)
	e.init()
	arg := "caf\xe9 \xff\xfe"
	e.ok("run", "--transform", "raw", "--", "printf", "%s", arg)
	var rs []catalog.Run
	e.jsonOut(&rs, "runs", "ls", "--format", "json")
	if len(rs) != 1 || !reflect.DeepEqual(rs[0].Args(), []string{"printf", "%s", arg}) {
		t.Fatalf("argv %q, raw %v", rs[0].Argv, rs[0].ArgvRaw)
	}
	if show := e.ok("runs", "show", rs[0].UID); !strings.Contains(show, `"caf\xe9 \xff\xfe"`) {
		t.Fatalf("runs show:\n%s", show)
	}
}

// TestRunKilledIsAbandoned: a run whose lamina run was killed (SIGKILL:
// nothing can record its end) is shown abandoned, not running forever.
func TestRunKilledIsAbandoned(t *testing.T) {
	e := newEnv(t)
	e.init()
	cmd, out := e.startRun(t, "--transform", "victim", "--", "sh", "-c", "echo ready; echo $$; exec sleep 60")
	line, _ := out.ReadString('\n')
	child, _ := strconv.Atoi(strings.TrimSpace(line))
	var rs []catalog.Run
	e.jsonOut(&rs, "runs", "ls", "--format", "json")
	if len(rs) != 1 || rs[0].Status != catalog.RunRunning {
		t.Fatalf("while it runs: %+v", rs)
	}
	cmd.Process.Kill()
	syscall.Kill(child, syscall.SIGKILL) // before Wait: it holds the output pipe
	cmd.Wait()
	e.jsonOut(&rs, "runs", "ls", "--format", "json")
	if len(rs) != 1 || rs[0].Status != catalog.RunAbandoned || rs[0].ExitCode != nil || rs[0].FinishedAt == nil {
		t.Fatalf("after kill -9: %+v", rs)
	}
	if show := e.ok("runs", "show", rs[0].UID); !strings.Contains(show, "status:    abandoned (how it ended is unknown)\n") {
		t.Fatalf("runs show:\n%s", show)
	}
}

// TestRunsTransformsSweeps: runs transforms shows the latest run of a
// transform whose process died as abandoned, not running, without a
// runs ls first to sweep it, as runs ls and runs show do.
func TestRunsTransformsSweeps(t *testing.T) {
	e := newEnv(t)
	e.init()
	cmd, out := e.startRun(t, "--transform", "victim", "--", "sh", "-c", "echo ready; echo $$; exec sleep 60")
	line, _ := out.ReadString('\n')
	child, _ := strconv.Atoi(strings.TrimSpace(line))
	var rows []struct {
		Name      string       `json:"name"`
		LatestRun *catalog.Run `json:"latest_run"`
	}
	e.jsonOut(&rows, "runs", "transforms", "--format", "json")
	if len(rows) != 1 || rows[0].LatestRun.Status != catalog.RunRunning {
		t.Fatalf("while it runs: %+v", rows)
	}
	cmd.Process.Kill()
	syscall.Kill(child, syscall.SIGKILL) // before Wait: it holds the output pipe
	cmd.Wait()
	e.jsonOut(&rows, "runs", "transforms", "--name", "victim", "--format", "json")
	if len(rows) != 1 || rows[0].LatestRun.Status != catalog.RunAbandoned || rows[0].LatestRun.FinishedAt == nil {
		t.Fatalf("after kill -9: %+v", rows[0].LatestRun)
	}
	if table := e.ok("runs", "transforms"); strings.Contains(table, "running") || !strings.Contains(table, "abandoned") {
		t.Fatalf("runs transforms:\n%s", table)
	}
}

// TestRunsShowParamsAsGiven: runs show prints a typed param as it was
// given (the JSON number's text), never Go's %v of a float64 ("1e-06",
// "1.23456789e+07").
func TestRunsShowParamsAsGiven(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("run", "--transform", "p", "-p", "s=0.000001", "-p", "w=12345678.9", "-p", "n=12345678", "-p", "big=9007199254740992",
		"-p", "neg=-0.25", "-p", "ok=true", "-p", "txt=1e3", "--", "true")
	var rs []catalog.Run
	e.jsonOut(&rs, "runs", "ls", "--format", "json")
	if len(rs) != 1 {
		t.Fatalf("runs %+v", rs)
	}
	out := e.ok("runs", "show", rs[0].UID)
	for _, want := range []string{"  s=0.000001\n", "  w=12345678.9\n", "  n=12345678\n", "  big=9007199254740992\n",
		"  neg=-0.25\n", "  ok=true\n", "  txt=1e3\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("runs show lacks %q:\n%s", want, out)
		}
	}
}

// TestRunsOtherPidNamespace: a run of a container that has the host's
// name and a pid namespace of its own (simulated with unshare) was
// abandoned by a `runs ls` outside it while it ran: its root pid, 1 in
// the container, named another process here. A run records its host id
// (boot id and pid namespace), and only processes with the same one judge
// its pids.
func TestRunsOtherPidNamespace(t *testing.T) {
	unshare, err := exec.LookPath("unshare")
	if err != nil || exec.Command(unshare, "--pid", "--fork", "--mount-proc", "true").Run() != nil {
		t.Skip("needs unshare --pid (root)")
	}
	e := newEnv(t)
	e.init()
	goFile := e.path("go")
	cmd := e.child("run", "--transform", "contained", "--", "sh", "-c",
		"echo ready; i=0; while [ ! -e "+goFile+" ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done")
	cmd.Path, cmd.Args = unshare, append([]string{"unshare", "--pid", "--fork", "--kill-child", "--mount-proc", os.Args[0]}, cmd.Args[1:]...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if line, err := bufio.NewReader(out).ReadString('\n'); strings.TrimSpace(line) != "ready" {
		t.Fatalf("the command said %q (%v)\n%s", line, err, errb.String())
	}
	var rs []catalog.Run
	e.jsonOut(&rs, "runs", "ls", "--format", "json")
	if len(rs) != 1 || rs[0].Status != catalog.RunRunning || rs[0].HostID == "" {
		t.Fatalf("while it runs in its pid namespace: %+v", rs)
	}
	os.WriteFile(goFile, nil, 0o644)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("lamina run: %v\n%s", err, errb.String())
	}
	e.jsonOut(&rs, "runs", "ls", "--format", "json")
	if len(rs) != 1 || rs[0].Status != catalog.RunOK {
		t.Fatalf("after it ended: %+v", rs)
	}
}

// A command that cannot run: `lamina run -- nosuchcmd` warned that the run
// had no cgroup of its own (its start failing was taken for the cgroup's
// and retried), exited 127 for any cause, and recorded a failed run. It
// says what a shell says, exits as one (127 not found, 126 not
// executable), and records nothing.
func TestRunCommandThatCannotRun(t *testing.T) {
	e := newEnv(t)
	e.init()
	notExec := e.write("notexec.sh", []byte("#!/bin/sh\n"))
	noInterp := e.write("nointerp.sh", []byte("#!/nonexistent/sh -e\necho x\n"))
	os.Chmod(noInterp, 0o755)
	for _, tc := range []struct {
		argv []string
		code int
		want string
	}{
		{[]string{"lamina-no-such-command"}, 127, "lamina-no-such-command: command not found"},
		{[]string{e.path("nope/x.sh")}, 127, "command not found"},
		{[]string{notExec}, 126, "permission denied"},
		{[]string{e.dir}, 126, "is a directory"},
		{[]string{noInterp}, 127, "its interpreter /nonexistent/sh does not exist"},
	} {
		_, errs, err := e.run(append([]string{"run", "--"}, tc.argv...)...)
		if codeOf(err) != tc.code || !strings.Contains(explain(err)+errs, tc.want) || strings.Contains(errs, "cgroup") {
			t.Errorf("run -- %s: exit %d (%v) %q; want exit %d saying %q", tc.argv[0], codeOf(err), err, errs, tc.code, tc.want)
		}
	}
	var runs []map[string]any
	e.jsonOut(&runs, "runs", "ls", "--format", "json")
	if len(runs) != 0 {
		t.Errorf("runs recorded for commands that did not run: %v", runs)
	}
	// A command found in a relative PATH entry runs, as from a shell
	// (Go's exec refuses it: "cannot run executable found relative to
	// current directory").
	e.write("bin/dotcmd", []byte("#!/bin/sh\necho dot-ran\n"))
	os.Chmod(e.path("bin/dotcmd"), 0o755)
	t.Chdir(e.path("bin"))
	t.Setenv("PATH", ".:"+os.Getenv("PATH"))
	if out, errs, err := e.run("run", "--", "dotcmd"); err != nil || !strings.Contains(out, "dot-ran") {
		t.Errorf("run -- dotcmd with . on PATH: %v %q %q", err, out, errs)
	}
	// An executable text file without #! runs with sh, as from a shell;
	// a file in PATH that is not executable is 126, as bash says (audit a5).
	e.write("bin/nohash", []byte("echo nohash-ran\n"))
	os.Chmod(e.path("bin/nohash"), 0o755)
	if out, errs, err := e.run("run", "--", "./nohash"); err != nil || !strings.Contains(out, "nohash-ran") || strings.Contains(errs, "cgroup") {
		t.Errorf("run -- ./nohash: %v %q %q", err, out, errs)
	}
	// A binary the kernel cannot run is not given to sh (audit a6).
	e.write("bin/badelf", append([]byte("\x7fELF\x02\x01\x01\x00"), make([]byte, 64)...))
	os.Chmod(e.path("bin/badelf"), 0o755)
	if out, errs, err := e.run("run", "--", "./badelf"); codeOf(err) != 126 || !strings.Contains(errs, "exec format error") {
		t.Errorf("run -- ./badelf: exit %d %v %q %q", codeOf(err), err, out, errs)
	}
	e.write("bin2/plain", []byte("echo x\n"))
	t.Setenv("PATH", e.path("bin2")+":"+os.Getenv("PATH"))
	if _, errs, err := e.run("run", "--", "plain"); codeOf(err) != 126 || !strings.Contains(explain(err)+errs, "not executable") {
		t.Errorf("run -- plain (not executable, in PATH): exit %d %v %q", codeOf(err), err, errs)
	}
}

// TestRunNothingTrackedSaysWhere: a run that recorded no input and no
// output (the command read a local file) says that only paths under the
// instance's mount are tracked, and where the mount is; with no mount, the
// warning before the run says so, once; one that recorded something does
// not.
func TestRunNothingTrackedSaysWhere(t *testing.T) {
	e := newMntEnv(t)
	local := e.file("local.txt", []byte("local\n"))
	const note = "lamina: note: only what the command reads or writes under the mount of instance m is tracked"
	if _, errs, code := e.runIn(e.dir, "run", "--", "cat", local); code != 0 || !strings.Contains(errs, "lamina: warning: instance m is not mounted: the run is recorded") || strings.Count(errs, "not mounted") != 1 {
		t.Errorf("a run without a mount: exit %d; want the warning once\n%s", code, errs)
	}
	mnt := filepath.Join(e.dir, "lab")
	e.mount(mnt)
	if _, errs, code := e.runIn(e.dir, "run", "--", "cat", local); code != 0 || !strings.Contains(errs, "0 inputs, 0 outputs") || !strings.Contains(errs, note+": paths under "+mnt+", not elsewhere") {
		t.Errorf("a run of a local path: exit %d\n%s", code, errs)
	}
	if _, errs, code := e.runIn(e.dir, "run", "--", "sh", "-c", "echo x > "+filepath.Join(mnt, "out.txt")); code != 0 || !strings.Contains(errs, "1 output") || strings.Contains(errs, "note:") {
		t.Errorf("a run that wrote into the mount: exit %d\n%s", code, errs)
	}
}
