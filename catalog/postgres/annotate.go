package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/ref"
)

// Features, labels, schemas, annotations and collections, following Bolt's
// rules (catalog/bolt_annotate.go). The indexes are tables:
//
//	idx_features  (feature, vkey, uid)  vkey: catalog.Normalize's index key,
//	              so bytea order is value order as in Bolt's index
//	idx_labels    (label, uid)
//	idx_terms     (term, uid)
//	words         (word, uid, weight, fields)  every version, for Search

// ---- features, labels, schemas ----

func (s *Store) CreateFeature(ctx context.Context, f catalog.Feature) (catalog.Feature, error) {
	if err := catalog.CheckName("feature", f.Name); err != nil {
		return catalog.Feature{}, err
	}
	if catalog.IsBuiltin(f.Name) {
		return catalog.Feature{}, catalog.Invalidf("%q is a field of every version; choose another feature name", f.Name)
	}
	dt, err := catalog.ParseDtype(f.Dtype)
	if err != nil {
		return catalog.Feature{}, err
	}
	f.Dtype = dt
	if f.CreatedAt.IsZero() {
		f.CreatedAt = time.Now()
	}
	f.CreatedAt = f.CreatedAt.UTC()
	err = s.write(ctx, func(tx pgx.Tx, _ func(...string)) error {
		var old catalog.Feature
		if ok, err := getJSON(ctx, tx, `SELECT rec FROM features WHERE name = $1`, &old, f.Name); err != nil {
			return err
		} else if ok {
			if old.Dtype != f.Dtype {
				return errorf(ErrConflict, "feature %q exists with dtype %s, not %s", f.Name, old.Dtype, f.Dtype)
			}
			if f.Description == "" || f.Description == old.Description {
				f = old
				return nil
			}
			old.Description = f.Description
			f = old
			return putJSON(ctx, tx, `UPDATE features SET rec = $2 WHERE name = $1`, f, f.Name)
		}
		return putJSON(ctx, tx, `INSERT INTO features (name, rec) VALUES ($1, $2)`, f, f.Name)
	})
	return f, err
}

func getJSON(ctx context.Context, tx pgx.Tx, sql string, v any, args ...any) (bool, error) {
	var raw []byte
	err := tx.QueryRow(ctx, sql, args...).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return true, errorf(catalog.ErrSchema, "catalog: record: %v", err)
	}
	return true, nil
}

// putJSON runs sql with args and v as JSON for the last parameter.
func putJSON(ctx context.Context, tx pgx.Tx, sql string, v any, args ...any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, sql, append(args, raw)...)
	return err
}

func listJSON[T any](ctx context.Context, s *Store, sql string) (_ []T, err error) {
	ctx, end := s.bound(ctx)
	defer func() { err = end(err) }()
	var raws [][]byte
	err = s.reread(ctx, func(q querier) error {
		rows, err := q.Query(ctx, sql)
		raws, err = collect(rows, err, pgx.RowTo[[]byte])
		return err
	})
	if err != nil {
		return nil, wrap(err)
	}
	out := []T{}
	for _, raw := range raws {
		var x T
		if err := json.Unmarshal(raw, &x); err != nil {
			return nil, errorf(catalog.ErrSchema, "catalog: record: %v", err)
		}
		out = append(out, x)
	}
	return out, nil
}

// collect is pgx.CollectRows of what Query returned.
func collect[T any](rows pgx.Rows, err error, fn pgx.RowToFunc[T]) ([]T, error) {
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, fn)
}

func (s *Store) Features(ctx context.Context) ([]catalog.Feature, error) {
	return listJSON[catalog.Feature](ctx, s, `SELECT rec FROM features ORDER BY name`)
}

func (s *Store) Labels(ctx context.Context) ([]catalog.Label, error) {
	return listJSON[catalog.Label](ctx, s, `SELECT rec FROM labels ORDER BY name`)
}

func (s *Store) Schemas(ctx context.Context) ([]catalog.Schema, error) {
	return listJSON[catalog.Schema](ctx, s, `SELECT rec FROM schemas ORDER BY name`)
}

func names(ctx context.Context, tx pgx.Tx, table string) []string {
	out, _ := strings_(ctx, tx, `SELECT name FROM `+table+` ORDER BY name`)
	return out
}

func feature(ctx context.Context, tx pgx.Tx, name string) (catalog.Feature, error) {
	var f catalog.Feature
	if err := catalog.CheckLookup("feature", name); err != nil {
		return f, err
	}
	if ok, err := getJSON(ctx, tx, `SELECT rec FROM features WHERE name = $1`, &f, name); err != nil || ok {
		return f, err
	}
	return f, errorf(ErrNotFound, "no feature %q%s (lamina feature ls; lamina feature create)", name,
		catalog.DidYouMean(catalog.Closest(name, names(ctx, tx, "features"))))
}

func label(ctx context.Context, tx pgx.Tx, name string) (catalog.Label, error) {
	var l catalog.Label
	if err := catalog.CheckLookup("label", name); err != nil {
		return l, err
	}
	if ok, err := getJSON(ctx, tx, `SELECT rec FROM labels WHERE name = $1`, &l, name); err != nil || ok {
		return l, err
	}
	return l, errorf(ErrNotFound, "no label %q%s (lamina label create %s)", name,
		catalog.DidYouMean(catalog.Closest(name, names(ctx, tx, "labels"))), name)
}

func (s *Store) CreateLabel(ctx context.Context, l catalog.Label) (catalog.Label, error) {
	if err := catalog.CheckName("label", l.Name); err != nil {
		return catalog.Label{}, err
	}
	if l.CreatedAt.IsZero() {
		l.CreatedAt = time.Now()
	}
	l.CreatedAt = l.CreatedAt.UTC()
	in := l
	err := s.write(ctx, func(tx pgx.Tx, _ func(...string)) error {
		l = in
		if l.Parent != "" {
			if l.Parent == l.Name {
				return catalog.Invalidf("label %q cannot be its own parent", l.Name)
			}
			if _, err := label(ctx, tx, l.Parent); err != nil {
				return err
			}
			// No cycles: the parent must not sit below the label.
			for p := l.Parent; p != ""; {
				pl, err := label(ctx, tx, p)
				if err != nil {
					break
				}
				if pl.Parent == l.Name {
					return catalog.Invalidf("%q is below %q; it cannot be its parent", l.Parent, l.Name)
				}
				p = pl.Parent
			}
		}
		var old catalog.Label
		if ok, err := getJSON(ctx, tx, `SELECT rec FROM labels WHERE name = $1`, &old, l.Name); err != nil {
			return err
		} else if ok {
			if l.Parent == "" || l.Parent == old.Parent {
				l = old
				return nil
			}
			old.Parent = l.Parent
			l = old
		}
		return putLabel(ctx, tx, l)
	})
	return l, err
}

