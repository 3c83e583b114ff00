package catalog_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/catalog/catalogtest"
)

var (
	benchOnce sync.Once
	benchDir  string
	benchPath string
)

// annotatedCatalog builds the 100,000-version catalog once per test binary,
// or uses the one LAMINA_BENCH_CATALOG names (a file BuildAnnotated wrote
// with 100,000 versions), so that runs can be compared on one catalog.
func annotatedCatalog(b *testing.B) *catalog.Bolt {
	benchOnce.Do(func() {
		if p := os.Getenv("LAMINA_BENCH_CATALOG"); p != "" {
			benchPath = p
			return
		}
		benchDir, _ = os.MkdirTemp("", "lamina-bench-")
		start := time.Now()
		benchPath = filepath.Join(benchDir, "catalog.db")
		catalogtest.BuildAnnotated(b, benchPath, 100000)
		b.Logf("built 100,000 annotated versions in %s", time.Since(start))
	})
	c, err := catalog.OpenBolt(benchPath, catalog.BoltOptions{})
	if err != nil {
		b.Fatal(err)
	}
	return c
}

func BenchmarkFind100k(b *testing.B) {
	c := annotatedCatalog(b)
	ctx := context.Background()
	cases := []struct {
		name string
		f    catalog.Filter
	}{
		{"tissue_and_batch", catalog.Filter{Limit: 1000, Where: []catalog.Cond{
			{Field: "tissue", Op: "=", Values: []string{"bone marrow"}}, {Field: "batch", Op: ">", Values: []string{"3"}}}}},
		{"celltype_T_cell_descendants", catalog.Filter{Limit: 1000, Terms: [][]string{{"CL:0000084", "CL:0000624", "CL:0000625"}}}},
		{"label_and_size", catalog.Filter{Limit: 1000, Labels: []string{"high_quality"}, Where: []catalog.Cond{{Field: "size", Op: ">", Values: []string{"5MB"}}}}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			var n int
			for b.Loop() {
				vs, err := c.Find(ctx, tc.f)
				if err != nil {
					b.Fatal(err)
				}
				n = len(vs)
			}
			b.ReportMetric(float64(n), "rows")
		})
	}
}

// BenchmarkSearchNames100k is Search with SearchOptions.TermNames as
// `lamina search` passes them with CL imported: the names of the bench's
// cell types (it records ids only, so the versions are found through the
// term index alone), and for "cell" as many more terms as CL names with
// that word (~2,600), which the catalog does not have (a seek each).
func BenchmarkSearchNames100k(b *testing.B) {
	c := annotatedCatalog(b)
	ctx := context.Background()
	names := map[string][]string{"CL:0000084": {"T cell"}, "CL:0000624": {"CD4-positive, alpha-beta T cell"},
		"CL:0000625": {"CD8-positive, alpha-beta T cell"}, "CL:0000236": {"B cell"}, "CL:0000576": {"monocyte"},
		"CL:0000623": {"natural killer cell"}, "CL:0000233": {"platelet"}, "CL:0000451": {"dendritic cell"}}
	for i := range 2600 {
		names[fmt.Sprintf("CL:9%06d", i)] = []string{fmt.Sprintf("kind %d of cell", i)}
	}
	for _, q := range []string{"PBMC gene expression", "monocyte", "T cell", "cell"} {
		b.Run(q, func(b *testing.B) {
			for b.Loop() {
				if _, err := c.SearchWith(ctx, q, catalog.SearchOptions{Limit: 20, TermNames: names}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkSearch100k(b *testing.B) {
	c := annotatedCatalog(b)
	ctx := context.Background()
	// "donor 1": a short word, so the phrase ranking reads candidates
	// (~750 of the 10,000 with "donor") until 20 with the phrase are found.
	for _, q := range []string{"PBMC gene expression", "bone marrow treated", "k012345", "donor 1"} {
		b.Run(q, func(b *testing.B) {
			for b.Loop() {
				if _, err := c.Search(ctx, q, 20); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkList1000(b *testing.B) {
	c := annotatedCatalog(b)
	ctx := context.Background()
	for b.Loop() {
		if _, err := c.List(ctx, catalog.Query{Limit: 1000}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkChildren100k: one folder listing of the mount (1,000 files) and
// the top level, each call opening the file afresh as the CLI does, so the
// memory map starts cold (the page cache is warm).
func BenchmarkChildren100k(b *testing.B) {
	c := annotatedCatalog(b)
	ctx := context.Background()
	for _, prefix := range []string{"scrna/f07/", ""} {
		b.Run("prefix="+prefix, func(b *testing.B) {
			var n int
			for b.Loop() {
				d, err := c.Children(ctx, prefix)
				if err != nil {
					b.Fatal(err)
				}
				n = len(d.Files) + len(d.Subdirs)
			}
			b.ReportMetric(float64(n), "entries")
		})
	}
}
