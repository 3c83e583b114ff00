package fs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/ref"
	"github.com/lamina-bio/lamina/stage"
)

// Catalog is what the namespace reads from the catalog.
type Catalog interface {
	Children(ctx context.Context, prefix string) (catalog.Dir, error)
	ByKey(ctx context.Context, key string, n int) (catalog.Version, error)
	ByUID(ctx context.Context, uid string) (catalog.Version, error) // Namespace.Full
	Versions(ctx context.Context, key string, trash bool) ([]catalog.Version, error)
	// For sidecars and /.lamina/collections (names.go, collections.go).
	Annotations(ctx context.Context, uid string) (catalog.Annotations, error)
	Collections(ctx context.Context) ([]catalog.Collection, error)
	Collection(ctx context.Context, name string, n int) (catalog.Collection, error)
}

// Content is what the namespace reads from the content store; *cache.Store
// provides it.
type Content interface {
	LoadManifest(ctx context.Context, r cache.Ref) (*cache.Manifest, error)
	ReadChunk(ctx context.Context, c cache.Chunk, dst []byte) ([]byte, error)
}

// Kind is what an Entry is.
type Kind uint8

const (
	KindDir        Kind = iota // a key prefix (the root is the empty prefix)
	KindFile                   // a file artifact's version
	KindMeta                   // a version's JSON sidecar
	KindFolder                 // a directory inside a folder artifact (its top too)
	KindFolderFile             // a file inside a folder artifact
	KindLink                   // a symbolic link (write.go)
	KindPending                // a new key being written, not yet committed (write.go)
	KindView                   // a directory of the read-only /.lamina tree (collections.go)
)

// Entry is one name of the namespace and what it shows. Entries are values:
// an Entry for a version or a sidecar never changes. Every inode the kernel
// holds keeps one (node.go), so fields only some kinds use sit behind
// pointers.
type Entry struct {
	Name   string
	Prefix string // KindDir: the key prefix, "" or ending in "/"
	Key    string // KindLink, KindPending, a latest KindFile: the key
	// V is the version shown, for every kind but KindDir; nil for a file or
	// folder artifact made from a listing, which keeps only what stat shows:
	// Namespace.Full reads the rest (by uid) when it is needed.
	V      *catalog.Version
	in     *inFolder // KindFolder, KindFolderFile: where in the folder artifact
	Coll   *collTree // KindView in a collection: its tree (Prefix: the folder in it; collections.go)
	Target string    // KindLink
	Size   int64
	Mtime  time.Time
	Ino    uint64
	// uid is the version a KindFile or KindFolder shows (also when V is
	// nil). Full reads it by uid, not key and number: a rename keeps the
	// uid, and the kernel keeps the inode (and so this Entry) at the new
	// name until it looks the name up again, but not the key.
	uid    [ref.UIDLen]byte
	Mode   uint32 // permission bits
	Kind   Kind
	Latest bool // reached through the key rather than key@vN
	// Unlisted: a KindDir whose listing is not read yet, so Mtime (the
	// newest of its files) is not known either.
	Unlisted bool
}

// inFolder is where a KindFolder or KindFolderFile entry is inside its
// folder artifact.
type inFolder struct {
	path string      // "" is the artifact's top
	file *cache.File // KindFolderFile
}

// Path is the path inside a folder artifact of a KindFolder or
// KindFolderFile entry ("" is its top).
func (e Entry) Path() string {
	if e.in == nil {
		return ""
	}
	return e.in.path
}

// IsDir reports whether the entry is a directory.
func (e Entry) IsDir() bool { return e.Kind == KindDir || e.Kind == KindFolder || e.Kind == KindView }

// Immutable reports whether what the name shows can never change (a version,
// a sidecar of a version, a file of a folder version): the kernel may cache
// it for as long as it likes.
func (e Entry) Immutable() bool {
	return e.Kind != KindDir && !e.Latest && e.Kind != KindLink && e.Kind != KindPending
}

