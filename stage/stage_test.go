package stage_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/stage"
	"github.com/lamina-bio/lamina/storage"
)

type env struct {
	cat   *catalog.Bolt
	store *cache.Store
	dir   string
}

// waitFor polls cond until it holds or 30 s have passed, and reports
// whether it held: a retry or a Sync runs on a timer, later on a loaded
// machine (CI runs every package at once on 2 cores, with -race).
func waitFor(cond func() bool) bool {
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			return cond()
		}
	}
	return true
}

func newEnv(t testing.TB) *env { return newEnvWith(t, catalog.BoltOptions{Hold: true}) }

func newEnvWith(t testing.TB, o catalog.BoltOptions) *env {
	tmp := t.TempDir()
	cat, err := catalog.OpenBolt(filepath.Join(tmp, "c.db"), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	b, _ := storage.CreateLocal(filepath.Join(tmp, "storage"))
	store, err := cache.NewStore(b, filepath.Join(tmp, "idx.db"), cache.DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	return &env{cat: cat, store: store, dir: filepath.Join(tmp, "staging")}
}

func (e *env) stage(t testing.TB) *stage.Stage {
	s, err := stage.New(e.cat, e.store, stage.Options{Dir: e.dir, User: "t"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (e *env) content(t *testing.T, key string) string {
	t.Helper()
	v, err := e.cat.ByKey(context.Background(), key, 0)
	if err != nil {
		t.Fatal(err)
	}
	m, err := e.store.LoadManifest(context.Background(), cache.Ref(v.Manifest))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(e.store.Open(m.Files[0]))
	return string(b)
}

func TestCommitAndCopyOnWrite(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s := e.stage(t)
	f, err := s.Create(ctx, "a/x.csv", 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Flush(ctx); err != nil { // nothing written: deferred
		t.Fatal(err)
	}
	if _, err := e.cat.ByKey(ctx, "a/x.csv", 0); err == nil {
		t.Fatal("an empty new file was committed at its first flush")
	}
	f.WriteAt(ctx, []byte("hello"), 0)
	if err := f.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	_, mt, _ := f.Attr()
	f.Release(ctx)
	v, _ := e.cat.ByKey(ctx, "a/x.csv", 0)
	if v.Version != 1 || !v.Mtime.Equal(mt) || e.content(t, "a/x.csv") != "hello" {
		t.Fatalf("v%d mtime %v (writer saw %v)", v.Version, v.Mtime, mt)
	}
	// Copy on write, append.
	g, _ := s.Open(ctx, "a/x.csv", v, false)
	g.Append(ctx, []byte(" world"))
	buf := make([]byte, 32)
	n, _ := g.ReadAt(ctx, buf, 0)
	if string(buf[:n]) != "hello world" {
		t.Fatalf("read through the writer: %q", buf[:n])
	}
	g.Flush(ctx)
	g.Release(ctx)
	if got := e.content(t, "a/x.csv"); got != "hello world" {
		t.Fatalf("after append: %q", got)
	}
	// An open that changes nothing makes no version.
	v2, _ := e.cat.ByKey(ctx, "a/x.csv", 0)
	h, _ := s.Open(ctx, "a/x.csv", v2, false)
	h.Flush(ctx)
	h.Release(ctx)
	if v3, _ := e.cat.ByKey(ctx, "a/x.csv", 0); v3.Version != 2 {
		t.Fatalf("a no-op open made v%d", v3.Version)
	}
	if n := staged(t, e.dir); n != 0 {
		t.Fatalf("staging left %d files", n)
	}
}

func TestRenameTemporary(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s := e.stage(t)
	for i, text := range []string{"one", "two"} {
		f, _ := s.Create(ctx, "d/.tmp", 0o644)
		f.WriteAt(ctx, []byte(text), 0)
		f.Flush(ctx)
		f.Release(ctx)
		if _, err := s.Rename(ctx, "d/.tmp", "d/out"); err != nil {
			t.Fatal(err)
		}
		if v, _ := e.cat.ByKey(ctx, "d/out", 0); v.Version != i+1 {
			t.Fatalf("rename %d: v%d", i, v.Version)
		}
	}
	if tl, _ := e.cat.TrashList(ctx); len(tl) != 0 {
		t.Fatalf("temporaries in the trash: %+v", tl)
	}
	// Created and unlinked before close: nothing.
	f, _ := s.Create(ctx, "d/ghost", 0o644)
	f.WriteAt(ctx, []byte("x"), 0)
	if err := s.Unlink(ctx, "d/ghost"); err != nil {
		t.Fatal(err)
	}
	f.Flush(ctx)
	f.Release(ctx)
	if _, err := e.cat.Versions(ctx, "d/ghost", true); err == nil {
		t.Fatal("ghost recorded")
	}
}

func TestRecover(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s := e.stage(t)
	// A writer that closed (commit started) and one that never closed; the
	// daemon "dies": the Files are simply abandoned.
	closed, _ := s.Create(ctx, "r/closed.txt", 0o644)
	closed.WriteAt(ctx, []byte("closed bytes"), 0)
	if err := stage.MarkClosed(closed); err != nil {
		t.Fatal(err)
	}
	open, _ := s.Create(ctx, "r/open.txt", 0o644)
	open.WriteAt(ctx, []byte("half"), 0)
	s2 := e.stage(t)
	rec, err := s2.Recover(ctx)
	if err != nil || len(rec) != 2 {
		t.Fatalf("Recover = %+v, %v", rec, err)
	}
	if got := e.content(t, "r/closed.txt"); got != "closed bytes" {
		t.Fatalf("closed file: %q", got)
	}
	if _, err := e.cat.ByKey(ctx, "r/open.txt", 0); err == nil {
		t.Fatal("a never-closed file became a version of its key")
	}
	vs, _ := e.cat.List(ctx, catalog.Query{Prefix: stage.LostAndFound + "/"})
	if len(vs) != 1 || !strings.HasSuffix(vs[0].Key, "/r/open.txt") || !strings.Contains(vs[0].Description, "not closed") {
		t.Fatalf("lost+found = %+v", vs)
	}
	if n := staged(t, e.dir); n != 0 {
		t.Fatalf("staging left %d files", n)
	}
}

// TestDeferredSync: with SyncEvery a close commits at once and the staged
// bytes stay until Sync; a daemon that dies before Sync leaves them for
// Recover, which keeps committed content that is intact (no second version)
// and saves under lost+found/ the bytes of a commit whose content was lost
// (the machine crashed before the sync).
func TestDeferredSync(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s, write := deferredStage(t, e)
	write("d/a.txt", "aaa")
	write("d/b.txt", "bbb")
	if got := e.content(t, "d/a.txt"); got != "aaa" {
		t.Fatalf("a.txt = %q", got)
	}
	if n := staged(t, e.dir); n != 3 { // two data files and the journal
		t.Fatalf("staging holds %d files before Sync, want 3", n)
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if n := staged(t, e.dir); n != 0 {
		t.Fatalf("staging left %d files after Sync", n)
	}

	// The daemon dies before the next sync; then the machine loses the
	// content of one of the two commits.
	write("d/c.txt", "ccc")
	write("d/lost.txt", "lost bytes")
	v, _ := e.cat.ByKey(ctx, "d/lost.txt", 0)
	m, _ := e.store.LoadManifest(ctx, cache.Ref(v.Manifest))
	packs, _ := filepath.Glob(filepath.Join(filepath.Dir(e.dir), "storage", "packs", "*", m.Files[0].Chunks[0].Loc.Pack+"*"))
	if len(packs) != 1 {
		t.Fatalf("pack of lost.txt: %v", packs)
	}
	os.Remove(packs[0])
	rec, err := e.stage(t).Recover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rec) != 1 || rec[0].Key != "d/lost.txt" || !strings.HasPrefix(rec[0].SavedAs, stage.LostAndFound+"/") {
		t.Fatalf("Recover = %+v", rec)
	}
	if vs, _ := e.cat.Versions(ctx, "d/c.txt", false); len(vs) != 1 {
		t.Fatalf("c.txt has %d versions after Recover, want 1", len(vs))
	}
	if got := e.content(t, rec[0].SavedAs); got != "lost bytes" {
		t.Fatalf("lost+found copy = %q", got)
	}
	if n := staged(t, e.dir); n != 0 {
		t.Fatalf("staging left %d files after Recover", n)
	}
}

// TestRecoverLazySave: a close's version may still wait in the catalog's
// open transaction (catalog.Lazy) when the daemon is killed; Recover finds
// its LazySeq beyond the catalog's LazyCommitted and commits the staged
// bytes again, and leaves alone a version the catalog did commit.
func TestRecoverLazySave(t *testing.T) {
	ctx := context.Background()
	// The saves must still wait when the test copies the file: under load
	// the default 100 ms passed before the copy (CI, "plays no crash").
	e := newEnvWith(t, catalog.BoltOptions{Hold: true, LazyCommitAfter: time.Hour})
	_, write := deferredStage(t, e)
	write("l/kept.txt", "committed")
	if got := e.content(t, "l/kept.txt"); got != "committed" { // a read commits it
		t.Fatalf("kept.txt = %q", got)
	}
	write("l/lost.txt", "only in the open transaction")
	for i := 1; i <= 5; i++ { // redone in order: the last stays the latest
		write("l/often.txt", fmt.Sprint("version ", i))
	}

	// What a SIGKILL leaves: the catalog file as committed, the staging
	// folder as written.
	cat, dir := crashImage(t, e)
	if _, err := cat.ByKey(ctx, "l/lost.txt", 0); err == nil {
		t.Fatal("the crash image holds lost.txt: the test plays no crash")
	}
	// What status lists with no daemon: the closes the catalog lost, not
	// the one it holds.
	sf, err := stage.StagedSince(dir, func() (uint64, error) { return cat.LazyCommitted(ctx) })
	if err != nil {
		t.Fatal(err)
	}
	lost := map[string]bool{}
	for _, f := range sf {
		if !f.Lost || !f.Closed || f.Failed {
			t.Errorf("StagedSince: %+v; want closed and lost", f)
		}
		lost[f.Key] = true
	}
	if len(lost) != 2 || !lost["l/lost.txt"] || !lost["l/often.txt"] {
		t.Errorf("StagedSince lists %v; want l/lost.txt and l/often.txt", lost)
	}
	if sf, err := stage.Staged(dir); err != nil || len(sf) != 0 {
		t.Errorf("Staged = %+v, %v; want nothing", sf, err)
	}
	s2, err := stage.New(cat, e.store, stage.Options{Dir: dir, User: "t", SyncEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := s2.Recover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rec) != 6 || rec[0].Key != "l/lost.txt" || rec[0].SavedAs != "l/lost.txt" {
		t.Fatalf("Recover = %+v", rec)
	}
	for key, want := range map[string]struct {
		body     string
		versions int
	}{"l/kept.txt": {"committed", 1}, "l/lost.txt": {"only in the open transaction", 1}, "l/often.txt": {"version 5", 5}} {
		vs, err := cat.Versions(ctx, key, false)
		if err != nil || len(vs) != want.versions {
			t.Fatalf("%s: %d versions, %v", key, len(vs), err)
		}
		latest, _ := cat.ByKey(ctx, key, 0)
		m, _ := e.store.LoadManifest(ctx, cache.Ref(latest.Manifest))
		b, _ := io.ReadAll(e.store.Open(m.Files[0]))
		if string(b) != want.body {
			t.Fatalf("%s = %q, want %q", key, b, want.body)
		}
	}
	if n := staged(t, dir); n != 0 {
		t.Fatalf("staging left %d files after Recover", n)
	}
}

// deferredStage is a stage that syncs only when told (SyncEvery an hour),
// and a write that creates key with body and closes it.
func deferredStage(t *testing.T, e *env) (*stage.Stage, func(key, body string)) {
	ctx := context.Background()
	s, err := stage.New(e.cat, e.store, stage.Options{Dir: e.dir, User: "t", SyncEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return s, func(key, body string) {
		t.Helper()
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
	}
}

// A truncate by path of a key whose writer has closed it (committed) but
// whose RELEASE has not come yet is the truncating process's change: a
// version of its own at once, credited to its run. One with uncommitted
// bytes still takes the truncate itself.
func TestTruncateByPathAfterClose(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s := e.stage(t)
	f, err := s.Create(stage.WithRun(ctx, "writer"), "r/out.csv", 0o644)
	if err != nil {
		t.Fatal(err)
	}
	f.SetRun("writer")
	f.WriteAt(ctx, []byte("A,B\n1,2\n"), 0)
	if err := f.Flush(ctx); err != nil { // close(2); RELEASE still to come
		t.Fatal(err)
	}
	v, err := s.Truncate(stage.WithRun(ctx, "cutter"), "r/out.csv", 3)
	if err != nil {
		t.Fatal(err)
	}
	if v.Version != 2 || v.Size != 3 || v.Run != "cutter" {
		t.Fatalf("truncate by path gave v%d size %d run %q, want v2 size 3 run cutter", v.Version, v.Size, v.Run)
	}
	if err := f.Release(ctx); err != nil {
		t.Fatal(err)
	}
	// A reader holding the File from before its release reads its commit.
	buf := make([]byte, 16)
	if n, err := f.ReadAt(ctx, buf, 0); err != nil || string(buf[:n]) != "A,B\n1,2\n" {
		t.Fatalf("read of a released File: %q, %v", buf[:n], err)
	}
	if got, _ := e.cat.ByKey(ctx, "r/out.csv", 0); got.Version != 2 || e.content(t, "r/out.csv") != "A,B" {
		t.Fatalf("after the writer's release: v%d %q", got.Version, e.content(t, "r/out.csv"))
	}

	// open(O_TRUNC) of an existing key arrives as OPEN, then a SETATTR
	// without the handle: the File just opened takes it, no version between.
	o, _ := s.Open(ctx, "r/out.csv", v, false)
	if got, err := s.Truncate(ctx, "r/out.csv", 0); err != nil || got.UID != "" {
		t.Fatalf("truncate right after an open: %v, %+v", err, got)
	}
	o.WriteAt(ctx, []byte("A,B"), 0)
	o.Flush(ctx)
	o.Release(ctx)
	if v, _ = e.cat.ByKey(ctx, "r/out.csv", 0); v.Version != 2 {
		t.Fatalf("open, truncate, write of the same bytes made v%d, want v2 still", v.Version)
	}

	// Bytes not yet committed: the open File takes the truncate.
	g, _ := s.Open(ctx, "r/out.csv", v, false)
	g.WriteAt(ctx, []byte("xyz"), 3)
	if v, err := s.Truncate(ctx, "r/out.csv", 4); err != nil || v.UID != "" {
		t.Fatalf("truncate of an open File with changes: %v, %+v", err, v)
	}
	g.Flush(ctx)
	g.Release(ctx)
	if got := e.content(t, "r/out.csv"); got != "A,Bx" {
		t.Fatalf("after truncating the open File: %q", got)
	}
}

// staged counts the files in the staging folder dir but the spares, which
// must be empty.
func staged(t *testing.T, dir string) int {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), stage.SparePrefix) {
			n++
			continue
		}
		if info, err := e.Info(); err != nil || info.Size() != 0 {
			t.Fatalf("spare %s holds bytes (%v)", e.Name(), err)
		}
	}
	return n
}

// Staging files are emptied and reused after Sync, not removed: the next
// File gets the same inode with none of the old bytes, no more spares are
// kept than the bound, and a new Stage's Recover adopts them.
func TestStagingFilesReused(t *testing.T) {
	ctx := context.Background()
	stage.SetMaxSpares(t, 64)
	e := newEnv(t)
	s, write := deferredStage(t, e)
	inodes := func() map[uint64]bool {
		ents, _ := os.ReadDir(e.dir)
		m := map[uint64]bool{}
		for _, en := range ents {
			if strings.HasPrefix(en.Name(), stage.SparePrefix) {
				info, _ := en.Info()
				m[info.Sys().(*syscall.Stat_t).Ino] = true
			}
		}
		return m
	}
	write("r/a.txt", strings.Repeat("old bytes ", 1000))
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	spares := inodes()
	if len(spares) != 1 {
		t.Fatalf("%d spares after a Sync of one file", len(spares))
	}
	write("r/b.txt", "new")
	if got := e.content(t, "r/b.txt"); got != "new" {
		t.Fatalf("b.txt = %q", got)
	}
	ents, _ := os.ReadDir(e.dir)
	reused := false
	for _, en := range ents {
		info, _ := en.Info()
		reused = reused || (!strings.HasPrefix(en.Name(), stage.SparePrefix) && spares[info.Sys().(*syscall.Stat_t).Ino])
	}
	if !reused || len(inodes()) != 0 {
		t.Fatalf("the spare was not reused (reused %v, %d spares left)", reused, len(inodes()))
	}
	for i := range 100 {
		write(fmt.Sprintf("r/many%d.txt", i), "x")
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(inodes()); n != 64 {
		t.Fatalf("%d spares kept after 101 files, want the bound 64", n)
	}
	if n := staged(t, e.dir); n != 0 {
		t.Fatalf("staging left %d files", n)
	}
	before := inodes()
	s2, err := stage.New(e.cat, e.store, stage.Options{Dir: e.dir, User: "t", SyncEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	if after := inodes(); len(after) != len(before) {
		t.Fatalf("%d spares after Recover, %d before", len(after), len(before))
	}
	f, err := s2.Create(ctx, "r/after.txt", 0o644)
	if err != nil {
		t.Fatal(err)
	}
	f.Release(ctx)
	if after := inodes(); len(after) != len(before)-1 {
		t.Fatalf("a create after Recover left %d spares of %d", len(after), len(before))
	}
}

// events records, in order, what the content store and the catalog did.
type events struct{ list []string }

type syncLogging struct {
	*cache.Store
	ev *events
}

func (c syncLogging) Sync(ctx context.Context) error {
	c.ev.list = append(c.ev.list, "content synced")
	return c.Store.Sync(ctx)
}

type saveLogging struct {
	*catalog.Bolt
	ev *events
}

func (c saveLogging) Save(ctx context.Context, nvs []catalog.NewVersion) ([]catalog.Saved, error) {
	out, err := c.Bolt.Save(ctx, nvs)
	c.ev.list = append(c.ev.list, "version recorded")
	return out, err
}

// With deferred durability (SyncEvery) a close leaves its packs to the page
// cache. A catalog that records the version durably at once (PostgreSQL, a
// bbolt file not held) must find the packs durable first, or a power cut
// leaves a record naming packs that never reached the disk; a catalog that
// records it lazily (a held bbolt file) gets no sync per close.
func TestDurableRecordAfterDurableContent(t *testing.T) {
	ctx := context.Background()
	for _, held := range []bool{false, true} {
		tmp := t.TempDir()
		cat, err := catalog.OpenBolt(filepath.Join(tmp, "c.db"), catalog.BoltOptions{Hold: held})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := storage.CreateLocal(filepath.Join(tmp, "storage"))
		store, err := cache.NewStore(b, filepath.Join(tmp, "idx.db"), cache.DefaultParams)
		if err != nil {
			t.Fatal(err)
		}
		ev := &events{}
		s, err := stage.New(saveLogging{cat, ev}, syncLogging{store, ev}, stage.Options{Dir: filepath.Join(tmp, "staging"), User: "t", SyncEvery: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		f, err := s.Create(ctx, "a/x.csv", 0o644)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteAt(ctx, []byte("hello"), 0)
		if err := f.Release(ctx); err != nil {
			t.Fatal(err)
		}
		want := []string{"content synced", "version recorded"}
		if held {
			want = want[1:]
		}
		if strings.Join(ev.list, ", ") != strings.Join(want, ", ") {
			t.Fatalf("held %v: %q, want %q", held, ev.list, want)
		}
		if err := s.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		cat.Close()
	}
}

// failingSaves is a catalog whose saves fail while down is set (a database
// that went away).
type failingSaves struct {
	*catalog.Bolt
	down atomic.Bool
}

func (f *failingSaves) Save(ctx context.Context, nvs []catalog.NewVersion) ([]catalog.Saved, error) {
	if f.down.Load() {
		return nil, errors.New("catalog away")
	}
	return f.Bolt.Save(ctx, nvs)
}

// failingStage is a Stage over e's catalog whose saves fail while the
// returned catalog is down. It leaves failed closes to Recover.
func (e *env) failingStage(t *testing.T) (*stage.Stage, *failingSaves) {
	return e.failingStageRetrying(t, -1)
}

// failingStageRetrying is failingStage with failed closes tried again
// after retry.
func (e *env) failingStageRetrying(t *testing.T, retry time.Duration) (*stage.Stage, *failingSaves) {
	t.Helper()
	cat := &failingSaves{Bolt: e.cat}
	s, err := stage.New(cat, e.store, stage.Options{Dir: e.dir, User: "t", RetryFailed: retry})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.StopRetries)
	return s, cat
}

// A close whose commit fails returns the error, is counted (status shows
// it), and keeps its bytes: the next start commits them.
func TestFailedCommitKeptForRecover(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s, cat := e.failingStage(t)
	cat.down.Store(true)
	f, err := s.Create(ctx, "away.txt", 0o644)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt(ctx, []byte("written while the catalog was away"), 0)
	if err := f.Flush(ctx); err == nil {
		t.Fatal("flush with the catalog away succeeded")
	}
	if err := f.Release(ctx); err == nil {
		t.Fatal("release with the catalog away succeeded")
	}
	if n := s.FailedCommits(); n != 1 {
		t.Fatalf("FailedCommits = %d, want 1", n)
	}
	// Named, with where its bytes are (status names them after a
	// take-over, when no next mount may commit them).
	ff := s.FailedFiles()
	if len(ff) != 1 || ff[0].Key != "away.txt" || !ff[0].Closed {
		t.Fatalf("FailedFiles = %+v", ff)
	}
	if b, err := os.ReadFile(ff[0].Path); err != nil || string(b) != "written while the catalog was away" {
		t.Fatalf("the staged bytes FailedFiles names: %q, %v", b, err)
	}
	// The same file, but for the mtime: the File's at its close (a
	// touch's too) in FailedFiles, the staging file's in Staged (as
	// Recover commits it), a write's kernel time before the File's.
	if staged, err := stage.Staged(e.dir); err != nil || len(staged) != 1 || staged[0].Key != ff[0].Key || staged[0].Path != ff[0].Path ||
		staged[0].Closed != ff[0].Closed || staged[0].Mode != ff[0].Mode || staged[0].Mode != 0o644 || staged[0].Mtime.IsZero() || ff[0].Mtime.IsZero() {
		t.Fatalf("Staged = %+v, %v; want %+v", staged, err, ff)
	}
	cat.down.Store(false)
	s2 := e.stage(t) // the next mount
	if _, err := s2.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.content(t, "away.txt"); got != "written while the catalog was away" {
		t.Fatalf("after recovery: %q", got)
	}
	if staged, err := stage.Staged(e.dir); err != nil || len(staged) != 0 {
		t.Fatalf("Staged after recovery = %+v, %v", staged, err)
	}
}

// A failed close whose commit fails again at the next mount (the catalog
// or the disk still away) is a failed close of the new Stage: counted,
// and committed once the catalog answers, not hidden until the mount
// after. Recover kept its bytes staged and told no one.
func TestRecoverFailingIsRetried(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s, cat := e.failingStage(t)
	cat.down.Store(true)
	f, err := s.Create(ctx, "stuck.txt", 0o644)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt(ctx, []byte("closed while the catalog was away"), 0)
	if err := f.Release(ctx); err == nil {
		t.Fatal("release with the catalog away succeeded")
	}
	o, err := s.Create(ctx, "open.txt", 0o644) // its writer never closes it
	if err != nil {
		t.Fatal(err)
	}
	o.WriteAt(ctx, []byte("never closed"), 0)
	s2, cat2 := e.failingStageRetrying(t, 20*time.Millisecond) // the next mount
	cat2.down.Store(true)
	if _, err := s2.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	if n := s2.FailedCommits(); n != 2 {
		t.Fatalf("FailedCommits after a Recover that could not commit = %d, want 2", n)
	}
	cat2.down.Store(false)
	waitFor(func() bool { return s2.FailedCommits() == 0 })
	if n := s2.FailedCommits(); n != 0 {
		t.Fatalf("FailedCommits once the catalog answers = %d, want 0", n)
	}
	if got := e.content(t, "stuck.txt"); got != "closed while the catalog was away" {
		t.Fatalf("stuck.txt = %q", got)
	}
	if _, err := e.cat.ByKey(ctx, "open.txt", 0); err == nil {
		t.Fatal("the bytes of a file never closed became its version")
	}
	var lost []string
	e.cat.Each(ctx, func(v catalog.Version) error {
		if strings.HasPrefix(v.Key, stage.LostAndFound+"/") && strings.HasSuffix(v.Key, "/open.txt") {
			lost = append(lost, v.Key)
		}
		return nil
	})
	if len(lost) != 1 || e.content(t, lost[0]) != "never closed" {
		t.Fatalf("lost+found after the retry: %v", lost)
	}
	if n := staged(t, e.dir); n != 0 {
		t.Fatalf("%d staging files left", n)
	}
}

// A close whose commit failed, then a newer save of the key: the next
// start keeps the older bytes under lost+found/ instead of making them the
// key's latest version.
func TestFailedCommitOlderThanLatestKept(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s, cat := e.failingStage(t)
	cat.down.Store(true)
	f, err := s.Create(ctx, "k.txt", 0o644)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt(ctx, []byte("older, its close failed"), 0)
	f.Flush(ctx)
	if err := f.Release(ctx); err == nil {
		t.Fatal("release with the catalog away succeeded")
	}
	cat.down.Store(false)
	time.Sleep(50 * time.Millisecond) // the newer save comes after (by more than the ctime lag)
	g, err := s.Create(ctx, "k.txt", 0o644)
	if err != nil {
		t.Fatal(err)
	}
	g.WriteAt(ctx, []byte("newer"), 0)
	if err := g.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	g.Release(ctx)
	rec, err := e.stage(t).Recover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := e.content(t, "k.txt"); got != "newer" {
		t.Fatalf("latest after recovery: %q, want the newer save", got)
	}
	if len(rec) != 1 || !strings.HasPrefix(rec[0].SavedAs, stage.LostAndFound+"/") || e.content(t, rec[0].SavedAs) != "older, its close failed" {
		t.Fatalf("recovered: %+v", rec)
	}
}

// A close that commits is proof that the catalog works again: closes whose
// commits failed are tried at once, not after the backoff, which grew
// while the catalog was away (an hour here).
func TestFailedCloseRetriedWhenACommitSucceeds(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s, cat := e.failingStageRetrying(t, time.Hour)
	write := func(key, content string) error {
		t.Helper()
		f, err := s.Create(ctx, key, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteAt(ctx, []byte(content), 0)
		return f.Release(ctx)
	}
	cat.down.Store(true)
	if err := write("away.txt", "closed while the catalog was away"); err == nil {
		t.Fatal("release with the catalog away succeeded")
	}
	cat.down.Store(false)
	if err := write("back.txt", "the catalog is back"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 1000 && s.FailedCommits() > 0; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if n := s.FailedCommits(); n != 0 {
		t.Fatalf("FailedCommits 10 s after a commit succeeded = %d, want 0 (the retry waits for its timer)", n)
	}
	if got := e.content(t, "away.txt"); got != "closed while the catalog was away" {
		t.Fatalf("away.txt = %q", got)
	}
}

// A close of a key committing while a retry of an older failed close of
// it runs (started at once by another close's commit) stays the latest:
// the retry checked the key, stored its 32 MiB, and saved them on top.
func TestRetryDoesNotBuryALaterClose(t *testing.T) {
	ctx := context.Background()
	for round := range 3 {
		e := newEnv(t)
		s, cat := e.failingStageRetrying(t, time.Hour)
		write := func(key string, content []byte) error {
			t.Helper()
			f, err := s.Create(ctx, key, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteAt(ctx, content, 0)
			return f.Release(ctx)
		}
		older := make([]byte, 32<<20)
		rand.Read(older)
		cat.down.Store(true)
		if err := write("k.bin", older); err == nil {
			t.Fatal("release with the catalog away succeeded")
		}
		cat.down.Store(false)
		if err := write("other.txt", []byte("the catalog is back")); err != nil { // starts the retry
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
		if err := write("k.bin", []byte("the last close")); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 1000 && s.FailedCommits() > 0; i++ {
			time.Sleep(10 * time.Millisecond)
		}
		if n := s.FailedCommits(); n != 0 {
			t.Fatalf("round %d: FailedCommits = %d", round, n)
		}
		if got := e.content(t, "k.bin"); got != "the last close" {
			vs, _ := e.cat.Versions(ctx, "k.bin", false)
			t.Fatalf("round %d: k.bin's latest holds %d bytes, not the last close (%d versions)", round, len(got), len(vs))
		}
	}
}

// A close whose commit failed is committed while the Stage runs, once the
// catalog is back, without waiting for the next mount; bytes of a key
// saved again since go to lost+found/ instead of hiding the newer save.
func TestFailedCommitRetriedWhileRunning(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s, cat := e.failingStageRetrying(t, 20*time.Millisecond)
	cat.down.Store(true)
	closeFailing := func(key, content string) {
		t.Helper()
		f, err := s.Create(ctx, key, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteAt(ctx, []byte(content), 0)
		if err := f.Release(ctx); err == nil {
			t.Fatal("release with the catalog away succeeded")
		}
	}
	var mu sync.Mutex
	told := map[string]bool{} // what the mount learns (OnRetried)
	s.OnRetried(func(keys []string) {
		mu.Lock()
		defer mu.Unlock()
		for _, k := range keys {
			told[k] = true
		}
	})
	closeFailing("a.txt", "closed while the catalog was away")
	closeFailing("b.txt", "older, its close failed")
	// Two closes of one new key: the later stays its latest.
	closeFailing("c.txt", "first edit")
	time.Sleep(5 * time.Millisecond)
	closeFailing("c.txt", "second edit, the latest")
	time.Sleep(100 * time.Millisecond) // retries fail meanwhile
	if n := s.FailedCommits(); n != 4 {
		t.Fatalf("FailedCommits with the catalog still away = %d, want 4", n)
	}
	if _, err := e.cat.ByKey(ctx, "a.txt", 0); err == nil {
		t.Fatal("a.txt has a version while the catalog is away")
	}
	// b.txt is saved again (another workstation, say) before the retry.
	other, err := stage.New(e.cat, e.store, stage.Options{Dir: t.TempDir(), User: "u"})
	if err != nil {
		t.Fatal(err)
	}
	g, err := other.Create(ctx, "b.txt", 0o644)
	if err != nil {
		t.Fatal(err)
	}
	g.WriteAt(ctx, []byte("newer"), 0)
	if err := g.Release(ctx); err != nil {
		t.Fatal(err)
	}
	// A retry that looked b.txt up just before that save must fail its
	// commit before the catalog is back: a retry checks, then commits, and
	// a save landing in between is not seen (a window of a lookup; the
	// catalog has no conditional save). RetryFailed waits for the one at
	// work: 100 ms of sleep did not always, on a loaded machine.
	if n := s.RetryFailed(ctx); n != 4 {
		t.Fatalf("FailedCommits with the catalog still away = %d, want 4", n)
	}
	cat.down.Store(false)
	waitFor(func() bool { return s.FailedCommits() == 0 })
	if n := s.FailedCommits(); n != 0 {
		t.Fatalf("FailedCommits after the catalog came back = %d, want 0", n)
	}
	if got := e.content(t, "a.txt"); got != "closed while the catalog was away" {
		t.Fatalf("a.txt after the retry: %q", got)
	}
	if got := e.content(t, "b.txt"); got != "newer" {
		t.Fatalf("b.txt's newer save was replaced by the older bytes: %q", got)
	}
	if got := e.content(t, "c.txt"); got != "second edit, the latest" {
		t.Fatalf("c.txt after two failed closes: %q, want the later", got)
	}
	if vs, _ := e.cat.Versions(ctx, "c.txt", false); len(vs) != 2 {
		t.Fatalf("c.txt has %d versions, want 2", len(vs))
	}
	mu.Lock()
	if !told["a.txt"] || !told["c.txt"] {
		t.Errorf("OnRetried was told %v, want a.txt and c.txt", told)
	}
	mu.Unlock()
	lost, err := e.cat.List(ctx, catalog.Query{Prefix: stage.LostAndFound + "/"})
	if err != nil || len(lost) != 1 || !strings.HasSuffix(lost[0].Key, "/b.txt") || e.content(t, lost[0].Key) != "older, its close failed" {
		t.Fatalf("lost+found: %+v, %v", lost, err)
	}
	// Nothing is left for the next mount to redo.
	rec, err := e.stage(t).Recover(ctx)
	if err != nil || len(rec) != 0 {
		t.Fatalf("Recover after the retries: %+v, %v", rec, err)
	}
	if n, _ := e.cat.Versions(ctx, "a.txt", false); len(n) != 1 {
		t.Fatalf("a.txt has %d versions, want 1", len(n))
	}
}

// syncFailing is content whose first fails Syncs fail (a full disk).
type syncFailing struct {
	*cache.Store
	fails atomic.Int32
}

func (c *syncFailing) Sync(ctx context.Context) error {
	if c.fails.Add(-1) >= 0 {
		return errors.New("no space left on device")
	}
	return c.Store.Sync(ctx)
}

// A Sync that failed (a full disk under the index) comes back by itself:
// it put the closes back but waited for another close, fsync or unmount
// to sync them, so a lazy save the catalog lost meanwhile was neither
// committed again nor visible until then.
func TestFailedSyncTriedAgain(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	content := &syncFailing{Store: e.store}
	content.fails.Store(2)
	s, err := stage.New(e.cat, content, stage.Options{Dir: e.dir, User: "t", SyncEvery: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	f, err := s.Create(ctx, "a.txt", 0o644)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt(ctx, []byte("closed once"), 0)
	if err := f.Release(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(func() bool { return staged(t, e.dir) == 0 && content.fails.Load() < 0 })
	if n := staged(t, e.dir); n != 0 || content.fails.Load() >= 0 {
		t.Fatalf("after two failed syncs and no other close: %d staging files, %d failures to come", n, content.fails.Load())
	}
}

// syncBlocking is content whose first Sync waits until released.
type syncBlocking struct {
	*cache.Store
	first   atomic.Bool
	started chan struct{}
	release chan struct{}
}

func (c *syncBlocking) Sync(ctx context.Context) error {
	if c.first.CompareAndSwap(false, true) {
		close(c.started)
		<-c.release
	}
	return c.Store.Sync(ctx)
}

// The unmount's Sync returns only once every commit's staged bytes are
// gone, even while the timer's Sync is still at work: it found nothing to
// do and returned, the daemon exited, and hundreds of staged files stayed
// until the next mount (a clean umount during heavy writes; audit 8).
func TestSyncWaitsForTheTimersSync(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	content := &syncBlocking{Store: e.store, started: make(chan struct{}), release: make(chan struct{})}
	s, err := stage.New(e.cat, content, stage.Options{Dir: e.dir, User: "t", SyncEvery: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		f, err := s.Create(ctx, fmt.Sprintf("s/%d.txt", i), 0o644)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteAt(ctx, []byte("some bytes"), 0)
		if err := f.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
	<-content.started // the timer's Sync is at work
	done := make(chan error, 1)
	go func() { done <- s.Sync(ctx) }() // the unmount's
	select {
	case err := <-done:
		t.Fatalf("the unmount's Sync returned (%v) while the timer's was still at work", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(content.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := staged(t, e.dir); n != 0 {
		t.Fatalf("%d staged files left after the unmount's Sync", n)
	}
}

// writtenAgain is a catalog on which the temporary key's version becomes
// live again right after Rename's check that it lies alone in the trash:
// another writer's save at the name in between.
type writtenAgain struct {
	*catalog.Bolt
	key  string
	done bool
}

func (w *writtenAgain) Versions(ctx context.Context, key string, trash bool) ([]catalog.Version, error) {
	vs, err := w.Bolt.Versions(ctx, key, trash)
	if key == w.key && trash && !w.done {
		w.done = true
		w.Bolt.Restore(ctx, key)
	}
	return vs, err
}

// A temporary renamed onto a key is purged only while nothing at its name
// is live: a version written there between the check and the purge was
// deleted with it (Purge takes every version; audit 44).
func TestRenameTemporaryKeepsWhatWasWrittenAgain(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	cat := &writtenAgain{Bolt: e.cat, key: "d/.tmp"}
	s, err := stage.New(cat, e.store, stage.Options{Dir: e.dir, User: "t"})
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{"one", "two"} {
		f, _ := s.Create(ctx, "d/.tmp", 0o644)
		f.WriteAt(ctx, []byte(text), 0)
		f.Flush(ctx)
		f.Release(ctx)
		if _, err := s.Rename(ctx, "d/.tmp", "d/out"); err != nil {
			t.Fatal(err)
		}
	}
	if !cat.done {
		t.Fatal("the purge's check was never made")
	}
	if _, err := e.cat.ByKey(ctx, "d/.tmp", 0); err != nil {
		t.Fatalf("the version live again at the temporary's name: %v", err)
	}
}

// A failed close whose staged bytes were removed (saved into the instance
// that took the storage over, then rm, as status advises) is no longer
// named by FailedFiles nor Staged: the notes of status end.
func TestFailedFilesLeaveOutRemoved(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s, cat := e.failingStage(t)
	cat.down.Store(true)
	f, err := s.Create(ctx, "away.txt", 0o640)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt(ctx, []byte("saved elsewhere"), 0)
	f.Flush(ctx)
	f.Release(ctx)
	ff := s.FailedFiles()
	if len(ff) != 1 || ff[0].Mode != 0o640 {
		t.Fatalf("FailedFiles = %+v", ff)
	}
	if err := os.Remove(ff[0].Path); err != nil {
		t.Fatal(err)
	}
	if ff := s.FailedFiles(); len(ff) != 0 {
		t.Errorf("FailedFiles after its bytes were removed = %+v", ff)
	}
	if staged, err := stage.Staged(e.dir); err != nil || len(staged) != 0 {
		t.Errorf("Staged after its bytes were removed = %+v, %v", staged, err)
	}
}

// Two workstations (ben, then ana 50 ms later) close one key while the
// shared catalog is away; both closes fail and keep their bytes. Once it
// is back, whichever commits first, ana's later close is the key's
// latest and ben's earlier one the version before it, nothing under
// lost+found/. The version ordering is by close, not by when a retry
// reached the catalog: ben's retry came first and made ana's later bytes
// look "saved again since" (audit c7). Ben's may come from his next
// mount's Recover too.
func TestFailedClosesOfTwoWorkstationsKeepTheLaterOnTop(t *testing.T) {
	ctx := context.Background()
	for _, first := range []string{"ben retries", "ana retries", "ben recovers"} {
		t.Run(first, func(t *testing.T) {
			e := newEnv(t)
			workstation := func(name string) (*stage.Stage, *failingSaves, string) {
				cat := &failingSaves{Bolt: e.cat}
				dir := filepath.Join(t.TempDir(), name)
				s, err := stage.New(cat, e.store, stage.Options{Dir: dir, User: name, RetryFailed: time.Hour})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(s.StopRetries)
				cat.down.Store(true)
				return s, cat, dir
			}
			ben, benCat, benDir := workstation("ben")
			ana, anaCat, _ := workstation("ana")
			closeFailing := func(s *stage.Stage, content string) {
				t.Helper()
				f, err := s.Create(ctx, "shared/r2.txt", 0o644)
				if err != nil {
					t.Fatal(err)
				}
				f.WriteAt(ctx, []byte(content), 0)
				if err := f.Release(ctx); err == nil {
					t.Fatal("release with the catalog away succeeded")
				}
			}
			closeFailing(ben, "ben-first")
			time.Sleep(50 * time.Millisecond) // more than the ctime lag
			closeFailing(ana, "ana-second")
			time.Sleep(50 * time.Millisecond) // the retries come later still
			benCat.down.Store(false)
			anaCat.down.Store(false)
			retryBen := func() {
				if n := ben.RetryFailed(ctx); n != 0 {
					t.Fatalf("ben: %d failed closes left", n)
				}
			}
			switch first {
			case "ben retries":
				retryBen()
			case "ben recovers":
				ben.StopRetries()
				next, err := stage.New(e.cat, e.store, stage.Options{Dir: benDir, User: "ben"})
				if err != nil {
					t.Fatal(err)
				}
				if rec, err := next.Recover(ctx); err != nil || len(rec) != 1 || rec[0].SavedAs != "shared/r2.txt" {
					t.Fatalf("ben's Recover: %+v, %v", rec, err)
				}
			}
			time.Sleep(50 * time.Millisecond)
			if n := ana.RetryFailed(ctx); n != 0 {
				t.Fatalf("ana: %d failed closes left", n)
			}
			if first == "ana retries" {
				time.Sleep(50 * time.Millisecond)
				retryBen()
			}
			vs, err := e.cat.Versions(ctx, "shared/r2.txt", false)
			if err != nil {
				t.Fatal(err)
			}
			lost, _ := e.cat.List(ctx, catalog.Query{Prefix: stage.LostAndFound + "/"})
			if got := e.content(t, "shared/r2.txt"); got != "ana-second" {
				t.Fatalf("latest = %q, want ana's later close (%d versions, lost+found %d)", got, len(vs), len(lost))
			}
			if first == "ana retries" {
				// Ben's earlier bytes, committed after ana's later ones, are
				// kept apart rather than put on top.
				if len(vs) != 1 || len(lost) != 1 || e.content(t, lost[0].Key) != "ben-first" {
					t.Fatalf("%d versions, lost+found %+v; want ana's alone and ben's under lost+found", len(vs), lost)
				}
				return
			}
			if len(vs) != 2 || len(lost) != 0 {
				t.Fatalf("%d versions, lost+found %+v; want ben's v1 and ana's v2", len(vs), lost)
			}
			// Each version's created_at is its writer's close, so the two
			// stay in the order of the closes for the next comparison too.
			v1, _ := e.cat.ByKey(ctx, "shared/r2.txt", 1)
			v2, _ := e.cat.ByKey(ctx, "shared/r2.txt", 2)
			if !v1.CreatedAt.Before(v2.CreatedAt) || v1.CreatedBy != "ben" || v2.CreatedBy != "ana" {
				t.Fatalf("v1 %s by %s, v2 %s by %s", v1.CreatedAt, v1.CreatedBy, v2.CreatedAt, v2.CreatedBy)
			}
		})
	}
}

// A File with nothing to commit follows the newer version another File of
// its key commits (an O_TRUNC writer's): reads, stat and the next write
// see that version, not the one it copied. Its own last commit, which may
// not be durable yet, keeps its staged bytes for Recover: a crash before
// Sync redoes both commits in order, and Sync drops them.
func TestCleanFileFollowsNewerVersion(t *testing.T) {
	ctx := context.Background()
	e := newEnvWith(t, catalog.BoltOptions{Hold: true, LazyCommitAfter: time.Hour})
	s, err := stage.New(e.cat, e.store, stage.Options{Dir: e.dir, User: "t", SyncEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	a, err := s.Create(ctx, "k", 0o644)
	if err != nil {
		t.Fatal(err)
	}
	a.WriteAt(ctx, []byte("first version"), 0)
	if err := a.Flush(ctx); err != nil { // committed, a still open (fsync of a database)
		t.Fatal(err)
	}
	v1, _ := a.Committed() // not from the catalog: a read would commit its transaction
	b, err := s.Open(ctx, "k", v1, true)
	if err != nil {
		t.Fatal(err)
	}
	b.WriteAt(ctx, []byte("second"), 0)
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Release(ctx); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, _ := a.ReadAt(ctx, buf, 0)
	if size, _, _ := a.Attr(); string(buf[:n]) != "second" || size != 6 {
		t.Fatalf("the clean File reads %q, size %d; want the newer version's %q", buf[:n], size, "second")
	}
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}

	// A crash now: both commits wait in the catalog's open transaction.
	cat, dir := crashImage(t, e)
	s2, err := stage.New(cat, e.store, stage.Options{Dir: dir, User: "t", SyncEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if rec, err := s2.Recover(ctx); err != nil || len(rec) != 2 {
		t.Fatalf("Recover = %+v, %v; want both commits redone", rec, err)
	}
	vs, _ := cat.Versions(ctx, "k", false)
	latest, _ := cat.ByKey(ctx, "k", 0)
	m, _ := e.store.LoadManifest(ctx, cache.Ref(latest.Manifest))
	got, _ := io.ReadAll(e.store.Open(m.Files[0]))
	if len(vs) != 2 || vs[0].Size != 13 || string(got) != "second" {
		t.Fatalf("after Recover: %d versions, latest %q", len(vs), got)
	}

	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if n := staged(t, e.dir); n != 0 {
		t.Fatalf("staging left %d files after Sync", n)
	}
}

// Staged (lamina status with the daemon dead) tells a close whose commit
// failed from a File closed and not released (a dup's close committed it;
// its record says closed until the release): status said "commit failed
// at close" of both.
func TestStagedTellsFailedFromClosed(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s, cat := e.failingStage(t)
	held, err := s.Create(ctx, "held.txt", 0o644)
	if err != nil {
		t.Fatal(err)
	}
	held.WriteAt(ctx, []byte("committed, its handle not released"), 0)
	if err := held.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	cat.down.Store(true)
	f, err := s.Create(ctx, "away.txt", 0o644)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt(ctx, []byte("written while the catalog was away"), 0)
	if err := f.Flush(ctx); err == nil {
		t.Fatal("flush with the catalog away succeeded")
	}
	if err := f.Release(ctx); err == nil {
		t.Fatal("release with the catalog away succeeded")
	}
	staged, err := stage.Staged(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]stage.StagedFile{}
	for _, sf := range staged {
		got[sf.Key] = sf
	}
	if sf, ok := got["away.txt"]; !ok || !sf.Closed || !sf.Failed {
		t.Errorf("Staged: away.txt %+v, want closed and failed", sf)
	}
	if sf, ok := got["held.txt"]; !ok || !sf.Closed || sf.Failed {
		t.Errorf("Staged: held.txt %+v, want closed, not failed", sf)
	}
	cat.down.Store(false)
}
