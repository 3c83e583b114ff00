package ontology_test

import (
	"strings"
	"testing"

	"github.com/lamina-bio/lamina/ontology"
)

// Values as spreadsheets and other systems write them: Unicode dashes,
// decomposed accents (macOS, Excel), zero-width and no-break spaces.
// Standardize and Search compare in one normal form (fold), so they
// agree; an ASCII hyphen still differs from a space.
func TestStandardizeUnicodeSpellings(t *testing.T) {
	cl := clJSON(t)
	for _, tc := range []struct{ value, id, name string }{
		{"T\u2010cell", "CL:0000084", "T cell"},             // hyphen
		{"T\u2011cell", "CL:0000084", "T cell"},             // non-breaking hyphen
		{"T\u2013cell", "CL:0000084", "T cell"},             // en dash
		{"T\u2212cell", "CL:0000084", "T cell"},             // minus sign
		{"T\uff0dcell", "CL:0000084", "T cell"},             // fullwidth hyphen-minus
		{"T cell\u200b", "CL:0000084", "T cell"},            // zero-width space
		{"\ufeffT cell", "CL:0000084", "T cell"},            // byte order mark
		{"T\u00a0cell", "CL:0000084", "T cell"},             // no-break space
		{"Mu\u0308ller cell", "CL:0000636", "Mueller cell"}, // NFD
	} {
		st := cl.Standardize(tc.value, ontology.StandardizeOptions{})
		if !st.Matched() || st.ID != tc.id || st.Name != tc.name {
			t.Errorf("Standardize(%+q) = %v %s %q (%s), want %s %q", tc.value, st.Match, st.ID, st.Name, st.Reason(), tc.id, tc.name)
		}
		hits := cl.Search(tc.value, ontology.SearchOptions{Limit: 3})
		if len(hits) == 0 || hits[0].ID != tc.id || hits[0].Rank > ontology.RankExactSynonym {
			t.Errorf("Search(%+q) = %+v, want %s first as a name or EXACT synonym", tc.value, hits, tc.id)
		}
	}
	// Only spelling: a space is no hyphen, and "T cell" stays the name.
	if st := cl.Standardize("T\u2010cell", ontology.StandardizeOptions{}); st.Match != ontology.BySynonym || st.Via != "T-cell" {
		t.Errorf("T\u2010cell: %v via %q, want the EXACT synonym T-cell", st.Match, st.Via)
	}
	if st := cl.Standardize("t cell", ontology.StandardizeOptions{}); st.Match != ontology.FoldedName {
		t.Errorf("t cell: %v, want %v", st.Match, ontology.FoldedName)
	}
	if st := cl.Standardize("Tcell", ontology.StandardizeOptions{}); st.Matched() {
		t.Errorf("Tcell: %v %s, want no match", st.Match, st.ID)
	}

	// Mondo writes some labels with an en dash; users type a hyphen.
	mondo := load(t, "disease", "", "ontologies", "cellxgene-json", "MONDO-ontology-v2026-05-05.json.gz")
	v := "COVID-19-associated multisystem inflammatory syndrome in children"
	st := mondo.Standardize(v, ontology.StandardizeOptions{})
	if st.Match != ontology.FoldedName || st.ID != "MONDO:0100163" || !strings.Contains(st.Name, "\u2013") {
		t.Errorf("Standardize(%q) = %v %s %q", v, st.Match, st.ID, st.Name)
	}
}

// Gene tables hold unversioned upper-case Ensembl ids; GENCODE, h5ad
// var_names and hand-made lists add a version or lowercase them.
func TestEnsemblIDSpellings(t *testing.T) {
	human := load(t, "gene", "human", "genes", "gencode_genes_homo_sapiens.csv.gz")
	mouse := load(t, "gene", "mouse", "genes", "gencode_genes_mus_musculus.csv.gz")
	for _, tc := range []struct {
		idx            *ontology.Index
		value, id, sym string
	}{
		{human, "ENSG00000156738.17", "ENSG00000156738", "MS4A1"},
		{human, "ENSG00000156738.18", "ENSG00000156738", "MS4A1"},
		{human, "ensg00000156738", "ENSG00000156738", "MS4A1"},
		{human, " Ensg00000156738.18 ", "ENSG00000156738", "MS4A1"},
		{mouse, "ENSMUSG00000051951.6", "ENSMUSG00000051951", "Xkr4"},
		{humanGenes(t), "ENSG00000081237.21", "ENSG00000081237", "PTPRC"},
	} {
		st := tc.idx.Standardize(tc.value, ontology.StandardizeOptions{})
		if st.Match != ontology.ByID || st.ID != tc.id || st.Name != tc.sym {
			t.Errorf("Standardize(%q) = %v %s %q (%s), want %s %s", tc.value, st.Match, st.ID, st.Name, st.Reason(), tc.id, tc.sym)
		}
		if term, ok := tc.idx.Term(tc.value); !ok || term.ID != tc.id {
			t.Errorf("Term(%q) = %v, %v", tc.value, term, ok)
		}
		// Validate takes the id as the table writes it (cellxgene
		// requires unversioned ids) and says which gene it spells.
		val := tc.idx.Validate(tc.value)
		if val.Valid || !strings.Contains(val.Message(), "spells the id "+tc.id+" ("+tc.sym+")") {
			t.Errorf("Validate(%q): valid %v, %q", tc.value, val.Valid, val.Message())
		}
		if hits := tc.idx.Search(tc.value, ontology.SearchOptions{Limit: 1}); len(hits) == 0 || hits[0].ID != tc.id {
			t.Errorf("Search(%q) = %+v, want %s", tc.value, hits, tc.id)
		}
	}
	// A PAR_Y id is another gene than the X copy; no id is no Ensembl id.
	for _, v := range []string{"ENSG00000182378.14_PAR_Y", "ENSG00000156738.", "ENSG00000156738.x", "ENS00000156738", "ENSG", "ENSGX.1"} {
		if st := human.Standardize(v, ontology.StandardizeOptions{}); st.Matched() {
			t.Errorf("Standardize(%q) = %v %s, want no match", v, st.Match, st.ID)
		}
	}
}

