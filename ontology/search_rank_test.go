package ontology_test

import (
	"testing"

	"github.com/lamina-bio/lamina/ontology"
)

// Audit d2: search ranks what a biologist means first.

func ncbitaxon(t testing.TB) *ontology.Index {
	return load(t, "organism", "", "ontologies", "ncbitaxon-taxslim.obo.gz")
}

// "CD4+" is how papers write CL's "CD4-positive": CD4-positive,
// alpha-beta T cell came twelfth for "CD4+ T cell", after its subtypes
// Th1 and Th17 (whose synonyms say "Th1 CD4+ T cell") and the double
// negative thymocyte ("CD4-CD8- T cell").
func TestSearchMarkerSigns(t *testing.T) {
	for _, x := range []*ontology.Index{clJSON(t), clOBO(t)} {
		for q, want := range map[string]string{
			"CD4+ T cell":         "CL:0000624",
			"CD4-positive T cell": "CL:0000624",
			"CD8+ T cell":         "CL:0000625",
			"CD8+ T cells":        "CL:0000625",
		} {
			if hits := x.Search(q, ontology.SearchOptions{}); len(hits) == 0 || hits[0].ID != want {
				t.Errorf("%s: Search(%q) first = %+v, want %s", x.Source().Version, q, first(hits), want)
			}
		}
	}
	// A trailing minus after a marker is "-negative"; "pre-" is no marker.
	x, err := ontology.Build(mustOBO(t, `format-version: 1.4

[Term]
id: X:1
name: CD8-positive, CD28-negative T cell

[Term]
id: X:2
name: pre- T cell
`))
	if err != nil {
		t.Fatal(err)
	}
	for q, want := range map[string]string{"CD8+CD28- T cell": "X:1", "cd8+ cd28- T cells": "X:1", "pre- T cell": "X:2"} {
		if hits := x.Search(q, ontology.SearchOptions{}); len(hits) == 0 || hits[0].ID != want || hits[0].Rank > ontology.RankNormalizedName {
			t.Errorf("Search(%q) = %+v, want %s by its name", q, hits, want)
		}
	}
}

// Below T cell come the T cells: "T cell zone reticular cell" (a
// fibroblast, no T cell) ranked before alpha-beta T cell as a name
// prefix. The word matches that are subclasses of the term named come
// first, each before its own subclasses.
func TestSearchHierarchy(t *testing.T) {
	cl := clJSON(t)
	hits := cl.Search("T cell", ontology.SearchOptions{Limit: 1000})
	zone := position(hits, "T cell zone reticular cell")
	if zone == 0 || hits[0].ID != "CL:0000084" {
		t.Fatalf("T cell: first %+v, zone reticular cell at %d", first(hits), zone)
	}
	for _, name := range []string{"alpha-beta T cell", "gamma-delta T cell", "CD4-positive, alpha-beta T cell", "CD8-positive, alpha-beta T cell"} {
		if p := position(hits, name); p == 0 || p > zone || hits[p-1].Rank != ontology.RankSubclass {
			t.Errorf("%s at %d (%v), T cell zone reticular cell at %d", name, p, hits[max(p, 1)-1].Rank, zone)
		}
	}
	if a, b := position(hits, "alpha-beta T cell"), position(hits, "CD4-positive, alpha-beta T cell"); a > b {
		t.Errorf("alpha-beta T cell at %d, after its subclass CD4-positive, alpha-beta T cell at %d", a, b)
	}
	for i := 1; i < len(hits); i++ {
		if hits[i].Rank < hits[i-1].Rank {
			t.Fatalf("out of rank order at %d: %+v, %+v", i, hits[i-1], hits[i])
		}
	}
}

// "mouse" is an EXACT synonym of the genus Mus and of Mus musculus in
// NCBITaxon: the species, the more specific, comes first.
func TestSearchNamedSpecificFirst(t *testing.T) {
	hits := ncbitaxon(t).Search("mouse", ontology.SearchOptions{Limit: 5})
	if len(hits) < 2 || hits[0].ID != "NCBITaxon:10090" || hits[1].ID != "NCBITaxon:10088" {
		t.Errorf("mouse: %+v, want Mus musculus then Mus", hits)
	}
}

// A British spelling finds the American name: leukemia came sixth for
// "leukaemia", after terms with "leukaemia" in a synonym.
func TestSearchBritishSpelling(t *testing.T) {
	m := mondo(t)
	for q, want := range map[string]string{
		"leukaemia":               "MONDO:0005059", // leukemia
		"acute myeloid leukaemia": "MONDO:0018874", // acute myeloid leukemia
		"anaemia":                 "MONDO:0002280", // anemia
		"tumour":                  "MONDO:0005070", // neoplasm, EXACT tumor
	} {
		hits := m.Search(q, ontology.SearchOptions{Limit: 5})
		if len(hits) == 0 || hits[0].ID != want {
			t.Errorf("Search(%q) first = %+v, want %s", q, first(hits), want)
		}
	}
	// Only to a word the source has: "four" is no "for".
	if hits := m.Search("four", ontology.SearchOptions{Limit: 50}); position(hits, "for") != 0 {
		t.Errorf("four: %+v", hits)
	}
}
