package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every command that takes no arguments refuses them with a usage error
// (exit 2) and does nothing: `lamina gc dry-run` ran a full gc.
func TestNoArguments(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("save", e.write("a.csv", []byte("a\n")), "--key", "a.csv")
	e.ok("delete", "a.csv")
	for _, args := range [][]string{
		{"gc", "--grace", "0", "--settle", "0s", "dry-run"},
		{"info", "extra"}, {"status", "extra"}, {"instances", "extra"},
		{"runs", "ls", "extra"}, {"feature", "ls", "x"}, {"cache", "info", "x"},
		{"init", "--storage", e.path("s2"), "--name", "x", "extra"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			if err := e.fails("takes no arguments", args...); codeOf(err) != 2 {
				t.Errorf("exit %d: %v", codeOf(err), err)
			}
		})
	}
	for _, args := range [][]string{{"scratch", "extra"}, {"runs", "extra"}} {
		if err := e.fails("has no command", args...); codeOf(err) != 2 {
			t.Errorf("%v: exit %d: %v", args, codeOf(err), err)
		}
	}
	// nothing ran: the trashed version is still there to restore
	e.ok("restore", "a.csv")
}

// `lamina help [COMMAND]` works as every command group's help does, and
// the global --instance may follow the command.
func TestHelpAndInstanceAnywhere(t *testing.T) {
	e := newEnv(t)
	e.init()
	if out := e.ok("help"); !strings.Contains(out, "COMMANDS:") {
		t.Errorf("lamina help: %s", out)
	}
	if out := e.ok("help", "gc"); !strings.Contains(out, "lamina gc") {
		t.Errorf("lamina help gc: %s", out)
	}
	if err := e.fails(`no command "nope"`, "help", "nope"); codeOf(err) != 2 {
		t.Errorf("exit %d", codeOf(err))
	}
	// A subcommand's help is what its --help prints, not its group's.
	for _, path := range [][]string{{"runs", "show"}, {"ontology", "search"}, {"runs"}, {"ls"}} {
		want := e.ok(append(path, "--help")...)
		if got := e.ok(append([]string{"help"}, path...)...); got != want {
			t.Errorf("lamina help %s:\n%s\nwant what --help prints:\n%s", strings.Join(path, " "), got, want)
		}
	}
	// A stray argument is a usage error, as to any command.
	for _, args := range [][]string{{"help", "ls", "extra"}, {"help", "runs", "show", "x"}, {"help", "runs", "nope"}} {
		if err := e.fails("no command", args...); codeOf(err) != 2 {
			t.Errorf("lamina %s: exit %d: %v", strings.Join(args, " "), codeOf(err), err)
		}
	}
	e.ok("init", "--storage", e.path("s2"), "--name", "second")
	e.ok("use", "test")
	if out := e.ok("info", "--instance", "second"); !strings.Contains(out, "second") {
		t.Errorf("info --instance second: %s", out)
	}
	if out := e.ok("info", "--instance=second", "--format", "json"); !strings.Contains(out, `"second"`) {
		t.Errorf("info --instance=second: %s", out)
	}
	e.fails("--bogus", "info", "--bogus")
}

// Common mistakes get a usage error that says what to do: save from stdin,
// --key ending in '/', saving "." without --key, a cache flag on local
// storage (refused as --endpoint is); --storage=~/data expands ~.
func TestCommonMistakes(t *testing.T) {
	e := newEnv(t)
	e.init()
	f := e.write("counts.csv", []byte("gene,count\nA,1\n"))
	for _, c := range []struct {
		want string
		args []string
	}{
		{"not stdin", []string{"save", "-", "--key", "stdin.txt"}},
		{"use --key-prefix experiments/", []string{"save", f, "--key", "experiments/"}},
		{"give --key KEY", []string{"save", "."}},
		{"--cache-size is for s3:// storage", []string{"init", "--storage", e.path("l5"), "--name", "l5", "--cache-size", "1GB"}},
		{"--cache-size is for s3:// storage", []string{"mount", "--cache-size", "1GB", e.path("mnt")}},
		{"--sync-upload is for s3:// storage", []string{"mount", "--sync-upload", e.path("mnt")}},
	} {
		if err := e.fails(c.want, c.args...); codeOf(err) != 2 {
			t.Errorf("%v: exit %d", c.args, codeOf(err))
		}
	}
	if _, err := os.Stat(e.path("l5")); err == nil {
		t.Errorf("a refused init left its storage folder")
	}
	out := e.ok("init", "--storage=~/data", "--name", "tilde")
	home := e.path("home")
	if !strings.Contains(out, filepath.Join(home, "data")) {
		t.Errorf("--storage=~/data: %s", out)
	}
	if _, err := os.Stat("~"); err == nil {
		t.Errorf("a folder named ~ was made")
	}
}

