package cache_test

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"testing"

	"github.com/lamina-bio/lamina/storage/retry"
	"github.com/lamina-bio/lamina/storage/s3/s3test"
)

// BenchmarkS3Stack saves 256 MiB through the S3 wiring (sync upload) and
// reads it back cold (empty disk cache), for the ratios to
// storage/s3's BenchmarkDirectParallel in docs/s3-bench.md.
func BenchmarkS3Stack(b *testing.B) {
	ctx := context.Background()
	t := &testing.T{}
	srv := s3test.Real(b)
	cfg := srv.Config(srv.CreateBucket(b))
	data := randomBytes(5, 256<<20)
	dir := b.TempDir()
	st := openStack(t, cfg, filepath.Join(dir, "c"), filepath.Join(dir, "index.db"), retry.DefaultPolicy, true)
	defer st.up.Close()
	w := st.store.NewWriter()
	file, _, err := w.PutFile(ctx, bytes.NewReader(data), nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := w.Commit(ctx); err != nil {
		b.Fatal(err)
	}
	b.Run("Save", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for i := 0; i < b.N; i++ {
			st := openStack(t, cfg, filepath.Join(b.TempDir(), "c"), filepath.Join(b.TempDir(), "index.db"), retry.DefaultPolicy, true)
			w := st.store.NewWriter()
			if _, _, err := w.PutFile(ctx, bytes.NewReader(data), nil); err != nil {
				b.Fatal(err)
			}
			if err := w.Commit(ctx); err != nil {
				b.Fatal(err)
			}
			st.up.Close()
		}
	})
	b.Run("ColdRead", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for i := 0; i < b.N; i++ {
			st.disk.Clear()
			if _, err := st.store.Open(file).WriteToContext(ctx, io.Discard, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}
