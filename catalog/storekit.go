package catalog

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lamina-bio/lamina/ref"
)

// The functions of this file are for stores outside this package
// (catalog/postgres): they share with Bolt the rules a store must follow
// to the letter — value normalisation, index keys, conditions on version
// fields, search words, messages — so every store answers alike.

// Errorf returns an error whose message is written for people and which
// errors.Is matches to kind (ErrNotFound, ErrConflict, …).
func Errorf(kind error, format string, a ...any) error { return errorf(kind, format, a...) }

// Normalize returns value's canonical text under dtype and its index key:
// a tag byte ('t' text, 'n' number, 'd' time) and the value in an encoding
// whose byte order is the value order.
func Normalize(dtype, value string) (text string, key []byte, err error) {
	return normalize(dtype, value)
}

// ParseNumber reads a number as a float feature's values are read: as
// strconv.ParseFloat, with Inf and NaN, but no _ between digits and no
// hexadecimal (Go syntax that pandas reads as text).
func ParseNumber(s string) (float64, error) { return parseFloat(s) }

// AddUnique appends to list each x of add whose id(x) neither list nor an
// earlier x has, in add's order (merging annotations: linear, not a
// slices.Contains per value).
func AddUnique[T any](list, add []T, id func(T) string) []T { return addUnique(list, add, id) }

// Unannotated returns a, the annotations of v, without what remove names,
// with Annotator.Unannotate's checks and messages; dtype gives a feature's
// dtype, or the error of an unknown feature.
func Unannotated(v Version, a, remove Annotations, dtype func(feature string) (string, error)) (Annotations, error) {
	return unannotated(v, a, remove, dtype)
}

// CondKeys are the index keys a condition's value matches: its key under
// dtype (for an int compared by <, <=, > or >= with a number that is no
// integer, that number's), and for a float 0 the key a -0 stored before it was normalized to 0 had.
func CondKeys(dtype, op, value string) ([][]byte, error) { return condKeys(dtype, op, value) }

// CompareKeys applies a Cond operator to two index keys of one dtype.
func CompareKeys(op string, have, want []byte) bool { return compareKeys(op, have, want) }

// Closest returns the candidate nearest to name, or "" when none is near.
func Closest(name string, candidates []string) string { return closest(name, candidates) }

// DidYouMean is `; did you mean "s"?`, or "" for "".
func DidYouMean(s string) string { return didYouMean(s) }

// BuiltinFields are the version fields a Cond may name, sorted.
func BuiltinFields() []string { return sortedKeys(boolKeys(builtins)) }

// IsBuiltin reports whether a Cond field is a version field, not a feature.
func IsBuiltin(field string) bool { _, ok := builtins[field]; return ok }

// checkFilterText refuses text of f that is not valid UTF-8 (ErrInvalid
// and ref.ErrNotUTF8): no key, value, label or term holds such text, and
// PostgreSQL would refuse the query with its own words.
func checkFilterText(f Filter) error {
	bad := func(what, s string) error {
		return Invalidf("%s %q: %w", what, s, ref.ErrNotUTF8)
	}
	if !utf8.ValidString(f.Prefix) {
		return bad("key prefix", f.Prefix)
	}
	for _, c := range f.Where {
		if !utf8.ValidString(c.Field) {
			return bad("--where field", c.Field)
		}
		for _, v := range c.Values {
			if !utf8.ValidString(v) {
				return bad("--where "+c.Field+c.Op, v)
			}
		}
	}
	for _, l := range f.Labels {
		if !utf8.ValidString(l) {
			return bad("label", l)
		}
	}
	for _, g := range f.Terms {
		for _, t := range g {
			if !utf8.ValidString(t) {
				return bad("term", t)
			}
		}
	}
	return nil
}