// The * of instances marks the instance commands use: --instance or
// LAMINA_INSTANCE before the remembered one; init says when an override
// still selects another.
func TestInstancesStarFollowsOverride(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("init", "--storage", e.path("s2"), "--name", "lab2")
	e.ok("use", "test")
	star := func(args ...string) string {
		t.Helper()
		var rows [][]string
		for _, l := range strings.Split(e.ok(append(args, "instances", "--format", "csv")...), "\n") {
			rows = append(rows, strings.Split(l, ","))
		}
		for _, r := range rows {
			if len(r) > 1 && r[0] == "*" {
				return r[1]
			}
		}
		return ""
	}
	if got := star(); got != "test" {
		t.Errorf("remembered: * on %q", got)
	}
	if got := star("--instance", "lab2"); got != "lab2" {
		t.Errorf("--instance lab2: * on %q", got)
	}
	t.Setenv("LAMINA_INSTANCE", "lab2")
	if got := star(); got != "lab2" {
		t.Errorf("LAMINA_INSTANCE=lab2: * on %q", got)
	}
	if out := e.ok("init", "--storage", e.path("s3"), "--name", "third"); !strings.Contains(out, `LAMINA_INSTANCE selects "lab2"`) {
		t.Errorf("init under LAMINA_INSTANCE: %s", out)
	}
}

// More mistakes with a way out: a folder given to delete, a folder
// artifact's key with the '/' completion adds, runs show --format table
// (as every other command), a key under a folder artifact, and a run with
// no mount to see its files.
func TestFolderAndRunMessages(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("save", e.write("big/a.csv", []byte("a\n")), "--key", "big/a.csv")
	e.write("tree/x.txt", []byte("x"))
	e.ok("save", e.path("tree"), "--key", "scrna/pbmc.zarr")
	if err := e.fails("big/ is a folder of keys", "delete", "big/"); codeOf(err) != 2 {
		t.Errorf("delete big/: exit %d", codeOf(err))
	}
	e.fails("big/ is a folder of keys", "delete", "big")
	e.ok("get", "scrna/pbmc.zarr/", "-o", e.path("out")+"/")
	if _, err := os.Stat(e.path("out/pbmc.zarr/x.txt")); err != nil {
		t.Errorf("get FOLDER-ARTIFACT/: %v", err)
	}
	e.ok("show", "scrna/pbmc.zarr/")
	e.fails("is an artifact (a file or a folder artifact), not a folder of keys", "save", e.path("big/a.csv"), "--key", "scrna/pbmc.zarr/extra.csv")
	_, errs, err := e.run("run", "--", "true")
	if err != nil || !strings.Contains(errs, "is not mounted") {
		t.Errorf("run without a mount: %v %q", err, errs)
	}
	var runs []struct{ UID string }
	e.jsonOut(&runs, "runs", "ls", "--format", "json")
	if len(runs) == 0 {
		t.Fatal("no run")
	}
	for _, f := range []string{"table", "text"} {
		if out := e.ok("runs", "show", runs[0].UID, "--format", f); !strings.Contains(out, runs[0].UID) {
			t.Errorf("runs show --format %s: %s", f, out)
		}
	}
}

// A uid or uid prefix (8+) names an artifact in ls --versions and restore,
// as it does in get and show.
func TestUIDsAccepted(t *testing.T) {
	e := newEnv(t)
	e.init()
	var saved []struct{ UID string }
	e.jsonOut(&saved, "save", e.write("a.csv", []byte("a\n")), "--key", "u/a.csv", "--format", "json")
	e.ok("save", e.write("a.csv", []byte("b\n")), "--key", "u/a.csv")
	stem := saved[0].UID[:16]
	if out := e.ok("ls", "--versions", stem); strings.Count(out, "u/a.csv") != 2 {
		t.Errorf("ls --versions STEM: %s", out)
	}
	e.ok("delete", "u/a.csv")
	if out := e.ok("restore", saved[0].UID[:10]); !strings.Contains(out, "restored u/a.csv") {
		t.Errorf("restore UID-PREFIX: %s", out)
	}
}

// An ontology entity with a typo gets a suggestion, and one named as
// cat[CellType] names it (CellType, cell_type) works as it does in
// feature create.
func TestOntologyEntityNames(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("ontology", "import", "celltype", "--source", filepath.Join(ontologies, "cl-basic.obo"))
	e.fails("did you mean celltype?", "ontology", "search", "celltyp", "T cell")
	if out := e.ok("ontology", "search", "CellType", "T cell"); !strings.Contains(out, "T cell") {
		t.Errorf("search CellType: %s", out)
	}
	e.ok("ontology", "validate", "CellType", "T cell")
	e.ok("ontology", "validate", "cell_type", "T cell")
}

// info of a local instance says what its cache folder holds; info,
// cache info and status agree: no disk cache, and a mount's chunk cache
// of 64 MiB in memory (they said "no chunk cache", exit 1, and a chunk
// cache of 64 MiB).
func TestInfoLocalCache(t *testing.T) {
	e := newMntEnv(t)
	if out := e.ok("info"); !strings.Contains(out, "unused") || !strings.Contains(out, "not a cache") || !strings.Contains(out, "no disk cache") || !strings.Contains(out, "64.0 MiB of decoded chunks in memory") {
		t.Errorf("info: %s", out)
	}
	out, _, err := e.run("cache", "info")
	if err != nil || !strings.Contains(out, "disk cache  none") || !strings.Contains(out, "64.0 MiB of decoded chunks") {
		t.Errorf("cache info: %v\n%s", err, out)
	}
	mnt := filepath.Join(e.dir, "mnt")
	e.mount(mnt)
	if out := e.ok("status"); !strings.Contains(out, "of 64.0 MiB in memory") {
		t.Errorf("status: %s", out)
	}
}
