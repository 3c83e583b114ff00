package main

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/urfave/cli/v2"
)

func cmdAnnotate() *cli.Command {
	return &cli.Command{
		Name:      "annotate",
		Usage:     "annotate a version with feature values, labels and ontology terms",
		ArgsUsage: "KEY[@vN] | UID",
		Flags: []cli.Flag{
			multiFlag("feature", "NAME=VALUE (repeat); values of cat[ENTITY] features must be terms of that ontology"),
			multiFlag("label", "a label (repeat)"),
			multiFlag("term", "ENTITY=TERM (repeat): an ontology term by name, synonym or id"),
			organismFlag(), formatFlag("table", "json"),
		},
		Action: func(c *cli.Context) error {
			format, err := checkFormat(c, "table", "json")
			if err != nil {
				return err
			}
			if c.NArg() != 1 {
				return exitf(2, "usage: lamina annotate KEY[@vN] | UID --feature NAME=VALUE --label LABEL --term ENTITY=TERM")
			}
			if !c.IsSet("feature") && !c.IsSet("label") && !c.IsSet("term") {
				return exitf(2, "nothing to annotate: give --feature, --label or --term")
			}
			in, err := openInstance(c)
			if err != nil {
				return err
			}
			defer in.Close()
			v, err := resolveArg(c.Context, in, c.Args().First()) // get.go
			if err != nil {
				return err
			}
			add := catalog.Annotations{Features: map[string][]string{}, Labels: multi(c, "label")}
			var features map[string]catalog.Feature
			for _, fv := range multi(c, "feature") {
				name, value, ok := strings.Cut(fv, "=")
				if !ok || name == "" {
					return exitf(2, "--feature %q: use NAME=VALUE", fv)
				}
				if features == nil {
					fs, err := in.Catalog.Features(c.Context)
					if err != nil {
						return err
					}
					features = map[string]catalog.Feature{}
					for _, f := range fs {
						features[f.Name] = f
					}
				}
				f, ok := features[name]
				if ok && f.Entity() != "" && f.Entity() != "ULabel" {
					entity := entityName(f.Entity())
					x, err := loadEntity(c.Context, in, entity, c.String("organism"))
					if err != nil {
						return err
					}
					std, ids, err := resolveTerms(x, entity, value)
					if err != nil {
						return err
					}
					if std != value {
						fmt.Fprintf(c.App.ErrWriter, "%s: %q standardized to %q (%s)\n", name, value, std, strings.Join(ids, ", "))
					}
					value = std
					add.Terms = appendTerms(add.Terms, entity, std, ids)
				}
				add.Features[name] = append(add.Features[name], value)
			}
			for _, tv := range multi(c, "term") {
				e, value, ok := strings.Cut(tv, "=")
				if !ok || e == "" || value == "" {
					return exitf(2, "--term %q: use ENTITY=TERM", tv)
				}
				entity := entityName(e)
				x, err := loadEntity(c.Context, in, entity, c.String("organism"))
				if err != nil {
					return err
				}
				std, ids, err := resolveTerms(x, entity, value)
				if err != nil {
					return err
				}
				add.Terms = appendTerms(add.Terms, entity, std, ids)
			}
			a, err := in.Catalog.Annotate(c.Context, v.UID, add)
			if err != nil {
				return err
			}
			if format == "json" {
				return writeJSON(c.App.Writer, a)
			}
			fmt.Fprintf(c.App.Writer, "annotated %s (%s)\n", v.Ref(), v.UID)
			printAnnotations(c, a)
			return nil
		},
	}
}

// appendTerms adds the terms ids of entity, whose name is name: a name of
// several terms (a symbol on several Ensembl ids) records every one, so
// a query by any of their ids finds the version.
func appendTerms(terms []catalog.Term, entity, name string, ids []string) []catalog.Term {
	for _, id := range ids {
		terms = append(terms, catalog.Term{Entity: entity, ID: id, Name: name})
	}
	return terms
}

// maxPrinted is how many values of a feature, labels and terms
// printAnnotations lists: a curated gene column has 60,000 values, which
// annotate --label printed on one line (--format json has them all).
const maxPrinted = 20

// printAnnotations writes a's features, labels and terms as show does,
// the first maxPrinted of each list.
func printAnnotations(c *cli.Context, a catalog.Annotations) {
	w := c.App.Writer
	names := make([]string, 0, len(a.Features))
	for n := range a.Features {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "%-15s %s = %s\n", "feature", visible(n), firstOf(a.Features[n]))
	}
	if len(a.Labels) > 0 {
		fmt.Fprintf(w, "%-15s %s\n", "labels", firstOf(a.Labels))
	}
	for _, t := range a.Terms[:min(len(a.Terms), maxPrinted)] {
		fmt.Fprintf(w, "%-15s %s %s (%s)\n", "term", t.Entity, visible(t.Name), visible(t.ID))
	}
	if n := len(a.Terms) - maxPrinted; n > 0 {
		fmt.Fprintf(w, "%-15s … and %d more (--format json lists them all)\n", "term", n)
	}
	if a.Schema != "" {
		fmt.Fprintf(w, "%-15s %s\n", "schema", visible(a.Schema))
	}
}

// firstOf joins the first maxPrinted of vs, saying how many more there are.
// The separator is "; ", not ", ": term names have commas ("CD4-positive,
// alpha-beta T cell"); a value with a semicolon of its own is quoted.
func firstOf(vs []string) string {
	parts := make([]string, min(len(vs), maxPrinted))
	for i := range parts {
		parts[i] = vs[i]
		if strings.Contains(vs[i], ";") || strings.HasPrefix(vs[i], `"`) {
			parts[i] = strconv.Quote(vs[i])
		}
	}
	out := visible(strings.Join(parts, "; "))
	if n := len(vs) - maxPrinted; n > 0 {
		out += fmt.Sprintf("; … and %d more", n)
	}
	return out
}
