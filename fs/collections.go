package fs

import (
	"context"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/ref"
)

// The read-only tree at the top of a mount:
//
//	/.lamina/collections/NAME/KEY…     the latest version of collection NAME: its members laid out by key
//	/.lamina/collections/NAME@vN/KEY…  version N of it (resolves on lookup, not listed)
//
// A member shows at its key as key@vN does (same inode, attributes, read
// path and ".meta" sidecar). When a collection holds several versions of
// one key, the highest shows at the key and each other one at key@vN,
// listed; where a key is also a folder of other members, the folder wins
// and the file shows at key@vN only.
//
// "/.lamina" resolves on lookup but is not listed (as ZFS hides ".zfs"),
// so find, du and backups do not walk every collection twice. No key may
// live under it (ref.CheckKey), and the mount refuses to make one (EROFS).

// ViewRoot is the name of the read-only tree at the top of a mount.
const ViewRoot = ref.ViewRoot

const viewCollections = "collections"

// Inode tags of the view.
const (
	tagView = "x" // /.lamina and /.lamina/collections, by path
	tagColl = "c" // a folder of a collection version: name, version, folder
)

// CollectionFileName is the name collection name has under
// /.lamina/collections. Collection names may hold any character but NUL
// and newline, so '%' and '/' are percent-encoded ("%25", "%2F"), as are
// the dots of "." and ".." and the '@' of a name ending in "@v<digits>"
// (NAME@vN addresses versions): every collection gets one file name, and
// decoding it gives the name back.
func CollectionFileName(name string) string {
	if name == "." || name == ".." {
		return strings.Repeat("%2E", len(name))
	}
	s := strings.NewReplacer("%", "%25", "/", "%2F").Replace(name)
	if base, n := cutVersion(s); n > 0 {
		s = base + "%40" + s[len(base)+1:]
	}
	return s
}

// CollectionName is the collection a file name under /.lamina/collections
// names; ok is false unless file is CollectionFileName of it.
func CollectionName(file string) (name string, ok bool) {
	name, err := url.PathUnescape(file)
	if err != nil || name == "" || CollectionFileName(name) != file {
		return "", false
	}
	return name, true
}

// maxFileName is the longest name a Linux file system entry may have; a
// collection whose encoded name is longer is not listed.
const maxFileName = 255

// viewCache holds what the view read from the catalog: the list of
// collections until a change drops it, and the trees of collection
// versions, which change only when a member is deleted for good (Purge
// tells the mount of its key: dropMembersOf).
type viewCache struct {
	mu    sync.Mutex           // guards list and trees
	list  *collList            // nil: not read since the last change
	trees map[string]*collTree // name "\x00" version → tree
}

// collList is the latest version of every collection.
type collList struct {
	latest map[string]catalog.Collection // by name
	mtime  time.Time                     // the newest one's creation
}

// maxTrees bounds the collection trees kept; past it the cache starts over.
const maxTrees = 32

func treeID(name string, version int) string { return name + "\x00" + strconv.Itoa(version) }

func (c *viewCache) dropList() {
	c.mu.Lock()
	c.list = nil
	c.mu.Unlock()
}

// dropMembersOf drops the trees that show a version of one of keys and
// returns them.
func (c *viewCache) dropMembersOf(keys []string) []*collTree {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*collTree
	for id, t := range c.trees {
		if t.holdsAny(keys) {
			delete(c.trees, id)
			out = append(out, t)
		}
	}
	return out
}

// dropUnder drops the trees that show a version under one of the
// folders (keys without "/") and returns them.
func (c *viewCache) dropUnder(folders []string) []*collTree {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*collTree
	for id, t := range c.trees {
		if t.holdsUnder(folders) {
			delete(c.trees, id)
			out = append(out, t)
		}
	}
	return out
}

// holdsUnder reports whether t shows a version under one of folders.
func (t *collTree) holdsUnder(folders []string) bool {
	for _, f := range folders {
		for prefix := range t.dirs {
			if strings.HasPrefix(prefix, f+"/") {
				return true
			}
		}
	}
	return false
}

