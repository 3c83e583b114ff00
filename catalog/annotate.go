package catalog

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math"
	"math/big"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/lamina-bio/lamina/ref"
)

// Column describes one column of a table version (a DataFrame, the obs or
// var of an AnnData, a channel of an FCS file), as read when it was saved.
type Column struct {
	Name  string `json:"name"`
	Slot  string `json:"slot,omitempty"`  // "obs" or "var" for AnnData
	Dtype string `json:"dtype"`           // int, float, bool, str, cat
	Label string `json:"label,omitempty"` // an FCS channel's $PnS
}

// MaxColumns is how many columns a version records; wider tables record
// the first MaxColumns (Shape still says how many there are).
const MaxColumns = 1000

// Feature is a typed metadata field that versions carry values of.
type Feature struct {
	Name        string    `json:"name"`
	Dtype       string    `json:"dtype"` // see ParseDtype
	Description string    `json:"description,omitempty"`
	CreatedBy   string    `json:"created_by,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
}

// Entity is the X of a "cat[X]" dtype ("ULabel", "celltype", …), or "".
func (f Feature) Entity() string {
	if strings.HasPrefix(f.Dtype, "cat[") && strings.HasSuffix(f.Dtype, "]") {
		return f.Dtype[4 : len(f.Dtype)-1]
	}
	return ""
}

// Label is a free label (LaminDB's ULabel), optionally under a parent.
type Label struct {
	Name        string    `json:"name"`
	Parent      string    `json:"parent,omitempty"`
	Description string    `json:"description,omitempty"`
	CreatedBy   string    `json:"created_by,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
}

// SchemaFeature is one feature of a schema.
type SchemaFeature struct {
	Feature  string `json:"feature"`
	Optional bool   `json:"optional,omitempty"`
}

// Schema is a named set of features that a table's columns must satisfy.
// By default (LaminDB's) the listed features are required and other
// columns are allowed.
type Schema struct {
	Name        string          `json:"name"`
	Features    []SchemaFeature `json:"features"`
	NoExtra     bool            `json:"no_extra,omitempty"` // columns not listed are an error
	Description string          `json:"description,omitempty"`
	CreatedBy   string          `json:"created_by,omitempty"`
	CreatedAt   time.Time       `json:"created_at"`
}

// Term is an ontology term a version is annotated with.
type Term struct {
	Entity string `json:"entity"` // celltype, tissue, …
	ID     string `json:"id"`
	Name   string `json:"name"`
}

// Annotations are what a version is annotated with. Values are kept in
// the canonical text of their feature's dtype.
type Annotations struct {
	UID      string              `json:"uid,omitempty"`
	Features map[string][]string `json:"features,omitempty"`
	Labels   []string            `json:"labels,omitempty"`
	Terms    []Term              `json:"terms,omitempty"`
	Schema   string              `json:"schema,omitempty"`
	// Resolved, read by Unannotate only, is what the caller's ontology
	// says values of cat[ENTITY] features name: entity → value → the
	// ids of its terms (an alt id, a synonym, an old name → the primary
	// id). A value it lacks, or a catalog older than the field, keeps
	// every term of its entity (see unannotated); never stored.
	Resolved map[string]map[string][]string `json:"resolved,omitempty"`
}

// IsZero reports whether nothing is annotated.
func (a Annotations) IsZero() bool {
	return len(a.Features) == 0 && len(a.Labels) == 0 && len(a.Terms) == 0 && a.Schema == ""
}

// Cond is one condition of a Filter: a feature name or one of the version
// fields key, size, created_at, mtime, version, otype, suffix, kind,
// n_observations, created_by, description; Op is =, !=, <, <=, >, >= or ^=
// (key prefix). With several Values, = means any of them.
type Cond struct {
	Field  string   `json:"field"`
	Op     string   `json:"op"`
	Values []string `json:"values"`
}

// Filter selects versions.
type Filter struct {
	Prefix string `json:"prefix,omitempty"` // key prefix
	Where  []Cond `json:"where,omitempty"`  // all must hold
	// Labels: each must be on the version, itself or one of its
	// descendant labels unless ExactLabels.
	Labels      []string `json:"labels,omitempty"`
	ExactLabels bool     `json:"exact_labels,omitempty"`
	// Terms: in each group, one of the term ids must be on the version
	// (callers expand an ontology term to its descendants).
	Terms       [][]string `json:"terms,omitempty"`
	AllVersions bool       `json:"all_versions,omitempty"` // not only the latest version of each key
	Order       string     `json:"order,omitempty"`        // "key" (default), "created_at", "-created_at"
	Limit       int        `json:"limit,omitempty"`
}

// Hit is one full-text search result.
type Hit struct {
	Version Version  `json:"version"`
	Score   float64  `json:"score"`
	Fields  []string `json:"fields"` // where the words matched: key, description, label, term, feature
}

// NewCollection is what a caller records; the store assigns the version.
type NewCollection struct {
	Name        string
	Description string
	Members     []string // version uids, in order
	CreatedBy   string
	CreatedAt   time.Time
}

