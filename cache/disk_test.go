package cache_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/storage"
)

// counting counts the ranged reads that reach the backend and slows them.
type counting struct {
	storage.Backend
	gets  atomic.Int64
	bytes atomic.Int64
	delay time.Duration
}

func (c *counting) GetRange(ctx context.Context, name string, off, n int64) ([]byte, error) {
	c.gets.Add(1)
	c.bytes.Add(n)
	time.Sleep(c.delay)
	return c.Backend.GetRange(ctx, name, off, n)
}

func newCounting(t *testing.T, data []byte) *counting {
	t.Helper()
	b, err := storage.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Put(context.Background(), "packs/aa/p", data); err != nil {
		t.Fatal(err)
	}
	return &counting{Backend: b}
}

func TestDiskCache(t *testing.T) {
	ctx := context.Background()
	data := randomBytes(7, 64<<10)
	const bs = 4 << 10
	t.Run("HitsAndReopen", func(t *testing.T) {
		cb, dir := newCounting(t, data), t.TempDir()
		d, err := cache.OpenDiskCache(cb, dir, cache.DiskCacheOptions{BlockSize: bs, ReadAhead: 1})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 3; i++ {
			got, err := d.GetRange(ctx, "packs/aa/p", 5000, 3000) // spans blocks 1 and 2
			if err != nil || !bytes.Equal(got, data[5000:8000]) {
				t.Fatalf("GetRange = %d bytes, %v", len(got), err)
			}
		}
		if n := cb.gets.Load(); n > 3 { // two blocks, maybe one read ahead
			t.Fatalf("%d fetches for two blocks read three times", n)
		}
		// Blocks are written after their readers are answered: Close
		// waits for the writes, as the end of a process does.
		d.Close()
		before := cb.gets.Load()
		d2, err := cache.OpenDiskCache(cb, dir, cache.DiskCacheOptions{BlockSize: bs, ReadAhead: 1})
		if err != nil {
			t.Fatal(err)
		}
		if got, err := d2.GetRange(ctx, "packs/aa/p", 5000, 3000); err != nil || !bytes.Equal(got, data[5000:8000]) {
			t.Fatalf("GetRange after reopen = %d bytes, %v", len(got), err)
		}
		if cb.gets.Load() != before {
			t.Fatal("a reopened cache fetched blocks it holds")
		}
	})
	t.Run("Bounded", func(t *testing.T) {
		cb := newCounting(t, data)
		d, err := cache.OpenDiskCache(cb, t.TempDir(), cache.DiskCacheOptions{BlockSize: bs, Limit: 3 * bs, ReadAhead: 1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() }) // block files are written after the readers' answers
		for off := int64(0); off < int64(len(data)); off += 1000 {
			n := min(1000, int64(len(data))-off)
			if got, err := d.GetRange(ctx, "packs/aa/p", off, n); err != nil || !bytes.Equal(got, data[off:off+n]) {
				t.Fatalf("GetRange(%d) = %d bytes, %v", off, len(got), err)
			}
		}
		time.Sleep(50 * time.Millisecond) // read-ahead settles
		if info := d.Info(); info.Used > 3*bs {
			t.Fatalf("cache holds %d bytes, limit %d", info.Used, 3*bs)
		}
		d.SetLimit(bs)
		if info := d.Info(); info.Used > bs {
			t.Fatalf("after SetLimit: %d bytes", info.Used)
		}
		d.Clear()
		if info := d.Info(); info.Used != 0 || info.Blocks != 0 {
			t.Fatalf("after Clear: %+v", info)
		}
	})
	t.Run("Singleflight", func(t *testing.T) {
		cb := newCounting(t, data)
		cb.delay = 50 * time.Millisecond
		d, err := cache.OpenDiskCache(cb, t.TempDir(), cache.DiskCacheOptions{BlockSize: 64 << 10, ReadAhead: 1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() }) // block files are written after the readers' answers
		var wg sync.WaitGroup
		for i := 0; i < 16; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				off := int64(100 * i)
				if got, err := d.GetRange(ctx, "packs/aa/p", off, 100); err != nil || !bytes.Equal(got, data[off:off+100]) {
					t.Errorf("GetRange = %d bytes, %v", len(got), err)
				}
			}(i)
		}
		wg.Wait()
		if n := cb.gets.Load(); n != 1 {
			t.Fatalf("%d fetches of one block asked for 16 times at once", n)
		}
	})
	t.Run("ReadAhead", func(t *testing.T) {
		cb := newCounting(t, data)
		d, err := cache.OpenDiskCache(cb, t.TempDir(), cache.DiskCacheOptions{BlockSize: bs, ReadAhead: 4})
		if err != nil {
			t.Fatal(err)
		}
		for off := int64(0); off < 3*bs; off += 1024 {
			if _, err := d.GetRange(ctx, "packs/aa/p", off, 1024); err != nil {
				t.Fatal(err)
			}
		}
		deadline := time.Now().Add(2 * time.Second)
		for d.Info().Blocks < 5 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if b := d.Info().Blocks; b < 5 {
			t.Fatalf("a sequential reader of 3 blocks left %d blocks cached; want read-ahead beyond them", b)
		}
		d.Close() // read-ahead in flight
	})
	t.Run("WarmFetchesSpans", func(t *testing.T) {
		cb := newCounting(t, data)
		d, err := cache.OpenDiskCache(cb, t.TempDir(), cache.DiskCacheOptions{BlockSize: bs, ReadAhead: 4})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		d.Warm("packs/aa/p", 100, 8*bs-200) // blocks 0 to 7: two spans of four
		deadline := time.Now().Add(5 * time.Second)
		for d.Info().Blocks < 8 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if b, n := d.Info().Blocks, cb.gets.Load(); b != 8 || n != 2 {
			t.Fatalf("Warm of 8 blocks: %d blocks cached with %d GETs; want 8 with 2", b, n)
		}
		got, err := d.GetRange(ctx, "packs/aa/p", 0, 8*bs)
		if err != nil || !bytes.Equal(got, data[:8*bs]) {
			t.Fatalf("GetRange of warmed blocks = %d bytes, %v", len(got), err)
		}
		if n := cb.gets.Load(); n != 2 {
			t.Fatalf("reading warmed blocks made %d more GETs", n-2)
		}
	})
}

