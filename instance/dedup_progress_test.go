package instance_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/instance"
	"github.com/lamina-bio/lamina/storage"
)

// TestSaveRebuildQuietUnderProgressBar: on a terminal the rebuild of the
// dedup index drew its progress line inside Save, under the save's
// progress bar, which redrew over it. The caller runs it before its bar
// (RebuildDedupIndex, with its line); Save under a bar rebuilds quietly.
func TestSaveRebuildQuietUnderProgressBar(t *testing.T) {
	for _, before := range []bool{false, true} {
		dir := t.TempDir()
		b, err := storage.CreateLocal(filepath.Join(dir, "storage"))
		if err != nil {
			t.Fatal(err)
		}
		cat, err := catalog.OpenBolt(filepath.Join(dir, "catalog.db"), catalog.BoltOptions{})
		if err != nil {
			t.Fatal(err)
		}
		store, err := cache.NewStore(b, filepath.Join(dir, "data", "index.db"), cache.DefaultParams)
		if err != nil {
			t.Fatal(err)
		}
		in := instance.New(instance.Settings{Name: "t", Storage: filepath.Join(dir, "storage"), DataDir: filepath.Join(dir, "data")}, cat, b, store)
		defer in.Close()
		if !store.IndexUnbuilt() {
			t.Fatal("a new index is not unbuilt")
		}
		lines := 0
		in.IndexProgress = func(done, total int) { lines++ }
		if before {
			in.RebuildDedupIndex(context.Background())
			if lines == 0 || store.IndexUnbuilt() {
				t.Fatalf("RebuildDedupIndex: %d progress lines, unbuilt %v", lines, store.IndexUnbuilt())
			}
		}
		f := filepath.Join(dir, "a.txt")
		os.WriteFile(f, []byte("hello"), 0o600)
		had := lines
		_, err = in.Save(context.Background(), []instance.SaveItem{{Path: f, Key: "a.txt"}}, instance.SaveOptions{Progress: func(n int64) {}})
		if err != nil {
			t.Fatal(err)
		}
		if lines != had {
			t.Fatal("Save drew the index's progress line under the save's bar")
		}
		if store.IndexUnbuilt() {
			t.Fatal("the index is still unbuilt after a save")
		}
	}
}
