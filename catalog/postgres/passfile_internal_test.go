package postgres

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/catalog/postgres/pgtest"
)

// A password rotated in the pgpass file holds for the store's next new
// connection, pooled or the listener's: a mount daemon need not be
// mounted again.
func TestPassfileReadPerConnection(t *testing.T) {
	ctx := context.Background()
	base := pgtest.Base(t)
	role := fmt.Sprintf("pw%d_%d", os.Getpid(), time.Now().UnixNano()%1e9)
	pgtest.Exec(t, base, `CREATE ROLE `+role+` LOGIN PASSWORD 'one'`)
	t.Cleanup(func() { pgtest.Exec(t, base, `DROP OWNED BY `+role+`; DROP ROLE `+role) })
	db := pgtest.URL(t) // dropped before the role
	schema, _ := url.Parse(db)
	pgtest.Exec(t, base, `GRANT ALL ON SCHEMA `+schema.Query().Get("search_path")+` TO `+role)
	pass := filepath.Join(t.TempDir(), "pgpass")
	write := func(pw string) {
		if err := os.WriteFile(pass, []byte("*:*:*:"+role+":"+pw+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("one")
	u, err := url.Parse(pgtest.WithParam(db, "passfile", pass))
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(role)
	t.Setenv("PGPASSWORD", "")
	s, err := Open(ctx, u.String(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pgtest.Exec(t, base, `ALTER ROLE `+role+` PASSWORD 'two'`)
	write("two")
	s.pool.Reset() // every connection from now on is new
	if _, err := s.Counts(ctx); err != nil {
		t.Fatalf("a new connection after the password changed in the pgpass file: %v", err)
	}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go s.Listen(lctx, func([]string) {})
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND application_name = $2`,
			role, ListenerName(s.channel)).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the listener did not connect after the password changed in the pgpass file")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
