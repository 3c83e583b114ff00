package dataset

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
)

// rangeReader records every range read.
type rangeReader struct {
	f      *os.File
	mu     sync.Mutex
	ranges [][2]int64
}

func (r *rangeReader) ReadAt(b []byte, off int64) (int, error) {
	r.mu.Lock()
	r.ranges = append(r.ranges, [2]int64{off, off + int64(len(b))})
	r.mu.Unlock()
	return r.f.ReadAt(b, off)
}

// Reading obs, var and the shape of X never reads a byte of X's data.
func TestObsDoesNotReadX(t *testing.T) {
	f, err := os.Open("../../shared/data/samples/pbmc_small.h5ad")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	rr := &rangeReader{f: f}
	h, err := openHDF5(rr, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	root, err := h.object(h.root, "/")
	if err != nil {
		t.Fatal(err)
	}
	rn := h5node{root}
	for _, slot := range []string{"obs", "var"} {
		g, err := rn.child(slot)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := readFrame(g, slot); err != nil {
			t.Fatal(err)
		}
	}
	x, _ := rn.child("X")
	if s, err := matrixShape(x); err != nil || len(s) != 2 || s[0] != 315 || s[1] != 50 {
		t.Fatalf("shape %v, %v", s, err)
	}

	// Where X's data lives, found with a reader that is not watched.
	h2, _ := openHDF5(f, st.Size())
	r2, _ := h2.object(h2.root, "/")
	xg, _ := r2.child("X")
	var xr [][2]int64
	xbytes := int64(0)
	for _, name := range []string{"data", "indices"} {
		d, err := xg.child(name)
		if err != nil {
			t.Fatal(err)
		}
		d.rawDataRanges(t, func(start, end int64) { xr = append(xr, [2]int64{start, end}); xbytes += end - start })
	}
	if len(xr) == 0 || xbytes < 1000 {
		t.Fatalf("X data found in %d ranges, %d bytes: the test sees nothing to avoid", len(xr), xbytes)
	}
	for _, r := range rr.ranges {
		for _, x := range xr {
			if r[0] < x[1] && x[0] < r[1] {
				t.Fatalf("read %v overlaps X data at %v", r, x)
			}
		}
	}
	t.Logf("%d reads; X data (%d bytes in %d chunks) untouched", len(rr.ranges), xbytes, len(xr))
}

// rawDataRanges reports the file ranges of a dataset's stored data.
func (o *h5object) rawDataRanges(t *testing.T, fn func(start, end int64)) {
	lb := o.msg(msgLayout)
	d := &decoder{b: lb}
	d.u8()
	switch d.u8() {
	case 1:
		addr := d.addr(8)
		size := d.u64()
		fn(int64(addr), int64(addr+size))
	case 2:
		rank := int(d.u8())
		btree := d.addr(8)
		err := o.f.walkChunks(btree, rank, 0, func(_ int64, _ uint32, addr uint64, size uint32) error {
			fn(int64(addr), int64(addr)+int64(size))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("%s: compact layout", o.name)
	}
}

// globalCollection is a global heap collection of the objects objs[i]
// numbered idx[i], in that order, then free space.
func globalCollection(idx []uint16, objs [][]byte) []byte {
	b := []byte("GCOL\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00")
	for i, o := range objs {
		b = binary.LittleEndian.AppendUint16(b, idx[i])
		b = append(b, 0, 0, 0, 0, 0, 0)
		b = binary.LittleEndian.AppendUint64(b, uint64(len(o)))
		b = append(b, o...)
		b = append(b, make([]byte, (8-len(o)%8)%8)...)
	}
	b = append(b, make([]byte, 16)...) // free space: index 0
	binary.LittleEndian.PutUint64(b[8:], uint64(len(b)))
	return b
}

// Every object of a collection is found, in any order, without scanning
// the collection for each: 16,384 strings took 6 s, read one by one
// (each a scan from the collection's start).
func TestGlobalHeapIndexed(t *testing.T) {
	const n = 16384
	idx := make([]uint16, n)
	objs := make([][]byte, n)
	for i := range n {
		idx[i] = uint16(n - i) // stored last to first
		objs[i] = fmt.Appendf(nil, "s%d", n-i)
	}
	coll := globalCollection(idx, objs)
	f := &h5file{r: bytes.NewReader(coll), size: int64(len(coll)), heaps: map[uint64][]byte{}}
	for i := uint32(1); i <= n; i++ {
		b, err := f.globalObject(0, i)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("s%d", i); string(b) != want {
			t.Fatalf("object %d is %q, want %q", i, b, want)
		}
	}
	// Indexed once, kept with the collection (no timing: BenchmarkH5adStringIndex measures).
	if h := f.gheaps[0]; h == nil || len(h.objs) < n {
		t.Errorf("the collection's index was not kept: %v", h)
	}
	if _, err := f.globalObject(0, n+1); err == nil {
		t.Error("an object not in the collection was found")
	}

	// Of two objects with one number (damaged), the first is found; one
	// that overruns the collection is an error, the ones before it found.
	coll = globalCollection([]uint16{2, 1, 2, 3}, [][]byte{[]byte("a"), []byte("b"), []byte("c"), []byte("d")})
	binary.LittleEndian.PutUint64(coll[16+3*24+8:], 1<<20) // object 3's size
	f = &h5file{r: bytes.NewReader(coll), size: int64(len(coll)), heaps: map[uint64][]byte{}}
	for i, want := range []string{"", "b", "a"} {
		if b, err := f.globalObject(0, uint32(i)); i > 0 && (err != nil || string(b) != want) {
			t.Errorf("object %d: %q, %v; want %q", i, b, err, want)
		}
	}
	if _, err := f.globalObject(0, 3); err == nil || !strings.Contains(err.Error(), "overruns") {
		t.Errorf("object 3 overrunning its collection: %v", err)
	}
}
