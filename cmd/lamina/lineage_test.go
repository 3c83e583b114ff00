package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/lineage"
)

// runIn runs the built lamina in dir and returns its exit code.
func (e *mntEnv) runIn(dir string, args ...string) (string, string, int) {
	e.t.Helper()
	cmd := exec.Command(e.bin, args...)
	cmd.Env, cmd.Dir = e.env, dir
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

func (e *mntEnv) runRecord(uid string) catalog.RunRecord {
	e.t.Helper()
	var rec catalog.RunRecord
	if err := json.Unmarshal([]byte(e.ok("runs", "show", uid, "--format", "json")), &rec); err != nil {
		e.t.Fatal(err)
	}
	return rec
}

func (e *mntEnv) runsByName() map[string]catalog.Run {
	e.t.Helper()
	var runs []catalog.Run
	if err := json.Unmarshal([]byte(e.ok("runs", "ls", "--format", "json", "-n", "0")), &runs); err != nil {
		e.t.Fatal(err)
	}
	m := map[string]catalog.Run{}
	for _, r := range runs {
		if _, ok := m[r.Name]; !ok { // newest first
			m[r.Name] = r
		}
	}
	return m
}

// refs maps version uids to key@vN.
func (e *mntEnv) refs(uids []string) []string {
	out := []string{}
	for _, u := range uids {
		var v catalog.Version
		json.Unmarshal([]byte(e.ok("show", u, "--format", "json")), &v)
		out = append(out, v.Ref())
	}
	sort.Strings(out)
	return out
}

func TestLineageEndToEnd(t *testing.T) {
	e := newMntEnv(t)
	e.ok("save", e.file("counts.csv", []byte("gene,count\nA,5\nB,300\n")), "--key", "raw/counts.csv")
	e.ok("save", e.file("other.csv", []byte("other\n")), "--key", "raw/other.csv")
	mnt := filepath.Join(e.dir, "lab")
	e.mount(mnt)
	os.MkdirAll(filepath.Join(mnt, "results"), 0o755)
	script := e.file("qc.py", []byte("import sys\nrows = open(sys.argv[1]).read().splitlines()\nopen(sys.argv[2], 'w').write('\\n'.join(r for r in rows if not r.endswith(',5')) + '\\n')\n"))

	// A python script, tracked with no change to its code.
	_, errs, code := e.runIn(e.dir, "run", "--transform", "qc", "--param", "min_genes=200", "--param", "strict=true", "--param", "mode=fast",
		"--", "python3", script, filepath.Join(mnt, "raw/counts.csv"), filepath.Join(mnt, "results/qc.csv"))
	if code != 0 || !strings.Contains(errs, "1 input, 1 output") {
		t.Fatalf("lamina run: exit %d\n%s", code, errs)
	}
	// An untracked read is nobody's input.
	mustRead(t, filepath.Join(mnt, "raw/other.csv"))

	// Nested runs and lamina get by a tracked process.
	sh := e.bin + " get raw/counts.csv -o - >/dev/null && " +
		e.bin + " run --transform inner -- cat " + filepath.Join(mnt, "results/qc.csv") + " >/dev/null && " +
		"cp " + filepath.Join(mnt, "results/qc.csv") + " " + filepath.Join(mnt, "results/copy.csv")
	if _, errs, code := e.runIn(e.dir, "run", "--transform", "outer", "--", "sh", "-c", sh); code != 0 {
		t.Fatalf("nested: exit %d\n%s", code, errs)
	}
	// A failing command: recorded, its output too.
	if _, _, code := e.runIn(e.dir, "run", "--transform", "bad", "--", "sh", "-c", "echo x > "+filepath.Join(mnt, "results/bad.txt")+"; exit 3"); code != 3 {
		t.Fatalf("failing run exit %d, want 3", code)
	}

	// An interactive shell as a run.
	track := `eval "$(` + e.bin + ` track start --transform exploration)" && cat ` + filepath.Join(mnt, "raw/counts.csv") +
		` >/dev/null && echo hi > ` + filepath.Join(mnt, "results/explore.txt") + ` && eval "$(` + e.bin + ` track finish)" && test -z "$LAMINA_RUN"`
	cmd := exec.Command("bash", "-c", track)
	cmd.Env = e.env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("track: %v\n%s", err, out)
	}

	runs := e.runsByName()
	exp := e.runRecord(runs["exploration"].UID)
	if got := e.refs(exp.Inputs); strings.Join(got, " ") != "raw/counts.csv@v1" || len(exp.Outputs) != 1 || exp.Run.Status != "ok" {
		t.Fatalf("tracked shell: inputs %v outputs %v status %s", got, exp.Outputs, exp.Run.Status)
	}
	qc := e.runRecord(runs["qc"].UID)
	if got := e.refs(qc.Inputs); strings.Join(got, " ") != "raw/counts.csv@v1" {
		t.Fatalf("qc inputs %v", got)
	}
	if got := e.refs(qc.Outputs); strings.Join(got, " ") != "results/qc.csv@v1" {
		t.Fatalf("qc outputs %v", got)
	}
	if qc.Run.Params["min_genes"] != 200.0 || qc.Run.Params["strict"] != true || qc.Run.Params["mode"] != "fast" {
		t.Fatalf("params %v", qc.Run.Params)
	}
	if qc.Transform.Kind != "script" || qc.Transform.Digest.IsZero() || !strings.Contains(qc.Transform.Source, "splitlines") {
		t.Fatalf("transform %+v", qc.Transform)
	}
	if qc.Run.Status != "ok" || qc.Run.User == "" || qc.Run.Host == "" || len(qc.Run.Argv) != 4 {
		t.Fatalf("run %+v", qc.Run)
	}
	outer, inner := e.runRecord(runs["outer"].UID), e.runRecord(runs["inner"].UID)
	if len(outer.Children) != 1 || outer.Children[0] != inner.Run.UID || inner.Run.Parent != outer.Run.UID {
		t.Fatalf("children %v, inner parent %q", outer.Children, inner.Run.Parent)
	}
	if got := e.refs(outer.Inputs); strings.Join(got, " ") != "raw/counts.csv@v1 results/qc.csv@v1" {
		t.Fatalf("outer inputs %v (lamina get and cp)", got)
	}
	if got := e.refs(inner.Inputs); strings.Join(got, " ") != "results/qc.csv@v1" {
		t.Fatalf("inner inputs %v", got)
	}
	if got := e.refs(outer.Outputs); strings.Join(got, " ") != "results/copy.csv@v1" {
		t.Fatalf("outer outputs %v", got)
	}
	bad := e.runRecord(runs["bad"].UID)
	if bad.Run.Status != "failed" || *bad.Run.ExitCode != 3 || len(bad.Outputs) != 1 {
		t.Fatalf("failed run %+v outputs %v", bad.Run, bad.Outputs)
	}
	for _, r := range runs {
		rec := e.runRecord(r.UID)
		for _, ref := range e.refs(rec.Inputs) {
			if ref == "raw/other.csv@v1" {
				t.Fatalf("an untracked read became an input of %s", r.Name)
			}
		}
	}

	// The sidecar names the run, transform and inputs.
	var side struct {
		Lineage lineage.SidecarLineage `json:"lineage"`
	}
	if err := json.Unmarshal(mustRead(t, filepath.Join(mnt, "results/qc.csv.meta")), &side); err != nil {
		t.Fatal(err)
	}
	if side.Lineage.Run != qc.Run.UID || side.Lineage.Transform != "qc" || len(side.Lineage.Inputs) != 1 || !strings.HasPrefix(side.Lineage.Inputs[0], "raw/counts.csv@v1 ") {
		t.Fatalf("sidecar lineage %+v", side.Lineage)
	}

	// lamina lineage, up and down, in every format.
	text := e.ok("lineage", "results/qc.csv")
	for _, want := range []string{"results/qc.csv@v1", "<- run " + qc.Run.UID, "<- raw/counts.csv@v1", "-> run " + inner.Run.UID, "-> results/copy.csv@v1"} {
		if !strings.Contains(text, want) {
			t.Fatalf("lineage text lacks %q:\n%s", want, text)
		}
	}
	for _, f := range lineage.Formats {
		if out := e.ok("lineage", "results/qc.csv@v1", "--format", f, "--depth", "2"); len(out) < 50 {
			t.Fatalf("lineage --format %s: %q", f, out)
		}
	}
	e.fails("unknown --format", "lineage", "results/qc.csv", "--format", "svg")
}

