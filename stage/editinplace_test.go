package stage_test

import (
	"bytes"
	"context"
	"fmt"
	mrand "math/rand/v2"
	"reflect"
	"testing"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/stage"
)

func pseudoRandom(seed uint64, n int) []byte {
	r := mrand.New(mrand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// A File edited in place (appended to, written in the middle, truncated,
// extended, shared by two writers) commits versions whose bytes are the
// writer's and whose content is exactly what a fresh store of those bytes
// gives (size, digest, chunks): the commit keeps the chunks before the
// first change (cache.PutFileOver) and must not keep one after it, nor the
// base's last chunk on an append.
func TestEditInPlaceCommitsAsAFullStore(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s := e.stage(t)
	const key = "d/big.db"
	model := pseudoRandom(1, 2<<20+777)
	f, err := s.Create(ctx, key, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt(ctx, model, 0)
	if err := f.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	f.Release(ctx)

	check := func(step string) {
		t.Helper()
		checkStored(t, e, key, model, step)
	}
	check("created")
	commit := func(f *stage.File, step string) {
		t.Helper()
		if err := f.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		check(step)
	}

	v, _ := e.cat.ByKey(ctx, key, 0)
	f, err = s.Open(ctx, key, v, false)
	if err != nil {
		t.Fatal(err)
	}
	m, err := e.store.LoadManifest(ctx, cache.Ref(v.Manifest))
	if err != nil {
		t.Fatal(err)
	}
	f.Append(ctx, []byte("x"))
	model = append(model, 'x')
	commit(f, "append a byte")
	// All of the version's chunks but its last, which its end cut, were
	// kept, not read, chunked and looked up again.
	if got, want := s.KeptChunks(), int64(len(m.Files[0].Chunks)-1); got != want {
		t.Fatalf("the append kept %d chunks of %d", got, want+1)
	}

	// The same File again: now over its last commit.
	f.Append(ctx, pseudoRandom(2, 200<<10))
	model = append(model, pseudoRandom(2, 200<<10)...)
	commit(f, "append 200 KiB")

	page := pseudoRandom(3, 4096)
	f.WriteAt(ctx, page, 1<<20)
	copy(model[1<<20:], page)
	f.WriteAt(ctx, page[:10], int64(len(model)-5))
	model = append(model[:len(model)-5], page[:10]...)
	commit(f, "4 KiB in the middle and 10 bytes across the end")

	f.Truncate(ctx, 1<<20+100)
	model = model[:1<<20+100]
	commit(f, "truncated")

	f.Truncate(ctx, 3<<20)
	model = append(model, make([]byte, 3<<20-len(model))...)
	commit(f, "extended with zeros")

	// Cut 50 bytes before a chunk's end and extended past it: that chunk
	// changed, though it ends before the new end.
	v, _ = e.cat.ByKey(ctx, key, 0)
	m, err = e.store.LoadManifest(ctx, cache.Ref(v.Manifest))
	if err != nil {
		t.Fatal(err)
	}
	var end int64
	for _, c := range m.Files[0].Chunks[:5] {
		end += c.Size
	}
	f.Truncate(ctx, end-50)
	f.Truncate(ctx, end+50)
	model = model[:end+50]
	clear(model[end-50:])
	commit(f, "cut and extended again before a commit")

	f.WriteAt(ctx, []byte{model[0] + 1}, 0)
	model[0]++
	f.Truncate(ctx, 2<<20)
	model = append(model, make([]byte, 2<<20-len(model))...)
	commit(f, "the first byte, then truncated")
	f.Release(ctx)

	// Two writers sharing one File: the lower of their changes counts.
	v, _ = e.cat.ByKey(ctx, key, 0)
	a, err := s.Open(ctx, key, v, false)
	if err != nil {
		t.Fatal(err)
	}
	b := s.Join(key)
	if b == nil {
		t.Fatal("no File to join")
	}
	b.Append(ctx, []byte("tail"))
	model = append(model, "tail"...)
	a.WriteAt(ctx, []byte("mid"), 777777)
	copy(model[777777:], "mid")
	b.WriteAt(ctx, []byte("end"), int64(len(model)-1))
	model = append(model[:len(model)-1], "end"...)
	commit(a, "two writers")
	a.Release(ctx)
	b.Release(ctx)
}

func firstDiff(a, b []cache.Chunk) string {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return fmt.Sprintf("chunk %d", i)
		}
	}
	return fmt.Sprintf("chunk %d", min(len(a), len(b)))
}

// checkStored checks that key's latest version holds model, stored as a
// fresh store of model would be (size, digest, chunks).
func checkStored(t *testing.T, e *env, key string, model []byte, step string) {
	t.Helper()
	ctx := context.Background()
	v, err := e.cat.ByKey(ctx, key, 0)
	if err != nil {
		t.Fatal(err)
	}
	m, err := e.store.LoadManifest(ctx, cache.Ref(v.Manifest))
	if err != nil {
		t.Fatal(err)
	}
	got := m.Files[0]
	w := e.store.NewWriter()
	want, _, err := w.PutFile(ctx, bytes.NewReader(model), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if got.Size != want.Size || got.Digest != want.Digest || !reflect.DeepEqual(got.Chunks, want.Chunks) {
		t.Fatalf("%s (v%d): stored %d bytes in %d chunks, a full store %d in %d; chunks differ from %s", step, v.Version,
			got.Size, len(got.Chunks), want.Size, len(want.Chunks), firstDiff(got.Chunks, want.Chunks))
	}
	if b := e.content(t, key); b != string(model) {
		t.Fatalf("%s: the version's bytes differ", step)
	}
}

// A sparse File (truncated up, written here and there) commits what a
// store of all its bytes, zeros included, gives; its holes are not read
// (holeReader).
func TestSparseFileCommitsAsAFullStore(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s := e.stage(t)
	const key = "d/sparse.h5"
	model := make([]byte, 20<<20)
	f, err := s.Create(ctx, key, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(ctx, int64(len(model)))
	for i, off := range []int{0, 5<<20 + 1234, 12 << 20, len(model) - 3000} {
		b := pseudoRandom(uint64(i), 70000)
		f.WriteAt(ctx, b, int64(off))
		model = append(model[:off], b...)[:max(len(model), off+len(b))]
	}
	if err := f.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	checkStored(t, e, key, model, "written sparse")
	f.Truncate(ctx, 30<<20)
	model = append(model, make([]byte, 30<<20-len(model))...)
	f.WriteAt(ctx, []byte("superblock"), 8)
	copy(model[8:], "superblock")
	if err := f.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	checkStored(t, e, key, model, "extended, then the start rewritten")
	f.Release(ctx)
	if _, err := s.Truncate(ctx, key, 64<<20); err != nil { // truncate -s by path
		t.Fatal(err)
	}
	model = append(model, make([]byte, 64<<20-len(model))...)
	checkStored(t, e, key, model, "truncated up by path")
}
