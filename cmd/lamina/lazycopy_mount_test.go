package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestKilledAfterAppendsToBigFile: appends to a big file stage only its
// last chunk (the staging file is sparse, stage/lazycopy.go). A daemon
// killed with one append closed (its version maybe still in the catalog's
// open transaction, its staged bytes waiting for a sync) and another one
// open loses nothing and never commits the staging file's hole as zeros:
// after a new mount the file is the version and the closed append, and
// lost+found/ holds the version, both appends, byte for byte.
func TestKilledAfterAppendsToBigFile(t *testing.T) {
	e := newMntEnv(t)
	mnt := filepath.Join(e.dir, "mnt")
	e.mount(mnt)
	big := filepath.Join(mnt, "big.bin")
	base := make([]byte, 6<<20+999)
	rand.Read(base)
	if err := os.WriteFile(big, base, 0o644); err != nil {
		t.Fatal(err)
	}
	a, err := os.OpenFile(big, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Write([]byte("closed\n")); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil { // v2
		t.Fatal(err)
	}
	b, err := os.OpenFile(big, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Write([]byte("open\n")); err != nil {
		t.Fatal(err)
	}
	e.killDaemon("m")
	b.Close()
	e.ok("umount", mnt)
	e.ok("mount", mnt)
	want := append(append([]byte(nil), base...), "closed\n"...)
	if got := mustRead(t, big); !bytes.Equal(got, want) {
		t.Fatalf("big.bin after kill -9 and a new mount: %d bytes (want %d), its head zeros: %v", len(got), len(want), bytes.HasPrefix(got, make([]byte, 64)))
	}
	if _, err := os.Stat(big + "@v3"); err == nil {
		t.Error("the restart made a version of bytes nobody closed")
	}
	out := e.ok("ls", "lost+found/", "--format", "json")
	var lost []struct {
		Key  string
		Size int64
	}
	if err := json.Unmarshal([]byte(out), &lost); err != nil {
		t.Fatalf("lamina ls lost+found/: %v\n%s", err, out)
	}
	want = append(want, "open\n"...)
	if len(lost) != 1 || !strings.HasSuffix(lost[0].Key, "/big.bin") {
		t.Fatalf("lost+found/ = %+v; want big.bin's bytes after its version 2", lost)
	}
	if got := mustRead(t, filepath.Join(mnt, lost[0].Key)); !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes (want %d), its head zeros: %v", lost[0].Key, len(got), len(want), bytes.HasPrefix(got, make([]byte, 64)))
	}
}

// agePacks sets the mtime of every pack of e's storage to two days ago:
// past gc's grace of 24 h.
func (e *mntEnv) agePacks() {
	e.t.Helper()
	old := time.Now().Add(-48 * time.Hour)
	n := 0
	filepath.WalkDir(filepath.Join(e.dir, "storage", "packs"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if err := os.Chtimes(p, old, old); err != nil {
				e.t.Fatal(err)
			}
			n++
		}
		return nil
	})
	if n == 0 {
		e.t.Fatal("no packs to age")
	}
}

// appendOpen writes a big file through mnt at key, then opens it for
// appending and appends one line (the File copies only its last chunk:
// stage/lazycopy.go); it returns the handle and the bytes it should hold.
func appendOpen(t *testing.T, mnt, key string) (*os.File, []byte) {
	t.Helper()
	p := filepath.Join(mnt, key)
	os.MkdirAll(filepath.Dir(p), 0o755)
	// Over two packs: the daemon keeps the pack of the last chunk open,
	// which it read for the copy; what it reads of the others after their
	// deletion fails.
	want := make([]byte, 40<<20+999)
	rand.Read(want)
	if err := os.WriteFile(p, want, 0o644); err != nil {
		t.Fatal(err)
	}
	a, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	if _, err := a.Write([]byte("APPENDED-1\n")); err != nil {
		t.Fatal(err)
	}
	return a, append(want, "APPENDED-1\n"...)
}

// A file open for appending holds the first bytes of the version it was
// opened on by reference (a lazy copy). With that version deleted for
// good and gc run (its packs past the grace period), the append's close
// failed with EIO ("pack not in storage"), retried for ever, and the
// mount read zeros for all but the file's last chunk: gc now counts what
// the staged files of this machine's mounts read as in use.
func TestGCKeepsWhatAnOpenAppendReads(t *testing.T) {
	e := newMntEnv(t)
	mnt := filepath.Join(e.dir, "mnt")
	e.mount(mnt)
	a, want := appendOpen(t, mnt, "w/A2")
	e.agePacks()
	e.ok("delete", "--permanent", "--yes", "w/A2")
	e.ok("gc", "--settle", "0s")
	if _, err := a.Write([]byte("APPENDED-2\n")); err != nil {
		t.Fatal(err)
	}
	want = append(want, "APPENDED-2\n"...)
	if err := a.Close(); err != nil {
		t.Fatalf("close after a purge and gc: %v", err)
	}
	got := mustRead(t, filepath.Join(mnt, "w/A2"))
	if !bytes.Equal(got, want) {
		t.Fatalf("w/A2: %d bytes (want %d), its head zeros: %v", len(got), len(want), bytes.HasPrefix(got, make([]byte, 64)))
	}
	// Committed, the new version keeps its data: the next gc deletes
	// nothing it reads.
	e.agePacks()
	e.ok("gc", "--settle", "0s")
	if got := mustRead(t, filepath.Join(mnt, "w/A2")); !bytes.Equal(got, want) {
		t.Fatalf("w/A2 after another gc: %d bytes (want %d)", len(got), len(want))
	}
}

