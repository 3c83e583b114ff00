package cache_test

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/storage"
)

// gated holds the first ranged read at off until open is closed.
type gated struct {
	storage.Backend
	off     int64
	once    sync.Once
	arrived chan struct{}
	open    chan struct{}
}

func (g *gated) GetRange(ctx context.Context, name string, off, n int64) ([]byte, error) {
	if off == g.off {
		held := false
		g.once.Do(func() { held = true })
		if held {
			close(g.arrived)
			<-g.open
		}
	}
	return g.Backend.GetRange(ctx, name, off, n)
}

// TestDiskCacheReadsJoinAFetchOfTheOldSize: an object truncated in storage
// and put back whole (a pack restored) left its short size in the cache.
// A read inside that size fetches a block cut short by it; a read past
// it finds the size changed, and joined that fetch, which ended well with
// the bytes it needed missing: "fetch ended with N bytes of its span
// missing" (CI, TestS3RestoredPackReadsAgain). It must fetch anew.
func TestDiskCacheReadsJoinAFetchOfTheOldSize(t *testing.T) {
	ctx := context.Background()
	const bs = 4 << 10
	data := randomBytes(11, 4*bs)
	b, err := storage.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, "packs/aa/p", data[:6000]); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	d, err := cache.OpenDiskCache(b, dir, cache.DiskCacheOptions{BlockSize: bs, ReadAhead: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.GetRange(ctx, "packs/aa/p", 0, 100); err != nil {
		t.Fatal(err)
	}
	d.Close() // the short size stays in the cache folder
	if err := b.Put(ctx, "packs/aa/p", data); err != nil {
		t.Fatal(err)
	}

	g := &gated{Backend: b, off: bs, arrived: make(chan struct{}), open: make(chan struct{})}
	d, err = cache.OpenDiskCache(g, dir, cache.DiskCacheOptions{BlockSize: bs, ReadAhead: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var wg sync.WaitGroup
	check := func(off, n int64) {
		defer wg.Done()
		got, err := d.GetRange(ctx, "packs/aa/p", off, n)
		if err != nil {
			t.Errorf("GetRange(%d, %d): %v", off, n, err)
		} else if !bytes.Equal(got, data[off:off+n]) {
			t.Errorf("GetRange(%d, %d): wrong bytes", off, n)
		}
	}
	wg.Add(1)
	go check(bs+4, 100) // inside the old size: block 1 fetched cut short
	<-g.arrived
	wg.Add(1)
	go check(bs+3000, 500)             // past it: the size is checked, then block 1 read
	time.Sleep(200 * time.Millisecond) // lets the second read join the first's fetch
	close(g.open)
	wg.Wait()
	// And the block cut short is not served as the whole block later.
	wg.Add(1)
	check(bs, bs)
}
