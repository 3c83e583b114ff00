package main

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/lineage"
	"github.com/urfave/cli/v2"
)

// transformRow is one transform that runs recorded, as `lamina runs
// transforms` lists it.
type transformRow struct {
	catalog.Transform
	Runs      int          `json:"runs"`       // runs of this transform (this name, kind and digest)
	LatestRun *catalog.Run `json:"latest_run"` // its newest run
}

// cmdRunsTransforms lists the transforms runs recorded: what `lamina run`
// and `lamina track` detected or were told with --transform, one row per
// name, kind and source digest (a script whose source changed is a new
// transform of the same name).
func cmdRunsTransforms() *cli.Command {
	return &cli.Command{
		Name:  "transforms",
		Usage: "list the transforms runs recorded: name, kind, source digest, number of runs, latest run",
		Description: "A transform is what a run executed: a script (versioned by the digest of its source), a\n" +
			"program, a pipeline, a Snakemake rule, or a name given with --transform. A script whose source\n" +
			"changed is a new transform of the same name: each has its row. `lamina runs ls --transform NAME`\n" +
			"lists a name's runs.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "name", Usage: "only transforms of this name"},
			formatFlag(),
		},
		Action: func(c *cli.Context) error {
			format, err := checkFormat(c)
			if err != nil {
				return err
			}
			cat, err := openRuns(c)
			if err != nil {
				return err
			}
			defer cat.Close()
			runs, err := cat.ListRuns(c.Context, catalog.RunQuery{Transform: c.String("name")}) // newest first
			if err != nil {
				return err
			}
			rows := map[string]*transformRow{} // by transform uid
			for _, r := range runs {
				if row := rows[r.Transform]; row != nil {
					row.Runs++
					continue
				}
				rec, err := cat.RunRecord(c.Context, r.UID)
				if err != nil {
					return err
				}
				latest := lineage.SweepRuns(c.Context, cat, []catalog.Run{r})[0] // a dead run is not shown running
				rows[r.Transform] = &transformRow{Transform: rec.Transform, Runs: 1, LatestRun: &latest}
			}
			list := make([]transformRow, 0, len(rows))
			for _, row := range rows {
				list = append(list, *row)
			}
			slices.SortFunc(list, func(a, b transformRow) int {
				return cmp.Or(cmp.Compare(a.Name, b.Name), a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.UID, b.UID))
			})
			if format == "json" {
				return writeJSON(c.App.Writer, list)
			}
			var out [][]string
			for _, t := range list {
				digest, started := "", t.LatestRun.StartedAt.Local().Format(time.DateTime)
				if !t.Digest.IsZero() {
					digest = t.Digest.String()
					if format != "csv" {
						digest = digest[:12]
					}
				}
				if format == "csv" {
					started = t.LatestRun.StartedAt.Format(time.RFC3339Nano)
				}
				out = append(out, []string{t.Name, t.Kind, digest, strconv.Itoa(t.Runs), t.LatestRun.UID, started, t.LatestRun.Status, t.Path, t.UID})
			}
			if format == "table" && len(out) == 0 {
				_, err := fmt.Fprintln(c.App.ErrWriter, "no runs recorded a transform yet (lamina run, lamina track start)")
				return err
			}
			return writeRows(c, format, []string{"NAME", "KIND", "DIGEST", "RUNS", "LATEST RUN", "STARTED", "STATUS", "PATH", "UID"},
				[]string{"name", "kind", "digest", "runs", "latest_run", "latest_started_at", "latest_status", "path", "uid"}, out)
		},
	}
}
