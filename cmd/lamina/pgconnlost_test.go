package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
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

// pgKiller ends the backends of the connections named app that wait on
// event, as they come, until stopped: a daemon's own background writes
// may wait too.
func pgKiller(t *testing.T, app, event string) (stop func() int) {
	t.Helper()
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, pgtest.Base(t))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	killed := make(chan int)
	go func() {
		n := 0
		defer func() { admin.Close(ctx); killed <- n }()
		for range 3000 { // a bound on a hang, not a timing
			var k int
			if err := admin.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid, 10000)) FROM pg_stat_activity WHERE application_name = $1 AND wait_event = $2`, app, event).Scan(&k); err != nil {
				return
			}
			n += k
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	var once sync.Once
	stop = func() int {
		n := 0
		once.Do(func() { close(done); n = <-killed })
		return n
	}
	t.Cleanup(func() { stop() })
	return stop
}

// A close through a mount, or a save, whose database connection was lost
// after its COMMIT was sent failed (EIO, an error) although its version
// had landed. Whether it committed is now looked up, on another
// connection: it did, so the close and the save succeed, with one version
// each. The COMMIT waits for a synchronous standby that never comes
// (pgtest.StallCommits) and its backend is terminated meanwhile: it has
// committed, and the client hears nothing more.
func TestPostgresCommitLostButLanded(t *testing.T) {
	db := pgtest.URL(t)
	schema := db[strings.Index(db, "search_path=")+len("search_path="):]
	app := "lamina_test_" + schema // this test's connections (the listener names its own)
	db = pgtest.WithParam(pgtest.WithParam(db, "application_name", app), "synchronous_commit", "on")
	a := workstationEnv(t, "ana")
	a.ok("init", "--storage", filepath.Join(a.dir, "store"), "--name", "lab", "--db", db)
	mnt := filepath.Join(a.dir, "mnt")
	a.mount(mnt)
	if err := os.WriteFile(filepath.Join(mnt, "a.txt"), []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	src := a.file("s.txt", []byte("saved"))
	undo := pgtest.StallCommits(t)
	stop := pgKiller(t, app, "SyncRep")
	werr := os.WriteFile(filepath.Join(mnt, "b.txt"), []byte("b"), 0o644)
	_, serrs, serr := a.run("save", src, "--key", "s.txt")
	killed := stop()
	undo()
	if killed == 0 {
		t.Fatal("no COMMIT waited for the standby")
	}
	if werr != nil {
		t.Errorf("a close whose COMMIT landed, its answer lost: %v", werr)
	}
	if serr != nil {
		t.Errorf("a save whose COMMIT landed, its answer lost: %v\n%s", serr, serrs)
	}
	for _, key := range []string{"b.txt", "s.txt"} {
		if out := a.ok("ls", "--versions", key); strings.Count(out, key) != 1 {
			t.Errorf("versions of %s:\n%s", key, out)
		}
	}
}

// A lookup or a listing through a mount, and a command, whose database
// connection's backend was terminated while it read failed (EIO, an
// error). The read runs again on another connection. The reads wait for a
// lock on the artifacts table meanwhile.
func TestPostgresReadBackendTerminated(t *testing.T) {
	db := pgtest.URL(t)
	schema := db[strings.Index(db, "search_path=")+len("search_path="):]
	app := "lamina_test_" + schema
	db = pgtest.WithParam(db, "application_name", app)
	a := workstationEnv(t, "ana")
	a.ok("init", "--storage", filepath.Join(a.dir, "store"), "--name", "lab", "--db", db)
	a.ok("save", a.file("a.txt", []byte("a")), "--key", "d/a.txt")
	a.ok("save", a.file("f.txt", []byte("f")), "--key", "l/m/n/f.txt")
	a.ok("save", a.file("w.txt", []byte("w")), "--key", "x/y/z/w.txt")
	mnt := filepath.Join(a.dir, "mnt")
	a.mount(mnt)
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, pgtest.Base(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close(ctx) })
	// during runs read with the artifacts table locked, and terminates the
	// backends of this test's connections that wait for it.
	during := func(what string, read func() error) {
		t.Helper()
		c, err := pgx.Connect(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		tx, err := c.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		if _, err := tx.Exec(ctx, `LOCK TABLE artifacts IN ACCESS EXCLUSIVE MODE`); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- read() }()
		for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); { // until the read waits
			var n int
			if err := admin.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND wait_event = 'relation'`, app).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n > 0 {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		var killed int
		if err := admin.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid, 10000)) FROM pg_stat_activity WHERE application_name = $1 AND wait_event = 'relation'`, app).Scan(&killed); err != nil {
			t.Fatal(err)
		}
		tx.Rollback(ctx)
		if err := <-done; err != nil {
			t.Errorf("%s whose backend was terminated: %v", what, err)
		}
		if killed == 0 {
			t.Errorf("%s: no read waited", what)
		}
	}
	// Folders two levels down, whose listings the mount has not read
	// ahead (it reads those of the sub-folders of a listing it uses).
	during("a listing through the mount", func() error {
		names, err := os.ReadDir(filepath.Join(mnt, "l", "m", "n"))
		if err == nil && len(names) != 1 {
			err = fmt.Errorf("listed %v", names)
		}
		return err
	})
	during("a lookup through the mount", func() error {
		_, err := os.Stat(filepath.Join(mnt, "x", "y", "z", "w.txt"))
		return err
	})
	during("lamina ls", func() error {
		out, errs, err := a.run("ls", "d/")
		if err == nil && !strings.Contains(out, "a.txt") {
			err = fmt.Errorf("ls:\n%s", out)
		}
		if err != nil {
			return fmt.Errorf("%v\n%s", err, errs)
		}
		return nil
	})
}
