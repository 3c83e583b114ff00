package fs

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/lamina-bio/lamina/stage"
	"golang.org/x/sys/unix"
)

// DefaultChunkCacheBytes bounds the decoded chunks a mount keeps in
// memory, whatever the storage (local or S3): the "chunk cache" of
// `lamina status`, not the disk cache of data fetched from S3.
const DefaultChunkCacheBytes = 64 << 20

// DefaultReadAheadKB is the kernel's readahead for a mount: with 16 MiB
// of READs in flight a cold sequential read of local storage keeps both
// cores busy (20-30 % faster than at 1 MiB). It is also how much a page
// fault in a memory map reads around the faulting page: see S3ReadAheadKB.
const DefaultReadAheadKB = 16 << 10

// S3ReadAheadKB is the readahead for a mount of S3 storage: one READ of
// the largest size. At 16 MiB each random fault in a memory map read 16 MiB
// and the daemon warmed more after it: 100 random 4 KiB reads through
// numpy.memmap fetched 989 MiB of a 1 GiB version (pread: 354 MiB); at
// 1 MiB 459 MiB. Sequential reads do not need the kernel's window there:
// the daemon fetches up to 64 MiB ahead (Store.Warm). docs/mount-bench.md,
// "Readahead and memory maps".
const S3ReadAheadKB = 1024

// MountOptions tune a mount. Zero values take the defaults noted.
type MountOptions struct {
	Options                        // what the namespace shows
	Name             string        // shown as the source in /proc/mounts: "lamina:NAME"
	ImmutableTimeout time.Duration // kernel cache of versions and sidecars; default 1 h
	LatestTimeout    time.Duration // kernel cache of latest names and directories; default 1 min
	NegativeTimeout  time.Duration // kernel cache of "no such name"; default 1 s
	ChunkCacheBytes  int64         // decoded chunks kept in memory; default DefaultChunkCacheBytes
	NoXAttrs         bool          // refuse xattrs (faster ls -l; see docs/mount-bench.md)
	NoCacheDirs      bool          // do not let the kernel cache listings
	ReadAheadKB      int           // set the mount's bdi read_ahead_kb; default DefaultReadAheadKB, -1 leaves it
	StatfsPath       string        // statfs reports this folder's file system (the storage root)
	Debug            bool          // log every FUSE request
	Logger           *slog.Logger
	// The write side (write.go): nil Stage makes the mount read-only
	// but for scratch paths, which it has when ScratchDir is set.
	Stage      *stage.Stage
	Scratch    []string // scratch name patterns; nil means stage.DefaultScratch
	ScratchDir string   // where scratch paths live; default Stage.Dir()/../scratch
	// Tracker attributes opens to lineage runs (lineage.go); nil tracks nothing.
	Tracker Tracker
}

type mountOpts struct {
	MountOptions
	CacheDirs bool
}

// Mount is a mounted namespace.
type Mount struct {
	dir    string
	ns     *Namespace
	chunks *chunkCache
	opts   mountOpts
	log    *slog.Logger
	server *fuse.Server
	root   *node
	uid    uint32
	gid    uint32

	// dev is the mount's device (major:minor) as mountinfo lists it at dir
	// once it is up, "" if it did not (Detached). No other file system has
	// it while the connection lives: another mount at dir later (after a
	// lazy unmount) has another.
	dev   string
	ended chan struct{} // closed when the server stops serving

	changes chan changeReq
	notes   chan []Change // kernel notifications of the write side
	stop    chan struct{}

	scratch    stage.Scratch
	scratchDir string
	loop       *fusefs.LoopbackRoot
	scratchW   scratchWriters // scratchfile.go
	scratchSrc scratchSources // scratchsource.go
	specials   atomic.Bool    // special.go: a FIFO or socket may be at a name no pattern matches
	opened     atomic.Int64   // files opened, for Stats
	sidecars   sidecarInodes  // names.go
	listed     atomic.Int64   // folder listings made for the kernel, for Stats
	lookups    atomic.Int64   // LOOKUPs, for Stats
	dirs       *noOpendir
	held       heldInodes    // held.go
	writers    writerSet     // write.go: writable handles not released
	mounts     mountIDs      // dupclose.go: the mount IDs and folders that are this mount's
	pageWrites pageWrites    // pagewrite.go: WRITEs of the page cache being handled
	retired    retiredInodes // inode.go
	// READDIRPLUS leaves files' attributes out (dirHandle.Lookup) unless a
	// LOOKUP of a file came soon after it last did: unix nanoseconds.
	bareListed atomic.Int64 // when a listing last left them out
	attrsUntil atomic.Int64 // listings carry them until then
	// readOnly is set once the mount may no longer write (SetReadOnly).
	readOnly atomic.Bool
	unlinked unlinkedKeys   // write.go
	removals removalRuns    // removal.go
	removed  removedFolders // rmfolder.go
}

