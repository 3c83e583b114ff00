package fs

import (
	"context"
	"io"
	"os"
	"path"
	"path/filepath"
	"sync/atomic"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/lamina-bio/lamina/stage"
)

// Scratch paths (stage.Scratch) are a plain folder served by go-fuse's
// loopback: scratchNode is a LoopbackNode whose renames onto keys commit.
type scratchNode struct {
	fusefs.LoopbackNode
	m       *Mount
	adopted atomic.Pointer[stage.File] // the key's File, once renamed onto a key while open (scratchfile.go)
}

var _ fusefs.NodeRenamer = (*scratchNode)(nil)

func (m *Mount) isScratch(p string) bool { return m.loop != nil && m.scratch.Match(p) }

// scratchAt reports whether the name p of a folder of keys is scratch: it
// matches a scratch pattern (or holds a FIFO or socket: special.go) and is
// not a name of the catalog. A key saved
// under a scratch-like name (notes/backup~, notes/.snakemake/log.txt) stays
// a key: listed, opened, written and renamed as any other, and a scratch
// file of the same name is hidden while the key exists; so are its version
// and sidecar names. So is a key an editor's save renamed to a backup name
// a moment ago (vim: k~ to k~~, then a new k~): the file written anew is
// its next version, not a scratch file beside its versions in the trash.
func (m *Mount) scratchAt(ctx context.Context, p string) bool { return m.scratchName(ctx, p, true) }

// scratchTarget is scratchAt for the target of a rename. A name kept since
// its key was unlinked (Stage.KeepName: tar -x creates it anew) is scratch
// again for a rename onto it: vim's backup rename (notes to notes~) right
// after a saved key notes~ was removed moved notes' history under notes~,
// into the trash with it (audit 26).
func (m *Mount) scratchTarget(ctx context.Context, p string) bool {
	return m.scratchName(ctx, p, false)
}

func (m *Mount) scratchName(ctx context.Context, p string, unlinked bool) bool {
	if !m.isScratch(p) {
		// A FIFO or socket at any name (special.go), unless a key has it.
		if !m.specialAt(p) {
			return false
		}
		dir, name := path.Split(p)
		return !m.ns.has(ctx, dir, name)
	}
	dir, name := path.Split(p)
	if m.ns.has(ctx, dir, name) {
		return false
	}
	if m.ns.st == nil {
		// A read-only mount: no key is unlinked, no name kept.
	} else if kept, movedAway, by := m.ns.st.NameKept(p); kept && (movedAway || unlinked && (by == "" || by == processOf(callerTID(ctx)))) {
		// A name kept since its key was unlinked is the unlinking
		// process's only (tar -x creates it anew): another's file there
		// (vim's backup copy after an rm of a key notes~) is scratch.
		return false
	}
	// A key's version and sidecar names (.#x@v1, .#x.meta) are the catalog's.
	n := ParseName(name)
	return n.Base == name || !m.ns.has(ctx, dir, n.Base)
}

// hiddenByKeptName reports whether the scratch file at p is hidden from
// listings by a key's kept name: one moved away (MoveAway), or unlinked by
// an unknown process. A name KeepName kept for a known process hides it
// from that one only (scratchAt), and a listing is everyone's.
func (m *Mount) hiddenByKeptName(p string) bool {
	if m.ns.st == nil {
		return false
	}
	kept, movedAway, by := m.ns.st.NameKept(p)
	return kept && (movedAway || by == "")
}

func (m *Mount) scratchPath(p string) string {
	return filepath.Join(m.scratchDir, filepath.FromSlash(p))
}

func (m *Mount) newScratchNode(ctx context.Context, parent *fusefs.Inode, st *syscall.Stat_t) *fusefs.Inode {
	sn := &scratchNode{LoopbackNode: fusefs.LoopbackNode{RootData: m.loop}, m: m}
	return parent.NewInode(ctx, sn, fusefs.StableAttr{Mode: st.Mode & syscall.S_IFMT, Ino: st.Ino ^ 0x5c5c000000000000})
}

