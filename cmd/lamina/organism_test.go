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
	// --where on the feature too, for a value not stored as it is typed
	// (it found nothing, exit 0).
	e.fails("pick one with --organism", "ls", "--where", "stage=newborn stage")
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

// --organism picks a source only for entities whose sources are per
// organism: a schema, an annotation or a query that mixes cell types (CL,
// imported for any organism) with developmental stages works with it, and
// without it while one organism is imported; with two, only the stage
// needs it.
func TestOrganismOnlyForPerOrganismSources(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("ontology", "import", "celltype", "--source", filepath.Join(ontologies, "cl-basic.obo"))
	e.ok("ontology", "import", "developmental_stage", "--organism", "human", "--source", filepath.Join(ontologies, "hsapdv.obo"))
	e.ok("feature", "create", "cell_type", "--dtype", "cat[celltype]")
	e.ok("feature", "create", "development_stage", "--dtype", "cat[developmental_stage]")
	e.ok("schema", "create", "s", "--feature", "cell_type", "--feature", "development_stage")
	obs := filepath.Join(samples, "pbmc_small_obs.csv")
	e.ok("save", obs, "--key", "exp/b.csv")

	// Both columns are checked: a report (exit 1 for the bad values), not
	// an organism error.
	curated := func(org ...string) {
		t.Helper()
		out, errs, _ := e.run(append([]string{"curate", obs, "--schema", "s"}, org...)...)
		if !strings.Contains(out, "cell_type (cat[celltype]):") || !strings.Contains(out, "development_stage (cat[developmental_stage]):") || strings.Contains(errs, "organism") {
			t.Fatalf("curate %v:\n%s\n%s", org, out, errs)
		}
	}
	terms := []string{"--term", "celltype=T cell", "--term", "developmental_stage=adult stage"}
	query := []string{"--cell-type", "T cell", "--term", "developmental_stage=adult stage"}
	for _, org := range [][]string{nil, {"--organism", "human"}} {
		curated(org...)
		e.ok(append(append([]string{"annotate", "exp/b.csv"}, terms...), org...)...)
		if keys := lsKeys(t, e, append(query, org...)...); len(keys) != 1 || keys[0] != "exp/b.csv" {
			t.Fatalf("ls %v = %v", org, keys)
		}
	}

	// With a second organism, the stage needs --organism; the error is
	// about it alone.
	e.ok("ontology", "import", "developmental_stage", "--organism", "mouse", "--source", filepath.Join(ontologies, "mmusdv.obo"))
	for _, args := range [][]string{
		{"curate", obs, "--schema", "s"},
		append([]string{"annotate", "exp/b.csv"}, terms...),
		append([]string{"ls"}, query...),
	} {
		err := e.fails("developmental_stage has sources for several organisms (human, mouse): pick one with --organism", args...)
		if strings.Contains(err.Error(), "celltype") {
			t.Fatalf("lamina %s: %v", args[0], err)
		}
	}
	curated("--organism", "human")
	e.ok(append(append([]string{"annotate", "exp/b.csv"}, terms...), "--organism", "human")...)
	if keys := lsKeys(t, e, append(query, "--organism", "human")...); len(keys) != 1 {
		t.Fatalf("ls --organism human = %v", keys)
	}
	// CL serves a mouse query as well.
	if keys := lsKeys(t, e, "--cell-type", "T cell", "--organism", "mouse"); len(keys) != 1 {
		t.Fatalf("ls --cell-type … --organism mouse = %v", keys)
	}
}

// A missing source is said once, with how to get it, and nothing of the
// sentinel error underneath ("file does not exist").
func TestMissingSourceMessages(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("ontology", "import", "celltype", "--source", filepath.Join(ontologies, "cl-basic.obo"))
	e.ok("ontology", "import", "developmental_stage", "--organism", "human", "--source", filepath.Join(ontologies, "hsapdv.obo"))
	for _, tc := range []struct {
		want string
		args []string
	}{
		{"no foo ontology imported yet: import one with `lamina ontology import foo --source PATH|URL`", []string{"ls", "--term", "foo=bar"}},
		{`no version "2099" of celltype; imported: 2022-12-15`, []string{"ontology", "show", "celltype", "T cell", "--version", "2099"}},
		{"import one with `lamina ontology import developmental_stage --organism mouse --source PATH|URL`",
			[]string{"ontology", "validate", "developmental_stage", "adult stage", "--organism", "mouse"}},
	} {
		t.Run(tc.args[0]+" "+tc.args[1], func(t *testing.T) {
			msg := explain(e.fails(tc.want, tc.args...))
			if strings.Count(msg, "import one") > 1 || strings.Contains(msg, "does not exist") || strings.Contains(msg, "not found") {
				t.Fatalf("message %q", msg)
			}
		})
	}
}
