package cache_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/storage"
)

// awayWhen fails every read while away is set: the server is gone.
type awayWhen struct {
	storage.Backend
	away  atomic.Bool
	calls atomic.Int64
}

var errAway = errors.New("storage away")

func (a *awayWhen) Get(ctx context.Context, name string) ([]byte, error) {
	if a.away.Load() {
		a.calls.Add(1)
		return nil, errAway
	}
	return a.Backend.Get(ctx, name)
}

func (a *awayWhen) GetRange(ctx context.Context, name string, off, n int64) ([]byte, error) {
	if a.away.Load() {
		a.calls.Add(1)
		return nil, errAway
	}
	return a.Backend.GetRange(ctx, name, off, n)
}

func (a *awayWhen) Stat(ctx context.Context, name string) (storage.Info, error) {
	if a.away.Load() {
		a.calls.Add(1)
		return storage.Info{}, errAway
	}
	return a.Backend.Stat(ctx, name)
}

// Object sizes lived only in memory, so a new process asked the storage
// (a HEAD per object) before reading blocks it had cached: fully cached
// data could not be read offline after a restart. The size is kept beside
// the blocks now.
func TestCachedBlocksReadOfflineAfterRestart(t *testing.T) {
	b, err := storage.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ab := &awayWhen{Backend: b}
	data := randomBytes(31, 3<<20)
	cdir, idx := t.TempDir(), t.TempDir()+"/index.db"
	d, err := cache.OpenDiskCache(ab, cdir, cache.DiskCacheOptions{BlockSize: 256 << 10, ReadAhead: 1})
	if err != nil {
		t.Fatal(err)
	}
	s, err := cache.NewStore(d, idx, cache.DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	f := storeFile(t, s, data)
	checkChunks(t, s, f, data) // caches every block
	d.Close()

	ab.away.Store(true)
	d2, s2 := cachedStore(t, ab, cdir, idx, cache.DiskCacheOptions{BlockSize: 256 << 10, ReadAhead: 1})
	checkChunks(t, s2, f, data)
	if n := ab.calls.Load(); n != 0 {
		t.Fatalf("%d calls to the storage reading fully cached data", n)
	}

	// The size goes with the last block: a cleared cache asks again.
	d2.Clear()
	ab.away.Store(false)
	checkChunks(t, s2, f, data)
}
