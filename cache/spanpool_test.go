package cache_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/storage"
)

// filler is a backend that reads ranges into the caller's buffer, as
// storage/s3 does under the disk cache. It counts both kinds of ranged
// read, can slow the reads into buffers, damage the first one, or fail.
type filler struct {
	storage.Backend
	ranges  atomic.Int64 // GetRange calls: a new slice per GET
	into    atomic.Int64 // GetRangeInto calls
	delay   time.Duration
	damage  atomic.Bool // damage the next read into a buffer
	failing atomic.Bool
}

func (f *filler) GetRange(ctx context.Context, name string, off, n int64) ([]byte, error) {
	f.ranges.Add(1)
	return f.Backend.GetRange(ctx, name, off, n)
}

func (f *filler) GetRangeInto(ctx context.Context, name string, off int64, buf []byte) error {
	f.into.Add(1)
	if f.failing.Load() {
		return errors.New("backend away")
	}
	time.Sleep(f.delay)
	if !f.damage.CompareAndSwap(true, false) {
		return storage.GetRangeInto(ctx, f.Backend, name, off, buf)
	}
	// Damaged bytes are damaged as they land: the caller hears of none
	// until they are all there (bytes flipped after being reported landed
	// were read good by a reader joining the fetch, then cached damaged).
	if err := storage.GetRangeInto(storage.WithLanding(ctx, nil), f.Backend, name, off, buf); err != nil {
		return err
	}
	for i := range buf {
		buf[i] ^= 0xff
	}
	return nil
}

func newFiller(t *testing.T, name string, data []byte) *filler {
	t.Helper()
	b, err := storage.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if name != "" {
		if err := b.Put(context.Background(), name, data); err != nil {
			t.Fatal(err)
		}
	}
	return &filler{Backend: b}
}

