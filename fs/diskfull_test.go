package fs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/catalog"
	lfs "github.com/lamina-bio/lamina/fs"
	"github.com/lamina-bio/lamina/stage"
)

// A write that fails (here: the staging folder's disk is full) leaves half
// a file; close(2) says so and no version is made of it, whether the key is
// new or had a version, and the space is given back. A truncate that cuts
// the missing bytes off makes the File whole again.
func TestFailedWriteCommitsNothing(t *testing.T) {
	w := newWorld(t)
	small := smallDisk(t, w, "4m")
	staging := filepath.Join(small, "staging")
	st, err := stage.New(w.cat, w.in.Store, stage.Options{Dir: staging, User: "tester", SyncEvery: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	v1 := []byte("version one\n")
	w.save("old.txt", v1)
	w.mount(lfs.MountOptions{Stage: st})

	// RELEASE follows close(2) asynchronously: the staged bytes of a failed
	// file go a little after.
	waitFree := func() {
		t.Helper()
		var used int64
		if waitFor(func() bool {
			var fs syscall.Statfs_t
			syscall.Statfs(small, &fs)
			used = int64(fs.Blocks-fs.Bfree) * fs.Bsize
			return used < 1<<20
		}) {
			return
		}
		t.Fatalf("the failed files' staged bytes still use %d bytes of the staging disk", used)
	}
	big := random(8 << 20)
	writeAll := func(name string, flag int) (werr, cerr error) {
		f, err := os.OpenFile(w.p(name), flag, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		_, werr = f.Write(big)
		return werr, f.Close()
	}
	for _, c := range []struct {
		name string
		flag int
	}{
		{"old.txt", os.O_WRONLY | os.O_TRUNC},              // a key with a version
		{"new.bin", os.O_WRONLY | os.O_CREATE | os.O_EXCL}, // a new key
		{"old.txt", os.O_WRONLY | os.O_APPEND},             // copied on write, then appended to
	} {
		waitFree()
		werr, cerr := writeAll(c.name, c.flag)
		if !errors.Is(werr, syscall.ENOSPC) {
			t.Fatalf("%s: write of 8 MiB on a 4 MiB disk: %v, want ENOSPC", c.name, werr)
		}
		if !errors.Is(cerr, syscall.ENOSPC) {
			t.Fatalf("%s: close after a failed write: %v, want ENOSPC (nothing committed)", c.name, cerr)
		}
	}
	waitFree()
	if vs := w.versions("old.txt"); len(vs) != 1 {
		t.Fatalf("old.txt has %d versions after failed writes, want 1", len(vs))
	}
	if vs := w.versions("new.bin"); len(vs) != 0 {
		t.Fatalf("new.bin has %d versions after a failed write, want none", len(vs))
	}
	if got := w.read("old.txt"); !bytes.Equal(got, v1) {
		t.Fatalf("old.txt reads %d bytes after failed writes, want its version 1 (%d bytes)", len(got), len(v1))
	}
	if _, err := os.Stat(w.p("new.bin")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("new.bin after a failed write: %v, want ENOENT", err)
	}

	// A writer that gets ENOSPC, truncates and writes again what fits is
	// whole again: its close commits.
	f, err := os.OpenFile(w.p("retry.txt"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(big); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("write: %v, want ENOSPC", err)
	}
	if err := f.Truncate(0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("fits\n"), 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close after truncate and rewrite: %v", err)
	}
	if got := w.read("retry.txt"); string(got) != "fits\n" {
		t.Fatalf("retry.txt = %q", got)
	}

	// A restart finds nothing of the failed files to commit.
	w.mnt.Unmount()
	st2, err := stage.New(w.cat, w.in.Store, stage.Options{Dir: staging, User: "tester", SyncEvery: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := st2.Recover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rec {
		t.Errorf("recovered after the failed writes: %+v", r)
	}
	if vs := w.versions("old.txt"); len(vs) != 1 {
		t.Fatalf("old.txt has %d versions after recovery, want 1", len(vs))
	}
	if vs := w.versions("new.bin"); len(vs) != 0 {
		t.Fatalf("new.bin has %d versions after recovery, want none", len(vs))
	}
}

// A full disk under the catalog makes it lose a transaction of lazy saves
// whose close(2) had returned 0. Their bytes were still staged; the Sync
// that learnt of the loss dropped them, and the next one (which no longer
// saw the error) marked them done: the files were gone for good. Every
// close that returned 0 must end up a version, once the disk has room.
func TestCatalogDiskFullKeepsClosedFiles(t *testing.T) {
	w := newWorld(t)
	small := smallDisk(t, w, "2m")
	cat, err := catalog.OpenBolt(filepath.Join(small, "catalog.db"), catalog.BoltOptions{Hold: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	st, err := stage.New(cat, w.in.Store, stage.Options{Dir: filepath.Join(w.tmp, "staging"), User: "tester",
		SyncEvery: 200 * time.Millisecond, RetryFailed: 100 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.StopRetries) // after the unmount, before the catalog closes and the folders go
	w.mountCat = cat
	w.mount(lfs.MountOptions{Stage: st})
	st.OnRetried(w.mnt.Changed) // as the daemon does
	os.Mkdir(w.p("w"), 0o755)
	w.sh("echo first > w/first.txt")

	// Leave the catalog 64 KiB.
	var fs syscall.Statfs_t
	syscall.Statfs(small, &fs)
	filler := filepath.Join(small, "filler")
	if err := os.WriteFile(filler, make([]byte, int64(fs.Bavail)*fs.Bsize-64<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	closed := map[string][]byte{}
	for i := range 120 {
		name := fmt.Sprintf("w/f%03d.bin", i)
		data := bytes.Repeat([]byte{byte(i)}, 2000)
		if err := os.WriteFile(w.p(name), data, 0o644); err == nil {
			closed[name] = data
		}
	}
	time.Sleep(time.Second) // Syncs run against the full disk
	os.Remove(filler)
	w.sh("echo after > w/after.txt")
	ctx := context.Background()
	var missing []string
	// Retries back off from 100 ms, doubling while the disk is full (the
	// longer under load): 30 s covers the next one after the disk has room.
	for range 300 {
		missing = missing[:0]
		for name, data := range closed {
			if _, err := cat.ByKey(ctx, name, 0); err != nil {
				missing = append(missing, name)
			} else if got, err := os.ReadFile(w.p(name)); err != nil || !bytes.Equal(got, data) {
				missing = append(missing, fmt.Sprintf("%s (in the catalog; the mount: %d bytes, %v)", name, len(got), err))
			}
		}
		if len(missing) == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(missing) > 0 {
		t.Fatalf("%d of %d files whose close returned 0 are missing after 30 s: %v", len(missing), len(closed), missing[:min(len(missing), 8)])
	}
	t.Logf("%d of 120 closes returned 0; every one is a version", len(closed))
}

// smallDisk mounts a tmpfs of size under w's folder and returns it.
func smallDisk(t *testing.T, w *world, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("LAMINA_ALLOW_SKIP") == "" {
			t.Fatal("this test mounts a small tmpfs and needs root (set LAMINA_ALLOW_SKIP=1 to skip)")
		}
		t.Skip("needs root to mount a tmpfs")
	}
	small := filepath.Join(w.tmp, "small")
	os.Mkdir(small, 0o755)
	if err := syscall.Mount("tmpfs", small, "tmpfs", 0, "size="+size); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(small, syscall.MNT_DETACH) })
	return small
}

// A truncate at the end of a big file whose lazy copy fails (the staging
// disk full) leaves no hole behind: a header written after at offset 0,
// once there is room, reads back, and the close makes it a version. The
// hole stayed recorded and the header was read from the old version
// (audit c1).
func TestFailedLazyCopyThenWriteBelow(t *testing.T) {
	w := newWorld(t)
	small := smallDisk(t, w, "16m")
	st, err := stage.New(w.cat, w.in.Store, stage.Options{Dir: filepath.Join(small, "staging"), User: "tester", SyncEvery: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	old := random(6 << 20)
	w.save("ft.bin", old)
	w.mount(lfs.MountOptions{Stage: st})

	f, err := os.OpenFile(w.p("ft.bin"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	filler, err := os.Create(filepath.Join(small, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	for {
		if _, err := filler.Write(chunk); err != nil {
			break
		}
	}
	for len(chunk) > 1 { // every block but those a smaller write fits in
		if _, err := filler.Write(chunk); err != nil {
			chunk = chunk[:len(chunk)/2]
		}
	}
	filler.Close()
	if err := f.Truncate(int64(len(old)) + 10); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("ftruncate past the end with the staging disk full: %v, want ENOSPC", err)
	}
	os.Remove(filepath.Join(small, "filler"))
	if _, err := f.WriteAt([]byte("HEADER"), 0); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 6)
	if _, err := f.ReadAt(b, 0); err != nil || string(b) != "HEADER" {
		t.Fatalf("read back after the write at 0: %q, %v; want HEADER", b, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	want := append([]byte("HEADER"), old[6:]...)
	if vs := w.eventually("ft.bin", 2); len(vs) != 2 {
		t.Fatalf("ft.bin has %d versions after the close, want 2", len(vs))
	}
	if got := w.read("ft.bin"); !bytes.Equal(got, want) {
		t.Fatalf("ft.bin reads %d bytes starting %q; want %d starting HEADER", len(got), got[:min(6, len(got))], len(want))
	}
}
