package main

import (
	"strings"
	"testing"

	"github.com/lamina-bio/lamina/instance"
	"github.com/lamina-bio/lamina/stage"
)

// A staged file whose head an append left in the version (a hole:
// stage.StagedFile.Hole) is not saved elsewhere as it is without a word:
// the way out after a take-over says which bytes to put back first.
func TestStagedTakenOverNamesAHole(t *testing.T) {
	s := instance.Settings{Name: "m", DataDir: "/d"}
	files := []stage.StagedFile{
		{Key: "whole.txt", Path: "/d/staging/aa", Closed: true, Mode: 0o644},
		{Key: "big.log", Path: "/d/staging/bb", Mode: 0o644, Hole: 6 << 20, Base: 3},
	}
	out := stagedTakenOver(s, "tb", files, 2)
	lines := strings.Split(out, "\n")
	var hole []string
	for _, l := range lines {
		if strings.Contains(l, "put back") {
			hole = append(hole, l)
		}
	}
	if len(hole) != 1 || !strings.Contains(hole[0], "6291456 bytes") || !strings.Contains(hole[0], "big.log version 3") || !strings.Contains(hole[0], "/d/staging/bb") {
		t.Fatalf("the way out names no hole, or the wrong one:\n%s", out)
	}
}
