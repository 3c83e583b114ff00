package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

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
