package main

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/lamina-bio/lamina/catalog"
)

// TestAnnotateAltIDStoredAsPrimary: annotate --feature stored a secondary
// id (alt_id) of a cat[ENTITY] feature as typed (cell_type = CL:0000739),
// while curate --standardize maps it to the primary id (CL:0000043): the
// same value ended up in two spellings depending on the command. annotate
// now stores what curate writes, through the same code, and says so on
// stderr only, so that --format json stays JSON; a str feature keeps its
// text.
func TestAnnotateAltIDStoredAsPrimary(t *testing.T) {
	e := annotEnv(t)
	e.ok("feature", "create", "note", "--dtype", "str")
	e.ok("save", e.write("a.csv", []byte("a,b\n1,2\n")), "--key", "t/a.csv")

	// CL:0000739 is an alt_id of CL:0000043 "mature basophil" in
	// cl-basic.obo, UBERON:0026602 one of UBERON:0000044 "dorsal root
	// ganglion" in uberon-efo-slim.obo.
	out, stderr, err := e.run("annotate", "t/a.csv", "--format", "json",
		"--feature", "cell_type=CL:0000739", "--feature", "tissue=UBERON:0026602", "--feature", "note=CL:0000739")
	if err != nil {
		t.Fatalf("annotate: %v\n%s", err, stderr)
	}
	var a catalog.Annotations
	if err := json.Unmarshal([]byte(out), &a); err != nil {
		t.Fatalf("annotate --format json printed no JSON (%v):\n%s", err, out)
	}
	for _, want := range []string{
		`cell_type: "CL:0000739" standardized to "CL:0000043" (mature basophil): CL:0000739 is a secondary id of CL:0000043`,
		`tissue: "UBERON:0026602" standardized to "UBERON:0000044" (dorsal root ganglion): UBERON:0026602 is a secondary id of UBERON:0000044`,
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, "note") {
		t.Errorf("stderr speaks of the str feature note:\n%s", stderr)
	}
	want := map[string][]string{"cell_type": {"CL:0000043"}, "tissue": {"UBERON:0000044"}, "note": {"CL:0000739"}}
	if !reflect.DeepEqual(a.Features, want) {
		t.Errorf("features %v, want %v", a.Features, want)
	}
	var ids []string
	for _, tm := range a.Terms {
		ids = append(ids, tm.ID)
	}
	if !reflect.DeepEqual(ids, []string{"CL:0000043", "UBERON:0000044"}) {
		t.Errorf("terms %+v, want CL:0000043 and UBERON:0000044", a.Terms)
	}

	// curate --standardize stores the same value for the same cell.
	e.ok("schema", "create", "alt", "--feature", "cell_type", "--feature", "tissue")
	in := e.write("c.csv", []byte("cell_type,tissue\nCL:0000739,UBERON:0026602\n"))
	e.ok("curate", in, "--schema", "alt", "--standardize", "--key", "t/c.csv")
	var v struct {
		Annotations catalog.Annotations `json:"annotations"`
	}
	e.jsonOut(&v, "show", "t/c.csv", "--format", "json")
	for _, f := range []string{"cell_type", "tissue"} {
		if got := v.Annotations.Features[f]; !reflect.DeepEqual(got, a.Features[f]) {
			t.Errorf("curate stored %s = %v, annotate %v", f, got, a.Features[f])
		}
	}

	// Both are found by the primary id and by the alt id.
	for _, q := range []string{"cell_type=CL:0000043", "cell_type=CL:0000739", "tissue=UBERON:0026602"} {
		if got := lsKeys(t, e, "--where", q); !slices.Equal(got, []string{"t/a.csv", "t/c.csv"}) {
			t.Errorf("ls --where %s = %v, want t/a.csv and t/c.csv", q, got)
		}
	}
	// A term's own id and name are stored as typed, with no note.
	e.ok("save", e.write("b.csv", []byte("a\n1\n")), "--key", "t/b.csv")
	if _, stderr, err := e.run("annotate", "t/b.csv", "--feature", "cell_type=CL:0000043", "--feature", "cell_type=B cell"); err != nil || stderr != "" {
		t.Fatalf("annotate by id and name: %v, stderr %q; want nothing", err, stderr)
	}
}
