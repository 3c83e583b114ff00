package cache_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/storage"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// savedStore stores data in local storage through a store with its index
// at idx, and returns the storage.
func savedStore(t *testing.T, idx string, data []byte) storage.Backend {
	t.Helper()
	ctx := context.Background()
	b, err := storage.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s, err := cache.NewStore(b, idx, cache.DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	w := s.NewWriter()
	if _, _, err := w.PutFile(ctx, bytes.NewReader(data), nil); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	return b
}

// warnings collects what a store warns.
type warnings struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *warnings) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (w *warnings) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// newChunks saves data again and returns how many chunks were new.
func newChunks(t *testing.T, s *cache.Store, data []byte) int {
	t.Helper()
	w := s.NewWriter()
	defer w.Abort()
	_, st, err := w.PutFile(context.Background(), bytes.NewReader(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	return st.NewChunks
}

// TestIndexDamagedSetAside: a damaged index.db (garbled pages, truncated,
// all garbage) made every command panic, SIGBUS or fail. The index only
// saves storing content twice: it is set aside with one warning, made
// anew unbuilt, and a rebuild restores dedup.
func TestIndexDamagedSetAside(t *testing.T) {
	data := randomBytes(31, 12<<20)
	damages := map[string]func(t *testing.T, path string){
		"garbled pages": func(t *testing.T, path string) { // dd bs=4096 seek=2 count=2 conv=notrunc
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteAt(randomBytes(5, 2*4096), 2*4096); err != nil {
				t.Fatal(err)
			}
		},
		"truncated": func(t *testing.T, path string) {
			if err := os.Truncate(path, 3*4096); err != nil {
				t.Fatal(err)
			}
		},
		"garbage": func(t *testing.T, path string) {
			if err := os.WriteFile(path, randomBytes(6, 64<<10), 0o600); err != nil {
				t.Fatal(err)
			}
		},
	}
	for name, damage := range damages {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			idx := filepath.Join(t.TempDir(), "index.db")
			b := savedStore(t, idx, data)
			damage(t, idx)
			s, err := cache.NewStore(b, idx, cache.DefaultParams)
			if err != nil {
				t.Fatalf("a damaged index fails the open: %v", err)
			}
			var w warnings
			s.SetLogger(slog.New(slog.NewTextHandler(&w, nil)))
			// Damage deeper than the open looks is found by the first
			// lookup.
			before := newChunks(t, s, data)
			if !s.IndexUnbuilt() {
				t.Fatalf("the damaged index was taken as built (%d new chunks)", before)
			}
			aside, _ := filepath.Glob(idx + ".damaged-*")
			if len(aside) != 1 || strings.Count(w.String(), "set aside") != 1 {
				t.Fatalf("set aside as %v, warned %q", aside, w.String())
			}
			if _, err := s.RebuildIndex(ctx, nil); err != nil || s.IndexUnbuilt() {
				t.Fatalf("rebuild: %v (unbuilt %v)", err, s.IndexUnbuilt())
			}
			if n := newChunks(t, s, data); n != 0 {
				t.Fatalf("after the rebuild, %d chunks stored again", n)
			}
			s2, err := cache.NewStore(b, idx, cache.DefaultParams)
			if err != nil || s2.IndexUnbuilt() {
				t.Fatalf("reopen: %v (unbuilt %v)", err, s2.IndexUnbuilt())
			}
		})
	}
}

// failingRanges fails the trailer reads of the packs named in fail, as an
// S3 server gone away mid-rebuild does.
type failingRanges struct {
	storage.Backend
	mu   sync.Mutex
	fail map[string]bool
}

func (f *failingRanges) GetRange(ctx context.Context, name string, off, n int64) ([]byte, error) {
	f.mu.Lock()
	bad := f.fail[name]
	f.mu.Unlock()
	if bad {
		return nil, errors.New("connection refused")
	}
	return f.Backend.GetRange(ctx, name, off, n)
}

