package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/instance"
	"github.com/urfave/cli/v2"
)

func cmdSchema() *cli.Command {
	return &cli.Command{
		Name:  "schema",
		Usage: "named sets of features that a table's columns must satisfy",
		Subcommands: []*cli.Command{
			{
				Name:      "create",
				Usage:     "create or replace a schema: listed features are required, other columns allowed (by default)",
				ArgsUsage: "NAME --feature F... [--optional F...]",
				Flags: []cli.Flag{
					multiFlag("feature", "a required feature (repeat)"),
					multiFlag("optional", "an optional feature (repeat)"),
					&cli.BoolFlag{Name: "no-extra", Usage: "columns not in the schema fail validation"},
					descriptionFlag("the schema"),
					formatFlag("table", "json"),
				},
				Action: func(c *cli.Context) error {
					format, err := checkFormat(c, "table", "json")
					if err != nil {
						return err
					}
					if c.NArg() != 1 {
						return exitf(2, "usage: lamina schema create NAME --feature F... [--optional F...]")
					}
					s := catalog.Schema{Name: c.Args().First(), NoExtra: c.Bool("no-extra"), Description: c.String("description"), CreatedAt: time.Now()}
					for _, f := range multi(c, "feature") {
						s.Features = append(s.Features, catalog.SchemaFeature{Feature: f})
					}
					for _, f := range multi(c, "optional") {
						s.Features = append(s.Features, catalog.SchemaFeature{Feature: f, Optional: true})
					}
					in, err := openInstance(c)
					if err != nil {
						return err
					}
					defer in.Close()
					s.CreatedBy = in.User
					s, err = in.Catalog.CreateSchema(c.Context, s)
					if err != nil {
						return err
					}
					if format == "json" {
						return writeJSON(c.App.Writer, s) // as schema ls --format json shows it
					}
					return printf(c, "schema %s: %s\n", s.Name, schemaText(s))
				},
			},
			listCommand("list schemas", []string{"NAME", "FEATURES", "DESCRIPTION"}, nil,
				func(c *cli.Context, in *instance.Instance) ([]catalog.Schema, error) {
					return in.Catalog.Schemas(c.Context)
				},
				func(s catalog.Schema, _ bool) []string { return []string{s.Name, schemaText(s), s.Description} }),
			deleteCommand("schema", "no version was curated with it",
				func(c *cli.Context, in *instance.Instance) ([]string, error) {
					rs, err := in.Catalog.Schemas(c.Context)
					return namesOf(rs, err, func(r catalog.Schema) string { return r.Name })
				},
				func(c *cli.Context, in *instance.Instance, name string) (catalog.Schema, error) {
					return in.Catalog.DeleteSchema(c.Context, name)
				},
				func(s catalog.Schema) string { return "schema " + s.Name }),
		},
	}
}

func schemaText(s catalog.Schema) string {
	var parts []string
	for _, f := range s.Features {
		if f.Optional {
			parts = append(parts, f.Feature+" (optional)")
		} else {
			parts = append(parts, f.Feature)
		}
	}
	if s.NoExtra {
		parts = append(parts, "no other columns")
	}
	return strings.Join(parts, ", ")
}

// findSchema returns the schema called name.
func findSchema(c *cli.Context, cat catalog.Catalog, name string) (catalog.Schema, error) {
	ss, err := cat.Schemas(c.Context)
	if err != nil {
		return catalog.Schema{}, err
	}
	var names []string
	for _, s := range ss {
		if s.Name == name {
			return s, nil
		}
		names = append(names, s.Name)
	}
	return catalog.Schema{}, exitf(exitNotFound, "no schema %q (lamina schema ls: %s)", name, fmt.Sprint(names))
}
