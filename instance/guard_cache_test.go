package instance_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/instance"
	"github.com/lamina-bio/lamina/storage"
)

// damageOnce damages the bytes of the first ranged read that reaches the
// backend once armed (a GET body damaged on the way), and counts reads.
type damageOnce struct {
	storage.Backend
	armed, damaged atomic.Bool
	gets           atomic.Int64
}

func (d *damageOnce) GetRange(ctx context.Context, name string, off, n int64) ([]byte, error) {
	d.gets.Add(1)
	b, err := d.Backend.GetRange(ctx, name, off, n)
	if err == nil && d.armed.Load() && d.damaged.CompareAndSwap(false, true) {
		b = bytes.Clone(b)
		for i := range b {
			b[i] ^= 0xff
		}
	}
	return b, err
}

// The daemon's stack: the owner guard over the disk cache over the upload
// queue. The guard hid the disk cache's Invalidate (and ReadRange, Warm):
// one damaged GET body stayed in the cache and the file read EIO for good,
// with no request to the storage, until `lamina cache clear`. Now the
// damaged bytes are dropped and fetched again.
func TestGuardPassesCacheMethodsThrough(t *testing.T) {
	ctx := context.Background()
	tmp := t.TempDir()
	root := filepath.Join(tmp, "storage")
	local, err := storage.CreateLocal(root)
	if err != nil {
		t.Fatal(err)
	}
	raw := &damageOnce{Backend: local}
	up, err := cache.OpenUploads(raw, filepath.Join(tmp, "uploads"), cache.UploadOptions{SyncUpload: true})
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	disk, err := cache.OpenDiskCache(up, filepath.Join(tmp, "cache"), cache.DiskCacheOptions{ReadAhead: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer disk.Close()
	in := instance.New(instance.Settings{Name: "a", ID: "a-id", Storage: root}, nil, local, nil)
	g := in.WatchOwner(local, time.Hour, nil).Guard(disk)
	s, err := cache.NewStore(g, filepath.Join(tmp, "index.db"), cache.DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(i*31 + i>>11)
	}
	w := s.NewWriter()
	f, _, err := w.PutFile(ctx, bytes.NewReader(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := up.WaitIdle(ctx, nil); err != nil {
		t.Fatal(err)
	}
	raw.armed.Store(true)
	var off int64
	for i, c := range f.Chunks {
		dst := make([]byte, c.Size)
		if err := s.ReadChunkInto(ctx, c, dst); err != nil {
			before := raw.gets.Load()
			t.Logf("chunk %d: %v (read again)", i, err)
			if err := s.ReadChunkInto(ctx, c, dst); err != nil {
				t.Fatalf("chunk %d read again: %v (%d GETs for it)", i, err, raw.gets.Load()-before)
			}
		}
		if !bytes.Equal(dst, data[off:off+c.Size]) {
			t.Fatalf("chunk %d: wrong bytes", i)
		}
		off += c.Size
	}
	if !raw.damaged.Load() {
		t.Fatal("no GET reached the storage")
	}
}

// The guard passes Settle through too: without it the daemon's `lamina
// cache prefetch` returned before the blocks it fetched were written to
// the cache, and did not hear of a block that could not be written.
func TestGuardPassesSettleThrough(t *testing.T) {
	ctx := context.Background()
	tmp := t.TempDir()
	local, err := storage.CreateLocal(filepath.Join(tmp, "storage"))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := cache.NewStore(local, filepath.Join(tmp, "index.db"), cache.DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	w := plain.NewWriter()
	f, _, err := w.PutFile(ctx, bytes.NewReader(bytes.Repeat([]byte("lamina "), 100_000)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	disk, err := cache.OpenDiskCache(local, filepath.Join(tmp, "cache"), cache.DiskCacheOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer disk.Close()
	// A file in place of every folder of block files: no block can be
	// written, and only Settle tells.
	blocks, _ := filepath.Glob(filepath.Join(tmp, "cache", "blocks-*"))
	if len(blocks) != 1 {
		t.Fatalf("block folders: %v", blocks)
	}
	for i := range 256 {
		if err := os.WriteFile(filepath.Join(blocks[0], fmt.Sprintf("%02x", i)), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	in := instance.New(instance.Settings{Name: "a", ID: "a-id", Storage: local.String()}, nil, local, nil)
	s, err := cache.NewStore(in.WatchOwner(local, time.Hour, nil).Guard(disk), filepath.Join(tmp, "index2.db"), cache.DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Prefetch(ctx, f.Chunks); err == nil {
		t.Fatal("prefetch through the guard into a cache that cannot write its blocks: no error")
	}
}