// TestRebuildIndexStorageAway: a rebuild skipped every pack it could not
// read and marked the index built, so that an outage mid-rebuild left
// dedup off for good for those packs. Only a damaged trailer is skipped
// (and named); any other error leaves the index unbuilt for the next try.
func TestRebuildIndexStorageAway(t *testing.T) {
	ctx := context.Background()
	data := randomBytes(32, 40<<20)
	idx := filepath.Join(t.TempDir(), "index.db")
	b := savedStore(t, idx, data)
	var names []string
	b.List(ctx, "packs/", func(i storage.Info) error { names = append(names, i.Name); return nil })
	if len(names) < 3 {
		t.Fatalf("%d packs, want 3 or more", len(names))
	}
	os.Remove(idx)
	f := &failingRanges{Backend: b, fail: map[string]bool{names[1]: true}}
	s, err := cache.NewStore(f, idx, cache.DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	var w warnings
	s.SetLogger(slog.New(slog.NewTextHandler(&w, nil)))
	if _, err := s.RebuildIndex(ctx, nil); err == nil || !s.IndexUnbuilt() {
		t.Fatalf("a pack storage did not answer for: rebuild %v, unbuilt %v", err, s.IndexUnbuilt())
	}
	if s2, _ := cache.NewStore(b, idx, cache.DefaultParams); !s2.IndexUnbuilt() {
		t.Fatal("the index file is marked built")
	}
	// A damaged trailer is skipped, named; the rest is indexed.
	f.mu.Lock()
	clear(f.fail)
	f.mu.Unlock()
	bad := names[2]
	path := filepath.Join(b.(interface{ Root() string }).Root(), filepath.FromSlash(bad))
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, st.Size()-3); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RebuildIndex(ctx, nil); err != nil || s.IndexUnbuilt() {
		t.Fatalf("rebuild with a damaged pack: %v, unbuilt %v", err, s.IndexUnbuilt())
	}
	if id := filepath.Base(bad); !strings.Contains(w.String(), id) {
		t.Fatalf("the damaged pack %s is not named: %q", id, w.String())
	}
}

// dropMeta makes the index file at path look as one a lamina from before
// the unbuilt mark made: no meta bucket.
func dropMeta(t *testing.T, path string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket([]byte("meta")) })
	if err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
		t.Fatal(err)
	}
}

// TestOldIndexMadeAnewIsUnbuilt: an index.db an older lamina made anew
// after a loss has no meta bucket and was taken as complete, dedup off for
// good for the packs from before. One that points into fewer packs than
// storage holds is unbuilt; a complete one stays built.
func TestOldIndexMadeAnewIsUnbuilt(t *testing.T) {
	ctx := context.Background()
	old := randomBytes(33, 20<<20)
	idx := filepath.Join(t.TempDir(), "index.db")
	b := savedStore(t, idx, old)

	// Complete: built as the packs were written.
	dropMeta(t, idx)
	s, err := cache.NewStore(b, idx, cache.DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CheckOldIndex(ctx); err != nil || s.IndexUnbuilt() {
		t.Fatalf("a complete old index: %v, unbuilt %v", err, s.IndexUnbuilt())
	}

	// Made anew after a loss, then one save: it knows that one's packs.
	os.Remove(idx)
	s, _ = cache.NewStore(b, idx, cache.DefaultParams)
	w := s.NewWriter()
	if _, _, err := w.PutFile(ctx, bytes.NewReader(randomBytes(34, 1<<20)), nil); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	dropMeta(t, idx)
	s, err = cache.NewStore(b, idx, cache.DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CheckOldIndex(ctx); err != nil || !s.IndexUnbuilt() {
		t.Fatalf("an old index made anew: %v, unbuilt %v", err, s.IndexUnbuilt())
	}
	if _, err := s.RebuildIndex(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if n := newChunks(t, s, old); n != 0 {
		t.Fatalf("after the rebuild, %d chunks stored again", n)
	}
}

// TestIndexDeletedUnderRunningStore: an index.db deleted while a process
// (a mount) holds its Store failed every lookup, and so every close, until
// another command wrote the file anew (audit e6). It is made anew,
// unbuilt, with one warning.
func TestIndexDeletedUnderRunningStore(t *testing.T) {
	data := randomBytes(37, 4<<20)
	idx := filepath.Join(t.TempDir(), "index.db")
	b := savedStore(t, idx, data)
	s, err := cache.NewStore(b, idx, cache.DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.RebuildIndex(context.Background(), nil); err != nil || s.IndexUnbuilt() {
		t.Fatalf("rebuild: %v, unbuilt %v", err, s.IndexUnbuilt())
	}
	var w warnings
	s.SetLogger(slog.New(slog.NewTextHandler(&w, nil)))
	if n := newChunks(t, s, data); n != 0 {
		t.Fatalf("stored content counted %d new chunks before the delete", n)
	}
	if err := os.Remove(idx); err != nil {
		t.Fatal(err)
	}
	// A lookup may still go to the read-only handle held from before the
	// delete (indexHold); once that is released the file is missed.
	for deadline := time.Now().Add(10 * time.Second); !s.IndexUnbuilt() && time.Now().Before(deadline); {
		newChunks(t, s, data) // fails the test on an error
		time.Sleep(50 * time.Millisecond)
	}
	if !s.IndexUnbuilt() {
		t.Fatal("the index made anew after a delete is taken as built")
	}
	if _, err := os.Stat(idx); err != nil {
		t.Fatalf("index.db not made anew: %v (warned %q)", err, w.String())
	}
	if got := w.String(); strings.Count(got, "made anew") != 1 || strings.Contains(got, "set aside") {
		t.Fatalf("warned %q; want one \"made anew\", no set-aside", got)
	}
}
