package main

import (
	"strings"
	"testing"
)

// TestCollectionShowsPurgedMembers: a member deleted for good is named as
// such, not silently left out of a list shorter than the count; counts of
// one say "1 version".
func TestCollectionShowsPurgedMembers(t *testing.T) {
	e := newEnv(t)
	e.init()
	for _, k := range []string{"a.csv", "b.csv", "c.csv"} {
		e.ok("save", e.write(k, []byte(k+"\n")), "--key", k)
	}
	if out := e.ok("collection", "create", "one", "a.csv"); !strings.Contains(out, `collection "one" v1: 1 version`+"\n") {
		t.Errorf("collection create: %q", out)
	}
	e.ok("collection", "create", "three", "a.csv", "b.csv", "c.csv")
	var b struct{ UID string }
	e.jsonOut(&b, "show", "b.csv", "--format", "json")
	e.ok("delete", "--permanent", "--yes", "--force", "b.csv")
	out, errs, err := e.run("collection", "show", "three")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(errs, "3 versions (1 deleted permanently)") || !strings.Contains(errs, b.UID+": deleted permanently") {
		t.Errorf("collection show of a purged member: stderr %q", errs)
	}
	if strings.Count(out, ".csv") != 2 {
		t.Errorf("collection show rows:\n%s", out)
	}
}
