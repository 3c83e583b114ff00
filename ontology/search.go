package ontology

import (
	"cmp"
	"slices"
	"sort"
	"strings"
	"sync"
	"unicode"
)

// The fuzzy index holds every name and synonym once, folded, with two
// inverted indexes: byte trigrams (for typos) and words (for word
// prefixes). Both are flat arrays (CSR) rather than maps of slices because
// they hold a few million postings for Mondo.
type fuzzyIndex struct {
	entries []entry

	triKeys  []uint32 // sorted trigrams
	triStart []int32  // postings of triKeys[k]: triPost[triStart[k]:triStart[k+1]]
	triPost  []int32
	triCount []uint16 // distinct trigrams per entry

	words     []string // sorted distinct words
	wordStart []int32
	wordPost  []int32

	pool sync.Pool // *scratch
}

type entry struct {
	term   int32
	syn    int32 // -1 for the name
	folded string
}

type scratch struct {
	count   []uint16
	touched []int32
}

func (x *Index) fuzzy() *fuzzyIndex {
	x.fuzzyOnce.Do(func() { x.fz = buildFuzzy(x.terms) })
	return x.fz
}

func buildFuzzy(terms []Term) *fuzzyIndex {
	fz := &fuzzyIndex{}
	for i := range terms {
		t := &terms[i]
		if t.Name != "" {
			fz.entries = append(fz.entries, entry{int32(i), -1, fold(t.Name)})
		}
		for j := range t.Synonyms {
			fz.entries = append(fz.entries, entry{int32(i), int32(j), fold(t.Synonyms[j].Text)})
		}
	}
	n := len(fz.entries)
	fz.triCount = make([]uint16, n)

	// Trigrams: collect (trigram, entry) pairs, sort, and cut into runs.
	// An entry has at most len+1 trigrams: size the buffer once (growing
	// it copied ~100 MB for Mondo).
	total := 0
	for e := range fz.entries {
		total += len(fz.entries[e].folded) + 1
	}
	pairs := make([]uint64, 0, total)
	var buf []uint32
	for e := range fz.entries {
		buf = trigrams(fz.entries[e].folded, buf[:0])
		fz.triCount[e] = uint16(min(len(buf), 65535))
		for _, g := range buf {
			pairs = append(pairs, uint64(g)<<32|uint64(e))
		}
	}
	pairs = sortPairs(pairs)
	fz.triPost = make([]int32, len(pairs))
	for k, p := range pairs {
		g := uint32(p >> 32)
		if len(fz.triKeys) == 0 || fz.triKeys[len(fz.triKeys)-1] != g {
			fz.triKeys = append(fz.triKeys, g)
			fz.triStart = append(fz.triStart, int32(k))
		}
		fz.triPost[k] = int32(uint32(p))
	}
	fz.triStart = append(fz.triStart, int32(len(pairs)))

	// Words: number the distinct words, sort only those, then place each
	// occurrence by counting (entries are visited in order, so each word's
	// postings come out sorted, and a repeat within an entry is adjacent).
	wordID := map[string]int32{}
	var distinct []string
	occWord, occEntry := make([]int32, 0, total/4), make([]int32, 0, total/4)
	for e := range fz.entries {
		for _, w := range words(fz.entries[e].folded) {
			id, ok := wordID[w]
			if !ok {
				id = int32(len(distinct))
				wordID[w] = id
				distinct = append(distinct, w)
			}
			occWord = append(occWord, id)
			occEntry = append(occEntry, int32(e))
		}
	}
	order := make([]int32, len(distinct))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int { return strings.Compare(distinct[a], distinct[b]) })
	rank := make([]int32, len(distinct))
	for r, id := range order {
		rank[id] = int32(r)
	}
	start := make([]int32, len(distinct)+1)
	for _, id := range occWord {
		start[rank[id]+1]++
	}
	for r := 1; r < len(start); r++ {
		start[r] += start[r-1]
	}
	fill := slices.Clone(start[:len(distinct)])
	post := make([]int32, len(occWord))
	for k, id := range occWord {
		r, e := rank[id], occEntry[k]
		if fill[r] > start[r] && post[fill[r]-1] == e {
			continue // the same word twice in one entry
		}
		post[fill[r]] = e
		fill[r]++
	}
	fz.wordPost = make([]int32, 0, len(post))
	for r, id := range order {
		fz.words = append(fz.words, distinct[id])
		fz.wordStart = append(fz.wordStart, int32(len(fz.wordPost)))
		fz.wordPost = append(fz.wordPost, post[start[r]:fill[r]]...)
	}
	fz.wordStart = append(fz.wordStart, int32(len(fz.wordPost)))
	fz.pool.New = func() any { return &scratch{count: make([]uint16, n)} }
	return fz
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

// words splits folded text into letter-or-digit runs.
func words(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
}

func (fz *fuzzyIndex) postings(g uint32) []int32 {
	k, ok := slices.BinarySearch(fz.triKeys, g)
	if !ok {
		return nil
	}
	return fz.triPost[fz.triStart[k]:fz.triStart[k+1]]
}

