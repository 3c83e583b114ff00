package main

import (
	"fmt"
	"strings"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/urfave/cli/v2"
)

func cmdSearch() *cli.Command {
	return &cli.Command{
		Name:      "search",
		Usage:     "full-text search over keys, descriptions, labels, feature values and term names, best first",
		ArgsUsage: "WORDS...",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "limit", Value: 20, Usage: "at most this many results"},
			formatFlag(),
		},
		Action: func(c *cli.Context) error {
			format, err := checkFormat(c)
			if err != nil {
				return err
			}
			if c.Int("limit") < 0 { // as ls refuses one
				return exitf(2, "--limit %d: give a number of results", c.Int("limit"))
			}
			query := strings.Join(c.Args().Slice(), " ")
			if len(catalog.Words(query)) == 0 { // the catalog's "search for what?" (ErrInvalid, exit 1)
				return exitf(2, "usage: lamina search WORDS... (words of two or more letters or digits, found in keys, descriptions, labels, feature values and term names)")
			}
			in, err := openInstance(c)
			if err != nil {
				return err
			}
			defer in.Close()
			hits, err := in.Catalog.Search(c.Context, query, c.Int("limit"))
			if err != nil {
				return err
			}
			if format == "json" {
				return writeJSON(c.App.Writer, hits)
			}
			var rows [][]string
			for _, h := range hits {
				rows = append(rows, []string{fmt.Sprintf("%.2f", h.Score), h.Version.Key, fmt.Sprint(h.Version.Version), h.Version.UID,
					strings.Join(h.Fields, ","), h.Version.Description})
			}
			return writeRows(c, format, []string{"SCORE", "KEY", "VERSION", "UID", "MATCHED", "DESCRIPTION"},
				[]string{"score", "key", "version", "uid", "fields", "description"}, rows) // JSON: fields, the rest in version
		},
	}
}
