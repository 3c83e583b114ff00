package catalog

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/lamina-bio/lamina/ref"
	bolt "go.etcd.io/bbolt"
)

// Buckets of features, labels, schemas, annotations and collections, and
// the indexes that answer Find and Search (docs/annotate.md has the why):
//
//	features      name → JSON Feature
//	labels        name → JSON Label
//	schemas       name → JSON Schema
//	annotations   uid → JSON Annotations
//	idx_features  feature 0x00 value-key 0x00 uid → key   value-key: 't'+text,
//	              'n'+8-byte order-preserving float64 (+2 bytes for an int
//	              beyond it, intKey), 'd'+8-byte biased unix ns
//	idx_labels    label 0x00 uid → key
//	idx_terms     term id 0x00 uid → key
//	idx_words     word 0x00 uid → [weight, field bits]   (every version)
//	collections   name 0x00 big-endian uint32 version → JSON Collection
//	collections_deleted  name → JSON DeletedCollection (schema 8)
//
// Every index entry ends in the 20-byte uid and holds the artifact's key,
// so a range scan yields uids Find can order by key without decoding
// anything; Find (bolt_find.go) then decodes versions only for the rows it
// returns.
var (
	bFeatures    = []byte("features")
	bLabels      = []byte("labels")
	bSchemas     = []byte("schemas")
	bAnnotations = []byte("annotations")
	bFeatureIdx  = []byte("idx_features")
	bLabelIdx    = []byte("idx_labels")
	bTermIdx     = []byte("idx_terms")
	bWords       = []byte("idx_words")
	bCollections = []byte("collections")
	// bCollectionsDeleted holds the highest number of each deleted
	// collection's name until it is made again (DeletedCollection).
	bCollectionsDeleted = []byte("collections_deleted")
)

var annotateBuckets = [][]byte{bFeatures, bLabels, bSchemas, bAnnotations, bFeatureIdx, bLabelIdx, bTermIdx, bWords, bCollections, bCollectionsDeleted}

