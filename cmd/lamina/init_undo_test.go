package main

import (
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/lamina-bio/lamina/catalog/postgres/pgtest"
)

// An init --db whose storage write fails (a full disk) undoes its
// registration in the database, as its message says ("the catalog was
// not changed"): it stayed, and the next init of the database was told
// to join an instance whose storage no one had claimed.
func TestInitDBUndoneWhenTheStorageFails(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("LAMINA_ALLOW_SKIP") == "" {
			t.Fatal("this test mounts a small tmpfs and needs root (set LAMINA_ALLOW_SKIP=1 to skip)")
		}
		t.Skip("needs root to mount a tmpfs")
	}
	e := newEnv(t)
	db := pgtest.URL(t)
	full := e.path("full")
	os.MkdirAll(full, 0o755)
	if err := syscall.Mount("tmpfs", full, "tmpfs", 0, "size=64k"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(full, syscall.MNT_DETACH) })
	os.WriteFile(full+"/filler", make([]byte, 1<<20), 0o644) // fills it (ENOSPC)
	err := e.fails("disk is full", "init", "--storage", full+"/store", "--name", "team", "--db", db)
	if msg := explain(err); !strings.Contains(msg, "catalog was not changed") {
		t.Fatalf("init: %s", msg)
	}
	e.fails("holds no lamina instance", "connect", "team", "--db", db)
	e.ok("init", "--storage", e.path("store"), "--name", "team", "--db", db)
}
