package ontology

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"
)

// Fuzzy matching runs on the tables' entries (every name and synonym,
// folded) and their trigram and word postings; see addFuzzy.

type scratch struct {
	count   []uint16 // per entry: trigrams in common (similar)
	touched []uint32
	// Per entry, for word matching (allocated on first use): bit i set
	// when the entry holds query word i whole, or only as a prefix.
	whole, pref []uint32
	// Per term, for the hierarchy walks of orderHits (allocated on first
	// use): the walk that last saw it, and whether it is a hit or anchor.
	seen []uint32
	gen  uint32
	term []uint8
}

// Flags of scratch.term.
const (
	termHit = 1 << iota
	termAnchor
)

// words makes sure sc.whole and sc.pref are allocated.
func (sc *scratch) words() {
	if len(sc.whole) != len(sc.count) {
		sc.whole, sc.pref = make([]uint32, len(sc.count)), make([]uint32, len(sc.count))
	}
}

func (x *Index) getScratch() (*scratch, func()) {
	sc := x.pool.Get().(*scratch)
	return sc, func() {
		words := len(sc.whole) > 0
		for _, e := range sc.touched {
			sc.count[e] = 0
			if words {
				sc.whole[e], sc.pref[e] = 0, 0
			}
		}
		sc.touched = sc.touched[:0]
		x.pool.Put(sc)
	}
}

func (x *Index) postings(g uint32) []uint32 {
	k, ok := slices.BinarySearch(x.triKeys, g)
	if !ok {
		return nil
	}
	return x.tri.row(uint32(k))
}

// folded returns the folded text of entry e.
func (x *Index) folded(e uint32) string { return x.str(x.entryFold[e]) }

// entryText returns entry e's name or synonym as the source has it.
func (x *Index) entryText(e uint32) string {
	if g := x.entrySyn[e]; g != noSyn {
		return x.synText(g)
	}
	return x.name(x.entryTerm[e])
}

// similar returns entries ranked by edit-distance similarity to the
// folded query, best first, considering the entries that share the most
// trigrams with it. keep filters entries.
// With prefix set, an entry also scores by how close its start is to the
// query (scaled down a little), so that a search for "dendritc" finds
// "dendritic cell".
func (x *Index) similar(q string, limit int, minSim float64, prefix bool, keep func(e uint32) bool) []scored {
	qg := trigrams(q, nil)
	if len(qg) == 0 {
		return nil
	}
	sc, release := x.getScratch()
	defer release()
	for _, g := range qg {
		for _, e := range x.postings(g) {
			if int(e) >= len(sc.count) {
				continue // a damaged index file (LoadIndex leaves postings to here)
			}
			if sc.count[e] == 0 {
				sc.touched = append(sc.touched, e)
			}
			sc.count[e]++
		}
	}
	// Dice coefficient on trigrams picks a short list; the edit distance
	// then orders it, as trigram overlap alone ranks typos poorly.
	need := max1(len(qg) / 3)
	type cand struct {
		e    uint32
		dice float64
	}
	var cands []cand
	for _, e := range sc.touched {
		c := int(sc.count[e])
		if c < need || !keep(e) {
			continue
		}
		cands = append(cands, cand{e, 2 * float64(c) / float64(len(qg)+int(x.triCount[e]))})
	}
	const shortlist = 96
	if len(cands) > shortlist {
		sort.Slice(cands, func(a, b int) bool { return cands[a].dice > cands[b].dice })
		cands = cands[:shortlist]
	}
	qr := []rune(q)
	var out []scored
	for _, c := range cands {
		text := x.folded(c.e)
		s := similarity(qr, text)
		if prefix {
			if tr := []rune(text); len(tr) > len(qr)+1 {
				s = max(s, 0.9*similarityRunes(qr, tr[:len(qr)]))
			}
		}
		if s >= minSim {
			out = append(out, scored{c.e, s})
		}
	}
	slices.SortFunc(out, x.byScore)
	if len(out) > limit {
		out = out[:limit]
	}
	return out
}

type scored struct {
	e     uint32
	score float64
}

// byScore orders scored entries best first: higher score, names before
// synonyms, shorter text.
func (x *Index) byScore(a, b scored) int {
	if a.score != b.score {
		return cmp.Compare(b.score, a.score)
	}
	aName, bName := x.entrySyn[a.e] == noSyn, x.entrySyn[b.e] == noSyn
	if aName != bName { // names before synonyms
		if aName {
			return -1
		}
		return 1
	}
	return cmp.Compare(len(x.folded(a.e)), len(x.folded(b.e)))
}

