package fs_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/cache"
	lfs "github.com/lamina-bio/lamina/fs"
)

// chunksOf returns the chunks of a saved file version and where each starts.
func chunksOf(t *testing.T, w *world, manifest string) ([]cache.Chunk, []int64) {
	t.Helper()
	m, err := w.in.Store.LoadManifest(context.Background(), cache.Ref(manifest))
	if err != nil {
		t.Fatal(err)
	}
	cs := m.Files[0].Chunks
	offs := make([]int64, len(cs))
	var off int64
	for i, c := range cs {
		offs[i] = off
		off += c.Size
	}
	return cs, offs
}

// TestRandomReadStoresChunkInKernel: a small random read fetches and
// verifies a whole chunk; the mount puts all of it into the kernel's page
// cache, so further small reads in that chunk never reach the daemon, and
// return the right bytes.
func TestRandomReadStoresChunkInKernel(t *testing.T) {
	w := newWorld(t)
	data := random(16 << 20)
	v := w.save("r.bin", data)
	chunks, offs := chunksOf(t, w, v.Manifest)
	w.mount(lfs.MountOptions{})
	f, err := os.Open(filepath.Join(w.dir, "r.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// A chunk far from the start: a first read there is not sequential.
	k := len(chunks) * 3 / 4
	cs, size := offs[k], chunks[k].Size
	buf := make([]byte, 100)
	if _, err := f.ReadAt(buf, cs+size/2); err != nil || !bytes.Equal(buf, data[cs+size/2:cs+size/2+100]) {
		t.Fatalf("first read: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for w.mnt.Stats().ChunkCache.Stored == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the chunk was not stored in the kernel's page cache")
		}
		time.Sleep(10 * time.Millisecond)
	}
	st := w.mnt.Stats().ChunkCache
	requests := st.Hits + st.Misses // every READ that reaches the daemon looks up chunks
	// The pages the chunk covers whole, 4 KiB at a time.
	page := int64(os.Getpagesize())
	from, to := (cs+page-1)/page*page, (cs+size)/page*page
	got := make([]byte, page)
	for off := from; off < to; off += page {
		if _, err := f.ReadAt(got, off); err != nil || !bytes.Equal(got, data[off:off+page]) {
			t.Fatalf("read at %d: %v, or wrong bytes", off, err)
		}
	}
	if st = w.mnt.Stats().ChunkCache; st.Hits+st.Misses != requests {
		t.Fatalf("%d READs of the stored chunk reached the daemon", st.Hits+st.Misses-requests)
	}
}

// TestDamagedPackGivesEIO: a chunk whose stored bytes were damaged is
// refused with EIO, whether a READ covers the whole chunk (read straight
// into the reply) or a part of it (through the chunk cache); the other
// chunks still read.
func TestDamagedPackGivesEIO(t *testing.T) {
	w := newWorld(t)
	data := random(8 << 20)
	v := w.save("d.bin", data)
	chunks, offs := chunksOf(t, w, v.Manifest)
	k := len(chunks) / 2
	c := chunks[k]
	p := filepath.Join(w.in.Settings.Storage, "packs", c.Pack[:2], c.Pack)
	fh, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	one := make([]byte, 1)
	fh.ReadAt(one, c.Off+c.Len/2)
	one[0] ^= 0x55
	fh.WriteAt(one, c.Off+c.Len/2)
	fh.Close()
	for _, tc := range []struct {
		name     string
		off, len int64
	}{
		{"PartOfTheChunk", offs[k] + c.Size/2, 10},
		{"WholeChunkInOneRead", offs[k] / 4096 * 4096, 1 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w.mount(lfs.MountOptions{}) // a fresh mount: nothing in the kernel's cache
			f, err := os.Open(filepath.Join(w.dir, "d.bin"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.ReadAt(make([]byte, tc.len), tc.off); !errors.Is(err, syscall.EIO) {
				t.Fatalf("read of a damaged chunk: %v, want EIO", err)
			}
			other := offs[k+2]
			got := make([]byte, 1000)
			if _, err := f.ReadAt(got, other); err != nil || !bytes.Equal(got, data[other:other+1000]) {
				t.Fatalf("read of an undamaged chunk: %v", err)
			}
		})
	}
}
