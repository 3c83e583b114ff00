package cache_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/cache"
	s3b "github.com/lamina-bio/lamina/storage/s3"
	"github.com/lamina-bio/lamina/storage/s3/s3test"
)

// lostPack saves a file of several chunks to S3 (versitygw, through a
// proxy that counts requests), deletes its pack from the bucket, and
// returns the file and a fresh stack to read it: another workstation's.
func lostPack(t *testing.T) (*s3test.Proxy, s3b.Config, cache.File) {
	t.Helper()
	ctx := context.Background()
	srv := s3test.Real(t)
	bucket := srv.CreateBucket(t)
	proxy, via := s3test.NewProxy(t, srv)
	cfg := via.Config(bucket)
	cfg.Timeout = 5 * time.Second
	st := openStack(t, cfg, t.TempDir(), filepath.Join(t.TempDir(), "index.db"), quick, true)
	f := storeFile(t, st.store, randomBytes(31, 2<<20))
	if len(f.Chunks) < 3 || f.Chunks[0].Pack != f.Chunks[2].Pack {
		t.Fatalf("want chunks of one pack: %d chunks", len(f.Chunks))
	}
	raw, err := s3b.Open(ctx, srv.Config(bucket))
	if err != nil {
		t.Fatal(err)
	}
	name := "packs/" + f.Chunks[0].Pack[:2] + "/" + f.Chunks[0].Pack
	if err := raw.Delete(ctx, name); err != nil {
		t.Fatal(err)
	}
	return proxy, cfg, f
}

// A pack lost from storage held every read of its chunks for the whole
// pack wait (30 s), and the kernel retries failed READs: 6 minutes for a
// 200 MiB file. Once a read waited for it in vain, the next ones fail at
// once, after one try (the pack may have come meanwhile).
func TestLostPackWaitedForOnce(t *testing.T) {
	proxy, cfg, f := lostPack(t)
	st := openStack(t, cfg, t.TempDir(), filepath.Join(t.TempDir(), "index.db"), quick, true)
	st.store.SetPackWait(500 * time.Millisecond)
	ctx := context.Background()
	n0 := proxy.Requests()
	err := st.store.ReadChunkInto(ctx, f.Chunks[0], make([]byte, f.Chunks[0].Size))
	if !errors.Is(err, cache.ErrPackMissing) || !strings.Contains(err.Error(), f.Chunks[0].Pack) {
		t.Fatalf("read of a lost pack: %v", err)
	}
	n1 := proxy.Requests()
	if n1-n0 < 3 {
		t.Fatalf("the first read asked %d times: it did not wait", n1-n0)
	}
	for _, c := range f.Chunks[1:3] {
		err := st.store.ReadChunkInto(ctx, c, make([]byte, c.Size))
		if !errors.Is(err, cache.ErrPackMissing) {
			t.Fatalf("read of a lost pack: %v", err)
		}
		t.Logf("%v", err)
	}
	if n := proxy.Requests() - n1; n > 2 {
		t.Errorf("two more reads of the lost pack asked storage %d times (the first, waiting, %d)", n, n1-n0)
	}
}

// savedAt is a version saved at a time.
type savedAt time.Time

func (s savedAt) SavedAt() (time.Time, bool) { return time.Time(s), true }

// A pack of a version saved long ago is not waited for: its upload would
// have been done.
func TestLostPackOfAnOldVersionNotWaitedFor(t *testing.T) {
	proxy, cfg, f := lostPack(t)
	st := openStack(t, cfg, t.TempDir(), filepath.Join(t.TempDir(), "index.db"), quick, true)
	st.store.SetPackWait(time.Minute)
	ctx := cache.WithVersion(context.Background(), savedAt(time.Now().Add(-2*cache.PackUploadWindow)))
	n0 := proxy.Requests()
	err := st.store.ReadChunkInto(ctx, f.Chunks[0], make([]byte, f.Chunks[0].Size))
	if !errors.Is(err, cache.ErrPackMissing) {
		t.Fatalf("read of a lost pack: %v", err)
	}
	if n := proxy.Requests() - n0; n > 2 {
		t.Errorf("a read of a lost pack of a version saved long ago asked storage %d times", n)
	}
	t.Logf("%v", err)
}