// Collection is one version of a named, ordered set of artifact versions.
type Collection struct {
	Name        string    `json:"name"`
	Version     int       `json:"version"`
	Description string    `json:"description,omitempty"`
	Members     []string  `json:"members"` // version uids, in order
	CreatedBy   string    `json:"created_by,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	Unchanged   bool      `json:"unchanged,omitempty"` // SaveCollection: same members as the latest; nothing recorded
	// Versions holds the members' records where Collection returns them.
	Versions []Version `json:"versions,omitempty"`
}

// Annotator is the part of a catalog that keeps features, labels, schemas,
// annotations and collections and answers queries over them.
type Annotator interface {
	// CreateFeature records a feature. ErrConflict if one of that name
	// exists with another dtype; with the same dtype the existing record
	// is returned, its description replaced by f's when f has one.
	CreateFeature(ctx context.Context, f Feature) (Feature, error)
	Features(ctx context.Context) ([]Feature, error)
	// CreateLabel records a label; its parent must exist (ErrNotFound). An
	// existing label is returned unchanged when l.Parent is "" or its
	// parent, else it moves under l.Parent (ErrInvalid for a cycle).
	CreateLabel(ctx context.Context, l Label) (Label, error)
	Labels(ctx context.Context) ([]Label, error)
	// CreateSchema records or replaces a schema; its features must exist.
	CreateSchema(ctx context.Context, s Schema) (Schema, error)
	Schemas(ctx context.Context) ([]Schema, error)
	// DeleteFeature removes the feature called name and returns it,
	// checking in the one transaction that removes it that nothing uses
	// it: no version (live or trashed) has a value of it and no schema
	// lists it, else ErrConflict says what does (Uses.Err) and nothing
	// is removed. ErrNotFound, with a suggestion, if there is none.
	DeleteFeature(ctx context.Context, name string) (Feature, error)
	// DeleteLabel removes the label called name as DeleteFeature does a
	// feature: ErrConflict if a version has it (itself, or as a value of
	// a cat[ULabel] feature) or another label sits under it.
	DeleteLabel(ctx context.Context, name string) (Label, error)
	// DeleteSchema removes the schema called name as DeleteFeature does
	// a feature: ErrConflict if a version was curated with it
	// (Annotations.Schema).
	DeleteSchema(ctx context.Context, name string) (Schema, error)
	// Annotate adds to the annotations of the version with this full uid
	// and returns them all. Feature values are checked against the
	// feature's dtype (a cat[ULabel] value must be a label); unknown
	// features and labels are ErrNotFound with a suggestion.
	Annotate(ctx context.Context, uid string, add Annotations) (Annotations, error)
	// Annotations returns them. Here, and in what Annotate and
	// Unannotate return, a float feature's -0 an older build stored is 0
	// (OldNegZeroAsZero).
	Annotations(ctx context.Context, uid string) (Annotations, error)
	// Unannotate removes from the annotations of the version with this
	// full uid and returns what is left: each value of remove.Features
	// (read as its feature's dtype reads it; a feature listed without
	// values loses all of its values), each label of remove.Labels, each
	// term of remove.Terms (by id) and remove.Schema. A value of a
	// cat[ENTITY] feature takes with it the terms of ENTITY it names (by
	// name or id: those Annotate was given beside it; and the ids
	// remove.Resolved gives it), unless a value left on the version names
	// them too, or a value of ENTITY left names no term of the version by
	// name or id and remove.Resolved lacks it (an alt id curate kept, a
	// synonym: it may name any). They leave the indexes too, so Find and Search no
	// longer find the version by them. Everything named must be on the
	// version, else ErrNotFound says what the version has and nothing is
	// removed; ErrConflict, nothing removed, for a term of remove.Terms
	// that a value left names or, naming no term so, may name (a Find by
	// that value requires the term); ErrInvalid when remove names nothing.
	Unannotate(ctx context.Context, uid string, remove Annotations) (Annotations, error)
	// Find returns the versions that satisfy f, live ones only.
	Find(ctx context.Context, f Filter) ([]Version, error)
	// Search ranks the latest live versions by the words of query found in
	// their keys, descriptions, labels, feature values and term names.
	Search(ctx context.Context, query string, limit int) ([]Hit, error)
	// SaveCollection records a new version of the named collection (version
	// 1 for a new name; for a name deleted before, the next after the
	// highest it had: DeletedCollection) unless its members equal the
	// latest's. Every member must be a version uid (ErrNotFound).
	SaveCollection(ctx context.Context, c NewCollection) (Collection, error)
	// Collections lists the latest version of every collection by name.
	Collections(ctx context.Context) ([]Collection, error)
	// Collection returns version n of the named collection (the latest for
	// n == 0) with its members' records.
	Collection(ctx context.Context, name string, n int) (Collection, error)
	// CollectionVersions lists every version of the named collection,
	// oldest first, without its members' records (Versions is nil).
	// ErrNotFound, with a suggestion, when no collection has that name.
	CollectionVersions(ctx context.Context, name string) ([]Collection, error)
	// DeleteCollection removes every version of the named collection and
	// returns them, oldest first, without their members' records
	// (Versions is nil). A collection is only a list: nothing keeps it,
	// and its members stay as they are. Its highest number is kept
	// (DeletedCollection): the name made again continues after it.
	// ErrNotFound, with a suggestion, when no collection has that name.
	DeleteCollection(ctx context.Context, name string) ([]Collection, error)
}

// ---- dtypes and values ----

// isName reports whether s is a feature name: a letter or _, then up to
// 127 letters, digits, _ . or -. (A regexp with {0,127} cost every lamina
// process ~0.8 ms and 1,700 allocations to compile at start.)
func isName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		letter := c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c == '_'
		if !letter && (i == 0 || !(c >= '0' && c <= '9' || c == '.' || c == '-')) {
			return false
		}
	}
	return true
}

// CheckName checks the name of a feature, label, schema or collection.
func CheckName(kind, name string) error {
	if kind == "label" || kind == "collection" || kind == "schema" {
		if name == "" || len(name) > 255 || strings.ContainsAny(name, "\x00\n") || strings.TrimSpace(name) != name {
			return Invalidf("%s name %q: use 1 to 255 characters, no newline, no leading or trailing space", kind, name)
		}
		if !utf8.ValidString(name) {
			return Invalidf("%s name %q: %w", kind, name, ref.ErrNotUTF8)
		}
		// NAME@vN names a version of the collection NAME (collection
		// show), as KEY@vN does of a key: no name may look like one.
		if kind == "collection" && reVersionSuffix.MatchString(name) {
			return Invalidf("collection name %q: a name may not end in @v<digits> (NAME@vN names version N of the collection NAME)", name)
		}
		return nil
	}
	if !utf8.ValidString(name) { // said as for the other names (exit 2 in the CLI)
		return Invalidf("feature name %q: %w", name, ref.ErrNotUTF8)
	}
	if !isName(name) {
		return Invalidf("feature name %q: use letters, digits, _ . - (starting with a letter or _), at most 128", name)
	}
	return nil
}

// CheckLookup refuses the name of a feature, label, schema or collection
// to look up that is not valid UTF-8 (ErrInvalid and ref.ErrNotUTF8):
// CheckName made every stored one UTF-8, and both stores answer alike
// (PostgreSQL would refuse the query with its own words).
func CheckLookup(kind, name string) error {
	if !utf8.ValidString(name) {
		return Invalidf("%s name %q: %w", kind, name, ref.ErrNotUTF8)
	}
	return nil
}

// CheckAnnotationsText refuses annotations that hold text that is not
// valid UTF-8 (ErrInvalid and ref.ErrNotUTF8), as CheckLookup does a name.
func CheckAnnotationsText(a Annotations) error {
	bad := func(what, s string) error {
		return Invalidf("%s %q: %w", what, s, ref.ErrNotUTF8)
	}
	if !utf8.ValidString(a.Schema) {
		return bad("schema name", a.Schema)
	}
	for _, l := range a.Labels {
		if !utf8.ValidString(l) {
			return bad("label name", l)
		}
	}
	for f, vs := range a.Features {
		if !utf8.ValidString(f) {
			return bad("feature name", f)
		}
		for _, v := range vs {
			if !utf8.ValidString(v) {
				return bad("value of feature "+f, v)
			}
		}
	}
	for _, t := range a.Terms {
		for _, s := range []string{t.Entity, t.ID, t.Name} {
			if !utf8.ValidString(s) {
				return bad("term", s)
			}
		}
	}
	return nil
}

// CheckFilterText is checkFilterText, for the catalogrpc client: JSON
// would carry such text as U+FFFD.
func CheckFilterText(f Filter) error { return checkFilterText(f) }

// ErrInvalid is returned for a malformed name, dtype, value or condition.
var ErrInvalid error = sentinel{"invalid", fs.ErrInvalid}

// Invalidf formats an error that errors.Is matches to ErrInvalid (and to
// what format wraps with %w) and whose message is the text alone: the word
// "invalid" was read by people as part of it ("lamina: invalid: feature
// name …", "batch (int): invalid: "abc" is not a number").
func Invalidf(format string, a ...any) error {
	return invalid{fmt.Errorf(format, a...)}
}

type invalid struct{ err error }

func (e invalid) Error() string   { return e.err.Error() }
func (e invalid) Unwrap() []error { return []error{ErrInvalid, e.err} }

var reVersionSuffix = regexp.MustCompile(`@v[0-9]+$`)

var reEntity = regexp.MustCompile(`^cat\[(?:(?:bionty|bt)\.)?([A-Za-z][A-Za-z0-9_]*)\]$`)

// ParseDtype checks a feature dtype and returns its canonical spelling:
// int, float, str, bool, date, datetime, or cat[ENTITY] (cat[ULabel] for
// labels, cat[celltype] and the other ontology entities). Plain "cat"
// means cat[ULabel]; LaminDB's module prefixes are dropped
// (cat[bionty.CellType] and cat[bt.CellType] are cat[CellType]). Which
// entities exist is the caller's to check: the catalog knows no ontology.
func ParseDtype(s string) (string, error) {
	switch s {
	case "int", "float", "str", "bool", "date", "datetime":
		return s, nil
	case "cat":
		return "cat[ULabel]", nil
	}
	if m := reEntity.FindStringSubmatch(s); m != nil {
		if strings.EqualFold(m[1], "ULabel") {
			return "cat[ULabel]", nil
		}
		return "cat[" + m[1] + "]", nil
	}
	return "", Invalidf("dtype %q: use int, float, str, bool, date, datetime or cat[ENTITY] (cat[ULabel], cat[celltype], cat[tissue], …)", s)
}

// normalize returns value's canonical text under dtype and its index key
// part (a tag byte, then the sortable value).
func normalize(dtype, value string) (string, []byte, error) {
	bad := func(want string) error {
		return Invalidf("%q is not %s", value, want)
	}
	switch dtype {
	case "int":
		n, err := parseInt(value)
		if err != nil {
			return "", nil, err
		}
		return strconv.FormatInt(n, 10), intKey(n), nil
	case "float":
		f, err := parseFloat(strings.TrimSpace(value))
		if err != nil {
			if errors.Is(err, strconv.ErrRange) {
				return "", nil, Invalidf("%q is out of the range of a float", value)
			}
			return "", nil, bad("a number")
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return "", nil, bad("a finite number (inf and nan cannot be stored)")
		}
		if f == 0 {
			f = 0 // -0 is 0: its text and key were -0's, which score=0 missed
		}
		return strconv.FormatFloat(f, 'g', -1, 64), numKey(f), nil
	case "bool":
		b, err := strconv.ParseBool(strings.TrimSpace(value))
		if err != nil {
			return "", nil, bad("true or false")
		}
		s := strconv.FormatBool(b)
		return s, append([]byte{'t'}, s...), nil
	case "date", "datetime":
		t, err := ParseTime(value)
		if err != nil {
			return "", nil, err
		}
		s := t.UTC().Format(time.RFC3339Nano)
		if dtype == "date" {
			s = t.Format("2006-01-02")
		}
		return s, timeKey(t), nil
	}
	if value == "" || strings.ContainsRune(value, 0) {
		return "", nil, bad("a value (empty, or holds NUL)")
	}
	return value, append([]byte{'t'}, value...), nil
}

// parseFloat reads a number as strconv.ParseFloat does, but without the
// Go literal syntax pandas reads as text: _ between digits (1_000 was the
// int 1000) and hexadecimal (0x1p4 was 16). Inf and NaN are read.
func parseFloat(s string) (float64, error) {
	if goSyntax(s) {
		return 0, &strconv.NumError{Func: "ParseFloat", Num: s, Err: strconv.ErrSyntax}
	}
	return strconv.ParseFloat(s, 64)
}

// goSyntax reports whether s has an underscore or a hexadecimal prefix.
func goSyntax(s string) bool {
	if strings.ContainsRune(s, '_') {
		return true
	}
	s = strings.TrimLeft(s, "+-")
	return len(s) > 1 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')
}

// parseInt reads an int64: decimal digits, or a number written otherwise
// ("3.0", "1e3") when it is exactly an integer in range. Rounding through
// a float64 would store 2^63 for 99999999999999999999 and 9007199254740992
// for 9007199254740993.
func parseInt(value string) (int64, error) {
	s := strings.TrimSpace(value)
	n, err := strconv.ParseInt(s, 10, 64)
	if err == nil {
		return n, nil
	}
	outOfRange := Invalidf("%q is out of the range of an int (%d to %d)", value, int64(math.MinInt64), int64(math.MaxInt64))
	if errors.Is(err, strconv.ErrRange) {
		return 0, outOfRange
	}
	f, ferr := parseFloat(s)
	switch {
	case ferr != nil && !errors.Is(ferr, strconv.ErrRange):
		return 0, Invalidf("%q is not a number", value)
	case math.IsNaN(f) || math.IsInf(f, 0) && ferr == nil:
		return 0, Invalidf("%q is not an integer (inf and nan cannot be stored)", value)
	case math.IsInf(f, 0) || math.Abs(f) > 1e19:
		return 0, outOfRange
	case f == 0:
		mantissa, _, _ := strings.Cut(strings.ToLower(s), "e")
		if strings.ContainsAny(mantissa, "123456789") { // 1e-400 underflows to 0
			return 0, Invalidf("%q is not an integer", value)
		}
		return 0, nil
	case math.Abs(f) < 0.5:
		return 0, Invalidf("%q is not an integer", value)
	}
	// A float form: exact (big.Rat) so that "4503599627370496.5", which
	// a float64 rounds to an integer, is not one. 0.5 ≤ |f| ≤ 1e19 bounds
	// the work SetString does for an exponent.
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return 0, Invalidf("%q is not a number", value)
	}
	if !r.IsInt() {
		return 0, Invalidf("%q is not an integer", value)
	}
	if !r.Num().IsInt64() {
		return 0, outOfRange
	}
	return r.Num().Int64(), nil
}

// ParseTime reads a date (2006-01-02, UTC) or an RFC 3339 time.
func ParseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range []string{"2006-01-02", time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02T15:04"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, Invalidf("%q is not a date (2006-01-02) or time (2006-01-02T15:04:05Z)", s)
}

// condKey is the index key a condition compares with: the value's under
// dtype, except that an int compared by <, <=, > or >= with a number that
// is no integer (batch>2.5) takes that number's key: int keys and float
// keys order as the numbers they hold.
func condKey(dtype, op, value string) ([]byte, error) {
	_, k, err := normalize(dtype, value)
	if err == nil || dtype != "int" {
		return k, err
	}
	switch op {
	case "<", "<=", ">", ">=":
	default:
		return nil, err
	}
	if _, fk, ferr := normalize("float", value); ferr == nil {
		if n, ok := intBound(op, value); ok {
			return intKey(n), nil
		}
		return fk, nil
	}
	return nil, err
}

// negZeroKey is the key a float -0 had before normalize made it 0: just
// below 0's, with no other key between. Catalogs may still hold it.
var negZeroKey = numKey(math.Copysign(0, -1))

// OldNegZeroAsZero returns a with each -0 of a float feature, which
// catalogs stored before normalize made -0 0 (negZeroKey), as the 0 it
// is, once beside a 0 of the feature: what a store's Annotations,
// Annotate and Unannotate return, so `show --format json`, the `.meta`
// sidecar and annotate print 0, as the text show does. The record keeps
// -0 (conditions on 0 take it: condKeys). A str feature's "-0" is text
// and stays; dtype gives a feature's dtype (ErrNotFound: not a float). a
// is not changed: the features map is copied when a -0 is found.
func OldNegZeroAsZero(a Annotations, dtype func(feature string) (string, error)) (Annotations, error) {
	copied := false
	for name, vals := range a.Features {
		if !slices.Contains(vals, "-0") {
			continue
		}
		dt, err := dtype(name)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return Annotations{}, err
		}
		if dt != "float" {
			continue
		}
		if !copied {
			a.Features, copied = maps.Clone(a.Features), true
		}
		out := make([]string, 0, len(vals))
		for _, v := range vals {
			if v != "-0" {
				out = append(out, v)
			}
		}
		if !slices.Contains(out, "0") {
			out = append(out, "0")
			sort.Strings(out) // the order the record's values have
		}
		a.Features[name] = out
	}
	return a, nil
}

// condKeys are the index keys a condition's value matches (condKey's),
// with a stored -0 (negZeroKey) taken as the 0 it is: = and != 0 match it
// too, < 0 excludes it and >= 0 includes it (the bound moves to it).
func condKeys(dtype, op, value string) ([][]byte, error) {
	k, err := condKey(dtype, op, value)
	if err != nil || dtype != "float" || !bytes.Equal(k, numKey(0)) {
		return [][]byte{k}, err
	}
	switch op {
	case "=", "!=":
		return [][]byte{k, negZeroKey}, nil
	case "<", ">=":
		return [][]byte{negZeroKey}, nil
	}
	return [][]byte{k}, nil
}

// intBound is the int that bounds an int as the number value, which is no
// integer, does under op: n > x as n > ⌊x⌋, n >= x as n >= ⌈x⌉, n < x as
// n < ⌈x⌉, n <= x as n <= ⌊x⌋. The float64 nearest x rounded it beyond
// ±2^53 (id>=2^53+0.5 found 2^53). ok is false when the bound is beyond
// an int64, where x's float key is on the same side of every int.
func intBound(op, value string) (int64, bool) {
	s := strings.TrimSpace(value)
	if f, err := parseFloat(s); err != nil || math.Abs(f) > 1e19 {
		return 0, false // bounds SetString's work for an exponent
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok || r.IsInt() {
		return 0, false
	}
	n := new(big.Int).Div(r.Num(), r.Denom()) // Euclidean: ⌊x⌋, the denominator is positive
	if op == ">=" || op == "<" {
		n.Add(n, big.NewInt(1))
	}
	if !n.IsInt64() {
		return 0, false
	}
	return n.Int64(), true
}

// intKey is the index key of an int: the key of the float64 at or below
// it (numKey), and when that float64 is not the int (beyond ±2^53) the
// int's distance above it, 1 to 1023 in two bytes with the top bit set.
// Keys then order as the numbers do, ints and floats alike: the int sorts
// after the float64 below it and before the next one, and among the ints
// between the two by the distance. The top bit keeps the first byte after
// the float's 8 from being 0, the separator in bbolt's index keys: the key
// of 2^53 followed by 0 is no prefix of the key of 2^53+1. A float64 key
// for every int had 2^53 and 2^53+1 share a key, so batch=2^53+1 found both.
func intKey(n int64) []byte {
	f := float64(n) // nearest; 2^63 for the ints next to MaxInt64
	if f >= 0x1p63 || int64(f) > n {
		f = math.Nextafter(f, math.Inf(-1))
	}
	d := n - int64(f)
	if d == 0 {
		return numKey(f)
	}
	return binary.BigEndian.AppendUint16(numKey(f), 0x8000|uint16(d))
}

// FeatureKey is an index entry of a feature value: the feature and the
// value's key.
type FeatureKey struct {
	Feature string
	Key     []byte
}

// RekeyInts lists the index entries of a's int features (isInt) that
// intKey changed: before it (bbolt schema 4, PostgreSQL schema 6) an int's
// key was its nearest float64's, numKey(float64(n)). drop are the old keys
// no value of a has now, add the new keys no value had. Two ints sharing
// an old key (2^53 and 2^53+1) had one entry, which stays for the one
// whose key did not change.
func RekeyInts(a Annotations, isInt func(feature string) bool) (drop, add []FeatureKey) {
	for _, name := range slices.Sorted(maps.Keys(a.Features)) {
		if !isInt(name) {
			continue
		}
		olds, news := map[string]bool{}, map[string]bool{}
		for _, v := range a.Features[name] {
			n, err := parseInt(v)
			if err != nil {
				continue // not indexed either
			}
			olds[string(numKey(float64(n)))] = true
			news[string(intKey(n))] = true
		}
		for _, k := range sortedKeys(olds) {
			if !news[k] {
				drop = append(drop, FeatureKey{name, []byte(k)})
			}
		}
		for _, k := range sortedKeys(news) {
			if !olds[k] {
				add = append(add, FeatureKey{name, []byte(k)})
			}
		}
	}
	return drop, add
}

func numKey(f float64) []byte {
	bits := math.Float64bits(f)
	if bits>>63 == 0 {
		bits ^= 1 << 63
	} else {
		bits = ^bits
	}
	b := make([]byte, 9)
	b[0] = 'n'
	binary.BigEndian.PutUint64(b[1:], bits)
	return b
}

func timeKey(t time.Time) []byte {
	b := make([]byte, 9)
	b[0] = 'd'
	binary.BigEndian.PutUint64(b[1:], uint64(t.UnixNano())^(1<<63))
	return b
}

// ParseSize reads a byte count with an optional unit: 10, 10B, 1.5KB, 2MiB,
// 3GB (KB/MB/GB/TB are powers of 1000, KiB/MiB/GiB/TiB of 1024).
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return unicode.IsLetter(r) })
	num, unit := t, ""
	if i >= 0 {
		num, unit = strings.TrimSpace(t[:i]), strings.ToUpper(t[i:])
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 {
		return 0, Invalidf("size %q: use a number of bytes with an optional unit (KB, MB, GB, KiB, MiB, GiB)", s)
	}
	mult := map[string]float64{"": 1, "B": 1, "K": 1e3, "KB": 1e3, "M": 1e6, "MB": 1e6, "G": 1e9, "GB": 1e9, "T": 1e12, "TB": 1e12,
		"KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30, "TIB": 1 << 40}[unit]
	if mult == 0 {
		return 0, Invalidf("size %q: unknown unit %q", s, unit)
	}
	return int64(f * mult), nil
}

// ParseCond reads "name=value", "name!=value", "name<value", "name<=value",
// "name>value", "name>=value" or "key^=prefix". A value wrapped in matching
// quotes is the text inside (Unquote).
func ParseCond(s string) (Cond, error) {
	for _, op := range []string{"!=", "<=", ">=", "^=", "=", "<", ">"} {
		if i := strings.Index(s, op); i > 0 {
			// The earliest operator wins: "a=b>c" is a = "b>c".
			j := strings.IndexAny(s, "!<>=^")
			if j < i {
				continue
			}
			name := strings.TrimSpace(s[:i])
			return Cond{Field: name, Op: op, Values: []string{Unquote(strings.TrimSpace(s[i+len(op):]))}}, nil
		}
	}
	return Cond{}, Invalidf("--where %q: use NAME=VALUE, NAME!=VALUE, NAME<VALUE, NAME<=VALUE, NAME>VALUE, NAME>=VALUE or key^=PREFIX", s)
}

// Unquote returns s without one pair of matching quotes ('…' or "…")
// around it: `--where 'cell_type="T cell"'` quotes the value as a shell
// would, and no name or term holds such quotes.
func Unquote(s string) string {
	if len(s) >= 2 && (s[0] == '"' || s[0] == '\'') && s[len(s)-1] == s[0] {
		return s[1 : len(s)-1]
	}
	return s
}

// builtins are the version fields a Cond may name, with their dtype.
var builtins = map[string]string{
	"key": "str", "size": "int", "created_at": "datetime", "mtime": "datetime", "version": "int",
	"otype": "str", "suffix": "str", "kind": "str", "n_observations": "int", "created_by": "str",
	"description": "str", "uid": "str",
}

// builtinValue is v's value of a version field, and whether v has it. A
// text field v lacks (no suffix, otype or description) is the empty
// string, as show prints it: "suffix=" finds the keys without a suffix and
// "suffix!=" those with one. Only n_observations can be missing: a
// version of no table (HasNObservations).
func builtinValue(v Version, field string) (string, bool) {
	switch field {
	case "key":
		return v.Key, true
	case "size":
		return strconv.FormatInt(v.Size, 10), true
	case "created_at":
		return v.CreatedAt.Format(time.RFC3339Nano), true
	case "mtime":
		return v.Mtime.Format(time.RFC3339Nano), true
	case "version":
		return strconv.Itoa(v.Version), true
	case "otype":
		return v.OType, true
	case "suffix":
		return v.Suffix, true
	case "kind":
		return v.Kind, true
	case "n_observations":
		return strconv.FormatInt(v.NObservations, 10), v.HasNObservations()
	case "created_by":
		return v.CreatedBy, true
	case "description":
		return v.Description, true
	case "uid":
		return v.UID, true
	}
	return "", false
}

// compareKeys applies op to two index keys of the same dtype.
func compareKeys(op string, have, want []byte) bool {
	c := bytes.Compare(have, want) // no string conversions: called per index entry
	switch op {
	case "=":
		return c == 0
	case "!=":
		return c != 0
	case "<":
		return c < 0
	case "<=":
		return c <= 0
	case ">":
		return c > 0
	case ">=":
		return c >= 0
	case "^=":
		return bytes.HasPrefix(have, want)
	}
	return false
}

// closest returns the candidate nearest to name by edit distance, or "".
func closest(name string, candidates []string) string {
	best, bestD := "", 1<<30
	ln := strings.ToLower(name)
	for _, c := range candidates {
		d := editDistance(ln, strings.ToLower(c))
		if d < bestD || (d == bestD && c < best) {
			best, bestD = c, d
		}
	}
	if bestD > max(2, len(name)/3) {
		return ""
	}
	return best
}

func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// Words splits text into the lowercase words full-text search indexes:
// runs of letters and digits, two characters or more.
func Words(text string) []string {
	var out []string
	for _, w := range allWords(text) { // search.go
		if len([]rune(w)) >= 2 {
			out = append(out, w)
		}
	}
	return out
}

func didYouMean(s string) string {
	if s == "" {
		return ""
	}
	return fmt.Sprintf("; did you mean %q?", s)
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// addUnique appends to list each x of add whose id neither list nor an
// earlier x has, in add's order. A set: slices.Contains per value made
// annotating a 50,000-gene column quadratic (40 s).
func addUnique[T any](list, add []T, id func(T) string) []T {
	seen := make(map[string]bool, len(list)+len(add))
	for _, x := range list {
		seen[id(x)] = true
	}
	for _, x := range add {
		if k := id(x); !seen[k] {
			seen[k] = true
			list = append(list, x)
		}
	}
	return list
}

// unannotated returns a, the annotations of v, without what remove names
// (see Annotator.Unannotate); dtype gives a feature's dtype, or the
// error of an unknown feature. Values are compared as stored: remove's
// are read as their dtype first (batch=1.0 removes 1), and taken as
// written when that does not match (a value stored before its reading
// changed). The lists keep their order. Which terms go with a value is
// decided here, from a as the store's transaction reads it: a caller
// working it out beforehand would miss a value annotated meanwhile that
// names the term too.
func unannotated(v Version, a, remove Annotations, dtype func(feature string) (string, error)) (Annotations, error) {
	if remove.IsZero() {
		return Annotations{}, Invalidf("nothing to remove: name a feature, a label, a term or the schema")
	}
	next := Annotations{UID: a.UID, Schema: a.Schema, Features: maps.Clone(a.Features), Labels: a.Labels, Terms: a.Terms}
	if next.Features == nil {
		next.Features = map[string][]string{}
	}
	gone := map[string]map[string]string{} // entity → value removed that names its terms → feature
	for _, name := range slices.Sorted(maps.Keys(remove.Features)) {
		have := a.Features[name]
		if len(have) == 0 {
			if _, err := dtype(name); err != nil {
				return Annotations{}, err // no such feature, with a suggestion
			}
			return Annotations{}, errorf(ErrNotFound, "%s has no value of feature %s (%s)", v.Ref(), name, hasFeatures(a))
		}
		has := make(map[string]bool, len(have))
		for _, x := range have {
			has[x] = true
		}
		dt, _ := dtype(name)
		drop := map[string]bool{}
		for _, raw := range remove.Features[name] {
			text := raw
			if t, _, err := normalize(dt, raw); err == nil && has[t] {
				text = t
			}
			if !has[text] {
				return Annotations{}, errorf(ErrNotFound, "%s has no %s = %q (its %s values: %s)", v.Ref(), name, raw, name, quotedFirst(have))
			}
			drop[text] = true
		}
		var left []string
		e := termEntity(dt)
		for _, x := range have {
			if len(drop) > 0 && !drop[x] {
				left = append(left, x)
			} else if e != "" {
				addNamed(gone, e, x, name)
			}
		}
		if len(left) == 0 {
			delete(next.Features, name)
		} else {
			next.Features[name] = left
		}
	}
	if len(next.Features) == 0 {
		next.Features = nil
	}
	if len(remove.Labels) > 0 {
		has := make(map[string]bool, len(a.Labels))
		for _, l := range a.Labels {
			has[l] = true
		}
		drop := map[string]bool{}
		for _, l := range remove.Labels {
			if !has[l] {
				what := "it has no labels"
				if len(a.Labels) > 0 {
					what = "its labels: " + quotedFirst(a.Labels)
				}
				return Annotations{}, errorf(ErrNotFound, "%s has no label %q (%s)", v.Ref(), l, what)
			}
			drop[l] = true
		}
		next.Labels = slices.DeleteFunc(slices.Clone(a.Labels), func(l string) bool { return drop[l] })
	}
	if len(a.Terms) > 0 && (len(remove.Terms) > 0 || len(gone) > 0) {
		// A value names the terms of the version whose name or id it is,
		// and those remove.Resolved gives it. A value left that neither
		// does may still name one of its entity: curate keeps a value
		// given as an alt_id (CL:0000739) and records its primary term
		// (CL:0000043 "mature basophil"); a synonym or an old name is
		// another. The catalog knows no ontology to tell which term, so
		// while such a value is left (one annotated after the caller
		// resolved the values, or a caller that resolved none) no term of
		// its entity goes.
		byName := map[string]map[string][]string{} // entity → name or id of a version's term → its ids
		for _, tm := range a.Terms {
			e := entityKey(tm.Entity)
			if byName[e] == nil {
				byName[e] = map[string][]string{}
			}
			byName[e][tm.Name] = append(byName[e][tm.Name], tm.ID)
			if tm.ID != tm.Name {
				byName[e][tm.ID] = append(byName[e][tm.ID], tm.ID)
			}
		}
		resolved := map[string]map[string][]string{}
		for e, vs := range remove.Resolved {
			k := entityKey(e)
			if resolved[k] == nil {
				resolved[k] = map[string][]string{}
			}
			for x, ids := range vs {
				resolved[k][x] = append(resolved[k][x], ids...)
			}
		}
		// names returns the ids value x of entity e names, and whether
		// that is known.
		names := func(e, x string) ([]string, bool) {
			ids, ok := resolved[e][x]
			return slices.Concat(byName[e][x], ids), ok || len(byName[e][x]) > 0
		}
		// The values left that name terms: a Find by such a value
		// requires one of its terms (cmd/lamina/query.go), so they stay.
		left := map[string]map[string][2]string{} // entity → term id → the first value left naming it: feature, value
		unknown := map[string][2]string{}         // entity → the first value left naming no term known: feature, value
		for _, name := range slices.Sorted(maps.Keys(next.Features)) {
			dt, err := dtype(name)
			if err != nil {
				return Annotations{}, err
			}
			e := termEntity(dt)
			if e == "" {
				continue
			}
			for _, x := range next.Features[name] {
				ids, known := names(e, x)
				if _, ok := unknown[e]; !ok && !known {
					unknown[e] = [2]string{name, x}
				}
				for _, id := range ids {
					if left[e] == nil {
						left[e] = map[string][2]string{}
					}
					if _, ok := left[e][id]; !ok {
						left[e][id] = [2]string{name, x}
					}
				}
			}
		}
		goes := map[string]map[string]bool{} // entity → id of a term a value removed names
		for e, vs := range gone {
			for x := range vs {
				ids, _ := names(e, x)
				for _, id := range ids {
					if goes[e] == nil {
						goes[e] = map[string]bool{}
					}
					goes[e][id] = true
				}
			}
		}
		has := make(map[string]Term, len(a.Terms))
		for _, tm := range a.Terms {
			has[tm.ID] = tm
		}
		drop := map[string]bool{}
		for _, tm := range remove.Terms {
			had, ok := has[tm.ID]
			if !ok {
				return Annotations{}, errorf(ErrNotFound, "%s has no term %s (%s)", v.Ref(), tm.ID, hasTerms(a.Terms))
			}
			if fx, ok := left[entityKey(had.Entity)][had.ID]; ok {
				return Annotations{}, errorf(ErrConflict, "%s keeps term %s %q: its value %s = %q names it (remove that value, and the term goes with it)",
					v.Ref(), had.ID, had.Name, fx[0], fx[1])
			}
			if u, ok := unknown[entityKey(had.Entity)]; ok {
				return Annotations{}, errorf(ErrConflict, "%s keeps term %s %q: its value %s = %q may name it (it names no term of the version by name or id, and the ontology did not resolve it: an alt id, a synonym, an old name; remove that value first)",
					v.Ref(), had.ID, had.Name, u[0], u[1])
			}
			drop[tm.ID] = true
		}
		for _, tm := range a.Terms {
			e := entityKey(tm.Entity)
			if !goes[e][tm.ID] {
				continue
			}
			if _, ok := left[e][tm.ID]; ok {
				continue
			}
			if _, ok := unknown[e]; !ok {
				drop[tm.ID] = true
			}
		}
		next.Terms = slices.DeleteFunc(slices.Clone(a.Terms), func(tm Term) bool { return drop[tm.ID] })
	} else if len(remove.Terms) > 0 {
		return Annotations{}, errorf(ErrNotFound, "%s has no term %s (%s)", v.Ref(), remove.Terms[0].ID, hasTerms(a.Terms))
	}
	if len(next.Labels) == 0 {
		next.Labels = nil
	}
	if len(next.Terms) == 0 {
		next.Terms = nil
	}
	if remove.Schema != "" {
		if a.Schema != remove.Schema {
			what := "it has none"
			if a.Schema != "" {
				what = fmt.Sprintf("its schema: %q", a.Schema)
			}
			return Annotations{}, errorf(ErrNotFound, "%s has no schema %q (%s)", v.Ref(), remove.Schema, what)
		}
		next.Schema = ""
	}
	return next, nil
}

// termEntity is the entity whose terms a value of a feature of dtype
// names, as entityKey spells it; "" for a dtype whose values name none
// (cat[ULabel]'s are labels).
func termEntity(dtype string) string {
	if !strings.HasPrefix(dtype, "cat[") || !strings.HasSuffix(dtype, "]") || dtype == "cat[ULabel]" {
		return ""
	}
	return entityKey(dtype[4 : len(dtype)-1])
}

// entityKey spells an entity so that a feature's (cat[CellType],
// cat[bionty.DevelopmentalStage]) and the one a term records (celltype,
// developmental_stage: the CLI's entityName of the feature's) compare
// equal. The catalog knows no ontology, so it folds the spellings that
// name one: case, underscores, LaminDB's prefixes and its old
// DevelopmentStage. Folding more than entityName does can only keep a
// term with a value, never take one.
func entityKey(e string) string {
	e = strings.TrimPrefix(strings.TrimPrefix(e, "bionty."), "bt.")
	e = strings.ToLower(strings.ReplaceAll(e, "_", ""))
	if e == "developmentstage" {
		return "developmentalstage"
	}
	return e
}

// addNamed records that value, of feature, names terms of entity.
func addNamed(m map[string]map[string]string, entity, value, feature string) {
	if m[entity] == nil {
		m[entity] = map[string]string{}
	}
	if _, ok := m[entity][value]; !ok {
		m[entity][value] = feature
	}
}

// maxListed is how many values an error of unannotated lists: a curated
// gene column has 60,000.
const maxListed = 20

// quotedFirst lists the first maxListed of vs, quoted (a cell type name
// holds commas), saying how many more there are.
func quotedFirst(vs []string) string {
	q := make([]string, 0, min(len(vs), maxListed))
	for _, x := range vs[:min(len(vs), maxListed)] {
		q = append(q, strconv.Quote(x))
	}
	out := strings.Join(q, ", ")
	if n := len(vs) - maxListed; n > 0 {
		out += fmt.Sprintf(", … and %d more", n)
	}
	return out
}

// hasFeatures says which features a has values of.
func hasFeatures(a Annotations) string {
	if len(a.Features) == 0 {
		return "it has no feature values"
	}
	return "it has values of " + strings.Join(slices.Sorted(maps.Keys(a.Features)), ", ")
}

// hasTerms says which terms a version has.
func hasTerms(terms []Term) string {
	if len(terms) == 0 {
		return "it has no terms"
	}
	q := make([]string, 0, min(len(terms), maxListed))
	for _, tm := range terms[:min(len(terms), maxListed)] {
		q = append(q, fmt.Sprintf("%s %q", tm.ID, tm.Name))
	}
	out := "its terms: " + strings.Join(q, ", ")
	if n := len(terms) - maxListed; n > 0 {
		out += fmt.Sprintf(", … and %d more", n)
	}
	return out
}

// LabelClosure returns name and every label below it, breadth first, given
// each label's children; a cycle in the hierarchy is walked once.
func LabelClosure(name string, children map[string][]string) []string {
	out := []string{name}
	seen := map[string]bool{name: true}
	for i := 0; i < len(out); i++ {
		for _, c := range children[out[i]] {
			if !seen[c] {
				seen[c] = true
				out = append(out, c)
			}
		}
	}
	return out
}
