package postgres_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/catalog/catalogtest"
	"github.com/lamina-bio/lamina/catalog/postgres"
	"github.com/lamina-bio/lamina/catalog/postgres/pgtest"
)

// The benchmarks compare the stores on what a mount does: single lookups,
// a mixed workload, and writers from two mounts at once. For PostgreSQL,
// start a durable cluster (scripts/pgcluster.sh start DIR durable): bbolt
// fsyncs every write, so should the database.

type store struct {
	name string
	// open returns two handles on one catalog, as two mounts have.
	open func(b *testing.B) (catalog.Catalog, catalog.Catalog)
}

func stores(b *testing.B) []store {
	return []store{
		{"bbolt", func(b *testing.B) (catalog.Catalog, catalog.Catalog) {
			p := filepath.Join(b.TempDir(), "catalog.db")
			// Two processes share a bbolt file by taking turns: each call
			// opens (and locks) it.
			x, err := catalog.OpenBolt(p, catalog.BoltOptions{})
			if err != nil {
				b.Fatal(err)
			}
			y, _ := catalog.OpenBolt(p, catalog.BoltOptions{})
			return x, y
		}},
		{"bbolt-held", func(b *testing.B) (catalog.Catalog, catalog.Catalog) {
			// One daemon holding the file: the fastest bbolt gets, but only
			// one process may use it.
			x, err := catalog.OpenBolt(filepath.Join(b.TempDir(), "catalog.db"), catalog.BoltOptions{Hold: true})
			if err != nil {
				b.Fatal(err)
			}
			return x, x
		}},
		{"postgres", func(b *testing.B) (catalog.Catalog, catalog.Catalog) {
			u := pgtest.URL(b)
			x, err := postgres.Open(context.Background(), u, postgres.Options{MaxConns: 16})
			if err != nil {
				b.Fatal(err)
			}
			y, err := postgres.Open(context.Background(), u, postgres.Options{MaxConns: 16})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { x.Close(); y.Close() })
			return x, y
		}},
	}
}

func fill(b *testing.B, c catalog.Catalog, n int) {
	ctx := context.Background()
	const batch = 500
	for i := 0; i < n; i += batch {
		var nvs []catalog.NewVersion
		for j := i; j < min(i+batch, n); j++ {
			nvs = append(nvs, catalogtest.NV(fmt.Sprintf("d%02d/s%03d/f%d.txt", j%50, j%700, j), fmt.Sprint(j)))
		}
		if _, err := c.Save(ctx, nvs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkByKey: one lookup of the latest version of a key (a mount's
// stat or open), in a catalog of 10,000 keys.
func BenchmarkByKey(b *testing.B) {
	for _, s := range stores(b) {
		b.Run(s.name, func(b *testing.B) {
			c, _ := s.open(b)
			fill(b, c, 10000)
			ctx := context.Background()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				j := (i * 7919) % 10000
				if _, err := c.ByKey(ctx, fmt.Sprintf("d%02d/s%03d/f%d.txt", j%50, j%700, j), 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkChildren: one folder listing.
func BenchmarkChildren(b *testing.B) {
	for _, s := range stores(b) {
		b.Run(s.name, func(b *testing.B) {
			c, _ := s.open(b)
			fill(b, c, 10000)
			ctx := context.Background()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := c.Children(ctx, fmt.Sprintf("d%02d/", i%50)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkWorkload: the conformance suite's mix, one op = save a new
// version, look it up by key and uid, list its folder, rename, trash.
func BenchmarkWorkload(b *testing.B) {
	for _, s := range stores(b) {
		b.Run(s.name, func(b *testing.B) {
			c, _ := s.open(b)
			fill(b, c, 1000)
			ctx := context.Background()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				k := fmt.Sprintf("w/%d/a.txt", i)
				sv, err := c.Save(ctx, []catalog.NewVersion{catalogtest.NV(k, fmt.Sprint(i))})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := c.ByKey(ctx, k, 0); err != nil {
					b.Fatal(err)
				}
				if _, err := c.ByUID(ctx, sv[0].Version.UID); err != nil {
					b.Fatal(err)
				}
				if _, err := c.Children(ctx, fmt.Sprintf("w/%d/", i)); err != nil {
					b.Fatal(err)
				}
				if _, err := c.Rename(ctx, k, k+".bak"); err != nil {
					b.Fatal(err)
				}
				if _, err := c.Trash(ctx, k+".bak"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkTwoMountWriters: 8 writers, 4 on each of two handles (two
// mounts), each saving new keys; one op = one save. Reported: saves/s.
func BenchmarkTwoMountWriters(b *testing.B) {
	for _, s := range stores(b) {
		b.Run(s.name, func(b *testing.B) {
			x, y := s.open(b)
			ctx := context.Background()
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for w := 0; w < 8; w++ {
				c := x
				if w%2 == 1 {
					c = y
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							return
						}
						k := fmt.Sprintf("w%d/f%d.txt", w, i)
						if _, err := c.Save(ctx, []catalog.NewVersion{catalogtest.NV(k, k)}); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "saves/s")
		})
	}
}