func max1(n int) int {
	if n < 1 {
		return 1
	}
	return n
}

// similarity is 1 - (optimal string alignment distance / longer length).
func similarity(a []rune, bs string) float64 {
	return similarityRunes(a, []rune(bs))
}

func similarityRunes(a, b []rune) float64 {
	if len(a) == 0 && len(b) == 0 {
		return 1
	}
	d := osa(a, b)
	return 1 - float64(d)/float64(max(len(a), len(b)))
}

// EditDistance is the number of single-rune edits (insert, delete,
// substitute, swap two neighbours) between a and b: how far a typo is.
func EditDistance(a, b string) int { return osa([]rune(a), []rune(b)) }

// osa is the Damerau-Levenshtein distance restricted to adjacent
// transpositions, the usual shape of a typo.
func osa(a, b []rune) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			v := min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				v = min(v, prev2[j-2]+1)
			}
			cur[j] = v
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}

// ---- suggestions ----

// Suggestion is a live term whose name or EXACT synonym is close to a value.
type Suggestion struct {
	ID, Name string
	// IDs are the ids of every live term named Name when there are
	// several (a symbol on several Ensembl ids), ID among them.
	IDs     []string
	Matched string  // the name or synonym that was close
	Score   float64 // closeness in (0, 1]; see Suggest
}

// TermIDs are the ids of the terms the suggested name names.
func (s Suggestion) TermIDs() []string { return termIDs(s.ID, s.IDs) }

// String is the name and its ids, "PTPRC (ENSG00000081237, ENSG00000262418)".
func (s Suggestion) String() string { return nameID(s.Name, s.IDList()) }

// IDList is TermIDs for a message; past three, the first two and the count.
func (s Suggestion) IDList() string {
	ids := s.TermIDs()
	if len(ids) > 3 {
		return fmt.Sprintf("%s, … %d ids", strings.Join(ids[:2], ", "), len(ids))
	}
	return strings.Join(ids, ", ")
}

// Suggest returns up to n live terms close to value, best first, each name
// once, with the ids of every term it names (a gene symbol on several
// Ensembl ids). Close means (the score in parentheses):
//   - the same words up to plural endings, case and punctuation ("T cells",
//     "B-cells"): at least 0.95;
//   - similar as a string (typos, case): the edit similarity, at least 0.5;
//   - made of some of the value's words, covering a good share of what
//     they say (blood for "peripheral blood"; see matchWords): 0.6 + 0.4 ×
//     that share, so above the loose string matches and below near-exact
//     ones;
//   - found as search finds it by name prefix, word prefixes or all its
//     words in order ("adult stage" for "adult", "embryonic stage" for
//     "embryo"), for a value of minPrefixSuggest characters or more that
//     is at least minPrefixShare of the text's length: 0.6 + 0.3 × that
//     share. Shorter values or shares ("T": T cell, T-helper 1 cell, …)
//     would suggest a term by a word it merely starts with.
//
// Before all of them come the live terms of a RELATED synonym equal to
// the value (score 1), which Standardize does not map unasked.
func (x *Index) Suggest(value string, n int) []Suggestion {
	q := fold(value)
	if q == "" || n <= 0 {
		return nil
	}
	keep := func(e uint32) bool {
		g := x.entrySyn[e]
		return !x.obsolete(x.entryTerm[e]) && (g == noSyn || Scope(x.synScope[g]) == Exact)
	}
	qm := markerFold(q) // as the entries spell it
	cands := x.similar(qm, 4*n, 0.5, false, keep)
	prefixes := utf8.RuneCountInString(q) >= minPrefixSuggest
	for _, m := range x.matchWords(qm, keep, prefixes, math.MaxInt) {
		switch m.rank {
		case RankNormalizedName:
			cands = append(cands, scored{m.e, 0.95 + 0.05*similarity([]rune(qm), x.folded(m.e))})
		case RankSomeWords:
			cands = append(cands, scored{m.e, 0.6 + 0.4*m.score})
		case RankNamePrefix, RankWordPrefix, RankAllWords:
			share := min(1, float64(len(qm))/float64(len(x.folded(m.e))))
			phrase := m.rank != RankAllWords || m.score > 0.5 // in order, adjacent (see allWords)
			if prefixes && phrase && share >= minPrefixShare {
				cands = append(cands, scored{m.e, 0.6 + 0.3*share})
			}
		}
	}
	slices.SortFunc(cands, x.byScore)
	var out []Suggestion
	seen := map[string]bool{} // names: suggesting one twice told its ids apart, not its terms
	// A RELATED synonym equal to the value names the terms Standardize
	// leaves unmapped (unasked, or of several terms: "lower extremity" is
	// Uberon's leg and hindlimb): those first, not a lookalike (forelimb).
	for _, r := range x.find(&x.synFold, q, hashString(q)) {
		i := x.synTerm[r]
		if Scope(x.synScope[r]) != Related || x.obsolete(i) || seen[x.name(i)] || len(out) == n {
			continue
		}
		seen[x.name(i)] = true
		sg := Suggestion{ID: x.id(i), Name: x.name(i), Matched: x.synText(r), Score: 1}
		if l := live(x, x.find(&x.byName, sg.Name, hashString(sg.Name))); len(l) > 1 {
			sg.IDs = x.idList(l)
		}
		out = append(out, sg)
	}
	for _, s := range cands {
		if len(out) == n {
			break
		}
		i := x.entryTerm[s.e]
		name := x.name(i)
		if seen[name] {
			continue
		}
		seen[name] = true
		sg := Suggestion{ID: x.id(i), Name: name, Matched: x.entryText(s.e), Score: s.score}
		if l := live(x, x.find(&x.byName, name, hashString(name))); len(l) > 1 {
			sg.IDs = x.idList(l)
		}
		out = append(out, sg)
	}
	return out
}

