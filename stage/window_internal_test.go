package stage

import (
	"encoding/json"
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
