package storage

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

func randomObject(n int) []byte {
	r := rand.New(rand.NewPCG(uint64(n), 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// resident counts the pages of path in the page cache.
func resident(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
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

// Large objects of any length and alignment read back whole, and they were
// written past the page cache.
func TestLargePutsAreDirect(t *testing.T) {
	dir := t.TempDir()
	var sfs unix.Statfs_t
	if err := unix.Statfs(dir, &sfs); err != nil {
		t.Fatal(err)
	}
	l, err := CreateLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	big := randomObject(5<<20 + 4096 + 17)
	for _, c := range []struct {
		name string
		data []byte
	}{
		{"aligned", big[:4<<20]},
		{"aligned-with-tail", big[:4<<20+333]},
		{"unaligned", big[1 : 3<<20+1]},
		{"unaligned-with-tail", big[17:]},
		{"exactly-direct-min", big[:directMin]},
		{"small", big[5:4096]},
	} {
		if err := l.Put(ctx, "p/"+c.name, c.data); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		got, err := l.Get(ctx, "p/"+c.name)
		if err != nil || !bytes.Equal(got, c.data) {
			t.Fatalf("%s: read back %d bytes (want %d), equal %v, err %v", c.name, len(got), len(c.data), bytes.Equal(got, c.data), err)
		}
		if sfs.Type == unix.TMPFS_MAGIC || len(c.data) < directMin {
			continue
		}
		// Get read the object, which may have cached it: a direct write
		// leaves nothing, so look before a read on a second copy.
		if err := l.Put(ctx, "q/"+c.name, c.data); err != nil {
			t.Fatal(err)
		}
		if n := resident(t, filepath.Join(dir, "q", c.name)); n > 1 {
			t.Errorf("%s: %d pages of a direct write in the page cache", c.name, n)
		}
	}
	if l.noDirect.Load() {
		t.Fatalf("O_DIRECT was refused on %s (type %#x)", dir, sfs.Type)
	}
	if names, _ := filepath.Glob(filepath.Join(dir, "p", "*"+tmpMarker+"*")); len(names) > 0 {
		t.Fatalf("temporary files left: %v", names)
	}
}

// Where the file system refuses O_DIRECT, objects are written through the
// page cache, and the refusal is remembered.
func TestPutWithoutDirect(t *testing.T) {
	refusals := 0
	openDirect = func(name string, flag int, perm os.FileMode) (*os.File, error) {
		if flag&unix.O_DIRECT != 0 {
			refusals++
			return nil, &os.PathError{Op: "open", Path: name, Err: unix.EINVAL}
		}
		return os.OpenFile(name, flag, perm)
	}
	t.Cleanup(func() { openDirect = os.OpenFile })
	l, err := OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	data := randomObject(2<<20 + 5)
	for _, name := range []string{"a", "b"} {
		if err := l.Put(ctx, name, data); err != nil {
			t.Fatal(err)
		}
		if got, err := l.Get(ctx, name); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s: read back %d bytes, err %v", name, len(got), err)
		}
	}
	if refusals != 1 {
		t.Fatalf("O_DIRECT tried %d times, want once", refusals)
	}
}

// writeFile replaces what a path held, large or small.
func TestWriteFileReplaces(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	data := randomObject(3<<20 + 11)
	for _, d := range [][]byte{data, data[:directMin+1], data[:10], data[1:]} {
		if _, err := writeFile(p, d, 0o600, new(atomic.Bool)); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, d) {
			t.Fatalf("read back %d bytes, want %d (err %v)", len(got), len(d), err)
		}
	}
}

// Sync flushes a few objects, or large ones, one by one, so that whatever
// else is dirty on the file system stays in memory; many small ones, or a
// new folder, take one syncfs.
func TestSyncChoosesHowToFlush(t *testing.T) {
	l, err := OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	big := randomObject(3 << 20)
	syncfs := func() int { l.mu.Lock(); defer l.mu.Unlock(); return l.syncfsN }
	put := func(name string, data []byte) {
		t.Helper()
		if err := l.Put(ctx, name, data); err != nil {
			t.Fatal(err)
		}
	}
	// The first Put into a folder makes it: syncfs covers the new entry.
	put("packs/aa/1", big)
	if err := l.Sync(ctx); err != nil || syncfs() != 1 {
		t.Fatalf("sync after a new folder: err %v, syncfs %d", err, syncfs())
	}
	// Large objects and a few small ones, one removed before the Sync.
	for i := range 40 {
		put(fmt.Sprintf("packs/aa/big%d", i), big[i:])
	}
	for i := range syncEachMax {
		put(fmt.Sprintf("packs/aa/small%d", i), big[:100+i])
	}
	if err := l.Delete(ctx, "packs/aa/big3"); err != nil {
		t.Fatal(err)
	}
	if err := l.Sync(ctx); err != nil || syncfs() != 1 {
		t.Fatalf("sync of large and few small objects: err %v, syncfs %d", err, syncfs())
	}
	if err := l.Sync(ctx); err != nil || syncfs() != 1 || len(l.written) != 0 {
		t.Fatalf("empty sync: err %v, syncfs %d, %d left", err, syncfs(), len(l.written))
	}
	for i := range syncEachMax + 1 {
		put(fmt.Sprintf("packs/aa/many%d", i), big[:100+i])
	}
	if err := l.Sync(ctx); err != nil || syncfs() != 2 {
		t.Fatalf("sync of many small objects: err %v, syncfs %d", err, syncfs())
	}
}

// A folder that exists (a Local opened again) needs no syncfs.
func TestSyncAfterReopen(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	for i := range 2 {
		l, err := CreateLocal(dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Put(ctx, fmt.Sprintf("packs/aa/%d", i), []byte("x")); err != nil {
			t.Fatal(err)
		}
		if err := l.Sync(ctx); err != nil || l.syncfsN != 1-i {
			t.Fatalf("open %d: err %v, %d syncfs", i, err, l.syncfsN)
		}
	}
}
