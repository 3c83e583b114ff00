package main

import (
	"path/filepath"
	"testing"

	"github.com/lamina-bio/lamina/catalog"
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