// SetReadOnly turns the write side off for good: from now on writes,
// creates, renames, unlinks and attribute changes are EROFS (another
// instance took the storage over). Files already open for writing may
// still be written; their commit at close goes through the write side,
// which must refuse it itself.
func (m *Mount) SetReadOnly() { m.readOnly.Store(true) }

// ForgetListings drops the folder listings the mount caches, and has the
// kernel forget every name, attribute and page it caches of the mount, so
// that lookups and listings ask the catalog again: one whose database now
// holds another instance's catalog, listed since it was reset, answers
// with an error rather than that catalog's files, and so does a name the
// kernel knew (it answered from the kernel's cache for its timeout). It
// returns once the kernel has been told (or after 5 s). Call it from any
// goroutine but a FUSE request handler of this mount.
func (m *Mount) ForgetListings() {
	m.ns.dropAll()
	req := changeReq{all: true, done: make(chan struct{})}
	select {
	case m.changes <- req:
	case <-m.stop:
		return
	}
	select {
	case <-req.done:
	case <-m.stop:
	case <-time.After(5 * time.Second):
		m.log.Warn("lamina mount: invalidating the kernel's caches is slow")
	}
}

// forgetAll tells the kernel to drop what it caches of every inode it
// knows: each name (an entry invalidation, deepest first), attributes and
// pages. It runs on the invalidator.
func (m *Mount) forgetAll() {
	var walk func(dir *fusefs.Inode)
	walk = func(dir *fusefs.Inode) { // the kernel's tree: finite, no cycles
		for name, ch := range dir.Children() {
			if ch.IsDir() {
				walk(ch)
			}
			ch.NotifyContent(0, 0) // attributes and pages, open files' too
			dir.NotifyEntry(name)
		}
		dir.NotifyContent(0, 0)
	}
	walk(m.root.EmbeddedInode())
}

// writesOff reports whether the mount refuses changes.
func (m *Mount) writesOff() bool { return m.ns.st == nil || m.readOnly.Load() }

// attrsWindow is how long listings carry files' attributes after a walk
// was seen to stat what it listed (a variable for tests).
var attrsWindow = 5 * time.Second

// listAttrs reports whether READDIRPLUS gives files' attributes now.
func (m *Mount) listAttrs() bool { return time.Now().UnixNano() < m.attrsUntil.Load() }

// wantAttrs notes a LOOKUP of a file: soon after a listing that left
// attributes out, it is a walk that stats what it lists (`ls -l`), which
// one round trip per file would slow; listings carry them for a while.
func (m *Mount) wantAttrs() {
	now := time.Now().UnixNano()
	if now-m.bareListed.Load() < int64(attrsWindow) {
		m.attrsUntil.Store(now + int64(attrsWindow))
	}
}

type changeReq struct {
	keys []string
	all  bool // forget everything the kernel caches (ForgetListings)
	done chan struct{}
}

