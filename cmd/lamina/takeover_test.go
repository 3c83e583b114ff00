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

// A close that failed because the storage was taken over keeps its bytes
// staged; no mount of the old instance may commit them any more (the
// storage is the new owner's). status, umount and the refused mount said
// "the next mount commits them" and named no file; now they name the key,
// where its bytes are kept and the save into the new owner.
func TestTakeOverFailedCloseNamesStagedBytes(t *testing.T) {
	e := newMntEnv(t)
	e.env = append(e.env, "LAMINA_RETRY_FAILED=1h") // no retry in the test's time
	mnt := filepath.Join(e.dir, "mnt")
	e.mount(mnt)
	export := filepath.Join(e.dir, "m.jsonl")
	e.ok("export-catalog", export)
	if _, errs, err := e.run("init", "--storage", e.dir+"/storage", "--name", "tb", "--take-over"); err != nil {
		t.Fatalf("init --take-over: %v\n%s", err, errs)
	}
	e.ok("--instance", "tb", "import-catalog", export)
	content := []byte("a,b\n1,2\n")
	if err := os.WriteFile(filepath.Join(mnt, "window.csv"), content, 0o644); err == nil {
		t.Fatal("a write through the old mount right after a take-over returned no error")
	}
	staged, _ := filepath.Glob(filepath.Join(e.dir, "data", "lamina", "m", "staging", "[0-9a-f]*"))
	if len(staged) != 1 {
		t.Fatalf("staged files: %v", staged)
	}
	path := staged[0]
	save := "lamina --instance tb save " + path + " --key window.csv"
	const bad = "next mount" // no mount of m may commit them
	// The close(2) failed at its flush; the release that counts the
	// failed close follows it.
	var out string
	for i := 0; i < 100; i++ {
		if out = e.ok("--instance", "m", "status"); strings.Contains(out, "failed closes") {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if strings.Contains(out, bad) || !strings.Contains(out, "window.csv") || !strings.Contains(out, save) {
		t.Errorf("status of a taken-over mount with a failed close:\n%s\nwant no %q, the key, and %q", out, bad, save)
	}
	out, errs, err := e.run("umount", mnt)
	if err != nil {
		t.Fatalf("umount: %v\n%s", err, errs)
	}
	if said := out + errs; strings.Contains(said, bad) || !strings.Contains(said, "window.csv") || !strings.Contains(said, save) {
		t.Errorf("umount of a taken-over mount with a failed close:\n%s\nwant no %q, the key, and %q", said, bad, save)
	}
	out, errs, err = e.run("--instance", "m", "status")
	if said := out + errs; strings.Contains(said, bad) || !strings.Contains(said, "window.csv") || !strings.Contains(said, save) {
		t.Errorf("status of an unmounted taken-over instance with staged bytes (%v):\n%s\nwant no %q, the key, and %q", err, said, bad, save)
	}
	_, errs, err = e.run("--instance", "m", "mount", mnt)
	if err == nil {
		t.Fatal("mount of a taken-over instance succeeded")
	}
	if strings.Contains(errs, bad) || !strings.Contains(errs, "window.csv") || !strings.Contains(errs, save) {
		t.Errorf("refused mount of a taken-over instance with staged bytes:\n%s\nwant the key and %q", errs, save)
	}
	if b := mustRead(t, path); string(b) != string(content) {
		t.Fatalf("staged bytes: %q", b)
	}
	if b := mustRead(t, filepath.Join(e.dir, "run", "lamina", "m", "mount.log")); strings.Contains(string(b), bad) || !strings.Contains(string(b), save) {
		t.Errorf("mount.log of a taken-over mount with a failed close:\n%s\nwant no %q, and %q", b, bad, save)
	}
	out, errs, err = e.run("--instance", "tb", "save", path, "--key", "window.csv")
	if err != nil {
		t.Fatalf("the way out: %v\n%s%s", err, out, errs)
	}
	if got := e.ok("--instance", "tb", "get", "window.csv", "-o", "-"); got != string(content) {
		t.Errorf("window.csv in tb: %q", got)
	}
	if b := mustRead(t, path); string(b) != string(content) {
		t.Errorf("staged bytes after the save: %q", b)
	}
}