// Suggest's bounds for prefix and word matches: "adult" is 0.45 of
// "adult stage", "newborn" 0.28 of "newborn stage (0-28 days)"; "T" 0.17
// of "T cell".
const (
	minPrefixSuggest = 3
	minPrefixShare   = 0.25
)

// ---- search ----

// Rank orders search hits: lower is better.
type Rank uint8

// Search ranks, best first. Words are letter-or-digit runs compared up to
// case and a plural ending (matchWords).
const (
	RankExactName         Rank = iota // the name, ignoring case and white space (fold), or an id or alt_id as Standardize takes it
	RankNormalizedName                // the name's words, up to plurals and punctuation ("B cells", "B-cell"); not what validate accepts
	RankExactSynonym                  // an EXACT synonym, ignoring case and white space
	RankSynonym                       // a RELATED, BROAD or NARROW synonym, ignoring case and white space
	RankNormalizedSynonym             // a synonym's words, up to plurals and punctuation
	RankSubclass                      // a word match (below) that is an is_a subclass of a term the query names (see Search)
	RankNamePrefix                    // the name starts with the query
	RankAllWords                      // every query word is a word of the name or a synonym; phrases first
	RankWordPrefix                    // every query word is a word or starts one (a one-letter word only starting one: half the score)
	RankSomeWords                     // the name or a synonym is made of a good share of the query's words
	RankFuzzy                         // close to the name or a synonym
)

var rankNames = [...]string{"exact_name", "normalized_name", "exact_synonym", "synonym", "normalized_synonym", "subclass", "name_prefix", "all_words", "word_prefix", "some_words", "fuzzy"}

func (r Rank) String() string {
	if int(r) < len(rankNames) {
		return rankNames[r]
	}
	return "rank?"
}

// SearchOptions tune Search.
type SearchOptions struct {
	Limit    int  // at most this many hits; 0 means 20
	Obsolete bool // include obsolete terms
}

// Hit is one search result.
type Hit struct {
	ID, Name string
	Matched  string // the name or synonym that matched
	Rank     Rank
	Score    float64 // within a rank, higher is better
	Obsolete bool
}

