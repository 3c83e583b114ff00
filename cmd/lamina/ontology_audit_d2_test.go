package main

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// Audit d2. An obsolete term whose replacement is obsolete too was left
// unchanged ("replaced by MONDO:0011791 (obsolete …)") by standardize,
// inspect and curate --standardize, and ls --disease MONDO:0000017 missed
// the versions annotated with the live end of the chain, MONDO:0019588.
// A typographic apostrophe matched nothing.
func TestObsoleteReplacementChainCLI(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("ontology", "import", "disease", "--source", filepath.Join(ontologies, "cellxgene-json", "MONDO-ontology-v2026-05-05.json.gz"))
	out := e.ok("ontology", "standardize", "disease", "MONDO:0000017", "Alzheimer\u2019s disease")
	for _, want := range []string{"hearing loss, autosomal recessive", "MONDO:0019588",
		"MONDO:0000017 is obsolete, replaced by MONDO:0011791, obsolete too, replaced by MONDO:0019588", "MONDO:0004975"} {
		if !strings.Contains(out, want) {
			t.Errorf("standardize lacks %q:\n%s", want, out)
		}
	}
	// show names the live end beside the obsolete replaced_by.
	if out := e.ok("ontology", "show", "disease", "MONDO:0000017"); !strings.Contains(out, "replacement  hearing loss, autosomal recessive (MONDO:0019588)") {
		t.Errorf("show:\n%s", out)
	}
	in := e.write("d.csv", []byte("disease\nMONDO:0000017\n"))
	if out := e.ok("ontology", "inspect", "disease", "--column", "disease", in); !strings.Contains(out, "MONDO:0019588") {
		t.Errorf("inspect does not map MONDO:0000017:\n%s", out)
	}

	e.ok("feature", "create", "disease", "--dtype", "cat[disease]")
	e.ok("schema", "create", "dz", "--feature", "disease")
	e.ok("curate", in, "--schema", "dz", "--standardize", "--key", "t/curated.csv")
	e.ok("save", e.write("a.csv", []byte("a\n")), "--key", "t/live.csv")
	e.ok("annotate", "t/live.csv", "--feature", "disease=MONDO:0019588")
	for _, q := range []string{"MONDO:0000017", "MONDO:0011791", "MONDO:0019588"} {
		if got := lsKeys(t, e, "--disease", q, "--exact"); !reflect.DeepEqual(got, []string{"t/curated.csv", "t/live.csv"}) {
			t.Errorf("ls --disease %s = %v, want both versions", q, got)
		}
	}
}

// A RELATED synonym of several terms answered "no term with this name,
// id or synonym"; show did not name a RELATED synonym's term at all.
func TestRelatedSynonymOfSeveralTermsCLI(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("ontology", "import", "tissue", "--source", filepath.Join(ontologies, "uberon-efo-slim.obo"))
	e.ok("ontology", "import", "celltype", "--source", filepath.Join(ontologies, "cl-basic.obo"))
	const several = "a RELATED synonym of several terms: leg (UBERON:0000978), hindlimb (UBERON:0002103)"
	if out := e.ok("ontology", "standardize", "tissue", "lower extremity"); !strings.Contains(out, several) {
		t.Errorf("standardize:\n%s", out)
	}
	var st []standardJSON
	e.jsonOut(&st, "ontology", "standardize", "tissue", "lower extremity", "--format", "json")
	if len(st) != 1 || len(st[0].Related) != 2 || st[0].Related[0].ID != "UBERON:0000978" || st[0].Related[1].ID != "UBERON:0002103" {
		t.Errorf("standardize --format json: %+v, want related leg and hindlimb", st)
	}
	in := e.write("t.csv", []byte("tissue\nlower extremity\n"))
	if out, _, _ := e.run("ontology", "inspect", "tissue", "--column", "tissue", in); !strings.Contains(out, several) {
		t.Errorf("inspect:\n%s", out)
	}
	e.fails(several, "ontology", "show", "tissue", "lower extremity")
	e.fails(several, "ls", "--tissue", "lower extremity")
	e.fails(`only a RELATED synonym of "oocyte" (CL:0000023)`, "ontology", "show", "celltype", "oogonium")
}

// life-stages.obo holds HsapDv and MmusDv terms: without --organism,
// import took either, at random. It asks (exit 2); with --organism it
// warns of the other organisms' terms.
func TestImportLifeStagesNeedsOrganism(t *testing.T) {
	e := newEnv(t)
	e.init()
	src := filepath.Join(ontologies, "extra", "life-stages.obo")
	err := e.fails("260 HsapDv terms (human) and 178 MmusDv terms (mouse): use --organism", "ontology", "import", "developmental_stage", "--source", src)
	if codeOf(err) != 2 {
		t.Errorf("exit %d, want 2", codeOf(err))
	}
	out, stderr, err := e.run("ontology", "import", "developmental_stage", "--source", src, "--organism", "mouse")
	if err != nil || !strings.Contains(out, "(MmusDv, mouse)") || !strings.Contains(stderr, "1150 terms besides the MmusDv ones were imported (HsapDv 260,") {
		t.Errorf("import --organism mouse: %v\n%s\n%s", err, out, stderr)
	}
	// A file of one organism's stages needs no --organism, and warns of nothing.
	out, stderr, err = e.run("ontology", "import", "developmental_stage", "--source", filepath.Join(ontologies, "hsapdv.obo"))
	if err != nil || !strings.Contains(out, "(HsapDv, human)") || strings.Contains(stderr, "besides") {
		t.Errorf("import hsapdv.obo: %v\n%s\n%s", err, out, stderr)
	}
}
