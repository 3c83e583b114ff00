package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The word index leaves out words of one character (Words), so a search
// for "T cell" finds the versions with "cell" and ranks a natural killer
// cell dataset as high as a T cell one. Indexing them would change what
// the index holds, and catalogs written before would answer differently
// from new ones. Instead, Search looks at the candidates the index
// returns: a short query word found in a version's key, description,
// labels, term names or feature values next to the query word it is next
// to in the query ("t" before "cell") raises the version's score by up to
// ×2 (PhraseRank). Both stores use PhraseRank on the same candidates in
// the same order, so they answer alike.

// A version records the name each of its terms had when it was annotated,
// and the word index holds those words. An ontology's newer version may
// rename a term ("fat cell" is "adipocyte" in CL since 2023), and term ids
// are stable: SearchWith takes the names the caller's ontology gives the
// terms the query's words are in (SearchOptions.TermNames), and finds a
// version annotated with such a term by these names too, as if they were
// recorded (weight, field "term"), through the term index. The catalog is
// never rewritten: the default ontology version decides at query time.

// SearchOptions are what SearchWith is asked besides the query.
type SearchOptions struct {
	Limit int // at most this many hits; 0: 20
	// TermNames maps term ids to names of them (the name in the default
	// version of their ontology, in other imported versions) that the
	// version's record may lack. Only the names holding a word that
	// starts with a query word matter; others are ignored.
	TermNames map[string][]string
}

// TermSearcher is a store whose Search can be told the names of terms
// (Bolt, catalog/postgres). Search(ctx, q, n) is SearchWith(ctx, q,
// SearchOptions{Limit: n}).
type TermSearcher interface {
	SearchWith(ctx context.Context, query string, opts SearchOptions) ([]Hit, error)
}

// TermMatch is a term whose names (SearchOptions.TermNames) hold query
// word I: whole (Score 2, a term name's weight) or as the prefix of a
// longer word (1.2), as the word index scores a word.
type TermMatch struct {
	ID    string
	I     int
	Score float32
}

// TermMatches returns, for each query word (Words(query)) and term of
// names, the best match of the term's names, in word then id order.
func TermMatches(words []string, names map[string][]string) []TermMatch {
	var out []TermMatch
	if len(names) == 0 {
		return nil
	}
	ids := sortedKeys(boolKeysOf(names))
	for i, q := range words {
		for _, id := range ids {
			var best float32
			for _, name := range names[id] {
				for _, w := range Words(name) {
					if len(w) > 64 {
						w = w[:64] // as docWords indexes it
					}
					if !strings.HasPrefix(w, q) {
						continue
					}
					sc := float32(20) / 10
					if len(w) != len(q) {
						sc *= 0.6
					}
					best = max(best, sc)
				}
			}
			if best > 0 {
				out = append(out, TermMatch{ID: id, I: i, Score: best})
			}
		}
	}
	return out
}

// boolKeysOf is the set of m's keys.
func boolKeysOf[V any](m map[string]V) map[string]bool {
	out := make(map[string]bool, len(m))
	for k := range m {
		out[k] = true
	}
	return out
}

// MaxRescored bounds the candidates PhraseRank reads the annotations of,
// best first: with the bonus bounded (×2), it stops as soon as no later
// candidate can reach the results, which is after a few when the top
// candidates have the phrase; a query whose short word sits nowhere would
// otherwise read every candidate (30,000 versions hold "cell" in the
// curation benchmark).
const MaxRescored = 2000

// PhraseRank picks Search's results when the query has short words: the
// candidates, fed best first by their index score (then by uid), score
// index score × (1 + the share of short words found next to their
// neighbours). It is not safe for concurrent use.
type PhraseRank struct {
	words []string // the query's words, lowercase, in order, short ones too
	short []int    // positions of the short words in words
	limit int
	seen  int
	top   []phraseHit // best first, at most limit
	offs  [][2]int    // scratch: word bounds in a text
	// names: the TermNames (SearchOptions) holding a short word next to
	// its neighbour, which the annotations' JSON does not hold.
	names map[string][]string
}

type phraseHit struct {
	hit   Hit
	score float64
}

// NewPhraseRank returns a PhraseRank for query, or nil when it has no short
// word (Search ranks by the index alone then).
func NewPhraseRank(query string, limit int) *PhraseRank {
	r := &PhraseRank{words: allWords(query), limit: limit}
	for i, w := range r.words {
		if utf8.RuneCountInString(w) < 2 {
			r.short = append(r.short, i)
		}
	}
	if len(r.short) == 0 || len(r.words) < 2 {
		return nil
	}
	return r
}

// WithNames makes the term names of names count as the names a version's
// annotations record (SearchOptions.TermNames); it returns r.
func (r *PhraseRank) WithNames(names map[string][]string) *PhraseRank {
	if r == nil {
		return nil
	}
	for id, ns := range names {
		for _, n := range ns {
			if r.adjoin(n, make([]bool, len(r.short))) > 0 {
				if r.names == nil {
					r.names = map[string][]string{}
				}
				r.names[id] = append(r.names[id], n)
			}
		}
	}
	return r
}

// Done reports whether the candidate with index score score and this uid,
// and every one after it, can be left out: it cannot beat the last of a
// full set of results even with the whole bonus, or MaxRescored were read.
func (r *PhraseRank) Done(score float64, uid string) bool {
	if r.seen >= MaxRescored {
		return true
	}
	if len(r.top) < r.limit {
		return false
	}
	last := r.top[len(r.top)-1]
	best := score * 2
	return best < last.score || best == last.score && uid > last.hit.Version.UID
}