func putLabel(ctx context.Context, tx pgx.Tx, l catalog.Label) error {
	return putJSON(ctx, tx, `INSERT INTO labels (name, parent, rec) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET parent = EXCLUDED.parent, rec = EXCLUDED.rec`, l, l.Name, l.Parent)
}

func (s *Store) CreateSchema(ctx context.Context, sc catalog.Schema) (catalog.Schema, error) {
	if err := catalog.CheckName("schema", sc.Name); err != nil {
		return catalog.Schema{}, err
	}
	if len(sc.Features) == 0 {
		return catalog.Schema{}, catalog.Invalidf("schema %q lists no features", sc.Name)
	}
	if sc.CreatedAt.IsZero() {
		sc.CreatedAt = time.Now()
	}
	sc.CreatedAt = sc.CreatedAt.UTC()
	err := s.write(ctx, func(tx pgx.Tx, _ func(...string)) error {
		seen := map[string]bool{}
		for _, sf := range sc.Features {
			if seen[sf.Feature] {
				return catalog.Invalidf("schema %q lists feature %q twice", sc.Name, sf.Feature)
			}
			seen[sf.Feature] = true
			if _, err := feature(ctx, tx, sf.Feature); err != nil {
				return err
			}
		}
		return putJSON(ctx, tx, `INSERT INTO schemas (name, rec) VALUES ($1, $2)
			ON CONFLICT (name) DO UPDATE SET rec = EXCLUDED.rec`, sc, sc.Name)
	})
	return sc, err
}

// ---- annotations ----

func annotations(ctx context.Context, tx pgx.Tx, uid string) (catalog.Annotations, error) {
	a := catalog.Annotations{UID: uid}
	_, err := getJSON(ctx, tx, `SELECT rec FROM annotations WHERE uid = $1`, &a, uid)
	a.UID = uid
	return a, err
}

func (s *Store) Annotations(ctx context.Context, uid string) (catalog.Annotations, error) {
	var a catalog.Annotations
	err := s.read(ctx, func(tx pgx.Tx) error {
		if _, ok, err := version(ctx, tx, uid); err != nil {
			return err
		} else if !ok {
			return errorf(ErrNotFound, "no version has uid %s", uid)
		}
		var err error
		if a, err = annotations(ctx, tx, uid); err != nil {
			return err
		}
		a, err = shown(ctx, tx, a)
		return err
	})
	return a, err
}

// shown is a as the store returns it: an old float -0 as 0
// (catalog.OldNegZeroAsZero).
func shown(ctx context.Context, tx pgx.Tx, a catalog.Annotations) (catalog.Annotations, error) {
	return catalog.OldNegZeroAsZero(a, func(name string) (string, error) {
		f, err := feature(ctx, tx, name)
		return f.Dtype, err
	})
}

func (s *Store) Annotate(ctx context.Context, uid string, add catalog.Annotations) (catalog.Annotations, error) {
	var out catalog.Annotations
	if err := catalog.CheckAnnotationsText(add); err != nil {
		return out, err
	}
	err := s.write(ctx, func(tx pgx.Tx, changed func(...string)) error {
		var err error
		if out, err = annotate(ctx, tx, uid, add, changed); err != nil {
			return err
		}
		out, err = shown(ctx, tx, out)
		return err
	})
	return out, err
}

// annotate adds to uid's annotations and reports its key changed (its
// sidecars show them).
func annotate(ctx context.Context, tx pgx.Tx, uid string, add catalog.Annotations, changed func(...string)) (catalog.Annotations, error) {
	// The row lock orders this with a rename of the version (writeKeys,
	// READ COMMITTED, outside SERIALIZABLE's view): whichever comes second
	// sees the other's key and words, or is retried.
	v, ok, err := versionForUpdate(ctx, tx, uid)
	if err != nil {
		return catalog.Annotations{}, err
	}
	if !ok {
		return catalog.Annotations{}, errorf(ErrNotFound, "no version has uid %s", uid)
	}
	changed(v.Key)
	old, err := annotations(ctx, tx, uid)
	if err != nil {
		return catalog.Annotations{}, err
	}
	next, err := merge(ctx, tx, old, add)
	if err != nil {
		return catalog.Annotations{}, err
	}
	// Nothing new (curating an unchanged table again): its rows stay, as
	// rewriting 100,000 index rows the same took seconds.
	if was, err := json.Marshal(old); err == nil {
		if now, err := json.Marshal(next); err == nil && bytes.Equal(was, now) {
			return next, nil
		}
	}
	if err := index(ctx, tx, v, next); err != nil {
		return catalog.Annotations{}, err
	}
	return next, putJSON(ctx, tx, `INSERT INTO annotations (uid, rec) VALUES ($1, $2)
		ON CONFLICT (uid) DO UPDATE SET rec = EXCLUDED.rec`, next, uid)
}

