package main

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/instance"
	"github.com/lamina-bio/lamina/ref"
	"github.com/urfave/cli/v2"
)

func cmdCollection() *cli.Command {
	return &cli.Command{
		Name:  "collection",
		Usage: "named, versioned, ordered sets of artifact versions",
		Subcommands: []*cli.Command{
			{
				Name:      "create",
				Usage:     "record a collection (a new version when the name exists and the members differ)",
				ArgsUsage: "NAME [KEY[@vN] | UID]... [--key-prefix PREFIX]",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "key-prefix", Usage: "also add the latest version of every key under this prefix"},
					descriptionFlag("this version of the collection"),
					formatFlag("table", "json"),
				},
				Action: func(c *cli.Context) error {
					format, err := checkFormat(c, "table", "json")
					if err != nil {
						return err
					}
					if c.NArg() < 1 || (c.NArg() == 1 && !c.IsSet("key-prefix")) {
						return exitf(2, "usage: lamina collection create NAME KEY[@vN]|UID... or --key-prefix PREFIX")
					}
					in, err := openInstance(c)
					if err != nil {
						return err
					}
					defer in.Close()
					var members []string
					seen := map[string]bool{}
					kp := newKeyPaths(in.Settings.Name).withUIDs(c.Context, in.Catalog)
					for _, a := range c.Args().Slice()[1:] {
						v, err := resolveWith(c.Context, in, kp, a) // get.go: a path into the mount too
						if err != nil {
							return err
						}
						if !seen[v.UID] {
							seen[v.UID] = true
							members = append(members, v.UID)
						}
					}
					if c.IsSet("key-prefix") {
						// A path into the mount too, as the members are: a
						// folder's path is its keys (the folder's prefix, with
						// its "/"), the mount's root every key.
						a := c.String("key-prefix")
						ka, err := kp.arg(a, true)
						if err != nil {
							return err
						}
						prefix := ka.Spec
						if ka.Path && prefix != "" && !strings.HasSuffix(prefix, "/") {
							if fi, err := os.Stat(a); err == nil && fi.IsDir() {
								prefix += "/"
							}
						}
						if err := ref.CheckPrefix(prefix); err != nil {
							return err
						}
						vs, err := in.Catalog.List(c.Context, catalog.Query{Prefix: prefix})
						if err != nil {
							return err
						}
						if len(vs) == 0 {
							return exitf(1, "no keys under %q", prefix)
						}
						for _, v := range vs {
							if !seen[v.UID] {
								seen[v.UID] = true
								members = append(members, v.UID)
							}
						}
					}
					col, err := in.Catalog.SaveCollection(c.Context, catalog.NewCollection{Name: c.Args().First(),
						Description: c.String("description"), Members: members, CreatedBy: in.User, CreatedAt: time.Now()})
					if err != nil {
						return err
					}
					if format == "json" {
						// As collection ls --format json shows it, with
						// "unchanged": true when no version was recorded.
						return writeJSON(c.App.Writer, col)
					}
					if col.Unchanged {
						what := "these " + plural(len(col.Members), "version")
						if len(col.Members) == 1 {
							what = "this version"
						}
						return printf(c, "collection %q v%d already has %s\n", col.Name, col.Version, what)
					}
					return printf(c, "collection %q v%d: %s\n", col.Name, col.Version, plural(len(col.Members), "version"))
				},
			},
			cmdCollectionLs(),
			cmdCollectionDelete(),
			{
				Name:        "show",
				Usage:       "list the members of a collection (the artifact versions it holds), like ls",
				Description: "NAME@vN lists an earlier version of the collection.",
				ArgsUsage:   "NAME[@vN]",
				Flags:       []cli.Flag{formatFlag()},
				Action: func(c *cli.Context) error {
					format, err := checkFormat(c)
					if err != nil {
						return err
					}
					if c.NArg() != 1 {
						return exitf(2, "usage: lamina collection show NAME[@vN]")
					}
					name, n, err := splitCollectionSpec(c.Args().First())
					if err != nil {
						return err
					}
					in, err := openInstance(c)
					if err != nil {
						return err
					}
					defer in.Close()
					col, err := in.Catalog.Collection(c.Context, name, n)
					if n > 0 && errors.Is(err, catalog.ErrNotFound) {
						// A collection named NAME@vN, made before such names
						// were refused.
						if whole, werr := in.Catalog.Collection(c.Context, c.Args().First(), 0); werr == nil {
							col, err = whole, nil
						}
					}
					if err != nil {
						return err
					}
					if format == "json" {
						return writeJSON(c.App.Writer, col)
					}
					// Members deleted for good (delete --permanent --force)
					// resolve to nothing: say which, rather than list fewer
					// rows than the count.
					var gone []string
					have := map[string]bool{}
					for _, v := range col.Versions {
						have[v.UID] = true
					}
					for _, m := range col.Members {
						if !have[m] {
							gone = append(gone, m)
						}
					}
					if format == "table" {
						missing := ""
						if len(gone) > 0 {
							missing = fmt.Sprintf(" (%d deleted permanently)", len(gone))
						}
						// Members in the trash are listed, marked in a
						// TRASHED column (CSV: trashed_at) as ls --versions
						// marks them.
						if n := countTrashed(col.Versions); n > 0 {
							missing += fmt.Sprintf(" (%d in the trash)", n)
						}
						fmt.Fprintf(c.App.ErrWriter, "collection %q v%d, %s%s, created %s by %s\n", col.Name, col.Version,
							plural(len(col.Members), "version"), missing, col.CreatedAt.Local().Format("2006-01-02 15:04"), col.CreatedBy)
					}
					if err := printMarkedVersions(c, format, col.Versions, false); err != nil { // trashnote.go
						return err
					}
					if format == "table" {
						for _, uid := range gone {
							fmt.Fprintf(c.App.ErrWriter, "%s: deleted permanently\n", uid)
						}
					}
					return nil
				},
			},
		},
	}
}