// Options choose what the namespace shows.
type Options struct {
	ShowVersions bool // list name@vN in directories (they always resolve)
	ShowMeta     bool // list name.meta (and name@vN.meta) in directories
	// MaxListed bounds the directory entries kept in memory across all
	// cached listings; 0 means 250,000.
	MaxListed int
	// Lineage returns the "lineage" field of the sidecar of a version a
	// run wrote (Tracker.Sidecar); nil shows null.
	Lineage func(ctx context.Context, v catalog.Version) any
}

// Namespace answers lookups and listings from the catalog, caching one
// listing per directory until Changed drops it. It is safe for concurrent
// use.
type Namespace struct {
	cat     Catalog
	content Content
	opts    Options
	started time.Time // mtime of directories without files
	// gen counts the changes of what lookups answer (a listing dropped,
	// read, or edited in place): a following reader looks its key up
	// again only when it moved, not at every READ.
	gen atomic.Uint64

	st *stage.Stage // the write side; nil for a read-only mount

	mu       sync.Mutex // guards listings, listed, loads, trees
	listings map[string]*listing
	listed   int
	loads    map[string]*load // listings being read from the catalog
	trees    map[string]*folderTree

	anns  annCache  // annotations shown in sidecars (names.go)
	views viewCache // collections under /.lamina (collections.go)
}

// load is a listing being read from the catalog. Lookups of the same
// folder meanwhile wait for it rather than read it again. A change of the
// folder during the read (drop) makes it stale: its callers, which asked
// before the change, get it, but it is not cached, because it may lack
// what the change made (a file renamed in while the catalog was read).
type load struct {
	done  chan struct{} // closed when l and err are set
	l     *listing
	err   error
	stale bool // guarded by Namespace.mu
	ahead bool // read ahead of a walk (readAhead), not asked for
}

// listing is a directory's cached catalog listing.
type listing struct {
	// mu guards files and mtime once the listing is in
	// Namespace.listings: a commit adds to them in place (put), so that
	// creating n files in a folder costs O(n log n), not O(n²) copies.
	mu      sync.RWMutex
	files   []item // sorted by name
	subdirs map[string]bool
	dirs    []string // sorted
	mtime   time.Time
	// base is the mtime with no files (the folder record's time, or one
	// from beneath: newListing); fixed says a touch set mtime, which
	// files then leave alone; mode is the folder's permission bits.
	base  time.Time
	fixed bool
	mode  uint32
	links map[string]catalog.Link
	ahead bool // read ahead and not used yet; guarded by Namespace.mu
}

// item is what a listing keeps of a key's latest version: what lookups,
// stat and readdir show (~70 bytes where a whole catalog.Version took
// ~400); the rest is read on demand (Namespace.Full).
type item struct {
	name   string
	uid    [ref.UIDLen]byte
	n      int32 // version number
	mode   uint32
	size   int64
	mtime  int64 // Unix nanoseconds; noMtime for none
	folder bool
}

// noMtime is the mtime of an item whose version has none (a zero
// time.Time). Not 0: that is the epoch, an mtime like any other (touch -d
// @0, the files of a reproducible build).
const noMtime = math.MinInt64

func itemOf(name string, v *catalog.Version) item {
	it := item{name: name, n: int32(v.Version), mode: v.Mode, size: v.Size, folder: v.Kind == cache.KindFolder, mtime: noMtime}
	if !v.Mtime.IsZero() {
		it.mtime = v.Mtime.UnixNano()
	}
	copy(it.uid[:], v.UID)
	return it
}

// modTime is the item's mtime.
func (it item) modTime() time.Time {
	if it.mtime == noMtime {
		return time.Time{}
	}
	return time.Unix(0, it.mtime)
}

// find returns the index of name in l.files, or where it would go. Callers
// hold l.mu.
func (l *listing) find(name string) (int, bool) {
	return slices.BinarySearchFunc(l.files, name, func(it item, name string) int { return strings.Compare(it.name, name) })
}

