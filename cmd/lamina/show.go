package main

import (
	"fmt"
	"io"
	"time"

	"github.com/lamina-bio/lamina/catalog"
	lfs "github.com/lamina-bio/lamina/fs"
	"github.com/lamina-bio/lamina/lineage"
	"github.com/urfave/cli/v2"
)

func cmdShow() *cli.Command {
	return &cli.Command{
		Name:      "show",
		Usage:     "show everything about one version",
		ArgsUsage: "KEY[@vN] | UID",
		Description: examples(
			"lamina show experiments/exp1/counts.csv",
			"lamina show experiments/exp1/counts.csv@v1 --format json"),
		Flags: []cli.Flag{formatFlag("table", "json")},
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
			v, err := resolveArg(c.Context, in, c.Args().First()) // get.go
			if err != nil {
				return runNotVersion(c.Context, in.Catalog, c.Args().First(), err) // runs.go
			}
			trashNote(c.App.ErrWriter, v) // trashnote.go
			// The run, its transform and inputs, as the version's sidecar
			// shows them: one builder for both.
			lin := lineage.SidecarOf(c.Context, withoutReruns(in.Catalog, c.App.ErrWriter), v)
			if format == "json" {
				// The sidecar's document itself (fs/names.go).
				a, err := in.Catalog.Annotations(c.Context, v.UID)
				if err != nil {
					a = catalog.Annotations{}
				}
				_, err = c.App.Writer.Write(lfs.SidecarWith(v, a, lin))
				return err
			}
			w := c.App.Writer
			row := func(k, v string) {
				if v != "" { // escaped as ls and search do (output.go)
					fmt.Fprintf(w, "%-15s %s\n", k, visible(v))
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
			if v.HasNObservations() {
				row("n_observations", fmt.Sprint(v.NObservations))
			}
			row("digest", v.Digest.String())
			row("description", v.Description)
			row("created_by", v.CreatedBy)
			row("created_at", v.CreatedAt.Local().Format(time.RFC3339))
			row("mtime", v.Mtime.Local().Format(time.RFC3339Nano))
			if v.Mode != 0 {
				row("mode", fmt.Sprintf("%04o", catalog.Perm(v.Mode)))
			}
			if v.Revises != "" {
				// Always a version of the same key: name its number too.
				rv, err := in.Catalog.ByUID(c.Context, v.Revises)
				if err == nil {
					row("revises", fmt.Sprintf("%s  uid %s", rv.Ref(), rv.UID))
				} else {
					row("revises", v.Revises) // purged since
				}
			}
			if l, ok := lin.(lineage.SidecarLineage); ok {
				// The lineage's run, whose status follows: the one that
				// ended ok when the version's own run failed (SidecarOf).
				row("run", l.Run)
				showLineage(w, l)
			} else {
				row("run", v.Run)
			}
			showAnnotations(c, in, in.Catalog, v) // show_annotate.go
			if v.Trashed {
				row("trashed", v.TrashedAt.Local().Format(time.RFC3339))
			}
			return nil
		},
	}
}

// showLineage prints the lineage rows of show: the run's status, its
// transform and its inputs, each "key@vN uid", and the newest runs that
// reproduced the version (newest first) with how many more did.
func showLineage(w io.Writer, l lineage.SidecarLineage) {
	if l.Status != "" {
		fmt.Fprintf(w, "%-15s %s\n", "run_status", visible(l.Status))
	}
	if l.Transform != "" {
		fmt.Fprintf(w, "%-15s %s  uid %s\n", "transform", visible(l.Transform), l.TransUID)
	}
	if len(l.Inputs) == 0 {
		fmt.Fprintf(w, "%-15s %s\n", "inputs", "none recorded")
	}
	for i, in := range l.Inputs {
		k := ""
		if i == 0 {
			k = "inputs"
		}
		fmt.Fprintf(w, "%-15s %s\n", k, visible(in))
	}
	for i, r := range l.AlsoBy {
		k := ""
		if i == 0 {
			k = "also_produced"
		}
		fmt.Fprintf(w, "%-15s run %s (identical bytes)\n", k, visible(r))
	}
	if more := l.AlsoCount - len(l.AlsoBy); more > 0 {
		k := ""
		if len(l.AlsoBy) == 0 {
			k = "also_produced"
		}
		fmt.Fprintf(w, "%-15s and %s (%d in all; lamina lineage --up lists every one)\n", k, plural(more, "earlier run"), l.AlsoCount)
	}
}
