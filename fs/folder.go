package fs

import (
	"context"
	"fmt"
	"path"
	"sort"
	"strings"
	"syscall"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/catalog"
)

// folderTree indexes a folder manifest by directory.
type folderTree struct {
	dirs map[string][]folderChild // dir path ("" is the top) → children sorted by name
}

type folderChild struct {
	name string
	file int // index into the manifest's files; -1 for a directory
}

func buildTree(m *cache.Manifest) *folderTree {
	t := &folderTree{dirs: map[string][]folderChild{"": nil}}
	for i, f := range m.Files {
		dir, name := path.Split(f.Path)
		dir = strings.TrimSuffix(dir, "/")
		t.dirs[dir] = append(t.dirs[dir], folderChild{name: name, file: i})
		// Make sure every ancestor lists its subdirectory once.
		for dir != "" {
			parent, base := path.Split(dir)
			parent = strings.TrimSuffix(parent, "/")
			_, seen := t.dirs[dir+"\x00"]
			if seen {
				break
			}
			t.dirs[dir+"\x00"] = nil // marker: dir is listed in its parent
			t.dirs[parent] = append(t.dirs[parent], folderChild{name: base, file: -1})
			if _, ok := t.dirs[dir]; !ok {
				t.dirs[dir] = nil
			}
			dir = parent
		}
	}
	for k, cs := range t.dirs {
		if strings.HasSuffix(k, "\x00") {
			delete(t.dirs, k)
			continue
		}
		sort.Slice(cs, func(i, j int) bool { return cs[i].name < cs[j].name })
	}
	return t
}

// manifestOf is ctx for the read of v's manifest: the content store
// waits for its pack only while v is recent (cache.WithVersion), as for
// the reads of its files (fileReader); an open of an old version whose
// manifest's pack is lost waited the whole pack wait.
func manifestOf(ctx context.Context, v catalog.Version) context.Context {
	return cache.WithVersion(ctx, cache.VersionAt(v.CreatedAt))
}

// tree returns the folder artifact's tree, its manifest and its version
// (read from the catalog when the entry came from a listing).
func (ns *Namespace) tree(ctx context.Context, e Entry) (*folderTree, *cache.Manifest, *catalog.Version, error) {
	v, err := ns.Full(ctx, e)
	if err != nil {
		return nil, nil, nil, err
	}
	m, err := ns.content.LoadManifest(manifestOf(ctx, *v), cache.Ref(v.Manifest))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%s: %w", v.Ref(), err)
	}
	ns.mu.Lock()
	defer ns.mu.Unlock()
	t := ns.trees[v.Manifest]
	if t == nil {
		if len(ns.trees) >= 64 {
			clear(ns.trees)
		}
		t = buildTree(m)
		ns.trees[v.Manifest] = t
	}
	return t, m, v, nil
}

// folderChild is the entry of c, a child of the folder entry e of version v.
func (ns *Namespace) folderChild(e Entry, v *catalog.Version, m *cache.Manifest, c folderChild) Entry {
	p := c.name
	if e.Path() != "" {
		p = e.Path() + "/" + c.name
	}
	out := Entry{Name: c.name, V: v, Latest: e.Latest, in: &inFolder{path: p}, Mtime: v.Mtime}
	if c.file < 0 {
		out.Kind, out.Mode = KindFolder, 0o555
		out.Ino = Ino(folderTag(e.Latest, true), v.UID, p)
		return out
	}
	f := m.Files[c.file]
	out.Kind, out.in.file, out.Size = KindFolderFile, &f, f.Size
	out.Mode = 0o444 | (f.Mode & 0o111 & 0o555)
	out.Ino = Ino(folderTag(e.Latest, false), v.UID, p)
	return out
}

func (ns *Namespace) lookupFolder(ctx context.Context, dir Entry, name string) (Entry, error) {
	t, m, v, err := ns.tree(ctx, dir)
	if err != nil {
		return Entry{}, err
	}
	cs := t.dirs[dir.Path()]
	i := sort.Search(len(cs), func(i int) bool { return cs[i].name >= name })
	if i == len(cs) || cs[i].name != name {
		return Entry{}, syscall.ENOENT
	}
	return ns.folderChild(dir, v, m, cs[i]), nil
}

func (ns *Namespace) readFolder(ctx context.Context, dir Entry) ([]Entry, error) {
	t, m, v, err := ns.tree(ctx, dir)
	if err != nil {
		return nil, err
	}
	cs := t.dirs[dir.Path()]
	out := make([]Entry, 0, len(cs))
	for _, c := range cs {
		out = append(out, ns.folderChild(dir, v, m, c))
	}
	return out, nil
}

// FileOf returns the content of a file entry: the version's single file, or
// the folder file the entry names.
func (ns *Namespace) FileOf(ctx context.Context, e Entry) (cache.File, error) {
	switch e.Kind {
	case KindFolderFile:
		return *e.in.file, nil
	case KindFile:
		v, err := ns.Full(ctx, e)
		if err != nil {
			return cache.File{}, err
		}
		m, err := ns.content.LoadManifest(manifestOf(ctx, *v), cache.Ref(v.Manifest))
		if err != nil {
			return cache.File{}, fmt.Errorf("%s: %w", v.Ref(), err)
		}
		if m.Kind != cache.KindFile || len(m.Files) != 1 {
			return cache.File{}, syscall.EIO
		}
		return m.Files[0], nil
	}
	return cache.File{}, syscall.EISDIR
}
