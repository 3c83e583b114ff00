package main

import (
	"crypto/rand"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// TestDedupAfterIndexLost: with index.db lost (or a workstation new to the
// storage), the next save rebuilds it from the packs' trailers, so saving
// content the storage holds already stores no second copy (audit d5: 3 MB
// saved again under another key wrote 2.9 MiB of new packs).
func TestDedupAfterIndexLost(t *testing.T) {
	e := newEnv(t)
	e.init()
	data := make([]byte, 3<<20)
	rand.Read(data)
	f := e.write("x.bin", data)
	e.ok("save", f, "--key", "a/x.bin")
	packs := func() (n int64) {
		t.Helper()
		err := filepath.WalkDir(e.path("storage/packs"), func(_ string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			info, err := d.Info()
			n += info.Size()
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := packs()
	idx := filepath.Join(e.path("data"), "lamina", "test", "index.db")
	if err := os.Remove(idx); err != nil {
		t.Fatal(err)
	}
	e.ok("save", f, "--key", "b/y.bin")
	if grew := packs() - before; grew > 64<<10 {
		t.Fatalf("the same 3 MiB saved under another key after index.db was lost added %d bytes of packs: stored again", grew)
	}
	if got := e.ok("get", "b/y.bin", "-o", e.path("back.bin")); got != "" {
		t.Logf("get: %s", got)
	}
	if back, err := os.ReadFile(e.path("back.bin")); err != nil || string(back) != string(data) {
		t.Fatalf("read back: %v", err)
	}
}
