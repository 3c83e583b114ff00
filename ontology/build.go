package ontology

import (
	"fmt"
	"iter"
	"slices"
	"strings"
)

// buildTables computes the tables of src. It fails when a term has no id
// or two terms share one.
func buildTables(src *Source) (tables, error) {
	n := len(src.Terms)
	st := newStringTable(8 * n)
	t := tables{meta: st.appendIDs(nil, []string{src.Entity, src.Ontology, src.Version, src.Organism, src.Digest})}
	t.warnings = st.appendIDs(nil, src.Warnings)
	b := &builders{}
	if err := addTerms(&t, st, b, src); err != nil {
		return tables{}, err
	}
	addLookups(&t, st, b, src.Terms)
	addHierarchy(&t, st, b)
	addFuzzy(&t, st, b)
	t.byID, t.byAlt, t.byName = b.byID.build(st), b.byAlt.build(st), b.byName.build(st)
	t.byFold, t.synFold = b.byFold.build(st), b.synFold.build(st)
	t.strs, t.strOff = st.bytes()
	return t, nil
}

// builders hold what is built before it is cut into tables.
type builders struct {
	byID, byAlt, byName, byFold, synFold mapBuilder
	nameFolded, synFolded                []uint32 // string ids of folded names and synonyms
}

func addTerms(t *tables, st *stringTable, b *builders, src *Source) error {
	n := len(src.Terms)
	t.termID, t.termName = make([]uint32, n), make([]uint32, n)
	t.termDef, t.termNS = make([]uint32, n), make([]uint32, n)
	t.termFlags = make([]uint8, n)
	b.nameFolded = make([]uint32, n)
	t.syns = newList(n)
	lists := []*list{&t.parentIDs, &t.partOfIDs, &t.replacedBy, &t.consider, &t.altIDs}
	for _, l := range lists {
		*l = newList(n)
	}
	var buf []uint32
	for i := range src.Terms {
		tm := &src.Terms[i]
		if tm.ID == "" {
			return fmt.Errorf("ontology: build %s: term %d has no id", src.Ontology, i)
		}
		id := st.id(tm.ID)
		if b.byID.has(id) {
			return fmt.Errorf("ontology: build %s: duplicate term id %s", src.Ontology, tm.ID)
		}
		b.byID.add(id, uint32(i))
		t.termID[i], t.termName[i] = id, st.id(tm.Name)
		t.termDef[i], t.termNS[i] = st.add(tm.Definition), st.id(tm.Namespace)
		b.nameFolded[i] = st.id(fold(tm.Name))
		if tm.Obsolete {
			t.termFlags[i] = flagObsolete
		}
		buf = buf[:0]
		for _, s := range tm.Synonyms {
			buf = append(buf, st.id(s.Text))
			t.synScope = append(t.synScope, uint8(s.Scope))
			t.synTerm = append(t.synTerm, uint32(i))
			b.synFolded = append(b.synFolded, st.id(fold(s.Text)))
		}
		t.syns.add(buf...)
		for k, ids := range [][]string{tm.Parents, tm.PartOf, tm.ReplacedBy, tm.Consider, tm.AltIDs} {
			lists[k].add(st.appendIDs(buf[:0], ids)...)
		}
	}
	return nil
}

// addLookups fills the name and synonym maps. Live terms are added before
// obsolete ones so that the first entry of a name is the one to use
// ("adult stage": HsapDv:0000258, not the obsolete HsapDv:0000087).
func addLookups(t *tables, st *stringTable, b *builders, terms []Term) {
	for pass := 0; pass < 2; pass++ {
		for i := range terms {
			tm := &terms[i]
			if tm.Obsolete != (pass == 1) {
				continue
			}
			for _, a := range t.altIDs.row(uint32(i)) {
				if !b.byID.has(a) && !b.byAlt.has(a) {
					b.byAlt.add(a, uint32(i))
				}
			}
			if tm.Name != "" {
				b.byName.add(t.termName[i], uint32(i))
				b.byFold.add(b.nameFolded[i], uint32(i))
			}
			if tm.Obsolete {
				continue // obsolete synonyms are not matched
			}
			for g := t.syns.start[i]; g < t.syns.start[i+1]; g++ {
				f := b.synFolded[g]
				if last, ok := b.synFold.lastValue(f); ok && t.synTerm[last] == uint32(i) {
					// The same text twice on one term: the strongest
					// scope stands (Uberon has "infundibular stem" BROAD,
					// then EXACT, on the pituitary stalk).
					if scopeRank(Scope(t.synScope[g])) > scopeRank(Scope(t.synScope[last])) {
						b.synFold.setLast(f, g)
					}
					continue
				}
				b.synFold.add(f, g)
			}
		}
	}
}

