package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"

	"github.com/jackc/pgx/v5"
	"github.com/lamina-bio/lamina/catalog"
)

// Dump calls fn with every record of the catalog in the order
// catalog.Record describes, from one snapshot.
func (s *Store) Dump(ctx context.Context, fn func(catalog.Record) error) error {
	return s.readOnce(ctx, func(tx pgx.Tx) error { // fn has what was read: not read again
		var nodes, revises, reruns, deleted bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM trashed_tree),
			EXISTS (SELECT 1 FROM versions WHERE rec ->> 'revises' <> ''),
			EXISTS (SELECT 1 FROM run_reruns r JOIN versions v ON v.uid = r.uid),
			EXISTS (SELECT 1 FROM collections_deleted)`).Scan(&nodes, &revises, &reruns, &deleted); err != nil {
			return err
		}
		if err := fn(catalog.Record{Format: catalog.DumpFormatOf(nodes, revises, reruns, deleted)}); err != nil {
			return err
		}
		type step struct {
			sql string
			rec func(row pgx.Rows) (catalog.Record, error)
		}
		jsonRec := func(set func(raw []byte) (catalog.Record, error)) func(pgx.Rows) (catalog.Record, error) {
			return func(row pgx.Rows) (catalog.Record, error) {
				var raw []byte
				if err := row.Scan(&raw); err != nil {
					return catalog.Record{}, err
				}
				return set(raw)
			}
		}
		steps := []step{
			{`SELECT rec FROM features ORDER BY name`, jsonRec(func(raw []byte) (catalog.Record, error) {
				var x catalog.Feature
				return catalog.Record{Feature: &x}, json.Unmarshal(raw, &x)
			})},
			{`SELECT rec FROM labels ORDER BY name`, jsonRec(func(raw []byte) (catalog.Record, error) {
				var x catalog.Label
				return catalog.Record{Label: &x}, json.Unmarshal(raw, &x)
			})},
			{`SELECT rec FROM schemas ORDER BY name`, jsonRec(func(raw []byte) (catalog.Record, error) {
				var x catalog.Schema
				return catalog.Record{Schema: &x}, json.Unmarshal(raw, &x)
			})},
			{`SELECT ` + artifactCols + ` FROM artifacts ORDER BY stem`, func(row pgx.Rows) (catalog.Record, error) {
				a, err := scanArtifact(row)
				if err != nil {
					return catalog.Record{}, err
				}
				r := catalog.ArtifactRecord(*a)
				return catalog.Record{Artifact: &r}, nil
			}},
			{`SELECT rec FROM versions ORDER BY uid`, jsonRec(func(raw []byte) (catalog.Record, error) {
				v, err := decode(raw)
				return catalog.Record{Version: &v}, err
			})},
			{`SELECT uid FROM outbox ORDER BY uid`, func(row pgx.Rows) (catalog.Record, error) {
				var u string
				return catalog.Record{Outbox: u}, row.Scan(&u)
			}},
			{`SELECT key, mtime, mode, touched FROM folders ORDER BY key`, func(row pgx.Rows) (catalog.Record, error) {
				var f catalog.FolderRecord
				var n, mode int64
				err := row.Scan(&f.Key, &n, &mode, &f.Touched)
				f.Mtime, f.Mode = fromNS(n), uint32(mode)
				return catalog.Record{Folder: &f}, err
			}},
			{`SELECT key, target, mtime FROM links ORDER BY key`, func(row pgx.Rows) (catalog.Record, error) {
				var l catalog.Link
				var n int64
				err := row.Scan(&l.Key, &l.Target, &n)
				l.Mtime = fromNS(n)
				return catalog.Record{Link: &l}, err
			}},
			{`SELECT rec FROM trashed_tree ORDER BY key`, jsonRec(func(raw []byte) (catalog.Record, error) {
				var x catalog.TrashedNode
				return catalog.Record{TrashedNode: &x}, json.Unmarshal(raw, &x)
			})},
			{`SELECT rec FROM annotations ORDER BY uid`, jsonRec(func(raw []byte) (catalog.Record, error) {
				var x catalog.Annotations
				return catalog.Record{Annotations: &x}, json.Unmarshal(raw, &x)
			})},
			{`SELECT rec FROM collections ORDER BY name, version`, jsonRec(func(raw []byte) (catalog.Record, error) {
				var x catalog.Collection
				return catalog.Record{Collection: &x}, json.Unmarshal(raw, &x)
			})},
			{`SELECT name, version FROM collections_deleted ORDER BY name`, func(row pgx.Rows) (catalog.Record, error) {
				var d catalog.DeletedCollection
				return catalog.Record{DeletedCollection: &d}, row.Scan(&d.Name, &d.Version)
			}},
			{`SELECT rec FROM transforms ORDER BY uid`, jsonRec(func(raw []byte) (catalog.Record, error) {
				var x catalog.Transform
				return catalog.Record{Transform: &x}, json.Unmarshal(raw, &x)
			})},
			{`SELECT rec FROM runs ORDER BY uid`, jsonRec(func(raw []byte) (catalog.Record, error) {
				var x catalog.Run
				return catalog.Record{Run: &x}, json.Unmarshal(raw, &x)
			})},
			{`SELECT run, uid FROM run_inputs ORDER BY run, uid`, func(row pgx.Rows) (catalog.Record, error) {
				var in catalog.RunInput
				return catalog.Record{Input: &in}, row.Scan(&in.Run, &in.UID)
			}},
			{`SELECT r.run, r.uid FROM run_reruns r JOIN versions v ON v.uid = r.uid ORDER BY r.uid, r.run`, func(row pgx.Rows) (catalog.Record, error) {
				var in catalog.RunInput
				return catalog.Record{Rerun: &in}, row.Scan(&in.Run, &in.UID)
			}},
		}
		for _, st := range steps {
			rows, err := tx.Query(ctx, st.sql)
			if err != nil {
				return err
			}
			for rows.Next() {
				r, err := st.rec(rows)
				if err == nil {
					err = fn(r)
				}
				if err != nil {
					rows.Close()
					return err
				}
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
		}
		return nil
	})
}

// Load adds the records of a dump to an empty catalog in one transaction,
// rebuilding the indexes. A catalog that holds anything is refused
// (catalog.ErrConflict). It is not retried: recs are read once.
func (s *Store) Load(ctx context.Context, recs iter.Seq2[catalog.Record, error]) error {
	return s.writeN(ctx, 1, serializable, func(tx pgx.Tx, changed func(...string)) error {
		if _, full, err := exists(ctx, tx, `SELECT 'x' FROM artifacts UNION ALL SELECT 'x' FROM folders UNION ALL SELECT 'x' FROM links UNION ALL SELECT 'x' FROM trashed_tree
			UNION ALL SELECT 'x' FROM features UNION ALL SELECT 'x' FROM labels UNION ALL SELECT 'x' FROM collections UNION ALL SELECT 'x' FROM collections_deleted
			UNION ALL SELECT 'x' FROM transforms UNION ALL SELECT 'x' FROM runs LIMIT 1`); err != nil {
			return err
		} else if full {
			return errorf(ErrConflict, "the catalog database is not empty; import into a new instance")
		}
		dt := deferTx{tx.(*pipeTx)}
		for r, err := range recs {
			if err != nil {
				return err
			}
			if err := load(ctx, dt, r); err != nil {
				return err
			}
			switch {
			case r.Artifact != nil:
				changed(r.Artifact.Key)
			case r.Folder != nil:
				changed(r.Folder.Key)
			case r.Link != nil:
				changed(r.Link.Key)
			}
		}
		return nil // what is pending goes with the COMMIT
	}, nil)
}

func load(ctx context.Context, tx pgx.Tx, r catalog.Record) error {
	switch {
	case r.Format != 0:
		if r.Format > catalog.DumpFormat {
			return errorf(catalog.ErrSchema, "export format %d is newer than this lamina reads (up to %d): upgrade lamina", r.Format, catalog.DumpFormat)
		}
	case r.Feature != nil:
		return putJSON(ctx, tx, `INSERT INTO features (name, rec) VALUES ($1, $2)`, r.Feature, r.Feature.Name)
	case r.Label != nil:
		return putLabel(ctx, tx, *r.Label)
	case r.Schema != nil:
		return putJSON(ctx, tx, `INSERT INTO schemas (name, rec) VALUES ($1, $2)`, r.Schema, r.Schema.Name)
	case r.Artifact != nil:
		a := artifact(*r.Artifact)
		return putArtifact(ctx, tx, &a)
	case r.Version != nil:
		if err := insertVersion(ctx, tx, *r.Version); err != nil {
			return err
		}
		return putWords(ctx, tx, *r.Version, catalog.Annotations{})
	case r.Outbox != "":
		_, err := tx.Exec(ctx, `INSERT INTO outbox (uid) VALUES ($1) ON CONFLICT DO NOTHING`, r.Outbox)
		return err
	case r.Folder != nil:
		f := r.Folder // a plain INSERT: a folder twice in a dump is an error
		_, err := tx.Exec(ctx, `INSERT INTO folders (key, mtime, mode, touched) VALUES ($1, $2, $3, $4)`,
			f.Key, ns(f.Mtime), int64(f.Mode), f.Touched)
		return err
	case r.Link != nil:
		_, err := tx.Exec(ctx, `INSERT INTO links (key, target, mtime) VALUES ($1, $2, $3)`, r.Link.Key, r.Link.Target, ns(r.Link.Mtime))
		return err
	case r.TrashedNode != nil:
		n := r.TrashedNode
		if n.Folder == nil && n.Link == nil {
			return fmt.Errorf("postgres: a trashed node with neither folder nor link")
		}
		return putJSON(ctx, tx, `INSERT INTO trashed_tree (key, rec) VALUES ($1, $2)`, n, n.Key())
	case r.Annotations != nil:
		a := *r.Annotations
		v, ok, err := version(ctx, tx, a.UID)
		if err != nil {
			return err
		}
		if !ok {
			return errorf(ErrNotFound, "the export annotates %s, which it does not hold", a.UID)
		}
		if err := index(ctx, tx, v, a); err != nil {
			return err
		}
		return putJSON(ctx, tx, `INSERT INTO annotations (uid, rec) VALUES ($1, $2)`, a, a.UID)
	case r.Collection != nil:
		c := *r.Collection
		c.Versions, c.Unchanged = nil, false
		return putJSON(ctx, tx, `INSERT INTO collections (name, version, rec) VALUES ($1, $2, $3)`, c, c.Name, c.Version)
	case r.DeletedCollection != nil:
		_, err := tx.Exec(ctx, `INSERT INTO collections_deleted (name, version) VALUES ($1, $2)`, r.DeletedCollection.Name, r.DeletedCollection.Version)
		return err
	case r.Transform != nil:
		return putTransform(ctx, tx, *r.Transform)
	case r.Run != nil:
		return putRun(ctx, tx, *r.Run)
	case r.Input != nil:
		_, err := tx.Exec(ctx, `INSERT INTO run_inputs (run, uid) VALUES ($1, $2) ON CONFLICT DO NOTHING`, r.Input.Run, r.Input.UID)
		return err
	case r.Rerun != nil:
		_, err := tx.Exec(ctx, `INSERT INTO run_reruns (uid, run) VALUES ($1, $2) ON CONFLICT DO NOTHING`, r.Rerun.UID, r.Rerun.Run)
		return err
	}
	return nil
}
