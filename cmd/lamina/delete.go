package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/instance"
	"github.com/lamina-bio/lamina/ref"
	"github.com/lamina-bio/lamina/stage"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"
)

func cmdDelete() *cli.Command {
	return &cli.Command{
		Name:      "delete",
		Usage:     "move artifacts (all their versions) to the trash, or delete them for good (--permanent)",
		ArgsUsage: "KEY... | --permanent FOLDER/...",
		Description: "KEY moves the artifact, every version of it, to the trash: lamina restore KEY brings it back.\n" +
			"With --permanent, KEY is deleted for good (a live artifact, or one in the trash), and FOLDER/\n" +
			"deletes for good what is trashed under it (artifacts, folders, links), never a live artifact nor\n" +
			"the trashed versions of a key written again since.\n\n" + examples(
			"lamina delete experiments/exp1/counts.csv",
			"lamina delete --permanent --yes experiments/exp1/counts.csv",
			"lamina delete --permanent --yes experiments/old/ --format json"),
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "permanent", Usage: "remove from the catalog for good (lamina gc then frees the storage)"},
			&cli.BoolFlag{Name: "yes", Aliases: []string{"y"}, Usage: "do not ask before a permanent delete"},
			&cli.BoolFlag{Name: "link", Usage: "with --permanent: KEY names the symbolic link in the trash at KEY, never a live file there (ls --trash says when a file holds a trashed link's name)"},
			&cli.BoolFlag{Name: "force", Usage: "delete for good even versions that collections or runs refer to (they keep a reference to nothing)"},
			formatFlag("table", "json"),
		},
		Action: func(c *cli.Context) error {
			format, err := checkFormat(c, "table", "json")
			if err != nil {
				return err
			}
			keys := c.Args().Slice()
			if len(keys) == 0 {
				return exitf(2, "usage: lamina delete KEY... [--permanent [--yes] [--force]]")
			}
			kp := keyPathsOf(c) // a path into the mount names its key (keypath.go)
			for i, k := range keys {
				ka, err := kp.arg(k, false)
				if err != nil {
					return err
				}
				if ka.Meta {
					// Deleting is for the artifact the sidecar describes:
					// it is named, not guessed.
					key, _, ok := ref.SplitVersion(ka.Spec)
					if !ok {
						key = ka.Spec
					}
					return exitf(2, "%s is a sidecar (.meta), not an artifact: name the artifact to delete it, every version (lamina delete %s)", k, key)
				}
				keys[i] = ka.Spec
			}
			var trees []string   // FOLDER/ with --permanent: what the trash holds under it
			var folders []string // FOLDER/ without: refused once the catalog says what is under it
			oneVersion := ""     // KEY@vN: refused once the catalog says whether KEY is a link
			for i, k := range keys {
				if c.Bool("permanent") && strings.HasSuffix(k, "/") && ref.CheckExistingKey(strings.TrimSuffix(k, "/")) == nil {
					// FOLDER/ as ls --trash shows a removed folder: the
					// trashed tree under it, as restore FOLDER/ takes it.
					trees = append(trees, strings.TrimSuffix(k, "/"))
					keys[i] = ""
					continue
				}
				if strings.HasSuffix(k, "/") && ref.CheckExistingKey(strings.TrimSuffix(k, "/")) == nil {
					folders = append(folders, strings.TrimSuffix(k, "/"))
					keys[i] = ""
					continue
				}
				// No single version can be deleted: say what delete does
				// rather than that the name is bad.
				if key, _, ok := ref.SplitVersion(k); ok && ref.CheckExistingKey(key) == nil {
					if oneVersion == "" {
						oneVersion = k
					}
					continue
				}
				if err := ref.CheckExistingKey(k); err != nil {
					return err
				}
			}
			// A key given twice (or as a path and a key) is one: delete a a
			// trashed a, then failed on "already in the trash".
			seen := map[string]bool{"": true}
			keys = slices.DeleteFunc(keys, func(k string) bool { dup := seen[k]; seen[k] = true; return dup })
			trees = slices.DeleteFunc(trees, func(k string) bool { dup := seen[k+"/"]; seen[k+"/"] = true; return dup })
			in, err := openInstance(c)
			if err != nil {
				return err
			}
			defer in.Close()
			if len(folders) > 0 { // the first refuses the command
				return folderDeleteRefusal(c.Context, in.Catalog, folders[0])
			}
			if oneVersion != "" {
				key, _, _ := ref.SplitVersion(oneVersion)
				if l, ok := linkAt(c.Context, in.Catalog, key); ok {
					return exitf(exitUsage, "%s: %s, not an artifact, and links have no versions: `rm` in the mount removes it; nothing deleted", oneVersion, l)
				}
				return exitf(exitUsage, "%q names one version; delete removes a whole artifact, every version of it: lamina delete %s", oneVersion, key)
			}
			w := c.App.Writer
			// Every key is resolved before anything changes: a missing one
			// refuses the whole command, naming all that are missing.
			var inTrash map[string]bool
			var nodes map[string]string
			if c.Bool("link") {
				if !c.Bool("permanent") || len(trees) > 0 {
					return exitf(2, "--link goes with --permanent and the keys of symbolic links in the trash")
				}
				nodes, err = trashedLinks(c.Context, in.Catalog, keys)
			} else {
				inTrash, nodes, err = resolveDeleteKeys(c.Context, in.Catalog, keys, c.Bool("permanent"))
			}
			if err != nil {
				return err
			}
			// --format json lists what was taken once anything may be,
			// also when a later key fails; a refusal prints nothing.
			taken, changing := []deletedName{}, false
			if format == "json" {
				w = io.Discard // the text
				defer func() {
					if changing {
						writeJSON(c.App.Writer, taken)
					}
				}()
			}
			if !c.Bool("permanent") {
				changing = true
				for _, k := range keys {
					e, err := in.Catalog.Trash(c.Context, k)
					if err != nil {
						return err
					}
					taken = append(taken, deletedName{Key: k, Versions: e.Versions})
					fmt.Fprintf(w, "moved %s (%s) to the trash; `lamina restore %s` brings it back\n", k, plural(e.Versions, "version"), k)
				}
				return nil
			}
			// A purge writes its record to the storage (recordPurged):
			// after a take-over it would land in the new owner's storage,
			// a tombstone of versions its catalog may hold, and its import
			// would stop asking for --partial. Refused as save is, before
			// anything changes. A storage that does not answer is not
			// taken: the record is queued, and the queue asks the owner
			// before it uploads it (queueAllow).
			if err := storageNotTaken(c.Context, in); err != nil {
				return fmt.Errorf("%w\ndelete --permanent records what it deletes in the storage: refused (nothing deleted)", err)
			}
			subtrees := make([]trashTree, len(trees))
			for i, k := range trees {
				if subtrees[i], err = trashedTree(c.Context, in.Catalog, k); err != nil {
					return err
				}
			}
			// A collection or a run that refers to a purged version shows
			// it as nothing (an empty row, a run without that input): say
			// so before, and only go on with --force.
			var artifacts []string // the keys that are not a folder or link in the trash
			for _, k := range keys {
				if nodes[k] == "" {
					artifacts = append(artifacts, k)
				}
			}
			for _, t := range subtrees {
				artifacts = append(artifacts, t.artifacts...)
			}
			refs, err := references(c.Context, in.Catalog, artifacts)
			if err != nil {
				return err
			}
			if len(refs) > 0 && !c.Bool("force") {
				var live []string // the trash is no hint for keys already there
				for _, k := range keys {
					if !inTrash[k] {
						live = append(live, k)
					}
				}
				hint := ""
				if len(live) > 0 {
					hint = fmt.Sprintf("`lamina delete %s` (to the trash) keeps them intact; ", strings.Join(live, " "))
				}
				if slices.ContainsFunc(refs, func(r string) bool { return strings.Contains(r, " is in collection ") }) {
					hint += "`lamina collection delete NAME` deletes a collection no longer wanted; "
				}
				return exitf(1, "refusing to delete for good what other records refer to:\n%s\nThey would refer to nothing. %s--force deletes anyway.",
					listRefs(refs), hint)
			}
			if !c.Bool("yes") {
				if !term.IsTerminal(int(os.Stdin.Fd())) {
					return exitf(2, "refusing to delete for good without a terminal to ask on: add --yes")
				}
				if len(refs) > 0 {
					fmt.Fprintf(c.App.ErrWriter, "These will refer to nothing:\n%s\n", listRefs(refs))
				}
				sizes, err := purgeSizes(c.Context, in.Catalog, keys, nodes) // purgedinfo.go
				if err != nil {
					return err
				}
				fmt.Fprintf(c.App.ErrWriter, "Delete %s for good? This cannot be undone%s. [y/N] ", deleteWhat(keys, sizes, subtrees), gcNote(sizes))
				line, _ := bufio.NewReader(os.Stdin).ReadString('\n')
				if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
					return exitf(1, "nothing deleted")
				}
			}
			kept := 0 // keys written again since they were resolved
			changing = true
			var purged []catalog.Version
			defer func() { recordPurged(c, in, purged) }() // what was purged, even if a later key fails
			for _, k := range keys {
				vs, err := purgeKey(c.Context, in.Catalog, k, nodes[k], inTrash[k])
				if err == nil { // a failed purge rolled back: its versions live on
					purged = append(purged, vs...)
				}
				if errors.Is(err, catalog.ErrWrittenAgain) {
					fmt.Fprintf(c.App.ErrWriter, "lamina: kept %s: written again meanwhile, live now, with its trashed versions (lamina delete --permanent %s deletes every version)\n", k, k)
					kept++
					continue
				}
				if err != nil {
					return err
				}
				taken = append(taken, deletedName{Key: k, Kind: nodes[k], Versions: len(vs), Permanent: true})
				if kind := nodes[k]; kind != "" {
					fmt.Fprintf(w, "deleted the %s %s from the trash for good\n", kind, k)
					continue
				}
				fmt.Fprintf(w, "deleted %s (%s) for good; `lamina gc` frees its storage\n", k, plural(len(vs), "version"))
			}
			for i := range subtrees {
				t := &subtrees[i]
				if err := t.purge(c.Context, in.Catalog, &purged); err != nil {
					return err
				}
				taken = append(taken, t.taken(purged)...)
				if t.count() == "" {
					fmt.Fprintf(w, "deleted nothing under %s/: it was restored or written again meanwhile\n", t.prefix)
					continue
				}
				fmt.Fprintf(w, "deleted from the trash for good under %s/: %s", t.prefix, t.count())
				if len(t.artifacts) > 0 {
					fmt.Fprint(w, "; `lamina gc` frees their storage")
				}
				fmt.Fprintln(w)
				if len(t.rewritten) > 0 {
					note := w
					if format == "json" {
						note = c.App.ErrWriter // not a name taken: said, as a note
					}
					fmt.Fprintf(note, "kept %s written again since, live now, with their trashed versions: %s (lamina delete --permanent KEY deletes every version of one)\n",
						plural(len(t.rewritten), "key"), someKeys(t.rewritten))
				}
			}
			if kept > 0 {
				return exitf(1, "%s kept (above)", plural(kept, "key"))
			}
			return nil
		},
	}
}

