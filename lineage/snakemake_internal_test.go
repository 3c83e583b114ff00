package lineage

import (
	"encoding/base64"
	"strings"
	"testing"
)

// The output a Snakemake metadata record names: relative to the folder
// that holds .snakemake, absolute as given, a long name split into
// "@"-prefixed folders as Snakemake splits it.
func TestSnakemakeRecordOf(t *testing.T) {
	b64 := func(s string) string { return base64.URLEncoding.EncodeToString([]byte(s)) }
	long := strings.Repeat("d/", 150) + "out.txt"
	lb := b64(long)
	chunked := "@" + lb[:254] + "/" + lb[254:]
	for _, c := range []struct{ p, want string }{
		{"wf/.snakemake/metadata/" + b64("out/x.txt"), "wf/out/x.txt"},
		{".snakemake/metadata/" + b64("out/x.txt"), "out/x.txt"},
		{"wf/.snakemake/metadata/" + b64("/abs/lab/wf/out/x.txt"), "/abs/lab/wf/out/x.txt"},
		{"wf/.snakemake/metadata/" + chunked, "wf/" + long},
		{"wf/.snakemake/incomplete/" + b64("out/x.txt"), ""},
		{"wf/x.snakemake/metadata/" + b64("out/x.txt"), ""},
		{"wf/.snakemake/metadata/tmp_abc!", ""},
	} {
		got, ok := snakemakeRecordOf(c.p)
		if got != c.want || ok != (c.want != "") {
			t.Errorf("snakemakeRecordOf(%q) = %q, %v; want %q", c.p, got, ok, c.want)
		}
	}
}
