package fs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/ref"
	"github.com/lamina-bio/lamina/stage"
	"golang.org/x/sys/unix"
)

// The write side: a thin adapter from FUSE calls to package stage, which
// holds the file semantics (staging, commits, renames). Scratch paths are
// served by go-fuse's loopback from a plain folder (scratch.go).

var (
	_ fusefs.FileWriter    = (*handle)(nil)
	_ fusefs.FileFlusher   = (*handle)(nil)
	_ fusefs.FileReleaser  = (*handle)(nil)
	_ fusefs.FileFsyncer   = (*handle)(nil)
	_ fusefs.FileAllocater = (*handle)(nil)
	_ fusefs.NodeFsyncer   = (*node)(nil)
)

// writeHandle is a writable open (or a read of a key not yet committed).
type writeHandle struct {
	f        *stage.File
	readOnly bool
	app      bool // opened with O_APPEND: every write lands at the end
	n        *node
	held     *heldInode // the path that keeps n's inode while this is open (held.go); nil: none
	kino     uint64     // the kernel's inode of its descriptors if not n's: a scratch file's (scratchfile.go)
	opener   uint32     // the thread that opened it; 0 if unknown
	// openerTG: the opener's process, read at the open: a closer's is
	// told from it after the opener exited (byOtherProcess). 0 if unknown.
	openerTG int
	// run: the tracked run of the writer that opened it, credited with
	// the versions its closes commit (closerCtx). base: for an open
	// without O_TRUNC, the version it copies on write, an input of run
	// once a commit holds its bytes
	// (lineage.go: creditBase); emptied is the File's count of
	// truncations to zero at the open.
	run string
	// adopted: the run a `lamina run` started by the writer took this
	// handle for (Mount.AdoptWriters: the shell's `> out` before it ran
	// lamina), when run is "".
	adopted atomic.Pointer[string]
	base    atomic.Pointer[catalog.Version]
	emptied uint64
	// moved: the File's count of moves onto a newer version at the open
	// (stage.File.Moved): once it changed, base's bytes are gone from it.
	moved uint64
	// reads: a tracked reader's run (O_RDWR, or O_RDONLY of a File being
	// written), credited each version its reads were served from
	// (lineage.go: creditRead); nil: none.
	reads *trackedRead
	// builtOn: the version the handle's last commit built on, for
	// creditBase (closerCtx).
	builtOn atomic.Pointer[catalog.Version]
	// closed: the File counts it closed (File.HandleClosed), until a write
	// through it, or a copy of its descriptor found open, counts it open
	// again (reopen); released: its RELEASE came, it is closed for good.
	// flushed: its writer closed it once.
	mu       sync.Mutex
	closed   bool
	released bool
	flushed  atomic.Bool
	// wrote: 1 + the File's count of commits (File.Commits) when bytes or
	// a size last went through this handle (write, ftruncate, fallocate);
	// 0 if none did. The close of one that wrote nothing since the File's
	// last commit (touch, `: >> f`, a reader connection opened O_RDWR, an
	// appender that fsynced) commits no other sharer's bytes while another
	// handle of the File is open (File.FlushIdle). always: writes reach its
	// File without the mount (an adopted scratch file): each close commits.
	wrote  atomic.Uint64
	always bool
	// skipped: a close of it committed nothing, its process holding a
	// copy of its descriptor (copyClose): its RELEASE commits.
	skipped atomic.Bool
}

// close tells the File that the writer closed this handle (a FLUSH), if
// it counts it open.
func (w *writeHandle) close() {
	w.flushed.Store(true)
	w.mu.Lock()
	was := w.closed
	w.closed = true
	w.mu.Unlock()
	if !was {
		w.f.HandleClosed()
	}
}

// release is close for the handle's RELEASE: nothing opens it again.
func (w *writeHandle) release() {
	w.mu.Lock()
	w.released = true
	w.mu.Unlock()
	w.close()
}

// isClosed reports whether the File counts the handle closed, not released.
func (w *writeHandle) isClosed() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.closed && !w.released
}

// reopen counts a handle closed (a FLUSH) open again: a FLUSH comes at the
// close of every copy of the descriptor, so a shell's redirect (open,
// dup2, close the original) and dd looked closed before the command wrote,
// and a sharer's idle close (touch) then committed the half file.
func (w *writeHandle) reopen() {
	w.mu.Lock()
	was := w.closed && !w.released
	if was {
		w.closed = false
	}
	w.mu.Unlock()
	if was {
		w.f.HandleReopened()
	}
}

// writing is said before bytes or a size go through the handle, done after.
func (w *writeHandle) writing() { w.reopen() }
func (w *writeHandle) done()    { w.wrote.Store(w.f.Commits() + 1) }

// wroteSince reports whether bytes or a size went through the handle since
// its File's last commit. Read after a commit raced the write, it says yes:
// the close then commits, as every writer's did.
func (w *writeHandle) wroteSince() bool {
	if w.always {
		return true
	}
	g := w.wrote.Load()
	return g != 0 && g-1 == w.f.Commits()
}

// byOtherProcess reports whether a FLUSH from ctx's caller is the close of
// a copy of the descriptor that another process inherited: a child of the
// shell in `(cmd1; cmd2) > out` closing its stdout. Such a close is not
// the writer's: committing there made a version of each partial file.
// What it wrote is committed by the opener's close, or at RELEASE (the
// last close) if the opener closed first.
func (w *writeHandle) byOtherProcess(ctx context.Context) bool {
	tid := callerTID(ctx)
	if tid == 0 || w.opener == 0 || tid == w.opener {
		return false
	}
	a, b := w.openerGroup(), threadGroup(tid)
	return a > 0 && b > 0 && a != b
}

// openerGroup is the opener's process: as read at the open, which tells it
// after the opener exited (a background job's commands then closed copies,
// each committing), else as /proc tells it now; 0 if unknown.
func (w *writeHandle) openerGroup() int {
	if w.openerTG != 0 {
		return w.openerTG
	}
	return threadGroup(w.opener)
}

// processOf names the process of thread tid by its thread group
// (threadGroup); "" if unknown. Not by its start time as well: that is
// in /proc/PID/stat, whose read waits while another thread of the process
// is in execve, and that thread waits for this one's request to end (a
// FUSE request sent to the daemon is not killable): the mount would hang.
// A pid used again within the minute a name is kept is left to chance.
func processOf(tid uint32) string {
	if tg := threadGroup(tid); tg > 0 {
		return strconv.Itoa(tg)
	}
	return ""
}

// threadGroup is the process of thread tid (threadsOf: a getdents of
// /proc/TID/task, which never waits for the process's memory: safe inside
// a FUSE request); 0 if unknown.
func threadGroup(tid uint32) int {
	tg, _ := threadsOf(tid)
	return tg
}

// hold keeps the inode of w's node at key's path until w is released.
func (w *writeHandle) hold(key string) {
	w.held = w.n.m.held.hold(key, w.n.StableAttr(), false)
	w.n.m.writers.add(w)
}

// writerSet holds the writable handles the kernel has not released.
type writerSet struct {
	mu sync.Mutex
	ws map[*writeHandle]struct{}
}

func (s *writerSet) add(w *writeHandle) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ws == nil {
		s.ws = map[*writeHandle]struct{}{}
	}
	s.ws[w] = struct{}{}
}

func (s *writerSet) remove(w *writeHandle) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.ws, w)
}

// keptOpen reports whether a handle of key that its writer closed is
// still open through a copy of the descriptor: bash's `exec 7>>f` opens f,
// dup2s it to 7 and closes the original, whose FLUSH made the File look
// done (flushed, nothing dirty), so `mv f f~` went ahead and what was
// written through 7 after it was lost (audit 26). So did a copy a child
// process inherited, the opener's closed (Python's Popen(stdout=f), then
// f.close()): any process is looked at once the opener's is not the one
// (heldByAnyProcess). A handle closed a moment ago whose RELEASE has not
// come (close, then mv at once) is held by no descriptor.
func (s *writerSet) keptOpen(key string) bool {
	s.mu.Lock()
	var closed []*writeHandle
	for w := range s.ws {
		if w.flushed.Load() {
			closed = append(closed, w)
		}
	}
	s.mu.Unlock()
	var inos []uint64
	var m *Mount
	for _, w := range closed {
		if w.f.Key() != key {
			continue
		}
		ino := w.kino
		if ino == 0 {
			ino = w.n.StableAttr().Ino
		}
		m = w.n.m
		if w.opener != 0 && m.holdsInode(w.opener, ino) {
			return true
		}
		inos = append(inos, ino)
	}
	return len(inos) > 0 && m.heldByAnyProcess(inos)
}

// maxFdinfo bounds the descriptors heldByAnyProcess reads: some 15 µs
// each (12 ms for 95 processes with 800 descriptors), so a rename waits
// for 1.5 s at most.
const maxFdinfo = 100_000

// heldByAnyProcess reports whether a process has a writable descriptor
// open on one of the inode numbers inos of this mount (onMount), or
// whether that cannot be told (more than maxFdinfo descriptors, /proc not
// readable). Processes whose descriptors the daemon may not read (another
// user's) are not seen. Only for the rare rename above: it reads every
// process's /proc/PID/fdinfo.
func (m *Mount) heldByAnyProcess(inos []uint64) bool {
	d, err := os.Open("/proc")
	if err != nil {
		return true
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return true
	}
	read := 0
	for _, name := range names {
		if name == "" || name[0] < '0' || name[0] > '9' {
			continue
		}
		held, n, _ := m.fdinfoHolds("/proc/"+name+"/fdinfo/", inos, true) // unreadable: gone, or another user's
		if held || read+n > maxFdinfo {
			return true // held, or cannot be told: refused rather than lost
		}
		read += n
	}
	return false
}

