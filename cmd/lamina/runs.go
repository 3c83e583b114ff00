package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/lineage"
	"github.com/lamina-bio/lamina/ref"
	"github.com/urfave/cli/v2"
)

func cmdRuns() *cli.Command {
	return &cli.Command{
		Name:  "runs",
		Usage: "list and show tracked runs",
		Subcommands: []*cli.Command{
			{
				Name:  "ls",
				Usage: "list runs, newest first",
				Description: examples(
					"lamina runs ls -n 10",
					"lamina runs ls --transform qc --format json"),
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "transform", Aliases: []string{"t"}, Usage: "only runs of this transform"},
					&cli.IntFlag{Name: "limit", Aliases: []string{"n"}, Value: 100, Usage: "at most this many (0: all; --format json and csv list all unless given)"},
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
					if c.Int("limit") < 0 {
						return exitf(2, "--limit %d: give a number of runs, or 0 for no limit", c.Int("limit"))
					}
					// One more than shown tells whether any were left out:
					// each Snakemake job is a run, and 100 came quickly.
					limit := lsLimit(c)
					q := catalog.RunQuery{Transform: c.String("transform")}
					if limit > 0 {
						q.Limit = limit + 1
					}
					runs, err := cat.ListRuns(c.Context, q)
					if err != nil {
						return err
					}
					if limit > 0 && len(runs) > limit {
						runs = runs[:limit]
						defer fmt.Fprintf(c.App.ErrWriter, "(showing the newest %s; all with --limit 0)\n", plural(limit, "run"))
					}
					runs = lineage.SweepRuns(c.Context, cat, runs) // a dead run is not shown running
					if format == "json" {
						return writeJSON(c.App.Writer, runs)
					}
					var rows [][]string
					for _, r := range runs {
						exit := ""
						if r.ExitCode != nil {
							exit = fmt.Sprint(*r.ExitCode)
							if r.Signal != "" && format != "csv" {
								exit += " " + r.Signal
							}
						}
						started := r.StartedAt.Local().Format(time.DateTime)
						if format == "csv" {
							started = r.StartedAt.Format(time.RFC3339Nano) // as ls --format csv writes times
						}
						rows = append(rows, []string{r.UID, started, r.Status, exit, r.Name, r.Parent})
					}
					return writeRows(c, format, []string{"UID", "STARTED", "STATUS", "EXIT", "NAME", "PARENT"},
						[]string{"uid", "started_at", "status", "exit_code", "name", "parent"}, rows)
				},
			},
			cmdRunsTransforms(),
			{
				Name:      "show",
				Usage:     "show a run: transform, params, argv, times, status, inputs, outputs, child runs",
				ArgsUsage: "RUN_UID",
				Description: examples(
					"lamina runs show RUN_UID",
					"lamina runs show RUN_UID --format json"),
				Flags: []cli.Flag{formatFlag("table", "json")},
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return exitf(2, "usage: lamina runs show RUN_UID")
					}
					if c.String("format") == "text" {
						c.Set("format", "table") // its name before every command said table
					}
					format, err := checkFormat(c, "table", "json")
					if err != nil {
						return err
					}
					cat, err := openRuns(c)
					if err != nil {
						return err
					}
					defer cat.Close()
					rec, err := cat.RunRecord(c.Context, c.Args().First())
					if err != nil {
						return versionNotRun(c.Context, cat, c.Args().First(), err)
					}
					// A dead run (or a job run its dead daemon left) is not shown running.
					if rec.Run.Status == catalog.RunRunning && lineage.SweepRuns(c.Context, cat, []catalog.Run{rec.Run})[0].Status != catalog.RunRunning {
						if rec, err = cat.RunRecord(c.Context, rec.Run.UID); err != nil {
							return err
						}
					}
					// Inputs and outputs in the trash or deleted for good
					// are listed marked; the run says what those deleted
					// for good were (Run.Purged: key and number, and who
					// made an output). One purged before the run kept that,
					// or while this was read, is its uid alone.
					purged := map[string]catalog.PurgedVersion{}
					for _, p := range rec.Run.Purged {
						purged[p.UID] = p
					}
					shown := runShown{RunRecord: rec, Reproduced: []string{}, Trashed: []string{}, Purged: []string{}}
					look := func(uids []string) (map[string]catalog.Version, error) {
						found := map[string]catalog.Version{}
						for _, u := range uids {
							v, err := cat.ByUID(c.Context, u)
							if errors.Is(err, catalog.ErrNotFound) {
								shown.Purged = append(shown.Purged, u)
								if p, ok := purged[u]; ok {
									found[u] = catalog.Version{UID: u, Key: p.Key, Version: p.Version, Run: p.Run}
								}
								continue
							} else if err != nil {
								return nil, err
							}
							found[u] = v
							if v.Trashed {
								shown.Trashed = append(shown.Trashed, u)
							}
						}
						return found, nil
					}
					outs, err := look(rec.Outputs)
					if err != nil {
						return err
					}
					// An output another run made is one this run wrote
					// again with identical bytes (catalog.Runs.Reruns).
					for _, u := range rec.Outputs {
						if v, ok := outs[u]; ok && v.Run != rec.Run.UID {
							shown.Reproduced = append(shown.Reproduced, u)
						}
					}
					ins, err := look(rec.Inputs)
					if err != nil {
						return err
					}
					gone := func(v catalog.Version) string {
						if slices.Contains(shown.Purged, v.UID) {
							return "  (deleted for good)"
						}
						if v.Trashed {
							return "  (in the trash)"
						}
						return ""
					}
					if format == "json" {
						shown.InputVersions, shown.OutputVersions = shownVersions(rec.Inputs, ins), shownVersions(rec.Outputs, outs)
						return writeJSON(c.App.Writer, shown)
					}
					r, t := rec.Run, rec.Transform
					var b strings.Builder
					line := func(k, f string, a ...any) { fmt.Fprintf(&b, "%-10s "+f+"\n", append([]any{k + ":"}, a...)...) }
					line("run", "%s", r.UID)
					line("name", "%s", r.Name)
					line("transform", "%s (%s) %s", t.Name, t.Kind, t.UID)
					if t.Path != "" {
						line("source", "%s  digest %s", t.Path, t.Digest)
					}
					// Maps as sorted KEY=VALUE lines, one per key (%v would
					// print Go's map[k:v …], ambiguous when a value has ':').
					pairs := func(name string, m map[string]string) {
						if len(m) == 0 {
							return
						}
						fmt.Fprintf(&b, "%s:\n", name)
						for _, k := range slices.Sorted(maps.Keys(m)) {
							v := m[k]
							if strings.ContainsFunc(v, unicode.IsControl) {
								v = strconv.Quote(v) // keep it on its line
							}
							fmt.Fprintf(&b, "  %s=%s\n", k, v)
						}
					}
					params := map[string]string{}
					for k, v := range r.Params {
						params[k] = paramText(v)
					}
					pairs("params", params)
					line("argv", "%q", r.Args())
					line("cwd", "%s", r.Cwd)
					line("user", "%s@%s", r.User, r.Host)
					line("started", "%s", r.StartedAt.Local().Format(time.RFC3339))
					if r.FinishedAt != nil {
						line("finished", "%s (%s)", r.FinishedAt.Local().Format(time.RFC3339), r.FinishedAt.Sub(r.StartedAt).Round(time.Millisecond))
					}
					line("status", "%s", runStatus(r))
					if r.ProcsLeft {
						line("left", "processes of its command ran on after its end; what they read and wrote until they exited is the run's")
					}
					if r.Parent != "" {
						line("parent", "%s", r.Parent)
					}
					pairs("env", r.Env)
					fmt.Fprintf(&b, "inputs (%d):\n", len(rec.Inputs))
					for _, u := range rec.Inputs { // by key, then version
						if v, ok := ins[u]; ok {
							fmt.Fprintf(&b, "  %s  %s%s\n", v.Ref(), u, gone(v))
						} else {
							fmt.Fprintf(&b, "  %s  (deleted for good)\n", u)
						}
					}
					fmt.Fprintf(&b, "outputs (%d):\n", len(rec.Outputs))
					for _, u := range rec.Outputs {
						v, ok := outs[u]
						switch {
						case !ok:
							fmt.Fprintf(&b, "  %s  (deleted for good)\n", u)
						case v.Run == "":
							fmt.Fprintf(&b, "  %s  %s  reproduced (identical bytes; made by no run)%s\n", v.Ref(), u, gone(v))
						case v.Run != r.UID:
							fmt.Fprintf(&b, "  %s  %s  reproduced (identical bytes; made by run %s)%s\n", v.Ref(), u, v.Run, gone(v))
						default:
							fmt.Fprintf(&b, "  %s  %s  new%s\n", v.Ref(), u, gone(v))
						}
					}
					fmt.Fprintf(&b, "child runs (%d):\n", len(rec.Children))
					for _, ch := range rec.Children {
						if cr, err := cat.RunRecord(c.Context, ch); err == nil {
							fmt.Fprintf(&b, "  %s  %s  %s\n", ch, cr.Run.Name, cr.Run.Status)
						}
					}
					_, err = fmt.Fprint(c.App.Writer, b.String())
					return err
				},
			},
		},
	}
}

