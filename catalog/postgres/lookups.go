package postgres

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lamina-bio/lamina/catalog"
)

// lookups caches the answers of ByKey, ByUID and Children, the reads a
// mount makes on every stat, open and listing, so that they cost no round trip. It
// serves only while the store's change listener (Listen) is connected and
// has heard from the server within leaseTime: every other workstation's
// commit then reaches forget by notification, and this store's own writes
// reach it from write. Without a listener (a CLI process) it never serves.
//
// Invalidation is by key: a change to key k drops ByKey answers of k, and
// Children answers of every folder above k and of k/ itself. Every write
// reports the keys whose ByKey or Children answers it changes (trash state,
// attributes and annotations included). A read may fill the cache only
// if no invalidation came between its start and its end (gen): a read
// whose snapshot predates a commit is never kept after the commit's
// notification.
type lookups struct {
	mu      sync.Mutex // guards every field
	live    bool       // the listener is connected and caught up
	contact time.Time  // when the listener last heard from the server
	gen     uint64     // bumped by every invalidation
	keys    map[string]map[int]keyAnswer
	dirs    map[string]catalog.Dir
	// uids holds ByUID answers (whole uids only), and byKey the uids held
	// for each key: a change to a version is a change to its key, so
	// forgetting the key forgets them (a rename notifies the old key too).
	uids   map[string]Version
	byKey  map[string][]string
	hits   int64
	misses int64
}

// keyAnswer is what ByKey returned: a version or a not-found error.
type keyAnswer struct {
	v   Version
	err error
}

const (
	// leaseTime bounds how long the cache trusts a silent listener: one
	// that cannot reach the server stops the cache within it.
	leaseTime = 5 * time.Second
	// heartbeat is how long the listener waits for a notification before
	// it pings the server to renew the lease.
	heartbeat = 2 * time.Second
	// maxKeys and maxDirs bound the cache; past them a random entry goes.
	maxKeys = 200_000
	maxDirs = 20_000
)

// serving reports whether answers may be taken from or put in the cache.
func (c *lookups) serving(now time.Time) bool {
	return c.live && now.Sub(c.contact) < leaseTime
}

// begin starts a read: the generation a later put must match, and whether
// the cache serves at all.
func (c *lookups) begin() (gen uint64, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen, c.serving(time.Now())
}

func (c *lookups) key(key string, n int) (keyAnswer, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.serving(time.Now()) {
		return keyAnswer{}, false
	}
	a, ok := c.keys[key][n]
	c.count(ok)
	return a, ok
}

func (c *lookups) putKey(gen uint64, key string, n int, a keyAnswer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen || !c.serving(time.Now()) {
		return
	}
	c.putLocked(key, n, a)
}

func (c *lookups) putLocked(key string, n int, a keyAnswer) {
	if len(c.keys) >= maxKeys {
		for k := range c.keys { // a random one: map order
			delete(c.keys, k)
			break
		}
	}
	if c.keys[key] == nil {
		c.keys[key] = map[int]keyAnswer{}
	}
	c.keys[key][n] = a
}

func (c *lookups) uid(uid string) (Version, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.serving(time.Now()) {
		return Version{}, false
	}
	v, ok := c.uids[uid]
	c.count(ok)
	return v, ok
}

func (c *lookups) putUID(gen uint64, v Version) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen || !c.serving(time.Now()) {
		return
	}
	if len(c.uids) >= maxKeys {
		clear(c.uids)
		clear(c.byKey)
	}
	if _, ok := c.uids[v.UID]; !ok {
		c.byKey[v.Key] = append(c.byKey[v.Key], v.UID)
	}
	c.uids[v.UID] = v
}

func (c *lookups) dir(prefix string) (catalog.Dir, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.serving(time.Now()) {
		return catalog.Dir{}, false
	}
	d, ok := c.dirs[prefix]
	c.count(ok)
	return d, ok
}

