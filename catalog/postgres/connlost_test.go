package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/catalog/catalogtest"
	"github.com/lamina-bio/lamina/catalog/postgres"
	"github.com/lamina-bio/lamina/catalog/postgres/pgtest"
)

// A write whose connection died before its COMMIT was sent (its backend
// terminated: pg_terminate_backend, 57P01 admin_shutdown; a server
// restart) failed: a close through a mount kept its bytes staged and
// committed them only at the stage's retry, 30 s later. Nothing of it had
// committed, so it is run again at once on another connection. One whose
// COMMIT was sent is not: whether it committed is unknown, and a second
// run could save a version twice.
func TestWriteRetriedOnLostConnection(t *testing.T) {
	ctx := context.Background()
	u := pgtest.URL(t)
	const app = "lamina_connlost_test"
	s := open0(t, pgtest.WithParam(u, "application_name", app), postgres.Options{})
	conn := func() *pgx.Conn {
		c, err := pgx.Connect(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(context.Background()) })
		return c
	}
	admin := conn()
	if err := s.SetSetting(ctx, "x", json.RawMessage(`0`)); err != nil {
		t.Fatal(err)
	}
	value := func() string {
		t.Helper()
		var v string
		if err := admin.QueryRow(ctx, `SELECT value::text FROM settings WHERE name = 'x'`).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	// kill ends the backend of the store's connection that waits on event,
	// once it does (pg_stat_activity.wait_event).
	kill := func(t *testing.T, event string) {
		t.Helper()
		for range 500 {
			var ok bool
			err := admin.QueryRow(ctx, `SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity WHERE application_name = $1 AND wait_event = $2`, app, event).Scan(&ok)
			if err == nil && ok {
				return
			}
			if err != nil && !errors.Is(err, pgx.ErrNoRows) {
				t.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("no connection of the store waits on %s", event)
	}

	t.Run("idle", func(t *testing.T) {
		// Every pooled connection's backend ends while idle in the pool.
		if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity WHERE application_name = $1`, app); err != nil {
			t.Fatal(err)
		}
		if err := s.SetSetting(ctx, "x", json.RawMessage(`1`)); err != nil {
			t.Fatalf("write after its connection's backend ended: %v", err)
		}
		if v := value(); v != "1" {
			t.Fatalf("x = %s, want 1", v)
		}
	})
	t.Run("waiting", func(t *testing.T) {
		// The write waits for a row another transaction holds; its backend
		// ends meanwhile.
		holder, err := conn().Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := holder.Exec(ctx, `UPDATE settings SET value = '9' WHERE name = 'x'`); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- s.SetSetting(ctx, "x", json.RawMessage(`2`)) }()
		kill(t, "transactionid")
		holder.Rollback(ctx)
		if err := <-done; err != nil {
			t.Fatalf("write whose backend ended while it waited: %v", err)
		}
		if v := value(); v != "2" {
			t.Fatalf("x = %s, want 2", v)
		}
	})
	t.Run("commit", func(t *testing.T) {
		// The backend ends while its COMMIT runs a deferred trigger: the
		// write fails, and is not run again (the trigger counts its runs).
		pgtest.Exec(t, u, `CREATE SEQUENCE commit_runs;
			CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN PERFORM nextval('commit_runs'); PERFORM pg_sleep(60); RETURN NULL; END$$;
			CREATE CONSTRAINT TRIGGER slow_commit AFTER UPDATE ON settings DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit()`)
		done := make(chan error, 1)
		go func() { done <- s.SetSetting(ctx, "x", json.RawMessage(`3`)) }()
		kill(t, "PgSleep")
		if err := <-done; err == nil {
			t.Fatal("a write whose backend ended in its COMMIT succeeded")
		}
		var runs int
		if err := admin.QueryRow(ctx, `SELECT last_value FROM commit_runs`).Scan(&runs); err != nil || runs != 1 {
			t.Fatalf("the COMMIT ran %d times (%v), want once", runs, err)
		}
		if v := value(); v != "2" {
			t.Fatalf("x = %s, want 2", v)
		}
	})
}

// terminate ends the backend of the connection named app that waits on
// event (pg_stat_activity.wait_event), once one does.
func terminate(t *testing.T, admin *pgx.Conn, app, event string) {
	t.Helper()
	ctx := context.Background()
	for range 500 {
		var ok bool
		err := admin.QueryRow(ctx, `SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity WHERE application_name = $1 AND wait_event = $2`, app, event).Scan(&ok)
		if err == nil && ok {
			return
		}
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no connection of %s waits on %s", app, event)
}

// waiting waits until n connections named app wait on event.
func waiting(t *testing.T, admin *pgx.Conn, app, event string, n int) {
	t.Helper()
	for range 500 {
		var got int
		if err := admin.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND wait_event = $2`, app, event).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got >= n {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("fewer than %d connections of %s wait on %s", n, app, event)
}

// A read whose connection died under it (its backend terminated:
// pg_terminate_backend, 57P01 admin_shutdown; a server restart) failed: a
// mount's lookup or listing answered EIO and a command failed, where the
// same read on another connection would have answered. A read changes
// nothing, so it runs once more, on a connection that answers a ping: a
// restart ends every pooled connection, and the pool pings only those
// idle for over a second.
func TestReadRetriedOnLostConnection(t *testing.T) {
	ctx := context.Background()
	u := pgtest.URL(t)
	const app = "lamina_readlost_test"
	s := open0(t, pgtest.WithParam(u, "application_name", app), postgres.Options{})
	if _, err := s.Save(ctx, []catalog.NewVersion{catalogtest.NV("d/a.txt", "a")}); err != nil {
		t.Fatal(err)
	}
	admin, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close(context.Background()) })
	reads := []struct {
		name string
		read func() (string, error)
	}{
		{"ByKey", func() (string, error) { // a lookup: one statement
			v, err := s.ByKey(ctx, "d/a.txt", 0)
			return v.Key, err
		}},
		{"Children", func() (string, error) { // a listing: one statement
			d, err := s.Children(ctx, "d")
			if len(d.Files) != 1 {
				return fmt.Sprint(d.Files), err
			}
			return d.Files[0].Key, err
		}},
		{"Versions", func() (string, error) { // a read transaction
			vs, err := s.Versions(ctx, "d/a.txt", false)
			if len(vs) != 1 {
				return fmt.Sprint(vs), err
			}
			return vs[0].Key, err
		}},
	}
	// locked holds a lock on artifacts that every read waits for, until
	// the returned func lets it go.
	locked := func(t *testing.T) func() {
		c, err := pgx.Connect(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		tx, err := c.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, `LOCK TABLE artifacts IN ACCESS EXCLUSIVE MODE`); err != nil {
			t.Fatal(err)
		}
		var once sync.Once
		unlock := func() { once.Do(func() { tx.Rollback(ctx); c.Close(ctx) }) }
		t.Cleanup(unlock)
		return unlock
	}
	for _, r := range reads {
		t.Run(r.name+"/waiting", func(t *testing.T) {
			// The read's backend ends while it waits for the lock.
			unlock := locked(t)
			done := make(chan error, 1)
			go func() {
				got, err := r.read()
				if err == nil && got != "d/a.txt" {
					err = fmt.Errorf("read %s", got)
				}
				done <- err
			}()
			terminate(t, admin, app, "relation")
			unlock()
			if err := <-done; err != nil {
				t.Fatalf("a read whose backend ended: %v", err)
			}
		})
		t.Run(r.name+"/restart", func(t *testing.T) {
			// Every pooled connection's backend ends, as in a restart:
			// four connections made (four reads at once), let go, ended.
			unlock := locked(t)
			done := make(chan error, 4)
			for range 4 {
				go func() { _, err := r.read(); done <- err }()
			}
			waiting(t, admin, app, "relation", 4)
			unlock()
			for range 4 {
				if err := <-done; err != nil {
					t.Fatal(err)
				}
			}
			if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity WHERE application_name = $1`, app); err != nil {
				t.Fatal(err)
			}
			if got, err := r.read(); err != nil || got != "d/a.txt" {
				t.Fatalf("a read after every backend ended: %s %v", got, err)
			}
		})
	}
	t.Run("not retried", func(t *testing.T) {
		// A read cancelled by its caller is not run again on another
		// connection: it fails.
		unlock := locked(t)
		defer unlock()
		cctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { _, err := s.ByKey(cctx, "d/a.txt", 0); done <- err }()
		waiting(t, admin, app, "relation", 1)
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("a cancelled read: %v", err)
		}
	})
}

// A write whose connection was lost after its COMMIT was sent failed,
// although it committed: a close through a mount answered EIO and a save
// failed while its version was in the catalog (its next try made another).
// Its transaction's id, read in its first round trip, is now looked up on
// another connection: committed is success, and it is not run again.
// (Aborted is the error: TestWriteRetriedOnLostConnection/commit.) The
// COMMIT waits for a synchronous standby that never comes
// (pgtest.StallCommits): the transaction has committed when its backend is
// terminated, and the client hears nothing more.
func TestCommitLostButLanded(t *testing.T) {
	ctx := context.Background()
	u := pgtest.URL(t)
	const app = "lamina_commitlost_test"
	s := open0(t, pgtest.WithParam(pgtest.WithParam(u, "application_name", app), "synchronous_commit", "on"), postgres.Options{})
	admin, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close(context.Background()) })
	pgtest.StallCommits(t)

	t.Run("save", func(t *testing.T) {
		type result struct {
			saved []catalog.Saved
			err   error
		}
		done := make(chan result, 1)
		go func() {
			saved, err := s.Save(ctx, []catalog.NewVersion{catalogtest.NV("a.txt", "a")})
			done <- result{saved, err}
		}()
		terminate(t, admin, app, "SyncRep")
		r := <-done
		if r.err != nil {
			t.Fatalf("a save whose COMMIT landed, its answer lost: %v", r.err)
		}
		vs, err := s.Versions(ctx, "a.txt", false)
		if err != nil || len(vs) != 1 || vs[0].UID != r.saved[0].Version.UID {
			t.Fatalf("a.txt's versions: %v %v; want the one saved, %s", vs, err, r.saved[0].Version.UID)
		}
	})
	t.Run("setting", func(t *testing.T) {
		done := make(chan error, 1)
		go func() { done <- s.SetSetting(ctx, "x", json.RawMessage(`7`)) }()
		terminate(t, admin, app, "SyncRep")
		if err := <-done; err != nil {
			t.Fatalf("a write whose COMMIT landed, its answer lost: %v", err)
		}
		if v, err := s.Setting(ctx, "x"); err != nil || string(v) != "7" {
			t.Fatalf("x = %s (%v), want 7", v, err)
		}
	})
}
