package main

import (
	"crypto/rand"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDedupAfterIndexLost: with index.db lost (or a workstation new to the
// storage), the next save rebuilds it from the packs' trailers, so saving
// content the storage holds already stores no second copy (audit d5: 3 MB
// saved again under another key wrote 2.9 MiB of new packs).
func TestDedupAfterIndexLost(t *testing.T) {
	e := newEnv(t)
	e.init()
	data := make([]byte, 3<<20)
	rand.Read(data)
	f := e.write("x.bin", data)
	e.ok("save", f, "--key", "a/x.bin")
	packs := func() (n int64) {
		t.Helper()
		err := filepath.WalkDir(e.path("storage/packs"), func(_ string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			info, err := d.Info()
			n += info.Size()
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := packs()
	idx := filepath.Join(e.path("data"), "lamina", "test", "index.db")
	if err := os.Remove(idx); err != nil {
		t.Fatal(err)
	}
	e.ok("save", f, "--key", "b/y.bin")
	if grew := packs() - before; grew > 64<<10 {
		t.Fatalf("the same 3 MiB saved under another key after index.db was lost added %d bytes of packs: stored again", grew)
	}
	if got := e.ok("get", "b/y.bin", "-o", e.path("back.bin")); got != "" {
		t.Logf("get: %s", got)
	}
	if back, err := os.ReadFile(e.path("back.bin")); err != nil || string(back) != string(data) {
		t.Fatalf("read back: %v", err)
	}
}

// TestMountRebuildsLostIndex: a mount daemon that finds index.db made anew
// rebuilds it from the packs in the background, and a close of content the
// storage holds already then stores none of it again.
func TestMountRebuildsLostIndex(t *testing.T) {
	e := newMntEnv(t)
	data := make([]byte, 3<<20)
	rand.Read(data)
	e.ok("save", e.file("x.bin", data), "--key", "a/x.bin")
	packs := func() (n int64) {
		t.Helper()
		filepath.WalkDir(filepath.Join(e.dir, "storage", "packs"), func(_ string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				if info, err := d.Info(); err == nil {
					n += info.Size()
				}
			}
			return nil
		})
		return n
	}
	before := packs()
	if err := os.Remove(filepath.Join(e.dir, "data", "lamina", "m", "index.db")); err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(e.dir, "lab")
	e.mount(mnt)
	logs, _ := filepath.Glob(filepath.Join(e.dir, "run", "lamina", "*", "mount.log"))
	if len(logs) != 1 {
		t.Fatalf("mount logs: %v", logs)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if b, _ := os.ReadFile(logs[0]); strings.Contains(string(b), "dedup index rebuilt") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the daemon did not rebuild the dedup index within 30 s")
		}
	}
	if err := os.WriteFile(filepath.Join(mnt, "b", "y.bin"), data, 0o644); err != nil {
		if err := os.MkdirAll(filepath.Join(mnt, "b"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(mnt, "b", "y.bin"), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	e.ok("umount", mnt)
	if grew := packs() - before; grew > 64<<10 {
		t.Fatalf("the same 3 MiB written through the mount after index.db was lost added %d bytes of packs", grew)
	}
	if got := e.ok("get", "b/y.bin", "-o", "-"); got != string(data) {
		t.Fatalf("b/y.bin: %d bytes, want the 3 MiB written", len(got))
	}
}

// TestDamagedIndexSetAside: a damaged index.db (dd of random bytes over
// its pages but the two meta pages) made every command panic, `lamina get`
// included. It is set
// aside with one warning and made anew; the next save rebuilds it.
func TestDamagedIndexSetAside(t *testing.T) {
	e := newEnv(t)
	e.init()
	data := make([]byte, 1<<20)
	rand.Read(data)
	f := e.write("x.bin", data)
	e.ok("save", f, "--key", "a/x.bin")
	idx := filepath.Join(e.path("data"), "lamina", "test", "index.db")
	st, err := os.Stat(idx)
	if err != nil {
		t.Fatal(err)
	}
	garble := make([]byte, st.Size()-2*4096)
	rand.Read(garble)
	w, err := os.OpenFile(idx, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteAt(garble, 2*4096); err != nil {
		t.Fatal(err)
	}
	w.Close()
	_, stderr, err := e.run("get", "a/x.bin", "-o", e.path("back.bin"))
	if err != nil {
		t.Fatalf("get with a damaged index.db: %v\n%s", err, stderr)
	}
	if back, err := os.ReadFile(e.path("back.bin")); err != nil || string(back) != string(data) {
		t.Fatalf("read back: %v", err)
	}
	if !strings.Contains(stderr, "set aside as index.db.damaged-") {
		t.Fatalf("no warning of the damaged index.db: %q", stderr)
	}
	if aside, _ := filepath.Glob(idx + ".damaged-*"); len(aside) != 1 {
		t.Fatalf("set aside: %v", aside)
	}
	e.ok("save", f, "--key", "b/x.bin")
	_, stderr, _ = e.run("get", "b/x.bin", "-o", e.path("back2.bin"))
	if strings.Contains(stderr, "damaged") {
		t.Fatalf("warned again: %q", stderr)
	}
}
