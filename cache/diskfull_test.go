package cache_test

import (
	"bytes"
	"context"
	"os/exec"
	"testing"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/storage"
)

// A cache folder whose disk is full (here: out of inodes, which the free
// space a statfs shows does not foresee) failed every block write with
// ENOSPC, evicted nothing, and so fetched every block again at each read.
// A write that finds the disk full evicts the least recently used blocks
// and is tried once more.
func TestDiskCacheEvictsWhenTheDiskIsFull(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64m,nr_inodes=40", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount a tmpfs: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	local, err := storage.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const bs, blocks = 64 << 10, 100
	data := randomBytes(41, bs*blocks)
	if err := local.Put(ctx, "obj", data); err != nil {
		t.Fatal(err)
	}
	c, err := cache.OpenDiskCache(local, dir, cache.DiskCacheOptions{BlockSize: bs})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for bn := range int64(blocks) {
		got, err := c.GetRange(ctx, "obj", bn*bs, bs)
		if err != nil || !bytes.Equal(got, data[bn*bs:(bn+1)*bs]) {
			t.Fatalf("block %d: %v", bn, err)
		}
	}
	waitStored(t, c)
	// The last blocks' writes are done (under load waitStored's quiet
	// 100 ms could come before the last one: CI failed so once).
	if err := c.Settle(ctx, "obj", (blocks-4)*bs, 4*bs); err != nil {
		t.Fatalf("the last blocks read were not stored: %v", err)
	}
	before := c.Info()
	for bn := int64(blocks - 4); bn < blocks; bn++ {
		if _, err := c.GetRange(ctx, "obj", bn*bs, bs); err != nil {
			t.Fatal(err)
		}
	}
	if after := c.Info(); after.Fetched != before.Fetched {
		t.Errorf("the last 4 blocks read were fetched again (%d bytes): the full disk kept none; %d blocks cached", after.Fetched-before.Fetched, before.Blocks)
	}
}
