package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lamina-bio/lamina/catalog/postgres/pgtest"
)

// TestLineageNestedRunReadBackMakesNoCycle: `lamina run -- sh -c 'echo x >
// a; lamina run -- cp a b; cat b > c'`: b, which the nested run made of
// the outer run's a, read back by the outer command, would make the outer
// run upstream of itself (a <- outer <- b <- inner <- a: audit e2). It is
// no input of the outer run, by the mount or by lamina get, and the
// lineage shows no cycle. And a `lamina get` refused (its -o exists) is no
// input. Both catalogs.
func TestLineageNestedRunReadBackMakesNoCycle(t *testing.T) {
	t.Run("bbolt", func(t *testing.T) { nestedReadBack(t, newMntEnv(t)) })
	t.Run("postgres", func(t *testing.T) {
		db := pgtest.URL(t)
		e := workstationEnv(t, "ana")
		e.ok("init", "--storage", filepath.Join(e.dir, "storage"), "--db", db, "--name", "lab")
		nestedReadBack(t, e)
	})
}

func nestedReadBack(t *testing.T, e *mntEnv) {
	mnt := filepath.Join(e.dir, "lab")
	e.mount(mnt)
	n := filepath.Join(mnt, "n2")
	os.MkdirAll(n, 0o755)
	sh := "echo x > " + n + "/a.txt; " + e.bin + " run --transform inner2 -- cp " + n + "/a.txt " + n + "/b.txt; cat " + n + "/b.txt > " + n + "/c.txt; " +
		e.bin + " get n2/b.txt -o - >/dev/null"
	if _, errs, code := e.runIn(e.dir, "run", "--transform", "outer2", "--", "sh", "-c", sh); code != 0 {
		t.Fatalf("nested: exit %d\n%s", code, errs)
	}
	runs := e.runsByName()
	outer, inner := e.runRecord(runs["outer2"].UID), e.runRecord(runs["inner2"].UID)
	if got := e.refs(inner.Inputs); strings.Join(got, " ") != "n2/a.txt@v1" {
		t.Fatalf("inner inputs %v", got)
	}
	if got := e.refs(outer.Inputs); len(got) != 0 {
		t.Fatalf("outer inputs %v: b is made of its own a", got)
	}
	if up := e.ok("lineage", "--up", "n2/c.txt"); strings.Contains(up, "(cycle)") {
		t.Fatalf("lineage of c shows a cycle:\n%s", up)
	}

	// A get refused before it wrote anything.
	existing := e.file("exists.txt", []byte("mine\n"))
	_, errs, code := e.runIn(e.dir, "run", "--transform", "refused", "--", "sh", "-c", e.bin+" get n2/a.txt -o "+existing)
	if code == 0 {
		t.Fatalf("get onto an existing file succeeded:\n%s", errs)
	}
	if rec := e.runRecord(e.runsByName()["refused"].UID); len(rec.Inputs) != 0 {
		t.Fatalf("a refused get made inputs %v", e.refs(rec.Inputs))
	}
}
