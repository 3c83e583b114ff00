package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"

	"github.com/lamina-bio/lamina/ref"
	bolt "go.etcd.io/bbolt"
)

// dumpFormat is the format a dump of tx is written in (DumpFormatOf). A
// version that revises another is written in record format 0x02
// (bolt_codec.go); one older builds wrote as JSON is decoded.
func dumpFormat(tx *bolt.Tx) (int, error) {
	nodes := false
	if bk := tx.Bucket(bTrashTree); bk != nil {
		k, _ := bk.Cursor().First()
		nodes = k != nil
	}
	revises := false
	if bk := tx.Bucket(bVersions); bk != nil && !nodes {
		errFound := errors.New("found")
		err := bk.ForEach(func(k, raw []byte) error {
			if len(raw) > 0 && raw[0] == recordV1 {
				return nil
			}
			v, err := decodeVersion(raw)
			if err != nil {
				return fmt.Errorf("catalog: version %s: %w", k, err)
			}
			if v.Revises != "" {
				return errFound
			}
			return nil
		})
		if revises = errors.Is(err, errFound); err != nil && !revises {
			return 0, err
		}
	}
	reruns := false
	if bk := tx.Bucket(bReruns); bk != nil {
		k, _ := bk.Cursor().First()
		reruns = k != nil
	}
	deleted := false
	if bk := tx.Bucket(bCollectionsDeleted); bk != nil {
		k, _ := bk.Cursor().First()
		deleted = k != nil
	}
	return DumpFormatOf(nodes, revises, reruns, deleted), nil
}

// Dump calls fn with every record of the catalog in the order Record
// describes, from one read transaction.
func (b *Bolt) Dump(ctx context.Context, fn func(Record) error) error {
	return b.with(false, func(tx *bolt.Tx) error {
		format, err := dumpFormat(tx)
		if err != nil {
			return err
		}
		if err := fn(Record{Format: format}); err != nil {
			return err
		}
		each := func(name []byte, rec func(k, raw []byte) (Record, error)) error {
			bk := tx.Bucket(name)
			if bk == nil {
				return nil
			}
			return bk.ForEach(func(k, raw []byte) error {
				if err := ctx.Err(); err != nil {
					return err
				}
				r, err := rec(k, raw)
				if err != nil {
					return fmt.Errorf("catalog: %s %q: %w", name, k, err)
				}
				return fn(r)
			})
		}
		steps := []struct {
			name []byte
			rec  func(k, raw []byte) (Record, error)
		}{
			{bFeatures, func(_, raw []byte) (Record, error) {
				var x Feature
				return Record{Feature: &x}, json.Unmarshal(raw, &x)
			}},
			{bLabels, func(_, raw []byte) (Record, error) { var x Label; return Record{Label: &x}, json.Unmarshal(raw, &x) }},
			{bSchemas, func(_, raw []byte) (Record, error) { var x Schema; return Record{Schema: &x}, json.Unmarshal(raw, &x) }},
			{bArtifacts, func(_, raw []byte) (Record, error) {
				a, err := decodeArtifact(raw)
				x := ArtifactRecord(a)
				return Record{Artifact: &x}, err
			}},
			{bVersions, func(_, raw []byte) (Record, error) {
				x, err := decodeVersion(raw)
				return Record{Version: &x}, err
			}},
			{bOutbox, func(k, _ []byte) (Record, error) { return Record{Outbox: string(k)}, nil }},
			{bFolders, func(k, raw []byte) (Record, error) {
				var x folder
				err := json.Unmarshal(raw, &x)
				return Record{Folder: &FolderRecord{Key: string(k), Mtime: x.Mtime, Mode: x.Mode, Touched: x.Touched}}, err
			}},
			{bLinks, func(_, raw []byte) (Record, error) { var x Link; return Record{Link: &x}, json.Unmarshal(raw, &x) }},
			{bTrashTree, func(_, raw []byte) (Record, error) {
				var x TrashedNode
				return Record{TrashedNode: &x}, json.Unmarshal(raw, &x)
			}},
			{bAnnotations, func(k, raw []byte) (Record, error) {
				var x Annotations
				err := json.Unmarshal(raw, &x)
				x.UID = string(k)
				return Record{Annotations: &x}, err
			}},
			{bCollections, func(_, raw []byte) (Record, error) {
				var x Collection
				return Record{Collection: &x}, json.Unmarshal(raw, &x)
			}},
			{bCollectionsDeleted, func(_, raw []byte) (Record, error) {
				var x DeletedCollection
				return Record{DeletedCollection: &x}, json.Unmarshal(raw, &x)
			}},
			{bTransforms, func(_, raw []byte) (Record, error) {
				var x Transform
				return Record{Transform: &x}, json.Unmarshal(raw, &x)
			}},
			{bRuns, func(_, raw []byte) (Record, error) { var x Run; return Record{Run: &x}, json.Unmarshal(raw, &x) }},
			{bRunInputs, func(k, _ []byte) (Record, error) {
				if len(k) < ref.StemLen {
					return Record{}, fmt.Errorf("short key")
				}
				return Record{Input: &RunInput{Run: string(k[:ref.StemLen]), UID: string(k[ref.StemLen:])}}, nil
			}},
			{bReruns, func(k, _ []byte) (Record, error) {
				if len(k) < ref.StemLen {
					return Record{}, fmt.Errorf("short key")
				}
				n := len(k) - ref.StemLen // version uid + run uid
				return Record{Rerun: &RunInput{Run: string(k[n:]), UID: string(k[:n])}}, nil
			}},
		}
		for _, s := range steps {
			if err := each(s.name, s.rec); err != nil {
				return err
			}
		}
		return nil
	})
}

