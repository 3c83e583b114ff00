package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A zarr whose obs/n_genes is compressed with Blosc zstd: curate with a
// schema that leaves n_genes out, and ontology inspect of another column,
// read the file (both failed, exit 2: "codec 4 is not supported"); a
// schema or an inspect naming n_genes says why it is not read, and show
// lists it with the reason (it was "obs.n_genes (?)").
func TestColumnOfUnknownCodec(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("ontology", "import", "celltype", "--source", filepath.Join(ontologies, "cl-basic.obo"))
	e.ok("feature", "create", "cell_type", "--dtype", "cat[celltype]")
	e.ok("feature", "create", "n_genes", "--dtype", "int")
	e.ok("schema", "create", "ct", "--feature", "cell_type")
	e.ok("schema", "create", "ng", "--feature", "n_genes")
	z := e.path("zstd.zarr")
	if err := os.CopyFS(z, os.DirFS(filepath.Join(samples, "pbmc_small.zarr"))); err != nil {
		t.Fatal(err)
	}
	chunk := filepath.Join(z, "obs", "n_genes", "0")
	b, err := os.ReadFile(chunk)
	if err != nil {
		t.Fatal(err)
	}
	b[2] = b[2]&0x1f | 4<<5 // Blosc codec 4, zstd
	if err := os.WriteFile(chunk, b, 0o644); err != nil {
		t.Fatal(err)
	}
	// pbmc_small's cell types are not all valid (exit 1), but read.
	if out, stderr, err := e.run("curate", z, "--schema", "ct"); exitCode(err) != 1 || !strings.Contains(out, "schema ct: obs 315 rows") {
		t.Errorf("curate --schema ct: exit %d, %v\n%s%s", exitCode(err), err, out, stderr)
	}
	e.ok("ontology", "inspect", "celltype", z, "--column", "cell_type")
	why := "obs column n_genes is compressed with Blosc zstd, which lamina does not read"
	for _, args := range [][]string{{"curate", z, "--schema", "ng"}, {"ontology", "inspect", "celltype", z, "--column", "n_genes"}} {
		if err := e.fails(why, args...); exitCode(err) != 2 {
			t.Errorf("%v exits %d, want 2", args, exitCode(err))
		}
	}
	e.ok("save", z, "--key", "z/zstd.zarr")
	if out := e.ok("show", "z/zstd.zarr"); !strings.Contains(out, "obs.n_genes (not read: compressed with Blosc zstd)") {
		t.Errorf("show:\n%s", out)
	}
}

// A Latin-1 CSV is not UTF-8, and curate and ontology inspect say where
// (exit 2), with the iconv hint the OBO import gives: "M\xfcller cell"
// was "no term with this name", and JSON showed U+FFFD.
func TestLatin1CSV(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("ontology", "import", "celltype", "--source", filepath.Join(ontologies, "cl-basic.obo"))
	e.ok("feature", "create", "cell_type", "--dtype", "cat[celltype]")
	e.ok("schema", "create", "ct", "--feature", "cell_type")
	for _, name := range []string{"latin1.csv", "latin1.tsv"} {
		f := e.write(name, []byte("cell_type\nT cell\nM\xfcller cell\n"))
		want := "line 3: not UTF-8 (byte 0xfc at column 2): convert the file to UTF-8 first (iconv -f latin1 -t utf-8, say)"
		for _, args := range [][]string{
			{"curate", f, "--schema", "ct"},
			{"curate", f, "--schema", "ct", "--format", "json"},
			{"ontology", "inspect", "celltype", f, "--column", "cell_type"},
		} {
			if err := e.fails(want, args...); exitCode(err) != 2 {
				t.Errorf("%v exits %d, want 2", args, exitCode(err))
			}
		}
	}
}

