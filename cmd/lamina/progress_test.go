package main

import (
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// The progress bar shows on a terminal for a save that takes more than a
// moment, and never in --format json output. `script` (util-linux, in every
// Debian) gives the child a pseudo-terminal.
func TestProgressOnTerminalOnly(t *testing.T) {
	if _, err := exec.LookPath("script"); err != nil {
		t.Fatal("util-linux `script` is needed to give the save a terminal")
	}
	e := newEnv(t)
	e.init()
	// Three different files, so no save is a no-op; no delay before the bar.
	big := randomFile(t, e, "big.bin", 8<<20)
	big2 := randomFile(t, e, "big2.bin", 8<<20)
	big3 := randomFile(t, e, "big3.bin", 8<<20)
	t.Setenv("LAMINA_PROGRESS_DELAY", "0s")
	e.vars = append(e.vars, "LAMINA_PROGRESS_DELAY=0s")
	onTTY := func(args ...string) string {
		cmd := e.child()
		line := "LAMINA_TEST_AS_CLI=1 " + cmd.Path + " " + strings.Join(args, " ")
		script := exec.Command("script", "-qec", line, "/dev/null")
		script.Env = append(cmd.Env, "LAMINA_PROGRESS_DELAY=0s")
		out, err := script.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", line, err, out)
		}
		return string(out)
	}
	out := onTTY("save", big, "--key", "tty/big.bin")
	if !strings.Contains(out, "saving") || !strings.Contains(out, "%") {
		t.Fatalf("no progress bar on a terminal:\n%q", out)
	}
	if !strings.Contains(out, "MiB") || strings.Contains(out, " MB") { // the units of the summary
		t.Errorf("the bar's units differ from the summary's (8.0 MiB):\n%q", out)
	}
	out = onTTY("save", big2, "--key", "tty/big2.bin", "--format", "json")
	if strings.Contains(out, "saving") || strings.Contains(out, "%|") {
		t.Fatalf("progress bar mixed into --format json:\n%q", out)
	}
	// stderr not a terminal: no bar.
	b, err := e.child("save", big3, "--key", "tty/big3.bin").CombinedOutput()
	if err != nil || strings.Contains(string(b), "saving") {
		t.Fatalf("bar without a terminal: %q, %v", b, err)
	}
}

// An ontology's bytes are read in a moment and its index built after: the
// bar still shows once the work has run for progressDelay, as a spinner
// for what comes after the last byte.
func TestProgressAfterTheLastByte(t *testing.T) {
	var out lockedBuffer
	p := &progress{total: 100, desc: "importing", start: time.Now(), w: &out, stop: make(chan struct{})}
	go p.tick(p.stop)
	p.Add(100) // every byte read before the bar's delay
	time.Sleep(progressDelay)
	// The tick shows it: at most 100 ms later on an idle machine.
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(out.String(), "importing (finishing)") && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	p.Done()
	if got := out.String(); !strings.Contains(got, "importing (finishing)") {
		t.Fatalf("no progress shown for work after the last byte: %q", got)
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// The bar's first rate is over the time the work has run: the bytes done
// before the bar appears are not counted as done in no time (it showed
// 2.6 TiB/s for a save at 1 GiB/s).
func TestProgressFirstRate(t *testing.T) {
	var out lockedBuffer
	p := &progress{total: 1 << 30, desc: "saving", start: time.Now(), w: &out, stop: make(chan struct{})}
	go p.tick(p.stop)
	// Until the bar shows a rate (from progressDelay on: the tick may run
	// late on a loaded machine).
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(out.String(), "/s") && time.Now().Before(deadline); {
		p.Add(1 << 20) // 1 MiB each 10 ms: 100 MiB/s
		time.Sleep(10 * time.Millisecond)
	}
	p.Done()
	got := out.String()
	if !strings.Contains(got, "MiB/s") || strings.Contains(got, "GiB/s") || strings.Contains(got, "TiB/s") {
		t.Fatalf("rates shown: %q", got)
	}
}