// fdinfoHolds reports whether the descriptors of a /proc fdinfo folder
// include one on one of the inode numbers inos of this mount (a writable
// one if writable), and how many it read; err if the folder cannot be read
// (a process gone, another user's).
func (m *Mount) fdinfoHolds(dir string, inos []uint64, writable bool) (held bool, n int, err error) {
	d, err := os.Open(dir)
	if err != nil {
		return false, 0, err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return false, 0, err
	}
	for _, name := range names {
		if n++; n > maxFdinfo {
			break
		}
		b, err := os.ReadFile(dir + name)
		if err == nil && openOn(string(b), inos, writable) && m.onMount(string(b)) {
			return true, n, nil
		}
	}
	return false, n, nil
}

// openOn reports whether the fdinfo text info is of a descriptor open on
// one of the inode numbers inos (for writing, if writable).
func openOn(info string, inos []uint64, writable bool) bool {
	_, ino, ok := strings.Cut(info, "\nino:\t")
	if !ok {
		return false
	}
	ino, _, _ = strings.Cut(ino, "\n")
	i, err := strconv.ParseUint(ino, 10, 64)
	if err != nil || !slices.Contains(inos, i) {
		return false
	}
	if !writable {
		return true
	}
	_, fl, _ := strings.Cut(info, "flags:\t")
	fl, _, _ = strings.Cut(fl, "\n")
	f, err := strconv.ParseUint(fl, 8, 32)
	return err != nil || f&syscall.O_ACCMODE != syscall.O_RDONLY
}

func linkEntry(name string, l catalog.Link) Entry {
	return Entry{Name: name, Kind: KindLink, Key: l.Key, Target: l.Target, Size: int64(len(l.Target)),
		Mode: 0o777, Mtime: l.Mtime, Ino: Ino("s", l.Key), Latest: true}
}

func (ns *Namespace) pendingEntry(name, key string, f *stage.File) Entry {
	size, mt, mode := f.Attr()
	return Entry{Name: name, Kind: KindPending, Key: key, Latest: true, Size: size, Mtime: mt, Mode: mode, Ino: latestIno(key)}
}

// pending resolves a name of a key that is being written and has no
// committed version yet.
func (ns *Namespace) pending(prefix, name string) (Entry, bool) {
	if ns.st == nil {
		return Entry{}, false
	}
	if f := ns.st.Pending(prefix + name); f != nil {
		return ns.pendingEntry(name, prefix+name, f), true
	}
	return ns.failedEntry(name, prefix+name)
}

// failedEntry is the entry of a key whose close failed and waits for a
// retry (stage.FailedPending), shown where the catalog has no such key: a
// new file, as one being written is, which rm drops and mv moves. Reads
// get its staged bytes (openLatest).
func (ns *Namespace) failedEntry(name, key string) (Entry, bool) {
	sf, ok := ns.st.FailedPending(key)
	if !ok {
		return Entry{}, false
	}
	fi, err := os.Stat(sf.Path)
	if err != nil {
		return Entry{}, false
	}
	return Entry{Name: name, Kind: KindPending, Key: key, Latest: true, Size: fi.Size(), Mtime: sf.Mtime, Mode: sf.Mode, Ino: latestIno(key)}, true
}

// pendingUnder lists the keys being written under prefix that the listing
// does not show yet.
func (ns *Namespace) pendingUnder(prefix string, l *listing) []Entry {
	if ns.st == nil {
		return nil
	}
	keys, dirs := ns.st.PendingUnder(prefix)
	var out []Entry
	for _, k := range keys {
		name := k[len(prefix):]
		if _, ok := l.file(name); ok {
			continue
		}
		if f := ns.st.Pending(k); f != nil {
			out = append(out, ns.pendingEntry(name, k, f))
		} else if e, ok := ns.failedEntry(name, k); ok {
			out = append(out, e)
		}
	}
	for _, d := range dirs {
		if !l.subdirs[d] {
			out = append(out, Entry{Name: d, Kind: KindDir, Prefix: prefix + d + "/", Mode: 0o755, Ino: Ino(tagDir, prefix+d+"/")})
		}
	}
	return out
}

// forget drops the cached listings a change of keys may touch: every
// ancestor's and everything under the key (a renamed folder).
func (ns *Namespace) forget(keys ...string) {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	for _, k := range keys {
		p := ""
		ns.drop(p) // namespace.go
		for _, seg := range strings.Split(k, "/") {
			p += seg + "/"
			ns.drop(p)
		}
		ns.dropUnder(k + "/")
	}
}

// folderAttrs puts a folder's new mode or time (chmod, touch) into its
// cached listing, in place; a listing being read is read again.
func (ns *Namespace) folderAttrs(prefix string, a catalog.Attrs) {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	ns.gen.Add(1)
	l := ns.listings[prefix]
	if l == nil || ns.loads[prefix] != nil {
		ns.drop(prefix)
		return
	}
	l.setAttrs(a)
}

// dropUnder drops the listings, cached or being loaded, of prefix and the
// folders under it. Called with ns.mu.
func (ns *Namespace) dropUnder(prefix string) {
	for q := range ns.listings {
		if strings.HasPrefix(q, prefix) {
			ns.drop(q)
		}
	}
	for q := range ns.loads {
		if strings.HasPrefix(q, prefix) {
			ns.drop(q)
		}
	}
}

// update puts a newly committed version into the cached listing of its
// folder, so that creating many files does not list the folder again each
// time.
func (ns *Namespace) update(v catalog.Version) {
	prefix, name := splitKey(v.Key)
	ns.gen.Add(1)
	ns.mu.Lock()
	l := ns.listings[prefix]
	if l == nil {
		ns.mu.Unlock()
		ns.forget(v.Key)
		return
	}
	// Ancestors must already list the folder; if not, forget them.
	known := true
	p := ""
	for _, seg := range strings.Split(strings.TrimSuffix(prefix, "/"), "/") {
		if seg == "" {
			break
		}
		if al := ns.listings[p]; al != nil && !al.subdirs[seg] {
			known = false
		}
		p += seg + "/"
	}
	if _, link := l.link(name); !known || link {
		// A file renamed onto a link replaced it (catalog Rename): the
		// listing read again shows the file alone.
		ns.mu.Unlock()
		ns.forget(v.Key)
		return
	}
	if l.put(name, &v) { // keeps a later commit of the key that got here first (namespace.go)
		ns.listed++
	}
	ns.mu.Unlock()
}

// remove takes an unlinked key out of the cached listing of its folder,
// so that removing n files from a folder does not list it again each time
// (rm -rf of 2,000 files decoded 2 million names). A listing being loaded,
// or a folder left empty, is read again instead.
func (ns *Namespace) remove(key string) {
	prefix, name := splitKey(key)
	ns.gen.Add(1)
	ns.mu.Lock()
	l := ns.listings[prefix]
	if l == nil || ns.loads[prefix] != nil || !l.remove(name) || l.size() == 0 {
		ns.mu.Unlock()
		ns.forget(key)
		return
	}
	ns.listed--
	ns.mu.Unlock()
}

// dirChanged puts a folder made (made) or removed into its parent's cached
// listing, or takes it out, in place of reading the parent again: a folder
// per sample made one by one listed the parent each time. The listing is
// replaced, not edited, for its folders are read without its lock.
func (ns *Namespace) dirChanged(key string, made bool) {
	prefix, name := splitKey(key)
	ns.mu.Lock()
	l := ns.listings[prefix]
	var c *listing
	if l != nil && ns.loads[prefix] == nil && l.subdirs[name] != made {
		c = l.withDir(name, made)
	}
	if c == nil || c.size() == 0 {
		ns.mu.Unlock()
		ns.forget(key)
		return
	}
	ns.listings[prefix] = c
	ns.gen.Add(1)
	ns.listed += c.size() - l.size()
	ns.dropUnder(key + "/")
	ns.mu.Unlock()
}

func splitKey(key string) (prefix, name string) {
	i := strings.LastIndexByte(key, '/')
	return key[:i+1], key[i+1:]
}

func keyOf(e Entry) string {
	switch {
	case e.Kind == KindDir:
		return strings.TrimSuffix(e.Prefix, "/")
	case e.Key != "":
		return e.Key
	case e.V != nil:
		return e.V.Key
	}
	return ""
}

// written tells the namespace and, from another goroutine, the kernel that
// keys changed.
func (m *Mount) written(keys ...string) {
	m.ns.forget(keys...)
	m.notifyAsync(keys...)
}

// versionChanged tells the kernel, from another goroutine, that the
// version v's own names (name@vN, its sidecar) show other attributes: touch
// and chmod change the latest version's mtime and mode in place, and those
// names are cached for an hour (./script@v1 kept its old mode).
func (m *Mount) versionChanged(v catalog.Version) {
	p, name := splitKey(v.Key)
	at := fmt.Sprintf("%s@v%d", name, v.Version)
	cs := []Change{{Prefix: p, Names: []string{at, at + ".meta"}}}
	go func() {
		select {
		case m.notes <- cs:
		case <-m.stop:
		}
	}()
}

// committed is written for a commit: the listing is updated in place.
func (m *Mount) committed(v catalog.Version) {
	p, name := splitKey(v.Key)
	_, kept := m.ns.cachedFile(p, name)
	m.ns.update(v)
	m.sendNotes([]Change{{Prefix: p, Names: []string{name, name + ".meta"}, commit: true, kept: kept}})
}

