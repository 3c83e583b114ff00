package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/lamina-bio/lamina/catalog"
)

// TestCreateJSON: feature, label, schema and collection create print the
// record with --format json, as their ls does.
func TestCreateJSON(t *testing.T) {
	e := newEnv(t)
	e.init()
	var f catalog.Feature
	e.jsonOut(&f, "feature", "create", "donor", "--dtype", "str", "-d", "who gave it", "--format", "json")
	if f.Name != "donor" || f.Dtype != "str" || f.Description != "who gave it" {
		t.Errorf("feature create: %+v", f)
	}
	var l catalog.Label
	e.jsonOut(&l, "label", "create", "pilot", "-d", "first batch", "-f", "json")
	if l.Name != "pilot" || l.Description != "first batch" {
		t.Errorf("label create: %+v", l)
	}
	var s catalog.Schema
	e.jsonOut(&s, "schema", "create", "obs", "--feature", "donor", "--format", "json")
	if s.Name != "obs" || len(s.Features) != 1 || s.Features[0].Feature != "donor" {
		t.Errorf("schema create: %+v", s)
	}
	e.ok("save", e.write("a.csv", []byte("donor\nD1\n")), "--key", "t/a.csv")
	for _, unchanged := range []bool{false, true} {
		var col catalog.Collection
		e.jsonOut(&col, "collection", "create", "set", "t/a.csv", "--format", "json")
		if col.Name != "set" || col.Version != 1 || len(col.Members) != 1 || col.Unchanged != unchanged {
			t.Errorf("collection create (unchanged %v): %+v", unchanged, col)
		}
	}
}

// TestDeleteRestoreJSON: delete and restore list what they took with
// --format json, also for a folder in the trash; a refusal prints nothing.
func TestDeleteRestoreJSON(t *testing.T) {
	e := newEnv(t)
	e.init()
	for _, k := range []string{"a.csv", "b.csv", "d/x.csv", "d/y.csv"} {
		e.ok("save", e.write(k, []byte("v1 of "+k)), "--key", k)
	}
	e.ok("save", e.write("a2", []byte("v2")), "--key", "a.csv")
	type name struct {
		Key       string
		Kind      string
		Versions  int
		Permanent *bool
	}
	check := func(got []name, want ...string) {
		t.Helper()
		var s []string
		for _, n := range got {
			p := "-" // no "permanent": restore's
			if n.Permanent != nil {
				p = fmt.Sprint(*n.Permanent)
			}
			s = append(s, fmt.Sprintf("%s %s %d %s", n.Key, n.Kind, n.Versions, p))
		}
		if !slices.Equal(s, want) {
			t.Errorf("got %q, want %q", s, want)
		}
	}
	var got []name
	e.jsonOut(&got, "delete", "a.csv", "b.csv", "--format", "json")
	check(got, "a.csv  2 false", "b.csv  1 false")
	var back []name
	e.jsonOut(&back, "restore", "a.csv", "--format", "json")
	check(back, "a.csv  2 -")
	e.jsonOut(&got, "delete", "--permanent", "--yes", "b.csv", "--format", "json")
	check(got, "b.csv  1 true")
	e.ok("delete", "d/x.csv", "d/y.csv")
	e.jsonOut(&got, "delete", "--permanent", "--yes", "d/", "--format", "json")
	check(got, "d/x.csv  1 true", "d/y.csv  1 true")
	// Refused, nothing taken: nothing on stdout.
	if out, _, err := e.run("delete", "--permanent", "--yes", "d/", "--format", "json"); err == nil || out != "" {
		t.Errorf("a refused delete: %v, stdout %q", err, out)
	}
	if out, _, err := e.run("restore", "nosuch", "--format", "json"); err == nil || out != "" {
		t.Errorf("a refused restore: %v, stdout %q", err, out)
	}
}

// TestScratchEditJSON: scratch add, rm and reset print the patterns with
// --format json, given to scratch or to them (scratch -f json add printed
// nothing on stdout).
func TestScratchEditJSON(t *testing.T) {
	e := newEnv(t)
	e.init()
	for _, tc := range []struct {
		args []string
		has  string
		not  string
	}{
		{[]string{"scratch", "-f", "json", "add", "*.tmp"}, "*.tmp", ""},
		{[]string{"scratch", "add", "work", "--format", "json"}, "work", ""},
		{[]string{"scratch", "--format", "json", "rm", "*.tmp"}, "work", "*.tmp"},
		{[]string{"scratch", "reset", "-f", "json"}, "", "work"},
	} {
		var ps []string
		e.jsonOut(&ps, tc.args...)
		if (tc.has != "" && !slices.Contains(ps, tc.has)) || (tc.not != "" && slices.Contains(ps, tc.not)) || len(ps) == 0 {
			t.Errorf("%v: %q", tc.args, ps)
		}
	}
}

// TestRestoreFolderJSON: restore FOLDER/ --format json names each folder
// by its key and "kind": "folder", as ls --trash --format json and delete
// --format json do (the text adds the '/'); restore FOLDER without the
// '/' is refused, exit 4, said without "not found: " (it said "not found:
// d is a folder; …").
func TestRestoreFolderJSON(t *testing.T) {
	e := newEnv(t)
	e.init()
	catalogOf(t, e, func(ctx context.Context, c catalog.Catalog) error {
		for _, k := range []string{"f", "f/empty"} {
			if err := c.MakeFolder(ctx, k); err != nil {
				return err
			}
		}
		for _, k := range []string{"f/empty", "f"} {
			if err := c.RemoveFolder(ctx, k); err != nil {
				return err
			}
		}
		return nil
	})
	type name struct{ Key, Kind string }
	var trash, back []name
	e.jsonOut(&trash, "ls", "--trash", "--format", "json")
	e.jsonOut(&back, "restore", "f/", "--format", "json")
	want := []name{{"f", "folder"}, {"f/empty", "folder"}}
	if !slices.Equal(trash, want) || !slices.Equal(back, want) {
		t.Fatalf("ls --trash --format json %v, restore f/ --format json %v; want %v both", trash, back, want)
	}
	e.ok("save", e.write("x", []byte("x\n")), "--key", "d/x")
	e.ok("delete", "d/x")
	_, errs, err := e.run("restore", "d")
	if codeOf(err) != exitNotFound || strings.Contains(errs+explain(err), "not found: ") ||
		!strings.Contains(errs+explain(err), "d is a folder; the trash holds 1 name under d/: restore them with `lamina restore d/`") {
		t.Fatalf("restore d: exit %d %v\n%s", codeOf(err), err, errs)
	}
}
