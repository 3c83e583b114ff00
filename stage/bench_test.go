package stage_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"syscall"
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

// BenchmarkSequentialFile is a 256 MiB file of random bytes written in 1 MiB
// writes and closed as the mount does it (stored while written, deferred
// sync), without FUSE. cpu-s/GiB is the process's CPU time (user+sys) per
// GiB: the figure that matters on the shared 2-core machines, where the
// wall clock follows the load (docs/write-bench.md).
func BenchmarkSequentialFile(b *testing.B) {
	const size, write = 256 << 20, 1 << 20
	ctx := context.Background()
	data := make([]byte, size)
	var cpu time.Duration
	b.SetBytes(size)
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		rand.NewChaCha8([32]byte{byte(i), byte(i >> 8), 1}).Read(data) // new bytes each round: no dedup

		e := newEnv(b)
		s, err := stage.New(e.cat, e.store, stage.Options{Dir: e.dir, User: "t", SyncEvery: 2 * time.Second})
		if err != nil {
			b.Fatal(err)
		}
		c0 := cpuTime()
		b.StartTimer()
		f, err := s.Create(ctx, "big.bin", 0o644)
		for off := 0; err == nil && off < size; off += write {
			_, err = f.WriteAt(ctx, data[off:off+write], int64(off))
		}
		if err == nil {
			err = f.Flush(ctx)
		}
		if err == nil {
			err = f.Release(ctx)
		}
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		cpu += cpuTime() - c0
		if err := s.Sync(ctx); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(cpu.Seconds()/float64(b.N)*float64(1<<30)/size, "cpu-s/GiB")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
