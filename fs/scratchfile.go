package fs

import (
	"context"
	"sync"
	"sync/atomic"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// A scratch file renamed onto a key while open for writing (a program
// writes out~ and renames it to out before it closes it, then writes
// more): its writers' close commits everything they wrote, before the
// rename and after, as the close of a file written under a temporary key
// and renamed while open does. The rename used to commit the bytes there
// were, and what came after went to the removed scratch file.
//
// Writable opens of scratch files are scratchFiles: go-fuse's loopback
// file (which the kernel may write without the mount: passthrough), known
// by the scratch file's inode. A rename of a scratch file that some hold
// open for writing moves the file into the staging folder as the key's
// open File (stage.Adopt), which reads what they write through their
// descriptors from the file itself; their FLUSH, FSYNC and RELEASE go to
// it from then on as a writable handle of the key's would.

var (
	_ fusefs.FileFlusher  = (*scratchFile)(nil)
	_ fusefs.FileReleaser = (*scratchFile)(nil)
	_ fusefs.FileFsyncer  = (*scratchFile)(nil)
	_ fusefs.NodeOpener   = (*scratchNode)(nil)
)

// scratchFile is a writable open of a scratch file.
type scratchFile struct {
	*fusefs.LoopbackFile
	m      *Mount
	ino    uint64       // the scratch file's inode in the scratch folder
	kino   uint64       // its node's inode number in the mount
	node   *scratchNode // that node
	app    bool
	opener uint32
	key    atomic.Pointer[handle] // the key's writable handle, once adopted
}

// scratchWriters are the writable opens of scratch files, by inode.
type scratchWriters struct {
	mu sync.Mutex // guards m; held through an adoption, so that none is released meanwhile
	m  map[uint64][]*scratchFile
}

// writableScratch makes fh, a handle of the scratch node in opened with
// flags, a scratchFile if it is writable.
func (m *Mount) writableScratch(ctx context.Context, fh fusefs.FileHandle, in *fusefs.Inode, flags uint32) fusefs.FileHandle {
	lf, ok := fh.(*fusefs.LoopbackFile)
	if !ok || flags&syscall.O_ACCMODE == syscall.O_RDONLY {
		return fh
	}
	var a fuse.AttrOut
	if lf.Getattr(ctx, &a) != 0 {
		return fh
	}
	sn, _ := in.Operations().(*scratchNode)
	s := &scratchFile{LoopbackFile: lf, m: m, ino: a.Ino, kino: in.StableAttr().Ino, node: sn,
		app: flags&syscall.O_APPEND != 0, opener: callerTID(ctx)}
	w := &m.scratchW
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.m == nil {
		w.m = map[uint64][]*scratchFile{}
	}
	w.m[s.ino] = append(w.m[s.ino], s)
	return s
}

func (w *scratchWriters) remove(s *scratchFile) {
	w.mu.Lock()
	defer w.mu.Unlock()
	l := w.m[s.ino]
	for i, o := range l {
		if o == s {
			l = append(l[:i:i], l[i+1:]...)
			break
		}
	}
	if len(l) == 0 {
		delete(w.m, s.ino)
	} else {
		w.m[s.ino] = l
	}
}

// Open of a scratch file: writable opens are scratchFiles; a tracked read
// of a key's copy credits the key's version.
func (s *scratchNode) Open(ctx context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	fh, fl, errno := s.LoopbackNode.Open(ctx, flags)
	if errno != 0 {
		return fh, fl, errno
	}
	s.m.sourceRead(ctx, fh, flags) // scratchsource.go: a key's version a read of it reads
	return s.m.writableScratch(ctx, fh, s.EmbeddedInode(), flags), fl, 0
}

// adopt makes the scratch file src, renamed onto key, the key's open File
// if writers hold it open (above), and reports whether it did; errno is
// the rename's answer then.
func (m *Mount) adopt(ctx context.Context, src, key string, ino uint64) (errno syscall.Errno, ok bool) {
	w := &m.scratchW
	w.mu.Lock()
	defer w.mu.Unlock()
	ws := w.m[ino]
	if len(ws) == 0 {
		return 0, false
	}
	prefix, name := splitKey(key)
	if e, err := m.ns.lookupKey(ctx, prefix, name); err == nil && e.IsDir() {
		return syscall.EISDIR, true
	}
	f, err := m.ns.st.Adopt(ctx, key, src, len(ws))
	if err != nil {
		// Another file system than the staging folder's, say: its bytes
		// are committed now, and what comes after is not.
		m.log.Warn("lamina mount: a scratch file renamed onto a key while open for writing is committed as it is now; later writes to it are not",
			"key", key, "err", err)
		return 0, false
	}
	run := m.scratchRun(ctx, ino) // lineage.go
	f.SetRun(run)
	delete(w.m, ino)
	n := m.newNode(m.ns.pendingEntry(name, key, f)) // its handles' node: in no folder
	m.held.drop([]string{key})
	a := fusefs.StableAttr{Mode: syscall.S_IFREG, Ino: latestIno(key), Gen: m.retired.gen(key)}
	for _, s := range ws {
		wh := &writeHandle{f: f, n: n, app: s.app, opener: s.opener, run: run, kino: s.kino}
		wh.always = true // its writes reach the file without the mount: each close commits
		// The key's own inode: a lookup of the key shows the writers' size
		// and mode (writersAttr), as their fstat does.
		wh.held = m.held.hold(key, a, true)
		s.key.Store(&handle{w: wh})
		if s.node != nil {
			s.node.adopted.Store(f)
		}
	}
	m.written(key)
	return 0, true
}

func (s *scratchFile) Flush(ctx context.Context) syscall.Errno {
	errno := s.LoopbackFile.Flush(ctx)
	if h := s.key.Load(); h != nil {
		if e := h.Flush(ctx); e != 0 {
			return e
		}
	}
	return errno
}

func (s *scratchFile) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	if h := s.key.Load(); h != nil {
		return h.Fsync(ctx, flags) // the File syncs its data: this file
	}
	return s.LoopbackFile.Fsync(ctx, flags)
}

