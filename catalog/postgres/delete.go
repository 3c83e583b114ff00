package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/lamina-bio/lamina/catalog"
)

// Deleting features, labels, schemas and collections, following Bolt's rules
// (catalog/bolt_delete.go). Each checks what uses the record and removes
// it in one SERIALIZABLE transaction (write): an Annotate that adds a use
// meanwhile reads the row this one deletes and writes an index row in the
// range this one read, so one of the two is retried and sees the other.

func (s *Store) DeleteFeature(ctx context.Context, name string) (catalog.Feature, error) {
	var f catalog.Feature
	err := s.write(ctx, func(tx pgx.Tx, _ func(...string)) error {
		var err error
		if f, err = feature(ctx, tx, name); err != nil {
			return err
		}
		var u catalog.Uses
		var least *string
		if err := tx.QueryRow(ctx, `SELECT count(DISTINCT uid), min(uid) FROM idx_features WHERE feature = $1`, name).Scan(&u.Versions, &least); err != nil {
			return err
		}
		if u.Version, err = example(ctx, tx, least); err != nil {
			return err
		}
		if u.Users, err = users(ctx, tx, `SELECT DISTINCT uid FROM idx_features WHERE feature = $1 ORDER BY uid LIMIT $2`, name, catalog.MaxUsers); err != nil {
			return err
		}
		var schema *string
		if err := tx.QueryRow(ctx, `SELECT count(*), min(name) FROM schemas WHERE rec->'features' @> jsonb_build_array(jsonb_build_object('feature', $1::text))`,
			name).Scan(&u.Schemas, &schema); err != nil {
			return err
		}
		if schema != nil {
			u.Schema = *schema
		}
		if err := u.Err("feature", name); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `DELETE FROM features WHERE name = $1`, name)
		return err
	})
	if err != nil {
		return catalog.Feature{}, err
	}
	return f, nil
}

func (s *Store) DeleteLabel(ctx context.Context, name string) (catalog.Label, error) {
	var l catalog.Label
	err := s.write(ctx, func(tx pgx.Tx, _ func(...string)) error {
		var err error
		if l, err = label(ctx, tx, name); err != nil {
			return err
		}
		var u catalog.Uses
		// As a value of a cat[ULabel] feature: the feature's index rows
		// of the value's key ('t' + the text, catalog.Normalize).
		feats, err := strings_(ctx, tx, `SELECT name FROM features WHERE rec->>'dtype' = 'cat[ULabel]' ORDER BY name`)
		if err != nil {
			return err
		}
		if feats == nil {
			feats = []string{}
		}
		vkey := append([]byte{'t'}, name...)
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM (SELECT uid FROM idx_labels WHERE label = $1
			UNION SELECT uid FROM idx_features WHERE feature = ANY($2) AND vkey = $3) u`, name, feats, vkey).Scan(&u.Versions); err != nil {
			return err
		}
		if u.Versions > 0 {
			var least *string
			if err := tx.QueryRow(ctx, `SELECT min(uid) FROM idx_labels WHERE label = $1`, name).Scan(&least); err != nil {
				return err
			}
			u.Labelled = least != nil
			var uid, feat string
			err := tx.QueryRow(ctx, `SELECT uid, feature FROM idx_features WHERE feature = ANY($1) AND vkey = $2
				ORDER BY uid, feature LIMIT 1`, feats, vkey).Scan(&uid, &feat)
			if err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
			if err == nil {
				u.Feature = feat
				if least == nil {
					least = &uid
				}
			}
			if u.Version, err = example(ctx, tx, least); err != nil {
				return err
			}
			if u.Users, err = users(ctx, tx, `SELECT uid FROM (SELECT uid FROM idx_labels WHERE label = $1
				UNION SELECT uid FROM idx_features WHERE feature = ANY($2) AND vkey = $3) u ORDER BY uid LIMIT $4`, name, feats, vkey, catalog.MaxUsers); err != nil {
				return err
			}
		}
		var child *string
		if err := tx.QueryRow(ctx, `SELECT count(*), min(name) FROM labels WHERE parent = $1`, name).Scan(&u.Labels, &child); err != nil {
			return err
		}
		if child != nil {
			u.Label = *child
		}
		if err := u.Err("label", name); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `DELETE FROM labels WHERE name = $1`, name)
		return err
	})
	if err != nil {
		return catalog.Label{}, err
	}
	return l, nil
}

func (s *Store) DeleteSchema(ctx context.Context, name string) (catalog.Schema, error) {
	var sc catalog.Schema
	if err := catalog.CheckLookup("schema", name); err != nil {
		return sc, err
	}
	err := s.write(ctx, func(tx pgx.Tx, _ func(...string)) error {
		if ok, err := getJSON(ctx, tx, `SELECT rec FROM schemas WHERE name = $1`, &sc, name); err != nil {
			return err
		} else if !ok {
			return errorf(ErrNotFound, "no schema %q%s (lamina schema ls)", name,
				catalog.DidYouMean(catalog.Closest(name, names(ctx, tx, "schemas"))))
		}
		var u catalog.Uses
		var least *string
		if err := tx.QueryRow(ctx, `SELECT count(*), min(uid) FROM annotations WHERE rec->>'schema' = $1`, name).Scan(&u.Versions, &least); err != nil {
			return err
		}
		var err error
		if u.Version, err = example(ctx, tx, least); err != nil {
			return err
		}
		if u.Users, err = users(ctx, tx, `SELECT uid FROM annotations WHERE rec->>'schema' = $1 ORDER BY uid LIMIT $2`, name, catalog.MaxUsers); err != nil {
			return err
		}
		if err := u.Err("schema", name); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `DELETE FROM schemas WHERE name = $1`, name)
		return err
	})
	if err != nil {
		return catalog.Schema{}, err
	}
	return sc, nil
}

// users returns the versions whose uids query selects (Uses.Users).
func users(ctx context.Context, tx pgx.Tx, query string, args ...any) ([]Version, error) {
	uids, err := strings_(ctx, tx, query, args...)
	if err != nil {
		return nil, err
	}
	var out []Version
	for _, uid := range uids {
		v, err := example(ctx, tx, &uid)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// example returns the version uid names (nil: none, the zero Version).
func example(ctx context.Context, tx pgx.Tx, uid *string) (Version, error) {
	if uid == nil {
		return Version{}, nil
	}
	v, ok, err := version(ctx, tx, *uid)
	if err == nil && !ok {
		err = fmt.Errorf("catalog: an index names version %s, which is not recorded", *uid)
	}
	return v, err
}

func (s *Store) DeleteCollection(ctx context.Context, name string) ([]catalog.Collection, error) {
	if err := catalog.CheckLookup("collection", name); err != nil {
		return nil, err
	}
	var out []catalog.Collection
	err := s.write(ctx, func(tx pgx.Tx, changed func(...string)) error {
		changed(catalog.CollectionChange(name)) // mounts drop their view of it
		var err error
		out, err = collectionRecords(ctx, tx, name, `DELETE FROM collections WHERE name = $1 RETURNING rec`)
		if err != nil {
			return err
		}
		// The name made again continues after its highest number.
		highest := 0
		for _, c := range out {
			highest = max(highest, c.Version)
		}
		_, err = tx.Exec(ctx, `INSERT INTO collections_deleted (name, version) VALUES ($1, $2)
			ON CONFLICT (name) DO UPDATE SET version = GREATEST(collections_deleted.version, EXCLUDED.version)`, name, highest)
		return err
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b catalog.Collection) int { return cmp.Compare(a.Version, b.Version) })
	return out, nil
}
