package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestExitCodes runs the built CLI (the test binary as lamina, a process of
// its own) and checks its exit code and what it says on stderr: bad input
// exits 2 wherever it is parsed, what the catalog does not have 4, other
// failures 1 (README, "Exit codes"), and no message carries an internal
// prefix ("invalid:", "not found:") or says a thing twice.
func TestExitCodes(t *testing.T) {
	e := newEnv(t)
	e.init()
	a := e.write("a.txt", []byte("a\n"))
	e.ok("save", a, "--key", "experiments/a.txt")
	e.ok("save", a, "--key", "K")
	e.ok("feature", "create", "batch", "--dtype", "int")
	obo := filepath.Join(ontologies, "cl-basic.obo")
	e.ok("ontology", "import", "celltype", "--source", obo)
	e.ok("feature", "create", "cell_type", "--dtype", "cat[celltype]")
	if err := os.Mkdir(e.path("adir"), 0o755); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("a", 5000)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		// A bad key, wherever a key is parsed.
		{[]string{"save", a, "--key", ""}, 2, "--key is empty"},
		{[]string{"show", ""}, 2, `bad key "": a key may not be empty`},
		{[]string{"delete", ""}, 2, `bad key "": a key may not be empty`},
		{[]string{"get", "", "-o", "-"}, 2, `bad key ""`},
		{[]string{"save", a, "--key", "a\xff"}, 2, "valid UTF-8"},
		{[]string{"save", a, "--key", ".."}, 2, `bad key "..": a key may not have a '.' or '..' segment`},
		{[]string{"save", a, "--key", "/abs"}, 2, `bad key "/abs": a key may not start with '/'`},
		{[]string{"save", a, "--key", "x@v0"}, 2, `bad key "x@v0"`},
		{[]string{"save", a, "--key", "a\tb"}, 2, "a key may not contain a control character"},
		{[]string{"save", a, "--key", long}, 2, "key is 5000 bytes, at most 1024 are allowed"},
		{[]string{"show", "x@v0"}, 2, "versions are numbered from 1"},
		{[]string{"ls", "--versions", "x@v0"}, 2, "versions are numbered from 1"},
		{[]string{"ls", "--versions", "K@v99"}, 2, "ls --versions lists every version of a key: give K (lamina show K@v99 shows one)"},
		{[]string{"ls", "--versions", "a\tb"}, 2, "control character"},
		// Flags and their values.
		{[]string{"ls", "--format", "yaml"}, 2, `unknown --format "yaml"`},
		{[]string{"ls", "--order", "bogus"}, 2, `order "bogus": use key, created_at or -created_at`},
		{[]string{"ls", "--where", "batch"}, 2, `--where "batch": use NAME=VALUE`},
		{[]string{"ls", "--where", "batch>abc"}, 2, `--where batch>abc: "abc" is not a number`},
		{[]string{"ls", "--limit", "abc"}, 2, `invalid value "abc" for --limit: want a number`},
		{[]string{"cache", "limit", "-5GB"}, 2, "-5GB: a size must be positive"},
		{[]string{"cache", "limit", "--", "-5GB"}, 2, `bad size "-5GB": a size must be positive`},
		{[]string{"search", "-5"}, 2, "-5 is read as a flag, and lamina search has none such: put -- before"},
		{[]string{"gc", "--grace", "soon"}, 2, `invalid value "soon" for --grace: want a duration`},
		// Names, dtypes, values.
		{[]string{"feature", "create", "x", "--dtype", "bogus"}, 2, `dtype "bogus": use int`},
		{[]string{"feature", "create", "", "--dtype", "int"}, 2, `feature name "": use letters`},
		{[]string{"annotate", "K", "--feature", "batch=abc"}, 2, `feature batch (int): "abc" is not a number`},
		// A value that is not UTF-8 is malformed (2) for a cat[ENTITY]
		// feature or a term too, not a term that is not there (4, 1).
		{[]string{"ls", "--where", "cell_type=T\xe9cell"}, 2, `celltype term "T\xe9cell": not valid UTF-8`},
		{[]string{"ls", "--where", "cell_type!=T\xe9cell"}, 2, `celltype term "T\xe9cell": not valid UTF-8`},
		{[]string{"ls", "--cell-type", "T\xe9cell"}, 2, `celltype term "T\xe9cell": not valid UTF-8`},
		{[]string{"annotate", "K", "--feature", "cell_type=T\xe9cell"}, 2, `celltype term "T\xe9cell": not valid UTF-8`},
		{[]string{"annotate", "K", "--term", "celltype=T\xe9cell"}, 2, `celltype term "T\xe9cell": not valid UTF-8`},
		{[]string{"annotate", "K", "--remove", "--term", "celltype=T\xe9cell"}, 2, `celltype term "T\xe9cell": not valid UTF-8`},
		{[]string{"annotate", "K", "--remove", "--feature", "cell_type=T\xe9cell"}, 2, `value of feature cell_type "T\xe9cell": not valid UTF-8`},
		{[]string{"collection", "show", "N@v0"}, 2, "a collection version is @v1"},
		{[]string{"collection", "create", "c@v1", "K"}, 2, `collection name "c@v1": a name may not end in @v<digits>`},
		{[]string{"ontology", "import", "bad entity", "--source", obo}, 2, `"bad entity" is not an entity name`},
		{[]string{"runs", "show", "qSGk"}, 2, `"qSGk" is not a run uid`},
		{[]string{"init", "--storage", e.path("s2"), "--name", "bad name"}, 2, `bad instance name "bad name"`},
		// A folder of keys where a key is expected: as delete says it.
		{[]string{"show", "experiments/"}, 2, "experiments/ is a folder of keys, not an artifact: give the key of one (`lamina ls experiments/` lists them)"},
		{[]string{"get", "experiments/", "-o", "-"}, 2, "experiments/ is a folder of keys"},
		{[]string{"ls", "--versions", "experiments/"}, 2, "experiments/ is a folder of keys"},
		{[]string{"lineage", "experiments/"}, 2, "experiments/ is a folder of keys"},
		{[]string{"delete", "experiments/"}, 2, "experiments/ is a folder of keys"},
		{[]string{"show", "nosuch/"}, 2, `bad key "nosuch/"`},
		// A folder of keys named without its '/': a hint, exit 2.
		{[]string{"show", "experiments"}, 2, "experiments/ is a folder of keys: `lamina ls experiments/` lists them"},
		{[]string{"get", "experiments", "-o", "-"}, 2, "experiments/ is a folder of keys: `lamina ls experiments/` lists them"},
		{[]string{"ls", "--versions", "experiments"}, 2, "experiments/ is a folder of keys: `lamina ls experiments/` lists them"},
		{[]string{"lineage", "experiments"}, 2, "experiments/ is a folder of keys: `lamina ls experiments/` lists them"},
		// Not found.
		{[]string{"show", "nosuch.txt"}, 4, `no artifact has key "nosuch.txt"`},
		{[]string{"get", "nosuch.txt", "-o", "-"}, 4, `no artifact has key "nosuch.txt"`},
		{[]string{"ls", "--versions", "nosuch.txt"}, 4, `no artifact has key "nosuch.txt"`},
		{[]string{"delete", "nosuch.txt"}, 4, `no artifact has key "nosuch.txt": nothing deleted`},
		{[]string{"delete", "t/nope/"}, 4, "no key starts with t/nope/"},
		{[]string{"delete", "--permanent", "--yes", "nope/"}, 4, "the trash holds no artifact, folder or link under nope/: nothing deleted"},
		{[]string{"restore", "nope/"}, 4, "the trash holds no artifact, folder or symbolic link under nope/"},
		{[]string{"restore", "nosuch.txt"}, 4, `"nosuch.txt" has nothing in the trash`},
		{[]string{"show", "K@v99"}, 4, `"K" has no version 99 (latest is 1)`},
		{[]string{"get", "K@v99", "-o", "-"}, 4, `"K" has no version 99 (latest is 1)`},
		{[]string{"restore", "K@v99"}, 4, `"K" has no version 99 (latest is 1); nothing restored`},
		{[]string{"collection", "show", "nope"}, 4, `no collection "nope"`},
		// A term, feature or instance that is not there: 4 alike.
		{[]string{"ls", "--where", "nofeat=3"}, 4, `no feature or field "nofeat"`},
		{[]string{"ls", "--where", "cell_type=Tcel"}, 4, `"Tcel" is not a celltype term`},
		{[]string{"ls", "--cell-type", "Tcel"}, 4, `"Tcel" is not a celltype term`},
		{[]string{"ls", "--term", "disease=foo"}, 4, "no disease ontology imported yet: import one with `lamina ontology import disease --source PATH|URL`"},
		{[]string{"ls", "--disease", "foo"}, 4, "no disease ontology imported yet"},
		{[]string{"--instance", "nosuch", "ls"}, 4, `no instance named "nosuch"`},
		// Other failures: 1, each said once.
		{[]string{"ontology", "import", "x", "--source", e.path("adir")}, 2, "--source " + e.path("adir") + " is a folder: give a file"},
		{[]string{"ontology", "import", "x", "--source", e.path("nosuch.obo")}, 1, "--source " + e.path("nosuch.obo") + ": no such file or directory"},
		{[]string{"ontology", "import", "x", "--source", "http://127.0.0.1:1/x.obo"}, 1, "cannot fetch http://127.0.0.1:1/x.obo: dial tcp"},
		{[]string{"ontology", "validate", "celltype", "--file", e.path("nonexist")}, 1, "--file " + e.path("nonexist") + ": no such file or directory"},
	} {
		name := strings.Join(tc.args, " ")
		if len(name) > 80 {
			name = name[:80] + "…"
		}
		t.Run(name, func(t *testing.T) {
			cmd := e.child(tc.args...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			msg := stderr.String()
			if code != tc.code || !strings.Contains(msg, tc.want) {
				t.Fatalf("exit %d, stderr %q; want exit %d saying %q", code, msg, tc.code, tc.want)
			}
			if !strings.HasPrefix(msg, "lamina: ") || strings.Count(msg, "\n") != 1 {
				t.Errorf("stderr is not one line starting lamina: %q", msg)
			}
			for _, leak := range []string{"invalid: ", "not found: ", "parse error", "--5GB", `Get "`, "open /", "read: read"} {
				if strings.Contains(msg, leak) {
					t.Errorf("stderr says %q: %q", leak, msg)
				}
			}
			for _, once := range []string{"http://127.0.0.1:1/x.obo", e.path("adir"), e.path("nonexist"), e.path("nosuch.obo")} {
				if strings.Count(msg, once) > 1 {
					t.Errorf("stderr names %s more than once: %q", once, msg)
				}
			}
		})
	}
}

// TestDeleteNamingMissingExits4 checks that a delete of several names, one
// of which is not there, refuses them all (nothing deleted) with exit 4, the
// same for artifacts, features, labels, schemas and collections (README:
// "nothing deleted", exit 4), and that what it named stays.
func TestDeleteNamingMissingExits4(t *testing.T) {
	e := newEnv(t)
	e.init()
	a := e.write("a.txt", []byte("a\n"))
	e.ok("save", a, "--key", "raw/k.txt")
	e.ok("feature", "create", "batch", "--dtype", "int")
	e.ok("label", "create", "qc")
	e.ok("schema", "create", "s1", "--feature", "batch")
	e.ok("collection", "create", "c1", "raw/k.txt")
	for _, tc := range []struct {
		args  []string
		still []string // a command that lists what must still be there
		want  string
	}{
		{[]string{"delete", "raw/k.txt", "raw/nope.txt"}, []string{"ls", "raw/"}, "raw/k.txt"},
		{[]string{"feature", "delete", "batch", "nofeat"}, []string{"feature", "ls"}, "batch"},
		{[]string{"label", "delete", "qc", "nolabel"}, []string{"label", "ls"}, "qc"},
		{[]string{"schema", "delete", "s1", "noschema"}, []string{"schema", "ls"}, "s1"},
		{[]string{"collection", "delete", "c1", "nocoll"}, []string{"collection", "ls"}, "c1"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			cmd := e.child(tc.args...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 4 || !strings.Contains(stderr.String(), "nothing deleted") {
				t.Fatalf("exit %v, stderr %q; want exit 4 saying nothing deleted", err, stderr.String())
			}
			if out := e.ok(tc.still...); !strings.Contains(out, tc.want) {
				t.Fatalf("%s after the refused delete:\n%s\nwant %s still there", strings.Join(tc.still, " "), out, tc.want)
			}
		})
	}
}
