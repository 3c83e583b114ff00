package stage_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/stage"
)

// BenchmarkSmallCommit is a 4 KiB file created, written and closed as the
// mount's close does it (deferred sync, as in the daemon), without FUSE:
// by one writer, and by 8 at once (group commit, docs/write-bench.md).
func BenchmarkSmallCommit(b *testing.B) {
	b.Run("writers=1", func(b *testing.B) { benchSmallCommit(b, 1) })
	b.Run("writers=8", func(b *testing.B) { benchSmallCommit(b, 8) })
}

func benchSmallCommit(b *testing.B, writers int) {
	ctx := context.Background()
	e := newEnv(b)
	s, err := stage.New(e.cat, e.store, stage.Options{Dir: e.dir, User: "t", SyncEvery: 2 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism((writers + 1) / 2) // GOMAXPROCS is 2 here
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, 4096)
		for pb.Next() {
			i := n.Add(1)
			binary.LittleEndian.PutUint64(buf, uint64(i))
			f, err := s.Create(ctx, fmt.Sprintf("many/f%06d", i), 0o644)
			if err == nil {
				_, err = f.WriteAt(ctx, buf, 0)
			}
			if err == nil {
				err = f.Flush(ctx)
			}
			if err == nil {
				err = f.Release(ctx)
			}
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	if err := s.Sync(ctx); err != nil {
		b.Fatal(err)
	}
}
