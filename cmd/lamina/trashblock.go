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

// report writes one line per file: what it keeps in the trash, why, and
// the commands that resolve it.
func (bl blocked) report(w io.Writer, prefix string) {
	files := make([]string, 0, len(bl))
	for f := range bl {
		files = append(files, f)
	}
	sort.Strings(files)
	for _, f := range files {
		sort.Strings(bl[f])
		fmt.Fprintf(w, "%s%s\n", prefix, blockedHelp(f, len(bl[f]), someKeys(bl[f])))
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

// superseded maps a trashed file or link that restore FOLDER/ keeps in
// the trash to what, trashed later at its name, came back instead: a
// folder or link removed at its key, or the folder of names under it.
type superseded map[string]catalog.TrashEntry

// latestState picks, where what the trash holds under a folder meets at
// one name, the state trashed last: a file and the folder or link removed
// at its key, or a file or link k and the names under k/. The file or
// link trashed before stays in the trash, restorable by its own name once
// the name is free, and is reported (older). Before, artifacts came
// first, so a file trashed before a folder made at its name came back
// over the folder, whose contents stayed in the trash. A tie keeps that
// order. A file that is newer takes the name as before: its restore takes
// the folder or link at its key out of the trash (Catalog.Restore), and
// what is under it is kept out (blockers). A key written again since
// holds its name: nothing is decided there.
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
		if n.TrashedAt.After(a.TrashedAt) {
			older[a.Key], dropped[id(a)] = n, true
		} else {
			dropped[id(n)] = true
		}
	}
	for _, e := range tl {
		if e.Kind == "folder" || e.Live || dropped[id(e)] {
			continue
		}
		var last time.Time
		for _, u := range tl {
			if strings.HasPrefix(u.Key, e.Key+"/") && u.TrashedAt.After(last) {
				last = u.TrashedAt
			}
		}
		if last.After(e.TrashedAt) {
			older[e.Key] = catalog.TrashEntry{Key: e.Key, Kind: "folder"}
			dropped[id(e)] = true
		}
	}
	keep = slices.DeleteFunc(slices.Clone(tl), func(e catalog.TrashEntry) bool { return dropped[id(e)] })
	return keep, older
}

// report writes one line per name kept in the trash: what took its name,
// and the commands that bring it back.
func (s superseded) report(w io.Writer, prefix string) {
	names := make([]string, 0, len(s))
	for n := range s {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "%s%s\n", prefix, supersededHelp(n, s[n]))
	}
}

// supersededHelp says that key stays in the trash because by, trashed
// after it at its name, came back instead, and what to do.
func supersededHelp(key string, by catalog.TrashEntry) string {
	what, away := "the symbolic link "+by.Key, "mv in a mount"
	if by.Kind == "folder" {
		what, away = "the folder "+by.Key+"/", "mv in a mount, or `lamina delete` of the keys under it"
	}
	return fmt.Sprintf("%s stays in the trash: %s was trashed after it, at its name, and came back instead (restore FOLDER/ brings back the latest at each name); "+
		"`lamina delete --permanent %s` deletes it for good; or move %s away (%s) and run `lamina restore %s`",
		key, what, key, trashName(by), away, key)
}