func (c *lookups) putDir(gen uint64, prefix string, d catalog.Dir) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen || !c.serving(time.Now()) {
		return
	}
	if len(c.dirs) >= maxDirs {
		for k := range c.dirs {
			delete(c.dirs, k)
			break
		}
	}
	c.dirs[prefix] = d
}

func (c *lookups) count(hit bool) {
	if hit {
		c.hits++
	} else {
		c.misses++
	}
}

// generation is the current generation: settle keeps answers only if no
// invalidation came after it.
func (c *lookups) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// settle is forget for a write that committed, which also knows the
// latest version of some of its keys (learned): they become ByKey
// answers (latest, and by number) if no invalidation came since gen, taken
// before the commit. A later commit of such a key, by this store or
// another, comes after ours; its invalidation either bumped the generation
// before this (nothing is kept) or comes after it (and drops what was
// kept). Keys not in learned are only forgotten.
func (c *lookups) settle(gen uint64, keys []string, learned []Version) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fresh := gen == c.gen && c.serving(time.Now())
	c.forgetLocked(keys)
	if !fresh {
		return
	}
	for _, v := range learned {
		c.putLocked(v.Key, 0, keyAnswer{v: v})
		c.putLocked(v.Key, v.Version, keyAnswer{v: v})
	}
}

// forget drops what changes to keys may have changed.
func (c *lookups) forget(keys []string) {
	if len(keys) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.forgetLocked(keys)
}

func (c *lookups) forgetLocked(keys []string) {
	c.gen++
	for _, k := range keys {
		if catalog.IsMarker(k) {
			continue // collections are not cached; renames and trashes list their keys too
		}
		delete(c.keys, k)
		for _, u := range c.byKey[k] {
			delete(c.uids, u)
		}
		delete(c.byKey, k)
		delete(c.dirs, k+"/")
		delete(c.dirs, "")
		for i := strings.IndexByte(k, '/'); i >= 0; i = next(k, i) {
			delete(c.dirs, k[:i+1])
		}
	}
}

// next is the index of the '/' after index i of k, or -1.
func next(k string, i int) int {
	j := strings.IndexByte(k[i+1:], '/')
	if j < 0 {
		return -1
	}
	return i + 1 + j
}

// up starts serving, empty: the listener is connected and caught up.
func (c *lookups) up() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.flush()
	c.live, c.contact = true, time.Now()
}

// down stops serving and empties the cache: the listener lost its
// connection, and changes may go unheard until it catches up.
func (c *lookups) down() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.flush()
	c.live = false
}

// heard renews the lease: the listener's connection answered.
func (c *lookups) heard() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.contact = time.Now()
}

func (c *lookups) flush() {
	c.gen++
	c.keys = map[string]map[int]keyAnswer{}
	c.dirs = map[string]catalog.Dir{}
	c.uids = map[string]Version{}
	c.byKey = map[string][]string{}
}

// LookupStats tells how many ByKey, ByUID and Children calls the lookup cache
// answered (hits) and how many went to the database while it served
// (misses), and whether it serves now.
func (s *Store) LookupStats() (hits, misses int64, serving bool) {
	s.look.mu.Lock()
	defer s.look.mu.Unlock()
	return s.look.hits, s.look.misses, s.look.serving(time.Now())
}

// cloneVersion copies the parts of v a caller could change in place, so
// that cached answers stay as they were read.
func cloneVersion(v Version) Version {
	v.Shape = slices.Clone(v.Shape)
	v.Columns = slices.Clone(v.Columns)
	if v.TrashedAt != nil {
		t := *v.TrashedAt
		v.TrashedAt = &t
	}
	return v
}

func cloneDir(d catalog.Dir) catalog.Dir {
	var files []Version
	if d.Files != nil {
		files = make([]Version, len(d.Files))
		for i, v := range d.Files {
			files[i] = cloneVersion(v)
		}
	}
	c := catalog.Dir{Files: files, Subdirs: slices.Clone(d.Subdirs), Links: slices.Clone(d.Links), Beneath: d.Beneath}
	if d.Folder != nil {
		f := *d.Folder
		c.Folder = &f
	}
	return c
}
