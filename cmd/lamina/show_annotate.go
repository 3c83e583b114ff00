package main

import (
	"fmt"
	"strings"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/urfave/cli/v2"
)

// showAnnotations prints shape, columns and annotations in show's layout.
func showAnnotations(c *cli.Context, cat catalog.Catalog, v catalog.Version) {
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
			cols = append(cols, fmt.Sprintf("%s (%s)", visible(name), col.Dtype))
		}
		fmt.Fprintf(w, "%-15s %s\n", "columns", strings.Join(cols, ", "))
	}
	if a, err := cat.Annotations(c.Context, v.UID); err == nil {
		printAnnotations(c, a)
	}
}
