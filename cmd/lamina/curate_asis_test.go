package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/lamina-bio/lamina/catalog"
)

// tinyTissues maps every tissue of pbmc_small's obs: "Bone Marrow" by
// case, "blod" by an exact synonym; the others are names.
const tinyTissues = `format-version: 1.2
ontology: tiny

[Term]
id: UBERON:0000178
name: blood
synonym: "blod" EXACT []

[Term]
id: UBERON:0002371
name: bone marrow

[Term]
id: UBERON:0000029
name: lymph node

[Term]
id: UBERON:9000001
name: peripheral blood
is_a: UBERON:0000178 ! blood
`

// TestCurateStandardizeAnnDataSavedAsIs: --standardize rewrites CSV, TSV
// and Parquet only; of an h5ad (or AnnData zarr) the report said
// "standardized … valid after standardizing" and saved the file unchanged.
// It now says the values map to standard terms in the annotations only and
// the file is saved as it is; the annotations keep the standard terms, so
// --where tissue=blood finds a file whose column says "blod" (an exact
// synonym of blood).
func TestCurateStandardizeAnnDataSavedAsIs(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("ontology", "import", "tissue", "--source", e.write("tiny.obo", []byte(tinyTissues)))
	e.ok("feature", "create", "tissue", "--dtype", "cat[tissue]")
	e.ok("schema", "create", "t", "--feature", "tissue")
	h5ad := filepath.Join(samples, "pbmc_small.h5ad")

	out := e.ok("curate", h5ad, "--schema", "t", "--standardize", "--key", "curated/x.h5ad")
	for _, s := range []string{
		"✓ obs.tissue (cat[tissue]): 315 of 315 values valid (106 mapped to standard terms, annotation only)\n",
		`    maps "blod" (55) → "blood"`,
		`    maps "Bone Marrow" (51) → "bone marrow"`,
		"valid with the values mapped to standard terms (annotation only: h5ad files are saved as they are, not rewritten",
		"saved curated/x.h5ad@v1 (",
		") as it is (not standardized), annotated with schema t",
	} {
		if !strings.Contains(out, s) {
			t.Errorf("curate --standardize of an h5ad lacks %q:\n%s", s, out)
		}
	}
	if strings.Contains(out, "standardized \"") || strings.Contains(out, "valid after standardizing") {
		t.Errorf("curate of an h5ad claims it was standardized:\n%s", out)
	}
	// Saved as it is.
	got := e.ok("get", "curated/x.h5ad", "-o", "-")
	if want, _ := os.ReadFile(h5ad); !bytes.Equal([]byte(got), want) {
		t.Errorf("the saved h5ad differs from the file (%d bytes, want %d)", len(got), len(want))
	}
	// The annotations have the standard terms, and queries find them.
	var v struct {
		Annotations catalog.Annotations `json:"annotations"`
	}
	e.jsonOut(&v, "show", "curated/x.h5ad", "--format", "json")
	if f := v.Annotations.Features["tissue"]; !contains(f, "blood") || !contains(f, "bone marrow") || contains(f, "blod") || contains(f, "Bone Marrow") {
		t.Errorf("tissue values annotated: %v", f)
	}
	if got := lsKeys(t, e, "--where", "tissue=blood", "--exact"); !reflect.DeepEqual(got, []string{"curated/x.h5ad"}) {
		t.Errorf("--where tissue=blood: %v", got)
	}
	// The file's own spelling maps to the same term in a query.
	if got := lsKeys(t, e, "--where", "tissue=blod", "--exact"); !reflect.DeepEqual(got, []string{"curated/x.h5ad"}) {
		t.Errorf("--where tissue=blod: %v", got)
	}
	// JSON says what was saved: not rewritten.
	var j struct {
		Saved struct {
			Unchanged bool  `json:"unchanged"`
			Rewritten *bool `json:"rewritten"`
		} `json:"saved"`
	}
	if err := json.Unmarshal([]byte(e.ok("curate", h5ad, "--schema", "t", "--standardize", "--key", "curated/x.h5ad", "--format", "json")), &j); err != nil ||
		!j.Saved.Unchanged || j.Saved.Rewritten == nil || *j.Saved.Rewritten {
		t.Errorf("curate --format json: %+v, %v", j, err)
	}
	// An AnnData zarr store likewise.
	out = e.ok("curate", filepath.Join(samples, "pbmc_small.zarr"), "--schema", "t", "--standardize")
	if !strings.Contains(out, `maps "blod" (55) → "blood"`) || !strings.Contains(out, "AnnData zarr stores are saved as they are") {
		t.Errorf("curate --standardize of a zarr store:\n%s", out)
	}
	// A CSV is rewritten, and says so.
	csv := e.write("obs.csv", []byte("tissue\nblod\nblood\n"))
	out = e.ok("curate", csv, "--schema", "t", "--standardize", "--key", "curated/obs.csv")
	if !strings.Contains(out, `    standardized "blod" (1) → "blood"`) || !strings.Contains(out, "valid after standardizing") || strings.Contains(out, "as it is") {
		t.Errorf("curate --standardize of a CSV:\n%s", out)
	}
	if got := e.ok("get", "curated/obs.csv", "-o", "-"); got != "tissue\nblood\nblood\n" {
		t.Errorf("saved CSV = %q", got)
	}
}
