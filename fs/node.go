package fs

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/lamina-bio/lamina/ref"
	"github.com/lamina-bio/lamina/stage"
	"golang.org/x/sys/unix"
)

// node is every inode of the mount: a thin adapter from go-fuse calls to
// the Namespace. Its Entry never changes; a name that comes to show
// something else gets a new inode (a new inode number), but for a file's
// latest path, whose inode is its key's (itemEntry): its Entry is the
// version it was made for, and current says what it shows now.
//
// The kernel keeps a node per file it knows, every file created through
// the mount included (a commit keeps the name's entry), so a node holds
// only what every node needs: what only a latest path needs sits behind
// pg, and a sidecar's served hash in Mount.sidecars (20,000 creates: 512
// bytes a node, 320 now; docs/design.md).
type node struct {
	fusefs.Inode
	m  *Mount
	e  Entry
	pg *pageState // a latest path's: what the kernel caches of it, what it showed last (inode.go)

	retiredAs string // the key it no longer shows; guarded by retiredInodes.mu
}

var (
	_ fusefs.NodeLookuper       = (*node)(nil)
	_ fusefs.NodeOpendirHandler = (*node)(nil)
	_ fusefs.NodeReaddirer      = (*node)(nil)
	_ fusefs.NodeGetattrer      = (*node)(nil)
	_ fusefs.NodeSetattrer      = (*node)(nil)
	_ fusefs.NodeOpener         = (*node)(nil)
	_ fusefs.NodeReader         = (*node)(nil)
	_ fusefs.NodeGetxattrer     = (*node)(nil)
	_ fusefs.NodeListxattrer    = (*node)(nil)
	_ fusefs.NodeSetxattrer     = (*node)(nil)
	_ fusefs.NodeRemovexattrer  = (*node)(nil)
	_ fusefs.NodeStatfser       = (*node)(nil)
	_ fusefs.NodeCreater        = (*node)(nil)
	_ fusefs.NodeMkdirer        = (*node)(nil)
	_ fusefs.NodeMknoder        = (*node)(nil)
	_ fusefs.NodeUnlinker       = (*node)(nil)
	_ fusefs.NodeRmdirer        = (*node)(nil)
	_ fusefs.NodeRenamer        = (*node)(nil)
	_ fusefs.NodeSymlinker      = (*node)(nil)
	_ fusefs.NodeLinker         = (*node)(nil)
	_ fusefs.NodeReadlinker     = (*node)(nil)
)

func (n *node) errno(op string, err error) syscall.Errno { return errno(n.m.log, op, err) }

func stableMode(e Entry) uint32 {
	if e.IsDir() {
		return syscall.S_IFDIR
	}
	if e.Kind == KindLink {
		return syscall.S_IFLNK
	}
	return syscall.S_IFREG
}

func (m *Mount) fill(e Entry, a *fuse.Attr) {
	a.Ino = e.Ino
	a.Mode = stableMode(e) | e.Mode
	a.Nlink = 1
	if e.IsDir() {
		a.Nlink = 2
	} else {
		a.Size = uint64(e.Size)
		a.Blocks = (a.Size + 511) / 512
	}
	a.Blksize = 1 << 16
	t := e.Mtime
	a.SetTimes(&t, &t, &t)
	a.Owner = fuse.Owner{Uid: m.uid, Gid: m.gid}
}

// latestVersion reports whether e, a file's name@vN in the folder
// prefix, shows the key's latest version: touch and chmod of the key
// change its mtime and mode in place, so the kernel must not cache its
// attributes (the notification the change sends comes from another
// goroutine, after the touch returned: a stat right after it showed the
// old mtime; audit 7). Once another version lands it never changes again.
func (m *Mount) latestVersion(ctx context.Context, prefix string, e Entry) bool {
	if e.Kind != KindFile || e.Latest {
		return false
	}
	l, err := m.ns.listing(ctx, prefix)
	if err != nil {
		return false
	}
	it, ok := l.file(ParseName(e.Name).Base)
	return ok && it.uid == e.uid
}

