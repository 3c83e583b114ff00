package main

import (
	"fmt"
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
		Flags: append([]cli.Flag{
			&cli.BoolFlag{Name: "versions", Usage: "list every version of the KEY given"},
			&cli.BoolFlag{Name: "trash", Usage: "list what is in the trash"},
			&cli.IntFlag{Name: "limit", Value: 1000, Usage: "at most this many rows (0: no limit)"},
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
			arg := c.Args().First()
			in, err := openInstance(c)
			if err != nil {
				return err
			}
			defer in.Close()
			switch {
			case c.Bool("trash"):
				return lsTrash(c, format, in.Catalog)
			case c.Bool("versions"):
				if err := ref.CheckExistingKey(arg); err != nil {
					return err
				}
				vs, err := in.Catalog.Versions(c.Context, arg, false)
				if err != nil {
					return err
				}
				return printVersions(c, format, vs)
			}
			if err := ref.CheckPrefix(arg); err != nil {
				return err
			}
			if wantsQuery(c) { // metadata filters (query.go)
				return lsQuery(c, format, in, arg)
			}
			limit := c.Int("limit")
			vs, err := in.Catalog.List(c.Context, catalog.Query{Prefix: arg, After: c.String("after"), Limit: limit})
			if err != nil {
				return err
			}
			if err := printVersions(c, format, vs); err != nil {
				return err
			}
			if limit > 0 && len(vs) == limit {
				fmt.Fprintf(c.App.ErrWriter, "(showing %d; more with --after %q)\n", limit, vs[len(vs)-1].Key)
			}
			return nil
		},
	}
}

func lsTrash(c *cli.Context, format string, cat catalog.Catalog) error {
	es, err := cat.TrashList(c.Context)
	if err != nil {
		return err
	}
	if format == "json" {
		if es == nil {
			es = []catalog.TrashEntry{}
		}
		return writeJSON(c.App.Writer, es)
	}
	var rows [][]string
	for _, e := range es {
		t := e.TrashedAt.Local().Format("2006-01-02 15:04")
		size := humanBytes(e.Size)
		if format == "csv" {
			t, size = e.TrashedAt.Format(time.RFC3339Nano), fmt.Sprint(e.Size)
		}
		rows = append(rows, []string{e.Key, fmt.Sprint(e.Versions), size, t})
	}
	return writeRows(c, format, []string{"KEY", "VERSIONS", "SIZE", "TRASHED"}, []string{"key", "versions", "size", "trashed_at"}, rows)
}