func (m *Mount) notifyAsync(keys ...string) {
	var cs []Change
	for _, k := range keys {
		p, name := splitKey(k)
		cs = append(cs, Change{Prefix: p, Names: []string{name, name + ".meta"}})
	}
	m.sendNotes(cs)
}

// sendNotes hands cs to the notifier without waiting for it.
func (m *Mount) sendNotes(cs []Change) {
	select {
	case m.notes <- cs:
	default:
		go func() {
			select {
			case m.notes <- cs:
			case <-m.stop:
			}
		}()
	}
}

// notifyDirAsync has the notifier drop the kernel's cached listing and
// attributes of the folder prefix, naming none of its entries.
func (m *Mount) notifyDirAsync(prefix string) { m.sendNotes([]Change{{Prefix: prefix}}) }

// notifier sends kernel notifications for the write side, off the request
// handlers (a notification from inside a handler can deadlock the kernel).
func (m *Mount) notifier() {
	for {
		select {
		case <-m.stop:
			return
		case cs := <-m.notes:
			for _, c := range cs {
				m.invalidate(c)
			}
		}
	}
}

// current is what n shows now: a latest name follows new versions; a
// writer sees its own staged size and mtime until it is done with its File
// (closed, all committed). A stat by path comes with a handle too: go-fuse
// passes any open one of the inode (rawBridge.GetAttr), such as a closed
// writer's whose RELEASE has not come, whose File shows the version its
// close made: a stat right after another writer's later close showed that
// older size, and the kernel kept it (TestTwoWritersLastCloseShown).
func (n *node) current(ctx context.Context, fh fusefs.FileHandle) Entry {
	var done *stage.File // a writer's, closed with everything committed
	if h, ok := fh.(*handle); ok && h.w != nil {
		if !h.w.f.Done() {
			e := n.e
			e.Size, e.Mtime, e.Mode = h.w.f.Attr()
			return e
		}
		done = h.w.f
	}
	if !isLatestFile(n.e) && n.e.Kind != KindLink {
		return n.e
	}
	if n.orphan() {
		// Unlinked, or replaced by a rename, while the kernel holds it: its
		// name shows another file now, and it shows what it last was.
		return n.lastShown()
	}
	prefix, name := splitKey(n.key())
	e, err := n.m.ns.lookupKey(ctx, prefix, name)
	if err != nil {
		// Its name shows nothing now (the key renamed to a scratch name
		// under a reader: `mv f f~`), or the catalog did not answer: what
		// it last was. Its first entry (a created file's: size 0) made the
		// reader's fstat show 0 bytes, and the reader read none. A done
		// writer's File, go-fuse's handle for a stat by path (write,
		// close, mv f f~, stat f~ before the RELEASE), shows the bytes its
		// commit made: the node was made by the create, so it last showed
		// size 0.
		e := n.lastShown()
		if done != nil {
			e.Size, e.Mtime, e.Mode = done.Attr()
		}
		return e
	}
	e = n.m.held.apply(prefix, name, e)
	if n.pg != nil {
		n.pg.remember(e)
	}
	return e
}

// lastShown is what n showed last (current), else its entry.
func (n *node) lastShown() Entry {
	if n.pg != nil {
		if e, ok := n.pg.shown(); ok {
			return e
		}
	}
	return n.e
}

// writersAttr is e, what n's latest path shows, with the size, mtime and
// mode of the newest File of writers that hold n's inode and hold changes
// not committed yet (a chmod of the path goes to such a File). The kernel
// keeps one size for the inode, which the writers' own fstat, writes and
// lseek(SEEK_END) set: a stat by path answering the committed version's
// size in between moved it back and forth (a writer's ftruncate to 100 of
// a 70,000-byte file showed 100, then 70,000 after a reader opened it, and
// the writer's 103 at its close). A File closed with all committed, whose
// RELEASE has not come, shows no more: an older writer still writing makes
// the next version. A reader that opens it reads the committed version
// still (openLatest).
//
// shared: more than one File holds changes. Whichever closes last makes
// the version, so what a stat shows now may be the other's size when
// close(2) returns, before the commit's invalidation reaches the kernel:
// the caller answers it uncached.
func (n *node) writersAttr(e Entry) (Entry, bool) {
	return n.m.writersAttr(n.key(), n.StableAttr().Ino, e)
}

// writersAttr is writersAttr of the inode ino at key's path; a lookup's
// answer passes here too, for the kernel takes the size it carries.
func (m *Mount) writersAttr(key string, ino uint64, e Entry) (_ Entry, shared bool) {
	if !m.held.writing(key, ino) {
		return e, false
	}
	size, mt, mode, writers := m.ns.st.Unsaved(key)
	if writers > 0 {
		e.Size, e.Mtime, e.Mode = size, mt, mode
	}
	return e, writers > 1
}

// orphan reports whether n left its key (retired) and the tree: unlinked,
// or replaced by a rename. A file renamed away is in the tree at its new
// name, which it follows.
func (n *node) orphan() bool {
	if !n.m.retired.isRetired(n) || n.EmbeddedInode() == nil {
		return false
	}
	p := n.Path(nil)
	return p == "" || strings.HasPrefix(p, ".go-fuse")
}

// openLatest opens a latest name for reading as it is now (e, n.current).
func (n *node) openLatest(ctx context.Context, e Entry) (fusefs.FileHandle, uint32, syscall.Errno, bool) {
	if !isLatestFile(n.e) {
		return nil, 0, 0, false
	}
	// Writers closed with their bytes committed leave the latest version's
	// bytes in the inode's pages: a reader opening between close(2) and the
	// RELEASE that ends the hold (a program mapping what it just wrote)
	// reads as any reader does, not past the page cache (no mmap then).
	writing := n.m.held.holding() && n.m.held.writing(n.key(), n.StableAttr().Ino) && n.m.ns.st.Writing(n.key())
	switch {
	case e.Kind == KindPending && n.m.ns.st.Pending(e.Key) == nil:
		// Committed at its RELEASE, which takes the File away before its
		// close's version reaches the cached listing (afterCommit): an
		// open in between (of a new file closed empty by a child process,
		// say) reads the listing again rather than answer ENOENT.
		n.m.ns.forget(e.Key)
		prefix, name := splitKey(e.Key)
		if c, err := n.m.ns.lookupKey(ctx, prefix, name); err == nil && c.Kind == KindFile {
			return n.openLatest(ctx, c)
		}
		if sf, ok := n.m.ns.st.FailedPending(e.Key); ok {
			// A new key whose close failed (failedEntry): its staged
			// bytes, which a retry commits (and then removes; this
			// descriptor keeps reading them), with the first bytes of an
			// append read as its retry reads them (never zeros).
			f, err := n.m.ns.st.OpenFailed(ctx, sf.Key)
			if err != nil {
				return nil, 0, n.errno("open", err), true
			}
			return &handle{staged: f}, fuse.FOPEN_DIRECT_IO, 0, true
		}
		return nil, 0, syscall.ENOENT, true
	case e.Kind == KindPending:
		f := n.m.ns.st.Pending(e.Key)
		if f == nil {
			return nil, 0, syscall.ENOENT, true
		}
		// Past the page cache: the writers' pages are there, and the size
		// the kernel keeps is the one the last write gave this inode they
		// share; a read of f's fewer bytes would come back padded with
		// zeros (TestFsyncManyWriters under load, docs/write-bench.md).
		return &handle{w: &writeHandle{f: f, readOnly: true, n: n}}, fuse.FOPEN_DIRECT_IO, 0, true
	case e.Kind == KindFile:
		file, err := n.m.ns.FileOf(ctx, e)
		if err != nil {
			return nil, 0, n.errno("open", err), true
		}
		n.m.opened.Add(1)
		r := newFileReader(n.m.chunks, file).named(n.m.ns, e)
		if writing {
			// Pages the writers wrote and have not committed are in this
			// inode's cache: reads go past it, and follow the versions
			// the writers commit.
			return &handle{follow: &following{n: n, r: r, uid: e.uid}}, fuse.FOPEN_NOFLUSH | fuse.FOPEN_DIRECT_IO, 0, true
		}
		if n.pg == nil { // not made by newNode: the pages may be another version's
			return &handle{r: r}, fuse.FOPEN_NOFLUSH, 0, true
		}
		// The inode shows each version of the key in turn, and so does the
		// handle: it reads the latest version committed, as a reader of a
		// plain file reads what is written to it (tail -f; a reader of a
		// file rewritten shorter stops at its new end, not in the middle
		// of the old bytes). The kernel keeps its pages only if they are
		// e's; a new version drops them (Mount.invalidate). name@vN is
		// the snapshot.
		fl := n.pg.open(e.uid)
		r = r.storingTo(n.EmbeddedInode(), n.pg, e.uid)
		return &handle{follow: &following{n: n, r: r, uid: e.uid}, pages: n.pg}, fl | fuse.FOPEN_NOFLUSH, 0, true
	}
	return nil, 0, 0, false
}

// following is a reader of a latest path: each read reads the latest
// version committed, as a reader of a plain file reads what is written to
// it (tail -f of a log that grows). A file unlinked, or replaced by a
// rename, keeps what it read, as an inode does; one renamed away follows
// its new name.
type following struct {
	n *node

	tracked *trackedRead // a tracked reader's run (lineage.go); nil: none

	mu  sync.Mutex // guards r, uid and gen
	r   *fileReader
	uid [ref.UIDLen]byte // the version r reads
	gen uint64           // Namespace.gen when the key was last looked up
}

