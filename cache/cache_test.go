package cache_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/ref"
	"github.com/lamina-bio/lamina/storage"
)

func newStore(t testing.TB) (*cache.Store, *storage.Local) {
	t.Helper()
	b, err := storage.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s, err := cache.NewStore(b, filepath.Join(t.TempDir(), "index.db"), cache.DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	return s, b
}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func chunks(t *testing.T, data []byte, p cache.Params) [][]byte {
	t.Helper()
	c, err := cache.NewChunker(bytes.NewReader(data), p)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for {
		b, err := c.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, append([]byte(nil), b...))
	}
}

func TestChunkerBoundsAndReassembly(t *testing.T) {
	p := cache.DefaultParams
	for _, n := range []int{0, 1, p.Min - 1, p.Min, p.Max, p.Max + 1, 5 << 20} {
		data := randomBytes(uint64(n), n)
		cs := chunks(t, data, p)
		if got := bytes.Join(cs, nil); !bytes.Equal(got, data) {
			t.Fatalf("n=%d: chunks do not reassemble", n)
		}
		for i, c := range cs {
			if len(c) > p.Max || (len(c) < p.Min && i != len(cs)-1) {
				t.Fatalf("n=%d: chunk %d has size %d outside [%d,%d]", n, i, len(c), p.Min, p.Max)
			}
		}
	}
}

// The boundaries of a fixed stream, pinned: they are the storage format (a
// change to the gear table, the masks or the cut would dedup nothing against
// chunks already stored), so a change fails here before it reaches a store.
func TestChunkerBoundariesPinned(t *testing.T) {
	h := ref.NewHasher()
	cs := chunks(t, randomBytes(12, 8<<20), cache.DefaultParams)
	for _, c := range cs {
		h.Write([]byte{byte(len(c) >> 16), byte(len(c) >> 8), byte(len(c))})
	}
	if got := h.Digest().String()[:16]; got != "46e5182ba204b766" {
		t.Fatalf("%d chunks, boundaries digest %s", len(cs), got)
	}
}

// An insert near the start must not move the boundaries after it: that is
// what content-defined chunking is for.
func TestChunkerResynchronisesAfterInsert(t *testing.T) {
	data := randomBytes(1, 4<<20)
	edited := append(append(append([]byte(nil), data[:1000]...), []byte("inserted bytes")...), data[1000:]...)
	set := map[ref.Digest]bool{}
	for _, c := range chunks(t, data, cache.DefaultParams) {
		set[ref.Sum(c)] = true
	}
	cs := chunks(t, edited, cache.DefaultParams)
	shared := 0
	for _, c := range cs {
		if set[ref.Sum(c)] {
			shared++
		}
	}
	if shared < len(cs)-3 {
		t.Fatalf("only %d of %d chunks shared after a 14-byte insert", shared, len(cs))
	}
}

func TestPutFileRoundTripAndDedup(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	text := bytes.Repeat([]byte("gene_id,cell,count\nENSG0001,AAAC,3\n"), 100000)
	data := append(randomBytes(2, 3<<20), text...)
	w := s.NewWriter()
	f, st, err := w.PutFile(ctx, bytes.NewReader(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if f.Size != int64(len(data)) || f.Digest != ref.Sum(data) {
		t.Fatalf("size %d digest %s; want %d %s", f.Size, f.Digest, len(data), ref.Sum(data))
	}
	if st.NewChunks == 0 || st.StoredBytes >= st.Bytes {
		t.Fatalf("stats %+v: want new chunks and compression of the text half", st)
	}
	// The same bytes again, in a new session, store nothing.
	w2 := s.NewWriter()
	defer w2.Abort()
	_, st2, err := w2.PutFile(ctx, bytes.NewReader(data), nil)
	if err != nil || st2.NewChunks != 0 || st2.StoredBytes != 0 {
		t.Fatalf("second put: %+v, %v; want nothing new", st2, err)
	}
	var out bytes.Buffer
	if _, err := s.Open(f).WriteToContext(ctx, &out, nil); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), data) {
		t.Fatal("WriteTo returned other bytes")
	}
	// Random reads touch the right chunks.
	r := s.Open(f)
	rng := rand.New(rand.NewPCG(3, 3))
	for i := 0; i < 200; i++ {
		off := rng.Int64N(int64(len(data)))
		buf := make([]byte, rng.IntN(300000))
		n, err := r.ReadAt(buf, off)
		want := data[off:min(int(off)+len(buf), len(data))]
		if n != len(want) || !bytes.Equal(buf[:n], want) || (n < len(buf) && err != io.EOF) {
			t.Fatalf("ReadAt(%d, %d) = %d, %v", off, len(buf), n, err)
		}
	}
}