// VersionMatcher compiles the conditions of f on version fields (and the
// key prefix, and liveness) into a predicate; it returns the conditions on
// features, which the store answers from its index.
func VersionMatcher(f Filter) (keep func(Version) bool, features []Cond, err error) {
	type vcond struct {
		c    Cond
		dt   string
		want []byte
	}
	if err := checkFilterText(f); err != nil {
		return nil, nil, err
	}
	var onVersion []vcond
	for _, c := range f.Where {
		switch c.Op {
		case "=", "!=", "<", "<=", ">", ">=", "^=":
		default:
			return nil, nil, Invalidf("unknown operator %q in --where", c.Op)
		}
		dt, ok := builtins[c.Field]
		if !ok {
			features = append(features, c)
			continue
		}
		if len(c.Values) != 1 {
			return nil, nil, Invalidf("--where %s takes one value", c.Field)
		}
		raw := c.Values[0]
		if c.Field == "size" && c.Op != "^=" {
			n, err := ParseSize(raw)
			if err != nil {
				return nil, nil, err
			}
			raw = fmt.Sprint(n)
		}
		if c.Op == "^=" {
			dt = "str"
		}
		k, err := condKey(dt, c.Op, raw)
		if err != nil && !(dt == "str" && raw == "") {
			return nil, nil, fmt.Errorf("--where %s%s%s: %w", c.Field, c.Op, raw, err)
		}
		if dt == "str" {
			k = append([]byte{'t'}, raw...)
		}
		onVersion = append(onVersion, vcond{c, dt, k})
	}
	keep = func(v Version) bool {
		if v.Trashed || !strings.HasPrefix(v.Key, f.Prefix) {
			return false
		}
		for _, vc := range onVersion {
			have, ok := builtinValue(v, vc.c.Field)
			if !ok {
				if vc.c.Op != "!=" {
					return false
				}
				continue
			}
			var hk []byte
			if vc.dt == "str" {
				hk = append([]byte{'t'}, have...)
			} else {
				_, hk, _ = normalize(vc.dt, have)
			}
			if !compareKeys(vc.c.Op, hk, vc.want) {
				return false
			}
		}
		return true
	}
	return keep, features, nil
}

// FinishFind orders and cuts Find's result as f asks (it arrives in key
// order).
func FinishFind(out []Version, f Filter) []Version { return finish(out, f) }

// SearchWord is one word of a version as the search index keeps it.
type SearchWord struct {
	Weight byte // ×10
	Fields byte // bit i set: matched in SearchFields[i]
}

// SearchFields name the bits of SearchWord.Fields.
var SearchFields = fieldNames

// SearchWords returns the words Search finds v by, given its annotations.
func SearchWords(v Version, a Annotations) map[string]SearchWord {
	out := map[string]SearchWord{}
	for w, e := range docWords(v, a) {
		out[w] = SearchWord{Weight: e[0], Fields: e[1]}
	}
	return out
}

// PickByPrefix decides what a uid prefix names, given the versions that
// match it in uid order (at most a few more than 10 are needed) and whether
// they all belong to one artifact: nothing, one version, the artifact's
// latest live version (a stem or its prefix, as LaminDB resolves a
// 16-character uid), or an *AmbiguousError listing up to 10 candidates.
func PickByPrefix(prefix string, found []Version, oneStem bool) (Version, error) {
	switch {
	case len(found) == 0:
		return Version{}, errorf(ErrNotFound, "no version has uid %s", prefix)
	case len(found) == 1:
		return found[0], nil
	case oneStem && len(prefix) <= ref.StemLen:
		for i := len(found) - 1; i >= 0; i-- {
			if !found[i].Trashed {
				return found[i], nil
			}
		}
		return found[len(found)-1], nil
	}
	if len(found) > 10 {
		found = found[:10]
	}
	return Version{}, &AmbiguousError{Prefix: prefix, Candidates: found}
}

// MarkTrashed sets the trash state of an artifact's versions at now and
// returns the versions it changed (to write back) and, on a restore, the
// highest version number restored (the artifact's new latest).
func MarkTrashed(vs []Version, trashed bool, now time.Time) (changed []Version, latest int) {
	for _, v := range vs {
		if v.Trashed == trashed {
			continue
		}
		v.Trashed = trashed
		v.TrashedAt = nil
		if trashed {
			v.TrashedAt = &now
		}
		changed = append(changed, v)
		if !trashed {
			latest = max(latest, v.Version)
		}
	}
	return changed, latest
}

// TrashedWith reports whether v is a trashed version trashed in the same
// transaction as the trashed version of: what RestoreTrashedWith brings
// back. Every version one transaction trashes has its one time. Trashed
// versions without a time (an edited or foreign export that
// import-catalog took) are one entry of their own: before, they were
// with none, not even themselves, and a restore by uid of one fell back
// to every trashed version of its key.
func TrashedWith(v, of Version) bool {
	if !v.Trashed {
		return false
	}
	if v.TrashedAt == nil || of.TrashedAt == nil {
		return v.TrashedAt == nil && of.TrashedAt == nil
	}
	return v.TrashedAt.Equal(*of.TrashedAt)
}