// Unannotate removes from uid's annotations and index rows (see
// catalog.Annotator) and reports its key changed, as annotate does.
func (s *Store) Unannotate(ctx context.Context, uid string, remove catalog.Annotations) (catalog.Annotations, error) {
	var out catalog.Annotations
	if err := catalog.CheckAnnotationsText(remove); err != nil {
		return out, err
	}
	err := s.write(ctx, func(tx pgx.Tx, changed func(...string)) error {
		v, ok, err := versionForUpdate(ctx, tx, uid) // ordered with a rename, as in annotate
		if err != nil {
			return err
		}
		if !ok {
			return errorf(ErrNotFound, "no version has uid %s", uid)
		}
		changed(v.Key)
		old, err := annotations(ctx, tx, uid)
		if err != nil {
			return err
		}
		next, err := catalog.Unannotated(v, old, remove, func(name string) (string, error) {
			f, err := feature(ctx, tx, name)
			return f.Dtype, err
		})
		if err != nil {
			return err
		}
		if err := index(ctx, tx, v, next); err != nil {
			return err
		}
		if out, err = shown(ctx, tx, next); err != nil {
			return err
		}
		if next.IsZero() { // as if never annotated
			_, err := tx.Exec(ctx, `DELETE FROM annotations WHERE uid = $1`, uid)
			return err
		}
		return putJSON(ctx, tx, `INSERT INTO annotations (uid, rec) VALUES ($1, $2)
			ON CONFLICT (uid) DO UPDATE SET rec = EXCLUDED.rec`, next, uid)
	})
	if err != nil {
		return catalog.Annotations{}, err
	}
	return out, nil
}

// AnnotateBatch adds each element's annotations to the version its UID
// names, all in one transaction. It is all or nothing.
func (s *Store) AnnotateBatch(ctx context.Context, adds []catalog.Annotations) error {
	return s.write(ctx, func(tx pgx.Tx, changed func(...string)) error {
		for _, add := range adds {
			if _, err := annotate(ctx, tx, add.UID, add, changed); err != nil {
				return err
			}
		}
		return nil
	})
}

// merge checks add and returns old plus add, each list sorted and unique.
func merge(ctx context.Context, tx pgx.Tx, old, add catalog.Annotations) (catalog.Annotations, error) {
	next := catalog.Annotations{UID: old.UID, Schema: old.Schema, Features: map[string][]string{}}
	for k, vs := range old.Features {
		next.Features[k] = append([]string(nil), vs...)
	}
	featureNames := make([]string, 0, len(add.Features))
	for name := range add.Features {
		featureNames = append(featureNames, name)
	}
	sort.Strings(featureNames)
	for _, name := range featureNames {
		f, err := feature(ctx, tx, name)
		if err != nil {
			return catalog.Annotations{}, err
		}
		texts := make([]string, len(add.Features[name]))
		for i, raw := range add.Features[name] {
			text, _, err := catalog.Normalize(f.Dtype, raw)
			if err != nil {
				return catalog.Annotations{}, fmt.Errorf("feature %s (%s): %w", name, f.Dtype, err)
			}
			texts[i] = text
		}
		if f.Entity() == "ULabel" {
			if err := labelsExist(ctx, tx, texts); err != nil {
				return catalog.Annotations{}, fmt.Errorf("feature %s (%s): %w", name, f.Dtype, err)
			}
		}
		next.Features[name] = catalog.AddUnique(next.Features[name], texts, same)
		sort.Strings(next.Features[name])
	}
	if len(next.Features) == 0 {
		next.Features = nil
	}
	if err := labelsExist(ctx, tx, add.Labels); err != nil {
		return catalog.Annotations{}, err
	}
	next.Labels = catalog.AddUnique(slices.Clone(old.Labels), add.Labels, same)
	sort.Strings(next.Labels)
	for _, tm := range add.Terms {
		if tm.ID == "" || strings.ContainsRune(tm.ID, 0) {
			return catalog.Annotations{}, catalog.Invalidf("ontology term without an id")
		}
	}
	next.Terms = catalog.AddUnique(slices.Clone(old.Terms), add.Terms, func(t catalog.Term) string { return t.ID })
	sort.Slice(next.Terms, func(i, j int) bool { return next.Terms[i].ID < next.Terms[j].ID })
	if add.Schema != "" {
		if _, ok, err := exists(ctx, tx, `SELECT name FROM schemas WHERE name = $1`, add.Schema); err != nil {
			return catalog.Annotations{}, err
		} else if !ok {
			return catalog.Annotations{}, errorf(ErrNotFound, "no schema %q", add.Schema)
		}
		next.Schema = add.Schema
	}
	return next, nil
}

func same(s string) string { return s }

// labelsExist checks that every name is a label in one query (a query per
// value of a big cat[ULabel] column was a round trip each); label says
// why the first one that is not fails, with a suggestion.
func labelsExist(ctx context.Context, tx pgx.Tx, names []string) error {
	if len(names) == 0 {
		return nil
	}
	found, err := strings_(ctx, tx, `SELECT name FROM labels WHERE name = ANY($1)`, names)
	if err != nil {
		return err
	}
	have := make(map[string]bool, len(found))
	for _, n := range found {
		have[n] = true
	}
	for _, n := range names {
		if !have[n] {
			_, err := label(ctx, tx, n)
			return err
		}
	}
	return nil
}

// index replaces the index rows of v with those of its annotations a.
func index(ctx context.Context, tx pgx.Tx, v Version, a catalog.Annotations) error {
	for _, t := range []string{"idx_features", "idx_labels", "idx_terms"} {
		if _, err := tx.Exec(ctx, `DELETE FROM `+t+` WHERE uid = $1`, v.UID); err != nil {
			return err
		}
	}
	var feats []string
	var keys [][]byte
	for name, vs := range a.Features {
		f, err := feature(ctx, tx, name)
		if err != nil {
			continue // a feature deleted since: its values are not indexed
		}
		for _, x := range vs {
			_, k, err := catalog.Normalize(f.Dtype, x)
			if err != nil {
				continue
			}
			feats, keys = append(feats, name), append(keys, k)
		}
	}
	if len(feats) > 0 {
		if _, err := tx.Exec(ctx, `INSERT INTO idx_features (feature, vkey, uid)
			SELECT f, k, $3 FROM unnest($1::text[], $2::bytea[]) AS t(f, k) ON CONFLICT DO NOTHING`, feats, keys, v.UID); err != nil {
			return err
		}
	}
	if len(a.Labels) > 0 {
		if _, err := tx.Exec(ctx, `INSERT INTO idx_labels (label, uid) SELECT unnest($1::text[]), $2 ON CONFLICT DO NOTHING`, a.Labels, v.UID); err != nil {
			return err
		}
	}
	if len(a.Terms) > 0 {
		ids := make([]string, len(a.Terms))
		for i, tm := range a.Terms {
			ids[i] = tm.ID
		}
		if _, err := tx.Exec(ctx, `INSERT INTO idx_terms (term, uid) SELECT unnest($1::text[]), $2 ON CONFLICT DO NOTHING`, ids, v.UID); err != nil {
			return err
		}
	}
	return putWords(ctx, tx, v, a)
}

