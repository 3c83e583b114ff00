package lineage

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/lamina-bio/lamina/catalog"
)

// Source is what a graph walk reads; every catalog.Catalog is one.
type Source interface {
	ByUID(ctx context.Context, prefix string) (catalog.Version, error)
	ByKey(ctx context.Context, key string, n int) (catalog.Version, error)
	RunRecord(ctx context.Context, uid string) (catalog.RunRecord, error)
	UsedBy(ctx context.Context, uid string) ([]string, error)
	Reruns(ctx context.Context, uid string) ([]string, error)
	// ListRuns finds the runs that made or used a version deleted for
	// good (RunQuery.PurgedKey), to walk on through it (purged.go).
	ListRuns(ctx context.Context, q catalog.RunQuery) ([]catalog.Run, error)
}

// Node is a version or a run.
type Node struct {
	ID      string             `json:"id"`   // the uid
	Kind    string             `json:"kind"` // "version" or "run"
	Version *catalog.Version   `json:"version,omitempty"`
	Latest  bool               `json:"latest,omitempty"` // a version that is still its key's latest
	Run     *catalog.Run       `json:"run,omitempty"`
	Trans   *catalog.Transform `json:"transform,omitempty"`
	// Purged: a version deleted for good, as a run's record keeps it
	// (catalog.Run.Purged; Version has its uid, key, number and run).
	Purged   bool       `json:"purged,omitempty"`
	PurgedAt *time.Time `json:"purged_at,omitempty"`
}

// Label is how the node is shown: key@vN, or the run's name and uid.
func (n *Node) Label() string {
	if n.Version != nil {
		return n.Version.Ref()
	}
	name := n.Run.Name
	if name == "" && n.Trans != nil {
		name = n.Trans.Name
	}
	return fmt.Sprintf("%s (run %s)", name, short(n.ID))
}

func short(uid string) string {
	if len(uid) > 8 {
		return uid[:8]
	}
	return uid
}

// Edge kinds.
const (
	Used      = "used"      // From: version, To: run
	Generated = "generated" // From: run, To: version
	// Reproduced: the run wrote the version's bytes again, after the run
	// that made it (its Version.Run); identical content makes no new
	// version (catalog.Runs.Reruns). From: run, To: version.
	Reproduced = "reproduced"
)

// Edge goes in the direction data flowed.
type Edge struct {
	From string `json:"from"`
	To   string `json:"to"`
	Kind string `json:"kind"`
}

// Graph is the lineage around one version.
type Graph struct {
	Root  string           `json:"root"` // the version asked about
	Nodes map[string]*Node `json:"nodes"`
	Edges []Edge           `json:"edges"` // sorted, no duplicates
	Depth int              `json:"depth"` // the walk's limit; 0 means none
	// The directions not walked (Options.NoUp, NoDown): nothing is known
	// there, which is not "none recorded".
	NoUp   bool `json:"no_up,omitempty"`
	NoDown bool `json:"no_down,omitempty"`
}

// Walk options.
type Options struct {
	Depth  int  // versions to go up and down from the root; 0 means no limit
	NoUp   bool // skip the upstream walk
	NoDown bool // skip the downstream walk
}

// Walk builds the graph around the version v: upstream, the run that wrote
// it (and those that wrote its bytes again: Reproduced), that run's inputs,
// the runs that wrote those, and so on; downstream,
// the runs that used it and what they wrote. Every node is visited once,
// so cycles end the walk.
func Walk(ctx context.Context, src Source, v catalog.Version, o Options) (*Graph, error) {
	if o.Depth < 0 {
		return nil, fmt.Errorf("lineage: depth %d: give 0 (no limit) or more", o.Depth)
	}
	w := &walker{ctx: ctx, src: src, g: &Graph{Root: v.UID, Nodes: map[string]*Node{}, Depth: o.Depth, NoUp: o.NoUp, NoDown: o.NoDown},
		runs: map[string]*catalog.RunRecord{}, latest: map[string]int{}, edges: map[Edge]bool{}}
	if err := w.version(v); err != nil {
		return nil, err
	}
	if !o.NoUp {
		if err := w.walk(v.UID, o.Depth, true); err != nil {
			return nil, err
		}
	}
	if !o.NoDown {
		if err := w.walk(v.UID, o.Depth, false); err != nil {
			return nil, err
		}
	}
	for e := range w.edges {
		w.g.Edges = append(w.g.Edges, e)
	}
	sort.Slice(w.g.Edges, func(i, j int) bool {
		a, b := w.g.Edges[i], w.g.Edges[j]
		if a.From != b.From {
			return a.From < b.From
		}
		return a.To < b.To
	})
	return w.g, nil
}