// Add rescores a live candidate: h as Search would return it, with its
// index score and its annotations as stored (JSON; nil: none).
func (r *PhraseRank) Add(h Hit, score float64, annotations []byte) error {
	r.seen++
	b, err := r.bonus(h.Version, annotations)
	if err != nil {
		return fmt.Errorf("catalog: annotations of %s: %w", h.Version.UID, err)
	}
	s := score * (1 + b)
	i, _ := slices.BinarySearchFunc(r.top, phraseHit{h, s}, func(x, y phraseHit) int {
		switch {
		case x.score > y.score:
			return -1
		case x.score < y.score:
			return 1
		}
		return strings.Compare(x.hit.Version.UID, y.hit.Version.UID)
	})
	if i >= r.limit {
		return nil
	}
	r.top = slices.Insert(r.top, i, phraseHit{h, s})
	if len(r.top) > r.limit {
		r.top = r.top[:r.limit]
	}
	return nil
}

// Hits returns the results, best first, with their scores.
func (r *PhraseRank) Hits() []Hit {
	out := make([]Hit, len(r.top))
	for i, t := range r.top {
		out[i] = t.hit
		out[i].Score = RoundScore(t.score)
	}
	return out
}

// RoundScore is a Search score as Hit reports it.
func RoundScore(s float64) float64 { return math.Round(s*1000) / 1000 }

// bonus is the share of the query's short words that one of v's texts
// (key, description, and the labels, term names and feature values in the
// annotations' JSON) holds next to the query word before or after it (a
// short neighbour equal, a longer one as a prefix, as the index matches
// it). The JSON is decoded only when its raw words have such a pair: they
// hold every text's words in order (plus JSON's own, which can only add
// pairs), unless an escape (\u003c) hides a separator; and always when
// WithNames kept names, which the JSON lacks.
func (r *PhraseRank) bonus(v Version, annotations []byte) (float64, error) {
	found := make([]bool, len(r.short))
	n := r.adjoin(v.Key, found) + r.adjoin(v.Description, found)
	if n < len(r.short) && len(annotations) > 0 && (len(r.names) > 0 || bytes.IndexByte(annotations, '\\') >= 0 || r.adjoin(string(annotations), slices.Clone(found)) > 0) {
		var a Annotations
		if err := json.Unmarshal(annotations, &a); err != nil {
			return 0, err
		}
		for _, l := range a.Labels {
			n += r.adjoin(l, found)
		}
		for _, tm := range a.Terms {
			n += r.adjoin(tm.Name, found)
			for _, name := range r.names[tm.ID] {
				n += r.adjoin(name, found)
			}
		}
		for _, vs := range a.Features {
			for _, x := range vs {
				n += r.adjoin(x, found)
			}
		}
	}
	return float64(n) / float64(len(r.short)), nil
}

// adjoin marks the short words not found yet that text holds next to a
// neighbour (see bonus) and returns how many it marked. ASCII text is
// read in place; other text is split by allWords.
func (r *PhraseRank) adjoin(text string, found []bool) int {
	r.offs = r.offs[:0]
	start := -1
	for i := 0; i < len(text); i++ {
		c := text[i]
		if c >= utf8.RuneSelf {
			return r.mark(allWords(text), found)
		}
		in := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		switch {
		case in && start < 0:
			start = i
		case !in && start >= 0:
			r.offs = append(r.offs, [2]int{start, i})
			start = -1
		}
	}
	if start >= 0 {
		r.offs = append(r.offs, [2]int{start, len(text)})
	}
	word := func(k int) string { return text[r.offs[k][0]:r.offs[k][1]] }
	n := 0
	for k, j := range r.short {
		if found[k] {
			continue
		}
		for t := range r.offs {
			if !foldMatches(word(t), r.words[j]) {
				continue
			}
			if j > 0 && t > 0 && foldMatches(word(t-1), r.words[j-1]) ||
				j+1 < len(r.words) && t+1 < len(r.offs) && foldMatches(word(t+1), r.words[j+1]) {
				found[k] = true
				n++
				break
			}
		}
	}
	return n
}

// mark is adjoin for text split into lowercase words tw.
func (r *PhraseRank) mark(tw []string, found []bool) int {
	n := 0
	for k, j := range r.short {
		if !found[k] && r.adjacent(tw, j) {
			found[k] = true
			n++
		}
	}
	return n
}

// foldMatches is wordMatches for an ASCII text word w in any case.
func foldMatches(w, q string) bool {
	if utf8.RuneCountInString(q) >= 2 && len(w) > len(q) {
		w = w[:len(q)]
	}
	if len(w) != len(q) {
		return false
	}
	for i := 0; i < len(w); i++ {
		c := w[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != q[i] {
			return false
		}
	}
	return true
}

// adjacent reports whether text words tw hold query word j with query
// word j-1 just before it or j+1 just after it.
func (r *PhraseRank) adjacent(tw []string, j int) bool {
	for k, w := range tw {
		if w != r.words[j] {
			continue
		}
		if j > 0 && k > 0 && wordMatches(tw[k-1], r.words[j-1]) {
			return true
		}
		if j+1 < len(r.words) && k+1 < len(tw) && wordMatches(tw[k+1], r.words[j+1]) {
			return true
		}
	}
	return false
}

// wordMatches reports whether text word w matches query word q as Search
// matches them: a short q equal, a longer one also as a prefix.
func wordMatches(w, q string) bool {
	if utf8.RuneCountInString(q) < 2 {
		return w == q
	}
	return strings.HasPrefix(w, q)
}

// allWords splits text into lowercase words of letters and digits, one
// character ones too (Words keeps those of two or more).
func allWords(text string) []string {
	return strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
}