// purgeKey deletes key for good: a folder or link in the trash (kind),
// an artifact wholly in the trash (trashed) unless written again since
// (catalog.ErrWrittenAgain), or a live artifact with all its versions.
func purgeKey(ctx context.Context, cat catalog.Catalog, key, kind string, trashed bool) ([]catalog.Version, error) {
	if kind != "" || trashed {
		return cat.PurgeTrashed(ctx, key, kind)
	}
	return cat.Purge(ctx, key)
}

// storageNotTaken returns instance.ErrStorageTaken (wrapped) when another
// instance owns in's storage. A catalog-only command opened it without
// the check; an owner that cannot be read soon is not an error here.
func storageNotTaken(ctx context.Context, in *instance.Instance) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := in.CheckStorage(ctx, false); errors.Is(err, instance.ErrStorageTaken) {
		return err
	}
	return nil
}

// recordPurged writes a tombstone for the versions purged in storage
// (instance.RecordPurged). The purge has committed: a failure is a warning.
func recordPurged(c *cli.Context, in *instance.Instance, vs []catalog.Version) {
	if err := instance.RecordPurged(c.Context, in.Backend, vs); err != nil {
		fmt.Fprintf(c.App.ErrWriter, "lamina: warning: could not record in %s the %s deleted for good (%v): an import-catalog of an export into an instance on this storage will ask for --partial for them\n",
			in.Settings.Storage, plural(len(vs), "version"), err)
	}
}

// trashTree is what the trash holds under a folder (the folder's own
// record too), as delete --permanent FOLDER/ deletes it for good.
type trashTree struct {
	prefix    string               // the folder, without "/"
	artifacts []string             // keys wholly in the trash
	versions  int                  // theirs
	nodes     []catalog.TrashEntry // folders and links
	folders   int                  // how many of nodes are folders
	// rewritten are keys with trashed versions that were written again
	// since: live artifacts, which delete of a folder never touches.
	rewritten []string
}

// trashedTree reads what the trash holds under the folder prefix: a
// folder under which it holds nothing is refused. An artifact at prefix
// itself is no part of the folder.
func trashedTree(ctx context.Context, cat catalog.Catalog, prefix string) (trashTree, error) {
	t := trashTree{prefix: prefix}
	tl, err := cat.TrashList(ctx)
	if err != nil {
		return t, err
	}
	for _, e := range tl {
		if !strings.HasPrefix(e.Key, prefix+"/") && !(e.Kind == "folder" && e.Key == prefix) {
			continue
		}
		switch {
		case e.Kind != "":
			t.nodes = append(t.nodes, e)
			if e.Kind == "folder" {
				t.folders++
			}
		case e.Live:
			t.rewritten = append(t.rewritten, e.Key)
		default:
			t.artifacts = append(t.artifacts, e.Key)
			t.versions += e.Versions
		}
	}
	if len(t.artifacts)+len(t.nodes) == 0 {
		if vs, err := cat.Versions(ctx, prefix, true); err == nil && len(vs) > 0 {
			return t, exitf(2, "%s is an artifact, not a folder, and the trash holds nothing under %s/: lamina delete --permanent %s deletes it and every version of it", prefix, prefix, prefix)
		}
		msg := fmt.Sprintf("the trash holds no artifact, folder or link under %s/", prefix)
		if len(t.rewritten) > 0 {
			msg += fmt.Sprintf(" but trashed versions of %s written again since, which delete of a folder keeps: %s",
				plural(len(t.rewritten), "live key"), strings.Join(t.rewritten, ", "))
		}
		if under, err := cat.List(ctx, catalog.Query{Prefix: prefix + "/", Limit: 1}); err == nil && len(under) > 0 {
			msg += fmt.Sprintf("; its live keys are trashed by `lamina delete KEY...` or rm -r in a mount (lamina ls %s/ lists them)", prefix)
		}
		return t, exitf(exitNotFound, "%s: nothing deleted", msg) // as restore FOLDER/ of nothing
	}
	return t, nil
}

