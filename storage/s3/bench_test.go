package s3_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"

	"golang.org/x/sync/errgroup"
)

// BenchmarkGetRange measures one ranged GET of each size against the real
// server: the per-request overhead decides the pack and block sizes
// (docs/s3-bench.md). Run: go test -run X -bench GetRange ./storage/s3/
func BenchmarkGetRange(b *testing.B) {
	ctx := context.Background()
	be := open(&testing.T{}, realOrSkip(b), "bench")
	obj := make([]byte, 16<<20)
	rand.Read(obj)
	if err := be.Put(ctx, "packs/00/obj", obj); err != nil {
		b.Fatal(err)
	}
	for _, n := range []int64{4 << 10, 64 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20} {
		b.Run(fmt.Sprintf("%dKiB", n>>10), func(b *testing.B) {
			b.SetBytes(n)
			for i := 0; i < b.N; i++ {
				if _, err := be.GetRange(ctx, "packs/00/obj", 0, n); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDirectParallel is the baseline of the ratios: 256 MiB
// as 16 objects of 16 MiB, PUT then GET with 8 in flight.
func BenchmarkDirectParallel(b *testing.B) {
	ctx := context.Background()
	be := open(&testing.T{}, realOrSkip(b), "bench")
	obj := make([]byte, 16<<20)
	rand.Read(obj)
	b.Run("PUT", func(b *testing.B) {
		b.SetBytes(16 * int64(len(obj)))
		for i := 0; i < b.N; i++ {
			g := errgroup.Group{}
			g.SetLimit(8)
			for j := 0; j < 16; j++ {
				g.Go(func() error { return be.Put(ctx, fmt.Sprintf("packs/01/%d", j), obj) })
			}
			if err := g.Wait(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("GET", func(b *testing.B) {
		b.SetBytes(16 * int64(len(obj)))
		for i := 0; i < b.N; i++ {
			g := errgroup.Group{}
			g.SetLimit(8)
			for j := 0; j < 16; j++ {
				g.Go(func() error { _, err := be.Get(ctx, fmt.Sprintf("packs/01/%d", j)); return err })
			}
			if err := g.Wait(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
