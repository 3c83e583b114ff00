package ontology

import (
	"cmp"
	"slices"
	"sort"
	"strings"
)

// Fuzzy matching runs on the tables' entries (every name and synonym,
// folded) and their trigram and word postings; see addFuzzy.

type scratch struct {
	count   []uint16 // per entry
	touched []uint32
}

func (x *Index) getScratch() (*scratch, func()) {
	sc := x.pool.Get().(*scratch)
	return sc, func() {
		for _, e := range sc.touched {
			sc.count[e] = 0
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
	slices.SortFunc(out, func(a, b scored) int {
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
	})
	if len(out) > limit {
		out = out[:limit]
	}
	return out
}

type scored struct {
	e     uint32
	score float64
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
	Matched  string  // the name or synonym that was close
	Score    float64 // similarity in (0, 1]
}

// Suggest returns up to n live terms close to value (typos, case), best
// first, each term once.
func (x *Index) Suggest(value string, n int) []Suggestion {
	q := fold(value)
	if q == "" || n <= 0 {
		return nil
	}
	keep := func(e uint32) bool {
		g := x.entrySyn[e]
		return !x.obsolete(x.entryTerm[e]) && (g == noSyn || Scope(x.synScope[g]) == Exact)
	}
	var out []Suggestion
	seen := map[uint32]bool{}
	for _, s := range x.similar(q, 4*n, 0.5, false, keep) {
		i := x.entryTerm[s.e]
		if seen[i] {
			continue
		}
		seen[i] = true
		out = append(out, Suggestion{ID: x.id(i), Name: x.name(i), Matched: x.entryText(s.e), Score: s.score})
		if len(out) == n {
			break
		}
	}
	return out
}

// ---- search ----

// Rank orders search hits: lower is better.
type Rank uint8

// Search ranks, best first.
const (
	RankExactName    Rank = iota // the name (ignoring case) or the id
	RankExactSynonym             // a synonym, ignoring case
	RankNamePrefix               // the name starts with the query
	RankWordPrefix               // every query word starts a word of the name or a synonym
	RankFuzzy                    // close to the name or a synonym
)

var rankNames = [...]string{"exact_name", "exact_synonym", "name_prefix", "word_prefix", "fuzzy"}

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

// Search finds terms for a free-text query, ranked exact name, exact
// synonym, name prefix, word prefix, then fuzzy; ties go to shorter
// matches, names before synonyms, then ids.
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
	if i, ok := x.lookupOne(&x.byID, strings.TrimSpace(query)); ok {
		add(i, RankExactName, 1, x.id(i))
	}
	for _, i := range x.lookup(&x.byFold, q) {
		add(i, RankExactName, 1, x.name(i))
	}
	for _, g := range x.lookup(&x.synFold, q) {
		add(x.synTerm[g], RankExactSynonym, 1, x.synText(g))
	}
	if opts.Obsolete { // synFold holds live terms only
		for e, i := range x.entryTerm {
			if x.entrySyn[e] != noSyn && x.obsolete(i) && x.folded(uint32(e)) == q {
				add(i, RankExactSynonym, 1, x.entryText(uint32(e)))
			}
		}
	}
	for _, e := range x.wordPrefixMatches(q) {
		r := RankWordPrefix
		text := x.folded(e)
		if x.entrySyn[e] == noSyn && strings.HasPrefix(text, q) {
			r = RankNamePrefix
		}
		add(x.entryTerm[e], r, float64(len(q))/float64(len(text)), x.entryText(e))
	}
	if len(best) < limit {
		keep := func(e uint32) bool { return opts.Obsolete || !x.obsolete(x.entryTerm[e]) }
		for _, s := range x.similar(q, 4*limit, 0.6, true, keep) {
			add(x.entryTerm[s.e], RankFuzzy, s.score, x.entryText(s.e))
		}
	}
	hits := make([]Hit, 0, len(best))
	for _, h := range best {
		hits = append(hits, h)
	}
	slices.SortFunc(hits, func(a, b Hit) int {
		if a.Rank != b.Rank {
			return cmp.Compare(a.Rank, b.Rank)
		}
		if a.Score != b.Score {
			return cmp.Compare(b.Score, a.Score)
		}
		if c := cmp.Compare(len(a.Name), len(b.Name)); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	if len(hits) > limit {
		hits = hits[:limit]
	}
	return hits
}

// wordPrefixMatches returns the entries in which every word of q is the
// prefix of some word.
func (x *Index) wordPrefixMatches(q string) []uint32 {
	qw := words(q)
	if len(qw) == 0 {
		return nil
	}
	// Rarest words first would be faster; query words are few and the
	// counting pass below is linear in the postings, which is enough.
	sc, release := x.getScratch()
	defer release()
	for k, w := range qw {
		lo := sort.Search(len(x.words), func(j int) bool { return x.str(x.words[j]) >= w })
		for j := lo; j < len(x.words) && strings.HasPrefix(x.str(x.words[j]), w); j++ {
			for _, e := range x.wordPost.row(uint32(j)) {
				if int(e) >= len(sc.count) {
					continue // a damaged index file, as in similar
				}
				// count[e] == k means e matched every earlier word; the
				// check also stops two words of one entry counting twice.
				if int(sc.count[e]) == k {
					if k == 0 {
						sc.touched = append(sc.touched, e)
					}
					sc.count[e]++
				}
			}
		}
	}
	var out []uint32
	for _, e := range sc.touched {
		if int(sc.count[e]) == len(qw) {
			out = append(out, e)
		}
	}
	return out
}