// scopeRank orders scopes by how much a synonym says: a Symbol is a
// name, EXACT an equivalent, RELATED a looser one, BROAD and NARROW none.
func scopeRank(s Scope) int {
	switch s {
	case Symbol:
		return 4
	case Exact:
		return 3
	case Related:
		return 2
	}
	return 1
}

// addHierarchy resolves is_a and part_of edges to term numbers (ids
// outside the source are dropped here) and inverts them.
func addHierarchy(t *tables, st *stringTable, b *builders) {
	n := t.terms()
	children, partChildren := make([][]uint32, n), make([][]uint32, n)
	t.parents, t.partOf = newList(n), newList(n)
	var buf []uint32
	resolve := func(ids []uint32) []uint32 {
		buf = buf[:0]
		for _, id := range ids {
			if k, ok := b.byID.key(id); ok {
				buf = append(buf, k) // byID's key k is term k
			}
		}
		return buf
	}
	for i := range n {
		for _, p := range resolve(t.parentIDs.row(uint32(i))) {
			children[p] = append(children[p], uint32(i))
		}
		t.parents.add(buf...)
		for _, p := range resolve(t.partOfIDs.row(uint32(i))) {
			partChildren[p] = append(partChildren[p], uint32(i))
		}
		t.partOf.add(buf...)
	}
	byTermID := func(a, c uint32) int { return strings.Compare(st.str(t.termID[a]), st.str(t.termID[c])) }
	t.children, t.partChildren = newList(n), newList(n)
	for i := range n {
		slices.SortFunc(children[i], byTermID)
		slices.SortFunc(partChildren[i], byTermID)
		t.children.add(children[i]...)
		t.partChildren.add(partChildren[i]...)
	}
}

// addFuzzy builds the fuzzy index: every name and synonym once, folded,
// with two inverted indexes, byte trigrams (for typos) and words (for
// word prefixes), as flat arrays: Mondo has a few million postings.
func addFuzzy(t *tables, st *stringTable, b *builders) {
	for i := range t.terms() {
		if t.termName[i] != 0 {
			t.entryTerm, t.entrySyn = append(t.entryTerm, uint32(i)), append(t.entrySyn, noSyn)
			t.entryFold = append(t.entryFold, entryFold(st, b.nameFolded[i]))
		}
		for g := t.syns.start[i]; g < t.syns.start[i+1]; g++ {
			t.entryTerm, t.entrySyn = append(t.entryTerm, uint32(i)), append(t.entrySyn, g)
			t.entryFold = append(t.entryFold, entryFold(st, b.synFolded[g]))
		}
	}
	folded := make([]string, len(t.entryFold))
	for e, k := range t.entryFold {
		folded[e] = st.str(k)
	}
	addTrigrams(t, folded)
	addWords(t, st, folded)
}

// entryFold is the string id of a fuzzy entry's text: the folded text k
// with its marker signs spelled out (markerFold).
func entryFold(st *stringTable, k uint32) uint32 {
	if s := st.str(k); markerFold(s) != s {
		return st.id(markerFold(s))
	}
	return k
}

// addTrigrams collects (trigram, entry) pairs, sorts them by trigram
// (entries stay in order), and cuts them into runs; a trigram twice in
// one entry makes adjacent equal pairs, kept once.
func addTrigrams(t *tables, folded []string) {
	// An entry has at most len+1 trigrams: size the buffer once (growing
	// it copied ~100 MB for Mondo).
	total := 0
	for _, f := range folded {
		total += len(f) + 1
	}
	pairs := make([]uint64, 0, total)
	for e, f := range folded {
		pairs = appendTrigramPairs(pairs, f, uint64(e))
	}
	pairs = sortPairs(pairs)
	t.triCount = make([]uint16, len(folded))
	t.tri = list{items: make([]uint32, 0, len(pairs))}
	for k, p := range pairs {
		if k > 0 && p == pairs[k-1] {
			continue
		}
		g, e := uint32(p>>32), uint32(p)
		if len(t.triKeys) == 0 || t.triKeys[len(t.triKeys)-1] != g {
			t.triKeys = append(t.triKeys, g)
			t.tri.start = append(t.tri.start, uint32(len(t.tri.items)))
		}
		t.tri.items = append(t.tri.items, e)
		if t.triCount[e] < 65535 {
			t.triCount[e]++
		}
	}
	t.tri.start = append(t.tri.start, uint32(len(t.tri.items)))
}

