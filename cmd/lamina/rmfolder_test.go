package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// A folder artifact in the mount: its files stay read-only (rm of one is
// EROFS, rmdir of its top ENOTEMPTY: a tool pruning empty folders keeps
// it), and `rm -r` of it, or of a folder above it, moves the whole
// artifact to the trash, as rm of a file does; restore brings it back
// whole. rm -r -i, which asks about each file, removes nothing.
func TestRmRecursiveFolderArtifact(t *testing.T) {
	e := newMntEnv(t)
	zarr := filepath.Join(samples, "pbmc_small.zarr")
	e.ok("save", zarr, "--key", "scrna/pbmc.zarr")
	e.ok("save", e.file("c.csv", []byte("a,b\n1,2\n")), "--key", "scrna/c.csv")
	mnt := filepath.Join(e.dir, "lab")
	e.mount(mnt)
	art := filepath.Join(mnt, "scrna", "pbmc.zarr")
	rm := func(dir string, stdin string, args ...string) (string, error) {
		cmd := exec.Command("rm", args...)
		cmd.Dir, cmd.Stdin = dir, strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	trashed := func() bool { return strings.Contains(e.ok("ls", "--trash"), "scrna/pbmc.zarr") }

	// An empty folder artifact is an empty folder: rmdir takes it.
	empty := filepath.Join(e.dir, "src", "empty.zarr")
	os.MkdirAll(empty, 0o755)
	e.ok("save", empty, "--key", "e/empty.zarr")
	if err := syscall.Rmdir(filepath.Join(mnt, "e", "empty.zarr")); err != nil {
		t.Fatalf("rmdir of an empty folder artifact: %v", err)
	}
	if !strings.Contains(e.ok("ls", "--trash"), "e/empty.zarr") {
		t.Fatal("rmdir of an empty folder artifact did not move it to the trash")
	}

	if err := os.Remove(filepath.Join(art, ".zgroup")); !errors.Is(err, syscall.EROFS) {
		t.Fatalf("rm of a file of a folder artifact: %v, want EROFS", err)
	}
	if err := syscall.Rmdir(art); err != syscall.ENOTEMPTY {
		t.Fatalf("rmdir of a folder artifact: %v, want ENOTEMPTY", err)
	}
	if out, err := rm(mnt, "y\ny\ny\ny\n", "-r", "-i", "scrna/pbmc.zarr"); err == nil || !strings.Contains(out, "Read-only file system") {
		t.Fatalf("rm -ri: %v\n%s", err, out)
	}
	if trashed() {
		t.Fatal("rm of a file, rmdir or rm -ri moved the artifact to the trash")
	}
	assertSameTree(t, zarr, art)

	// From inside its folder, by a relative path, as a person types it.
	if out, err := rm(filepath.Join(mnt, "scrna"), "", "-r", "pbmc.zarr"); err != nil || out != "" {
		t.Fatalf("rm -r pbmc.zarr: %v\n%s", err, out)
	}
	if _, err := os.Lstat(art); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("after rm -r: %v", err)
	}
	if !trashed() {
		t.Fatal("rm -r did not move the artifact to the trash")
	}
	if got := string(mustRead(t, filepath.Join(mnt, "scrna", "c.csv"))); got != "a,b\n1,2\n" {
		t.Fatalf("its neighbour reads %q", got)
	}
	e.ok("restore", "scrna/pbmc.zarr")
	assertSameTree(t, zarr, art)
	if err := os.Remove(filepath.Join(art, ".zgroup")); !errors.Is(err, syscall.EROFS) {
		t.Fatalf("rm of a file of the restored artifact: %v, want EROFS", err)
	}

	// rm -rf of the folder above it, by its absolute path.
	if out, err := rm(e.dir, "", "-rf", filepath.Join(mnt, "scrna")); err != nil || out != "" {
		t.Fatalf("rm -rf scrna: %v\n%s", err, out)
	}
	if _, err := os.Lstat(filepath.Join(mnt, "scrna")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("after rm -rf scrna: %v", err)
	}
	e.ok("restore", "scrna/")
	assertSameTree(t, zarr, art)
	// A mount that lists versions and sidecars: rm -r of a version's tree
	// is EROFS (as rm of a file's KEY@vN); rm -r of the folder above
	// takes the artifact with its version and sidecar names.
	e.ok("umount", mnt)
	e.mount(mnt, "--show-versions", "--show-meta")
	assertSameTree(t, zarr, art)
	if out, err := rm(mnt, "", "-r", "scrna/pbmc.zarr@v1"); err == nil || !strings.Contains(out, "Read-only file system") || trashed() {
		t.Fatalf("rm -r of KEY@v1: %v\n%s", err, out)
	}
	if out, err := rm(mnt, "", "-r", "scrna"); err != nil || out != "" {
		t.Fatalf("rm -r scrna, versions listed: %v\n%s", err, out)
	}
	if !trashed() {
		t.Fatal("rm -r scrna with versions listed did not move the artifact to the trash")
	}
	e.ok("restore", "scrna/")
	assertSameTree(t, zarr, art)
}