func (s *scratchNode) Rename(ctx context.Context, name string, newParent fusefs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	p, ok := newParent.(*node)
	if !ok || s.m.scratchAt(ctx, p.prefix()+newName) {
		// Within scratch: also on a mount that may not write.
		dst := path.Join(newParent.EmbeddedInode().Path(nil), newName)
		s.m.forgetReplaced(filepath.Join(s.m.scratchPath(s.EmbeddedInode().Path(nil)), name), s.m.scratchPath(dst)) // scratchsource.go
		errno := s.LoopbackNode.Rename(ctx, name, newParent, newName, flags)
		if tr := s.m.tracker(); tr != nil && errno == 0 {
			tr.ScratchRenamed(dst)
		}
		return errno
	}
	if p.e.Kind != KindDir || s.m.writesOff() {
		return syscall.EROFS // onto a key: a commit
	}
	src := filepath.Join(s.m.scratchPath(s.EmbeddedInode().Path(nil)), name)
	return s.m.commitScratch(ctx, src, p.prefix()+newName)
}

// commitScratch commits a scratch file renamed onto a key, then removes it.
func (m *Mount) commitScratch(ctx context.Context, src, key string) syscall.Errno {
	fi, err := os.Lstat(src)
	if err != nil {
		return errnoOf(err)
	}
	if !fi.Mode().IsRegular() {
		return syscall.EXDEV // tools copy instead
	}
	ino := fi.Sys().(*syscall.Stat_t).Ino
	if e, ok := m.adopt(ctx, src, key, ino); ok { // scratchfile.go
		if e == 0 {
			m.scratchSrc.forget(ino) // scratchsource.go: the file is the key's now
		}
		return e
	}
	v, err := m.ns.st.CommitPath(m.scratchRunCtx(ctx, src), key, src) // lineage.go
	if err != nil {
		return errno(m.log, "rename", err)
	}
	os.Remove(src)
	m.scratchSrc.forget(ino)
	m.committed(v)
	return 0
}

// materialize renames a key to a scratch name (an editor's backup): the
// bytes are copied into the scratch folder and the key is unlinked.
func (m *Mount) materialize(ctx context.Context, n *node, name, dst string) syscall.Errno {
	if m.ns.st.Writing(n.prefix() + name) {
		// A writer holds the key: the copy would have the committed bytes
		// only, and the writer's, then and later, would be dropped with
		// the key's open Files. Refused rather than lost. A File closed
		// with its bytes committed, whose RELEASE the kernel has not sent
		// yet (close, then mv f f~ at once), holds nothing more. Asked
		// first: a key with no version yet answered EXDEV, and mv copied
		// what there was and unlinked the key under its writer.
		return syscall.EBUSY
	}
	if m.writers.keptOpen(n.prefix() + name) {
		return syscall.EBUSY // a copy of a closed descriptor still writes
	}
	ent, e := n.existing(ctx, name)
	if e != 0 {
		return e
	}
	if ent.Kind != KindFile {
		return syscall.EXDEV
	}
	f, err := m.ns.FileOf(ctx, ent)
	if err != nil {
		return errno(m.log, "rename", err)
	}
	p := m.scratchPath(dst)
	os.MkdirAll(filepath.Dir(p), 0o755)
	if fi, err := os.Lstat(p); err == nil && !fi.IsDir() {
		// Replaced, not opened, as rename(2) replaces it: a FIFO's open
		// waits for a reader, a link's goes elsewhere, and a read-only
		// backup of before (vim's f~ of a 0444 f) refuses O_WRONLY.
		m.forgetSource(p, true) // scratchsource.go
		os.Remove(p)
	}
	// The copy has the key's mode, as a rename keeps it: os.Create gave
	// 0644, and `mv run.sh run.sh~; mv run.sh~ run.sh` (cp --backup,
	// vim's backup) left the script not executable. Set after the
	// bytes: a 0444 key's copy is written first.
	perm := ent.Mode & 0o7777
	out, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return errnoOf(err)
	}
	r := newFileReader(m.chunks, f).named(m.ns, ent)
	buf := make([]byte, 1<<20)
	var off int64
	for {
		k, rerr := r.ReadAt(ctx, buf, off)
		if k > 0 {
			if _, err := out.Write(buf[:k]); err != nil {
				out.Close()
				return errnoOf(err)
			}
			off += int64(k)
		}
		if rerr == io.EOF || k == 0 {
			break
		}
		if rerr != nil {
			out.Close()
			return errno(m.log, "rename", rerr)
		}
	}
	if err := syscall.Fchmod(int(out.Fd()), perm); err != nil {
		out.Close()
		return errnoOf(err)
	}
	if err := out.Close(); err != nil {
		return errnoOf(err)
	}
	os.Chtimes(p, ent.Mtime, ent.Mtime)
	key := n.prefix() + name
	versions := m.versionsOf(key)
	if err := m.ns.st.MoveAway(ctx, key); err != nil {
		return errno(m.log, "rename", err)
	}
	// A tracked read of the copy reads ent's version (scratchsource.go).
	m.rememberSource(p, ent)
	m.retired.retire(key, n.GetChild(name)) // inode.go
	m.written(key)
	m.dropDerived(n.EmbeddedInode(), name, versions) // once the listing is read anew
	// The kernel moves the key's entry to dst, on the retired inode: an
	// open of dst answered ENOENT until its folder was listed again. Once
	// the rename is done, dst is looked up anew (the scratch file).
	p, base := splitKey(dst)
	m.sendNotes([]Change{{Prefix: p, Names: []string{base}}})
	return 0
}

