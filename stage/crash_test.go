package stage_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/stage"
)

// commitBody makes body the next version of key and returns it.
func commitBody(t *testing.T, s *stage.Stage, key, body string) catalog.Version {
	t.Helper()
	ctx := context.Background()
	f, err := s.Create(ctx, key, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt(ctx, []byte(body), 0)
	if err := f.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := f.Release(ctx); err != nil {
		t.Fatal(err)
	}
	v, ok := f.Committed()
	if !ok {
		t.Fatalf("%s: no commit", key)
	}
	return v
}

// readKey is the content of version n (0: the latest) of key in cat.
func readKey(t *testing.T, e *env, cat catalog.Catalog, key string, n int) (catalog.Version, string) {
	t.Helper()
	ctx := context.Background()
	v, err := cat.ByKey(ctx, key, n)
	if err != nil {
		t.Fatalf("%s v%d: %v", key, n, err)
	}
	m, err := e.store.LoadManifest(ctx, cache.Ref(v.Manifest))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(e.store.Open(m.Files[0]))
	return v, string(b)
}

// checkAfterCrash checks, after Recover, that key's latest version is
// version want holding body, and that lost+found/ holds key's bytes rest
// with a message naming the version they were staged over.
func checkAfterCrash(t *testing.T, e *env, cat catalog.Catalog, rec []stage.Recovered, key string, want int, body, rest string) {
	t.Helper()
	ctx := context.Background()
	if v, got := readKey(t, e, cat, key, 0); v.Version != want || got != body {
		t.Errorf("latest of %s after the crash: v%d %q; want v%d %q", key, v.Version, got, want, body)
	}
	if len(rec) != 1 || !strings.HasPrefix(rec[0].SavedAs, stage.LostAndFound+"/") {
		t.Fatalf("Recover = %+v; want the bytes after the last commit under lost+found/", rec)
	}
	v, got := readKey(t, e, cat, rec[0].SavedAs, 0)
	if got != rest {
		t.Errorf("lost+found holds %q, want %q", got, rest)
	}
	if !strings.Contains(v.Description, "not closed") || !strings.Contains(v.Description, "version 2") {
		t.Errorf("lost+found message %q says neither that its writer had not closed it nor its version", v.Description)
	}
	if vs, _ := cat.List(ctx, catalog.Query{Prefix: stage.LostAndFound + "/"}); len(vs) != 1 {
		t.Errorf("lost+found holds %d entries, want 1", len(vs))
	}
}

// TestRecoverWritesAfterSharedCommit (audit: wrong result after a crash):
// a File committed at a sharer's close, or at an fsync, and written after
// that was still "closed" in the journal, and Recover after a kill made
// the whole staging file, bytes never closed nor fsynced included, the
// key's next version ("its writer had closed it"). The latest stays the
// last commit; what came after goes under lost+found/.
func TestRecoverWritesAfterSharedCommit(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s := e.stage(t)
	commitBody(t, s, "h.txt", "header\n")
	a, err := s.OpenShared(ctx, "h.txt", 0o644) // O_RDWR
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.OpenShared(ctx, "h.txt", 0o644) // O_WRONLY|O_APPEND joins it
	if err != nil || b != a {
		t.Fatalf("the appender did not join: %v", err)
	}
	b.Append(ctx, []byte("rec1\n"))
	if err := a.Flush(ctx); err != nil { // A's close
		t.Fatal(err)
	}
	a.HandleClosed()
	if v, got := readKey(t, e, e.cat, "h.txt", 0); v.Version != 2 || got != "header\nrec1\n" {
		t.Fatalf("after A's close: v%d %q", v.Version, got)
	}
	b.Append(ctx, []byte("rec2-half")) // never closed or fsynced; kill -9
	rec, err := e.stage(t).Recover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checkAfterCrash(t, e, e.cat, rec, "h.txt", 2, "header\nrec1\n", "header\nrec1\nrec2-half")
	if n := staged(t, e.dir); n != 0 {
		t.Fatalf("staging left %d files", n)
	}
}

// TestRecoverWritesAfterFsync: the same with one handle, written,
// fsynced, and written again.
func TestRecoverWritesAfterFsync(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s := e.stage(t)
	v1 := commitBody(t, s, "h.txt", "header\n")
	f, err := s.Open(ctx, "h.txt", v1, false)
	if err != nil {
		t.Fatal(err)
	}
	f.Append(ctx, []byte("rec1\n"))
	if err := f.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	f.Append(ctx, []byte("rec2-half"))
	rec, err := e.stage(t).Recover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checkAfterCrash(t, e, e.cat, rec, "h.txt", 2, "header\nrec1\n", "header\nrec1\nrec2-half")
}

// TestRecoverWritesAfterLazyCommit: with SyncEvery, the commit at A's
// close may still wait in the catalog's open transaction (catalog.Lazy)
// when B writes on; the journal's closed record is what redoes it after a
// kill. The File's next change makes that commit durable before the
// record says open, or the kill lost version 2 altogether.
func TestRecoverWritesAfterLazyCommit(t *testing.T) {
	ctx := context.Background()
	e := newEnvWith(t, catalog.BoltOptions{Hold: true, LazyCommitAfter: time.Hour})
	s, write := deferredStage(t, e)
	write("h.txt", "header\n")
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	a, err := s.OpenShared(ctx, "h.txt", 0o644)
	if err != nil {
		t.Fatal(err)
	}
	a.Append(ctx, []byte("rec1\n"))
	if err := a.Flush(ctx); err != nil { // lazily: v2 waits in the transaction
		t.Fatal(err)
	}
	a.Append(ctx, []byte("rec2-half"))

	cat, dir := crashImage(t, e)
	s2, err := stage.New(cat, e.store, stage.Options{Dir: dir, User: "t", SyncEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := s2.Recover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checkAfterCrash(t, e, cat, rec, "h.txt", 2, "header\nrec1\n", "header\nrec1\nrec2-half")
}

// crashImage is what a SIGKILL of the daemon leaves: the catalog file as
// committed and the staging folder as written, copied; it returns the
// copied catalog, open, and the copied staging folder.
func crashImage(t *testing.T, e *env) (*catalog.Bolt, string) {
	t.Helper()
	tmp := t.TempDir()
	raw, err := os.ReadFile(e.cat.Path())
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(tmp, "c.db"), raw, 0o600)
	os.CopyFS(filepath.Join(tmp, "staging"), os.DirFS(e.dir))
	cat, err := catalog.OpenBolt(filepath.Join(tmp, "c.db"), catalog.BoltOptions{Hold: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	return cat, filepath.Join(tmp, "staging")
}

// TestRecoverKeepsNothingUnchanged (audit: noise after a crash): every
// File open for writing and never written became an empty lost+found/
// entry, "recovered bytes of …", which looked like lost data; a shared
// File committed at a close and not written since logged a warning that
// it was "committed at restart" (no version); and a committed File that
// followed a newer version, emptied, was committed empty as the key's next
// version. A File holding no change of its own leaves nothing and says
// nothing alarming; one created, or truncated, and never written leaves
// nothing either: no bytes were lost (the key keeps its latest version,
// or never existed).
func TestRecoverKeepsNothingUnchanged(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s := e.stage(t)
	v := map[string]catalog.Version{}
	for _, k := range []string{"k/idle.txt", "k/app.log", "k/trunc.txt", "k/shared.txt", "k/follow.txt", "k/copied.txt"} {
		v[k] = commitBody(t, s, k, "v1 of "+k)
	}
	open := func(f *stage.File, err error) *stage.File {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	open(s.Open(ctx, "k/idle.txt", v["k/idle.txt"], false))  // idle O_RDWR
	open(s.OpenShared(ctx, "k/app.log", 0o644))              // idle O_APPEND
	open(s.Open(ctx, "k/trunc.txt", v["k/trunc.txt"], true)) // O_TRUNC, never written
	open(s.Create(ctx, "k/new.txt", 0o644))                  // O_CREAT, never written
	c := open(s.Open(ctx, "k/copied.txt", v["k/copied.txt"], false))
	if err := c.Allocate(ctx, 0, 4096, true); err != nil { // copied, not changed
		t.Fatal(err)
	}
	sh := open(s.OpenShared(ctx, "k/shared.txt", 0o644)) // committed at a close, no write since
	sh.Append(ctx, []byte(" and more"))
	if err := sh.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	fo := open(s.OpenShared(ctx, "k/follow.txt", 0o644)) // committed, then follows a newer version
	fo.Append(ctx, []byte(" and mine"))
	if err := fo.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	w := open(s.Open(ctx, "k/follow.txt", v["k/follow.txt"], true))
	w.WriteAt(ctx, []byte("newer"), 0)
	w.Flush(ctx)
	w.Release(ctx)
	if size, _, _ := fo.Attr(); size != 5 {
		t.Fatalf("the clean File did not follow the newer version: size %d", size)
	}

	var logged bytes.Buffer
	s2, err := stage.New(e.cat, e.store, stage.Options{Dir: e.dir, User: "t",
		Logger: slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := s2.Recover(ctx)
	if err != nil || len(rec) != 0 {
		t.Errorf("Recover = %+v, %v; want nothing done", rec, err)
	}
	if logged.Len() > 0 {
		t.Errorf("Recover warned:\n%s", logged.String())
	}
	if vs, _ := e.cat.List(ctx, catalog.Query{Prefix: stage.LostAndFound + "/"}); len(vs) != 0 {
		for _, l := range vs {
			t.Errorf("lost+found: %s (%d bytes): %s", l.Key, l.Size, l.Description)
		}
	}
	for k, want := range map[string]struct {
		version int
		body    string
	}{
		"k/idle.txt": {1, "v1 of k/idle.txt"}, "k/app.log": {1, "v1 of k/app.log"},
		"k/trunc.txt": {1, "v1 of k/trunc.txt"}, "k/copied.txt": {1, "v1 of k/copied.txt"},
		"k/shared.txt": {2, "v1 of k/shared.txt and more"}, "k/follow.txt": {3, "newer"},
	} {
		if lv, got := readKey(t, e, e.cat, k, 0); lv.Version != want.version || got != want.body {
			t.Errorf("%s after the crash: v%d %q, want v%d %q", k, lv.Version, got, want.version, want.body)
		}
	}
	if _, err := e.cat.ByKey(ctx, "k/new.txt", 0); err == nil {
		t.Error("a file created and never written or closed was committed at restart")
	}
	if n := staged(t, e.dir); n != 0 {
		t.Fatalf("staging left %d files", n)
	}
}

// TestRecoverAdoptedWritesAfterCommit: an adopted File (a scratch file
// renamed onto its key while open) is written through its writers' own
// descriptors, which the Stage does not see before they wrote: after a
// commit, its journal says open at once.
func TestRecoverAdoptedWritesAfterCommit(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s := e.stage(t)
	commitBody(t, s, "out", "header\n")
	p := filepath.Join(filepath.Dir(e.dir), "out~")
	w, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.Write([]byte("header\nrec1\n"))
	f, err := s.Adopt(ctx, "out", p, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Flush(ctx); err != nil { // v2
		t.Fatal(err)
	}
	w.Write([]byte("rec2-half"))
	rec, err := e.stage(t).Recover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checkAfterCrash(t, e, e.cat, rec, "out", 2, "header\nrec1\n", "header\nrec1\nrec2-half")
}

// Staged, which `lamina status` reads with the daemon dead, leaves out the
// Files open at the stop that Recover keeps nothing of (never written: an
// idle O_RDWR, O_TRUNC or O_CREAT and no write); it said they would be
// kept under lost+found/.
func TestStagedLeavesOutUnwrittenOpenFiles(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s := e.stage(t)
	idle := commitBody(t, s, "idle.txt", "v1 of idle")
	tr := commitBody(t, s, "tr.txt", "v1 of tr")
	wr := commitBody(t, s, "wr.txt", "v1 of wr")
	for _, o := range []func() (*stage.File, error){
		func() (*stage.File, error) { return s.Open(ctx, "idle.txt", idle, false) },
		func() (*stage.File, error) { return s.Open(ctx, "tr.txt", tr, true) },
		func() (*stage.File, error) { return s.Create(ctx, "brandnew.txt", 0o644) },
	} {
		if _, err := o(); err != nil {
			t.Fatal(err)
		}
	}
	f, err := s.Open(ctx, "wr.txt", wr, false)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt(ctx, []byte("mine"), 0)
	staged, err := stage.Staged(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, sf := range staged {
		keys = append(keys, sf.Key)
	}
	if len(keys) != 1 || keys[0] != "wr.txt" {
		t.Fatalf("Staged lists %v, want wr.txt alone", keys)
	}
}
