package stage

import (
	"encoding/json"
	"math/rand/v2"
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
		want, err := json.Marshal(j)
		if err != nil {
			t.Fatal(err)
		}
		if got := j.appendJSON(nil); string(got) != string(want) {
			t.Fatalf("%+v:\n got %s\nwant %s", j, got, want)
		}
	}
}
