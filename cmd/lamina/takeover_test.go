package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A mount whose storage another instance takes over turns read-only: the
// new owner's gc would delete what it wrote from then on.
func TestTakeOverMakesMountReadOnly(t *testing.T) {
	e := newMntEnv(t)
	e.env = append(e.env, "LAMINA_OWNER_CHECK=200ms")
	mnt := filepath.Join(e.dir, "mnt")
	e.mount(mnt)
	if err := os.WriteFile(filepath.Join(mnt, "before.txt"), []byte("before\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	export := filepath.Join(e.dir, "m.jsonl")
	e.ok("export-catalog", export)
	_, errs, err := e.run("init", "--storage", e.dir+"/storage", "--name", "tb", "--take-over")
	if err != nil {
		t.Fatalf("init --take-over: %v\n%s", err, errs)
	}
	if !strings.Contains(errs, `instance "m", which owned this storage, is mounted at `+mnt) || !strings.Contains(errs, "unmount it") {
		t.Errorf("init --take-over of a mounted instance's storage warned %q", errs)
	}
	e.ok("--instance", "tb", "import-catalog", export)

	deadline := time.Now().Add(10 * time.Second)
	var werr error
	for time.Now().Before(deadline) {
		// A write under way when the mount turns read-only fails at its
		// close (EIO: its commit refused); the next open gets EROFS.
		werr = os.WriteFile(filepath.Join(mnt, "after.txt"), []byte("after\n"), 0o644)
		if errors.Is(werr, syscall.EROFS) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !errors.Is(werr, syscall.EROFS) {
		t.Fatalf("writing to a mount whose storage was taken over: %v; want EROFS", werr)
	}
	for _, op := range []func() error{
		func() error { return os.Remove(filepath.Join(mnt, "before.txt")) },
		func() error { return os.Rename(filepath.Join(mnt, "before.txt"), filepath.Join(mnt, "moved.txt")) },
		func() error { return os.Mkdir(filepath.Join(mnt, "d"), 0o755) },
	} {
		if err := op(); !errors.Is(err, syscall.EROFS) {
			t.Errorf("change in a taken-over mount: %v; want EROFS", err)
		}
	}
	if b := mustRead(t, filepath.Join(mnt, "before.txt")); string(b) != "before\n" {
		t.Errorf("read %q", b)
	}
	if out := e.ok("--instance", "m", "status"); !strings.Contains(out, `storage taken over by instance tb: read-only`) {
		t.Errorf("status of a taken-over mount:\n%s", out)
	}
	if b := mustRead(t, filepath.Join(e.dir, "run", "lamina", "m", "mount.log")); !strings.Contains(string(b), `storage taken over by instance \"tb\"`) {
		t.Errorf("mount.log says nothing of the take-over:\n%s", b)
	}
}

// A mount re-reads the owner every 30 s; a write in that window after a
// take-over returned 0 and became a version of the old catalog only, and
// the new owner's `gc --grace 0s` deleted its packs (a new-user audit).
// Now a write's packs are checked after they land: the close fails.
func TestTakeOverFailsAWriteInTheWindow(t *testing.T) {
	e := newMntEnv(t)
	mnt := filepath.Join(e.dir, "mnt")
	e.mount(mnt) // the owner checked at the start; the next periodic check is 30 s away
	if err := os.WriteFile(filepath.Join(mnt, "before.txt"), []byte("before\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errs, err := e.run("init", "--storage", e.dir+"/storage", "--name", "tb", "--take-over"); err != nil {
		t.Fatalf("init --take-over: %v\n%s", err, errs)
	}
	err := os.WriteFile(filepath.Join(mnt, "window.csv"), []byte("a,b\n1,2\n"), 0o644)
	if err == nil {
		e.ok("--instance", "tb", "gc", "--grace", "0s", "--settle", "0s")
		t.Fatal("a write through the old mount right after a take-over returned no error: the new owner's gc deletes its packs")
	}
	if !errors.Is(err, syscall.EIO) && !errors.Is(err, syscall.EROFS) {
		t.Errorf("write after a take-over: %v; want EIO or EROFS", err)
	}
	if b := mustRead(t, filepath.Join(mnt, "before.txt")); string(b) != "before\n" {
		t.Errorf("read %q", b)
	}
}