// parentPrefix is the folder (key prefix) n is in, from its path.
func (n *node) parentPrefix() (string, bool) {
	if n.EmbeddedInode() == nil {
		return "", false
	}
	p := n.Path(nil)
	if p == "" || strings.HasPrefix(p, ".go-fuse") {
		return "", false
	}
	prefix, _ := splitKey(p)
	return prefix, true
}

// timeout is how long the kernel may cache an entry: hours for what never
// changes, less for names that Changed invalidates anyway.
func (m *Mount) timeout(ctx context.Context, e Entry) time.Duration {
	if e.Kind == KindMeta && e.V.Run != "" && m.opts.Lineage != nil {
		return 0 // its lineage grows while the run runs
	}
	if e.Kind == KindMeta && m.ns.showsLatest(ctx, *e.V) {
		// A touch or chmod of the key changes it, and a commit makes
		// name.meta another version's: asked each time (names.go).
		return 0
	}
	if e.Immutable() {
		return m.opts.ImmutableTimeout
	}
	return m.opts.LatestTimeout
}

func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	n.m.lookups.Add(1)
	child, errno := n.lookup(ctx, name, out)
	if errno == 0 && !child.IsDir() {
		n.m.wantAttrs()
	}
	return child, errno
}

func (n *node) lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	if n.e.Kind == KindDir && n.m.scratchAt(ctx, n.prefix()+name) {
		return n.lookupScratch(ctx, name, out)
	}
	e, err := n.m.ns.Lookup(ctx, n.entry(), name)
	if err != nil {
		errno := n.errno("lookup", err)
		if errno == syscall.ENOENT && n.m.listsDerived() && n.m.unlinked.gone(ctx, n.prefix(), name) {
			return n.ghost(ctx, name, out) // write.go
		}
		if errno == syscall.ENOENT && n.e.Kind == KindDir && n.m.removed.by(n.prefix()+name, callerTID(ctx)) {
			return n.ghostOf(ctx, syscall.S_IFDIR, out) // rmfolder.go: for rm's rmdir of it
		}
		if errno == syscall.ENOENT && ParseName(name).Version > 0 {
			// No negative entry for a version's name (name@vN, its
			// sidecar): the version may land any moment (a save, a close
			// through the mount, a restore), and nothing could tell the
			// kernel to forget a name it never had a node for. A negative
			// entry hid a new name@vN for NegativeTimeout after it landed
			// (audit 7). go-fuse turns ENOENT into a cached negative entry
			// only when the entry timeout is unset.
			out.SetEntryTimeout(time.Nanosecond)
		}
		return nil, errno
	}
	e = n.m.held.apply(n.prefix(), name, e)
	shared := false
	if isLatestFile(e) && n.m.held.holding() {
		e, shared = n.m.writersAttr(n.prefix()+name, e.Ino, e) // write.go
	}
	n.m.fill(e, &out.Attr)
	d := n.m.timeout(ctx, e)
	out.SetEntryTimeout(d)
	out.SetAttrTimeout(d)
	if n.m.latestVersion(ctx, n.prefix(), e) {
		out.SetAttrTimeout(0) // touch and chmod change it: Getattr
	}
	if isLatestFile(e) && (shared || n.m.held.apart(n.prefix()+name)) {
		out.SetAttrTimeout(0) // writers apart (writersAttr), or through another inode (held.go)
	}
	if e.Unlisted {
		// Its mtime is a placeholder: the first stat asks again (Getattr
		// reads the listing), so the kernel's cached listing is stamped
		// with the mtime it keeps, not reset on the next opendir.
		out.SetAttrTimeout(0)
	}
	child := n.NewInode(ctx, n.m.newNode(e), n.m.stableAttr(e))
	if sn, ok := child.Operations().(*node); ok && e.Kind == KindMeta {
		n.m.sidecars.track(sn) // names.go
	}
	return child, 0
}

