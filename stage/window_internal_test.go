package stage

import (
	"encoding/json"
	"reflect"
	"testing"
)

// The window file's lines read back as written: every field, and keys
// that need escapes.
func TestWindowEntryRoundTrip(t *testing.T) {
	for _, e := range []windowEntry{
		{Key: "a/b.csv", At: 1764325000123456789, TrashedAt: 1764325000123456000, Run: "r1", MovedTo: "a/b.csv.bak", UID: "U0000", By: "42"},
		{Key: "q\"\\\n<&>é", At: 1, Kept: true, Restore: true},
		{Key: "k", At: 7},
	} {
		b := e.appendJSON(nil)
		if b[len(b)-1] != '\n' {
			t.Fatalf("%q: no newline", b)
		}
		var got windowEntry
		if err := json.Unmarshal(b, &got); err != nil || got != e {
			t.Fatalf("%q read back as %+v, %v; want %+v", b, got, err, e)
		}
	}
}

// TestWindowEncoderKnowsEveryField: a field added to windowEntry and not to
// appendJSON would be lost at every remount (as the journal's were once).
func TestWindowEncoderKnowsEveryField(t *testing.T) {
	typ := reflect.TypeFor[windowEntry]()
	for i := range typ.NumField() {
		var e windowEntry
		v := reflect.ValueOf(&e).Elem().Field(i)
		switch v.Kind() {
		case reflect.String:
			v.SetString("x")
		case reflect.Bool:
			v.SetBool(true)
		case reflect.Int64:
			v.SetInt(7)
		default:
			t.Fatalf("field %s: kind %s not covered by this test", typ.Field(i).Name, v.Kind())
		}
		want, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		if got := e.appendJSON(nil); string(got) != string(want)+"\n" {
			t.Errorf("field %s:\n got %s\nwant %s", typ.Field(i).Name, got, want)
		}
	}
}