// runShown is what `runs show --format json` prints: the run's record,
// and which of its outputs it reproduced.
type runShown struct {
	catalog.RunRecord
	// Reproduced are the outputs (uids, in the order of Outputs) the run
	// wrote again with identical bytes: another run, or none, made them
	// (catalog.Runs.Reruns). The rest of Outputs it made.
	Reproduced []string `json:"reproduced"`
	// Trashed are the inputs and outputs in the trash; Purged, those
	// deleted for good (their uids stay the run's; run.purged says what
	// they were, catalog.Run.Purged).
	Trashed []string `json:"trashed"`
	Purged  []string `json:"purged"`
	// InputVersions and OutputVersions are Inputs and Outputs, in their
	// order, with each version's key and number (which inputs and outputs,
	// bare uids, lack; kept as they are for the scripts that read them).
	InputVersions  []shownVersion `json:"input_versions"`
	OutputVersions []shownVersion `json:"output_versions"`
}

// shownVersion is a version of runShown: key and number are left out of
// one deleted for good whose run does not say what it was.
type shownVersion struct {
	UID     string `json:"uid"`
	Key     string `json:"key,omitempty"`
	Version int    `json:"version,omitempty"`
}

// shownVersions returns uids with the key and number of each in found.
func shownVersions(uids []string, found map[string]catalog.Version) []shownVersion {
	out := make([]shownVersion, 0, len(uids))
	for _, u := range uids {
		v := found[u]
		out = append(out, shownVersion{UID: u, Key: v.Key, Version: v.Version})
	}
	return out
}