func (n *node) Getattr(ctx context.Context, fh fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if fh == nil && n.movedToScratch(ctx) {
		return syscall.ESTALE // a stat by path: scratch.go
	}
	gone := n.derivedGone(ctx)
	if gone && (fh == nil || !n.m.opensInode(callerTID(ctx), n.StableAttr().Ino)) {
		// A stat by path (dropDerived). The kernel sends no handle with an
		// fstat either (libfuse#62): go-fuse passes the node's first open
		// one, and a descriptor closed a moment ago keeps it until the
		// RELEASE, which the kernel sends after close returned (`cat
		// k@v1.meta; rm k; stat k@v1.meta` found it). Only a caller with a
		// descriptor on the inode gets its attributes.
		return syscall.ESTALE
	}
	e := n.current(ctx, fh)
	shared := false
	if isLatestFile(e) && n.m.held.holding() {
		e, shared = n.writersAttr(e) // write.go
	}
	if e.Kind == KindFile && !e.Latest {
		if prefix, ok := n.parentPrefix(); ok && n.m.latestVersion(ctx, prefix, e) {
			// name@vN of the key's latest version: touch and chmod
			// change its mtime and mode in place, and the node keeps
			// the entry of its lookup.
			if cur, err := n.m.ns.lookupKey(ctx, prefix, e.Name); err == nil && cur.uid == e.uid {
				e = cur
			}
			n.m.fill(e, &out.Attr)
			out.SetTimeout(0)
			return 0
		}
	}
	if e.Kind == KindDir {
		if l, err := n.m.ns.listing(ctx, e.Prefix); err == nil {
			e.Mtime, e.Mode = l.attrs()
		}
	}
	if e.Kind == KindView {
		e.Mtime = n.m.ns.viewMtime(ctx, e) // collections.go
	}
	if e.Kind == KindMeta { // annotations, touch and chmod change it
		n.m.sidecars.use(n) // names.go
		v := n.m.ns.fresh(ctx, *e.V)
		b, err := n.m.ns.sidecar(ctx, v)
		if err != nil {
			return n.errno("getattr", err)
		}
		e.V, e.Size, e.Mtime = &v, int64(len(b)), v.Mtime
	}
	n.m.fill(e, &out.Attr)
	out.SetTimeout(n.m.timeout(ctx, e))
	if isLatestFile(e) && (shared || n.m.held.apart(n.key())) {
		out.SetTimeout(0) // writers apart (writersAttr), or through another inode (held.go)
	}
	if gone {
		out.SetTimeout(0) // a holder's fstat: a stat by path next asks again
	}
	return 0
}

// derivedGone reports whether n is reached by a name derived from a key
// (name.meta, name@vN, its sidecar, a folder artifact's name@vN/…) while
// the key is no longer a file or folder artifact in its folder: unlinked,
// renamed away, trashed. The kernel may hold such a name for hours; an
// unlink or rename through the mount drops its attributes (dropDerived),
// and this answers the GETATTR or OPEN that follows with ESTALE, so the
// kernel looks the name up anew (ENOENT) rather than keep showing it.
func (n *node) derivedGone(ctx context.Context) bool {
	switch n.e.Kind {
	case KindMeta, KindFolder, KindFolderFile:
	case KindFile:
		if n.e.Latest {
			return false
		}
	default:
		return false
	}
	in := n.EmbeddedInode()
	for range 4096 { // up to the folder of keys: bounded by a path's depth
		name, parent := in.Parent()
		if parent == nil {
			return false
		}
		if d, ok := parent.Operations().(*node); ok && d.e.Kind == KindDir {
			base := ParseName(name).Base
			return base != name && !n.m.ns.liveFile(ctx, d.prefix(), base)
		}
		in = parent
	}
	return false
}

