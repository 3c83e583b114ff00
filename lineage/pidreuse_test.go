package lineage_test

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/lineage"
)

// inPidNamespace runs the calling test again in a fresh PID namespace
// with its own /proc (unshare, as root), where nothing else takes
// process numbers and the next one can be chosen (ns_last_pid). It
// reports whether the caller is already there and must go on; outside,
// it waits for the run inside and fails with its output.
func inPidNamespace(t *testing.T) bool {
	t.Helper()
	if os.Getenv("LAMINA_TEST_PIDNS") != "" {
		return true
	}
	if _, err := exec.LookPath("unshare"); err != nil || os.Geteuid() != 0 {
		t.Skip("needs root and unshare for a PID namespace")
	}
	cmd := exec.Command("unshare", "--pid", "--fork", "--mount-proc", os.Args[0], "-test.run", "^"+t.Name()+"$", "-test.count", "1", "-test.v")
	cmd.Env = append(os.Environ(), "LAMINA_TEST_PIDNS=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("in a PID namespace: %v\n%s", err, out)
	}
	return false
}

// nextPid makes pid the number the next process or thread gets, in the
// PID namespace of inPidNamespace.
func nextPid(t *testing.T, pid int) {
	t.Helper()
	if err := os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(pid-1)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// gone waits until process pid no longer exists (reaped), bounded.
func gone(t *testing.T, pid int) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); os.IsNotExist(err) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d still there", pid)
		}
	}
}

// jobShell is a split run's command in the place of Snakemake: it runs
// each line it reads as a background job and prints its pid; "wait PID"
// reaps one.
type jobShell struct {
	t   *testing.T
	in  io.Writer
	out *bufio.Reader
}

func (s jobShell) start(cmd string) int {
	s.t.Helper()
	io.WriteString(s.in, cmd+"\n")
	line, err := s.out.ReadString('\n')
	if err != nil {
		s.t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		s.t.Fatal(err)
	}
	// Known by its command line once it has exec'd (a job is seen at its
	// first open, long after).
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline"); strings.HasPrefix(string(b), strings.ReplaceAll(cmd, " ", "\x00")) {
			break
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("job %d has not exec'd %q in 30 s", pid, cmd)
		}
	}
	return pid
}

// end kills job pid and waits until its number is free.
func (s jobShell) end(pid int) {
	s.t.Helper()
	syscall.Kill(pid, syscall.SIGKILL)
	io.WriteString(s.in, "wait "+strconv.Itoa(pid)+"\n")
	gone(s.t, pid)
}

// TestTrackerJobPidReused: a Snakemake job whose process number another
// job took once it exited keeps its run in the tracker's list, so that the
// run ends with the pipeline's (it stayed running for ever: the jobs were
// kept by pid, and the second job's replaced the first's).
func TestTrackerJobPidReused(t *testing.T) {
	if !inPidNamespace(t) {
		return
	}
	ctx := context.Background()
	c := openBolt(t)
	tr := lineage.NewTracker(c, lineage.TrackerOptions{FlushEvery: time.Hour})
	defer tr.Close()
	tf, _ := c.SaveTransform(ctx, catalog.Transform{Name: "t", Kind: "named"})
	// root → command (the inner sh, Snakemake's place) → jobs.
	root := exec.Command("sh", "-c", `sh -c 'while read c; do case $c in wait*) $c;; *) $c & echo $!;; esac; done'; :`)
	in, _ := root.StdinPipe()
	out, _ := root.StdoutPipe()
	if err := root.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { in.Close(); root.Process.Kill(); root.Wait() }()
	sh := jobShell{t: t, in: in, out: bufio.NewReader(out)}
	start, err := lineage.ProcStart(root.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	r, err := tr.Wrap(c).StartRun(ctx, catalog.Run{Transform: tf.UID, RootPID: root.Process.Pid, RootStart: start, Split: true})
	if err != nil {
		t.Fatal(err)
	}
	first := sh.start("sleep 30")
	a := tr.Caller(uint32(first))
	if a == "" || a == r.UID {
		t.Fatalf("a job: run %q (the pipeline's %s)", a, r.UID)
	}
	sh.end(first)
	// Another job under the first's number: a thread of this process may
	// take the number first, so try a few times.
	var second int
	for range 20 {
		nextPid(t, first)
		if second = sh.start("sleep 31"); second == first {
			break
		}
		sh.end(second)
	}
	if second != first {
		t.Skipf("no job got the number %d again", first)
	}
	b := tr.Caller(uint32(second))
	if b == "" || b == a || b == r.UID {
		t.Fatalf("another job under the first's number: run %q (the first's %s, the pipeline's %s)", b, a, r.UID)
	}
	sh.end(second)
	zero := 0
	if _, err := tr.Wrap(c).FinishRun(ctx, r.UID, catalog.RunEnd{FinishedAt: time.Now(), ExitCode: &zero}); err != nil {
		t.Fatal(err)
	}
	for _, job := range []string{a, b} {
		if rec, _ := c.RunRecord(ctx, job); rec.Run.Status != catalog.RunOK {
			t.Errorf("job run %s after the pipeline ended: %s, want ok", job, rec.Run.Status)
		}
	}
}

// TestTrackerRootPidReused: a run whose root process died (a `lamina run`
// killed with SIGKILL) still becomes abandoned when another run registers
// under its number before the tick noticed: registering the second closed
// the first's pidfd, which then polled as alive for ever.
func TestTrackerRootPidReused(t *testing.T) {
	if !inPidNamespace(t) {
		return
	}
	ctx := context.Background()
	c := openBolt(t)
	// A tick between the first root's death and the second's registration
	// (a few milliseconds) would end the first before; rare at one second.
	tr := lineage.NewTracker(c, lineage.TrackerOptions{FlushEvery: time.Second})
	defer tr.Close()
	cat := tr.Wrap(c)
	tf, _ := c.SaveTransform(ctx, catalog.Transform{Name: "t", Kind: "named"})
	start := func(pid int) *exec.Cmd {
		t.Helper()
		nextPid(t, pid)
		cmd := exec.Command("sleep", "30")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	register := func(cmd *exec.Cmd) catalog.Run {
		t.Helper()
		st, err := lineage.ProcStart(cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		r, err := cat.StartRun(ctx, catalog.Run{Transform: tf.UID, RootPID: cmd.Process.Pid, RootStart: st})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	first := start(5000)
	pid := first.Process.Pid
	a := register(first)
	var b catalog.Run
	for range 20 {
		first.Process.Kill()
		first.Wait()
		if first = start(pid); first.Process.Pid == pid {
			b = register(first)
			break
		}
	}
	if b.UID == "" {
		t.Skipf("no process got the number %d again", pid)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		rec, _ := c.RunRecord(ctx, a.UID)
		if rec.Run.Status == catalog.RunAbandoned {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the first run, whose root is gone: %s, want abandoned", rec.Run.Status)
		}
	}
	if rec, _ := c.RunRecord(ctx, b.UID); rec.Run.Status != catalog.RunRunning {
		t.Fatalf("the second run, whose root runs: %s", rec.Run.Status)
	}
}