func (t *collTree) holdsAny(keys []string) bool {
	for _, k := range keys {
		prefix, name := "", k
		if i := strings.LastIndexByte(k, '/'); i >= 0 {
			prefix, name = k[:i+1], k[i+1:]
		}
		if d := t.dirs[prefix]; d != nil && len(d.byName[name]) > 0 {
			return true
		}
	}
	return false
}

func (c *viewCache) tree(name string, version int) *collTree {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.trees[treeID(name, version)]
}

func (c *viewCache) putTree(t *collTree) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.trees == nil || len(c.trees) >= maxTrees {
		c.trees = map[string]*collTree{}
	}
	c.trees[treeID(t.name, t.version)] = t
}

// collTree is one collection version laid out by key.
type collTree struct {
	name    string
	version int
	created time.Time
	dirs    map[string]*collDir // "" or "a/b/" → what it holds
}

type collDir struct {
	subdirs map[string]bool
	files   map[string]*catalog.Version   // listed file names → the member shown there
	byName  map[string][]*catalog.Version // a key's last segment → its members, highest version first
	names   []string                      // listed names, sorted
}

func (t *collTree) dir(prefix string) *collDir {
	d := t.dirs[prefix]
	if d == nil {
		d = &collDir{subdirs: map[string]bool{}, files: map[string]*catalog.Version{}, byName: map[string][]*catalog.Version{}}
		t.dirs[prefix] = d
	}
	return d
}

func buildCollTree(c catalog.Collection) *collTree {
	t := &collTree{name: c.Name, version: c.Version, created: c.CreatedAt, dirs: map[string]*collDir{}}
	t.dir("")
	byKey := make(map[string][]*catalog.Version, len(c.Versions))
	for i := range c.Versions {
		v := &c.Versions[i] // pointers: a Version is a few hundred bytes
		byKey[v.Key] = append(byKey[v.Key], v)
		for j := strings.IndexByte(v.Key, '/'); j >= 0; j = next(v.Key, j) {
			prefix, name := splitKey(v.Key[:j])
			t.dir(prefix).subdirs[name] = true
			t.dir(v.Key[:j+1])
		}
	}
	for key, vs := range byKey {
		slices.SortFunc(vs, func(a, b *catalog.Version) int { return b.Version - a.Version })
		prefix, name := splitKey(key)
		d := t.dirs[prefix]
		d.byName[name] = vs
		for i, v := range vs {
			if i == 0 && !d.subdirs[name] {
				d.files[name] = v
			} else {
				d.files[name+"@v"+strconv.Itoa(v.Version)] = v
			}
		}
	}
	for _, d := range t.dirs {
		for name := range d.subdirs {
			d.names = append(d.names, name)
		}
		for name := range d.files {
			d.names = append(d.names, name)
		}
		sort.Strings(d.names)
	}
	return t
}

// next is the index of the '/' after the one at i in key, or -1.
func next(key string, i int) int {
	if j := strings.IndexByte(key[i+1:], '/'); j >= 0 {
		return i + 1 + j
	}
	return -1
}

// member resolves a hidden name of d: base@vN, base.meta, base@vN.meta.
func (d *collDir) member(n Name) (*catalog.Version, bool) {
	if n.Version == 0 {
		v, ok := d.files[n.Base]
		return v, ok
	}
	for _, v := range d.byName[n.Base] {
		if v.Version == n.Version {
			return v, true
		}
	}
	return nil, false
}

// hideViewRoot leaves a key named ViewRoot out of the top listing: the
// name shows the view.
func hideViewRoot(prefix string, d *catalog.Dir) {
	if prefix != "" {
		return
	}
	d.Subdirs = slices.DeleteFunc(d.Subdirs, func(s string) bool { return s == ViewRoot })
	d.Files = slices.DeleteFunc(d.Files, func(v catalog.Version) bool { return v.Key == ViewRoot })
	d.Links = slices.DeleteFunc(d.Links, func(l catalog.Link) bool { return l.Key == ViewRoot })
}

