package main

import (
	"strings"
	"testing"
)

// TestLabelCreateDoesNotMove: creating a label that exists under another
// parent is refused unless --move asks for it, since moving it changes
// what --label queries find; creating it again as it is stays a no-op.
func TestLabelCreateDoesNotMove(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("label", "create", "qc")
	e.ok("label", "create", "high_quality")
	e.ok("label", "create", "passed", "--parent", "qc")
	e.ok("save", e.write("a.csv", []byte("x\n1\n")), "--key", "a.csv")
	e.ok("annotate", "a.csv", "--label", "passed")
	underQC := func() bool { return strings.Contains(e.ok("ls", "--label", "qc"), "a.csv") }

	// Idempotent: the same parent, or none.
	for _, args := range [][]string{{"--parent", "qc"}, nil} {
		if out := e.ok(append([]string{"label", "create", "passed"}, args...)...); !strings.Contains(out, "(under qc)") {
			t.Errorf("label create passed %v: %q", args, out)
		}
	}
	err := e.fails("label passed exists under qc", "label", "create", "passed", "--parent", "high_quality")
	if !strings.Contains(err.Error(), "--move") || codeOf(err) != 1 {
		t.Errorf("refusal: %v (exit %d)", err, codeOf(err))
	}
	e.fails("exists at the top", "label", "create", "qc", "--parent", "high_quality")
	if !underQC() {
		t.Fatal("a refused create moved the label")
	}
	if err := e.fails("--move needs --parent", "label", "create", "passed", "--move"); codeOf(err) != 2 {
		t.Errorf("exit %d", codeOf(err))
	}
	if out := e.ok("label", "create", "passed", "--parent", "high_quality", "--move"); !strings.Contains(out, "(under high_quality)") {
		t.Errorf("move: %q", out)
	}
	if underQC() {
		t.Error("--move did not move the label")
	}
}
