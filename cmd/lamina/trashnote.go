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
	fmt.Fprintf(w, "lamina: note: %s is in the trash%s; `lamina restore %s` brings back the versions of %s in the trash\n", v.Ref(), since, v.Key, v.Key)
}

// printKeyVersions prints every version of one key, the trashed ones
// marked (ls --versions): TRASHED (the time, to the second) and ENTRY
// (the number of its trash entry, 1 the oldest: the versions one delete,
// rm or rename trashed together, which `lamina restore UID` of any of them
// brings back) in the table when one is trashed, always trashed_at and
// trash_entry columns in CSV, and "trashed" and "trashed_at" in JSON (the
// version's own fields). Snakemake's rm-and-rerun trashes a key several
// times a minute: the table showed minutes only, and entries looked one.
// A note on stderr says how they come back.
func printKeyVersions(c *cli.Context, format string, vs []catalog.Version) error {
	slices.SortFunc(vs, func(a, b catalog.Version) int { return cmp.Compare(a.Version, b.Version) })
	trashed := 0
	for _, v := range vs {
		if v.Trashed {
			trashed++
		}
	}
	entries := trashedTogether(vs) // delete.go
	if trashed > 0 {
		what, them := fmt.Sprintf("%d versions of %s are", trashed, vs[0].Key), "them"
		if trashed == 1 {
			what, them = fmt.Sprintf("1 version of %s is", vs[0].Key), "it"
		}
		where, uid := "", ""
		if len(entries) > 1 {
			where = fmt.Sprintf(", in %d entries (ENTRY: what one delete or rm trashed together)", len(entries))
			uid = ", `lamina restore UID` the entry of that version"
		}
		defer fmt.Fprintf(c.App.ErrWriter, "lamina: note: %s in the trash%s; `lamina restore %s` brings %s back%s\n", what, where, vs[0].Key, them, uid)
	}
	return printMarkedVersions(c, format, vs, true)
}

// printMarkedVersions prints versions with the trashed ones marked, as
// printKeyVersions does (ls --versions, collection show); with entries,
// the ENTRY column (trash_entry) too: the versions of one key.
func printMarkedVersions(c *cli.Context, format string, vs []catalog.Version, entries bool) error {
	trashed := 0
	for _, v := range vs {
		if v.Trashed {
			trashed++
		}
	}
	if format == "json" {
		return printVersions(c, format, vs)
	}
	entryOf := map[string]int{}
	for i, e := range trashedTogether(vs) { // delete.go
		for _, v := range e {
			entryOf[v.UID] = i + 1
		}
	}
	machine := format == "csv"
	rows := versionRows(vs, machine)
	for i, v := range vs {
		at, entry := "", ""
		if v.TrashedAt != nil {
			at = v.TrashedAt.Local().Format(time.DateTime)
			if machine {
				at = v.TrashedAt.Format(time.RFC3339Nano)
			}
		} else if v.Trashed {
			at = "yes" // no time recorded (an edited export imported)
		}
		if n := entryOf[v.UID]; n > 0 {
			entry = fmt.Sprint(n)
		}
		rows[i] = append(rows[i], at)
		if entries {
			rows[i] = append(rows[i], entry)
		}
	}
	marks, csvMarks := []string{"TRASHED", "ENTRY"}, []string{"trashed_at", "trash_entry"}
	if !entries {
		marks, csvMarks = marks[:1], csvMarks[:1]
	}
	if machine {
		return writeCSV(c.App.Writer, append(slices.Clip(versionCSVHeader), csvMarks...), rows)
	}
	header := versionHeader
	if trashed == 0 {
		for i := range rows {
			rows[i] = rows[i][:len(rows[i])-len(marks)]
		}
	} else {
		header = append(slices.Clip(header), marks...)
	}
	return table(c.App.Writer, header, rows)
}