func (n *node) dirEntries(ctx context.Context) ([]fuse.DirEntry, syscall.Errno) {
	es, err := n.m.ns.ReadDir(ctx, n.entry())
	if err != nil {
		return nil, n.errno("readdir", err)
	}
	out := make([]fuse.DirEntry, len(es))
	prefix := n.prefix()
	names := make(map[string]bool, len(es))
	for i, e := range es {
		e = n.m.held.apply(prefix, e.Name, e)
		out[i] = fuse.DirEntry{Name: e.Name, Ino: e.Ino, Mode: stableMode(e)}
		names[e.Name] = true
	}
	if n.e.Kind == KindDir {
		out = append(out, n.m.scratchEntries(prefix, names)...)
	}
	return out, 0
}

func (n *node) OpendirHandle(ctx context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	var fl uint32
	if n.m.opts.CacheDirs {
		// go-fuse adds FOPEN_KEEP_CACHE: an opendir of a listing the kernel
		// holds sends no READDIR, so the entries are made on the first one.
		fl = fuse.FOPEN_CACHE_DIR
	}
	return &dirHandle{n: n}, fl, 0
}

// dirHandle is an open directory; its entries are listed at the first
// READDIR (none comes while the kernel's cached listing is valid).
type dirHandle struct {
	n *node

	mu     sync.Mutex // guards the fields below
	loaded bool
	es     []fuse.DirEntry
	idx    int
}

var (
	_ fusefs.FileReaddirenter = (*dirHandle)(nil)
	_ fusefs.FileSeekdirer    = (*dirHandle)(nil)
	_ fusefs.FileReleasedirer = (*dirHandle)(nil)
)

func (d *dirHandle) load(ctx context.Context) syscall.Errno {
	if d.loaded {
		return 0
	}
	es, errno := d.n.dirEntries(ctx)
	if errno != 0 {
		return errno
	}
	d.n.m.listed.Add(1)
	d.es, d.loaded = append(d.n.dots(), es...), true
	return 0
}

// dots are a listing's "." and "..", which POSIX readdir gives (`ls -a`);
// go-fuse sends them without a lookup.
func (n *node) dots() []fuse.DirEntry {
	self := n.StableAttr().Ino
	parent := self
	if _, p := n.EmbeddedInode().Parent(); p != nil {
		parent = p.StableAttr().Ino
	}
	return []fuse.DirEntry{{Name: ".", Mode: syscall.S_IFDIR, Ino: self}, {Name: "..", Mode: syscall.S_IFDIR, Ino: parent}}
}

func (d *dirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if errno := d.load(ctx); errno != 0 {
		return nil, errno
	}
	if d.idx >= len(d.es) {
		return nil, 0
	}
	e := d.es[d.idx]
	d.idx++
	e.Off = uint64(d.idx)
	return &e, 0
}

func (d *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	d.mu.Lock()
	defer d.mu.Unlock()
	if off == 0 {
		// A rewinddir lists afresh.
		d.loaded, d.es, d.idx = false, nil, 0
		return 0
	}
	if errno := d.load(ctx); errno != 0 {
		return errno
	}
	// Past the end: the listing shrank under the kernel, which served the
	// first entries from its cached listing and asks to go on where that
	// ended, on a handle whose fresh listing is shorter. The listing ends
	// there, as a plain folder's does: EINVAL failed `ls`, os.listdir and
	// Snakemake's globs over a folder jobs were writing (audit 52).
	d.idx = int(min(off, uint64(len(d.es))))
	return 0
}

func (d *dirHandle) Releasedir(ctx context.Context, releaseFlags uint32) {}

func (n *node) Readdir(ctx context.Context) (fusefs.DirStream, syscall.Errno) {
	es, errno := n.dirEntries(ctx)
	if errno != 0 {
		return nil, errno
	}
	return fusefs.NewListDirStream(append(n.dots(), es...)), 0
}

// handle is an open file: a version's content or a sidecar's bytes, or a
// staged file being written (write.go).
type handle struct {
	r      *fileReader
	meta   []byte
	w      *writeHandle
	follow *following         // write.go
	pages  *pageState         // a reader of a latest path: released at RELEASE (inode.go)
	staged stage.StagedReader // a reader of a failed close's staged bytes (failedEntry)
}

