package catalog_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/catalog"
)

// BenchmarkSaveBatch is one Save of many new keys, as `lamina save DIR
// --key-prefix` of a large folder makes. bbolt splits nodes only at
// commit: inserted at random places, 40,000 keys took 42 s, 100,000 minutes.
func BenchmarkSaveBatch(b *testing.B) {
	for _, n := range []int{10_000, 40_000, 100_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			now := time.Now()
			nvs := make([]catalog.NewVersion, n)
			for i := range nvs {
				nvs[i] = catalog.NewVersion{Key: fmt.Sprintf("d%04d/f%03d.csv", i/100, i%100), Kind: "file", CreatedAt: now, Mtime: now}
			}
			for b.Loop() {
				b.StopTimer()
				c, err := catalog.OpenBolt(filepath.Join(b.TempDir(), "catalog.db"), catalog.BoltOptions{Hold: true})
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if _, err := c.Save(context.Background(), nvs); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				c.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds()*float64(b.N), "versions/s")
		})
	}
}
