package ontology_test

import (
	"bufio"
	"compress/gzip"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/lamina-bio/lamina/ontology"
)

func hpo(t testing.TB) *ontology.Index {
	return load(t, "phenotype", "", "ontologies", "hp.obo.gz")
}

func TestValidate(t *testing.T) {
	cl, hp := clOBO(t), hpo(t)
	tests := []struct {
		name     string
		idx      *ontology.Index
		value    string
		valid    bool
		id       string
		obsolete bool
		message  string // a part of Message()
	}{
		{"exact name", cl, "T cell", true, "CL:0000084", false, "CL:0000084"},
		{"id", cl, "CL:0000084", true, "CL:0000084", false, "T cell"},
		{"case matters", cl, "t cell", false, "", false, "not a name or id"},
		{"synonym does not validate", cl, "T-cell", false, "", false, "not a name or id"},
		{"trailing space", cl, "T cell ", false, "", false, "not a name or id"},
		{"id with a space", cl, " CL:0000084", false, "", false, "not a name or id"},
		{"obsolete name names replacement", hp, "Early cataracts", false, "HP:0001113", true, "replaced by HP:0000518 (Cataract)"},
		{"obsolete id", hp, "HP:0001113", false, "HP:0001113", true, "replaced by HP:0000518"},
		{"obsolete with replacement elsewhere", cl, "CL:0000002", false, "CL:0000002", true, "replaced by CLO:0000019"},
		{"alt_id is the primary", hp, "HP:0004715", true, "HP:0000003", false, "secondary id of HP:0000003"},
		{"unknown", cl, "Unknown_type", false, "", false, `"Unknown_type" is not a name or id in CL`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := tc.idx.Validate(tc.value)
			if v.Valid != tc.valid || v.ID != tc.id || v.Obsolete != tc.obsolete {
				t.Errorf("Validate(%q) = valid %v id %q obsolete %v, want %v %q %v", tc.value, v.Valid, v.ID, v.Obsolete, tc.valid, tc.id, tc.obsolete)
			}
			if !strings.Contains(v.Message(), tc.message) {
				t.Errorf("Message() = %q, want it to contain %q", v.Message(), tc.message)
			}
		})
	}
}

