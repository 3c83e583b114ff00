package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/lamina-bio/lamina/catalog"
)

// TestCurateAltIDMapped: a secondary id (alt_id) in a table is reported as
// mapped to its primary id and rewritten by --standardize, as a synonym is
// to its name, and `ontology inspect` says the same. Before, HP:0004715
// (of HP:0000003) and NCBITaxon:980517 (of NCBITaxon:1002672) passed
// curation as valid, stayed in the saved table and were missing from
// --mapping, while `ontology standardize` mapped them.
func TestCurateAltIDMapped(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("ontology", "import", "phenotype", "--source", filepath.Join(ontologies, "hp.obo.gz"))
	e.ok("ontology", "import", "organism", "--source", filepath.Join(ontologies, "ncbitaxon-taxslim.obo.gz"))
	e.ok("feature", "create", "phenotype", "--dtype", "cat[phenotype]")
	e.ok("feature", "create", "organism", "--dtype", "cat[organism]")
	e.ok("schema", "create", "s", "--feature", "phenotype", "--feature", "organism")
	in := e.write("alt.csv", []byte("phenotype,organism\nHP:0004715,NCBITaxon:980517\nHP:0000003,NCBITaxon:9606\n"))

	// As it is, the table does not validate: the alt ids are to be mapped.
	out, _, err := e.run("curate", in, "--schema", "s")
	if err == nil || exitCode(err) != 1 {
		t.Fatalf("curate without --standardize: %v, want exit 1\n%s", err, out)
	}
	for _, want := range []string{
		`--standardize would map "HP:0004715" (1) → "HP:0000003": secondary id of HP:0000003`,
		`--standardize would map "NCBITaxon:980517" (1) → "NCBITaxon:1002672": secondary id of NCBITaxon:1002672`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("curate report lacks %q:\n%s", want, out)
		}
	}

	m := e.path("m.tsv")
	e.ok("curate", in, "--schema", "s", "--standardize", "--mapping", m, "--key", "t/alt.csv")
	mapping, err := os.ReadFile(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"phenotype\tHP:0004715\tHP:0000003\tsecondary id of HP:0000003\n", "organism\tNCBITaxon:980517\tNCBITaxon:1002672\t"} {
		if !strings.Contains(string(mapping), want) {
			t.Errorf("mapping lacks %q:\n%s", want, mapping)
		}
	}
	got := e.path("got.csv")
	e.ok("get", "t/alt.csv", "--output", got)
	b, err := os.ReadFile(got)
	if err != nil {
		t.Fatal(err)
	}
	if want := "phenotype,organism\nHP:0000003,NCBITaxon:1002672\nHP:0000003,NCBITaxon:9606\n"; string(b) != want {
		t.Errorf("saved table:\n%s\nwant:\n%s", b, want)
	}
	var v struct {
		Annotations catalog.Annotations `json:"annotations"`
	}
	e.jsonOut(&v, "show", "t/alt.csv", "--format", "json")
	if got := v.Annotations.Features["phenotype"]; !reflect.DeepEqual(got, []string{"HP:0000003"}) {
		t.Errorf("phenotype values %v, want the primary id only", got)
	}

	var ins struct {
		Validated, Mapped int
	}
	e.jsonOut(&ins, "ontology", "inspect", "phenotype", "--column", "phenotype", in, "--format", "json")
	if ins.Validated != 1 || ins.Mapped != 1 {
		t.Errorf("ontology inspect: %d valid, %d mapped; want 1 and 1 (the alt id mapped)", ins.Validated, ins.Mapped)
	}
}
