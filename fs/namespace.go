package fs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
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
type Kind int

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
// an Entry for a version or a sidecar never changes.
type Entry struct {
	Name   string
	Kind   Kind
	Prefix string           // KindDir: the key prefix, "" or ending in "/"
	V      *catalog.Version // every kind but KindDir
	Latest bool             // reached through the key rather than key@vN
	Path   string           // KindFolder, KindFolderFile: the path inside the folder ("" is its top)
	File   *cache.File      // KindFolderFile
	Coll   *collTree        // KindView in a collection: its tree (Prefix: the folder in it; collections.go)
	Size   int64
	Mode   uint32 // permission bits
	Mtime  time.Time
	// Unlisted: a KindDir whose listing is not read yet, so Mtime (the
	// newest of its files) is not known either.
	Unlisted bool
	Ino      uint64
	Target   string // KindLink
	Key      string // KindLink, KindPending: the key
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

	st *stage.Stage // the write side; nil for a read-only mount

	mu       sync.Mutex // guards listings, listed, trees
	listings map[string]*listing
	listed   int
	trees    map[string]*folderTree

	anns  annCache  // annotations shown in sidecars (names.go)
	views viewCache // collections under /.lamina (collections.go)
}

type listing struct {
	// mu guards files, names and mtime once the listing is in
	// Namespace.listings: a commit adds to them in place (update), so that
	// creating n files in a folder costs O(n log n), not O(n²) copies.
	mu      sync.RWMutex
	files   map[string]*catalog.Version // shared with the entries made of them
	names   []string                    // file names, sorted
	subdirs map[string]bool
	dirs    []string // sorted
	mtime   time.Time
	links   map[string]catalog.Link
}

// file is the latest version of name in the listing.
func (l *listing) file(name string) (*catalog.Version, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	v, ok := l.files[name]
	return v, ok
}

// modTime is the listing's directory mtime.
func (l *listing) modTime() time.Time {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.mtime
}

// snapshot returns the listing's file names (sorted) and their versions.
func (l *listing) snapshot() ([]string, []*catalog.Version) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	names := slices.Clone(l.names)
	vs := make([]*catalog.Version, len(names))
	for i, n := range names {
		vs[i] = l.files[n]
	}
	return names, vs
}

// NewNamespace returns the namespace of cat with content from content.
func NewNamespace(cat Catalog, content Content, o Options) *Namespace {
	if o.MaxListed == 0 {
		o.MaxListed = 250_000
	}
	return &Namespace{cat: cat, content: content, opts: o, started: time.Now(),
		listings: map[string]*listing{}, trees: map[string]*folderTree{}}
}

// Root is the entry of the top directory.
func (ns *Namespace) Root() Entry {
	return Entry{Kind: KindDir, Mode: 0o755, Ino: 1, Mtime: ns.started}
}

// errNotFound is the namespace's "no such name".
var errNotFound = fmt.Errorf("fs: %w", fs.ErrNotExist)

