package ontology_test

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/crc32"
	"reflect"
	"testing"

	"github.com/lamina-bio/lamina/ontology"
)

// roundTrip encodes a built index and loads it back.
func roundTrip(t testing.TB, built *ontology.Index) *ontology.Index {
	t.Helper()
	b := built.MarshalIndex()
	loaded, err := ontology.LoadIndex(b, built.Source().Digest)
	if err != nil {
		t.Fatal(err)
	}
	return loaded
}

// TestLoadedIndexAnswersAsBuilt asks a built index and the one loaded from
// its file the same questions: every answer must be the same.
func TestLoadedIndexAnswersAsBuilt(t *testing.T) {
	for _, tc := range []struct {
		name  string
		built func(testing.TB) *ontology.Index
	}{
		{"CL-JSON", clJSON},
		{"CL-OBO", clOBO},
		{"Mondo", mondo},
		{"genes", humanGenes},
	} {
		t.Run(tc.name, func(t *testing.T) {
			built := tc.built(t)
			loaded := roundTrip(t, built)
			// Source() is compared last: before it, the loaded index has
			// only its tables to answer from.
			if loaded.Len() != built.Len() {
				t.Fatalf("%d terms, want %d", loaded.Len(), built.Len())
			}
			values := append(mixedValues(built, 1000), "", " ", "T-cell", "b lymphocyte", "Monocyte ", "dendritc cell", "CD20", "SLE", "Covid-19", "rheumatoid arthritus")
			for _, v := range values {
				same(t, "validate "+v, loaded.Validate(v), built.Validate(v))
				same(t, "validate message "+v, loaded.Validate(v).Message(), built.Validate(v).Message())
				for _, related := range []bool{false, true} {
					o := ontology.StandardizeOptions{Related: related}
					ls, bs := loaded.Standardize(v, o), built.Standardize(v, o)
					same(t, "standardize "+v, ls, bs)
					same(t, "standardize reason "+v, ls.Reason(), bs.Reason())
				}
				lt, lok := loaded.Term(v)
				bt, bok := built.Term(v)
				same(t, "term "+v, []any{lt, lok}, []any{bt, bok})
			}
			same(t, "inspect", loaded.Inspect(values[:500], ontology.StandardizeOptions{}), built.Inspect(values[:500], ontology.StandardizeOptions{}))
			queries := append(searchQueries(built)[:24], "T helper", "dendritc", "cd4 alpha", "rheumatoid arthritus")
			for _, q := range queries {
				for _, obsolete := range []bool{false, true} {
					o := ontology.SearchOptions{Limit: 10, Obsolete: obsolete}
					same(t, "search "+q, loaded.Search(q, o), built.Search(q, o))
				}
				same(t, "suggest "+q, loaded.Suggest(q, 3), built.Suggest(q, 3))
			}
			terms := built.Source().Terms
			for i := 0; i < len(terms); i += max(1, len(terms)/100) {
				id := terms[i].ID
				for _, rel := range []ontology.Relation{ontology.IsA, ontology.PartOf, ontology.IsA | ontology.PartOf} {
					walks := []func(*ontology.Index) (any, error){
						func(x *ontology.Index) (any, error) { return x.Parents(id, rel) },
						func(x *ontology.Index) (any, error) { return x.Children(id, rel) },
						func(x *ontology.Index) (any, error) { return x.Ancestors(id, rel) },
						func(x *ontology.Index) (any, error) { return x.Descendants(id, rel) },
					}
					for _, walk := range walks {
						lw, lerr := walk(loaded)
						bw, berr := walk(built)
						same(t, "hierarchy of "+id, []any{lw, lerr}, []any{bw, berr})
					}
				}
			}
			if !reflect.DeepEqual(normalize(loaded.Source()), normalize(built.Source())) {
				t.Fatal("the loaded source differs from the built one")
			}
		})
	}
}

// same compares answers by their exported fields (the results hold a
// pointer to their index, which differs).
func same(t *testing.T, what string, got, want any) {
	t.Helper()
	g, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	w, _ := json.Marshal(want)
	if string(g) != string(w) {
		t.Fatalf("%s:\nloaded %s\nbuilt  %s", what, g, w)
	}
}

// TestIndexDescendantsOfTCell checks a walk a query depends on, on a
// loaded index.
func TestIndexDescendantsOfTCell(t *testing.T) {
	x := roundTrip(t, clJSON(t))
	d, err := x.Descendants("T cell", ontology.IsA)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, id := range d {
		found = found || id == "CL:0000624" // CD4-positive, alpha-beta T cell
	}
	if !found || len(d) < 100 {
		t.Fatalf("%d descendants of T cell, CD4+ ab T cell among them: %v", len(d), found)
	}
}

