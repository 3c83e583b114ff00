package fs

import (
	"sync"
	"sync/atomic"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/lamina-bio/lamina/ref"
)

// A file's latest path has one inode number per key (latestIno), whichever
// version it shows, so the go-fuse node of a latest path lives across
// versions: what it shows now is Namespace.lookupKey's answer (node.current),
// and what the kernel may cache in its pages is tracked by pageState.

// isLatestFile reports whether e is a file's latest path or a new key being
// written: the entries whose inode is their key's.
func isLatestFile(e Entry) bool {
	return (e.Kind == KindFile && e.Latest) || e.Kind == KindPending
}

// newNode makes the node of e, with what a latest path's inode needs.
func (m *Mount) newNode(e Entry) *node {
	n := &node{m: m, e: e}
	if isLatestFile(e) {
		// A new node is a new kernel inode (go-fuse numbers nodes afresh):
		// its page cache is empty, so e's pages may be kept from the first
		// open on.
		n.pg = &pageState{uid: e.uid}
	}
	return n
}

// stableAttr is the identity of e's node for go-fuse and the kernel.
func (m *Mount) stableAttr(e Entry) fusefs.StableAttr {
	a := fusefs.StableAttr{Mode: stableMode(e), Ino: e.Ino}
	if isLatestFile(e) {
		a.Gen = m.retired.gen(keyOf(e))
		if g, ok := m.held.gen(keyOf(e), e.Ino); ok {
			a.Gen = g // the held node (held.go), which may have come by a rename
		}
	}
	return a
}

// retiredInodes keeps a key's latest path from reusing the node of a file
// that left the key (renamed away, or unlinked) while the kernel still
// holds it: that node has the key's inode number, and go-fuse would hand
// it out again for a lookup of the key, making the old file and the new
// one a single inode in the kernel (one page cache, and a path that names
// either). A key with such a node alive gives its next nodes another
// generation (StableAttr.Gen): another node and kernel inode, with the
// same st_ino. Once those nodes are forgotten the key goes back to
// generation 0.
type retiredInodes struct {
	n  atomic.Int32 // len(m): lookups skip the lock while it is 0
	mu sync.Mutex   // guards m and node.retiredAs
	m  map[string]*retiredKey
}

type retiredKey struct {
	gen   uint64 // the generation of the key's nodes from now on
	nodes int    // retired nodes of the key the kernel still holds
}

// gen is the generation of key's latest-path nodes.
func (r *retiredInodes) gen(key string) uint64 {
	if r.n.Load() == 0 {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if rk := r.m[key]; rk != nil {
		return rk.gen
	}
	return 0
}

// retire notes that the node in, if it is key's latest path, no longer
// shows key. Call it before go-fuse moves or drops the node (in the
// RENAME or UNLINK handler).
func (r *retiredInodes) retire(key string, in *fusefs.Inode) {
	if in == nil {
		return
	}
	n, ok := in.Operations().(*node)
	if !ok || n.pg == nil || in.StableAttr().Ino != latestIno(key) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if n.retiredAs != "" {
		return
	}
	if r.m == nil {
		r.m = map[string]*retiredKey{}
	}
	rk := r.m[key]
	if rk == nil {
		rk = &retiredKey{}
		r.m[key] = rk
		r.n.Store(int32(len(r.m)))
	}
	rk.gen = max(rk.gen, in.StableAttr().Gen+1)
	rk.nodes++
	n.retiredAs = key
}

// retireUnder retires the latest-path nodes the kernel holds under the
// folder node dir, whose key prefix was prefix (a folder renamed away).
func (r *retiredInodes) retireUnder(prefix string, dir *fusefs.Inode) {
	if dir == nil {
		return
	}
	for name, c := range dir.Children() {
		if c.IsDir() {
			r.retireUnder(prefix+name+"/", c)
		} else {
			r.retire(prefix+name, c)
		}
	}
}

// isRetired reports whether n no longer shows the key it showed (retire).
func (r *retiredInodes) isRetired(n *node) bool {
	if r.n.Load() == 0 {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return n.retiredAs != ""
}

// forgotten notes that the kernel forgot n.
func (r *retiredInodes) forgotten(n *node) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n.retiredAs == "" {
		return
	}
	if rk := r.m[n.retiredAs]; rk != nil {
		if rk.nodes--; rk.nodes <= 0 {
			delete(r.m, n.retiredAs)
			r.n.Store(int32(len(r.m)))
		}
	}
	n.retiredAs = ""
}

// pageState is what the kernel may hold in the page cache of a latest
// path's inode, which shows one version after another. Its readers follow
// the versions (following), so the pages are of the latest version, once
// Mount.invalidate dropped the older one's when it landed. A reader opened
// on the version whose pages are there keeps them (FOPEN_KEEP_CACHE); one
// opened on another drops them at its open.
type pageState struct {
	mu      sync.RWMutex     // held for reading while a chunk is stored in the kernel (pageState.store)
	uid     [ref.UIDLen]byte // the version whose pages the kernel may keep; zero: none
	readers int              // read handles open
	// last is the path's entry at its last lookup (node.current): what it
	// shows once its name is gone. Nil until a lookup found one.
	last atomic.Pointer[Entry]
}

// remember keeps e as what the path showed last. A lookup that found the
// same entry as the one before stores nothing, so a stat allocates nothing.
func (p *pageState) remember(e Entry) {
	if old := p.last.Load(); old == nil || *old != e {
		p.last.Store(&e)
	}
}

// shown is what the path showed at its last lookup, if it was looked up.
func (p *pageState) shown() (Entry, bool) {
	if e := p.last.Load(); e != nil {
		return *e, true
	}
	return Entry{}, false
}

// open counts a reader of the version uid and returns its open flags.
func (p *pageState) open(uid [ref.UIDLen]byte) uint32 {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.readers++
	if p.uid == uid {
		return fuse.FOPEN_KEEP_CACHE
	}
	p.uid = uid
	return 0
}

// landed notes that another version of the key landed, and reports
// whether the kernel may hold pages of the inode to drop: readers are open
// (they follow the versions), or pages were kept.
func (p *pageState) landed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	held := p.readers > 0 || p.uid != [ref.UIDLen]byte{}
	p.uid = [ref.UIDLen]byte{}
	return held
}

// release counts a reader closed.
func (p *pageState) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.readers--
}

// written notes a writable open: the writer's pages, which may never be
// committed, go into the cache.
func (p *pageState) written() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.uid = [ref.UIDLen]byte{}
}

// store runs put, which puts pages of the version uid into the kernel's
// cache, if they may be there; an open that changes the version waits
// for it.
func (p *pageState) store(uid [ref.UIDLen]byte, put func()) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.uid == uid {
		put()
	}
}
