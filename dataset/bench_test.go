package dataset_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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

// stringIndexH5AD writes (with python3 and h5py, else the benchmark is
// skipped) an h5ad whose obs is an index of n strings, as h5py stores
// them: variable-length, in 64 KiB global heap collections.
func stringIndexH5AD(b *testing.B, n int) string {
	p := filepath.Join(b.TempDir(), "strings.h5ad")
	script := `import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "w") as f:
    obs = f.create_group("obs")
    obs.attrs["_index"] = "_index"
    obs.attrs["column-order"] = np.array([], dtype=h5py.string_dtype())
    obs.attrs["encoding-type"] = "dataframe"
    obs.attrs["encoding-version"] = "0.2.0"
    obs.create_dataset("_index", data=np.array(["cell_%07d" % i for i in range(int(sys.argv[2]))], dtype=object), dtype=h5py.string_dtype())
`
	out, err := exec.Command("/usr/bin/python3", "-c", script, p, strconv.Itoa(n)).CombinedOutput()
	if err != nil {
		b.Skipf("needs /usr/bin/python3 with h5py: %v: %s", err, out)
	}
	return p
}

// BenchmarkH5adStringIndex reads an obs index of 200,000 strings: each
// is one object of a global heap collection (BENCHMARKS.md).
func BenchmarkH5adStringIndex(b *testing.B) {
	p := stringIndexH5AD(b, 200_000)
	for b.Loop() {
		ts, err := dataset.Tables(p)
		if err != nil {
			b.Fatal(err)
		}
		if n := ts[0].NRows; n != 200_000 {
			b.Fatalf("%d rows", n)
		}
	}
}
