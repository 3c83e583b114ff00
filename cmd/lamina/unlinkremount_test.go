package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestUnlinkRestoreSurvivesRemount: a key unlinked in the mount, the
// daemon unmounted and mounted again, and the key written again within the
// window (a workflow rerun after a restart) continues its history, as
// without the remount: the unlink was in the old daemon's memory only, and
// v1, v2 stayed in the trash with the new bytes a v3 alone (audit b1).
func TestUnlinkRestoreSurvivesRemount(t *testing.T) {
	e := newMntEnv(t)
	mnt := filepath.Join(e.dir, "lab")
	e.mount(mnt)
	p := filepath.Join(mnt, "raw", "w2.txt")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"one\n", "two\n"} {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	e.ok("umount", mnt)
	e.mount(mnt)
	if err := os.WriteFile(p, []byte("three\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(p + "@v1"); err != nil || string(got) != "one\n" {
		t.Fatalf("raw/w2.txt@v1 after rm, remount and a write: %q, %v; want the first version back", got, err)
	}
	if got := string(mustRead(t, p+"@v3")); got != "three\n" {
		t.Fatalf("raw/w2.txt@v3 = %q", got)
	}
	if trash := e.ok("ls", "--trash"); strings.Contains(trash, "raw/w2.txt") {
		t.Fatalf("raw/w2.txt still in the trash:\n%s", trash)
	}
	e.ok("umount", mnt)
}