// TestRunsShowJSONNamesVersions: runs show --format json names each input
// and output's key and number beside the uids.
func TestRunsShowJSONNamesVersions(t *testing.T) {
	e := newMntEnv(t)
	mnt := filepath.Join(e.dir, "lab")
	e.mount(mnt)
	os.MkdirAll(filepath.Join(mnt, "n"), 0o755)
	for _, f := range []string{"in", "in2"} {
		if err := os.WriteFile(filepath.Join(mnt, "n", f), []byte("b\na\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	n := filepath.Join(mnt, "n")
	if _, errs, code := e.runIn(e.dir, "run", "--transform", "sorter", "--", "sh", "-c", "sort "+n+"/in "+n+"/in2 > "+n+"/out2"); code != 0 {
		t.Fatalf("run: exit %d\n%s", code, errs)
	}
	run := e.runRecord(e.runsByName()["sorter"].UID)
	var shown struct {
		Inputs []string `json:"inputs"`
		InVs   []struct {
			UID, Key string
			Version  int
		} `json:"input_versions"`
		OutVs []struct {
			UID, Key string
			Version  int
		} `json:"output_versions"`
	}
	if err := json.Unmarshal([]byte(e.ok("runs", "show", run.Run.UID, "--format", "json")), &shown); err != nil {
		t.Fatal(err)
	}
	if len(shown.InVs) != 2 || shown.InVs[0].UID != shown.Inputs[0] || shown.InVs[0].Key != "n/in" || shown.InVs[0].Version != 1 ||
		shown.InVs[1].Key != "n/in2" || len(shown.OutVs) != 1 || shown.OutVs[0].Key != "n/out2" || shown.OutVs[0].UID != run.Outputs[0] {
		t.Fatalf("runs show --format json: inputs %v, input_versions %+v, output_versions %+v", shown.Inputs, shown.InVs, shown.OutVs)
	}
}

func TestLineageSnakemake(t *testing.T) {
	e, wf := snakemakeMount(t)
	os.WriteFile(filepath.Join(wf, "raw/a.csv"), []byte("a,1\nb,2\n"), 0o644)
	os.WriteFile(filepath.Join(wf, "raw/b.csv"), []byte("c,3\n"), 0o644)
	os.WriteFile(filepath.Join(wf, "Snakefile"), []byte(`rule merge:
    input: "raw/a.csv", "raw/b.csv"
    output: temp("results/merged.csv")
    shell: "cat {input} > {output}"

rule stats:
    input: "raw/a.csv"
    output: protected("results/stats.tsv")
    shadow: "minimal"
    shell: "wc -l {input} > tmp.txt && mv tmp.txt {output}"

rule report:
    input: "results/merged.csv", "results/stats.tsv"
    output: "results/report.txt"
    shell: "cat {input} > {output}"

rule fail:
    input: "raw/b.csv"
    output: "results/fail.txt"
    shell: "cat {input} > {output}; exit 3"
`), 0o644)
	_, errs, code := e.runIn(wf, "run", "--", "snakemake", "-j2", "--keep-going", "results/report.txt", "results/fail.txt")
	if code == 0 {
		t.Fatalf("the workflow with a failing rule succeeded:\n%s", errs)
	}
	var g lineage.Graph
	if err := json.Unmarshal([]byte(e.ok("lineage", "wf/results/report.txt", "--up", "--format", "json")), &g); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, ed := range g.Edges {
		if ed.From == ed.To {
			t.Fatalf("self edge %v", ed)
		}
		got = append(got, g.Nodes[ed.From].Label()+" -> "+g.Nodes[ed.To].Label())
	}
	for _, n := range g.Nodes {
		if n.Version != nil && strings.Contains(n.Version.Key, ".snakemake") {
			t.Fatalf("bookkeeping node %s", n.Version.Key)
		}
	}
	name := func(s string) string { // "report (run X)" → "report"
		if i := strings.Index(s, " (run "); i >= 0 {
			return s[:i]
		}
		return s
	}
	for i := range got {
		a, b, _ := strings.Cut(got[i], " -> ")
		got[i] = name(a) + " -> " + name(b)
	}
	sort.Strings(got)
	want := []string{
		"merge -> wf/results/merged.csv@v1",
		"report -> wf/results/report.txt@v1",
		"stats -> wf/results/stats.tsv@v1",
		"wf/raw/a.csv@v1 -> merge",
		"wf/raw/a.csv@v1 -> stats",
		"wf/raw/b.csv@v1 -> merge",
		"wf/results/merged.csv@v1 -> report",
		"wf/results/stats.tsv@v1 -> report",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("graph:\n%s\nwant:\n%s\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"), errs)
	}
	runs := e.runsByName()
	if runs["snakemake"].Status != "failed" || runs["fail"].Status != "failed" || runs["fail"].Parent != runs["snakemake"].UID || runs["merge"].Status != "ok" {
		t.Fatalf("runs %+v", runs)
	}
	// A job's run is a run of its rule: a transform of its own, versioned
	// by the Snakefile, which runs ls --transform and the sidecar name.
	pipeline := e.runRecord(runs["snakemake"].UID).Transform
	var merges []catalog.Run
	if err := json.Unmarshal([]byte(e.ok("runs", "ls", "--transform", "merge", "--format", "json")), &merges); err != nil || len(merges) != 1 || merges[0].UID != runs["merge"].UID {
		t.Fatalf("runs ls --transform merge: %+v, %v", merges, err)
	}
	report := e.runRecord(runs["report"].UID)
	if tr := report.Transform; tr.Name != "report" || tr.Kind != "rule" || tr.Digest != pipeline.Digest || pipeline.Digest.IsZero() {
		t.Fatalf("report's transform %+v, pipeline's %+v", tr, pipeline)
	}
	var side struct {
		Lineage lineage.SidecarLineage `json:"lineage"`
	}
	if err := json.Unmarshal(mustRead(t, filepath.Join(wf, "results/report.txt.meta")), &side); err != nil ||
		side.Lineage.Transform != "report" || side.Lineage.TransUID != report.Transform.UID {
		t.Fatalf("report.txt sidecar %+v (%v), want transform report %s", side.Lineage, err, report.Transform.UID)
	}
	if !g.Nodes[g.Root].Latest {
		t.Fatal("report is latest")
	}
	for _, n := range g.Nodes {
		if n.Version != nil && n.Version.Key == "wf/results/merged.csv" && n.Latest {
			t.Fatal("temp() output still latest")
		}
	}
}

// The write-to-temp-then-rename pattern and truncate(2) by path are a
// run's outputs too; the purged temporary version is not.
func TestLineageRenameAndTruncate(t *testing.T) {
	e := newMntEnv(t)
	e.ok("save", e.file("in.csv", []byte("a,b\n1,2\n")), "--key", "raw/in.csv")
	mnt := filepath.Join(e.dir, "lab")
	e.mount(mnt)
	os.MkdirAll(filepath.Join(mnt, "results"), 0o755)
	dst := filepath.Join(mnt, "results/out.csv")
	writer := e.file("w.py", []byte("import os, sys\ndata = open(sys.argv[1]).read()\ntmp = sys.argv[2] + '.tmp42'\nopen(tmp, 'w').write(data.upper())\nos.replace(tmp, sys.argv[2])\n"))
	if _, errs, code := e.runIn(e.dir, "run", "--transform", "writer", "--", "python3", writer, filepath.Join(mnt, "raw/in.csv"), dst); code != 0 {
		t.Fatalf("writer: exit %d\n%s", code, errs)
	}
	if _, errs, code := e.runIn(e.dir, "run", "--transform", "cutter", "--", "python3", "-c", "import os, sys; os.truncate(sys.argv[1], 3)", dst); code != 0 {
		t.Fatalf("cutter: exit %d\n%s", code, errs)
	}
	runs := e.runsByName()
	w := e.runRecord(runs["writer"].UID)
	if got := e.refs(w.Outputs); strings.Join(got, " ") != "results/out.csv@v1" {
		t.Fatalf("writer outputs %v", got)
	}
	c := e.runRecord(runs["cutter"].UID)
	if got := e.refs(c.Outputs); strings.Join(got, " ") != "results/out.csv@v2" {
		t.Fatalf("cutter outputs %v (truncate by path)", got)
	}
	if got := string(mustRead(t, dst)); got != "A,B" {
		t.Fatalf("after truncate: %q", got)
	}
}

// TestLineageBackupThenRewrite: a program that moves its input aside to a
// backup name (scratch: f~, as editors and backup-then-rewrite tools do),
// reads the backup and writes the key anew reads the key's version: it is
// the run's input, and the new version's upstream. It printed "0 inputs,
// 1 output" and the new version had no upstream (audit c3). A version the
// run wrote itself, read back through its backup, is no input, as a read
// of the key is not.
func TestLineageBackupThenRewrite(t *testing.T) {
	e := newMntEnv(t)
	e.ok("save", e.file("e.csv", []byte("a,b\n1,2\n")), "--key", "big/e.csv")
	mnt := filepath.Join(e.dir, "lab")
	e.mount(mnt)
	edit := e.file("edit.py", []byte("import os, sys\np = sys.argv[1]\nos.rename(p, p + '~')\ndata = open(p + '~').read()\nopen(p, 'w').write(data.upper())\n"))
	if _, errs, code := e.runIn(e.dir, "run", "--", "python3", edit, filepath.Join(mnt, "big/e.csv")); code != 0 || !strings.Contains(errs, "1 input, 1 output") {
		t.Fatalf("lamina run: exit %d\n%s", code, errs)
	}
	rec := e.runRecord(e.runsByName()["edit.py"].UID)
	if got := strings.Join(e.refs(rec.Inputs), " "); got != "big/e.csv@v1" {
		t.Fatalf("inputs %q, want big/e.csv@v1 (read through its backup big/e.csv~)", got)
	}
	if got := strings.Join(e.refs(rec.Outputs), " "); got != "big/e.csv@v2" {
		t.Fatalf("outputs %q, want big/e.csv@v2", got)
	}
	if text := e.ok("lineage", "big/e.csv", "--up"); !strings.Contains(text, "<- big/e.csv@v1") {
		t.Fatalf("lineage of big/e.csv lacks its v1 upstream:\n%s", text)
	}

	own := filepath.Join(mnt, "big/own.txt")
	sh := "echo x > " + own + "; mv " + own + " " + own + "~; cat " + own + "~ > " + own
	if _, errs, code := e.runIn(e.dir, "run", "--transform", "own", "--", "sh", "-c", sh); code != 0 {
		t.Fatalf("own: exit %d\n%s", code, errs)
	}
	rec = e.runRecord(e.runsByName()["own"].UID)
	if got := e.refs(rec.Inputs); len(got) != 0 {
		t.Fatalf("own: inputs %v, want none (the backup holds the run's own output)", got)
	}
}

// TestLineageSnakemakeNestedRun: a `lamina run` in a rule's shell (one
// run per rule, DESIGN §5) keeps its own name and transform when the
// Snakemake run ends: only the job runs the daemon made are named after
// their rule. Its parent is the Snakemake run.
func TestLineageSnakemakeNestedRun(t *testing.T) {
	e, wf := snakemakeMount(t)
	os.WriteFile(filepath.Join(wf, "raw/a.csv"), []byte("a,1\n"), 0o644)
	os.WriteFile(filepath.Join(wf, "Snakefile"), []byte(`rule all:
    input: "results/b.csv"

rule a:
    input: "raw/a.csv"
    output: "results/a.csv"
    shell: "`+e.bin+` run --transform inner_a --param k=1 -- sh -c 'cat {input} > {output}'"

rule b:
    input: "results/a.csv"
    output: "results/b.csv"
    shell: "cat {input} > {output}"
`), 0o644)
	if _, errs, code := e.runIn(wf, "run", "--", "snakemake", "-j1"); code != 0 {
		t.Fatalf("lamina run -- snakemake: exit %d\n%s", code, errs)
	}
	var inner []catalog.Run
	if err := json.Unmarshal([]byte(e.ok("runs", "ls", "--transform", "inner_a", "--format", "json")), &inner); err != nil || len(inner) != 1 {
		t.Fatalf("runs ls --transform inner_a: %+v, %v\n%s", inner, err, e.ok("runs", "ls"))
	}
	runs := e.runsByName()
	sm := runs["snakemake"]
	in := e.runRecord(inner[0].UID)
	if in.Run.Name != "inner_a" || in.Transform.Name != "inner_a" || in.Transform.Kind == "rule" || in.Run.Status != catalog.RunOK ||
		in.Run.Params["k"] != float64(1) || in.Run.Parent != sm.UID || sm.UID == "" || sm.Parent != "" {
		t.Fatalf("nested run %+v, transform %+v; snakemake run %+v", in.Run, in.Transform, sm)
	}
	if got := e.refs(in.Outputs); strings.Join(got, " ") != "wf/results/a.csv@v1" {
		t.Fatalf("nested run's outputs %v", got)
	}
	if got := e.refs(in.Inputs); strings.Join(got, " ") != "wf/raw/a.csv@v1" {
		t.Fatalf("nested run's inputs %v", got)
	}
	// The daemon's job runs are still named after their rule.
	b := e.runRecord(runs["b"].UID)
	if b.Transform.Name != "b" || b.Transform.Kind != "rule" || b.Run.Parent != sm.UID || strings.Join(e.refs(b.Outputs), " ") != "wf/results/b.csv@v1" {
		t.Fatalf("rule b's run %+v, transform %+v", b.Run, b.Transform)
	}
	if _, ok := runs["a"]; ok {
		// A job run for rule a exists only if its shell opened something
		// through the mount itself; then it is rule a's, not inner_a.
		if a := e.runRecord(runs["a"].UID); a.Transform.Name != "a" {
			t.Fatalf("rule a's job run %+v", a.Run)
		}
	}
}

// snakemakeMount mounts a fresh instance and returns it with a workflow
// folder in the mount holding an empty raw/; the test fails without
// snakemake unless LAMINA_SKIP_SNAKEMAKE=1.
func snakemakeMount(t *testing.T) (*mntEnv, string) {
	t.Helper()
	if _, err := exec.LookPath("snakemake"); err != nil {
		if os.Getenv("LAMINA_SKIP_SNAKEMAKE") == "1" {
			t.Skip("no snakemake and LAMINA_SKIP_SNAKEMAKE=1")
		}
		t.Fatal("no snakemake: apt-get install -y snakemake (LAMINA_SKIP_SNAKEMAKE=1 skips this test)")
	}
	e := newMntEnv(t)
	mnt := filepath.Join(e.dir, "lab")
	e.mount(mnt)
	wf := filepath.Join(mnt, "wf")
	os.MkdirAll(filepath.Join(wf, "raw"), 0o755)
	return e, wf
}

// TestGetRefusedRecordsNoInput: `lamina get` inside a run recorded its
// input before writing, so a get refused (-o exists) credited a version
// the run never received (audit e2). It counts once the bytes are written.
func TestGetRefusedRecordsNoInput(t *testing.T) {
	e := newMntEnv(t)
	mnt := filepath.Join(e.dir, "lab")
	e.mount(mnt)
	os.MkdirAll(filepath.Join(mnt, "g"), 0o755)
	if err := os.WriteFile(filepath.Join(mnt, "g/x.txt"), []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	exists := filepath.Join(e.dir, "exists")
	os.WriteFile(exists, []byte("mine\n"), 0o644)
	e.runIn(e.dir, "run", "--transform", "refused", "--", e.bin, "get", "g/x.txt", "-o", exists)
	e.runIn(e.dir, "run", "--transform", "written", "--", e.bin, "get", "g/x.txt", "-o", filepath.Join(e.dir, "new"))
	runs := e.runsByName()
	if got := e.refs(e.runRecord(runs["refused"].UID).Inputs); len(got) != 0 {
		t.Fatalf("a get refused (-o exists) recorded inputs %v", got)
	}
	if got := e.refs(e.runRecord(runs["written"].UID).Inputs); strings.Join(got, " ") != "g/x.txt@v1" {
		t.Fatalf("a get that wrote its bytes recorded inputs %v, want g/x.txt@v1", got)
	}
	if b, _ := os.ReadFile(exists); string(b) != "mine\n" {
		t.Fatalf("the refused get wrote over -o: %q", b)
	}
}