// reader returns the reader of the version to read now, and its uid.
func (f *following) reader(ctx context.Context) (*fileReader, [ref.UIDLen]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n.orphan() {
		return f.r, f.uid, nil // unlinked or replaced: its own bytes
	}
	gen := f.n.m.ns.gen.Load() // before the lookup: a change during it is seen at the next read
	if gen == f.gen {
		return f.r, f.uid, nil // nothing changed since the last lookup
	}
	f.gen = gen
	e := f.n.current(ctx, nil)
	if e.Kind != KindFile || e.uid == f.uid {
		return f.r, f.uid, nil // gone or not committed since: what it read
	}
	file, err := f.n.m.ns.FileOf(ctx, e)
	if err != nil {
		return nil, f.uid, err
	}
	f.r, f.uid = newFileReader(f.n.m.chunks, file).named(f.n.m.ns, e), e.uid
	return f.r, f.uid, nil
}

func (n *node) openWrite(ctx context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	st := n.m.ns.st
	switch {
	case n.m.writesOff():
		return nil, 0, syscall.EROFS
	case n.e.IsDir():
		return nil, 0, syscall.EISDIR
	case !((n.e.Kind == KindFile && n.e.Latest) || n.e.Kind == KindPending):
		return nil, 0, syscall.EROFS
	}
	key := n.key()
	if cur := n.current(ctx, nil); !n.m.mayWrite(ctx, cur) || flags&syscall.O_ACCMODE == syscall.O_RDWR && !n.m.may(ctx, cur, unix.R_OK) {
		return nil, 0, syscall.EACCES
	}
	trunc, app := flags&syscall.O_TRUNC != 0, flags&syscall.O_APPEND != 0
	if n.pg != nil {
		n.pg.written()
	}
	var f *stage.File
	var err error
	if !trunc {
		// Writers without O_TRUNC share the key's open File, as they
		// would share one inode (Stage.Join); an O_TRUNC one starts its own.
		f, err = st.OpenShared(ctx, key, n.e.Mode)
	} else {
		var cur catalog.Version
		cur, err = n.m.ns.cat.ByKey(catalog.Fresh(ctx), key, 0) // copied on write: never a cached answer
		switch {
		case err == nil && cur.Kind != "file":
			return nil, 0, syscall.EISDIR
		case err == nil:
			f, err = st.Open(ctx, key, cur, trunc)
		case errors.Is(err, catalog.ErrNotFound):
			f, err = st.Create(ctx, key, n.e.Mode)
		}
	}
	if err != nil {
		return nil, 0, n.errno("open", err)
	}
	tid := callerTID(ctx)
	w := &writeHandle{f: f, n: n, app: app, opener: tid, openerTG: threadGroup(tid)}
	w.hold(key)
	return &handle{w: w}, 0, 0
}

func (h *handle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	if h.w == nil || h.w.readOnly {
		return 0, syscall.EBADF
	}
	var k int
	var err error
	switch {
	case h.w.n.m.pageWrites.of(data):
		// Pages of a shared mapping written back (pagewrite.go): at
		// their offset, an appender's handle or not, and no handle's.
		// They hold the inode's page cache, which is the newest File's
		// (an O_TRUNC open dropped the older one's pages), whichever
		// handle the kernel sent them through.
		k, err = h.w.f.Newest().WriteMapped(ctx, data, off)
	case h.w.app:
		h.w.writing()
		k, err = h.w.f.Append(ctx, data)
		h.w.done()
	default:
		h.w.writing()
		k, err = h.w.f.WriteAt(ctx, data, off)
		h.w.done()
	}
	if err != nil {
		return uint32(k), h.w.n.errno("write", err)
	}
	return uint32(k), 0
}

func (h *handle) Flush(ctx context.Context) syscall.Errno {
	if h.w == nil || h.w.readOnly || h.w.byOtherProcess(ctx) || h.w.copyClose(ctx) || h.w.childCopy(ctx) {
		return 0
	}
	h.w.close()
	before := h.w.f.Changes()
	flush := h.w.f.Flush
	idle := !h.w.wroteSince()
	if idle || h.w.f.AwaitsWrite() {
		// Whether another handle is open decides: one closed through a
		// descriptor of which a copy is left may write yet.
		h.w.n.m.writers.reopenHeld(h.w)
	}
	switch {
	case h.w.f.AwaitsWrite() && !h.w.n.m.writers.holdsCopy(h.w, callerTID(ctx)) && !h.w.childHolds(callerTID(ctx)):
		// Created or truncated and closed with nothing written, by its
		// last descriptor (`: > f`, touch): committed now, not at RELEASE
		// after close(2) returned, which could then neither report a failed
		// commit nor promise that stat, read and the sidecar show it. A
		// shell's redirect, which closes its descriptor after dup2 and
		// before the command writes through the copy, still waits, as does
		// a close leaving a copy to a child (Popen(stdout=f), f.close()).
		flush = h.w.f.FlushLast
	case idle:
		// Nothing written through this handle since the File's last commit
		// (touch, `: >> f`, a reader connection opened O_RDWR): what
		// another sharer wrote so far, half a copy, is its writer's to
		// commit at its close; the File's last open handle commits what is
		// pending, and any close what came back from a shared mapping.
		flush = h.w.f.FlushIdle
	}
	if err := flush(h.w.closerCtx(ctx)); err != nil {
		return h.w.n.errno("commit", err)
	}
	h.w.creditBase(before)
	h.w.n.m.afterCommit(ctx, h.w.f, before)
	return 0
}

// ino is the kernel's inode of the handle's descriptors.
func (w *writeHandle) ino() uint64 {
	if w.kino != 0 {
		return w.kino
	}
	return w.n.StableAttr().Ino
}

// reopenHeld counts open again each handle of w's File but w that its
// writer closed (a FLUSH) while its opener still holds a writable
// descriptor of its inode: a copy, as a shell's redirect leaves (`(sleep 1;
// echo data) > f &`, then `: >> f`, made an empty version). RELEASE comes
// only at the last copy's close. Asked at a close that the other handles'
// being open decides (reads /proc only for handles closed, not released).
func (s *writerSet) reopenHeld(w *writeHandle) {
	s.mu.Lock()
	var closed []*writeHandle
	for o := range s.ws {
		if o != w && o.f == w.f && o.opener != 0 && o.isClosed() {
			closed = append(closed, o)
		}
	}
	s.mu.Unlock()
	for _, o := range closed {
		if o.n.m.holdsInode(o.opener, o.ino()) {
			o.reopen()
		}
	}
}

// holdsInode reports whether the process of thread tid has a writable
// descriptor open on the inode number ino of this mount (its /proc
// fdinfo; onMount), or whether
// that cannot be told. A FLUSH comes after the descriptor being closed left
// the table; a copy of it (dup2) is writable too, and a reader of the file
// in the same process (a test that reads what it truncated) is not one.
// /proc/TID/fdinfo, unlike environ, does not wait for a process in execve.
func (m *Mount) holdsInode(tid uint32, ino uint64) bool {
	if tid == 0 {
		return true
	}
	return m.fdinfoOf(tid, ino, true)
}

// opensInode reports whether the process of thread tid has a descriptor
// open on the inode number ino, or whether that cannot be told: what
// holdsInode tells of writable ones, of any.
func (m *Mount) opensInode(tid uint32, ino uint64) bool {
	if tid == 0 {
		return true
	}
	return m.fdinfoOf(tid, ino, false)
}

func (m *Mount) fdinfoOf(tid uint32, ino uint64, writable bool) bool {
	held, _, err := m.fdinfoHolds("/proc/"+strconv.FormatUint(uint64(tid), 10)+"/fdinfo/", []uint64{ino}, writable)
	if err != nil {
		return !errors.Is(err, os.ErrNotExist) // gone: no descriptor is left
	}
	return held
}

// afterCommit passes what f changed in the catalog since it counted before
// changes on to the listings and the kernel: the version its commit made,
// without asking the catalog (whose commit may still be on its way,
// catalog.Lazy), or else the key's latest version.
func (m *Mount) afterCommit(ctx context.Context, f *stage.File, before uint64) {
	if f.Changes() == before {
		return
	}
	key := f.Key()
	if v, ok := f.Committed(); ok && v.Key == key {
		m.committed(v)
	} else if v, err := m.ns.cat.ByKey(ctx, key, 0); err == nil {
		m.committed(v)
	} else {
		m.written(key)
	}
	m.versionsListed(key)
}

// versionsListed drops the kernel's cached listing of key's folder on a
// mount whose listings show name@vN or sidecars, before the close (or
// fsync) that committed key returns: the notifier's invalidation came a
// moment after, and an ls right after close missed the new name@vN
// (TestCloseShowsVersionInListing). An inode invalidation of the folder
// takes none of the kernel's locks that a request holds while it waits
// for the mount (an entry invalidation would: the notifier sends those).
func (m *Mount) versionsListed(key string) {
	if !m.listsDerived() || !m.opts.CacheDirs {
		return
	}
	prefix, _ := splitKey(key)
	if dir := m.dirInode(prefix); dir != nil {
		dir.NotifyContent(0, 0)
	}
}

