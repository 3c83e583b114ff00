package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/lamina-bio/lamina/catalog/postgres"
	"github.com/lamina-bio/lamina/catalog/postgres/pgtest"
)

// A newer lamina on another workstation migrates the shared database
// while this workstation's daemon runs (UPDATE schema_version plays it):
// the daemon's next write is refused, not written the old way; from then
// on the mount is read-only (EROFS), reads go on, and the log and status
// say what to do. Before, only Open checked the schema: closes returned 0
// and rows landed for as long as the old daemon ran (audit c7).
func TestSchemaUpgradedWhileMounted(t *testing.T) {
	db := pgtest.URL(t)
	e := workstationEnv(t, "ana")
	e.ok("init", "--storage", filepath.Join(e.dir, "storage"), "--db", db, "--name", "lab")
	mnt := filepath.Join(e.dir, "mnt")
	e.mount(mnt)
	if err := os.WriteFile(filepath.Join(mnt, "before.txt"), []byte("before\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	newer := postgres.SchemaVersion + 1
	pgtest.Exec(t, db, `UPDATE schema_version SET version = $1`, newer)

	werr := os.WriteFile(filepath.Join(mnt, "after.txt"), []byte("after the upgrade\n"), 0o644)
	if !errors.Is(werr, syscall.EROFS) {
		t.Fatalf("a write after the upgrade: %v, want EROFS", werr)
	}
	if err := os.WriteFile(filepath.Join(mnt, "later.txt"), []byte("x"), 0o644); !errors.Is(err, syscall.EROFS) {
		t.Fatalf("a later write: %v, want EROFS", err)
	}
	if b, err := os.ReadFile(filepath.Join(mnt, "before.txt")); err != nil || string(b) != "before\n" {
		t.Fatalf("a read after the upgrade: %q, %v", b, err)
	}
	// Nothing of the refused writes reached the database.
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM artifacts WHERE key <> 'before.txt'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d artifacts besides before.txt, %v", n, err)
	}
	want := fmt.Sprintf("upgraded to schema %d by a newer lamina; upgrade lamina on this workstation", newer)
	var st []mountStatus
	if err := json.Unmarshal([]byte(e.ok("status", "--format", "json")), &st); err != nil || len(st) != 1 || !strings.Contains(st[0].CatalogNewer, want) {
		t.Fatalf("status: %v %+v", err, st)
	}
	if s := e.ok("status"); !strings.Contains(s, "read-only: ") || !strings.Contains(s, want) {
		t.Errorf("status does not say the mount is read-only and why:\n%s", s)
	}
	waitFor(t, "the log", 30*time.Second, func() (string, error) {
		b, err := os.ReadFile(st[0].Log)
		return fmt.Sprint(strings.Contains(string(b), want) && strings.Contains(string(b), "read-only from now on")), err
	}, "true")
}

// A plain read by a newer lamina migrates the shared database (it reads
// the new schema's tables): it says so on stderr, once, with what that
// does to the team's older mounts, and stdout stays the JSON scripts read.
// Before, `lamina ls` migrated 8→9 without a word and every older mount
// turned read-only (audit d4).
func TestPlainReadSaysSchemaMigrated(t *testing.T) {
	db := pgtest.URL(t)
	e := workstationEnv(t, "ana")
	e.ok("init", "--storage", filepath.Join(e.dir, "storage"), "--db", db, "--name", "lab")
	pgtest.Exec(t, db, `DROP TABLE collections_deleted`) // what a lamina of schema 8 left
	pgtest.Exec(t, db, `UPDATE schema_version SET version = 8`)
	out, stderr, err := e.run("ls", "--format", "json")
	if err != nil {
		t.Fatalf("ls: %v\n%s", err, stderr)
	}
	var ls []any
	if err := json.Unmarshal([]byte(out), &ls); err != nil {
		t.Fatalf("stdout is not the listing alone: %v\n%s", err, out)
	}
	want := fmt.Sprintf("from schema 8 to %d", postgres.SchemaVersion)
	if !strings.Contains(stderr, want) || !strings.Contains(stderr, "older lamina on other workstations are read-only") {
		t.Fatalf("ls that migrated did not say it on stderr:\n%s", stderr)
	}
	if _, stderr, err := e.run("ls", "--format", "json"); err != nil || strings.Contains(stderr, "schema") {
		t.Fatalf("the next ls: %v; says %q", err, stderr)
	}
}
