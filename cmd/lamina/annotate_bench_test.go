package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/catalog/catalogtest"
	"github.com/lamina-bio/lamina/instance"
	"golang.org/x/sys/unix"
)

// BenchmarkQueryCLI100k runs `lamina ls` and `lamina search` as separate
// processes (process start included) against a catalog of 100,000
// annotated versions. It reports the median per query.
func BenchmarkQueryCLI100k(b *testing.B) {
	e := newEnv(b)
	dir := e.dir
	if _, _, err := e.run("init", "--storage", filepath.Join(dir, "storage"), "--name", "bench"); err != nil {
		b.Fatal(err)
	}
	if _, _, err := e.run("ontology", "import", "celltype", "--source", filepath.Join(ontologies, "cl-basic.obo")); err != nil {
		b.Fatal(err)
	}
	// The catalog's tissue feature is cat[tissue]: ls --where tissue=…
	// checks its values against a tissue ontology.
	if _, _, err := e.run("ontology", "import", "tissue", "--source", filepath.Join(ontologies, "uberon-efo-slim.obo")); err != nil {
		b.Fatal(err)
	}
	dirs, err := instance.UserDirs()
	if err != nil {
		b.Fatal(err)
	}
	s, err := dirs.Current("")
	if err != nil {
		b.Fatal(err)
	}
	os.Remove(s.Catalog)
	start := time.Now()
	catalogtest.BuildAnnotated(b, s.Catalog, 100000)
	b.Logf("built 100,000 annotated versions in %s", time.Since(start))
	// A file just written sits in the page cache in a state where every
	// first touch of a page faults alone (~2.5x the faults of the same file
	// read back; docs/annotate-bench.md): drop it, so that the queries see
	// the catalog as a user's, read from disk by the warm-up run below.
	evictFile(b, s.Catalog)
	cases := []struct {
		name string
		args []string
	}{
		{"ls_tissue_batch", []string{"ls", "--where", "tissue=bone marrow", "--where", "batch>3"}},
		{"ls_celltype_T_cell", []string{"ls", "--cell-type", "T cell"}},
		{"search", []string{"search", "PBMC gene expression"}},
		// Term names: the catalog records ids only, so these find versions
		// through the term index by the names CL gives their terms
		// (search.go): 100,000 ("cell") and 25,000 versions.
		{"search_T_cell", []string{"search", "T cell"}},
		{"search_monocyte", []string{"search", "monocyte"}},
		{"ls_1000", []string{"ls", "--limit", "1000"}},
	}
	bin := shippedBinary(b)
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			if out, err := exec.Command(bin, tc.args...).CombinedOutput(); err != nil { // warm-up
				b.Fatalf("%v: %v\n%s", tc.args, err, out)
			}
			var ds, cpu []time.Duration
			for b.Loop() {
				cmd := exec.Command(bin, tc.args...)
				cmd.Env = append(os.Environ(), e.vars...)
				t0 := time.Now()
				if out, err := cmd.CombinedOutput(); err != nil {
					b.Fatalf("%v: %v\n%s", tc.args, err, out)
				}
				ds = append(ds, time.Since(t0))
				// CPU time of the child moves much less with the machine's load.
				cpu = append(cpu, cmd.ProcessState.UserTime()+cmd.ProcessState.SystemTime())
			}
			for _, x := range [][]time.Duration{ds, cpu} {
				sort.Slice(x, func(i, j int) bool { return x[i] < x[j] })
			}
			b.ReportMetric(float64(ds[len(ds)/2].Microseconds())/1000, "median-ms")
			b.ReportMetric(float64(cpu[len(cpu)/2].Microseconds())/1000, "median-cpu-ms")
		})
	}
}

// shippedBinary is the lamina a user runs: LAMINA_BIN (bench.sh passes
// bin/lamina), or one built here as `make build` builds it. The test binary
// itself would time the testing package's start-up too.
func shippedBinary(b *testing.B) string {
	if p := os.Getenv("LAMINA_BIN"); p != "" {
		return p
	}
	p := filepath.Join(b.TempDir(), "lamina")
	cmd := exec.Command("go", "build", "-trimpath", "-tags", buildTags, "-ldflags", "-s -w", "-o", p, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	return p
}

// buildTags are the Makefile's: urfave/cli without its man-page and
// markdown generators, whose package initialisation every command paid.
const buildTags = "urfave_cli_no_docs"

// evictFile drops path's pages from the page cache.
func evictFile(b *testing.B, path string) {
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		b.Fatal(err)
	}
}
