package fs

import (
	"context"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/ref"
	"github.com/lamina-bio/lamina/stage"
)

// Tracker attributes a mount's calls to lineage runs (lineage.Tracker
// implements it). The mount asks only on OPEN and CREATE (and on a rename
// that commits a scratch file) and keeps the answer on the handle: READ,
// WRITE, FLUSH and RELEASE never ask (a READ may tell Used).
type Tracker interface {
	// Caller returns the run of the process whose thread tid made the
	// request, "" for an untracked one. It must answer at once when no run
	// is being tracked.
	Caller(tid uint32) string
	// Used records that run read version v: bound at open, read from a
	// later version, or copied on write by a commit. It must not
	// read /proc; it may write to the catalog before it returns (a run
	// another mount's daemon registered, which ends there).
	Used(run string, v catalog.Version)
	// Sidecar returns the "lineage" field of v's .meta sidecar; nil when v
	// was written by no run.
	Sidecar(ctx context.Context, v catalog.Version) any
	// Wrote notes that run opened key to write it (OPEN, CREATE). It must
	// not block on I/O.
	Wrote(run, key string)
	// ScratchRenamed notes that a scratch file was renamed into place at
	// the mount-relative path p: how tools write their records
	// (Snakemake's .snakemake/metadata, which says a job is done). It must
	// not block on I/O.
	ScratchRenamed(p string)
}

// runNesting is a Tracker that knows which runs are under which (the
// lineage tracker): Within reports whether run is ancestor or a run under
// it, while ancestor runs (stage.Stage.OnRunWithin). It must not block.
type runNesting interface {
	Within(run, ancestor string) bool
}

var (
	_ fusefs.NodeOpener  = (*node)(nil)
	_ fusefs.NodeCreater = (*node)(nil)
	_ fusefs.NodeCreater = (*scratchNode)(nil)
)

// scratchRuns remembers which run created each scratch file (a Snakemake
// shadow job's output, say), so that the version a rename onto a key
// commits is that run's, not the renaming process's.
// Files are known by inode: a job may rename its file within the scratch
// folder before the rename onto a key (Snakemake's shadow rules do).
var scratchRuns sync.Map // scratchKey → run uid

type scratchKey struct {
	m   *Mount
	ino uint64
}

func (m *Mount) scratchKey(p string) (scratchKey, bool) {
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		return scratchKey{}, false
	}
	return scratchKey{m, st.Ino}, true
}

func (m *Mount) rememberScratch(p, run string) {
	k, ok := m.scratchKey(p)
	switch {
	case !ok:
	case run == "":
		scratchRuns.Delete(k) // a reused inode
	default:
		scratchRuns.Store(k, run)
	}
}

func callerTID(ctx context.Context) uint32 {
	if c, ok := ctx.(*fuse.Context); ok {
		return c.Caller.Pid
	}
	return 0
}

func (m *Mount) tracker() Tracker { return m.opts.Tracker }

