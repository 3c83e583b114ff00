package main

import (
	"fmt"
	"time"

	"github.com/urfave/cli/v2"
)

func cmdShow() *cli.Command {
	return &cli.Command{
		Name:      "show",
		Usage:     "show everything about one version",
		ArgsUsage: "KEY[@vN] | UID",
		Flags:     []cli.Flag{formatFlag()},
		Action: func(c *cli.Context) error {
			format, err := checkFormat(c, "table", "json")
			if err != nil {
				return err
			}
			if c.NArg() != 1 {
				return exitf(2, "usage: lamina show KEY[@vN] | UID")
			}
			in, err := openInstance(c)
			if err != nil {
				return err
			}
			defer in.Close()
			v, err := in.Resolve(c.Context, c.Args().First())
			if err != nil {
				return err
			}
			if format == "json" {
				return writeJSON(c.App.Writer, annotatedVersion(c, in.Catalog, v)) // show_annotate.go
			}
			w := c.App.Writer
			row := func(k, v string) {
				if v != "" {
					fmt.Fprintf(w, "%-15s %s\n", k, v)
				}
			}
			row("key", v.Key)
			row("version", fmt.Sprint(v.Version))
			row("uid", v.UID)
			row("kind", v.Kind)
			row("suffix", v.Suffix)
			row("otype", v.OType)
			row("size", fmt.Sprintf("%s (%d bytes)", humanBytes(v.Size), v.Size))
			if v.NFiles > 0 {
				row("n_files", fmt.Sprint(v.NFiles))
			}
			if v.NObservations > 0 {
				row("n_observations", fmt.Sprint(v.NObservations))
			}
			row("digest", v.Digest.String())
			row("description", v.Description)
			row("created_by", v.CreatedBy)
			row("created_at", v.CreatedAt.Local().Format(time.RFC3339))
			row("mtime", v.Mtime.Local().Format(time.RFC3339Nano))
			row("run", v.Run)
			showAnnotations(c, in.Catalog, v) // show_annotate.go
			if v.Trashed {
				row("trashed", v.TrashedAt.Local().Format(time.RFC3339))
			}
			return nil
		},
	}
}
