package catalog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
)

// ErrDamaged is returned when the catalog file cannot be read as it is: it
// is empty or shorter than its header says, or bbolt found a page it
// cannot make sense of. Nothing was written.
var ErrDamaged = errors.New("the catalog file is damaged")

// repairHint says what to do about a damaged catalog file. There is no
// command that rebuilds the catalog from the records in storage yet.
const repairHint = "restore it from a backup (the stored data is untouched); from an export of it " +
	"(lamina export-catalog FILE), `lamina init --storage STORAGE --name NEW --take-over` and " +
	"`lamina --instance NEW import-catalog FILE` make a new instance"

func damaged(format string, a ...any) error {
	return errorf(ErrDamaged, "%s: %s: %s", ErrDamaged, fmt.Sprintf(format, a...), repairHint)
}

// checkFile checks the catalog file at path before bbolt maps it: bbolt
// reads pages past the end of a truncated file through its mapping, which
// is a SIGBUS no Go code can recover from once it happens outside guard,
// and it sets up an empty file as a new catalog. A missing file is left to
// be created unless existing is set; an empty one is damaged unless it is
// not existing yet (an init that was stopped after creating the file).
func checkFile(path string, existing bool) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		if existing {
			return errorf(ErrDamaged, "the catalog file %s is missing: %s", path, repairHint)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("catalog: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("catalog: %w", err)
	}
	size := st.Size()
	if size == 0 {
		if existing {
			return damaged("%s is empty (0 bytes)", path)
		}
		return nil
	}
	m, ok := readMeta(f, size)
	if !ok {
		return damaged("%s has no valid bbolt header (both meta pages are unreadable)", path)
	}
	if want := int64(m.pageSize) * int64(m.pages); size < want {
		return damaged("%s is truncated (%d bytes; its header says %d)", path, size, want)
	}
	if !freelistOK(f, m) {
		return damaged("%s has a damaged freelist (page %d)", path, m.freelist)
	}
	return nil
}

// freelistOK checks the header of the freelist page, which bbolt reads
// when it opens a file for writing: a panic there would leave the file
// locked, since the mapping bbolt made keeps it open.
func freelistOK(f io.ReaderAt, m boltMeta) bool {
	if m.freelist == noFreelist {
		return true
	}
	if m.freelist < 2 || m.freelist >= m.pages {
		return false
	}
	var h [boltPageHeader + 8]byte
	if _, err := f.ReadAt(h[:], int64(m.freelist)*int64(m.pageSize)); err != nil {
		return false
	}
	e := binary.NativeEndian
	id, flags, count, overflow := e.Uint64(h[0:]), e.Uint16(h[8:]), uint64(e.Uint16(h[10:])), uint64(e.Uint32(h[12:]))
	if id != m.freelist || flags != boltFreelistPage || m.freelist+overflow >= m.pages {
		return false
	}
	if count == 0xFFFF { // the count is the first element
		count = e.Uint64(h[boltPageHeader:]) + 1
	}
	return count <= ((overflow+1)*uint64(m.pageSize)-boltPageHeader)/8
}

// bbolt's file format (go.etcd.io/bbolt internal/common): each meta page is a
// 16-byte page header followed by magic, version, page size, flags (uint32
// each), the root bucket (16 bytes), the freelist page, the high-water page
// id, the transaction id and an FNV-64a checksum of the fields before it
// (uint64 each), in the machine's byte order. Page 0 and page 1 hold one
// each; bbolt uses the valid one with the higher transaction id.
const (
	boltMagic        = 0xED0CDAED
	boltVersion      = 2
	boltPageHeader   = 16
	boltMetaLen      = 64
	boltFreelistPage = 0x10
	noFreelist       = ^uint64(0)
)

// boltMeta is what checkFile needs of a meta page.
type boltMeta struct {
	pageSize uint32
	pages    uint64 // the high-water mark: pages 0 … pages-1 are in use
	freelist uint64 // the freelist's page, or noFreelist
}

// readMeta returns the file's current meta page; ok is false when neither
// meta page is valid.
func readMeta(f io.ReaderAt, size int64) (meta boltMeta, ok bool) {
	var txid uint64
	try := func(off int64) uint32 {
		var buf [boltPageHeader + boltMetaLen]byte
		if _, err := f.ReadAt(buf[:], off); err != nil {
			return 0
		}
		m := buf[boltPageHeader:]
		e := binary.NativeEndian
		h := fnv.New64a()
		h.Write(m[:56])
		if e.Uint32(m[0:]) != boltMagic || e.Uint32(m[4:]) != boltVersion || e.Uint64(m[56:]) != h.Sum64() {
			return 0
		}
		if t := e.Uint64(m[48:]); !ok || t > txid {
			meta = boltMeta{pageSize: e.Uint32(m[8:]), pages: e.Uint64(m[40:]), freelist: e.Uint64(m[32:])}
			txid, ok = t, true
		}
		return e.Uint32(m[8:])
	}
	if ps := try(0); ps != 0 {
		try(int64(ps))
		return meta, ok
	}
	// Page 0 is damaged: find page 1 as bbolt does, at 1 KiB × 2^i.
	for i := 0; i <= 14; i++ {
		if off := int64(1024) << i; off < size && try(off) == uint32(off) {
			break
		}
	}
	return meta, ok
}

// guard runs fn, a bbolt call on the catalog file at path, and turns what
// a damaged file makes bbolt do into an ErrDamaged error: a panic raised in
// bbolt's code (an assertion, a slice out of range over a garbled page), or
// a memory fault reading the file's mapping (a page past the end of a file
// truncated since it was checked: SIGBUS, a panic only while
// debug.SetPanicOnFault is on). Any other panic goes on.
func guard(path string, fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		if !damageFault(r) {
			panic(r)
		}
		err = damaged("%s cannot be read: %v", path, r)
	}()
	return fn()
}

// damageFault reports whether r, being recovered, is a memory fault at an
// address (not a nil dereference) or a panic raised in bbolt's code. Called
// from the deferred function, where the panicking frames are still on the
// stack.
func damageFault(r any) bool {
	if _, ok := r.(interface{ Addr() uintptr }); ok {
		return true
	}
	pcs := make([]uintptr, 64)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(1, pcs)])
	panicking := false
	for {
		fr, more := frames.Next()
		switch {
		case fr.Function == "runtime.gopanic":
			panicking = true
		case panicking && !strings.HasPrefix(fr.Function, "runtime."):
			return strings.HasPrefix(fr.Function, "go.etcd.io/bbolt")
		}
		if !more {
			return false
		}
	}
}
