package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// BenchmarkOntologyCLI runs commands that load ontologies as separate
// processes (process start included), with CL, Uberon, Mondo and HsapDv
// imported from the cellxgene JSON: curate of pbmc_small.h5ad against a
// schema with a column for each, a Mondo search, the descendants of
// T cell. It reports the median wall time and the median CPU time of the
// process (user + system), which a loaded machine inflates less.
// "nofile" cases delete the index files first: what a process pays to
// build them, as every process did before they existed.
//
//	go test -run '^$' -bench BenchmarkOntologyCLI -benchtime 10x ./cmd/lamina/
func BenchmarkOntologyCLI(b *testing.B) {
	e := newEnv(b)
	dir := e.dir
	json, err := filepath.Abs(filepath.Join(ontologies, "cellxgene-json"))
	if err != nil {
		b.Fatal(err)
	}
	h5ad, err := filepath.Abs(filepath.Join(samples, "pbmc_small.h5ad"))
	if err != nil {
		b.Fatal(err)
	}
	setup := [][]string{
		{"init", "--storage", filepath.Join(dir, "storage"), "--name", "bench"},
		{"ontology", "import", "celltype", "--source", filepath.Join(json, "CL-ontology-v2026-03-26.json.gz")},
		{"ontology", "import", "tissue", "--source", filepath.Join(json, "UBERON-ontology-v2026-04-01.json.gz")},
		{"ontology", "import", "disease", "--source", filepath.Join(json, "MONDO-ontology-v2026-05-05.json.gz")},
		{"ontology", "import", "developmental_stage", "--organism", "human", "--source", filepath.Join(json, "HsapDv-ontology-v2025-01-23.json.gz")},
		{"feature", "create", "cell_type", "--dtype", "cat[celltype]"},
		{"feature", "create", "tissue", "--dtype", "cat[tissue]"},
		{"feature", "create", "disease", "--dtype", "cat[disease]"},
		{"feature", "create", "development_stage", "--dtype", "cat[developmental_stage]"},
		{"schema", "create", "pbmc_obs", "--feature", "cell_type", "--feature", "tissue", "--feature", "disease", "--optional", "development_stage"},
	}
	for _, args := range setup {
		if _, stderr, err := e.run(args...); err != nil {
			b.Fatalf("%v: %v\n%s", args, err, stderr)
		}
	}
	curate := []string{"curate", h5ad, "--schema", "pbmc_obs"}
	search := []string{"ontology", "search", "disease", "rheumatoid arthritus"}
	cases := []struct {
		name   string
		args   []string
		want   string // in the output, so that a failing command is not timed
		nofile bool
	}{
		{"curate_pbmc_4_ontologies", curate, `failed "rheumatoid arthritus" (55)`, false},
		{"search_mondo", search, "MONDO:0008383", false},
		{"descendants_T_cell", []string{"ontology", "show", "celltype", "T cell", "--descendants"}, "CL:0000624", false},
		{"ls_cell_type_T_cell", []string{"ls", "--cell-type", "T cell"}, "", false},
		{"curate_pbmc_4_ontologies_nofile", curate, `failed "rheumatoid arthritus" (55)`, true},
		{"search_mondo_nofile", search, "MONDO:0008383", true},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			var wall, cpu []time.Duration
			for b.Loop() {
				if tc.nofile {
					b.StopTimer()
					removeIndexFiles(b, filepath.Join(dir, "storage", "ontologies"))
					b.StartTimer()
				}
				cmd := e.child(tc.args...)
				t0 := time.Now()
				out, err := cmd.CombinedOutput()
				var exit *exec.ExitError
				if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 1) || !strings.Contains(string(out), tc.want) { // curate exits 1: pbmc_small has failing values
					b.Fatalf("%v: %v\n%s", tc.args, err, out)
				}
				wall = append(wall, time.Since(t0))
				cpu = append(cpu, cmd.ProcessState.UserTime()+cmd.ProcessState.SystemTime())
			}
			b.ReportMetric(medianMS(wall), "median-ms")
			b.ReportMetric(medianMS(cpu), "median-cpu-ms")
		})
	}
}

func removeIndexFiles(b *testing.B, dir string) {
	files, err := filepath.Glob(filepath.Join(dir, "*", "*.idx"))
	if err != nil || len(files) == 0 {
		b.Fatalf("no index files under %s: %v", dir, err)
	}
	for _, f := range files {
		if err := os.Remove(f); err != nil {
			b.Fatal(err)
		}
	}
}

func medianMS(ds []time.Duration) float64 {
	slices.Sort(ds)
	return float64(ds[len(ds)/2].Microseconds()) / 1000
}
