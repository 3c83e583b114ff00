package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// stepsPy runs its arguments as steps on one descriptor: append:P, open:P
// (for reading), write:TEXT, close, copy:P (read it all into P), and
// signal:P / wait:P (create P, wait up to 60 s for P) to order two runs.
const stepsPy = `import os, sys, time
fd = None
for op in sys.argv[1:]:
    k, _, a = op.partition(":")
    if k == "append":
        fd = os.open(a, os.O_WRONLY | os.O_APPEND)
    elif k == "open":
        fd = os.open(a, os.O_RDONLY)
    elif k == "write":
        os.write(fd, a.encode() + b"\n")
    elif k == "close":
        os.close(fd)
    elif k == "copy":
        data = os.read(fd, 1 << 20)
        os.close(fd)
        open(a, "wb").write(data)
    elif k == "signal":
        open(a, "w").close()
    elif k == "wait":
        for _ in range(1200):
            if os.path.exists(a):
                break
            time.sleep(0.05)
        else:
            sys.exit("no " + a)
`

// startRun starts `lamina run --transform name -- python3 steps.py steps…`.
func (e *mntEnv) startRun(name string, steps ...string) *exec.Cmd {
	e.t.Helper()
	py := e.file("steps.py", []byte(stepsPy))
	cmd := exec.Command(e.bin, append([]string{"run", "--transform", name, "--", "python3", py}, steps...)...)
	cmd.Env = e.env
	var errb strings.Builder
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

// awaitFile waits (60 s at most) for p to exist.
func awaitFile(t *testing.T, p string) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(p); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never came", p)
		}
	}
}

func waitOK(t *testing.T, cmd *exec.Cmd, name string) {
	t.Helper()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%s: %v\n%s", name, err, cmd.Stderr)
	}
}

// TestLineageReadCreditsVersionRead: a run opens ov/k.txt (v1); before it
// reads, an untracked process writes v2; the run's copy holds v2's bytes,
// and v2 is its input (audit d1: only v1, bound at the open, was). v1
// stays an input: the open bound it.
func TestLineageReadCreditsVersionRead(t *testing.T) {
	e := newMntEnv(t)
	e.ok("save", e.file("k.txt", []byte("OLD\n")), "--key", "ov/k.txt")
	mnt := filepath.Join(e.dir, "lab")
	e.mount(mnt)
	k, opened, goOn := filepath.Join(mnt, "ov/k.txt"), filepath.Join(e.dir, "opened"), filepath.Join(e.dir, "go")
	cmd := e.startRun("reader", "open:"+k, "signal:"+opened, "wait:"+goOn, "copy:"+filepath.Join(mnt, "k_copy.txt"))
	awaitFile(t, opened)
	if err := os.WriteFile(k, []byte("NEW\n"), 0o644); err != nil { // this test is no run's
		t.Fatal(err)
	}
	os.WriteFile(goOn, nil, 0o644)
	waitOK(t, cmd, "reader")
	if got := string(mustRead(t, filepath.Join(mnt, "k_copy.txt"))); got != "NEW\n" {
		t.Fatalf("k_copy.txt: %q", got)
	}
	rec := e.runRecord(e.runsByName()["reader"].UID)
	if got := strings.Join(e.refs(rec.Inputs), " "); got != "ov/k.txt@v1 ov/k.txt@v2" {
		t.Fatalf("inputs %q, want ov/k.txt@v1 ov/k.txt@v2 (its read returned v2's bytes)", got)
	}
	if text := e.ok("lineage", "k_copy.txt", "--up"); !strings.Contains(text, "ov/k.txt@v2") {
		t.Fatalf("lineage of k_copy.txt lacks ov/k.txt@v2:\n%s", text)
	}
}

// TestLineageAppendersCreditWhatTheyHold: run A opens ap/log for append
// and writes, run B opens it for append, A closes (v2), B writes and
// closes (v3, which holds A's line): v2 is an input of B (audit d1: B had
// only v1, the base its open saw).
func TestLineageAppendersCreditWhatTheyHold(t *testing.T) {
	e := newMntEnv(t)
	e.ok("save", e.file("log", []byte("base\n")), "--key", "ap/log")
	mnt := filepath.Join(e.dir, "lab")
	e.mount(mnt)
	log := filepath.Join(mnt, "ap/log")
	flag := func(name string) string { return filepath.Join(e.dir, name) }
	a := e.startRun("A", "append:"+log, "write:A", "signal:"+flag("a-wrote"), "wait:"+flag("a-close"), "close")
	awaitFile(t, flag("a-wrote"))
	b := e.startRun("B", "append:"+log, "signal:"+flag("b-opened"), "wait:"+flag("b-write"), "write:B", "close")
	awaitFile(t, flag("b-opened"))
	os.WriteFile(flag("a-close"), nil, 0o644)
	waitOK(t, a, "A")
	os.WriteFile(flag("b-write"), nil, 0o644)
	waitOK(t, b, "B")
	if got := string(mustRead(t, log)); got != "base\nA\nB\n" {
		t.Fatalf("ap/log: %q", got)
	}
	runs := e.runsByName()
	ra, rb := e.runRecord(runs["A"].UID), e.runRecord(runs["B"].UID)
	if got := strings.Join(e.refs(ra.Outputs), " "); got != "ap/log@v2" {
		t.Fatalf("A's outputs %q, want ap/log@v2", got)
	}
	if got := strings.Join(e.refs(rb.Outputs), " "); got != "ap/log@v3" {
		t.Fatalf("B's outputs %q, want ap/log@v3", got)
	}
	if got := strings.Join(e.refs(ra.Inputs), " "); got != "ap/log@v1" {
		t.Errorf("A's inputs %q, want ap/log@v1", got)
	}
	if got := strings.Join(e.refs(rb.Inputs), " "); got != "ap/log@v1 ap/log@v2" {
		t.Errorf("B's inputs %q, want ap/log@v1 ap/log@v2 (v3 holds A's line)", got)
	}
}