// Open opens n (node.go's open) and, for a tracked caller, credits writes
// to its run and records as the run's input the version a read open reads,
// or the one a write open without O_TRUNC copies on write (an append).
func (n *node) Open(ctx context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	if n.movedToScratch(ctx) || n.derivedGone(ctx) {
		return nil, 0, syscall.ESTALE // scratch.go, dropDerived
	}
	tr := n.m.tracker()
	if tr == nil {
		return n.open(ctx, flags)
	}
	if n.e.Kind == KindMeta && n.e.V != nil && n.e.V.Run != "" {
		// The lineage grows while the run runs: read past the size the
		// lookup reported.
		return n.openSidecar(ctx, fuse.FOPEN_DIRECT_IO)
	}
	run := tr.Caller(callerTID(ctx))
	if run == "" {
		return n.open(ctx, flags)
	}
	var bound *catalog.Version
	if flags&syscall.O_ACCMODE != syscall.O_WRONLY && flags&syscall.O_TRUNC == 0 {
		bound = n.bind(ctx)
	}
	fh, fl, errno := n.open(ctx, flags)
	if errno != 0 {
		return fh, fl, errno
	}
	if h, ok := fh.(*handle); ok && h.w != nil && !h.w.readOnly {
		h.w.f.SetRun(run)
		n.m.writers.mu.Lock() // AdoptWriters reads it under the lock
		h.w.run = run
		n.m.writers.mu.Unlock()
		tr.Wrote(run, h.w.f.Key())
		if bound == nil && flags&syscall.O_TRUNC == 0 {
			// Copy on write (>>, an O_WRONLY rewrite in place): what it
			// commits holds the previous version's bytes, unless the File
			// is emptied first: the kernel sends the open's O_TRUNC as a
			// SETATTR of size 0 after the OPEN, without the handle.
			if v, ok := h.w.f.Base(); ok {
				h.w.emptied = h.w.f.Emptied()
				h.w.moved = h.w.f.Moved()
				h.w.base.Store(&v)
			}
		}
	}
	// A reader of a key that moves on to newer versions credits each one
	// its reads were served from (creditRead, following.credit).
	if h, ok := fh.(*handle); ok && (h.follow != nil || h.w != nil && flags&syscall.O_ACCMODE != syscall.O_WRONLY) {
		t := &trackedRead{run: run}
		if bound != nil {
			t.used = bound.UID
		}
		if h.follow != nil {
			h.follow.tracked = t
		} else {
			h.w.reads = t
		}
	}
	if bound != nil {
		tr.Used(run, *bound)
	}
	return fh, fl, 0
}

// trackedRead is a tracked reader of a key whose handle moves on to newer
// versions (following; a write handle's File following another writer's
// commit): each version a read of it was served from is an input of its
// run, not only the one bound at the open (audit d1: a reader that opened
// v1 and read after v2 was committed got v2's bytes, and v1 was credited).
type trackedRead struct {
	run  string
	mu   sync.Mutex
	used string // the version last credited
}

// swap makes uid the version last credited and returns the one before.
func (t *trackedRead) swap(uid string) (last string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	last, t.used = t.used, uid
	return last
}

// credit records the version uid, which a read of f was served from, as
// an input of f's tracked run, when it is not the one last credited: one
// catalog read and Used per version, none per read.
func (f *following) credit(ctx context.Context, uid [ref.UIDLen]byte) {
	t := f.tracked
	if t == nil || uid == ([ref.UIDLen]byte{}) {
		return
	}
	u := string(uid[:])
	last := t.swap(u)
	if last == u {
		return
	}
	v, err := f.n.m.ns.cat.ByUID(ctx, u)
	if err != nil {
		f.n.m.log.Warn("lamina mount: lineage: the version a tracked read read is unknown; no input recorded", "key", f.n.key(), "err", err)
		t.mu.Lock()
		if t.used == u {
			t.used = last // a later read tries again
		}
		t.mu.Unlock()
		return
	}
	f.n.m.tracker().Used(t.run, v)
}

// creditRead records the version a tracked reader's read through a write
// handle was served from (the File's, which follows a newer version
// another writer commits while it holds no changes: a SQLite connection,
// python's open(r+)) when it is not the one last credited. Base copies
// the version the File holds; no catalog read.
func (w *writeHandle) creditRead() {
	t := w.reads
	if t == nil {
		return
	}
	v, ok := w.f.Base()
	if !ok {
		return
	}
	if t.swap(v.UID) == v.UID {
		return
	}
	if tr := w.n.m.tracker(); tr != nil {
		tr.Used(t.run, v)
	}
}

