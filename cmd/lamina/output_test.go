package main

import (
	"encoding/csv"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/instance"
	"github.com/urfave/cli/v2"
)

// TestFormatHelpMatches: every command's --format help lists exactly the
// formats the command accepts (it listed csv where csv was refused).
func TestFormatHelpMatches(t *testing.T) {
	e := newEnv(t) // no instance: the format is checked before one is opened
	use := regexp.MustCompile(`unknown --format "bogus" \(use (.*)\)`)
	var walk func(path []string, cmds []*cli.Command)
	walk = func(path []string, cmds []*cli.Command) {
		for _, c := range cmds {
			p := append(path[:len(path):len(path)], c.Name)
			walk(p, c.Subcommands)
			for _, f := range c.Flags {
				sf, ok := f.(*cli.StringFlag)
				if !ok || sf.Name != "format" {
					continue
				}
				help := sf.Usage[strings.LastIndexAny(sf.Usage, ":f")+1:] // "output format: a, b or c", "one of a, b"
				help = strings.TrimSpace(strings.ReplaceAll(help, " or ", ", "))
				args := append(p, "--format", "bogus")
				for _, f := range c.Flags {
					if sf, ok := f.(*cli.StringFlag); ok && sf.Required {
						args = append(args, "--"+sf.Name, "x")
					}
				}
				_, _, err := e.run(args...)
				if err != nil && strings.Contains(err.Error(), "usage:") {
					// A command that checks its argument first.
					_, _, err = e.run(append(args, "x")...)
				}
				m := use.FindStringSubmatch(explain(err))
				switch {
				case m == nil:
					t.Errorf("lamina %s --format bogus: %v", strings.Join(p, " "), err)
				case m[1] != help:
					t.Errorf("lamina %s: --format help lists %q, the command accepts %q", strings.Join(p, " "), help, m[1])
				}
			}
		}
	}
	walk(nil, commands())
}

// TestRunsListCSV: runs ls writes CSV, as its help says.
func TestRunsListCSV(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("run", "--transform", "qc", "--", "true")
	lines := strings.Split(strings.TrimSpace(e.ok("runs", "ls", "--format", "csv")), "\n")
	if len(lines) != 2 || lines[0] != "uid,started_at,status,exit_code,name,parent" || !strings.Contains(lines[1], ",ok,0,qc,") {
		t.Fatalf("runs ls --format csv:\n%s", strings.Join(lines, "\n"))
	}
}

// TestRunsShowMaps: runs show prints params and env as sorted KEY=VALUE
// lines, not Go's map formatting.
func TestRunsShowMaps(t *testing.T) {
	e := newEnv(t)
	e.init()
	t.Setenv("LANG", "C.UTF-8")
	e.ok("run", "--transform", "qc", "--param", "x=y=z", "--param", "min_genes=200", "--param", "note=a\nb", "--", "true")
	var rs []struct{ UID string }
	e.jsonOut(&rs, "runs", "ls", "--format", "json")
	out := e.ok("runs", "show", rs[0].UID)
	if strings.Contains(out, "map[") || !strings.Contains(out, "params:\n  min_genes=200\n  note=\"a\\nb\"\n  x=y=z\n") ||
		!strings.Contains(out, "\n  LANG=C.UTF-8\n") {
		t.Fatalf("runs show:\n%s", out)
	}
}

