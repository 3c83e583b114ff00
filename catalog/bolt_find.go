package catalog

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/lamina-bio/lamina/ref"
	bolt "go.etcd.io/bbolt"
)

// Find answers a Filter from the indexes of bolt_annotate.go in three
// steps, each sized by what it returns rather than by the catalog:
//
//  1. Every indexed condition is a source: a few index ranges whose
//     entries carry the version's uid and its artifact's key. With several
//     sources, the smallest (counted, each count stopping once it passes
//     the smallest so far) is held in memory and the others are streamed
//     past it, so no other set is built.
//  2. Ordered by key with a limit, the candidates stream through a bounded
//     heap that keeps the first 2×limit by key: neither sorted nor copied
//     whole.
//  3. Only those are checked for liveness and decoded, in key order, until
//     the limit is reached; when too few survive (older versions, version
//     conditions) step 2 runs again with a bound four times larger.

// posting is one candidate: a version's uid and its artifact's key, copied
// into a keyArena. Postings hold no pointers, so the garbage collector
// never scans lists of them.
type posting struct {
	uid [ref.UIDLen]byte
	off uint32 // the key is keys.b[off : off+n]
	n   uint32
}

// keyArena holds the keys of one Find's postings.
type keyArena struct{ b []byte }

func (a *keyArena) key(p posting) []byte { return a.b[p.off : p.off+p.n] }

func (a *keyArena) add(uid, key []byte) posting {
	p := posting{off: uint32(len(a.b)), n: uint32(len(key))}
	a.b = append(a.b, key...)
	copy(p.uid[:], uid)
	return p
}

// indexRange is a run of index entries: those under prefix, starting at
// from if set, whose value part (between prefix and the uid) keep accepts.
type indexRange struct {
	bk           *bolt.Bucket
	prefix, from []byte
	keep         func(mid []byte) (ok, stop bool) // nil: every entry
}

// source is one indexed condition: the union of its ranges, minus the
// uids in skip. A version may be listed more than once (two values of a
// condition, two terms of a group).
type source struct {
	ranges []indexRange
	skip   map[[ref.UIDLen]byte]bool
}

// each calls fn with the uid and the artifact key of every entry of s until
// fn returns false. Both point into the memory map: valid during the
// transaction, to be copied if kept.
func (s source) each(fn func(uid, key []byte) bool) {
	for _, r := range s.ranges {
		if r.bk == nil {
			continue
		}
		c := r.bk.Cursor()
		start := r.prefix
		if r.from != nil {
			start = r.from
		}
		for k, val := c.Seek(start); k != nil && bytes.HasPrefix(k, r.prefix); k, val = c.Next() {
			if len(k) < len(r.prefix)+ref.UIDLen {
				continue
			}
			uid := k[len(k)-ref.UIDLen:]
			if r.keep != nil {
				if len(k) < len(r.prefix)+ref.UIDLen+1 {
					continue
				}
				ok, stop := r.keep(k[len(r.prefix) : len(k)-ref.UIDLen-1])
				if stop {
					break
				}
				if !ok {
					continue
				}
			}
			if s.skip != nil && s.skip[[ref.UIDLen]byte(uid)] {
				continue
			}
			if !fn(uid, val) {
				return
			}
		}
	}
}

// count returns the number of entries of s, or max+1 if there are more.
func (s source) count(max int) int {
	n := 0
	s.each(func(_, _ []byte) bool { n++; return n <= max })
	return n
}

// candidates yields what every source lists, in no particular order.
type candidates func(fn func(uid, key []byte) bool)

// intersect returns the entries of the smallest source that every other
// source lists too, each uid once, as candidates.
func intersect(sources []source) candidates {
	if len(sources) == 1 {
		return sources[0].each
	}
	// Hold the first source; count each other one only as far as the
	// smallest so far, and hold it instead if it is smaller.
	small := 0
	uniq, keys := collect(sources[0], 0)
	for i := 1; i < len(sources) && len(uniq) > 0; i++ {
		if n := sources[i].count(len(uniq)); n < len(uniq) {
			small = i
			uniq, keys = collect(sources[i], n)
		}
	}
	byUID := func(a, b posting) int { return compareUID(a.uid[:], b.uid[:]) }
	if !slices.IsSortedFunc(uniq, byUID) { // one index range is sorted by uid already
		slices.SortFunc(uniq, byUID)
	}
	uniq = slices.CompactFunc(uniq, func(a, b posting) bool { return a.uid == b.uid })
	// round[i] counts the other sources uniq[i] was found in so far; a uid
	// listed twice by one source counts once.
	round := make([]int32, len(uniq))
	r := int32(0)
	for i, s := range sources {
		if i == small || len(uniq) == 0 {
			continue
		}
		// Each range of s lists uids in ascending order, as uniq does:
		// merge them, starting over where the order restarts.
		at, prev := 0, []byte(nil)
		s.each(func(uid, _ []byte) bool {
			if prev != nil && compareUID(uid, prev) < 0 {
				at = 0
			}
			prev = uid
			at = seekUID(uniq, at, uid)
			if at < len(uniq) && uniq[at].uid == [ref.UIDLen]byte(uid) && round[at] == r {
				round[at] = r + 1
			}
			return true
		})
		r++
	}
	return func(fn func(uid, key []byte) bool) {
		for i, p := range uniq {
			if round[i] == r && !fn(p.uid[:], keys.key(p)) {
				return
			}
		}
	}
}

