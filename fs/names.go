package fs

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/fnv"
	"strconv"
	"strings"
	"sync"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/ref"
)

// Name is a parsed name of the namespace: base, optionally "@vN", optionally
// ".meta".
type Name struct {
	Base    string
	Version int  // 0: the latest
	Meta    bool // the JSON sidecar
}

// ParseName splits a hidden name: "a.csv@v2.meta" is {a.csv, 2, true}. A
// plain name comes back as {name, 0, false}. Only the canonical spelling of
// a version resolves ("@v2", not "@v02"), so each version has one name.
func ParseName(name string) Name {
	n := Name{Base: name}
	if b, ok := strings.CutSuffix(n.Base, ".meta"); ok && b != "" {
		n.Base, n.Meta = b, true
	}
	n.Base, n.Version = cutVersion(n.Base)
	return n
}

// cutVersion splits "name@vN" into name and N; N is 0 for a name without
// a canonical "@vN" ("@v2", not "@v02").
func cutVersion(s string) (string, int) {
	i := strings.LastIndex(s, "@v")
	if i <= 0 {
		return s, 0
	}
	digits := s[i+2:]
	if v, err := strconv.Atoi(digits); err == nil && v > 0 && strconv.Itoa(v) == digits {
		return s[:i], v
	}
	return s, 0
}

// String is the name back.
func (n Name) String() string {
	s := n.Base
	if n.Version > 0 {
		s += "@v" + strconv.Itoa(n.Version)
	}
	if n.Meta {
		s += ".meta"
	}
	return s
}

// Sidecar is the JSON ".meta" shows for a version without annotations
// that no run wrote.
func Sidecar(v catalog.Version) []byte { return SidecarWith(v, catalog.Annotations{}, nil) }

// SidecarWith is the JSON a ".meta" name shows: what `lamina show --format
// json` prints (the version, and "annotations" when it has any), plus
// "lineage" (null for a version no run wrote).
func SidecarWith(v catalog.Version, a catalog.Annotations, lineage any) []byte {
	var ann *catalog.Annotations
	if !a.IsZero() {
		a.UID = "" // the version's uid is already there
		ann = &a
	}
	b, err := json.MarshalIndent(struct {
		catalog.ShownVersion
		Annotations *catalog.Annotations `json:"annotations,omitempty"`
		Lineage     any                  `json:"lineage"`
	}{ShownVersion: catalog.Shown(v), Annotations: ann, Lineage: lineage}, "", "  ")
	if err != nil {
		panic(err) // a Version always marshals
	}
	return append(b, '\n')
}

// sidecar renders v's sidecar as it is now: annotations change after a
// version is written, and so does the lineage of a run still running.
func (ns *Namespace) sidecar(ctx context.Context, v catalog.Version) ([]byte, error) {
	a, err := ns.anns.get(ctx, ns.cat, v)
	if err != nil {
		return nil, err
	}
	var lineage any
	if v.Run != "" && ns.opts.Lineage != nil {
		lineage = ns.opts.Lineage(ctx, v)
	}
	return SidecarWith(v, a, lineage), nil
}

// metaEntry is the entry of v's sidecar at name; its size is exact.
func (ns *Namespace) metaEntry(ctx context.Context, name string, v catalog.Version) (Entry, error) {
	b, err := ns.sidecar(ctx, v)
	if err != nil {
		return Entry{}, err
	}
	return Entry{Name: name, Kind: KindMeta, V: &v, Size: int64(len(b)), Mode: 0o444, Mtime: v.Mtime, Ino: Ino(tagMeta, v.UID)}, nil
}

// annCache keeps versions' annotations for sidecars, dropped by key when a
// change notification names the key (an annotate reports its version's
// key). A fetch that raced with a drop is not kept (gen).
type annCache struct {
	mu  sync.Mutex // guards m and gen
	m   map[string]annotated
	gen uint64
}

type annotated struct {
	key string
	a   catalog.Annotations
}

// maxAnnotated bounds annCache; past it the cache starts over.
const maxAnnotated = 4096

func (c *annCache) get(ctx context.Context, cat Catalog, v catalog.Version) (catalog.Annotations, error) {
	c.mu.Lock()
	hit, ok := c.m[v.UID]
	gen := c.gen
	c.mu.Unlock()
	if ok {
		return hit.a, nil
	}
	a, err := cat.Annotations(ctx, v.UID)
	if errors.Is(err, catalog.ErrNotFound) {
		a, err = catalog.Annotations{}, nil // purged since: nothing to show
	}
	if err != nil {
		return catalog.Annotations{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen == gen {
		if c.m == nil || len(c.m) >= maxAnnotated {
			c.m = map[string]annotated{}
		}
		c.m[v.UID] = annotated{key: v.Key, a: a}
	}
	return a, nil
}

// drop forgets the annotations of every version of keys.
func (c *annCache) drop(keys map[string]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for uid, e := range c.m {
		if keys[e.key] {
			delete(c.m, uid)
		}
	}
}

// sidecarInodes are the sidecar inodes the kernel knows, by version uid
// (one inode per uid: every name of a version's sidecar shares it), so
// that a change of annotations can drop their cached pages and sizes.
//
// A lookup makes a new node, which go-fuse drops for the one it holds
// when the inode is known already (looked up by another name), so a
// lookup only tracks a uid not tracked yet; GETATTR and OPEN, which go to
// the node go-fuse holds, correct the entry (use).
type sidecarInodes struct {
	mu sync.Mutex // guards m and served
	m  map[string]*node
	// served is a hash of the bytes each sidecar node was last opened
	// with: its pages are kept only while they stay the same
	// (openSidecar). Here rather than in the node, which every file has.
	served map[*node]uint64
}

// track records n, from a lookup, unless its uid is tracked.
func (s *sidecarInodes) track(n *node) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[n.e.V.UID]; !ok {
		s.set(n)
	}
}

// use records n, the node of a GETATTR or OPEN.
func (s *sidecarInodes) use(n *node) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m[n.e.V.UID] != n {
		s.set(n)
	}
}

