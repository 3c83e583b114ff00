package lineage

import (
	"encoding/json"

	"github.com/lamina-bio/lamina/catalog"
)

// purged adds u, an input (up) or output of run rec that is no longer in
// the catalog, as the run's record keeps it if it was deleted for good
// (catalog.Run.Purged), with its edge: the walk skipped it, and the run
// showed fewer inputs or outputs than it had, with nothing said. Its
// lineage beyond the run is not walked (its own records went with it).
// A uid the run does not record as purged (a version of another
// instance) is still skipped.
func (w *walker) purged(rec *catalog.RunRecord, u string, up bool) {
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
		return
	}
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