// collect returns the entries of s, with room for n.
func collect(s source, n int) ([]posting, *keyArena) {
	keys := &keyArena{}
	ps := make([]posting, 0, n)
	s.each(func(uid, key []byte) bool {
		ps = append(ps, keys.add(uid, key))
		return true
	})
	return ps, keys
}

// compareUID orders two uids; it is called per index entry in a merge, and
// uids nearly always differ in their first eight bytes.
func compareUID(a, b []byte) int {
	if x, y := binary.BigEndian.Uint64(a), binary.BigEndian.Uint64(b); x != y {
		if x < y {
			return -1
		}
		return 1
	}
	return bytes.Compare(a[8:], b[8:])
}

// seekUID returns the index of the first posting of ps (sorted by uid) at
// or after from whose uid is not below uid. It gallops: the cost grows
// with the log of the distance moved, so merging a short run into a long
// list skips most of it.
func seekUID(ps []posting, from int, uid []byte) int {
	below := func(i int) bool { return compareUID(ps[i].uid[:], uid) < 0 }
	if from >= len(ps) || !below(from) {
		return from
	}
	lo, step := from, 1 // ps[lo] is below uid
	for lo+step < len(ps) && below(lo+step) {
		lo += step
		step *= 2
	}
	hi := min(lo+step, len(ps))
	return lo + 1 + sort.Search(hi-lo-1, func(i int) bool { return !below(lo + 1 + i) })
}

// firstByKey returns the first n candidates under prefix by key, then uid
// (every one for n <= 0), sorted so, and whether it left any out.
func firstByKey(cands candidates, prefix []byte, n int) (ps []posting, more bool) {
	keys := &keyArena{}
	h := postingHeap{keys: keys}
	cands(func(uid, key []byte) bool {
		if !bytes.HasPrefix(key, prefix) {
			return true
		}
		if n <= 0 {
			h.ps = append(h.ps, keys.add(uid, key)) // all of them: sorted below
			return true
		}
		if len(h.ps) < n {
			h.push(keys.add(uid, key))
			return true
		}
		more = true
		if comparePosting(key, uid, keys, h.ps[0]) < 0 {
			h.ps[0] = keys.add(uid, key)
			h.down(0)
		}
		return true
	})
	slices.SortFunc(h.ps, func(a, b posting) int { return comparePosting(keys.key(a), a.uid[:], keys, b) })
	return h.ps, more
}

// comparePosting orders a candidate (key, uid) against posting p.
func comparePosting(key, uid []byte, keys *keyArena, p posting) int {
	if c := bytes.Compare(key, keys.key(p)); c != 0 {
		return c
	}
	return bytes.Compare(uid, p.uid[:])
}

// postingHeap is a binary max-heap of postings by key, then uid: its top
// is the candidate a better one replaces.
type postingHeap struct {
	ps   []posting
	keys *keyArena
}

// above reports whether ps[i] belongs above ps[j]: it comes later by key.
func (h *postingHeap) above(i, j int) bool {
	a := h.ps[i]
	return comparePosting(h.keys.key(a), a.uid[:], h.keys, h.ps[j]) > 0
}

func (h *postingHeap) push(p posting) {
	h.ps = append(h.ps, p)
	for i := len(h.ps) - 1; i > 0; {
		parent := (i - 1) / 2
		if !h.above(i, parent) {
			return
		}
		h.ps[i], h.ps[parent] = h.ps[parent], h.ps[i]
		i = parent
	}
}

func (h *postingHeap) down(i int) {
	n := len(h.ps)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		j := l
		if r := l + 1; r < n && h.above(r, l) {
			j = r
		}
		if !h.above(j, i) {
			return
		}
		h.ps[i], h.ps[j] = h.ps[j], h.ps[i]
		i = j
	}
}

