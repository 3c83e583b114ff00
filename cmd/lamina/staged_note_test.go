package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/lamina-bio/lamina/stage"
)

// When the storage does not say whether it is still the instance's,
// status says what the next mount does with each staged file under that
// condition: one open at a kill -9 goes under lost+found/, as status says
// when the storage answers. It said "the next mount commits them" of all
// (audit d4).
func TestStagedNoteStorageAway(t *testing.T) {
	files := []stage.StagedFile{
		{Key: "open.txt", Path: "/st/1"},
		{Key: "failed.txt", Path: "/st/2", Closed: true, Failed: true},
	}
	away := errors.New("dial tcp: connection refused")
	answered := stagedNote("/st", files, nil)
	note := stagedNote("/st", files, away)
	for _, want := range []string{
		"open when the daemon stopped (open.txt): the next mount keeps what was written under lost+found/",
		"whose commit failed (failed.txt): the next mount commits them",
		"a file appended to whose earlier bytes gc has deleted since (its version deleted for good) goes under lost+found/ with only the bytes written to it",
	} {
		if !strings.Contains(answered, want) {
			t.Fatalf("with the storage answering: %s\nwant %q", answered, want)
		}
		if !strings.Contains(note, want) {
			t.Errorf("with the storage away: %s\nwant %q", note, want)
		}
	}
	for _, want := range []string{"open.txt (/st/1)", "did not answer whether it is still this instance's (dial tcp: connection refused)", "If another instance took it over, no mount of this one commits them"} {
		if !strings.Contains(note, want) {
			t.Errorf("with the storage away: %s\nwant %q", note, want)
		}
	}
}
