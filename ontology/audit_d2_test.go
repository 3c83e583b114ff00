package ontology_test

import (
	"strings"
	"testing"

	"github.com/lamina-bio/lamina/ontology"
)

// An obsolete term whose replacement is obsolete too maps to the live end
// of the chain: Mondo 2026 replaces MONDO:0000017 by MONDO:0011791,
// itself replaced by MONDO:0019588; HPO 2014 HP:0003114 by HP:0001113,
// itself replaced by HP:0000518. Standardize left them unchanged.
func TestReplacementChain(t *testing.T) {
	for _, tc := range []struct {
		x                  *ontology.Index
		value, via, end    string
		reason, validation string
	}{
		{mondo(t), "MONDO:0000017", "MONDO:0011791", "MONDO:0019588",
			"MONDO:0000017 is obsolete, replaced by MONDO:0011791, obsolete too, replaced by MONDO:0019588",
			"replaced by MONDO:0011791 (obsolete deafness, autosomal recessive), obsolete too, replaced by MONDO:0019588 (hearing loss, autosomal recessive)"},
		{hpo(t), "HP:0003114", "HP:0001113", "HP:0000518",
			"HP:0003114 is obsolete, replaced by HP:0001113, obsolete too, replaced by HP:0000518",
			"replaced by HP:0001113 (Early cataracts), obsolete too, replaced by HP:0000518 (Cataract)"},
	} {
		st := tc.x.Standardize(tc.value, ontology.StandardizeOptions{})
		if st.Match != ontology.Replaced || st.ID != tc.end || st.Obsolete != tc.value || st.Reason() != tc.reason {
			t.Errorf("Standardize(%s) = %v %s (%s), want %s: %s", tc.value, st.Match, st.ID, st.Reason(), tc.end, tc.reason)
		}
		if r, ok := tc.x.Replacement(tc.value); !ok || r != tc.end {
			t.Errorf("Replacement(%s) = %q %v, want %s", tc.value, r, ok, tc.end)
		}
		if r, ok := tc.x.Replacement(tc.via); !ok || r != tc.end {
			t.Errorf("Replacement(%s) = %q %v, want %s", tc.via, r, ok, tc.end)
		}
		if r, ok := tc.x.Replacement(tc.end); !ok || r != tc.end {
			t.Errorf("Replacement(%s) of a live term = %q %v", tc.end, r, ok)
		}
		if v := tc.x.Validate(tc.value); v.Valid || !strings.Contains(v.Message(), tc.validation) {
			t.Errorf("Validate(%s): %q, want it to say %q", tc.value, v.Message(), tc.validation)
		}
		ins := tc.x.Inspect([]string{tc.value}, ontology.StandardizeOptions{})
		if m := ins.Mappable(); len(m) != 1 || m[0].Standard.ID != tc.end {
			t.Errorf("Inspect(%s): %+v, want it mapped to %s", tc.value, ins.Reports, tc.end)
		}
	}
	if _, ok := mondo(t).Replacement("MONDO:9999999"); ok {
		t.Error("Replacement of an unknown id")
	}
}

// A replaced_by loop (a broken file) or a chain into another source ends
// without a replacement, and says so.
func TestReplacementLoop(t *testing.T) {
	src := mustOBO(t, `format-version: 1.4

[Term]
id: X:1
name: a
is_obsolete: true
replaced_by: X:2

[Term]
id: X:2
name: b
is_obsolete: true
replaced_by: X:1

[Term]
id: X:3
name: c
is_obsolete: true
replaced_by: X:2

[Term]
id: X:4
name: d
is_obsolete: true
replaced_by: Y:1
`)
	x, err := ontology.Build(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"X:1", "X:2", "X:3", "X:4"} {
		if st := x.Standardize(id, ontology.StandardizeOptions{}); st.Matched() || st.Obsolete != id {
			t.Errorf("Standardize(%s) = %v %s, want unmatched", id, st.Match, st.ID)
		}
		if r, ok := x.Replacement(id); ok {
			t.Errorf("Replacement(%s) = %s", id, r)
		}
	}
	if m := x.Validate("X:3").Message(); !strings.Contains(m, "replaced by X:2 (b), obsolete too, replaced by X:1 (a), obsolete too, with no live replacement") {
		t.Errorf("X:3: %q", m)
	}
}

