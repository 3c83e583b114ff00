package main

import (
	"fmt"
	"time"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/instance"
	"github.com/urfave/cli/v2"
)

func cmdFeature() *cli.Command {
	return &cli.Command{
		Name:  "feature",
		Usage: "typed metadata fields that versions carry values of",
		Subcommands: []*cli.Command{
			{
				Name:      "create",
				Usage:     "create a feature",
				ArgsUsage: "NAME --dtype DTYPE",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "dtype", Usage: "int, float, str, bool, date, datetime, cat[ULabel] or cat[ENTITY] (cat[celltype], cat[tissue], cat[disease], …)"},
					&cli.StringFlag{Name: "description"},
				},
				Action: func(c *cli.Context) error {
					if f := missing(c, "dtype"); c.NArg() != 1 || f != "" {
						return exitf(2, "%susage: lamina feature create NAME --dtype DTYPE", f)
					}
					in, err := openInstance(c)
					if err != nil {
						return err
					}
					defer in.Close()
					f, err := in.Catalog.CreateFeature(c.Context, catalog.Feature{Name: c.Args().First(), Dtype: c.String("dtype"),
						Description: c.String("description"), CreatedBy: in.User, CreatedAt: time.Now()})
					if err != nil {
						return err
					}
					return printf(c, "feature %s (%s)\n", f.Name, f.Dtype)
				},
			},
			listCommand("list features", []string{"NAME", "DTYPE", "DESCRIPTION"},
				func(c *cli.Context, in *instance.Instance) ([]catalog.Feature, error) {
					return in.Catalog.Features(c.Context)
				},
				func(f catalog.Feature) []string { return []string{f.Name, f.Dtype, f.Description} }),
		},
	}
}

// printf writes to the command's output.
func printf(c *cli.Context, format string, a ...any) error {
	_, err := fmt.Fprintf(c.App.Writer, format, a...)
	return err
}

// writeRows writes a table or CSV by format.
func writeRows(c *cli.Context, format string, header []string, rows [][]string) error {
	if format == "csv" {
		return writeCSV(c.App.Writer, lower(header), rows)
	}
	return table(c.App.Writer, header, rows)
}
