package lineage_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/catalog/catalogtest"
	"github.com/lamina-bio/lamina/lineage"
)

// BenchmarkWalkDeep: the upstream lineage of a version 50 runs deep in a
// catalog of 100,000 versions. "per-call" opens the bbolt file for every
// call, as the CLI does without a mount daemon; "held" keeps it open, as
// the daemon does.
func BenchmarkWalkDeep(b *testing.B) {
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "catalog.db")
	c, err := catalog.OpenBolt(path, catalog.BoltOptions{Hold: true})
	if err != nil {
		b.Fatal(err)
	}
	const total, depth = 100000, 50
	for i := 0; i < total-depth-1; i += 1000 {
		var nvs []catalog.NewVersion
		for j := i; j < i+1000 && j < total-depth-1; j++ {
			nvs = append(nvs, catalogtest.NV(fmt.Sprintf("bulk/d%03d/f%06d", j%1000, j), fmt.Sprint(j)))
		}
		if _, err := c.Save(ctx, nvs); err != nil {
			b.Fatal(err)
		}
	}
	tr, _ := c.SaveTransform(ctx, catalog.Transform{Name: "step", Kind: "named"})
	s, _ := c.Save(ctx, []catalog.NewVersion{catalogtest.NV("chain/v0", "v0")})
	prev := s[0].Version
	for i := 1; i <= depth; i++ {
		r, err := c.StartRun(ctx, catalog.Run{Transform: tr.UID, Name: "step"})
		if err != nil {
			b.Fatal(err)
		}
		c.AddInputs(ctx, r.UID, []string{prev.UID})
		nv := catalogtest.NV(fmt.Sprintf("chain/v%d", i), fmt.Sprint("v", i))
		nv.Run = r.UID
		s, err := c.Save(ctx, []catalog.NewVersion{nv})
		if err != nil {
			b.Fatal(err)
		}
		prev = s[0].Version
	}
	n, _ := c.Counts(ctx)
	c.Close()
	for _, hold := range []bool{false, true} {
		name := "per-call"
		if hold {
			name = "held"
		}
		b.Run(name, func(b *testing.B) {
			c, err := catalog.OpenBolt(path, catalog.BoltOptions{Hold: hold})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				g, err := lineage.Walk(ctx, c, prev, lineage.Options{})
				if err != nil {
					b.Fatal(err)
				}
				if len(g.Nodes) != 2*depth+1 {
					b.Fatalf("%d nodes", len(g.Nodes))
				}
			}
			b.ReportMetric(float64(n.Versions), "versions")
		})
	}
}