// New mounts the namespace of cat at dir and returns once the kernel
// answers on it. As root it mounts directly (mount(2)); otherwise through
// fusermount3.
func New(dir string, cat Catalog, content Content, o MountOptions) (*Mount, error) {
	if o.ImmutableTimeout == 0 {
		o.ImmutableTimeout = time.Hour
	}
	if o.LatestTimeout == 0 {
		o.LatestTimeout = time.Minute
	}
	if o.NegativeTimeout == 0 {
		o.NegativeTimeout = time.Second
	}
	if o.ChunkCacheBytes == 0 {
		o.ChunkCacheBytes = DefaultChunkCacheBytes
	}
	if o.ReadAheadKB == 0 {
		o.ReadAheadKB = DefaultReadAheadKB
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Tracker != nil && o.Lineage == nil {
		o.Lineage = o.Tracker.Sidecar
	}
	m := &Mount{
		dir: dir, ns: NewNamespace(cat, content, o.Options), chunks: newChunkCache(content, o.ChunkCacheBytes),
		opts: mountOpts{MountOptions: o, CacheDirs: !o.NoCacheDirs}, log: o.Logger,
		uid: uint32(os.Getuid()), gid: uint32(os.Getgid()),
		changes: make(chan changeReq, 16), stop: make(chan struct{}),
	}
	m.notes = make(chan []Change, 256)
	if o.Stage != nil {
		m.ns.st = o.Stage
		if rn, ok := o.Tracker.(runNesting); ok {
			o.Stage.OnRunWithin(rn.Within)
		}
	}
	// Scratch paths need no Stage: a read-only mount (no Stage) has them
	// too when given their folder.
	if o.Stage != nil || o.ScratchDir != "" {
		m.scratch = stage.Scratch(o.Scratch)
		if o.Scratch == nil {
			m.scratch = stage.DefaultScratch
		}
		m.scratchDir = o.ScratchDir
		if m.scratchDir == "" {
			m.scratchDir = filepath.Join(filepath.Dir(o.Stage.Dir()), "scratch")
		}
		if err := os.MkdirAll(m.scratchDir, 0o755); err != nil {
			return nil, fmt.Errorf("mount: scratch folder: %w", err)
		}
		var st syscall.Stat_t
		if err := syscall.Stat(m.scratchDir, &st); err != nil {
			return nil, fmt.Errorf("mount: scratch folder: %w", err)
		}
		m.loop = &fusefs.LoopbackRoot{Path: m.scratchDir, Dev: uint64(st.Dev)}
		//lint:ignore SA1019 NodeWrapChilder needs a root node of our own; NewNode still works in go-fuse v2.12
		m.loop.NewNode = func(r *fusefs.LoopbackRoot, parent *fusefs.Inode, name string, st *syscall.Stat_t) fusefs.InodeEmbedder {
			return &scratchNode{LoopbackNode: fusefs.LoopbackNode{RootData: r}, m: m}
		}
		m.findSpecials() // special.go
	}
	m.root = &node{m: m, e: m.ns.Root()}
	if o.Stage != nil {
		o.Stage.OnMovedBack(m.movedBack) // write.go
	}
	neg := o.NegativeTimeout
	fsname := "lamina"
	if o.Name != "" {
		fsname = "lamina:" + o.Name
	}
	fo := &fusefs.Options{
		NegativeTimeout: &neg,
		RootStableAttr:  &fusefs.StableAttr{Ino: 1, Mode: syscall.S_IFDIR},
		UID:             m.uid, GID: m.gid,
		// Mode bits are a file's metadata, 000 too (tar's placeholders):
		// go-fuse would show 0644 for it. Every other node sets its own.
		NullPermissions: true,
		MountOptions: fuse.MountOptions{
			FsName: fsname, Name: "lamina",
			MaxWrite: 1 << 20, MaxReadAhead: 1 << 20, MaxBackground: 64,
			DirectMount: os.Geteuid() == 0, // NoXAttrs: noXAttrs below
			Debug:       o.Debug,           // security labels and ACLs: node.xattr answers
			// Reads answer from memory (ReadResultData): splicing them
			// only adds a copy, and a 1 MiB read (MaxWrite) does not fit
			// the 1 MiB pipe: go-fuse v2.12.1 then logs a line per READ
			// and its fallback write fails with ENOENT, until the kernel
			// drops the connection (docs/s3-bench.md).
			DisableSplice: true,
			// open(O_TRUNC) arrives as one OPEN with O_TRUNC set, not as
			// OPEN then a SETATTR(size=0) without the handle: that
			// SETATTR cannot say which of several writers of a key it
			// is for, and truncating the wrong one committed versions
			// that were half another writer's bytes.
			ExtraCapabilities: fuse.CAP_ATOMIC_O_TRUNC,
		},
	}
	if o.Debug {
		fo.Logger = log.New(os.Stderr, "", 0)
	}
	m.dirs = newNoOpendir(fusefs.NewNodeFS(m.root, fo), !m.opts.CacheDirs)
	var raw fuse.RawFileSystem = pageWriteFS{m.dirs, &m.pageWrites}
	if o.NoXAttrs {
		raw = noXAttrs{raw}
	}
	server, err := fuse.NewServer(raw, dir, &fo.MountOptions)
	if err != nil {
		return nil, fmt.Errorf("mount %s: %w", dir, err)
	}
	go server.Serve()
	if err := server.WaitMount(); err != nil {
		return nil, fmt.Errorf("mount %s: %w", dir, err)
	}
	m.server = server
	m.ended = make(chan struct{})
	go func() { server.Wait(); close(m.ended) }()
	if mi, ok := MountInfo(dir); ok {
		m.dev = mi.Dev
	}
	go m.invalidator()
	go m.notifier()
	if o.ReadAheadKB > 0 {
		m.setReadAhead(o.ReadAheadKB)
	}
	return m, nil
}

// setReadAhead sets the kernel's readahead for the mount (only root may):
// go-fuse's MaxReadAhead can only lower it, and sequential reads of local
// storage gain from more (docs/mount-bench.md).
func (m *Mount) setReadAhead(kb int) {
	var st unix.Stat_t
	if err := unix.Stat(m.dir, &st); err != nil {
		return
	}
	p := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(st.Dev), unix.Minor(st.Dev))
	if err := os.WriteFile(p, []byte(fmt.Sprint(kb)), 0); err != nil {
		m.log.Debug("lamina mount: cannot set readahead", "path", p, "err", err)
	}
}

