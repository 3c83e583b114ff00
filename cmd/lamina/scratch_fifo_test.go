package main

import (
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"github.com/lamina-bio/lamina/stage"
)

// A FIFO or socket of the scratch folder is shown at any name (mkfifo in
// a folder of keys: fs/special.go): no pattern hides it, so neither scratch
// rm refuses for it nor a mount warns of it.
func TestHiddenScratchSkipsFIFOs(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "wf"), 0o755)
	if err := syscall.Mkfifo(filepath.Join(dir, "wf", "mid.pipe"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "wf", "a.tmp"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := hiddenScratch(dir, nil, stage.DefaultScratch); !slices.Equal(got, []string{"wf/a.tmp"}) {
		t.Fatalf("hidden %q, want wf/a.tmp only", got)
	}
}
