package main

import (
	"strings"
	"testing"
)

// The `ls` of every record family: JSON of the records, a table, CSV.
func TestRecordLists(t *testing.T) {
	e := newEnv(t)
	e.init()
	for _, list := range [][]string{{"feature", "ls"}, {"label", "ls"}, {"schema", "ls"}, {"collection", "ls"}} {
		var empty []map[string]any
		e.jsonOut(&empty, append(list, "--format", "json")...)
		if empty == nil || len(empty) != 0 {
			t.Fatalf("%v on a new instance: %v (want [])", list, empty)
		}
	}
	e.ok("feature", "create", "batch", "--dtype", "int", "--description", "sequencing batch")
	e.ok("label", "create", "high_quality")
	e.ok("schema", "create", "runs", "--feature", "batch")
	var fs []struct{ Name, Dtype string }
	e.jsonOut(&fs, "feature", "ls", "--format", "json")
	if len(fs) != 1 || fs[0].Name != "batch" || fs[0].Dtype != "int" {
		t.Fatalf("feature ls: %+v", fs)
	}
	if out := e.ok("feature", "ls"); !strings.Contains(out, "NAME") || !strings.Contains(out, "sequencing batch") {
		t.Fatalf("feature ls table:\n%s", out)
	}
	if out := e.ok("label", "ls", "--format", "csv"); !strings.HasPrefix(out, "name,parent,description\nhigh_quality,") {
		t.Fatalf("label ls csv:\n%s", out)
	}
	if out := e.ok("schema", "ls"); !strings.Contains(out, "runs") || !strings.Contains(out, "batch") {
		t.Fatalf("schema ls:\n%s", out)
	}
}
