package main

import (
	"strings"
	"testing"

	"github.com/lamina-bio/lamina/catalog"
)

// TestUsageMessages: a missing argument is a usage error (exit 2) that
// says what to give; a uid prefix too short to resolve says how long
// one must be; collection show's help says it lists members.
func TestUsageMessages(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("save", e.write("a.txt", []byte("a")), "--key", "a.txt")

	t.Run("ls --versions without a key", func(t *testing.T) {
		_, _, err := e.run("ls", "--versions")
		if err == nil || codeOf(err) != 2 || !strings.Contains(err.Error(), "lamina ls --versions KEY") || strings.Contains(err.Error(), "bad key") {
			t.Errorf("exit %d: %v", codeOf(err), err)
		}
	})

	t.Run("short uid prefix", func(t *testing.T) {
		var v catalog.Version
		e.jsonOut(&v, "show", "a.txt", "--format", "json")
		short := v.UID[:7]
		for _, cmd := range [][]string{{"show", short}, {"get", short, "-o", e.path("out")}, {"ls", "--versions", short}} {
			_, _, err := e.run(cmd...)
			if err == nil || !strings.Contains(explain(err), "a uid prefix needs at least 8 characters") || !strings.Contains(err.Error(), short) {
				t.Errorf("%s: %v", cmd[0], err)
			}
		}
		// A key, or eight characters, say nothing of the kind.
		e.ok("show", v.UID[:8])
		if _, _, err := e.run("show", "no/such.txt"); err == nil || strings.Contains(err.Error(), "uid prefix") {
			t.Errorf("show of a missing key: %v", err)
		}
	})

	t.Run("collection show help", func(t *testing.T) {
		out := e.ok("collection", "show", "--help")
		if !strings.Contains(out, "list the members of a collection") {
			t.Errorf("collection show --help:\n%s", out)
		}
	})
}
