package fs_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/lamina-bio/lamina/catalog"
	lfs "github.com/lamina-bio/lamina/fs"
	"github.com/lamina-bio/lamina/stage"
	"path/filepath"
	"time"
)

// commTracker is a Tracker that puts every process whose command name is
// one of comm (space-separated) in run "r", and keeps what Used was told.
type commTracker struct {
	comm string

	mu   sync.Mutex
	used []catalog.Version
}

func (c *commTracker) Caller(tid uint32) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", tid))
	if err != nil || !slices.Contains(strings.Fields(c.comm), strings.TrimSpace(string(b))) {
		return ""
	}
	return "r"
}

func (c *commTracker) Used(run string, v catalog.Version) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.used = append(c.used, v)
}

func (c *commTracker) Sidecar(context.Context, catalog.Version) any { return nil }

func (c *commTracker) Wrote(string, string) {}

func (c *commTracker) ScratchRenamed(string) {}

func (c *commTracker) usedKeys() map[string]catalog.Version {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := map[string]catalog.Version{}
	for _, v := range c.used {
		m[v.Key] = v
	}
	return m
}

// mountTracked mounts w with the write side on and tr as its tracker.
func (w *world) mountTracked(tr lfs.Tracker) {
	w.t.Helper()
	st, err := stage.New(w.cat, w.in.Store, stage.Options{Dir: filepath.Join(w.tmp, "cache", "staging"), User: "tester",
		SyncEvery: 2 * time.Second})
	if err != nil {
		w.t.Fatal(err)
	}
	w.mount(lfs.MountOptions{Stage: st, Tracker: tr})
}

// TestTrackedReadAfterTouch: a tracked read of a file whose times another
// process set just after writing it (Snakemake's shutil.move of a shadow
// output: copy, close, utime) records the version it reads. The lookup
// of the key right after the setattr used to find no committed version
// now and then, and the read went unrecorded.
func TestTrackedReadAfterTouch(t *testing.T) {
	w := newWorld(t)
	tr := &commTracker{comm: "cat"}
	w.mountTracked(tr)
	const n = 40
	w.sh(fmt.Sprintf(`mkdir d; i=0; while [ $i -lt %d ]; do echo $i > d/g$i.txt; touch -d 2020-01-01 d/g$i.txt; cat d/g$i.txt >/dev/null; i=$((i+1)); done`, n))
	used := tr.usedKeys()
	var missing []string
	for i := 0; i < n; i++ {
		k := fmt.Sprintf("d/g%d.txt", i)
		vs := w.versions(k)
		if len(vs) != 1 {
			t.Fatalf("%s: %d versions", k, len(vs))
		}
		if v, ok := used[k]; !ok {
			missing = append(missing, k)
		} else if v.UID != vs[0].UID {
			t.Errorf("%s: read recorded %s, want %s", k, v.UID, vs[0].UID)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("%d of %d tracked reads recorded no input: %v", len(missing), n, missing)
	}
}

// TestTrackedAppendUsesPrevious: a tracked write open without O_TRUNC
// (>>, tee -a, dd conv=notrunc) copies the previous version on write: that
// version is an input of the run, as its bytes are in the new one.
func TestTrackedAppendUsesPrevious(t *testing.T) {
	w := newWorld(t)
	ap := w.save("d/ap.txt", []byte("base\n"))
	rw := w.save("d/rw.txt", []byte("base\n"))
	w.save("d/tr.txt", []byte("base\n"))
	tr := &commTracker{comm: "tee dd"}
	w.mountTracked(tr)
	w.sh(`echo more | tee -a d/ap.txt >/dev/null; printf B | dd of=d/rw.txt conv=notrunc 2>/dev/null; echo new | tee d/tr.txt >/dev/null`)
	if got := string(w.read("d/ap.txt")); got != "base\nmore\n" {
		t.Fatalf("d/ap.txt: %q", got)
	}
	used := tr.usedKeys()
	for _, want := range []catalog.Version{ap, rw} {
		if v, ok := used[want.Key]; !ok || v.UID != want.UID {
			t.Errorf("%s: input %q, want %s", want.Key, v.UID, want.UID)
		}
	}
	if v, ok := used["d/tr.txt"]; ok {
		t.Errorf("d/tr.txt written with O_TRUNC: input %s recorded", v.UID)
	}
}

// threadTracker puts a thread in the run its name (/proc/TID/comm) maps to.
type threadTracker struct{ runs map[string]string }

func (c threadTracker) Caller(tid uint32) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", tid))
	return c.runs[strings.TrimSpace(string(b))]
}
func (threadTracker) Used(string, catalog.Version)                 {}
func (threadTracker) Sidecar(context.Context, catalog.Version) any { return nil }
func (threadTracker) Wrote(string, string)                         {}
func (threadTracker) ScratchRenamed(string)                        {}

