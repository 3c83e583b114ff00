package cache_test

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/lamina-bio/lamina/cache"
)

// blockFiles returns the block files under dir and their total size.
func blockFiles(t *testing.T, dir string) (n int, size int64) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.Contains(d.Name(), ".size") && !strings.Contains(d.Name(), ".lock") {
			if info, err := d.Info(); err == nil {
				n++
				size += info.Size()
			}
		}
		return nil
	})
	return n, size
}

// deletedOpen counts the files under dir this process holds open that
// are deleted.
func deletedOpen(dir string) int {
	fds, _ := os.ReadDir("/proc/self/fd")
	n := 0
	for _, fd := range fds {
		if l, err := os.Readlink("/proc/self/fd/" + fd.Name()); err == nil && strings.HasPrefix(l, dir) && strings.HasSuffix(l, "(deleted)") {
			n++
		}
	}
	return n
}

// TestRescanDropsBlocksWhoseFilesAreGone: Rescan only added the blocks
// other processes stored; those another process removed stayed counted
// (cache info said 240 MiB, du 45 MiB) and their files stayed open.
func TestRescanDropsBlocksWhoseFilesAreGone(t *testing.T) {
	ctx := context.Background()
	data := randomBytes(3, 64<<10)
	const bs = 4 << 10
	cb, dir := newCounting(t, data), t.TempDir()
	d, err := cache.OpenDiskCache(cb, dir, cache.DiskCacheOptions{BlockSize: bs, ReadAhead: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for range 2 { // the second reads the stored files, which stay open
		if got, err := d.GetRange(ctx, "packs/aa/p", 0, int64(len(data))); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("GetRange: %v", err)
		}
		waitStored(t, d)
	}
	if n := d.Info().Blocks; n != 16 {
		t.Fatalf("%d blocks cached of 16", n)
	}
	// Another process removes half of them.
	removed := 0
	filepath.WalkDir(d.Info().Dir, func(p string, de fs.DirEntry, err error) error {
		if err == nil && !de.IsDir() && !strings.Contains(de.Name(), ".size") && !strings.Contains(de.Name(), ".lock") && removed < 8 {
			os.Remove(p)
			removed++
		}
		return nil
	})
	if err := d.Rescan(); err != nil {
		t.Fatal(err)
	}
	n, size := blockFiles(t, d.Info().Dir)
	if i := d.Info(); i.Blocks != n || i.Used != size {
		t.Errorf("after a rescan: %d blocks, %d bytes counted; the folder holds %d, %d", i.Blocks, i.Used, n, size)
	}
	if k := deletedOpen(d.Info().Dir); k > 0 {
		t.Errorf("%d removed block files still held open after a rescan", k)
	}
	if got, err := d.GetRange(ctx, "packs/aa/p", 0, int64(len(data))); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("GetRange after the rescan: %v", err)
	}
}

// TestOwnedFolderEvictedByItsOwnerOnly: a cache that does not own its
// folder (a CLI command beside a mount daemon) evicted the owner's blocks
// under its own limit; it now leaves them, nudges the owner, and the
// owner evicts under its limit.
func TestOwnedFolderEvictedByItsOwnerOnly(t *testing.T) {
	ctx := context.Background()
	data := randomBytes(4, 128<<10)
	const bs = 4 << 10
	cb, dir := newCounting(t, data), t.TempDir()
	owner, err := cache.OpenDiskCache(cb, dir, cache.DiskCacheOptions{BlockSize: bs, ReadAhead: 1, Limit: 20 * bs, Own: true})
	if err != nil {
		t.Fatal(err)
	}
	defer owner.Close()
	if _, err := owner.GetRange(ctx, "packs/aa/p", 0, 16*bs); err != nil {
		t.Fatal(err)
	}
	waitStored(t, owner)
	held, _ := blockFiles(t, owner.Info().Dir)
	var nudges atomic.Int64
	guest, err := cache.OpenDiskCache(cb, dir, cache.DiskCacheOptions{BlockSize: bs, ReadAhead: 1, Limit: 2 * bs, Nudge: func() { nudges.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := blockFiles(t, owner.Info().Dir); n != held {
		t.Errorf("opening a second cache on the folder left %d of the owner's %d blocks", n, held)
	}
	if got, err := guest.GetRange(ctx, "packs/aa/p", 16*bs, 16*bs); err != nil || !bytes.Equal(got, data[16*bs:32*bs]) {
		t.Fatalf("GetRange: %v", err)
	}
	guest.Close()
	if n, _ := blockFiles(t, owner.Info().Dir); n < held+16 {
		t.Errorf("the second cache evicted under its own limit: %d blocks left of %d", n, held+16)
	}
	if nudges.Load() == 0 {
		t.Error("the owner was not told of the blocks stored")
	}
	// Nudged, the owner counts them and evicts under its limit.
	if err := owner.Rescan(); err != nil {
		t.Fatal(err)
	}
	n, size := blockFiles(t, owner.Info().Dir)
	if i := owner.Info(); i.Used > 20*bs || i.Used != size || i.Blocks != n {
		t.Errorf("the owner after a rescan: %d bytes in %d blocks counted (limit %d); the folder holds %d in %d", i.Used, i.Blocks, 20*bs, size, n)
	}
	// Once the owner is gone, a cache evicts under its own limit.
	owner.Close()
	last, err := cache.OpenDiskCache(cb, dir, cache.DiskCacheOptions{BlockSize: bs, ReadAhead: 1, Limit: 2 * bs})
	if err != nil {
		t.Fatal(err)
	}
	defer last.Close()
	if _, size := blockFiles(t, last.Info().Dir); size > 2*bs {
		t.Errorf("with no owner, a cache of limit %d left %d bytes", 2*bs, size)
	}
}
