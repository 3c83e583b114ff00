package fs_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// snakefile has three rules: two per-sample steps and a merge; mid is
// protected() (chmod 0444), and a failing rule writes a partial output.
const snakefile = `
SAMPLES = ["a", "b"]
D = config["data"]
rule all:
    input: D + "/out/merged.txt"
rule upper:
    input: D + "/in/{s}.txt"
    output: protected(D + "/out/{s}.upper")
    shell: "tr a-z A-Z < {input} > {output}"
rule count:
    input: D + "/out/{s}.upper"
    output: D + "/out/{s}.count"
    shell: "wc -c < {input} > {output}"
rule merge:
    input: expand(D + "/out/{s}.count", s=SAMPLES)
    output: D + "/out/merged.txt"
    shell: "cat {input} > {output}"
rule broken:
    output: D + "/out/broken.txt"
    shell: "echo partial > {output}; exit 1"
`

func TestSnakemake(t *testing.T) {
	needTool(t, "snakemake")
	w := newWorld(t)
	w.save("wf/in/a.txt", []byte("alpha\n"))
	w.save("wf/in/b.txt", []byte("beta\n"))
	w.mountRW()
	for i, where := range []string{"outside", "inside"} {
		first, second := []string{"6\n5\n", "18\n5\n"}[i], []string{"18\n5\n", "8\n5\n"}[i]
		newA := []string{"alpha, longer now\n", "shorter\n"}[i]
		t.Run(where, func(t *testing.T) {
			wd := filepath.Join(w.tmp, "wd-"+where)
			data := filepath.Join(w.dir, "wf")
			if where == "inside" {
				wd = filepath.Join(w.dir, "wf", "run")
				data = ".."
				w.sh("rm -rf wf/out")
			}
			os.MkdirAll(wd, 0o755)
			if err := os.WriteFile(filepath.Join(wd, "Snakefile"), []byte(snakefile), 0o644); err != nil {
				t.Fatal(err)
			}
			run := func(args ...string) string {
				t.Helper()
				// cd after exec (see world.sh).
				cmd := exec.Command("sh", append([]string{"-c", `cd "$0" && exec snakemake "$@"`, wd, "--cores", "1", "--config", "data=" + data}, args...)...)
				out, err := cmd.CombinedOutput()
				if err != nil && !strings.Contains(strings.Join(args, " "), "broken") {
					t.Fatalf("snakemake %v: %v\n%s", args, err, out)
				}
				return string(out)
			}
			jobs := func(out string) string {
				for _, l := range strings.Split(out, "\n") {
					if strings.HasPrefix(strings.TrimSpace(l), "total") {
						return strings.Fields(l)[1]
					}
				}
				if strings.Contains(out, "Nothing to be done") {
					return "0"
				}
				return "?"
			}
			if n := jobs(run()); n != "6" {
				t.Fatalf("first run: %s jobs, want 6", n)
			}
			if got := string(w.read("wf/out/merged.txt")); got != first {
				t.Fatalf("merged = %q", got)
			}
			if fi, _ := os.Stat(filepath.Join(w.dir, "wf/out/a.upper")); fi.Mode().Perm() != 0o444 {
				t.Fatalf("protected output mode %v", fi.Mode())
			}
			if out := run(); jobs(out) != "0" {
				t.Fatalf("second run did something:\n%s", out)
			}
			time.Sleep(10 * time.Millisecond)
			w.save("wf/in/a.txt", []byte(newA))
			out := run()
			if n := jobs(out); n != "4" || strings.Contains(out, "b.upper") {
				t.Fatalf("after a new input version: %s jobs\n%s", n, out)
			}
			if n := jobs(run("--forcerun", "count")); n == "0" {
				t.Fatalf("--forcerun did nothing")
			}
			run("broken")
			if _, err := os.Stat(filepath.Join(w.dir, "wf/out/broken.txt")); !os.IsNotExist(err) {
				t.Fatalf("partial output of a failed rule: %v", err)
			}
			if got := string(w.read("wf/out/merged.txt")); got != second {
				t.Fatalf("merged after rerun = %q", got)
			}
		})
	}
}