// Release closes the descriptor first: the key's File, released last,
// empties the staging file for reuse.
func (s *scratchFile) Release(ctx context.Context) syscall.Errno {
	s.m.scratchW.remove(s)
	errno := s.LoopbackFile.Release(ctx)
	if h := s.key.Load(); h != nil {
		if e := h.Release(ctx); e != 0 {
			return e
		}
	}
	return errno
}

// An adopted scratch file's node keeps no path: the rename moved the file
// into the staging folder, and the loopback's calls by path answered
// ENOENT to the writers' fchmod, futimens, fchown and f*xattr. They go to
// the key its File writes now, as a chmod, touch, chown or xattr call of
// the key's path does, with the writer's handle of the key when the kernel
// passes the descriptor (ftruncate).
var (
	_ fusefs.NodeGetattrer     = (*scratchNode)(nil)
	_ fusefs.NodeSetattrer     = (*scratchNode)(nil)
	_ fusefs.NodeGetxattrer    = (*scratchNode)(nil)
	_ fusefs.NodeSetxattrer    = (*scratchNode)(nil)
	_ fusefs.NodeRemovexattrer = (*scratchNode)(nil)
	_ fusefs.NodeListxattrer   = (*scratchNode)(nil)
)

// keyNode is the node of the key s's adopted File writes now; ok is false
// if s was not adopted. errno is ENOENT once the File's key was unlinked or
// replaced: the key's node then is another file's, whose mode and mtime a
// writer's fchmod and futimens set (orphaned answers those itself).
func (s *scratchNode) keyNode(ctx context.Context) (n *node, errNo syscall.Errno, ok bool) {
	f := s.adopted.Load()
	if f == nil {
		return nil, 0, false
	}
	if f.Deleted() {
		return nil, syscall.ENOENT, true
	}
	prefix, name := splitKey(f.Key())
	e, err := s.m.ns.lookupKey(ctx, prefix, name)
	if err != nil {
		return nil, errno(s.m.log, "lookup", err), true
	}
	return s.m.newNode(e), 0, true
}

