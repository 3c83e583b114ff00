package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/ref"
)

// The write side follows Bolt's (catalog/bolt_write.go) step by step; the
// rules are the conformance suite's.

func link(ctx context.Context, tx pgx.Tx, key string) (*catalog.Link, error) {
	l := catalog.Link{Key: key}
	var mtime int64
	err := tx.QueryRow(ctx, `SELECT target, mtime FROM links WHERE key = $1`, key).Scan(&l.Target, &mtime)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	l.Mtime = fromNS(mtime)
	return &l, nil
}

func hasMarker(ctx context.Context, tx pgx.Tx, key string) (bool, error) {
	_, ok, err := exists(ctx, tx, `SELECT key FROM folders WHERE key = $1`, key)
	return ok, err
}

// folderRecord reads the record of the folder key, nil if it has none.
func folderRecord(ctx context.Context, tx pgx.Tx, key string) (*catalog.FolderRecord, error) {
	f := catalog.FolderRecord{Key: key}
	var mtime, mode int64
	err := tx.QueryRow(ctx, `SELECT mtime, mode, touched FROM folders WHERE key = $1`, key).Scan(&mtime, &mode, &f.Touched)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	f.Mtime, f.Mode = fromNS(mtime), uint32(mode)
	return &f, nil
}

// putFolder writes the folder record f, replacing one at its key.
func putFolder(ctx context.Context, tx pgx.Tx, f catalog.FolderRecord) error {
	_, err := tx.Exec(ctx, `INSERT INTO folders (key, mtime, mode, touched) VALUES ($1, $2, $3, $4)
		ON CONFLICT (key) DO UPDATE SET mtime = EXCLUDED.mtime, mode = EXCLUDED.mode, touched = EXCLUDED.touched`,
		f.Key, ns(f.Mtime), int64(f.Mode), f.Touched)
	return err
}

// liveFile returns the live artifact at key, or nil.
func liveFile(ctx context.Context, tx pgx.Tx, key string) (*artifact, error) {
	a, err := artifactByKey(ctx, tx, key)
	if err != nil || a == nil || a.Latest == 0 {
		return nil, err
	}
	return a, nil
}

// holds reports whether anything live is under key/: a key, a folder or a
// link.
func holds(ctx context.Context, tx pgx.Tx, key string) (bool, error) {
	p := key + "/"
	_, ok, err := exists(ctx, tx, `SELECT key FROM folders WHERE key >= $1 AND key < $2
		UNION ALL SELECT key FROM links WHERE key >= $1 AND key < $2
		UNION ALL SELECT key FROM artifacts WHERE key >= $1 AND key < $2 AND latest > 0 LIMIT 1`, p, upper(p))
	return ok, err
}

func isFolder(ctx context.Context, tx pgx.Tx, key string) (bool, error) {
	if ok, err := hasMarker(ctx, tx, key); err != nil || ok {
		return ok, err
	}
	return holds(ctx, tx, key)
}

// checkFree refuses a new folder or link at key where anything is, or
// under a file or link.
func checkFree(ctx context.Context, tx pgx.Tx, key string) error {
	if a, err := liveFile(ctx, tx, key); err != nil {
		return err
	} else if a != nil {
		return errorf(ErrConflict, "%q is a file", key)
	}
	return checkPlace(ctx, tx, key)
}

func (s *Store) Rename(ctx context.Context, from, to string) (Version, error) {
	// from may be a key saved before every folder name was checked.
	if err := ref.CheckExistingKey(from); err != nil {
		return Version{}, err
	}
	if err := ref.CheckKey(to); err != nil {
		return Version{}, err
	}
	var v Version
	err := s.writeKeys(ctx, []string{from, to}, func(tx pgx.Tx, changed func(...string)) error {
		var err error
		v, err = rename(ctx, tx, from, to, time.Now().UTC())
		changed(from, to, catalog.RenameChange(from, to))
		return err
	})
	return v, err
}

