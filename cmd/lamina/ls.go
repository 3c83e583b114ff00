package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/ref"
	"github.com/urfave/cli/v2"
)

func cmdLs() *cli.Command {
	return &cli.Command{
		Name:      "ls",
		Usage:     "list the latest versions under a key prefix, every version of a key, or the trash",
		ArgsUsage: "[PREFIX | KEY]",
		Description: "PREFIX is text the keys start with, not a folder name: ls exp lists experiments/… and exp2.csv\n" +
			"too. End it with / to list what is under one folder: ls exp/.\n\n" + examples(
			"lamina ls experiments/",
			"lamina ls --versions experiments/exp1/counts.csv",
			"lamina ls experiments/ --where 'size>1000000' -n 20",
			"lamina ls --trash"),
		Flags: append([]cli.Flag{
			&cli.BoolFlag{Name: "versions", Usage: "list every version of the KEY given"},
			&cli.BoolFlag{Name: "trash", Usage: "list what is in the trash"},
			&cli.IntFlag{Name: "limit", Aliases: []string{"n"}, Value: 1000, Usage: "at most this many rows (0: no limit); for --format json and csv none unless given: a script gets every row"},
			&cli.StringFlag{Name: "after", Usage: "start after this key (the next page)"},
			formatFlag(),
		}, queryFlags()...), // query.go
		Action: func(c *cli.Context) error {
			format, err := checkFormat(c)
			if err != nil {
				return err
			}
			if c.NArg() > 1 {
				return exitf(2, "usage: lamina ls [PREFIX]")
			}
			if err := lsFlagsApply(c); err != nil {
				return err
			}
			in, err := openInstance(c)
			if err != nil {
				return err
			}
			defer in.Close()
			// A path into the mount names its key or folder (keypath.go):
			// its root, everything.
			kp := newKeyPaths(in.Settings.Name)
			if c.Bool("versions") {
				kp.withUIDs(c.Context, in.Catalog)
			}
			a := c.Args().First()
			if c.NArg() == 0 && !c.Bool("versions") && kp.inOwnMount() {
				// In the mount, ls alone lists the current folder, as
				// `ls .` and the shell's ls do (it listed everything).
				a = "."
			}
			ka, err := kp.arg(a, !c.Bool("versions"))
			if err != nil {
				return err
			}
			arg := ka.Spec
			switch {
			case c.Bool("trash"):
				if err := ref.CheckPrefix(arg); err != nil {
					return err
				}
				return lsTrash(c, format, in.Catalog, arg)
			case c.Bool("versions"):
				if err := folderOfKeys(c.Context, in.Catalog, arg); err != nil { // keypath.go
					return err
				}
				// KEY@vN names one version, which show shows: ls
				// --versions takes the key (a bad N is said as show
				// says it).
				if key, n, ok := ref.SplitVersion(arg); ok && ref.CheckExistingKey(key) == nil {
					if _, err := ref.ParseSpec(arg); err != nil {
						return err
					}
					return exitf(exitUsage, "ls --versions lists every version of a key: give %s (lamina show %s@v%d shows one)", key, key, n)
				}
				if err := ref.CheckExistingKey(arg); err != nil {
					return err
				}
				// Trashed versions too, marked: a key written again after
				// an rm (every Snakemake rerun deletes its outputs first)
				// keeps its earlier versions in the trash.
				vs, err := in.Catalog.Versions(c.Context, arg, true)
				if len(vs) == 0 && (err == nil || errors.Is(err, catalog.ErrNotFound)) {
					// A uid or uid prefix (of 8+), as get and show take.
					if v, uerr := in.Resolve(c.Context, arg); uerr == nil && v.Key != arg && !ka.Path {
						arg = v.Key
						vs, err = in.Catalog.Versions(c.Context, arg, true)
					} else if uerr != nil && err != nil && !ka.Path {
						err = uerr // says more: a uid prefix too short, say
					}
				}
				if err != nil {
					return folderNamed(c.Context, in.Catalog, arg, err) // keypath.go
				}
				return printKeyVersions(c, format, vs) // trashnote.go
			}
			if err := ref.CheckPrefix(arg); err != nil {
				return err
			}
			if wantsQuery(c) { // metadata filters (query.go)
				return lsQuery(c, format, in, arg)
			}
			// One more than the page: the hint says "more" only when
			// there is more.
			limit := lsLimit(c)
			vs, err := in.Catalog.List(c.Context, catalog.Query{Prefix: arg, After: c.String("after"), Limit: plusOne(limit)})
			if err != nil {
				return err
			}
			more := limit > 0 && len(vs) > limit
			if more {
				vs = vs[:limit]
			}
			if err := printVersions(c, format, vs); err != nil {
				return err
			}
			if more {
				fmt.Fprintf(c.App.ErrWriter, "(showing %d; more with --after %q)\n", limit, vs[len(vs)-1].Key)
			}
			return nil
		},
	}
}

