package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestS3HeadFetchesOneBlock: the first bytes of a large version cost the
// cache block that holds them (4 MiB; two when the kernel's first READ of
// 128–256 KiB straddles packs), not a read-ahead of the file; a reader that
// goes on is read ahead of and gets every byte.
func TestS3HeadFetchesOneBlock(t *testing.T) {
	e := newS3Env(t)
	data := randomBytes(t, 40<<20)
	e.ok("save", e.file("big.bin", data), "--key", "scrna/big.bin")
	e.ok("cache", "clear")
	mnt := e.mountS3(filepath.Join(e.dir, "mnt"))
	fetched := func() int64 {
		t.Helper()
		var st []mountStatus
		if err := json.Unmarshal([]byte(e.ok("status", "--format", "json")), &st); err != nil || len(st) != 1 || st[0].DiskCache == nil {
			t.Fatalf("status: %v %+v", err, st)
		}
		return st[0].DiskCache.Fetched
	}
	f, err := os.Open(filepath.Join(mnt, "scrna", "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	opened := fetched() // the open read the manifest: its block is not the READ's
	head := make([]byte, 100)
	if _, err := f.Read(head); err != nil || !bytes.Equal(head, data[:100]) {
		t.Fatalf("head: %v", err)
	}
	time.Sleep(500 * time.Millisecond) // any read-ahead would have started
	if n := fetched() - opened; n == 0 || n > 8<<20 {
		t.Fatalf("head -c 100 fetched %d bytes after the open (%d), want the block or two of the first READ (at most 8 MiB)", n, opened)
	}
	t.Logf("open fetched %d bytes, the first READ %d", opened, fetched()-opened)
	if got := mustRead(t, filepath.Join(mnt, "scrna", "big.bin")); !bytes.Equal(got, data) {
		t.Fatal("a sequential read after the head returned other bytes")
	}
}

// TestS3ForcedUmountSaysWhatStays: umount --force with S3 away does not
// wait for the uploads and says what stays staged.
func TestS3ForcedUmountSaysWhatStays(t *testing.T) {
	e := newS3Env(t)
	mnt := e.mountS3(filepath.Join(e.dir, "mnt"))
	e.proxy.Down()
	defer e.proxy.Up()
	if err := os.WriteFile(filepath.Join(mnt, "w.bin"), randomBytes(t, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	out := e.ok("umount", "--force", mnt)
	if !strings.Contains(out, "unmounted") || !strings.Contains(out, "waiting for upload") {
		t.Fatalf("umount --force with uploads pending said:\n%s", out)
	}
}

// TestS3MountStatfs: df of an S3 mount showed 0 size and 0 free (statfs of
// "s3://…" failed), so tools that check free space saw a full disk. It
// now shows the file system of the cache folder, where writes are staged.
func TestS3MountStatfs(t *testing.T) {
	e := newS3Env(t)
	mnt := e.mountS3(filepath.Join(e.dir, "mnt"))
	var got, want syscall.Statfs_t
	if err := syscall.Statfs(mnt, &got); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Statfs(filepath.Join(e.dir, "data"), &want); err != nil {
		t.Fatal(err)
	}
	if got.Blocks == 0 || got.Bavail == 0 {
		t.Fatalf("statfs of the S3 mount: %d blocks, %d available", got.Blocks, got.Bavail)
	}
	if g, w := uint64(got.Blocks)*uint64(got.Bsize), uint64(want.Blocks)*uint64(want.Bsize); g/4096 != w/4096 {
		t.Fatalf("statfs of the S3 mount: %d bytes in all, want those of the data folder's file system (staged writes, the upload queue), %d", g, w)
	}
}

// TestS3MmapRandomFaultsFetchLittle: random page faults in a memory map of
// a version on S3 fetch about one cache block each, as pread does. Each
// fault reads the mount's readahead window around it, and at 16 MiB (with
// the warming the daemon then did after those READs) eight faults fetched
// the whole 128 MiB version; 100 random reads through numpy.memmap fetched
// 989 MiB of a 1 GiB one.
func TestS3MmapRandomFaultsFetchLittle(t *testing.T) {
	e := newS3Env(t)
	const size = 128 << 20
	data := randomBytes(t, size)
	e.ok("save", e.file("m.bin", data), "--key", "m.bin")
	e.ok("cache", "clear")
	mnt := e.mountS3(filepath.Join(e.dir, "mnt"))
	fetched := func() int64 {
		t.Helper()
		var st []mountStatus
		if err := json.Unmarshal([]byte(e.ok("status", "--format", "json")), &st); err != nil || len(st) != 1 || st[0].DiskCache == nil {
			t.Fatalf("status: %v %+v", err, st)
		}
		return st[0].DiskCache.Fetched
	}
	f, err := os.Open(filepath.Join(mnt, "m.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	opened := fetched()
	m, err := syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(m)
	var faults int64
	for off := 3<<20 + 12345; off < size; off += 16 << 20 {
		if m[off] != data[off] {
			t.Fatalf("byte %d: %d, want %d", off, m[off], data[off])
		}
		faults++
	}
	// The READs around a fault go on after it returns: wait until the
	// count stops moving.
	got := fetched()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		time.Sleep(500 * time.Millisecond)
		n := fetched()
		if n == got {
			break
		}
		got = n
	}
	got -= opened
	t.Logf("%d faults fetched %d MiB", faults, got>>20)
	// One 4 MiB block a fault, two when the 1 MiB around it crosses a
	// block boundary or its chunks lie in two packs.
	if limit := faults * 10 << 20; got > limit {
		t.Fatalf("%d faults fetched %d MiB, want at most %d MiB", faults, got>>20, limit>>20)
	}
}

// TestTeamKilledAppendsOverVersionsGCDeleted: workstation A holds appends
// to big files open (their heads read from the versions they were opened
// on), its daemon is killed and its cache cleared; workstation B purges
// those keys and its gc deletes their packs. The next mount on A read each
// head and waited 30 s for an upload that never comes, per file: with
// three, the mount was not ready within 60 s, every time. gc's marks say
// the packs were deleted: no wait; the appended bytes go to lost+found/.
func TestTeamKilledAppendsOverVersionsGCDeleted(t *testing.T) {
	_, _, _, a, b := team(t)
	mnt := filepath.Join(a.dir, "mnt")
	a.mount(mnt, "--sync-upload")
	keys := []string{"w/a.bin", "w/b.bin", "w/c.bin"}
	wants := map[string][]byte{}
	for _, k := range keys {
		_, wants[k] = appendOpen(t, mnt, k)
	}
	a.killDaemon("lab")
	a.ok("umount", mnt)
	a.ok("cache", "clear")
	for _, k := range keys {
		b.ok("delete", "--permanent", "--yes", k)
	}
	t.Logf("gc: %s", b.ok("gc", "--grace", "0s", "--settle", "1s", "--format", "json"))
	a.ok("mount", mnt)
	var lost []struct{ Key string }
	if out := a.ok("ls", "lost+found/", "--format", "json"); json.Unmarshal([]byte(out), &lost) != nil || len(lost) != len(keys) {
		t.Fatalf("lost+found/ after the mount: %s; want the appends to %v", out, keys)
	}
	for _, l := range lost {
		got := mustRead(t, filepath.Join(mnt, l.Key))
		want := wants[l.Key[strings.Index(l.Key, "/w/")+1:]]
		if bytes.Equal(got, want) {
			// Its staging file held the whole (a File copies whole in
			// some cases, stage/lazycopy.go): nothing was lost.
			t.Logf("%s: staged whole", l.Key)
			continue
		}
		if len(got) == 0 || len(got) >= len(want) || !bytes.HasSuffix(want, got) {
			t.Errorf("%s: %d bytes of %d, want the appended bytes without the head (its head zeros: %v)", l.Key, len(got), len(want), bytes.HasPrefix(got, make([]byte, 64)))
		}
		if show := a.ok("show", l.Key); !strings.Contains(show, "deleted for good") || !strings.Contains(show, "deleted by gc") {
			t.Errorf("lamina show %s does not say its head was deleted by gc:\n%s", l.Key, show)
		}
	}
	if st := a.ok("status"); strings.Contains(st, "next mount commits") {
		t.Errorf("status after the mount still has staged bytes:\n%s", st)
	}
}