func TestStandardize(t *testing.T) {
	cl, hp, genes := clOBO(t), hpo(t), humanGenes(t)
	tests := []struct {
		name     string
		idx      *ontology.Index
		value    string
		opts     ontology.StandardizeOptions
		match    ontology.Match
		standard string
		reason   string // a part of Reason()
	}{
		{"exact", cl, "T cell", ontology.StandardizeOptions{}, ontology.ExactName, "T cell", "standard name"},
		{"id", cl, "CL:0000084", ontology.StandardizeOptions{}, ontology.ByID, "T cell", "CL:0000084"},
		{"id and white space", cl, " CL:0000084\t", ontology.StandardizeOptions{}, ontology.ByID, "T cell", "CL:0000084"},
		{"alt_id and white space", hp, "HP:0004715 ", ontology.StandardizeOptions{}, ontology.ByAltID, "Multicystic kidney dysplasia", "secondary id of HP:0000003"},
		{"obsolete id and white space", hp, " HP:0001113", ontology.StandardizeOptions{}, ontology.Replaced, "Cataract", "replaced by HP:0000518"},
		{"case and space", cl, "  monocyte ", ontology.StandardizeOptions{}, ontology.FoldedName, "monocyte", "case"},
		{"exact synonym", cl, "T-cell", ontology.StandardizeOptions{}, ontology.BySynonym, "T cell", `"T-cell"`},
		{"exact synonym folded", cl, "b lymphocyte", ontology.StandardizeOptions{}, ontology.BySynonym, "B cell", "EXACT synonym"},
		{"related needs the option", cl, "cell in vivo", ontology.StandardizeOptions{}, ontology.NoMatch, "cell in vivo", `NARROW synonym "cell in vivo" of CL:0000003 (native cell): not an equivalent, so never mapped`},
		{"narrow is never used", cl, "cell in vivo", ontology.StandardizeOptions{Related: true}, ontology.NoMatch, "cell in vivo", `NARROW synonym "cell in vivo" of CL:0000003 (native cell): not an equivalent, so never mapped`},
		{"obsolete to replacement", hp, "Early cataracts", ontology.StandardizeOptions{}, ontology.Replaced, "Cataract", "HP:0001113 is obsolete, replaced by HP:0000518"},
		{"obsolete id to replacement", hp, "HP:0001113", ontology.StandardizeOptions{}, ontology.Replaced, "Cataract", "replaced by HP:0000518"},
		{"replacement outside the source", cl, "obsolete immortal cell line cell", ontology.StandardizeOptions{}, ontology.NoMatch, "obsolete immortal cell line cell", "replaced by CLO:0000019"},
		{"obsolete synonyms are not used", cl, "continuous cell line cell", ontology.StandardizeOptions{}, ontology.NoMatch, "continuous cell line cell",
			`EXACT synonym "continuous cell line cell" of obsolete CL:0000002 (obsolete immortal cell line cell); replaced by CLO:0000019`},
		{"obsolete synonym names what to consider", load(t, "developmental_stage", "human", "ontologies", "hsapdv.obo"), "0-1 month", ontology.StandardizeOptions{}, ontology.NoMatch, "0-1 month",
			`EXACT synonym "0-1 month" of obsolete HsapDv:0000082 (newborn stage); consider HsapDv:0000262 (newborn stage (0-28 days))`},
		{"alt_id to primary", hp, "HP:0004715", ontology.StandardizeOptions{}, ontology.ByAltID, "Multicystic kidney dysplasia", "secondary id of HP:0000003"},
		{"gene symbol", genes, "MS4A1", ontology.StandardizeOptions{}, ontology.ExactName, "MS4A1", "standard name"},
		{"gene alias", genes, "CD20", ontology.StandardizeOptions{}, ontology.Ambiguous, "CD20", "ambiguous: could be"},
		{"gene alias of one gene", genes, "TM4SF6", ontology.StandardizeOptions{}, ontology.BySynonym, "TSPAN6", "EXACT synonym"},
		{"symbol beats another gene's alias", genes, "FH", ontology.StandardizeOptions{}, ontology.ExactName, "FH", "standard name"},
		{"one symbol, two Ensembl ids", genes, "ptprc", ontology.StandardizeOptions{}, ontology.FoldedName, "PTPRC", "case, white space, dashes, Greek letters or Unicode form; PTPRC, the name of 2 terms: ENSG00000081237, ENSG00000262418"},
		{"one symbol, two Ensembl ids, exact", genes, "PTPRC", ontology.StandardizeOptions{}, ontology.ExactName, "PTPRC", "PTPRC is the name of 2 terms: ENSG00000081237, ENSG00000262418"},
		{"nothing", cl, "doublet", ontology.StandardizeOptions{}, ontology.NoMatch, "doublet", "no term"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.idx.Standardize(tc.value, tc.opts)
			if s.Match != tc.match || s.Standard() != tc.standard {
				t.Errorf("Standardize(%q) = %v %q, want %v %q (%s)", tc.value, s.Match, s.Standard(), tc.match, tc.standard, s.Reason())
			}
			if !strings.Contains(s.Reason(), tc.reason) {
				t.Errorf("Reason() = %q, want it to contain %q", s.Reason(), tc.reason)
			}
		})
	}
}

func TestAmbiguousAliases(t *testing.T) {
	genes := humanGenes(t)
	for _, tc := range []struct {
		alias string
		names []string
	}{
		{"CD20", []string{"KRT20", "MS4A1"}},
		{"LCA", []string{"CLTA", "GUCY2D", "PTPRC"}},
		{"PD-1", []string{"PDCD1", "RPL17", "RPL17-C18orf32"}},
	} {
		t.Run(tc.alias, func(t *testing.T) {
			s := genes.Standardize(tc.alias, ontology.StandardizeOptions{})
			if s.Match != ontology.Ambiguous || s.Changed() {
				t.Fatalf("Standardize(%q) = %v %q, want ambiguous and unchanged", tc.alias, s.Match, s.Standard())
			}
			var names []string
			for _, c := range s.Candidates {
				if c.Via != tc.alias {
					t.Errorf("candidate %s matched through %q", c.Name, c.Via)
				}
				names = append(names, c.Name)
			}
			slices.Sort(names)
			names = slices.Compact(names)
			if !slices.Equal(names, tc.names) {
				t.Errorf("candidates %v, want %v", names, tc.names)
			}
		})
	}
	// PTPRC has two Ensembl ids but one name: it validates, as both.
	if v := genes.Validate("PTPRC"); !v.Valid || v.Name != "PTPRC" || !slices.Equal(v.TermIDs(), []string{"ENSG00000081237", "ENSG00000262418"}) {
		t.Errorf("Validate(PTPRC) = %v %s %v %q, want valid as both ids", v.Valid, v.ID, v.IDs, v.Message())
	}
}