// count says what t holds: "2 artifacts (3 versions), 1 folder, 1 link".
func (t trashTree) count() string {
	var parts []string
	if len(t.artifacts) > 0 {
		parts = append(parts, fmt.Sprintf("%s (%s)", plural(len(t.artifacts), "artifact"), plural(t.versions, "version")))
	}
	if t.folders > 0 {
		parts = append(parts, plural(t.folders, "folder"))
	}
	if links := len(t.nodes) - t.folders; links > 0 {
		parts = append(parts, plural(links, "symbolic link"))
	}
	return strings.Join(parts, ", ")
}

// purge deletes t for good, each key in one transaction that checks
// that it takes nothing live: a key written since the trash was read
// joins t.rewritten, and what was restored meanwhile is not counted.
func (t *trashTree) purge(ctx context.Context, cat catalog.Catalog, purged *[]catalog.Version) error {
	var artifacts []string
	versions := 0
	for _, k := range t.artifacts {
		vs, err := cat.PurgeTrashed(ctx, k, "")
		switch {
		case errors.Is(err, catalog.ErrWrittenAgain):
			t.rewritten = append(t.rewritten, k)
			continue
		case errors.Is(err, catalog.ErrNotFound):
			continue
		case err != nil:
			return err
		}
		artifacts = append(artifacts, k)
		versions += len(vs)
		*purged = append(*purged, vs...)
	}
	t.artifacts, t.versions = artifacts, versions
	var nodes []catalog.TrashEntry
	t.folders = 0
	for _, n := range t.nodes {
		_, err := cat.PurgeTrashed(ctx, n.Key, n.Kind)
		if errors.Is(err, catalog.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		nodes = append(nodes, n)
		if n.Kind == "folder" {
			t.folders++
		}
	}
	t.nodes = nodes
	return nil
}

// deletedName is one name delete took, as its --format json lists it:
// key and kind as ls --trash --format json shows them.
type deletedName struct {
	Key       string `json:"key"`
	Kind      string `json:"kind,omitempty"` // "folder" or "link" in the trash; "" for an artifact
	Versions  int    `json:"versions"`       // the artifact's
	Permanent bool   `json:"permanent"`      // deleted for good, not moved to the trash
}

// taken lists what t.purge deleted for good: its artifacts, with their
// versions among purged, then its folders and links.
func (t *trashTree) taken(purged []catalog.Version) []deletedName {
	var out []deletedName
	for _, k := range t.artifacts {
		n := 0
		for _, v := range purged {
			if v.Key == k {
				n++
			}
		}
		out = append(out, deletedName{Key: k, Versions: n, Permanent: true})
	}
	for _, e := range t.nodes {
		out = append(out, deletedName{Key: e.Key, Kind: e.Kind, Permanent: true})
	}
	return out
}

// deleteWhat names what a permanent delete takes, for its question.
func deleteWhat(keys []string, sizes map[string]purgeSize, trees []trashTree) string {
	var parts []string
	named := make([]string, len(keys))
	for i, k := range keys {
		named[i] = k
		if ps, ok := sizes[k]; ok {
			named[i] += " (" + ps.String() + ")"
		}
	}
	switch len(keys) {
	case 0:
	case 1:
		parts = append(parts, named[0]+" and every version of it")
	default:
		parts = append(parts, strings.Join(named, ", ")+" and every version of them")
	}
	for _, t := range trees {
		parts = append(parts, fmt.Sprintf("what the trash holds under %s/ (%s)", t.prefix, t.count()))
	}
	return strings.Join(parts, ", and ")
}

// folderDelete says what to do with a folder given to delete, which takes
// keys of artifacts.
func folderDelete(dir string) string {
	return fmt.Sprintf("%s/ is a folder of keys: lamina delete takes the keys of artifacts (lamina ls %s/ lists them); rm -r of the folder in a mount trashes all of them, and lamina restore %s/ brings them back", dir, dir, dir)
}

// folderDeleteRefusal is why delete refuses DIR/, never nil (without --permanent):
// a folder of keys is not an artifact (exit 2, what lists them and what
// trashes them, also when only the trash holds keys under it), and under
// a DIR/ that holds no key there is nothing to delete (exit 4).
func folderDeleteRefusal(ctx context.Context, cat catalog.Catalog, dir string) error {
	under, err := cat.List(ctx, catalog.Query{Prefix: dir + "/", Limit: 1})
	if err != nil {
		return err
	}
	if len(under) > 0 {
		return exitf(exitUsage, "%s", folderDelete(dir))
	}
	trash, err := cat.TrashList(ctx)
	if err != nil {
		return err
	}
	for _, t := range trash {
		if strings.HasPrefix(t.Key, dir+"/") {
			return exitf(exitUsage, "%s", folderDelete(dir))
		}
	}
	return exitf(exitNotFound, "no key starts with %s/: nothing deleted", dir)
}

// resolveDeleteKeys checks that every key names an artifact (a live one
// unless permanent) and reports which are wholly in the trash; with
// permanent, a key may also name a folder or link in the trash (nodes:
// key → its kind). It refuses the lot, naming every key that is missing,
// before anything changes.
func resolveDeleteKeys(ctx context.Context, cat catalog.Catalog, keys []string, permanent bool) (inTrash map[string]bool, nodes map[string]string, err error) {
	inTrash, nodes = map[string]bool{}, map[string]string{}
	var missing, trashed []string
	var trash []catalog.TrashEntry // read once, if a key needs it
	for _, k := range keys {
		vs, err := cat.Versions(ctx, k, true)
		if err != nil && !errors.Is(err, catalog.ErrNotFound) {
			return nil, nil, err
		}
		if len(vs) == 0 {
			if under, err := cat.List(ctx, catalog.Query{Prefix: k + "/", Limit: 1}); err == nil && len(under) > 0 {
				return nil, nil, exitf(1, "%s: nothing deleted", folderDelete(k))
			}
			if l, ok := linkAt(ctx, cat, k); ok && !permanent {
				return nil, nil, exitf(exitUsage, "%s, not an artifact: `rm` in the mount removes it; nothing deleted", l)
			}
			if permanent {
				if trash == nil {
					if trash, err = cat.TrashList(ctx); err != nil {
						return nil, nil, err
					}
				}
				if i := slices.IndexFunc(trash, func(e catalog.TrashEntry) bool { return e.Key == k && e.Kind != "" }); i >= 0 {
					if under := trashCount(trash, k+"/"); trash[i].Kind == "folder" && under > 0 {
						// The folder alone would leave what was under it.
						return nil, nil, exitf(1, "%s is a folder in the trash with %s under it: lamina delete --permanent %s/ deletes them all; nothing deleted",
							k, plural(under, "name"), k)
					}
					nodes[k] = trash[i].Kind
					continue
				}
				if under := trashCount(trash, k+"/"); under > 0 {
					missing = append(missing, fmt.Sprintf("%q (the trash holds %s under %s/: lamina delete --permanent %s/ deletes them)", k, plural(under, "name"), k, k))
					continue
				}
			}
			missing = append(missing, fmt.Sprintf("%q", k))
			continue
		}
		inTrash[k] = !slices.ContainsFunc(vs, func(v catalog.Version) bool { return !v.Trashed })
		if inTrash[k] && !permanent {
			trashed = append(trashed, fmt.Sprintf("%q", k))
		}
	}
	var why []string
	if len(missing) > 0 {
		why = append(why, fmt.Sprintf("no artifact has key %s", strings.Join(missing, ", ")))
	}
	if len(trashed) > 0 {
		why = append(why, fmt.Sprintf("%s already in the trash (--permanent deletes for good)", strings.Join(trashed, ", ")))
	}
	if len(why) > 0 {
		code := exitFailure
		if len(trashed) == 0 {
			code = exitNotFound // every refusal is a key that is not there
		}
		return nil, nil, exitf(code, "%s: nothing deleted", strings.Join(why, "; "))
	}
	return inTrash, nodes, nil
}

// trashedLinks checks that the trash holds a symbolic link at each of
// keys (a live file may hold its name: its restore keeps the link), for
// delete --permanent --link, which takes the link alone.
func trashedLinks(ctx context.Context, cat catalog.Catalog, keys []string) (map[string]string, error) {
	tl, err := cat.TrashList(ctx)
	if err != nil {
		return nil, err
	}
	nodes := map[string]string{}
	var missing []string
	for _, k := range keys {
		if slices.ContainsFunc(tl, func(e catalog.TrashEntry) bool { return e.Key == k && e.Kind == "link" }) {
			nodes[k] = "link"
		} else {
			missing = append(missing, fmt.Sprintf("%q", k))
		}
	}
	if len(missing) > 0 {
		return nil, exitf(exitNotFound, "the trash holds no symbolic link at %s: nothing deleted", strings.Join(missing, ", "))
	}
	return nodes, nil
}

// trashCount counts the entries of trash under prefix.
func trashCount(trash []catalog.TrashEntry, prefix string) int {
	n := 0
	for _, e := range trash {
		if strings.HasPrefix(e.Key, prefix) {
			n++
		}
	}
	return n
}

// references lists, for every version of keys (trashed ones too), the
// collections and runs that refer to it: "KEY@vN is in collection C@vM",
// "… is an input of run R" (catalog.References, what a mount's purge of a
// renamed temporary checks too), "… is an output of run R" (the run that
// made it, or one that wrote its bytes again). Annotations are no
// reference here: they go with the version and leave nothing that refers
// to nothing.
func references(ctx context.Context, cat catalog.Catalog, keys []string) ([]string, error) {
	var all []catalog.Version
	for _, k := range keys {
		vs, err := cat.Versions(ctx, k, true)
		if err != nil {
			return nil, err
		}
		all = append(all, vs...)
	}
	none := func(string) (catalog.Annotations, error) { return catalog.Annotations{}, nil }
	collections := func(uids []string) ([]catalog.Collection, error) {
		cs, err := cat.Collections(ctx)
		if err != nil {
			return nil, err
		}
		var out []catalog.Collection
		for _, c := range cs {
			cvs, err := cat.CollectionVersions(ctx, c.Name)
			if err != nil {
				return nil, err
			}
			out = append(out, cvs...)
		}
		return out, nil
	}
	out, err := catalog.References(all, none, func(uid string) ([]string, error) { return cat.UsedBy(ctx, uid) }, collections)
	if err != nil {
		return nil, err
	}
	for _, v := range all {
		if v.Run != "" {
			out = append(out, fmt.Sprintf("%s is an output of run %s", v.Ref(), v.Run))
		}
		// Runs that wrote its bytes again; a daemon of an older lamina
		// knows none.
		again, err := cat.Reruns(ctx, v.UID)
		if err != nil && !errors.Is(err, errors.ErrUnsupported) {
			return nil, err
		}
		for _, r := range again {
			out = append(out, fmt.Sprintf("%s is an output of run %s (it wrote the same bytes again)", v.Ref(), r))
		}
	}
	return out, nil
}

// someKeys joins keys, at most 10 of them: a tree written again while
// it was purged may hold thousands.
func someKeys(keys []string) string {
	const most = 10
	if len(keys) > most {
		return strings.Join(keys[:most], ", ") + fmt.Sprintf(" … and %d more", len(keys)-most)
	}
	return strings.Join(keys, ", ")
}

// listRefs indents references, at most 10 of them.
func listRefs(refs []string) string {
	const most = 10
	if len(refs) > most {
		refs = append(refs[:most:most], fmt.Sprintf("… and %d more", len(refs)-most))
	}
	return "  " + strings.Join(refs, "\n  ")
}

func cmdRestore() *cli.Command {
	return &cli.Command{
		Name:      "restore",
		Usage:     "bring artifacts' versions, folders and symbolic links back from the trash",
		ArgsUsage: "KEY|UID|KEY@vN|FOLDER/...",
		Description: "KEY brings back every trashed version of it. UID (of a trashed version) brings back that version's\n" +
			"trash entry, the versions one delete or rm trashed together with it, and leaves those of the key\n" +
			"trashed at other times (ls --versions KEY numbers the entries, ENTRY, and shows when each was trashed).\n" +
			"KEY@vN is vN's UID when vN was trashed alone, else it is refused. FOLDER/ brings back what its\n" +
			"removal took (rm -r in a mount): artifacts, folders with their modes, empty ones, symbolic links;\n" +
			"what tools unlinked under it before (lock files, journals) stays in the trash, restorable by KEY.\n" +
			"Every argument is checked first: if one names nothing in the trash or what cannot come back,\n" +
			"nothing is restored.\n\n" + examples(
			"lamina restore experiments/exp1/counts.csv",
			"lamina restore experiments/exp1/counts.csv experiments/exp1/batch1.csv",
			"lamina restore experiments/old/ --format json"),
		Flags: []cli.Flag{formatFlag("table", "json")},
		Action: func(c *cli.Context) error {
			format, err := checkFormat(c, "table", "json")
			if err != nil {
				return err
			}
			if c.NArg() == 0 {
				return exitf(2, "usage: lamina restore KEY|UID|KEY@vN|FOLDER/...")
			}
			in, err := openInstance(c)
			if err != nil {
				return err
			}
			defer in.Close()
			failed := 0
			bl := blocked{}            // names under FOLDER/ that a live file above them keeps out
			notes := blocked{}         // names under a file restored by its KEY, which it keeps out
			older := superseded{}      // names under FOLDER/ that a later one at their name keeps out
			var earlier []earlierUnder // names trashed under FOLDER/ before its removal
			// Keys an earlier argument took (restored, kept out, failed):
			// overlapping arguments (c4/ and c4/f/, or one twice) take
			// each name once, and report it once.
			done := map[string]bool{}
			back := map[string]bool{}  // what came back, as ls --trash names it
			byUID := map[string]bool{} // keys a uid argument restored a trash entry of
			// A path into the mount names its key (keypath.go); a bare
			// name given in the mount that is a uid (prefix) stays one.
			kp := keyPathsOf(c).withUIDs(c.Context, in.Catalog)
			// Every argument is resolved and checked before anything comes
			// back: one that names nothing in the trash, or what cannot come
			// back, refuses the lot, and the error names each such argument.
			// Before, restore a nosuch restored a, then failed.
			var args []keyArg
			var bad []error
			for _, a := range c.Args().Slice() {
				ka, err := kp.arg(a, false)
				if err != nil {
					bad = append(bad, err)
					continue
				}
				if vk, n, ok := ref.SplitVersion(ka.Spec); ok {
					// KEY@vN is its uid when vN is all its trash entry
					// would bring back.
					uid, err := onlyTrashedVersion(c.Context, in.Catalog, ka.Spec, vk, n)
					if err != nil {
						bad = append(bad, err)
						continue
					}
					// As its uid: the file version, never a link or folder
					// trashed at KEY after it (latestAt would pick those).
					ka.Spec = uid
				}
				args = append(args, ka)
			}
			uids, err := checkRestore(c.Context, in, args, bad)
			if err != nil {
				return err
			}
			// --format json lists what came back (as ls --trash --format
			// json named it), also when a name fails.
			restored, out := []restoredName{}, c.App.Writer
			if format == "json" {
				out = io.Discard
				defer func() { writeJSON(c.App.Writer, restored) }()
			}
			for _, ka := range args {
				k := ka.Spec
				var entries []catalog.TrashEntry
				if strings.HasSuffix(k, "/") {
					var later superseded
					var before []catalog.TrashEntry
					if entries, later, before, err = latestUnder(c.Context, in.Catalog, k); err != nil {
						if errors.Is(err, catalog.ErrNotFound) && doneUnder(done, k) {
							continue // an earlier argument took it all
						}
						return err
					}
					maps.Copy(older, later)
					if len(before) > 0 {
						earlier = append(earlier, earlierUnder{k, before})
					}
				} else if done[k] {
					continue
				} else if err := folderWithoutSlash(c.Context, in.Catalog, k); err != nil {
					return err
				} else if te, later, err := latestAt(c.Context, in.Catalog, k); err != nil {
					return err
				} else {
					entries = []catalog.TrashEntry{te}
					maps.Copy(older, later)
				}
				holders := newBlockers(in.Catalog)
				for _, te := range entries {
					key := te.Key
					if done[key] {
						continue
					}
					done[key] = true
					if strings.HasSuffix(k, "/") {
						// Under a live file (restored just before, in this
						// loop, too: artifacts come first), a name cannot
						// come back: not an error per name, one report.
						if f, err := holders.of(c.Context, key); err != nil {
							return err
						} else if f != "" {
							bl.add(f, te)
							continue
						}
						if te.Kind == "link" {
							// A file holds the link's own name.
							if f, err := holders.at(c.Context, key); err != nil {
								return err
							} else if f != "" {
								bl.add(f, te)
								continue
							}
						}
					}
					var e catalog.TrashEntry
					if te.Kind != "" {
						// The folder or link, not a file trashed at its key
						// before it (latestState).
						e, err = in.Catalog.RestoreNode(c.Context, key)
					} else {
						e, err = in.Catalog.Restore(c.Context, key)
					}
					if errors.Is(err, catalog.ErrNotFound) && !strings.HasSuffix(k, "/") && !ka.Path {
						// A uid or uid prefix (of 8+) of a trashed version:
						// its trash entry, not the key's others (restoreUID).
						if v, ok := uids[k]; ok {
							if done[v.Key] || done[trashEntryID(v)] {
								continue // an earlier argument took it
							}
							key = v.Key
							done[trashEntryID(v)] = true
							byUID[key] = true
							e, err = restoreUID(c.Context, in.Catalog, v)
						}
					}
					if errors.Is(err, catalog.ErrNotFound) && byUID[key] {
						continue // a uid before it took what the trash held at key
					}
					if errors.Is(err, catalog.ErrConflict) {
						// Written meanwhile, maybe: look again.
						if f, _ := newBlockers(in.Catalog).of(c.Context, key); f != "" {
							if strings.HasSuffix(k, "/") {
								bl.add(f, te)
								continue
							}
							err = fmt.Errorf("%w\n%s", err, blockedKeyHelp(f, key))
						} else if linkHeld(c.Context, in.Catalog, key) {
							err = fmt.Errorf("%w\n%s", err, linkHeldHelp(key))
						} else if te.Kind == "" {
							// The other way round: a trashed file whose
							// name a folder of live keys holds now.
							if under, _ := in.Catalog.List(c.Context, catalog.Query{Prefix: key + "/", Limit: 1}); len(under) > 0 {
								err = fmt.Errorf("%w\n%s", err, folderHoldsHelp(key))
							}
						}
					}
					if err != nil && len(entries) == 1 && !strings.HasSuffix(k, "/") {
						if errors.Is(err, catalog.ErrNotFound) {
							if under, _ := trashedUnder(c.Context, in.Catalog, k+"/"); len(under) > 0 {
								return fmt.Errorf("%w (the trash holds %s under %s/: restore them with `lamina restore %s/`)", err, plural(len(under), "name"), k, k)
							}
						}
						return err
					}
					if err != nil {
						fmt.Fprintf(c.App.ErrWriter, "lamina: %s not restored: %v\n", key, err)
						failed++
						continue
					}
					back[trashName(e)] = true
					restored = append(restored, restoredName{Key: key, Kind: e.Kind, Versions: e.Versions})
					switch e.Kind {
					case "folder":
						fmt.Fprintf(out, "restored %s/ (folder)\n", key)
					case "link":
						fmt.Fprintf(out, "restored %s (symbolic link)\n", key)
					default:
						fmt.Fprintf(out, "restored %s (%s)\n", key, plural(e.Versions, "version"))
						holders.live[key] = true
						if strings.HasSuffix(k, "/") {
							continue // what it keeps out is reported below
						}
						// The file now holds the name of a folder whose
						// contents are in the trash: say so once, below.
						if under, err := trashedBeneath(c.Context, in.Catalog, key); err == nil {
							for _, u := range under {
								notes.add(key, u)
							}
						}
						// A link trashed at its key stays there (a uid
						// names a file older than it): say so, once.
						if _, ok := older[key+"\x00link"]; !ok {
							if tl, err := in.Catalog.TrashList(c.Context); err == nil && slices.ContainsFunc(tl, func(t catalog.TrashEntry) bool {
								return t.Key == key && t.Kind == "link"
							}) {
								notes.add(key, catalog.TrashEntry{Key: key, Kind: "link"})
							}
						}
					}
				}
			}
			// A name a FOLDER/ argument reports as not restored is not
			// noted again.
			notes.without(bl).report(c.App.ErrWriter, "lamina: ")
			bl.report(c.App.ErrWriter, "lamina: not restored: ")
			older.report(c.App.ErrWriter, "lamina: not restored: ", func(by catalog.TrashEntry) bool {
				if by.Kind != "folder" {
					return back[by.Key]
				}
				for n := range back { // the folder, or a name under it
					if strings.HasPrefix(n, by.Key+"/") {
						return true
					}
				}
				return false
			})
			failed += len(older) // kept for what was trashed later at their names
			if len(earlier) > 0 {
				// Reported if still there: another argument may have taken it.
				if tl, err := in.Catalog.TrashList(c.Context); err == nil {
					held := map[string]bool{}
					for _, t := range tl {
						held[t.Key+"\x00"+t.Kind] = true
					}
					for _, u := range earlier {
						u.report(c.App.ErrWriter, held)
					}
				}
			}
			switch n := bl.count(); {
			case failed > 0 && n > 0:
				return exitf(1, "%s not restored (above), and %s kept in the trash: %s (above)", plural(failed, "name"), plural(n, "name"), bl.why())
			case failed > 0:
				return exitf(1, "%s not restored (above)", plural(failed, "name"))
			case n > 0:
				return exitf(1, "%s kept in the trash: %s (above)", plural(n, "name"), bl.why())
			}
			return nil
		},
	}
}

// earlierUnder is what restore FOLDER/ left in the trash under folder:
// names trashed there before the folder's removal began (beforeRemoval).
type earlierUnder struct {
	folder string // FOLDER/
	names  []catalog.TrashEntry
}

// report says in one line how many names u left in the trash and how to
// bring one back, of those the trash still holds (held: key and kind).
func (u earlierUnder) report(w io.Writer, held map[string]bool) {
	var names []string
	for _, e := range u.names {
		if held[e.Key+"\x00"+e.Kind] {
			held[e.Key+"\x00"+e.Kind] = false // once
			names = append(names, trashName(e))
		}
	}
	if len(names) == 0 {
		return
	}
	stay := "stay"
	if len(names) == 1 {
		stay = "stays"
	}
	// A folder emptied file by file (a shell loop of rm, then rmdir)
	// leaves all its files here: the second way brings them back at once.
	fmt.Fprintf(w, "lamina: %s under %s, trashed before its removal began, %s in the trash (%s): `lamina restore KEY` brings one back, `lamina restore %s` again all of them\n",
		plural(len(names), "name"), u.folder, stay, someKeys(names), u.folder)
}

// restoredName is one name restore brought back, as its --format json
// lists it: key and kind as ls --trash --format json showed them.
type restoredName struct {
	Key      string `json:"key"`
	Kind     string `json:"kind,omitempty"` // "folder" or "link"; "" for an artifact
	Versions int    `json:"versions"`       // the artifact's versions that came back
}

// trashEntryID names the trash entry of the trashed version v (its key
// and when it was trashed), for restore's done: two uids of one entry
// restore it once, uids of two entries both.
func trashEntryID(v catalog.Version) string {
	if v.TrashedAt == nil {
		return v.Key + "\x00" // the entry of those without a time (TrashedWith)
	}
	return v.Key + "\x00" + v.TrashedAt.Format(time.RFC3339Nano)
}

// checkRestore resolves every argument of restore before anything comes
// back, as the restore loop will take it: FOLDER/ must have something in
// the trash under it (unless an earlier argument takes it); KEY must name
// what the trash holds at KEY, or be a uid (prefix) of a trashed version;
// and a key whose file has no live version must have its place free (no
// live file above it, no folder of live keys or symbolic link at it), as
// must a symbolic link. bad are the arguments already refused. It returns
// nil, or an error naming every bad argument: nothing is restored. What
// changes meanwhile (a save racing the restore) the restore loop still
// reports per name.
func checkRestore(ctx context.Context, in *instance.Instance, args []keyArg, bad []error) (uids map[string]catalog.Version, err error) {
	cat := in.Catalog
	tl, err := cat.TrashList(ctx)
	if err != nil {
		return nil, err
	}
	uids = map[string]catalog.Version{}
	claimed := map[string]bool{} // keys an earlier argument takes
	holders := newBlockers(cat)
	for _, ka := range args {
		k := ka.Spec
		if strings.HasSuffix(k, "/") {
			under, _, _, err := latestUnder(ctx, cat, k)
			if errors.Is(err, catalog.ErrNotFound) && doneUnder(claimed, k) {
				continue
			}
			if err != nil {
				bad = append(bad, err)
				continue
			}
			for _, u := range under {
				claimed[u.Key] = true
			}
			continue
		}
		if claimed[k] {
			continue
		}
		if err := folderWithoutSlash(ctx, cat, k); err != nil {
			bad = append(bad, err)
			continue
		}
		key, kind, live := k, "", false
		if i := slices.IndexFunc(tl, func(e catalog.TrashEntry) bool { return e.Key == k }); i >= 0 {
			te, _, err := latestAt(ctx, cat, k)
			if err != nil {
				return nil, err
			}
			// What the restore loop brings back: the file at k, else
			// the folder or link there.
			kind, live = te.Kind, tl[i].Live && tl[i].Kind == ""
			if kind == "" && tl[i].Kind != "" {
				kind = tl[i].Kind
			}
		} else {
			// A uid or uid prefix (of 8+) of a trashed version.
			var v catalog.Version
			uerr := catalog.ErrNotFound
			if !ka.Path {
				v, uerr = in.Resolve(ctx, k)
			}
			var amb *catalog.AmbiguousError
			switch {
			case errors.As(uerr, &amb):
				bad = append(bad, uerr)
				continue
			case uerr != nil:
				bad = append(bad, catalog.Errorf(catalog.ErrNotFound, "%q has nothing in the trash%s", k, purgedNote(ctx, cat, k))) // purgedinfo.go
				continue
			case v.Key == k:
				bad = append(bad, catalog.Errorf(catalog.ErrNotFound, "%q has nothing in the trash", k))
				continue
			case !v.Trashed:
				bad = append(bad, catalog.Errorf(catalog.ErrNotFound, "%s is %s, which is not in the trash", k, v.Ref()))
				continue
			}
			uids[k] = v // as it was before any came back
			key = v.Key
			if claimed[key] {
				continue
			}
			if lv, err := cat.ByKey(ctx, key, 0); err == nil && lv.Key == key {
				live = true
			}
		}
		claimed[key] = true
		if live {
			continue // its trashed versions come back beside the live ones
		}
		if f, err := holders.of(ctx, key); err != nil {
			return nil, err
		} else if f != "" {
			bad = append(bad, catalog.Errorf(catalog.ErrConflict, "%s", blockedKeyHelp(f, key)))
			continue
		}
		switch kind {
		case "folder":
			if f, err := holders.at(ctx, key); err != nil {
				return nil, err
			} else if f != "" {
				bad = append(bad, catalog.Errorf(catalog.ErrConflict, "the folder %s/ cannot be restored while the file %s holds its name", key, key))
			}
		case "link":
			if linkHeld(ctx, cat, key) {
				bad = append(bad, catalog.Errorf(catalog.ErrConflict, "%q is a file: %s", key, linkHeldHelp(key)))
			}
		case "":
			if under, err := cat.List(ctx, catalog.Query{Prefix: key + "/", Limit: 1}); err != nil {
				return nil, err
			} else if len(under) > 0 {
				bad = append(bad, catalog.Errorf(catalog.ErrConflict, "%s", folderHoldsHelp(key)))
			}
		}
	}
	switch len(bad) {
	case 0:
		return uids, nil
	case 1:
		return nil, fmt.Errorf("%w; nothing restored", bad[0])
	}
	// A usage error (2) if one is; not found (4) when every argument is
	// not there; else 1.
	codes, msgs := map[int]bool{}, make([]string, len(bad))
	for i, err := range bad {
		codes[codeFor(err)] = true
		msgs[i] = "  " + strings.ReplaceAll(err.Error(), "\n", "\n  ")
	}
	code := exitFailure
	switch {
	case codes[exitUsage]:
		code = exitUsage
	case len(codes) == 1 && codes[exitNotFound]:
		code = exitNotFound
	}
	return nil, exitf(code, "nothing restored: %d arguments cannot be:\n%s", len(bad), strings.Join(msgs, "\n"))
}

// latestAt is what restore KEY brings back where the trash holds a file
// and a link removed at key: the one trashed last, the other
// kept (older). Before, the file always came back, and its restore took
// a link trashed after it out of the trash for good. A key with nothing
// but one of them (or a uid) is restored as named.
func latestAt(ctx context.Context, cat catalog.Catalog, key string) (catalog.TrashEntry, superseded, error) {
	te := catalog.TrashEntry{Key: key}
	tl, err := cat.TrashList(ctx)
	if err != nil {
		return te, nil, err
	}
	tl = slices.DeleteFunc(tl, func(e catalog.TrashEntry) bool { return e.Key != key })
	// A folder record alone is not the folder (what was under it comes
	// back with restore k/): restore k brings the file back over it.
	if len(tl) != 2 || tl[0].Kind != "" || tl[0].Live || tl[1].Kind != "link" {
		return te, nil, nil
	}
	older := superseded{}
	file, node := tl[0], tl[1]
	switch {
	case node.TrashedAt.After(file.TrashedAt):
		older.add(file, node)
		return node, older, nil
	default:
		older.add(node, file) // Catalog.Restore keeps it
	}
	return te, older, nil
}

// onlyTrashedVersion checks that spec (KEY@vN) names a version of key in
// the trash that was trashed alone (its trash entry, trashedTogether, holds
// no other version), and returns its uid, by which it is restored (the
// file, not a link or folder trashed at KEY after it). Bringing back vN
// alone out of an entry would leave a gap in the key's history, and
// restoring every trashed version for KEY@vN brought back more than was
// asked (v1..v3 for restore k@v1, v3 the latest). Anything else is refused
// with what the trash holds and the command that brings it back.
func onlyTrashedVersion(ctx context.Context, cat catalog.Catalog, spec, key string, n int) (string, error) {
	if _, err := ref.ParseSpec(spec); err != nil {
		return "", err
	}
	vs, err := cat.Versions(ctx, key, true)
	if err != nil && !errors.Is(err, catalog.ErrNotFound) {
		return "", err
	}
	var trashed []int
	var v catalog.Version
	found := false
	for _, o := range vs {
		if o.Trashed {
			trashed = append(trashed, o.Version)
		}
		if o.Version == n {
			found, v = true, o
		}
	}
	held := ""
	if len(trashed) > 0 {
		held = fmt.Sprintf(" (the trash holds %s of it: `lamina restore %s` brings %s back)", versionRange(trashed), key, map[bool]string{true: "it", false: "them"}[len(trashed) == 1])
	}
	switch {
	case !found && len(vs) == 0:
		return "", catalog.Errorf(catalog.ErrNotFound, "%q has no versions, live or in the trash", key)
	case !found:
		// As get and show say it (the catalog's ByKey).
		latest := 0
		for _, o := range vs {
			latest = max(latest, o.Version)
		}
		return "", catalog.Errorf(catalog.ErrNotFound, "%q has no version %d (latest is %d)%s", key, n, latest, held)
	case !v.Trashed:
		return "", catalog.Errorf(catalog.ErrNotFound, "%s is not in the trash%s", spec, held)
	}
	entries := trashedTogether(vs)
	if len(entries) == 1 && len(trashed) > 1 {
		return "", exitf(2, "restore works per key: %s is one of %d versions of %s in the trash (%s), and one alone cannot come back; `lamina restore %s` brings back all %d", spec, len(trashed), key, versionRange(trashed), key, len(trashed))
	}
	for _, e := range entries {
		if !catalog.TrashedWith(e[0], v) || len(e) == 1 {
			continue
		}
		return "", exitf(2, "restore works per trash entry: %s was trashed together with %s (%s of %s), and one alone cannot come back; `lamina restore %s` (its uid) brings back those %d, `lamina restore %s` all %d versions of %s in the trash (%s)",
			spec, plural(len(e)-1, "other version"), versionRange(numbers(e)), key, v.UID, len(e), key, len(trashed), key, versionRange(trashed))
	}
	return v.UID, nil
}

// trashedTogether groups the trashed versions of one key, vs, by their
// trash entry: those one delete, rm or rename trashed together (the
// same TrashedAt), oldest entry first. Those without a TrashedAt (an
// edited export imported) are one entry, first: they were skipped, and a
// key with no other entries was restored whole for one uid or KEY@vN.
func trashedTogether(vs []catalog.Version) [][]catalog.Version {
	var out [][]catalog.Version
	for _, v := range vs {
		if !v.Trashed {
			continue
		}
		i := slices.IndexFunc(out, func(e []catalog.Version) bool { return catalog.TrashedWith(v, e[0]) })
		if i < 0 {
			out = append(out, nil)
			i = len(out) - 1
		}
		out[i] = append(out[i], v)
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i][0].TrashedAt, out[j][0].TrashedAt
		return a == nil && b != nil || a != nil && b != nil && a.Before(*b)
	})
	return out
}

