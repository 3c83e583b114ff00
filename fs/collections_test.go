package fs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/catalog"
	lfs "github.com/lamina-bio/lamina/fs"
)

const samples = "../../shared/data/samples"

// collect records a collection version as `lamina collection create` does,
// then tells the mount, as the catalog server does.
func (w *world) collect(name string, vs ...catalog.Version) catalog.Collection {
	w.t.Helper()
	var uids []string
	for _, v := range vs {
		uids = append(uids, v.UID)
	}
	c, err := w.cat.SaveCollection(context.Background(), catalog.NewCollection{Name: name, Members: uids, CreatedBy: "tester", CreatedAt: time.Now()})
	if err != nil {
		w.t.Fatal(err)
	}
	if w.mnt != nil {
		w.mnt.Changed([]string{catalog.CollectionChange(name)})
	}
	return c
}

func ino(t *testing.T, p string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func TestCollectionsView(t *testing.T) {
	w := newWorld(t)
	h5ad := w.saveItem("scrna/pbmc.h5ad", filepath.Join(samples, "pbmc_small.h5ad"))
	obs1 := w.saveItem("scrna/obs.csv", filepath.Join(samples, "pbmc_small_obs.csv"))
	obs2 := w.save("scrna/obs.csv", []byte("cell,type\nc1,T cell\n"))
	zarr := w.saveItem("scrna/pbmc.zarr", filepath.Join(samples, "pbmc_small.zarr"))
	w.save("other.txt", []byte("not in a collection"))
	w.collect("Q1 batches", h5ad, obs1, zarr)
	w.collect("a/b", obs1, obs2) // two versions of one key, a '/' in the name
	w.mountRW()
	coll := filepath.Join(w.dir, ".lamina/collections")

	if got := w.ls(""); slices.Contains(got, ".lamina/") {
		t.Fatalf("ls / = %v: .lamina must be hidden", got)
	}
	if got := w.ls(".lamina"); !slices.Equal(got, []string{"collections/"}) {
		t.Fatalf("ls /.lamina = %v", got)
	}
	if got := w.ls(".lamina/collections"); !slices.Equal(got, []string{"Q1 batches/", "a%2Fb/"}) {
		t.Fatalf("ls collections = %v", got)
	}
	if got := w.ls(".lamina/collections/Q1 batches/scrna"); !slices.Equal(got, []string{"obs.csv", "pbmc.h5ad", "pbmc.zarr/"}) {
		t.Fatalf("ls Q1/scrna = %v", got)
	}
	if got := w.ls(".lamina/collections/a%2Fb/scrna"); !slices.Equal(got, []string{"obs.csv", "obs.csv@v1"}) {
		t.Fatalf("ls a/b/scrna = %v (the highest version at the key, the other at key@vN)", got)
	}

	t.Run("pinned versions read byte-equal", func(t *testing.T) {
		for _, c := range []struct{ path, src string }{
			{"Q1 batches/scrna/pbmc.h5ad", filepath.Join(samples, "pbmc_small.h5ad")},
			{"Q1 batches/scrna/obs.csv", filepath.Join(samples, "pbmc_small_obs.csv")}, // v1, not the latest
			{"Q1 batches/scrna/pbmc.zarr/obs/.zattrs", filepath.Join(samples, "pbmc_small.zarr/obs/.zattrs")},
			{"a%2Fb/scrna/obs.csv@v1", filepath.Join(samples, "pbmc_small_obs.csv")},
		} {
			want, err := os.ReadFile(c.src)
			if err != nil {
				t.Fatal(err)
			}
			if got := w.read(".lamina/collections/" + c.path); !bytes.Equal(got, want) {
				t.Errorf("%s: %d bytes differ from %s", c.path, len(got), c.src)
			}
		}
		if got := string(w.read(".lamina/collections/a%2Fb/scrna/obs.csv")); got != "cell,type\nc1,T cell\n" {
			t.Errorf("a/b obs.csv = %q, want v2", got)
		}
		// The whole folder artifact, file by file.
		filepath.WalkDir(filepath.Join(samples, "pbmc_small.zarr"), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(samples, p)
			want, _ := os.ReadFile(p)
			if got := w.read(".lamina/collections/Q1 batches/scrna/" + strings.Replace(rel, "pbmc_small.zarr", "pbmc.zarr", 1)); !bytes.Equal(got, want) {
				t.Errorf("%s differs", rel)
			}
			return nil
		})
	})

	t.Run("attributes and sidecars as versions", func(t *testing.T) {
		p := filepath.Join(coll, "Q1 batches/scrna/obs.csv")
		fi, err := os.Stat(p)
		if err != nil || fi.Size() != obs1.Size || fi.Mode() != 0o444 || !fi.ModTime().Equal(obs1.Mtime) {
			t.Fatalf("stat %v %v, want size %d mode 0444 mtime %v", fi, err, obs1.Size, obs1.Mtime)
		}
		if ino(t, p) != ino(t, w.p("scrna/obs.csv@v1")) {
			t.Error("a member and its key@vN must be one inode")
		}
		fi, err = os.Stat(filepath.Join(coll, "Q1 batches/scrna"))
		if err != nil || fi.Mode() != os.ModeDir|0o555 {
			t.Fatalf("folder %v %v", fi, err)
		}
		for _, name := range []string{"Q1 batches/scrna/obs.csv.meta", "Q1 batches/scrna/obs.csv@v1.meta", "a%2Fb/scrna/obs.csv@v1.meta"} {
			if got := w.read(".lamina/collections/" + name); !bytes.Equal(got, lfs.Sidecar(obs1)) {
				t.Errorf("%s = %s", name, got)
			}
		}
		var side map[string]any
		json.Unmarshal(w.read(".lamina/collections/Q1 batches/scrna/pbmc.zarr.meta"), &side)
		if side["uid"] != zarr.UID || side["kind"] != "folder" {
			t.Errorf("folder sidecar %v", side)
		}
		if got := w.read(".lamina/collections/Q1 batches@v1/scrna/pbmc.h5ad"); int64(len(got)) != h5ad.Size {
			t.Errorf("NAME@v1: %d bytes", len(got))
		}
	})

	t.Run("writes are EROFS", func(t *testing.T) {
		for _, c := range []struct {
			what string
			fn   func() error
		}{
			{"create", func() error { return os.WriteFile(filepath.Join(coll, "Q1 batches/scrna/new.csv"), []byte("x"), 0o644) }},
			{"overwrite", func() error { return os.WriteFile(filepath.Join(coll, "Q1 batches/scrna/obs.csv"), []byte("x"), 0o644) }},
			{"create at top", func() error { return os.WriteFile(filepath.Join(coll, "new"), []byte("x"), 0o644) }},
			{"mkdir", func() error { return os.Mkdir(filepath.Join(coll, "Q1 batches/new"), 0o755) }},
			{"unlink", func() error { return os.Remove(filepath.Join(coll, "Q1 batches/scrna/obs.csv")) }},
			{"rmdir", func() error { return syscall.Rmdir(filepath.Join(coll, "Q1 batches/scrna")) }},
			{"rmdir .lamina", func() error { return syscall.Rmdir(w.p(".lamina")) }},
			{"rename out", func() error { return os.Rename(filepath.Join(coll, "Q1 batches/scrna/obs.csv"), w.p("x.csv")) }},
			{"rename in", func() error { return os.Rename(w.p("other.txt"), filepath.Join(coll, "Q1 batches/other.txt")) }},
			{"rename onto .lamina", func() error {
				if err := os.Mkdir(w.p("empty"), 0o755); err != nil {
					return err
				}
				return syscall.Rename(w.p("empty"), w.p(".lamina"))
			}},
			{"chmod", func() error { return os.Chmod(filepath.Join(coll, "Q1 batches/scrna/obs.csv"), 0o600) }},
			{"truncate", func() error { return os.Truncate(filepath.Join(coll, "Q1 batches/scrna/obs.csv"), 0) }},
			{"touch", func() error {
				return os.Chtimes(filepath.Join(coll, "Q1 batches/scrna/obs.csv"), time.Now(), time.Now())
			}},
		} {
			if err := c.fn(); !errors.Is(err, syscall.EROFS) {
				t.Errorf("%s: %v, want EROFS", c.what, err)
			}
		}
		if got := string(w.read("other.txt")); got != "not in a collection" {
			t.Errorf("other.txt = %q", got)
		}
	})

	t.Run("names that resolve to nothing", func(t *testing.T) {
		for _, bad := range []string{"nope", "a%2fb", "a%2Fb@v3", "Q1 batches@v01", "Q1 batches/other.txt",
			"Q1 batches/scrna/obs.csv@v2", "Q1 batches/scrna/pbmc.h5ad@v2.meta"} {
			if _, err := os.Stat(filepath.Join(coll, bad)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("stat %s: %v, want ENOENT", bad, err)
			}
		}
	})

	t.Run("changes while mounted", func(t *testing.T) {
		w.ls(".lamina/collections") // the kernel caches the listing
		before := ino(t, filepath.Join(coll, "Q1 batches"))
		w.collect("Q1 batches", h5ad, obs2) // version 2: obs.csv v2, no zarr
		w.collect("new one", obs2)
		if got := w.ls(".lamina/collections"); !slices.Equal(got, []string{"Q1 batches/", "a%2Fb/", "new one/"}) {
			t.Fatalf("ls collections after a new one = %v", got)
		}
		if got := w.ls(".lamina/collections/Q1 batches/scrna"); !slices.Equal(got, []string{"obs.csv", "pbmc.h5ad"}) {
			t.Fatalf("Q1 batches now = %v, want version 2", got)
		}
		if ino(t, filepath.Join(coll, "Q1 batches")) == before {
			t.Error("a new collection version must be a new inode")
		}
		if got := w.ls(".lamina/collections/Q1 batches@v1/scrna"); !slices.Equal(got, []string{"obs.csv", "pbmc.h5ad", "pbmc.zarr/"}) {
			t.Fatalf("Q1 batches@v1 = %v", got)
		}
	})
}

