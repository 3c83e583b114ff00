// Package pgtest gives tests a fresh, empty PostgreSQL schema on the
// server LAMINA_PG_URL names (scripts/pgcluster.sh starts one; CI does).
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Base returns LAMINA_PG_URL. Without it the test fails, or skips when
// LAMINA_ALLOW_SKIP=1.
func Base(t testing.TB) string {
	t.Helper()
	u := os.Getenv("LAMINA_PG_URL")
	if u == "" {
		msg := "LAMINA_PG_URL is not set: start a server with `eval \"$(scripts/pgcluster.sh start /tmp/pg)\"`"
		if os.Getenv("LAMINA_ALLOW_SKIP") == "1" {
			t.Skip(msg)
		}
		t.Fatal(msg)
	}
	return u
}

var seq atomic.Int64

// URL creates an empty schema, dropped when the test ends, and returns a
// URL whose connections use it (search_path).
func URL(t testing.TB) string {
	t.Helper()
	base := Base(t)
	name := fmt.Sprintf("t%d_%d_%d", os.Getpid(), time.Now().UnixNano()%1e9, seq.Add(1))
	Exec(t, base, `CREATE SCHEMA `+name)
	t.Cleanup(func() { Exec(t, base, `DROP SCHEMA `+name+` CASCADE`) })
	return WithParam(base, "search_path", name)
}

// WithParam returns u with one more query parameter.
func WithParam(u, k, v string) string {
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	return u + sep + url.QueryEscape(k) + "=" + url.QueryEscape(v)
}

// Exec runs SQL statements on the database at u.
func Exec(t testing.TB, u string, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("pgtest: %s: %v", sql, err)
	}
}

// StallCommits makes the COMMIT of a write on a connection that asks for
// synchronous_commit=on (WithParam(u, "synchronous_commit", "on")) wait
// for a synchronous standby that never comes: pg_stat_activity shows it
// waiting on SyncRep. Terminating its backend then (pg_terminate_backend)
// leaves the transaction committed and its client without an answer: the
// connection lost after the COMMIT was sent. Read-only transactions and
// the other connections (synchronous_commit local, or off as the test
// cluster's) do not wait. It changes the server's configuration (ALTER
// SYSTEM), so the tests that call it take turns, whatever their package
// (an advisory lock); undo, also called when the test ends, puts it back.
func StallCommits(t testing.TB) (undo func()) {
	t.Helper()
	base := Base(t)
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	exec := func(sql string) {
		t.Helper()
		if _, err := admin.Exec(ctx, sql); err != nil {
			t.Fatalf("pgtest: %s: %v", sql, err)
		}
	}
	exec(`SELECT pg_advisory_lock(7308332429212136557)`) // turns, held by this connection
	var once sync.Once
	undo = func() {
		once.Do(func() {
			defer admin.Close(ctx)
			exec(`ALTER SYSTEM RESET synchronous_standby_names`)
			exec(`ALTER SYSTEM RESET synchronous_commit`)
			exec(`SELECT pg_reload_conf()`)
		})
	}
	t.Cleanup(undo)
	exec(`ALTER SYSTEM SET synchronous_commit = local`)
	exec(`ALTER SYSTEM SET synchronous_standby_names = 'lamina_pgtest_no_such_standby'`)
	exec(`SELECT pg_reload_conf()`)
	// The server takes the change in a moment: a probe's commit waits
	// once it has (and is let go by pg_cancel_backend, with a warning).
	probe, err := pgx.Connect(ctx, WithParam(base, "synchronous_commit", "on"))
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	defer probe.Close(ctx)
	pid := probe.PgConn().PID()
	for range 100 {
		done := make(chan error, 1)
		go func() {
			_, err := probe.Exec(ctx, `SELECT pg_logical_emit_message(true, 'pgtest', 'probe')`) // an xid and WAL: a commit that waits
			done <- err
		}()
		if stalled(t, admin, pid, done) {
			return undo
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("pgtest: commits do not wait for the synchronous standby")
	return undo
}

// stalled waits until the probe pid's commit either ends (done: false) or
// waits on SyncRep, which it cancels (true).
func stalled(t testing.TB, admin *pgx.Conn, pid uint32, done <-chan error) bool {
	t.Helper()
	ctx := context.Background()
	for range 500 {
		var waits bool
		err := admin.QueryRow(ctx, `SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE pid = $1 AND wait_event = 'SyncRep'`, pid).Scan(&waits)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			t.Fatalf("pgtest: %v", err)
		}
		if waits {
			if err := <-done; err != nil {
				t.Fatalf("pgtest: probe commit: %v", err)
			}
			return true
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("pgtest: probe commit: %v", err)
			}
			return false
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatal("pgtest: the probe commit neither ended nor waited for the standby")
	return false
}
