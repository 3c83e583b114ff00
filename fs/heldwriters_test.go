package fs_test

import (
	"encoding/json"
	"os"
	"testing"
)

// Divergences from a plain folder that a differential fuzzer found
// (audit 3): writers holding a file that is truncated, unlinked or
// renamed over, and closes of files opened with nothing written.

// metaOf is the version and size name's sidecar shows.
func (w *world) metaOf(name string) (version int, size int64) {
	w.t.Helper()
	var m struct {
		Version int   `json:"version"`
		Size    int64 `json:"size"`
	}
	b, err := os.ReadFile(w.p(name + ".meta"))
	if err != nil {
		w.t.Fatal(err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		w.t.Fatal(err)
	}
	return m.Version, m.Size
}

// truncate(2) of a path to 0 made the empty version in the catalog, but
// the mount kept showing the version before until a remount.
func TestTruncateByPathToZeroShown(t *testing.T) {
	w := newWorld(t)
	w.mountRW()
	if err := os.WriteFile(w.p("p"), []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(w.p("p"), 0); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(w.p("p"))
	if err != nil || fi.Size() != 0 {
		t.Fatalf("stat after truncate(2) to 0: %v, %v", fi, err)
	}
	if got := w.read("p"); len(got) != 0 {
		t.Fatalf("read after truncate(2) to 0: %q", got)
	}
	if v, size := w.metaOf("p"); v != 2 || size != 0 {
		t.Fatalf("p.meta after truncate(2) to 0: v%d size %d, want v2 size 0", v, size)
	}
	if vs := w.versions("p"); len(vs) != 2 || vs[1].Size != 0 {
		t.Fatalf("versions: %+v", vs)
	}
}