func (h *handle) Release(context.Context) syscall.Errno {
	if h.pages != nil {
		h.pages.release()
	}
	if h.staged != nil {
		h.staged.Close()
	}
	if h.w == nil || h.w.readOnly {
		return 0
	}
	// RELEASE comes with pid 0 and after close(2) returned: nobody waits.
	ctx := context.Background()
	m := h.w.n.m
	defer func() {
		m.writers.remove(h.w)
		if h.w.held == nil {
			return
		}
		if key := m.held.release(h.w.held); key != "" {
			m.notifyAsync(key) // the path shows its version's inode again
		}
	}()
	h.w.release()
	before := h.w.f.Changes()
	if h.w.skipped.Load() && h.w.wroteSince() {
		// A close of a copy left what it wrote for this, the last close of
		// the description: committed here even while another handle shares
		// the File (whose Release then commits nothing). A failure is
		// logged; the File's last Release tries again, and keeps the bytes
		// staged for lost+found if that fails too.
		if err := h.w.f.Flush(h.w.closerCtx(ctx)); err != nil {
			m.log.Warn("lamina mount: commit at release failed; the file's last close tries again", "key", h.w.f.Key(), "err", err)
		}
	}
	if err := h.w.f.Release(h.w.closerCtx(ctx)); err != nil {
		m.notifyAsync(h.w.f.Key()) // the kernel's size, or entry, of what was not committed
		return h.w.n.errno("commit at release", err)
	}
	if h.w.f.Broken() {
		m.notifyAsync(h.w.f.Key())
	}
	h.w.creditBase(before)
	m.afterCommit(ctx, h.w.f, before)
	return 0
}

func (h *handle) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	if h.w == nil || h.w.readOnly {
		return 0
	}
	before := h.w.f.Changes()
	if err := h.w.f.Sync(h.w.closerCtx(ctx)); err != nil {
		return h.w.n.errno("fsync", err)
	}
	h.w.creditBase(before)
	h.w.n.m.afterCommit(ctx, h.w.f, before)
	return 0
}

// Fsync is fsync of a file's handle, and of a folder: FSYNCDIR comes
// without a handle (listings are opened without OPENDIR, opendir.go), and
// makes what was done in the folder durable, the catalog's renames and
// removals among it, as tools expect after renaming a file into place.
func (n *node) Fsync(ctx context.Context, fh fusefs.FileHandle, flags uint32) syscall.Errno {
	if h, ok := fh.(*handle); ok {
		return h.Fsync(ctx, flags)
	}
	if n.e.Kind == KindDir && n.m.ns.st != nil {
		if err := n.m.ns.st.Sync(ctx); err != nil {
			return n.errno("fsync", err)
		}
	}
	return 0
}

// Allocate is fallocate(2): mode 0 and FALLOC_FL_KEEP_SIZE; holes and
// zeroed ranges are not supported.
func (h *handle) Allocate(ctx context.Context, off, size uint64, mode uint32) syscall.Errno {
	if h.w == nil || h.w.readOnly {
		return syscall.EBADF
	}
	if mode&^unix.FALLOC_FL_KEEP_SIZE != 0 {
		return syscall.EOPNOTSUPP
	}
	h.w.writing()
	err := h.w.f.Allocate(ctx, int64(off), int64(size), mode != 0)
	h.w.done()
	if err != nil {
		return h.w.n.errno("fallocate", err)
	}
	return 0
}

// mayWrite reports whether the caller may open e for writing by its mode
// bits. The mount leaves permission checks to itself (no
// default_permissions: it would answer EACCES where @vN paths must answer
// EROFS), so a 0444 file — Snakemake's protected() outputs — refuses
// writes here as a plain file system would. Root may write anything.
func (m *Mount) mayWrite(ctx context.Context, e Entry) bool {
	return m.may(ctx, e, unix.W_OK)
}

// may reports whether the caller may access e as want (R_OK, W_OK, X_OK
// bits) by e's mode bits, as a plain file system decides: the mounting
// user by the owner bits, its group by the group bits, anyone else by the
// rest. Root may read and write anything, and execute a file only if some
// execute bit is set.
func (m *Mount) may(ctx context.Context, e Entry, want uint32) bool {
	c, ok := fuse.FromContext(ctx)
	if !ok {
		return true
	}
	if c.Uid == 0 {
		return want&unix.X_OK == 0 || e.IsDir() || e.Mode&0o111 != 0
	}
	bits := e.Mode & 0o7
	switch {
	case c.Uid == m.uid:
		bits = e.Mode >> 6
	case c.Gid == m.gid:
		bits = e.Mode >> 3
	}
	return bits&want == want
}

// mayRead reports whether the caller may access n as want (R_OK, X_OK)
// by the mode the file has now: a latest path's entry keeps the mode it
// was looked up with, and a chmod since changes only the catalog.
func (n *node) mayRead(ctx context.Context, want uint32) bool {
	e := n.e
	if isLatestFile(e) {
		e = n.current(ctx, nil)
	}
	return n.m.may(ctx, e, want)
}

// Access is access(2): the mount answers permission checks itself (see
// mayWrite). W_OK of what is never written — versions, sidecars, a
// read-only mount — is EROFS, as open would answer, but for the rm -r that
// takes a folder artifact whole (rmfolder.go); R_OK and X_OK follow the
// mode bits, so `test -x` and `find -executable` tell the truth.
func (n *node) Access(ctx context.Context, mask uint32) syscall.Errno {
	if rx := mask & (unix.R_OK | unix.X_OK); rx != 0 && !n.mayRead(ctx, rx) {
		return syscall.EACCES
	}
	if mask&unix.W_OK == 0 || n.e.IsDir() {
		return 0
	}
	if n.e.Kind == KindFolderFile && !n.m.writesOff() {
		if _, pid, _ := n.rmCaller(ctx); pid != 0 {
			return 0 // rm -r that takes its folder artifact whole: it may unlink it (rmfolder.go)
		}
	}
	if n.m.writesOff() || !isLatestFile(n.e) {
		return syscall.EROFS
	}
	if !n.m.mayWrite(ctx, n.current(ctx, nil)) {
		return syscall.EACCES
	}
	return 0
}

// scratchHere reports whether name in n is a scratch path (scratchAt) in a
// folder of keys. Scratch never touches the catalog, so a mount that may
// not write (a database role that may only read, a catalog upgraded by a
// newer lamina or lost, a take-over) still makes and removes scratch files
// (Snakemake's .snakemake/ under a read-only mount); only a rename between
// scratch and keys is refused there.
func (n *node) scratchHere(ctx context.Context, name string) bool {
	return n.e.Kind == KindDir && n.m.scratchAt(ctx, n.prefix()+name)
}

// writable reports whether names can be made in n, and the errno if not.
func (n *node) writable() syscall.Errno {
	if n.m.writesOff() || n.e.Kind != KindDir {
		return syscall.EROFS
	}
	return 0
}

// checkNew validates a name to be made in n.
func (n *node) checkNew(name string) (string, syscall.Errno) {
	key := n.prefix() + name
	if key == ViewRoot {
		return "", syscall.EROFS // collections.go
	}
	if pn := ParseName(name); pn.Base != name {
		if _, err := n.m.ns.lookupKey(context.Background(), n.prefix(), name); err == nil {
			return "", syscall.EROFS
		}
	}
	if err := ref.CheckKey(key); err != nil {
		return "", errno(n.m.log, "name", err)
	}
	return key, 0
}

// create is Create without lineage (lineage.go).
func (n *node) create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fusefs.Inode, fusefs.FileHandle, uint32, syscall.Errno) {
	if n.scratchHere(ctx, name) {
		return n.scratchCreate(ctx, name, flags, mode, out)
	}
	if e := n.writable(); e != 0 {
		return nil, nil, 0, e
	}
	key, e := n.checkNew(name)
	if e != 0 {
		return nil, nil, 0, e
	}
	st := n.m.ns.st
	var f *stage.File
	var err error
	app := flags&syscall.O_APPEND != 0
	shared := flags&syscall.O_TRUNC == 0 // joins another writer's File (OpenShared)
	ent, lerr := n.m.ns.lookupKey(ctx, n.prefix(), name)
	ent = n.m.held.apply(n.prefix(), name, ent) // another writer's inode
	switch {
	case lerr == nil && ent.IsDir():
		return nil, nil, 0, syscall.EISDIR
	case lerr == nil && flags&syscall.O_EXCL != 0:
		return nil, nil, 0, syscall.EEXIST
	case lerr == nil && ((ent.Kind == KindFile && ent.Latest) || ent.Kind == KindPending) && !n.m.mayWrite(ctx, ent):
		return nil, nil, 0, syscall.EACCES
	case lerr == nil && ent.Kind == KindFile && ent.Latest && shared:
		f, err = st.OpenShared(ctx, key, mode&0o7777)
	case lerr == nil && ent.Kind == KindFile && ent.Latest:
		var v *catalog.Version
		if v, err = n.m.ns.Full(ctx, ent); err == nil {
			f, err = st.Open(ctx, key, *v, true)
		}
	case lerr == nil && ent.Kind != KindPending:
		return nil, nil, 0, syscall.EROFS
	default:
		if shared {
			f, err = st.OpenShared(ctx, key, mode&0o7777)
		} else {
			f, err = st.Create(ctx, key, mode&0o7777)
		}
		if err == nil {
			ent = n.m.ns.pendingEntry(name, key, f)
		}
	}
	if err != nil {
		return nil, nil, 0, n.errno("create", err)
	}
	child := n.m.newNode(ent)
	tid := callerTID(ctx)
	h := &handle{w: &writeHandle{f: f, n: child, app: app, opener: tid, openerTG: threadGroup(tid)}}
	n.m.fill(child.current(ctx, h), &out.Attr)
	out.SetEntryTimeout(n.m.opts.LatestTimeout)
	out.SetAttrTimeout(0)
	ino := n.NewInode(ctx, child, n.m.stableAttr(ent))
	if got, ok := ino.Operations().(*node); ok && got != child {
		h.w.n = got
	}
	if h.w.n.pg != nil {
		h.w.n.pg.written()
	}
	h.w.hold(key)
	return ino, h, 0, 0
}

