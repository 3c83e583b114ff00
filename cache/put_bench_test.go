package cache_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"
)

// BenchmarkPutFileRandom stores 64 MiB of random bytes (incompressible: raw
// chunks) in a new session committed without sync, as the mount's closes
// do. cpu-s/GiB is the process's CPU time per GiB, steadier than the wall
// clock on the shared machines (docs/write-bench.md).
func BenchmarkPutFileRandom(b *testing.B) {
	const size = 64 << 20
	ctx := context.Background()
	s, _ := newStore(b)
	data := make([]byte, size)
	var cpu time.Duration
	b.SetBytes(size)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		rand.NewChaCha8([32]byte{byte(i), byte(i >> 8), 2}).Read(data) // new bytes each round: no dedup
		c0 := cpuTime()
		b.StartTimer()
		w := s.NewWriter()
		if _, _, err := w.PutFile(ctx, bytes.NewReader(data), nil); err != nil {
			b.Fatal(err)
		}
		if err := w.CommitNoSync(ctx); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		cpu += cpuTime() - c0
		b.StartTimer()
	}
	b.ReportMetric(cpu.Seconds()/float64(b.N)*float64(1<<30)/size, "cpu-s/GiB")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
