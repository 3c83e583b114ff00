// Package pgtest gives tests a fresh, empty PostgreSQL schema on the
// server LAMINA_PG_URL names (scripts/pgcluster.sh starts one; CI does).
package pgtest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
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
