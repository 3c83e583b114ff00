package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/lamina-bio/lamina/catalog"
)

// blockers finds the live artifact that holds the name of a folder above
// a trashed name. What the trash holds under k/ cannot come back while k
// is a file: after rm -r k, a save at k or the restore of a trashed file
// k takes the name (the live file wins, and the folder's own record
// leaves the trash), and what was under the folder stays in the trash.
// Nothing deletes it unasked; ls --trash and restore say so, with what to
// do. Lookups are kept per folder name.
type blockers struct {
	cat  catalog.Catalog
	live map[string]bool // folder name → a live artifact holds it
}

func newBlockers(cat catalog.Catalog) *blockers {
	return &blockers{cat: cat, live: map[string]bool{}}
}

// of returns the key of the live artifact at a folder above key, "" if
// there is none.
func (b *blockers) of(ctx context.Context, key string) (string, error) {
	for i := 0; i < len(key); i++ {
		if key[i] != '/' {
			continue
		}
		up := key[:i]
		live, ok := b.live[up]
		if !ok {
			_, err := b.cat.ByKey(ctx, up, 0)
			if err != nil && !errors.Is(err, catalog.ErrNotFound) {
				return "", err
			}
			live = err == nil
			b.live[up] = live
		}
		if live {
			return up, nil
		}
	}
	return "", nil
}