// bind returns the version an open of n reads now: for a latest path the
// key's latest committed version, nil while the key has none (a first
// write not committed yet). The node's own entry may be older than the
// key: a node the kernel looked up while the key was pending (after a
// setattr dropped the folder's listing, say) stays KindPending after the
// commit, and its opens read the committed version all the same.
func (n *node) bind(ctx context.Context) *catalog.Version {
	e := n.e
	if isLatestFile(e) {
		e = n.current(ctx, nil)
	}
	if e.Kind != KindFile && e.Kind != KindFolderFile {
		return nil
	}
	v, err := n.m.ns.Full(ctx, e)
	if err != nil {
		n.m.log.Warn("lamina mount: lineage: the version a tracked open reads is unknown; no input recorded", "key", n.key(), "err", err)
		return nil
	}
	return v
}

// Create creates name (write.go's create) and credits its commits to the
// caller's run.
func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fusefs.Inode, fusefs.FileHandle, uint32, syscall.Errno) {
	ino, fh, fl, errno := n.create(ctx, name, flags, mode, out)
	if errno == 0 {
		n.m.removals.changed(dirKey(n.prefix())) // removal.go
	}
	tr := n.m.tracker()
	if tr == nil || errno != 0 {
		return ino, fh, fl, errno
	}
	if run := tr.Caller(callerTID(ctx)); run != "" {
		if h, ok := fh.(*handle); ok && h.w != nil {
			h.w.f.SetRun(run)
			n.m.writers.mu.Lock() // AdoptWriters reads it under the lock
			h.w.run = run
			n.m.writers.mu.Unlock()
			tr.Wrote(run, h.w.f.Key())
		} else if n.m.isScratch(n.prefix() + name) {
			n.m.rememberScratch(n.m.scratchPath(n.prefix()+name), run)
		}
	}
	return ino, fh, fl, errno
}

// Create in a scratch folder remembers the caller's run for a later
// rename onto a key.
func (s *scratchNode) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fusefs.Inode, fusefs.FileHandle, uint32, syscall.Errno) {
	ino, fh, fl, errno := s.LoopbackNode.Create(ctx, name, flags, mode, out)
	if errno == 0 {
		fh = s.m.writableScratch(ctx, fh, ino, flags) // scratchfile.go
	}
	if tr := s.m.tracker(); tr != nil && errno == 0 {
		p := filepath.Join(s.m.scratchPath(s.EmbeddedInode().Path(nil)), name)
		s.m.forgetSource(p, false) // a removed copy's inode (scratchsource.go)
		s.m.rememberScratch(p, tr.Caller(callerTID(ctx)))
	}
	return ino, fh, fl, errno
}

// scratchRunCtx returns ctx carrying the run that wrote the scratch file
// src, else the caller's run.
func (m *Mount) scratchRunCtx(ctx context.Context, src string) context.Context {
	k, _ := m.scratchKey(src)
	return stage.WithRun(ctx, m.scratchRun(ctx, k.ino))
}

// scratchRun is the run that wrote the scratch file whose inode is ino (0:
// unknown), else the caller's; "" untracked.
func (m *Mount) scratchRun(ctx context.Context, ino uint64) string {
	tr := m.tracker()
	if tr == nil {
		return ""
	}
	if r, ok := scratchRuns.LoadAndDelete(scratchKey{m, ino}); ok && ino != 0 {
		return r.(string)
	}
	return tr.Caller(callerTID(ctx))
}

// callerRunCtx returns ctx carrying the caller's run, for a namespace
// operation that commits a version without an open file (truncate(2)).
func (m *Mount) callerRunCtx(ctx context.Context) context.Context {
	if tr := m.tracker(); tr != nil {
		return stage.WithRun(ctx, tr.Caller(callerTID(ctx)))
	}
	return ctx
}

// closerCtx returns ctx saying that a commit with it is this handle's
// writer's: the File appenders share credits each close to the run of the
// writer that closed (none for an untracked one), not to whichever tracked
// writer opened it last. For a tracked writer, the commit also hands the
// version it builds on to creditBase.
func (w *writeHandle) closerCtx(ctx context.Context) context.Context {
	if w.n.m.tracker() == nil {
		return ctx
	}
	run := w.closerRun()
	if run != "" {
		ctx = stage.WithBuiltOn(ctx, func(v catalog.Version) { w.builtOn.Store(&v) })
	}
	return stage.ByCloser(ctx, run)
}