func (n *node) Setattr(ctx context.Context, fh fusefs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if fh == nil && n.movedToScratch(ctx) {
		// truncate(2), chmod(2), utimes(2) of f~ right after mv f f~: as
		// open and stat (scratch.go), the kernel looks f~ up anew.
		return syscall.ESTALE
	}
	if uid, ok := in.GetUID(); ok && uid != n.m.uid {
		return syscall.EPERM
	}
	if gid, ok := in.GetGID(); ok && gid != n.m.gid {
		return syscall.EPERM
	}
	st := n.m.ns.st
	e := n.e
	switch {
	case n.m.writesOff():
		return syscall.EROFS
	case e.Kind == KindDir:
		return n.setDirAttrs(ctx, in, out)
	case !((e.Kind == KindFile && e.Latest) || e.Kind == KindPending || e.Kind == KindLink):
		return syscall.EROFS
	}
	var w *stage.File
	var wh *writeHandle
	if h, ok := fh.(*handle); ok && h.w != nil && !h.w.readOnly {
		w, wh = h.w.f, h.w
	}
	key := n.key()
	var err error
	var changed catalog.Version // what the catalog answered last, if anything
	var taken *stage.File       // an open File that took the size or the times (TakeAttrs)
	if size, ok := in.GetSize(); ok {
		if w == nil && !n.m.mayWrite(ctx, n.current(ctx, nil)) {
			return syscall.EACCES // truncate(2) of a read-only file
		}
		if w != nil {
			wh.writing() // ftruncate: its close commits
			err = w.Truncate(ctx, int64(size))
			wh.done()
		} else {
			changed, err = st.Truncate(n.m.callerRunCtx(ctx), key, int64(size))
		}
		if err != nil {
			return n.errno("truncate", err)
		}
		if w == nil && changed.UID == "" {
			// An open File took it (open(O_TRUNC) comes as OPEN, then this
			// SETATTR without the handle): the reply shows the File, or the
			// kernel keeps the old size until the commit's invalidation,
			// after a close with nothing written returned.
			taken = st.Pending(key)
		}
	}
	var a catalog.Attrs
	if mt, ok := in.GetMTime(); ok {
		a.Mtime = &mt
	}
	if mode, ok := in.GetMode(); ok {
		a.Mode = &mode
	}
	if a.Mtime != nil || a.Mode != nil {
		switch {
		case w != nil:
			if a.Mtime != nil {
				w.SetMtime(*a.Mtime)
			}
			if a.Mode != nil {
				w.SetMode(*a.Mode)
			}
		default:
			// futimens(fd) of a writer comes without its handle: the
			// version its close commits takes the times, if it has bytes
			// to commit.
			if t := st.TakeAttrs(key, a); t != nil {
				taken = t
			} else {
				changed, err = st.SetAttrs(ctx, key, a)
			}
			if err != nil {
				return n.errno("setattr", err)
			}
		}
	}
	if w == nil {
		prefix, name := splitKey(key)
		switch {
		case changed.UID != "" && changed.Key == key:
			n.m.ns.update(changed) // in place: touch * lists the folder once
			n.m.versionChanged(changed)
		case taken == nil:
			n.m.ns.forget(key)
		}
		if taken != nil { // what its commit will show
			e := n.current(ctx, nil)
			e.Size, e.Mtime, e.Mode = taken.Attr()
			n.m.fill(e, &out.Attr)
			return 0
		}
		if cur, err := n.m.ns.lookupKey(ctx, prefix, name); err == nil {
			n.m.fill(cur, &out.Attr)
			out.SetTimeout(n.m.opts.LatestTimeout)
			return 0
		}
	}
	n.m.fill(n.current(ctx, fh), &out.Attr)
	return 0
}

// setDirAttrs is chmod and touch of a folder: its record in the catalog
// keeps them (catalog.FolderRecord), so that rsync -a and cp -a, which set
// a folder's times and mode after filling it, find them at the next run.
// The top of the mount has no record: there they are accepted and not kept.
func (n *node) setDirAttrs(ctx context.Context, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	var a catalog.Attrs
	if mt, ok := in.GetMTime(); ok {
		a.Mtime = &mt
	}
	if mode, ok := in.GetMode(); ok {
		a.Mode = &mode
	}
	prefix := n.e.Prefix
	if prefix != "" && (a.Mtime != nil || a.Mode != nil) {
		if _, err := n.m.ns.st.SetAttrs(ctx, strings.TrimSuffix(prefix, "/"), a); err != nil {
			return n.errno("setattr", err)
		}
		n.m.ns.folderAttrs(prefix, a)
	}
	return n.Getattr(ctx, nil, out)
}

// Setxattr: the mount stores no extended attributes. Where a write could
// land — a latest file, a link, a folder — that is EOPNOTSUPP, which cp -a
// and rsync -X pass over (system.posix_acl_access falls back to chmod);
// EROFS, which cp reports and fails on, only for what is read-only.
//
// user.lamina.* are derived from the version a path shows, never stored:
// setting or removing one where a write could land succeeds and changes
// nothing (a read gives the derived value still). Files copied out with
// cp -a carry them, and rsync -aX of such files back (or of any file onto
// one in the mount, whose lamina names it then removes) failed with rc 23
// at every run; refusing only a different value would still fail each
// file written anew, whose copy carries the old version's uid.
func (n *node) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	return n.xattrWrite(attr)
}

func (n *node) Removexattr(ctx context.Context, attr string) syscall.Errno {
	return n.xattrWrite(attr)
}

func (n *node) xattrWrite(attr string) syscall.Errno {
	if !n.m.writesOff() && (n.e.Latest || n.e.Kind == KindDir) {
		if strings.HasPrefix(attr, xattrPrefix) {
			return 0 // derived: accepted, not kept (above)
		}
		return syscall.EOPNOTSUPP
	}
	return syscall.EROFS
}

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	if n.scratchHere(ctx, name) {
		return n.scratchMkdir(ctx, name, mode, out)
	}
	if e := n.writable(); e != 0 {
		return nil, e
	}
	key, e := n.checkNew(name)
	if e != 0 {
		return nil, e
	}
	if _, err := n.m.ns.lookupKey(ctx, n.prefix(), name); err == nil {
		return nil, syscall.EEXIST
	}
	if err := n.m.ns.st.Mkdir(ctx, key); err != nil {
		if errors.Is(err, catalog.ErrConflict) {
			return nil, syscall.EEXIST
		}
		return nil, n.errno("mkdir", err)
	}
	if perm := mode & 0o7777; perm != 0 && perm != catalog.FolderMode(0) {
		// The mode mkdir(2) asked (umask applied by the kernel): tar -xp,
		// mkdtemp's 0700 and a umask of 002 are not 0755.
		a := catalog.Attrs{Mode: &perm}
		if _, err := n.m.ns.st.SetAttrs(ctx, key, a); err != nil {
			return nil, n.errno("mkdir", err)
		}
		n.m.ns.folderAttrs(key+"/", a)
	}
	n.m.ns.dirChanged(key, true)
	n.m.removals.changed(dirKey(n.prefix()))
	// The parent's cached listing and attributes only: a notification
	// naming the new folder unhashed the entry the kernel just made from
	// this reply, and a process already inside it (mkdir then chdir, as
	// git init NEW does) lost its working directory (getcwd: ENOENT).
	n.m.notifyDirAsync(n.prefix())
	ent := n.m.ns.dirEntry(name, key+"/", nil)
	n.m.fill(ent, &out.Attr)
	return n.NewInode(ctx, &node{m: n.m, e: ent}, fusefs.StableAttr{Mode: syscall.S_IFDIR, Ino: ent.Ino}), 0
}

func (n *node) Link(ctx context.Context, target fusefs.InodeEmbedder, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	if n.m.writesOff() {
		return nil, syscall.EROFS
	}
	return nil, syscall.EPERM
}

func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	if n.scratchHere(ctx, name) {
		return n.scratchSymlink(ctx, target, name, out)
	}
	if e := n.writable(); e != 0 {
		return nil, e
	}
	key, e := n.checkNew(name)
	if e != 0 {
		return nil, e
	}
	if _, err := n.m.ns.lookupKey(ctx, n.prefix(), name); err == nil {
		return nil, syscall.EEXIST
	}
	if err := n.m.ns.st.Symlink(ctx, key, target); err != nil {
		if errors.Is(err, catalog.ErrConflict) {
			return nil, syscall.EEXIST
		}
		return nil, n.errno("symlink", err)
	}
	n.m.written(key)
	n.m.removals.changed(dirKey(n.prefix()))
	ent := linkEntry(name, catalog.Link{Key: key, Target: target, Mtime: time.Now()})
	n.m.fill(ent, &out.Attr)
	return n.NewInode(ctx, &node{m: n.m, e: ent}, fusefs.StableAttr{Mode: syscall.S_IFLNK, Ino: ent.Ino}), 0
}

// Readlink reads the link at n's key now: a link renamed onto another
// (ln -sfn) leaves the kernel an inode of the old one, whose number a
// lookup of the name gives again until the kernel forgets it.
func (n *node) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	if n.e.Kind != KindLink {
		return nil, syscall.EINVAL
	}
	if e := n.current(ctx, nil); e.Kind == KindLink {
		return []byte(e.Target), 0
	}
	return []byte(n.e.Target), 0
}

// existing resolves name in n for a change: version and sidecar names are
// read-only.
func (n *node) existing(ctx context.Context, name string) (Entry, syscall.Errno) {
	ent, err := n.m.ns.lookupKey(ctx, n.prefix(), name)
	if err != nil {
		return Entry{}, n.errno("lookup", err)
	}
	if ent.Immutable() || ent.Kind == KindMeta || ent.Kind == KindView {
		return Entry{}, syscall.EROFS
	}
	return ent, 0
}

