package postgres_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/catalog/catalogtest"
	"github.com/lamina-bio/lamina/catalog/postgres"
	"github.com/lamina-bio/lamina/catalog/postgres/pgtest"
)

// logWatch passes on the messages of log records (dropping them when
// nobody reads).
type logWatch struct {
	hit chan string
}

func (w *logWatch) Enabled(context.Context, slog.Level) bool { return true }
func (w *logWatch) WithAttrs([]slog.Attr) slog.Handler       { return w }
func (w *logWatch) WithGroup(string) slog.Handler            { return w }
func (w *logWatch) Handle(_ context.Context, r slog.Record) error {
	select {
	case w.hit <- r.Message:
	default:
	}
	return nil
}

// listenerPID is the server process of the listener on channel, or 0.
func listenerPID(t *testing.T, u, channel string) int {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var pid int
	err = c.QueryRow(ctx, `SELECT pid FROM pg_stat_activity WHERE application_name = $1`, postgres.ListenerName(channel)).Scan(&pid)
	if err != nil && err != pgx.ErrNoRows {
		t.Fatal(err)
	}
	return pid
}

// hear waits until heard delivers key and fails after limit.
func hear(t *testing.T, heard <-chan []string, key string, limit time.Duration) {
	t.Helper()
	deadline := time.After(limit)
	for {
		select {
		case keys := <-heard:
			if slices.Contains(keys, key) {
				return
			}
		case <-deadline:
			t.Fatalf("%s not heard within %s", key, limit)
		}
	}
}

// listening is a store whose Listen runs, with what it hears and logs.
type listening struct {
	*postgres.Store
	heard chan []string
	log   *logWatch // "disconnected" and "change log" messages
	n     int       // saves made through save
}

// listen opens a store on u that listens (reconnecting after 3 s) until
// the test ends.
func listen(t *testing.T, u string) *listening {
	t.Helper()
	ctx := context.Background()
	l := &listening{heard: make(chan []string, 100), log: &logWatch{hit: make(chan string, 10)}}
	var err error
	l.Store, err = postgres.Open(ctx, u, postgres.Options{Logger: slog.New(l.log), ReconnectDelay: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	lctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { l.Listen(lctx, func(keys []string) { l.heard <- keys }); close(done) }()
	t.Cleanup(func() { cancel(); <-done; l.Close() })
	return l
}

// save stores a new version of key through c.
func (l *listening) save(t *testing.T, c catalog.Catalog, key string) {
	t.Helper()
	l.n++ // new content, so a new version
	if _, err := c.Save(context.Background(), []catalog.NewVersion{catalogtest.NV(key, fmt.Sprint(l.n))}); err != nil {
		t.Fatal(err)
	}
}

// up waits until the listener hears changes that other saves through.
func (l *listening) up(t *testing.T, other catalog.Catalog) {
	t.Helper()
	for i := 0; i < 30; i++ {
		l.save(t, other, "up")
		select {
		case <-l.heard:
			return
		case <-time.After(300 * time.Millisecond):
		}
	}
	t.Fatal("the listener never heard a change")
}

// cut terminates the listener's server process and waits until it
// notices.
func (l *listening) cut(t *testing.T) {
	t.Helper()
	pid := listenerPID(t, pgtest.Base(t), l.Channel())
	if pid == 0 {
		t.Fatal("no listener backend named", postgres.ListenerName(l.Channel()))
	}
	pgtest.Exec(t, pgtest.Base(t), `SELECT pg_terminate_backend($1)`, pid)
	l.waitLog(t, "disconnected")
}

func (l *listening) waitLog(t *testing.T, text string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case m := <-l.log.hit:
			if strings.Contains(m, text) {
				return
			}
		case <-deadline:
			t.Fatalf("no log message with %q", text)
		}
	}
}

// away fails unless the listener is still disconnected.
func (l *listening) away(t *testing.T) {
	t.Helper()
	if listenerPID(t, pgtest.Base(t), l.Channel()) != 0 {
		t.Fatal("the listener reconnected before the commits: nothing to catch up on")
	}
}

// A change committed while the listener's connection is down reaches the
// subscriber when it reconnects (from the change log); its own are not
// passed on.
func TestListenCatchesUp(t *testing.T) {
	u := pgtest.URL(t)
	a, b := open2(t, u), listen(t, u)
	b.up(t, a)
	b.cut(t)
	b.save(t, a, "during/x")
	b.save(t, b, "during/own")
	b.away(t)
	hear(t, b.heard, "during/x", 15*time.Second)
	b.save(t, a, "after/y") // and it listens again
	hear(t, b.heard, "after/y", 5*time.Second)
	for len(b.heard) > 0 {
		if keys := <-b.heard; slices.Contains(keys, "during/own") {
			t.Fatal("the listener passed on its own store's change")
		}
	}
}

// A role that may not read the change log still listens after a
// reconnect; it says what it cannot catch up on.
func TestListenWithoutChangeLog(t *testing.T) {
	u := pgtest.URL(t)
	a := open2(t, u)
	schema := schemaOf(t, u)
	role := "nolog_" + schema
	pgtest.Exec(t, u, `CREATE ROLE `+role+` NOLOGIN; GRANT USAGE ON SCHEMA `+schema+` TO `+role+
		`; GRANT SELECT ON ALL TABLES IN SCHEMA `+schema+` TO `+role+`; REVOKE SELECT ON changes FROM `+role)
	t.Cleanup(func() { pgtest.Exec(t, pgtest.Base(t), `DROP OWNED BY `+role+`; DROP ROLE `+role) })
	b := listen(t, pgtest.WithParam(u, "role", role))
	b.up(t, a)
	b.cut(t)
	b.save(t, a, "during/x")
	b.away(t)
	b.waitLog(t, "GRANT SELECT ON changes")
	b.save(t, a, "after/y")
	hear(t, b.heard, "after/y", 5*time.Second)
}

