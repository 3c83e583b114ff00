package ontology_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/lamina-bio/lamina/ontology"
)

func uberon(t testing.TB) *ontology.Index {
	return load(t, "tissue", "", "ontologies", "cellxgene-json", "UBERON-ontology-v2026-04-01.json.gz")
}

// position returns where the term with this name is in hits (from 1), or
// 0.
func position(hits []ontology.Hit, name string) int {
	return slices.IndexFunc(hits, func(h ontology.Hit) bool { return h.Name == name }) + 1
}

// A one-letter query word matches whole words: the T cells rank above tip
// and tuft cells, whose t only starts a word (the audit had tip cell 6th,
// naive T cell 28th, CD4-positive, alpha-beta T cell 229th).
func TestSearchOneLetterWord(t *testing.T) {
	cl := clJSON(t)
	hits := cl.Search("T cell", ontology.SearchOptions{Limit: 1000})
	if len(hits) == 0 || hits[0].ID != "CL:0000084" {
		t.Fatalf("first hit %+v, want T cell", first(hits))
	}
	tip, tuft := position(hits, "tip cell"), position(hits, "tuft cell")
	for _, name := range []string{"naive T cell", "alpha-beta T cell", "CD4-positive, alpha-beta T cell", "CD8-positive, alpha-beta T cell", "regulatory T cell"} {
		p := position(hits, name)
		if p == 0 || (tip != 0 && p > tip) || (tuft != 0 && p > tuft) {
			t.Errorf("%s at %d, tip cell at %d, tuft cell at %d", name, p, tip, tuft)
		}
		if p != 0 && hits[p-1].Rank != ontology.RankSubclass { // every word, and a T cell (TestSearchHierarchy)
			t.Errorf("%s: rank %v, want subclass", name, hits[p-1].Rank)
		}
	}
	// Every hit whose name or synonym holds t and cell as words comes
	// before every hit where a t only starts a word.
	lastWhole := 0
	for i, h := range hits {
		if h.Rank <= ontology.RankAllWords {
			lastWhole = i + 1
		}
	}
	if tip != 0 && tip < lastWhole || tuft != 0 && tuft < lastWhole {
		t.Errorf("tip cell %d, tuft cell %d, before the last whole-word hit %d", tip, tuft, lastWhole)
	}
	// Among the whole-word hits, the words as a phrase ("naive T cell")
	// come before the words apart ("T-helper 1 cell" has both).
	if a, b := position(hits, "naive T cell"), position(hits, "mucosal type mast cell"); a == 0 || b != 0 && b < a {
		t.Errorf("naive T cell at %d, mucosal type mast cell (T mast cells) at %d", a, b)
	}
	// A one-letter word alone still finds names that start with it as a
	// word, before names in which it only starts one.
	hits = cl.Search("T", ontology.SearchOptions{Limit: 50})
	if len(hits) == 0 || hits[0].ID != "CL:0000084" {
		t.Errorf(`Search("T") first = %+v, want T cell`, first(hits))
	}
	if p := position(hits, "tip cell"); p != 0 && p < position(hits, "naive T cell") {
		t.Errorf(`Search("T"): tip cell at %d before naive T cell`, p)
	}
	// A one-letter word as the last of several still completes words.
	hits = cl.Search("naive T c", ontology.SearchOptions{Limit: 5})
	if len(hits) == 0 || hits[0].Name != "naive T cell" {
		t.Errorf(`Search("naive T c") first = %+v, want naive T cell`, first(hits))
	}
}

// The term whose name equals the query up to a plural ending, hyphens and
// spaces comes first, right below an exact name, and is not called exact:
// validate and standardize do not accept "B cells" for B cell.
func TestSearchPlurals(t *testing.T) {
	cl := clJSON(t)
	for _, tc := range []struct {
		query, id string
		rank      ontology.Rank
	}{
		{"T cells", "CL:0000084", ontology.RankNormalizedName},
		{"B-cells", "CL:0000236", ontology.RankNormalizedName},
		{"b cells", "CL:0000236", ontology.RankNormalizedName},
		{"T-cells", "CL:0000084", ontology.RankNormalizedName},
		{"Monocytes", "CL:0000576", ontology.RankNormalizedName},
		{"dendritic-cells", "CL:0000451", ontology.RankNormalizedName},
		{"T lymphocytes", "CL:0000084", ontology.RankNormalizedSynonym},
		{"natural killer cells", "CL:0000623", ontology.RankNormalizedName},
	} {
		t.Run(tc.query, func(t *testing.T) {
			hits := cl.Search(tc.query, ontology.SearchOptions{})
			if len(hits) == 0 || hits[0].ID != tc.id || hits[0].Rank != tc.rank {
				t.Fatalf("first hit %+v, want %s at %v", first(hits), tc.id, tc.rank)
			}
		})
	}
	if r := ontology.RankNormalizedName.String(); r != "normalized_name" {
		t.Errorf("RankNormalizedName is %q", r)
	}
	// An exact name still beats another term's name up to a plural, and an
	// exact synonym a synonym up to a plural.
	if hits := cl.Search("T cell", ontology.SearchOptions{Limit: 3}); hits[0].ID != "CL:0000084" || hits[0].Rank != ontology.RankExactName {
		t.Errorf("T cell: %+v", first(hits))
	}
	if hits := cl.Search("T lymphocyte", ontology.SearchOptions{Limit: 3}); hits[0].ID != "CL:0000084" || hits[0].Rank != ontology.RankExactSynonym {
		t.Errorf("T lymphocyte: %+v", first(hits))
	}
}

