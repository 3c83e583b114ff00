package main

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/lamina-bio/lamina/catalog"
)

// annotations returns what show --format json says key is annotated with.
func annotations(t *testing.T, e *env, key string) catalog.Annotations {
	t.Helper()
	var got struct {
		Annotations catalog.Annotations `json:"annotations"`
	}
	e.jsonOut(&got, "show", key, "--format", "json")
	return got.Annotations
}

// TestIntFeatureValues: an int value out of range, inf or nan is refused
// with the feature named (it was stored as -9223372036854775808), and a
// large int is stored exactly (9007199254740993 became …992).
func TestIntFeatureValues(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("feature", "create", "batch", "--dtype", "int")
	e.ok("feature", "create", "score", "--dtype", "float")
	e.ok("save", e.write("a.txt", []byte("a")), "--key", "a.txt")
	for _, tc := range []struct{ value, want string }{
		{"batch=99999999999999999999", `feature batch (int): "99999999999999999999" is out of the range of an int`},
		{"batch=inf", `feature batch (int): "inf" is not an integer`},
		{"batch=nan", `feature batch (int): "nan" is not an integer`},
		{"score=inf", `feature score (float): "inf" is not a finite number`},
	} {
		// A value the feature's dtype refuses is bad input, exit 2.
		if err := e.fails(tc.want, "annotate", "a.txt", "--feature", tc.value); exitCode(err) != 2 {
			t.Errorf("--feature %s: exit %d, want 2", tc.value, exitCode(err))
		}
	}
	if a := annotations(t, e, "a.txt"); !a.IsZero() {
		t.Fatalf("refused values were stored: %+v", a)
	}
	e.ok("annotate", "a.txt", "--feature", "batch=9007199254740993", "--feature", "batch=3.0")
	if got := annotations(t, e, "a.txt").Features["batch"]; strings.Join(got, ",") != "3,9007199254740993" {
		t.Fatalf("batch = %v, want [3 9007199254740993]", got)
	}
	e.fails(`--where batch=inf: "inf" is not an integer`, "ls", "--where", "batch=inf")
}