func rename(ctx context.Context, tx pgx.Tx, from, to string, now time.Time) (Version, error) {
	if from == to {
		a, err := liveFile(ctx, tx, from)
		if err != nil || a == nil {
			return Version{}, orNotFound(err, from)
		}
		v, _, err := version(ctx, tx, ref.VersionUID(a.Stem, a.Latest))
		return v, err
	}
	if l, err := link(ctx, tx, from); err != nil {
		return Version{}, err
	} else if l != nil {
		return Version{}, renameLink(ctx, tx, l, to)
	}
	a, err := liveFile(ctx, tx, from)
	if err != nil {
		return Version{}, err
	}
	if a == nil {
		return Version{}, errorf(ErrNotFound, "no artifact has key %q", from)
	}
	src, _, err := version(ctx, tx, ref.VersionUID(a.Stem, a.Latest))
	if err != nil {
		return Version{}, err
	}
	if _, err := tx.Exec(ctx, `DELETE FROM links WHERE key = $1`, to); err != nil {
		return Version{}, err
	}
	dst, err := artifactByKey(ctx, tx, to)
	if err != nil {
		return Version{}, err
	}
	if dst != nil {
		// A new version of to with from's content; from leaves.
		suffix, otype := src.Suffix, src.OType
		if s := ref.Suffix(to); s != suffix { // renamed to another kind of file (a.txt onto b.csv)
			suffix, otype = s, ref.RenamedOType(otype, suffix, s, src.Kind == "folder")
		}
		nv := catalog.NewVersion{Key: to, Kind: src.Kind, Suffix: suffix, OType: otype,
			NObservations: src.NObservations, NFiles: src.NFiles, Size: src.Size, Digest: src.Digest,
			Manifest: src.Manifest, Description: src.Description, CreatedBy: src.CreatedBy,
			CreatedAt: now, Mtime: src.Mtime, Run: src.Run, Mode: src.Mode}
		sv, err := save(ctx, tx, nv)
		if err != nil {
			return Version{}, err
		}
		if sv.Unchanged && (!sv.Version.Mtime.Equal(src.Mtime) || sv.Version.Mode != src.Mode) {
			// Same bytes: the rename still carries the mtime over.
			sv.Version.Mtime, sv.Version.Mode = src.Mtime, src.Mode
			if err := putVersion(ctx, tx, sv.Version); err != nil {
				return Version{}, err
			}
		}
		if _, _, err := setTrashed(ctx, tx, from, true); err != nil {
			return Version{}, err
		}
		return sv.Version, nil
	}
	if err := checkPlace(ctx, tx, to); err != nil {
		return Version{}, err
	}
	return rekey(ctx, tx, a, to)
}

// rekey moves artifact a, every version of it, to the free key to; a
// version whose suffix is not to's takes to's, and its otype.
func rekey(ctx context.Context, tx pgx.Tx, a *artifact, to string) (Version, error) {
	a.Key = to
	if err := putArtifact(ctx, tx, a); err != nil {
		return Version{}, err
	}
	if err := dropTrashed(ctx, tx, to); err != nil { // as a save there drops it
		return Version{}, err
	}
	vs, err := stemVersions(ctx, tx, a.Stem)
	if err != nil {
		return Version{}, err
	}
	var latest Version
	suffix := ref.Suffix(to)
	for _, v := range vs {
		old := v
		v.Key = to
		if v.Suffix != suffix { // suffix follows the key (catalog/bolt_write.go)
			v.Suffix, v.OType = suffix, ref.RenamedOType(v.OType, v.Suffix, suffix, v.Kind == "folder")
		}
		if err := putVersion(ctx, tx, v); err != nil {
			return Version{}, err
		}
		if err := rewordKey(ctx, tx, old, v); err != nil { // annotate.go
			return Version{}, err
		}
		// The storage record of the version is written again, with its new
		// key, so that a rebuild from storage sees the move.
		if _, err := tx.Exec(ctx, `INSERT INTO outbox (uid) VALUES ($1) ON CONFLICT DO NOTHING`, v.UID); err != nil {
			return Version{}, err
		}
		if v.Version == a.Latest {
			latest = v
		}
	}
	return latest, nil
}

func renameLink(ctx context.Context, tx pgx.Tx, l *catalog.Link, to string) error {
	if ok, err := isFolder(ctx, tx, to); err != nil {
		return err
	} else if ok {
		return errorf(ErrConflict, "%q is a folder", to)
	}
	// The name to is replaced: a link there is gone, a file's artifact
	// goes to the trash (catalog/bolt_write.go).
	if a, err := liveFile(ctx, tx, to); err != nil {
		return err
	} else if a != nil {
		if _, _, err := setTrashed(ctx, tx, to, true); err != nil {
			return err
		}
	}
	if _, err := tx.Exec(ctx, `DELETE FROM links WHERE key = $1`, to); err != nil {
		return err
	}
	if err := checkPlace(ctx, tx, to); err != nil {
		return err
	}
	if err := dropTrashed(ctx, tx, to); err != nil { // as ln -s there drops it
		return err
	}
	_, err := tx.Exec(ctx, `UPDATE links SET key = $2 WHERE key = $1`, l.Key, to)
	l.Key = to
	return err
}