// viewRoot is the entry of /.lamina.
func (ns *Namespace) viewRoot() Entry {
	return Entry{Name: ViewRoot, Kind: KindView, Latest: true, Mode: 0o555, Mtime: ns.started, Ino: Ino(tagView, "")}
}

func (ns *Namespace) collectionsEntry(mtime time.Time) Entry {
	return Entry{Name: viewCollections, Kind: KindView, Prefix: viewCollections + "/", Latest: true, Mode: 0o555,
		Mtime: mtime, Ino: Ino(tagView, viewCollections+"/")}
}

// collEntry is the entry of the folder prefix of collection tree t; latest
// when it is reached as NAME rather than NAME@vN.
func collEntry(name string, t *collTree, prefix string, latest bool) Entry {
	return Entry{Name: name, Kind: KindView, Coll: t, Prefix: prefix, Latest: latest, Mode: 0o555, Mtime: t.created,
		Ino: Ino(tagColl, t.name, strconv.Itoa(t.version), prefix)}
}

// viewMtime is the mtime of view folder e now: the collections folder's
// is the newest collection's creation, so that the kernel, seeing it
// change, drops its cached listing (even an empty one, which no page
// invalidation reaches).
func (ns *Namespace) viewMtime(ctx context.Context, e Entry) time.Time {
	if e.Coll == nil && e.Prefix == viewCollections+"/" {
		if l, err := ns.collections(ctx); err == nil {
			return l.mtime
		}
	}
	return e.Mtime
}

// collections is the list of collections, read from the catalog once per
// change.
func (ns *Namespace) collections(ctx context.Context) (*collList, error) {
	ns.views.mu.Lock()
	l := ns.views.list
	ns.views.mu.Unlock()
	if l != nil {
		return l, nil
	}
	cs, err := ns.cat.Collections(ctx)
	if err != nil {
		return nil, err
	}
	l = &collList{latest: make(map[string]catalog.Collection, len(cs)), mtime: ns.started}
	for _, c := range cs {
		c.Members = nil // the tree has them; the list needs name and version
		l.latest[c.Name] = c
		if c.CreatedAt.After(l.mtime) {
			l.mtime = c.CreatedAt
		}
	}
	ns.views.mu.Lock()
	ns.views.list = l
	ns.views.mu.Unlock()
	return l, nil
}

// collTree returns version n of collection name (the latest for 0).
func (ns *Namespace) collTree(ctx context.Context, name string, n int) (*collTree, error) {
	if n > 0 {
		if t := ns.views.tree(name, n); t != nil {
			return t, nil
		}
	}
	c, err := ns.cat.Collection(ctx, name, n)
	if err != nil {
		return nil, err
	}
	t := buildCollTree(c)
	ns.views.putTree(t)
	return t, nil
}

func (ns *Namespace) lookupView(ctx context.Context, dir Entry, name string) (Entry, error) {
	switch {
	case dir.Coll != nil:
		return ns.lookupInCollection(ctx, dir, name)
	case dir.Prefix == "" && name == viewCollections:
		mtime := ns.started
		if l, err := ns.collections(ctx); err == nil {
			mtime = l.mtime
		}
		return ns.collectionsEntry(mtime), nil
	case dir.Prefix == "":
		return Entry{}, errNotFound
	}
	return ns.lookupCollection(ctx, name)
}

