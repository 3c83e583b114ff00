package cache

import (
	"os"
	"path/filepath"
	"testing"
)

// A process that found the index damaged sets it aside and makes it anew;
// another that found the same damage a moment later set aside that new,
// healthy file in turn, warning of damage it did not have (audit e6: a
// mount and a save). setAside renames only the file found damaged.
func TestSetAsideLeavesAFileMadeAnewSince(t *testing.T) {
	path := filepath.Join(t.TempDir(), "index.db")
	if err := os.WriteFile(path, []byte("garbage, found damaged"), 0o600); err != nil {
		t.Fatal(err)
	}
	seen, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	// The other process sets it aside and makes it anew.
	other := &Index{path: path}
	if err := other.setAside(&damagedError{cause: "garbage", seen: seen, known: true}); err != nil {
		t.Fatal(err)
	}
	fresh, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	// This one found the same damage before that.
	ix := &Index{path: path}
	if err := ix.setAside(&damagedError{cause: "garbage", seen: seen, known: true}); err != nil {
		t.Fatal(err)
	}
	now, err := os.Stat(path)
	if err != nil || !os.SameFile(now, fresh) {
		t.Fatalf("the file made anew by the other process was set aside again (%v)", err)
	}
	if aside, _ := filepath.Glob(path + ".damaged-*"); len(aside) != 1 {
		t.Fatalf("set aside: %v; want the damaged file only", aside)
	}
	// Found gone (deleted) and made anew by the other meanwhile: the same.
	ix2 := &Index{path: path}
	if err := ix2.setAside(&damagedError{cause: "gone (deleted)", known: true}); err != nil {
		t.Fatal(err)
	}
	if now, err := os.Stat(path); err != nil || !os.SameFile(now, fresh) {
		t.Fatalf("a file made anew replaced again after a delete (%v)", err)
	}
}