// movedToScratch reports whether n is a key's latest path renamed to a
// scratch name (materialize) that the kernel still reaches by that name.
// The kernel moves the key's entry to the scratch name on the rename's
// reply and keeps it for the entry timeout; the notification that drops it
// comes from another goroutine, later: `cat f~` right after `mv f f~` opened
// the key's inode, gone, and failed with ENOENT (or read an older save).
// ESTALE makes the kernel look the name up anew (LOOKUP_REVAL) and retry,
// as open(2), stat(2) and the other calls by path do: it finds the
// scratch file.
func (n *node) movedToScratch(ctx context.Context) bool {
	if n.e.Kind == KindDir || !n.m.retired.isRetired(n) {
		return false
	}
	p := n.key()
	return p != keyOf(n.e) && n.m.scratchAt(ctx, p)
}

func (n *node) lookupScratch(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	var st syscall.Stat_t
	if err := syscall.Lstat(n.m.scratchPath(n.prefix()+name), &st); err != nil {
		return nil, errnoOf(err)
	}
	out.Attr.FromStat(&st)
	return n.m.newScratchNode(ctx, n.EmbeddedInode(), &st), 0
}

func (n *node) scratchCreate(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fusefs.Inode, fusefs.FileHandle, uint32, syscall.Errno) {
	p := n.m.scratchPath(n.prefix() + name)
	if n.m.specialFile(n.prefix() + name) {
		// A CREATE comes for a name the kernel took for free: opening
		// the FIFO there would wait for a writer.
		return nil, nil, 0, syscall.EEXIST
	}
	os.MkdirAll(filepath.Dir(p), 0o755)
	fd, err := syscall.Open(p, int(flags)|os.O_CREATE, mode)
	if err != nil {
		return nil, nil, 0, errnoOf(err)
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		syscall.Close(fd)
		return nil, nil, 0, errnoOf(err)
	}
	out.Attr.FromStat(&st)
	n.m.scratchSrc.forget(st.Ino) // a file made at an inode a removed copy had (scratchsource.go)
	in := n.m.newScratchNode(ctx, n.EmbeddedInode(), &st)
	return in, n.m.writableScratch(ctx, fusefs.NewLoopbackFile(fd), in, flags), 0, 0
}

func (n *node) scratchMkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	p := n.m.scratchPath(n.prefix() + name)
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.Mkdir(p, os.FileMode(mode&0o7777)); err != nil {
		return nil, errnoOf(err)
	}
	return n.lookupScratch(ctx, name, out)
}

func (n *node) scratchSymlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	p := n.m.scratchPath(n.prefix() + name)
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.Symlink(target, p); err != nil {
		return nil, errnoOf(err)
	}
	return n.lookupScratch(ctx, name, out)
}

// scratchEntries lists the scratch names in the folder prefix but those in
// keys and keys moved away a moment ago (names of the catalog, which hide
// them: scratchAt).
func (m *Mount) scratchEntries(prefix string, keys map[string]bool) []fuse.DirEntry {
	if m.loop == nil {
		return nil
	}
	ents, err := os.ReadDir(m.scratchPath(prefix))
	if err != nil {
		return nil
	}
	var out []fuse.DirEntry
	for _, e := range ents {
		switch {
		case keys[e.Name()]:
			continue
		case m.isScratch(prefix + e.Name()):
			if m.hiddenByKeptName(prefix + e.Name()) {
				continue
			}
		case e.Type()&(os.ModeNamedPipe|os.ModeSocket) == 0:
			continue // a FIFO or socket is listed at any name: special.go
		}
		var st syscall.Stat_t
		if syscall.Lstat(m.scratchPath(prefix+e.Name()), &st) != nil {
			continue
		}
		out = append(out, fuse.DirEntry{Name: e.Name(), Mode: st.Mode & syscall.S_IFMT, Ino: st.Ino ^ 0x5c5c000000000000})
	}
	return out
}