// Dir is the mountpoint.
func (m *Mount) Dir() string { return m.dir }

// Wait blocks until the file system is unmounted.
func (m *Mount) Wait() { m.server.Wait() }

// OpenForWriting returns the keys of the files open for writing through
// the mount (none on a read-only mount). Processes of a mount detached
// lazily are not seen in /proc under its directory, but their files are
// open here.
func (m *Mount) OpenForWriting() []string {
	if m.ns.st == nil {
		return nil
	}
	return m.ns.st.OpenKeys()
}

// Detached reports whether the mount is gone from its directory while
// served: a lazy unmount (MNT_DETACH), which leaves processes that use it
// working until they let go, and makes Unmount fail (EINVAL).
// It is false when mountinfo did not name the mount by dir to begin with.
// The mount is told by its device, not by dir alone: another file system
// mounted at dir after the lazy unmount (tmpfs, another lamina) was taken
// for this one.
func (m *Mount) Detached() bool {
	if m.dev == "" {
		return false
	}
	found := false
	scanMounts(func(mp MountPoint) {
		found = found || mp.Dir == m.dir && mp.Dev == m.dev
	})
	return !found
}

// Covered reports whether another file system is mounted over the mount's
// folder (the mount is still there, beneath it): an unmount by path would
// unmount that one.
func (m *Mount) Covered() bool {
	if m.dev == "" {
		return false
	}
	ours, top := false, ""
	scanMounts(func(mp MountPoint) {
		if mp.Dir == m.dir {
			ours = ours || mp.Dev == m.dev
			top = mp.Dev // the last one at a folder is the one seen
		}
	})
	return ours && top != m.dev
}

// Dev is the mount's device (major:minor), "" if unknown.
func (m *Mount) Dev() string { return m.dev }

