package fs_test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/catalog"
)

// settled polls key's versions until ok says they are what the test waits
// for, for 20 s at most, and returns the last it read.
func (w *world) settled(key string, ok func([]catalog.Version) bool) []catalog.Version {
	w.t.Helper()
	var vs []catalog.Version
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if vs = w.versions(key); ok(vs) {
			break
		}
	}
	return vs
}

func sizes(vs []catalog.Version) []int64 {
	var s []int64
	for _, v := range vs {
		s = append(s, v.Size)
	}
	return s
}

// A shell's redirect opens the file, dup2s it to 1 and closes the original:
// that close's FLUSH is not the handle's last, and the command writes
// through the copy after it. touch of the file meanwhile made a version of
// each part written so far (200000, 300000, … bytes of 800000): the handle
// was taken for closed at its first FLUSH, so touch's close was the File's
// last.
func TestRedirectedWriterStaysOpenAfterFirstFlush(t *testing.T) {
	w := newWorld(t)
	w.mountRW()
	w.sh(`echo old > sr`)
	w.sh(`(for i in 1 2 3 4 5 6 7 8; do head -c 100000 /dev/urandom; sleep 0.1; done) > sr &
sleep 0.15; for i in 1 2 3 4 5; do touch sr; sleep 0.1; done; wait`)
	vs := w.settled("sr", func(vs []catalog.Version) bool { return len(vs) >= 2 && vs[len(vs)-1].Size == 800000 })
	if len(vs) != 2 || vs[1].Size != 800000 {
		t.Fatalf("sr: versions of %v bytes, want [4 800000]: a touch committed part of the redirect's output", sizes(vs))
	}
}

// A redirect whose command has not written yet is not committed empty by
// another process's `: >> f`: the redirect's copy of the descriptor is
// still open (the idle close looks for it), so `: >> f` is not the last.
func TestRedirectNotCommittedBeforeItsCommandWrites(t *testing.T) {
	w := newWorld(t)
	w.mountRW()
	w.sh(`echo old > late`)
	w.sh(`(sleep 1; echo data) > late & sleep 0.3; : >> late; wait`)
	vs := w.settled("late", func(vs []catalog.Version) bool { return len(vs) >= 2 && vs[len(vs)-1].Size == 5 })
	if len(vs) != 2 || vs[1].Size != 5 {
		t.Fatalf("late: versions of %v bytes, want [4 5]: `: >> late` committed the redirect's file before its command wrote", sizes(vs))
	}
	if got := string(w.read("late")); got != "data\n" {
		t.Fatalf("late = %q, want %q", got, "data\n")
	}
}

