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
				ArgsUsage: "NAME [--parent PARENT [--move]]",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "parent", Usage: "an existing label this one sits under"},
					&cli.BoolFlag{Name: "move", Usage: "move an existing label under --parent (what --label queries find changes)"},
					descriptionFlag("the label"),
					formatFlag("table", "json"),
				},
				Action: func(c *cli.Context) error {
					format, err := checkFormat(c, "table", "json")
					if err != nil {
						return err
					}
					if c.NArg() != 1 {
						return exitf(2, "usage: lamina label create NAME [--parent PARENT [--move]]")
					}
					name, parent := c.Args().First(), c.String("parent")
					if c.Bool("move") && parent == "" {
						return exitf(2, "--move needs --parent: the label to move %s under", name)
					}
					in, err := openInstance(c)
					if err != nil {
						return err
					}
					defer in.Close()
					// The catalog moves an existing label to a new parent,
					// which changes what `ls --label` finds under both
					// parents: only on request. Creating it again as it is
					// stays a no-op.
					if parent != "" && !c.Bool("move") {
						ls, err := in.Catalog.Labels(c.Context)
						if err != nil {
							return err
						}
						for _, l := range ls {
							if l.Name == name && l.Parent != parent {
								where := "at the top"
								if l.Parent != "" {
									where = "under " + l.Parent
								}
								return exitf(1, "label %s exists %s; to move it under %s (queries with --label find it there instead), add --move", name, where, parent)
							}
						}
					}
					l, err := in.Catalog.CreateLabel(c.Context, catalog.Label{Name: name, Parent: parent,
						Description: c.String("description"), CreatedBy: in.User, CreatedAt: time.Now()})
					if err != nil {
						return err
					}
					if format == "json" {
						return writeJSON(c.App.Writer, l) // as label ls --format json shows it
					}
					if l.Parent != "" {
						return printf(c, "label %s (under %s)\n", l.Name, l.Parent)
					}
					return printf(c, "label %s\n", l.Name)
				},
			},
			listCommand("list labels", []string{"NAME", "PARENT", "DESCRIPTION"}, nil,
				func(c *cli.Context, in *instance.Instance) ([]catalog.Label, error) {
					return in.Catalog.Labels(c.Context)
				},
				func(l catalog.Label, _ bool) []string { return []string{l.Name, l.Parent, l.Description} }),
			deleteCommand("label", "no version has it, no label sits under it",
				func(c *cli.Context, in *instance.Instance) ([]string, error) {
					rs, err := in.Catalog.Labels(c.Context)
					return namesOf(rs, err, func(r catalog.Label) string { return r.Name })
				},
				func(c *cli.Context, in *instance.Instance, name string) (catalog.Label, error) {
					return in.Catalog.DeleteLabel(c.Context, name)
				},
				func(l catalog.Label) string { return "label " + l.Name }),
		},
	}
}