// An annotate while mounted shows in the sidecar at once, with an exact
// size, though the kernel had the old one cached; other sidecars keep their
// bytes.
func TestSidecarAnnotations(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	v1 := w.saveItem("scrna/obs.csv", filepath.Join(samples, "pbmc_small_obs.csv"))
	v2 := w.save("scrna/obs.csv", []byte("cell\nc1\n"))
	other := w.saveItem("scrna/pbmc.h5ad", filepath.Join(samples, "pbmc_small.h5ad"))
	w.collect("batch", v1, other)
	for _, f := range []catalog.Feature{{Name: "tissue", Dtype: "str"}, {Name: "batch", Dtype: "int"}} {
		if _, err := w.cat.CreateFeature(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.cat.CreateLabel(ctx, catalog.Label{Name: "high_quality"}); err != nil {
		t.Fatal(err)
	}
	w.mount(lfs.MountOptions{})
	// The collection path first: its dentry is not one Changed(key) drops.
	paths := []string{".lamina/collections/batch/scrna/obs.csv.meta", "scrna/obs.csv@v1.meta"}
	for _, p := range append(paths, "scrna/obs.csv.meta", "scrna/pbmc.h5ad.meta") {
		w.read(p) // cached by the kernel (FOPEN_KEEP_CACHE, 1 h attributes)
		os.Stat(w.p(p))
	}

	a, err := w.cat.Annotate(ctx, v1.UID, catalog.Annotations{Features: map[string][]string{"tissue": {"bone marrow"}, "batch": {"1"}},
		Labels: []string{"high_quality"}, Terms: []catalog.Term{{Entity: "celltype", ID: "CL:0000084", Name: "T cell"}}})
	if err != nil {
		t.Fatal(err)
	}
	w.mnt.Changed([]string{v1.Key}) // what the catalog server does after Annotate

	for _, p := range paths {
		got := w.read(p)
		var side struct {
			UID         string               `json:"uid"`
			Annotations *catalog.Annotations `json:"annotations"`
		}
		if err := json.Unmarshal(got, &side); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if side.UID != v1.UID || side.Annotations == nil || side.Annotations.Features["tissue"][0] != "bone marrow" ||
			side.Annotations.Features["batch"][0] != "1" || !slices.Equal(side.Annotations.Labels, []string{"high_quality"}) ||
			len(side.Annotations.Terms) != 1 || side.Annotations.Terms[0].ID != "CL:0000084" {
			t.Fatalf("%s after annotate:\n%s", p, got)
		}
		a.UID = ""
		if want := lfs.SidecarWith(v1, a, nil); !bytes.Equal(got, want) {
			t.Errorf("%s:\n%s\nwant\n%s", p, got, want)
		}
		if fi, err := os.Stat(w.p(p)); err != nil || fi.Size() != int64(len(got)) {
			t.Errorf("stat %s: size %d, %v; content is %d bytes", p, fi.Size(), err, len(got))
		}
	}
	for _, c := range []struct {
		p string
		v catalog.Version
	}{{"scrna/obs.csv.meta", v2}, {"scrna/pbmc.h5ad.meta", other}} {
		if got := w.read(c.p); !bytes.Equal(got, lfs.Sidecar(c.v)) {
			t.Errorf("%s of an unannotated version changed:\n%s", c.p, got)
		}
		if fi, err := os.Stat(w.p(c.p)); err != nil || fi.Size() != int64(len(lfs.Sidecar(c.v))) {
			t.Errorf("stat %s: %v %v", c.p, fi, err)
		}
	}
}

func TestCollectionFileName(t *testing.T) {
	for _, c := range []struct{ name, file string }{
		{"scRNA-seq batches Q1", "scRNA-seq batches Q1"},
		{"a/b", "a%2Fb"},
		{"100%", "100%25"},
		{"%2F", "%252F"},
		{".", "%2E"},
		{"..", "%2E%2E"},
		{"...", "..."},
		{"x@v2", "x%40v2"},
		{"x@v02", "x@v02"},
		{"me@home", "me@home"},
		{"ünïcode ✓", "ünïcode ✓"},
	} {
		if got := lfs.CollectionFileName(c.name); got != c.file {
			t.Errorf("CollectionFileName(%q) = %q, want %q", c.name, got, c.file)
		}
		if got, ok := lfs.CollectionName(c.file); !ok || got != c.name {
			t.Errorf("CollectionName(%q) = %q, %v", c.file, got, ok)
		}
	}
	for _, bad := range []string{"a%2fb", "%41", "a/b", "%", "%zz", ".", "..", "x@v2", ""} {
		if got, ok := lfs.CollectionName(bad); ok {
			t.Errorf("CollectionName(%q) = %q: not a canonical file name", bad, got)
		}
	}
}

func FuzzCollectionName(f *testing.F) {
	for _, s := range []string{"a/b", "100%", "x@v2", "..", "%2E"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		file := lfs.CollectionFileName(name)
		if name == "" || strings.ContainsRune(name, 0) {
			return // not a collection name (catalog.CheckName)
		}
		if strings.Contains(file, "/") || file == "." || file == ".." {
			t.Fatalf("%q → %q is not a file name", name, file)
		}
		if got, ok := lfs.CollectionName(file); !ok || got != name {
			t.Fatalf("%q → %q → %q, %v", name, file, got, ok)
		}
		if lfs.ParseName(file+".meta").Version > 0 {
			t.Fatalf("%q → %q reads as NAME@vN", name, file)
		}
	})
}

// BenchmarkMountCollections lists a collection of 10,000 versions (100
// folders of 100 keys) through /.lamina/collections against the same keys
// at their own paths, each on a fresh mount (cold namespace and kernel
// caches), with ls -lR --show-meta style listings that stat every sidecar
// too. CPU is this process's (the FUSE server's) user+system time.
func BenchmarkMountCollections(b *testing.B) {
	w := newWorldB(b)
	ctx := context.Background()
	var nvs []catalog.NewVersion
	now := time.Now()
	for d := 0; d < 100; d++ {
		for f := 0; f < 100; f++ {
			nvs = append(nvs, catalog.NewVersion{Key: fmt.Sprintf("d%02d/f%03d.csv", d, f), Kind: "file", CreatedAt: now, Mtime: now})
		}
	}
	saved, err := w.cat.Save(ctx, nvs)
	if err != nil {
		b.Fatal(err)
	}
	var uids []string
	for _, s := range saved {
		uids = append(uids, s.Version.UID)
	}
	if _, err := w.cat.SaveCollection(ctx, catalog.NewCollection{Name: "all", Members: uids, CreatedAt: now}); err != nil {
		b.Fatal(err)
	}
	cpu := func() time.Duration {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	run := func(dir string, args ...string) (wall, used time.Duration) {
		c0, t0 := cpu(), time.Now()
		cmd := exec.Command(args[0], append(args[1:], dir)...)
		cmd.Stdout = io.Discard
		if err := cmd.Run(); err != nil {
			b.Fatalf("%v: %v", args, err)
		}
		return time.Since(t0), cpu() - c0
	}
	for i := 0; i < b.N; i++ {
		for _, tool := range [][]string{{"find", "-L"}, {"ls", "-lR"}} {
			for _, where := range []string{"keys", "collection"} {
				w.mount(lfs.MountOptions{Options: lfs.Options{ShowMeta: tool[0] == "ls"}})
				dir := w.dir
				if where == "collection" {
					dir = filepath.Join(w.dir, ".lamina/collections/all")
				}
				cold, coldCPU := run(dir, tool...)
				warm, warmCPU := run(dir, tool...)
				w.mnt.Unmount()
				b.Logf("%s %s: cold %v (server CPU %v), warm %v (server CPU %v)", strings.Join(tool, " "), where,
					cold.Round(time.Millisecond), coldCPU.Round(time.Millisecond), warm.Round(time.Millisecond), warmCPU.Round(time.Millisecond))
				b.ReportMetric(float64(coldCPU.Milliseconds()), tool[0]+"_"+where+"_cold_cpu_ms")
			}
		}
	}
}

// BenchmarkMountCollectionLookup is the namespace's cold lookup of a
// collection of 10,000 members: the catalog read and the tree built (no
// mount; a new namespace each time).
func BenchmarkMountCollectionLookup(b *testing.B) {
	w := newWorldB(b)
	ctx := context.Background()
	var nvs []catalog.NewVersion
	now := time.Now()
	for i := 0; i < 10_000; i++ {
		nvs = append(nvs, catalog.NewVersion{Key: fmt.Sprintf("d%02d/f%03d.csv", i/100, i%100), Kind: "file", CreatedAt: now, Mtime: now})
	}
	saved, err := w.cat.Save(ctx, nvs)
	if err != nil {
		b.Fatal(err)
	}
	var uids []string
	for _, s := range saved {
		uids = append(uids, s.Version.UID)
	}
	if _, err := w.cat.SaveCollection(ctx, catalog.NewCollection{Name: "all", Members: uids, CreatedAt: now}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ns := lfs.NewNamespace(w.cat, w.in.Store, lfs.Options{})
		e, err := ns.Lookup(ctx, ns.Root(), ".lamina")
		if err == nil {
			e, err = ns.Lookup(ctx, e, "collections")
		}
		if err == nil {
			e, err = ns.Lookup(ctx, e, "all")
		}
		if err == nil {
			_, err = ns.Lookup(ctx, e, "d42")
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMountSidecar renders the sidecar of pbmc_small_obs.csv (11
// columns) with annotations.
func BenchmarkMountSidecar(b *testing.B) {
	w := newWorldB(b)
	v := w.saveItem("obs.csv", filepath.Join(samples, "pbmc_small_obs.csv"))
	a := catalog.Annotations{Features: map[string][]string{"tissue": {"bone marrow"}, "batch": {"1"}}, Labels: []string{"high_quality"},
		Terms: []catalog.Term{{Entity: "celltype", ID: "CL:0000084", Name: "T cell"}}}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		lfs.SidecarWith(v, a, nil)
	}
}
