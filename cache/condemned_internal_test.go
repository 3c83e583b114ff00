package cache

import (
	"bytes"
	"context"
	"crypto/rand"
	"path/filepath"
	"strings"
	"sync/atomic"
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
	b, err := storage.CreateLocal(filepath.Join(dir, "storage"))
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

// Blobs this process wrote whose index entries wait for Sync (CommitNoSync:
// the mount) go through gc's marks as the index's do: a pack gc marked (a
// short --grace) is not reused, and a reuse decided before the mark is
// checked again at Commit. They were reused unchecked, and the version
// pointed at a pack gc then deleted ("pack not in storage").
func TestReuseOfCondemnedPendingPacks(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b, err := storage.CreateLocal(filepath.Join(dir, "storage"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewStore(b, filepath.Join(dir, "index.db"), DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	put := func(w *Writer, data []byte) PutStats {
		t.Helper()
		_, st, err := w.PutFile(ctx, bytes.NewReader(data), nil)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	packsNow := func() []string {
		var ids []string
		s.Packs(ctx, func(p PackInfo, _ error) error { ids = append(ids, p.ID); return nil })
		return ids
	}
	data := make([]byte, 1<<20)
	rand.Read(data)
	w := s.NewWriter()
	put(w, data)
	if err := w.CommitNoSync(ctx); err != nil {
		t.Fatal(err)
	}
	ids := packsNow()
	if err := s.Condemn(ctx, ids, "test"); err != nil {
		t.Fatal(err)
	}
	w = s.NewWriter()
	if st := put(w, data); st.NewChunks == 0 {
		t.Fatal("chunks of a marked pack, not synced to the index yet, reused")
	}
	if err := w.CommitNoSync(ctx); err != nil {
		t.Fatal(err)
	}
	w = s.NewWriter()
	if st := put(w, data); st.NewChunks != 0 {
		t.Fatalf("%d chunks stored a third time: the pending entries still name the marked pack", st.NewChunks)
	}
	if err := w.CommitNoSync(ctx); err != nil {
		t.Fatal(err)
	}

	// Reused, then marked before the commit: the commit checks again.
	defer func(d time.Duration) { reuseRecheck = d }(reuseRecheck)
	reuseRecheck = 0
	more := make([]byte, 1<<20)
	rand.Read(more)
	w = s.NewWriter()
	put(w, more)
	if err := w.CommitNoSync(ctx); err != nil {
		t.Fatal(err)
	}
	w = s.NewWriter()
	if st := put(w, more); st.NewChunks != 0 {
		t.Fatalf("%d new chunks: want all reused", st.NewChunks)
	}
	if err := s.Condemn(ctx, packsNow(), "test"); err != nil {
		t.Fatal(err)
	}
	if err := w.CommitNoSync(ctx); err != ErrReusedPackCondemned {
		t.Fatalf("commit after the marks: %v, want ErrReusedPackCondemned", err)
	}
}

// hangingMarks is storage whose listing of gc's marks hangs until its
// caller gives up (a hung S3 server), counting the listings.
type hangingMarks struct {
	storage.Backend
	lists atomic.Int32
}

func (h *hangingMarks) List(ctx context.Context, prefix string, fn func(storage.Info) error) error {
	if strings.HasPrefix(prefix, "gc/") {
		h.lists.Add(1)
		<-ctx.Done()
		return ctx.Err()
	}
	return h.Backend.List(ctx, prefix, fn)
}

// With the storage away, a save of content the instance already stores
// must not wait for the marks: each such close ran the whole retry budget
// (a minute on a hung server). The listing is bounded, and a failed one is
// not tried again for a while; nothing is reused meanwhile.
func TestReuseWithMarksUnreachable(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	local, err := storage.CreateLocal(filepath.Join(dir, "storage"))
	if err != nil {
		t.Fatal(err)
	}
	b := &hangingMarks{Backend: local}
	s, err := NewStore(b, filepath.Join(dir, "index.db"), DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	defer func(w, r time.Duration) { condemnedWait, condemnedRetry = w, r }(condemnedWait, condemnedRetry)
	condemnedWait, condemnedRetry = 200*time.Millisecond, time.Hour
	data := make([]byte, 256<<10)
	rand.Read(data)
	for i := range 4 {
		w := s.NewWriter()
		start := time.Now()
		_, st, err := w.PutFile(ctx, bytes.NewReader(data), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("save %d took %v with the marks unreachable", i, d)
		}
		if i > 0 && st.NewChunks == 0 {
			t.Fatalf("save %d reused chunks though the marks could not be listed", i)
		}
	}
	if n := b.lists.Load(); n != 1 {
		t.Fatalf("the marks were listed %d times; want one try, then none for condemnedRetry", n)
	}
}