// Search finds terms for a free-text query, ranked as the Rank constants
// say; ties go to shorter names, then ids. Fuzzy matches are looked for
// only when the other ranks leave room under the limit.
//
// Words are compared with marker signs spelled out ("CD4+" is
// "CD4-positive", markerFold) and, as a second query, with British
// spellings made American where the source has the American word
// ("leukaemia" finds the name "leukemia" as normalized_name).
//
// The hierarchy then orders what the words found (orderHits): of the
// terms the query names (ranks exact_name to normalized_synonym) tied on
// score, the more specific first ("mouse" is Mus musculus before the
// genus Mus); a word match that is an is_a descendant of one of them is
// RankSubclass, before the other word matches, a match before those
// below it ("T cell": alpha-beta T cell before its subtypes, and all
// before "T cell zone reticular cell", which is no T cell). A query that
// names no term is anchored on the longest tail of its words that names
// one ("CD4+ T cell": T cell), so CD4-positive, alpha-beta T cell comes
// before its subtypes Th1 and Th17.
func (x *Index) Search(query string, opts SearchOptions) []Hit {
	limit := opts.Limit
	if limit <= 0 {
		limit = 20
	}
	q := fold(query)
	if q == "" {
		return nil
	}
	best := map[uint32]Hit{}
	add := func(i uint32, r Rank, score float64, matched string) {
		obsolete := x.obsolete(i)
		if obsolete && !opts.Obsolete {
			return
		}
		h, ok := best[i]
		if ok && (h.Rank < r || (h.Rank == r && h.Score >= score)) {
			return
		}
		best[i] = Hit{ID: x.id(i), Name: x.name(i), Matched: matched, Rank: r, Score: score, Obsolete: obsolete}
	}
	if i, alt, ok := x.findID(query); ok { // the ids Standardize takes
		add(i, RankExactName, 1, cmp.Or(alt, x.id(i)))
	}
	for _, i := range x.lookup(&x.byFold, q) {
		add(i, RankExactName, 1, x.name(i))
	}
	for _, g := range x.lookup(&x.synFold, q) {
		add(x.synTerm[g], x.synRank(g), 1, x.synText(g))
	}
	if opts.Obsolete { // synFold holds live terms only
		qm := markerFold(q)
		for e, i := range x.entryTerm {
			if g := x.entrySyn[e]; g != noSyn && x.obsolete(i) && x.folded(uint32(e)) == qm && fold(x.synText(g)) == q {
				add(i, x.synRank(g), 1, x.entryText(uint32(e)))
			}
		}
	}
	keep := func(e uint32) bool { return opts.Obsolete || !x.obsolete(x.entryTerm[e]) }
	forms := x.searchForms(q)
	for _, f := range forms {
		for _, m := range x.matchWords(f, keep, true, limit) {
			r := m.rank
			if r == RankNormalizedName && x.entrySyn[m.e] != noSyn {
				r = RankNormalizedSynonym
			}
			add(x.entryTerm[m.e], r, m.score, x.entryText(m.e))
		}
	}
	if len(best) < limit {
		for _, s := range x.similar(forms[0], 4*limit, 0.6, true, keep) {
			add(x.entryTerm[s.e], RankFuzzy, s.score, x.entryText(s.e))
		}
	}
	hits := x.orderHits(best, forms)
	if len(hits) > limit {
		hits = hits[:limit]
	}
	return hits
}

// searchForms are the folded query q as the fuzzy entries spell it
// (markerFold), then, if it differs, that with American spellings.
func (x *Index) searchForms(q string) []string {
	m := markerFold(q)
	if v := x.spellingVariant(m); v != m {
		return []string{m, v}
	}
	return []string{m}
}

