package lineage_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/lamina-bio/lamina/lineage"
)

// TestParseParams: a value is typed only when the typed value writes back
// as the same text; anything else stays the string given.
func TestParseParams(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want any
	}{
		{"n=200", int64(200)},
		{"n=-3", int64(-3)},
		{"n=0", int64(0)},
		{"sample=007", "007"},
		{"n=+7", "+7"},
		{"big=123456789012345678901", "123456789012345678901"},
		{"big=9007199254740993", "9007199254740993"}, // a JSON reader would get ...992
		{"x=0.5", 0.5},
		{"x=-2.25", -2.25},
		{"tool_version=1.10", "1.10"},
		{"x=1.0", "1.0"},
		{"x=1e3", "1e3"},
		{"x=NaN", "NaN"},
		{"x=Inf", "Inf"},
		{"ok=true", true},
		{"ok=false", false},
		{"ok=True", "True"},
		{"genes=CD4,CD8", "CD4,CD8"},
		{"filter=a,b=c", "a,b=c"},
		{"sp=  5 ", "  5 "},
		{"empty=", ""},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := lineage.ParseParams([]string{tc.in})
			k, _, _ := strings.Cut(tc.in, "=")
			if err != nil || len(got) != 1 || !reflect.DeepEqual(got[k], tc.want) {
				t.Fatalf("ParseParams(%q) = %#v, %v; want %s=%#v", tc.in, got, err, k, tc.want)
			}
		})
	}
	for _, bad := range [][]string{{"a=1", "a=2"}, {"noequals"}, {"=v"}} {
		if got, err := lineage.ParseParams(bad); err == nil {
			t.Errorf("ParseParams(%q) = %v, want an error", bad, got)
		}
	}
}

// TestDetectSnakefile: the Snakefile Snakemake itself runs versions the
// transform, whichever way -s is written and in each of Snakemake's
// default places; two pipelines are two transforms.
func TestDetectSnakefile(t *testing.T) {
	dir := t.TempDir()
	write := func(p, text string) string {
		p = filepath.Join(dir, p)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	other := write("pipelines/other.smk", "rule other:\n    output: 'o'\n")
	for _, tc := range []struct {
		name  string
		files []string // created in a fresh cwd
		argv  []string
		want  string // relative to cwd; "" for none
	}{
		{"default", []string{"Snakefile", "workflow/Snakefile"}, []string{"snakemake", "-j1"}, "Snakefile"},
		{"lowercase", []string{"snakefile", "workflow/Snakefile"}, []string{"snakemake"}, "snakefile"},
		{"workflow", []string{"workflow/Snakefile"}, []string{"snakemake", "-j2", "-d", "elsewhere"}, "workflow/Snakefile"},
		{"workflow lowercase", []string{"workflow/snakefile"}, []string{"python3", "-m", "snakemake"}, "workflow/snakefile"},
		{"-s PATH", []string{"Snakefile", "a.smk"}, []string{"snakemake", "-s", "a.smk", "-j1"}, "a.smk"},
		{"-sPATH", []string{"Snakefile", "a.smk"}, []string{"snakemake", "-sa.smk"}, "a.smk"},
		{"--snakefile PATH", []string{"Snakefile", "a.smk"}, []string{"snakemake", "--snakefile", "a.smk"}, "a.smk"},
		{"--snakefile=PATH", []string{"Snakefile", "a.smk"}, []string{"snakemake", "--snakefile=a.smk", "-j1"}, "a.smk"},
		{"--snake=PATH", []string{"Snakefile", "a.smk"}, []string{"snakemake", "--snake=a.smk"}, "a.smk"},
		{"absolute", []string{"Snakefile"}, []string{"snakemake", "--snakefile=" + other}, other},
		{"none", nil, []string{"snakemake"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cwd := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_"))
			os.MkdirAll(cwd, 0o755)
			for _, f := range tc.files {
				write(filepath.Join(filepath.Base(cwd), f), "# "+f+" of "+tc.name+"\nrule all:\n    input: []\n")
			}
			tr := lineage.DetectTransform(tc.argv, "", cwd)
			want := tc.want
			if want != "" && !filepath.IsAbs(want) {
				want = filepath.Join(cwd, want)
			}
			if tr.Kind != "pipeline" || tr.Path != want || (want != "") == tr.Digest.IsZero() {
				t.Fatalf("DetectTransform(%q) = kind %s path %q digest %s; want the pipeline %q", tc.argv, tr.Kind, tr.Path, tr.Digest, want)
			}
		})
	}
	if w := lineage.SnakemakeWorkdir([]string{"snakemake", "--directory=wd"}, "/x"); w != "/x/wd" {
		t.Errorf("--directory=wd: workdir %s", w)
	}
	if w := lineage.SnakemakeWorkdir([]string{"snakemake", "-dwd"}, "/x"); w != "/x/wd" {
		t.Errorf("-dwd: workdir %s", w)
	}
}