func (s *sidecarInodes) set(n *node) {
	if s.m == nil {
		s.m = map[string]*node{}
	}
	s.m[n.e.V.UID] = n
}

func (s *sidecarInodes) forget(n *node) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m[n.e.V.UID] == n {
		delete(s.m, n.e.V.UID)
	}
	delete(s.served, n)
}

// serve records that n was opened with bytes of hash sum, and reports
// whether its last open served the same.
func (s *sidecarInodes) serve(n *node, sum uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.served == nil {
		s.served = map[*node]uint64{}
	}
	old, ok := s.served[n]
	s.served[n] = sum
	return ok && old == sum
}

// of returns the sidecar nodes of the versions of keys.
func (s *sidecarInodes) of(keys map[string]bool) []*node {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*node
	for _, n := range s.m {
		if keys[n.e.V.Key] {
			out = append(out, n)
		}
	}
	return out
}

var _ fusefs.NodeOnForgetter = (*node)(nil)

// OnForget untracks a sidecar inode, or a retired latest path's (inode.go),
// that the kernel forgot.
func (n *node) OnForget() {
	if n.e.Kind == KindMeta {
		n.m.sidecars.forget(n)
	}
	if n.pg != nil {
		n.m.retired.forgotten(n)
	}
}

// sidecarsChanged drops what is cached of the sidecars of keys: the
// namespace's annotations, the kernel's pages and attributes. Call it
// off the FUSE request handlers (the invalidator).
func (m *Mount) sidecarsChanged(keys []string) {
	if len(keys) == 0 {
		return
	}
	set := make(map[string]bool, len(keys))
	for _, k := range keys {
		set[k] = true
	}
	m.ns.anns.drop(set)
	for _, n := range m.sidecars.of(set) {
		n.NotifyContent(0, 0)
	}
}

// openSidecar opens a sidecar with its bytes as they are now. The kernel
// keeps the pages it has of them only if they are the bytes this inode
// served last: an open without FOPEN_KEEP_CACHE drops them, at once, where
// an invalidation from the notifier would come a moment later.
func (n *node) openSidecar(ctx context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	n.m.sidecars.use(n)
	b, err := n.m.ns.sidecar(ctx, n.m.ns.fresh(ctx, *n.e.V))
	if err != nil {
		return nil, 0, n.errno("open", err)
	}
	h := fnv.New64a()
	h.Write(b)
	if !n.m.sidecars.serve(n, h.Sum64()) {
		flags &^= fuse.FOPEN_KEEP_CACHE
	}
	return &handle{meta: b}, flags, 0
}

// fresh is v as the catalog has it now: the version a node was made with
// may have been touched, chmodded or renamed since (a sidecar's node lives
// as long as the kernel holds its inode, one per version).
func (ns *Namespace) fresh(ctx context.Context, v catalog.Version) catalog.Version {
	if now, err := ns.cat.ByUID(ctx, v.UID); err == nil {
		return now
	}
	return v // purged: what it was
}

// showsLatest reports whether v is its key's latest version, whose mtime
// and mode touch and chmod change (its sidecar with them).
func (ns *Namespace) showsLatest(ctx context.Context, v catalog.Version) bool {
	prefix, name := splitKey(v.Key)
	l, err := ns.listing(ctx, prefix)
	if err != nil {
		return true
	}
	it, ok := l.file(name)
	return ok && string(it.uid[:]) == v.UID
}

// Inode tags: what kind of thing an inode number names.
const (
	tagDir         = "d"  // a key prefix
	tagLatest      = "l"  // a file's latest path: its key (latestIno)
	tagVersion     = "v"  // a file shown at key@vN
	tagMeta        = "m"  // a sidecar (the same bytes at name.meta and name@vN.meta)
	tagFolderLat   = "fl" // inside a folder artifact at its key
	tagFolderVer   = "fv" // inside a folder artifact at key@vN
	tagFolderLatD  = "dl"
	tagFolderVerD  = "dv"
	firstFreeInode = 2 // 1 is the root
)

// latestIno is the inode number of a file's latest path, and of a new key
// being written: one per key, whichever version it shows (itemEntry).
func latestIno(key string) uint64 { return Ino(tagLatest, key) }

// Ino derives a stable inode number from a tag and what the name shows.
func Ino(tag string, parts ...string) uint64 {
	s := tag + "\x00" + strings.Join(parts, "\x00")
	d := ref.Sum([]byte(s))
	n := binary.LittleEndian.Uint64(d[:8])
	if n < firstFreeInode {
		n += firstFreeInode
	}
	return n
}