// TestDuplicatedNameNamesEveryTerm: GENCODE v48 gives the symbol A2MP1
// to two Ensembl ids. It is a standard name that validates, as both terms:
// Standardize and Validate must not pick one.
func TestDuplicatedNameNamesEveryTerm(t *testing.T) {
	x := load(t, "gene", "human", "genes", "gencode_genes_homo_sapiens.csv.gz")
	want := []string{"ENSG00000256069", "ENSG00000291190"}
	s := x.Standardize("A2MP1", ontology.StandardizeOptions{})
	if s.Match != ontology.ExactName || s.Standard() != "A2MP1" || s.ID != "" || !slices.Equal(s.TermIDs(), want) ||
		s.Reason() != "A2MP1 is the name of 2 terms: ENSG00000256069, ENSG00000291190" {
		t.Errorf("Standardize(A2MP1) = %v %q %q %v (%s), want the name of both", s.Match, s.Standard(), s.ID, s.TermIDs(), s.Reason())
	}
	if f := x.Standardize("a2mp1", ontology.StandardizeOptions{}); f.Match != ontology.FoldedName || f.Standard() != "A2MP1" || !slices.Equal(f.TermIDs(), want) {
		t.Errorf("Standardize(a2mp1) = %v %q %v", f.Match, f.Standard(), f.TermIDs())
	}
	if v := x.Validate("A2MP1"); !v.Valid || v.ID != "" || !slices.Equal(v.TermIDs(), want) || !strings.Contains(v.Message(), "is the name of 2 terms") {
		t.Errorf("Validate(A2MP1) = %v %q %v (%s), want valid as both", v.Valid, v.ID, v.TermIDs(), v.Message())
	}
	if r := x.Inspect([]string{"A2MP1"}, ontology.StandardizeOptions{}); len(r.Validated()) != 1 {
		t.Errorf("Inspect(A2MP1) does not validate: %+v", r.Reports)
	}
}

func TestRelatedSynonymsOnRequest(t *testing.T) {
	hp := hpo(t)
	// GO.db lost synonym scopes, so its synonyms are RELATED.
	goIdx := load(t, "pathway", "", "ontologies", "go-terms-GOdb-2022-07-01.tsv.gz")
	if s := goIdx.Standardize("mitochondrial inheritance", ontology.StandardizeOptions{}); s.Matched() {
		t.Errorf("RELATED synonym used without the option: %v %s", s.Match, s.Name)
	} else if len(s.Related) != 1 || s.Related[0].ID != "GO:0000001" || !strings.Contains(s.Reason(), `RELATED synonym "mitochondrial inheritance" of GO:0000001`) || !strings.Contains(s.Reason(), "--related") {
		t.Errorf("unmatched RELATED synonym: %+v, reason %q", s.Related, s.Reason())
	}
	s := goIdx.Standardize("mitochondrial inheritance", ontology.StandardizeOptions{Related: true})
	if s.Match != ontology.ByRelated || s.Name != "mitochondrion inheritance" || s.ID != "GO:0000001" {
		t.Errorf("with Related: %v %s %s", s.Match, s.ID, s.Name)
	}
	if s := hp.Standardize("Multicystic dysplastic kidney", ontology.StandardizeOptions{}); s.Match != ontology.BySynonym || s.ID != "HP:0000003" {
		t.Errorf("HP EXACT synonym: %v %s", s.Match, s.ID)
	}
}

func TestInspect(t *testing.T) {
	cl := clOBO(t)
	ins := cl.Inspect([]string{"T cell", "T-cell", "dendritc cell", "T cell", "doublet", "CD20"}, ontology.StandardizeOptions{})
	if got := ins.Validated(); !slices.Equal(got, []string{"T cell"}) {
		t.Errorf("Validated = %v", got)
	}
	if m := ins.Mappable(); len(m) != 1 || m[0].Value != "T-cell" || m[0].Standard.Name != "T cell" {
		t.Errorf("Mappable = %+v", m)
	}
	failed := ins.Failed()
	if len(failed) != 3 {
		t.Fatalf("Failed = %+v", failed)
	}
	if ins.Reports[0].Count != 2 {
		t.Errorf("count of T cell = %d", ins.Reports[0].Count)
	}
	typo := failed[0]
	if typo.Value != "dendritc cell" || len(typo.Suggestions) == 0 || len(typo.Suggestions) > 3 || typo.Suggestions[0].Name != "dendritic cell" {
		t.Errorf("dendritc cell suggestions = %+v", typo.Suggestions)
	}
}

func hsapdv(t testing.TB) *ontology.Index {
	return load(t, "developmental_stage", "human", "ontologies", "hsapdv.obo")
}

