package ontology

import (
	"cmp"
	"math"
	"slices"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Word matching for Search and Suggest. A query and every name and synonym
// are compared as sequences of words (letter-or-digit runs of the folded
// text, so "B-cells" is b, cells) with a plural ending removed (singular:
// cells is cell). It runs on the word postings of the fuzzy index: no
// other table, so index files of format 1 answer it.

// maxQueryWords bounds the distinct words of a query that word matching
// tells apart (a bit each); later ones are ignored.
const maxQueryWords = 32

// minSomeWords is the least share of a query's information (its words
// weighted by idf) that a name made of some of its words must cover to be
// a some_words hit. "blood" covers 0.41 of "peripheral blood" in Uberon,
// "T cell" 0.39 of "human T cell" in CL; "cell" covers 0.21 of "T cell".
const minSomeWords = 0.25

// wordQuery is a folded query split into words.
type wordQuery struct {
	seq   []string // the singular of each word, in order, repeats kept
	keys  []string // the distinct singulars; bit i of a mask stands for keys[i]
	typed []string // per key: the word as first typed
}

func newWordQuery(q string) wordQuery {
	var wq wordQuery
	for w := range eachWord(q) {
		k := singular(w)
		wq.seq = append(wq.seq, k)
		if !slices.Contains(wq.keys, k) && len(wq.keys) < maxQueryWords {
			wq.keys = append(wq.keys, k)
			wq.typed = append(wq.typed, w)
		}
	}
	return wq
}

// singular removes an English plural ending from a folded word: cells,
// bodies, processes, boxes become cell, body, process, box. Words of
// fewer than four letters and those ending in ss, us or is stay as they
// are (nucleus, pelvis, process). Both sides of a comparison go through
// it, so a wrong stem ("lens" to "len") matters only where "len" is a word
// too.
func singular(w string) string {
	n := len(w)
	if n < 4 || w[n-1] != 's' {
		return w
	}
	switch {
	case strings.HasSuffix(w, "ies") && n > 4:
		return w[:n-3] + "y"
	case strings.HasSuffix(w, "sses"), strings.HasSuffix(w, "xes"), strings.HasSuffix(w, "ches"), strings.HasSuffix(w, "shes"):
		return w[:n-2]
	case strings.HasSuffix(w, "ss"), strings.HasSuffix(w, "us"), strings.HasSuffix(w, "is"):
		return w
	}
	return w[:n-1]
}

// wordMatch is an entry that word matching found, with the rank it
// earns and its score within that rank. Rank is RankNormalizedName when
// the entry equals the query up to plural endings, case and punctuation,
// whether the entry is a name or a synonym (the caller tells them apart).
type wordMatch struct {
	e     uint32
	rank  Rank
	score float64
}

// matchWords classifies the entries that keep accepts by the query's
// words:
//   - RankNormalizedName: the same words in the same order, up to plural
//     endings ("T cells" and "T-cell" for "T cell"); score 1.
//   - RankNamePrefix: a name that starts with the query, where every
//     query word is a word of it or, for the last one of two letters or
//     more, starts one.
//   - RankAllWords: every query word is a word of the entry; score in
//     (0.5, 1] when they are adjacent and in order (a phrase), else in
//     (0, 0.5], higher for shorter entries.
//   - RankWordPrefix: every query word is a word of the entry or starts
//     one. A one-letter word that only starts one (a "T" starts half the
//     words of CL) halves the score.
//   - RankSomeWords: the entry is made only of query words, not all of
//     them, covering at least minSomeWords of the query's information
//     (each word weighted by its idf); the score is that share. Only when
//     every query word is a word of some entry (an unknown word is likely
//     a typo, which fuzzy matching handles better), and only when the
//     other ranks found fewer than want terms.
//
// Without prefixes, words match whole only (no name or word prefix
// ranks).
func (x *Index) matchWords(q string, keep func(e uint32) bool, prefixes bool, want int) []wordMatch {
	wq := newWordQuery(q)
	if len(wq.keys) == 0 {
		return nil
	}
	qws := x.queryWords(wq, prefixes)
	out := x.allWords(q, wq, qws, keep)
	if len(wq.keys) < 2 || x.termsAtLeast(out, want) {
		return out
	}
	return x.someWords(q, wq, qws, keep, out)
}

// termsAtLeast reports whether ms hold n terms or more.
func (x *Index) termsAtLeast(ms []wordMatch, n int) bool {
	if len(ms) < n {
		return false
	}
	seen := map[uint32]bool{}
	for _, m := range ms {
		seen[x.entryTerm[m.e]] = true
	}
	return len(seen) >= n
}

// allWords is matchWords for the ranks that need every query word.
func (x *Index) allWords(q string, wq wordQuery, qws []queryWord, keep func(e uint32) bool) []wordMatch {
	sc, release := x.getScratch()
	defer release()
	sc.words()
	x.markEvery(qws, sc)
	var oneLetter uint32 // one-letter words
	for i, qw := range qws {
		if utf8.RuneCountInString(wq.typed[i]) == 1 {
			oneLetter |= qw.bit
		}
	}
	all := uint32(1)<<len(qws) - 1
	qlen := float64(len(q))
	// Only an entry not much longer than the query can equal it (spaces,
	// punctuation and plural endings aside); longer ones are not split
	// into words for that.
	near := 2*len(q) + 4
	var out []wordMatch
	var ek []string // the current entry's words, singular
	for _, e := range sc.touched {
		w, p := sc.whole[e], sc.pref[e]
		if w|p != all || !keep(e) {
			continue
		}
		text := x.folded(e)
		short := min(1, qlen/float64(len(text)))
		switch {
		case w != all && oneLetter&p&^w != 0:
			out = append(out, wordMatch{e, RankWordPrefix, short / 2})
			continue
		case x.entrySyn[e] == noSyn && len(text) > len(q) && strings.HasPrefix(text, q) && (w != all || wordEnds(text, len(q))):
			out = append(out, wordMatch{e, RankNamePrefix, short})
			continue
		case w != all:
			out = append(out, wordMatch{e, RankWordPrefix, short})
			continue
		}
		phrase := len(wq.seq) == 1 || hasPhrase(text, q)
		if len(text) <= near || !phrase {
			ek = appendKeys(ek[:0], text)
			if slices.Equal(ek, wq.seq) {
				out = append(out, wordMatch{e, RankNormalizedName, 1})
				continue
			}
			phrase = phrase || hasRun(ek, wq.seq)
		}
		if phrase {
			out = append(out, wordMatch{e, RankAllWords, 0.5 + short/2})
		} else {
			out = append(out, wordMatch{e, RankAllWords, short / 2})
		}
	}
	return out
}

// someWords appends to out the RankSomeWords matches (see matchWords).
func (x *Index) someWords(q string, wq wordQuery, qws []queryWord, keep func(e uint32) bool, out []wordMatch) []wordMatch {
	n := float64(len(x.entryTerm))
	idf := make([]float64, len(qws))
	var idfSum float64
	for i, qw := range qws {
		if qw.df == 0 {
			return out // an unknown word
		}
		idf[i] = math.Log(n / min(n, float64(qw.df)))
		idfSum += idf[i]
	}
	if idfSum <= 0 {
		return out
	}
	sc, release := x.getScratch()
	defer release()
	sc.words()
	x.markSome(qws, sc, idf, idfSum)
	all := uint32(1)<<len(qws) - 1
	// An entry made of some of the query's words, each once, is no
	// longer than the query but for punctuation and plural endings.
	near := 2*len(q) + 4
	var ek []string
	for _, e := range sc.touched {
		w := sc.whole[e]
		if w == all || len(x.folded(e)) > near {
			continue
		}
		var cover float64
		for i, qw := range qws {
			if w&qw.bit != 0 {
				cover += idf[i]
			}
		}
		if cover /= idfSum; cover < minSomeWords || !keep(e) {
			continue
		}
		if ek = appendKeys(ek[:0], x.folded(e)); allIn(ek, wq.keys) {
			out = append(out, wordMatch{e, RankSomeWords, cover})
		}
	}
	return out
}

// queryWord is where a query word is in the index's sorted words.
type queryWord struct {
	bit    uint32
	whole  []int  // numbers of the index words equal to it up to a plural ending
	lo, hi int    // the index words it is a prefix of (some may be in whole)
	df     int    // postings of the whole words: about the entries holding it
	size   uint32 // postings of the whole words and the prefixed ones
}

func (x *Index) queryWords(wq wordQuery, prefixes bool) []queryWord {
	qws := make([]queryWord, len(wq.keys))
	for i, k := range wq.keys {
		qw := &qws[i]
		qw.bit = 1 << i
		typed := wq.typed[i]
		for _, form := range pluralForms(typed, k) {
			if j, ok := x.findWord(form); ok && !slices.Contains(qw.whole, j) && singular(form) == k {
				qw.whole = append(qw.whole, j)
				qw.df += int(x.wordPost.start[j+1] - x.wordPost.start[j])
			}
		}
		qw.size = uint32(qw.df)
		if prefixes {
			qw.lo, _ = x.findWord(typed)
			qw.hi = qw.lo + sort.Search(len(x.words)-qw.lo, func(j int) bool { return !strings.HasPrefix(x.str(x.words[qw.lo+j]), typed) })
			qw.size += x.wordPost.start[qw.hi] - x.wordPost.start[qw.lo]
		}
	}
	return qws
}

// markEvery marks the entries holding every query word, whole or as a
// prefix (see mark), starting from the word with the fewest postings.
func (x *Index) markEvery(qws []queryWord, sc *scratch) {
	order := make([]int, len(qws))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(qws[a].size, qws[b].size) })
	var done uint32 // bits of the words marked so far
	for k, i := range order {
		qw := &qws[i]
		for _, j := range qw.whole {
			x.mark(sc, j, qw.bit, true, k == 0, done)
		}
		for j := qw.lo; j < qw.hi; j++ {
			if !slices.Contains(qw.whole, j) {
				x.mark(sc, j, qw.bit, false, k == 0, done)
			}
		}
		done |= qw.bit
	}
}