// numbers lists the version numbers of vs.
func numbers(vs []catalog.Version) []int {
	ns := make([]int, len(vs))
	for i, v := range vs {
		ns[i] = v.Version
	}
	return ns
}

// restoreUID brings back the trash entry of the trashed version v (named
// by its uid): v and the versions of its key trashed together with it,
// not those trashed at other times. Only a daemon too old for
// RestoreTrashedWith, where the key's one entry is all it has in the
// trash, gets restore KEY instead; never else (it brought back every
// trashed version of the key when those had no TrashedAt).
func restoreUID(ctx context.Context, cat catalog.Catalog, v catalog.Version) (catalog.TrashEntry, error) {
	vs, err := cat.Versions(ctx, v.Key, true)
	if err != nil {
		return catalog.TrashEntry{}, err
	}
	entries := trashedTogether(vs)
	e, err := cat.RestoreTrashedWith(ctx, v.UID)
	if errors.Is(err, errors.ErrUnsupported) && len(entries) == 1 && slices.ContainsFunc(entries[0], func(o catalog.Version) bool { return o.UID == v.UID }) {
		return cat.Restore(ctx, v.Key)
	}
	if errors.Is(err, errors.ErrUnsupported) {
		return e, fmt.Errorf("%s (%s) is one of %d trash entries of %s, and the daemon serving this catalog is too old to restore one alone: unmount and mount again with this lamina; `lamina restore %s` brings back all of them", v.UID, v.Ref(), len(entries), v.Key, v.Key)
	}
	return e, err
}

