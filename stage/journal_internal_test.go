package stage

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"testing"
)

// A journal record is written byte for byte as json.Marshal writes it:
// every field empty or not, keys with quotes, escapes, HTML characters,
// control bytes, UTF-8 and bytes that are not UTF-8.
func TestJournalRecordAsJSONMarshal(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	strs := []string{"", "a", "r/out.csv", `q"uote`, `back\slash`, "<b>&amp;", "tab\there", "nl\n", "\x00\x1f",
		"é/ü.txt", "日本/語", "\xff\xfe", "ok\xc3", "\u2028\u2029", "\x7f"}
	pick := func() string { return strs[r.IntN(len(strs))] }
	for range 5000 {
		j := journal{ID: pick(), State: pick(), Key: pick(), Manifest: pick()}
		if r.IntN(2) == 0 {
			j.Mode = r.Uint32()
		}
		if r.IntN(2) == 0 {
			j.LazySeq = r.Uint64()
		}
		if r.IntN(2) == 0 {
			j.Base = r.IntN(1<<20) - 1<<19
		}
		if r.IntN(2) == 0 {
			j.Stem, j.Head = pick(), pick()
		}
		if r.IntN(2) == 0 {
			j.Failed = true
		}
		if r.IntN(2) == 0 {
			j.CopiedFrom = r.Int64N(1<<40) - 1<<39
		}
		want, err := json.Marshal(j)
		if err != nil {
			t.Fatal(err)
		}
		if got := j.appendJSON(nil); string(got) != string(want) {
			t.Fatalf("%+v:\n got %s\nwant %s", j, got, want)
		}
	}
}

// TestJournalEncoderKnowsEveryField: a field added to journal and not to
// appendJSON is lost from every record but the compacted ones (the stem,
// failed and lazy-copy fields were, at a merge): each exported field set
// alone must come out as json.Marshal writes it.
func TestJournalEncoderKnowsEveryField(t *testing.T) {
	typ := reflect.TypeFor[journal]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		if !f.IsExported() {
			continue
		}
		var j journal
		v := reflect.ValueOf(&j).Elem().Field(i)
		switch v.Kind() {
		case reflect.String:
			v.SetString("x")
		case reflect.Bool:
			v.SetBool(true)
		case reflect.Int, reflect.Int64:
			v.SetInt(7)
		case reflect.Uint32, reflect.Uint64:
			v.SetUint(7)
		default:
			t.Fatalf("field %s: kind %s not covered by this test", f.Name, v.Kind())
		}
		want, err := json.Marshal(j)
		if err != nil {
			t.Fatal(err)
		}
		if got := j.appendJSON(nil); string(got) != string(want) {
			t.Errorf("field %s:\n got %s\nwant %s", f.Name, got, want)
		}
	}
}
