package fs

import (
	"context"
	iofs "io/fs"
	"os"
	"path"
	"path/filepath"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// FIFOs and unix sockets hold no bytes: they are no versions and no
// lineage. At any name of a folder of keys they are scratch entries, kept
// in the scratch folder at their path and served by its loopback as scratch
// files are (scratch.go): listed, looked up, stat'ed and unlinked there,
// kept as long as the scratch folder. The kernel does a FIFO's I/O itself
// (no OPEN reaches the mount, so no run records it), and connect(2) finds
// a bound socket by its inode. Snakemake's pipe() outputs mkfifo next to
// the workflow's outputs; bind(2) of a socket path sends a MKNOD.

// isSpecial reports whether mode is a FIFO's or a socket's.
func isSpecial(mode uint32) bool {
	t := mode & syscall.S_IFMT
	return t == syscall.S_IFIFO || t == syscall.S_IFSOCK
}

// specialAt reports whether the scratch folder holds a FIFO or a socket at
// the mount-relative path p. It asks the scratch folder (an lstat) only
// once one may be there (Mount.specials): a lookup of a key costs nothing
// more where no FIFO was ever made.
func (m *Mount) specialAt(p string) bool {
	return m.specials.Load() && m.specialFile(p)
}

// specialFile is specialAt without Mount.specials: a scratch name's FIFO
// is scratch by its name, and an earlier mount's is not counted there.
func (m *Mount) specialFile(p string) bool {
	if m.loop == nil {
		return false
	}
	var st syscall.Stat_t
	return syscall.Lstat(m.scratchPath(p), &st) == nil && isSpecial(st.Mode)
}

// findSpecials sets Mount.specials if the scratch folder holds a FIFO or
// a socket at a name no scratch pattern matches (one made by an earlier
// mount). Folders a pattern matches (.snakemake/) are not walked: what
// they hold is scratch by its path.
func (m *Mount) findSpecials() {
	filepath.WalkDir(m.scratchDir, func(p string, d iofs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(m.scratchDir, p)
		switch rel = filepath.ToSlash(rel); {
		case rel == ".":
		case m.isScratch(rel):
			if d.IsDir() {
				return filepath.SkipDir
			}
		case d.Type()&(os.ModeNamedPipe|os.ModeSocket) != 0:
			m.specials.Store(true)
			return filepath.SkipAll
		}
		return nil
	})
}

// Mknod makes a FIFO or a socket as a scratch entry, and a regular file
// (mknod(2) of S_IFREG or no type: Python's os.mknod) as create makes one:
// a key's empty first version, or a scratch file at a scratch name.
// Devices are refused.
func (n *node) Mknod(ctx context.Context, name string, mode uint32, dev uint32, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	switch mode & syscall.S_IFMT {
	case syscall.S_IFIFO, syscall.S_IFSOCK:
		return n.mknodSpecial(ctx, name, mode, out)
	case 0, syscall.S_IFREG:
		return n.mknodFile(ctx, name, mode, out)
	}
	return nil, syscall.EPERM
}

func (n *node) mknodSpecial(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	if n.m.loop == nil {
		return nil, syscall.EPERM // no scratch folder to keep it in
	}
	if n.e.Kind != KindDir {
		return nil, syscall.EROFS
	}
	if !n.scratchHere(ctx, name) {
		// Never touches the catalog: a mount that may not write makes
		// them too, as scratch files (scratchHere). A name of the catalog
		// is taken.
		if _, e := n.checkNew(name); e != 0 {
			return nil, e
		}
		if n.m.ns.has(ctx, n.prefix(), name) {
			return nil, syscall.EEXIST
		}
	}
	p := n.m.scratchPath(n.prefix() + name)
	os.MkdirAll(filepath.Dir(p), 0o755)
	n.m.specials.Store(true) // before the name shows it: lookups ask from now on
	if err := syscall.Mknod(p, mode, 0); err != nil {
		return nil, errnoOf(err)
	}
	return n.lookupScratch(ctx, name, out)
}

func (n *node) mknodFile(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	if n.scratchHere(ctx, name) {
		p := n.m.scratchPath(n.prefix() + name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := syscall.Mknod(p, syscall.S_IFREG|mode&0o7777, 0); err != nil {
			return nil, errnoOf(err)
		}
		return n.lookupScratch(ctx, name, out)
	}
	// A create that the caller closes at once: its empty version is
	// committed before mknod returns, as touch's is at close.
	in, fh, _, e := n.Create(ctx, name, syscall.O_CREAT|syscall.O_EXCL|syscall.O_WRONLY, mode&0o7777, out) // lineage.go
	if e != 0 {
		return nil, e
	}
	h, _ := fh.(*handle)
	if h == nil {
		return in, 0
	}
	e = h.Flush(ctx)
	if re := h.Release(ctx); e == 0 {
		e = re
	}
	if e != 0 {
		return nil, e
	}
	return in, 0
}

// specialTarget reports whether dst, the target of a rename, is a FIFO or
// a socket at a name no scratch pattern matches: a rename onto it replaces
// it, a file as a key (renameOntoSpecial).
func (m *Mount) specialTarget(ctx context.Context, dst string) bool {
	dir, name := path.Split(dst)
	return !m.isScratch(dst) && m.specialAt(dst) && !m.ns.has(ctx, dir, name)
}
