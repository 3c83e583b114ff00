package ontology

import (
	"slices"
	"strings"
)

// tables hold everything an Index answers from: flat arrays of numbers
// over one string table. Build computes them from a Source; LoadIndex finds
// them in an index file (indexfile.go) without decoding, so a loaded index
// and a built one run the same code on the same data.
//
// Numbers are uint32: a string id (k names strs[strOff[k]:strOff[k+1]]),
// a term number (its position in Source.Terms), a synonym number (the
// position in syns.items, counting every term's synonyms in term order)
// or an entry number (a name or synonym in the fuzzy index).
type tables struct {
	strs   string   // every distinct string, concatenated; string 0 is ""
	strOff []uint32 // len = strings + 1

	meta     []uint32 // string ids of Entity, Ontology, Version, Organism, Digest
	warnings []uint32 // string ids

	// Terms, in source order.
	termID, termName, termDef, termNS []uint32 // string ids
	termFlags                         []uint8  // flagObsolete
	syns                              list     // per term: string ids of its synonyms
	synScope                          []uint8  // per synonym
	synTerm                           []uint32 // per synonym: its term
	// Ids as the source lists them, possibly outside it.
	parentIDs, partOfIDs, replacedBy, consider, altIDs list

	// Edges within the source, as term numbers; children sorted by id.
	parents, partOf, children, partChildren list

	byID    strMap // id -> the term
	byAlt   strMap // alt_id -> its primary term, when it is not itself a primary id
	byName  strMap // exact name -> terms, live ones first
	byFold  strMap // folded name -> terms, live ones first
	synFold strMap // folded synonym -> synonyms of live terms, one per term (its strongest scope)

	// Fuzzy matching: every name and synonym once, folded, with two
	// inverted indexes: byte trigrams (typos) and words (word prefixes).
	entryTerm []uint32 // per entry: its term
	entrySyn  []uint32 // per entry: its synonym, or noSyn for the name
	entryFold []uint32 // per entry: string id of the folded text
	triKeys   []uint32 // sorted trigrams
	tri       list     // per trigram: entries holding it
	triCount  []uint16 // per entry: its distinct trigrams
	words     []uint32 // string ids of the distinct words, sorted
	wordPost  list     // per word: entries holding it
}

const (
	flagObsolete = 1
	noSyn        = ^uint32(0)
)

// Positions in tables.meta.
const (
	metaEntity = iota
	metaOntology
	metaVersion
	metaOrganism
	metaDigest
	metaLen
)

// list is a compressed sparse row of uint32s: row k is
// items[start[k]:start[k+1]].
type list struct {
	start []uint32
	items []uint32
}

func newList(rows int) list { return list{start: append(make([]uint32, 0, rows+1), 0)} }

func (l *list) row(k uint32) []uint32 { return l.items[l.start[k]:l.start[k+1]] }

func (l *list) add(items ...uint32) {
	l.items = append(l.items, items...)
	l.start = append(l.start, uint32(len(l.items)))
}

// strMap maps strings to rows of a list through an open-addressing hash
// table probed linearly. A slot holds the key's hash (high 32 bits) and
// its number + 1 (low 32 bits; 0 is empty), so that most probes of another
// key are rejected without reading its string.
type strMap struct {
	slots []uint64 // power of two long, at least one empty
	keys  []uint32 // string id of each key
	post  list     // per key: its values
}

func (t *tables) str(k uint32) string { return t.strs[t.strOff[k]:t.strOff[k+1]] }

func (t *tables) strList(ids []uint32) []string {
	if len(ids) == 0 {
		return nil
	}
	out := make([]string, len(ids))
	for i, k := range ids {
		out[i] = t.str(k)
	}
	return out
}

// lookup returns the values of key s, or nil.
func (t *tables) lookup(m *strMap, s string) []uint32 { return t.find(m, s, hashString(s)) }

func (t *tables) lookupOne(m *strMap, s string) (uint32, bool) {
	return t.findOne(m, s, hashString(s))
}

// find is lookup with the hash of s computed by the caller, who asks
// several maps about one string.
func (t *tables) find(m *strMap, s string, h uint32) []uint32 {
	mask := uint32(len(m.slots) - 1)
	i := h & mask
	for range m.slots {
		v := m.slots[i]
		if v == 0 {
			return nil
		}
		if uint32(v>>32) == h {
			if k := uint32(v) - 1; t.str(m.keys[k]) == s {
				return m.post.row(k)
			}
		}
		i = (i + 1) & mask
	}
	return nil
}

