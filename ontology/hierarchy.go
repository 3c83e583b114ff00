package ontology

import (
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

// lookupForWalk finds the term a walk starts from: ErrNotFound, or an
// *AmbiguousError for a name several terms have (walking from one of them
// would answer for a term the caller may not mean).
func (x *Index) lookupForWalk(idOrName string) (uint32, error) {
	return x.resolve(idOrName)
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
	var out []string
	if rel&IsA != 0 {
		out = append(out, x.strList(x.parentIDs.row(i))...)
	}
	if rel&PartOf != 0 {
		out = append(out, x.strList(x.partOfIDs.row(i))...)
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
		for _, c := range x.children.row(i) {
			out = append(out, x.id(c))
		}
	}
	if rel&PartOf != 0 {
		for _, c := range x.partChildren.row(i) {
			out = append(out, x.id(c))
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
	seen := map[string]bool{x.id(i): true}
	var out []string
	queue := []uint32{i}
	for len(queue) > 0 {
		t := queue[0]
		queue = queue[1:]
		visit := func(ids []uint32) {
			for _, k := range ids {
				id := x.str(k)
				if seen[id] {
					continue
				}
				seen[id] = true
				out = append(out, id)
				if j, ok := x.lookupOne(&x.byID, id); ok {
					queue = append(queue, j)
				}
			}
		}
		if rel&IsA != 0 {
			visit(x.parentIDs.row(t))
		}
		if rel&PartOf != 0 {
			visit(x.partOfIDs.row(t))
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
		out[k] = x.id(j)
	}
	return out, nil
}

func (x *Index) descendants(i uint32, rel Relation) []uint32 {
	seen := make([]bool, x.terms())
	seen[i] = true
	var out []uint32
	queue := []uint32{i}
	for len(queue) > 0 {
		c := queue[0]
		queue = queue[1:]
		var next []uint32
		if rel&IsA != 0 {
			next = x.children.row(c)
		}
		if rel&PartOf != 0 {
			next = append(slices.Clip(next), x.partChildren.row(c)...)
			slices.SortFunc(next, func(a, b uint32) int { return strings.Compare(x.id(a), x.id(b)) })
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
	a, err := x.resolve(ancestor)
	for _, id := range anc {
		if id == ancestor || (err == nil && id == x.id(a)) {
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
