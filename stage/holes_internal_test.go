package stage

import (
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// holeReader reads what ReadAt reads, at any offset and length, across
// holes, data, and the end of the file.
func TestHoleReaderReadsAsReadAt(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := rand.New(rand.NewPCG(5, 6))
	if err := f.Truncate(9 << 20); err != nil {
		t.Fatal(err)
	}
	for _, off := range []int64{0, 4095, 1 << 20, 3<<20 + 17, 9<<20 - 100} {
		b := make([]byte, 5000+r.IntN(100000))
		for i := range b {
			b[i] = byte(r.Uint32() | 1)
		}
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Truncate(12<<20 + 3); err != nil { // a hole at the end
		t.Fatal(err)
	}
	want, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	h := newHoleReader(f, int64(len(want)))
	if h.locate(5 << 20); !h.hole && !h.noSeek {
		t.Fatalf("5 MiB is in a hole, not in data [%d, %d)", h.from, h.to)
	} else if h.noSeek {
		t.Log("this file system does not say where holes are: read throughout")
	}
	for i := 0; i < 2000; i++ {
		off := r.Int64N(int64(len(want)) + 10)
		p := make([]byte, r.IntN(3<<20))
		if i%3 == 0 {
			off = int64(len(want)) - int64(len(p)/2) // across the end
		}
		off = max(off, 0)
		n, err := h.ReadAt(p, off)
		m := max(0, min(len(p), len(want)-int(off)))
		if n != m || !bytes.Equal(p[:n], want[off:off+int64(n)]) {
			t.Fatalf("ReadAt(%d bytes at %d): %d bytes, want %d, or other bytes", len(p), off, n, m)
		}
		if (n < len(p)) != (err == io.EOF) {
			t.Fatalf("ReadAt(%d bytes at %d): %d bytes, err %v", len(p), off, n, err)
		}
	}
	// Sequentially, as a commit reads it.
	got, err := io.ReadAll(io.NewSectionReader(h, 0, int64(len(want))))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read through: %d bytes of %d, %v", len(got), len(want), err)
	}
}
