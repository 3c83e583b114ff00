package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lamina-bio/lamina/catalog/postgres/pgtest"
)

// A close through a mount whose database connection's backend was
// terminated (pg_terminate_backend, a server restart) failed (EIO) and its
// bytes were committed by the stage's retry 30 s later: the transaction,
// cut before its COMMIT, was not retried. It is now, at once, on another
// connection.
func TestPostgresMountBackendTerminated(t *testing.T) {
	db := pgtest.URL(t)
	schema := db[strings.Index(db, "search_path=")+len("search_path="):]
	app := "lamina_test_" + schema // this test's connections (the listener names its own)
	db = pgtest.WithParam(db, "application_name", app)
	a := workstationEnv(t, "ana")
	a.ok("init", "--storage", filepath.Join(a.dir, "store"), "--name", "lab", "--db", db)
	mnt := filepath.Join(a.dir, "mnt")
	a.mount(mnt)
	for i, name := range []string{"a.txt", "b.txt", "c.txt"} {
		if i > 0 {
			// The daemon's pooled connections end while idle.
			pgtest.Exec(t, pgtest.Base(t), `SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity WHERE application_name = '`+app+`'`)
		}
		if err := os.WriteFile(filepath.Join(mnt, name), []byte(name), 0o644); err != nil {
			t.Fatalf("write of %s through the mount: %v", name, err)
		}
	}
	if out := a.ok("ls"); !strings.Contains(out, "b.txt") || !strings.Contains(out, "c.txt") {
		t.Fatalf("ls:\n%s", out)
	}
}
