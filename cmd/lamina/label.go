package main

import (
	"time"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/instance"
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
			listCommand("list labels", []string{"NAME", "PARENT", "DESCRIPTION"},
				func(c *cli.Context, in *instance.Instance) ([]catalog.Label, error) {
					return in.Catalog.Labels(c.Context)
				},
				func(l catalog.Label) []string { return []string{l.Name, l.Parent, l.Description} }),
		},
	}
}