// initAnnotate creates the buckets and, once per catalog, indexes the words
// of versions recorded before the word index existed.
func initAnnotate(tx *bolt.Tx) error {
	for _, name := range annotateBuckets {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	m := tx.Bucket(bMeta)
	if m.Get([]byte("words")) != nil {
		return nil
	}
	t := txn{tx}
	err := tx.Bucket(bVersions).ForEach(func(k, raw []byte) error {
		v, err := decodeVersion(raw)
		if err != nil {
			return fmt.Errorf("catalog: version %s: %w", k, err)
		}
		a, err := t.annotations(v.UID)
		if err != nil {
			return err
		}
		return t.putWords(docWords(v, a))(v.UID)
	})
	if err != nil {
		return err
	}
	return m.Put([]byte("words"), []byte("1"))
}

// reindexAll rebuilds the feature, label, term and word indexes from the
// versions and their annotations. setUp runs it once, when it records
// schema 6: until 6 a rename left a version's entries on its old key (Find
// paged and ordered by it, Search found the old key's words and not the
// new one's), and until 5 an int was keyed by its nearest float64.
func reindexAll(tx *bolt.Tx) error {
	for _, name := range [][]byte{bFeatureIdx, bLabelIdx, bTermIdx, bWords} {
		if err := tx.DeleteBucket(name); err != nil {
			return err
		}
		if _, err := tx.CreateBucket(name); err != nil {
			return err
		}
	}
	t := txn{tx}
	var b saveBatch // written sorted at the end, as Load does
	err := tx.Bucket(bVersions).ForEach(func(k, raw []byte) error {
		v, err := decodeVersion(raw)
		if err != nil {
			return fmt.Errorf("catalog: version %s: %w", k, err)
		}
		a, err := t.annotations(v.UID)
		if err != nil {
			return err
		}
		return t.indexIn(v, a, &b)
	})
	if err != nil {
		return err
	}
	return b.flush(t)
}

// annotateReady reports whether initAnnotate has nothing left to do (its
// buckets are checked by the caller).
func annotateReady(tx *bolt.Tx) bool { return tx.Bucket(bMeta).Get([]byte("words")) != nil }

// afterSave indexes a new version's words (bolt.go calls it).
func (t txn) afterSave(v Version) error {
	if t.tx.Bucket(bWords) == nil {
		return nil
	}
	return t.putWords(docWords(v, Annotations{}))(v.UID)
}

// afterPurge drops a purged version's annotations and index entries.
func (t txn) afterPurge(v Version) error {
	if t.tx.Bucket(bWords) == nil {
		return nil
	}
	a, err := t.annotations(v.UID)
	if err != nil {
		return err
	}
	if err := t.unindex(v, a); err != nil {
		return err
	}
	return t.tx.Bucket(bAnnotations).Delete([]byte(v.UID))
}

func idxKey(parts ...[]byte) []byte {
	return bytes.Join(parts, []byte{0})
}

// bucket returns a bucket that may be missing in a catalog opened
// read-only before initAnnotate ran; reads treat it as empty.
func (t txn) bucket(name []byte) *bolt.Bucket { return t.tx.Bucket(name) }

// ---- features, labels, schemas ----

func (b *Bolt) CreateFeature(ctx context.Context, f Feature) (Feature, error) {
	if err := CheckName("feature", f.Name); err != nil {
		return Feature{}, err
	}
	if _, ok := builtins[f.Name]; ok {
		return Feature{}, Invalidf("%q is a field of every version; choose another feature name", f.Name)
	}
	dt, err := ParseDtype(f.Dtype)
	if err != nil {
		return Feature{}, err
	}
	f.Dtype = dt
	if f.CreatedAt.IsZero() {
		f.CreatedAt = time.Now()
	}
	f.CreatedAt = f.CreatedAt.UTC()
	err = b.with(true, func(tx *bolt.Tx) error {
		bk := tx.Bucket(bFeatures)
		var old Feature
		if ok, err := getJSON(bk, []byte(f.Name), &old); err != nil {
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
		}
		return putJSON(bk, []byte(f.Name), f)
	})
	return f, err
}

func listJSON[T any](b *Bolt, bucket []byte) ([]T, error) {
	out := []T{}
	err := b.with(false, func(tx *bolt.Tx) error {
		bk := tx.Bucket(bucket)
		if bk == nil {
			return nil
		}
		return bk.ForEach(func(k, raw []byte) error {
			var x T
			if err := json.Unmarshal(raw, &x); err != nil {
				return fmt.Errorf("catalog: %s %q: %w", bucket, k, err)
			}
			out = append(out, x)
			return nil
		})
	})
	return out, err
}

func (b *Bolt) Features(ctx context.Context) ([]Feature, error) {
	return listJSON[Feature](b, bFeatures)
}
func (b *Bolt) Labels(ctx context.Context) ([]Label, error)   { return listJSON[Label](b, bLabels) }
func (b *Bolt) Schemas(ctx context.Context) ([]Schema, error) { return listJSON[Schema](b, bSchemas) }

func names(bk *bolt.Bucket) []string {
	var out []string
	if bk != nil {
		bk.ForEach(func(k, _ []byte) error { out = append(out, string(k)); return nil })
	}
	return out
}

func (t txn) feature(name string) (Feature, error) {
	var f Feature
	bk := t.bucket(bFeatures)
	if bk != nil {
		if ok, err := getJSON(bk, []byte(name), &f); err != nil || ok {
			return f, err
		}
	}
	return f, lookupErr("feature", name, errorf(ErrNotFound, "no feature %q%s (lamina feature ls; lamina feature create)", name, didYouMean(closest(name, names(bk)))))
}

func (t txn) label(name string) (Label, error) {
	var l Label
	bk := t.bucket(bLabels)
	if bk != nil {
		if ok, err := getJSON(bk, []byte(name), &l); err != nil || ok {
			return l, err
		}
	}
	return l, lookupErr("label", name, errorf(ErrNotFound, "no label %q%s (lamina label create %s)", name, didYouMean(closest(name, names(bk))), name))
}

func (b *Bolt) CreateLabel(ctx context.Context, l Label) (Label, error) {
	if err := CheckName("label", l.Name); err != nil {
		return Label{}, err
	}
	if l.CreatedAt.IsZero() {
		l.CreatedAt = time.Now()
	}
	l.CreatedAt = l.CreatedAt.UTC()
	err := b.with(true, func(tx *bolt.Tx) error {
		t := txn{tx}
		if l.Parent != "" {
			if l.Parent == l.Name {
				return Invalidf("label %q cannot be its own parent", l.Name)
			}
			if _, err := t.label(l.Parent); err != nil {
				return err
			}
			// No cycles: the parent must not sit below the label.
			for p := l.Parent; p != ""; {
				pl, err := t.label(p)
				if err != nil {
					break
				}
				if pl.Parent == l.Name {
					return Invalidf("%q is below %q; it cannot be its parent", l.Parent, l.Name)
				}
				p = pl.Parent
			}
		}
		bk := tx.Bucket(bLabels)
		var old Label
		if ok, err := getJSON(bk, []byte(l.Name), &old); err != nil {
			return err
		} else if ok {
			if l.Parent == "" || l.Parent == old.Parent {
				l = old
				return nil
			}
			old.Parent = l.Parent
			l = old
		}
		return putJSON(bk, []byte(l.Name), l)
	})
	return l, err
}

func (b *Bolt) CreateSchema(ctx context.Context, s Schema) (Schema, error) {
	if err := CheckName("schema", s.Name); err != nil {
		return Schema{}, err
	}
	if len(s.Features) == 0 {
		return Schema{}, Invalidf("schema %q lists no features", s.Name)
	}
	if s.CreatedAt.IsZero() {
		s.CreatedAt = time.Now()
	}
	s.CreatedAt = s.CreatedAt.UTC()
	err := b.with(true, func(tx *bolt.Tx) error {
		t := txn{tx}
		seen := map[string]bool{}
		for _, sf := range s.Features {
			if seen[sf.Feature] {
				return Invalidf("schema %q lists feature %q twice", s.Name, sf.Feature)
			}
			seen[sf.Feature] = true
			if _, err := t.feature(sf.Feature); err != nil {
				return err
			}
		}
		return putJSON(tx.Bucket(bSchemas), []byte(s.Name), s)
	})
	return s, err
}

// ---- annotations ----

func (t txn) annotations(uid string) (Annotations, error) {
	a := Annotations{UID: uid}
	bk := t.bucket(bAnnotations)
	if bk == nil {
		return a, nil
	}
	_, err := getJSON(bk, []byte(uid), &a)
	a.UID = uid
	return a, err
}

func (b *Bolt) Annotations(ctx context.Context, uid string) (Annotations, error) {
	var a Annotations
	err := b.with(false, func(tx *bolt.Tx) error {
		t := txn{tx}
		if _, ok, err := t.version(uid); err != nil {
			return err
		} else if !ok {
			return errorf(ErrNotFound, "no version has uid %s", uid)
		}
		var err error
		if a, err = t.annotations(uid); err != nil {
			return err
		}
		a, err = t.shown(a)
		return err
	})
	return a, err
}

// shown is a as the store returns it: an old float -0 as 0
// (OldNegZeroAsZero).
func (t txn) shown(a Annotations) (Annotations, error) {
	return OldNegZeroAsZero(a, func(name string) (string, error) {
		f, err := t.feature(name)
		return f.Dtype, err
	})
}

func (b *Bolt) Annotate(ctx context.Context, uid string, add Annotations) (Annotations, error) {
	var out Annotations
	if err := CheckAnnotationsText(add); err != nil {
		return out, err
	}
	err := b.with(true, func(tx *bolt.Tx) error {
		t := txn{tx}
		var err error
		if out, err = t.annotate(uid, add); err != nil {
			return err
		}
		out, err = t.shown(out)
		return err
	})
	return out, err
}

// annotate adds to uid's annotations and returns them all. It writes
// only what changed: curating an unchanged 60,000-gene table again
// deleted and rewrote every index entry.
func (t txn) annotate(uid string, add Annotations) (Annotations, error) {
	v, ok, err := t.version(uid)
	if err != nil {
		return Annotations{}, err
	}
	if !ok {
		return Annotations{}, errorf(ErrNotFound, "no version has uid %s", uid)
	}
	old, err := t.annotations(uid)
	if err != nil {
		return Annotations{}, err
	}
	next, err := t.merge(old, add)
	if err != nil {
		return Annotations{}, err
	}
	if err := t.reindex(v, v, old, next); err != nil {
		return Annotations{}, err
	}
	raw, err := json.Marshal(next)
	if err != nil {
		return Annotations{}, err
	}
	bk := t.tx.Bucket(bAnnotations)
	if bytes.Equal(bk.Get([]byte(uid)), raw) {
		return next, nil
	}
	return next, bk.Put([]byte(uid), raw)
}

// Unannotate removes from uid's annotations (see Annotator) and from
// the indexes, writing only the entries that go.
func (b *Bolt) Unannotate(ctx context.Context, uid string, remove Annotations) (Annotations, error) {
	var out Annotations
	err := b.with(true, func(tx *bolt.Tx) error {
		t := txn{tx}
		v, ok, err := t.version(uid)
		if err != nil {
			return err
		}
		if !ok {
			return errorf(ErrNotFound, "no version has uid %s", uid)
		}
		old, err := t.annotations(uid)
		if err != nil {
			return err
		}
		next, err := unannotated(v, old, remove, func(name string) (string, error) {
			f, err := t.feature(name)
			return f.Dtype, err
		})
		if err != nil {
			return err
		}
		if err := t.reindex(v, v, old, next); err != nil {
			return err
		}
		if out, err = t.shown(next); err != nil {
			return err
		}
		bk := tx.Bucket(bAnnotations)
		if next.IsZero() { // as if never annotated
			return bk.Delete([]byte(uid))
		}
		raw, err := json.Marshal(next)
		if err != nil {
			return err
		}
		return bk.Put([]byte(uid), raw)
	})
	if err != nil {
		return Annotations{}, err
	}
	return out, nil
}

// merge checks add and returns old plus add, each list sorted and unique.
func (t txn) merge(old, add Annotations) (Annotations, error) {
	next := Annotations{UID: old.UID, Schema: old.Schema, Features: map[string][]string{}}
	for k, vs := range old.Features {
		next.Features[k] = append([]string(nil), vs...)
	}
	for name, vs := range add.Features {
		f, err := t.feature(name)
		if err != nil {
			return Annotations{}, err
		}
		texts := make([]string, len(vs))
		for i, raw := range vs {
			text, _, err := normalize(f.Dtype, raw)
			if err != nil {
				return Annotations{}, fmt.Errorf("feature %s (%s): %w", name, f.Dtype, err)
			}
			texts[i] = text
		}
		for _, text := range texts {
			if f.Entity() != "ULabel" {
				break
			}
			if _, err := t.label(text); err != nil {
				return Annotations{}, fmt.Errorf("feature %s (%s): %w", name, f.Dtype, err)
			}
		}
		next.Features[name] = addUnique(next.Features[name], texts, same)
		sort.Strings(next.Features[name])
	}
	if len(next.Features) == 0 {
		next.Features = nil
	}
	for _, l := range add.Labels {
		if _, err := t.label(l); err != nil {
			return Annotations{}, err
		}
	}
	next.Labels = addUnique(slices.Clone(old.Labels), add.Labels, same)
	sort.Strings(next.Labels)
	for _, tm := range add.Terms {
		if tm.ID == "" || strings.ContainsRune(tm.ID, 0) {
			return Annotations{}, Invalidf("ontology term without an id")
		}
	}
	next.Terms = addUnique(slices.Clone(old.Terms), add.Terms, termID)
	sort.Slice(next.Terms, func(i, j int) bool { return next.Terms[i].ID < next.Terms[j].ID })
	if add.Schema != "" {
		if _, ok, err := getJSONSchema(t, add.Schema); err != nil {
			return Annotations{}, err
		} else if !ok {
			return Annotations{}, errorf(ErrNotFound, "no schema %q", add.Schema)
		}
		next.Schema = add.Schema
	}
	return next, nil
}

func same(s string) string { return s }
func termID(t Term) string { return t.ID }

func getJSONSchema(t txn, name string) (Schema, bool, error) {
	var s Schema
	bk := t.bucket(bSchemas)
	if bk == nil {
		return s, false, nil
	}
	ok, err := getJSON(bk, []byte(name), &s)
	return s, ok, err
}

// indexEntries lists the index keys of a's features, labels and terms.
func (t txn) indexEntries(uid string, a Annotations) (feats, labels, terms [][]byte, err error) {
	u := []byte(uid)
	for name, vs := range a.Features {
		f, err := t.feature(name)
		if err != nil {
			continue // a feature deleted since: its values are not indexed
		}
		for _, v := range vs {
			_, k, err := normalize(f.Dtype, v)
			if err != nil {
				continue
			}
			feats = append(feats, idxKey([]byte(name), k, u))
		}
	}
	for _, l := range a.Labels {
		labels = append(labels, idxKey([]byte(l), u))
	}
	for _, tm := range a.Terms {
		terms = append(terms, idxKey([]byte(tm.ID), u))
	}
	return feats, labels, terms, nil
}

// indexIn writes v's index entries, or adds them to b when not nil.
func (t txn) indexIn(v Version, a Annotations, b *saveBatch) error {
	f, l, tm, err := t.indexEntries(v.UID, a)
	if err != nil {
		return err
	}
	for _, x := range []struct {
		b    []byte
		keys [][]byte
	}{{bFeatureIdx, f}, {bLabelIdx, l}, {bTermIdx, tm}} {
		bk := t.tx.Bucket(x.b)
		for _, k := range x.keys {
			if b != nil {
				b.put(x.b, k, []byte(v.Key))
			} else if err := bk.Put(k, []byte(v.Key)); err != nil {
				return err
			}
		}
	}
	if b != nil {
		t.deferWords(b, v, a)
		return nil
	}
	return t.putWords(docWords(v, a))(v.UID)
}

func (t txn) unindex(v Version, a Annotations) error {
	f, l, tm, err := t.indexEntries(v.UID, a)
	if err != nil {
		return err
	}
	for _, x := range []struct {
		b    []byte
		keys [][]byte
	}{{bFeatureIdx, f}, {bLabelIdx, l}, {bTermIdx, tm}} {
		bk := t.tx.Bucket(x.b)
		for _, k := range x.keys {
			if err := bk.Delete(k); err != nil {
				return err
			}
		}
	}
	bk := t.tx.Bucket(bWords)
	for w := range docWords(v, a) {
		if err := bk.Delete(idxKey([]byte(w), []byte(v.UID))); err != nil {
			return err
		}
	}
	return nil
}

// moveIndex turns the index entries of version was into those of v, the
// same version under another key: the feature, label and term entries hold
// the key (Find filters, pages and orders by it), and the words of the key
// are searchable, so the old key's go and the new key's come.
func (t txn) moveIndex(was, v Version) error {
	if t.tx.Bucket(bWords) == nil {
		return nil
	}
	a, err := t.annotations(v.UID)
	if err != nil {
		return err
	}
	return t.reindex(was, v, a, a)
}

// reindex turns the index entries of version was annotated with old into
// those of v annotated with next (v is was, or was under another key): it
// deletes the entries only the first have and puts those of v that are
// missing or hold another value, so annotating with the same values
// writes nothing and adding one writes one entry.
func (t txn) reindex(was, v Version, old, next Annotations) error {
	of, ol, otm, err := t.indexEntries(v.UID, old)
	if err != nil {
		return err
	}
	nf, nl, ntm, err := t.indexEntries(v.UID, next)
	if err != nil {
		return err
	}
	key := []byte(v.Key)
	var ow, nw [][]byte
	nwv := map[string][]byte{}
	for w, e := range docWords(v, next) {
		k := idxKey([]byte(w), []byte(v.UID))
		nw, nwv[string(k)] = append(nw, k), []byte{e[0], e[1]}
	}
	for w := range docWords(was, old) {
		ow = append(ow, idxKey([]byte(w), []byte(v.UID)))
	}
	for _, x := range []struct {
		b         []byte
		old, next [][]byte
		vals      map[string][]byte // each key's value; nil: v's key
	}{{bFeatureIdx, of, nf, nil}, {bLabelIdx, ol, nl, nil}, {bTermIdx, otm, ntm, nil}, {bWords, ow, nw, nwv}} {
		bk := t.tx.Bucket(x.b)
		value := func(k []byte) []byte {
			if x.vals != nil {
				return x.vals[string(k)]
			}
			return key
		}
		keep := make(map[string]bool, len(x.next))
		for _, k := range x.next {
			keep[string(k)] = true
		}
		var drop [][]byte
		for _, k := range x.old {
			if !keep[string(k)] {
				drop = append(drop, k)
			}
		}
		// In key order, last first for deletes: bbolt inserts into and
		// deletes from a node's sorted slice, moving what follows, so
		// 50,000 keys in random order moved the node's tail each time
		// (quadratic: 15 s).
		slices.SortFunc(drop, func(a, b []byte) int { return bytes.Compare(b, a) })
		for _, k := range drop {
			if err := bk.Delete(k); err != nil {
				return err
			}
		}
		slices.SortFunc(x.next, bytes.Compare)
		for _, k := range x.next {
			if val := value(k); !bytes.Equal(bk.Get(k), val) {
				if err := bk.Put(k, val); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// Word weights (×10) and field bits of the word index.
const (
	fieldKey = 1 << iota
	fieldDescription
	fieldLabel
	fieldTerm
	fieldFeature
)

var fieldNames = []string{"key", "description", "label", "term", "feature"}

type wordEntry [2]byte // weight×10, field bits

func docWords(v Version, a Annotations) map[string]wordEntry {
	out := map[string]wordEntry{}
	add := func(text string, weight byte, field byte) {
		for _, w := range Words(text) {
			if len(w) > 64 {
				w = w[:64]
			}
			e := out[w]
			e[0] = max(e[0], weight)
			e[1] |= field
			out[w] = e
		}
	}
	add(v.Key, 30, fieldKey)
	add(v.Description, 20, fieldDescription)
	for _, l := range a.Labels {
		add(l, 20, fieldLabel)
	}
	for _, tm := range a.Terms {
		add(tm.Name, 20, fieldTerm)
	}
	for name, vs := range a.Features {
		for _, x := range vs {
			add(x, 15, fieldFeature)
		}
		_ = name
	}
	return out
}

// deferWords adds v's word index entries to b.
func (t txn) deferWords(b *saveBatch, v Version, a Annotations) {
	if t.tx.Bucket(bWords) == nil {
		return
	}
	for w, e := range docWords(v, a) {
		b.put(bWords, idxKey([]byte(w), []byte(v.UID)), e[:])
	}
}

func (t txn) putWords(ws map[string]wordEntry) func(uid string) error {
	return func(uid string) error {
		bk := t.tx.Bucket(bWords)
		for w, e := range ws {
			if err := bk.Put(idxKey([]byte(w), []byte(uid)), e[:]); err != nil {
				return err
			}
		}
		return nil
	}
}

// ---- Search ----

func (b *Bolt) Search(ctx context.Context, query string, limit int) ([]Hit, error) {
	return b.SearchWith(ctx, query, SearchOptions{Limit: limit})
}

// SearchWith is Search, finding versions by opts.TermNames too (search.go).
func (b *Bolt) SearchWith(ctx context.Context, query string, opts SearchOptions) ([]Hit, error) {
	limit := opts.Limit
	if limit <= 0 {
		limit = 20
	}
	words := Words(query)
	if len(words) == 0 {
		return nil, Invalidf("search for what? (give words of keys, descriptions, labels or terms)")
	}
	var out []Hit
	err := b.with(false, func(tx *bolt.Tx) error {
		t := txn{tx}
		bk := t.bucket(bWords)
		if bk == nil {
			return nil
		}
		// Scores live in one flat slice, len(words) per document, so that a
		// common word matching most of the catalog costs a map insert per
		// document and no other allocation.
		nw := len(words)
		docs := map[[ref.UIDLen]byte]int32{}
		var uids [][ref.UIDLen]byte
		var scores []float32
		var fields []byte
		df := make([]int, nw)
		post := func(i int, uid []byte, sc float32, field byte) {
			var ub [ref.UIDLen]byte
			copy(ub[:], uid)
			d, ok := docs[ub]
			if !ok {
				d = int32(len(uids))
				docs[ub] = d
				uids = append(uids, ub)
				scores = append(scores, make([]float32, nw)...)
				fields = append(fields, 0)
			}
			cell := &scores[int(d)*nw+i]
			if *cell == 0 {
				df[i]++
			}
			*cell = max(*cell, sc)
			fields[d] |= field
		}
		for i, w := range words {
			c := bk.Cursor()
			p := []byte(w)
			for k, val := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, val = c.Next() {
				if len(k) < ref.UIDLen+2 || len(val) < 2 {
					continue
				}
				wlen := len(k) - ref.UIDLen - 1
				sc := float32(val[0]) / 10
				if wlen != len(p) {
					sc *= 0.6 // a prefix of a longer word
				}
				post(i, k[len(k)-ref.UIDLen:], sc, val[1])
			}
		}
		// The versions annotated with a term whose names hold a query
		// word, as if they had recorded them (search.go).
		if tk := t.bucket(bTermIdx); tk != nil {
			c := tk.Cursor()
			for _, m := range TermMatches(words, opts.TermNames) {
				p := idxKey([]byte(m.ID), nil)
				for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
					if len(k) == len(p)+ref.UIDLen {
						post(m.I, k[len(p):], m.Score, fieldTerm)
					}
				}
			}
		}
		n := float64(len(uids) + 1)
		idf := make([]float64, nw)
		for i := range idf {
			if df[i] > 0 {
				idf[i] = math.Log(1 + n/float64(df[i]))
			}
		}
		ranked := make(scoredHeap, len(uids))
		for d := range uids {
			var sum float64
			matched := 0
			for i := 0; i < nw; i++ {
				if x := scores[d*nw+i]; x > 0 {
					matched++
					sum += float64(x) * idf[i]
				}
			}
			cover := float64(matched) / float64(nw)
			ranked[d] = scoredDoc{int32(d), sum * cover * cover, uids[d]}
		}
		// Best first, off a heap: only the documents looked at until
		// limit live ones are found get ordered. With short query words,
		// PhraseRank rescores them (search.go) until no later one can
		// make the results.
		ranked.init()
		c := tx.Bucket(bVersions).Cursor()
		phrase := NewPhraseRank(query, limit).WithNames(opts.TermNames)
		for len(ranked) > 0 {
			r := ranked.pop()
			if phrase != nil && phrase.Done(r.score, string(r.uid[:])) {
				break
			}
			v, live, err := liveVersion(c, r.uid[:], false) // bolt_find.go
			if err != nil {
				return err
			}
			if !live {
				continue
			}
			h := Hit{Version: v, Score: RoundScore(r.score)}
			for i, name := range fieldNames {
				if fields[r.d]&(1<<i) != 0 {
					h.Fields = append(h.Fields, name)
				}
			}
			if phrase != nil {
				var raw []byte
				if bk := t.bucket(bAnnotations); bk != nil {
					raw = bk.Get([]byte(v.UID))
				}
				if err := phrase.Add(h, r.score, raw); err != nil {
					return err
				}
				continue
			}
			out = append(out, h)
			if len(out) == limit {
				break
			}
		}
		if phrase != nil {
			out = phrase.Hits()
		}
		return nil
	})
	if out == nil {
		out = []Hit{}
	}
	return out, err
}

// scoredDoc is a document of Search with its score.
type scoredDoc struct {
	d     int32
	score float64
	uid   [ref.UIDLen]byte
}

// scoredHeap orders documents best first: higher score, then lower uid.
type scoredHeap []scoredDoc

func (h scoredHeap) less(i, j int) bool {
	if h[i].score != h[j].score {
		return h[i].score > h[j].score
	}
	return bytes.Compare(h[i].uid[:], h[j].uid[:]) < 0
}

func (h scoredHeap) init() {
	for i := len(h)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

func (h scoredHeap) down(i int) {
	n := len(h)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		j := l
		if r := l + 1; r < n && h.less(r, l) {
			j = r
		}
		if !h.less(j, i) {
			return
		}
		h[i], h[j] = h[j], h[i]
		i = j
	}
}

func (h *scoredHeap) pop() scoredDoc {
	old := *h
	top := old[0]
	old[0] = old[len(old)-1]
	*h = old[:len(old)-1]
	h.down(0)
	return top
}

// ---- collections ----

func collectionKey(name string, n int) []byte {
	k := append([]byte(name), 0, 0, 0, 0, 0)
	binary.BigEndian.PutUint32(k[len(k)-4:], uint32(n))
	return k
}

// deletedCollection returns the highest number the deleted collection
// name had (DeletedCollection), 0 for none.
func (t txn) deletedCollection(name string) (int, error) {
	var d DeletedCollection
	bk := t.bucket(bCollectionsDeleted)
	if bk == nil {
		return 0, nil
	}
	_, err := getJSON(bk, []byte(name), &d)
	return d.Version, err
}

func (t txn) latestCollection(name string) (Collection, bool, error) {
	var c Collection
	bk := t.bucket(bCollections)
	if bk == nil {
		return c, false, nil
	}
	p := append([]byte(name), 0)
	cur := bk.Cursor()
	k, _ := cur.Seek(collectionKey(name, math.MaxUint32))
	var raw []byte
	if k == nil {
		k, raw = cur.Last()
	} else {
		k, raw = cur.Prev()
	}
	if k == nil || !bytes.HasPrefix(k, p) || len(k) != len(p)+4 {
		return c, false, nil
	}
	return c, true, json.Unmarshal(raw, &c)
}

func (b *Bolt) SaveCollection(ctx context.Context, nc NewCollection) (Collection, error) {
	if err := CheckName("collection", nc.Name); err != nil {
		return Collection{}, err
	}
	if len(nc.Members) == 0 {
		return Collection{}, Invalidf("collection %q has no members", nc.Name)
	}
	if nc.CreatedAt.IsZero() {
		nc.CreatedAt = time.Now()
	}
	var out Collection
	err := b.with(true, func(tx *bolt.Tx) error {
		t := txn{tx}
		seen := map[string]bool{}
		for _, u := range nc.Members {
			if seen[u] {
				return Invalidf("collection %q lists %s twice", nc.Name, u)
			}
			seen[u] = true
			if _, ok, err := t.version(u); err != nil {
				return err
			} else if !ok {
				return errorf(ErrNotFound, "collection %q: no version has uid %s", nc.Name, u)
			}
		}
		last, ok, err := t.latestCollection(nc.Name)
		if err != nil {
			return err
		}
		if ok && slices.Equal(last.Members, nc.Members) && (nc.Description == "" || nc.Description == last.Description) {
			out = last
			out.Unchanged = true
			return nil
		}
		// A name deleted before continues after its highest number, so
		// that an old NAME@vN never names the new list.
		gone, err := t.deletedCollection(nc.Name)
		if err != nil {
			return err
		}
		out = Collection{Name: nc.Name, Version: max(last.Version, gone) + 1, Description: nc.Description,
			Members: nc.Members, CreatedBy: nc.CreatedBy, CreatedAt: nc.CreatedAt.UTC()}
		if gone > 0 {
			if err := tx.Bucket(bCollectionsDeleted).Delete([]byte(nc.Name)); err != nil {
				return err // its versions hold the highest number now
			}
		}
		return putJSON(tx.Bucket(bCollections), collectionKey(nc.Name, out.Version), out)
	})
	return out, err
}

func (b *Bolt) Collections(ctx context.Context) ([]Collection, error) {
	all, err := listJSON[Collection](b, bCollections)
	if err != nil {
		return nil, err
	}
	out := []Collection{}
	for i, c := range all {
		if i+1 < len(all) && all[i+1].Name == c.Name {
			continue // keys sort name, then version: keep the last of each name
		}
		out = append(out, c)
	}
	return out, nil
}

func (b *Bolt) Collection(ctx context.Context, name string, n int) (Collection, error) {
	var out Collection
	err := b.with(false, func(tx *bolt.Tx) error {
		t := txn{tx}
		var ok bool
		var err error
		if n == 0 {
			out, ok, err = t.latestCollection(name)
		} else if bk := t.bucket(bCollections); bk != nil {
			ok, err = getJSON(bk, collectionKey(name, n), &out)
		}
		if err != nil {
			return err
		}
		if !ok {
			all := t.collectionNames()
			if n > 0 && slices.Contains(all, name) {
				return errorf(ErrNotFound, "collection %q has no version %d", name, n)
			}
			return errorf(ErrNotFound, "no collection %q%s", name, didYouMean(closest(name, all)))
		}
		for _, u := range out.Members {
			v, found, err := t.version(u)
			if err != nil {
				return err
			}
			if found {
				out.Versions = append(out.Versions, v)
			}
		}
		return nil
	})
	return out, lookupErr("collection", name, err)
}

func (b *Bolt) CollectionVersions(ctx context.Context, name string) ([]Collection, error) {
	var out []Collection
	err := b.with(false, func(tx *bolt.Tx) error {
		t := txn{tx}
		if bk := t.bucket(bCollections); bk != nil {
			p := append([]byte(name), 0)
			cur := bk.Cursor()
			for k, raw := cur.Seek(p); k != nil && bytes.HasPrefix(k, p); k, raw = cur.Next() {
				if len(k) != len(p)+4 {
					continue
				}
				var c Collection
				if err := json.Unmarshal(raw, &c); err != nil {
					return fmt.Errorf("catalog: collection %q: %w", k, err)
				}
				out = append(out, c)
			}
		}
		if len(out) == 0 {
			return errorf(ErrNotFound, "no collection %q%s", name, didYouMean(closest(name, t.collectionNames())))
		}
		return nil
	})
	return out, lookupErr("collection", name, err)
}

// collectionsHolding returns the collection versions whose members may
// include one of uids (a record that holds none of them as bytes is not
// decoded).
func (t txn) collectionsHolding(uids []string) ([]Collection, error) {
	bk := t.bucket(bCollections)
	if bk == nil {
		return nil, nil
	}
	var out []Collection
	err := bk.ForEach(func(k, raw []byte) error {
		if !slices.ContainsFunc(uids, func(u string) bool { return bytes.Contains(raw, []byte(u)) }) {
			return nil
		}
		var c Collection
		if err := json.Unmarshal(raw, &c); err != nil {
			return fmt.Errorf("catalog: collection %q: %w", k, err)
		}
		out = append(out, c)
		return nil
	})
	return out, err
}

// collectionNames lists the name of every collection version (a name once
// per version), for suggestions.
func (t txn) collectionNames() []string {
	var all []string
	if bk := t.bucket(bCollections); bk != nil {
		bk.ForEach(func(k, _ []byte) error {
			all = append(all, string(k[:len(k)-5]))
			return nil
		})
	}
	return all
}

var _ Annotator = (*Bolt)(nil)

// AnnotateBatch adds each element's annotations to the version its UID
// names, all in one transaction (for imports and benchmarks: one fsync
// instead of one per version). It is all or nothing.
func (b *Bolt) AnnotateBatch(ctx context.Context, adds []Annotations) error {
	return b.with(true, func(tx *bolt.Tx) error {
		t := txn{tx}
		for _, add := range adds {
			if _, err := t.annotate(add.UID, add); err != nil {
				return err
			}
		}
		return nil
	})
}
