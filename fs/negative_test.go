package fs_test

import (
	"errors"
	"io/fs"
	"os"
	"testing"
)

// TestNewVersionNameNotHiddenByNegativeEntry: a name@vN looked up before
// the version existed stayed ENOENT for the mount's NegativeTimeout (1 s)
// after the version landed, whether saved through the instance (the CLI
// while mounted) or written through the mount: the kernel kept a negative
// entry that nothing invalidated (audit 7). Versions' names now get no
// negative entry.
func TestNewVersionNameNotHiddenByNegativeEntry(t *testing.T) {
	w := newWorld(t)
	w.mountRW()
	w.save("t2/r", []byte("a\n"))
	missing := func(t *testing.T, names ...string) {
		t.Helper()
		for _, n := range names {
			if _, err := os.Stat(w.p(n)); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("stat %s before it exists: %v", n, err)
			}
		}
	}
	there := func(t *testing.T, names ...string) {
		t.Helper()
		for _, n := range names {
			if _, err := os.Stat(w.p(n)); err != nil {
				t.Fatalf("stat %s right after the version landed: %v", n, err)
			}
		}
	}

	t.Run("save", func(t *testing.T) {
		missing(t, "t2/r@v2", "t2/r@v2.meta")
		w.save("t2/r", []byte("b\n"))
		there(t, "t2/r@v2", "t2/r@v2.meta")
		if got := string(w.read("t2/r@v2")); got != "b\n" {
			t.Fatalf("t2/r@v2 = %q", got)
		}
	})
	t.Run("writeThroughMount", func(t *testing.T) {
		missing(t, "t2/r@v3", "t2/r@v3.meta")
		if err := os.WriteFile(w.p("t2/r"), []byte("c\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if vs := w.versions("t2/r"); len(vs) != 3 {
			t.Fatalf("%d versions, want 3", len(vs))
		}
		there(t, "t2/r@v3", "t2/r@v3.meta")
		if got := string(w.read("t2/r@v3")); got != "c\n" {
			t.Fatalf("t2/r@v3 = %q", got)
		}
	})
}
