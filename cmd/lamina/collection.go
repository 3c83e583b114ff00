package main

import (
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/instance"
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
					&cli.StringFlag{Name: "description"},
				},
				Action: func(c *cli.Context) error {
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
						vs, err := in.Catalog.List(c.Context, catalog.Query{Prefix: c.String("key-prefix")})
						if err != nil {
							return err
						}
						if len(vs) == 0 {
							return exitf(1, "no keys under %q", c.String("key-prefix"))
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
					if col.Unchanged {
						return printf(c, "collection %q v%d already has these %s\n", col.Name, col.Version, plural(len(col.Members), "version"))
					}
					return printf(c, "collection %q v%d: %s\n", col.Name, col.Version, plural(len(col.Members), "version"))
				},
			},
			cmdCollectionLs(),
			{
				Name:      "show",
				Usage:     "list the members of a collection (the artifact versions it holds), like ls; NAME@vN for an earlier version of the collection",
				ArgsUsage: "NAME[@vN]",
				Flags:     []cli.Flag{formatFlag()},
				Action: func(c *cli.Context) error {
					format, err := checkFormat(c)
					if err != nil {
						return err
					}
					if c.NArg() != 1 {
						return exitf(2, "usage: lamina collection show NAME[@vN]")
					}
					name, n := splitCollectionSpec(c.Args().First())
					in, err := openInstance(c)
					if err != nil {
						return err
					}
					defer in.Close()
					col, err := in.Catalog.Collection(c.Context, name, n)
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
						fmt.Fprintf(c.App.ErrWriter, "collection %q v%d, %s%s, created %s by %s\n", col.Name, col.Version,
							plural(len(col.Members), "version"), missing, col.CreatedAt.Local().Format("2006-01-02 15:04"), col.CreatedBy)
					}
					if err := printVersions(c, format, col.Versions); err != nil {
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

var reCollectionVersion = regexp.MustCompile(`^(.*)@v([0-9]+)$`)

// splitCollectionSpec reads "NAME@vN" (n = 0 for the latest).
func splitCollectionSpec(s string) (string, int) {
	if m := reCollectionVersion.FindStringSubmatch(s); m != nil {
		n, _ := strconv.Atoi(m[2])
		return m[1], n
	}
	return s, 0
}