// lookupCollection resolves NAME or NAME@vN in /.lamina/collections.
func (ns *Namespace) lookupCollection(ctx context.Context, file string) (Entry, error) {
	base, n := cutVersion(file)
	name, ok := CollectionName(base)
	if !ok {
		return Entry{}, errNotFound
	}
	version, listed := n, true
	if n == 0 {
		l, err := ns.collections(ctx)
		if err != nil {
			return Entry{}, err
		}
		var c catalog.Collection
		c, listed = l.latest[name]
		version = c.Version // 0 when not listed: ask for the latest
	}
	t, err := ns.collTree(ctx, name, version)
	if err != nil {
		return Entry{}, err
	}
	if !listed {
		// Made since the list was read, its notice not here yet (or
		// lost): list afresh next time.
		ns.views.dropList()
	}
	return collEntry(file, t, "", n == 0), nil
}

// liveTree is the tree of t's collection version as the cache holds it
// now: a node keeps the tree of its lookup, which a rename of a member
// (membersChanged, renamedMembers) drops, and the kernel may ask that node
// again before it forgets it.
func (ns *Namespace) liveTree(ctx context.Context, t *collTree) (*collTree, error) {
	if c := ns.views.tree(t.name, t.version); c != nil {
		return c, nil
	}
	return ns.collTree(ctx, t.name, t.version)
}

func (ns *Namespace) lookupInCollection(ctx context.Context, dir Entry, name string) (Entry, error) {
	t, err := ns.liveTree(ctx, dir.Coll)
	if err != nil {
		return Entry{}, err
	}
	dir.Coll = t
	d := dir.Coll.dirs[dir.Prefix]
	if d == nil {
		return Entry{}, errNotFound
	}
	if d.subdirs[name] {
		return collEntry(name, dir.Coll, dir.Prefix+name+"/", false), nil
	}
	if v, ok := d.files[name]; ok {
		return ns.versionEntry(name, v), nil
	}
	pn := ParseName(name)
	v, ok := d.member(pn)
	if !ok || pn.Base == name {
		return Entry{}, errNotFound
	}
	if pn.Meta {
		return ns.metaEntry(ctx, name, *v)
	}
	return ns.versionEntry(name, v), nil
}