// putWords replaces the search words of v.
func putWords(ctx context.Context, tx pgx.Tx, v Version, a catalog.Annotations) error {
	if _, err := tx.Exec(ctx, `DELETE FROM words WHERE uid = $1`, v.UID); err != nil {
		return err
	}
	words, weights, fields := wordRows(v, a)
	if len(words) == 0 {
		return nil
	}
	_, err := tx.Exec(ctx, insertWordsSQL, words, weights, fields, v.UID)
	return err
}

const insertWordsSQL = `INSERT INTO words (word, uid, weight, fields)
	SELECT w, $4, x, f FROM unnest($1::text[], $2::int2[], $3::int2[]) AS t(w, x, f)`

// wordRows are the columns of v's rows in words, for insertWordsSQL.
func wordRows(v Version, a catalog.Annotations) (words []string, weights, fields []int16) {
	ws := catalog.SearchWords(v, a)
	words = make([]string, 0, len(ws))
	weights = make([]int16, 0, len(ws))
	fields = make([]int16, 0, len(ws))
	for w, e := range ws {
		words, weights, fields = append(words, w), append(weights, int16(e.Weight)), append(fields, int16(e.Fields))
	}
	return words, weights, fields
}

// rewordKey re-indexes the words of a version whose key changed.
func rewordKey(ctx context.Context, tx pgx.Tx, old, v Version) error {
	a, err := annotations(ctx, tx, v.UID)
	if err != nil {
		return err
	}
	return putWords(ctx, tx, v, a)
}

// ---- Find ----