// fmodeExec is __FMODE_EXEC, the flag the kernel's open for execve carries
// in an OPEN's flags.
const fmodeExec = 0x20

// open is Open without lineage (lineage.go).
func (n *node) open(ctx context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	if flags&syscall.O_ACCMODE != syscall.O_RDONLY || flags&syscall.O_TRUNC != 0 {
		return n.openWrite(ctx, flags)
	}
	const keep = fuse.FOPEN_KEEP_CACHE | fuse.FOPEN_NOFLUSH
	want := uint32(unix.R_OK)
	if flags&fmodeExec != 0 {
		want = unix.X_OK // execve's open: a 0111 program runs, as on a plain file system
	}
	cur := n.e
	if isLatestFile(cur) {
		cur = n.current(ctx, nil) // its mode and version now: one lookup for both uses
	}
	if !n.m.may(ctx, cur, want) { // write.go
		return nil, 0, syscall.EACCES
	}
	if h, fl, errno, ok := n.openLatest(ctx, cur); ok { // write.go
		return h, fl, errno
	}
	switch n.e.Kind {
	case KindMeta:
		return n.openSidecar(ctx, keep) // names.go
	case KindFile, KindFolderFile:
		f, err := n.m.ns.FileOf(ctx, n.e)
		if err != nil {
			return nil, 0, n.errno("open", err)
		}
		n.m.opened.Add(1)
		return &handle{r: newFileReader(n.m.chunks, f).named(n.m.ns, n.e).storingTo(n.EmbeddedInode(), nil, n.e.uid)}, keep, 0
	}
	return nil, 0, syscall.EISDIR
}

func (n *node) Read(ctx context.Context, fh fusefs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	h, ok := fh.(*handle)
	if !ok {
		return nil, syscall.EBADF
	}
	if h.w != nil {
		k, err := h.w.f.ReadAt(ctx, dest, off)
		if err != nil && k == 0 && !isEOF(err) {
			return nil, readErrno(ctx, n.m.log, err)
		}
		h.w.creditRead() // lineage.go
		return fuse.ReadResultData(dest[:k]), 0
	}
	if h.staged != nil {
		k, err := h.staged.ReadAt(dest, off)
		if err != nil && k == 0 && !isEOF(err) {
			return nil, readErrno(ctx, n.m.log, err)
		}
		return fuse.ReadResultData(dest[:k]), 0
	}
	if h.meta != nil {
		if off >= int64(len(h.meta)) {
			return fuse.ReadResultData(nil), 0
		}
		end := min(off+int64(len(dest)), int64(len(h.meta)))
		return fuse.ReadResultData(h.meta[off:end]), 0
	}
	r := h.r
	var uid [ref.UIDLen]byte
	if h.follow != nil {
		var err error
		if r, uid, err = h.follow.reader(ctx); err != nil {
			return nil, readErrno(ctx, n.m.log, err)
		}
	}
	k, err := r.ReadAt(ctx, dest, off)
	if err != nil && k == 0 && !isEOF(err) {
		return nil, readErrno(ctx, n.m.log, err)
	}
	if h.follow != nil {
		h.follow.credit(ctx, uid) // lineage.go
	}
	return fuse.ReadResultData(dest[:k]), 0
}

// Extended attributes of files and folder artifacts.
const xattrPrefix = "user.lamina."

// hasXattrs reports whether e, what a node shows, has user.lamina.*
// attributes: files and folder artifacts (their top and the files in them:
// a member's digest is its own, its uid, version and key the folder's), not
// sidecars.
func hasXattrs(e Entry) bool {
	switch e.Kind {
	case KindFile:
		return true
	case KindFolder:
		return e.Path() == ""
	case KindFolderFile:
		return true
	}
	return false
}

var xattrNames = []string{xattrPrefix + "uid", xattrPrefix + "version", xattrPrefix + "digest", xattrPrefix + "key"}