// TestDiskCacheFetchesIntoReusedBuffers: over a backend that reads into
// buffers, every GET of the cache goes into one of its few reused buffers
// (no GetRange, which allocates per request), and many readers at once,
// joining fetches in flight while the buffers go round, all get the right
// bytes: a buffer is not reused while a reader still copies from it.
func TestDiskCacheFetchesIntoReusedBuffers(t *testing.T) {
	const name = "packs/aa/p"
	data := randomBytes(21, 4<<20)
	fb := newFiller(t, name, data)
	fb.delay = time.Millisecond
	for round := range 3 {
		d, err := cache.OpenDiskCache(fb, t.TempDir(), cache.DiskCacheOptions{BlockSize: 16 << 10, ReadAhead: 16})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := rand.New(rand.NewPCG(uint64(round), uint64(g)))
				for range 100 {
					off := r.Int64N(int64(len(data)) - 1)
					n := min(1+r.Int64N(96<<10), int64(len(data))-off)
					got, err := d.GetRange(context.Background(), name, off, n)
					if err == nil && !bytes.Equal(got, data[off:off+n]) {
						err = errors.New("wrong bytes")
					}
					if err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		wg.Wait()
		d.Close()
		close(errs)
		for err := range errs {
			t.Fatalf("round %d: %v", round, err)
		}
	}
	// A reader's own fetch takes a new slice when every buffer is busy
	// (TestReaderDoesNotWaitForReadAheadBuffers), as most of these random
	// readers' are; the buffers must still have gone round.
	if into := fb.into.Load(); into < 8 {
		t.Fatalf("%d GETs into the cache's buffers; want them reused", into)
	}
	if fb.into.Load() == 0 {
		t.Fatal("no GET reached the backend")
	}
}

// TestDamagedFetchIntoBufferIsNeitherServedNorCached is
// TestDamagedFetchIsNeitherServedNorCached with the GET read into one of
// the cache's buffers: the damaged bytes fail verification, the reader
// gets the right ones from a new fetch, and a cache reopened over a
// backend that is away serves every chunk from its files.
func TestDamagedFetchIntoBufferIsNeitherServedNorCached(t *testing.T) {
	fb := newFiller(t, "", nil)
	fb.damage.Store(true)
	checkDamagedFetch(t, fb, 12, func() bool { return !fb.damage.Load() }, &fb.failing)
}

// heldPuts is a backend whose Puts wait until released: what was written
// stays staged in the upload queue meanwhile.
type heldPuts struct {
	*filler
	release chan struct{}
}

func (h *heldPuts) Put(ctx context.Context, name string, data []byte) error {
	select {
	case <-h.release:
		return h.filler.Put(ctx, name, data)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestUploadsGetRangeIntoStaged: an object still waiting for its upload is
// read into the caller's buffer from its staged file, and from the backend
// once uploaded.
func TestUploadsGetRangeIntoStaged(t *testing.T) {
	ctx := context.Background()
	data := randomBytes(13, 300<<10)
	hb := &heldPuts{filler: newFiller(t, "", nil), release: make(chan struct{})}
	u, err := cache.OpenUploads(hb, t.TempDir(), cache.UploadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if err := u.Put(ctx, "packs/aa/staged", data); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100<<10)
	if err := u.GetRangeInto(ctx, "packs/aa/staged", 5000, buf); err != nil || !bytes.Equal(buf, data[5000:5000+len(buf)]) {
		t.Fatalf("staged: GetRangeInto = %v", err)
	}
	if _, err := hb.Stat(ctx, "packs/aa/staged"); !storage.IsNotFound(err) {
		t.Fatalf("the object reached the backend before its Put was released: %v", err)
	}
	close(hb.release)
	if err := u.WaitIdle(ctx, nil); err != nil {
		t.Fatal(err)
	}
	clear(buf)
	if err := u.GetRangeInto(ctx, "packs/aa/staged", 7000, buf); err != nil || !bytes.Equal(buf, data[7000:7000+len(buf)]) {
		t.Fatalf("uploaded: GetRangeInto = %v", err)
	}
	if n, m := hb.into.Load(), hb.ranges.Load(); n != 1 || m != 0 {
		t.Fatalf("%d reads into buffers and %d ranged reads reached the backend, want 1 and 0 (after the upload)", n, m)
	}
}

// gatedFiller holds every read of the object held until gate is closed;
// reads of others pass.
type gatedFiller struct {
	*filler
	held    string
	gate    chan struct{}
	waiting atomic.Int64
}

func (g *gatedFiller) GetRangeInto(ctx context.Context, name string, off int64, buf []byte) error {
	if name != g.held {
		return g.filler.GetRangeInto(ctx, name, off, buf)
	}
	g.waiting.Add(1)
	select {
	case <-g.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	return g.filler.GetRangeInto(ctx, name, off, buf)
}

// TestReaderDoesNotWaitForReadAheadBuffers: while read-ahead of one object
// holds every GET buffer (its GETs are stuck), a read of another object
// is answered: the reader's fetch takes a new slice instead of waiting.
func TestReaderDoesNotWaitForReadAheadBuffers(t *testing.T) {
	big, small := randomBytes(31, 1<<20), randomBytes(32, 4<<10)
	fb := newFiller(t, "packs/bb/big", big)
	if err := fb.Put(context.Background(), "packs/aa/small", small); err != nil {
		t.Fatal(err)
	}
	g := &gatedFiller{filler: fb, held: "packs/bb/big", gate: make(chan struct{})}
	d, err := cache.OpenDiskCache(g, t.TempDir(), cache.DiskCacheOptions{BlockSize: 16 << 10, ReadAhead: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	defer close(g.gate)
	d.Warm("packs/bb/big", 0, int64(len(big))) // spans of 64 KiB: more than the buffers
	for deadline := time.Now().Add(10 * time.Second); g.waiting.Load() < 4; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("read-ahead started %d GETs; want one per buffer", g.waiting.Load())
		}
	}
	got := make(chan error, 1)
	go func() {
		b, err := d.GetRange(context.Background(), "packs/aa/small", 0, int64(len(small)))
		if err == nil && !bytes.Equal(b, small) {
			err = errors.New("wrong bytes")
		}
		got <- err
	}()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a read waited for the buffers read-ahead holds")
	}
}
