package cache

import (
	"bytes"
	"context"
	"crypto/rand"
	"path/filepath"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/storage"
)

// A session that reused a pack and commits after gc marked it, too late for
// gc's second look at the catalog, fails rather than let a version point at
// data gc deletes; and reuses nothing of a marked pack from the start.
func TestReuseOfCondemnedPacks(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b, err := storage.OpenLocal(filepath.Join(dir, "storage"))
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 1<<20)
	rand.Read(data)
	store := func() *Store {
		s, err := NewStore(b, filepath.Join(dir, "index.db"), DefaultParams)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	put := func(w *Writer) PutStats {
		t.Helper()
		_, st, err := w.PutFile(ctx, bytes.NewReader(data), nil)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	s := store()
	w := s.NewWriter()
	put(w)
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	var ids []string
	s.Packs(ctx, func(p PackInfo, _ error) error { ids = append(ids, p.ID); return nil })

	// Reused, then marked before the commit: the commit checks again.
	defer func(d time.Duration) { reuseRecheck = d }(reuseRecheck)
	reuseRecheck = 0
	w = store().NewWriter()
	if st := put(w); st.NewChunks != 0 {
		t.Fatalf("%d new chunks: want all reused", st.NewChunks)
	}
	if err := s.Condemn(ctx, ids, "test"); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx); err != ErrReusedPackCondemned {
		t.Fatalf("commit after the marks: %v, want ErrReusedPackCondemned", err)
	}
	// Marked before the lookup: stored again, once: the next save reuses
	// the new copy.
	w = store().NewWriter()
	if st := put(w); st.NewChunks == 0 {
		t.Fatal("chunks of a marked pack reused")
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	w = store().NewWriter()
	if st := put(w); st.NewChunks != 0 {
		t.Fatalf("%d chunks stored a third time: the index still names the marked pack", st.NewChunks)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	// Pardoned: nothing is stored again.
	if err := s.Pardon(ctx, ids); err != nil {
		t.Fatal(err)
	}
	w = store().NewWriter()
	if st := put(w); st.NewChunks != 0 {
		t.Fatalf("%d new chunks after the pardon: want all reused", st.NewChunks)
	}
}