// versionNotRun is the error of `runs show UID` (err, from RunRecord)
// when UID names a version, not a run: it says so and where its run is.
func versionNotRun(ctx context.Context, cat catalog.Catalog, uid string, err error) error {
	if !errors.Is(err, catalog.ErrNotFound) || !ref.IsUIDPrefix(uid) {
		return err
	}
	v, verr := cat.ByUID(ctx, uid)
	if verr != nil {
		return err
	}
	if v.Run == "" {
		return fmt.Errorf("%w: %s is the uid of version %s (made by no run); `lamina lineage %s` shows its lineage", err, uid, v.Ref(), uid)
	}
	return fmt.Errorf("%w: %s is the uid of version %s, made by run %s: `lamina runs show %s`", err, uid, v.Ref(), v.Run, v.Run)
}

// runNotVersion is the error of `lineage UID` or `show UID` (err, from
// resolving it) when UID names a run, not a version, or a version deleted
// for good: it says so.
func runNotVersion(ctx context.Context, cat catalog.Catalog, uid string, err error) error {
	if !errors.Is(err, catalog.ErrNotFound) || !ref.IsUIDPrefix(uid) {
		return err
	}
	if len(uid) == ref.UIDLen {
		if note := purgedUIDNote(ctx, cat, uid); note != "" { // purgedinfo.go
			return fmt.Errorf("%w%s", err, note)
		}
	}
	if len(uid) != ref.StemLen {
		return err
	}
	if _, rerr := cat.RunRecord(ctx, uid); rerr != nil {
		return err
	}
	return fmt.Errorf("%w: %s is the uid of a run, not of a version: `lamina runs show %s`", err, uid, uid)
}

// paramText is how runs show prints a param's value: as it was given,
// which for a typed one is its JSON text (a float64 as the shortest
// decimal without an exponent, as lineage.ParseParams typed it:
// 0.000001, not Go's 1e-06; an integer read back from JSON as 12345678,
// not 1.2345678e+07).
func paramText(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case float32:
		return strconv.FormatFloat(float64(v), 'f', -1, 32)
	}
	if b, err := json.Marshal(v); err == nil {
		return string(b)
	}
	return fmt.Sprint(v)
}
