package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/lamina-bio/lamina/ref"
	bolt "go.etcd.io/bbolt"
)

// Deleting features, labels and schemas (Annotator.DeleteFeature, …). Each
// checks what uses the record and removes it in one write transaction, so
// an Annotate cannot add a use between the check and the removal. Uses
// of a feature or label are read from the indexes, which hold every
// version, trashed ones too; a schema's from the annotations themselves
// (no index names it: deleting one is rare).

func (b *Bolt) DeleteFeature(ctx context.Context, name string) (Feature, error) {
	var f Feature
	err := b.with(true, func(tx *bolt.Tx) error {
		t := txn{tx}
		var err error
		if f, err = t.feature(name); err != nil {
			return err
		}
		var u Uses
		users := t.indexUsers(bFeatureIdx, idxKey([]byte(name), nil))
		if u.Versions = len(users); u.Versions > 0 {
			if u.Users, err = t.users(users); err != nil {
				return err
			}
			u.Version = u.Users[0]
		}
		err = t.bucket(bSchemas).ForEach(func(k, raw []byte) error {
			var s Schema
			if err := json.Unmarshal(raw, &s); err != nil {
				return fmt.Errorf("catalog: schema %q: %w", k, err)
			}
			for _, sf := range s.Features {
				if sf.Feature == name {
					if u.Schemas++; u.Schemas == 1 {
						u.Schema = s.Name
					}
					break
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if err := u.Err("feature", name); err != nil {
			return err
		}
		return tx.Bucket(bFeatures).Delete([]byte(name))
	})
	if err != nil {
		return Feature{}, err
	}
	return f, nil
}

func (b *Bolt) DeleteLabel(ctx context.Context, name string) (Label, error) {
	var l Label
	err := b.with(true, func(tx *bolt.Tx) error {
		t := txn{tx}
		var err error
		if l, err = t.label(name); err != nil {
			return err
		}
		var u Uses
		users := t.indexUsers(bLabelIdx, idxKey([]byte(name), nil))
		// As a value of a cat[ULabel] feature: the feature's index
		// entries for the value's key ('t' + the text).
		valueOf := map[string]string{} // uid → the first feature by name
		err = t.bucket(bFeatures).ForEach(func(k, raw []byte) error {
			var f Feature
			if err := json.Unmarshal(raw, &f); err != nil {
				return fmt.Errorf("catalog: feature %q: %w", k, err)
			}
			if f.Entity() != "ULabel" {
				return nil
			}
			for uid := range t.indexUsers(bFeatureIdx, idxKey(k, append([]byte{'t'}, name...), nil)) {
				if _, ok := valueOf[uid]; !ok {
					valueOf[uid] = f.Name
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if len(valueOf) > 0 {
			least := ""
			for uid := range valueOf {
				if least == "" || uid < least {
					least = uid
				}
			}
			u.Feature = valueOf[least]
			if len(users) == 0 {
				if u.Version, err = t.example(map[string]bool{least: true}); err != nil {
					return err
				}
			}
		}
		if len(users) > 0 {
			u.Labelled = true
			if u.Version, err = t.example(users); err != nil {
				return err
			}
		}
		for uid := range valueOf {
			users[uid] = true
		}
		u.Versions = len(users)
		if u.Users, err = t.users(users); err != nil {
			return err
		}
		err = t.bucket(bLabels).ForEach(func(k, raw []byte) error {
			var c Label
			if err := json.Unmarshal(raw, &c); err != nil {
				return fmt.Errorf("catalog: label %q: %w", k, err)
			}
			if c.Parent == name {
				if u.Labels++; u.Labels == 1 {
					u.Label = c.Name
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if err := u.Err("label", name); err != nil {
			return err
		}
		return tx.Bucket(bLabels).Delete([]byte(name))
	})
	if err != nil {
		return Label{}, err
	}
	return l, nil
}

func (b *Bolt) DeleteSchema(ctx context.Context, name string) (Schema, error) {
	var s Schema
	err := b.with(true, func(tx *bolt.Tx) error {
		t := txn{tx}
		var ok bool
		var err error
		if s, ok, err = getJSONSchema(t, name); err != nil {
			return err
		} else if !ok {
			return lookupErr("schema", name, errorf(ErrNotFound, "no schema %q%s (lamina schema ls)", name, didYouMean(closest(name, names(t.bucket(bSchemas))))))
		}
		quoted, err := json.Marshal(name)
		if err != nil {
			return err
		}
		mark := append([]byte(`"schema":`), quoted...)
		users := map[string]bool{}
		err = t.bucket(bAnnotations).ForEach(func(k, raw []byte) error {
			if !bytes.Contains(raw, mark) {
				return nil
			}
			var a Annotations
			if err := json.Unmarshal(raw, &a); err != nil {
				return fmt.Errorf("catalog: annotations of %s: %w", k, err)
			}
			if a.Schema == name {
				users[string(k)] = true
			}
			return nil
		})
		if err != nil {
			return err
		}
		var u Uses
		if u.Versions = len(users); u.Versions > 0 {
			if u.Users, err = t.users(users); err != nil {
				return err
			}
			u.Version = u.Users[0]
		}
		if err := u.Err("schema", name); err != nil {
			return err
		}
		return tx.Bucket(bSchemas).Delete([]byte(name))
	})
	if err != nil {
		return Schema{}, err
	}
	return s, nil
}

// indexUsers returns the uids of the entries of an index that begin with
// prefix (every entry ends in a uid).
func (t txn) indexUsers(name, prefix []byte) map[string]bool {
	out := map[string]bool{}
	bk := t.bucket(name)
	if bk == nil {
		return out
	}
	c := bk.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		if len(k) >= len(prefix)+ref.UIDLen {
			out[string(k[len(k)-ref.UIDLen:])] = true
		}
	}
	return out
}

// users returns the versions of the first MaxUsers of uids by uid
// (Uses.Users), as PostgreSQL lists them.
func (t txn) users(uids map[string]bool) ([]Version, error) {
	var out []Version
	for _, uid := range FirstUIDs(uids) {
		v, ok, err := t.version(uid)
		if err == nil && !ok {
			err = fmt.Errorf("catalog: an index names version %s, which is not recorded", uid)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// example returns the version of the least of uids, the one PostgreSQL
// names too.
func (t txn) example(uids map[string]bool) (Version, error) {
	least := ""
	for uid := range uids {
		if least == "" || uid < least {
			least = uid
		}
	}
	v, ok, err := t.version(least)
	if err == nil && !ok {
		err = fmt.Errorf("catalog: an index names version %s, which is not recorded", least)
	}
	return v, err
}

func (b *Bolt) DeleteCollection(ctx context.Context, name string) ([]Collection, error) {
	var out []Collection
	err := b.with(true, func(tx *bolt.Tx) error {
		t := txn{tx}
		bk := t.bucket(bCollections)
		var keys [][]byte
		if bk != nil {
			p := append([]byte(name), 0)
			cur := bk.Cursor()
			for k, raw := cur.Seek(p); k != nil && bytes.HasPrefix(k, p); k, raw = cur.Next() {
				if len(k) != len(p)+4 {
					continue // a longer name's: name, NUL, then more than a version
				}
				var c Collection
				if err := json.Unmarshal(raw, &c); err != nil {
					return fmt.Errorf("catalog: collection %q: %w", k, err)
				}
				out = append(out, c)
				keys = append(keys, bytes.Clone(k))
			}
		}
		if len(out) == 0 {
			return lookupErr("collection", name, errorf(ErrNotFound, "no collection %q%s", name, didYouMean(closest(name, t.collectionNames()))))
		}
		for _, k := range keys {
			if err := bk.Delete(k); err != nil {
				return err
			}
		}
		// The name made again continues after its highest number. A
		// name stored before names were checked cannot be made again.
		if CheckName("collection", name) != nil {
			return nil
		}
		gone, err := t.deletedCollection(name)
		if err != nil {
			return err
		}
		d := DeletedCollection{Name: name, Version: max(gone, out[len(out)-1].Version)}
		return putJSON(tx.Bucket(bCollectionsDeleted), []byte(name), d)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// lookupErr is err, from looking up the kind called name; for a name that
// is not UTF-8 and not found, CheckLookup's refusal, as PostgreSQL gives.
// Such a name stored before names were checked is still found, so that it
// can be deleted.
func lookupErr(kind, name string, err error) error {
	if errors.Is(err, ErrNotFound) {
		if cerr := CheckLookup(kind, name); cerr != nil {
			return cerr
		}
	}
	return err
}