// markSome marks, by whole words only, the entries that may be made of
// query words covering minSomeWords of the information (idf): those
// holding a word that the words rarer than it (with their higher idf)
// could not make up minSomeWords without.
func (x *Index) markSome(qws []queryWord, sc *scratch, idf []float64, idfSum float64) {
	order := make([]int, len(qws))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(idf[b], idf[a]) })
	strong := len(order) // order[:strong] start entries; the others only add to them
	for weak := 0.0; strong > 1 && weak+idf[order[strong-1]] < minSomeWords*idfSum; {
		strong--
		weak += idf[order[strong]]
	}
	for k, i := range order {
		for _, j := range qws[i].whole {
			x.mark(sc, j, qws[i].bit, true, k < strong, 0)
		}
	}
}

// mark sets bit in sc.whole (whole) or sc.pref of the entries holding
// index word j: of every one with start, else of those already marked
// with all the bits of done (0: with any).
func (x *Index) mark(sc *scratch, j int, bit uint32, whole, start bool, done uint32) {
	for _, e := range x.wordPost.row(uint32(j)) {
		if int(e) >= len(sc.whole) {
			continue // a damaged index file, as in similar
		}
		m := sc.whole[e] | sc.pref[e]
		switch {
		case m == 0 && start:
			sc.touched = append(sc.touched, e)
		case m == 0 || m&done != done:
			continue
		}
		if whole {
			sc.whole[e] |= bit
		} else {
			sc.pref[e] |= bit
		}
	}
}