// TestSharedAppendCreditsTheCloser: two tracked writers append to one file
// (their opens share one staged File) and an untracked one too; each close's
// version is credited to the run of the writer that closed, not to
// whichever tracked writer opened last.
func TestSharedAppendCreditsTheCloser(t *testing.T) {
	w := newWorld(t)
	w.save("d/log.txt", []byte("base\n"))
	w.mountTracked(threadTracker{runs: map[string]string{"writerA": "A", "writerB": "B"}})
	script := filepath.Join(w.tmp, "appenders.py")
	os.WriteFile(script, []byte(`
import ctypes, os, sys, threading
libc = ctypes.CDLL(None)
path = sys.argv[1]
def opener(name, fds, i):
    libc.prctl(15, name.encode(), 0, 0, 0)  # PR_SET_NAME: this thread's comm
    fds[i] = os.open(path, os.O_WRONLY | os.O_APPEND)
def closer(name, fds, i, line):
    libc.prctl(15, name.encode(), 0, 0, 0)
    os.write(fds[i], line)
    os.close(fds[i])
fds = [None] * 3
for i, name in enumerate(["writerA", "writerB", "untracked"]):  # A opens first, B last
    t = threading.Thread(target=opener, args=(name, fds, i)); t.start(); t.join()
for i, (name, line) in enumerate([("writerA", b"A\n"), ("untracked", b"U\n"), ("writerB", b"B\n")]):
    j = ["writerA", "writerB", "untracked"].index(name)
    t = threading.Thread(target=closer, args=(name, fds, j, line)); t.start(); t.join()
`), 0o644)
	w.sh("python3 " + script + " d/log.txt")
	vs := w.versions("d/log.txt")
	if len(vs) != 4 {
		t.Fatalf("%d versions, want 4 (base and one per close)", len(vs))
	}
	for i, want := range []string{"A", "", "B"} {
		if got := vs[i+1].Run; got != want {
			t.Errorf("v%d, closed by %q's writer: credited to run %q", i+2, want, got)
		}
	}
}

// usedTracker puts a thread in the run its name (/proc/TID/comm) maps to
// and keeps what Used was told, by run.
type usedTracker struct {
	threadTracker

	mu   sync.Mutex
	used map[string][]catalog.Version
}

func (u *usedTracker) Used(run string, v catalog.Version) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.used == nil {
		u.used = map[string][]catalog.Version{}
	}
	u.used[run] = append(u.used[run], v)
}

// usedBy reports whether run was told it used v.
func (u *usedTracker) usedBy(run string, v catalog.Version) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.ContainsFunc(u.used[run], func(x catalog.Version) bool { return x.UID == v.UID })
}

// usedUIDs lists the uids of the versions run was told it used.
func (u *usedTracker) usedUIDs(run string) []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []string
	for _, v := range u.used[run] {
		out = append(out, v.UID)
	}
	return out
}

// threadScript writes a Python script whose helper run(name, fn) calls fn
// in a thread named name (the thread's comm, which the tracker reads).
func (w *world) threadScript(body string) string {
	p := filepath.Join(w.tmp, "threads.py")
	err := os.WriteFile(p, []byte(`
import ctypes, os, sys, threading
libc = ctypes.CDLL(None)
path = sys.argv[1]
def run(name, fn):
    out = []
    def f():
        libc.prctl(15, name.encode(), 0, 0, 0)  # PR_SET_NAME: this thread's comm
        out.append(fn())
    t = threading.Thread(target=f); t.start(); t.join()
    return out[0]
`+body), 0o644)
	if err != nil {
		w.t.Fatal(err)
	}
	return p
}

// TestTrackedReadCreditsVersionRead: a tracked reader opens v1, an
// untracked writer then commits v2, and the reader's read returns v2's
// bytes: v2 is an input of the run (only v1, bound at the open, was).
func TestTrackedReadCreditsVersionRead(t *testing.T) {
	w := newWorld(t)
	v1 := w.save("ov/k.txt", []byte("old\n"))
	tr := &usedTracker{threadTracker: threadTracker{runs: map[string]string{"reader": "R"}}}
	w.mountTracked(tr)
	script := w.threadScript(`
fd = run("reader", lambda: os.open(path, os.O_RDONLY))
with open(path, "w") as f:  # untracked: the main thread
    f.write("NEW\n")
got = run("reader", lambda: os.read(fd, 100))
os.close(fd)
if got != b"NEW\n":
    sys.exit("read %r" % got)
`)
	w.sh("python3 " + script + " ov/k.txt")
	vs := w.versions("ov/k.txt")
	if len(vs) != 2 {
		t.Fatalf("%d versions, want 2", len(vs))
	}
	if !tr.usedBy("R", vs[1]) {
		t.Errorf("the read returned v2's bytes; inputs of the run: %v, want v2 %s", tr.usedUIDs("R"), vs[1].UID)
	}
	if !tr.usedBy("R", v1) {
		t.Errorf("v1, bound at the open, is no input: %v", tr.usedUIDs("R"))
	}
}