// versionRange names version numbers (ascending) as "v1..v3", "v2", or
// "v1, v3" when they have gaps.
func versionRange(ns []int) string {
	if len(ns) == 1 {
		return fmt.Sprintf("v%d", ns[0])
	}
	if ns[len(ns)-1]-ns[0] == len(ns)-1 {
		return fmt.Sprintf("v%d..v%d", ns[0], ns[len(ns)-1])
	}
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = fmt.Sprintf("v%d", n)
	}
	return strings.Join(s, ", ")
}

// doneUnder says whether done holds a key under the folder prefix
// (ending in "/"), or the folder's own.
func doneUnder(done map[string]bool, prefix string) bool {
	for k := range done {
		if strings.HasPrefix(k, prefix) || k+"/" == prefix {
			return true
		}
	}
	return false
}

// folderWithoutSlash refuses a folder removed with what was under it
// (rm -r) named without its slash: restoring the folder alone would leave
// its contents in the trash. A key with trashed versions of its own is no
// such folder.
func folderWithoutSlash(ctx context.Context, cat catalog.Catalog, k string) error {
	under, _ := trashedUnder(ctx, cat, k+"/")
	if !slices.ContainsFunc(under, func(u catalog.TrashEntry) bool { return u.Key != k }) {
		return nil
	}
	if vs, _ := cat.Versions(ctx, k, true); slices.ContainsFunc(vs, func(v catalog.Version) bool { return v.Trashed }) {
		return nil
	}
	// A live file at k (a save at k after rm -r k) or above it holds the
	// folder's name: restore k/ would refuse what is under it, so say
	// that rather than point there.
	f, err := newBlockers(cat).of(ctx, k+"/")
	if err != nil {
		return err
	}
	if f != "" {
		names := blocked{}
		for _, u := range under {
			if u.Key != f {
				names.add(f, u)
			}
		}
		what := k + " has no version in the trash"
		if f == k {
			what = k + " is a file now, with no version in the trash"
		}
		sort.Strings(names[f]) // as restore k/ lists them
		return exitf(1, "%s; %s", what, blockedHelp(f, len(names[f]), someKeys(names[f])))
	}
	// Not found (4), said without the sentinel's "not found: ".
	return catalog.Errorf(catalog.ErrNotFound, "%s is a folder; the trash holds %s under %s/: restore them with `lamina restore %s/`",
		k, plural(len(under), "name"), k, k)
}