// TestTableShowsControlCharacters: a newline or tab in a description made
// a row of its own or shifted the columns of ls; the table shows them
// escaped, CSV and JSON keep them.
func TestTableShowsControlCharacters(t *testing.T) {
	e := newEnv(t)
	e.init()
	desc := "line one\nline\ttwo\x1b[31m\u0085"
	e.ok("save", e.write("a.txt", []byte("a")), "--key", "a.txt", "--description", desc)
	e.ok("save", e.write("b.txt", []byte("b")), "--key", "b.txt", "--description", "plain")
	out := e.ok("ls")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 3 || !strings.HasSuffix(lines[1], `line one\nline\ttwo\x1b[31m\u0085`) {
		t.Fatalf("ls:\n%s", out)
	}
	// The columns line up: each row's DESCRIPTION starts where the header's does.
	col := strings.Index(lines[0], "DESCRIPTION")
	if !strings.HasPrefix(lines[1][col:], "line one") || !strings.HasPrefix(lines[2][col:], "plain") {
		t.Fatalf("columns shifted:\n%s", out)
	}
	var vs []catalog.Version
	e.jsonOut(&vs, "ls", "--format", "json")
	if vs[0].Description != desc {
		t.Fatalf("json description %q", vs[0].Description)
	}
	if out := e.ok("ls", "--format", "csv"); !strings.Contains(out, "\"line one\nline\ttwo") {
		t.Fatalf("csv:\n%s", out)
	}
	// show escapes them as ls does: no escape sequence reaches the terminal
	// and the description stays one row.
	out = e.ok("show", "a.txt")
	if strings.ContainsAny(out, "\x1b\t\u0085") || !strings.Contains(out, `line one\nline\ttwo\x1b[31m\u0085`) {
		t.Fatalf("show:\n%s", out)
	}
}

// TestCSVHeadersAreJSONNames: a CSV column is named as the command's JSON
// names the field (ls wrote created/by for created_at/created_by, ontology
// sources imported/by, search matched for fields), and times in CSV are
// RFC 3339 (collection ls wrote "2026-11-27 03:04").
func TestCSVHeadersAreJSONNames(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("ontology", "import", "tissue", "--source", filepath.Join(ontologies, "uberon-efo-slim.obo"))
	e.ok("save", e.write("a.txt", []byte("a")), "--key", "data/a.txt", "--description", "blood sample")
	e.ok("save", e.write("b.txt", []byte("b")), "--key", "data/b.txt")
	e.ok("delete", "data/b.txt")
	e.ok("collection", "create", "c", "data/a.txt")
	e.ok("run", "--transform", "qc", "--", "true")
	e.ok("feature", "create", "batch", "--dtype", "int")
	e.ok("label", "create", "qc")
	// The fields of the records each command's JSON holds, by their tags
	// (a field left out when empty is still a JSON name).
	fields := func(vs ...any) map[string]bool {
		keys := map[string]bool{}
		var add func(t reflect.Type)
		add = func(t reflect.Type) {
			for i := range t.NumField() {
				f := t.Field(i)
				if f.Anonymous {
					add(f.Type)
					continue
				}
				if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); name != "" && name != "-" {
					keys[name] = true
				}
			}
		}
		for _, v := range vs {
			add(reflect.TypeOf(v))
		}
		return keys
	}
	for _, tc := range []struct {
		args []string
		keys map[string]bool
	}{
		{[]string{"ls"}, fields(catalog.ShownVersion{})},
		{[]string{"ls", "--trash"}, fields(catalog.TrashEntry{})},
		{[]string{"collection", "ls"}, fields(catalog.Collection{})},
		{[]string{"collection", "ls", "c"}, fields(catalog.Collection{})},
		{[]string{"ontology", "sources"}, fields(instance.OntologySource{})},
		{[]string{"search", "blood"}, fields(catalog.Hit{}, catalog.Version{})}, // JSON: the version's fields under "version"
		{[]string{"runs", "ls"}, fields(catalog.Run{})},
		{[]string{"feature", "ls"}, fields(catalog.Feature{})},
		{[]string{"label", "ls"}, fields(catalog.Label{})},
	} {
		args, keys := tc.args, tc.keys
		recs, err := csv.NewReader(strings.NewReader(e.ok(append(args, "--format", "csv")...))).ReadAll()
		if err != nil || len(recs) < 2 {
			t.Fatalf("%v --format csv: %v %q", args, err, recs)
		}
		for i, h := range recs[0] {
			if !keys[h] {
				t.Errorf("%v --format csv: column %q is no JSON field (%v)", args, h, keys)
			}
			if strings.HasSuffix(h, "_at") {
				if _, err := time.Parse(time.RFC3339Nano, recs[1][i]); err != nil {
					t.Errorf("%v --format csv: %s %q is not RFC 3339", args, h, recs[1][i])
				}
			}
		}
	}
}
