package cache_test

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/storage"
)

// Commits without sync (the mount's closes) leave the index file alone until
// Store.Sync; the Store's own sessions deduplicate against them meanwhile,
// and another process (a second Store on the same files) after Sync.
func TestCommitNoSyncIndexesAtSync(t *testing.T) {
	ctx := context.Background()
	root, idx := t.TempDir(), filepath.Join(t.TempDir(), "index.db")
	open := func() *cache.Store {
		b, err := storage.CreateLocal(root)
		if err != nil {
			t.Fatal(err)
		}
		s, err := cache.NewStore(b, idx, cache.DefaultParams)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	put := func(s *cache.Store, data []byte, commit func(*cache.Writer) error) cache.PutStats {
		t.Helper()
		w := s.NewWriter()
		_, st, err := w.PutFile(ctx, bytes.NewReader(data), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := commit(w); err != nil {
			t.Fatal(err)
		}
		return st
	}
	noSync := func(w *cache.Writer) error { return w.CommitNoSync(ctx) }
	abort := func(w *cache.Writer) error { w.Abort(); return nil }

	daemon := open()
	small, big := randomBytes(7, 4096), randomBytes(8, 3<<20)
	for _, data := range [][]byte{small, big} {
		if st := put(daemon, data, noSync); st.NewChunks == 0 {
			t.Fatalf("first put stored nothing: %+v", st)
		}
		if st := put(daemon, data, noSync); st.NewChunks != 0 {
			t.Fatalf("the same bytes in a new session of the same Store: %+v, want nothing new", st)
		}
	}
	if st := put(open(), small, abort); st.NewChunks != 1 {
		t.Fatalf("another process before Sync: %+v, want the chunk stored again (the index waits for Sync)", st)
	}
	if err := daemon.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	other := open()
	for _, data := range [][]byte{small, big} {
		if st := put(other, data, abort); st.NewChunks != 0 {
			t.Fatalf("another process after Sync: %+v, want nothing new", st)
		}
	}
	// What the index points at reads back.
	w := other.NewWriter()
	f, _, err := w.PutFile(ctx, bytes.NewReader(big), nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Abort()
	var got bytes.Buffer
	if _, err := other.Open(f).WriteToContext(ctx, &got, nil); err != nil || !bytes.Equal(got.Bytes(), big) {
		t.Fatalf("read back through the index's locations: %v", err)
	}
}