func orNotFound(err error, key string) error {
	if err != nil {
		return err
	}
	return errorf(ErrNotFound, "no artifact has key %q", key)
}

func (s *Store) RenameFolder(ctx context.Context, from, to string) error {
	for _, k := range []string{from, to} {
		if err := ref.CheckPrefix(k); err != nil || k == "" {
			return errorf(ref.ErrBadKey, "bad folder name %q", k)
		}
	}
	from, to = strings.TrimSuffix(from, "/"), strings.TrimSuffix(to, "/")
	if from == to {
		return nil
	}
	if strings.HasPrefix(to+"/", from+"/") {
		return errorf(ErrConflict, "cannot move folder %q into itself (%q)", from, to)
	}
	return s.writeKeys(ctx, []string{from, to}, func(tx pgx.Tx, changed func(...string)) error {
		if ok, err := isFolder(ctx, tx, from); err != nil {
			return err
		} else if !ok {
			return errorf(ErrNotFound, "no folder %q", from)
		}
		if a, err := liveFile(ctx, tx, to); err != nil {
			return err
		} else if a != nil {
			return errorf(ErrConflict, "%q is a file", to)
		}
		if l, err := link(ctx, tx, to); err != nil {
			return err
		} else if l != nil {
			return errorf(ErrConflict, "%q is a symbolic link", to)
		}
		if full, err := holds(ctx, tx, to); err != nil {
			return err
		} else if full {
			return errorf(catalog.ErrNotEmpty, "folder %q is not empty", to)
		}
		now := time.Now().UTC()
		p := from + "/"
		keys, err := strings_(ctx, tx, `SELECT key FROM artifacts WHERE key >= $1 AND key < $2 AND latest > 0 ORDER BY key`, p, upper(p))
		if err != nil {
			return err
		}
		links, err := strings_(ctx, tx, `SELECT key FROM links WHERE key >= $1 AND key < $2 ORDER BY key`, p, upper(p))
		if err != nil {
			return err
		}
		markers, err := strings_(ctx, tx, `SELECT key FROM folders WHERE key >= $1 AND key < $2 ORDER BY key`, p, upper(p))
		if err != nil {
			return err
		}
		for _, k := range markers { // empty folders move too: listings change
			changed(k, to+k[len(from):])
		}
		moved := catalog.FolderRecord{Key: to, Mtime: now}
		if f, err := folderRecord(ctx, tx, from); err != nil {
			return err
		} else if f != nil {
			moved = f.Moved(to, now)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM folders WHERE key = $1 OR key = $2`, to, from); err != nil {
			return err
		}
		if err := putFolder(ctx, tx, moved); err != nil {
			return err
		}
		// substr counts characters: from's length in characters, not
		// len(from)'s bytes (a name with é lost the slash and more).
		if _, err := tx.Exec(ctx, `UPDATE folders SET key = $3 || substr(key, length($4::text) + 1) WHERE key >= $1 AND key < $2`,
			p, upper(p), to, from); err != nil {
			return err
		}
		changed(from, to, catalog.RenameChange(from, to))
		for _, k := range keys {
			if _, err := rename(ctx, tx, k, to+k[len(from):], now); err != nil {
				return err
			}
			changed(k, to+k[len(from):])
		}
		for _, k := range links {
			l, err := link(ctx, tx, k)
			if err != nil || l == nil {
				return err
			}
			if err := renameLink(ctx, tx, l, to+k[len(from):]); err != nil {
				return err
			}
			changed(k, to+k[len(from):])
		}
		// Every name the move makes live leaves the trash (catalog.TakenNames).
		_, err = tx.Exec(ctx, `DELETE FROM trashed_tree WHERE key = ANY($1)`, catalog.TakenNames(from, to, keys, links, markers))
		return err
	})
}

func strings_(ctx context.Context, tx pgx.Tx, sql string, args ...any) ([]string, error) {
	rows, err := tx.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

func (s *Store) SetAttrs(ctx context.Context, key string, at catalog.Attrs) (Version, error) {
	var v Version
	err := s.writeKeys(ctx, []string{key}, func(tx pgx.Tx, changed func(...string)) error {
		changed(key)
		if l, err := link(ctx, tx, key); err != nil {
			return err
		} else if l != nil {
			if at.Mtime != nil {
				_, err = tx.Exec(ctx, `UPDATE links SET mtime = $2 WHERE key = $1`, key, ns(*at.Mtime))
			}
			return err
		}
		a, err := liveFile(ctx, tx, key)
		if err != nil {
			return err
		}
		if a == nil {
			// A folder: its record (made now if it has none) keeps them.
			f, err := folderRecord(ctx, tx, key)
			if err != nil {
				return err
			}
			if f == nil {
				if ok, err := holds(ctx, tx, key); err != nil || !ok {
					return orNotFound(err, key)
				}
				f = &catalog.FolderRecord{Key: key, Mtime: time.Unix(0, 0).UTC()} // no time of its own: chmod alone leaves the folder's time
			}
			f.SetAttrs(at)
			return putFolder(ctx, tx, *f)
		}
		if v, _, err = version(ctx, tx, ref.VersionUID(a.Stem, a.Latest)); err != nil {
			return err
		}
		if at.Mtime != nil {
			v.Mtime = at.Mtime.UTC()
		}
		if at.Mode != nil {
			v.Mode = catalog.ModeOf(catalog.Perm(*at.Mode))
		}
		return putVersion(ctx, tx, v)
	})
	return v, err
}

func (s *Store) MakeFolder(ctx context.Context, key string) error {
	if err := ref.CheckPrefix(key); err != nil || key == "" || strings.HasSuffix(key, "/") {
		return errorf(ref.ErrBadKey, "bad folder name %q", key)
	}
	return s.writeKeys(ctx, []string{key}, func(tx pgx.Tx, changed func(...string)) error {
		if ok, err := hasMarker(ctx, tx, key); err != nil || ok {
			return err
		}
		if err := folderPlace(ctx, tx, key); err != nil {
			return err
		}
		changed(key)
		if err := dropTrashed(ctx, tx, key); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO folders (key, mtime) VALUES ($1, $2)`, key, ns(time.Now()))
		return err
	})
}