// plusOne is the number of rows to ask for a page of limit (0: all): one
// more, to know whether there is more.
func plusOne(limit int) int {
	if limit > 0 {
		return limit + 1
	}
	return 0
}

// lsLimit is the --limit of ls and runs ls: none for --format json and csv
// unless given. A script reads stdout only: the "(showing 1000; more with --after …)" of
// stderr went unseen and its JSON or CSV was silently cut.
func lsLimit(c *cli.Context) int {
	if !c.IsSet("limit") && c.String("format") != "" && c.String("format") != "table" {
		return 0
	}
	return c.Int("limit")
}

// lsFlagsApply refuses flags that mean nothing with --trash or --versions
// (exit 2) rather than ignoring them.
func lsFlagsApply(c *cli.Context) error {
	if c.Int("limit") < 0 {
		return exitf(2, "--limit %d: give a number of rows, or 0 for no limit", c.Int("limit"))
	}
	query := []string{"where", "label", "cell-type", "tissue", "disease", "term", "exact", "all-versions", "order", "organism"}
	var mode, what string
	switch {
	case c.Bool("trash") && c.Bool("versions"):
		return exitf(2, "--versions does not apply to ls --trash (--trash and --versions do not go together): lamina ls --trash [PREFIX], lamina ls --versions KEY")
	case c.Bool("trash"):
		mode, what = "--trash", "it lists trashed keys by key: PREFIX, --limit and --after apply"
	case c.Bool("versions"):
		mode, what = "--versions", "it lists every version of one key"
		query = append(query, "limit", "after")
		if c.NArg() == 0 {
			return exitf(2, "ls --versions lists the versions of one key: give it, as in lamina ls --versions KEY")
		}
	default:
		// --after names a key: it pages a listing by key only.
		if c.IsSet("after") && !byKey(c.String("order")) {
			return exitf(2, "--after does not apply to ls --order %s (it pages a listing by key; --limit bounds this one)", c.String("order"))
		}
		return nil
	}
	for _, n := range query {
		if n == "limit" && c.Bool("versions") && c.Int("limit") == 0 {
			continue // no limit, as everywhere: every version is what it lists
		}
		if c.IsSet(n) {
			if n == "limit" && c.Bool("versions") {
				return exitf(2, "--limit does not apply to ls --versions (it lists every version of one key: only --limit 0, no limit, goes with it)")
			}
			return exitf(2, "--%s does not apply to ls %s (%s)", n, mode, what)
		}
	}
	return nil
}

// lsTrash lists the trash under prefix, by key, a page of --limit rows
// after --after. The catalogs list the whole trash; the CLI filters, so
// both behave the same.
func lsTrash(c *cli.Context, format string, cat catalog.Catalog, prefix string) error {
	all, err := cat.TrashList(c.Context)
	if err != nil {
		return err
	}
	catalog.SortTrash(all) // as the catalogs list it: k before k/
	limit, after := lsLimit(c), c.String("after")
	var es []catalog.TrashEntry
	more := false
	for _, e := range all {
		if !strings.HasPrefix(e.Key, prefix) || (after != "" && e.Key <= after) {
			continue
		}
		// A page never ends between a file and the folder or link at its
		// key: --after names a key, and the next page would skip the rest.
		if limit > 0 && len(es) >= limit && e.Key != es[len(es)-1].Key {
			more = true
			break
		}
		es = append(es, e)
	}
	if more {
		defer fmt.Fprintf(c.App.ErrWriter, "(showing %d; more with --after %q)\n", len(es), es[len(es)-1].Key)
	}
	// What a file holds the folder name of cannot be restored: say so,
	// and what to do, after the listing (on stderr, as the page hint).
	by, bl, err := blockedBy(c.Context, cat, es)
	if err != nil {
		return err
	}
	defer bl.report(c.App.ErrWriter, "lamina: note: ")
	if format == "json" {
		type row struct {
			catalog.TrashEntry
			BlockedBy string `json:"blocked_by,omitempty"` // the live file at its folder's name
		}
		rows := []row{}
		for i, e := range es {
			rows = append(rows, row{e, by[i]})
		}
		return writeJSON(c.App.Writer, rows)
	}
	var rows [][]string
	for _, e := range es {
		t := e.TrashedAt.Local().Format("2006-01-02 15:04")
		size := humanBytes(e.Size)
		if format == "csv" {
			t, size = e.TrashedAt.Format(time.RFC3339Nano), fmt.Sprint(e.Size)
		}
		key, versions := e.Key, fmt.Sprint(e.Versions)
		if e.Kind == "folder" { // a folder rm -r removed (TrashedNode)
			key += "/"
		}
		if e.Kind != "" && format != "csv" {
			// A folder or link has no versions and no size: say what it
			// is, rather than "0 0 B" as if an empty file.
			versions, size = e.Kind, "-"
		}
		rows = append(rows, []string{key, versions, size, t})
	}
	return writeRows(c, format, []string{"KEY", "VERSIONS", "SIZE", "TRASHED"}, []string{"key", "versions", "size", "trashed_at"}, rows)
}
