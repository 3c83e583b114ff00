package ontology_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/lamina-bio/lamina/ontology"
)

// TestOBOCompliance runs every case of the OAK OBO conformance suite. A
// case whose meta.yaml says "invalid: true" must be rejected with an error
// naming the file and a line. Every other case must parse to the same terms
// as its canonical re-serialisation (expected.obo), and those terms must
// agree with the OBO Graphs JSON the suite gives (expected.json), which is
// an independent statement of the expected names, synonyms, definitions,
// obsolete flags, replacements, alt_ids and is_a / part_of edges.
func TestOBOCompliance(t *testing.T) {
	dirs, err := filepath.Glob(dataPath("ontologies", "obo-compliance", "*"))
	if err != nil || len(dirs) != 93 {
		t.Fatalf("want the 93 compliance cases, found %d (%v)", len(dirs), err)
	}
	var invalid []string
	for _, dir := range dirs {
		name := filepath.Base(dir)
		t.Run(name, func(t *testing.T) {
			in := filepath.Join(dir, name+".obo")
			meta := readMeta(t, filepath.Join(dir, name+".meta.yaml"))
			src, err := readOBOFile(in)
			if meta["invalid"] == "true" {
				invalid = append(invalid, name)
				if err == nil {
					t.Fatalf("%s is marked invalid but parsed (%d terms)", in, len(src.Terms))
				}
				var se *ontology.SyntaxError
				if !errors.As(err, &se) || se.File != in || se.Line <= 0 {
					t.Fatalf("want a SyntaxError with file %s and a line, got %T %v", in, err, err)
				}
				if !strings.Contains(err.Error(), fmt.Sprintf("%s:%d:", in, se.Line)) {
					t.Errorf("message %q does not name file:line", err)
				}
				if !errors.Is(err, ontology.ErrFormat) {
					t.Errorf("error does not wrap ErrFormat")
				}
				return
			}
			if err != nil {
				t.Fatalf("valid case rejected: %v", err)
			}
			want, err := readOBOFile(filepath.Join(dir, name+".expected.obo"))
			if err != nil {
				t.Fatalf("expected.obo: %v", err)
			}
			if !reflect.DeepEqual(src.Terms, want.Terms) {
				t.Errorf("terms differ from expected.obo:\n got  %+v\n want %+v", src.Terms, want.Terms)
			}
			checkGraphJSON(t, filepath.Join(dir, name+".expected.json"), idspaces(t, in), src.Terms)
		})
	}
	slices.Sort(invalid)
	wantInvalid := []string{"expansion-conflict-main-idspace", "invalid-intersection_of-single-element", "invalid-name-duplicate",
		"invalid-owl-axioms-owl-syntax", "prefixes-conflict-main-idspace", "synonym-without-scope"}
	if !slices.Equal(invalid, wantInvalid) {
		t.Errorf("invalid cases = %v, want %v", invalid, wantInvalid)
	}
}

func readOBOFile(path string) (*ontology.Source, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ontology.ReadOBO(f, path)
}

// readMeta reads the flat "key: value" lines of a meta.yaml. The files
// repeat the name key, which a strict YAML parser rejects.
func readMeta(t *testing.T, path string) map[string]string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			m[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return m
}

type graphDoc struct {
	Graphs []struct {
		Nodes []struct {
			ID   string `json:"id"`
			Lbl  string `json:"lbl"`
			Type string `json:"type"`
			Meta struct {
				Definition *struct {
					Val string `json:"val"`
				} `json:"definition"`
				Synonyms []struct {
					Pred string `json:"pred"`
					Val  string `json:"val"`
				} `json:"synonyms"`
				BasicPropertyValues []struct {
					Pred string `json:"pred"`
					Val  string `json:"val"`
				} `json:"basicPropertyValues"`
				Deprecated bool `json:"deprecated"`
			} `json:"meta"`
		} `json:"nodes"`
		Edges []struct {
			Sub, Pred, Obj string
			Meta           *json.RawMessage `json:"meta"`
		} `json:"edges"`
	} `json:"graphs"`
}

// idspaces reads the "idspace: X http://example.org/X/" header lines, which
// change how the JSON spells ids.
func idspaces(t *testing.T, path string) map[string]string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "idspace:"); ok {
			if f := strings.Fields(rest); len(f) >= 2 {
				m[f[1]] = f[0]
			}
		}
	}
	return m
}

func iriToCURIE(s string, spaces map[string]string) string {
	for exp, prefix := range spaces {
		if rest, ok := strings.CutPrefix(s, exp); ok {
			return prefix + ":" + rest
		}
	}
	if rest, ok := strings.CutPrefix(s, "http://purl.obolibrary.org/obo/"); ok {
		if i := strings.LastIndexByte(rest, '_'); i > 0 {
			return rest[:i] + ":" + rest[i+1:]
		}
	}
	return s
}