func (t *tables) findOne(m *strMap, s string, h uint32) (uint32, bool) {
	if v := t.find(m, s, h); len(v) > 0 {
		return v[0], true
	}
	return 0, false
}

// hashString hashes 8 bytes at a time with multiply-xorshift mixing (the
// splitmix64 finaliser). Index files store its values: changing it needs a
// new IndexFormat (LoadIndex also checks that keys are found).
func hashString(s string) uint32 {
	h := uint64(len(s))*0x9e3779b97f4a7c15 ^ 0x6a09e667f3bcc909
	for ; len(s) > 8; s = s[8:] {
		h = (h ^ le64(s)) * 0xbf58476d1ce4e5b9
		h ^= h >> 31
	}
	// The last 1 to 8 bytes: two 4-byte words that may overlap, or 3 bytes.
	var w uint64
	switch n := len(s); {
	case n >= 4:
		w = uint64(le32(s)) | uint64(le32(s[n-4:]))<<32
	case n > 0:
		w = uint64(s[0]) | uint64(s[n/2])<<8 | uint64(s[n-1])<<16
	}
	h = (h ^ w) * 0x94d049bb133111eb
	h ^= h >> 29
	h *= 0xbf58476d1ce4e5b9
	return uint32(h ^ h>>32)
}

func le64(s string) uint64 {
	_ = s[7] // one bounds check; the compiler then merges the loads
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

func le32(s string) uint32 {
	_ = s[3]
	return uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24
}

func (t *tables) terms() int { return len(t.termID) }

func (t *tables) ontologyName() string { return t.str(t.meta[metaOntology]) }

func (t *tables) id(i uint32) string     { return t.str(t.termID[i]) }
func (t *tables) name(i uint32) string   { return t.str(t.termName[i]) }
func (t *tables) obsolete(i uint32) bool { return t.termFlags[i]&flagObsolete != 0 }
func (t *tables) synText(g uint32) string {
	return t.str(t.syns.items[g])
}

// term materialises term i as the Source held it.
func (t *tables) term(i uint32) Term {
	tm := Term{
		ID: t.id(i), Name: t.name(i), Definition: t.str(t.termDef[i]), Namespace: t.str(t.termNS[i]),
		Obsolete:   t.obsolete(i),
		Parents:    t.strList(t.parentIDs.row(i)),
		PartOf:     t.strList(t.partOfIDs.row(i)),
		ReplacedBy: t.strList(t.replacedBy.row(i)),
		Consider:   t.strList(t.consider.row(i)),
		AltIDs:     t.strList(t.altIDs.row(i)),
	}
	if lo, hi := t.syns.start[i], t.syns.start[i+1]; hi > lo {
		tm.Synonyms = make([]Synonym, 0, hi-lo)
		for g := lo; g < hi; g++ {
			tm.Synonyms = append(tm.Synonyms, Synonym{Text: t.synText(g), Scope: Scope(t.synScope[g])})
		}
	}
	return tm
}

// source materialises the whole Source.
func (t *tables) source() *Source {
	src := &Source{
		Entity: t.str(t.meta[metaEntity]), Ontology: t.str(t.meta[metaOntology]),
		Version: t.str(t.meta[metaVersion]), Organism: t.str(t.meta[metaOrganism]),
		Digest: t.str(t.meta[metaDigest]), Warnings: t.strList(t.warnings),
	}
	if n := t.terms(); n > 0 {
		src.Terms = make([]Term, n)
		for i := range src.Terms {
			src.Terms[i] = t.term(uint32(i))
		}
	}
	return src
}

// ---- building ----

// stringTable interns strings while tables are built; bytes returns them
// concatenated at the end (growing one buffer as they come copied GO's
// strings several times over).
type stringTable struct {
	ids  map[string]uint32
	strs []string // by id - 1; string 0 is ""
}

// newStringTable returns a table holding string 0, "", with room for
// about n strings.
func newStringTable(n int) *stringTable {
	return &stringTable{ids: make(map[string]uint32, n), strs: make([]string, 0, n)}
}

// bytes returns the strings concatenated and the offsets that cut them.
func (st *stringTable) bytes() (string, []uint32) {
	size := 0
	for _, s := range st.strs {
		size += len(s)
	}
	var b strings.Builder
	b.Grow(size)
	off := make([]uint32, 2, len(st.strs)+2)
	for _, s := range st.strs {
		b.WriteString(s)
		off = append(off, uint32(b.Len()))
	}
	return b.String(), off
}

// id interns s.
func (st *stringTable) id(s string) uint32 {
	if k, ok := st.ids[s]; ok {
		return k
	}
	k := st.add(s)
	st.ids[s] = k
	return k
}

// add stores s without interning it: for text that rarely repeats
// (definitions), where the map would cost more than it saves.
func (st *stringTable) add(s string) uint32 {
	if s == "" {
		return 0
	}
	st.strs = append(st.strs, s)
	return uint32(len(st.strs))
}

func (st *stringTable) str(k uint32) string {
	if k == 0 {
		return ""
	}
	return st.strs[k-1]
}

// appendIDs interns ss and appends their ids to buf.
func (st *stringTable) appendIDs(buf []uint32, ss []string) []uint32 {
	for _, s := range ss {
		buf = append(buf, st.id(s))
	}
	return buf
}

// mapBuilder collects (key, value) pairs, keys being string ids, and
// cuts them into a strMap: keys in first-seen order and each key's values
// in the order added, so that the same source always gives the same bytes.
type mapBuilder struct {
	keyOf        []uint32 // string id -> key number + 1; 0: not a key
	keys         []uint32 // string id of each key
	last         []uint32 // per key: the value added last
	pairK, pairV []uint32
}

func (m *mapBuilder) key(sid uint32) (uint32, bool) {
	if int(sid) < len(m.keyOf) && m.keyOf[sid] != 0 {
		return m.keyOf[sid] - 1, true
	}
	return 0, false
}

func (m *mapBuilder) has(sid uint32) bool { _, ok := m.key(sid); return ok }

// lastValue returns the value added last under sid.
func (m *mapBuilder) lastValue(sid uint32) (uint32, bool) {
	if k, ok := m.key(sid); ok {
		return m.last[k], true
	}
	return 0, false
}

// setLast replaces the value added last under sid (which must be a key)
// by v. It looks for that pair from the end: call it while the pairs
// after it are few.
func (m *mapBuilder) setLast(sid, v uint32) {
	k, _ := m.key(sid)
	for p := len(m.pairK) - 1; p >= 0; p-- {
		if m.pairK[p] == k {
			m.pairV[p] = v
			break
		}
	}
	m.last[k] = v
}

func (m *mapBuilder) add(sid, v uint32) {
	k, ok := m.key(sid)
	if !ok {
		if int(sid) >= len(m.keyOf) {
			m.keyOf = append(m.keyOf, make([]uint32, int(sid)+1-len(m.keyOf)+len(m.keyOf)/2)...)
		}
		k = uint32(len(m.keys))
		m.keyOf[sid] = k + 1
		m.keys = append(m.keys, sid)
		m.last = append(m.last, 0)
	}
	m.last[k] = v
	m.pairK, m.pairV = append(m.pairK, k), append(m.pairV, v)
}

func (m *mapBuilder) build(st *stringTable) strMap {
	size := 1
	for size <= 2*len(m.keys) {
		size <<= 1
	}
	n := len(m.keys)
	sm := strMap{slots: make([]uint64, size), keys: m.keys, post: list{start: make([]uint32, n+1), items: make([]uint32, len(m.pairV))}}
	// A stable counting sort of the pairs by key.
	for _, k := range m.pairK {
		sm.post.start[k+1]++
	}
	for k := 1; k <= n; k++ {
		sm.post.start[k] += sm.post.start[k-1]
	}
	fill := slices.Clone(sm.post.start[:n])
	for p, k := range m.pairK {
		sm.post.items[fill[k]] = m.pairV[p]
		fill[k]++
	}
	mask := uint32(size - 1)
	for k, sid := range m.keys {
		h := hashString(st.str(sid))
		i := h & mask
		for sm.slots[i] != 0 {
			i = (i + 1) & mask
		}
		sm.slots[i] = uint64(h)<<32 | uint64(k+1)
	}
	return sm
}