// similar returns entries ranked by edit-distance similarity to the
// folded query, best first, considering the entries that share the most
// trigrams with it. keep filters entries.
// With prefix set, an entry also scores by how close its start is to the
// query (scaled down a little), so that a search for "dendritc" finds
// "dendritic cell".
func (fz *fuzzyIndex) similar(q string, limit int, minSim float64, prefix bool, keep func(e *entry) bool) []scored {
	qg := trigrams(q, nil)
	if len(qg) == 0 {
		return nil
	}
	sc := fz.pool.Get().(*scratch)
	defer func() {
		for _, e := range sc.touched {
			sc.count[e] = 0
		}
		sc.touched = sc.touched[:0]
		fz.pool.Put(sc)
	}()
	for _, g := range qg {
		for _, e := range fz.postings(g) {
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
		e    int32
		dice float64
	}
	var cands []cand
	for _, e := range sc.touched {
		c := int(sc.count[e])
		if c < need || !keep(&fz.entries[e]) {
			continue
		}
		cands = append(cands, cand{e, 2 * float64(c) / float64(len(qg)+int(fz.triCount[e]))})
	}
	const shortlist = 96
	if len(cands) > shortlist {
		sort.Slice(cands, func(a, b int) bool { return cands[a].dice > cands[b].dice })
		cands = cands[:shortlist]
	}
	qr := []rune(q)
	var out []scored
	for _, c := range cands {
		text := fz.entries[c.e].folded
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
		ea, eb := &fz.entries[a.e], &fz.entries[b.e]
		if (ea.syn < 0) != (eb.syn < 0) { // names before synonyms
			if ea.syn < 0 {
				return -1
			}
			return 1
		}
		return cmp.Compare(len(ea.folded), len(eb.folded))
	})
	if len(out) > limit {
		out = out[:limit]
	}
	return out
}

type scored struct {
	e     int32
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
	fz := x.fuzzy()
	keep := func(e *entry) bool {
		t := &x.terms[e.term]
		return !t.Obsolete && (e.syn < 0 || t.Synonyms[e.syn].Scope == Exact)
	}
	var out []Suggestion
	seen := map[int32]bool{}
	for _, s := range fz.similar(q, 4*n, 0.5, false, keep) {
		e := &fz.entries[s.e]
		if seen[e.term] {
			continue
		}
		seen[e.term] = true
		t := &x.terms[e.term]
		out = append(out, Suggestion{ID: t.ID, Name: t.Name, Matched: x.entryText(e), Score: s.score})
		if len(out) == n {
			break
		}
	}
	return out
}

func (x *Index) entryText(e *entry) string {
	if e.syn < 0 {
		return x.terms[e.term].Name
	}
	return x.terms[e.term].Synonyms[e.syn].Text
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
	fz := x.fuzzy()
	best := map[int32]Hit{}
	add := func(i int32, r Rank, score float64, matched string) {
		t := &x.terms[i]
		if t.Obsolete && !opts.Obsolete {
			return
		}
		h, ok := best[i]
		if ok && (h.Rank < r || (h.Rank == r && h.Score >= score)) {
			return
		}
		best[i] = Hit{ID: t.ID, Name: t.Name, Matched: matched, Rank: r, Score: score, Obsolete: t.Obsolete}
	}
	if i, ok := x.byID[strings.TrimSpace(query)]; ok {
		add(i, RankExactName, 1, x.terms[i].ID)
	}
	for _, i := range x.byFold[q] {
		add(i, RankExactName, 1, x.terms[i].Name)
	}
	for _, r := range x.synFold[q] {
		add(r.term, RankExactSynonym, 1, x.terms[r.term].Synonyms[r.syn].Text)
	}
	if opts.Obsolete { // synFold holds live terms only
		for _, e := range fz.entries {
			if e.syn >= 0 && x.terms[e.term].Obsolete && e.folded == q {
				add(e.term, RankExactSynonym, 1, x.entryText(&e))
			}
		}
	}
	for _, e := range fz.wordPrefixMatches(q) {
		en := &fz.entries[e]
		r := RankWordPrefix
		if en.syn < 0 && strings.HasPrefix(en.folded, q) {
			r = RankNamePrefix
		}
		add(en.term, r, float64(len(q))/float64(len(en.folded)), x.entryText(en))
	}
	if len(best) < limit {
		keep := func(e *entry) bool { return opts.Obsolete || !x.terms[e.term].Obsolete }
		for _, s := range fz.similar(q, 4*limit, 0.6, true, keep) {
			e := &fz.entries[s.e]
			add(e.term, RankFuzzy, s.score, x.entryText(e))
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
func (fz *fuzzyIndex) wordPrefixMatches(q string) []int32 {
	qw := words(q)
	if len(qw) == 0 {
		return nil
	}
	// Rarest words first would be faster; query words are few and the
	// counting pass below is linear in the postings, which is enough.
	sc := fz.pool.Get().(*scratch)
	defer func() {
		for _, e := range sc.touched {
			sc.count[e] = 0
		}
		sc.touched = sc.touched[:0]
		fz.pool.Put(sc)
	}()
	for k, w := range qw {
		lo, _ := slices.BinarySearch(fz.words, w)
		for j := lo; j < len(fz.words) && strings.HasPrefix(fz.words[j], w); j++ {
			for _, e := range fz.wordPost[fz.wordStart[j]:fz.wordStart[j+1]] {
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
	var out []int32
	for _, e := range sc.touched {
		if int(sc.count[e]) == len(qw) {
			out = append(out, e)
		}
	}
	return out
}
