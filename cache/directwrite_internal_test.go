package cache

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// residentPages counts the pages of file p in the page cache (mincore of
// a mapping, which reads nothing).
func residentPages(t *testing.T, p string) int {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	m, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	vec := make([]byte, (len(m)+os.Getpagesize()-1)/os.Getpagesize())
	if _, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
		t.Fatal(e)
	}
	n := 0
	for _, v := range vec {
		n += int(v & 1)
	}
	return n
}

// A block lands whole, and its whole pages never enter the page cache:
// the cold read's CPU went there (writeBlockFile).
func TestBlockFileBypassesPageCache(t *testing.T) {
	buf := newPoolBuf(4<<20 + directAlign)
	defer unix.Munmap(buf.b)
	data := buf.b[:4<<20+100] // a pack's short tail after whole pages
	r := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	dir := t.TempDir()
	var noDirect atomic.Bool
	p := filepath.Join(dir, "block")
	if err := writeBlockFile(p, data, &noDirect); err != nil {
		t.Fatal(err)
	}
	if noDirect.Load() {
		t.Skip("the test folder's file system refuses O_DIRECT")
	}
	if n := residentPages(t, p); n > 1 {
		t.Errorf("%d pages of the block in the page cache after its write; want at most the tail's", n)
	}
	got, err := os.ReadFile(p)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("block read back: %d bytes, err %v; want the %d written", len(got), err, len(data))
	}

	// Unaligned buffers and short blocks go through the page cache, whole.
	for name, d := range map[string][]byte{"unaligned": data[1:], "short": data[:100], "pages": data[:2*directAlign]} {
		p := filepath.Join(dir, name)
		if err := writeBlockFile(p, d, &noDirect); err != nil {
			t.Fatal(name, err)
		}
		if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, d) {
			t.Errorf("%s: read back %d bytes, err %v; want %d", name, len(got), err, len(d))
		}
	}
	// The file must be new: an existing block is never written over.
	if err := writeBlockFile(p, data, &noDirect); !os.IsExist(err) {
		t.Errorf("writing over an existing block: %v, want it to exist", err)
	}
}

// A file system that refuses O_DIRECT gets plain files from then on.
func TestBlockFileWithoutDirect(t *testing.T) {
	var noDirect atomic.Bool
	noDirect.Store(true)
	buf := newPoolBuf(2 * directAlign)
	defer unix.Munmap(buf.b)
	for i := range buf.b {
		buf.b[i] = byte(i)
	}
	p := filepath.Join(t.TempDir(), "block")
	if err := writeBlockFile(p, buf.b, &noDirect); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); !bytes.Equal(got, buf.b) {
		t.Error("block read back differs")
	}
}