// orphaned answers a SETATTR of a writer whose adopted File's key was
// unlinked or replaced, as a plain file system does for an unlinked file:
// on the File alone, which commits nothing any more.
func (s *scratchNode) orphaned(ctx context.Context, fh fusefs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	f := s.adopted.Load()
	if uid, ok := in.GetUID(); ok && uid != s.m.uid {
		return syscall.EPERM
	}
	if gid, ok := in.GetGID(); ok && gid != s.m.gid {
		return syscall.EPERM
	}
	if size, ok := in.GetSize(); ok {
		if err := f.Truncate(ctx, int64(size)); err != nil {
			return errno(s.m.log, "truncate", err)
		}
	}
	if mode, ok := in.GetMode(); ok {
		f.SetMode(mode)
	}
	if t, ok := in.GetMTime(); ok {
		f.SetMtime(t)
	}
	s.fileAttr(out)
	return 0
}

// keyHandle is the key's writable handle behind fh, a writer's handle of
// an adopted scratch file, or nil.
func keyHandle(fh fusefs.FileHandle) fusefs.FileHandle {
	if sf, ok := fh.(*scratchFile); ok {
		if h := sf.key.Load(); h != nil {
			return h
		}
	}
	return nil
}

func (s *scratchNode) Getattr(ctx context.Context, fh fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if s.adopted.Load() == nil {
		return s.LoopbackNode.Getattr(ctx, fh, out)
	}
	s.fileAttr(out)
	return 0
}

func (s *scratchNode) Setattr(ctx context.Context, fh fusefs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	n, errno, ok := s.keyNode(ctx)
	switch {
	case !ok:
		return s.LoopbackNode.Setattr(ctx, fh, in, out)
	case errno == syscall.ENOENT && s.adopted.Load().Deleted():
		return s.orphaned(ctx, fh, in, out)
	case errno != 0:
		return errno
	}
	if errno := n.Setattr(ctx, keyHandle(fh), in, out); errno != 0 {
		return errno
	}
	s.fileAttr(out) // the key's answer may be its latest version's
	return 0
}

// fileAttr is what the adopted File shows: its writers' size, mtime and
// mode (their fstat before the rename came from the file, as it does).
func (s *scratchNode) fileAttr(out *fuse.AttrOut) {
	e := Entry{Kind: KindPending, Ino: s.StableAttr().Ino}
	e.Size, e.Mtime, e.Mode = s.adopted.Load().Attr()
	s.m.fill(e, &out.Attr)
	out.SetTimeout(0) // the writers change it without the mount (passthrough)
}

func (s *scratchNode) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	n, errno, ok := s.keyNode(ctx)
	switch {
	case !ok:
		return s.LoopbackNode.Getxattr(ctx, attr, dest)
	case errno != 0:
		return 0, errno
	}
	return n.Getxattr(ctx, attr, dest)
}

func (s *scratchNode) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	n, errno, ok := s.keyNode(ctx)
	switch {
	case !ok:
		return s.LoopbackNode.Listxattr(ctx, dest)
	case errno != 0:
		return 0, errno
	}
	return n.Listxattr(ctx, dest)
}

func (s *scratchNode) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	n, errno, ok := s.keyNode(ctx)
	switch {
	case !ok:
		return s.LoopbackNode.Setxattr(ctx, attr, data, flags)
	case errno != 0:
		return errno
	}
	return n.Setxattr(ctx, attr, data, flags)
}

func (s *scratchNode) Removexattr(ctx context.Context, attr string) syscall.Errno {
	n, errno, ok := s.keyNode(ctx)
	switch {
	case !ok:
		return s.LoopbackNode.Removexattr(ctx, attr)
	case errno != 0:
		return errno
	}
	return n.Removexattr(ctx, attr)
}