func TestSuggest(t *testing.T) {
	for _, tc := range []struct {
		idx   func(testing.TB) *ontology.Index
		value string
		first string
	}{
		{clOBO, "dendritc cell", "dendritic cell"},
		{clOBO, "Tcell", "T cell"},
		{clOBO, "monocyet", "monocyte"},
		{mondo, "rheumatoid arthritus", "rheumatoid arthritis"},
		{hpo, "catarct", "Cataract"},
		// What search finds by name prefix or words: "adult" was "no close
		// term" while search ranked "adult stage" first.
		{hsapdv, "adult", "adult stage"},
		{hsapdv, "embryo", "embryonic stage"},
		{clOBO, "T cel", "T cell"},
	} {
		t.Run(tc.value, func(t *testing.T) {
			s := tc.idx(t).Suggest(tc.value, 3)
			if len(s) == 0 || s[0].Name != tc.first {
				t.Fatalf("Suggest(%q) = %+v, want %q first", tc.value, s, tc.first)
			}
			for i := 1; i < len(s); i++ {
				if s[i].Score > s[i-1].Score {
					t.Errorf("suggestions not ordered by score: %+v", s)
				}
			}
		})
	}
	// A short value is no name prefix to suggest by: "T" starts T cell,
	// T-helper 1 cell and hundreds more.
	for _, v := range []string{"T", "B"} {
		if s := clOBO(t).Suggest(v, 3); len(s) > 0 {
			t.Errorf("Suggest(%q) = %+v, want none", v, s)
		}
	}
}

func TestSearch(t *testing.T) {
	cl := clOBO(t)
	tests := []struct {
		name  string
		query string
		opts  ontology.SearchOptions
		first string // id of the first hit
		rank  ontology.Rank
		check func(t *testing.T, hits []ontology.Hit)
	}{
		{name: "exact name", query: "t cell", first: "CL:0000084", rank: ontology.RankExactName},
		{name: "id", query: "CL:0000236", first: "CL:0000236", rank: ontology.RankExactName},
		{name: "exact synonym", query: "T lymphocyte", first: "CL:0000084", rank: ontology.RankExactSynonym},
		{name: "name prefix", query: "plasmacytoid dendr", first: "CL:0000784", rank: ontology.RankNamePrefix},
		{name: "word prefix", query: "T helper", opts: ontology.SearchOptions{Limit: 10}, rank: ontology.RankWordPrefix,
			check: func(t *testing.T, hits []ontology.Hit) {
				if len(hits) < 5 || len(hits) > 10 {
					t.Errorf("limit 10 gave %d hits", len(hits))
				}
				if hits[0].Name != "helper T cell" {
					t.Errorf("first hit %q, want the shortest name with both words", hits[0].Name)
				}
				for _, h := range hits {
					m := strings.ToLower(h.Matched)
					if h.Rank == ontology.RankWordPrefix && !strings.Contains(m, "helper") {
						t.Errorf("hit %s %q matched %q", h.ID, h.Name, h.Matched)
					}
				}
			}},
		{name: "fuzzy", query: "dendritc cell", first: "CL:0000451", rank: ontology.RankFuzzy},
		{name: "fuzzy prefix", query: "dendritc", first: "CL:0000451", rank: ontology.RankFuzzy},
		{name: "obsolete hidden", query: "obsolete immortal cell line cell",
			check: func(t *testing.T, hits []ontology.Hit) {
				for _, h := range hits {
					if h.Obsolete {
						t.Errorf("obsolete hit %s without the option", h.ID)
					}
				}
			}},
		{name: "obsolete on request", query: "obsolete immortal cell line cell", opts: ontology.SearchOptions{Obsolete: true},
			first: "CL:0000002", rank: ontology.RankExactName},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hits := cl.Search(tc.query, tc.opts)
			if tc.first != "" && (len(hits) == 0 || hits[0].ID != tc.first || hits[0].Rank != tc.rank) {
				t.Fatalf("Search(%q) first = %+v, want %s at %v", tc.query, first(hits), tc.first, tc.rank)
			}
			for i := 1; i < len(hits); i++ {
				if hits[i].Rank < hits[i-1].Rank {
					t.Errorf("hits out of rank order at %d: %+v", i, hits)
				}
			}
			if tc.check != nil {
				tc.check(t, hits)
			}
		})
	}
}

func first(h []ontology.Hit) any {
	if len(h) == 0 {
		return "no hits"
	}
	return h[0]
}

