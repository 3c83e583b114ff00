package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/catalog/postgres/pgtest"
)

func lsNames(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

// sidecarAnnotations reads a sidecar and checks that stat gives its size.
func sidecarAnnotations(t *testing.T, p string) ([]byte, *catalog.Annotations) {
	t.Helper()
	b := mustRead(t, p)
	fi, err := os.Stat(p)
	if err != nil || fi.Size() != int64(len(b)) {
		t.Fatalf("stat %s: %v, %v; it holds %d bytes", p, fi, err, len(b))
	}
	var side struct {
		Annotations *catalog.Annotations `json:"annotations"`
	}
	if err := json.Unmarshal(b, &side); err != nil {
		t.Fatalf("%s: %v\n%s", p, err, b)
	}
	return b, side.Annotations
}

// The built binary's daemon: collections created and versions annotated
// with the CLI while mounted show at once in /.lamina/collections and in
// the sidecars.
func TestCollectionMount(t *testing.T) {
	e := newMntEnv(t)
	h5ad, csv := filepath.Join(samples, "pbmc_small.h5ad"), filepath.Join(samples, "pbmc_small_obs.csv")
	e.ok("save", h5ad, "--key", "scrna/batch_0.h5ad")
	e.ok("save", csv, "--key", "scrna/batch_1.csv")
	e.ok("feature", "create", "tissue", "--dtype", "str")
	e.ok("feature", "create", "batch", "--dtype", "int")
	e.ok("label", "create", "high_quality")
	mnt := filepath.Join(e.dir, "lab")
	e.mount(mnt)
	colls := filepath.Join(mnt, ".lamina/collections")
	if got := lsNames(t, colls); len(got) != 0 {
		t.Fatalf("collections before any: %v", got)
	}
	side0, side1 := filepath.Join(mnt, "scrna/batch_0.h5ad.meta"), filepath.Join(mnt, "scrna/batch_1.csv.meta")
	before1 := mustRead(t, side1)
	if _, a := sidecarAnnotations(t, side0); a != nil {
		t.Fatalf("annotations before annotate: %v", a)
	}

	e.ok("collection", "create", "scRNA-seq batches Q1", "scrna/batch_0.h5ad", "scrna/batch_1.csv")
	e.ok("collection", "create", "lab/shared", "--key-prefix", "scrna/")
	if got := lsNames(t, colls); !slices.Equal(got, []string{"lab%2Fshared", "scRNA-seq batches Q1"}) {
		t.Fatalf("collections after create = %v", got)
	}
	q1 := filepath.Join(colls, "scRNA-seq batches Q1")
	for _, c := range []struct{ name, src string }{{"scrna/batch_0.h5ad", h5ad}, {"scrna/batch_1.csv", csv}} {
		for _, dir := range []string{q1, filepath.Join(colls, "lab%2Fshared")} {
			if got, want := mustRead(t, filepath.Join(dir, c.name)), mustRead(t, c.src); !bytes.Equal(got, want) {
				t.Errorf("%s/%s: not byte-equal to %s", dir, c.name, c.src)
			}
		}
	}
	for _, p := range []string{filepath.Join(q1, "scrna/batch_1.csv"), filepath.Join(q1, "scrna/new.csv")} {
		if err := os.WriteFile(p, []byte("x"), 0o644); !errors.Is(err, syscall.EROFS) {
			t.Errorf("write %s: %v, want EROFS", p, err)
		}
	}
	if err := os.Mkdir(filepath.Join(q1, "new"), 0o755); !errors.Is(err, syscall.EROFS) {
		t.Errorf("mkdir in a collection: %v, want EROFS", err)
	}
	inColl := filepath.Join(q1, "scrna/batch_0.h5ad.meta")
	mustRead(t, inColl) // cached by the kernel before the annotate

	e.ok("annotate", "scrna/batch_0.h5ad", "--feature", "tissue=bone marrow", "--feature", "batch=1", "--label", "high_quality")
	var shown struct {
		Annotations catalog.Annotations `json:"annotations"`
	}
	if err := json.Unmarshal([]byte(e.ok("show", "scrna/batch_0.h5ad", "--format", "json")), &shown); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{side0, inColl} {
		_, a := sidecarAnnotations(t, p)
		if a == nil || !reflect.DeepEqual(*a, shown.Annotations) || a.Features["tissue"][0] != "bone marrow" {
			t.Errorf("%s right after annotate: %+v; lamina show: %+v", p, a, shown.Annotations)
		}
	}
	if got := mustRead(t, side1); !bytes.Equal(got, before1) {
		t.Errorf("sidecar of an unannotated version changed:\n%s", got)
	}

	// A new version of a collection: NAME shows it, NAME@v1 keeps the old.
	e.ok("collection", "create", "scRNA-seq batches Q1", "scrna/batch_1.csv")
	if got := lsNames(t, filepath.Join(q1, "scrna")); !slices.Equal(got, []string{"batch_1.csv"}) {
		t.Fatalf("Q1 after a new version: %v", got)
	}
	if got := lsNames(t, filepath.Join(colls, "scRNA-seq batches Q1@v1", "scrna")); !slices.Equal(got, []string{"batch_0.h5ad", "batch_1.csv"}) {
		t.Fatalf("Q1@v1: %v", got)
	}
	// Both versions listed, through the daemon that holds the catalog.
	var hist []catalog.Collection
	if err := json.Unmarshal([]byte(e.ok("collection", "ls", "--versions", "scRNA-seq batches Q1", "--format", "json")), &hist); err != nil ||
		len(hist) != 2 || len(hist[0].Members) != 2 || len(hist[1].Members) != 1 {
		t.Fatalf("collection ls --versions while mounted: %v %+v", err, hist)
	}
}

// annotate --remove while mounted: the sidecars the kernel holds (of the
// latest path and of @v1) show the removal at once, and removing every
// annotation gives back the sidecar of a version never annotated.
func TestAnnotateRemoveMount(t *testing.T) {
	e := newMntEnv(t)
	e.ok("save", filepath.Join(samples, "pbmc_small_obs.csv"), "--key", "t/obs.csv")
	e.ok("feature", "create", "batch", "--dtype", "int")
	e.ok("label", "create", "treated")
	mnt := filepath.Join(e.dir, "lab")
	e.mount(mnt)
	latest, v1 := filepath.Join(mnt, "t/obs.csv.meta"), filepath.Join(mnt, "t/obs.csv@v1.meta")
	bare := mustRead(t, latest)
	e.ok("annotate", "t/obs.csv", "--feature", "batch=1", "--feature", "batch=2", "--label", "treated")
	for _, p := range []string{latest, v1} {
		if _, a := sidecarAnnotations(t, p); a == nil || len(a.Features["batch"]) != 2 { // the kernel caches it now
			t.Fatalf("%s after annotate: %+v", p, a)
		}
	}
	e.ok("annotate", "t/obs.csv", "--remove", "--feature", "batch=1")
	var shown struct {
		Annotations catalog.Annotations `json:"annotations"`
	}
	if err := json.Unmarshal([]byte(e.ok("show", "t/obs.csv", "--format", "json")), &shown); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(shown.Annotations.Features["batch"], []string{"2"}) {
		t.Fatalf("show after removing batch=1: %+v", shown.Annotations)
	}
	for _, p := range []string{latest, v1} {
		if _, a := sidecarAnnotations(t, p); a == nil || !reflect.DeepEqual(*a, shown.Annotations) {
			t.Errorf("%s right after annotate --remove: %+v; lamina show: %+v", p, a, shown.Annotations)
		}
	}
	e.ok("annotate", "t/obs.csv", "--remove", "--feature", "batch", "--label", "treated")
	for _, p := range []string{latest, v1} {
		if got, a := sidecarAnnotations(t, p); a != nil || p == latest && !bytes.Equal(got, bare) {
			t.Errorf("%s with no annotations left:\n%s\nwant:\n%s", p, got, bare)
		}
	}
}

// Two workstations on one PostgreSQL catalog (and one storage folder): a
// collection and an annotation made on one show in the other's mount,
// through the catalog's change notifications.
func TestCollectionMountPostgres(t *testing.T) {
	db := pgtest.URL(t)
	a, b := newMntEnvNoInit(t, "ana"), newMntEnvNoInit(t, "ben")
	storage := filepath.Join(t.TempDir(), "storage")
	a.ok("init", "--storage", storage, "--db", db, "--name", "lab")
	b.ok("connect", "lab", "--db", db)
	a.ok("save", filepath.Join(samples, "pbmc_small_obs.csv"), "--key", "t/obs.csv")
	a.ok("feature", "create", "tissue", "--dtype", "str")
	ma, mb := filepath.Join(a.dir, "mnt"), filepath.Join(b.dir, "mnt")
	a.mount(ma)
	b.mount(mb)
	side := filepath.Join(mb, "t/obs.csv.meta")
	before := mustRead(t, side) // ben's kernel caches it
	colls := filepath.Join(mb, ".lamina/collections")
	lsNames(t, colls)

	a.ok("collection", "create", "shared", "t/obs.csv")
	a.ok("annotate", "t/obs.csv", "--feature", "tissue=lung")
	waitFor(t, "ben sees ana's collection", 30*time.Second, func() (string, error) {
		return strings.Join(lsNames(t, colls), ","), nil
	}, "shared")
	waitFor(t, "ben sees ana's annotation", 30*time.Second, func() (string, error) {
		b, err := os.ReadFile(side)
		return fmt.Sprint(bytes.Contains(b, []byte(`"lung"`))), err
	}, "true")
	got, an := sidecarAnnotations(t, side)
	if an == nil || an.Features["tissue"][0] != "lung" || !bytes.Equal(got, mustRead(t, filepath.Join(ma, "t/obs.csv.meta"))) {
		t.Fatalf("ben's sidecar (was %d bytes):\n%s", len(before), got)
	}
	if got := mustRead(t, filepath.Join(colls, "shared/t/obs.csv")); !bytes.Equal(got, mustRead(t, filepath.Join(samples, "pbmc_small_obs.csv"))) {
		t.Fatal("ben's collection file differs")
	}
	// A removal reaches ben's sidecar the same way.
	a.ok("annotate", "t/obs.csv", "--remove", "--feature", "tissue=lung")
	waitFor(t, "ben sees ana's removal", 30*time.Second, func() (string, error) {
		b, err := os.ReadFile(side)
		return fmt.Sprint(bytes.Contains(b, []byte(`"lung"`))), err
	}, "false")
	if got, an := sidecarAnnotations(t, side); an != nil || !bytes.Equal(got, before) {
		t.Fatalf("ben's sidecar after the removal:\n%s\nwant:\n%s", got, before)
	}
}

// newMntEnvNoInit is a workstation with local storage: its own HOME and
// XDG folders, no instance yet.
func newMntEnvNoInit(t *testing.T, name string) *mntEnv {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Fatal("no /dev/fuse: the mount tests need FUSE")
	}
	dir := filepath.Join(t.TempDir(), name)
	e := &mntEnv{t: t, dir: dir, bin: mntBinary(t)}
	e.env = append(os.Environ(), "HOME="+dir+"/home", "XDG_CONFIG_HOME="+dir+"/cfg", "XDG_DATA_HOME="+dir+"/data",
		"XDG_CACHE_HOME="+dir+"/cache", "XDG_RUNTIME_DIR="+dir+"/run", "LAMINA_INSTANCE=")
	return e
}