// A process that writes through a shared mapping and closes its descriptor
// commits what it wrote, though another process has the file open and
// mapped: the kernel writes dirty pages back through whichever writable
// handle it picks (FUSE_WRITE_CACHE), here maybe the other's, so the
// writer's handle had written nothing and its close committed nothing; a
// new reader saw the old bytes, and a tracked run around the writer
// recorded no output.
func TestMappedWriteCommittedWhileOtherMaps(t *testing.T) {
	needTool(t, "python3")
	w := newWorld(t)
	w.mountTracked(threadTracker{runs: map[string]string{"p1map": "P1"}})
	old := bytes.Repeat([]byte("o"), 8192)
	if err := os.WriteFile(w.p("m.bin"), old, 0o644); err != nil {
		t.Fatal(err)
	}
	// P1 maps the file, then P2 opens and maps it (the kernel's first
	// writable handle of the inode now) and waits; P1 writes through its
	// mapping, closes, unmaps: no msync. Then P2 waits for stdin to close.
	p := exec.Command("sh", "-c", `cd "$1" && exec python3 -c '
import ctypes, mmap, os, subprocess, sys
ctypes.CDLL(None).prctl(15, b"p1map", 0, 0, 0)  # PR_SET_NAME: run P1 for the tracker
p2src = """
import mmap, os, sys
fd = os.open("m.bin", os.O_RDWR)
m = mmap.mmap(fd, 8192, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
print("ready", flush=True)
sys.stdin.read()
m.close()
os.close(fd)
"""
fd = os.open("m.bin", os.O_RDWR)
m = mmap.mmap(fd, 8192, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
p2 = subprocess.Popen([sys.executable, "-c", p2src], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
if p2.stdout.readline() != b"ready\n":
    raise SystemExit("P2 did not map the file")
m[0:6] = b"mapped"
m[5000:5004] = b"P1P1"
os.close(fd)
m.close()
print("written", flush=True)
sys.stdin.read()
p2.stdin.close()
raise SystemExit(p2.wait())
'`, "sh", w.dir)
	in, err := p.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.Stderr = os.Stderr
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	defer p.Wait()
	defer in.Close()
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "written\n" {
		t.Fatalf("P1: %q, %v", line, err)
	}
	want := append([]byte(nil), old...)
	copy(want, "mapped")
	copy(want[5000:], "P1P1")
	vs := w.settled("m.bin", func(vs []catalog.Version) bool { return len(vs) >= 2 })
	if len(vs) != 2 {
		t.Fatalf("m.bin has %d versions while P2 maps it, want 2: P1's close committed nothing", len(vs))
	}
	if vs[1].Run != "P1" {
		t.Errorf("m.bin v2 credited to run %q, want P1 (the mapping's writer)", vs[1].Run)
	}
	got, err := os.ReadFile(w.p("m.bin@v2"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("m.bin@v2 starts %q, want P1's bytes", got[:8])
	}
	if got := w.read("m.bin"); !bytes.Equal(got, want) {
		t.Fatalf("m.bin starts %q for a new reader, want P1's bytes", got[:8])
	}
	in.Close()
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	if vs := w.versions("m.bin"); len(vs) != 2 {
		t.Fatalf("m.bin has %d versions after P2's close, want 2 (P2 wrote nothing)", len(vs))
	}
}

// An appender idle since its own commit (its fsync) does not commit, at its
// close, what another appender of the File has written since: half a
// record. Its "wrote" lasted the File's life, so its close made a version
// ending in the other's half record.
func TestCloseAfterOwnFsyncLeavesOthersHalfRecord(t *testing.T) {
	w := newWorld(t)
	w.mountRW()
	if err := os.WriteFile(w.p("f"), []byte("header\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	a := openFile(t, w.p("f"), os.O_WRONLY|os.O_APPEND)
	b := openFile(t, w.p("f"), os.O_WRONLY|os.O_APPEND)
	if _, err := a.Write([]byte("a-rec\n")); err != nil {
		t.Fatal(err)
	}
	if err := a.Sync(); err != nil {
		t.Fatal(err)
	}
	if vs := w.versions("f"); len(vs) != 2 {
		t.Fatalf("f has %d versions after A's fsync, want 2", len(vs))
	}
	if _, err := b.Write([]byte("b-rec-half")); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if vs := w.versions("f"); len(vs) != 2 {
		t.Fatalf("A's close after its fsync made a version of %d bytes, B's half record in it", vs[len(vs)-1].Size)
	}
	if _, err := b.Write([]byte("-rest\n")); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	want := "header\na-rec\nb-rec-half-rest\n"
	vs := w.settled("f", func(vs []catalog.Version) bool { return len(vs) >= 3 })
	if len(vs) != 3 {
		t.Fatalf("f has %d versions after B's close, want 3", len(vs))
	}
	if got := string(w.read("f")); got != want {
		t.Fatalf("f = %q, want %q", got, want)
	}
}

// A page of a shared mapping written back after another process's O_TRUNC
// open holds that writer's bytes (the kernel's one page cache per inode,
// emptied by the O_TRUNC and filled by its writes), whichever handle the
// kernel sends it through. It went into the mapper's older File: P1's msync
// committed page 0 of B's with P1's bytes and page 1 of the old A's (a file
// that never existed), and P2's close all B's, P1's write lost. A plain
// folder ends with B's and P1's bytes, here in the O_TRUNC writer's version.
func TestMappedWriteAfterTruncatingOpenGoesToNewestFile(t *testing.T) {
	needTool(t, "python3")
	w := newWorld(t)
	w.mountRW()
	if err := os.WriteFile(w.p("t.bin"), bytes.Repeat([]byte("A"), 8192), 0o644); err != nil {
		t.Fatal(err)
	}
	p := exec.Command("sh", "-c", `cd "$1" && exec python3 -c '
import mmap, os, subprocess, sys
p2src = """
import os, sys
fd = os.open("t.bin", os.O_WRONLY | os.O_TRUNC)
os.write(fd, b"B" * 8192)
print("ready", flush=True)
sys.stdin.read()
os.close(fd)
"""
fd = os.open("t.bin", os.O_RDWR)
m = mmap.mmap(fd, 8192, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
p2 = subprocess.Popen([sys.executable, "-c", p2src], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
if p2.stdout.readline() != b"ready\n":
    raise SystemExit("P2 did not write")
m[100:110] = b"P1P1P1P1P1"
m.flush()
m.close()
os.close(fd)
print("written", flush=True)
sys.stdin.read()
p2.stdin.close()
raise SystemExit(p2.wait())
'`, "sh", w.dir)
	in, err := p.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.Stderr = os.Stderr
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	defer p.Wait()
	defer in.Close()
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "written\n" {
		t.Fatalf("P1: %q, %v", line, err)
	}
	want := bytes.Repeat([]byte("B"), 8192)
	copy(want[100:], "P1P1P1P1P1")
	// P1's msync and close commit nothing of P2's File, which P2's close
	// commits (its own version, issue 4); P1's File holds no change.
	if vs := w.versions("t.bin"); len(vs) != 1 {
		t.Errorf("t.bin has %d versions before P2's close, want 1 (sizes %v)", len(vs), sizes(vs))
	}
	in.Close()
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	vs := w.settled("t.bin", func(vs []catalog.Version) bool { return len(vs) >= 2 })
	if len(vs) != 2 {
		t.Fatalf("t.bin has %d versions after P2's close, want 2", len(vs))
	}
	got, err := os.ReadFile(w.p("t.bin@v2"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("t.bin@v2 = %q…%q (%d bytes), want B's with P1's bytes at 100", got[90:120], got[4090:4100], len(got))
	}
	if got := w.read("t.bin"); !bytes.Equal(got, want) {
		t.Fatalf("t.bin reads %q… for a new reader, want B's with P1's bytes", got[90:120])
	}
}

// The close of a copy of a descriptor (dup; bash's `echo >&3`, which dup2s
// 3 to 1 and restores 1) while the process still holds the original is not
// the writer's close: each made a version of the half-written file (200
// versions of a 200-line log, one per echo). The last close commits once.
func TestCloseOfDescriptorCopyMakesNoVersion(t *testing.T) {
	needTool(t, "bash")
	needTool(t, "python3")
	w := newWorld(t)
	w.mountRW()
	w.sh(`bash -c 'exec 3>log; for i in $(seq 200); do echo "line $i" >&3; done; exec 3>&-'`)
	var want strings.Builder
	for i := 1; i <= 200; i++ {
		fmt.Fprintf(&want, "line %d\n", i)
	}
	vs := w.settled("log", func(vs []catalog.Version) bool { return len(vs) >= 1 && vs[len(vs)-1].Size == int64(want.Len()) })
	if len(vs) != 1 {
		t.Errorf("log: %d versions (sizes %v…), want 1: each echo's restore of fd 1 committed", len(vs), sizes(vs)[:min(len(vs), 5)])
	}
	if got := string(w.read("log")); got != want.String() {
		t.Errorf("log has %d bytes, want %d", len(got), want.Len())
	}
	w.sh(`python3 -c '
import os
fd = os.open("dup", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
d = os.dup(fd)
os.write(fd, b"one ")
os.close(d)
os.write(fd, b"two")
os.close(fd)
'`)
	vs = w.settled("dup", func(vs []catalog.Version) bool { return len(vs) >= 1 && vs[len(vs)-1].Size == 7 })
	if len(vs) != 1 || vs[0].Size != 7 {
		t.Errorf("dup: versions of %v bytes, want [7]: the close of the dup committed %q", sizes(vs), "one ")
	}
	if got := string(w.read("dup")); got != "one two" {
		t.Errorf("dup = %q, want %q", got, "one two")
	}
}
