package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/catalog/postgres/pgtest"
)

// twoMounts is two workstations (two daemons, caches and XDG folders) of
// one instance on one PostgreSQL catalog and one storage folder, mounted.
func twoMounts(t *testing.T) (ma, mb string) {
	t.Helper()
	db := pgtest.URL(t)
	storage := filepath.Join(t.TempDir(), "storage")
	a, b := workstationEnv(t, "ana"), workstationEnv(t, "ben")
	a.ok("init", "--storage", storage, "--db", db, "--name", "lab")
	b.ok("connect", "lab", "--db", db)
	ma, mb = filepath.Join(a.dir, "mnt"), filepath.Join(b.dir, "mnt")
	a.mount(ma)
	b.mount(mb)
	return ma, mb
}

// statString reads the mode and mtime of p.
func statString(p string) func() (string, error) {
	return func() (string, error) {
		st, err := os.Stat(p)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%v %s", st.Mode(), st.ModTime().UTC().Format(time.RFC3339)), nil
	}
}

// A chmod and touch of a folder on one workstation reach the other's
// mount, which had listed and statted the folder (the audit's repro: the
// other mount kept 755 and the old time for good).
func TestTeamFolderAttrs(t *testing.T) {
	ma, mb := twoMounts(t)
	if err := os.MkdirAll(filepath.Join(ma, "cm/e"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ma, "cm/e/f"), []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the folder on B", 30*time.Second, readString(filepath.Join(mb, "cm/e/f")), "x\n")
	os.ReadDir(filepath.Join(mb, "cm/e"))
	if _, err := os.Stat(filepath.Join(mb, "cm/e")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(ma, "cm/e"), 0o700); err != nil {
		t.Fatal(err)
	}
	mt := time.Date(2021, 5, 5, 0, 0, 0, 0, time.UTC)
	if err := os.Chtimes(filepath.Join(ma, "cm/e"), mt, mt); err != nil {
		t.Fatal(err)
	}
	want, err := statString(filepath.Join(ma, "cm/e"))()
	if err != nil || want != "drwx------ 2021-05-05T00:00:00Z" {
		t.Fatalf("on A: %q %v", want, err)
	}
	waitFor(t, "the folder's chmod and touch on B", 30*time.Second, statString(filepath.Join(mb, "cm/e")), want)
}

// A file held open on one workstation while the other renames or deletes
// it: the close follows, as it does after a rename or unlink on its own
// mount. Before, the close brought the old key back: a second artifact
// beside the renamed one (which missed the edit), or the trashed key as a
// new version.
func TestTeamOpenFileFollowsRenameAndDelete(t *testing.T) {
	ma, mb := twoMounts(t)
	if err := os.MkdirAll(filepath.Join(ma, "proj"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"proj/r1.txt", "proj/h5.txt"} {
		if err := os.WriteFile(filepath.Join(ma, k), []byte("orig\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		waitFor(t, k+" on B", 30*time.Second, readString(filepath.Join(mb, k)), "orig\n")
	}
	// heard waits until B has heard A's changes so far: notifications
	// come in order, so a file A writes last is seen after them.
	n := 0
	heard := func(t *testing.T) {
		n++
		k := fmt.Sprintf("proj/sentinel%d", n)
		if err := os.WriteFile(filepath.Join(ma, k), []byte("s\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "A's changes on B", 30*time.Second, readString(filepath.Join(mb, k)), "s\n")
	}
	t.Run("rename", func(t *testing.T) {
		f, err := os.OpenFile(filepath.Join(mb, "proj/r1.txt"), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString("edit from ben\n"); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(ma, "proj/r1.txt"), filepath.Join(ma, "proj/r1-renamed.txt")); err != nil {
			t.Fatal(err)
		}
		heard(t)
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "B's edit in the renamed file, on A", 30*time.Second,
			readString(filepath.Join(ma, "proj/r1-renamed.txt")), "orig\nedit from ben\n")
		if _, err := os.Stat(filepath.Join(ma, "proj/r1.txt")); !os.IsNotExist(err) {
			t.Errorf("the old name after B's close: %v (want it gone)", err)
		}
	})
	t.Run("delete", func(t *testing.T) {
		f, err := os.OpenFile(filepath.Join(mb, "proj/h5.txt"), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString("edit from ben\n"); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(filepath.Join(ma, "proj/h5.txt")); err != nil {
			t.Fatal(err)
		}
		heard(t)
		f.Close()
		time.Sleep(time.Second) // B's commit, had it made one, and its notification
		for _, m := range []string{ma, mb} {
			if _, err := os.Stat(filepath.Join(m, "proj/h5.txt")); !os.IsNotExist(err) {
				t.Errorf("%s: the deleted key after B's close: %v (want it gone)", m, err)
			}
		}
	})
}