func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	if n.e.Kind == KindFolder && !n.m.writesOff() { // inside a folder artifact: rmfolder.go
		if e, ok := n.rmInFolder(ctx, false); ok {
			return e
		}
	}
	if n.scratchHere(ctx, name) {
		n.m.forgetSource(n.m.scratchPath(n.prefix()+name), true) // scratchsource.go
		return errnoOf(syscall.Unlink(n.m.scratchPath(n.prefix() + name)))
	}
	if e := n.writable(); e != 0 {
		return e
	}
	ent, e := n.existing(ctx, name)
	if e == syscall.ENOENT && n.m.unlinked.gone(ctx, n.prefix(), name) {
		return 0
	}
	if e != 0 {
		return e
	}
	if ent.IsDir() {
		return syscall.EISDIR
	}
	key := n.prefix() + name
	versions := n.m.versionsOf(key)
	at := time.Now()
	if err := n.m.ns.st.Unlink(n.m.callerRunCtx(ctx), key); err != nil { // the run: stage.OnRunWithin
		return n.errno("unlink", err)
	}
	n.m.removals.removed(dirKey(n.prefix()), callerTID(ctx), at) // removal.go
	if n.m.listsDerived() {
		n.m.unlinked.add(key, callerTID(ctx))
	}
	if n.m.isScratch(key) {
		n.m.ns.st.KeepName(key, processOf(callerTID(ctx))) // tar -x writes it anew: a key still (scratchAt)
	}
	n.m.retired.retire(key, n.GetChild(name)) // inode.go
	n.m.held.drop([]string{key})
	n.m.ns.remove(key)
	if ent.Kind == KindFile { // links and files not committed yet have no versions
		n.m.dropDerived(n.EmbeddedInode(), name, versions) // once the listing has it not
	}
	n.m.notifyAsync(key)
	return 0
}

// versionsOf is the number of key's latest version by its folder's cached
// listing, 0 if it has none there.
func (m *Mount) versionsOf(key string) int {
	it, ok := m.ns.cachedFile(splitKey(key))
	if !ok {
		return 0
	}
	return int(it.n)
}

// dropDerived has the kernel ask again for the attributes of the names
// derived from name in the folder node dir that it holds (name.meta,
// name@vN and their sidecars, a folder artifact's name@vN/…), before the
// unlink or rename that took name away returns. The kernel keeps them for
// hours, and the notifier's entry invalidations come a moment after the
// call returned: a stat of name@v1 right after `rm name` showed it. Their
// next GETATTR or OPEN answers ESTALE (derivedGone) and the kernel looks
// the name up anew. An inode invalidation takes no lock that the request
// holds, unlike an entry invalidation (versionsListed). versions is the
// key's latest version number (versionsOf); with 0 every name the kernel
// knows in dir is looked at.
func (m *Mount) dropDerived(dir *fusefs.Inode, name string, versions int) {
	if dir == nil {
		return
	}
	var drop func(in *fusefs.Inode)
	drop = func(in *fusefs.Inode) { // the kernel's tree: finite, no cycles
		in.NotifyContent(-1, 0)
		if in.IsDir() {
			for _, c := range in.Children() {
				drop(c)
			}
		}
	}
	if versions <= 0 {
		for child, in := range dir.Children() {
			if child != name && ParseName(child).Base == name {
				drop(in)
			}
		}
		return
	}
	if in := dir.GetChild(name + ".meta"); in != nil {
		drop(in)
	}
	for v := 1; v <= versions; v++ {
		vn := name + "@v" + strconv.Itoa(v)
		for _, c := range []string{vn, vn + ".meta"} {
			if in := dir.GetChild(c); in != nil {
				drop(in)
			}
		}
	}
}

// unlinkedKeys remembers the keys unlinked in the last few seconds. A
// mount that lists versions and sidecars (--show-versions, --show-meta)
// shows `rm -r` name, name.meta and name@vN; unlinking name takes the
// others with it, and their unlinks, which come next, would fail with
// ENOENT (rm then keeps the folder and exits 1). For a few seconds after
// name's unlink, a lookup of one of them by the process that unlinked it
// answers a ghost (an empty read-only file the kernel may not cache,
// which no open finds) and its unlink succeeds as a no-op. To any other
// process they are gone at once (ENOENT), as the versions of a key in the
// trash are: a `stat name@v1` after `rm name` showed the ghost. A version
// or sidecar of a live artifact stays EROFS.
type unlinkedKeys struct {
	mu sync.Mutex             // guards m
	m  map[string]unlinkedKey // by key
}

type unlinkedKey struct {
	at  time.Time
	tid uint32 // the unlinking thread; 0: unknown (another pid namespace), every process's
}

const unlinkedFor = 5 * time.Second

// add notes that the thread tid unlinked key.
func (u *unlinkedKeys) add(key string, tid uint32) {
	u.mu.Lock()
	defer u.mu.Unlock()
	now := time.Now()
	if u.m == nil {
		u.m = map[string]unlinkedKey{}
	}
	if len(u.m) > 1024 {
		for k, uk := range u.m {
			if now.Sub(uk.at) > unlinkedFor {
				delete(u.m, k)
			}
		}
	}
	u.m[key] = unlinkedKey{at: now, tid: tid}
}

// gone reports whether name in the folder prefix is a version or sidecar
// name of a key the caller's process unlinked in the last unlinkedFor (any
// caller's, if the unlinking thread was unknown: another pid namespace).
// The same thread (rm -r) reads no /proc.
func (u *unlinkedKeys) gone(ctx context.Context, prefix, name string) bool {
	pn := ParseName(name)
	if pn.Base == name {
		return false
	}
	u.mu.Lock()
	uk, ok := u.m[prefix+pn.Base]
	u.mu.Unlock()
	if !ok || time.Since(uk.at) >= unlinkedFor {
		return false
	}
	tid := callerTID(ctx)
	if uk.tid == 0 || tid == uk.tid {
		return true
	}
	p := processOf(tid)
	return p != "" && p == processOf(uk.tid)
}

// listsDerived reports whether listings show versions or sidecars.
func (m *Mount) listsDerived() bool { return m.opts.ShowVersions || m.opts.ShowMeta }

// ghost answers the lookup of a version or sidecar name whose artifact
// was just unlinked (unlinkedKeys): an empty read-only file, not cached.
func (n *node) ghost(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	return n.ghostOf(ctx, syscall.S_IFREG, out)
}

// ghostOf is ghost for a file (S_IFREG) or a folder (S_IFDIR: the top of
// a folder artifact rm -r moved to the trash, rmfolder.go).
func (n *node) ghostOf(ctx context.Context, typ uint32, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	g := &ghostNode{}
	g.attr.Mode = typ | 0o444
	g.attr.Nlink = 1
	g.attr.Blksize = 1 << 16
	g.attr.Owner = fuse.Owner{Uid: n.m.uid, Gid: n.m.gid}
	t := time.Now()
	g.attr.SetTimes(&t, &t, &t)
	out.Attr = g.attr
	out.SetEntryTimeout(0)
	out.SetAttrTimeout(0)
	return n.NewInode(ctx, g, fusefs.StableAttr{Mode: typ}), 0
}

// ghostNode is a name that went with its artifact (ghost): nothing opens.
type ghostNode struct {
	fusefs.Inode
	attr fuse.Attr // what its lookup answered
}

var (
	_ fusefs.NodeOpener    = (*ghostNode)(nil)
	_ fusefs.NodeGetattrer = (*ghostNode)(nil)
	_ fusefs.NodeAccesser  = (*ghostNode)(nil)
)

func (g *ghostNode) Open(ctx context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	return nil, 0, syscall.ENOENT
}

// Getattr answers what the lookup did: without it go-fuse answered a
// zeroed stat (mode 0, no links).
func (g *ghostNode) Getattr(ctx context.Context, fh fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Attr = g.attr
	out.SetTimeout(0)
	return 0
}

// Access answers 0: only the rm that removed the ghost's artifact is
// shown it, and its removal of it succeeds. rm at a terminal, run by
// anyone but root, asks access(W_OK) first, and the 0444 of the lookup
// made it ask "remove write-protected directory?" of a folder artifact's
// top, and of a sidecar, after the artifact went to the trash.
func (g *ghostNode) Access(ctx context.Context, mask uint32) syscall.Errno { return 0 }

func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	if n.e.Kind == KindFolder && !n.m.writesOff() { // inside a folder artifact: rmfolder.go
		if e, ok := n.rmInFolder(ctx, true); ok {
			return e
		}
	}
	if n.scratchHere(ctx, name) {
		return errnoOf(syscall.Rmdir(n.m.scratchPath(n.prefix() + name)))
	}
	if e := n.writable(); e != 0 {
		return e
	}
	if n.m.removed.by(n.prefix()+name, callerTID(ctx)) {
		return 0 // a folder artifact rm -r moved to the trash, from inside (rmfolder.go)
	}
	ent, e := n.existing(ctx, name)
	if e != 0 {
		return e
	}
	if ent.Kind != KindDir {
		if ent.Kind == KindFolder && n.e.Kind == KindDir && ent.Path() == "" {
			return n.rmdirFolder(ctx, ent, n.prefix()+name) // rmfolder.go
		}
		if ent.Kind == KindFolder {
			return syscall.EROFS
		}
		return syscall.ENOTDIR
	}
	key := n.prefix() + name
	if keys, dirs := n.m.ns.st.PendingUnder(key + "/"); len(keys)+len(dirs) > 0 {
		return syscall.ENOTEMPTY
	}
	if ents, _ := os.ReadDir(n.m.scratchPath(key)); len(ents) > 0 {
		return syscall.ENOTEMPTY
	}
	// When the removal that emptied it began (removal.go): restore
	// FOLDER/ leaves what was trashed under it before in the trash.
	tid := callerTID(ctx)
	from := n.m.removals.from(key, tid, time.Now())
	if err := n.m.ns.st.Rmdir(catalog.WithRemovalFrom(ctx, from), key); err != nil {
		if errors.Is(err, catalog.ErrNotEmpty) {
			return syscall.ENOTEMPTY
		}
		return n.errno("rmdir", err)
	}
	n.m.removals.forget(key)
	n.m.removals.removed(dirKey(n.prefix()), tid, from)
	os.Remove(n.m.scratchPath(key))
	n.m.ns.dirChanged(key, false)
	n.m.notifyAsync(key)
	return 0
}

