package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