// appendTrigramPairs appends trigram<<32 | e for each trigram of " s ",
// as trigrams does, without allocating or removing repeats.
func appendTrigramPairs(pairs []uint64, s string, e uint64) []uint64 {
	n := len(s) + 2
	at := func(i int) uint64 {
		if i == 0 || i == n-1 {
			return ' '
		}
		return uint64(s[i-1])
	}
	for i := 0; i+3 <= n; i++ {
		pairs = append(pairs, (at(i)<<16|at(i+1)<<8|at(i+2))<<32|e)
	}
	return pairs
}

// addWords numbers the distinct words, sorts only those, then places each
// occurrence by counting (entries are visited in order, so each word's
// postings come out sorted, and a repeat within an entry is adjacent).
func addWords(t *tables, st *stringTable, folded []string) {
	var wordID mapBuilder // string id of a word -> its number; values unused
	var distinct []string
	var occWord, occEntry []uint32
	for e, f := range folded {
		for w := range eachWord(f) {
			sid := st.id(w)
			id, ok := wordID.key(sid)
			if !ok {
				id = uint32(len(distinct))
				wordID.add(sid, 0)
				distinct = append(distinct, w)
			}
			occWord = append(occWord, id)
			occEntry = append(occEntry, uint32(e))
		}
	}
	order := make([]uint32, len(distinct))
	for i := range order {
		order[i] = uint32(i)
	}
	slices.SortFunc(order, func(a, b uint32) int { return strings.Compare(distinct[a], distinct[b]) })
	rank := make([]uint32, len(distinct))
	for r, id := range order {
		rank[id] = uint32(r)
	}
	start := make([]uint32, len(distinct)+1)
	for _, id := range occWord {
		start[rank[id]+1]++
	}
	for r := 1; r < len(start); r++ {
		start[r] += start[r-1]
	}
	fill := slices.Clone(start[:len(distinct)])
	post := make([]uint32, len(occWord))
	for k, id := range occWord {
		r, e := rank[id], occEntry[k]
		if fill[r] > start[r] && post[fill[r]-1] == e {
			continue // the same word twice in one entry
		}
		post[fill[r]] = e
		fill[r]++
	}
	t.words = make([]uint32, len(distinct))
	t.wordPost = newList(len(distinct))
	t.wordPost.items = make([]uint32, 0, len(post))
	for r, id := range order {
		t.words[r] = wordID.keys[id]
		t.wordPost.add(post[start[r]:fill[r]]...)
	}
}

// sortPairs sorts (trigram<<32 | entry) pairs that arrive in entry order:
// a stable radix sort on the 24 trigram bits, two passes of 12, gives the
// same order as sorting the whole words in a fraction of the time.
func sortPairs(pairs []uint64) []uint64 {
	tmp := make([]uint64, len(pairs))
	for _, shift := range []uint{32, 44} {
		var start [1<<12 + 1]int
		for _, p := range pairs {
			start[(p>>shift)&0xfff+1]++
		}
		for i := 1; i < len(start); i++ {
			start[i] += start[i-1]
		}
		for _, p := range pairs {
			b := (p >> shift) & 0xfff
			tmp[start[b]] = p
			start[b]++
		}
		pairs, tmp = tmp, pairs
	}
	return pairs
}

// trigrams appends the distinct byte trigrams of " s " (the spaces mark
// word edges, so that a typo in the first letters still shares some).
func trigrams(s string, out []uint32) []uint32 {
	p := " " + s + " "
	for i := 0; i+3 <= len(p); i++ {
		out = append(out, uint32(p[i])<<16|uint32(p[i+1])<<8|uint32(p[i+2]))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// eachWord yields the letter-or-digit runs of folded text s: its words.
func eachWord(s string) iter.Seq[string] {
	return func(yield func(string) bool) {
		start := -1
		for i, r := range s {
			inWord := isWordRune(r)
			switch {
			case inWord && start < 0:
				start = i
			case !inWord && start >= 0:
				if !yield(s[start:i]) {
					return
				}
				start = -1
			}
		}
		if start >= 0 {
			yield(s[start:])
		}
	}
}