func TestEmptyFile(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	w := s.NewWriter()
	f, _, err := w.PutFile(ctx, bytes.NewReader(nil), nil)
	if err != nil || f.Size != 0 || f.Digest != ref.Sum(nil) {
		t.Fatalf("empty: %+v %v", f, err)
	}
	d, err := w.PutManifest(ctx, &cache.Manifest{Kind: cache.KindFile, Files: []cache.File{f}})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	m, err := s.LoadManifest(ctx, d)
	if err != nil || m.Size() != 0 {
		t.Fatalf("load: %+v %v", m, err)
	}
}

func TestCorruptChunkIsDetected(t *testing.T) {
	ctx := context.Background()
	s, b := newStore(t)
	data := randomBytes(4, 100000)
	w := s.NewWriter()
	f, _, err := w.PutFile(ctx, bytes.NewReader(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	var names []string
	b.List(ctx, "packs/", func(i storage.Info) error { names = append(names, i.Name); return nil })
	p := filepath.Join(b.Root(), names[0])
	obj, _ := os.ReadFile(p)
	obj[f.Chunks[0].Off+10] ^= 0xff
	os.WriteFile(p, obj, 0o644)
	if _, err := s.Open(f).ReadAt(make([]byte, 10), 0); !errors.Is(err, cache.ErrCorrupt) {
		t.Fatalf("read of corrupt chunk: %v, want ErrCorrupt", err)
	}
}

func TestFolderManifest(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "X", "0"), 0o755)
	os.WriteFile(filepath.Join(dir, ".zattrs"), []byte(`{"a":1}`), 0o644)
	os.WriteFile(filepath.Join(dir, "X", "0", "0"), randomBytes(5, 70000), 0o644)
	w := s.NewWriter()
	m, _, err := w.PutFolder(ctx, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Files) != 2 || m.Files[0].Path != ".zattrs" || m.Files[1].Path != "X/0/0" {
		t.Fatalf("files: %+v", m.Files)
	}
	d, err := w.PutManifest(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := s.LoadManifest(ctx, d)
	if err != nil || got.Digest() != m.Digest() {
		t.Fatalf("reload: %v", err)
	}
	// The folder digest depends on content and paths only.
	w2 := s.NewWriter()
	defer w2.Abort()
	m2, _, _ := w2.PutFolder(ctx, dir, nil)
	if m2.Digest() != m.Digest() {
		t.Fatal("folder digest not stable")
	}
	os.WriteFile(filepath.Join(dir, ".zattrs"), []byte(`{"a":2}`), 0o644)
	m3, _, _ := w2.PutFolder(ctx, dir, nil)
	if m3.Digest() == m.Digest() {
		t.Fatal("folder digest ignores content")
	}
}

func FuzzDecodeManifest(f *testing.F) {
	f.Add([]byte(`{"format":1,"kind":"file","files":[{"size":3,"digest":"` + ref.Sum([]byte("abc")).String() + `","chunks":[{"d":"` + ref.Sum([]byte("abc")).String() + `","n":3,"p":"0123456789abcdef0123456789abcdef","o":0,"l":4}]}]}`))
	f.Add([]byte(`{"format":1,"kind":"folder","files":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := cache.DecodeManifest(b)
		if err != nil {
			return
		}
		if m.Kind != cache.KindFile && m.Kind != cache.KindFolder {
			t.Fatalf("accepted kind %q", m.Kind)
		}
		var n int64
		for _, f := range m.Files {
			n += f.Size
		}
		if n != m.Size() {
			t.Fatal("size mismatch")
		}
	})
}

// TestIndexRebuildBelowBlockCache: on S3 a rebuild reads each pack's
// trailer (two small ranges) from the storage, not through the block
// cache, which would fetch a whole block of every pack and evict what
// reads use.
func TestIndexRebuildBelowBlockCache(t *testing.T) {
	ctx := context.Background()
	b, err := storage.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	d, err := cache.OpenDiskCache(b, t.TempDir(), cache.DiskCacheOptions{BlockSize: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	idx := filepath.Join(t.TempDir(), "index.db")
	s, _ := cache.NewStore(d, idx, cache.DefaultParams)
	data := randomBytes(8, 3<<20)
	w := s.NewWriter()
	if _, _, err := w.PutFile(ctx, bytes.NewReader(data), nil); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	os.Remove(idx)
	s2, _ := cache.NewStore(d, idx, cache.DefaultParams)
	before := d.Info()
	if n, err := s2.RebuildIndex(ctx, nil); err != nil || n == 0 {
		t.Fatalf("rebuild: %d, %v", n, err)
	}
	if after := d.Info(); after.Fetched != before.Fetched || after.Blocks != before.Blocks {
		t.Fatalf("the rebuild read through the block cache: fetched %d → %d bytes, %d → %d blocks", before.Fetched, after.Fetched, before.Blocks, after.Blocks)
	}
	w2 := s2.NewWriter()
	defer w2.Abort()
	if _, st, err := w2.PutFile(ctx, bytes.NewReader(data), nil); err != nil || st.NewChunks != 0 {
		t.Fatalf("after rebuild: %+v, %v", st, err)
	}
}

func TestPacksAndIndexRebuild(t *testing.T) {
	ctx := context.Background()
	b, err := storage.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	idx := filepath.Join(t.TempDir(), "index.db")
	s, _ := cache.NewStore(b, idx, cache.DefaultParams)
	// Enough data for several packs, with a repeated block inside one file.
	block := randomBytes(6, 1<<20)
	data := append(append(randomBytes(7, 40<<20), block...), block...)
	w := s.NewWriter()
	f, st, err := w.PutFile(ctx, bytes.NewReader(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if st.NewChunks >= st.Chunks {
		t.Fatalf("repeated block stored twice: %+v", st)
	}
	var packs, blobs int
	err = s.Packs(ctx, func(p cache.PackInfo, err error) error {
		if err != nil {
			return err
		}
		packs++
		blobs += len(p.Blobs)
		return nil
	})
	if err != nil || packs < 2 || blobs != st.NewChunks {
		t.Fatalf("packs %d blobs %d (new chunks %d): %v", packs, blobs, st.NewChunks, err)
	}
	// Lose the index: a rebuild from the trailers restores deduplication.
	os.Remove(idx)
	s2, _ := cache.NewStore(b, idx, cache.DefaultParams)
	if !s2.IndexUnbuilt() {
		t.Fatal("an index made anew is not marked unbuilt")
	}
	if n, err := s2.RebuildIndex(ctx, nil); err != nil || n != blobs {
		t.Fatalf("rebuild: %d, %v", n, err)
	}
	if s3, _ := cache.NewStore(b, idx, cache.DefaultParams); s2.IndexUnbuilt() || s3.IndexUnbuilt() {
		t.Fatal("a rebuilt index is still marked unbuilt")
	}
	w3 := s2.NewWriter()
	defer w3.Abort()
	_, st2, err := w3.PutFile(ctx, bytes.NewReader(data), nil)
	if err != nil || st2.NewChunks != 0 {
		t.Fatalf("after rebuild: %+v, %v", st2, err)
	}
	var out bytes.Buffer
	if _, err := s2.Open(f).WriteToContext(ctx, &out, nil); err != nil || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("read back: %v", err)
	}
}

func TestManifestRefParse(t *testing.T) {
	for _, bad := range []cache.Ref{"", "x", "a:b:c:d", "0123456789abcdef0123456789abcdef:x:1:" + cache.Ref(ref.Sum(nil).String())} {
		if _, _, err := bad.Parse(); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}

// onlyBackend hides the optional methods of a backend (ReadRange, Warm):
// the store must fall back to GetRange.
type onlyBackend struct{ storage.Backend }

// putMixed stores random bytes (chunks kept raw) followed by CSV-like text
// (chunks compressed) and returns the file and the bytes.
func putMixed(t *testing.T, s *cache.Store) (cache.File, []byte) {
	t.Helper()
	text := bytes.Repeat([]byte("gene_id,cell,count\nENSG0001,AAAC,3\n"), 20000)
	data := append(randomBytes(5, 1<<20), text...)
	return storeFile(t, s, data), data
}

func TestReadChunkInto(t *testing.T) {
	ctx := context.Background()
	newBackends := map[string]func(t *testing.T) storage.Backend{
		"Local": func(t *testing.T) storage.Backend {
			b, err := storage.OpenLocal(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
		"GetRangeOnly": func(t *testing.T) storage.Backend {
			b, err := storage.OpenLocal(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			return onlyBackend{b}
		},
		"DiskCache": func(t *testing.T) storage.Backend {
			b, err := storage.OpenLocal(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			d, err := cache.OpenDiskCache(b, t.TempDir(), cache.DiskCacheOptions{BlockSize: 64 << 10})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { d.Close() })
			return d
		},
	}
	for name, newBackend := range newBackends {
		t.Run(name, func(t *testing.T) {
			s, err := cache.NewStore(newBackend(t), filepath.Join(t.TempDir(), "index.db"), cache.DefaultParams)
			if err != nil {
				t.Fatal(err)
			}
			f, data := putMixed(t, s)
			raw, packed := 0, 0
			var off int64
			for _, c := range f.Chunks {
				if c.Len-1 == c.Size {
					raw++
				} else {
					packed++
				}
				// dst sits inside a larger buffer, as in a FUSE reply:
				// the bytes around it must stay untouched.
				buf := bytes.Repeat([]byte{0xAA}, int(c.Size)+2)
				if err := s.ReadChunkInto(ctx, c, buf[1:1+c.Size]); err != nil {
					t.Fatalf("chunk at %d: %v", off, err)
				}
				if !bytes.Equal(buf[1:1+c.Size], data[off:off+c.Size]) || buf[0] != 0xAA || buf[len(buf)-1] != 0xAA {
					t.Fatalf("chunk at %d: wrong bytes", off)
				}
				off += c.Size
			}
			if raw == 0 || packed == 0 {
				t.Fatalf("%d raw and %d compressed chunks: want both", raw, packed)
			}
			if err := s.ReadChunkInto(ctx, f.Chunks[0], make([]byte, f.Chunks[0].Size-1)); err == nil {
				t.Fatal("ReadChunkInto with a short buffer: no error")
			}
		})
	}
}

// TestReadChunkIntoDetectsCorruption damages a raw chunk, a compressed
// chunk and a codec byte in a local pack: each read fails with ErrCorrupt.
func TestReadChunkIntoDetectsCorruption(t *testing.T) {
	ctx := context.Background()
	s, b := newStore(t)
	f, _ := putMixed(t, s)
	var raw, packed cache.Chunk
	for _, c := range f.Chunks {
		if c.Len-1 == c.Size && raw.Size == 0 {
			raw = c
		}
		if c.Len-1 < c.Size && packed.Size == 0 {
			packed = c
		}
	}
	cases := []struct {
		name string
		c    cache.Chunk
		at   int64 // offset in the stored blob
	}{
		{"RawBody", raw, raw.Len / 2},
		{"CompressedBody", packed, packed.Len / 2},
		{"CodecByte", raw, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(b.Root(), "packs", tc.c.Pack[:2], tc.c.Pack)
			flip := func() {
				fh, err := os.OpenFile(p, os.O_RDWR, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer fh.Close()
				one := make([]byte, 1)
				fh.ReadAt(one, tc.c.Off+tc.at)
				one[0] ^= 0x55
				if _, err := fh.WriteAt(one, tc.c.Off+tc.at); err != nil {
					t.Fatal(err)
				}
			}
			flip()
			defer flip() // the next case reads the same pack
			err := s.ReadChunkInto(ctx, tc.c, make([]byte, tc.c.Size))
			if !errors.Is(err, cache.ErrCorrupt) {
				t.Fatalf("read of a damaged chunk: %v, want ErrCorrupt", err)
			}
		})
	}
}

// A pack the index names but storage no longer holds (another workstation
// of a team gc'd it; the index is per machine) is not reused: its chunks
// are stored again, and the file reads back.
func TestDedupSkipsGonePacks(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b, err := storage.CreateLocal(filepath.Join(dir, "storage"))
	if err != nil {
		t.Fatal(err)
	}
	idx := filepath.Join(dir, "index.db")
	data := randomBytes(5, 2<<20)
	put := func(s *cache.Store) (cache.File, cache.PutStats) {
		t.Helper()
		w := s.NewWriter()
		f, st, err := w.PutFile(ctx, bytes.NewReader(data), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		return f, st
	}
	s1, err := cache.NewStore(b, idx, cache.DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	put(s1)
	var packs []string
	b.List(ctx, "packs/", func(i storage.Info) error { packs = append(packs, i.Name); return nil })
	for _, p := range packs {
		if err := b.Delete(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	s2, err := cache.NewStore(b, idx, cache.DefaultParams) // the next save on this machine
	if err != nil {
		t.Fatal(err)
	}
	f, st := put(s2)
	if len(packs) == 0 || st.NewChunks == 0 {
		t.Fatalf("%d packs removed; the next save stored %d chunks: it reused chunks that are gone", len(packs), st.NewChunks)
	}
	var out bytes.Buffer
	if _, err := s2.Open(f).WriteToContext(ctx, &out, nil); err != nil || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("read back: %v", err)
	}
}