// Unmount unmounts and stops the invalidator. Open files make it fail with
// EBUSY (the caller may retry); so does a mount detached lazily that is
// still used, with EINVAL.
func (m *Mount) Unmount() error {
	select {
	case <-m.ended:
		// The kernel let it go: nothing to unmount. What is at dir now is
		// another's, even on our device number (freed, and given again).
	default:
		if m.Detached() {
			// Not at dir any more: go-fuse unmounts by path, and would
			// unmount what was mounted there since.
			return fmt.Errorf("unmount %s: detached and still in use: %w", m.dir, syscall.EINVAL)
		}
		if m.Covered() {
			return fmt.Errorf("unmount %s: another file system is mounted over it: %w", m.dir, syscall.EINVAL)
		}
		if err := m.server.Unmount(); err != nil {
			return err
		}
	}
	select {
	case <-m.stop:
	default:
		close(m.stop)
	}
	if m.ns.st != nil {
		// Commits whose durability was deferred (stage.Options.SyncEvery).
		if err := m.ns.st.Sync(context.Background()); err != nil {
			return fmt.Errorf("unmounted, but the last commits are not durable: %w", err)
		}
	}
	return nil
}

// Changed tells the mount that keys changed in the catalog. It returns once
// the kernel has been told to forget what it cached about them (or after 5 s).
// Call it from any goroutine but a FUSE request handler of this mount.
func (m *Mount) Changed(keys []string) {
	req := changeReq{keys: keys, done: make(chan struct{})}
	select {
	case m.changes <- req:
	case <-m.stop:
		return
	}
	select {
	case <-req.done:
	case <-m.stop:
	case <-time.After(5 * time.Second):
		m.log.Warn("lamina mount: invalidating the kernel's caches is slow", "keys", keys)
	}
}

// invalidator runs every kernel notification on one goroutine of its own:
// a notification sent from inside a handler working on a related inode
// deadlocks the kernel.
func (m *Mount) invalidator() {
	for {
		select {
		case <-m.stop:
			return
		case req := <-m.changes:
			if req.all {
				m.forgetAll()
			} else {
				m.changed(req.keys) // collections.go
			}
			close(req.done)
		}
	}
}

// dirInode is the kernel-known inode of the folder prefix, or nil if the
// kernel never looked inside (then it caches nothing there).
func (m *Mount) dirInode(prefix string) *fusefs.Inode {
	dir := m.root.EmbeddedInode()
	for _, seg := range strings.Split(strings.TrimSuffix(prefix, "/"), "/") {
		if seg == "" {
			continue
		}
		if dir = dir.GetChild(seg); dir == nil {
			return nil
		}
	}
	return dir
}

func (m *Mount) invalidate(c Change) {
	dir := m.dirInode(c.Prefix)
	if dir == nil {
		return
	}
	if m.opts.CacheDirs || len(c.Names) == 0 {
		// The cached listing, and the attributes: a folder changed alone
		// (no names: chmod, touch) shows them.
		dir.NotifyContent(0, 0)
	}
	names := map[string]bool{}
	bases := false
	for _, n := range c.Names {
		names[n] = true
		ch := dir.GetChild(n)
		pn := ParseName(n)
		switch {
		case ch != nil && m.sameNode(c.Prefix, n, ch):
			// The name still shows the node the kernel has, another version
			// of its key: the inode's attributes are dropped, not the
			// entry. An entry invalidation takes the folder's lock in the
			// kernel, behind any LOOKUP there waiting for the mount: a
			// daemon killed meanwhile stays stuck in the kernel, and the
			// LOOKUP's process waits until the mount is aborted
			// (TestSQLiteKilled saw it, a commit a transaction).
			ch.NotifyContent(-1, 0)
		case c.kept && pn.Meta && pn.Version == 0:
			// The sidecar of a key that had a version: the kernel asks its
			// name again at each walk (entry timeout 0) and holds no
			// negative entry for it.
			if ch != nil {
				ch.NotifyContent(-1, 0)
			}
		default:
			dir.NotifyEntry(n)
		}
		bases = bases || pn.Base == n
		// A latest path's inode shows the new version: its readers follow
		// it, and the kernel's pages of the one before go.
		if ch != nil {
			if nn, ok := ch.Operations().(*node); ok && nn.pg != nil && nn.pg.landed() {
				ch.NotifyContent(0, 0)
			}
		}
	}
	if !bases || c.commit {
		// Names of versions only (versionChanged), or a commit, which
		// removes none: no scan of the folder. A first commit's name keeps
		// its entry (sameNode), so the folder's known children grow with
		// every new file: scanning them at each commit made creates
		// quadratic (3,000 into one folder: 0.35 s of 6.6 in the scan).
		return
	}
	// Versions and sidecars the kernel knows of a changed key: after a Trash
	// or Purge they must vanish at once too.
	for name := range dir.Children() {
		if pn := ParseName(name); pn.Base != name && names[pn.Base] && !names[name] {
			dir.NotifyEntry(name)
		}
	}
}