func (t txn) featureCond(f Feature, c Cond) (source, error) {
	prefix := append([]byte(f.Name), 0)
	bk := t.bucket(bFeatureIdx)
	if len(c.Values) == 0 {
		return source{}, Invalidf("--where %s%s needs a value", c.Field, c.Op)
	}
	var wants [][]byte
	for _, raw := range c.Values {
		dt := f.Dtype
		if c.Op == "^=" {
			dt = "str"
		}
		ks, err := condKeys(dt, c.Op, raw)
		if err != nil {
			return source{}, fmt.Errorf("--where %s%s%s: %w", c.Field, c.Op, raw, err)
		}
		wants = append(wants, ks...)
	}
	valueRange := func(w []byte) indexRange {
		return indexRange{bk: bk, prefix: append(append(append([]byte(nil), prefix...), w...), 0)}
	}
	switch c.Op {
	case "=":
		var s source
		for _, w := range wants {
			s.ranges = append(s.ranges, valueRange(w))
		}
		return s, nil
	case "!=":
		// Every version with a value of the feature, but none of wants.
		s := source{ranges: []indexRange{{bk: bk, prefix: prefix}}, skip: map[[ref.UIDLen]byte]bool{}}
		for _, w := range wants {
			source{ranges: []indexRange{valueRange(w)}}.each(func(uid, _ []byte) bool {
				s.skip[[ref.UIDLen]byte(uid)] = true
				return true
			})
		}
		return s, nil
	case "^=":
		if f.Dtype != "str" && !strings.HasPrefix(f.Dtype, "cat") {
			return source{}, Invalidf("^= applies to text features; %s is %s", f.Name, f.Dtype)
		}
		return source{ranges: []indexRange{{bk: bk, prefix: append(append([]byte(nil), prefix...), wants[0]...)}}}, nil
	case "<", "<=", ">", ">=":
		w := wants[0]
		var from []byte
		if c.Op == ">" || c.Op == ">=" {
			from = append(append([]byte(nil), prefix...), w...)
		}
		tag := w[0]
		keep := func(mid []byte) (bool, bool) {
			if len(mid) == 0 || mid[0] != tag {
				return false, len(mid) > 0 && mid[0] > tag
			}
			ok := compareKeys(c.Op, mid, w)
			// Below the bound an ascending scan for < stops at the first miss.
			stop := !ok && (c.Op == "<" || c.Op == "<=")
			return ok, stop
		}
		return source{ranges: []indexRange{{bk: bk, prefix: prefix, from: from, keep: keep}}}, nil
	}
	return source{}, Invalidf("unknown operator %q", c.Op)
}

