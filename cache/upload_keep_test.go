package cache_test

import (
	"context"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/storage"
)

// Once the queue had uploaded an object it removed the staged file, and
// its bytes were in no cache: a read of what was just written needed the
// storage, so with S3 away a file written through the mount and uploaded
// could be neither read nor appended to (EIO). The queue hands the bytes
// to the disk cache now; they read back offline, in this process and
// after a restart.
func TestUploadedReadsOffline(t *testing.T) {
	ctx := context.Background()
	local, err := storage.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ab := &awayWhen{Backend: local}
	up, err := cache.OpenUploads(ab, t.TempDir(), cache.UploadOptions{MaxDelay: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	cdir, idx := t.TempDir(), t.TempDir()+"/index.db"
	opts := cache.DiskCacheOptions{BlockSize: 256 << 10, ReadAhead: 1}
	d, err := cache.OpenDiskCache(up, cdir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	up.OnUploaded(d.Keep)
	s, err := cache.NewStore(d, idx, cache.DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	data := randomBytes(47, 3<<20+12345)
	f := storeFile(t, s, data)
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := up.WaitIdle(wctx, nil); err != nil {
		t.Fatal(err)
	}
	if p := up.Pending(); p.Objects != 0 || p.Uploaded == 0 {
		t.Fatalf("after WaitIdle: %+v", p)
	}

	ab.away.Store(true)
	checkChunks(t, s, f, data)
	if n := ab.calls.Load(); n != 0 {
		t.Fatalf("%d calls to the storage reading what was written and uploaded", n)
	}
	if info := d.Info(); info.Fetched != 0 {
		t.Fatalf("kept bytes counted as fetched: %+v", info)
	}

	// After a restart too (the size is beside the blocks).
	_, s2 := cachedStore(t, up, cdir, idx, opts)
	checkChunks(t, s2, f, data)
	if n := ab.calls.Load(); n != 0 {
		t.Fatalf("%d calls to the storage reading what was written and uploaded, after a restart", n)
	}
}

// An object larger than the cache's limit is not kept: the limit holds.
func TestKeepRespectsLimit(t *testing.T) {
	local, err := storage.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	d, err := cache.OpenDiskCache(local, t.TempDir(), cache.DiskCacheOptions{Limit: 1 << 20, BlockSize: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	d.Keep("big", randomBytes(1, 2<<20))
	if info := d.Info(); info.Used != 0 {
		t.Fatalf("an object over the limit was kept: %+v", info)
	}
	for i := range 6 {
		d.Keep(string(rune('a'+i)), randomBytes(uint64(i), 300<<10))
	}
	if info := d.Info(); info.Used > 1<<20 || info.Used == 0 {
		t.Fatalf("kept blocks over the limit (or none): %+v", info)
	}
}
