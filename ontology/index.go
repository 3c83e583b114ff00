package ontology

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// Index answers questions about one Source: validate, standardize,
// inspect, search and hierarchy. It is read-only after Build and safe for
// concurrent use. The structures for fuzzy matching are built on first use,
// so validate-only callers do not pay for them.
type Index struct {
	src   *Source
	terms []Term

	byID    map[string]int32
	byAlt   map[string]int32    // alt_id -> primary, when it is not itself a primary id
	byName  map[string][]int32  // exact name -> terms, live ones first
	byFold  map[string][]int32  // folded name -> terms, live ones first
	synFold map[string][]synRef // folded synonym -> live terms carrying it

	parents, partOf      [][]int32 // resolved edges (ids outside the source are dropped here)
	children, partChilds [][]int32

	fuzzyOnce sync.Once
	fz        *fuzzyIndex
}

type synRef struct {
	term int32
	syn  int32 // index in Term.Synonyms
}

// Build indexes src. It fails when two terms share an id. The Index keeps
// src; the caller must not modify it afterwards.
func Build(src *Source) (*Index, error) {
	n := len(src.Terms)
	x := &Index{
		src:     src,
		terms:   src.Terms,
		byID:    make(map[string]int32, n),
		byAlt:   map[string]int32{},
		byName:  make(map[string][]int32, n),
		byFold:  make(map[string][]int32, n),
		synFold: make(map[string][]synRef, n),
	}
	for i := range x.terms {
		t := &x.terms[i]
		if t.ID == "" {
			return nil, fmt.Errorf("ontology: build %s: term %d has no id", src.Ontology, i)
		}
		if _, dup := x.byID[t.ID]; dup {
			return nil, fmt.Errorf("ontology: build %s: duplicate term id %s", src.Ontology, t.ID)
		}
		x.byID[t.ID] = int32(i)
	}
	// Live terms are added before obsolete ones so that the first entry of
	// a name is the one to use ("adult stage": HsapDv:0000258, not the
	// obsolete HsapDv:0000087).
	for pass := 0; pass < 2; pass++ {
		for i := range x.terms {
			t := &x.terms[i]
			if t.Obsolete != (pass == 1) {
				continue
			}
			for _, a := range t.AltIDs {
				if _, primary := x.byID[a]; !primary {
					if _, seen := x.byAlt[a]; !seen {
						x.byAlt[a] = int32(i)
					}
				}
			}
			if t.Name != "" {
				x.byName[t.Name] = append(x.byName[t.Name], int32(i))
				f := fold(t.Name)
				x.byFold[f] = append(x.byFold[f], int32(i))
			}
			if t.Obsolete {
				continue // obsolete synonyms are not matched
			}
			for j := range t.Synonyms {
				f := fold(t.Synonyms[j].Text)
				refs := x.synFold[f]
				if k := len(refs); k > 0 && refs[k-1].term == int32(i) {
					continue // the same text twice on one term
				}
				x.synFold[f] = append(refs, synRef{int32(i), int32(j)})
			}
		}
	}
	x.buildHierarchy()
	return x, nil
}

// Source returns the indexed source.
func (x *Index) Source() *Source { return x.src }

// Len returns the number of terms.
func (x *Index) Len() int { return len(x.terms) }

// Term finds a term by id, alt_id or exact name (a live term before an
// obsolete one of the same name).
func (x *Index) Term(idOrName string) (*Term, bool) {
	if i, ok := x.resolve(idOrName); ok {
		return &x.terms[i], true
	}
	return nil, false
}

func (x *Index) resolve(s string) (int32, bool) {
	if i, ok := x.byID[s]; ok {
		return i, true
	}
	if i, ok := x.byAlt[s]; ok {
		return i, true
	}
	if l := x.byName[s]; len(l) > 0 {
		return l[0], true
	}
	return 0, false
}

