package main

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/catalog/postgres/pgtest"
)

// Datasets annotated with cell types from the real CL (the cellxgene JSON,
// the default cell type source): "T cell" ranks the T cell dataset first,
// although the index leaves out the word "t" and the cell atlas's key
// holds "cell" (which weighs more than a term name).
func TestSearchShortWords(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("ontology", "import", "celltype", "--source", filepath.Join(ontologies, "cellxgene-json", "CL-ontology-v2026-03-26.json.gz"))
	for key, term := range map[string]string{
		"cell_atlas/nk.csv":   "natural killer cell",
		"lung/epithelium.csv": "epithelial cell",
		"blood/lymph.csv":     "T cell",
	} {
		e.ok("save", e.write(key, []byte("id\n"+key+"\n")), "--key", key)
		e.ok("annotate", key, "--term", "celltype="+term)
	}
	var hits []catalog.Hit
	e.jsonOut(&hits, "search", "T cell", "--format", "json")
	if len(hits) != 3 || hits[0].Version.Key != "blood/lymph.csv" || hits[0].Score <= hits[1].Score {
		t.Fatalf("search T cell: %+v", hits)
	}
	e.jsonOut(&hits, "search", "T", "cell", "--limit", "1", "--format", "json")
	if len(hits) != 1 || hits[0].Version.Key != "blood/lymph.csv" {
		t.Fatalf("search T cell --limit 1: %+v", hits)
	}

	// The ontology search of the same source: a plural finds the term
	// first (normalized, not exact: validate rejects it), and the T cells
	// before tip and tuft cells.
	var terms []struct{ ID, Name, Rank string }
	e.jsonOut(&terms, "ontology", "search", "celltype", "T cells", "--format", "json")
	if len(terms) == 0 || terms[0].ID != "CL:0000084" || terms[0].Rank != "normalized_name" {
		t.Fatalf("ontology search T cells: %+v", terms)
	}
	e.jsonOut(&terms, "ontology", "search", "celltype", "T cell", "--limit", "40", "--format", "json")
	for _, h := range terms {
		if h.Name == "tip cell" || h.Name == "tuft cell" {
			t.Fatalf("ontology search T cell: %s among the first 40: %+v", h.Name, terms)
		}
	}
}

// A term renamed by a newer ontology version (CL:0000136, "fat cell" in
// v1, "adipocyte" in v2, the default since): `lamina search` finds the
// version annotated under v1 by either name, as `ls --cell-type` does, and
// one annotated under v2 by its old name too; `show` prints the name the
// default gives the term, and the one recorded. The word index keeps the
// names of annotate time, so search found nothing by "adipocyte". Both
// catalogs, and a bbolt one served by a mount daemon. The entity is
// imported as cell_type, then as celltype (audit a5: show compared the
// names as typed, and the second import made a second entity).
func TestSearchRenamedTerm(t *testing.T) {
	for _, cat := range []string{"bolt", "bolt-mounted", "postgres"} {
		t.Run(cat, func(t *testing.T) {
			e := workstationEnv(t, "ws")
			init := []string{"init", "--storage", filepath.Join(e.dir, "storage"), "--name", "m"}
			if cat == "postgres" {
				init = append(init, "--db", pgtest.URL(t))
			}
			e.ok(init...)
			e.ok("ontology", "import", "cell_type", "--source", e.file("cl1.obo", []byte(cellsV1)))
			e.ok("save", e.file("a.csv", []byte("a\n")), "--key", "lab/adipose.csv", "--description", "liver biopsy")
			e.ok("annotate", "lab/adipose.csv", "--term", "celltype=fat cell")
			e.ok("save", e.file("b.csv", []byte("b\n")), "--key", "lab/stroma.csv")
			e.ok("annotate", "lab/stroma.csv", "--term", "celltype=connective tissue cell")
			e.ok("ontology", "import", "celltype", "--source", e.file("cl2.obo", []byte(cellsV2)))
			e.ok("save", e.file("c.csv", []byte("c\n")), "--key", "lab/later.csv")
			e.ok("annotate", "lab/later.csv", "--term", "celltype=adipocyte")
			if cat == "bolt-mounted" {
				e.mount(filepath.Join(e.dir, "mnt"))
			}
			search := func(q string) []string {
				t.Helper()
				var hits []catalog.Hit
				if err := json.Unmarshal([]byte(e.ok("search", q, "--format", "json")), &hits); err != nil {
					t.Fatal(err)
				}
				var keys []string
				for _, h := range hits {
					if !slices.Contains(h.Fields, "term") && !strings.Contains(h.Version.Key, q) {
						t.Errorf("search %q: %s matched by %v", q, h.Version.Key, h.Fields)
					}
					keys = append(keys, h.Version.Key)
				}
				return keys
			}
			for q, want := range map[string][]string{
				"adipocyte":       {"lab/adipose.csv", "lab/later.csv"},
				"adipo":           {"lab/adipose.csv", "lab/later.csv"},
				"adipocyte liver": {"lab/adipose.csv", "lab/later.csv"}, // the description ranks it first
				"fat":             {"lab/adipose.csv", "lab/later.csv"},
				"connective":      {"lab/stroma.csv"},
			} {
				got := search(q)
				if q != "adipocyte liver" {
					slices.Sort(got) // same scores: in uid order
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("search %q = %v, want %v", q, got, want)
				}
			}
			if got := lsKeys2(t, e, "--cell-type", "adipocyte"); !reflect.DeepEqual(got, []string{"lab/adipose.csv", "lab/later.csv"}) {
				t.Errorf("ls --cell-type adipocyte = %v", got)
			}
			out := e.ok("show", "lab/adipose.csv")
			if want := `term            celltype adipocyte (CL:0000136; annotated as "fat cell")`; !strings.Contains(out, want) {
				t.Errorf("show of a version annotated before the rename:\n%s\nwant %s", out, want)
			}
			if out := e.ok("show", "lab/later.csv"); !strings.Contains(out, "term            celltype adipocyte (CL:0000136)\n") {
				t.Errorf("show of a version annotated after it:\n%s", out)
			}
		})
	}
}

// lsKeys2 is lsKeys for a mntEnv.
func lsKeys2(t *testing.T, e *mntEnv, args ...string) []string {
	t.Helper()
	var vs []catalog.Version
	if err := json.Unmarshal([]byte(e.ok(append([]string{"ls", "--format", "json"}, args...)...)), &vs); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, v := range vs {
		keys = append(keys, v.Key)
	}
	return keys
}
