package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/dataset"
	"github.com/lamina-bio/lamina/instance"
	"github.com/lamina-bio/lamina/ontology"
	"github.com/urfave/cli/v2"
)

// showAnnotations prints shape, columns and annotations in show's layout,
// each term under its name in the default version of its ontology
// (currentNames).
func showAnnotations(c *cli.Context, in *instance.Instance, cat catalog.Catalog, v catalog.Version) {
	w := c.App.Writer
	if len(v.Shape) > 0 {
		parts := make([]string, len(v.Shape))
		for i, n := range v.Shape {
			parts[i] = fmt.Sprint(n)
		}
		fmt.Fprintf(w, "%-15s %s\n", "shape", strings.Join(parts, " × "))
	}
	if len(v.Columns) > 0 {
		var cols []string
		for _, col := range v.Columns {
			name := col.Name
			if col.Slot != "" {
				name = col.Slot + "." + name
			}
			dtype := col.Dtype
			if why := dataset.UnreadReason(dtype); why != "" {
				dtype = "not read: " + why // it was "?", no reason
			}
			cols = append(cols, fmt.Sprintf("%s (%s)", visible(name), dtype))
		}
		fmt.Fprintf(w, "%-15s %s\n", "columns", strings.Join(cols, ", "))
	}
	if a, err := cat.Annotations(c.Context, v.UID); err == nil {
		printAnnotationsNow(c, cat, a, currentNames(c.Context, in, a.Terms))
	}
}

// currentNames returns the name the default source of a term's entity (of
// any organism) gives the term now, "" when none has its id, the
// ontologies cannot be read, or there is nothing to name. A version
// records the name its term had when it was annotated; a newer ontology
// version may have renamed it (CL's "fat cell" is "adipocyte"), and
// term ids are stable.
func currentNames(ctx context.Context, in *instance.Instance, terms []catalog.Term) func(catalog.Term) string {
	if len(terms) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, ontologyWait) // search.go
	defer cancel()
	srcs, err := in.OntologySources(ctx)
	if err != nil {
		return nil
	}
	names := map[catalog.Term]string{}
	loaded := map[string][]*ontology.Index{} // entity → its defaults
	for _, t := range terms {
		xs, ok := loaded[t.Entity]
		if !ok {
			for _, s := range srcs {
				if s.Default && entityName(s.Entity) == entityName(t.Entity) {
					if x, err := in.LoadSource(ctx, s); err == nil {
						xs = append(xs, x)
					}
				}
			}
			loaded[t.Entity] = xs
		}
		for _, x := range xs {
			if d, ok := x.Term(t.ID); ok && d.ID == t.ID {
				names[t] = d.Name
				break
			}
		}
	}
	return func(t catalog.Term) string { return names[t] }
}