// fold lowercases and collapses white space, so that "Monocyte " and
// "monocyte" compare equal. It returns s itself when nothing changes.
func fold(s string) string {
	clean := true
	prevSpace := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf || ('A' <= c && c <= 'Z') || c == '\t' || c == '\n' || c == '\r' || (c == ' ' && prevSpace) {
			clean = false
			break
		}
		prevSpace = c == ' '
	}
	if clean && (len(s) == 0 || s[len(s)-1] != ' ') {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for _, r := range s {
		if unicode.IsSpace(r) {
			space = b.Len() > 0
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

// ---- validate ----

// Validation is the outcome of Validate for one value.
type Validation struct {
	Value    string
	Valid    bool
	ID       string // the term the value names (an obsolete one when Obsolete)
	Name     string
	Obsolete bool // the value names an obsolete term, which does not validate
	// ReplacedBy and Consider come from the obsolete term; they share
	// memory with the Index and must not be modified.
	ReplacedBy []string
	Consider   []string
	index      *Index
}

// Validate reports whether value is exactly (case-sensitive) the name or
// id of a live term, as Bionty does. An alt_id validates as its primary
// term. It does not allocate.
func (x *Index) Validate(value string) Validation {
	v := Validation{Value: value, index: x}
	if l := x.byName[value]; len(l) > 0 {
		return x.validated(v, l[0])
	}
	if i, ok := x.byID[value]; ok {
		return x.validated(v, i)
	}
	if i, ok := x.byAlt[value]; ok {
		return x.validated(v, i)
	}
	return v
}

func (x *Index) validated(v Validation, i int32) Validation {
	t := &x.terms[i]
	v.ID, v.Name = t.ID, t.Name
	if t.Obsolete {
		v.Obsolete, v.ReplacedBy, v.Consider = true, t.ReplacedBy, t.Consider
		return v
	}
	v.Valid = true
	return v
}

// Message explains the validation for a person.
func (v Validation) Message() string {
	switch {
	case v.Valid && v.Value != v.ID && v.Value != v.Name:
		return fmt.Sprintf("%q is a secondary id of %s (%s)", v.Value, v.ID, v.Name)
	case v.Valid:
		return fmt.Sprintf("%q is %s (%s)", v.Value, v.ID, v.Name)
	case v.Obsolete:
		return fmt.Sprintf("%q is obsolete (%s)%s", v.Value, v.ID, v.index.replacementText(v.ReplacedBy, v.Consider))
	default:
		return fmt.Sprintf("%q is not a name or id in %s", v.Value, v.index.src.Ontology)
	}
}

// replacementText names an obsolete term's replacement, or what to consider.
func (x *Index) replacementText(replacedBy, consider []string) string {
	if len(replacedBy) > 0 {
		return "; replaced by " + x.describe(replacedBy)
	}
	if len(consider) > 0 {
		return "; consider " + x.describe(consider)
	}
	return "; no replacement given"
}

func (x *Index) describe(ids []string) string {
	parts := make([]string, len(ids))
	for k, id := range ids {
		parts[k] = id
		if i, ok := x.byID[id]; ok && x.terms[i].Name != "" {
			parts[k] = fmt.Sprintf("%s (%s)", id, x.terms[i].Name)
		}
	}
	return strings.Join(parts, ", ")
}

// ---- standardize ----

// Match says how Standardize matched a value.
type Match uint8

// Ways a value can match, in the order Standardize tries them.
const (
	NoMatch    Match = iota
	ExactName        // the value is a live term's name
	ByID             // the value is a term id
	ByAltID          // the value is a secondary id; mapped to the primary term
	FoldedName       // a name after ignoring case and white space
	BySynonym        // an EXACT synonym
	ByRelated        // a RELATED synonym (only with StandardizeOptions.Related)
	Replaced         // an obsolete term's name or id, mapped to its replacement
	Ambiguous        // several terms fit; see Candidates. Never guessed.
)

var matchNames = [...]string{"no_match", "exact_name", "id", "alt_id", "case_or_whitespace", "synonym", "related_synonym", "replaced", "ambiguous"}

func (m Match) String() string {
	if int(m) < len(matchNames) {
		return matchNames[m]
	}
	return fmt.Sprintf("Match(%d)", m)
}

// StandardizeOptions tune Standardize.
type StandardizeOptions struct {
	Related bool // also map through RELATED synonyms
}

// Candidate is a term a value could stand for.
type Candidate struct {
	ID, Name string
	Via      string // the synonym that matched
}

// Standardization is the outcome of Standardize for one value.
type Standardization struct {
	Value string
	Match Match
	ID    string // the standard term, when matched
	Name  string
	Via   string // what matched when not the name: the synonym, alt_id or obsolete id
	// Candidates lists the terms of an Ambiguous match.
	Candidates []Candidate
	// Obsolete is set when the value names an obsolete term; for a
	// Replaced match it is the old term, otherwise the term could not be
	// mapped (no replacement, or one outside this source).
	Obsolete   string
	ReplacedBy []string
	Consider   []string
	index      *Index
}

// Matched reports whether the value maps to exactly one term.
func (s Standardization) Matched() bool { return s.Match != NoMatch && s.Match != Ambiguous }

// Standard returns the standard name, or the value unchanged when it did
// not map to one term.
func (s Standardization) Standard() string {
	if s.Matched() {
		return s.Name
	}
	return s.Value
}

// Changed reports whether Standard differs from the value.
func (s Standardization) Changed() bool { return s.Standard() != s.Value }

// Reason explains the outcome for a person.
func (s Standardization) Reason() string {
	switch s.Match {
	case ExactName:
		return "standard name"
	case ByID:
		return "id " + s.ID
	case ByAltID:
		return fmt.Sprintf("secondary id of %s", s.ID)
	case FoldedName:
		return "name differs in case or white space"
	case BySynonym:
		return fmt.Sprintf("EXACT synonym %q of %s", s.Via, s.ID)
	case ByRelated:
		return fmt.Sprintf("RELATED synonym %q of %s", s.Via, s.ID)
	case Replaced:
		return fmt.Sprintf("%s is obsolete, replaced by %s", s.Obsolete, s.ID)
	case Ambiguous:
		parts := make([]string, len(s.Candidates))
		for i, c := range s.Candidates {
			parts[i] = fmt.Sprintf("%s (%s)", c.Name, c.ID)
		}
		return "ambiguous: could be " + strings.Join(parts, ", ")
	}
	if s.Obsolete != "" {
		return fmt.Sprintf("%s is obsolete%s", s.Obsolete, s.index.replacementText(s.ReplacedBy, s.Consider))
	}
	return "no term with this name, id or synonym"
}

// Standardize maps value to a standard term name: the exact name, an id or
// alt_id, the name ignoring case and white space, an EXACT synonym, a
// RELATED synonym (with opts.Related), or, for an obsolete term, its
// replacement. A value that fits several terms is reported Ambiguous with
// the candidates.
func (x *Index) Standardize(value string, opts StandardizeOptions) Standardization {
	s := Standardization{Value: value, index: x}
	if l := x.byName[value]; len(l) > 0 && !x.terms[l[0]].Obsolete {
		return x.matched(s, ExactName, l[0], "")
	}
	if i, ok := x.byID[value]; ok {
		if x.terms[i].Obsolete {
			return x.replaced(s, i)
		}
		return x.matched(s, ByID, i, "")
	}
	if i, ok := x.byAlt[value]; ok {
		if x.terms[i].Obsolete {
			return x.replaced(s, i)
		}
		return x.matched(s, ByAltID, i, value)
	}
	f := fold(value)
	if l := x.byFold[f]; len(l) > 0 && !x.terms[l[0]].Obsolete {
		return x.oneOf(s, FoldedName, live(x, l), nil)
	}
	if refs := x.synFold[f]; len(refs) > 0 {
		if r := x.synonymMatch(s, value, refs, Exact, BySynonym); r.Match != NoMatch {
			return r
		}
		if opts.Related {
			if r := x.synonymMatch(s, value, refs, Related, ByRelated); r.Match != NoMatch {
				return r
			}
		}
	}
	if l := x.byName[value]; len(l) > 0 { // only obsolete terms have this name
		return x.replaced(s, l[0])
	}
	if l := x.byFold[f]; len(l) > 0 {
		return x.replaced(s, l[0])
	}
	return s
}

func live(x *Index, l []int32) []int32 {
	for k, i := range l {
		if x.terms[i].Obsolete {
			return l[:k]
		}
	}
	return l
}

// synonymMatch prefers synonyms equal to the value as typed over those
// equal after folding, then requires a single term name.
func (x *Index) synonymMatch(s Standardization, value string, refs []synRef, scope Scope, m Match) Standardization {
	var exactCase, folded []synRef
	for _, r := range refs {
		syn := &x.terms[r.term].Synonyms[r.syn]
		if syn.Scope != scope {
			continue
		}
		folded = append(folded, r)
		if syn.Text == value {
			exactCase = append(exactCase, r)
		}
	}
	pick := exactCase
	if len(pick) == 0 {
		pick = folded
	}
	if len(pick) == 0 {
		return s
	}
	ids := make([]int32, len(pick))
	for k, r := range pick {
		ids[k] = r.term
	}
	return x.oneOf(s, m, ids, pick)
}

// oneOf returns a match when all terms share one name (PTPRC has two
// Ensembl ids) and Ambiguous otherwise.
func (x *Index) oneOf(s Standardization, m Match, ids []int32, refs []synRef) Standardization {
	via := func(k int) string {
		if refs == nil {
			return ""
		}
		return x.terms[refs[k].term].Synonyms[refs[k].syn].Text
	}
	first := x.terms[ids[0]].Name
	same := true
	for _, i := range ids[1:] {
		if x.terms[i].Name != first {
			same = false
			break
		}
	}
	if same {
		return x.matched(s, m, ids[0], via(0))
	}
	s.Match = Ambiguous
	for k, i := range ids {
		s.Candidates = append(s.Candidates, Candidate{ID: x.terms[i].ID, Name: x.terms[i].Name, Via: via(k)})
	}
	slices.SortFunc(s.Candidates, func(a, b Candidate) int { return strings.Compare(a.ID, b.ID) })
	return s
}

func (x *Index) matched(s Standardization, m Match, i int32, via string) Standardization {
	s.Match, s.ID, s.Name, s.Via = m, x.terms[i].ID, x.terms[i].Name, via
	return s
}

// replaced maps an obsolete term to its single replacement when that is a
// live term of this source; otherwise the value stays unmatched and the
// result says what to use instead.
func (x *Index) replaced(s Standardization, i int32) Standardization {
	t := &x.terms[i]
	s.Obsolete, s.ReplacedBy, s.Consider = t.ID, t.ReplacedBy, t.Consider
	if len(t.ReplacedBy) == 1 {
		if j, ok := x.byID[t.ReplacedBy[0]]; ok && !x.terms[j].Obsolete {
			return x.matched(s, Replaced, j, t.ID)
		}
	}
	return s
}

// ---- inspect ----

// Report is what Inspect found for one distinct value.
type Report struct {
	Value       string
	Count       int // how often the value occurs in the input
	Valid       bool
	Standard    Standardization // how it maps when not valid
	Suggestions []Suggestion    // for values that map to no single term
}

// Inspection lists the distinct values of an input in first-seen order.
type Inspection struct {
	Reports []Report
}

// Inspect reports, for each distinct value, whether it validates, else how
// it standardizes, else up to three suggestions.
func (x *Index) Inspect(values []string, opts StandardizeOptions) Inspection {
	pos := map[string]int{}
	var out Inspection
	for _, v := range values {
		if k, ok := pos[v]; ok {
			out.Reports[k].Count++
			continue
		}
		pos[v] = len(out.Reports)
		r := Report{Value: v, Count: 1}
		if val := x.Validate(v); val.Valid {
			r.Valid = true
		} else {
			r.Standard = x.Standardize(v, opts)
			if !r.Standard.Matched() {
				r.Suggestions = x.Suggest(v, 3)
			}
		}
		out.Reports = append(out.Reports, r)
	}
	return out
}

// Validated returns the values that validate.
func (in Inspection) Validated() []string {
	var out []string
	for _, r := range in.Reports {
		if r.Valid {
			out = append(out, r.Value)
		}
	}
	return out
}

// Mappable returns the values that do not validate but standardize to one
// term.
func (in Inspection) Mappable() []Report {
	var out []Report
	for _, r := range in.Reports {
		if !r.Valid && r.Standard.Matched() {
			out = append(out, r)
		}
	}
	return out
}

// Failed returns the values that neither validate nor standardize.
func (in Inspection) Failed() []Report {
	var out []Report
	for _, r := range in.Reports {
		if !r.Valid && !r.Standard.Matched() {
			out = append(out, r)
		}
	}
	return out
}