// Children answers as bbolt's does, also below non-ASCII folder names
// (the statement counts characters, not bytes) and with markers and links.
func TestChildrenLikeBolt(t *testing.T) {
	ctx := context.Background()
	b, err := catalog.OpenBolt(filepath.Join(t.TempDir(), "c.db"), catalog.BoltOptions{Hold: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	p := open(t)
	for _, c := range []catalog.Catalog{b, p} {
		for _, k := range []string{"données/a.txt", "données/sub/b.txt", "données/sub/c/d.txt", "données-x/e.txt", "top.txt", "é/ü/f.txt"} {
			if _, err := c.Save(ctx, []catalog.NewVersion{catalogtest.NV(k, k)}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := c.Save(ctx, []catalog.NewVersion{catalogtest.NV("données/gone/g.txt", "g")}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Trash(ctx, "données/gone/g.txt"); err != nil {
			t.Fatal(err)
		}
		if err := c.MakeFolder(ctx, "données/vide"); err != nil {
			t.Fatal(err)
		}
		if err := c.Symlink(ctx, "données/lien", "a.txt"); err != nil {
			t.Fatal(err)
		}
		if err := c.Symlink(ctx, "données/liens/l", "../a.txt"); err != nil {
			t.Fatal(err)
		}
	}
	keys := func(vs []catalog.Version) []string {
		var out []string
		for _, v := range vs {
			out = append(out, v.Key)
		}
		return out
	}
	for _, prefix := range []string{"", "données/", "données/sub", "é/", "données/gone/"} {
		want, err := b.Children(ctx, prefix)
		if err != nil {
			t.Fatal(err)
		}
		got, err := p.Children(ctx, prefix)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(keys(got.Files), keys(want.Files)) || !slices.Equal(got.Subdirs, want.Subdirs) || len(got.Links) != len(want.Links) {
			t.Errorf("Children(%q) = files %v dirs %v links %v; bbolt: files %v dirs %v links %v", prefix,
				keys(got.Files), got.Subdirs, got.Links, keys(want.Files), want.Subdirs, want.Links)
		}
		for i := range got.Links {
			if got.Links[i].Key != want.Links[i].Key || got.Links[i].Target != want.Links[i].Target {
				t.Errorf("Children(%q) link %+v, bbolt %+v", prefix, got.Links[i], want.Links[i])
			}
		}
	}
}

// A change committed after a store was opened but before its listener
// connected is passed on once it connects: a mount serves, and caches
// listings, from before its listener is up.
func TestListenCatchesUpFromOpen(t *testing.T) {
	ctx := context.Background()
	u := pgtest.URL(t)
	s, w := open2(t, u), open2(t, u)
	if _, err := w.Save(ctx, []catalog.NewVersion{catalogtest.NV("before-listen", "1")}); err != nil {
		t.Fatal(err)
	}
	heard := make(chan []string, 10)
	lctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { s.Listen(lctx, func(keys []string) { heard <- keys }); close(done) }()
	defer func() { cancel(); <-done }()
	hear(t, heard, "before-listen", 5*time.Second)
}

// A run started with a root process is heard by the other stores'
// listeners when it commits, whatever its start time says (a late commit,
// a clock that is off), and caught up on after a lost connection: mount
// daemons found the runs of other daemons by start time and missed one
// that committed more than 2 s after it. A job run (no root) is not told.
func TestListenHearsRunStarts(t *testing.T) {
	ctx := context.Background()
	u := pgtest.URL(t)
	a, b := open2(t, u), listen(t, u)
	b.up(t, a)
	tf, err := a.SaveTransform(ctx, catalog.Transform{Name: "bash", Kind: "program"})
	if err != nil {
		t.Fatal(err)
	}
	start := func(at time.Time) catalog.Run {
		r, err := a.StartRun(ctx, catalog.Run{Transform: tf.UID, Host: "h", RootPID: 1, RootStart: 1, StartedAt: at})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	late := start(time.Now().Add(-time.Hour))
	hear(t, b.heard, catalog.RunStartChange(late.UID), 5*time.Second)
	ahead := start(time.Now().Add(time.Hour))
	hear(t, b.heard, catalog.RunStartChange(ahead.UID), 5*time.Second)
	b.cut(t)
	during := start(time.Now().Add(-time.Hour))
	b.away(t)
	hear(t, b.heard, catalog.RunStartChange(during.UID), 15*time.Second)

	job, err := a.StartRun(ctx, catalog.Run{Transform: tf.UID, Parent: late.UID, Name: "job", Job: "pidfs 1"})
	if err != nil {
		t.Fatal(err)
	}
	b.save(t, a, "after-job")
	for {
		keys := <-b.heard
		if slices.Contains(keys, catalog.RunStartChange(job.UID)) {
			t.Fatal("a job run's start was told")
		}
		if slices.Contains(keys, "after-job") {
			break
		}
	}
}
