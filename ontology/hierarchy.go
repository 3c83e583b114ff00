package ontology

import (
	"fmt"
	"slices"
	"strings"
)

// Relation selects the edges a hierarchy query follows.
type Relation uint8

// IsA follows is_a edges, PartOf part_of edges; combine them with |.
const (
	IsA Relation = 1 << iota
	PartOf
)

func (x *Index) buildHierarchy() {
	n := len(x.terms)
	x.parents = make([][]int32, n)
	x.partOf = make([][]int32, n)
	x.children = make([][]int32, n)
	x.partChilds = make([][]int32, n)
	for i := range x.terms {
		t := &x.terms[i]
		x.parents[i] = x.resolveIDs(t.Parents)
		x.partOf[i] = x.resolveIDs(t.PartOf)
		for _, p := range x.parents[i] {
			x.children[p] = append(x.children[p], int32(i))
		}
		for _, p := range x.partOf[i] {
			x.partChilds[p] = append(x.partChilds[p], int32(i))
		}
	}
	byID := func(a, b int32) int { return strings.Compare(x.terms[a].ID, x.terms[b].ID) }
	for i := range x.children {
		slices.SortFunc(x.children[i], byID)
		slices.SortFunc(x.partChilds[i], byID)
	}
}

func (x *Index) resolveIDs(ids []string) []int32 {
	if len(ids) == 0 {
		return nil
	}
	out := make([]int32, 0, len(ids))
	for _, id := range ids {
		if i, ok := x.byID[id]; ok {
			out = append(out, i)
		}
	}
	return out
}

func (x *Index) lookupForWalk(idOrName string) (int32, error) {
	i, ok := x.resolve(idOrName)
	if !ok {
		return 0, fmt.Errorf("ontology: %s has no term %q: %w", x.src.Ontology, idOrName, ErrNotFound)
	}
	return i, nil
}

func defaultRel(rel Relation) Relation {
	if rel == 0 {
		return IsA
	}
	return rel
}

// Parents returns the direct parents of a term (by id, alt_id or name),
// including parents outside this source, in file order.
func (x *Index) Parents(idOrName string, rel Relation) ([]string, error) {
	i, err := x.lookupForWalk(idOrName)
	if err != nil {
		return nil, err
	}
	rel = defaultRel(rel)
	t := &x.terms[i]
	var out []string
	if rel&IsA != 0 {
		out = append(out, t.Parents...)
	}
	if rel&PartOf != 0 {
		out = append(out, t.PartOf...)
	}
	return dedup(out), nil
}

// Children returns the direct children of a term, sorted by id.
func (x *Index) Children(idOrName string, rel Relation) ([]string, error) {
	i, err := x.lookupForWalk(idOrName)
	if err != nil {
		return nil, err
	}
	rel = defaultRel(rel)
	var out []string
	if rel&IsA != 0 {
		for _, c := range x.children[i] {
			out = append(out, x.terms[c].ID)
		}
	}
	if rel&PartOf != 0 {
		for _, c := range x.partChilds[i] {
			out = append(out, x.terms[c].ID)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// Ancestors returns every term reachable upwards, nearest first. Parents
// outside the source are included but not followed. Cycles are harmless.
func (x *Index) Ancestors(idOrName string, rel Relation) ([]string, error) {
	i, err := x.lookupForWalk(idOrName)
	if err != nil {
		return nil, err
	}
	rel = defaultRel(rel)
	seen := map[string]bool{x.terms[i].ID: true}
	var out []string
	queue := []int32{i}
	for len(queue) > 0 {
		t := &x.terms[queue[0]]
		queue = queue[1:]
		visit := func(ids []string) {
			for _, id := range ids {
				if seen[id] {
					continue
				}
				seen[id] = true
				out = append(out, id)
				if j, ok := x.byID[id]; ok {
					queue = append(queue, j)
				}
			}
		}
		if rel&IsA != 0 {
			visit(t.Parents)
		}
		if rel&PartOf != 0 {
			visit(t.PartOf)
		}
	}
	return out, nil
}

// Descendants returns every term below, nearest first (breadth-first,
// children in id order). Cycles are harmless.
func (x *Index) Descendants(idOrName string, rel Relation) ([]string, error) {
	i, err := x.lookupForWalk(idOrName)
	if err != nil {
		return nil, err
	}
	idx := x.descendants(i, defaultRel(rel))
	out := make([]string, len(idx))
	for k, j := range idx {
		out[k] = x.terms[j].ID
	}
	return out, nil
}

func (x *Index) descendants(i int32, rel Relation) []int32 {
	seen := make([]bool, len(x.terms))
	seen[i] = true
	var out []int32
	queue := []int32{i}
	for len(queue) > 0 {
		c := queue[0]
		queue = queue[1:]
		var next []int32
		if rel&IsA != 0 {
			next = x.children[c]
		}
		if rel&PartOf != 0 {
			next = append(slices.Clip(next), x.partChilds[c]...)
			slices.SortFunc(next, func(a, b int32) int { return strings.Compare(x.terms[a].ID, x.terms[b].ID) })
		}
		for _, d := range next {
			if !seen[d] {
				seen[d] = true
				out = append(out, d)
				queue = append(queue, d)
			}
		}
	}
	return out
}

// IsDescendant reports whether term is ancestor itself or below it.
func (x *Index) IsDescendant(term, ancestor string, rel Relation) bool {
	if term == ancestor {
		return true
	}
	anc, err := x.Ancestors(term, rel)
	if err != nil {
		return false
	}
	a, ok := x.resolve(ancestor)
	for _, id := range anc {
		if id == ancestor || (ok && id == x.terms[a].ID) {
			return true
		}
	}
	return false
}

func dedup(ids []string) []string {
	seen := make(map[string]bool, len(ids))
	out := ids[:0]
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}