// TestLoadIndexRejects damages an index file in the ways a disk, a copy
// or an upgrade can: LoadIndex must refuse each with ErrIndex.
func TestLoadIndexRejects(t *testing.T) {
	built := load(t, "developmental_stage", "human", "ontologies", "hsapdv.obo")
	good := built.MarshalIndex()
	digest := built.Source().Digest
	if d, err := ontology.IndexDigest(good); err != nil || d != digest {
		t.Fatalf("IndexDigest = %q, %v; want %q", d, err, digest)
	}
	flip := func(off int) []byte {
		b := append([]byte(nil), good...)
		b[off] ^= 0x40
		return b
	}
	cases := map[string]struct {
		data   []byte
		digest string
	}{
		"empty":             {nil, ""},
		"not an index":      {[]byte("LMNONT\x01 a source, not an index"), ""},
		"truncated header":  {good[:40], ""},
		"truncated body":    {good[:len(good)/2], ""},
		"one byte short":    {good[:len(good)-1], ""},
		"trailing byte":     {append(append([]byte(nil), good...), 0), ""},
		"byte in magic":     {flip(2), ""},
		"byte in digest":    {flip(30), ""},
		"byte in directory": {flip(100), ""},
		"byte in strings":   {flip(len(good) / 3), ""},
		"byte near the end": {flip(len(good) - 9), ""},
		"other source":      {good, "0000" + digest[4:]},
		"newer format":      {withFormat(good, ontology.IndexFormat+1), ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := ontology.LoadIndex(tc.data, tc.digest); !errors.Is(err, ontology.ErrIndex) {
				t.Fatalf("got %v, want ErrIndex", err)
			}
		})
	}
	if _, err := ontology.LoadIndex(good, digest); err != nil {
		t.Fatalf("the good file: %v", err)
	}
}

// withFormat rewrites the format field and the header checksum, as a
// file written by another build would have them.
func withFormat(b []byte, v uint32) []byte {
	b = append([]byte(nil), b...)
	binary.LittleEndian.PutUint32(b[8:], v)
	binary.LittleEndian.PutUint32(b[84:], crc32.Checksum(b[:84], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

// FuzzLoadIndex changes bytes of a valid file and fixes the checksums, as
// a buggy writer would: LoadIndex must refuse what is out of range, and
// queries on what it accepts must not panic.
func FuzzLoadIndex(f *testing.F) {
	src := mustOBO(f, `format-version: 1.4

[Term]
id: X:1
name: cell
synonym: "a cell" EXACT []
synonym: "Schwann’s cell" EXACT []

[Term]
id: X:2
name: T cell
is_a: X:1
synonym: "T-cell" EXACT []
synonym: "CD4+ T cell" NARROW []
alt_id: X:9

[Term]
id: X:3
name: old cell
is_obsolete: true
replaced_by: X:2
`)
	x, err := ontology.Build(src)
	if err != nil {
		f.Fatal(err)
	}
	good := x.MarshalIndex()
	f.Add(uint32(300), byte(1))
	f.Add(uint32(200), byte(0xff))
	f.Fuzz(func(t *testing.T, off uint32, xor byte) {
		b := append([]byte(nil), good...)
		i := 88 + int(off)%(len(b)-88)
		b[i] ^= xor
		tab := crc32.MakeTable(crc32.Castagnoli)
		binary.LittleEndian.PutUint32(b[80:], crc32.Checksum(b[88:], tab))
		binary.LittleEndian.PutUint32(b[84:], crc32.Checksum(b[:84], tab))
		y, err := ontology.LoadIndex(b, "")
		if err != nil {
			return
		}
		for _, v := range []string{"cell", "T cell", "t-cell", "X:9", "old cell", "X:3", "cel", "zzz"} {
			y.Validate(v).Message()
			y.Standardize(v, ontology.StandardizeOptions{Related: true}).Reason()
			y.Search(v, ontology.SearchOptions{Obsolete: true})
			y.Suggest(v, 3)
			y.Term(v)
			y.Descendants(v, ontology.IsA|ontology.PartOf)
			y.Ancestors(v, ontology.IsA|ontology.PartOf)
			y.Children(v, ontology.IsA|ontology.PartOf)
			y.Parents(v, ontology.IsA|ontology.PartOf)
		}
		y.Source()
	})
}

// TestIndexEncodingIsStable pins the bytes of a small index. Files of
// format IndexFormat are read by every later build: a change to the
// layout, the hash or the order of the tables must come with a new
// IndexFormat, and then a new checksum here. Format 3: a text twice on
// one term keeps its strongest scope in the synonym map. Format 4: a
// typographic apostrophe folds to ' (the folded synonym of X:1). Format
// 5: fuzzy entries spell marker signs out ("CD4+" is "cd4-positive").
func TestIndexEncodingIsStable(t *testing.T) {
	src := mustOBO(t, `format-version: 1.4

[Term]
id: X:1
name: cell
synonym: "a cell" EXACT []
synonym: "Schwann’s cell" EXACT []

[Term]
id: X:2
name: T cell
is_a: X:1
synonym: "T-cell" BROAD []
synonym: "T-cell" EXACT []
synonym: "CD4+ T cell" NARROW []
alt_id: X:9
`)
	src.Digest = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	x, err := ontology.Build(src)
	if err != nil {
		t.Fatal(err)
	}
	b := x.MarshalIndex()
	const want = 0x7d94756b
	if got := crc32.ChecksumIEEE(b); ontology.IndexFormat != 5 || got != want {
		t.Fatalf("format %d, %d bytes, checksum %#x, want %#x: bump IndexFormat when the encoding changes", ontology.IndexFormat, len(b), got, want)
	}
}
