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
	waitFor(t, "the folder on B", 5*time.Second, readString(filepath.Join(mb, "cm/e/f")), "x\n")
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
	waitFor(t, "the folder's chmod and touch on B", 5*time.Second, statString(filepath.Join(mb, "cm/e")), want)
}
