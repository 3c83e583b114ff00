package main

import (
	"os"
	"strings"
	"testing"
)

// TestDeletePermanentReferenced: a permanent delete of versions that a
// collection or a run refers to is refused, naming the references, and
// nothing of the call is deleted; --force deletes anyway.
func TestDeletePermanentReferenced(t *testing.T) {
	e := newEnv(t)
	e.init()
	for _, k := range []string{"a.csv", "b.csv", "d.csv"} {
		e.ok("save", e.write(k, []byte(k+"\n")), "--key", k)
	}
	e.ok("collection", "create", "col", "a.csv")
	// The commands of a run are this test binary as lamina (TestMain).
	t.Setenv("LAMINA_TEST_AS_CLI", "1")
	e.ok("run", "--", os.Args[0], "get", "b.csv", "-o", os.DevNull)
	e.ok("run", "--", os.Args[0], "save", e.write("c.csv", []byte("c\n")), "--key", "c.csv")

	for _, tc := range []struct{ key, want string }{
		{"a.csv", "a.csv@v1 is in collection col@v1"},
		{"b.csv", "b.csv@v1 is an input of run "},
		{"c.csv", "c.csv@v1 is an output of run "},
	} {
		err := e.fails(tc.want, "delete", "--permanent", "--yes", "d.csv", tc.key)
		if codeOf(err) != 1 || !strings.Contains(err.Error(), "--force") {
			t.Errorf("%s: %v (exit %d)", tc.key, err, codeOf(err))
		}
		e.ok("show", tc.key)
	}
	e.ok("show", "d.csv") // nothing of a refused call is deleted
	e.ok("delete", "--permanent", "--yes", "d.csv")
	e.ok("delete", "--permanent", "--yes", "--force", "a.csv", "b.csv")
	e.fails("no artifact has key", "show", "a.csv")
}
