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

// A `script:` job's passes differ only by the temporary name of the
// script's copy; another script, or another argument, is another job.
func TestSameJobCommand(t *testing.T) {
	s := func(args ...string) []string { return args }
	for _, c := range []struct {
		a, b []string
		want bool
	}{
		{s("python3", "/lab/wf/.snakemake/scripts/tmpez8aaz9v.s.py"), s("python3", "/lab/wf/.snakemake/scripts/tmptncmye9b.s.py"), true},
		{s("bash", "-c", "set -euo pipefail; Rscript --vanilla '/lab/.snakemake/scripts/tmpab_cd123.s.R'"), s("bash", "-c", "set -euo pipefail; Rscript --vanilla '/lab/.snakemake/scripts/tmp0123abcd.s.R'"), true},
		{s("python3", "/lab/wf/.snakemake/scripts/tmpez8aaz9v.s.py"), s("python3", "/lab/wf/.snakemake/scripts/tmptncmye9b.t.py"), false},
		{s("python3", "/lab/wf/.snakemake/scripts/tmpez8aaz9v.s.py", "a"), s("python3", "/lab/wf/.snakemake/scripts/tmptncmye9b.s.py", "b"), false},
		{s("python3", "/lab/wf/scripts/tmpez8aaz9v.s.py"), s("python3", "/lab/wf/scripts/tmptncmye9b.s.py"), false},
		{s("sh", "step.sh"), s("sh", "step.sh"), true},
	} {
		if got := sameJobCommand(c.a, c.b); got != c.want {
			t.Errorf("sameJobCommand(%q, %q) = %v", c.a, c.b, got)
		}
	}
}

// The passes of a `script:` job have copies that differ only by the pass
// number in the preamble; two jobs' copies differ by their files.
func TestScriptJob(t *testing.T) {
	py := func(in, iter string) string {
		return `snakemake = pickle.loads(b'\x80\x04\x95\x8c\x0braw/` + in + `.csv\x94\x8c\x0fbench_iteration\x94` + iter + `\x8c\tscriptdir\x94')` + "\nprint(1)\n"
	}
	r := func(in, iter string) string {
		return "snakemake <- Snakemake(\n    input = list('raw/" + in + ".csv'),\n    bench_iteration = " + iter + ",\n)\n"
	}
	for _, c := range []struct {
		a, b string
		same bool
	}{
		{py("s1", `K\x00`), py("s1", `K\x01`), true},
		{py("s1", `K\x00`), py("s1", `KA`), true},
		{py("s1", `K\x00`), py("s1", `M\x00\x01`), true},
		{py("s1", `N`), py("s1", `N`), true},
		{py("s1", `K\x00`), py("s2", `K\x00`), false},
		{r("s1", "0"), r("s1", "1"), true},
		{r("s1", "0"), r("s2", "0"), false},
		{"0, #bench_iteration::Int64\nraw/s1", "1, #bench_iteration::Int64\nraw/s1", true},
	} {
		if got := scriptJob([]byte(c.a)) == scriptJob([]byte(c.b)); got != c.same {
			t.Errorf("scriptJob(%q) == scriptJob(%q): %v", c.a, c.b, got)
		}
	}
	if got := scriptCopy([]string{"bash", "-c", "set -euo pipefail;  /usr/bin/python3 '/lab/wf/.snakemake/scripts/tmpez8aaz9v.s.py'"}); got != "/lab/wf/.snakemake/scripts/tmpez8aaz9v.s.py" {
		t.Errorf("scriptCopy: %q", got)
	}
}
