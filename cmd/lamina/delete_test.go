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

// TestVersionSpecErrors: @v0 says versions start at 1, and delete of
// KEY@vN says delete takes the whole artifact, rather than "bad key".
func TestVersionSpecErrors(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("save", e.write("b.csv", []byte("b\n")), "--key", "exp/b.csv")
	e.fails(`"exp/b.csv@v0": versions start at 1`, "show", "exp/b.csv@v0")
	for _, spec := range []string{"exp/b.csv@v2", "exp/b.csv@v0"} {
		err := e.fails(`"`+spec+`" names one version; delete removes a whole artifact, every version of it: lamina delete exp/b.csv`, "delete", spec)
		if codeOf(err) != 2 {
			t.Errorf("delete %s: exit %d", spec, codeOf(err))
		}
	}
	e.ok("show", "exp/b.csv")
}

// TestDeleteResolvesAllKeysFirst: a missing key refuses the whole call,
// naming every missing key, and nothing is trashed; one version says
// "1 version".
func TestDeleteResolvesAllKeysFirst(t *testing.T) {
	e := newEnv(t)
	e.init()
	for _, k := range []string{"a.csv", "b.csv"} {
		e.ok("save", e.write(k, []byte(k+"\n")), "--key", k)
	}
	for _, perm := range [][]string{nil, {"--permanent", "--yes"}} {
		args := append(append([]string{"delete"}, perm...), "a.csv", "nosuch", "b.csv", "other")
		err := e.fails(`no artifact has key "nosuch", "other": nothing deleted`, args...)
		if codeOf(err) != 1 {
			t.Errorf("%v: exit %d", args, codeOf(err))
		}
		e.ok("show", "a.csv")
		e.ok("show", "b.csv")
	}
	if out := e.ok("delete", "a.csv"); !strings.Contains(out, "moved a.csv (1 version) to the trash") {
		t.Errorf("delete: %q", out)
	}
	e.fails(`"a.csv" already in the trash`, "delete", "a.csv", "b.csv")
	e.ok("show", "b.csv")
}

// TestDeletePermanentOfTrashedReferenced: refusing a permanent delete of
// a trashed key that a collection refers to does not suggest the trash.
func TestDeletePermanentOfTrashedReferenced(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("save", e.write("a.csv", []byte("a\n")), "--key", "a.csv")
	e.ok("collection", "create", "col", "a.csv")
	e.ok("delete", "a.csv")
	err := e.fails("a.csv@v1 is in collection col@v1", "delete", "--permanent", "--yes", "a.csv")
	if strings.Contains(err.Error(), "(to the trash)") {
		t.Errorf("a trashed key's refusal suggests the trash: %v", err)
	}
}

// TestGCRefusesNegativeDurations: --grace -5h would delete data younger
// than now, that is all of it; refused with exit 2.
func TestGCRefusesNegativeDurations(t *testing.T) {
	e := newEnv(t)
	e.init()
	for _, args := range [][]string{{"--grace", "-5h"}, {"--settle", "-1s"}} {
		err := e.fails("may not be negative", append([]string{"gc"}, args...)...)
		if codeOf(err) != 2 {
			t.Errorf("gc %v: exit %d", args, codeOf(err))
		}
	}
}
