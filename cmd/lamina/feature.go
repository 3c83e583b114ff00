package main

import (
	"fmt"
	"slices"
	"time"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/instance"
	"github.com/lamina-bio/lamina/ontology"
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
					descriptionFlag("the feature"),
					formatFlag("table", "json"),
				},
				Action: func(c *cli.Context) error {
					format, err := checkFormat(c, "table", "json")
					if err != nil {
						return err
					}
					if f := missing(c, "dtype"); c.NArg() != 1 || f != "" {
						return exitf(2, "%susage: lamina feature create NAME --dtype DTYPE", f)
					}
					dtype, err := catalog.ParseDtype(c.String("dtype"))
					if err != nil {
						return exitf(2, "%v", err)
					}
					in, err := openInstance(c)
					if err != nil {
						return err
					}
					defer in.Close()
					name := c.Args().First()
					fs, err := in.Catalog.Features(c.Context)
					if err != nil {
						return err
					}
					i := slices.IndexFunc(fs, func(f catalog.Feature) bool { return f.Name == name })
					var old *catalog.Feature
					if i >= 0 {
						old = &fs[i]
					}
					if dtype, err = featureDtype(c, in, old, dtype); err != nil {
						return err
					}
					f, err := in.Catalog.CreateFeature(c.Context, catalog.Feature{Name: name, Dtype: dtype,
						Description: c.String("description"), CreatedBy: in.User, CreatedAt: time.Now()})
					if err != nil {
						return err
					}
					if old != nil && old.Dtype == f.Dtype && old.Description != f.Description {
						fmt.Fprintf(c.App.ErrWriter, "feature %s exists; its description is now %q (was %q)\n", f.Name, f.Description, old.Description)
					}
					if format == "json" {
						return writeJSON(c.App.Writer, f) // as feature ls --format json shows it
					}
					return printf(c, "feature %s (%s)\n", f.Name, f.Dtype)
				},
			},
			listCommand("list features", []string{"NAME", "DTYPE", "DESCRIPTION"}, nil,
				func(c *cli.Context, in *instance.Instance) ([]catalog.Feature, error) {
					return in.Catalog.Features(c.Context)
				},
				func(f catalog.Feature, _ bool) []string { return []string{f.Name, f.Dtype, f.Description} }),
			deleteCommand("feature", "no version has a value of it, no schema lists it",
				func(c *cli.Context, in *instance.Instance) ([]string, error) {
					rs, err := in.Catalog.Features(c.Context)
					return namesOf(rs, err, func(r catalog.Feature) string { return r.Name })
				},
				func(c *cli.Context, in *instance.Instance, name string) (catalog.Feature, error) {
					return in.Catalog.DeleteFeature(c.Context, name)
				},
				func(f catalog.Feature) string { return fmt.Sprintf("feature %s (%s)", f.Name, f.Dtype) }),
		},
	}
}

// featureDtype checks the entity of a cat[X] dtype (parsed by
// catalog.ParseDtype) and spells it as queries and curate name it:
// cat[CellType] and cat[bionty.CellType] are cat[celltype]. X must be
// ULabel, a built-in entity or one with an imported source (a custom
// entity): a feature of any other entity could hold no value, as
// annotate and curate resolve its values through that ontology. An
// existing feature (old, or nil) keeps its spelling of the same entity.
func featureDtype(c *cli.Context, in *instance.Instance, old *catalog.Feature, dtype string) (string, error) {
	x := catalog.Feature{Dtype: dtype}.Entity()
	if x == "" || x == "ULabel" {
		return dtype, nil
	}
	entity := entityName(x)
	if _, ok := ontology.LookupEntity(entity); !ok {
		ss, err := in.OntologySources(c.Context)
		if err != nil {
			return "", err
		}
		if !slices.ContainsFunc(ss, func(s instance.OntologySource) bool { return s.Entity == entity }) {
			return "", exitf(2, "dtype %q: no ontology entity %q; use cat[ULabel] for labels, an entity (%s), or import a custom one first: lamina ontology import %s --source FILE",
				c.String("dtype"), x, entityNames(), entity)
		}
	}
	if old != nil && old.Entity() != "" && entityName(old.Entity()) == entity {
		return old.Dtype, nil
	}
	return "cat[" + entity + "]", nil
}

// printf writes to the command's output.
func printf(c *cli.Context, format string, a ...any) error {
	_, err := fmt.Fprintf(c.App.Writer, format, a...)
	return err
}

// writeRows writes a table or CSV by format. CSV's header is csvHeader:
// the names the command's JSON gives the fields (nil: header lowercased).
func writeRows(c *cli.Context, format string, header, csvHeader []string, rows [][]string) error {
	if format == "csv" {
		if csvHeader == nil {
			csvHeader = lower(header)
		}
		return writeCSV(c.App.Writer, csvHeader, rows)
	}
	return table(c.App.Writer, header, rows)
}