// closerRun is the run the handle's commits are credited to: its opener's,
// else the one that adopted it (AdoptWriters); "" for none.
func (w *writeHandle) closerRun() string {
	if p := w.adopted.Load(); w.run == "" && p != nil {
		return *p
	}
	return w.run
}

// AdoptWriters credits to run what the open write handles of key commit
// from now on, of those an untracked process among openers (process ids)
// opened: the redirect of a shell that then started `lamina run`
// (`lamina run -- cmd > out`), which the mount attributed to nobody. It
// returns how many it took. Not for the FUSE handlers: it reads /proc.
func (m *Mount) AdoptWriters(key, run string, openers []int) int {
	m.writers.mu.Lock()
	var ws []*writeHandle
	for w := range m.writers.ws {
		if w.f.Key() == key && w.run == "" && !w.readOnly {
			ws = append(ws, w)
		}
	}
	m.writers.mu.Unlock()
	n := 0
	for _, w := range ws {
		if slices.Contains(openers, threadGroup(w.opener)) {
			w.adopted.Store(&run)
			w.f.SetRun(run)
			n++
		}
	}
	return n
}

// creditBase records, once the handle's File committed since it counted
// before changes, the version a tracked write open without O_TRUNC copied
// on write as an input of the handle's run: the new version holds its
// bytes, unless the File was truncated to zero since the open (the open's
// own O_TRUNC, an ftruncate before writing anew). It also records the
// version the commit built on when that is another: appenders share one
// File, and the close of the last holds the bytes of the versions the
// others' closes committed after it opened (audit d1). The tracker skips
// the run's own outputs (a writer's earlier fsync). Used only queues: no
// /proc is read (FLUSH and RELEASE never ask the tracker).
func (w *writeHandle) creditBase(before uint64) {
	built := w.builtOn.Swap(nil)
	if w.f.Changes() == before {
		return
	}
	tr := w.n.m.tracker()
	if tr == nil {
		return
	}
	var base string
	// A File that moved onto a newer version since the open (it followed
	// another writer's commit before this one wrote) holds none of base's
	// bytes: `exec 3>>f; …; echo A >&3` after an untracked `> f`.
	if v := w.base.Swap(nil); v != nil && w.f.Emptied() == w.emptied && w.f.Moved() == w.moved {
		tr.Used(w.run, *v)
		base = v.UID
	}
	if run := w.closerRun(); built != nil && run != "" && built.UID != base {
		tr.Used(run, *built)
	}
}

// LinkTarget returns the target of the symbolic link at key, from the
// mount's own records (its listing of key's folder, or the scratch folder
// on disk for a scratch name), never through the kernel: the tracker asks
// from the mount's FUSE handlers (lineage.Tracker.SetLinks), where a
// readlink of the mount would wait on the mount itself.
func (m *Mount) LinkTarget(key string) (string, bool) {
	dir, name := path.Split(key)
	if name == "" {
		return "", false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if l, err := m.ns.listing(ctx, dir); err == nil {
		if k, ok := l.link(name); ok {
			return k.Target, true
		}
	}
	if m.isScratch(key) {
		if t, err := os.Readlink(m.scratchPath(key)); err == nil {
			return t, true
		}
	}
	return "", false
}

// ScratchFile returns the file on local disk that holds the scratch file
// at key (Snakemake's copy of a `script:` job's script in .snakemake),
// false when key is no scratch name of this mount: the tracker reads it
// from the mount's FUSE handlers (lineage.Tracker.SetScratch), where a
// read through the mount could wait on the mount itself.
func (m *Mount) ScratchFile(key string) (string, bool) {
	if !m.isScratch(key) {
		return "", false
	}
	return m.scratchPath(key), true
}