// orderHits sorts the hits as Search says: by rank, the word matches
// below an anchor made RankSubclass. Named terms tied on score go the
// more specific first (more ancestors); subclasses the more general
// first (fewer hits above them; every word whole before word prefixes;
// more hits below them), then by score. Ties go to shorter names, then
// ids.
func (x *Index) orderHits(best map[uint32]Hit, forms []string) []Hit {
	type ranked struct {
		Hit
		i     uint32
		whole bool  // a subclass matched every word whole
		key   int32 // named: minus the ancestors; subclass: the hits above it
		under int32 // subclass: the hits below it
	}
	rs := make([]ranked, 0, len(best))
	var anchors []uint32
	for i, h := range best {
		if h.Rank <= RankNormalizedSynonym {
			anchors = append(anchors, i)
		}
	}
	if len(anchors) == 0 {
		anchors = x.headAnchors(forms)
	}
	under := map[uint32]int32{}
	keys, release := x.hierarchyKeys(best, anchors, under)
	defer release()
	for i, h := range best {
		r := ranked{Hit: h, i: i}
		switch {
		case h.Rank <= RankNormalizedSynonym:
			r.key = -int32(x.countAncestors(i))
		case h.Rank != RankFuzzy:
			if below, above := keys(i); below {
				r.whole = h.Rank <= RankAllWords
				r.Rank, r.key = RankSubclass, above
			}
		}
		rs = append(rs, r)
	}
	for k := range rs {
		rs[k].under = under[rs[k].i]
	}
	slices.SortFunc(rs, func(a, b ranked) int {
		if a.Rank != b.Rank {
			return cmp.Compare(a.Rank, b.Rank)
		}
		if a.Rank == RankSubclass {
			if a.key != b.key {
				return cmp.Compare(a.key, b.key)
			}
			if a.whole != b.whole {
				if a.whole {
					return -1
				}
				return 1
			}
			if a.under != b.under {
				return cmp.Compare(b.under, a.under)
			}
		}
		if a.Score != b.Score {
			return cmp.Compare(b.Score, a.Score)
		}
		if a.Rank <= RankNormalizedSynonym && a.key != b.key {
			return cmp.Compare(a.key, b.key)
		}
		if c := cmp.Compare(len(a.Name), len(b.Name)); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	hits := make([]Hit, len(rs))
	for k, r := range rs {
		hits[k] = r.Hit
	}
	return hits
}

// headAnchors are the live terms named (name or EXACT synonym, up to case
// and a plural ending of the last word) by the longest tail of the query's
// words that names any: "T cell" for "CD4-positive T cells".
func (x *Index) headAnchors(forms []string) []uint32 {
	var out []uint32
	for _, f := range forms {
		for k := strings.IndexByte(f, ' '); k >= 0 && k+1 < len(f); {
			tail := f[k+1:]
			for _, t := range []string{tail, tail[:len(tail)-len(lastWord(tail))] + singular(lastWord(tail))} {
				for _, i := range x.lookup(&x.byFold, t) {
					if !x.obsolete(i) {
						out = append(out, i)
					}
				}
				for _, g := range x.lookup(&x.synFold, t) {
					if Scope(x.synScope[g]) == Exact {
						out = append(out, x.synTerm[g])
					}
				}
			}
			if len(out) > 0 {
				return out
			}
			next := strings.IndexByte(tail, ' ')
			if next < 0 {
				break
			}
			k += 1 + next
		}
	}
	return nil
}

// lastWord is the text after the last space of s.
func lastWord(s string) string { return s[strings.LastIndexByte(s, ' ')+1:] }

// hierarchyKeys returns a function that tells whether term i is below
// one of anchors by is_a, and how many terms of best are above it: the
// ones of a query's matches more general than it. It walks i's ancestors
// once, and counts i in under for each of them in best. Call release when
// done.
func (x *Index) hierarchyKeys(best map[uint32]Hit, anchors []uint32, under map[uint32]int32) (keys func(i uint32) (below bool, above int32), release func()) {
	if len(anchors) == 0 {
		return func(uint32) (bool, int32) { return false, 0 }, func() {}
	}
	sc := x.pool.Get().(*scratch)
	if len(sc.seen) != x.terms() {
		sc.seen, sc.term, sc.gen = make([]uint32, x.terms()), make([]uint8, x.terms()), 0
	}
	for i := range best {
		sc.term[i] |= termHit
	}
	for _, a := range anchors {
		sc.term[a] |= termAnchor
	}
	var queue []uint32
	keys = func(i uint32) (below bool, above int32) {
		if sc.gen++; sc.gen == 0 {
			clear(sc.seen)
			sc.gen = 1
		}
		sc.seen[i] = sc.gen
		queue = append(queue[:0], i)
		for len(queue) > 0 {
			t := queue[0]
			queue = queue[1:]
			for _, p := range x.parents.row(t) {
				if sc.seen[p] == sc.gen {
					continue
				}
				sc.seen[p] = sc.gen
				queue = append(queue, p)
				f := sc.term[p]
				below = below || f&termAnchor != 0
				if f&termHit != 0 {
					above++
					under[p]++
				}
			}
		}
		return below, above
	}
	release = func() {
		for i := range best {
			sc.term[i] = 0
		}
		for _, a := range anchors {
			sc.term[a] = 0
		}
		x.pool.Put(sc)
	}
	return keys, release
}

// countAncestors counts the terms above term i by is_a.
func (x *Index) countAncestors(i uint32) int {
	seen := map[uint32]bool{i: true}
	queue := []uint32{i}
	for len(queue) > 0 {
		t := queue[0]
		queue = queue[1:]
		for _, p := range x.parents.row(t) {
			if !seen[p] {
				seen[p] = true
				queue = append(queue, p)
			}
		}
	}
	return len(seen) - 1
}

// synRank is the rank of a query equal to synonym g: exact_synonym only
// for an EXACT one (a script reads the name as the scope); another gene's
// official symbol ranks as a name.
func (x *Index) synRank(g uint32) Rank {
	switch Scope(x.synScope[g]) {
	case Exact:
		return RankExactSynonym
	case Symbol:
		return RankExactName
	}
	return RankSynonym
}