// file is the latest version of name in the listing.
func (l *listing) file(name string) (item, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if i, ok := l.find(name); ok {
		return l.files[i], true
	}
	return item{}, false
}

// put records v as the latest version of its name, unless a later version
// of the same artifact is there already (commits may report out of order).
// It reports whether the name is new to the listing.
func (l *listing) put(name string, v *catalog.Version) (added bool) {
	it := itemOf(name, v)
	l.mu.Lock()
	defer l.mu.Unlock()
	i, ok := l.find(name)
	switch {
	case ok && string(l.files[i].uid[:ref.StemLen]) == string(it.uid[:ref.StemLen]) && l.files[i].n > it.n:
		return false // a later commit of the key got here first
	case ok:
		was := l.files[i].mtime
		l.files[i] = it
		if was == l.mtime.UnixNano() && it.mtime < was { // touched back
			l.renewMtime()
		}
	default:
		l.files = slices.Insert(l.files, i, it)
	}
	if v.Mtime.After(l.mtime) && !l.fixed {
		l.mtime = v.Mtime
	}
	return !ok
}

// renewMtime sets the listing's mtime to its newest file's, as newListing
// does, or to its base when no file has one; one a touch set stays.
// Callers hold l.mu.
func (l *listing) renewMtime() {
	if l.fixed {
		return
	}
	newest := int64(noMtime)
	for _, it := range l.files {
		newest = max(newest, it.mtime)
	}
	l.mtime = l.base
	if newest != noMtime {
		l.mtime = time.Unix(0, newest)
	}
}

// setAttrs puts what a chmod or touch of the folder set into the listing.
func (l *listing) setAttrs(a catalog.Attrs) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if a.Mtime != nil {
		l.mtime, l.fixed = *a.Mtime, true
	}
	if a.Mode != nil {
		l.mode = *a.Mode & 0o7777
	}
}

// attrs are the folder's mtime and permission bits.
func (l *listing) attrs() (time.Time, uint32) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.mtime, l.mode
}

// remove takes name out of the listing. It reports whether the name was
// there.
func (l *listing) remove(name string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	i, ok := l.find(name)
	if !ok {
		if _, ok := l.links[name]; ok {
			delete(l.links, name)
			return true
		}
		return false
	}
	gone := l.files[i]
	l.files = slices.Delete(l.files, i, i+1)
	if gone.mtime == l.mtime.UnixNano() { // it was the newest
		l.renewMtime()
	}
	return true
}

// withDir returns a copy of l with the folder name added (made) or taken
// out; nil if it is not there to take out.
func (l *listing) withDir(name string, made bool) *listing {
	l.mu.RLock()
	defer l.mu.RUnlock()
	i, found := slices.BinarySearch(l.dirs, name)
	if found == made {
		return nil
	}
	c := &listing{files: slices.Clone(l.files), mtime: l.mtime, links: maps.Clone(l.links), ahead: l.ahead,
		subdirs: maps.Clone(l.subdirs), base: l.base, fixed: l.fixed, mode: l.mode}
	if c.subdirs == nil {
		c.subdirs = map[string]bool{}
	}
	if made {
		c.dirs = slices.Insert(slices.Clone(l.dirs), i, name)
		c.subdirs[name] = true
	} else {
		c.dirs = slices.Delete(slices.Clone(l.dirs), i, i+1)
		delete(c.subdirs, name)
	}
	return c
}

// snapshot returns the listing's files, sorted by name.
func (l *listing) snapshot() []item {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return slices.Clone(l.files)
}

// link returns the symbolic link named name, if the listing holds one;
// remove takes links out in place, so readers hold mu.
func (l *listing) link(name string) (catalog.Link, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	k, ok := l.links[name]
	return k, ok
}

// linkEntries returns the entries of the listing's symbolic links.
func (l *listing) linkEntries() []Entry {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make([]Entry, 0, len(l.links))
	for name, k := range l.links {
		out = append(out, linkEntry(name, k))
	}
	return out
}

