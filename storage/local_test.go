package storage_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/storage"
	"github.com/lamina-bio/lamina/storage/storagetest"
)

func TestLocalConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Backend {
		b, err := storage.OpenLocal(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}

func TestLocalSwapper(t *testing.T) {
	storagetest.RunSwapper(t, func(t *testing.T) storage.Swapper {
		b, err := storage.OpenLocal(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}

func TestLocalSkipsAndCleansTempFiles(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b, err := storage.CreateLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, "chunks/ab/x", []byte("1")); err != nil {
		t.Fatal(err)
	}
	// A crash mid-Put leaves a temporary file beside the target.
	if err := os.WriteFile(filepath.Join(dir, "chunks/ab/y.tmp-123"), []byte("half"), 0o644); err != nil {
		t.Fatal(err)
	}
	var names []string
	if err := b.List(ctx, "chunks/", func(i storage.Info) error { names = append(names, i.Name); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(names) != 1 || names[0] != "chunks/ab/x" {
		t.Fatalf("List = %v, want only the committed object", names)
	}
	// One being written now by another process is left alone.
	if n, err := b.Clean(ctx, time.Now().Add(-time.Hour)); err != nil || n != 0 {
		t.Fatalf("Clean of an hour ago = %d, %v; want none removed", n, err)
	}
	n, err := b.Clean(ctx, time.Now())
	if err != nil || n != 1 {
		t.Fatalf("Clean = %d, %v; want 1 removed", n, err)
	}
}

func TestLocalRejectsBadNames(t *testing.T) {
	b, err := storage.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"", "/abs", "../escape", "a/../../b", "x.tmp-1"} {
		if err := b.Put(context.Background(), name, nil); err == nil {
			t.Errorf("Put(%q) succeeded", name)
		}
	}
}

// TestLocalReadRange reads into several buffers at once; a range past the
// end and a missing object are errors, and a replaced object is read anew
// (the backend keeps files open).
func TestLocalReadRange(t *testing.T) {
	ctx := context.Background()
	b, err := storage.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("0123456789abcdefghij")
	if err := b.Put(ctx, "packs/aa/p", data); err != nil {
		t.Fatal(err)
	}
	one, rest, empty := make([]byte, 1), make([]byte, 12), []byte{}
	if err := b.ReadRange(ctx, "packs/aa/p", 3, one, empty, rest); err != nil {
		t.Fatal(err)
	}
	if string(one)+string(rest) != "3456789abcdef" {
		t.Fatalf("ReadRange = %q %q", one, rest)
	}
	if err := b.ReadRange(ctx, "packs/aa/p", 15, make([]byte, 6)); err == nil {
		t.Fatal("ReadRange past the end: no error")
	}
	if err := b.ReadRange(ctx, "packs/aa/none", 0, one); !storage.IsNotFound(err) {
		t.Fatalf("ReadRange of a missing object: %v, want not found", err)
	}
	if err := b.Put(ctx, "packs/aa/p", []byte("ZYXWVUTSRQ")); err != nil {
		t.Fatal(err)
	}
	if err := b.ReadRange(ctx, "packs/aa/p", 0, one); err != nil || one[0] != 'Z' {
		t.Fatalf("ReadRange after a Put = %q, %v; want the new bytes", one, err)
	}
}

// A root that is gone (its disk unmounted, the folder moved) is not made
// again by a write: OpenLocal does not create it, and a Put into a root
// that went after the open fails with ErrRootGone, leaving nothing there.
// An empty new root took the saves of an instance whose data was
// elsewhere (rc 0), whose reads then failed.
func TestLocalNeverRemakesItsRoot(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "disk", "storage")
	gone := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, storage.ErrRootGone) || !strings.Contains(err.Error(), "storage folder "+root+" is gone: is its disk mounted?") {
			t.Errorf("%s: %v; want ErrRootGone naming %s", what, err, root)
		}
		if _, err := os.Lstat(root); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s made the root again (%v)", what, err)
		}
	}
	b, err := storage.OpenLocal(root)
	if err != nil {
		t.Fatal(err)
	}
	gone("CheckRoot", storage.CheckRoot(root))
	gone("a Put at the top", b.Put(ctx, "instance.json", []byte("{}")))
	gone("a Put below", b.Put(ctx, "packs/ab/x", []byte("x")))
	gone("a PutIf", b.PutIf(ctx, "ontologies/registry.json", []byte("{}"), ""))
	if _, err := b.Get(ctx, "packs/ab/x"); !storage.IsNotFound(err) {
		t.Errorf("Get from a missing root: %v", err)
	}

	// Created, written, then gone: the folders the Local made are not
	// made again either.
	if b, err = storage.CreateLocal(root); err != nil {
		t.Fatal(err)
	}
	if err := storage.CheckRoot(root); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, "packs/ab/x", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(root, root+".away"); err != nil {
		t.Fatal(err)
	}
	gone("a Put into a folder made before", b.Put(ctx, "packs/ab/y", []byte("y")))
	gone("a Put into a new folder", b.Put(ctx, "records/r", []byte("r")))
	// Put back, it takes writes again.
	if err := os.Rename(root+".away", root); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, "packs/ab/y", []byte("y")); err != nil {
		t.Fatalf("a Put once the root is back: %v", err)
	}
	if f, err := os.CreateTemp(filepath.Dir(root), "file"); err == nil {
		f.Close()
		if err := storage.CheckRoot(f.Name()); err == nil || errors.Is(err, storage.ErrRootGone) || !strings.Contains(err.Error(), "is not a folder") {
			t.Errorf("CheckRoot of a file: %v", err)
		}
	}
}