// A term whose name is made of some of the query's words is a result,
// below the terms that hold them all and above fuzzy ones; so is it a
// suggestion. A typo in the other word leaves it to fuzzy matching.
func TestSearchSomeWords(t *testing.T) {
	ub := uberon(t)
	hits := ub.Search("peripheral blood", ontology.SearchOptions{})
	p := position(hits, "blood")
	if p == 0 {
		t.Fatalf("peripheral blood: no blood in %+v", hits)
	}
	if h := hits[p-1]; h.ID != "UBERON:0000178" || h.Rank != ontology.RankSomeWords {
		t.Errorf("blood: %+v", h)
	}
	for _, h := range hits[:p-1] {
		if h.Rank >= ontology.RankSomeWords {
			t.Errorf("%s (%v) before blood", h.Name, h.Rank)
		}
	}
	if s := ub.Suggest("peripheral blood", 3); len(s) == 0 || s[0].ID != "UBERON:0000178" {
		t.Errorf("Suggest(peripheral blood) = %+v, want blood first", s)
	}
	cl := clJSON(t)
	// cell alone is too little of "dendritc cell"; dendritic cell is the
	// answer.
	for _, q := range []string{"dendritc cell", "dendritic cels"} {
		if hits := cl.Search(q, ontology.SearchOptions{Limit: 5}); len(hits) == 0 || hits[0].ID != "CL:0000451" {
			t.Errorf("Search(%q) first = %+v, want dendritic cell", q, first(hits))
		}
		if s := cl.Suggest(q, 3); len(s) == 0 || s[0].ID != "CL:0000451" {
			t.Errorf("Suggest(%q) = %+v, want dendritic cell first", q, s)
		}
	}
	// Words a term lacks do not keep it from the query's other words.
	if hits := cl.Search("human T cell", ontology.SearchOptions{Limit: 50}); position(hits, "T cell") == 0 {
		t.Errorf("human T cell: no T cell in %+v", hits)
	}
	// With the plurals: Suggest puts the term first.
	for _, v := range []string{"T cells", "B-cells"} {
		s := cl.Suggest(v, 3)
		if len(s) == 0 || s[0].Score < 0.95 {
			t.Errorf("Suggest(%q) = %+v", v, s)
		}
	}
}

// A query equal to a RELATED synonym ranks "synonym", not
// "exact_synonym": scripts read the rank name as the scope. Another gene's
// official symbol ranks as a name.
func TestSearchSynonymRankNamesTheScope(t *testing.T) {
	stages := load(t, "developmental_stage", "human", "ontologies", "hsapdv.obo")
	hits := stages.Search("neonate", ontology.SearchOptions{Limit: 3})
	if len(hits) == 0 || hits[0].Rank != ontology.RankSynonym || hits[0].Rank.String() != "synonym" {
		t.Errorf("neonate (RELATED): %+v", hits)
	}
	if hits := clOBO(t).Search("T lymphocyte", ontology.SearchOptions{Limit: 1}); hits[0].Rank.String() != "exact_synonym" {
		t.Errorf("T lymphocyte (EXACT): %+v", hits)
	}
	if hits := humanGenes(t).Search("MCL1", ontology.SearchOptions{Limit: 1}); len(hits) == 0 || hits[0].ID != "ENSG00000143384" || hits[0].Rank != ontology.RankExactName {
		t.Errorf("MCL1 (a symbol): %+v", hits)
	}
}

// NamesWithWord finds terms by the words of their names, whole or as a
// prefix, with their alt ids; synonyms do not count, and each term comes
// once however many of its words match.
func TestNamesWithWord(t *testing.T) {
	src, err := ontology.ReadOBO(strings.NewReader(`format-version: 1.2
ontology: cl

[Term]
id: CL:0000136
name: adipocyte
alt_id: CL:0000448
synonym: "fat cell" EXACT []

[Term]
id: CL:0000001
name: fat storing fat cell
`), "t.obo")
	if err != nil {
		t.Fatal(err)
	}
	x, err := ontology.Build(src)
	if err != nil {
		t.Fatal(err)
	}
	for prefix, want := range map[string]string{
		"adipocyte": "CL:0000136=adipocyte CL:0000448=adipocyte",
		"adipo":     "CL:0000136=adipocyte CL:0000448=adipocyte",
		"fat":       "CL:0000001=fat storing fat cell",
		"cell":      "CL:0000001=fat storing fat cell",
		"cells":     "",
		"":          "",
	} {
		var got []string
		x.NamesWithWord(prefix, func(id, name string) { got = append(got, id+"="+name) })
		if g := strings.Join(got, " "); g != want {
			t.Errorf("NamesWithWord(%q) = %q, want %q", prefix, g, want)
		}
	}
}