func TestHierarchy(t *testing.T) {
	cl := clOBO(t)
	parents, err := cl.Parents("T cell", ontology.IsA)
	if err != nil || !slices.Equal(parents, []string{"CL:0000542"}) {
		t.Errorf("Parents(T cell) = %v %v, want [CL:0000542]", parents, err)
	}
	children, _ := cl.Children("CL:0000084", ontology.IsA)
	if !slices.Contains(children, "CL:0000789") || !slices.Contains(children, "CL:0000798") {
		t.Errorf("children of T cell lack alpha-beta and gamma-delta T cell: %v", children)
	}
	anc, _ := cl.Ancestors("CD4-positive, alpha-beta T cell", ontology.IsA)
	for _, want := range []string{"CL:0000084", "CL:0000542", "CL:0000000"} {
		if !slices.Contains(anc, want) {
			t.Errorf("ancestors of CD4 T cell lack %s: %v", want, anc)
		}
	}
	desc, _ := cl.Descendants("T cell", ontology.IsA)
	if !slices.Contains(desc, "CL:0000624") || slices.Contains(desc, "CL:0000236") {
		t.Errorf("descendants of T cell: CD4 T cell present %v, B cell present %v", slices.Contains(desc, "CL:0000624"), slices.Contains(desc, "CL:0000236"))
	}
	if !cl.IsDescendant("CL:0000624", "T cell", ontology.IsA) || cl.IsDescendant("B cell", "T cell", ontology.IsA) {
		t.Error("IsDescendant wrong for CD4 T cell / B cell under T cell")
	}
	if _, err := cl.Parents("no such cell", ontology.IsA); err == nil || !strings.Contains(err.Error(), "no term") {
		t.Errorf("unknown term: %v", err)
	}

	// part_of: the Uberon slim has part_of edges; is_a alone does not
	// reach them.
	ub := load(t, "tissue", "", "ontologies", "uberon-efo-slim.obo")
	partOnly, _ := ub.Parents("UBERON:0002371", ontology.PartOf) // bone marrow
	isaOnly, _ := ub.Parents("UBERON:0002371", ontology.IsA)
	both, _ := ub.Parents("UBERON:0002371", ontology.IsA|ontology.PartOf)
	if len(partOnly) == 0 || len(both) != len(partOnly)+len(isaOnly) {
		t.Errorf("bone marrow parents: part_of %v, is_a %v, both %v", partOnly, isaOnly, both)
	}

	// The cellxgene JSON closure agrees with walking the direct parents.
	cx := clJSON(t)
	d, _ := cx.Descendants("CL:0000000", ontology.IsA)
	if len(d) < 3000 {
		t.Errorf("CL JSON: %d descendants of cell", len(d))
	}
}