// Uberon's OBO carries the language inside synonym text ("Herz@de"
// RELATED); imports drop it, and sources stored with it lose it when
// read back, so "Herz" maps as the synonym.
func TestLanguageTaggedSynonyms(t *testing.T) {
	ub := load(t, "tissue", "", "ontologies", "uberon-efo-slim.obo")
	st := ub.Standardize("Herz", ontology.StandardizeOptions{Related: true})
	if st.Match != ontology.ByRelated || st.ID != "UBERON:0000948" || st.Via != "Herz" {
		t.Fatalf("Standardize(Herz) = %v %s %q via %q", st.Match, st.ID, st.Name, st.Via)
	}
	if hits := ub.Search("Herz", ontology.SearchOptions{Limit: 1}); len(hits) == 0 || hits[0].ID != "UBERON:0000948" || hits[0].Matched != "Herz" {
		t.Errorf("Search(Herz) = %+v", hits)
	}
	// A source stored by an older version holds the tag.
	src := &ontology.Source{Entity: "tissue", Ontology: "T", Terms: []ontology.Term{{ID: "T:1", Name: "heart",
		Synonyms: []ontology.Synonym{{Text: "Herz@de", Scope: ontology.Related}, {Text: "Kopfkapsel@de-CH"}, {Text: "a@b.org"}, {Text: "x @de"}}}}}
	back, err := ontology.Unmarshal(ontology.Marshal(src))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range back.Terms[0].Synonyms {
		got = append(got, s.Text)
	}
	if strings.Join(got, "|") != "Herz|Kopfkapsel|a@b.org|x @de" {
		t.Errorf("synonyms read back: %q", got)
	}
}

// Search takes the id spellings Standardize takes.
func TestSearchIDSpellings(t *testing.T) {
	cl, hp := clOBO(t), hpo(t)
	for _, tc := range []struct {
		idx       *ontology.Index
		query, id string
	}{
		{cl, "CL:0000084", "CL:0000084"},
		{cl, "cl_0000084", "CL:0000084"},
		{cl, "cl:0000084", "CL:0000084"},
		{cl, " http://purl.obolibrary.org/obo/CL_0000084", "CL:0000084"},
		{hp, "hp_0004715", "HP:0000003"}, // an alt_id
	} {
		hits := tc.idx.Search(tc.query, ontology.SearchOptions{Limit: 3})
		if len(hits) == 0 || hits[0].ID != tc.id || hits[0].Rank != ontology.RankExactName {
			t.Errorf("Search(%q) = %+v, want %s first", tc.query, hits, tc.id)
		}
	}
}

// Greek letters and their Latin spelling are one text: "αβ T cell" is
// "alpha-beta T cell" (search ranked "gamma-delta T cell" first, a fuzzy
// match of its synonym "gd T cell"), and Mondo's "β-sarcoglycan" is found
// typed "beta-sarcoglycan".
func TestGreekLetters(t *testing.T) {
	cl := clOBO(t)
	for _, tc := range []struct{ value, id string }{
		{"αβ T cell", "CL:0000789"},
		{"γδ T cell", "CL:0000798"},
		{"ΓΔ T cell", "CL:0000798"},
		{"CD8-positive, αβ T cell", "CL:0000625"},
	} {
		hits := cl.Search(tc.value, ontology.SearchOptions{Limit: 3})
		if len(hits) == 0 || hits[0].ID != tc.id || hits[0].Rank != ontology.RankExactName {
			t.Errorf("Search(%q) = %+v, want %s first, exact_name", tc.value, hits, tc.id)
		}
		if st := cl.Standardize(tc.value, ontology.StandardizeOptions{}); st.Match != ontology.FoldedName || st.ID != tc.id {
			t.Errorf("Standardize(%q) = %v %s (%s), want %s", tc.value, st.Match, st.ID, st.Reason(), tc.id)
		}
	}
	mondo := load(t, "disease", "", "ontologies", "cellxgene-json", "MONDO-ontology-v2026-05-05.json.gz")
	v := "muscular dystrophy with reduced beta-sarcoglycan, domestic cat"
	if st := mondo.Standardize(v, ontology.StandardizeOptions{}); st.Match != ontology.FoldedName || st.ID != "MONDO:1012718" {
		t.Errorf("Standardize(%q) = %v %s (%s), want MONDO:1012718", v, st.Match, st.ID, st.Reason())
	}
	// Only Greek letters: a Latin "ab" is no αβ.
	if st := cl.Standardize("ab T cell", ontology.StandardizeOptions{}); st.ID == "CL:0000789" {
		t.Errorf("ab T cell: %v %s, want no alpha-beta T cell", st.Match, st.ID)
	}
}
