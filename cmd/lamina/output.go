package main

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/instance"
	"github.com/urfave/cli/v2"
)

// formatFlag is --format; its help lists formats, which must be those the
// command passes to checkFormat (table, json and csv when none are given).
func formatFlag(formats ...string) *cli.StringFlag {
	if len(formats) == 0 {
		formats = []string{"table", "json", "csv"}
	}
	list := formats[0]
	if n := len(formats); n > 1 {
		list = strings.Join(formats[:n-1], ", ") + " or " + formats[n-1]
	}
	return &cli.StringFlag{Name: "format", Aliases: []string{"f"}, Value: "table", Usage: "output format: " + list}
}

func checkFormat(c *cli.Context, allowed ...string) (string, error) {
	f := c.String("format")
	if len(allowed) == 0 {
		allowed = []string{"table", "json", "csv"}
	}
	for _, a := range allowed {
		if f == a {
			return f, nil
		}
	}
	return "", exitf(2, "unknown --format %q (use %s)", f, strings.Join(allowed, ", "))
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table writes rows as aligned text, a header first. Control characters
// in a cell are shown escaped (a newline as \n, a tab as \t), so a
// description holding them neither starts a row nor shifts columns; CSV
// and JSON keep them as they are.
// tabwriter writes each cell separately, so it writes through a buffer:
// 1,000 rows would otherwise be 14,000 write system calls.
func table(w io.Writer, header []string, rows [][]string) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	tw := tabwriter.NewWriter(bw, 0, 0, 2, ' ', 0)
	line := func(cells []string) {
		for i, c := range cells {
			if i > 0 {
				tw.Write([]byte{'\t'})
			}
			io.WriteString(tw, visible(c))
		}
		tw.Write([]byte{'\n'})
	}
	line(header)
	for _, r := range rows {
		line(r)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return bw.Flush()
}

// visible returns s with control characters escaped as Go writes them
// in a string literal (\n, \t, \r, \x1b, \u0085).
func visible(s string) string {
	if strings.IndexFunc(s, unicode.IsControl) < 0 {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case !unicode.IsControl(r):
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x80:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
	}
	return b.String()
}

func writeCSV(w io.Writer, header []string, rows [][]string) error {
	cw := csv.NewWriter(w)
	cw.Write(header)
	cw.WriteAll(rows)
	return cw.Error()
}

// humanBytes formats n in binary units.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func versionRows(vs []catalog.Version, machine bool) [][]string {
	rows := make([][]string, 0, len(vs))
	for _, v := range vs {
		size := humanBytes(v.Size)
		created := v.CreatedAt.Local().Format("2006-01-02 15:04")
		if machine {
			size = fmt.Sprint(v.Size)
			created = v.CreatedAt.Format(time.RFC3339Nano)
		}
		rows = append(rows, []string{v.Key, fmt.Sprint(v.Version), v.UID, size, v.Kind, created, v.CreatedBy, v.Description})
	}
	return rows
}

var versionHeader = []string{"KEY", "VERSION", "UID", "SIZE", "KIND", "CREATED", "BY", "DESCRIPTION"}

// versionCSVHeader names versionHeader's columns as ls --format json does.
var versionCSVHeader = []string{"key", "version", "uid", "size", "kind", "created_at", "created_by", "description"}

func printVersions(c *cli.Context, format string, vs []catalog.Version) error {
	w := c.App.Writer
	switch format {
	case "json":
		shown := make([]catalog.ShownVersion, len(vs))
		for i, v := range vs {
			shown[i] = catalog.Shown(v)
		}
		return writeJSON(w, shown)
	case "csv":
		return writeCSV(w, versionCSVHeader, versionRows(vs, true))
	}
	return table(w, versionHeader, versionRows(vs, false))
}

func lower(h []string) []string {
	out := make([]string, len(h))
	for i, s := range h {
		out[i] = strings.ToLower(s)
	}
	return out
}

// listCommand is the `ls` subcommand of a record family (features, labels,
// schemas, collections): JSON of the records, or one row per record as a
// table or CSV (csvHeader: see writeRows; row's machine is true for CSV).
func listCommand[T any](usage string, header, csvHeader []string, list func(*cli.Context, *instance.Instance) ([]T, error), row func(r T, machine bool) []string) *cli.Command {
	return &cli.Command{
		Name:  "ls",
		Usage: usage,
		Flags: []cli.Flag{formatFlag()},
		Action: func(c *cli.Context) error {
			format, err := checkFormat(c)
			if err != nil {
				return err
			}
			in, err := openInstance(c)
			if err != nil {
				return err
			}
			defer in.Close()
			recs, err := list(c, in)
			if err != nil {
				return err
			}
			if format == "json" {
				if recs == nil {
					recs = []T{}
				}
				return writeJSON(c.App.Writer, recs)
			}
			rows := make([][]string, 0, len(recs))
			for _, r := range recs {
				rows = append(rows, row(r, format == "csv"))
			}
			return writeRows(c, format, header, csvHeader, rows)
		},
	}
}