// at returns key if a live artifact holds key itself ("" if none): a
// trashed link there stays in the trash, held by the file (a restore of
// a file keeps it, Catalog.Restore).
func (b *blockers) at(ctx context.Context, key string) (string, error) {
	_, err := b.cat.ByKey(ctx, key, 0)
	if errors.Is(err, catalog.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return key, nil
}

// listedFrom is how many folder names under one parent folder prefetch
// answers with one Children listing of it rather than one ByKey each: a
// listing costs the size of the folder, a lookup a round trip (PostgreSQL,
// the daemon's socket), so a few names stay lookups.
var listedFrom = 8

// prefetch answers for the folder names above keys whether a live
// artifact holds them, from one Children listing per parent folder that
// has listedFrom names or more: ls --trash of 2,000 keys in 2,000 folders
// made 2,000 ByKey calls. What it leaves (or fails to list) of looks up.
func (b *blockers) prefetch(ctx context.Context, keys []string) {
	byParent := map[string][]string{}
	for _, k := range keys {
		for i := 0; i < len(k); i++ {
			if k[i] != '/' {
				continue
			}
			up := k[:i]
			if _, ok := b.live[up]; ok {
				continue
			}
			b.live[up] = false // placeholder, settled below
			parent := up[:strings.LastIndexByte(up, '/')+1]
			byParent[parent] = append(byParent[parent], up)
		}
	}
	for parent, ups := range byParent {
		var files map[string]bool
		if len(ups) >= listedFrom {
			if d, err := b.cat.Children(ctx, parent); err == nil {
				files = make(map[string]bool, len(d.Files))
				for _, v := range d.Files {
					files[v.Key] = true
				}
			}
		}
		for _, up := range ups {
			if files == nil {
				delete(b.live, up) // of looks it up
			} else {
				b.live[up] = files[up]
			}
		}
	}
}

// blockedBy returns, for each of es, the key of the live artifact at a
// folder above it ("" if none), and es grouped by it.
func blockedBy(ctx context.Context, cat catalog.Catalog, es []catalog.TrashEntry) ([]string, blocked, error) {
	holders, bl := newBlockers(cat), blocked{}
	keys := make([]string, len(es))
	for i, e := range es {
		keys[i] = e.Key
	}
	holders.prefetch(ctx, keys)
	by := make([]string, len(es))
	for i, e := range es {
		var err error
		if by[i], err = holders.of(ctx, e.Key); err != nil {
			return nil, nil, err
		}
		if by[i] == "" && e.Kind == "link" {
			if by[i], err = holders.at(ctx, e.Key); err != nil {
				return nil, nil, err
			}
		}
		if by[i] != "" {
			bl.add(by[i], e)
		}
	}
	return by, bl, nil
}

// blocked groups trashed names (as ls --trash shows them: a folder as
// KEY/) by the live file that holds their folder's name.
type blocked map[string][]string

func (bl blocked) add(file string, e catalog.TrashEntry) {
	name := e.Key
	if e.Kind == "folder" {
		name += "/"
	}
	bl[file] = append(bl[file], name)
}

// count is how many names bl holds.
func (bl blocked) count() int {
	n := 0
	for _, names := range bl {
		n += len(names)
	}
	return n
}

// without returns bl less the names that other holds.
func (bl blocked) without(other blocked) blocked {
	in := map[string]bool{}
	for _, names := range other {
		for _, n := range names {
			in[n] = true
		}
	}
	out := blocked{}
	for f, names := range bl {
		for _, n := range names {
			if !in[n] {
				out[f] = append(out[f], n)
			}
		}
	}
	return out
}

// why says why the names bl holds stay in the trash: a file holds the
// name of their folder, or a trashed link's own name.
func (bl blocked) why() string {
	own, under := 0, 0
	for f, names := range bl {
		for _, n := range names {
			if n == f {
				own++
			} else {
				under++
			}
		}
	}
	switch {
	case own == 0:
		return "a file holds the name of their folder"
	case under > 0:
		return "a file holds the name of their folder, or of a symbolic link"
	case own == 1:
		return "a file holds the symbolic link's own name"
	}
	return "files hold the symbolic links' own names"
}

// linkHeld says whether the trash holds a symbolic link at key while a
// live file holds its name (what restore KEY then cannot bring back).
func linkHeld(ctx context.Context, cat catalog.Catalog, key string) bool {
	if f, err := newBlockers(cat).at(ctx, key); err != nil || f == "" {
		return false
	}
	tl, err := cat.TrashList(ctx)
	return err == nil && slices.ContainsFunc(tl, func(e catalog.TrashEntry) bool { return e.Key == key && e.Kind == "link" })
}

// report writes one line per file: what it keeps in the trash, why, and
// the commands that resolve it.
func (bl blocked) report(w io.Writer, prefix string) {
	files := make([]string, 0, len(bl))
	for f := range bl {
		files = append(files, f)
	}
	sort.Strings(files)
	for _, f := range files {
		names := slices.DeleteFunc(slices.Clone(bl[f]), func(n string) bool { return n == f })
		if len(names) < len(bl[f]) {
			fmt.Fprintf(w, "%s%s\n", prefix, linkHeldHelp(f))
		}
		if len(names) == 0 {
			continue
		}
		sort.Strings(names)
		fmt.Fprintf(w, "%s%s\n", prefix, blockedHelp(f, len(names), someKeys(names)))
	}
}

// blockedHelp says that n names under file/ (names) cannot be restored
// while file is a file, and what to do: delete them for good, or move the
// file away and restore them.
func blockedHelp(file string, n int, names string) string {
	them := "them"
	if n == 1 {
		them = "it"
	}
	return fmt.Sprintf("the trash holds %s under %s/ (%s) that cannot be restored while %s is a file, which holds the folder's name: "+
		"`lamina delete --permanent %s/` deletes %s for good; or move %s away (mv in a mount, or `lamina delete %s` to put it in the trash) and run `lamina restore %s/`",
		plural(n, "name"), file, names, file, file, them, file, file, file)
}

// linkHeldHelp says that the symbolic link key in the trash cannot come
// back while the file key holds its name, and what to do.
func linkHeldHelp(key string) string {
	return fmt.Sprintf("the symbolic link %s stays in the trash: the file %s holds its name; "+
		"`lamina delete --permanent --link %s` deletes the link for good (not the file); or move %s away (mv in a mount) and run `lamina restore %s`",
		key, key, key, key, key)
}

// blockedKeyHelp is blockedHelp for one key named to restore.
func blockedKeyHelp(file, key string) string {
	return fmt.Sprintf("%s cannot be restored while %s is a file, which holds its folder's name: "+
		"`lamina delete --permanent %s` deletes it for good; or move %s away (mv in a mount, or `lamina delete %s` to put it in the trash) and run `lamina restore %s`",
		key, file, key, file, file, key)
}

// folderHoldsHelp says what to do with a trashed file key whose name a
// folder of live keys holds.
func folderHoldsHelp(key string) string {
	return fmt.Sprintf("%s is a folder now (lamina ls %s/ lists it), which holds the trashed file's name: "+
		"`lamina delete --permanent %s` deletes the file for good; or move the folder %s/ away (mv in a mount) and run `lamina restore %s`",
		key, key, key, key, key)
}

// trashedBeneath lists what the trash holds under key/ (a folder record
// at key is no longer part of it once a file holds key).
func trashedBeneath(ctx context.Context, cat catalog.Catalog, key string) ([]catalog.TrashEntry, error) {
	tl, err := cat.TrashList(ctx)
	if err != nil {
		return nil, err
	}
	var out []catalog.TrashEntry
	for _, e := range tl {
		if strings.HasPrefix(e.Key, key+"/") {
			out = append(out, e)
		}
	}
	return out, nil
}

// trashName is a trash entry's name as ls --trash shows it: a folder as
// KEY/.
func trashName(e catalog.TrashEntry) string {
	if e.Kind == "folder" {
		return e.Key + "/"
	}
	return e.Key
}

// superseded holds what restore keeps in the trash because another
// state at its name, trashed later, came back instead: a file or link k
// against the folder or link removed at k, or the names under k/; and a
// link k that the file k, trashed later, holds. Keyed by name and kind.
type superseded map[string]supersede

type supersede struct {
	kept  catalog.TrashEntry // the name kept: a folder entry for names under kept.Key/
	names []string           // those names
	by    catalog.TrashEntry // what was trashed later; a folder entry for names under by.Key/
}

func (s superseded) add(kept, by catalog.TrashEntry, names ...string) {
	s[kept.Key+"\x00"+kept.Kind] = supersede{kept, names, by}
}

// latestState picks, where what the trash holds under a folder meets at
// one name, the state trashed last: a file and the folder or link removed
// at its key, or a file or link k and the names under k/. The side
// trashed before stays in the trash, restorable by its name once the
// name is free, and is reported (older). Before, artifacts came first, so
// a file trashed before a folder made at its name came back over the
// folder, whose contents stayed in the trash; and the names under a link
// k trashed before it came back first, made k a folder, and the link
// failed. A tie keeps that order. A file that is newer takes the name as
// before: its restore takes the folder record at its key out of the
// trash (Catalog.Restore), a link stays there (reported), and what is
// under it is kept out (blockers). A key written again since holds its
// name: nothing is decided there.
func latestState(tl []catalog.TrashEntry) (keep []catalog.TrashEntry, older superseded) {
	older = superseded{}
	dropped := map[string]bool{} // key and kind
	id := func(e catalog.TrashEntry) string { return e.Key + "\x00" + e.Kind }
	for i := 1; i < len(tl); i++ {
		// SortTrash: an artifact just before the folder or link at its key.
		a, n := tl[i-1], tl[i]
		if a.Key != n.Key || a.Kind != "" || a.Live {
			continue
		}
		switch {
		case n.TrashedAt.After(a.TrashedAt):
			older.add(a, n)
			dropped[id(a)] = true
		case n.Kind == "link":
			older.add(n, a) // the restore of the file keeps it
			dropped[id(n)] = true
		default:
			dropped[id(n)] = true
		}
	}
	for _, e := range tl {
		if e.Kind == "folder" || e.Live || dropped[id(e)] {
			continue
		}
		var last time.Time
		var under []catalog.TrashEntry
		for _, u := range tl {
			if strings.HasPrefix(u.Key, e.Key+"/") {
				under = append(under, u)
				if u.TrashedAt.After(last) {
					last = u.TrashedAt
				}
			}
		}
		switch {
		case last.After(e.TrashedAt):
			folder := catalog.TrashEntry{Key: e.Key, Kind: "folder"}
			for k, o := range older {
				if o.by.Key == e.Key && o.by.Kind == "" {
					// A link the file would have held: the folder did.
					o.by = folder
					older[k] = o
				}
			}
			older.add(e, folder)
			dropped[id(e)] = true
		case len(under) > 0 && e.Kind == "link":
			// The link is newer: the names under k/ would make k a
			// folder and keep it out.
			var names []string
			for _, u := range under {
				if !dropped[id(u)] {
					names = append(names, trashName(u))
					dropped[id(u)] = true
				}
			}
			older.add(catalog.TrashEntry{Key: e.Key, Kind: "folder"}, e, names...)
		}
	}
	keep = slices.DeleteFunc(slices.Clone(tl), func(e catalog.TrashEntry) bool { return dropped[id(e)] })
	return keep, older
}

// report writes one line per name kept in the trash: what took its name
// (or, if that failed or stayed out, that it did not come back), and the
// commands that bring it back. back says whether a name came back.
func (s superseded) report(w io.Writer, prefix string, back func(catalog.TrashEntry) bool) {
	ids := make([]string, 0, len(s))
	for n := range s {
		ids = append(ids, n)
	}
	sort.Strings(ids)
	for _, n := range ids {
		o := s[n]
		if back(o.by) {
			fmt.Fprintf(w, "%s%s\n", prefix, supersededHelp(o))
		} else {
			fmt.Fprintf(w, "%s%s stays in the trash: %s, trashed after it at its name, was not restored either (above)\n",
				prefix, keptName(o), what(o.by))
		}
	}
}

// keptName names what o keeps in the trash.
func keptName(o supersede) string {
	switch {
	case o.kept.Kind == "link":
		return "the symbolic link " + o.kept.Key
	case o.kept.Kind == "folder":
		return fmt.Sprintf("what the trash holds under %s/ (%s)", o.kept.Key, someKeys(o.names))
	}
	return o.kept.Key
}

// what names the state trashed later at a name.
func what(by catalog.TrashEntry) string {
	switch by.Kind {
	case "folder":
		return "the folder " + by.Key + "/"
	case "link":
		return "the symbolic link " + by.Key
	}
	return "the file " + by.Key
}

// supersededHelp says that o.kept stays in the trash because o.by,
// trashed after it at its name, came back instead, and what to do.
func supersededHelp(o supersede) string {
	away := "mv in a mount"
	if o.by.Kind == "folder" {
		away = "mv in a mount, or `lamina delete` of the keys under it"
	}
	name, purge := o.kept.Key, "`lamina delete --permanent "+o.kept.Key+"`"
	switch o.kept.Kind {
	case "folder":
		name += "/"
		purge = "`lamina delete --permanent " + name + "`"
	case "link":
		purge = "`lamina delete --permanent --link " + name + "`"
	}
	return fmt.Sprintf("%s stays in the trash: %s was trashed after it, at its name, and came back instead (restore brings back the latest at each name); "+
		"%s deletes it for good; or move %s away (%s) and run `lamina restore %s`",
		keptName(o), what(o.by), purge, trashName(o.by), away, name)
}
