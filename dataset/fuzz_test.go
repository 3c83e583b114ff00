package dataset_test

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/lamina-bio/lamina/dataset"
)

// fuzzExts are the single-file formats FuzzFile writes its bytes as.
var fuzzExts = []string{".parquet", ".h5ad", ".fcs", ".csv", ".tsv"}

// FuzzFile: any bytes, read as each single-file format through the
// package's entry points, are a table, a description or an error: never
// a panic, a hang or a huge allocation (the fuzzer's workers are killed
// past their memory limit). Seeded with the samples and damaged files
// that crashed a reader.
func FuzzFile(f *testing.F) {
	for _, s := range []struct {
		ext  int
		name string
	}{
		{0, "pbmc_small_obs.parquet"}, {0, "parquet-testing_alltypes_plain.snappy.parquet"},
		{1, "pbmc_small.h5ad"}, {2, "fcsparser_cyflow_cube_8.fcs"}, {3, "pbmc_small_obs.csv"},
	} {
		b, err := os.ReadFile(sample(s.name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(s.ext), b)
		if s.name == "pbmc_small_obs.parquet" {
			lz4 := append([]byte(nil), b...)
			lz4[6084] = 14 // a column's codec SNAPPY made LZ4_RAW
			f.Add(uint8(s.ext), lz4)
		}
	}
	if b, err := os.ReadFile("testdata/nullable.h5ad"); err == nil { // nullable and unread column groups
		f.Add(uint8(1), b)
	} else {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, ext uint8, b []byte) {
		p := filepath.Join(t.TempDir(), "f"+fuzzExts[int(ext)%len(fuzzExts)])
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		dataset.Describe(p)
		switch format := dataset.DetectFormat(p); format {
		case dataset.FCS:
			dataset.ReadFCSText(p)
		case dataset.Parquet:
			dataset.Tables(p)
			dataset.RewriteParquet(p, io.Discard, nil)
		default:
			dataset.Tables(p)
			if format == dataset.CSV || format == dataset.TSV {
				dataset.RewriteText(p, format, io.Discard, nil)
			}
		}
	})
}
