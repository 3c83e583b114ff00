package cache_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/storage/retry"
	s3b "github.com/lamina-bio/lamina/storage/s3"
	"github.com/lamina-bio/lamina/storage/s3/s3test"
)

// stack is the S3 wiring of cmd/lamina: store → disk cache → uploads →
// retry → S3 (here through a fault-injecting proxy).
type stack struct {
	store *cache.Store
	disk  *cache.DiskCache
	up    *cache.Uploads
}

func openStack(t *testing.T, cfg s3b.Config, cacheDir, index string, p retry.Policy, sync bool) *stack {
	t.Helper()
	raw, err := s3b.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	up, err := cache.OpenUploads(retry.New(raw, p, nil), filepath.Join(cacheDir, "uploads"), cache.UploadOptions{SyncUpload: sync, MaxDelay: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { up.Close() })
	disk, err := cache.OpenDiskCache(up, cacheDir, cache.DiskCacheOptions{BlockSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { disk.Close() })
	s, err := cache.NewStore(disk, index, cache.DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	return &stack{store: s, disk: disk, up: up}
}

var quick = retry.Policy{Attempts: 4, Base: 5 * time.Millisecond, Max: 20 * time.Millisecond}

// TestWritesSurviveOutageAndRestart writes while the server is down: the
// commit succeeds from the local queue, reads are served locally, a restart
// (a new queue on the same folder) resumes the uploads once the server is
// back, and a fresh cache then reads everything from S3.
func TestWritesSurviveOutageAndRestart(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Real(t)
	bucket := srv.CreateBucket(t)
	proxy, via := s3test.NewProxy(t, srv)
	cfg := via.Config(bucket)
	cfg.Timeout = 5 * time.Second
	cacheDir, index := t.TempDir(), filepath.Join(t.TempDir(), "index.db")

	st := openStack(t, cfg, cacheDir, index, quick, false)
	proxy.Down()
	data := randomBytes(11, 5<<20)
	w := st.store.NewWriter()
	f, _, err := w.PutFile(ctx, bytes.NewReader(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatalf("Commit with the server down: %v", err)
	}
	got := make([]byte, len(data))
	if _, err := st.store.Open(f).ReadAt(got, 0); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read of a staged version: %v", err)
	}
	if p := st.up.Pending(); p.Objects == 0 {
		t.Fatal("nothing pending with the server down")
	}
	st.up.Close() // a crash: the queue is left on disk

	if err := proxy.Up(); err != nil {
		t.Fatal(err)
	}
	st2 := openStack(t, cfg, cacheDir, filepath.Join(t.TempDir(), "index.db"), quick, false)
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := st2.up.WaitIdle(wctx, nil); err != nil {
		t.Fatalf("uploads did not resume: %v (%+v)", err, st2.up.Pending())
	}
	st3 := openStack(t, cfg, t.TempDir(), filepath.Join(t.TempDir(), "index.db"), quick, false)
	clear(got)
	if _, err := st3.store.Open(f).ReadAt(got, 0); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read from S3 after the uploads: %v", err)
	}
}

// TestReadsRetryThenFail reads through transient faults, and gets an error
// (EIO in the mount) once the retry budget is spent, not a hang.
func TestReadsRetryThenFail(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Real(t)
	bucket := srv.CreateBucket(t)
	proxy, via := s3test.NewProxy(t, srv)
	cfg := via.Config(bucket)
	cfg.Timeout = 5 * time.Second
	st := openStack(t, cfg, t.TempDir(), filepath.Join(t.TempDir(), "index.db"), quick, true)
	data := randomBytes(12, 3<<20)
	w := st.store.NewWriter()
	f, _, err := w.PutFile(ctx, bytes.NewReader(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx); err != nil { // SyncUpload: S3 has it now
		t.Fatal(err)
	}
	if p := st.up.Pending(); p.Objects != 0 {
		t.Fatalf("after a sync-upload commit: %+v", p)
	}
	st.disk.Clear()
	proxy.Only("GET ")
	proxy.SetLatency(2 * time.Millisecond)
	proxy.Next(s3test.Reset, s3test.Truncate, s3test.Status500, s3test.Status503)
	got := make([]byte, len(data))
	if _, err := st.store.Open(f).ReadAt(got, 0); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read through transient faults: %v", err)
	}
	st.disk.Clear()
	proxy.Always(s3test.Status503)
	start := time.Now()
	if _, err := st.store.Open(f).ReadAt(got, 0); err == nil {
		t.Fatal("read against a failing server succeeded")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("failing read took %v", d)
	}
}

// TestSlowLinkThroughStack: a version read front to back over a steady
// slow link (256 KiB/s a request) through the mount's storage stack comes
// back whole. Each GET had a deadline of its base plus a second per MiB,
// and each call a retry budget from its start: below about 1 MiB/s every
// block fetch was cut, every retry started it over, and the read failed
// (EIO in the mount) while the server answered. Here the idle bound is
// 1 s and the budget 2 s, and a block of 1 MiB takes about 4 s.
func TestSlowLinkThroughStack(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Real(t)
	bucket := srv.CreateBucket(t)
	proxy, via := s3test.NewProxy(t, srv)
	cfg := via.Config(bucket)
	cfg.Timeout = time.Second
	p := retry.Policy{Attempts: 4, Base: 5 * time.Millisecond, Max: 20 * time.Millisecond, Elapsed: 2 * time.Second, Away: 500 * time.Millisecond}
	st := openStack(t, cfg, t.TempDir(), filepath.Join(t.TempDir(), "index.db"), p, true)
	data := randomBytes(14, 2<<20+12345)
	w := st.store.NewWriter()
	f, _, err := w.PutFile(ctx, bytes.NewReader(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx); err != nil { // SyncUpload: S3 has it now
		t.Fatal(err)
	}
	st.disk.Clear()
	gets := proxy.RequestsOf("GET")
	proxy.SetRate(256 << 10)
	defer proxy.SetRate(0)
	r := st.store.Open(f)
	got := make([]byte, len(data))
	for off := 0; off < len(got); off += 128 << 10 { // as the kernel reads
		if _, err := r.ReadAt(got[off:min(off+128<<10, len(got))], int64(off)); err != nil {
			t.Fatalf("read at %d over a slow link: %v", off, err)
		}
	}
	if !bytes.Equal(got, data) {
		t.Fatal("the bytes read over a slow link differ from those saved")
	}
	if proxy.RequestsOf("GET") == gets {
		t.Fatal("the version was read from the cache, not over the slow link")
	}
}

// TestSlowLinkReadInsideSpanBeingFetched: a small read that falls inside a
// read-ahead span being fetched over a slow link is answered once its own
// bytes have landed, not once the whole span has. The reader waited for
// the span: 16 MiB at 256 KiB/s is about a minute for a chunk of 64 KiB.
// Here a span of 4 blocks of 1 MiB is fetched at 256 KiB/s, and the read
// of the chunk at its start must return while the proxy has sent less
// than a third of the span (the order of events, not a duration).
func TestSlowLinkReadInsideSpanBeingFetched(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Real(t)
	bucket := srv.CreateBucket(t)
	proxy, via := s3test.NewProxy(t, srv)
	cfg := via.Config(bucket)
	cfg.Timeout = 5 * time.Second
	p := retry.Policy{Attempts: 4, Base: 5 * time.Millisecond, Max: 20 * time.Millisecond, Elapsed: 10 * time.Second}
	st := openStack(t, cfg, t.TempDir(), filepath.Join(t.TempDir(), "index.db"), p, true)
	data := randomBytes(15, 3<<20+512<<10) // one pack: one span of 4 blocks
	w := st.store.NewWriter()
	f, _, err := w.PutFile(ctx, bytes.NewReader(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx); err != nil { // SyncUpload: S3 has it now
		t.Fatal(err)
	}
	st.disk.Clear()

	// The chunk that comes first in the pack, and where it is in the file.
	first, at := 0, int64(0)
	var fileOff int64
	for i, c := range f.Chunks {
		if c.Pack != f.Chunks[0].Pack {
			t.Fatalf("the file spans more than one pack")
		}
		if c.Off < f.Chunks[first].Off {
			first, at = i, fileOff
		}
		fileOff += c.Size
	}
	c := f.Chunks[first]

	gets, sent := len(proxy.Ranges()), proxy.Sent()
	proxy.SetRate(256 << 10)
	defer proxy.SetRate(0)
	st.store.Warm(f.Chunks)
	var span string
	for i := 0; i < 1000 && span == ""; i++ { // the span's GET reached the proxy
		if r := proxy.Ranges(); len(r) > gets {
			span = r[gets]
		} else {
			time.Sleep(10 * time.Millisecond)
		}
	}
	var from, to int64
	if _, err := fmt.Sscanf(span, "bytes=%d-%d", &from, &to); err != nil || from != 0 || to+1 < 3<<20 {
		t.Fatalf("read-ahead asked for %q, want one span of the whole pack", span)
	}

	got := make([]byte, c.Size)
	if err := st.store.ReadChunkInto(ctx, c, got); err != nil {
		t.Fatalf("read of the span's first chunk: %v", err)
	}
	moved := proxy.Sent() - sent
	if !bytes.Equal(got, data[at:at+c.Size]) {
		t.Fatal("the chunk read differs from the bytes saved")
	}
	if moved >= (to+1-from)/3 {
		t.Fatalf("the read of %d bytes at %d returned after %d bytes of the %d-byte span were sent: it waited for the span", c.Len, c.Off, moved, to+1-from)
	}
	if n := len(proxy.Ranges()); n != gets+1 {
		t.Fatalf("%d GETs, want only the span's: %q", n-gets, proxy.Ranges()[gets:])
	}
}