// appendKeys appends the singular of each word of folded text to ks.
func appendKeys(ks []string, text string) []string {
	for w := range eachWord(text) {
		ks = append(ks, singular(w))
	}
	return ks
}

// hasPhrase reports whether q occurs in text between word edges.
func hasPhrase(text, q string) bool {
	for off := 0; ; {
		i := strings.Index(text[off:], q)
		if i < 0 {
			return false
		}
		i += off
		r, _ := utf8.DecodeLastRuneInString(text[:i])
		if (i == 0 || !isWordRune(r)) && wordEnds(text, i+len(q)) {
			return true
		}
		off = i + 1
	}
}

// pluralForms are the words that may have singular k: the word as typed,
// k itself and its plurals.
func pluralForms(typed, k string) []string {
	forms := []string{typed, k, k + "s", k + "es"}
	if strings.HasSuffix(k, "y") {
		forms = append(forms, k[:len(k)-1]+"ies")
	}
	return forms
}

// findWord returns the number of word w in x.words.
func (x *Index) findWord(w string) (int, bool) {
	j := sort.Search(len(x.words), func(j int) bool { return x.str(x.words[j]) >= w })
	return j, j < len(x.words) && x.str(x.words[j]) == w
}

// wordEnds reports whether text[:i] ends a word of text.
func wordEnds(text string, i int) bool {
	if i >= len(text) {
		return true
	}
	r, _ := utf8.DecodeRuneInString(text[i:])
	return !isWordRune(r)
}

// isWordRune reports whether r belongs in a word, as eachWord splits them.
func isWordRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }

// hasRun reports whether seq occurs in ws as adjacent words, in order.
func hasRun(ws, seq []string) bool {
	for i := 0; i+len(seq) <= len(ws); i++ {
		if slices.Equal(ws[i:i+len(seq)], seq) {
			return true
		}
	}
	return false
}

// allIn reports whether every word of ws is in set.
func allIn(ws, set []string) bool {
	for _, w := range ws {
		if !slices.Contains(set, w) {
			return false
		}
	}
	return len(ws) > 0
}

// NamesWithWord calls fn with the id (and each alternative id) and the
// name of each term (obsolete ones too) whose name holds a word that starts with prefix (lowercase letters
// and digits, as a name's folded text splits into words), once per term.
// Catalog search uses it to find the versions annotated with a term by the
// name the term has now, whatever name they recorded (cmd/lamina,
// search.go). Synonyms are left out.
func (x *Index) NamesWithWord(prefix string, fn func(id, name string)) {
	if prefix == "" {
		return
	}
	var seen map[uint32]bool
	for j, _ := x.findWord(prefix); j < len(x.words) && strings.HasPrefix(x.str(x.words[j]), prefix); j++ {
		for _, e := range x.wordPost.row(uint32(j)) {
			if int(e) >= len(x.entrySyn) || x.entrySyn[e] != noSyn {
				continue // a synonym, or a damaged index file (as in similar)
			}
			t := x.entryTerm[e]
			if int(t) >= x.terms() || seen[t] {
				continue
			}
			if seen == nil {
				seen = map[uint32]bool{}
			}
			seen[t] = true
			name := x.name(t)
			fn(x.id(t), name)
			for _, alt := range x.altIDs.row(t) {
				fn(x.str(alt), name) // a version may record an id merged into t since
			}
		}
	}
}
