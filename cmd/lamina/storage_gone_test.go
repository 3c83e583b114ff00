package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/catalog/postgres/pgtest"
	lfs "github.com/lamina-bio/lamina/fs"
	"github.com/lamina-bio/lamina/storage"
	s3b "github.com/lamina-bio/lamina/storage/s3"
)

// A storage folder that is gone (its disk unmounted, the folder moved)
// is refused by every command that uses the storage, naming the folder,
// and never made again: a save wrote into a new, empty folder, rc 0, and
// the versions before it no longer read ("pack not in storage"). An
// empty folder in its place (the mount point of a disk not mounted) is
// refused too while the catalog has versions. Commands that only read the
// catalog still work.
func TestStorageFolderGone(t *testing.T) {
	e := newEnv(t)
	e.init()
	root := e.path("storage")
	e.ok("save", e.write("q.csv", []byte("a,b\n1,2\n")), "--key", "z.csv")
	e.ok("save", e.write("d.csv", []byte("d\n")), "--key", "d.csv")
	if err := os.Rename(root, root+".away"); err != nil {
		t.Fatal(err)
	}
	counts := e.write("counts.csv", []byte("gene,count\nCD3E,5\n"))
	gone := "storage folder " + root + " is gone: is its disk mounted?"
	for _, args := range [][]string{
		{"save", counts, "--key", "z2.csv"},
		{"get", "z.csv", "-o", e.path("out.csv")},
		{"gc"},
	} {
		e.fails(gone, args...)
		if _, err := os.Lstat(root); !os.IsNotExist(err) {
			t.Fatalf("lamina %s made the storage folder again", strings.Join(args, " "))
		}
	}
	// A catalog-only command works (as with an S3 server away); the
	// record of a delete for good that it writes to storage cannot go.
	if out := e.ok("ls"); !strings.Contains(out, "z.csv") {
		t.Errorf("ls reads the catalog: %s", out)
	}
	_, stderr, err := e.run("delete", "--permanent", "--yes", "d.csv")
	if err != nil || !strings.Contains(stderr, gone) {
		t.Errorf("delete --permanent: %v\n%s", err, stderr)
	}
	if _, err := os.Lstat(root); !os.IsNotExist(err) {
		t.Fatal("ls or delete made the storage folder again")
	}
	// An empty folder where the disk mounts.
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	e.fails("folder "+root+" holds no instance.json and none of the data of the 1 version in the catalog of instance \"test\": is its disk mounted", "save", counts, "--key", "z2.csv")
	if ents, _ := os.ReadDir(root); len(ents) != 0 {
		t.Fatalf("the refused save wrote into the empty folder: %v", ents)
	}
	// The folder back: everything reads and saves.
	if err := os.Remove(root); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(root+".away", root); err != nil {
		t.Fatal(err)
	}
	e.ok("save", counts, "--key", "z2.csv")
	e.ok("get", "z.csv", "-o", e.path("out.csv"))
	if b, _ := os.ReadFile(e.path("out.csv")); string(b) != "a,b\n1,2\n" {
		t.Errorf("z.csv reads %q", b)
	}
}

// An instance whose storage holds no instance.json while its catalog has
// no versions (one an older lamina made, before roots were claimed, that
// saved nothing yet) keeps working, as does one whose root holds its data
// without the record.
func TestStorageWithoutOwnerRecord(t *testing.T) {
	e := newEnv(t)
	e.init()
	owner := filepath.Join(e.path("storage"), "instance.json")
	if err := os.Remove(owner); err != nil {
		t.Fatal(err)
	}
	e.ok("save", e.write("q.csv", []byte("a,b\n1,2\n")), "--key", "z.csv")
	e.ok("get", "z.csv", "-o", e.path("out.csv"))
	e.ok("save", e.write("counts.csv", []byte("gene,count\n")), "--key", "z2.csv")
	e.ok("gc") // and claims it
	if _, err := os.Stat(owner); err != nil {
		t.Errorf("gc did not claim the root: %v", err)
	}
}

// A mount of an instance whose storage folder is gone, or empty in its
// place, does not start.
func TestMountRefusesStorageFolderGone(t *testing.T) {
	e := newMntEnv(t)
	root := filepath.Join(e.dir, "storage")
	e.ok("save", e.file("q.csv", []byte("a,b\n1,2\n")), "--key", "z.csv")
	if err := os.Rename(root, root+".away"); err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(e.dir, "mnt")
	os.MkdirAll(mnt, 0o755)
	t.Cleanup(func() { // should one start
		if _, ok := lfs.MountInfo(mnt); ok {
			e.run("umount", "--force", mnt)
			lfs.ForceUnmount(mnt)
		}
	})
	e.fails("storage folder "+root+" is gone: is its disk mounted?", "mount", mnt)
	if _, err := os.Lstat(root); !os.IsNotExist(err) {
		t.Fatal("the mount made the storage folder again")
	}
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	e.fails("holds no instance.json and none of the data of the 1 version", "mount", mnt)
	if ents, _ := os.ReadDir(root); len(ents) != 0 {
		t.Fatalf("the refused mount wrote into the empty folder: %v", ents)
	}
}

