package fs

import (
	"strings"
	"sync"
	"sync/atomic"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
)

// heldInodes keeps the inode of a key's path while writable handles of it
// are open, and tells readers that writers hold it (openLatest reads past
// the page cache then). A latest path's inode is its key's (itemEntry), which
// commits do not move; a handle opened on a node that came to the key by a
// rename, before the kernel looked the name up again, keeps that node's
// inode at the path until it is released, since programs that compare
// stat(path) with fstat(fd) take another inode for a replaced file: SQLite
// refuses every later transaction of the connection ("attempt to write a
// readonly database"). The path shows its key's inode once the last
// writable handle is released.
type heldInodes struct {
	n  atomic.Int32 // len(m): lookups skip the lock while nothing is held
	mu sync.Mutex
	m  map[string]*heldInode
}

type heldInode struct {
	key string // the path it holds; guarded by heldInodes.mu (a rename moves it)
	ino uint64
	gen uint64 // the node's generation (retiredInodes): with ino, which node
	// apart: its writers' descriptors are on another inode, a scratch
	// file's (scratchfile.go), whose writes the path's inode does not see:
	// the kernel must not cache the path's attributes.
	apart   bool
	handles int
	moved   bool // a lookup was answered with ino instead of the key's
}

// hold counts a writable handle of key opened on the node a (apart: on
// another inode, written through it) and returns what release takes; a key
// already held keeps the inode it has.
func (h *heldInodes) hold(key string, a fusefs.StableAttr, apart bool) *heldInode {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.m == nil {
		h.m = map[string]*heldInode{}
	}
	hi := h.m[key]
	if hi == nil {
		hi = &heldInode{key: key, ino: a.Ino, gen: a.Gen, apart: apart}
		h.m[key] = hi
		h.n.Store(int32(len(h.m)))
	}
	hi.handles++
	return hi
}

// release counts a handle closed that hold gave hi. It reports the path
// that must be looked up afresh, if any: the last handle is gone and the
// kernel was told the held inode in place of the version's.
func (h *heldInodes) release(hi *heldInode) (lookAgain string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if hi.handles--; hi.handles > 0 {
		return ""
	}
	if h.m[hi.key] != hi {
		return "" // dropped: the path shows another file now
	}
	delete(h.m, hi.key)
	h.n.Store(int32(len(h.m)))
	if !hi.moved {
		return ""
	}
	return hi.key
}

// move is a rename of the file at src onto dst: the writers holding src
// hold dst now (their Files commit to dst: stage.Rename), and those of the
// file dst showed hold a file no name shows. A stat of dst by path then
// shows the writers' size and mode, as their fstat does; it showed the
// version the rename replaced.
func (h *heldInodes) move(src, dst string) {
	if !h.holding() {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	hi := h.m[src]
	delete(h.m, src)
	delete(h.m, dst)
	if hi != nil {
		hi.key = dst
		h.m[dst] = hi
	}
	h.n.Store(int32(len(h.m)))
}

// drop ends the holds of keys and of every key under the folders dirs
// (with a trailing slash): a rename or an unlink gave their paths other
// files, or none. Their handles' releases then change nothing.
func (h *heldInodes) drop(keys []string, dirs ...string) {
	if !h.holding() {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, k := range keys {
		delete(h.m, k)
	}
	for _, d := range dirs {
		for k := range h.m {
			if strings.HasPrefix(k, d) {
				delete(h.m, k)
			}
		}
	}
	h.n.Store(int32(len(h.m)))
}

// gen is the generation of the node that holds key's path, if its inode
// number is ino: a lookup answers that node, not one of the key's
// generation, which differs when the node came by a rename.
func (h *heldInodes) gen(key string, ino uint64) (uint64, bool) {
	if !h.holding() {
		return 0, false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if hi := h.m[key]; hi != nil && hi.ino == ino {
		return hi.gen, true
	}
	return 0, false
}

// apart reports whether key's writers write through another inode than
// its path's.
func (h *heldInodes) apart(key string) bool {
	if !h.holding() {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	hi := h.m[key]
	return hi != nil && hi.apart
}

// ino is the inode held at key's path, if one is.
func (h *heldInodes) ino(key string) (uint64, bool) {
	if !h.holding() {
		return 0, false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if hi := h.m[key]; hi != nil {
		return hi.ino, true
	}
	return 0, false
}

// holding reports whether any path is held: the callers on hot paths ask
// before they make a key to ask about.
func (h *heldInodes) holding() bool { return h.n.Load() != 0 }

// writing reports whether writable handles hold ino at key's path.
func (h *heldInodes) writing(key string, ino uint64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	hi := h.m[key]
	return hi != nil && hi.ino == ino
}

// apply gives e, what the path prefix+name shows, the held inode of that
// key if there is one. Every lookup and listed name passes here: the key is
// made only when something is held.
func (h *heldInodes) apply(prefix, name string, e Entry) Entry {
	if !h.holding() || !((e.Kind == KindFile && e.Latest) || e.Kind == KindPending) {
		return e
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if hi := h.m[prefix+name]; hi != nil && hi.ino != e.Ino {
		e.Ino, hi.moved = hi.ino, true
	}
	return e
}
