package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// TestRmRecursiveShowingVersions: in a mount that lists versions and
// sidecars, `rm -r DIR` removes the folder and exits 0 (unlinking name
// takes name.meta and name@vN with it); a live version stays read-only.
func TestRmRecursiveShowingVersions(t *testing.T) {
	e := newMntEnv(t)
	mnt := filepath.Join(e.dir, "mnt")
	e.mount(mnt, "--show-versions", "--show-meta")
	for _, p := range []string{"D/z.txt", "D/z.txt", "D/E/y.txt", "keep.txt"} {
		os.MkdirAll(filepath.Dir(filepath.Join(mnt, p)), 0o755)
		if err := os.WriteFile(filepath.Join(mnt, p), []byte(p+"\n"+filepath.Base(p)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(mnt, "D/z.txt"), []byte("second\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(mnt, "keep.txt@v1")); !errors.Is(err, syscall.EROFS) {
		t.Errorf("rm of a live version: %v; want EROFS", err)
	}
	if err := os.Remove(filepath.Join(mnt, "keep.txt.meta")); !errors.Is(err, syscall.EROFS) {
		t.Errorf("rm of a live sidecar: %v; want EROFS", err)
	}
	if out, err := exec.Command("rm", "-r", filepath.Join(mnt, "D")).CombinedOutput(); err != nil {
		t.Errorf("rm -r: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(mnt, "D")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("D after rm -r: %v", err)
	}
	e.ok("restore", "D/z.txt") // in the trash, as rm of one file puts it
}