// A running mount whose storage folder goes (its disk unmounted) and
// leaves an empty folder in its place (the mount point) writes nothing
// there: a close fails (EIO) and keeps its bytes, which are committed once
// the real folder is back, and then read. Before, the close succeeded
// with its pack written into the empty folder, and once the disk was back
// the version read nowhere ("pack not in storage").
func TestMountKeepsOutOfAnEmptyFolderInItsPlace(t *testing.T) {
	e := newMntEnv(t)
	e.env = append(e.env, "LAMINA_RETRY_FAILED=200ms")
	root := filepath.Join(e.dir, "storage")
	mnt := filepath.Join(e.dir, "mnt")
	e.mount(mnt)
	if err := os.WriteFile(filepath.Join(mnt, "x1"), []byte("a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(root, root+".away"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	werr := os.WriteFile(filepath.Join(mnt, "er.txt"), []byte("hi\n"), 0o644)
	if !errors.Is(werr, syscall.EIO) {
		t.Errorf("a close with an empty folder in the storage's place: %v; want EIO", werr)
	}
	if ents, _ := os.ReadDir(root); len(ents) != 0 {
		t.Fatalf("the mount wrote into the empty folder: %v", ents)
	}
	if err := os.Remove(root); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(root+".away", root); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the file closed while the folder was away, once it is back", 60*time.Second,
		readString(filepath.Join(mnt, "er.txt")), "hi\n")
	// The mount shows a failed close's bytes at once; the catalog has them
	// once the retry committed.
	waitFor(t, "the file closed while the folder was away, committed", 60*time.Second, catalogGet(e, "er.txt"), "hi\n")
	if b := mustRead(t, filepath.Join(mnt, "x1")); string(b) != "a\n" {
		t.Errorf("x1: %q", b)
	}
}

// connect of a team's instance whose storage folder is not on this
// machine (a shared disk not mounted), or is an empty folder, refuses,
// and neither makes the folder nor claims the empty one for the instance.
func TestConnectRefusesStorageFolderGone(t *testing.T) {
	db := pgtest.URL(t)
	a := workstationEnv(t, "ana")
	store := filepath.Join(a.dir, "store")
	a.ok("init", "--storage", store, "--name", "lab", "--db", db)
	a.ok("save", a.file("q.csv", []byte("a,b\n1,2\n")), "--key", "z.csv")
	if err := os.Rename(store, store+".away"); err != nil {
		t.Fatal(err)
	}
	c := workstationEnv(t, "cy")
	c.fails("storage folder "+store+" is gone: is its disk mounted?", "connect", "lab", "--db", db)
	if _, err := os.Lstat(store); !os.IsNotExist(err) {
		t.Fatal("connect made the storage folder")
	}
	if err := os.Mkdir(store, 0o755); err != nil {
		t.Fatal(err)
	}
	c.fails("holds no instance.json and none of the data of the 1 version in the catalog of instance \"lab\"", "connect", "lab", "--db", db)
	if ents, _ := os.ReadDir(store); len(ents) != 0 {
		t.Fatalf("connect wrote into the empty folder: %v", ents)
	}
	if err := os.Remove(store); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(store+".away", store); err != nil {
		t.Fatal(err)
	}
	c.ok("connect", "lab", "--db", db)
	c.ok("get", "z.csv", "-o", filepath.Join(c.dir, "out.csv"))
}

// On S3 a root that holds no instance.json and none of the data of the
// catalog's versions (a bucket emptied, or another server's bucket of
// that name) is refused likewise, and nothing is written there.
func TestS3StorageEmptied(t *testing.T) {
	e := newS3Env(t) // s3://bucket/lab
	ctx := context.Background()
	e.ok("save", e.file("q.csv", []byte("a,b\n1,2\n")), "--key", "z.csv")
	raw, err := s3b.Open(ctx, e.srv.Config(e.bucket))
	if err != nil {
		t.Fatal(err)
	}
	objects := func() []string {
		var names []string
		if err := raw.List(ctx, "lab/", func(i storage.Info) error { names = append(names, i.Name); return nil }); err != nil {
			t.Fatal(err)
		}
		return names
	}
	for _, n := range objects() {
		if err := raw.Delete(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	_, errs, err := e.run("save", e.file("c.csv", []byte("c\n3\n")), "--key", "z2.csv")
	if err == nil || !strings.Contains(errs, "s3://"+e.bucket+"/lab holds no instance.json and none of the data of the 1 version in the catalog of instance \"s3\": is it the bucket, prefix and endpoint the instance was made with?") {
		t.Fatalf("save into an emptied root: %v\n%s", err, errs)
	}
	if names := objects(); len(names) != 0 {
		t.Errorf("the refused save wrote %v", names)
	}
	e.ok("ls") // the catalog still answers
}