// labelClosure returns name and, unless exact, every label below it.
func labelClosure(ctx context.Context, tx pgx.Tx, name string, exact bool) ([]string, error) {
	if _, err := label(ctx, tx, name); err != nil {
		return nil, err
	}
	if exact {
		return []string{name}, nil
	}
	rows, err := tx.Query(ctx, `SELECT name, parent FROM labels WHERE parent IS NOT NULL AND parent <> ''`)
	if err != nil {
		return nil, err
	}
	children := map[string][]string{}
	for rows.Next() {
		var n, p string
		if err := rows.Scan(&n, &p); err != nil {
			rows.Close()
			return nil, err
		}
		children[p] = append(children[p], n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return catalog.LabelClosure(name, children), nil
}

// sqlArgs collects the parameters of a query being built.
type sqlArgs []any

func (a *sqlArgs) add(v any) string {
	*a = append(*a, v)
	return fmt.Sprintf("$%d", len(*a))
}

// featureCond returns SQL selecting the uids whose values of f satisfy c.
func featureCond(f catalog.Feature, c catalog.Cond, args *sqlArgs) (string, error) {
	if len(c.Values) == 0 {
		return "", catalog.Invalidf("--where %s%s needs a value", c.Field, c.Op)
	}
	var wants [][]byte
	for _, raw := range c.Values {
		dt := f.Dtype
		if c.Op == "^=" {
			dt = "str"
		}
		ks, err := catalog.CondKeys(dt, c.Op, raw)
		if err != nil {
			return "", fmt.Errorf("--where %s%s%s: %w", c.Field, c.Op, raw, err)
		}
		wants = append(wants, ks...)
	}
	name := args.add(f.Name)
	switch c.Op {
	case "=":
		return `SELECT uid FROM idx_features WHERE feature = ` + name + ` AND vkey = ANY(` + args.add(wants) + `)`, nil
	case "!=":
		return `SELECT uid FROM idx_features WHERE feature = ` + name + ` EXCEPT SELECT uid FROM idx_features WHERE feature = ` +
			name + ` AND vkey = ANY(` + args.add(wants) + `)`, nil
	case "^=":
		if f.Dtype != "str" && !strings.HasPrefix(f.Dtype, "cat") {
			return "", catalog.Invalidf("^= applies to text features; %s is %s", f.Name, f.Dtype)
		}
		w := args.add(wants[0])
		return `SELECT uid FROM idx_features WHERE feature = ` + name + ` AND vkey >= ` + w +
			` AND substr(vkey, 1, length(` + w + `)) = ` + w, nil
	case "<", "<=", ">", ">=":
		// Only values of the same type (the key's first byte) compare: a
		// range within [type, type+1), which the planner can estimate,
		// unlike get_byte(vkey, 0) = type (thought to match 71 rows of
		// 12,000, it chose 12,000 index probes).
		w := wants[0]
		sql := `SELECT uid FROM idx_features WHERE feature = ` + name + ` AND vkey ` + c.Op + ` ` + args.add(w) +
			` AND vkey >= ` + args.add(w[:1])
		if w[0] < 0xff {
			sql += ` AND vkey < ` + args.add([]byte{w[0] + 1})
		}
		return sql, nil
	}
	return "", catalog.Invalidf("unknown operator %q", c.Op)
}

func (s *Store) Find(ctx context.Context, f catalog.Filter) ([]Version, error) {
	if f.Prefix != "" {
		if err := ref.CheckPrefix(f.Prefix); err != nil {
			return nil, err
		}
	}
	switch f.Order {
	case "", "key", "created_at", "-created_at":
	default:
		return nil, catalog.Invalidf("order %q: use key, created_at or -created_at", f.Order)
	}
	keep, featConds, err := catalog.VersionMatcher(f)
	if err != nil {
		return nil, err
	}
	var out []Version
	err = s.read(ctx, func(tx pgx.Tx) error {
		out = nil
		var args sqlArgs
		var where []string
		for _, c := range featConds {
			ft, err := feature(ctx, tx, c.Field)
			if err != nil {
				all := append(names(ctx, tx, "features"), catalog.BuiltinFields()...)
				return errorf(ErrNotFound, "--where: no feature or field %q%s", c.Field, catalog.DidYouMean(catalog.Closest(c.Field, all)))
			}
			sql, err := featureCond(ft, c, &args)
			if err != nil {
				return err
			}
			where = append(where, `v.uid IN (`+sql+`)`)
		}
		for _, name := range f.Labels {
			ls, err := labelClosure(ctx, tx, name, f.ExactLabels)
			if err != nil {
				return err
			}
			where = append(where, `v.uid IN (SELECT uid FROM idx_labels WHERE label = ANY(`+args.add(ls)+`))`)
		}
		for _, group := range f.Terms {
			where = append(where, `v.uid IN (SELECT uid FROM idx_terms WHERE term = ANY(`+args.add(group)+`))`)
		}
		// Conditions on version fields go into the SQL too (Go checks them
		// again, keep), so that it may stop at the limit; those only Go
		// decides (times) make it send every match.
		allInSQL := true
		for _, c := range f.Where {
			if !catalog.IsBuiltin(c.Field) {
				continue
			}
			sql, ok := fieldCond(c, &args)
			if ok {
				where = append(where, sql)
			}
			allInSQL = allInSQL && ok
		}
		sql := `SELECT v.rec FROM artifacts a JOIN versions v ON v.stem = a.stem WHERE a.latest > 0 AND NOT v.trashed`
		if !f.AllVersions {
			sql += ` AND v.n = a.latest`
		}
		if f.Prefix != "" {
			sql += ` AND a.key >= ` + args.add(f.Prefix) + ` AND a.key < ` + args.add(upper(f.Prefix))
		}
		for _, w := range where {
			sql += ` AND ` + w
		}
		sql += ` ORDER BY a.key, v.n`
		limit := 0
		if f.Limit > 0 && (f.Order == "" || f.Order == "key") {
			limit = f.Limit
			if allInSQL {
				// Every row is kept, so the database may stop at the
				// limit instead of sorting and sending every match (the T
				// cell query of the curation benchmark matches 30,000
				// versions, wants 1,000).
				sql += fmt.Sprintf(` LIMIT %d`, limit)
			}
		}
		if err := customPlans(ctx, tx); err != nil {
			return err
		}
		out, err = findRows(ctx, tx, sql, args, keep, limit)
		return err
	})
	if err != nil {
		return nil, err
	}
	return catalog.FinishFind(out, f), nil
}

// customPlans makes the rest of transaction tx plan each statement for
// its parameters. pgx prepares statements, and after five runs PostgreSQL
// may switch to a generic plan, which cannot tell a one-word range of
// words, or one term's uids, from a whole table: Search for one key took
// 59 ms (hash joins over every version) instead of well under one.
// In a pipeTx it goes with the next statement.
func customPlans(ctx context.Context, tx pgx.Tx) error {
	var b pgx.Batch
	b.Queue(`SET LOCAL plan_cache_mode = force_custom_plan`)
	return tx.SendBatch(ctx, &b).Close()
}

// findRows returns the versions sql selects that keep keeps, in order,
// stopping after limit (0: no limit). When sql holds a LIMIT, the
// database stops early; otherwise every match is sent, and rows past the
// limit are only drained.
func findRows(ctx context.Context, tx pgx.Tx, sql string, args sqlArgs, keep func(Version) bool, limit int) ([]Version, error) {
	rows, err := tx.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	var out []Version
	err = eachVersion(rows, func(v Version) bool {
		if keep(v) {
			out = append(out, v)
		}
		return limit <= 0 || len(out) < limit
	})
	return out, err
}

// ---- Search ----

// searchMatches is SQL yielding a row (uid, i, word, weight, fields) per
// words row that starts with query word i (from 1), whose range $(2i-1),
// $(2i) bound: one range scan per word, each planned for its word (a
// rare key's one row, a common word's thousands).
//
// With terms, $(2nw+1)…$(2nw+3) are catalog.TermMatches as arrays (term
// ids, query word numbers from 1, whole or not), and each version the
// term index gives a term of them has a row too, as a whole word of a
// term name (an empty word and qlen 0) or the prefix of one (qlen -1).
func searchMatches(nw int, terms bool) string {
	var b strings.Builder
	for i := 1; i <= nw; i++ {
		if i > 1 {
			b.WriteString("\n\tUNION ALL ")
		}
		fmt.Fprintf(&b, "SELECT w.uid, %d AS i, w.word, w.weight, w.fields, octet_length($%d) AS qlen FROM words w WHERE w.word >= $%d AND w.word < $%d",
			i, 2*i-1, 2*i-1, 2*i)
	}
	if terms {
		fmt.Fprintf(&b, "\n\tUNION ALL SELECT t.uid, x.i, ''::text, 20::int2, %d::int2, CASE WHEN x.whole THEN 0 ELSE -1 END "+
			"FROM unnest($%d::text[], $%d::int[], $%d::bool[]) AS x(term, i, whole) JOIN idx_terms t ON t.term = x.term",
			fieldTerm, 2*nw+1, 2*nw+2, 2*nw+3)
	}
	return b.String()
}

// fieldTerm is the bit of catalog.SearchFields that names "term".
var fieldTerm = 1 << slices.Index(catalog.SearchFields, "term")

// termArgs are catalog.TermMatches as searchMatches takes them.
func termArgs(ms []catalog.TermMatch) []any {
	ids, is, whole := make([]string, len(ms)), make([]int32, len(ms)), make([]bool, len(ms))
	for k, m := range ms {
		ids[k], is[k], whole[k] = m.ID, int32(m.I+1), m.Score == 2
	}
	return []any{ids, is, whole}
}

// searchScored is searchMatches with each row's score for its query word
// i: weight/10, ×0.6 for a longer word (float4, as Bolt computes it).
func searchScored(nw int, terms bool) string {
	return `SELECT uid, i, fields, (weight::float4 / 10::float4) * CASE WHEN octet_length(word) = qlen THEN 1::float4 ELSE 0.6::float4 END AS sc
	FROM (` + searchMatches(nw, terms) + `) w0`
}

// searchStats counts, over the words starting with each query word, the
// versions having any (n, the first column) and those having each (the
// next nw): Search's n and document frequencies. One grouping by version:
// a word matching most of the catalog ("cell") makes 100,000s of rows,
// and grouping them by (version, word) first cost as much again.
func searchStats(nw int, terms bool) string {
	has, counts := "", "count(*)"
	for i := 1; i <= nw; i++ {
		has += fmt.Sprintf(", bool_or(i = %d) AS h%d", i, i)
		counts += fmt.Sprintf(", count(*) FILTER (WHERE h%d)", i)
	}
	return `SELECT ` + counts + ` FROM (SELECT uid` + has + ` FROM (` + searchMatches(nw, terms) + `) w GROUP BY uid) u`
}

// searchRankSQL scores each version having words that start with the
// query words as Bolt does in Go, with the same float4 and float8
// operations in the same order, so that scores and ties come out alike: a
// word's score is weight/10 (×0.6 for a longer word), the best of the
// version's words for it; the version's score the sum of each score × the
// word's idf (%[3]s, an array computed in Go: Go's log is Bolt's), ×
// coverage² (%[6]s, the share of the query words it has). It groups the
// matches (searchScored, %[1]s) by version once; %[2]s is the sum.
//
// Best first, then by uid, it keeps the first %[11]s (the bound: NULL for
// all) in a bounded sort (PostgreSQL's top-N heapsort, not a sort of every
// match), then each artifact's live latest version among them (its uid
// ends in the base62 digits of latest, %[4]s), looked up for each
// candidate in turn until %[5]s (the limit) are found, and returns those
// with their records. %[9]s is an OFFSET (for the pages of PhraseRank) and
// %[10]s the annotations' column, or empty. Fewer rows than the limit from
// a bound smaller than the matches means the bound cut live versions out:
// searchPage runs the statement again without it. Each row has, after
// the score and fields, %[12]s: for one query word the number of
// versions that match (a window over them all), else 0.
const searchRankSQL = `WITH d AS (
	SELECT uid, bit_or(fields) AS fields, %[6]s AS cover, %[2]s AS sum
	FROM (%[1]s) w GROUP BY uid),
r AS (
	SELECT uid, fields, score, n FROM (
		SELECT uid, fields, sum * cover * cover AS score, %[12]s AS n FROM d ORDER BY score DESC, uid LIMIT %[11]s) s
	WHERE (SELECT %[4]s FROM artifacts a WHERE a.stem = substr(s.uid, 1, %[7]d) AND a.latest > 0) = substr(s.uid, %[8]d)
	%[9]s LIMIT %[5]s)
SELECT r.score, r.fields, r.n, v.rec%[10]s FROM r JOIN versions v ON v.uid = r.uid ORDER BY r.score DESC, r.uid`

// searchRank is searchRankSQL for nw query words: $1…$(2nw) the words'
// ranges, with terms the three arrays of termArgs, then the idf array,
// the limit, the bound and the offset; with paged, each row ends with the
// version's annotations (NULL: none).
func searchRank(nw int, paged, terms bool) string {
	n := 2 * nw // the parameters before idf
	if terms {
		n += 3
	}
	idf := fmt.Sprintf("$%d::float8[]", n+1)
	sum, cover := "0::float8", ""
	for i := 1; i <= nw; i++ {
		sum = fmt.Sprintf("(%s + COALESCE(max(sc) FILTER (WHERE i = %d), 0)::float8 * (%s)[%d])", sum, i, idf, i)
		if i > 1 {
			cover += " + "
		}
		cover += fmt.Sprintf("bool_or(i = %d)::int", i)
	}
	// The number of query words matched as a bigint, as count(*) of the
	// version's (version, word) groups was: the same float8.
	cover = fmt.Sprintf("(%s)::int8::float8 / %d::float8", cover, nw)
	offset, annotations := fmt.Sprintf("OFFSET $%d", n+4), ""
	if paged {
		annotations = ", (SELECT n.rec FROM annotations n WHERE n.uid = r.uid)"
	}
	counted := "0::int8"
	if nw == 1 {
		counted = "count(*) OVER ()"
	}
	return fmt.Sprintf(searchRankSQL, searchScored(nw, terms), sum, idf, latestDigits, fmt.Sprintf("$%d", n+2), cover, ref.StemLen, ref.StemLen+1,
		offset, annotations, fmt.Sprintf("$%d::int8", n+3), counted)
}

// searchBound is how many of the best matches searchRankSQL sorts for a
// statement that returns up to want rows: room for as many again that are
// not their artifact's live latest version, and some.
func searchBound(want int) int { return 2*want + 100 }

// latestDigits is what ref.VersionUID appends to a stem for a.latest, in
// SQL: the number's four base62 digits.
var latestDigits = func() string {
	var digits []byte // base62, as ref.VersionUID writes them
	for i := 1; i <= 62; i++ {
		uid := ref.VersionUID(strings.Repeat("0", ref.StemLen), i)
		digits = append(digits, uid[len(uid)-1])
	}
	digit := func(div int) string {
		return fmt.Sprintf("substr('%s', ((a.latest - 1) / %d) %% 62 + 1, 1)", digits, div)
	}
	return digit(62*62*62) + " || " + digit(62*62) + " || " + digit(62) + " || " + digit(1)
}()

// Search ranks as Bolt does (tf·idf over the word index, a prefix of a
// longer word at 0.6, squared coverage of the query's words), in SQL: two
// statements in one snapshot (the words' statistics, then the ranking,
// which returns only the versions asked for). They are planned for their
// words each time (customPlans: a generic plan cannot tell a rare key's
// range of words from a common word's). With short query words the
// ranking returns pages of candidates with their annotations, which
// catalog.PhraseRank rescores as Bolt's Search does.
func (s *Store) Search(ctx context.Context, query string, limit int) ([]catalog.Hit, error) {
	return s.SearchWith(ctx, query, catalog.SearchOptions{Limit: limit})
}

// SearchWith is Search, finding versions by opts.TermNames too
// (catalog/search.go; searchMatches).
func (s *Store) SearchWith(ctx context.Context, query string, opts catalog.SearchOptions) ([]catalog.Hit, error) {
	limit := opts.Limit
	if limit <= 0 {
		limit = 20
	}
	words := catalog.Words(query)
	if len(words) == 0 {
		return nil, catalog.Invalidf("search for what? (give words of keys, descriptions, labels or terms)")
	}
	ranges := make([]any, 0, 2*len(words)+6)
	for _, w := range words {
		ranges = append(ranges, w, upper(w))
	}
	ms := catalog.TermMatches(words, opts.TermNames)
	terms := len(ms) > 0
	if terms {
		ranges = append(ranges, termArgs(ms)...)
	}
	var out []catalog.Hit
	err := s.read(ctx, func(tx pgx.Tx) error {
		out = []catalog.Hit{}
		if err := customPlans(ctx, tx); err != nil {
			return err
		}
		// One word: no statement for its idf (the grouping of every match
		// again), see oneWordScore.
		idf, matches, score := []float64{1}, int64(-1), oneWordScore
		if len(words) > 1 {
			var err error
			if idf, matches, err = searchIDF(ctx, tx, len(words), terms, ranges); err != nil {
				return err
			}
			score = nil
		}
		args := append(slices.Clip(ranges), idf)
		phrase := catalog.NewPhraseRank(query, limit).WithNames(opts.TermNames)
		if phrase == nil {
			_, err := searchPage(ctx, tx, searchRank(len(words), false, terms), args, 0, limit, matches, score, func(h catalog.Hit, _ float64, _ []byte) (bool, error) {
				out = append(out, h)
				return true, nil
			})
			return err
		}
		// Pages of candidates: a first of a few more than limit, which
		// usually settles it, then the rest PhraseRank may read.
		sql := searchRank(len(words), true, terms)
		for offset, n := 0, limit+16; n > 0; offset, n = offset+n, catalog.MaxRescored-offset-n {
			done := false
			rows, err := searchPage(ctx, tx, sql, args, offset, n, matches, score, func(h catalog.Hit, score float64, raw []byte) (bool, error) {
				if done = phrase.Done(score, h.Version.UID); done {
					return false, nil
				}
				return true, phrase.Add(h, score, raw)
			})
			if err != nil {
				return err
			}
			if done || rows < n {
				break
			}
		}
		out = phrase.Hits()
		return nil
	})
	return out, err
}

// searchPage runs a searchRank statement for up to n rows from offset
// and calls fn with them as searchRows does; it returns the rows read.
// matches is the number of versions that match (searchIDF), -1 when not
// known (one query word: the rows tell). When it is more than the bound
// (searchBound), the statement sorts only the best of them, and if that
// comes back short (the best were mostly older or trashed versions) it
// runs again without the bound for the rest. score, if not nil, turns
// the statement's scores into Search's (oneWordScore).
func searchPage(ctx context.Context, tx pgx.Tx, sql string, args []any, offset, n int, matches int64, score func(float64, int64) float64,
	fn func(h catalog.Hit, score float64, annotations []byte) (bool, error)) (int, error) {
	var bound any // NULL: LIMIT ALL
	b := int64(searchBound(offset + n))
	if matches < 0 || b < matches {
		bound = b
	}
	rows, more := 0, true
	for {
		counted := int64(-1)
		err := searchRows(ctx, tx, sql, append(slices.Clip(args), n-rows, bound, offset+rows), func(h catalog.Hit, sc float64, count int64, raw []byte) (bool, error) {
			rows++
			counted = count
			if score != nil {
				sc = score(sc, count)
			}
			h.Score = catalog.RoundScore(sc)
			var err error
			more, err = fn(h, sc, raw)
			return more, err
		})
		if err != nil || !more || rows >= n || bound == nil || matches < 0 && counted >= 0 && counted <= b {
			return rows, err
		}
		bound = nil
	}
}

// oneWordScore is Search's score of a version for one query word, from
// the statement's, which ranked with an idf of 1: the version's best score
// for the word (sc). Every version that matches has the word, so n (the
// number of them) is the word's document frequency, and score × idf does
// not change their order (idf > 0; the scores are float4, and a product
// in float8 keeps distinct ones apart). As searchRankSQL computes it:
// (0 + sc × idf) × coverage², with a coverage of 1.
func oneWordScore(sc float64, n int64) float64 {
	idf := math.Log(1 + float64(n+1)/float64(n))
	return (0 + float64(sc*idf)) * 1 * 1
}

// searchRows runs a searchRank statement and calls fn with each hit (its
// Score not set), its unrounded score, the statement's count of matches
// (searchRankSQL) and, for a paged statement, its annotations' JSON (nil
// without), until fn returns false.
func searchRows(ctx context.Context, tx pgx.Tx, sql string, args []any, fn func(h catalog.Hit, score float64, n int64, annotations []byte) (bool, error)) error {
	rows, err := tx.Query(ctx, sql, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var score float64
		var fields int16
		var n int64
		var raw, ann []byte
		dest := []any{&score, &fields, &n, &raw}
		if len(rows.FieldDescriptions()) > 4 {
			dest = append(dest, &ann)
		}
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		v, err := decode(raw)
		if err != nil {
			return err
		}
		h := catalog.Hit{Version: v}
		for i, name := range catalog.SearchFields {
			if fields&(1<<i) != 0 {
				h.Fields = append(h.Fields, name)
			}
		}
		if more, err := fn(h, score, n, ann); err != nil || !more {
			return err
		}
	}
	return rows.Err()
}

// searchIDF returns the inverse document frequency of each query word,
// log(1 + n/df) with n the versions having any word plus one, as Bolt
// computes it, and the number of versions having any word.
func searchIDF(ctx context.Context, tx pgx.Tx, nw int, terms bool, args []any) ([]float64, int64, error) {
	counts := make([]int64, nw+1) // n, then df of each word
	dest := make([]any, len(counts))
	for i := range counts {
		dest[i] = &counts[i]
	}
	if err := tx.QueryRow(ctx, searchStats(nw, terms), args...).Scan(dest...); err != nil {
		return nil, 0, err
	}
	n, df := counts[0], counts[1:]
	idf := make([]float64, nw)
	for i := range idf {
		if df[i] > 0 {
			idf[i] = math.Log(1 + float64(n+1)/float64(df[i]))
		}
	}
	return idf, n, nil
}

// ---- collections ----

func latestCollection(ctx context.Context, tx pgx.Tx, name string) (catalog.Collection, bool, error) {
	var c catalog.Collection
	ok, err := getJSON(ctx, tx, `SELECT rec FROM collections WHERE name = $1 ORDER BY version DESC LIMIT 1`, &c, name)
	return c, ok, err
}

func (s *Store) SaveCollection(ctx context.Context, nc catalog.NewCollection) (catalog.Collection, error) {
	if err := catalog.CheckName("collection", nc.Name); err != nil {
		return catalog.Collection{}, err
	}
	if len(nc.Members) == 0 {
		return catalog.Collection{}, catalog.Invalidf("collection %q has no members", nc.Name)
	}
	if nc.CreatedAt.IsZero() {
		nc.CreatedAt = time.Now()
	}
	var out catalog.Collection
	err := s.write(ctx, func(tx pgx.Tx, changed func(...string)) error {
		seen := map[string]bool{}
		for _, u := range nc.Members {
			if seen[u] {
				return catalog.Invalidf("collection %q lists %s twice", nc.Name, u)
			}
			seen[u] = true
		}
		// FOR SHARE: a purge (READ COMMITTED) of a member waits for this
		// commit, or makes this transaction retry.
		found, err := strings_(ctx, tx, `SELECT uid FROM versions WHERE uid = ANY($1) FOR SHARE`, nc.Members)
		if err != nil {
			return err
		}
		if len(found) != len(nc.Members) {
			have := map[string]bool{}
			for _, u := range found {
				have[u] = true
			}
			for _, u := range nc.Members {
				if !have[u] {
					return errorf(ErrNotFound, "collection %q: no version has uid %s", nc.Name, u)
				}
			}
		}
		last, ok, err := latestCollection(ctx, tx, nc.Name)
		if err != nil {
			return err
		}
		if ok && slices.Equal(last.Members, nc.Members) && (nc.Description == "" || nc.Description == last.Description) {
			out = last
			out.Unchanged = true
			return nil
		}
		// A name deleted before continues after its highest number, so
		// that an old NAME@vN never names the new list; its versions hold
		// that number from now on.
		var gone int
		if err := tx.QueryRow(ctx, `DELETE FROM collections_deleted WHERE name = $1 RETURNING version`, nc.Name).Scan(&gone); err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		out = catalog.Collection{Name: nc.Name, Version: max(last.Version, gone) + 1, Description: nc.Description,
			Members: nc.Members, CreatedBy: nc.CreatedBy, CreatedAt: nc.CreatedAt.UTC()}
		changed(catalog.CollectionChange(out.Name))
		return putJSON(ctx, tx, `INSERT INTO collections (name, version, rec) VALUES ($1, $2, $3)`, out, out.Name, out.Version)
	})
	return out, err
}

func (s *Store) Collections(ctx context.Context) ([]catalog.Collection, error) {
	return listJSON[catalog.Collection](ctx, s, `SELECT DISTINCT ON (name) rec FROM collections ORDER BY name, version DESC`)
}

func (s *Store) CollectionVersions(ctx context.Context, name string) ([]catalog.Collection, error) {
	var out []catalog.Collection
	if err := catalog.CheckLookup("collection", name); err != nil {
		return nil, err
	}
	err := s.read(ctx, func(tx pgx.Tx) error {
		var err error
		out, err = collectionRecords(ctx, tx, name, `SELECT rec FROM collections WHERE name = $1 ORDER BY version`)
		return err
	})
	return out, err
}

func (s *Store) Collection(ctx context.Context, name string, n int) (catalog.Collection, error) {
	var out catalog.Collection
	if err := catalog.CheckLookup("collection", name); err != nil {
		return out, err
	}
	err := s.read(ctx, func(tx pgx.Tx) error {
		out = catalog.Collection{} // a retried read starts over (Versions is appended to)
		var ok bool
		var err error
		if n == 0 {
			out, ok, err = latestCollection(ctx, tx, name)
		} else {
			ok, err = getJSON(ctx, tx, `SELECT rec FROM collections WHERE name = $1 AND version = $2`, &out, name, n)
		}
		if err != nil {
			return err
		}
		if !ok {
			all, err := strings_(ctx, tx, `SELECT DISTINCT name FROM collections ORDER BY name`)
			if err != nil {
				return err
			}
			if n > 0 && slices.Contains(all, name) {
				return errorf(ErrNotFound, "collection %q has no version %d", name, n)
			}
			return errorf(ErrNotFound, "no collection %q%s", name, catalog.DidYouMean(catalog.Closest(name, all)))
		}
		vs, err := collectVersions(tx.Query(ctx, `SELECT rec FROM versions WHERE uid = ANY($1)`, out.Members))
		if err != nil {
			return err
		}
		byUID := map[string]Version{}
		for _, v := range vs {
			byUID[v.UID] = v
		}
		for _, u := range out.Members {
			if v, ok := byUID[u]; ok {
				out.Versions = append(out.Versions, v)
			}
		}
		return nil
	})
	return out, err
}

func jsonUnmarshal(raw []byte, v any) error {
	if err := json.Unmarshal(raw, v); err != nil {
		return errorf(catalog.ErrSchema, "catalog: record: %v", err)
	}
	return nil
}

// collectionRecords runs query (its $1 the name) for the records of the
// collection name's versions: ErrNotFound, with the closest name, when
// there are none.
func collectionRecords(ctx context.Context, tx pgx.Tx, name, query string) ([]catalog.Collection, error) {
	rows, err := tx.Query(ctx, query, name)
	if err != nil {
		return nil, err
	}
	raws, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return nil, err
	}
	var out []catalog.Collection
	for _, raw := range raws {
		var c catalog.Collection
		if err := json.Unmarshal(raw, &c); err != nil {
			return nil, errorf(catalog.ErrSchema, "catalog: record: %v", err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		all, err := strings_(ctx, tx, `SELECT DISTINCT name FROM collections ORDER BY name`)
		if err != nil {
			return nil, err
		}
		return nil, errorf(ErrNotFound, "no collection %q%s", name, catalog.DidYouMean(catalog.Closest(name, all)))
	}
	return out, nil
}