// When the data an append's first bytes are read from is gone all the
// same (another workstation's gc), its close fails and stays staged; a
// read of those bytes fails with EIO, never returning the staging file's
// zeros as the file's.
func TestFailedAppendReadsNoZeros(t *testing.T) {
	e := newMntEnv(t)
	mnt := filepath.Join(e.dir, "mnt")
	e.mount(mnt)
	a, _ := appendOpen(t, mnt, "w/A2")
	e.ok("delete", "--permanent", "--yes", "w/A2")
	filepath.WalkDir(filepath.Join(e.dir, "storage", "packs"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			os.Remove(p)
		}
		return nil
	})
	if err := a.Close(); err == nil {
		t.Fatal("close committed though the data of its first bytes is gone")
	}
	p := filepath.Join(mnt, "w/A2")
	var fi os.FileInfo
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var err error
		if fi, err = os.Stat(p); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the failed close is not shown at its key: %v", err)
		}
	}
	f, err := os.Open(p)
	if err == nil {
		defer f.Close()
		buf := make([]byte, 64<<10)
		var n int
		n, err = f.Read(buf)
		if err == nil && bytes.Equal(buf[:n], make([]byte, n)) {
			t.Fatalf("read %d zeros of %d bytes staged; want EIO", n, fi.Size())
		}
	}
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("read of the failed close's first bytes: %v; want EIO", err)
	}
}

// A file held open for appending reads its head from the version it was
// opened on (a lazy copy). With its daemon killed, and that version purged
// and its packs deleted by a gc elsewhere (which cannot see this machine's
// staged files), the next mount read each such head, waited for an upload
// that never comes (30 s each on S3: the mount was not ready within 60 s)
// and kept the staged bytes staged for ever ("the next mount commits
// them"). Now gc's mark says the pack was deleted: the mount gets ready and
// keeps the bytes the writer wrote, without the head, under lost+found/,
// saying which bytes were deleted for good; nothing with zeros.
func TestKilledAppendOverVersionGCDeletedElsewhere(t *testing.T) {
	e := newMntEnv(t)
	mnt := filepath.Join(e.dir, "mnt")
	e.mount(mnt)
	a, want := appendOpen(t, mnt, "w/A2")
	e.killDaemon("m")
	a.Close()
	e.ok("umount", mnt)
	e.ok("delete", "--permanent", "--yes", "w/A2")
	// What gc on another workstation does: delete the packs, and mark
	// them deleted (cache.MarkNote).
	packs := filepath.Join(e.dir, "storage", "packs")
	marks := filepath.Join(e.dir, "storage", "gc", "condemned")
	os.MkdirAll(marks, 0o755)
	n := 0
	filepath.WalkDir(packs, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		note := "deleted by lamina gc on elsewhere (someone) at " + time.Now().UTC().Format(time.RFC3339Nano) + " (0123456789abcdef)\n"
		if err := os.WriteFile(filepath.Join(marks, d.Name()), []byte(note), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
		n++
		return nil
	})
	if n == 0 {
		t.Fatal("no packs to delete")
	}
	e.ok("mount", mnt)
	out := e.ok("ls", "lost+found/", "--format", "json")
	var lost []struct {
		Key  string
		Size int64
	}
	if err := json.Unmarshal([]byte(out), &lost); err != nil {
		t.Fatalf("lamina ls lost+found/: %v\n%s", err, out)
	}
	if len(lost) != 1 || !strings.HasSuffix(lost[0].Key, "/w/A2") {
		t.Fatalf("lost+found/ = %+v; want the bytes appended to w/A2", lost)
	}
	got := mustRead(t, filepath.Join(mnt, lost[0].Key))
	if len(got) == 0 || len(got) >= len(want) || !bytes.HasSuffix(want, got) {
		t.Fatalf("%s: %d bytes (want the last %s of the %d bytes written, without the head), its head zeros: %v", lost[0].Key, len(got), "bytes", len(want), bytes.HasPrefix(got, make([]byte, 64)))
	}
	show := e.ok("show", lost[0].Key)
	from := len(want) - len(got)
	if !strings.Contains(show, "deleted for good") || !strings.Contains(show, fmt.Sprintf("first %d bytes", from)) || !strings.Contains(show, "deleted by gc") {
		t.Errorf("lamina show %s says not that its first %d bytes were deleted by gc:\n%s", lost[0].Key, from, show)
	}
	if st := e.ok("status"); strings.Contains(st, "next mount commits") {
		t.Errorf("status after the mount still has staged bytes:\n%s", st)
	}
}
