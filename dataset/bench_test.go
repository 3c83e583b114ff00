package dataset_test

import (
	"os"
	"testing"

	"github.com/lamina-bio/lamina/dataset"
)

func BenchmarkDescribe(b *testing.B) {
	for _, f := range []string{"pbmc_small.h5ad", "pbmc_small.zarr", "pbmc_small_obs.csv", "pbmc_small_obs.parquet", "fcsparser_cyflow_cube_8.fcs"} {
		b.Run(f, func(b *testing.B) {
			for b.Loop() {
				if _, err := dataset.Describe(sample(f)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkTablesH5AD(b *testing.B) {
	for b.Loop() {
		if _, err := dataset.Tables(sample("pbmc_small.h5ad")); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkObsBigX reads obs and var of pbmc_small.h5ad and of the same
// AnnData with a 1 GiB dense X (made by testdata/make_big_h5ad.py; its path
// in LAMINA_BIG_H5AD, else the big case is skipped): the times match
// because X is never read.
func BenchmarkObsBigX(b *testing.B) {
	files := map[string]string{"small": sample("pbmc_small.h5ad")}
	if p := os.Getenv("LAMINA_BIG_H5AD"); p != "" {
		files["X_1GiB"] = p
	}
	for _, name := range []string{"small", "X_1GiB"} {
		p, ok := files[name]
		b.Run(name, func(b *testing.B) {
			if !ok {
				b.Skip("set LAMINA_BIG_H5AD to a file made by testdata/make_big_h5ad.py")
			}
			for b.Loop() {
				if _, err := dataset.Tables(p); err != nil {
					b.Fatal(err)
				}
				if _, err := dataset.Describe(p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