type walker struct {
	ctx    context.Context
	src    Source
	g      *Graph
	runs   map[string]*catalog.RunRecord
	latest map[string]int // key → latest version number (0: none live)
	edges  map[Edge]bool
}

func (w *walker) version(v catalog.Version) error {
	if _, ok := w.g.Nodes[v.UID]; ok {
		return nil
	}
	n, ok := w.latest[v.Key]
	if !ok {
		l, err := w.src.ByKey(w.ctx, v.Key, 0)
		switch {
		case err == nil:
			n = l.Version
		case !errors.Is(err, catalog.ErrNotFound):
			return err
		}
		w.latest[v.Key] = n
	}
	vv := v
	w.g.Nodes[v.UID] = &Node{ID: v.UID, Kind: "version", Version: &vv, Latest: n == v.Version && !v.Trashed}
	return nil
}

func (w *walker) run(uid string) (*catalog.RunRecord, error) {
	if r, ok := w.runs[uid]; ok {
		return r, nil
	}
	rec, err := w.src.RunRecord(w.ctx, uid)
	if err != nil {
		return nil, err
	}
	w.runs[uid] = &rec
	if _, ok := w.g.Nodes[uid]; !ok {
		r, t := rec.Run, rec.Transform
		w.g.Nodes[uid] = &Node{ID: uid, Kind: "run", Run: &r, Trans: &t}
	}
	return &rec, nil
}

func (w *walker) byUID(uid string) (catalog.Version, error) {
	if n, ok := w.g.Nodes[uid]; ok && n.Version != nil {
		return *n.Version, nil
	}
	v, err := w.src.ByUID(w.ctx, uid)
	if err != nil {
		return v, err
	}
	return v, w.version(v)
}

// walk goes breadth first from version uid, up or down, depth levels.
func (w *walker) walk(start string, depth int, up bool) error {
	seenV := map[string]bool{start: true}
	seenR := map[string]bool{}
	frontier := []string{start}
	for level := 0; len(frontier) > 0 && (depth == 0 || level < depth); level++ {
		var next []string
		for _, vid := range frontier {
			var runs []string
			creator := w.g.Nodes[vid].Version.Run
			if w.g.Nodes[vid].Purged {
				r, err := w.purgedRuns(vid, up) // purged.go
				if err != nil {
					return err
				}
				runs = r
			} else if up {
				if creator != "" {
					runs = []string{creator}
				}
				again, err := w.src.Reruns(w.ctx, vid)
				if err != nil {
					return err
				}
				runs = append(runs, again...)
			} else {
				users, err := w.src.UsedBy(w.ctx, vid)
				if err != nil {
					return err
				}
				runs = users
			}
			for _, rid := range runs {
				rec, err := w.run(rid)
				if errors.Is(err, catalog.ErrNotFound) {
					continue // a run recorded elsewhere, or purged
				}
				if err != nil {
					return err
				}
				if up {
					kind := Generated
					if rid != creator {
						kind = Reproduced
					}
					w.edges[Edge{From: rid, To: vid, Kind: kind}] = true
				} else {
					w.edges[Edge{From: vid, To: rid, Kind: Used}] = true
				}
				if seenR[rid] {
					continue
				}
				seenR[rid] = true
				list := rec.Outputs
				if up {
					list = rec.Inputs
				}
				for _, u := range list {
					if u == vid {
						continue
					}
					uv, err := w.byUID(u)
					if errors.Is(err, catalog.ErrNotFound) {
						if w.purged(rec, u, up) && !seenV[u] { // purged.go
							seenV[u] = true
							next = append(next, u)
						}
						continue
					} else if err != nil {
						return err
					}
					if up {
						w.edges[Edge{From: u, To: rid, Kind: Used}] = true
					} else if uv.Run != rid {
						w.edges[Edge{From: rid, To: u, Kind: Reproduced}] = true
					} else {
						w.edges[Edge{From: rid, To: u, Kind: Generated}] = true
					}
					if !seenV[u] {
						seenV[u] = true
						next = append(next, u)
					}
				}
			}
		}
		frontier = next
	}
	return nil
}