// A root put out of place under a running Local (a disk unmounted, its
// empty mount point left) is not written into: the Local does not make
// again the top-level folders the root held (packs/, records/ …), nor
// writes into a new empty folder in its place, so the writes fail
// (ErrRootGone) and succeed once the real folder is back. A save of a
// mount wrote its pack into the empty folder, rc 0, and the version then
// read nowhere ("pack not in storage"). A fresh root gets its folders
// once, and a copy with the data (a backup put back) takes writes.
func TestLocalKeepsOutOfAnEmptyFolderInItsPlace(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "storage")
	c, err := storage.CreateLocal(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"instance.json", "packs/ab/x", "records/r"} {
		if err := c.Put(ctx, n, []byte(n)); err != nil {
			t.Fatal(err)
		}
	}
	b, err := storage.OpenLocal(root) // a mount's, opened on the data
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, "packs/ab/y", []byte("y")); err != nil { // packs/ab remembered
		t.Fatal(err)
	}
	away := func() {
		t.Helper()
		if err := os.Rename(root, root+".away"); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(root, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	back := func() {
		t.Helper()
		if err := os.Remove(root); err != nil {
			t.Fatalf("the empty folder was written into: %v", err)
		}
		if err := os.Rename(root+".away", root); err != nil {
			t.Fatal(err)
		}
	}
	refused := func(what string, err error, want string) {
		t.Helper()
		if !errors.Is(err, storage.ErrRootGone) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v; want ErrRootGone saying %q", what, err, want)
		}
		if ents, _ := os.ReadDir(root); len(ents) != 0 {
			t.Fatalf("%s wrote into the empty folder: %v", what, ents)
		}
	}
	away()
	lost := "storage folder " + root + " no longer holds its "
	refused("a Put into a folder made before", b.Put(ctx, "packs/ab/z", []byte("z")), lost+"packs: is its disk mounted?")
	refused("a Put into a new folder", b.Put(ctx, "packs/cd/z", []byte("z")), lost+"packs: is its disk mounted?")
	refused("a Put of a record", b.Put(ctx, "records/r2", []byte("r")), lost+"records: is its disk mounted?")
	refused("a Put into a new top-level folder", b.Put(ctx, "gc/condemned/c", []byte("c")), lost+"packs and records: is its disk mounted?")
	refused("a Put at the top", b.Put(ctx, "instance.json", []byte("{}")), lost+"packs and records")
	refused("a PutIf", b.PutIf(ctx, "ontologies/registry.json", []byte("{}"), ""), lost+"packs and records")
	// A read that finds nothing says why.
	if _, err := b.Get(ctx, "packs/ab/x"); !storage.IsNotFound(err) || !errors.Is(err, storage.ErrRootGone) || !strings.Contains(err.Error(), lost+"packs") {
		t.Errorf("Get from the empty folder: %v", err)
	}
	var nir *storage.NotInRootError
	if err := b.ReadRange(ctx, "packs/ab/x", 0, make([]byte, 1)); !errors.As(err, &nir) || nir.Root != root || !errors.Is(err, storage.ErrRootGone) {
		t.Errorf("ReadRange from the empty folder: %v", err)
	}
	back()
	for _, n := range []string{"packs/ab/z", "packs/cd/z", "records/r2", "gc/condemned/c"} {
		if err := b.Put(ctx, n, []byte(n)); err != nil {
			t.Fatalf("Put %s once the folder is back: %v", n, err)
		}
	}
	if _, err := b.Get(ctx, "packs/ab/x"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, "packs/ef/none"); !storage.IsNotFound(err) || errors.Is(err, storage.ErrRootGone) || err.Error() != "storage: object file does not exist: packs/ef/none" {
		t.Errorf("a missing object of a root in place: %v", err)
	}

	// A copy of the folder put in its place (from a backup) takes writes,
	// new top-level folders too.
	if err := os.CopyFS(root+".copy", os.DirFS(root)); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(root, root+".old"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(root+".copy", root); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"packs/01/a", "ontologies/o", "instance.json"} {
		if err := b.Put(ctx, n, []byte(n)); err != nil {
			t.Fatalf("Put %s into a copy of the folder: %v", n, err)
		}
	}

	// A fresh root makes its folders once; an empty folder in its place
	// (not the one opened) takes nothing, even before any.
	fresh := filepath.Join(t.TempDir(), "fresh")
	f, err := storage.CreateLocal(fresh)
	if err != nil {
		t.Fatal(err)
	}
	root = fresh
	away()
	refused("a Put into an empty folder in a fresh root's place", f.Put(ctx, "packs/ab/x", []byte("x")), "storage folder "+fresh+" is a new, empty folder, not the one lamina opened: is its disk mounted?")
	refused("a Put at its top", f.Put(ctx, "instance.json", []byte("{}")), "is a new, empty folder")
	back()
	if err := f.Put(ctx, "packs/ab/x", []byte("x")); err != nil {
		t.Fatal(err)
	}
	away()
	refused("a Put once the fresh root made packs", f.Put(ctx, "packs/cd/x", []byte("x")), "storage folder "+fresh+" no longer holds its packs")
	back()
}