// TestWhereOnTermFeatures: --where on a cat[ENTITY] feature resolves the
// value as --tissue does: a value that is no term is an error with
// suggestions (it found nothing, exit 0) unless stored as typed; --exact
// drops only the descendants (it turned the resolution off); and a
// feature holding ids (cellxgene's *_ontology_term_id columns, which
// curate keeps as ids) is found by name, id or ancestor.
func TestWhereOnTermFeatures(t *testing.T) {
	e := annotEnv(t)
	e.ok("save", filepath.Join(samples, "pbmc_small_obs.csv"), "--key", "bm.csv")
	e.ok("annotate", "bm.csv", "--feature", "tissue=Bone Marrow")
	e.ok("feature", "create", "cell_type_ontology_term_id", "--dtype", "cat[celltype]")
	e.ok("feature", "create", "tissue_ontology_term_id", "--dtype", "cat[tissue]")
	e.ok("schema", "create", "cxg", "--feature", "cell_type_ontology_term_id", "--feature", "tissue_ontology_term_id")
	e.ok("curate", filepath.Join(samples, "cellxgene_example_valid.h5ad"), "--schema", "cxg", "--key", "curated/cxg.h5ad")
	if a := annotations(t, e, "curated/cxg.h5ad"); strings.Join(a.Features["cell_type_ontology_term_id"], ",") != "CL:0000066" {
		t.Fatalf("curate stored %v, want the id CL:0000066", a.Features)
	}

	err := e.fails(`"bone marow" is not a tissue term: no term with this name, id or synonym; did you mean "bone marrow" (UBERON:0002371)`,
		"ls", "--where", "tissue=bone marow")
	if exitCode(err) != 4 {
		t.Errorf("a value that is no term: exit %d, want 4 (not found) as ls --tissue", exitCode(err))
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--where", "tissue=Bone Marrow"}, []string{"bm.csv"}},
		// A value quoted inside the argument is the text inside.
		{[]string{"--where", `tissue="Bone Marrow"`}, []string{"bm.csv"}},
		{[]string{"--where", "tissue='bone marrow'"}, []string{"bm.csv"}},
		{[]string{"--term", `tissue="bone marrow"`}, []string{"bm.csv"}},
		{[]string{"--where", "tissue=Bone Marrow", "--exact"}, []string{"bm.csv"}},
		{[]string{"--where", "tissue=UBERON:0002371", "--exact"}, []string{"bm.csv"}},
		{[]string{"--where", "tissue=bone element", "--exact"}, []string{}},
		{[]string{"--where", "tissue!=Bone Marrow"}, []string{}},
		{[]string{"--where", "cell_type_ontology_term_id=epithelial cell"}, []string{"curated/cxg.h5ad"}},
		{[]string{"--where", "cell_type_ontology_term_id=CL:0000000"}, []string{"curated/cxg.h5ad"}},
		{[]string{"--where", "cell_type_ontology_term_id=cell", "--exact"}, []string{}},
		{[]string{"--where", "cell_type_ontology_term_id=CL:0000066", "--exact"}, []string{"curated/cxg.h5ad"}},
		{[]string{"--where", "cell_type_ontology_term_id=epithelial cell", "--exact"}, []string{"curated/cxg.h5ad"}},
		{[]string{"--where", "tissue_ontology_term_id=lung"}, []string{"curated/cxg.h5ad"}},
		{[]string{"--cell-type", "epithelial cell"}, []string{"curated/cxg.h5ad"}},
	} {
		if got := lsKeys(t, e, tc.args...); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ls %q = %v, want %v", tc.args, got, tc.want)
		}
	}

	// A value stored that is no term of the default source (annotated
	// under another one) is still found as it is stored.
	e.ok("annotate", "bm.csv", "--feature", "cell_type=hepatocyte")
	e.ok("ontology", "import", "celltype", "--source", filepath.Join(ontologies, "extra", "cl-blood_and_immune_upper_slim.obo"))
	// --cell-type finds it through the source version that knows it, and
	// says so (a term renamed or dropped by a newer version).
	if out, errOut, err := e.run("ls", "--cell-type", "hepatocyte"); err != nil || !strings.Contains(out, "bm.csv") || errOut == "" {
		t.Fatalf("ls --cell-type of a term only an older source knows: %v\n%s%s", err, out, errOut)
	}
	if got := lsKeys(t, e, "--where", "cell_type=hepatocyte"); !reflect.DeepEqual(got, []string{"bm.csv"}) {
		t.Fatalf("a stored value that is no term of the default source: %v", got)
	}
	e.fails(`"hepatocyt" is not a celltype term`, "ls", "--where", "cell_type=hepatocyt")
}