// xattr is the value of one user.lamina.* attribute. A node made from a
// listing reads its version here first (the listing keeps no digest).
//
// Namespaces other than user (system.posix_acl_access, security.selinux:
// what `ls -l` asks of every file) answer EOPNOTSUPP, not ENODATA: the mount
// keeps neither ACLs nor labels, and GNU ls, told so once, stops asking for
// the rest of the device, which saves two round trips a file.
func (n *node) xattr(ctx context.Context, attr string) (string, syscall.Errno) {
	if !strings.HasPrefix(attr, "user.") {
		return "", syscall.EOPNOTSUPP
	}
	e := n.current(ctx, nil) // a latest path's version now
	if !hasXattrs(e) || !strings.HasPrefix(attr, xattrPrefix) {
		return "", syscall.ENODATA
	}
	v, err := n.m.ns.Full(ctx, e)
	if err != nil {
		return "", n.errno("getxattr", err)
	}
	switch attr[len(xattrPrefix):] {
	case "uid":
		return v.UID, 0
	case "version":
		return itoa(v.Version), 0
	case "digest":
		if e.Kind == KindFolderFile && e.in != nil && e.in.file != nil {
			// The member's own bytes, as a save of that file records;
			// uid, version and key are the folder version's.
			return e.in.file.Digest.String(), 0
		}
		return v.Digest.String(), 0
	case "key":
		return v.Key, 0
	}
	return "", syscall.ENODATA
}

func (n *node) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	val, errno := n.xattr(ctx, attr)
	if errno != 0 {
		return 0, errno
	}
	if len(dest) < len(val) {
		return uint32(len(val)), syscall.ERANGE
	}
	return uint32(copy(dest, val)), 0
}

func (n *node) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	var b bytes.Buffer
	if hasXattrs(n.current(ctx, nil)) {
		for _, name := range xattrNames {
			b.WriteString(name)
			b.WriteByte(0)
		}
	}
	if len(dest) < b.Len() {
		return uint32(b.Len()), syscall.ERANGE
	}
	return uint32(copy(dest, b.Bytes())), 0
}

func (n *node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	*out = fuse.StatfsOut{Bsize: 4096, Frsize: 4096, NameLen: 255}
	if n.m.opts.StatfsPath != "" {
		var st syscall.Statfs_t
		if err := syscall.Statfs(n.m.opts.StatfsPath, &st); err == nil {
			out.Blocks = st.Blocks * uint64(st.Bsize) / 4096
			out.Bfree = st.Bfree * uint64(st.Bsize) / 4096
			out.Bavail = st.Bavail * uint64(st.Bsize) / 4096
			out.Files, out.Ffree = st.Files, st.Ffree
		}
	}
	return 0
}

// Lookup gives READDIRPLUS the attributes of one listed name, or leaves them
// out: an entry without a node id is only a name and a type to the kernel
// (fuse_direntplus_link), so it makes no inode on either side. A walk that
// reads types only (`find -type f`, os.walk) then costs no per-file work;
// one that stats what it lists (`ls -l`, du, rsync) sends a LOOKUP for
// each, which switches listings back to full attributes for a while
// (Mount.wantAttrs). Folders always come with theirs: a walk enters them.
func (d *dirHandle) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	m := d.n.m
	d.mu.Lock()
	// The entry Readdirent gave last, unless go-fuse replays an interrupted
	// read (then the name differs, and the entry goes out whole).
	file := d.idx > 0 && d.idx <= len(d.es) && d.es[d.idx-1].Name == name && d.es[d.idx-1].Mode&syscall.S_IFMT != syscall.S_IFDIR
	d.mu.Unlock()
	if !file || m.listAttrs() || d.n.GetChild(name) != nil {
		return d.n.lookup(ctx, name, out)
	}
	m.bareListed.Store(time.Now().UnixNano())
	return nil, syscall.EAGAIN // any error: the entry goes out without a node id
}
