package dataset_test

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/dataset"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress"
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

// BenchmarkReadParquet reads a table of 300,000 rows (an int, a float and
// a string column) written by parquet-go with each codec: the page checks
// must not add a decompression of every page to the reader's own. It
// reports the process's CPU time per read too (cpu-ns/op), steadier than
// the time on a loaded machine.
func BenchmarkReadParquet(b *testing.B) {
	for _, c := range []struct {
		name  string
		codec compress.Codec
	}{{"brotli", &parquet.Brotli}, {"zstd", &parquet.Zstd}, {"gzip", &parquet.Gzip}, {"snappy", &parquet.Snappy}} {
		b.Run(c.name, func(b *testing.B) {
			p := filepath.Join(b.TempDir(), c.name+".parquet")
			writeBenchParquet(b, p, c.codec, 300_000)
			cpu, n := cpuTime(), 0
			for b.Loop() {
				if _, err := dataset.Tables(p); err != nil {
					b.Fatal(err)
				}
				n++
			}
			b.ReportMetric(float64(cpuTime()-cpu)/float64(n), "cpu-ns/op")
		})
	}
}

// cpuTime is the CPU time the process has taken, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// writeBenchParquet writes rows rows of a few columns to p with codec.
func writeBenchParquet(b testing.TB, p string, codec compress.Codec, rows int, opts ...parquet.WriterOption) {
	b.Helper()
	type row struct {
		ID    int64   `parquet:"id"`
		Score float64 `parquet:"score"`
		Cell  string  `parquet:"cell"`
	}
	f, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	w := parquet.NewGenericWriter[row](f, append(opts, parquet.Compression(codec))...)
	batch := make([]row, 0, 10_000)
	for i := range rows {
		batch = append(batch, row{ID: int64(i), Score: float64(i%977) / 7, Cell: fmt.Sprintf("cell_%07d_%s", i, [...]string{"T", "B", "NK", "mono"}[i%4])})
		if len(batch) == cap(batch) || i == rows-1 {
			if _, err := w.Write(batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
}

// TestReadParquetCodecs reads files of several row groups written by
// parquet-go with each codec, each row group's pages decompressed once
// by the page checks and read by parquet-go from a file of its own.
func TestReadParquetCodecs(t *testing.T) {
	for _, c := range []struct {
		name  string
		codec compress.Codec
	}{{"brotli", &parquet.Brotli}, {"zstd", &parquet.Zstd}, {"gzip", &parquet.Gzip}, {"snappy", &parquet.Snappy}, {"lz4", &parquet.Lz4Raw}, {"none", &parquet.Uncompressed}} {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), c.name+".parquet")
			writeBenchParquet(t, p, c.codec, 25_000, parquet.MaxRowsPerRowGroup(10_000), parquet.PageBufferSize(16<<10))
			ts, err := dataset.Tables(p)
			if err != nil {
				t.Fatal(err)
			}
			cols := ts[0].Columns
			if ts[0].NRows != 25_000 || cols[0].Ints[24_999] != 24_999 || cols[1].Floats[12_345] != float64(12_345%977)/7 || cols[2].Strings[10_001] != "cell_0010001_B" {
				t.Errorf("%d rows: %v %v %q", ts[0].NRows, cols[0].Ints[24_999], cols[1].Floats[12_345], cols[2].Strings[10_001])
			}
			if err := dataset.RewriteParquet(p, io.Discard, nil); err != nil {
				t.Error(err)
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