// TestWhereOnLabelFeatures: a cat[ULabel] feature's values are labels,
// which curate maps ignoring case and white space ("Male" → male), so a
// query maps them alike: --where sex=Male found nothing.
func TestWhereOnLabelFeatures(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("label", "create", "male")
	e.ok("label", "create", "female")
	e.ok("label", "create", "Treated")
	e.ok("label", "create", "treated")
	e.ok("feature", "create", "sex", "--dtype", "cat[ULabel]")
	e.ok("schema", "create", "sx", "--feature", "sex")
	e.ok("curate", e.write("s.csv", []byte("sex\nMale\nmale\n")), "--schema", "sx", "--standardize", "--key", "s.csv")
	e.ok("save", e.write("f.csv", []byte("x\n1\n")), "--key", "f.csv")
	e.ok("annotate", "f.csv", "--feature", "sex=female", "--label", "Treated", "--label", "female")
	e.ok("save", e.write("g.csv", []byte("x\n2\n")), "--key", "g.csv")
	e.ok("feature", "create", "cond", "--dtype", "cat[ULabel]")
	e.ok("annotate", "f.csv", "--feature", "cond=Treated")
	e.ok("annotate", "g.csv", "--label", "treated", "--feature", "cond=treated")
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--where", "sex=male"}, []string{"s.csv"}},
		{[]string{"--where", "sex=Male"}, []string{"s.csv"}},
		{[]string{"--where", "sex= MALE "}, []string{"s.csv"}},
		{[]string{"--where", "sex!=Male"}, []string{"f.csv"}},
		{[]string{"--label", "Female"}, []string{"f.csv"}},
		{[]string{"--label", "Treated"}, []string{"f.csv"}}, // the label itself, not its case twin
		{[]string{"--where", "cond=treated"}, []string{"g.csv"}},
		{[]string{"--where", "cond=TREATED"}, []string{"f.csv", "g.csv"}},
	} {
		if got := lsKeys(t, e, tc.args...); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ls %q = %v, want %v", tc.args, got, tc.want)
		}
	}
	// Two labels fit: not guessed (curate does not map it either).
	e.fails(`no label "TREATED"`, "ls", "--label", "TREATED")
}

// TestFeatureDtypes: cat[bionty.CellType] (a spelling docs/annotate.md
// lists) was refused, cat[nonsense] accepted though no value could ever
// be annotated; a bad dtype is a usage error (exit 2).
func TestFeatureDtypes(t *testing.T) {
	e := newEnv(t)
	e.init()
	for _, tc := range []struct{ dtype, want string }{
		{"cat[bionty.CellType]", "feature a (cat[celltype])"},
		{"cat[bt.Tissue]", "feature b (cat[tissue])"},
		{"cat[DevelopmentalStage]", "feature c (cat[developmental_stage])"},
		{"cat", "feature d (cat[ULabel])"},
	} {
		name := tc.want[len("feature ") : len("feature ")+1]
		if out := e.ok("feature", "create", name, "--dtype", tc.dtype); strings.TrimSpace(out) != tc.want {
			t.Errorf("feature create %s --dtype %s: %q, want %q", name, tc.dtype, out, tc.want)
		}
	}
	e.ok("feature", "create", "a", "--dtype", "cat[CellType]") // the same feature again
	for _, tc := range []struct{ dtype, want string }{
		{"cat[nonsense]", `dtype "cat[nonsense]": no ontology entity "nonsense"; use cat[ULabel] for labels`},
		{"cat[x.Y]", `dtype "cat[x.Y]": use int, float`},
		{"integer", `dtype "integer": use int, float`},
	} {
		if err := e.fails(tc.want, "feature", "create", "z", "--dtype", tc.dtype); exitCode(err) != 2 {
			t.Errorf("--dtype %s: exit %d, want 2", tc.dtype, exitCode(err))
		}
	}
	// A custom entity is one with an imported source.
	e.ok("ontology", "import", "nucleus", "--source", filepath.Join(ontologies, "extra", "oak-go-nucleus.obo"))
	e.ok("feature", "create", "part", "--dtype", "cat[nucleus]")
	var fs []catalog.Feature
	e.jsonOut(&fs, "feature", "ls", "--format", "json")
	if len(fs) != 5 {
		t.Fatalf("features: %+v", fs)
	}
}

// TestFeatureDescriptionUpdate: creating an existing feature again with a
// description updated nothing, silently; now the description is replaced
// and stderr says so.
func TestFeatureDescriptionUpdate(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("feature", "create", "batch", "--dtype", "int")
	_, stderr, err := e.run("feature", "create", "batch", "--dtype", "int", "--description", "new desc")
	if err != nil || !strings.Contains(stderr, `feature batch exists; its description is now "new desc" (was "")`) {
		t.Fatalf("err %v, stderr %q", err, stderr)
	}
	e.ok("feature", "create", "batch", "--dtype", "int") // no --description: kept
	var fs []catalog.Feature
	e.jsonOut(&fs, "feature", "ls", "--format", "json")
	if len(fs) != 1 || fs[0].Description != "new desc" {
		t.Fatalf("features: %+v", fs)
	}
	e.fails("exists with dtype int", "feature", "create", "batch", "--dtype", "str", "--description", "x")
}