// Load adds the records of a dump to an empty catalog, in one transaction,
// rebuilding the indexes. A catalog that holds anything is refused
// (ErrConflict).
func (b *Bolt) Load(ctx context.Context, recs iter.Seq2[Record, error]) error {
	return b.with(true, func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bArtifacts, bFolders, bLinks, bTrashTree, bFeatures, bLabels, bSchemas, bCollections, bCollectionsDeleted} {
			if k, _ := tx.Bucket(name).Cursor().First(); k != nil {
				return errorf(ErrConflict, "catalog %s is not empty; import into a new instance", b.path)
			}
		}
		t := txn{tx}
		// Index entries are written sorted at the end, as in saveAll: the
		// catalog is empty, so nothing in between reads or deletes them.
		var idx saveBatch
		for r, err := range recs {
			if err != nil {
				return err
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := t.load(r, &idx); err != nil {
				return err
			}
		}
		if err := idx.flush(t); err != nil {
			return err
		}
		return rebuildListing(tx) // the keys went in last, unlisted
	})
}

func (t txn) load(r Record, b *saveBatch) error {
	switch {
	case r.Format != 0:
		if r.Format > DumpFormat {
			return errorf(ErrSchema, "export format %d is newer than this lamina reads (up to %d): upgrade lamina", r.Format, DumpFormat)
		}
	case r.Feature != nil:
		return putJSON(t.tx.Bucket(bFeatures), []byte(r.Feature.Name), r.Feature)
	case r.Label != nil:
		return putJSON(t.tx.Bucket(bLabels), []byte(r.Label.Name), r.Label)
	case r.Schema != nil:
		return putJSON(t.tx.Bucket(bSchemas), []byte(r.Schema.Name), r.Schema)
	case r.Artifact != nil:
		a := artifact(*r.Artifact)
		b.put(bKeys, []byte(a.Key), []byte(a.Stem)) // in stem order here: deferred
		return putArtifact(t.tx.Bucket(bArtifacts), &a)
	case r.Version != nil:
		if err := putVersion(t.tx.Bucket(bVersions), *r.Version); err != nil {
			return err
		}
		t.deferWords(b, *r.Version, Annotations{})
		return t.afterSaveRun(*r.Version) // bolt_runs.go
	case r.Outbox != "":
		return t.tx.Bucket(bOutbox).Put([]byte(r.Outbox), nil)
	case r.Folder != nil:
		return t.putFolder(*r.Folder)
	case r.Link != nil:
		return putJSON(t.tx.Bucket(bLinks), []byte(r.Link.Key), r.Link)
	case r.TrashedNode != nil:
		if r.TrashedNode.Folder == nil && r.TrashedNode.Link == nil {
			return fmt.Errorf("catalog: a trashed node with neither folder nor link")
		}
		return t.putTrashed(*r.TrashedNode)
	case r.Annotations != nil:
		a := *r.Annotations
		v, ok, err := t.version(a.UID)
		if err != nil {
			return err
		}
		if !ok {
			return errorf(ErrNotFound, "the export annotates %s, which it does not hold", a.UID)
		}
		if err := t.indexIn(v, a, b); err != nil {
			return err
		}
		return putJSON(t.tx.Bucket(bAnnotations), []byte(v.UID), a)
	case r.Collection != nil:
		c := *r.Collection
		c.Versions, c.Unchanged = nil, false
		return putJSON(t.tx.Bucket(bCollections), collectionKey(c.Name, c.Version), c)
	case r.DeletedCollection != nil:
		d := *r.DeletedCollection
		return putJSON(t.tx.Bucket(bCollectionsDeleted), []byte(d.Name), d)
	case r.Transform != nil:
		tr := *r.Transform
		ids, err := bucket(t.tx, bTransformIDs)
		if err != nil {
			return err
		}
		ts, err := bucket(t.tx, bTransforms)
		if err != nil {
			return err
		}
		if err := ids.Put([]byte(tr.Name+"\x00"+tr.Kind+"\x00"+tr.Digest.String()), []byte(tr.UID)); err != nil {
			return err
		}
		return putJSON(ts, []byte(tr.UID), tr)
	case r.Run != nil:
		run := *r.Run
		for _, kv := range []struct {
			b    []byte
			k, v []byte
			skip bool
		}{
			{bRunOrder, orderKey(run), nil, false},
			{bRunChildren, []byte(run.Parent + run.UID), orderKey(run)[:8], run.Parent == ""},
		} {
			if kv.skip {
				continue
			}
			bk, err := bucket(t.tx, kv.b)
			if err != nil {
				return err
			}
			if err := bk.Put(kv.k, kv.v); err != nil {
				return err
			}
		}
		runs, err := bucket(t.tx, bRuns)
		if err != nil {
			return err
		}
		return putJSON(runs, []byte(run.UID), run)
	case r.Input != nil, r.Rerun != nil:
		var kvs []struct{ b, k []byte }
		if in := r.Input; in != nil {
			kvs = append(kvs, struct{ b, k []byte }{bRunInputs, []byte(in.Run + in.UID)},
				struct{ b, k []byte }{bVersionUsers, []byte(in.UID + in.Run)})
		} else {
			kvs = append(kvs, struct{ b, k []byte }{bReruns, []byte(r.Rerun.UID + r.Rerun.Run)},
				struct{ b, k []byte }{bRunOutputs, []byte(r.Rerun.Run + r.Rerun.UID)})
		}
		for _, kv := range kvs {
			bk, err := bucket(t.tx, kv.b)
			if err != nil {
				return err
			}
			if err := bk.Put(kv.k, nil); err != nil {
				return err
			}
		}
	}
	return nil
}