const oio = "http://www.geneontology.org/formats/oboInOwl#"

func checkGraphJSON(t *testing.T, path string, spaces map[string]string, terms []ontology.Term) {
	t.Helper()
	iriToCURIE := func(s string) string { return iriToCURIE(s, spaces) }
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc graphDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	g := doc.Graphs[0]
	byID := map[string]*ontology.Term{}
	for i := range terms {
		byID[terms[i].ID] = &terms[i]
	}
	// Edges: is_a without a GCI qualifier, and part_of.
	isa, partOf := map[string][]string{}, map[string][]string{}
	for _, e := range g.Edges {
		gci := e.Meta != nil && strings.Contains(string(*e.Meta), "gci_")
		switch {
		case e.Pred == "is_a" && !gci:
			isa[iriToCURIE(e.Sub)] = append(isa[iriToCURIE(e.Sub)], iriToCURIE(e.Obj))
		case e.Pred == "http://purl.obolibrary.org/obo/BFO_0000050" && !gci:
			partOf[iriToCURIE(e.Sub)] = append(partOf[iriToCURIE(e.Sub)], iriToCURIE(e.Obj))
		}
	}
	for _, tm := range terms {
		if !sameSet(tm.Parents, isa[tm.ID]) {
			t.Errorf("%s is_a = %v, expected.json has %v", tm.ID, tm.Parents, isa[tm.ID])
		}
		if !sameSet(tm.PartOf, partOf[tm.ID]) {
			t.Errorf("%s part_of = %v, expected.json has %v", tm.ID, tm.PartOf, partOf[tm.ID])
		}
	}
	seen := map[string]bool{}
	for _, n := range g.Nodes {
		if n.Type != "CLASS" {
			continue
		}
		id := iriToCURIE(n.ID)
		var props = map[string][]string{}
		for _, p := range n.Meta.BasicPropertyValues {
			props[p.Pred] = append(props[p.Pred], iriToCURIE(p.Val))
		}
		if len(props["http://purl.obolibrary.org/obo/IAO_0000231"]) > 0 {
			continue // the placeholder class OWL makes for an alt_id
		}
		tm := byID[id]
		if tm == nil {
			t.Errorf("expected.json has class %s (%q) that the parser did not return", id, n.Lbl)
			continue
		}
		seen[id] = true
		if tm.Name != n.Lbl {
			t.Errorf("%s name %q, expected.json %q", id, tm.Name, n.Lbl)
		}
		var gotSyn, wantSyn []string
		for _, s := range tm.Synonyms {
			gotSyn = append(gotSyn, s.Scope.String()+" "+s.Text)
		}
		scopes := map[string]string{"hasExactSynonym": "EXACT", "hasRelatedSynonym": "RELATED", "hasBroadSynonym": "BROAD", "hasNarrowSynonym": "NARROW"}
		for _, s := range n.Meta.Synonyms {
			wantSyn = append(wantSyn, scopes[s.Pred]+" "+s.Val)
		}
		if !sameSet(gotSyn, wantSyn) {
			t.Errorf("%s synonyms %v, expected.json %v", id, gotSyn, wantSyn)
		}
		wantDef := ""
		if n.Meta.Definition != nil {
			wantDef = n.Meta.Definition.Val
		}
		if tm.Definition != wantDef {
			t.Errorf("%s definition %q, expected.json %q", id, tm.Definition, wantDef)
		}
		if tm.Obsolete != n.Meta.Deprecated {
			t.Errorf("%s obsolete %v, expected.json %v", id, tm.Obsolete, n.Meta.Deprecated)
		}
		for _, c := range []struct {
			what string
			got  []string
			pred string
		}{
			{"replaced_by", tm.ReplacedBy, "http://purl.obolibrary.org/obo/IAO_0100001"},
			{"consider", tm.Consider, oio + "consider"},
			{"alt_id", tm.AltIDs, oio + "hasAlternativeId"},
		} {
			if !sameSet(c.got, props[c.pred]) {
				t.Errorf("%s %s %v, expected.json %v", id, c.what, c.got, props[c.pred])
			}
		}
		if ns := props[oio+"hasOBONamespace"]; len(ns) > 0 && ns[0] != tm.Namespace {
			t.Errorf("%s namespace %q, expected.json %q", id, tm.Namespace, ns[0])
		}
	}
	// A term OWL has nothing to say about (only an id, or only a
	// deprecation) gets no node; anything with a label must have one.
	for _, tm := range terms {
		if !seen[tm.ID] && (tm.Name != "" || len(tm.Synonyms) > 0 || tm.Definition != "") {
			t.Errorf("term %s (%q) is not in expected.json", tm.ID, tm.Name)
		}
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
