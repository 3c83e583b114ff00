package lineage

import (
	"encoding/json"
	"slices"

	"github.com/lamina-bio/lamina/catalog"
)

// purged adds u, an input (up) or output of run rec that is no longer in
// the catalog, as the run's record keeps it if it was deleted for good
// (catalog.Run.Purged), with its edge, and says whether it did: the walk
// skipped it, and the run showed fewer inputs or outputs than it had,
// with nothing said. The walk goes on through it (purgedRuns). A uid the
// run does not record as purged (a version of another instance) is
// still skipped.
func (w *walker) purged(rec *catalog.RunRecord, u string, up bool) bool {
	rid := rec.Run.UID
	for _, p := range rec.Run.Purged {
		if p.UID != u || (up && !p.Input) || (!up && !p.Output) {
			continue
		}
		if _, ok := w.g.Nodes[u]; !ok {
			at := p.PurgedAt
			w.g.Nodes[u] = &Node{ID: u, Kind: "version", Version: &catalog.Version{UID: u, Key: p.Key, Version: p.Version, Run: p.Run},
				Purged: true, PurgedAt: &at}
		}
		switch {
		case up:
			w.edges[Edge{From: u, To: rid, Kind: Used}] = true
		case p.Run == rid:
			w.edges[Edge{From: rid, To: u, Kind: Generated}] = true
		default:
			w.edges[Edge{From: rid, To: u, Kind: Reproduced}] = true
		}
		return true
	}
	return false
}

// purgedRuns gives the runs the walk goes on to from uid, a version
// deleted for good: its own records went with it (Reruns and UsedBy know
// nothing of it), which cut off the lineage behind it, but the runs that
// made or used it keep what it was (catalog.Run.Purged). Up: the run that
// made it and those that wrote its bytes again; down: those that used it.
func (w *walker) purgedRuns(uid string, up bool) ([]string, error) {
	v := w.g.Nodes[uid].Version
	var out []string
	if up && v.Run != "" {
		out = append(out, v.Run)
	}
	runs, err := w.src.ListRuns(w.ctx, catalog.RunQuery{PurgedKey: v.Key})
	if err != nil {
		return nil, err
	}
	for _, r := range runs {
		for _, p := range r.PurgedOf(v.Key) { // a daemon of an earlier build gives every run
			if p.UID == uid && (up && p.Output || !up && p.Input) && !slices.Contains(out, r.UID) {
				out = append(out, r.UID)
			}
		}
	}
	return out, nil
}

// MarshalJSON gives a version deleted for good as what is known of it
// (uid, key, number, run), not as a Version of zero digest and dates.
func (n Node) MarshalJSON() ([]byte, error) {
	type plain Node
	if !n.Purged || n.Version == nil {
		return json.Marshal(plain(n))
	}
	type known struct {
		UID     string `json:"uid"`
		Key     string `json:"key"`
		Version int    `json:"version"`
		Run     string `json:"run,omitempty"`
	}
	v := n.Version
	return json.Marshal(struct {
		plain
		Version known `json:"version"`
	}{plain(n), known{v.UID, v.Key, v.Version, v.Run}})
}
