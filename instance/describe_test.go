package instance_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lamina-bio/lamina/instance"
)

// A Parquet file whose footer is damaged (the library panics on it) is
// saved as a plain file with a note, and reads back as it was written; a
// good file saved with it in the same call is saved too.
func TestSaveDamagedParquet(t *testing.T) {
	in, _ := workstations(t)
	b, err := os.ReadFile("../../shared/data/samples/pbmc_small_obs.parquet")
	if err != nil {
		t.Fatal(err)
	}
	b[5557] = 0x7f
	dir := t.TempDir()
	bad, good := filepath.Join(dir, "one.parquet"), filepath.Join(dir, "a.txt")
	os.WriteFile(bad, b, 0o644)
	os.WriteFile(good, []byte("hi\n"), 0o644)
	res, err := in.Save(context.Background(), []instance.SaveItem{{Path: good, Key: "multi/a.txt"}, {Path: bad, Key: "multi/one.parquet"}}, instance.SaveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || !strings.Contains(res[1].Note, "saved as a plain file") {
		t.Fatalf("results %+v; want the parquet's note to say it is saved as a plain file", res)
	}
	v, err := in.Catalog.ByKey(context.Background(), "multi/one.parquet", 0)
	if err != nil || v.OType != "" {
		t.Fatalf("multi/one.parquet: %+v %v; want a version without an otype", v, err)
	}
	t.Log(res[1].Note)
	readsBack(t, in, "multi/one.parquet", b)
	readsBack(t, in, "multi/a.txt", []byte("hi\n"))
}