// cmdCollectionLs lists the latest version of every collection or, like
// ls --versions KEY, every version of one.
func cmdCollectionLs() *cli.Command {
	ls := listCommand("list collections (their latest versions), or every version of the NAME given",
		[]string{"NAME", "VERSION", "MEMBERS", "CREATED", "BY", "DESCRIPTION"},
		[]string{"name", "version", "members", "created_at", "created_by", "description"},
		func(c *cli.Context, in *instance.Instance) ([]catalog.Collection, error) {
			if c.NArg() == 1 {
				return in.Catalog.CollectionVersions(c.Context, c.Args().First())
			}
			return in.Catalog.Collections(c.Context)
		},
		func(col catalog.Collection, machine bool) []string {
			created := col.CreatedAt.Local().Format("2006-01-02 15:04")
			if machine {
				created = col.CreatedAt.Format(time.RFC3339Nano)
			}
			return []string{col.Name, fmt.Sprint(col.Version), fmt.Sprint(len(col.Members)), created, col.CreatedBy, col.Description}
		})
	ls.ArgsUsage = "[NAME]"
	ls.Flags = append(ls.Flags, &cli.BoolFlag{Name: "versions", Usage: "list every version of the collection NAME given (as NAME alone does)"})
	list := ls.Action
	ls.Action = func(c *cli.Context) error {
		if c.NArg() > 1 || c.Bool("versions") && c.NArg() == 0 {
			return exitf(2, "usage: lamina collection ls [[--versions] NAME]")
		}
		return list(c)
	}
	return ls
}

// countTrashed counts the versions of vs in the trash.
func countTrashed(vs []catalog.Version) int {
	n := 0
	for _, v := range vs {
		if v.Trashed {
			n++
		}
	}
	return n
}

var reCollectionVersion = regexp.MustCompile(`^(.*)@v([0-9]+)$`)

// splitCollectionSpec reads "NAME@vN" (n = 0 for the latest, NAME alone).
// Versions count from 1: @v0, and a number too large to be one, are
// refused (exit 2) rather than read as the latest or as another number.
func splitCollectionSpec(s string) (string, int, error) {
	m := reCollectionVersion.FindStringSubmatch(s)
	if m == nil {
		return s, 0, nil
	}
	n, err := strconv.Atoi(m[2])
	if err != nil || n < 1 {
		return "", 0, exitf(2, "%s: a collection version is @v1, @v2, …: %s has none such (NAME alone is the latest)", s, "@v"+m[2])
	}
	return m[1], n, nil
}

// deletedCollection is what collection delete removed: every version of
// one collection, oldest first (JSON), and the refs of its latest
// version's members, for the message.
type deletedCollection struct {
	Name     string               `json:"name"`
	Versions []catalog.Collection `json:"versions"`
	held     []string
}

// cmdCollectionDelete is `lamina collection delete NAME...`: a collection
// is only a list, so nothing keeps one; its members stay as they are.
// Shaped as feature|label|schema delete (curation_delete.go): a name that
// is no collection is said and refuses the command, nothing deleted.
func cmdCollectionDelete() *cli.Command {
	cmd := deleteCommand("collection", "",
		func(c *cli.Context, in *instance.Instance) ([]string, error) {
			rs, err := in.Catalog.Collections(c.Context)
			return namesOf(rs, err, func(r catalog.Collection) string { return r.Name })
		},
		func(c *cli.Context, in *instance.Instance, name string) (deletedCollection, error) {
			// The members by ref, to say what it held: read first, as the
			// delete returns the records without their members' versions.
			var held []string
			if latest, err := in.Catalog.Collection(c.Context, name, 0); err == nil {
				for _, v := range latest.Versions {
					held = append(held, v.Ref())
				}
			}
			vs, err := in.Catalog.DeleteCollection(c.Context, name)
			if err != nil {
				return deletedCollection{}, err
			}
			if len(held) != len(vs[len(vs)-1].Members) {
				held = nil // changed between the read and the delete, or members deleted for good
			}
			return deletedCollection{Name: name, Versions: vs, held: held}, nil
		},
		func(d deletedCollection) string {
			last := d.Versions[len(d.Versions)-1]
			what := fmt.Sprintf("collection %q (%s", d.Name, plural(len(d.Versions), "version"))
			what += fmt.Sprintf("; v%d held %s", last.Version, plural(len(last.Members), "artifact version"))
			if len(d.held) > 0 {
				what += ": " + someKeys(d.held) // delete.go
			}
			return what + "; they stay as they are)"
		})
	cmd.Usage = "delete collections, every version of each (a collection is only a list: its members stay as they are)"
	return cmd
}
