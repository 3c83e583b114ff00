package main

import (
	"encoding/json"
	"github.com/lamina-bio/lamina/stage"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lamina-bio/lamina/catalog/postgres/pgtest"
)

// Scratch patterns are set per instance, shown by info, refused when they
// cannot work, and honoured by the next mount: a scratch file gets no
// version, a regular one does.
func TestScratchPatterns(t *testing.T) {
	e := newMntEnv(t)
	patterns := func() []string {
		var ps []string
		if err := json.Unmarshal([]byte(e.ok("scratch", "--format", "json")), &ps); err != nil {
			t.Fatal(err)
		}
		return ps
	}
	if ps := patterns(); !slices.Contains(ps, ".snakemake") || slices.Contains(ps, "*.tmp") {
		t.Fatalf("defaults: %v", ps)
	}
	e.ok("scratch", "add", "*.tmp", "work")
	e.ok("scratch", "rm", "*~")
	if ps := patterns(); !slices.Contains(ps, "*.tmp") || !slices.Contains(ps, "work") || slices.Contains(ps, "*~") {
		t.Fatalf("after add and rm: %v", ps)
	}
	var info struct{ Scratch []string }
	json.Unmarshal([]byte(e.ok("info", "--format", "json")), &info)
	if !slices.Equal(info.Scratch, patterns()) {
		t.Fatalf("info shows %v", info.Scratch)
	}
	e.fails("without '/'", "scratch", "add", "a/b")
	e.fails("every name", "scratch", "add", "**")
	e.fails("syntax error in pattern", "scratch", "add", "[")
	e.fails("not a scratch pattern", "scratch", "rm", "nope")
	e.fails("one or more patterns", "scratch", "add")

	mnt := filepath.Join(e.dir, "lab")
	e.mount(mnt)
	for name, data := range map[string]string{"out/a.tmp": "scratch", "work/b.csv": "scratch too", "out/c.csv": "kept", "out/d~": "kept now"} {
		os.MkdirAll(filepath.Dir(filepath.Join(mnt, name)), 0o755)
		if err := os.WriteFile(filepath.Join(mnt, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got := string(mustRead(t, filepath.Join(mnt, "out/a.tmp"))); got != "scratch" {
		t.Fatalf("scratch file reads %q", got)
	}
	e.ok("umount", mnt)
	out := e.ok("ls", "--format", "json")
	for _, key := range []string{"out/c.csv", "out/d~"} {
		if !strings.Contains(out, `"`+key+`"`) {
			t.Errorf("%s has no version: %s", key, out)
		}
	}
	for _, key := range []string{"out/a.tmp", "work/b.csv"} {
		if strings.Contains(out, key) {
			t.Errorf("scratch %s got a version: %s", key, out)
		}
	}
	// reset would hide the scratch files *.tmp and work matched: refused
	// until they are gone (TestScratchRmRefusedWhileFilesMatch).
	e.fails("out/a.tmp", "scratch", "reset")
	e.mount(mnt)
	if err := os.Remove(filepath.Join(mnt, "out/a.tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(mnt, "work")); err != nil {
		t.Fatal(err)
	}
	e.ok("scratch", "reset")
	if ps := patterns(); !slices.Contains(ps, "*~") || slices.Contains(ps, "*.tmp") {
		t.Fatalf("after reset: %v", ps)
	}
}

// Removing a pattern that scratch files of this workstation match would
// hide them from the next mount (they stay in the scratch folder, no path
// reaches them): scratch rm refuses, naming them and how to keep them,
// and changes nothing; once they are saved as versions or removed it
// goes through. A mount whose patterns no longer match some scratch
// files (changed elsewhere) says so when it starts.
func TestScratchRmRefusedWhileFilesMatch(t *testing.T) {
	e := newMntEnv(t)
	e.ok("scratch", "add", "*.tmp")
	mnt := filepath.Join(e.dir, "lab")
	e.mount(mnt)
	for name, data := range map[string]string{"out/a.tmp": "draft", "out/b.csv": "kept", "cache.tmp/x/y.bin": "deep"} {
		os.MkdirAll(filepath.Dir(filepath.Join(mnt, name)), 0o755)
		if err := os.WriteFile(filepath.Join(mnt, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, errs, err := e.run("scratch", "rm", "*.tmp")
	if err == nil || !strings.Contains(errs, "out/a.tmp") || !strings.Contains(errs, "cache.tmp/x/y.bin") || !strings.Contains(errs, "mv "+mnt+"/") {
		t.Fatalf("scratch rm while files match: %v\n%s", err, errs)
	}
	if !strings.Contains(e.ok("scratch"), "*.tmp") {
		t.Fatal("the refused rm removed the pattern")
	}
	e.ok("umount", mnt)
	e.mount(mnt)
	if got := string(mustRead(t, filepath.Join(mnt, "out/a.tmp"))); got != "draft" {
		t.Fatalf("after the refused rm and a remount out/a.tmp reads %q", got)
	}
	// Keep one as a version, drop the other; then the pattern may go.
	if err := os.Rename(filepath.Join(mnt, "out/a.tmp"), filepath.Join(mnt, "out/a.tmp.kept")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(mnt, "cache.tmp")); err != nil {
		t.Fatal(err)
	}
	e.ok("scratch", "rm", "*.tmp")
	e.ok("scratch", "add", "*.log") // for the last part
	e.ok("umount", mnt)
	e.mount(mnt)
	if got := string(mustRead(t, filepath.Join(mnt, "out/a.tmp.kept"))); got != "draft" {
		t.Fatalf("out/a.tmp.kept reads %q", got)
	}
	// A .tmp name is a key now: it gets a version.
	if err := os.WriteFile(filepath.Join(mnt, "out/c.tmp"), []byte("now a key"), 0o644); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(e.ok("ls", "out/"), "out/c.tmp") {
		t.Error("out/c.tmp got no version after the pattern went")
	}

	// Patterns changed elsewhere (a `lamina connect` to a team's database
	// whose patterns another workstation changed writes them here): the
	// mount says which scratch files none matches.
	if err := os.WriteFile(filepath.Join(mnt, "out/run.log"), []byte("log"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.ok("umount", mnt)
	p := filepath.Join(e.dir, "cfg", "lamina", "instances", "m.json")
	var settings map[string]any
	if err := json.Unmarshal(mustRead(t, p), &settings); err != nil {
		t.Fatal(err)
	}
	settings["scratch"] = slices.DeleteFunc(settings["scratch"].([]any), func(p any) bool { return p == "*.log" })
	b, _ := json.Marshal(settings)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	_, errs, err = e.run("mount", mnt)
	t.Cleanup(func() { e.run("umount", mnt) })
	if err != nil || !strings.Contains(errs, "out/run.log") || !strings.Contains(errs, "scratch add") {
		t.Fatalf("mount with a scratch file no pattern matches: %v\n%s", err, errs)
	}
}

// A key whose name matches a scratch pattern stays a key in the mount:
// listed once, opened with the catalog's bytes, written as a new version,
// and a scratch file of that name neither hides nor duplicates it; saving
// the mounted folder works.
func TestScratchNamedKeys(t *testing.T) {
	e := newMntEnv(t)
	csv := e.file("c.csv", []byte("gene,count\nA,1\n"))
	for _, key := range []string{"notes/backup~", "notes/4913", "notes/.snakemake/log.txt", "dup/x~", "sc/data.tmp"} {
		e.ok("save", csv, "--key", key)
	}
	// scratch add says which keys stay keys
	if _, errs, err := e.run("scratch", "add", "*.tmp"); err != nil || !strings.Contains(errs, "existing keys match (sc/data.tmp)") {
		t.Fatalf("scratch add: %v %q", err, errs)
	}
	mnt := filepath.Join(e.dir, "lab")
	e.mount(mnt)
	for _, name := range []string{"notes/backup~", "notes/4913", "notes/.snakemake/log.txt", "sc/data.tmp"} {
		if got := string(mustRead(t, filepath.Join(mnt, name))); got != "gene,count\nA,1\n" {
			t.Errorf("%s reads %q", name, got)
		}
	}
	// a scratch file is still scratch where no key has its name
	if err := os.WriteFile(filepath.Join(mnt, "notes/other~"), []byte("scratch"), 0o644); err != nil {
		t.Fatal(err)
	}
	// writing the key's name makes a version of the key
	if err := os.WriteFile(filepath.Join(mnt, "dup/x~"), []byte("gene,count\nB,2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(filepath.Join(mnt, "dup"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != "x~" {
		t.Errorf("dup/ lists %v", ents)
	}
	names := func(dir string) []string {
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var ns []string
		for _, e := range ents {
			ns = append(ns, e.Name())
		}
		return ns
	}
	if got := names(filepath.Join(mnt, "notes")); !slices.Equal(got, []string{".snakemake", "4913", "backup~", "other~"}) {
		t.Errorf("notes/ lists %v", got)
	}
	e.ok("save", mnt, "--key", "snap/all")
	out := e.ok("ls", "--versions", "dup/x~", "--format", "json")
	if !strings.Contains(out, `"version": 2`) && !strings.Contains(out, `"version":2`) {
		t.Errorf("writing dup/x~ made no version 2: %s", out)
	}
	got := filepath.Join(e.dir, "got")
	e.ok("get", "snap/all", "-o", got)
	for _, name := range []string{"notes/backup~", "notes/.snakemake/log.txt", "dup/x~"} {
		if _, err := os.Stat(filepath.Join(got, name)); err != nil {
			t.Errorf("save of the mount has no %s: %v", name, err)
		}
	}
}

// A role that may only read the database cannot change the shared
// patterns: scratch add and rm fail and change nothing here either. The
// local setting was written first, so this workstation's next mount used
// patterns the database (and every other workstation) did not have.
func TestScratchReadOnlyRole(t *testing.T) {
	db := pgtest.URL(t)
	schema := db[strings.Index(db, "search_path=")+len("search_path="):]
	a := workstationEnv(t, "ana")
	a.ok("init", "--storage", filepath.Join(a.dir, "store"), "--name", "lab", "--db", db)
	ro := "ro_" + schema
	pgtest.Exec(t, db, `CREATE ROLE `+ro+` NOLOGIN; GRANT USAGE ON SCHEMA `+schema+` TO `+ro+
		`; GRANT SELECT ON ALL TABLES IN SCHEMA `+schema+` TO `+ro)
	t.Cleanup(func() { pgtest.Exec(t, pgtest.Base(t), `DROP OWNED BY `+ro+`; DROP ROLE `+ro) })
	r := workstationEnv(t, "rita")
	r.ok("connect", "lab", "--db", pgtest.WithParam(db, "role", ro))
	before := r.ok("scratch")
	if _, _, err := r.run("scratch", "add", "*.tmp"); err == nil {
		t.Fatal("scratch add by a read-only role succeeded")
	}
	if _, _, err := r.run("scratch", "rm", ".snakemake"); err == nil {
		t.Fatal("scratch rm by a read-only role succeeded")
	}
	if got := r.ok("scratch"); got != before {
		t.Errorf("the refused edits changed the local patterns: %q, was %q", got, before)
	}
}

// The advice of a refused `scratch rm` names a place no pattern in force
// matches: beside the file, or beside the scratch folder that holds it
// (`mv` within `.snakemake/` kept the file scratch, and the refusal came
// back asking for `x.log.kept.kept`).
func TestScratchKeptName(t *testing.T) {
	for _, c := range []struct {
		rel      string
		patterns stage.Scratch
		want     string
	}{
		{"out/a.tmp", stage.Scratch{"*.tmp"}, "out/a.tmp.kept"},
		{"w/.snakemake/log/x.log", stage.Scratch{".snakemake"}, "w/x.log.kept"},
		{".snakemake/x.log", stage.Scratch{".snakemake"}, "x.log.kept"},
		{"a/b.swp", stage.Scratch{"*.swp", "*.kept"}, ""},
	} {
		if got := scratchKeptName(c.rel, c.patterns); got != c.want {
			t.Errorf("%s with %q: %q, want %q", c.rel, c.patterns, got, c.want)
		}
	}
}
