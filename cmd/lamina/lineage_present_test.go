package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/catalog/postgres/pgtest"
	"github.com/lamina-bio/lamina/lineage"
)

// TestLineagePresentation: what `lamina show`, the .meta sidecar and
// `runs show` make of a rule run again and again with the same result.
//   - The sidecar and show named every run that reproduced a version, one
//     more per identical rerun, for good: they name the newest
//     lineage.SidecarReruns, newest first, and count them all
//     (also_produced_count).
//   - `runs show` listed the versions a run reproduced among its outputs
//     as if it had made them: each output is marked new or reproduced
//     (JSON: "reproduced").
//   - A run's inputs came by uid: they come by key, then version, in the
//     text and the JSON, on bbolt and PostgreSQL (LAMINA_PG_URL) alike.
func TestLineagePresentation(t *testing.T) {
	t.Run("bbolt", func(t *testing.T) { lineagePresentation(t, newMntEnv(t)) })
	t.Run("postgres", func(t *testing.T) {
		db := pgtest.URL(t)
		e := workstationEnv(t, "ana")
		e.ok("init", "--storage", filepath.Join(e.dir, "storage"), "--db", db, "--name", "lab")
		lineagePresentation(t, e)
	})
}

func lineagePresentation(t *testing.T, e *mntEnv) {
	// Nine inputs of seven keys; by key then version (bytewise: "Z"
	// before "a", "a-b" before "a.csv" before "a/x.csv"), whatever their
	// uids (a key's versions share the start of theirs, the keys' starts
	// are random).
	for i, k := range []string{"raw/b.csv", "raw/a.csv", "raw/a.csv", "raw/a/x.csv", "raw/Z.csv", "raw/a.csv", "raw/c.csv", "raw/d.csv", "raw/a-b.csv"} {
		e.ok("save", e.file(fmt.Sprint("in", i), []byte(fmt.Sprintln(k, i))), "--key", k)
	}
	wantIn := []string{"raw/Z.csv@v1", "raw/a-b.csv@v1", "raw/a.csv@v1", "raw/a.csv@v2", "raw/a.csv@v3", "raw/a/x.csv@v1", "raw/b.csv@v1", "raw/c.csv@v1", "raw/d.csv@v1"}
	mnt := filepath.Join(e.dir, "lab")
	e.mount(mnt)
	os.MkdirAll(filepath.Join(mnt, "results"), 0o755)
	at := func(k string) string { return filepath.Join(mnt, k) }
	// out.csv: the same bytes each time; fresh.txt: new ones.
	script := e.bin + " get raw/a.csv@v1 -o - >/dev/null && " + e.bin + " get raw/a.csv@v2 -o - >/dev/null && cat " +
		strings.Join([]string{at("raw/b.csv"), at("raw/a.csv"), at("raw/a/x.csv"), at("raw/Z.csv"), at("raw/c.csv"), at("raw/a-b.csv"), at("raw/d.csv")}, " ") +
		" > " + at("results/out.csv") + " && date +%s%N > " + at("results/fresh.txt")
	const times = lineage.SidecarReruns + 3 // the first made out.csv; the rest reproduced it
	for i := range times {
		if _, errs, code := e.runIn(e.dir, "run", "--transform", "rule", "--", "sh", "-c", script); code != 0 || !strings.Contains(errs, "9 inputs, 2 outputs") {
			t.Fatalf("run %d: exit %d\n%s", i+1, code, errs)
		}
	}
	var all []catalog.Run
	if err := json.Unmarshal([]byte(e.ok("runs", "ls", "--format", "json", "-n", "0")), &all); err != nil {
		t.Fatal(err)
	}
	var runs []string // oldest first
	for _, r := range all {
		if r.Name == "rule" {
			runs = append([]string{r.UID}, runs...)
		}
	}
	if len(runs) != times {
		t.Fatalf("%d runs of the rule, want %d", len(runs), times)
	}
	ref := func(uid string) catalog.Version {
		var v catalog.Version
		if err := json.Unmarshal([]byte(e.ok("show", uid, "--format", "json")), &v); err != nil {
			t.Fatal(err)
		}
		return v
	}

	// 1. The newest reruns, newest first, and how many there are.
	var side struct {
		Lineage lineage.SidecarLineage `json:"lineage"`
	}
	shown := e.ok("show", "results/out.csv", "--format", "json")
	sidecar := mustRead(t, at("results/out.csv.meta"))
	if string(sidecar) != shown {
		t.Fatalf("show --format json is not the sidecar:\n%s\n%s", shown, sidecar)
	}
	if err := json.Unmarshal(sidecar, &side); err != nil {
		t.Fatal(err)
	}
	l := side.Lineage
	if l.Run != runs[0] || l.AlsoCount != times-1 || len(l.AlsoBy) != lineage.SidecarReruns {
		t.Errorf("sidecar lineage: run %s, %d of %d reruns named; want run %s, %d of %d:\n%s",
			l.Run, len(l.AlsoBy), l.AlsoCount, runs[0], lineage.SidecarReruns, times-1, sidecar)
	}
	for i, a := range l.AlsoBy {
		if want := runs[times-1-i] + " (rule)"; a != want {
			t.Errorf("also_produced_by[%d] = %q, want %q (newest first):\n%s", i, a, want, sidecar)
			break
		}
	}
	text := e.ok("show", "results/out.csv")
	for i := range lineage.SidecarReruns {
		if !strings.Contains(text, "run "+runs[times-1-i]+" (rule) (identical bytes)\n") {
			t.Errorf("show lacks run %s:\n%s", runs[times-1-i], text)
			break
		}
	}
	if strings.Contains(text, runs[1]) || !strings.Contains(text, fmt.Sprintf("and 2 earlier runs (%d in all;", times-1)) {
		t.Errorf("show names the oldest reruns or does not count them:\n%s", text)
	}

	// 2. The output a run reproduced, and the one it made.
	last := runs[times-1]
	var rec struct {
		catalog.RunRecord
		Reproduced []string `json:"reproduced"`
	}
	if err := json.Unmarshal([]byte(e.ok("runs", "show", last, "--format", "json")), &rec); err != nil {
		t.Fatal(err)
	}
	out := ref("results/out.csv")
	if len(rec.Outputs) != 2 || !slices.Equal(rec.Reproduced, []string{out.UID}) {
		t.Errorf("the last run's outputs %v, reproduced %v; want out.csv %s reproduced", rec.Outputs, rec.Reproduced, out.UID)
	}
	lines := strings.Split(e.ok("runs", "show", last), "\n")
	marks := map[string]string{}
	for _, ln := range lines {
		if f := strings.Fields(ln); len(f) >= 3 && strings.HasPrefix(f[0], "results/") {
			marks[f[0]] = f[2]
		}
	}
	if marks["results/out.csv@v1"] != "reproduced" || marks[fmt.Sprintf("results/fresh.txt@v%d", times)] != "new" {
		t.Errorf("runs show marks %v:\n%s", marks, strings.Join(lines, "\n"))
	}
	var first struct {
		Reproduced []string `json:"reproduced"`
	}
	if err := json.Unmarshal([]byte(e.ok("runs", "show", runs[0], "--format", "json")), &first); err != nil || first.Reproduced == nil || len(first.Reproduced) != 0 {
		t.Errorf("the first run reproduced %v (%v), want []", first.Reproduced, err)
	}

	// 3. Inputs by key, then version: the JSON, the text, the sidecar.
	var got []string
	for _, u := range rec.Inputs {
		got = append(got, ref(u).Ref())
	}
	if !slices.Equal(got, wantIn) {
		t.Errorf("runs show --format json: inputs %v, want %v", got, wantIn)
	}
	got = nil
	in := false
	for _, ln := range lines {
		switch {
		case strings.HasPrefix(ln, "inputs ("):
			in = true
		case in && strings.HasPrefix(ln, "  "):
			got = append(got, strings.Fields(ln)[0])
		default:
			in = false
		}
	}
	if !slices.Equal(got, wantIn) {
		t.Errorf("runs show: inputs %v, want %v:\n%s", got, wantIn, strings.Join(lines, "\n"))
	}
	if err := json.Unmarshal(mustRead(t, at("results/fresh.txt.meta")), &side); err != nil {
		t.Fatal(err)
	}
	got = nil
	for _, s := range side.Lineage.Inputs {
		got = append(got, strings.Fields(s)[0])
	}
	if !slices.Equal(got, wantIn) {
		t.Errorf("sidecar: inputs %v, want %v", got, wantIn)
	}
}
