package ontology_test

import (
	"slices"
	"testing"
)

// An ambiguous alias was suggested as one of its symbol's ids (LCA:
// "PTPRC (ENSG00000081237)", though PTPRC names two), or as the same
// symbol twice, once per id (CD20: KRT20 on two ids). Each name is
// suggested once, with every id it names.
func TestSuggestNamesOnce(t *testing.T) {
	genes := humanGenes(t)
	for _, value := range []string{"LCA", "CD20"} {
		sg := genes.Suggest(value, 3)
		seen := map[string]bool{}
		for _, s := range sg {
			if seen[s.Name] {
				t.Errorf("Suggest(%q) names %s twice: %+v", value, s.Name, sg)
			}
			seen[s.Name] = true
			if v := genes.Validate(s.Name); v.Valid && len(v.TermIDs()) > 0 && !slices.Equal(s.TermIDs(), v.TermIDs()) && s.Name != "" {
				// a name's ids are those Validate gives (several for PTPRC)
				t.Errorf("Suggest(%q): %s has ids %v, want %v", value, s.Name, s.TermIDs(), v.TermIDs())
			}
		}
		if value == "LCA" && !seen["PTPRC"] {
			t.Errorf("Suggest(LCA) = %+v, want PTPRC", sg)
		}
	}
	if s := genes.Suggest("LCA", 3); len(s) > 0 && s[0].Name == "PTPRC" && s[0].String() != "PTPRC (ENSG00000081237, ENSG00000262418)" {
		t.Errorf("PTPRC suggested as %s", s[0])
	}
}
