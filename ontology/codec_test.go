package ontology_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/lamina-bio/lamina/ontology"
)

func TestMarshalRoundTrip(t *testing.T) {
	for _, idx := range []*ontology.Index{clOBO(t), hpo(t), humanGenes(t)} {
		src := idx.Source()
		t.Run(src.Ontology, func(t *testing.T) {
			blob := ontology.Marshal(src)
			got, err := ontology.Unmarshal(blob)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(normalize(got), normalize(src)) {
				t.Fatal("round trip changed the source")
			}
			// The reloaded source indexes to the same answers.
			idx2, err := ontology.Build(got)
			if err != nil {
				t.Fatal(err)
			}
			for _, tm := range src.Terms[:50] {
				if a, b := idx.Standardize(tm.Name, ontology.StandardizeOptions{}), idx2.Standardize(tm.Name, ontology.StandardizeOptions{}); a.ID != b.ID || a.Match != b.Match {
					t.Errorf("%q: %v %s vs %v %s", tm.Name, a.Match, a.ID, b.Match, b.ID)
				}
			}
		})
	}
}

func TestUnmarshalRejects(t *testing.T) {
	blob := ontology.Marshal(clOBO(t).Source())
	flip := bytes.Clone(blob)
	flip[len(flip)/2] ^= 1
	future := bytes.Clone(blob)
	future[6] = 99
	for name, b := range map[string][]byte{
		"empty":     nil,
		"not ours":  []byte("PK\x03\x04 something else entirely"),
		"truncated": blob[:len(blob)-10],
		"bit flip":  flip,
		"version":   future,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := ontology.Unmarshal(b); !errors.Is(err, ontology.ErrCodec) {
				t.Errorf("got %v, want ErrCodec", err)
			}
		})
	}
}

// normalize makes empty and nil slices compare equal.
func normalize(s *ontology.Source) *ontology.Source {
	c := *s
	c.Terms = make([]ontology.Term, len(s.Terms))
	for i, t := range s.Terms {
		for _, l := range []*[]string{&t.Parents, &t.PartOf, &t.ReplacedBy, &t.Consider, &t.AltIDs} {
			if len(*l) == 0 {
				*l = nil
			}
		}
		if len(t.Synonyms) == 0 {
			t.Synonyms = nil
		}
		c.Terms[i] = t
	}
	if len(c.Warnings) == 0 {
		c.Warnings = nil
	}
	return &c
}

func FuzzUnmarshal(f *testing.F) {
	src := mustOBO(f, "[Term]\nid: X:1\nname: a\nsynonym: \"b\" EXACT []\nis_a: X:2\nalt_id: X:3\n\n[Term]\nid: X:2\nname: c\nis_obsolete: true\nreplaced_by: X:1\n")
	f.Add(ontology.Marshal(src))
	f.Add(ontology.Marshal(&ontology.Source{}))
	f.Add([]byte("LMNONT\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ontology.Unmarshal(b)
		if err != nil {
			if !errors.Is(err, ontology.ErrCodec) {
				t.Fatalf("error does not wrap ErrCodec: %v", err)
			}
			return
		}
		// Whatever decodes re-encodes to the same bytes.
		if again := ontology.Marshal(s); !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs")
		}
	})
}

// FuzzReadOBO feeds the OBO reader arbitrary text, seeded with every
// compliance case: it must return a Source or a SyntaxError, never panic,
// and what it returns must survive encoding and indexing.
func FuzzReadOBO(f *testing.F) {
	cases, _ := filepath.Glob(dataPath("ontologies", "obo-compliance", "*", "*.obo"))
	for _, c := range cases {
		if b, err := os.ReadFile(c); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("[Term]\nid: X:1\nname: a \\\nb\nis_a: X:1 {x=\"}\"} ! c\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		src, err := ontology.ReadOBO(bytes.NewReader(b), "fuzz.obo")
		if err != nil {
			var se *ontology.SyntaxError
			if !errors.As(err, &se) || se.File != "fuzz.obo" {
				t.Fatalf("not a SyntaxError for fuzz.obo: %v", err)
			}
			return
		}
		for _, tm := range src.Terms {
			if tm.ID == "" {
				t.Fatal("term without id")
			}
		}
		back, err := ontology.Unmarshal(ontology.Marshal(src))
		if err != nil || !reflect.DeepEqual(normalize(back), normalize(src)) {
			t.Fatalf("codec round trip: %v", err)
		}
		idx, err := ontology.Build(src)
		if err != nil {
			t.Fatal(err)
		}
		for _, tm := range src.Terms {
			idx.Descendants(tm.ID, ontology.IsA|ontology.PartOf)
			idx.Search(tm.Name, ontology.SearchOptions{})
		}
	})
}