// sameNode reports whether name in the folder prefix shows, by the cached
// listing, the latest-file node ch the kernel has for it: the same inode
// and generation a lookup would answer now (held.go, inode.go). Without a
// cached listing it says no: the notifier never reads the catalog.
func (m *Mount) sameNode(prefix, name string, ch *fusefs.Inode) bool {
	n, ok := ch.Operations().(*node)
	if !ok || !isLatestFile(n.e) || m.retired.isRetired(n) {
		return false
	}
	it, ok := m.ns.cachedFile(prefix, name)
	if !ok || it.folder {
		return false
	}
	e := itemEntry(prefix, it, true)
	if ino, ok := m.held.ino(prefix + name); ok {
		e.Ino = ino // as held.apply answers a lookup
	}
	return m.stableAttr(e) == ch.StableAttr()
}

// Stats are a mount's figures for `lamina status`.
type Stats struct {
	ChunkCache CacheStats `json:"chunk_cache"`
	// FilesOpened counts the opens to read of a committed version's bytes
	// since the mount started: each open (a file read twice counts twice),
	// not the files open now; neither creates and opens to write
	// (open_for_writing) nor a sidecar's or a file's being written.
	FilesOpened int64 `json:"files_opened"`
	DirsListed  int64 `json:"dirs_listed"`  // listings the kernel's cache did not answer
	DirRequests int64 `json:"dir_requests"` // OPENDIR, READDIR(PLUS), RELEASEDIR received
	Lookups     int64 `json:"lookups"`      // LOOKUPs received (names the kernel did not know)
}

// Stats reports the mount's figures.
func (m *Mount) Stats() Stats {
	return Stats{ChunkCache: m.chunks.stats(), FilesOpened: m.opened.Load(),
		DirsListed: m.listed.Load(), DirRequests: m.dirs.requests.Load(), Lookups: m.lookups.Load()}
}

// isEOF reports the end of the data: only the bare io.EOF the mount's own
// readers (content, stage and folder readers) return. A failed request may
// wrap io.EOF (the S3 SDK's "request send failed … EOF"): that is an error
// (EIO), not an empty file.
func isEOF(err error) bool { return err == io.EOF }

func itoa(n int) string { return fmt.Sprint(n) }

// noXAttrs is a mount without extended attributes (NoXAttrs): GETXATTR,
// SETXATTR and REMOVEXATTR answer ENOSYS, after which the kernel answers
// EOPNOTSUPP itself and sends no more (ls -l asks two per file), and a
// LISTXATTR lists none. go-fuse's DisableXAttrs answered ENOSYS to
// LISTXATTR too, so listxattr(2) failed with EOPNOTSUPP: getfattr -d
// exited 1 and tar --xattrs warned for every file.
type noXAttrs struct{ fuse.RawFileSystem }

func (noXAttrs) GetXAttr(cancel <-chan struct{}, header *fuse.InHeader, attr string, dest []byte) (uint32, fuse.Status) {
	return 0, fuse.ENOSYS
}

func (noXAttrs) ListXAttr(cancel <-chan struct{}, header *fuse.InHeader, dest []byte) (uint32, fuse.Status) {
	return 0, fuse.OK
}

func (noXAttrs) SetXAttr(cancel <-chan struct{}, input *fuse.SetXAttrIn, attr string, data []byte) fuse.Status {
	return fuse.ENOSYS
}

func (noXAttrs) RemoveXAttr(cancel <-chan struct{}, header *fuse.InHeader, attr string) fuse.Status {
	return fuse.ENOSYS
}
