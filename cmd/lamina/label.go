package main

import (
	"time"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/urfave/cli/v2"
)

func cmdLabel() *cli.Command {
	return &cli.Command{
		Name:  "label",
		Usage: "free labels (ULabels), optionally in a hierarchy",
		Subcommands: []*cli.Command{
			{
				Name:      "create",
				Usage:     "create a label",
				ArgsUsage: "NAME [--parent PARENT]",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "parent", Usage: "an existing label this one sits under"},
					&cli.StringFlag{Name: "description"},
				},
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return exitf(2, "usage: lamina label create NAME [--parent PARENT]")
					}
					in, err := openInstance(c)
					if err != nil {
						return err
					}
					defer in.Close()
					l, err := in.Catalog.CreateLabel(c.Context, catalog.Label{Name: c.Args().First(), Parent: c.String("parent"),
						Description: c.String("description"), CreatedBy: in.User, CreatedAt: time.Now()})
					if err != nil {
						return err
					}
					if l.Parent != "" {
						return printf(c, "label %s (under %s)\n", l.Name, l.Parent)
					}
					return printf(c, "label %s\n", l.Name)
				},
			},
			{
				Name:  "ls",
				Usage: "list labels",
				Flags: []cli.Flag{formatFlag()},
				Action: func(c *cli.Context) error {
					format, err := checkFormat(c)
					if err != nil {
						return err
					}
					in, err := openInstance(c)
					if err != nil {
						return err
					}
					defer in.Close()
					ls, err := in.Catalog.Labels(c.Context)
					if err != nil {
						return err
					}
					if format == "json" {
						return writeJSON(c.App.Writer, ls)
					}
					var rows [][]string
					for _, l := range ls {
						rows = append(rows, []string{l.Name, l.Parent, l.Description})
					}
					return writeRows(c, format, []string{"NAME", "PARENT", "DESCRIPTION"}, rows)
				},
			},
		},
	}
}