// Rename is rename, noted as a removal from n and a name made in
// newParent (removal.go).
func (n *node) Rename(ctx context.Context, name string, newParent fusefs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	at := time.Now()
	e := n.rename(ctx, name, newParent, newName, flags)
	if e == 0 && n.e.Kind == KindDir {
		n.m.removals.removed(dirKey(n.prefix()), callerTID(ctx), at)
		if p, ok := newParent.(*node); ok {
			n.m.removals.changed(dirKey(p.prefix()))
		}
	}
	return e
}

func (n *node) rename(ctx context.Context, name string, newParent fusefs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if n.e.Kind != KindDir {
		return syscall.EROFS // writable(), but for a mount that may not write: below
	}
	if flags&^uint32(1) != 0 { // only RENAME_NOREPLACE
		return syscall.EINVAL
	}
	src := n.prefix() + name
	var dst string
	dstScratch := false
	switch p := newParent.(type) {
	case *node:
		if p.e.Kind != KindDir {
			return syscall.EROFS
		}
		dst = p.prefix() + newName
		if dstScratch = n.m.scratchTarget(ctx, dst); dstScratch && n.m.ns.st != nil {
			// A scratch file takes the name: a name kept since its key was
			// unlinked (KeepName) would hide it (scratchAt).
			n.m.ns.st.ForgetName(dst)
		}
	case *scratchNode:
		dst = path.Join(p.EmbeddedInode().Path(nil), newName)
		dstScratch = true
	default:
		return syscall.EXDEV
	}
	srcScratch := n.m.scratchAt(ctx, src)
	ontoSpecial := false
	if dstDir, dstName := path.Split(dst); srcScratch && !dstScratch && n.m.specialFile(src) && !n.m.ns.has(ctx, dstDir, dstName) {
		dstScratch = true // a FIFO or socket to a name no key has: within scratch (special.go)
		n.m.specials.Store(true)
	} else if !srcScratch && dstScratch && n.m.specialTarget(ctx, dst) {
		dstScratch, ontoSpecial = false, true // a key onto a FIFO or socket replaces it
	}
	if n.m.writesOff() && !(srcScratch && dstScratch) {
		return syscall.EROFS // within scratch only: it never touches the catalog
	}
	if flags&1 != 0 {
		if _, err := os.Lstat(n.m.scratchPath(dst)); dstScratch && err == nil {
			return syscall.EEXIST
		}
		if _, err := n.m.ns.Lookup(ctx, Entry{Kind: KindDir, Prefix: path.Dir(dst) + "/"}, path.Base(dst)); !dstScratch && err == nil {
			return syscall.EEXIST
		}
		if ontoSpecial {
			return syscall.EEXIST
		}
	}
	switch {
	case srcScratch && dstScratch:
		if err := os.MkdirAll(filepath.Dir(n.m.scratchPath(dst)), 0o755); err != nil {
			return errnoOf(err)
		}
		n.m.forgetReplaced(n.m.scratchPath(src), n.m.scratchPath(dst)) // scratchsource.go
		return errnoOf(os.Rename(n.m.scratchPath(src), n.m.scratchPath(dst)))
	case srcScratch:
		return n.m.commitScratch(ctx, n.m.scratchPath(src), dst)
	case dstScratch:
		return n.m.materialize(ctx, n, name, dst)
	}
	se, e := n.existing(ctx, name)
	if e != 0 {
		return e
	}
	if ontoSpecial && se.IsDir() {
		return syscall.ENOTDIR
	}
	np := newParent.(*node)
	de, derr := np.m.ns.lookupKey(ctx, np.prefix(), newName)
	if derr == nil && (de.Immutable() || de.Kind == KindMeta) {
		return syscall.EROFS
	}
	if _, err := np.checkNew(newName); err != 0 {
		return err
	}
	var err error
	if se.Kind == KindDir {
		if derr == nil && de.Kind != KindDir {
			return syscall.ENOTDIR
		}
		if strings.HasPrefix(dst+"/", src+"/") {
			return syscall.EINVAL
		}
		err = n.m.ns.st.RenameFolder(ctx, src, dst)
		if err == nil {
			n.m.retired.retireUnder(src+"/", n.GetChild(name)) // inode.go
			os.Rename(n.m.scratchPath(src), n.m.scratchPath(dst))
			n.m.held.drop(nil, src+"/", dst+"/")
			n.m.renamedMembers(nil, []string{src, dst})
		}
	} else {
		if derr == nil && de.Kind == KindDir {
			return syscall.EISDIR
		}
		replaced := np.GetChild(newName) // a file the rename replaces keeps its bytes for who holds it
		versions := n.m.versionsOf(src)
		var v catalog.Version
		stem := "" // the artifact renamed: a commit of src soon takes its history back
		if se.Kind == KindFile && se.uid != ([ref.UIDLen]byte{}) {
			stem = string(se.uid[:ref.StemLen])
		}
		if v, err = n.m.ns.st.RenameFile(n.m.callerRunCtx(ctx), src, dst, stem); err == nil {
			n.m.retired.retire(src, n.GetChild(name)) // inode.go
			if replaced != nil && replaced != n.GetChild(name) {
				n.m.retired.retire(dst, replaced)
			}
			if ontoSpecial {
				os.Remove(n.m.scratchPath(dst)) // the key hides it already (scratchAt)
			}
			n.m.held.move(src, dst)
			n.m.movedFile(ctx, src, dst, v)
			n.m.renamedMembers([]string{src, dst}, nil)
			if se.Kind == KindFile || se.Kind == KindFolder {
				n.m.dropDerived(n.EmbeddedInode(), name, versions) // once the listing has src not
			}
			return 0
		}
	}
	switch {
	case errors.Is(err, catalog.ErrNotEmpty):
		return syscall.ENOTEMPTY
	case errors.Is(err, catalog.ErrKind):
		return syscall.EISDIR
	case err != nil:
		return n.errno("rename", err)
	}
	n.m.written(src, dst)
	return 0
}

// movedBack is told that the history of key, renamed to backup a moment
// ago, came back to key (stage.Stage.OnMovedBack): backup shows a new
// artifact of one version. backup's names the kernel holds (backup@vN,
// sidecars) are dropped before the call that wrote key returns, as an
// unlink drops them (dropDerived); key's names are looked up anew.
func (m *Mount) movedBack(key, backup string, versions int) {
	p, name := splitKey(backup)
	m.ns.forget(key, backup)
	m.dropDerived(m.dirInode(p), name, versions)
	names := []string{name, name + ".meta"}
	for v := 1; v <= versions; v++ {
		at := name + "@v" + strconv.Itoa(v)
		names = append(names, at, at+".meta")
	}
	m.sendNotes([]Change{{Prefix: p, Names: names}})
	m.notifyAsync(key)
	m.renamedMembers([]string{key, backup}, nil)
}

// movedFile is written for a file renamed from src to dst, which shows v
// (if the catalog answered it): the cached listings change in place
// (renaming the files of a folder one by one listed the folder again each
// time).
func (m *Mount) movedFile(ctx context.Context, src, dst string, v catalog.Version) {
	m.ns.remove(src)
	if v.UID == "" || v.Key != dst {
		// Not answered (a link, or a file only staged so far): ask. A read
		// commits the catalog's lazy transaction, so only then.
		var err error
		if v, err = m.ns.cat.ByKey(ctx, dst, 0); err != nil {
			v = catalog.Version{}
		}
	}
	if v.UID != "" && v.Key == dst {
		m.ns.update(v)
	} else {
		m.ns.forget(dst)
	}
	m.notifyAsync(src, dst)
}

func errnoOf(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	return fusefs.ToErrno(err)
}

// entry is n's Entry with the folder or key where n is now: a rename of a
// folder moves its inodes in the kernel (and go-fuse's tree) without a new
// lookup.
func (n *node) entry() Entry {
	e := n.e
	if n.m.ns.st == nil || n.EmbeddedInode() == nil || n.e.Ino == 1 {
		return e
	}
	if e.Kind == KindDir {
		if p := n.Path(nil); p != "" && !strings.HasPrefix(p, ".") {
			e.Prefix = p + "/"
		}
	}
	return e
}

// prefix is the key prefix of a folder node ("" at the top).
func (n *node) prefix() string { return n.entry().Prefix }

// key is the key a latest file, pending file or link node shows now.
func (n *node) key() string {
	if n.m.ns.st != nil && n.EmbeddedInode() != nil && n.e.Kind != KindDir {
		if p := n.Path(nil); p != "" && !strings.HasPrefix(p, ".go-fuse") {
			return p
		}
	}
	return keyOf(n.e)
}
