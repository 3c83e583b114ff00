package stage_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/stage"
	"github.com/lamina-bio/lamina/storage"
)

func (e *env) streamingStage(t *testing.T) *stage.Stage {
	s, err := stage.New(e.cat, e.store, stage.Options{Dir: e.dir, User: "t", StreamAfter: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// writeSeq writes data to f in 256 KiB pieces, in order.
func writeSeq(t *testing.T, f *stage.File, data []byte, at int64) {
	t.Helper()
	for off := 0; off < len(data); off += 256 << 10 {
		end := min(off+256<<10, len(data))
		if _, err := f.WriteAt(context.Background(), data[off:end], at+int64(off)); err != nil {
			t.Fatal(err)
		}
	}
}

// A file written in order is stored while it is written; what is committed
// is byte-equal, and the same bytes again make no new version.
func TestStreamSequential(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s := e.streamingStage(t)
	data := randomBytes(12 << 20)
	for i := 0; i < 2; i++ {
		f, err := s.Create(ctx, "big.bin", 0o644)
		if err != nil {
			t.Fatal(err)
		}
		writeSeq(t, f, data, 0)
		if err := f.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		f.Release(ctx)
	}
	if got := e.content(t, "big.bin"); got != string(data) {
		t.Fatal("committed content differs")
	}
	vs, _ := e.cat.Versions(ctx, "big.bin", false)
	if len(vs) != 1 {
		t.Fatalf("%d versions of identical bytes", len(vs))
	}
	if streamed, _ := s.StreamStats(); streamed != 2 {
		t.Fatalf("streamed %d commits, want 2", streamed)
	}
}

// A write back at the start (HDF5 rewrites its superblock at close) voids
// the stream; the commit stores the final bytes through the same session.
func TestStreamRewriteAtStart(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s := e.streamingStage(t)
	data := randomBytes(6 << 20)
	f, _ := s.Create(ctx, "x.h5ad", 0o644)
	writeSeq(t, f, data, 0)
	header := randomBytes(512)
	f.WriteAt(ctx, header, 0)
	copy(data, header)
	writeSeq(t, f, data[5<<20:], 5<<20) // and once more at the end
	if err := f.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	f.Release(ctx)
	if got := e.content(t, "x.h5ad"); got != string(data) {
		t.Fatal("committed content differs")
	}
	if streamed, reused := s.StreamStats(); streamed != 0 || reused != 1 {
		t.Fatalf("streamed %d, reused %d; want 0 and 1", streamed, reused)
	}
}

// Truncating drops the stream; a file removed before close leaves nothing.
func TestStreamTruncateAndUnlink(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s := e.streamingStage(t)
	f, _ := s.Create(ctx, "t.bin", 0o644)
	writeSeq(t, f, randomBytes(3<<20), 0)
	if err := f.Truncate(ctx, 0); err != nil {
		t.Fatal(err)
	}
	small := randomBytes(3 << 20)
	writeSeq(t, f, small, 0)
	if err := f.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	f.Release(ctx)
	if got := e.content(t, "t.bin"); !bytes.Equal([]byte(got), small) {
		t.Fatal("content after truncate differs")
	}

	g, _ := s.Create(ctx, "gone.bin", 0o644)
	writeSeq(t, g, randomBytes(3<<20), 0)
	if err := s.Unlink(ctx, "gone.bin"); err != nil {
		t.Fatal(err)
	}
	g.Flush(ctx)
	g.Release(ctx)
	if _, err := e.cat.ByKey(ctx, "gone.bin", 0); err == nil {
		t.Fatal("a file removed before close was committed")
	}
}

// A commit whose request was interrupted (a signal to the closing
// process cancels the FUSE request's context) still records the version.
func TestCommitIgnoresCancel(t *testing.T) {
	e := newEnv(t)
	s := e.stage(t)
	ctx, cancel := context.WithCancel(context.Background())
	f, err := s.Create(ctx, "c.txt", 0o644)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt(ctx, []byte("kept"), 0)
	cancel()
	if err := f.Flush(ctx); err != nil {
		t.Fatalf("flush with a cancelled context: %v", err)
	}
	f.Release(context.Background())
	if got := e.content(t, "c.txt"); got != "kept" {
		t.Fatalf("content %q", got)
	}
}

// listedMarks is storage that counts the listings of gc's marks that
// returned.
type listedMarks struct {
	storage.Backend
	lists atomic.Int32
}

func (l *listedMarks) List(ctx context.Context, prefix string, fn func(storage.Info) error) error {
	err := l.Backend.List(ctx, prefix, fn)
	if strings.HasPrefix(prefix, "gc/") {
		l.lists.Add(1)
	}
	return err
}

// A file stored while written that reused data gc marked meanwhile is
// stored again at its close, which returns 0 for the version that lands:
// close(2) said EIO, and the retry at RELEASE committed the version a
// moment later (cp reported a failure for data that was saved).
func TestStreamReusingMarkedDataCommitsAtClose(t *testing.T) {
	ctx := context.Background()
	tmp := t.TempDir()
	cat, err := catalog.OpenBolt(filepath.Join(tmp, "c.db"), catalog.BoltOptions{Hold: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	local, err := storage.CreateLocal(filepath.Join(tmp, "storage"))
	if err != nil {
		t.Fatal(err)
	}
	b := &listedMarks{Backend: local}
	store, err := cache.NewStore(b, filepath.Join(tmp, "idx.db"), cache.DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	cache.SetReuseRecheck(t, 0)
	s, err := stage.New(cat, store, stage.Options{Dir: filepath.Join(tmp, "staging"), User: "t", StreamAfter: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	data := randomBytes(12 << 20)
	w := store.NewWriter()
	if _, _, err := w.PutFile(ctx, bytes.NewReader(data), nil); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	marked := map[string]bool{}
	var ids []string
	store.Packs(ctx, func(p cache.PackInfo, _ error) error { ids = append(ids, p.ID); marked[p.ID] = true; return nil })

	f, err := s.Create(ctx, "big.bin", 0o644)
	if err != nil {
		t.Fatal(err)
	}
	writeSeq(t, f, data, 0)
	// The stream decided to reuse its first chunks on a list of marks
	// taken before gc marks their packs.
	if !waitFor(func() bool { return b.lists.Load() > 0 }) {
		t.Fatal("the stream never looked at gc's marks")
	}
	if err := store.Condemn(ctx, ids, "test"); err != nil {
		t.Fatal(err)
	}
	if err := f.Flush(ctx); err != nil {
		t.Fatalf("close: %v; want the staged file stored again", err)
	}
	f.Release(ctx)
	v, err := cat.ByKey(ctx, "big.bin", 0)
	if err != nil {
		t.Fatal(err)
	}
	m, err := store.LoadManifest(ctx, cache.Ref(v.Manifest))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range m.Files[0].Chunks {
		if marked[c.Pack] {
			t.Fatalf("the version uses pack %s, which gc marked", c.Pack)
		}
	}
	got, _ := io.ReadAll(store.Open(m.Files[0]))
	if !bytes.Equal(got, data) {
		t.Fatal("committed content differs")
	}
}