// size is the number of names the listing holds, for Namespace.listed.
func (l *listing) size() int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.files) + len(l.dirs) + len(l.links)
}

// NewNamespace returns the namespace of cat with content from content.
func NewNamespace(cat Catalog, content Content, o Options) *Namespace {
	if o.MaxListed == 0 {
		o.MaxListed = 250_000
	}
	return &Namespace{cat: cat, content: content, opts: o, started: time.Now(),
		listings: map[string]*listing{}, loads: map[string]*load{}, trees: map[string]*folderTree{}}
}

// Root is the entry of the top directory.
func (ns *Namespace) Root() Entry {
	return Entry{Kind: KindDir, Mode: 0o755, Ino: 1, Mtime: ns.started}
}

// errNotFound is the namespace's "no such name".
var errNotFound = fmt.Errorf("fs: %w", fs.ErrNotExist)

// listing returns the listing of the folder prefix: the cached one, the
// one being read, or one it reads.
func (ns *Namespace) listing(ctx context.Context, prefix string) (*listing, error) {
	for {
		ns.mu.Lock()
		if l := ns.listings[prefix]; l != nil {
			ahead := l.ahead
			l.ahead = false
			ns.mu.Unlock()
			if ahead {
				ns.readAhead(prefix)
			}
			return l, nil
		}
		ld := ns.loads[prefix]
		if ld == nil {
			ld = &load{done: make(chan struct{})}
			ns.loads[prefix] = ld
			ns.mu.Unlock()
			ns.load(ctx, prefix, ld)
			if ld.err == nil {
				ns.readAhead(prefix)
			}
			return ld.l, ld.err
		}
		ns.mu.Unlock()
		select {
		case <-ld.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if ld.err == nil || ctx.Err() != nil || !isContextErr(ld.err) {
			if ld.err == nil && ld.ahead {
				ns.mu.Lock()
				ld.l.ahead = false
				ns.mu.Unlock()
				ns.readAhead(prefix)
			}
			return ld.l, ld.err
		}
		// The reader's request was interrupted, not ours: read it again.
	}
}

// listAhead is how many of a folder's next siblings are read in the
// background once it is listed. A walk (find, du, ls -R, a workflow engine
// stating its files) visits a folder's subfolders in the sorted order of
// readdir, so their catalog reads run beside it, one window ahead, rather
// than in its path; the first use of a folder read ahead moves the window.
const listAhead = 4

// readAhead starts reading the listings of the listAhead folders after
// prefix in its parent that are neither cached nor being read.
func (ns *Namespace) readAhead(prefix string) {
	if prefix == "" {
		return
	}
	parent, name := path.Split(strings.TrimSuffix(prefix, "/"))
	ns.mu.Lock()
	pl := ns.listings[parent]
	var todo []*load
	var prefixes []string
	if pl != nil && ns.listed < ns.opts.MaxListed/2 {
		i, _ := slices.BinarySearch(pl.dirs, name)
		for _, d := range pl.dirs[min(i+1, len(pl.dirs)):min(i+1+listAhead, len(pl.dirs))] {
			p := parent + d + "/"
			if ns.listings[p] != nil || ns.loads[p] != nil {
				continue
			}
			ld := &load{done: make(chan struct{}), ahead: true}
			ns.loads[p] = ld
			todo, prefixes = append(todo, ld), append(prefixes, p)
		}
	}
	ns.mu.Unlock()
	if len(todo) == 0 {
		return
	}
	go func() {
		for i, ld := range todo {
			ns.load(context.Background(), prefixes[i], ld)
		}
	}()
}

func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// load reads the listing of prefix into ld and caches it unless a change
// made it stale meanwhile.
func (ns *Namespace) load(ctx context.Context, prefix string, ld *load) {
	defer close(ld.done)
	d, err := ns.cat.Children(ctx, prefix)
	if err == nil {
		ld.l = ns.newListing(prefix, d)
	}
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if ns.loads[prefix] == ld {
		delete(ns.loads, prefix)
	}
	if err != nil || ld.stale {
		ld.err = err
		return
	}
	n := ld.l.size()
	if ns.listed+n > ns.opts.MaxListed {
		clear(ns.listings)
		ns.listed = 0
	}
	ld.l.ahead = ld.ahead
	ns.listings[prefix] = ld.l
	ns.listed += n
	ns.gen.Add(1)
}

// drop forgets the listing of prefix, cached or being read, after a change
// of the folder. Callers hold ns.mu.
func (ns *Namespace) drop(prefix string) *listing {
	ns.gen.Add(1)
	if ld := ns.loads[prefix]; ld != nil {
		ld.stale = true
		delete(ns.loads, prefix)
	}
	l := ns.listings[prefix]
	if l != nil {
		ns.listed -= l.size()
		delete(ns.listings, prefix)
	}
	return l
}

// dropAll forgets every listing, cached or being read: the catalog
// they came from is no longer this instance's (Mount.ForgetListings).
func (ns *Namespace) dropAll() {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	ns.gen.Add(1)
	for _, ld := range ns.loads {
		ld.stale = true
	}
	clear(ns.loads)
	clear(ns.listings)
	ns.listed = 0
}

// newListing makes the listing of prefix from the catalog's answer d.
func (ns *Namespace) newListing(prefix string, d catalog.Dir) *listing {
	hideViewRoot(prefix, &d) // collections.go
	l := &listing{files: make([]item, 0, len(d.Files)), subdirs: make(map[string]bool, len(d.Subdirs)), dirs: d.Subdirs, mode: 0o755}
	// A folder's mtime is its newest file's; with none, the time of its
	// record (mkdir) or of the keys beneath it (Dir.Beneath), whichever is
	// newer; a time a touch set stays as set. Never the mount's start: that
	// changed at each remount, and make and find -newer took the folder
	// for new.
	l.base = time.Unix(0, 0)
	if d.Beneath.After(l.base) {
		l.base = d.Beneath
	}
	if f := d.Folder; f != nil {
		l.mode = catalog.FolderMode(f.Mode)
		if f.Mtime.After(l.base) || f.Touched {
			l.base = f.Mtime
		}
		l.fixed = f.Touched
	}
	l.mtime = l.base
	var newest time.Time
	for i := range d.Files {
		v := &d.Files[i]
		// A clone: a substring would keep the whole decoded record alive.
		l.files = append(l.files, itemOf(strings.Clone(v.Key[len(prefix):]), v))
		if v.Mtime.After(newest) {
			newest = v.Mtime
		}
	}
	slices.SortFunc(l.files, func(a, b item) int { return strings.Compare(a.name, b.name) })
	if !newest.IsZero() && !l.fixed {
		l.mtime = newest
	}
	for _, s := range d.Subdirs {
		l.subdirs[s] = true
	}
	for _, k := range d.Links {
		if l.links == nil {
			l.links = map[string]catalog.Link{}
		}
		l.links[k.Key[len(prefix):]] = k
	}
	return l
}

func (ns *Namespace) dirEntry(name, prefix string, l *listing) Entry {
	e := Entry{Name: name, Kind: KindDir, Prefix: prefix, Mode: 0o755, Ino: Ino(tagDir, prefix), Mtime: ns.started}
	if l != nil {
		e.Mtime, e.Mode = l.attrs()
	} else {
		e.Unlisted = true
	}
	return e
}

// versionEntry is the entry of v at name, a key@vN name.
func (ns *Namespace) versionEntry(name string, v *catalog.Version) Entry {
	e := itemEntry("", itemOf(name, v), false)
	e.V = v
	return e
}

// itemEntry is the entry of a listed version at prefix+it.name (latest) or
// at it.name (@vN); its V is nil until Full reads it.
//
// Inode numbers: a version's @vN path has an inode of its own (its uid);
// a file's latest path has its key's (latestIno), the same for every
// version and for the key's pending first write (pendingEntry), so that a
// path keeps its inode across its own writes and commits, as POSIX keeps
// a file's: tar, rsync and make compare st_ino of a path before and after
// writing it. A folder artifact, never written through the mount, keeps
// an inode per version at its latest path too.
func itemEntry(prefix string, it item, latest bool) Entry {
	uid := string(it.uid[:])
	e := Entry{Name: it.name, uid: it.uid, Latest: latest, Size: it.size, Mtime: it.modTime()}
	switch {
	case it.folder:
		e.Kind, e.Mode = KindFolder, 0o555
		e.Ino = Ino(folderTag(latest, true), uid, "")
	case latest:
		e.Key = prefix + it.name
		e.Kind, e.Mode, e.Ino = KindFile, catalog.Perm(it.mode), latestIno(e.Key)
	default: // read-only, but an executable stays one (a script run by its version path)
		e.Kind, e.Mode, e.Ino = KindFile, 0o444|(it.mode&0o111), Ino(tagVersion, uid)
	}
	return e
}

// Full returns the whole version an entry shows: e.V, or for an entry made
// from a listing, the version read from the catalog by its uid (the entry's
// key may have been renamed since).
func (ns *Namespace) Full(ctx context.Context, e Entry) (*catalog.Version, error) {
	if e.V != nil {
		return e.V, nil
	}
	if e.uid == ([ref.UIDLen]byte{}) {
		return nil, syscall.EINVAL
	}
	v, err := ns.cat.ByUID(ctx, string(e.uid[:]))
	if err != nil {
		return nil, err
	}
	return &v, nil
}

func folderTag(latest, dir bool) string {
	switch {
	case latest && dir:
		return tagFolderLatD
	case dir:
		return tagFolderVerD
	case latest:
		return tagFolderLat
	}
	return tagFolderVer
}

// Lookup resolves name in the directory dir.
func (ns *Namespace) Lookup(ctx context.Context, dir Entry, name string) (Entry, error) {
	switch dir.Kind {
	case KindDir:
		return ns.lookupKey(ctx, dir.Prefix, name)
	case KindFolder:
		return ns.lookupFolder(ctx, dir, name)
	case KindView:
		return ns.lookupView(ctx, dir, name)
	}
	return Entry{}, syscall.ENOTDIR
}

func (ns *Namespace) lookupKey(ctx context.Context, prefix, name string) (Entry, error) {
	if prefix == "" && name == ViewRoot {
		return ns.viewRoot(), nil
	}
	l, err := ns.listing(ctx, prefix)
	if err != nil {
		return Entry{}, err
	}
	if it, ok := l.file(name); ok {
		return ns.listedEntry(ctx, prefix, it, true)
	}
	if l.subdirs[name] {
		sub := prefix + name + "/"
		ns.mu.Lock()
		sl := ns.listings[sub]
		ns.mu.Unlock()
		return ns.dirEntry(name, sub, sl), nil
	}
	if k, ok := l.link(name); ok {
		return linkEntry(name, k), nil
	}
	if e, ok := ns.pending(prefix, name); ok {
		return e, nil
	}
	n := ParseName(name)
	if n.Base == name {
		if len(prefix)+len(name) > ref.MaxKeyLen {
			return Entry{}, syscall.ENAMETOOLONG
		}
		return Entry{}, errNotFound
	}
	latest, ok := l.file(n.Base)
	if !ok {
		return Entry{}, errNotFound // no live key: none of its versions resolve either
	}
	key := prefix + n.Base
	if n.Version > 0 && n.Version != int(latest.n) {
		// A version in the trash too: a key written again after an rm
		// (a Snakemake rerun) keeps its history there, immutable and
		// stored until purged. Read-only as any @vN, not listed, and
		// nothing of it is held: a purge takes it (and the live key) as it
		// takes any version, and invalidates its names.
		old, err := catalog.ByKeyWithTrash(ctx, ns.cat, key, n.Version)
		if err != nil {
			return Entry{}, err
		}
		if n.Meta {
			return ns.metaEntry(ctx, name, old)
		}
		return ns.versionEntry(name, &old), nil
	}
	if n.Meta {
		v, err := ns.Full(ctx, itemEntry(prefix, latest, true))
		if err != nil {
			return Entry{}, err
		}
		return ns.metaEntry(ctx, name, *v)
	}
	latest.name = name
	return ns.listedEntry(ctx, prefix, latest, false)
}

// listedEntry is the entry a lookup returns for a listed version. A
// folder artifact's comes with its whole version: every lookup and listing
// inside it needs the manifest.
func (ns *Namespace) listedEntry(ctx context.Context, prefix string, it item, latest bool) (Entry, error) {
	e := itemEntry(prefix, it, latest)
	if it.folder {
		v, err := ns.Full(ctx, e)
		if err != nil {
			return Entry{}, err
		}
		e.V = v
	}
	return e, nil
}

// ReadDir lists the directory dir, sorted by name.
func (ns *Namespace) ReadDir(ctx context.Context, dir Entry) ([]Entry, error) {
	switch dir.Kind {
	case KindDir:
	case KindFolder:
		return ns.readFolder(ctx, dir)
	case KindView:
		return ns.readView(ctx, dir)
	default:
		return nil, syscall.ENOTDIR
	}
	l, err := ns.listing(ctx, dir.Prefix)
	if err != nil {
		return nil, err
	}
	files := l.snapshot()
	out := make([]Entry, 0, len(l.dirs)+len(files))
	for _, name := range l.dirs {
		out = append(out, Entry{Name: name, Kind: KindDir, Prefix: dir.Prefix + name + "/", Mode: 0o755, Ino: Ino(tagDir, dir.Prefix+name+"/")})
	}
	out = append(out, l.linkEntries()...)
	out = append(out, ns.pendingUnder(dir.Prefix, l)...)
	for _, it := range files {
		e := itemEntry(dir.Prefix, it, true)
		out = append(out, e)
		if !ns.opts.ShowMeta && !ns.opts.ShowVersions {
			continue
		}
		v, err := ns.Full(ctx, e)
		if errors.Is(err, catalog.ErrNotFound) {
			continue // trashed since the listing was made
		}
		if err != nil {
			return nil, err
		}
		more, err := ns.hiddenNames(ctx, it.name, v)
		if err != nil {
			return nil, err
		}
		for _, e := range more {
			// A name over 255 bytes (NAME@v1.meta of a 255-byte name) is
			// one no tool can open or make: statfs says 255, and cp -a
			// out failed with "File name too long". It still resolves.
			if len(e.Name) <= ref.MaxSegmentLen {
				out = append(out, e)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// hiddenNames are the entries that mount options show beside a listed
// file name: its sidecar, its versions and theirs.
func (ns *Namespace) hiddenNames(ctx context.Context, name string, v *catalog.Version) ([]Entry, error) {
	var out []Entry
	if ns.opts.ShowMeta {
		me, err := ns.metaEntry(ctx, name+".meta", *v)
		if err != nil {
			return nil, err
		}
		out = append(out, me)
	}
	if !ns.opts.ShowVersions {
		return out, nil
	}
	vs, err := ns.cat.Versions(ctx, v.Key, false)
	if errors.Is(err, catalog.ErrNotFound) {
		return out, nil // trashed since the listing was made
	}
	if err != nil {
		return nil, err
	}
	for _, old := range vs {
		vn := name + "@v" + strconv.Itoa(old.Version)
		out = append(out, ns.versionEntry(vn, &old))
		if ns.opts.ShowMeta {
			me, err := ns.metaEntry(ctx, vn+".meta", old)
			if err != nil {
				return nil, err
			}
			out = append(out, me)
		}
	}
	return out, nil
}

// Change says which names of one directory a catalog change touched.
type Change struct {
	Prefix string   // the directory, "" or ending in "/"
	Names  []string // names in it whose entry changed (appeared, vanished or shows something else)
	// commit: a commit of a key (one name, and its ".meta"), which removes
	// none of its versions' names. kept: the key had a version listed
	// already, so its sidecar's name resolved all along and the kernel
	// holds no negative entry for it.
	commit, kept bool
}

// cachedFile is name's file in the folder prefix's cached listing; ok is
// false when it is not there, or no listing is cached, or one is loading.
// It never reads the catalog.
func (ns *Namespace) cachedFile(prefix, name string) (item, bool) {
	ns.mu.Lock()
	l := ns.listings[prefix]
	loading := ns.loads[prefix] != nil
	ns.mu.Unlock()
	if l == nil || loading {
		return item{}, false
	}
	return l.file(name)
}

// Changed drops what the namespace cached about keys and returns, for each
// directory whose listing changed, the names in it that the kernel must
// look up again. A key's own name always changes (with its ".meta"); a
// directory above it changes only where it appeared or vanished.
func (ns *Namespace) Changed(ctx context.Context, keys []string) []Change {
	byPrefix := map[string]map[string]bool{}
	add := func(prefix, name string) {
		if byPrefix[prefix] == nil {
			byPrefix[prefix] = map[string]bool{}
		}
		if name != "" {
			byPrefix[prefix][name] = true
		}
	}
	for _, key := range keys {
		segs := strings.Split(key, "/")
		prefix := ""
		for i, seg := range segs {
			if i == len(segs)-1 {
				add(prefix, seg)
				add(prefix, seg+".meta")
				// A folder's own listing holds its mode and mtime: a
				// chmod or touch of it elsewhere changes only those.
				ns.mu.Lock()
				parent, own := ns.listings[prefix], key+"/"
				folder := ns.listings[own] != nil || ns.loads[own] != nil || parent != nil && parent.subdirs[seg]
				ns.mu.Unlock()
				if folder {
					add(own, "")
				}
				break
			}
			ns.mu.Lock()
			before := ns.listings[prefix]
			ns.mu.Unlock()
			if before == nil || !before.subdirs[seg] {
				add(prefix, seg) // it may have appeared
			} else {
				add(prefix, "") // only its listing may have changed
			}
			prefix += seg + "/"
		}
	}
	// Ancestors that were listed with a key's folder may now be empty: ask
	// the catalog again and compare.
	ns.mu.Lock()
	old := map[string]*listing{}
	for p := range byPrefix {
		if l := ns.drop(p); l != nil {
			old[p] = l
		}
	}
	ns.mu.Unlock()
	for p, l := range old {
		now, err := ns.listing(ctx, p)
		if err != nil {
			// Unknown now: every name of the old listing may have changed.
			for _, d := range l.dirs {
				add(p, d)
			}
			continue
		}
		for _, d := range l.dirs {
			if !now.subdirs[d] {
				add(p, d)
			}
		}
	}
	out := make([]Change, 0, len(byPrefix))
	for p, names := range byPrefix {
		c := Change{Prefix: p}
		for n := range names {
			c.Names = append(c.Names, n)
		}
		sort.Strings(c.Names)
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Prefix < out[j].Prefix })
	return out
}

// liveFile reports whether name in the folder prefix is a key's file or
// folder artifact: what its name@vN and sidecar names resolve from
// (lookupKey). It says yes when the listing cannot be read.
func (ns *Namespace) liveFile(ctx context.Context, prefix, name string) bool {
	l, err := ns.listing(ctx, prefix)
	if err != nil {
		return true
	}
	_, ok := l.file(name)
	return ok
}

// has reports whether name in the folder prefix is a name of the catalog: a
// key, a folder of keys, a link or a key being written. A listing it cannot
// read answers no.
func (ns *Namespace) has(ctx context.Context, prefix, name string) bool {
	if _, ok := ns.pending(prefix, name); ok {
		return true
	}
	l, err := ns.listing(ctx, prefix)
	if err != nil {
		return false
	}
	if _, ok := l.file(name); ok {
		return true
	}
	if _, ok := l.link(name); ok {
		return true
	}
	return l.subdirs[name]
}
