package ontology_test

import (
	"encoding/csv"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/lamina-bio/lamina/ontology"
)

// TestPBMCExpected runs Inspect and Standardize over each ontology column
// of samples/pbmc_small_obs.csv and checks every row of
// samples/pbmc_small.expected.tsv: counts, match type, term id and label,
// the closest label offered for typos, and the notes about obsolete terms
// sharing a label.
//
// The generator calls a match through a cellxgene JSON synonym
// "synonym_synonym" because its reader did not know the scope; those
// files hold EXACT synonyms only, so both kinds are a BySynonym match here.
func TestPBMCExpected(t *testing.T) {
	columns := map[string]func(testing.TB) *ontology.Index{
		"cell_type": clOBO,
		"tissue": func(t testing.TB) *ontology.Index {
			return load(t, "tissue", "", "ontologies", "cellxgene-json", "UBERON-ontology-v2026-04-01.json.gz")
		},
		"disease": mondo,
		"development_stage": func(t testing.TB) *ontology.Index {
			return load(t, "developmental_stage", "human", "ontologies", "cellxgene-json", "HsapDv-ontology-v2025-01-23.json.gz")
		},
		"sex": pato,
		"assay": func(t testing.TB) *ontology.Index {
			return load(t, "experimental_factor", "", "ontologies", "cellxgene-json", "EFO-ontology-v3.90.0.json.gz")
		},
		"organism": func(t testing.TB) *ontology.Index {
			return load(t, "organism", "", "ontologies", "ncbitaxon-taxslim.obo.gz")
		},
	}
	obs := readTable(t, dataPath("samples", "pbmc_small_obs.csv"), ',')
	expected := readTable(t, dataPath("samples", "pbmc_small.expected.tsv"), '\t')
	want := map[string]map[string][]string{} // field -> value -> row
	for _, row := range expected[1:] {
		if want[row[0]] == nil {
			want[row[0]] = map[string][]string{}
		}
		want[row[0]][row[1]] = row
	}
	if len(want) != len(columns) {
		t.Fatalf("expected.tsv covers %d fields, test knows %d", len(want), len(columns))
	}
	header := obs[0]
	for col, field := range header {
		get := columns[field]
		if get == nil {
			continue
		}
		t.Run(field, func(t *testing.T) {
			idx := get(t)
			values := make([]string, 0, len(obs)-1)
			for _, row := range obs[1:] {
				values = append(values, row[col])
			}
			ins := idx.Inspect(values, ontology.StandardizeOptions{})
			if len(ins.Reports) != len(want[field]) {
				t.Errorf("%d distinct values, expected.tsv has %d", len(ins.Reports), len(want[field]))
			}
			standard := map[string]string{}
			for _, r := range ins.Reports {
				row := want[field][r.Value]
				if row == nil {
					t.Errorf("value %q is not in expected.tsv", r.Value)
					continue
				}
				checkReport(t, idx, r, row)
				standard[r.Value] = row[6]
				if row[4] == "no_match" || row[4] == "exact_label_other_ontology" {
					standard[r.Value] = r.Value
				}
			}
			// Standardize the whole column: every cell gets its label, or
			// stays as it was when nothing matched.
			for _, v := range values {
				got := idx.Standardize(v, ontology.StandardizeOptions{}).Standard()
				if got != standard[v] {
					t.Fatalf("Standardize(%q) = %q, want %q", v, got, standard[v])
				}
			}
		})
	}
}

var closest = regexp.MustCompile(`^closest label: (.*) \((.*)\)$`)

func checkReport(t *testing.T, idx *ontology.Index, r ontology.Report, row []string) {
	t.Helper()
	value, nCells, matchType, id, label, note := row[1], row[2], row[4], row[5], row[6], row[7]
	if n, _ := strconv.Atoi(nCells); n != r.Count {
		t.Errorf("%q: count %d, want %s", value, r.Count, nCells)
	}
	got := describeReport(r)
	var want string
	switch matchType {
	case "exact_label":
		want = fmt.Sprintf("valid %s %s", id, label)
		v := idx.Validate(value)
		got = fmt.Sprintf("valid %s %s", v.ID, v.Name)
		if !r.Valid {
			got = describeReport(r)
		}
		if obs, ok := strings.CutPrefix(note, "label also used by obsolete "); ok {
			o, found := idx.Term(obs)
			if !found || !o.Obsolete || o.Name != value {
				t.Errorf("%q: note says obsolete %s shares the label; index has %+v", value, obs, o)
			}
		}
	case "label_case_or_whitespace":
		want = fmt.Sprintf("case_or_whitespace %s %s", id, label)
	case "synonym_exact", "synonym_synonym":
		want = fmt.Sprintf("synonym %s %s", id, label)
	case "no_match":
		want = "no_match"
		if m := closest.FindStringSubmatch(note); m != nil {
			if len(r.Suggestions) == 0 || r.Suggestions[0].Name != m[1] || r.Suggestions[0].ID != m[2] {
				t.Errorf("%q: suggestions %+v, want %s (%s) first", value, r.Suggestions, m[1], m[2])
			}
		}
	case "exact_label_other_ontology":
		// "normal" is not a disease; by cellxgene convention it is PATO.
		want = "no_match"
		if v := pato(t).Validate(value); !v.Valid || v.ID != id || v.Name != label {
			t.Errorf("%q in PATO: %+v, want %s", value, v, id)
		}
	default:
		t.Fatalf("unknown match type %q", matchType)
	}
	if got != want {
		t.Errorf("%q: got %s, want %s", value, got, want)
	}
}

func describeReport(r ontology.Report) string {
	switch {
	case r.Valid:
		return "valid"
	case r.Standard.Matched():
		return fmt.Sprintf("%s %s %s", r.Standard.Match, r.Standard.ID, r.Standard.Name)
	}
	return r.Standard.Match.String()
}

func readTable(t *testing.T, path string, sep rune) [][]string {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.Comma = sep
	r.LazyQuotes = sep == '\t'
	rows, err := r.ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return rows
}

func mondo(t testing.TB) *ontology.Index {
	return load(t, "disease", "", "ontologies", "cellxgene-json", "MONDO-ontology-v2026-05-05.json.gz")
}

func pato(t testing.TB) *ontology.Index {
	return load(t, "sex", "", "ontologies", "cellxgene-json", "PATO-ontology-v2025-05-14.json.gz")
}
