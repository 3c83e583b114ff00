package fs

import (
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// noOpendir answers OPENDIR with ENOSYS, which tells the kernel (≥ 5.1) to
// stop sending OPENDIR and RELEASEDIR for the life of the mount and to
// cache every listing (a no-open directory gets FOPEN_CACHE_DIR and
// FOPEN_KEEP_CACHE). A warm `find` then costs no round trip per folder;
// with OPENDIR it cost two, most of its time (docs/mount-bench.md).
//
// go-fuse's node bridge needs a handle to list a directory, so READDIR
// and READDIRPLUS without one (fh 0) get a handle opened here, per node:
// one listing at a time, shared by readers at any offset (the handle can
// seek), released when a read reaches the end or a new listing starts.
type noOpendir struct {
	fuse.RawFileSystem
	off      bool         // pass OPENDIR through (--no-cache-dirs)
	requests atomic.Int64 // OPENDIR, READDIR(PLUS) and RELEASEDIR received, for Stats

	mu   sync.Mutex
	dirs map[uint64]*dirFh // node id → its current listing handle
}

type dirFh struct {
	node  uint64
	fh    uint64
	users int
	done  bool // no new reader may use it; released once users is 0
}

func newNoOpendir(raw fuse.RawFileSystem, off bool) *noOpendir {
	return &noOpendir{RawFileSystem: raw, off: off, dirs: map[uint64]*dirFh{}}
}

func (f *noOpendir) OpenDir(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	f.requests.Add(1)
	if f.off {
		return f.RawFileSystem.OpenDir(cancel, in, out)
	}
	return fuse.ENOSYS
}

func (f *noOpendir) ReleaseDir(in *fuse.ReleaseIn) {
	f.requests.Add(1)
	f.RawFileSystem.ReleaseDir(in)
}

func (f *noOpendir) ReadDir(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	return f.readDir(cancel, in, out, f.RawFileSystem.ReadDir)
}

func (f *noOpendir) ReadDirPlus(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	return f.readDir(cancel, in, out, f.RawFileSystem.ReadDirPlus)
}

type readDirFunc func(<-chan struct{}, *fuse.ReadIn, *fuse.DirEntryList) fuse.Status

func (f *noOpendir) readDir(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList, read readDirFunc) fuse.Status {
	f.requests.Add(1)
	if in.Fh != 0 { // opened before the kernel learnt ENOSYS
		return read(cancel, in, out)
	}
	h, st := f.acquire(cancel, in)
	if st != fuse.OK {
		return st
	}
	inner := *in
	inner.Fh = h.fh
	st = read(cancel, &inner, out)
	f.release(h, st != fuse.OK || out.Offset == in.Offset) // an error or the end
	return st
}

// acquire returns the node's listing handle, a fresh one at offset 0 (an
// opendir or rewinddir lists afresh).
func (f *noOpendir) acquire(cancel <-chan struct{}, in *fuse.ReadIn) (*dirFh, fuse.Status) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h := f.dirs[in.NodeId]
	if h != nil && in.Offset == 0 {
		f.retire(h)
		h = nil
	}
	if h == nil {
		var out fuse.OpenOut
		open := fuse.OpenIn{InHeader: in.InHeader, Flags: syscall.O_RDONLY | syscall.O_DIRECTORY}
		if st := f.RawFileSystem.OpenDir(cancel, &open, &out); st != fuse.OK {
			return nil, st
		}
		h = &dirFh{node: in.NodeId, fh: out.Fh}
		f.dirs[in.NodeId] = h
	}
	h.users++
	return h, fuse.OK
}

func (f *noOpendir) release(h *dirFh, end bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h.users--
	if end {
		f.retire(h)
		return
	}
	f.closeIfUnused(h)
}

// retire stops new readers from using h and closes it once unused.
// Callers hold f.mu.
func (f *noOpendir) retire(h *dirFh) {
	h.done = true
	if f.dirs[h.node] == h {
		delete(f.dirs, h.node)
	}
	f.closeIfUnused(h)
}

func (f *noOpendir) closeIfUnused(h *dirFh) {
	if h.done && h.users == 0 && h.fh != 0 {
		in := fuse.ReleaseIn{Fh: h.fh}
		in.NodeId = h.node
		f.RawFileSystem.ReleaseDir(&in)
		h.fh = 0
	}
}
