package main

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/urfave/cli/v2"
)

// trashNote tells, on w (stderr: stdout stays the data or the export),
// that v is in the trash and how it comes back. show, get and lineage take
// KEY@vN of a trashed version, as they take its uid: a key written again
// after an rm (every Snakemake rerun) keeps its earlier versions there.
func trashNote(w io.Writer, v catalog.Version) {
	if !v.Trashed {
		return
	}
	since := ""
	if v.TrashedAt != nil {
		since = " since " + v.TrashedAt.Local().Format(time.DateTime)
	}
	fmt.Fprintf(w, "note: %s is in the trash%s; `lamina restore %s` brings back the versions of %s in the trash\n", v.Ref(), since, v.Key, v.Key)
}

// printKeyVersions prints every version of one key, the trashed ones
// marked (ls --versions): a TRASHED column (the time) in the table when
// one is, always a trashed_at column in CSV, and "trashed" in JSON (the
// version's own field). A note on stderr says how they come back.
func printKeyVersions(c *cli.Context, format string, vs []catalog.Version) error {
	slices.SortFunc(vs, func(a, b catalog.Version) int { return cmp.Compare(a.Version, b.Version) })
	trashed := 0
	for _, v := range vs {
		if v.Trashed {
			trashed++
		}
	}
	if trashed > 0 {
		what, them := fmt.Sprintf("%d versions of %s are", trashed, vs[0].Key), "them"
		if trashed == 1 {
			what, them = fmt.Sprintf("1 version of %s is", vs[0].Key), "it"
		}
		defer fmt.Fprintf(c.App.ErrWriter, "note: %s in the trash; `lamina restore %s` brings %s back\n", what, vs[0].Key, them)
	}
	return printMarkedVersions(c, format, vs)
}

// printMarkedVersions prints versions with the trashed ones marked, as
// printKeyVersions does (ls --versions, collection show).
func printMarkedVersions(c *cli.Context, format string, vs []catalog.Version) error {
	trashed := 0
	for _, v := range vs {
		if v.Trashed {
			trashed++
		}
	}
	if format == "json" {
		return printVersions(c, format, vs)
	}
	machine := format == "csv"
	rows := versionRows(vs, machine)
	for i, v := range vs {
		at := ""
		if v.TrashedAt != nil {
			at = v.TrashedAt.Local().Format("2006-01-02 15:04")
			if machine {
				at = v.TrashedAt.Format(time.RFC3339Nano)
			}
		} else if v.Trashed {
			at = "yes"
		}
		rows[i] = append(rows[i], at)
	}
	if machine {
		return writeCSV(c.App.Writer, append(slices.Clip(versionCSVHeader), "trashed_at"), rows)
	}
	header := versionHeader
	if trashed == 0 {
		for i := range rows {
			rows[i] = rows[i][:len(rows[i])-1]
		}
	} else {
		header = append(slices.Clip(header), "TRASHED")
	}
	return table(c.App.Writer, header, rows)
}