// TestSharedAppendCreditsVersionsWithin: A opens a file for append and
// writes, B opens it for append, A closes (v2), B writes and closes (v3,
// which holds A's bytes): v2 is an input of B's run, beside v1 (B's open
// stored v1 as the base it copies on write, and credited only that).
func TestSharedAppendCreditsVersionsWithin(t *testing.T) {
	w := newWorld(t)
	v1 := w.save("ap/log", []byte("base\n"))
	tr := &usedTracker{threadTracker: threadTracker{runs: map[string]string{"writerA": "A", "writerB": "B"}}}
	w.mountTracked(tr)
	script := w.threadScript(`
a = run("writerA", lambda: os.open(path, os.O_WRONLY | os.O_APPEND))
run("writerA", lambda: os.write(a, b"A\n"))
b = run("writerB", lambda: os.open(path, os.O_WRONLY | os.O_APPEND))
run("writerA", lambda: os.close(a))
run("writerB", lambda: os.write(b, b"B\n"))
run("writerB", lambda: os.close(b))
`)
	w.sh("python3 " + script + " ap/log")
	if got := string(w.read("ap/log")); got != "base\nA\nB\n" {
		t.Fatalf("ap/log: %q", got)
	}
	vs := w.versions("ap/log")
	if len(vs) != 3 {
		t.Fatalf("%d versions, want 3", len(vs))
	}
	if vs[1].Run != "A" || vs[2].Run != "B" {
		t.Fatalf("v2 credited to %q, v3 to %q; want A, B", vs[1].Run, vs[2].Run)
	}
	if !tr.usedBy("B", vs[1]) {
		t.Errorf("v3 holds v2's bytes; inputs of B: %v, want v2 %s", tr.usedUIDs("B"), vs[1].UID)
	}
	if !tr.usedBy("A", v1) || !tr.usedBy("B", v1) {
		t.Errorf("v1 is an input of A %v and of B %v", tr.usedUIDs("A"), tr.usedUIDs("B"))
	}
}

// TestTrackedReadWriteHandleCreditsVersionRead: a tracked reader opens
// O_RDWR (a SQLite connection, python's open(r+)) on v1, an untracked
// writer commits v2, and the reader's read returns v2's bytes (its clean
// File followed): v2 is an input of the run; only v1 was (audit e2).
func TestTrackedReadWriteHandleCreditsVersionRead(t *testing.T) {
	w := newWorld(t)
	v1 := w.save("rw/k.txt", []byte("old\n"))
	tr := &usedTracker{threadTracker: threadTracker{runs: map[string]string{"reader": "R"}}}
	w.mountTracked(tr)
	script := w.threadScript(`
fd = run("reader", lambda: os.open(path, os.O_RDWR))
first = run("reader", lambda: os.pread(fd, 100, 0))
with open(path, "w") as f:  # untracked: the main thread
    f.write("NEW\n")
got = run("reader", lambda: os.pread(fd, 100, 0))
os.close(fd)
if first != b"old\n" or got != b"NEW\n":
    sys.exit("read %r, then %r" % (first, got))
`)
	w.sh("python3 " + script + " rw/k.txt")
	vs := w.versions("rw/k.txt")
	if len(vs) != 2 {
		t.Fatalf("%d versions, want 2", len(vs))
	}
	if !tr.usedBy("R", vs[1]) {
		t.Errorf("the read returned v2's bytes; inputs of the run: %v, want v2 %s", tr.usedUIDs("R"), vs[1].UID)
	}
	if !tr.usedBy("R", v1) {
		t.Errorf("v1, read first, is no input: %v", tr.usedUIDs("R"))
	}
}

// TestAppendAfterFollowDropsOpenBase: a tracked appender opens v1, an
// untracked writer commits v2 before the appender writes, and the
// appender's close commits v3 = v2's bytes and its own: v1, which v3 does
// not hold, is no input of its run; v2 is (audit e2).
func TestAppendAfterFollowDropsOpenBase(t *testing.T) {
	w := newWorld(t)
	v1 := w.save("fo/k.txt", []byte("old\n"))
	tr := &usedTracker{threadTracker: threadTracker{runs: map[string]string{"app": "A"}}}
	w.mountTracked(tr)
	script := w.threadScript(`
fd = run("app", lambda: os.open(path, os.O_WRONLY | os.O_APPEND))
with open(path, "w") as f:  # untracked: the main thread
    f.write("new\n")
run("app", lambda: os.write(fd, b"A\n"))
run("app", lambda: os.close(fd))
`)
	w.sh("python3 " + script + " fo/k.txt")
	if got := string(w.read("fo/k.txt")); got != "new\nA\n" {
		t.Fatalf("fo/k.txt: %q", got)
	}
	vs := w.versions("fo/k.txt")
	if len(vs) != 3 {
		t.Fatalf("%d versions, want 3", len(vs))
	}
	if tr.usedBy("A", v1) {
		t.Errorf("v3 holds none of v1's bytes, yet v1 is an input: %v", tr.usedUIDs("A"))
	}
	if !tr.usedBy("A", vs[1]) {
		t.Errorf("v3 holds v2's bytes; inputs: %v, want v2 %s", tr.usedUIDs("A"), vs[1].UID)
	}
}