func (ns *Namespace) readView(ctx context.Context, dir Entry) ([]Entry, error) {
	switch {
	case dir.Coll != nil:
		return ns.readCollection(ctx, dir)
	case dir.Prefix == "":
		mtime := ns.started
		if l, err := ns.collections(ctx); err == nil {
			mtime = l.mtime
		}
		return []Entry{ns.collectionsEntry(mtime)}, nil
	}
	l, err := ns.collections(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Entry, 0, len(l.latest))
	for name, c := range l.latest {
		file := CollectionFileName(name)
		if len(file) > maxFileName {
			continue
		}
		// Enough for a listing (name, inode, type); a lookup makes the
		// entry with its tree.
		out = append(out, Entry{Name: file, Kind: KindView, Prefix: viewCollections + "/" + file + "/", Latest: true,
			Mode: 0o555, Mtime: c.CreatedAt, Ino: Ino(tagColl, name, strconv.Itoa(c.Version), "")})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (ns *Namespace) readCollection(ctx context.Context, dir Entry) ([]Entry, error) {
	t, err := ns.liveTree(ctx, dir.Coll)
	if err != nil {
		return nil, err
	}
	dir.Coll = t
	d := dir.Coll.dirs[dir.Prefix]
	if d == nil {
		return nil, syscall.ENOENT
	}
	out := make([]Entry, 0, len(d.names))
	add := func(name string, v *catalog.Version) error {
		out = append(out, ns.versionEntry(name, v))
		if ns.opts.ShowMeta {
			me, err := ns.metaEntry(ctx, name+".meta", *v)
			if err != nil {
				return err
			}
			out = append(out, me)
		}
		return nil
	}
	for _, name := range d.names {
		if d.subdirs[name] {
			out = append(out, collEntry(name, dir.Coll, dir.Prefix+name+"/", false))
			continue
		}
		v := d.files[name]
		if err := add(name, v); err != nil {
			return nil, err
		}
		if _, plain := d.byName[name]; plain && ns.opts.ShowVersions {
			if err := add(name+"@v"+strconv.Itoa(v.Version), v); err != nil {
				return nil, err
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// changed applies a change notification: keys go to the namespace and the
// kernel (with their sidecars: an annotate reports its version's key), new
// collection versions to /.lamina/collections. It runs on the invalidator.
func (m *Mount) changed(changes []string) {
	var keys, colls []string
	for _, c := range changes {
		if name, ok := catalog.ChangedCollection(c); ok {
			colls = append(colls, name)
		} else if !catalog.IsMarker(c) {
			keys = append(keys, c)
		}
	}
	m.followElsewhere(changes) // held.go
	if len(keys) > 0 {
		for _, c := range m.ns.Changed(context.Background(), keys) {
			m.invalidate(c)
		}
		m.sidecarsChanged(keys) // names.go
		m.membersChanged(keys)
	}
	if len(colls) > 0 {
		m.collectionsChanged(colls)
	}
}

// collectionsChanged drops the list of collections and the kernel's
// entries of the named ones: NAME now shows a new version.
func (m *Mount) collectionsChanged(names []string) {
	m.ns.views.dropList()
	view := m.root.EmbeddedInode().GetChild(ViewRoot)
	if view == nil {
		return // the kernel never looked inside
	}
	dir := view.GetChild(viewCollections)
	if dir == nil {
		return
	}
	dir.NotifyContent(0, 0) // the cached listing and attributes
	for _, name := range names {
		dir.NotifyEntry(CollectionFileName(name))
	}
}

// membersChanged drops the collection trees that show a version of one of
// keys (deleted for good, it is no member any more) and the kernel's
// entries of those collections, so that the view looks them up afresh.
func (m *Mount) membersChanged(keys []string) {
	m.treesDropped(m.ns.views.dropMembersOf(keys))
}

// renamedMembers is written for a rename in this mount of the files keys,
// or of the folders: the collection trees that show a version there go,
// as they lay out their versions by key (other mounts learn of it by
// changed: membersChanged). The kernel is told from another goroutine,
// not the FUSE request's.
func (m *Mount) renamedMembers(keys, folders []string) {
	trees := m.ns.views.dropMembersOf(keys)
	if len(folders) > 0 {
		trees = append(trees, m.ns.views.dropUnder(folders)...)
	}
	if len(trees) == 0 {
		return
	}
	// The kernel's cached listings and attributes of their folders go
	// now, before the rename returns (an inode's invalidation takes no
	// folder lock: as dropDerived, safe in a request); their entries from
	// another goroutine.
	if dir := m.collectionsInode(); dir != nil {
		var drop func(in *fusefs.Inode)
		drop = func(in *fusefs.Inode) { // the kernel's tree: finite, no cycles
			if !in.IsDir() {
				in.NotifyContent(-1, 0)
				return
			}
			in.NotifyContent(0, 0)
			for _, c := range in.Children() {
				drop(c)
			}
		}
		for _, t := range trees {
			file := CollectionFileName(t.name)
			for _, name := range []string{file, file + "@v" + strconv.Itoa(t.version)} {
				if in := dir.GetChild(name); in != nil {
					drop(in)
				}
			}
		}
	}
	go m.treesDropped(trees)
}

// collectionsInode is the kernel's inode of /.lamina/collections, nil if
// the kernel never looked there.
func (m *Mount) collectionsInode() *fusefs.Inode {
	view := m.root.EmbeddedInode().GetChild(ViewRoot)
	if view == nil {
		return nil
	}
	return view.GetChild(viewCollections)
}

// treesDropped drops the kernel's entries of the collections whose trees
// were dropped, so that the view looks them up afresh.
func (m *Mount) treesDropped(trees []*collTree) {
	if len(trees) == 0 {
		return
	}
	dir := m.collectionsInode()
	if dir == nil {
		return
	}
	for _, t := range trees {
		file := CollectionFileName(t.name)
		dir.NotifyEntry(file)
		dir.NotifyEntry(file + "@v" + strconv.Itoa(t.version))
	}
}