// labelClosure returns name and, unless exact, every label below it.
func (t txn) labelClosure(name string, exact bool) ([]string, error) {
	if _, err := t.label(name); err != nil {
		return nil, err
	}
	if exact {
		return []string{name}, nil
	}
	children := map[string][]string{}
	if bk := t.bucket(bLabels); bk != nil {
		err := bk.ForEach(func(k, raw []byte) error {
			var l Label
			if err := json.Unmarshal(raw, &l); err != nil {
				return err
			}
			if l.Parent != "" {
				children[l.Parent] = append(children[l.Parent], l.Name)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return LabelClosure(name, children), nil
}

func (b *Bolt) Find(ctx context.Context, f Filter) ([]Version, error) {
	var out []Version
	err := b.with(false, func(tx *bolt.Tx) error {
		var err error
		out, err = txn{tx}.find(f)
		return err
	})
	return out, err
}

func (t txn) find(f Filter) ([]Version, error) {
	if f.Prefix != "" {
		if err := ref.CheckPrefix(f.Prefix); err != nil {
			return nil, err
		}
	}
	switch f.Order {
	case "", "key", "created_at", "-created_at":
	default:
		return nil, Invalidf("order %q: use key, created_at or -created_at", f.Order)
	}
	// Split conditions: features go to the index, version fields are
	// checked on the decoded versions (VersionMatcher, shared with the
	// PostgreSQL store).
	keepVersion, featureConds, err := VersionMatcher(f)
	if err != nil {
		return nil, err
	}
	sources, err := t.sources(f, featureConds)
	if err != nil {
		return nil, err
	}
	if len(sources) == 0 {
		return t.findByKeys(f, keepVersion)
	}
	cands := intersect(sources)
	byKey := f.Order == "" || f.Order == "key"
	bound := 0 // every candidate: no limit, or ordered by created_at (all are decoded)
	if byKey && f.Limit > 0 {
		bound = 2 * f.Limit
	}
	for {
		ps, more := firstByKey(cands, []byte(f.Prefix), bound)
		out, err := t.rows(ps, f, keepVersion)
		if err != nil || bound == 0 || !more || len(out) >= f.Limit {
			return finish(out, f), err
		}
		bound *= 4
	}
}

// sources turns the indexed conditions of f into sources.
func (t txn) sources(f Filter, featureConds []Cond) ([]source, error) {
	var out []source
	for _, c := range featureConds {
		ft, err := t.feature(c.Field)
		if err != nil {
			all := append(names(t.bucket(bFeatures)), sortedKeys(boolKeys(builtins))...)
			return nil, errorf(ErrNotFound, "--where: no feature or field %q%s", c.Field, didYouMean(closest(c.Field, all)))
		}
		s, err := t.featureCond(ft, c)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	for _, name := range f.Labels {
		ls, err := t.labelClosure(name, f.ExactLabels)
		if err != nil {
			return nil, err
		}
		var s source
		for _, l := range ls {
			s.ranges = append(s.ranges, indexRange{bk: t.bucket(bLabelIdx), prefix: append([]byte(l), 0)})
		}
		out = append(out, s)
	}
	for _, group := range f.Terms {
		var s source
		for _, id := range group {
			s.ranges = append(s.ranges, indexRange{bk: t.bucket(bTermIdx), prefix: append([]byte(id), 0)})
		}
		out = append(out, s)
	}
	return out, nil
}

// rows checks and decodes the candidates ps (sorted by key, then uid) in
// order, until f's limit when ordered by key.
func (t txn) rows(ps []posting, f Filter, keep func(Version) bool) ([]Version, error) {
	byKey := f.Order == "" || f.Order == "key"
	c := t.tx.Bucket(bVersions).Cursor()
	var out []Version
	for i, p := range ps {
		if i > 0 && p.uid == ps[i-1].uid {
			continue // listed twice by one condition (two values, two terms)
		}
		v, live, err := liveVersion(c, p.uid[:], f.AllVersions)
		if err != nil {
			return nil, err
		}
		if live && keep(v) {
			out = append(out, v)
		}
		if byKey && f.Limit > 0 && len(out) >= f.Limit {
			break
		}
	}
	return out, nil
}

// liveVersion reads version uid through c and reports whether it is live:
// not trashed and, unless all, the artifact's latest live version, which
// is the last of its stem's versions not trashed (artifact.Latest). Those
// sit right after it in the bucket, so this reads no other page as a rule,
// where the artifact record would be one more random read.
func liveVersion(c *bolt.Cursor, uid []byte, all bool) (Version, bool, error) {
	k, raw := c.Seek(uid)
	if !bytes.Equal(k, uid) {
		return Version{}, false, nil
	}
	v, err := decodeVersion(raw)
	if err != nil {
		return Version{}, false, fmt.Errorf("catalog: version %s: %w", k, err)
	}
	if v.Trashed || all {
		return v, !v.Trashed, nil
	}
	stem := uid[:ref.StemLen]
	for k, raw = c.Next(); k != nil && bytes.HasPrefix(k, stem); k, raw = c.Next() {
		later, err := decodeVersion(raw)
		if err != nil {
			return Version{}, false, fmt.Errorf("catalog: version %s: %w", k, err)
		}
		if !later.Trashed {
			return v, false, nil
		}
	}
	return v, true, nil
}

// findByKeys answers a Filter no index applies to: it walks the keys under
// the prefix.
func (t txn) findByKeys(f Filter, keep func(Version) bool) ([]Version, error) {
	var out []Version
	arts := t.tx.Bucket(bArtifacts)
	c := t.tx.Bucket(bKeys).Cursor()
	p := []byte(f.Prefix)
	for k, stem := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, stem = c.Next() {
		a, _, err := getArtifact(arts, stem)
		if err != nil {
			return nil, err
		}
		if a.Latest == 0 {
			continue
		}
		first, last := a.Latest, a.Latest
		if f.AllVersions {
			first, last = 1, a.Versions
		}
		for n := first; n <= last; n++ {
			v, ok, err := t.version(ref.VersionUID(a.Stem, n))
			if err != nil {
				return nil, err
			}
			if ok && keep(v) {
				out = append(out, v)
			}
		}
		if f.Limit > 0 && len(out) >= f.Limit && (f.Order == "" || f.Order == "key") {
			break
		}
	}
	return finish(out, f), nil
}

func boolKeys(m map[string]string) map[string]bool {
	out := map[string]bool{}
	for k := range m {
		out[k] = true
	}
	return out
}

func finish(out []Version, f Filter) []Version {
	switch f.Order {
	case "created_at":
		sort.SliceStable(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	case "-created_at":
		sort.SliceStable(out, func(i, j int) bool { return out[i].CreatedAt.After(out[j].CreatedAt) })
	}
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	if out == nil {
		out = []Version{}
	}
	return out
}
