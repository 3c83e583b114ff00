package cache_test

import (
	"bytes"
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/ref"
	"github.com/lamina-bio/lamina/storage"
	"github.com/lamina-bio/lamina/storage/retry"
	s3b "github.com/lamina-bio/lamina/storage/s3"
	"github.com/lamina-bio/lamina/storage/s3/s3test"
)

// askCounter is the mount's disk cache with the Stats and Lists the
// content store makes through it counted: what a close asks the storage.
type askCounter struct {
	*cache.DiskCache
	asks atomic.Int64
}

func (a *askCounter) Stat(ctx context.Context, name string) (storage.Info, error) {
	a.asks.Add(1)
	return a.DiskCache.Stat(ctx, name)
}

func (a *askCounter) List(ctx context.Context, prefix string, fn func(storage.Info) error) error {
	a.asks.Add(1)
	return a.DiskCache.List(ctx, prefix, fn)
}

// awayStack is the mount's S3 stack (uploads kept in the block cache)
// through a proxy, with the retry decorator at hand.
type awayStack struct {
	rb    *retry.Backend
	up    *cache.Uploads
	disk  *askCounter
	index string
}

func openAwayStack(t *testing.T, cfg s3b.Config, dir string) *awayStack {
	t.Helper()
	raw, err := s3b.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	rb := retry.New(raw, quick, nil)
	up, err := cache.OpenUploads(rb, filepath.Join(dir, "uploads"), cache.UploadOptions{MaxDelay: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { up.Close() })
	disk, err := cache.OpenDiskCache(up, filepath.Join(dir, "cache"), cache.DiskCacheOptions{BlockSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { disk.Close() })
	up.OnUploaded(disk.Keep)
	return &awayStack{rb: rb, up: up, disk: &askCounter{DiskCache: disk}, index: filepath.Join(dir, "index.db")}
}

// store is a new content store over the stack: a later close, which has
// not seen the packs in storage within the last minute.
func (a *awayStack) store(t *testing.T) *cache.Store {
	t.Helper()
	s, err := cache.NewStore(a.disk, a.index, cache.DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (a *awayStack) drain(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := a.up.WaitIdle(ctx, nil); err != nil {
		t.Fatalf("uploads did not drain: %v (%+v)", err, a.up.Pending())
	}
}

func savePut(t *testing.T, s *cache.Store, data []byte) (cache.File, cache.PutStats) {
	t.Helper()
	w := s.NewWriter()
	f, st, err := w.PutFile(context.Background(), bytes.NewReader(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(context.Background()); err != nil {
		t.Fatalf("commit with the storage away: %v", err)
	}
	return f, st
}

// goAway makes the server hang on every request, and the stack know it
// is away, as a mount does after its first failed call.
func goAway(t *testing.T, proxy *s3test.Proxy, a *awayStack) {
	t.Helper()
	proxy.Always(s3test.Hang)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := a.rb.Stat(ctx, "instance.json"); err == nil || !a.rb.Health().Failing {
		t.Fatalf("the stack does not know the storage is away: %v", err)
	}
}

// copiesIn counts, per digest of f, the blobs the bucket's packs hold.
func copiesIn(t *testing.T, s *cache.Store, f cache.File) map[ref.Digest]int {
	t.Helper()
	want := map[ref.Digest]bool{}
	for _, c := range f.Chunks {
		want[c.Digest] = true
	}
	n := map[ref.Digest]int{}
	err := s.Packs(context.Background(), func(p cache.PackInfo, err error) error {
		if err != nil {
			return err
		}
		for _, b := range p.Blobs {
			if want[b.Digest] {
				n[b.Digest]++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A close of content the instance already stores, while the storage does
// not answer, asked it whether each pack was there (the whole retry budget
// per pack, one after another: 3–5 s a close, a minute on a hung server),
// took the failure for "gone", erased the packs from the dedup index and
// stored the chunks again, uploaded once the server was back and kept for
// good (449 MB in the bucket for 230 MB). Now it asks nothing, reuses the
// packs it holds a copy of (the block cache), the index keeps them, and
// the copy is dropped, not uploaded, once the storage shows the pack.
func TestReuseWhileStorageAway(t *testing.T) {
	srv := s3test.Real(t)
	bucket := srv.CreateBucket(t)
	proxy, via := s3test.NewProxy(t, srv)
	cfg := via.Config(bucket)
	cfg.Timeout = 5 * time.Second
	a := openAwayStack(t, cfg, t.TempDir())
	data := randomBytes(41, 3<<20)
	f1, _ := savePut(t, a.store(t), data)
	a.drain(t)

	goAway(t, proxy, a)
	s := a.store(t)
	done := make(chan struct{})
	var st cache.PutStats
	var f2 cache.File
	go func() { defer close(done); f2, st = savePut(t, s, data) }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("the close did not return while the server hung")
	}
	if n := a.disk.asks.Load(); n != 0 {
		t.Errorf("the close asked the storage %d times while it was known to be away", n)
	}
	if st.NewChunks != 0 {
		t.Errorf("%d of %d chunks stored again while the storage was away", st.NewChunks, st.Chunks)
	}
	idx, err := cache.OpenIndex(a.index)
	if err != nil {
		t.Fatal(err)
	}
	var ds []ref.Digest
	for _, c := range f1.Chunks {
		ds = append(ds, c.Digest)
	}
	locs, err := idx.Lookup(ds)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range f1.Chunks {
		if l, ok := locs[c.Digest]; !ok || l.Pack != c.Pack {
			t.Fatalf("the dedup index lost chunk %s of pack %s during the outage (now %+v)", c.Digest, c.Pack, l)
		}
	}

	proxy.Always(s3test.None)
	a.drain(t)
	for d, n := range copiesIn(t, a.store(t), f1) {
		if n != 1 {
			t.Errorf("chunk %s is %d times in the bucket after the queue drained", d, n)
		}
	}
	fresh := openAwayStack(t, cfg, t.TempDir()).store(t)
	checkChunks(t, fresh, f2, data)
}

// A pack this store saw in storage within the last minute is not checked
// again; with the marks of gc out of reach it is reused on the strength of
// a copy too, not stored again.
func TestReuseWhileStorageAwayOfAPackSeenLately(t *testing.T) {
	defer cache.SetCondemnedFresh(0)()
	srv := s3test.Real(t)
	bucket := srv.CreateBucket(t)
	proxy, via := s3test.NewProxy(t, srv)
	cfg := via.Config(bucket)
	cfg.Timeout = 5 * time.Second
	a := openAwayStack(t, cfg, t.TempDir())
	data := randomBytes(43, 3<<20)
	f1, _ := savePut(t, a.store(t), data)
	a.drain(t)
	s := a.store(t)
	if _, st := savePut(t, s, data); st.NewChunks != 0 { // sees the packs
		t.Fatalf("%d chunks stored again with the server up", st.NewChunks)
	}

	goAway(t, proxy, a)
	asks := a.disk.asks.Load()
	f2, st := savePut(t, s, data)
	if st.NewChunks != 0 {
		t.Errorf("%d of %d chunks stored again while the storage was away", st.NewChunks, st.Chunks)
	}
	if n := a.disk.asks.Load() - asks; n != 0 {
		t.Errorf("the close asked the storage %d times while it was known to be away", n)
	}
	proxy.Always(s3test.None)
	a.drain(t)
	for d, n := range copiesIn(t, a.store(t), f1) {
		if n != 1 {
			t.Errorf("chunk %s is %d times in the bucket after the queue drained", d, n)
		}
	}
	checkChunks(t, openAwayStack(t, cfg, t.TempDir()).store(t), f2, data)
}

// The protection the check gave: a pack another workstation's gc deleted
// while this one was away is put back from the copy the close kept, across
// a restart of the queue, so the version that reused it reads; while gc's
// mark is on the pack, the copy waits.
func TestReuseWhileStorageAwayPutsBackAGonePack(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Real(t)
	bucket := srv.CreateBucket(t)
	proxy, via := s3test.NewProxy(t, srv)
	cfg := via.Config(bucket)
	cfg.Timeout = 5 * time.Second
	dir := t.TempDir()
	a := openAwayStack(t, cfg, dir)
	data := randomBytes(42, 3<<20)
	f1, _ := savePut(t, a.store(t), data)
	a.drain(t)

	goAway(t, proxy, a)
	f2, st := savePut(t, a.store(t), data)
	if st.NewChunks != 0 {
		t.Fatalf("%d chunks stored again while the storage was away", st.NewChunks)
	}
	direct, err := s3b.Open(ctx, srv.Config(bucket))
	if err != nil {
		t.Fatal(err)
	}
	// gc elsewhere marks the packs and deletes them.
	packs := map[string][]byte{}
	for _, c := range f1.Chunks {
		name := "packs/" + c.Pack[:2] + "/" + c.Pack
		if packs[name] == nil {
			if packs[name], err = direct.Get(ctx, name); err != nil {
				t.Fatal(err)
			}
			if err := direct.Put(ctx, "gc/condemned/"+c.Pack, []byte("test")); err != nil {
				t.Fatal(err)
			}
			if err := direct.Delete(ctx, name); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The daemon stops; it starts again once the server is back, while
	// the marks stay: the copies it left are found again.
	a.up.Close()
	proxy.Always(s3test.None)
	a = openAwayStack(t, cfg, dir)
	deadline := time.Now().Add(time.Minute)
	for a.up.Pending().Failures == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the queue did not try the copies: %+v", a.up.Pending())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for name := range packs {
		if _, err := direct.Stat(ctx, name); err == nil {
			t.Fatalf("%s put back while gc's mark was on it", name)
		}
	}
	if p := a.up.Pending(); p.Objects != len(packs) {
		t.Fatalf("%d objects staged while the marks stay, want the %d copies", p.Objects, len(packs))
	}
	for name := range packs {
		id, _ := cache.PackOf(name)
		if err := direct.Delete(ctx, "gc/condemned/"+id); err != nil { // gc's mark expires
			t.Fatal(err)
		}
	}
	a.drain(t)
	for name, want := range packs {
		if got, err := direct.Get(ctx, name); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s not put back as it was: %v", name, err)
		}
	}
	fresh := openAwayStack(t, cfg, t.TempDir()).store(t)
	checkChunks(t, fresh, f2, data)
}