// folderPlace refuses a folder at key where a link or a live file is, or
// under one.
func folderPlace(ctx context.Context, tx pgx.Tx, key string) error {
	if l, err := link(ctx, tx, key); err != nil {
		return err
	} else if l != nil {
		return errorf(ErrConflict, "%q is a symbolic link", key)
	}
	if a, err := liveFile(ctx, tx, key); err != nil {
		return err
	} else if a != nil {
		return errorf(ErrConflict, "%q is a file", key)
	}
	for _, up := range ancestors(key) {
		if a, err := liveFile(ctx, tx, up); err != nil {
			return err
		} else if a != nil {
			return errorf(ErrConflict, "%q is an artifact (a file or a folder artifact), not a folder of keys", up)
		}
		if l, err := link(ctx, tx, up); err != nil {
			return err
		} else if l != nil {
			return errorf(ErrConflict, "%q is a symbolic link, not a folder", up)
		}
	}
	return nil
}

func putTrashed(ctx context.Context, tx pgx.Tx, n catalog.TrashedNode) error {
	raw, err := json.Marshal(n)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO trashed_tree (key, rec) VALUES ($1, $2)
		ON CONFLICT (key) DO UPDATE SET rec = EXCLUDED.rec`, n.Key(), raw)
	return err
}

// dropTrashed forgets the folder or link in the trash at key: a new one is
// made there.
func dropTrashed(ctx context.Context, tx pgx.Tx, key string) error {
	_, err := tx.Exec(ctx, `DELETE FROM trashed_tree WHERE key = $1`, key)
	return err
}

// restoreNode brings back the folder or link in the trash at key.
func restoreNode(ctx context.Context, tx pgx.Tx, key string) (catalog.TrashEntry, error) {
	n, err := trashedNode(ctx, tx, key)
	if err != nil {
		return catalog.TrashEntry{}, err
	}
	if n == nil {
		return catalog.TrashEntry{}, errorf(ErrNotFound, "%q has nothing in the trash", key)
	}
	parents, err := parentRecords(ctx, tx, key, *n)
	if err != nil {
		return catalog.TrashEntry{}, err
	}
	if n.Folder != nil {
		if err := folderPlace(ctx, tx, key); err != nil {
			return catalog.TrashEntry{}, fmt.Errorf("cannot restore: %w", err)
		}
		if err := putFolder(ctx, tx, *n.Folder); err != nil {
			return catalog.TrashEntry{}, err
		}
	} else {
		if l, err := link(ctx, tx, key); err != nil {
			return catalog.TrashEntry{}, err
		} else if l != nil {
			return catalog.TrashEntry{}, errorf(ErrConflict, "cannot restore: %q is a symbolic link", key)
		}
		if err := checkFree(ctx, tx, key); err != nil {
			return catalog.TrashEntry{}, fmt.Errorf("cannot restore: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO links (key, target, mtime) VALUES ($1, $2, $3)`, key, n.Link.Target, ns(n.Link.Mtime)); err != nil {
			return catalog.TrashEntry{}, err
		}
	}
	for _, r := range parents {
		if err := putFolder(ctx, tx, r); err != nil {
			return catalog.TrashEntry{}, err
		}
		if err := dropTrashed(ctx, tx, r.Key); err != nil {
			return catalog.TrashEntry{}, err
		}
	}
	return n.Entry(), dropTrashed(ctx, tx, key)
}