// trashedUnder lists what the trash holds under the folder prefix
// (ending in "/"), one entry a key, in the order to restore them:
// artifacts, then folders (the prefix's own too: rm -r removed it), then
// links. A key written again since is among them, as restore of it by name
// brings its trashed versions back beside the new ones. Empty if there are
// none; an error says so.
func trashedUnder(ctx context.Context, cat catalog.Catalog, prefix string) ([]catalog.TrashEntry, error) {
	out, _, _, err := listUnder(ctx, cat, prefix, false)
	return out, err
}

// latestUnder is trashedUnder, less what was trashed under a removed
// folder before its removal began (beforeRemoval), which it returns as
// before, and less what a name trashed later at its name keeps in the
// trash (latestState), which it returns as older: what restore FOLDER/
// brings back.
func latestUnder(ctx context.Context, cat catalog.Catalog, prefix string) ([]catalog.TrashEntry, superseded, []catalog.TrashEntry, error) {
	return listUnder(ctx, cat, prefix, true)
}

func listUnder(ctx context.Context, cat catalog.Catalog, prefix string, latest bool) ([]catalog.TrashEntry, superseded, []catalog.TrashEntry, error) {
	tl, err := cat.TrashList(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	rank := map[string]int{"": 0, "folder": 1, "link": 2}
	tl = slices.DeleteFunc(tl, func(e catalog.TrashEntry) bool {
		under := strings.HasPrefix(e.Key, prefix) || (e.Kind == "folder" && e.Key+"/" == prefix)
		return !under
	})
	var older superseded
	var before []catalog.TrashEntry
	if latest {
		tl, before = beforeRemoval(tl, prefix)
		tl, older = latestState(tl)
	}
	sort.SliceStable(tl, func(i, j int) bool {
		if rank[tl[i].Kind] != rank[tl[j].Kind] {
			return rank[tl[i].Kind] < rank[tl[j].Kind]
		}
		return tl[i].Key < tl[j].Key
	})
	var out []catalog.TrashEntry
	seen := map[string]bool{}
	for _, e := range tl {
		if !seen[e.Key] {
			seen[e.Key] = true
			out = append(out, e)
		}
	}
	if len(out) == 0 {
		// A move onto the names (mv dir newdir) or a save there takes
		// folders and links out of the trash too: say all it looked for.
		return nil, nil, nil, catalog.Errorf(catalog.ErrNotFound, "the trash holds no artifact, folder or symbolic link under %s", prefix)
	}
	return out, older, before, nil
}

// beforeRemoval splits what the trash holds under the folder prefix (tl)
// into what restore FOLDER/ brings back (keep) and what was trashed under
// a removed folder before the removal that emptied it began (before: its
// TrashEntry.RemovalFrom, which the mount records at rmdir). Those names
// were gone when the folder was removed: the lock files, journals and
// placeholders tools make and unlink, and what an earlier removal of a
// folder made again at that name took. Restoring them brought back a hot
// SQLite journal, which rolled the database back, and git's HEAD.lock
// (audit b4). Every removed folder between an entry and prefix (inclusive)
// decides; a folder without a RemovalFrom (removed by an older build, or
// none removed: keys deleted from the CLI) keeps all.
func beforeRemoval(tl []catalog.TrashEntry, prefix string) (keep, before []catalog.TrashEntry) {
	from := map[string]time.Time{}
	for _, e := range tl {
		if e.Kind == "folder" && e.RemovalFrom != nil {
			from[e.Key] = *e.RemovalFrom
		}
	}
	if len(from) == 0 {
		return tl, nil
	}
	top := strings.TrimSuffix(prefix, "/")
	for _, e := range tl {
		earlier := false
		for k := e.Key; !earlier; {
			i := strings.LastIndexByte(k, '/')
			if i < len(top) {
				break // above the folder restored
			}
			k = k[:i]
			if f, ok := from[k]; ok && e.TrashedAt.Before(f) {
				earlier = true
			}
		}
		if earlier {
			before = append(before, e)
		} else {
			keep = append(keep, e)
		}
	}
	return keep, before
}

func cmdGC() *cli.Command {
	return &cli.Command{
		Name:  "gc",
		Usage: "delete stored data that no version references any more",
		Flags: []cli.Flag{
			&cli.DurationFlag{Name: "grace", Value: 24 * time.Hour, Usage: "keep unreferenced data younger than this (a save in progress may be about to use it)"},
			&cli.DurationFlag{Name: "settle", Value: cache.MinSettle, Usage: "how long data stays marked for deletion before gc checks the catalog again and deletes it, so that saves running meanwhile on any machine are safe; 0s deletes at once (only when nothing else saves to this storage)"},
			&cli.BoolFlag{Name: "dry-run", Usage: "count what would be deleted, delete nothing"},
			formatFlag("table", "json"),
		},
		Action: func(c *cli.Context) error {
			format, err := checkFormat(c, "table", "json")
			if err != nil {
				return err
			}
			for _, n := range []string{"grace", "settle"} {
				if d := c.Duration(n); d < 0 {
					return exitf(2, "--%s %s: a duration may not be negative", n, d)
				}
			}
			in, err := openInstance(c)
			if err != nil {
				return err
			}
			defer in.Close()
			settle := c.Duration("settle")
			if settle > 0 && settle < cache.MinSettle {
				fmt.Fprintf(c.App.ErrWriter, "lamina: warning: with --settle under %s a save on another machine, meanwhile or in the next minute, may reuse data gc deletes and lose its version; use 0s only when nothing else saves to this storage\n", cache.MinSettle)
			}
			st, err := in.GC(c.Context, instance.GCOptions{
				Grace: c.Duration("grace"), Settle: settle, DryRun: c.Bool("dry-run"),
				// What this machine's mounts still read of versions
				// deleted for good meanwhile (an append's lazy copy).
				Held: func() ([]string, error) { return stage.Heads(stagingDir(in.Settings)) },
				Waiting: func(packs int, size int64, settle time.Duration) {
					fmt.Fprintf(c.App.ErrWriter, "marked %d packs (%s) for deletion; waiting %s for saves that may still use them (--settle)\n",
						packs, humanBytes(size), settle)
				},
			})
			if errors.Is(err, context.Canceled) {
				return fmt.Errorf("gc interrupted: the packs it marked and had not deleted keep their marks; the next gc deletes them (or keeps those a version uses again)")
			}
			if err != nil {
				return err
			}
			if format == "json" {
				return writeJSON(c.App.Writer, st)
			}
			verb := "deleted"
			if c.Bool("dry-run") {
				verb = "would delete"
			}
			fmt.Fprintf(c.App.Writer, "%s %d of %d packs (%s); %d unreferenced packs younger than %s kept; %s of unreferenced data inside packs still in use; %d versions keep their data\n",
				verb, st.DeadPacks, st.Packs, humanBytes(st.DeletedBytes), st.YoungPacks, c.Duration("grace"), humanBytes(st.DeadInLive), st.Versions)
			if st.Pardoned > 0 {
				fmt.Fprintf(c.App.Writer, "%d packs marked for deletion were kept: a version uses them again\n", st.Pardoned)
			}
			if st.Unreadable > 0 {
				fmt.Fprintf(c.App.ErrWriter, "lamina: warning: %d packs could not be read and were kept\n", st.Unreadable)
			}
			return nil
		},
	}
}