func TestCycles(t *testing.T) {
	src := mustOBO(t, `format-version: 1.4

[Term]
id: X:1
name: a
is_a: X:3
relationship: part_of X:2

[Term]
id: X:2
name: b
is_a: X:1

[Term]
id: X:3
name: c
is_a: X:2

[Term]
id: X:4
name: self
is_a: X:4
`)
	idx, err := ontology.Build(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, rel := range []ontology.Relation{ontology.IsA, ontology.IsA | ontology.PartOf} {
		anc, _ := idx.Ancestors("X:1", rel)
		desc, _ := idx.Descendants("X:1", rel)
		if !sameSet(anc, []string{"X:2", "X:3"}) || !sameSet(desc, []string{"X:2", "X:3"}) {
			t.Errorf("rel %v: ancestors %v descendants %v, want X:2 and X:3 each", rel, anc, desc)
		}
	}
	if a, _ := idx.Ancestors("X:4", ontology.IsA); len(a) != 0 {
		t.Errorf("self loop ancestors %v", a)
	}
	if p, _ := idx.Parents("a", ontology.PartOf); !slices.Equal(p, []string{"X:2"}) {
		t.Errorf("part_of parents %v", p)
	}
}

func mustOBO(t testing.TB, text string) *ontology.Source {
	t.Helper()
	src, err := ontology.ReadOBO(strings.NewReader(text), "inline.obo")
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// TestIDSpellings: ids as other tools write them — the prefix in another
// case, an underscore for the colon, the OBO PURL — name the term in Term
// and Standardize (they were "no term with this name, id or synonym");
// Validate stays exact, as Bionty's.
func TestIDSpellings(t *testing.T) {
	cl, hp := clOBO(t), hpo(t)
	dv := load(t, "developmental_stage", "human", "ontologies", "hsapdv.obo")
	for _, tc := range []struct {
		idx          *ontology.Index
		value, id    string
		match        ontology.Match
		standardName string
	}{
		{cl, "cl:0000084", "CL:0000084", ontology.ByID, "T cell"},
		{cl, "CL_0000084", "CL:0000084", ontology.ByID, "T cell"},
		{cl, "http://purl.obolibrary.org/obo/CL_0000084", "CL:0000084", ontology.ByID, "T cell"},
		{cl, " https://purl.obolibrary.org/obo/cl_0000084 ", "CL:0000084", ontology.ByID, "T cell"},
		{hp, "hp_0004715", "HP:0000003", ontology.ByAltID, "Multicystic kidney dysplasia"},
		{hp, "hp:0001113", "HP:0000518", ontology.Replaced, "Cataract"},
		{dv, "hsapdv:0000045", "HsapDv:0000045", ontology.ByID, "prenatal stage"},
		{dv, "HSAPDV_0000045", "HsapDv:0000045", ontology.ByID, "prenatal stage"},
	} {
		t.Run(tc.value, func(t *testing.T) {
			st := tc.idx.Standardize(tc.value, ontology.StandardizeOptions{})
			if st.Match != tc.match || st.ID != tc.id || tc.standardName != "" && st.Name != tc.standardName {
				t.Fatalf("Standardize(%q) = %v %s %q, want %v %s", tc.value, st.Match, st.ID, st.Name, tc.match, tc.id)
			}
			if tc.match == ontology.Replaced {
				return // Term finds the obsolete term itself
			}
			if term, ok := tc.idx.Term(tc.value); !ok || term.ID != tc.id {
				t.Fatalf("Term(%q) = %v, %v; want %s", tc.value, term, ok, tc.id)
			}
			if tc.idx.Validate(tc.value).Valid {
				t.Fatalf("Validate(%q) is valid; it validates exact ids only", tc.value)
			}
		})
	}
	for _, v := range []string{"cl:", "CL_", "xx:0000084", "http://example.org/obo/CL_0000084", "http://purl.obolibrary.org/obo/", "T_cell", "cell_type"} {
		if st := cl.Standardize(v, ontology.StandardizeOptions{}); st.Matched() {
			t.Errorf("Standardize(%q) = %v %s, want no match", v, st.Match, st.ID)
		}
		if _, ok := cl.Term(v); ok {
			t.Errorf("Term(%q) found a term", v)
		}
	}
}

// One Ensembl id for several NCBI genes (ADAMTSL4-AS1 and MCL1 share
// ENSG00000143384): each official symbol validates and standardizes to
// itself, never to the other gene's symbol, and names its Ensembl id.
func TestSymbolsSharingAnEnsemblID(t *testing.T) {
	genes := humanGenes(t)
	for _, tc := range []struct{ symbol, id string }{
		{"MCL1", "ENSG00000143384"},
		{"ADAMTSL4-AS1", "ENSG00000143384"},
		{"KLRK1", "ENSG00000213809"},
		{"KLRC4-KLRK1", "ENSG00000213809"},
		{"FNTB", "ENSG00000257365"}, // also an alias of CHURC1-FNTB, on two ids
		{"U2AF1", "ENSG00000160201"},
		{"GNMT", ""},
		{"MEF2B", ""},
		{"HLA-DQA2", ""},
	} {
		t.Run(tc.symbol, func(t *testing.T) {
			v := genes.Validate(tc.symbol)
			if !v.Valid || v.Name != tc.symbol || (tc.id != "" && v.ID != tc.id) {
				t.Errorf("Validate(%q): %s", tc.symbol, v.Message())
			}
			s := genes.Standardize(tc.symbol, ontology.StandardizeOptions{})
			if s.Match != ontology.ExactName || s.Changed() || (tc.id != "" && s.ID != tc.id) {
				t.Errorf("Standardize(%q) = %v %q %s (%s)", tc.symbol, s.Match, s.Standard(), s.ID, s.Reason())
			}
			f := genes.Standardize(strings.ToLower(tc.symbol), ontology.StandardizeOptions{})
			if f.Match != ontology.FoldedName || f.Standard() != tc.symbol {
				t.Errorf("Standardize(%q) = %v %q (%s)", strings.ToLower(tc.symbol), f.Match, f.Standard(), f.Reason())
			}
			// A symbol of several ids (HLA-DQA2) is no single term: Resolve
			// lists them as Validate does (TestNameOfSeveralTermsIsNoGuess).
			term, err := genes.Resolve(tc.symbol)
			var amb *ontology.AmbiguousError
			if errors.As(err, &amb) && len(v.TermIDs()) > 1 && slices.Equal(amb.IDs, v.TermIDs()) {
				return
			}
			if err != nil || (tc.id != "" && term.ID != tc.id) {
				t.Errorf("Resolve(%q) = %v %v", tc.symbol, term, err)
			}
		})
	}
	// Every official symbol of the table validates (210 did not).
	for _, sym := range tableSymbols(t) {
		if v := genes.Validate(sym); !v.Valid || v.Name != sym {
			t.Errorf("Validate(%q): %s", sym, v.Message())
		}
	}
}

// tableSymbols lists the symbol column of the human gene table.
func tableSymbols(t *testing.T) []string {
	var out []string
	for _, r := range tableRows(t) {
		out = append(out, r[1])
	}
	return out
}

// tableRows lists the Ensembl id and symbol of each row of the human gene
// table that has a symbol.
func tableRows(t *testing.T) [][2]string {
	f, err := os.Open(dataPath("genes", "human_genes_orgHsEgDb.tsv.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var out [][2]string
	sc := bufio.NewScanner(z)
	for sc.Scan() {
		if f := strings.Split(sc.Text(), "\t"); len(f) > 1 && f[0] != "ensembl_gene_id" && f[1] != "" {
			out = append(out, [2]string{f[0], f[1]})
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSymbolNamesEveryEnsemblID: a symbol the table gives to several
// Ensembl ids (PTPRC, alternate haplotypes; DDX11L16 as the name of two
// and the second symbol of two others) validates as every one of them, so
// an annotation records them all.
func TestSymbolNamesEveryEnsemblID(t *testing.T) {
	genes := humanGenes(t)
	want := map[string][]string{}
	for _, r := range tableRows(t) {
		if r[0] != "" && !slices.Contains(want[r[1]], r[0]) {
			want[r[1]] = append(want[r[1]], r[0])
		}
	}
	several := 0
	for sym, ids := range want {
		slices.Sort(ids)
		if len(ids) > 1 {
			several++
		}
		if v := genes.Validate(sym); !v.Valid || !slices.Equal(v.TermIDs(), ids) {
			t.Errorf("Validate(%q) = %v %v (%s), want %v", sym, v.Valid, v.TermIDs(), v.Message(), ids)
		}
	}
	if several < 1500 {
		t.Errorf("%d symbols of several Ensembl ids, want about 1,650", several)
	}
}

// TestNameOfSeveralTermsIsNoGuess: a name several live terms have (the
// Uberon module has "anatomical entity" on CARO:0000000 and
// UBERON:0001062; life-stages.obo "21-day-old stage" on three species'
// stages; a gene symbol on two Ensembl ids), or several obsolete ones and
// no live one (Mondo), is no single term: Term finds none, Resolve and the
// hierarchy walks say it is ambiguous with every id, instead of taking the
// first in the file. Validate is unchanged: the name validates as all of
// them. Standardize maps an obsolete name only when its terms are
// replaced alike.
func TestNameOfSeveralTermsIsNoGuess(t *testing.T) {
	ambiguous := func(t *testing.T, x *ontology.Index, name string, want []string) {
		t.Helper()
		if tm, ok := x.Term(name); ok {
			t.Errorf("Term(%q) = %s, want none of %v", name, tm.ID, want)
		}
		_, err := x.Resolve(name)
		var amb *ontology.AmbiguousError
		if !errors.As(err, &amb) || !errors.Is(err, ontology.ErrAmbiguous) || !slices.Equal(amb.IDs, want) {
			t.Errorf("Resolve(%q) = %v, want ambiguous %v", name, err, want)
		}
		for walk, f := range map[string]func(string, ontology.Relation) ([]string, error){
			"parents": x.Parents, "children": x.Children, "ancestors": x.Ancestors, "descendants": x.Descendants} {
			if ids, err := f(name, ontology.IsA|ontology.PartOf); !errors.Is(err, ontology.ErrAmbiguous) {
				t.Errorf("%s of %q = %v, %v; want ErrAmbiguous", walk, name, ids, err)
			}
		}
	}
	t.Run("Uberon module", func(t *testing.T) {
		x := load(t, "tissue", "", "ontologies", "extra", "uberon-module-from-mondo.obo.gz")
		ambiguous(t, x, "anatomical entity", []string{"CARO:0000000", "UBERON:0001062"})
		if v := x.Validate("anatomical entity"); !v.Valid || !slices.Equal(v.TermIDs(), []string{"CARO:0000000", "UBERON:0001062"}) {
			t.Errorf("Validate = %+v, want valid as both", v)
		}
		if d, err := x.Children("UBERON:0001062", ontology.IsA); err != nil || len(d) == 0 {
			t.Errorf("children by id: %v %v", d, err)
		}
		if tm, ok := x.Term("kidney"); !ok || tm.ID != "UBERON:0002113" { // a name of one term still resolves
			t.Errorf("Term(kidney) = %v %v", tm, ok)
		}
	})
	t.Run("life stages", func(t *testing.T) {
		x := load(t, "life_stage", "", "ontologies", "extra", "life-stages.obo")
		ambiguous(t, x, "21-day-old stage", []string{"BtauDv:0000064", "MmusDv:0000142", "SscrDv:0000018"})
	})
	t.Run("gene symbol", func(t *testing.T) {
		x := humanGenes(t)
		ambiguous(t, x, "PTPRC", []string{"ENSG00000081237", "ENSG00000262418"})
		if v := x.Validate("PTPRC"); !v.Valid || len(v.TermIDs()) != 2 {
			t.Errorf("Validate(PTPRC) = %+v, want valid as both", v)
		}
	})
	t.Run("obsolete names", func(t *testing.T) {
		x := mondo(t)
		const name = "obsolete Wilms tumor"
		ambiguous(t, x, name, []string{"MONDO:0000103", "MONDO:0021044"})
		s := x.Standardize(name, ontology.StandardizeOptions{})
		var got []string
		for _, c := range s.Candidates {
			got = append(got, c.ID+"<"+c.Via)
		}
		if s.Match != ontology.Ambiguous || !slices.Equal(got, []string{"MONDO:0006058<MONDO:0021044", "MONDO:0019004<MONDO:0000103"}) {
			t.Errorf("Standardize(%q) = %v %s %v (%s), want ambiguous between the replacements", name, s.Match, s.ID, got, s.Reason())
		}
		// Replaced alike, MONDO:0000323 through the obsolete MONDO:0008279:
		// the one replacement.
		const fap = "obsolete familial adenomatous polyposis"
		ambiguous(t, x, fap, []string{"MONDO:0000199", "MONDO:0000323"})
		if s := x.Standardize(fap, ontology.StandardizeOptions{}); s.Match != ontology.Replaced || s.ID != "MONDO:0021055" {
			t.Errorf("Standardize(%q) = %v %s (%s), want MONDO:0021055", fap, s.Match, s.ID, s.Reason())
		}
	})
}

// TestBroadNarrowSynonymsNamed: a BROAD or NARROW synonym is never mapped
// (it names another concept than the term), with or without Related, but
// the reason names the term as a lead. Before, "Round, full face" (a BROAD
// synonym of HP:0000311) was "no term with this name, id or synonym".
func TestBroadNarrowSynonymsNamed(t *testing.T) {
	hp := hpo(t)
	for _, tc := range []struct {
		value, want string
		scope       ontology.Scope
		id          string
	}{
		{"Round, full face", `BROAD synonym "Round, full face" of HP:0000311 (Round face): not an equivalent, so never mapped`, ontology.Broad, "HP:0000311"},
		{"round,  full FACE", `BROAD synonym "Round, full face" of HP:0000311 (Round face)`, ontology.Broad, "HP:0000311"},
		{"Cleft lip, cleft palate", `NARROW synonym "Cleft lip, cleft palate" of `, ontology.Narrow, ""},
	} {
		t.Run(tc.value, func(t *testing.T) {
			for _, related := range []bool{false, true} {
				s := hp.Standardize(tc.value, ontology.StandardizeOptions{Related: related})
				if s.Matched() || s.Match == ontology.Ambiguous {
					t.Fatalf("Standardize(%q, related %v) = %v %s: a %s synonym was used", tc.value, related, s.Match, s.ID, tc.scope)
				}
				if len(s.Leads) == 0 || s.Leads[0].Scope != tc.scope || tc.id != "" && s.Leads[0].ID != tc.id || !strings.Contains(s.Reason(), tc.want) {
					t.Fatalf("Standardize(%q): leads %+v, reason %q; want %q", tc.value, s.Leads, s.Reason(), tc.want)
				}
			}
			if r := hp.Inspect([]string{tc.value}, ontology.StandardizeOptions{}); len(r.Failed()) != 1 || !strings.Contains(r.Failed()[0].Standard.Reason(), tc.want) {
				t.Fatalf("Inspect(%q): %+v", tc.value, r.Reports)
			}
		})
	}
}

// A text a term has twice as a synonym keeps its strongest scope (EXACT >
// RELATED > BROAD, NARROW): the first one stood, so an EXACT synonym
// listed after a BROAD one of the same text was a lead, never mapped.
func TestSynonymStrongestScope(t *testing.T) {
	module := load(t, "tissue", "", "ontologies", "extra", "uberon-module-from-mondo.obo.gz")
	slim := load(t, "tissue", "", "ontologies", "uberon-efo-slim.obo")
	tests := []struct {
		idx     *ontology.Index
		value   string
		related bool
		match   ontology.Match
		id      string
	}{
		{module, "infundibular stem", false, ontology.BySynonym, "UBERON:0002434"},       // BROAD, then EXACT
		{module, "transitional epithelium", false, ontology.BySynonym, "UBERON:0000365"}, // BROAD, then EXACT; RELATED of UBERON:0004645
		{slim, "SCN", true, ontology.ByRelated, "UBERON:0002034"},                        // BROAD, then RELATED
	}
	for _, tc := range tests {
		for _, x := range []*ontology.Index{tc.idx, roundTrip(t, tc.idx)} {
			st := x.Standardize(tc.value, ontology.StandardizeOptions{Related: tc.related})
			if st.Match != tc.match || st.ID != tc.id {
				t.Errorf("Standardize(%q) = %v %s (%s), want %v %s", tc.value, st.Match, st.ID, st.Reason(), tc.match, tc.id)
			}
		}
	}
}