func (ns *Namespace) listing(ctx context.Context, prefix string) (*listing, error) {
	ns.mu.Lock()
	l := ns.listings[prefix]
	ns.mu.Unlock()
	if l != nil {
		return l, nil
	}
	d, err := ns.cat.Children(ctx, prefix)
	if err != nil {
		return nil, err
	}
	hideViewRoot(prefix, &d) // collections.go
	l = &listing{files: make(map[string]*catalog.Version, len(d.Files)), subdirs: make(map[string]bool, len(d.Subdirs)), dirs: d.Subdirs, mtime: ns.started}
	var newest time.Time
	for i := range d.Files {
		v := &d.Files[i]
		name := v.Key[len(prefix):]
		l.files[name] = v
		l.names = append(l.names, name)
		if v.Mtime.After(newest) {
			newest = v.Mtime
		}
	}
	if !newest.IsZero() {
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
	n0 := len(d.Links)
	n := len(d.Files) + len(d.Subdirs) + n0
	ns.mu.Lock()
	if ns.listed+n > ns.opts.MaxListed {
		clear(ns.listings)
		ns.listed = 0
	}
	ns.listings[prefix] = l
	ns.listed += n
	ns.mu.Unlock()
	return l, nil
}

func (ns *Namespace) dirEntry(name, prefix string, l *listing) Entry {
	e := Entry{Name: name, Kind: KindDir, Prefix: prefix, Mode: 0o755, Ino: Ino(tagDir, prefix), Mtime: ns.started}
	if l != nil {
		e.Mtime = l.modTime()
	} else {
		e.Unlisted = true
	}
	return e
}

// versionEntry is the entry of v at name (latest or @vN).
func (ns *Namespace) versionEntry(name string, v *catalog.Version, latest bool) Entry {
	e := Entry{Name: name, V: v, Latest: latest, Size: v.Size, Mtime: v.Mtime}
	switch {
	case v.Kind == cache.KindFolder:
		e.Kind, e.Mode = KindFolder, 0o555
		e.Ino = Ino(folderTag(latest, true), v.UID, "")
	case latest:
		e.Kind, e.Mode, e.Ino = KindFile, 0o644, Ino(tagLatest, v.UID)
		if v.Mode != 0 {
			e.Mode = v.Mode
		}
	default:
		e.Kind, e.Mode, e.Ino = KindFile, 0o444, Ino(tagVersion, v.UID)
	}
	return e
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
	if v, ok := l.file(name); ok {
		return ns.versionEntry(name, v, true), nil
	}
	if l.subdirs[name] {
		sub := prefix + name + "/"
		ns.mu.Lock()
		sl := ns.listings[sub]
		ns.mu.Unlock()
		return ns.dirEntry(name, sub, sl), nil
	}
	if k, ok := l.links[name]; ok {
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
	v := latest
	if n.Version > 0 && n.Version != latest.Version {
		old, err := ns.cat.ByKey(ctx, latest.Key, n.Version)
		if err != nil {
			return Entry{}, err
		}
		v = &old
	}
	if n.Meta {
		return ns.metaEntry(ctx, name, *v)
	}
	return ns.versionEntry(name, v, false), nil
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
	names, versions := l.snapshot()
	out := make([]Entry, 0, len(l.dirs)+len(names))
	for _, name := range l.dirs {
		out = append(out, Entry{Name: name, Kind: KindDir, Prefix: dir.Prefix + name + "/", Mode: 0o755, Ino: Ino(tagDir, dir.Prefix+name+"/")})
	}
	for name, k := range l.links {
		out = append(out, linkEntry(name, k))
	}
	out = append(out, ns.pendingUnder(dir.Prefix, l)...)
	for i, name := range names {
		v := versions[i]
		out = append(out, ns.versionEntry(name, v, true))
		if ns.opts.ShowMeta {
			me, err := ns.metaEntry(ctx, name+".meta", *v)
			if err != nil {
				return nil, err
			}
			out = append(out, me)
		}
		if !ns.opts.ShowVersions {
			continue
		}
		vs, err := ns.cat.Versions(ctx, v.Key, false)
		if errors.Is(err, catalog.ErrNotFound) {
			continue // trashed since the listing was made
		}
		if err != nil {
			return nil, err
		}
		for _, old := range vs {
			vn := name + "@v" + strconv.Itoa(old.Version)
			out = append(out, ns.versionEntry(vn, &old, false))
			if ns.opts.ShowMeta {
				me, err := ns.metaEntry(ctx, vn+".meta", old)
				if err != nil {
					return nil, err
				}
				out = append(out, me)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Change says which names of one directory a catalog change touched.
type Change struct {
	Prefix string   // the directory, "" or ending in "/"
	Names  []string // names in it whose entry changed (appeared, vanished or shows something else)
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
		if l := ns.listings[p]; l != nil {
			old[p] = l
			ns.listed -= len(l.names) + len(l.dirs)
			delete(ns.listings, p)
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