// curate reads a gzipped CSV or TSV (x.csv.gz), as ontology inspect does
// (it was refused: "curate reads CSV, TSV, Parquet, …"). Under a key
// ending in .gz it is saved gzipped: as given, or standardized and
// gzipped; under a plain key, plain.
func TestCurateGzippedCSV(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("ontology", "import", "celltype", "--source", filepath.Join(ontologies, "cl-basic.obo"))
	e.ok("feature", "create", "cell_type", "--dtype", "cat[celltype]")
	e.ok("schema", "create", "ct", "--feature", "cell_type")
	gz := func(name, text string) string {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		zw.Write([]byte(text))
		zw.Close()
		return e.write(name, b.Bytes())
	}
	gunzip := func(b string) string {
		zr, err := gzip.NewReader(strings.NewReader(b))
		if err != nil {
			t.Fatalf("not gzip: %v", err)
		}
		out, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	valid := gz("v.csv.gz", "cell_type\nT cell\nB cell\n")
	if out := e.ok("curate", valid, "--schema", "ct", "--key", "c/v.csv.gz"); !strings.Contains(out, "2 of 2 values valid") {
		t.Errorf("curate v.csv.gz:\n%s", out)
	}
	raw, _ := os.ReadFile(valid)
	if got := e.ok("get", "c/v.csv.gz", "-o", "-"); got != string(raw) {
		t.Errorf("c/v.csv.gz is not the file given")
	}
	odd := gz("o.tsv.gz", "cell_type\tn\nt cell\t1\nB cell\t2\n")
	e.ok("curate", odd, "--schema", "ct", "--standardize", "--key", "c/o.tsv.gz")
	if got := gunzip(e.ok("get", "c/o.tsv.gz", "-o", "-")); got != "cell_type\tn\nT cell\t1\nB cell\t2\n" {
		t.Errorf("c/o.tsv.gz holds %q", got)
	}
	e.ok("curate", odd, "--schema", "ct", "--standardize", "--key", "c/o.tsv")
	if got := e.ok("get", "c/o.tsv", "-o", "-"); got != "cell_type\tn\nT cell\t1\nB cell\t2\n" {
		t.Errorf("c/o.tsv holds %q", got)
	}
	// A plain CSV under a .gz key is saved gzipped too.
	e.ok("curate", e.write("p.csv", []byte("cell_type\nT cell\n")), "--schema", "ct", "--key", "c/p.csv.gz")
	if got := gunzip(e.ok("get", "c/p.csv.gz", "-o", "-")); got != "cell_type\nT cell\n" {
		t.Errorf("c/p.csv.gz holds %q", got)
	}
	e.fails("give a key ending in .csv", "curate", valid, "--schema", "ct", "--key", "c/v.tsv.gz")
	notGz := e.write("n.csv.gz", []byte("cell_type\nT cell\n"))
	if err := e.fails("n.csv.gz: cannot read the file's structure: not gzip", "curate", notGz, "--schema", "ct"); exitCode(err) != 2 {
		t.Errorf("a .csv.gz that is not gzip exits %d, want 2", exitCode(err))
	}
}

// An AnnData zarr folder named without .zarr (anndata's write_zarr("pbmc")
// makes pbmc/) is one by its content: inspect read it ("is a folder but
// not an AnnData zarr"), curate and save (otype AnnData) too. A folder of
// anything else is still no table.
func TestAnnDataZarrWithoutSuffix(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("ontology", "import", "celltype", "--source", filepath.Join(ontologies, "cl-basic.obo"))
	e.ok("feature", "create", "cell_type", "--dtype", "cat[celltype]")
	e.ok("schema", "create", "ct", "--feature", "cell_type")
	z := e.path("pbmc")
	if err := os.CopyFS(z, os.DirFS(filepath.Join(samples, "pbmc_small.zarr"))); err != nil {
		t.Fatal(err)
	}
	if out := e.ok("ontology", "inspect", "celltype", z, "--column", "cell_type"); !strings.Contains(out, "T cell") {
		t.Errorf("inspect:\n%s", out)
	}
	if out, _, err := e.run("curate", z, "--schema", "ct"); exitCode(err) != 1 || !strings.Contains(out, "schema ct: obs 315 rows") {
		t.Errorf("curate: exit %d\n%s", exitCode(err), out)
	}
	e.ok("save", z, "--key", "scrna/pbmc")
	var show struct {
		OType         string `json:"otype"`
		NObservations int64  `json:"n_observations"`
	}
	if e.jsonOut(&show, "show", "scrna/pbmc", "--format", "json"); show.OType != "AnnData" || show.NObservations != 315 {
		t.Errorf("show: %+v, want AnnData of 315 observations", show)
	}
	plain := e.path("plain")
	os.MkdirAll(plain, 0o755)
	os.WriteFile(filepath.Join(plain, ".zgroup"), []byte(`{"zarr_format": 2}`), 0o644)
	os.WriteFile(filepath.Join(plain, ".zattrs"), []byte(`{"note": "anndata"}`), 0o644)
	e.fails("is a folder but not an AnnData zarr", "ontology", "inspect", "celltype", plain, "--column", "cell_type")
	// Else a key without a suffix has no otype (README): a folder that is
	// no AnnData zarr, a CSV file.
	e.ok("save", plain, "--key", "scrna/plain")
	e.ok("save", filepath.Join(samples, "pbmc_small_obs.csv"), "--key", "scrna/obs")
	for _, k := range []string{"scrna/plain", "scrna/obs"} {
		var v struct {
			Key   string `json:"key"`
			OType string `json:"otype"`
		}
		if e.jsonOut(&v, "show", k, "--format", "json"); v.Key != k || v.OType != "" {
			t.Errorf("show %s: %+v, want no otype", k, v)
		}
	}
}

// curate and ontology inspect warn on stderr of a zarr chunk with no file
// in a column they read (it reads as the fill value: every cell "B cell").
func TestZarrMissingChunkCurateWarns(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("ontology", "import", "celltype", "--source", filepath.Join(ontologies, "cl-basic.obo"))
	e.ok("feature", "create", "cell_type", "--dtype", "cat[celltype]")
	e.ok("schema", "create", "ct", "--feature", "cell_type")
	z := e.path("lost.zarr")
	if err := os.CopyFS(z, os.DirFS(filepath.Join(samples, "pbmc_small.zarr"))); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(z, "obs", "cell_type", "codes", "0")); err != nil {
		t.Fatal(err)
	}
	want := "warning: " + z + ": obs/cell_type/codes: chunk 0 is missing (no file obs/cell_type/codes/0): read as the fill value 0\n"
	for _, args := range [][]string{{"curate", z, "--schema", "ct"}, {"ontology", "inspect", "celltype", z, "--column", "cell_type"}} {
		_, stderr, err := e.run(args...)
		if err != nil || !strings.Contains(stderr, want) {
			t.Errorf("%v: %v, stderr %q; want %q", args[:2], err, stderr, want)
		}
	}
	if _, stderr, _ := e.run("ontology", "inspect", "celltype", z, "--column", "tissue"); strings.Contains(stderr, "warning") {
		t.Errorf("inspect of tissue warns of cell_type: %q", stderr)
	}
}
