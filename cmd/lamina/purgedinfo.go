package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lamina-bio/lamina/catalog"
)

// purgedNote says, after "KEY has nothing in the trash", that key was
// deleted for good, when, and which of its versions runs recorded, if a
// run that used or made one keeps that (catalog.Run.Purged): restore
// said only that the trash held nothing, as for a typo. "" when no run
// knows (a version no run touched leaves no record of its key) or the
// lookup fails: the note is a help, the refusal stands either way.
func purgedNote(ctx context.Context, cat catalog.Catalog, key string) string {
	runs, err := cat.ListRuns(ctx, catalog.RunQuery{PurgedKey: key})
	if err != nil {
		return ""
	}
	when := map[int]time.Time{} // version number → when it was purged
	for _, r := range runs {
		for _, p := range r.PurgedOf(key) { // a daemon of an earlier build gives every run
			when[p.Version] = p.PurgedAt
		}
	}
	if len(when) == 0 {
		return ""
	}
	ns := make([]int, 0, len(when))
	var last time.Time
	for n, at := range when {
		ns = append(ns, n)
		if at.After(last) {
			last = at
		}
	}
	slices.Sort(ns)
	refs := make([]string, len(ns))
	for i, n := range ns {
		refs[i] = catalog.Version{Key: key, Version: n}.Ref()
	}
	return fmt.Sprintf(": it was deleted for good (delete --permanent) at %s and cannot come back (runs record %s of it)",
		last.Local().Format(time.DateTime), strings.Join(refs, ", "))
}

// purgedUIDNote says, after "no version has uid UID", that it was a
// version deleted for good, which, when, and a run that records it, if
// one does (catalog.Run.Purged): `lineage UID` and `show UID` said only
// that no version has it, as for a typo. "" when no run knows it or the
// lookup fails. Runs hold no index by purged uid: every run is read, on
// this error path of a whole uid alone.
func purgedUIDNote(ctx context.Context, cat catalog.Catalog, uid string) string {
	runs, err := cat.ListRuns(ctx, catalog.RunQuery{})
	if err != nil {
		return ""
	}
	for _, r := range runs {
		for _, p := range r.Purged {
			if p.UID != uid {
				continue
			}
			by := r.UID
			if p.Run != "" {
				by = p.Run // the run that made it, which keeps it too
			}
			return fmt.Sprintf(": it was %s, deleted for good (delete --permanent) at %s, and cannot come back (`lamina runs show %s` records it)",
				p.Ref(), p.PurgedAt.Local().Format(time.DateTime), by)
		}
	}
	return ""
}

// purgeSize is what delete --permanent KEY takes of an artifact, said in
// its prompt (which gave no count nor size, where FOLDER/ gave counts).
type purgeSize struct {
	versions int
	bytes    int64 // their sizes, summed
	content  int64 // the same, each distinct content once
}

// purgeSizes gives the purgeSize of every key that is an artifact (nodes:
// the folders and links in the trash, which have none).
func purgeSizes(ctx context.Context, cat catalog.Catalog, keys []string, nodes map[string]string) (map[string]purgeSize, error) {
	out := map[string]purgeSize{}
	for _, k := range keys {
		if nodes[k] != "" {
			continue
		}
		vs, err := cat.Versions(ctx, k, true)
		if err != nil {
			return nil, err
		}
		var ps purgeSize
		seen := map[string]bool{}
		for _, v := range vs {
			ps.versions++
			ps.bytes += v.Size
			id := v.Digest.String()
			if v.Digest.IsZero() {
				id = v.UID
			}
			if !seen[id] {
				seen[id] = true
				ps.content += v.Size
			}
		}
		out[k] = ps
	}
	return out, nil
}

func (ps purgeSize) String() string {
	return plural(ps.versions, "version") + ", " + humanBytes(ps.bytes)
}

// gcNote is what lamina gc can free once sizes are deleted, at most: the
// catalog cannot tell cheaply what other versions share with them (a
// chunk of an earlier version, the same bytes under another key), which
// gc keeps.
func gcNote(sizes map[string]purgeSize) string {
	var n int64
	for _, ps := range sizes {
		n += ps.content
	}
	if len(sizes) == 0 {
		return ""
	}
	return fmt.Sprintf("; `lamina gc` can then free up to %s (their content, less what other versions share)", humanBytes(n))
}
