package fs

import (
	"context"
	"path/filepath"
	"sync"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

var _ fusefs.NodeUnlinker = (*scratchNode)(nil)

// A key renamed to a scratch name (materialize: an editor's backup f~, a
// tool that moves its input aside and writes the key anew) leaves a copy
// of the key's latest version in the scratch folder. A tracked read of the
// copy reads that version's bytes: it is an input of the reader's run, as
// a read of the key is (Tracker.Used applies the same rules). It went
// unrecorded: `os.rename(p, p+"~")`, a read of p~, a write of p made p's
// next version with no input.
//
// The copy is known by its inode in the scratch folder, as scratchRuns
// knows a run's scratch files: a rename within scratch keeps it (vim's f~
// to f~~). It is forgotten once it may hold other bytes: a writable open
// (whose writes may reach the file without the mount: passthrough), a
// truncation, a size or mtime other than the copy's, or a file made at its
// inode; and once it is removed or renamed onto a key.

// scratchSources are the scratch files materialize made, by inode.
type scratchSources struct {
	mu sync.Mutex // guards m
	m  map[uint64]scratchSource
}

// scratchSource is the version a scratch file copies, and the size and
// mtime (unix nanoseconds) materialize left it with.
type scratchSource struct {
	e     Entry // the key's entry: its version is resolved at a tracked read (Namespace.Full)
	size  int64
	mtime int64
}

func (s *scratchSources) empty() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m) == 0
}

func (s *scratchSources) forget(ino uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, ino)
}

// rememberSource notes that the scratch file at p (on disk) is a copy of
// e's version. Only on a tracked mount: no read is credited on another.
func (m *Mount) rememberSource(p string, e Entry) {
	if m.tracker() == nil {
		return
	}
	var st syscall.Stat_t
	if syscall.Lstat(p, &st) != nil {
		return
	}
	s := &m.scratchSrc
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[uint64]scratchSource{}
	}
	s.m[st.Ino] = scratchSource{e: e, size: st.Size, mtime: st.Mtim.Nano()}
}

// forgetSource forgets the scratch file at p (on disk), which is about to
// be removed or replaced (unlink: only its last name goes, as a hard link
// keeps the file), or was just made.
func (m *Mount) forgetSource(p string, unlink bool) {
	if m.scratchSrc.empty() {
		return
	}
	var st syscall.Stat_t
	if syscall.Lstat(p, &st) != nil || unlink && st.Nlink > 1 {
		return
	}
	m.scratchSrc.forget(st.Ino)
}

// sourceRead is an open of a scratch file with flags, fh its handle: a
// read of a copy materialize made credits the version it copies to the
// caller's run; a writable open forgets it.
func (m *Mount) sourceRead(ctx context.Context, fh fusefs.FileHandle, flags uint32) {
	tr := m.tracker()
	if tr == nil || m.scratchSrc.empty() {
		return
	}
	lf, ok := fh.(*fusefs.LoopbackFile)
	var a fuse.AttrOut
	if !ok || lf.Getattr(ctx, &a) != 0 {
		return
	}
	mtime := int64(a.Mtime)*1e9 + int64(a.Mtimensec)
	writes := flags&syscall.O_ACCMODE != syscall.O_RDONLY || flags&syscall.O_TRUNC != 0
	s := &m.scratchSrc
	s.mu.Lock()
	src, ok := s.m[a.Ino]
	changed := ok && (src.size != int64(a.Size) || src.mtime != mtime)
	if changed || ok && writes {
		delete(s.m, a.Ino)
	}
	s.mu.Unlock()
	if !ok || changed || flags&syscall.O_ACCMODE == syscall.O_WRONLY || flags&syscall.O_TRUNC != 0 {
		return
	}
	run := tr.Caller(callerTID(ctx))
	if run == "" {
		return
	}
	v, err := m.ns.Full(ctx, src.e)
	if err != nil {
		m.log.Warn("lamina mount: lineage: the version a scratch copy of a key holds is unknown; no input recorded", "key", keyOf(src.e), "err", err)
		return
	}
	tr.Used(run, *v)
}

// forgetReplaced forgets the scratch file at dst (on disk) that a rename
// of the scratch file at src within scratch replaces.
func (m *Mount) forgetReplaced(src, dst string) {
	if m.scratchSrc.empty() {
		return
	}
	var s, d syscall.Stat_t
	if syscall.Lstat(dst, &d) != nil || syscall.Lstat(src, &s) == nil && s.Ino == d.Ino || d.Nlink > 1 {
		return
	}
	m.scratchSrc.forget(d.Ino)
}

// Unlink in a scratch folder forgets the copy a key's version left there.
func (s *scratchNode) Unlink(ctx context.Context, name string) syscall.Errno {
	s.m.forgetSource(filepath.Join(s.m.scratchPath(s.EmbeddedInode().Path(nil)), name), true)
	return s.LoopbackNode.Unlink(ctx, name)
}
