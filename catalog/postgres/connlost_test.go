package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
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
