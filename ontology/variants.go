package ontology

import (
	"strings"
	"unicode/utf8"
)

// Spellings that search treats as one (see Search): the marker signs of
// cell-type names, and British spellings of medical words.

// markerFold spells out the marker signs of folded text as the ontologies
// write them: "cd4+" is "cd4-positive" (CL's names; its synonyms say
// "CD4+"), "cd8+cd25+" "cd8-positive cd25-positive", and a minus that ends
// a token of letters and digits ("cd28-", "ccr6-", not "pre-" or "3-")
// "cd28-negative". Fuzzy entries (entryFold) are stored in this form, so
// word matching compares "CD4+ T cell" and "CD4-positive T cell" alike.
// It returns s itself when nothing changes.
func markerFold(s string) string {
	if !strings.ContainsAny(s, "+-") {
		return s
	}
	var b strings.Builder
	changed := false
	word, letter, digit := false, false, false // the run before i: a word, with a letter, with a digit
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		next, _ := utf8.DecodeRuneInString(s[i+n:])
		nextWord := i+n < len(s) && isWordRune(next)
		switch {
		case r == '+' && word:
			if !changed {
				b.Grow(len(s) + 16)
				b.WriteString(s[:i])
				changed = true
			}
			b.WriteString("-positive")
			if nextWord {
				b.WriteByte(' ')
			}
		case r == '-' && word && letter && digit && !nextWord && next != '-':
			if !changed {
				b.Grow(len(s) + 16)
				b.WriteString(s[:i])
				changed = true
			}
			b.WriteString("-negative")
		default:
			if changed {
				b.WriteString(s[i : i+n])
			}
		}
		if isWordRune(r) {
			if !word {
				letter, digit = false, false
			}
			word = true
			letter = letter || ('a' <= r && r <= 'z') || r >= utf8.RuneSelf
			digit = digit || ('0' <= r && r <= '9')
		} else {
			word = false
		}
		i += n
	}
	if !changed {
		return s
	}
	return b.String()
}

// americanSpellings are the rewrites of a British spelling (a folded
// word) to the American one the ontologies use for names: leukaemia,
// oedema, tumour, localised, analyse, centre, leucocyte. A rewrite counts
// only where its result is a word of the source (see spellingVariant),
// so "four" or "aeruginosa" stay as they are.
var americanSpellings = []struct{ from, to string }{
	{"ae", "e"}, {"oe", "e"}, {"our", "or"}, {"is", "iz"}, {"ys", "yz"}, {"tre", "ter"}, {"leuc", "leuk"},
}

// spellingVariant returns the folded query q with each word of British
// spelling replaced by the American word of the source that a rule of
// americanSpellings makes of it, or q when none is.
func (x *Index) spellingVariant(q string) string {
	var b strings.Builder
	last := 0
	for start := 0; start < len(q); {
		r, n := utf8.DecodeRuneInString(q[start:])
		if !isWordRune(r) {
			start += n
			continue
		}
		end := start
		for end < len(q) {
			r, n := utf8.DecodeRuneInString(q[end:])
			if !isWordRune(r) {
				break
			}
			end += n
		}
		if w := x.americanWord(q[start:end]); w != "" {
			b.WriteString(q[last:start])
			b.WriteString(w)
			last = end
		}
		start = end
	}
	if last == 0 {
		return q
	}
	b.WriteString(q[last:])
	return b.String()
}

// americanWord is the American spelling of the word w that the source
// has, or "". Each rule is tried on its own, then all together ("anaesthetised").
func (x *Index) americanWord(w string) string {
	if len(w) < 4 {
		return ""
	}
	all := w
	for _, r := range americanSpellings {
		v := americanize(w, r.from, r.to)
		if v == w {
			continue
		}
		if _, ok := x.findWord(v); ok {
			return v
		}
		all = americanize(all, r.from, r.to)
	}
	if all != w {
		if _, ok := x.findWord(all); ok {
			return all
		}
	}
	return ""
}

// americanize applies one rewrite of americanSpellings to w where it
// reads as that spelling: "our" after two letters or more (tumour, not
// four), "is"/"ys" before e or ing (localised, analysing), "tre" at the
// end or before s (centre, fibres), "leuc" at the start, "ae" and "oe"
// anywhere.
func americanize(w, from, to string) string {
	var b strings.Builder
	last := 0
	for i := 0; i+len(from) <= len(w); i++ {
		if w[i:i+len(from)] != from {
			continue
		}
		rest := w[i+len(from):]
		ok := true
		switch from {
		case "our":
			ok = i >= 2
		case "is", "ys":
			ok = i >= 2 && (strings.HasPrefix(rest, "e") || strings.HasPrefix(rest, "ing") || strings.HasPrefix(rest, "ation"))
		case "tre":
			ok = i >= 2 && (rest == "" || rest == "s")
		case "leuc":
			ok = i == 0
		}
		if !ok || i < last {
			continue
		}
		b.WriteString(w[last:i])
		b.WriteString(to)
		last = i + len(from)
	}
	if last == 0 {
		return w
	}
	b.WriteString(w[last:])
	return b.String()
}