// trashedNode reads the folder or link in the trash at key, nil if none.
func trashedNode(ctx context.Context, tx pgx.Tx, key string) (*catalog.TrashedNode, error) {
	var n catalog.TrashedNode
	err := tx.QueryRow(ctx, `SELECT rec FROM trashed_tree WHERE key = $1`, key).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && n.Folder == nil && n.Link == nil) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &n, nil
}

// parentRecords lists the records that restoring n at key gives the
// folders above it that have none (TrashedNode.ParentRecord).
func parentRecords(ctx context.Context, tx pgx.Tx, key string, n catalog.TrashedNode) ([]catalog.FolderRecord, error) {
	var out []catalog.FolderRecord
	for _, up := range ancestors(key) {
		marked, err := hasMarker(ctx, tx, up)
		if err != nil {
			return nil, err
		}
		if marked {
			continue
		}
		old, err := trashedNode(ctx, tx, up)
		if err != nil {
			return nil, err
		}
		full, err := holds(ctx, tx, up)
		if err != nil {
			return nil, err
		}
		if r, ok := n.ParentRecord(up, old, full); ok {
			out = append(out, r)
		}
	}
	return out, nil
}

func (s *Store) RemoveFolder(ctx context.Context, key string) error {
	key = strings.TrimSuffix(key, "/")
	return s.writeKeys(ctx, []string{key}, func(tx pgx.Tx, changed func(...string)) error {
		full, err := holds(ctx, tx, key)
		if err != nil {
			return err
		}
		if full {
			return errorf(catalog.ErrNotEmpty, "folder %q is not empty", key)
		}
		f, err := folderRecord(ctx, tx, key)
		if err != nil {
			return err
		}
		if f == nil {
			return errorf(ErrNotFound, "no folder %q", key)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM folders WHERE key = $1`, key); err != nil {
			return err
		}
		changed(key)
		return putTrashed(ctx, tx, catalog.TrashedNode{Folder: f, TrashedAt: time.Now().UTC(), RemovalFrom: catalog.RemovalFromOf(ctx)})
	})
}

func (s *Store) Symlink(ctx context.Context, key, target string) error {
	if err := ref.CheckKey(key); err != nil {
		return err
	}
	return s.writeKeys(ctx, []string{key}, func(tx pgx.Tx, changed func(...string)) error {
		if l, err := link(ctx, tx, key); err != nil {
			return err
		} else if l != nil {
			return errorf(ErrConflict, "%q exists", key)
		}
		if err := checkFree(ctx, tx, key); err != nil {
			return err
		}
		changed(key)
		if err := dropTrashed(ctx, tx, key); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO links (key, target, mtime) VALUES ($1, $2, $3)`, key, target, ns(time.Now()))
		return err
	})
}

func (s *Store) RemoveLink(ctx context.Context, key string) error {
	return s.writeKeys(ctx, []string{key}, func(tx pgx.Tx, changed func(...string)) error {
		l, err := link(ctx, tx, key)
		if err != nil {
			return err
		}
		if l == nil {
			return errorf(ErrNotFound, "no link %q", key)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM links WHERE key = $1`, key); err != nil {
			return err
		}
		changed(key)
		return putTrashed(ctx, tx, catalog.TrashedNode{Link: l, TrashedAt: time.Now().UTC()})
	})
}

// addEntry adds a folder marker (target nil) or a link below prefix to d:
// a link right under prefix is a link, anything deeper names a sub-folder.
func addEntry(d *catalog.Dir, seen map[string]bool, prefix, key string, target *string, mtime *int64) {
	rest := key[len(prefix):]
	name, _, deeper := strings.Cut(rest, "/")
	if !deeper && target != nil {
		d.Links = append(d.Links, catalog.Link{Key: key, Target: *target, Mtime: fromNS(*mtime)})
		return
	}
	addSubdir(d, seen, name)
}

func addSubdir(d *catalog.Dir, seen map[string]bool, name string) {
	if !seen[name] {
		seen[name] = true
		d.Subdirs = append(d.Subdirs, name)
	}
}
