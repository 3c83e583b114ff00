package cache_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/storage"
)

// lingering hands over the bytes of a ranged read into a buffer at once
// (the reader waiting for them is answered) and returns a while after, as
// a GET whose body has arrived but whose connection is still closing: the
// cache writes a block only once its GET has returned.
type lingering struct {
	storage.Backend
	linger time.Duration
}

func (l *lingering) GetRangeInto(ctx context.Context, name string, off int64, buf []byte) error {
	// Through a backend without GetRangeInto: the bytes land in buf and
	// ctx's WithLanding hears of them before this returns.
	if err := storage.GetRangeInto(ctx, onlyBackend{l.Backend}, name, off, buf); err != nil {
		return err
	}
	time.Sleep(l.linger)
	return nil
}

// prefetchSetup stores data in local storage and opens a disk cache over
// it (through lingering) with a store over that.
func prefetchSetup(t *testing.T, data []byte) (*cache.DiskCache, *cache.Store, cache.File, string) {
	t.Helper()
	s, local := newStore(t)
	f := storeFile(t, s, data)
	cdir := t.TempDir()
	d, cs := cachedStore(t, &lingering{Backend: local, linger: 200 * time.Millisecond}, cdir, filepath.Join(t.TempDir(), "index.db"), cache.DiskCacheOptions{})
	return d, cs, f, cdir
}

// packBytes is how many bytes of packs f's chunks take: the cache holds at
// least that once it has them all.
func packBytes(f cache.File) int64 {
	var n int64
	for _, c := range f.Chunks {
		n += c.Len
	}
	return n
}

// TestPrefetchReturnsOnceCached: a read through the disk cache is answered
// as soon as its bytes are here, and the blocks are written to the cache
// folder after. Store.Prefetch (`lamina cache prefetch`) returned then
// too, and said a version was in the cache while its last blocks were
// still only in memory: TestS3PrefetchThroughTheMount saw 4 to 8 MiB of
// 80 missing from the mount's cache under load. It now returns once they
// are written.
func TestPrefetchReturnsOnceCached(t *testing.T) {
	data := randomBytes(31, 6<<20)
	d, s, f, _ := prefetchSetup(t, data)
	if err := s.Prefetch(context.Background(), f.Chunks); err != nil {
		t.Fatal(err)
	}
	if used, want := d.Info().Used, packBytes(f); used < want {
		t.Fatalf("the cache holds %d bytes after a prefetch of chunks stored in %d", used, want)
	}
	fetched := d.Info().Fetched
	checkChunks(t, s, f, data)
	if got := d.Info().Fetched; got != fetched {
		t.Fatalf("reading the chunks after the prefetch fetched %d bytes", got-fetched)
	}
}

// TestPrefetchReportsUncachedBlocks: a block that cannot be written to the
// cache folder fails the prefetch, which would otherwise say the bytes are
// local when they are not.
func TestPrefetchReportsUncachedBlocks(t *testing.T) {
	data := randomBytes(32, 1<<20)
	_, s, f, cdir := prefetchSetup(t, data)
	// A file in place of every folder of block files (blocks-SIZE/xx):
	// no block can be written.
	blocks, err := filepath.Glob(filepath.Join(cdir, "blocks-*"))
	if err != nil || len(blocks) != 1 {
		t.Fatalf("block folders %v: %v", blocks, err)
	}
	const hex = "0123456789abcdef"
	for _, a := range hex {
		for _, b := range hex {
			if err := os.WriteFile(filepath.Join(blocks[0], string(a)+string(b)), nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	err = s.Prefetch(context.Background(), f.Chunks)
	if err == nil || !strings.Contains(err.Error(), "store a block") {
		t.Fatalf("prefetch into a cache that cannot write its blocks: %v", err)
	}
}
