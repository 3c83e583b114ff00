package main

import (
	"reflect"
	"testing"

	"github.com/lamina-bio/lamina/catalog"
)

// TestRunParamsVerbatim: --param values are kept whole (no splitting on
// commas, no trimming), typed only when they round-trip, and a name given
// twice is a usage error.
func TestRunParamsVerbatim(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("run", "--transform", "p", "-p", "genes=CD4,CD8", "-p", "filter=a,b=c", "-p", "sp=  5 ",
		"-p", "sample=007", "-p", "tool_version=1.10", "-p", "big=123456789012345678901", "-p", "n=200", "-p", "x=0.5", "--", "true")
	var rs []catalog.Run
	e.jsonOut(&rs, "runs", "ls", "--format", "json")
	if len(rs) != 1 {
		t.Fatalf("runs %+v", rs)
	}
	want := map[string]any{"genes": "CD4,CD8", "filter": "a,b=c", "sp": "  5 ", "sample": "007", "tool_version": "1.10",
		"big": "123456789012345678901", "n": 200.0, "x": 0.5}
	if !reflect.DeepEqual(rs[0].Params, want) {
		t.Fatalf("params %#v\nwant %#v", rs[0].Params, want)
	}
	if err := e.fails("given twice", "run", "-p", "a=1", "-p", "a=2", "--", "true"); codeOf(err) != 2 {
		t.Fatalf("duplicate param: exit %d, want 2", codeOf(err))
	}
	e.jsonOut(&rs, "runs", "ls", "--format", "json")
	if len(rs) != 1 {
		t.Fatalf("a refused run was recorded: %+v", rs)
	}
}
