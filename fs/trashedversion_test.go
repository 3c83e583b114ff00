package fs_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	lfs "github.com/lamina-bio/lamina/fs"
)

// TestTrashedVersionsOfLiveKeyReadable: a key written again after an rm
// (Snakemake deletes its outputs before a rerun) keeps its earlier
// versions in the trash; KEY@vN reads them, read-only and unlisted, while
// the key is live. Once purged (with the key) or when the key is trashed
// again, the names are gone.
func TestTrashedVersionsOfLiveKeyReadable(t *testing.T) {
	w := newWorld(t)
	w.mountRW()
	p := func(name string) string { return filepath.Join(w.dir, name) }
	os.MkdirAll(p("res"), 0o755)
	for _, s := range []string{"one\n", "two\n"} {
		if err := os.WriteFile(p("res/count.txt"), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	w.eventually("res/count.txt", 2)
	if err := os.Remove(p("res/count.txt")); err != nil { // the rerun's rm
		t.Fatal(err)
	}
	if _, err := os.Stat(p("res/count.txt@v1")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a version of a key wholly in the trash: %v", err)
	}
	if err := os.WriteFile(p("res/count.txt"), []byte("three\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w.eventually("res/count.txt", 1) // live: v3 only
	if got := string(w.read("res/count.txt")); got != "three\n" {
		t.Fatalf("latest = %q", got)
	}
	if got := string(w.read("res/count.txt@v2")); got != "two\n" {
		t.Fatalf("trashed @v2 = %q", got)
	}
	if got := string(w.read("res/count.txt@v1")); got != "one\n" {
		t.Fatalf("trashed @v1 = %q", got)
	}
	var side map[string]any
	if err := json.Unmarshal(w.read("res/count.txt@v1.meta"), &side); err != nil || side["version"] != 1.0 || side["trashed"] != true {
		t.Fatalf("sidecar of trashed @v1: %v, %v", side, err)
	}
	if err := os.WriteFile(p("res/count.txt@v2"), []byte("x"), 0o644); !errors.Is(err, syscall.EROFS) {
		t.Errorf("write to a trashed @v2: %v; want EROFS", err)
	}
	if err := os.Remove(p("res/count.txt@v2")); !errors.Is(err, syscall.EROFS) {
		t.Errorf("rm of a trashed @v2: %v; want EROFS", err)
	}
	if _, err := os.Stat(p("res/count.txt@v4")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("@v4 (none): %v", err)
	}
	// A mount that lists versions lists the live ones only.
	w.mount(lfs.MountOptions{Options: lfs.Options{ShowVersions: true}})
	if got := w.ls("res"); !slices.Equal(got, []string{"count.txt", "count.txt@v3"}) {
		t.Errorf("listing shows %v; want the live versions only", got)
	}
	if got := string(w.read("res/count.txt@v2")); got != "two\n" {
		t.Fatalf("trashed @v2 in the second mount = %q", got)
	}
	// Purged with the key (as delete --permanent does): the names go.
	if _, err := w.cat.Purge(context.Background(), "res/count.txt"); err != nil {
		t.Fatal(err)
	}
	w.mnt.Changed([]string{"res/count.txt"})
	for _, n := range []string{"res/count.txt", "res/count.txt@v1", "res/count.txt@v2"} {
		if _, err := os.Stat(p(n)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s after purge: %v", n, err)
		}
	}
}
