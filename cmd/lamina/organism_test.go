package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// An entity with human and mouse sources (developmental_stage here) needs
// --organism wherever a value is resolved to a term: annotate, ls and
// curate have it, and without it they say so.
func TestOrganismPicksTheSource(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("ontology", "import", "developmental_stage", "--organism", "human", "--source", filepath.Join(ontologies, "hsapdv.obo"))
	e.ok("ontology", "import", "developmental_stage", "--organism", "mouse", "--source", filepath.Join(ontologies, "mmusdv.obo"))
	e.ok("save", filepath.Join(samples, "pbmc_small_obs.parquet"), "--key", "t/obs.parquet")
	e.ok("feature", "create", "stage", "--dtype", "cat[developmental_stage]")

	e.fails("pick one with --organism", "annotate", "t/obs.parquet", "--feature", "stage=adult stage")
	e.ok("annotate", "t/obs.parquet", "--feature", "stage=adult stage", "--organism", "human")
	out := e.ok("show", "t/obs.parquet")
	if !strings.Contains(out, "HsapDv:") {
		t.Fatalf("annotated with the human term? show:\n%s", out)
	}
	e.fails("pick one with --organism", "ls", "--term", "developmental_stage=adult stage")
	if keys := lsKeys(t, e, "--term", "developmental_stage=adult stage", "--organism", "human"); len(keys) != 1 || keys[0] != "t/obs.parquet" {
		t.Fatalf("ls --term … --organism human = %v", keys)
	}
	if keys := lsKeys(t, e, "--term", "developmental_stage=adult stage", "--organism", "mouse"); len(keys) != 0 {
		t.Fatalf("ls --term … --organism mouse = %v (annotated with the human term)", keys)
	}
	e.ok("feature", "create", "development_stage", "--dtype", "cat[developmental_stage]")
	e.ok("schema", "create", "stages", "--feature", "development_stage")
	obs := filepath.Join(samples, "pbmc_small_obs.csv")
	e.fails("pick one with --organism", "curate", obs, "--schema", "stages")
	// The human source checks the column ("adult" is no HsapDv term: not
	// valid, exit 1, but a report, not the organism error).
	if out, errs, _ := e.run("curate", obs, "--schema", "stages", "--organism", "human"); !strings.Contains(out, "values valid") || strings.Contains(errs, "--organism") {
		t.Fatalf("curate --organism human:\n%s\n%s", out, errs)
	}
}