// TestIDSpellingsInTheCLI: standardize, show, annotate and ls take an id
// as other tools spell it (cl:0000084, CL_0000084, the OBO PURL).
func TestIDSpellingsInTheCLI(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("ontology", "import", "celltype", "--source", filepath.Join(ontologies, "cl-basic.obo"))
	e.ok("feature", "create", "cell_type", "--dtype", "cat[celltype]")
	e.ok("save", e.write("a.txt", []byte("a")), "--key", "a.txt")
	spellings := []string{"cl:0000084", "CL_0000084", "http://purl.obolibrary.org/obo/CL_0000084"}
	var st []struct {
		Standard string `json:"standard"`
		ID       string `json:"id"`
	}
	e.jsonOut(&st, append([]string{"ontology", "standardize", "celltype", "--format", "json"}, spellings...)...)
	for i, s := range st {
		if s.Standard != "T cell" || s.ID != "CL:0000084" {
			t.Errorf("standardize %s: %+v", spellings[i], s)
		}
	}
	for _, v := range spellings {
		if out := e.ok("ontology", "show", "celltype", v); !strings.Contains(out, "id           CL:0000084") {
			t.Errorf("show %s:\n%s", v, out)
		}
	}
	// An id given stays an id (as curate keeps one), in the canonical
	// spelling; the term records the name.
	e.ok("annotate", "a.txt", "--feature", "cell_type=CL_0000084")
	if a := annotations(t, e, "a.txt"); strings.Join(a.Features["cell_type"], ",") != "CL:0000084" || len(a.Terms) != 1 || a.Terms[0].Name != "T cell" {
		t.Fatalf("annotated %+v", a)
	}
	if got := lsKeys(t, e, "--where", "cell_type=cl:0000084", "--exact"); !reflect.DeepEqual(got, []string{"a.txt"}) {
		t.Fatalf("ls --where cell_type=cl:0000084: %v", got)
	}
}

// TestShowResolvesLikeStandardize: show found names and ids only, so a
// synonym ("T lymphocyte", "human") exited 1; an ambiguous one is listed,
// not guessed.
func TestShowResolvesLikeStandardize(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("ontology", "import", "celltype", "--source", filepath.Join(ontologies, "cl-basic.obo"))
	e.ok("ontology", "import", "organism", "--source", filepath.Join(ontologies, "ncbitaxon-taxslim.obo.gz"))
	for _, tc := range []struct{ entity, value, id string }{
		{"celltype", "T lymphocyte", "CL:0000084"},
		{"celltype", "t cell", "CL:0000084"},
		{"organism", "human", "NCBITaxon:9606"},
	} {
		var term struct {
			ID string `json:"id"`
		}
		e.jsonOut(&term, "ontology", "show", tc.entity, tc.value, "--format", "json")
		if term.ID != tc.id {
			t.Errorf("show %s %q = %s, want %s", tc.entity, tc.value, term.ID, tc.id)
		}
	}
	_, stderr, err := e.run("ontology", "show", "celltype", "T lymphocyte")
	if err != nil || !strings.Contains(stderr, `"T lymphocyte": EXACT synonym "T lymphocyte" of CL:0000084`) {
		t.Fatalf("show by synonym: %v, stderr %q", err, stderr)
	}
	if err := e.fails(`"mouse" names several organism terms`, "ontology", "show", "organism", "mouse"); exitCode(err) != 1 {
		t.Errorf("ambiguous: exit %d, want 1", exitCode(err))
	}
	e.fails(`no celltype term named "T cel"`, "ontology", "show", "celltype", "T cel")
}