// TestCorruptCachedChunkIsFetchedAgain damages the cache's copy of a chunk:
// the store notices the digest mismatch, drops it and reads it again.
func TestCorruptCachedChunkIsFetchedAgain(t *testing.T) {
	ctx := context.Background()
	b, err := storage.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cdir := t.TempDir()
	d, err := cache.OpenDiskCache(b, cdir, cache.DiskCacheOptions{BlockSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	s, err := cache.NewStore(d, t.TempDir()+"/index.db", cache.DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	data := randomBytes(3, 300<<10)
	f := storeFile(t, s, data)
	if _, err := s.ReadChunk(ctx, f.Chunks[0], nil); err != nil {
		t.Fatal(err)
	}
	// Damage every cached block file.
	n := corruptFiles(t, cdir)
	if n == 0 {
		t.Fatal("nothing cached")
	}
	got := make([]byte, len(data))
	if _, err := s.Open(f).ReadAt(got, 0); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read after corruption: %v", err)
	}
}

// TestCorruptCachedManifestIsFetchedAgain: the cache's copy of a manifest,
// damaged, is dropped and fetched again, as a chunk's is; the version
// opens. A manifest of a few hundred chunks is stored compressed, so the
// damage shows as a decoding error before any digest is compared.
func TestCorruptCachedManifestIsFetchedAgain(t *testing.T) {
	ctx := context.Background()
	b, err := storage.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cdir, idx := t.TempDir(), t.TempDir()+"/index.db"
	d, err := cache.OpenDiskCache(b, cdir, cache.DiskCacheOptions{BlockSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	store := func() *cache.Store { // a new process: no manifest in memory
		s, err := cache.NewStore(d, idx, cache.DefaultParams)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := store()
	w := s.NewWriter()
	var m cache.Manifest
	m.Kind = cache.KindFolder
	for i := range 300 {
		f, _, err := w.PutFile(ctx, bytes.NewReader(randomBytes(uint64(100+i), 512)), nil)
		if err != nil {
			t.Fatal(err)
		}
		f.Path = fmt.Sprintf("f%03d", i)
		m.Files = append(m.Files, f)
	}
	r, err := w.PutManifest(ctx, &m)
	if err == nil {
		err = w.Commit(ctx)
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store().LoadManifest(ctx, r); err != nil { // fills the cache
		t.Fatal(err)
	}
	waitStored(t, d)
	if n := corruptFiles(t, cdir); n == 0 {
		t.Fatal("nothing cached")
	}
	got, err := store().LoadManifest(ctx, r)
	if err != nil || len(got.Files) != len(m.Files) {
		t.Fatalf("manifest after its cached copy was damaged: %v", err)
	}
}

// TestCorruptCachedBlockReadIntoIsFetchedAgain damages every cached block
// while the cache keeps the block files open: ReadChunkInto (the mount's
// read path) notices the digest mismatch, drops the blocks and fetches the
// chunk again, and the caller gets the right bytes.
func TestCorruptCachedBlockReadIntoIsFetchedAgain(t *testing.T) {
	data := randomBytes(9, 300<<10)
	b, err := storage.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cdir := t.TempDir()
	cb := &counting{Backend: b}
	d, err := cache.OpenDiskCache(cb, cdir, cache.DiskCacheOptions{BlockSize: 64 << 10, ReadAhead: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	s, err := cache.NewStore(d, t.TempDir()+"/index.db", cache.DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	f := storeFile(t, s, data)
	readAll := func() { t.Helper(); checkChunks(t, s, f, data) }
	readAll() // fills the cache, and opens its block files
	waitStored(t, d)
	if n := corruptFiles(t, cdir); n == 0 {
		t.Fatal("nothing cached")
	}
	readAll()
	// Read-ahead the second pass started may still be fetching (1 run in 40
	// with -race counted one of its GETs below): wait until GETs stop.
	before := cb.gets.Load()
	for i, quiet := 0, 0; quiet < 5 && i < 250; i++ {
		time.Sleep(20 * time.Millisecond)
		if n := cb.gets.Load(); n != before {
			before, quiet = n, 0
		} else {
			quiet++
		}
	}
	// Once repaired, the blocks are read from the cache: a block file the
	// cache kept open is closed when its block is dropped, never read again.
	readAll()
	if n := cb.gets.Load() - before; n != 0 {
		t.Fatalf("%d fetches after the repair, want 0", n)
	}
}

// corruptFirst damages the bytes of the first ranged read that reaches the
// backend (a body damaged on the way), and fails every read once failing.
type corruptFirst struct {
	storage.Backend
	damaged atomic.Bool
	failing atomic.Bool
}

func (c *corruptFirst) GetRange(ctx context.Context, name string, off, n int64) ([]byte, error) {
	if c.failing.Load() {
		return nil, errors.New("backend away")
	}
	b, err := c.Backend.GetRange(ctx, name, off, n)
	if err == nil && c.damaged.CompareAndSwap(false, true) {
		b = bytes.Clone(b)
		for i := range b {
			b[i] ^= 0xff
		}
	}
	return b, err
}

// TestDamagedFetchIsNeitherServedNorCached: the first GET of a block brings
// damaged bytes. Readers are answered from a fetched block before it is
// written to the cache folder, so the chunk that fails verification drops
// a block still being written: the reader gets the right bytes from a new
// fetch, and the damaged bytes never land in the cache (a cache reopened
// over a backend that is away serves every chunk right).
func TestDamagedFetchIsNeitherServedNorCached(t *testing.T) {
	b, err := storage.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cb := &corruptFirst{Backend: b}
	checkDamagedFetch(t, cb, 11, cb.damaged.Load, &cb.failing)
}

// checkDamagedFetch stores a file through a disk cache over b, whose first
// GET brings damaged bytes (damaged reports that it did), and checks that
// every chunk reads right; then, with failing set (the backend away), that
// a cache reopened over the same folder serves every chunk from its files.
func checkDamagedFetch(t *testing.T, b storage.Backend, seed uint64, damaged func() bool, failing *atomic.Bool) {
	t.Helper()
	data := randomBytes(seed, 1<<20)
	cdir, idx := t.TempDir(), t.TempDir()+"/index.db"
	d, err := cache.OpenDiskCache(b, cdir, cache.DiskCacheOptions{ReadAhead: 1})
	if err != nil {
		t.Fatal(err)
	}
	s, err := cache.NewStore(d, idx, cache.DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	f := storeFile(t, s, data)
	checkChunks(t, s, f, data)
	if !damaged() {
		t.Fatal("no GET reached the backend")
	}
	d.Close() // waits for the block files being written
	failing.Store(true)
	_, s2 := cachedStore(t, b, cdir, idx, cache.DiskCacheOptions{ReadAhead: 1})
	checkChunks(t, s2, f, data)
}

// TestDiskCacheReadRange reads ranges that cross blocks into several
// buffers, from a cold and a warm cache.
func TestDiskCacheReadRange(t *testing.T) {
	ctx := context.Background()
	data := randomBytes(11, 64<<10)
	cb := newCounting(t, data)
	d, err := cache.OpenDiskCache(cb, t.TempDir(), cache.DiskCacheOptions{BlockSize: 4 << 10, ReadAhead: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, tc := range []struct {
		name  string
		off   int64
		sizes []int
	}{
		{"OneBlock", 100, []int{1, 200}},
		{"AcrossBlocks", 4000, []int{1, 9000, 5}},
		{"EmptyBufs", 8192, []int{0, 10, 0}},
		{"ToTheEnd", 64<<10 - 4097, []int{1, 4096}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for pass := 0; pass < 2; pass++ { // cold, then cached
				var bufs [][]byte
				for _, n := range tc.sizes {
					bufs = append(bufs, make([]byte, n))
				}
				if err := d.ReadRange(ctx, "packs/aa/p", tc.off, bufs...); err != nil {
					t.Fatal(err)
				}
				if got := bytes.Join(bufs, nil); !bytes.Equal(got, data[tc.off:tc.off+int64(len(got))]) {
					t.Fatalf("pass %d: wrong bytes", pass)
				}
			}
		})
	}
	if err := d.ReadRange(ctx, "packs/aa/p", 64<<10-10, make([]byte, 11)); err == nil {
		t.Fatal("ReadRange past the end: no error")
	}
}

// storeFile stores data through s and commits it.
func storeFile(t *testing.T, s *cache.Store, data []byte) cache.File {
	t.Helper()
	w := s.NewWriter()
	f, _, err := w.PutFile(context.Background(), bytes.NewReader(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	return f
}

// checkChunks reads every chunk of f through s and compares it with data.
func checkChunks(t *testing.T, s *cache.Store, f cache.File, data []byte) {
	t.Helper()
	var off int64
	for _, c := range f.Chunks {
		dst := make([]byte, c.Size)
		if err := s.ReadChunkInto(context.Background(), c, dst); err != nil {
			t.Fatalf("chunk at %d: %v", off, err)
		}
		if !bytes.Equal(dst, data[off:off+c.Size]) {
			t.Fatalf("chunk at %d: wrong bytes", off)
		}
		off += c.Size
	}
}

// A sequential reader through a cache much smaller than its read-ahead
// bound fetches each block about once: read-ahead stays within a quarter
// of the cache instead of evicting what it fetched before the reader gets
// there.
func TestSmallCacheReadAheadFetchesOnce(t *testing.T) {
	const bs, blocks = 64 << 10, 64
	data := randomBytes(21, bs*blocks)
	cb := newCounting(t, data)
	cb.delay = time.Millisecond
	d, err := cache.OpenDiskCache(cb, t.TempDir(), cache.DiskCacheOptions{BlockSize: bs, Limit: 8 * bs, ReadAhead: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for off := int64(0); off < int64(len(data)); off += bs / 2 {
		got, err := d.GetRange(context.Background(), "packs/aa/p", off, bs/2)
		if err != nil || !bytes.Equal(got, data[off:off+bs/2]) {
			t.Fatalf("read at %d: %v", off, err)
		}
	}
	if f := float64(cb.bytes.Load()) / float64(len(data)); f > 1.3 {
		t.Fatalf("fetched %.2f × the object reading it once through a cache of 8 blocks", f)
	}
}

// cachedStore opens the disk cache in cdir over b and a store over it
// with its index at idx; the cache closes with the test.
func cachedStore(t *testing.T, b storage.Backend, cdir, idx string, o cache.DiskCacheOptions) (*cache.DiskCache, *cache.Store) {
	t.Helper()
	d, err := cache.OpenDiskCache(b, cdir, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	s, err := cache.NewStore(d, idx, cache.DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	return d, s
}