// TestCollectionViewAfterPurge: a member deleted for good (delete
// --permanent --force, then gc) leaves the view of its collection at
// once: not listed, no stale size or bytes.
func TestCollectionViewAfterPurge(t *testing.T) {
	e := newMntEnv(t)
	mnt := filepath.Join(e.dir, "mnt")
	e.mount(mnt)
	for _, k := range []string{"c/a.txt", "c/b.txt", "c/d.txt"} {
		e.ok("save", e.file(k, []byte("bytes of "+k+"\n")), "--key", k)
	}
	e.ok("collection", "create", "cset", "--key-prefix", "c/")
	view := filepath.Join(mnt, ".lamina", "collections", "cset", "c")
	if got := lsNames(t, view); !slices.Equal(got, []string{"a.txt", "b.txt", "d.txt"}) {
		t.Fatalf("view: %v", got)
	}
	for _, p := range []string{filepath.Join(view, "b.txt"), filepath.Join(mnt, ".lamina", "collections", "cset@v1", "c", "b.txt")} {
		if b := mustRead(t, p); string(b) != "bytes of c/b.txt\n" {
			t.Fatalf("%s: %q", p, b)
		}
	}
	e.ok("delete", "--permanent", "--yes", "--force", "c/b.txt")
	e.ok("gc", "--grace", "0s", "--settle", "0s")
	if got := lsNames(t, view); !slices.Equal(got, []string{"a.txt", "d.txt"}) {
		t.Errorf("view after a member was deleted for good: %v", got)
	}
	for _, p := range []string{filepath.Join(view, "b.txt"), filepath.Join(mnt, ".lamina", "collections", "cset@v1", "c", "b.txt")} {
		if b, err := os.ReadFile(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s after its member was deleted for good: %q, %v", p, b, err)
		}
	}
}