// A RELATED synonym of several terms was dropped: "lower extremity"
// (Uberon efo-slim: leg and hindlimb) answered "no term with this name,
// id or synonym". It names them, and is mapped to neither.
func TestRelatedSynonymOfSeveralTerms(t *testing.T) {
	x := load(t, "tissue", "", "ontologies", "uberon-efo-slim.obo")
	st := x.Standardize("lower extremity", ontology.StandardizeOptions{})
	want := "a RELATED synonym of several terms: leg (UBERON:0000978), hindlimb (UBERON:0002103); not mapped, as which is meant would be a guess"
	if st.Matched() || len(st.Related) != 2 || st.Reason() != want {
		t.Errorf("Standardize: %v %+v %q, want %q", st.Match, st.Related, st.Reason(), want)
	}
	if st := x.Standardize("lower extremity", ontology.StandardizeOptions{Related: true}); st.Match != ontology.Ambiguous || len(st.Candidates) != 2 {
		t.Errorf("with Related: %v %+v", st.Match, st.Candidates)
	}
	// Suggestions put those terms first, not a lookalike (forelimb).
	if sg := x.Suggest("lower extremity", 3); len(sg) < 2 || sg[0].ID != "UBERON:0000978" || sg[1].ID != "UBERON:0002103" || sg[0].Matched != "lower extremity" {
		t.Errorf("Suggest(lower extremity) = %+v, want leg and hindlimb first", sg)
	}
	if sg := clOBO(t).Suggest("oogonium", 3); len(sg) == 0 || sg[0].ID != "CL:0000023" {
		t.Errorf("Suggest(oogonium) = %+v, want oocyte first", sg)
	}
	// One term's RELATED synonym is still named as one (CL 2022 oocyte).
	st = clOBO(t).Standardize("oogonium", ontology.StandardizeOptions{})
	if len(st.Related) != 1 || st.Related[0].ID != "CL:0000023" || !strings.Contains(st.Reason(), `RELATED synonym "oogonium" of CL:0000023 (oocyte)`) {
		t.Errorf("oogonium: %+v %q", st.Related, st.Reason())
	}
}

// Typographic apostrophes fold to the ASCII one, as dashes do: a word
// processor writes "Alzheimer’s disease".
func TestApostrophesFolded(t *testing.T) {
	x := mondo(t)
	for _, v := range []string{"Alzheimer\u2019s disease", "Alzheimer\u2018s disease", "Alzheimer\u02bcs disease", "Alzheimer\u2032s disease"} {
		st := x.Standardize(v, ontology.StandardizeOptions{})
		if !st.Matched() || st.ID != "MONDO:0004975" {
			t.Errorf("Standardize(%+q) = %v %s (%s), want MONDO:0004975", v, st.Match, st.ID, st.Reason())
		}
		if hits := x.Search(v, ontology.SearchOptions{Limit: 1}); len(hits) == 0 || hits[0].ID != "MONDO:0004975" {
			t.Errorf("Search(%+q) = %+v", v, hits)
		}
	}
}

// A value that is an obsolete term's name without the "obsolete " prefix
// (CL 2026: CL:0002371 "obsolete somatic cell") maps to its replacement,
// saying the term is obsolete; it answered "no term".
func TestObsoleteTermOldName(t *testing.T) {
	x := clJSON(t)
	for _, v := range []string{"somatic cell", "Somatic cell"} {
		st := x.Standardize(v, ontology.StandardizeOptions{})
		want := `the name of CL:0002371 before it was made obsolete ("obsolete somatic cell"); replaced by CL:0000000`
		if st.Match != ontology.Replaced || st.ID != "CL:0000000" || st.Obsolete != "CL:0002371" || st.Reason() != want {
			t.Errorf("Standardize(%q) = %v %s %q, want CL:0000000: %s", v, st.Match, st.ID, st.Reason(), want)
		}
	}
	// A live term's name is never read as an obsolete one's.
	if st := x.Standardize("T cell", ontology.StandardizeOptions{}); st.Match != ontology.ExactName {
		t.Errorf("T cell: %v", st.Match)
	}
}
