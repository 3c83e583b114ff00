package catalog

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lamina-bio/lamina/ref"
	bolt "go.etcd.io/bbolt"
)

// Buckets of the write side (schema version 1 still: new buckets only):
//
//	folders    key → JSON folder: a folder that persists while empty
//	links      key → JSON Link
//	trashtree  key → JSON TrashedNode: a removed folder or link
var (
	bFolders   = []byte("folders")
	bLinks     = []byte("links")
	bTrashTree = []byte("trashtree")
)

// trashedNode reads the folder or link in the trash at key, nil if none.
func (t txn) trashedNode(key string) (*TrashedNode, error) {
	var n TrashedNode
	ok, err := getJSON(t.tx.Bucket(bTrashTree), []byte(key), &n)
	if err != nil || !ok || (n.Folder == nil && n.Link == nil) {
		return nil, err
	}
	return &n, nil
}

func (t txn) putTrashed(n TrashedNode) error {
	return putJSON(t.tx.Bucket(bTrashTree), []byte(n.Key()), n)
}

// dropTrashed forgets the folder or link in the trash at key: a new one
// is made there.
func (t txn) dropTrashed(key string) error { return t.tx.Bucket(bTrashTree).Delete([]byte(key)) }

// restoreNode brings back the folder or link in the trash at key.
func (t txn) restoreNode(key string) (TrashEntry, error) {
	n, err := t.trashedNode(key)
	if err != nil {
		return TrashEntry{}, err
	}
	if n == nil {
		return TrashEntry{}, errorf(ErrNotFound, "%q has nothing in the trash", key)
	}
	parents, err := t.parentRecords(key, *n)
	if err != nil {
		return TrashEntry{}, err
	}
	if n.Folder != nil {
		if _, err := t.makeFolder(key, time.Now().UTC()); err != nil { // the checks of mkdir
			return TrashEntry{}, fmt.Errorf("cannot restore: %w", err)
		}
		if err := t.putFolder(*n.Folder); err != nil {
			return TrashEntry{}, err
		}
	} else {
		if l, err := t.link(key); err != nil {
			return TrashEntry{}, err
		} else if l != nil {
			return TrashEntry{}, errorf(ErrConflict, "cannot restore: %q is a symbolic link", key)
		}
		if err := t.checkFree(key); err != nil {
			return TrashEntry{}, fmt.Errorf("cannot restore: %w", err)
		}
		if err := putJSON(t.tx.Bucket(bLinks), []byte(key), n.Link); err != nil {
			return TrashEntry{}, err
		}
	}
	for _, r := range parents {
		if err := t.putFolder(r); err != nil {
			return TrashEntry{}, err
		}
		if err := t.dropTrashed(r.Key); err != nil {
			return TrashEntry{}, err
		}
	}
	return n.Entry(), t.dropTrashed(key)
}

// parentRecords lists the records that restoring n at key gives the
// folders above it that have none (TrashedNode.ParentRecord).
func (t txn) parentRecords(key string, n TrashedNode) ([]FolderRecord, error) {
	var out []FolderRecord
	for i := 0; i < len(key); i++ {
		if key[i] != '/' || t.hasMarker(key[:i]) {
			continue
		}
		up := key[:i]
		old, err := t.trashedNode(up)
		if err != nil {
			return nil, err
		}
		full, err := t.holds(up)
		if err != nil {
			return nil, err
		}
		if r, ok := n.ParentRecord(up, old, full); ok {
			out = append(out, r)
		}
	}
	return out, nil
}

// trashedNodes lists the folders and links in the trash.
func (t txn) trashedNodes() ([]TrashEntry, error) {
	var out []TrashEntry
	err := t.tx.Bucket(bTrashTree).ForEach(func(k, raw []byte) error {
		var n TrashedNode
		if err := json.Unmarshal(raw, &n); err != nil {
			return fmt.Errorf("catalog: trashed %q: %w", k, err)
		}
		if n.Folder != nil || n.Link != nil {
			out = append(out, n.Entry())
		}
		return nil
	})
	return out, err
}

type folder struct {
	Mtime   time.Time `json:"mtime"`
	Mode    uint32    `json:"mode,omitempty"`    // FolderRecord.Mode
	Touched bool      `json:"touched,omitempty"` // FolderRecord.Touched
}

// folderRecord reads the record of the folder key, nil if it has none.
func (t txn) folderRecord(key string) (*FolderRecord, error) {
	var f folder
	ok, err := getJSON(t.tx.Bucket(bFolders), []byte(key), &f)
	if err != nil || !ok {
		return nil, err
	}
	return &FolderRecord{Key: key, Mtime: f.Mtime, Mode: f.Mode, Touched: f.Touched}, nil
}

func (t txn) putFolder(r FolderRecord) error {
	return putJSON(t.tx.Bucket(bFolders), []byte(r.Key), folder{Mtime: r.Mtime, Mode: r.Mode, Touched: r.Touched})
}

func (t txn) link(key string) (*Link, error) {
	var l Link
	ok, err := getJSON(t.tx.Bucket(bLinks), []byte(key), &l)
	if err != nil || !ok {
		return nil, err
	}
	return &l, nil
}

func (t txn) hasMarker(key string) bool { return t.tx.Bucket(bFolders).Get([]byte(key)) != nil }

// liveFile reports whether key names a live artifact.
func (t txn) liveFile(key string) (*artifact, error) {
	a, err := t.artifactByKey(key)
	if err != nil || a == nil || a.Latest == 0 {
		return nil, err
	}
	return a, nil
}

// holds reports whether anything live is under key/: a key, a folder or a
// link.
func (t txn) holds(key string) (bool, error) {
	p := []byte(key + "/")
	if k, _ := t.tx.Bucket(bFolders).Cursor().Seek(p); k != nil && bytes.HasPrefix(k, p) {
		return true, nil
	}
	if k, _ := t.tx.Bucket(bLinks).Cursor().Seek(p); k != nil && bytes.HasPrefix(k, p) {
		return true, nil
	}
	return t.liveUnder(string(p)) != "", nil
}

// isFolder reports whether key is a folder: marked, or holding something.
func (t txn) isFolder(key string) (bool, error) {
	if t.hasMarker(key) {
		return true, nil
	}
	return t.holds(key)
}

// checkEntries refuses a file at key where a folder or a link is, or under
// a link.
func (t txn) checkEntries(key string) error {
	if t.hasMarker(key) {
		return errorf(ErrConflict, "%q cannot be saved: it is a folder", key)
	}
	if l, err := t.link(key); err != nil {
		return err
	} else if l != nil {
		return errorf(ErrConflict, "%q cannot be saved: it is a symbolic link", key)
	}
	for i := 0; i < len(key); i++ {
		if key[i] == '/' {
			if l, err := t.link(key[:i]); err != nil {
				return err
			} else if l != nil {
				return errorf(ErrConflict, "%q cannot be saved: %q is a symbolic link, not a folder", key, key[:i])
			}
		}
	}
	// A folder holding only folders or links.
	p := []byte(key + "/")
	for _, b := range [][]byte{bFolders, bLinks} {
		if k, _ := t.tx.Bucket(b).Cursor().Seek(p); k != nil && bytes.HasPrefix(k, p) {
			return errorf(ErrConflict, "%q cannot be saved: it is a folder holding %q", key, string(k))
		}
	}
	return nil
}

// checkFree refuses a new folder or link at key where anything is, or under
// a file or link.
func (t txn) checkFree(key string) error {
	if a, err := t.liveFile(key); err != nil {
		return err
	} else if a != nil {
		return errorf(ErrConflict, "%q is a file", key)
	}
	return t.checkPlace(key)
}

func (b *Bolt) Rename(ctx context.Context, from, to string) (Version, error) {
	// from may be a key saved before every folder name was checked.
	if err := ref.CheckExistingKey(from); err != nil {
		return Version{}, err
	}
	if err := ref.CheckKey(to); err != nil {
		return Version{}, err
	}
	// One time for the change and its redo (lazyRedo).
	now := time.Now().UTC()
	v, ok, err := lazyDo(b, ctx, "rename "+from+" → "+to, func(t txn) (Version, bool, error) {
		// rename checks some of what its caller asked after it has
		// written: only a rename that passes them all beforehand goes
		// into the lazy transaction.
		if !t.renamesCleanly(from, to) {
			return Version{}, false, errNotLazy
		}
		v, err := t.rename(from, to, now)
		return v, true, err
	})
	if ok {
		return v, err
	}
	err = b.with(true, func(tx *bolt.Tx) error {
		var err error
		v, err = txn{tx}.rename(from, to, now)
		return err
	})
	return v, err
}

// renamesCleanly reports whether rename(from, to) is of a live file to a
// free place or onto a live or trashed file of its kind, with no link at
// either end: then it fails on nothing its caller asked once it writes.
func (t txn) renamesCleanly(from, to string) bool {
	if from == to {
		return false
	}
	for _, k := range []string{from, to} {
		if l, err := t.link(k); err != nil || l != nil {
			return false
		}
	}
	a, err := t.liveFile(from)
	if err != nil || a == nil {
		return false
	}
	dst, err := t.artifactByKey(to)
	switch {
	case err != nil:
		return false
	case dst == nil || dst.Latest == 0:
		if dst != nil && dst.Kind != a.Kind {
			return false
		}
		return t.checkPlace(to) == nil
	default:
		return dst.Kind == a.Kind
	}
}

// errNotLazy from an op of lazyOp: make the change at once instead.
var errNotLazy = errors.New("catalog: not lazily")

func (t txn) rename(from, to string, now time.Time) (Version, error) {
	if from == to {
		a, err := t.liveFile(from)
		if err != nil || a == nil {
			return Version{}, orNotFound(err, from)
		}
		v, _, err := t.version(ref.VersionUID(a.Stem, a.Latest))
		return v, err
	}
	if l, err := t.link(from); err != nil {
		return Version{}, err
	} else if l != nil {
		return Version{}, t.renameLink(l, to, now)
	}
	a, err := t.liveFile(from)
	if err != nil {
		return Version{}, err
	}
	if a == nil {
		return Version{}, errorf(ErrNotFound, "no artifact has key %q", from)
	}
	src, _, err := t.version(ref.VersionUID(a.Stem, a.Latest))
	if err != nil {
		return Version{}, err
	}
	if l, err := t.link(to); err != nil {
		return Version{}, err
	} else if l != nil {
		if err := t.tx.Bucket(bLinks).Delete([]byte(to)); err != nil {
			return Version{}, err
		}
	}
	dst, err := t.artifactByKey(to)
	if err != nil {
		return Version{}, err
	}
	if dst != nil {
		// A new version of to with from's content; from leaves.
		suffix, otype := src.Suffix, src.OType
		if s := ref.Suffix(to); s != suffix { // renamed to another kind of file (a.txt onto b.csv)
			suffix, otype = s, ref.RenamedOType(otype, suffix, s, src.Kind == "folder")
		}
		nv := NewVersion{Key: to, Kind: src.Kind, Suffix: suffix, OType: otype,
			NObservations: src.NObservations, NFiles: src.NFiles, Size: src.Size, Digest: src.Digest,
			Manifest: src.Manifest, Description: src.Description, CreatedBy: src.CreatedBy,
			CreatedAt: now, Mtime: src.Mtime, Run: src.Run, Mode: src.Mode}
		s, err := t.save(nv)
		if err != nil {
			return Version{}, err
		}
		if s.Unchanged && (!s.Version.Mtime.Equal(src.Mtime) || s.Version.Mode != src.Mode) {
			// Same bytes: the rename still carries the mtime over.
			s.Version.Mtime, s.Version.Mode = src.Mtime, src.Mode
			if err := putVersion(t.tx.Bucket(bVersions), s.Version); err != nil {
				return Version{}, err
			}
		}
		if _, _, err := t.setTrashed(from, true, now); err != nil {
			return Version{}, err
		}
		return s.Version, nil
	}
	if err := t.checkPlace(to); err != nil {
		return Version{}, err
	}
	return t.rekey(a, to)
}

// rekey moves artifact a, every version of it, to the free key to; a
// version whose suffix is not to's takes to's, and its otype.
func (t txn) rekey(a *artifact, to string) (Version, error) {
	keys := t.tx.Bucket(bKeys)
	if err := keys.Delete([]byte(a.Key)); err != nil {
		return Version{}, err
	}
	if err := relist(t.tx, a.Key); err != nil {
		return Version{}, err
	}
	if err := keys.Put([]byte(to), []byte(a.Stem)); err != nil {
		return Version{}, err
	}
	if err := t.dropTrashed(to); err != nil { // as a save there drops it
		return Version{}, err
	}
	a.Key = to
	if err := putArtifact(t.tx.Bucket(bArtifacts), a); err != nil {
		return Version{}, err
	}
	vs, err := t.stemVersions(a.Stem)
	if err != nil {
		return Version{}, err
	}
	var latest Version
	suffix := ref.Suffix(to)
	for _, v := range vs {
		was := v
		v.Key = to
		if v.Suffix != suffix { // suffix follows the key, as a rename onto a key (rename)
			v.Suffix, v.OType = suffix, ref.RenamedOType(v.OType, v.Suffix, suffix, v.Kind == "folder")
		}
		if err := putVersion(t.tx.Bucket(bVersions), v); err != nil {
			return Version{}, err
		}
		if err := t.moveIndex(was, v); err != nil { // bolt_annotate.go
			return Version{}, err
		}
		// The storage record of the version is written again, with its new
		// key, so that a rebuild from storage sees the move.
		if err := t.tx.Bucket(bOutbox).Put([]byte(v.UID), nil); err != nil {
			return Version{}, err
		}
		if v.Version == a.Latest {
			latest = v
		}
	}
	return latest, nil
}

func (t txn) renameLink(l *Link, to string, now time.Time) error {
	if ok, err := t.isFolder(to); err != nil {
		return err
	} else if ok {
		return errorf(ErrConflict, "%q is a folder", to)
	}
	// The name to is replaced, as rename(2) replaces it: a link there is
	// gone (ln -sfn, rsync: a link made under a temporary name and renamed
	// onto the old one), and a file's artifact goes to the trash with all
	// its versions, as an unlink puts it there.
	if a, err := t.liveFile(to); err != nil {
		return err
	} else if a != nil {
		if _, _, err := t.setTrashed(to, true, now); err != nil {
			return err
		}
	}
	if err := t.tx.Bucket(bLinks).Delete([]byte(to)); err != nil {
		return err
	}
	if err := t.checkPlace(to); err != nil {
		return err
	}
	if err := t.dropTrashed(to); err != nil { // as ln -s there drops it
		return err
	}
	from := l.Key
	l.Key = to
	if err := t.tx.Bucket(bLinks).Delete([]byte(from)); err != nil {
		return err
	}
	return putJSON(t.tx.Bucket(bLinks), []byte(to), l)
}

func orNotFound(err error, key string) error {
	if err != nil {
		return err
	}
	return errorf(ErrNotFound, "no artifact has key %q", key)
}

func (b *Bolt) RenameFolder(ctx context.Context, from, to string) error {
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
	return b.with(true, func(tx *bolt.Tx) error {
		t := txn{tx}
		if ok, err := t.isFolder(from); err != nil {
			return err
		} else if !ok {
			return errorf(ErrNotFound, "no folder %q", from)
		}
		if a, err := t.liveFile(to); err != nil {
			return err
		} else if a != nil {
			return errorf(ErrConflict, "%q is a file", to)
		}
		if l, err := t.link(to); err != nil {
			return err
		} else if l != nil {
			return errorf(ErrConflict, "%q is a symbolic link", to)
		}
		if full, err := t.holds(to); err != nil {
			return err
		} else if full {
			return errorf(ErrNotEmpty, "folder %q is not empty", to)
		}
		now := time.Now().UTC()
		p := from + "/"
		// Collect first: the loops below change the buckets they walk.
		var keys, links, marks []string
		for _, bk := range []struct {
			b   []byte
			out *[]string
		}{{bListing, &keys}, {bLinks, &links}, {bFolders, &marks}} {
			c := tx.Bucket(bk.b).Cursor()
			for k, _ := c.Seek([]byte(p)); k != nil && strings.HasPrefix(string(k), p); k, _ = c.Next() {
				*bk.out = append(*bk.out, string(k))
			}
		}
		if err := tx.Bucket(bFolders).Delete([]byte(to)); err != nil {
			return err
		}
		moved := FolderRecord{Key: to, Mtime: now}
		if f, err := t.folderRecord(from); err != nil {
			return err
		} else if f != nil {
			if err := tx.Bucket(bFolders).Delete([]byte(from)); err != nil {
				return err
			}
			moved = f.Moved(to, now)
		}
		if err := t.putFolder(moved); err != nil {
			return err
		}
		for _, m := range marks {
			raw := tx.Bucket(bFolders).Get([]byte(m))
			raw = append([]byte(nil), raw...)
			if err := tx.Bucket(bFolders).Delete([]byte(m)); err != nil {
				return err
			}
			if err := tx.Bucket(bFolders).Put([]byte(to+m[len(from):]), raw); err != nil {
				return err
			}
		}
		for _, k := range keys {
			if _, err := t.rename(k, to+k[len(from):], now); err != nil {
				return err
			}
		}
		for _, k := range links {
			l, err := t.link(k)
			if err != nil || l == nil {
				return err
			}
			if err := t.renameLink(l, to+k[len(from):], now); err != nil {
				return err
			}
		}
		// Every name the move makes live leaves the trash (TakenNames).
		for _, k := range TakenNames(from, to, keys, links, marks) {
			if err := t.dropTrashed(k); err != nil {
				return err
			}
		}
		return nil
	})
}

func (b *Bolt) SetAttrs(ctx context.Context, key string, at Attrs) (Version, error) {
	op := func(t txn) (Version, bool, error) { return t.setAttrs(key, at) }
	if v, ok, err := lazyDo(b, ctx, "attributes of "+key, op); ok {
		return v, err
	}
	var v Version
	err := b.with(true, func(tx *bolt.Tx) error {
		var err error
		v, _, err = op(txn{tx})
		return err
	})
	return v, err
}

// setAttrs sets the mtime and mode of key's latest version (a link's
// mtime). The errors a caller can cause come before it writes (wrote).
func (t txn) setAttrs(key string, at Attrs) (v Version, wrote bool, err error) {
	if l, err := t.link(key); err != nil {
		return v, false, err
	} else if l != nil {
		if at.Mtime != nil {
			l.Mtime = at.Mtime.UTC()
		}
		return v, true, putJSON(t.tx.Bucket(bLinks), []byte(key), l)
	}
	a, err := t.liveFile(key)
	if err != nil {
		return v, false, err
	}
	if a == nil {
		// A folder: its record (made now if it has none) keeps them.
		f, err := t.folderRecord(key)
		if err != nil {
			return v, false, err
		}
		if f == nil {
			if ok, err := t.holds(key); err != nil || !ok {
				return v, false, orNotFound(err, key)
			}
			f = &FolderRecord{Key: key, Mtime: time.Unix(0, 0).UTC()} // no time of its own: chmod alone leaves the folder's time
		}
		f.SetAttrs(at)
		return v, true, t.putFolder(*f)
	}
	if v, _, err = t.version(ref.VersionUID(a.Stem, a.Latest)); err != nil {
		return v, false, err
	}
	if at.Mtime != nil {
		v.Mtime = at.Mtime.UTC()
	}
	if at.Mode != nil {
		v.Mode = ModeOf(Perm(*at.Mode))
	}
	return v, true, putVersion(t.tx.Bucket(bVersions), v)
}

func (b *Bolt) MakeFolder(ctx context.Context, key string) error {
	if err := ref.CheckPrefix(key); err != nil || key == "" || strings.HasSuffix(key, "/") {
		return errorf(ref.ErrBadKey, "bad folder name %q", key)
	}
	now := time.Now().UTC()
	op := func(t txn) (bool, error) { return t.makeFolder(key, now) }
	if ok, err := b.lazyOp(ctx, "mkdir "+key, op, func(t txn) error { _, err := op(t); return err }); ok {
		return err
	}
	// Most calls find the folder made (the mount keeps a folder at every
	// unlink in it): a read transaction answers them without a commit's
	// two fsyncs.
	var made bool
	if err := b.with(false, func(tx *bolt.Tx) error { made = txn{tx}.hasMarker(key); return nil }); err != nil || made {
		return err
	}
	return b.with(true, func(tx *bolt.Tx) error {
		_, err := txn{tx}.makeFolder(key, now)
		return err
	})
}

// makeFolder records the folder key unless it is recorded. The errors a
// caller can cause come before it writes (wrote).
func (t txn) makeFolder(key string, now time.Time) (wrote bool, err error) {
	if t.hasMarker(key) {
		return false, nil
	}
	if l, err := t.link(key); err != nil {
		return false, err
	} else if l != nil {
		return false, errorf(ErrConflict, "%q is a symbolic link", key)
	}
	if a, err := t.liveFile(key); err != nil {
		return false, err
	} else if a != nil {
		return false, errorf(ErrConflict, "%q is a file", key)
	}
	for i := 0; i < len(key); i++ {
		if key[i] != '/' {
			continue
		}
		if a, err := t.liveFile(key[:i]); err != nil {
			return false, err
		} else if a != nil {
			return false, errorf(ErrConflict, "%q is an artifact (a file or a folder artifact), not a folder of keys", key[:i])
		}
		if l, err := t.link(key[:i]); err != nil {
			return false, err
		} else if l != nil {
			return false, errorf(ErrConflict, "%q is a symbolic link, not a folder", key[:i])
		}
	}
	if err := t.dropTrashed(key); err != nil {
		return false, err
	}
	return true, putJSON(t.tx.Bucket(bFolders), []byte(key), folder{Mtime: now})
}

func (b *Bolt) RemoveFolder(ctx context.Context, key string) error {
	key = strings.TrimSuffix(key, "/")
	now, from := time.Now().UTC(), RemovalFromOf(ctx)
	op := func(t txn) (bool, error) { return t.removeFolder(key, now, from) }
	if ok, err := b.lazyOp(ctx, "rmdir "+key, op, func(t txn) error { _, err := op(t); return err }); ok {
		return err
	}
	return b.with(true, func(tx *bolt.Tx) error {
		_, err := op(txn{tx})
		return err
	})
}

// removeFolder removes the empty folder key. The errors a caller can cause
// come before it writes (wrote).
func (t txn) removeFolder(key string, now time.Time, from *time.Time) (wrote bool, err error) {
	full, err := t.holds(key)
	if err != nil {
		return false, err
	}
	if full {
		return false, errorf(ErrNotEmpty, "folder %q is not empty", key)
	}
	f, err := t.folderRecord(key)
	if err != nil {
		return false, err
	}
	if f == nil {
		return false, errorf(ErrNotFound, "no folder %q", key)
	}
	if err := t.putTrashed(TrashedNode{Folder: f, TrashedAt: now, RemovalFrom: from}); err != nil {
		return true, err
	}
	return true, t.tx.Bucket(bFolders).Delete([]byte(key))
}

func (b *Bolt) Symlink(ctx context.Context, key, target string) error {
	if err := ref.CheckKey(key); err != nil {
		return err
	}
	return b.with(true, func(tx *bolt.Tx) error {
		t := txn{tx}
		if l, err := t.link(key); err != nil {
			return err
		} else if l != nil {
			return errorf(ErrConflict, "%q exists", key)
		}
		if err := t.checkFree(key); err != nil {
			return err
		}
		if err := t.dropTrashed(key); err != nil {
			return err
		}
		return putJSON(tx.Bucket(bLinks), []byte(key), Link{Key: key, Target: target, Mtime: time.Now().UTC()})
	})
}

func (b *Bolt) RemoveLink(ctx context.Context, key string) error {
	return b.with(true, func(tx *bolt.Tx) error {
		t := txn{tx}
		l, err := t.link(key)
		if err != nil {
			return err
		}
		if l == nil {
			return errorf(ErrNotFound, "no link %q", key)
		}
		if err := t.putTrashed(TrashedNode{Link: l, TrashedAt: time.Now().UTC()}); err != nil {
			return err
		}
		return tx.Bucket(bLinks).Delete([]byte(key))
	})
}

// childEntries adds the folders and links under prefix to d: links
// directly under it, and the next segment of every deeper one (and of every
// folder) as a subdirectory.
func (t txn) childEntries(prefix string, d *Dir) error {
	seen := map[string]bool{}
	for _, s := range d.Subdirs {
		seen[s] = true
	}
	for _, b := range [][]byte{bFolders, bLinks} {
		c := t.tx.Bucket(b).Cursor()
		p := []byte(prefix)
		for k, raw := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, raw = c.Next() {
			rest := string(k[len(p):])
			i := strings.IndexByte(rest, '/')
			if i < 0 && string(b) == string(bLinks) {
				var l Link
				if err := json.Unmarshal(raw, &l); err != nil {
					return err
				}
				d.Links = append(d.Links, l)
				continue
			}
			name := rest
			if i >= 0 {
				name = rest[:i]
			}
			if !seen[name] {
				seen[name] = true
				d.Subdirs = append(d.Subdirs, name)
			}
		}
	}
	return nil
}

// saveGroup is group commit for a held catalog (the mount's daemon): Saves
// that arrive while a transaction commits wait, and the next transaction
// saves them all, so concurrent closes share one bbolt fsync. A lone Save
// waits for nothing (no timer, unlike bbolt's Batch).
type saveGroup struct {
	mu      sync.Mutex // guards queue and leading
	queue   []*saveCall
	leading bool // a goroutine is committing queued calls
}

// saveCall is one Save waiting in a group.
type saveCall struct {
	nvs  []NewVersion
	out  []Saved
	err  error
	done chan struct{}
}

// saveGrouped saves nvs in a transaction shared with the Saves queued with
// it. Each call is atomic on its own, and the calls take effect in the order
// they were queued.
func (b *Bolt) saveGrouped(db *bolt.DB, nvs []NewVersion) ([]Saved, error) {
	b.lazy.writers.Add(1)
	defer b.lazy.writers.Add(-1)
	if err := b.commitLazy(); err != nil && b.lazyFailing() {
		return nil, err // as in Bolt.with; Flush reports a loss
	}
	c := &saveCall{nvs: nvs, done: make(chan struct{})}
	g := &b.saves
	g.mu.Lock()
	g.queue = append(g.queue, c)
	lead := !g.leading
	g.leading = true
	g.mu.Unlock()
	if lead {
		b.leadSaves(db)
	}
	<-c.done
	return c.out, c.err
}

// leadSaves commits queued calls, a group per transaction, until none is
// left.
func (b *Bolt) leadSaves(db *bolt.DB) {
	g := &b.saves
	for {
		g.mu.Lock()
		calls := g.queue
		g.queue = nil
		if len(calls) == 0 {
			g.leading = false
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
		commitGroup(b.path, db, calls)
		for _, c := range calls {
			b.noteDamage(c.err)
		}
	}
}

// commitGroup saves calls in one transaction. A call whose save fails gets
// its error and leaves the group, and the rest are saved again without it
// (its error was found after the calls before it, as a serial order would
// have it).
func commitGroup(path string, db *bolt.DB, calls []*saveCall) {
	for len(calls) > 0 {
		failed := -1
		err := guard(path, func() error {
			return db.Update(func(tx *bolt.Tx) error {
				t := txn{tx}
				for i, c := range calls {
					out, err := t.saveAll(c.nvs)
					if err != nil {
						failed, c.err = i, err
						return err
					}
					c.out = out
				}
				return nil
			})
		})
		if failed >= 0 && errors.Is(err, ErrDamaged) {
			failed = -1 // not the call's doing: every call gets the error
		}
		if failed < 0 {
			for _, c := range calls {
				if err != nil {
					c.out, c.err = nil, err
				}
				close(c.done)
			}
			return
		}
		c := calls[failed]
		c.out = nil
		close(c.done)
		calls = append(calls[:failed:failed], calls[failed+1:]...)
	}
}

type lazyKey struct{}

// Lazy marks ctx for a Save whose caller keeps what it needs to redo the
// save after a crash (the mount's staging journal does). A held bbolt
// catalog may then return before the save is durable: the save goes into a
// write transaction left open for LazyCommitAfter (or LazyCommitMax saves)
// and committed with those that follow, one fsync for all. Every other call
// of the Bolt commits the open transaction first, so all of them see the
// save at once; Flush and Close commit it too. Other catalogs ignore the
// mark.
func Lazy(ctx context.Context) context.Context { return context.WithValue(ctx, lazyKey{}, true) }

type syncFirstKey struct{}

// SyncFirst marks ctx for a Save of versions whose content the caller
// left to the page cache (cache.Writer.CommitNoSync): a catalog that makes
// the save durable at once, rather than lazily, calls sync before it
// writes, so that a durable record never names content a crash of the
// machine could still lose. A lazy save skips it: it is durable only at
// Flush, which the caller runs after syncing the content.
func SyncFirst(ctx context.Context, sync func(context.Context) error) context.Context {
	return context.WithValue(ctx, syncFirstKey{}, sync)
}

// RunSyncFirst runs the sync SyncFirst put in ctx, if any: stores call it
// before a durable save.
func RunSyncFirst(ctx context.Context) error {
	if sync, ok := ctx.Value(syncFirstKey{}).(func(context.Context) error); ok {
		if err := sync(ctx); err != nil {
			return fmt.Errorf("content not made durable before its record: %w", err)
		}
	}
	return nil
}

func isLazy(ctx context.Context) bool {
	lazy, _ := ctx.Value(lazyKey{}).(bool)
	return lazy
}

// LazyCommitAfter and LazyCommitMax bound how long, and how many, lazy
// saves wait in the open transaction.
const (
	LazyCommitAfter = 100 * time.Millisecond
	LazyCommitMax   = 1000
)

// lazySaves is the write transaction holding lazy saves.
type lazySaves struct {
	mu    sync.Mutex // guards the fields up to open
	db    *bolt.DB   // the held file tx was begun on
	tx    *bolt.Tx   // open write transaction, or nil
	ops   []lazyRedo // what tx holds, in order
	seq   uint64     // the last LazySeq given; 0 until read from the file
	timer *time.Timer
	err   error // lazy changes lost since the last Flush, for Flush to report

	// failing is the error of the last commit of ops while it fails (a
	// full disk): bbolt rolled tx back, and tx holds ops made again, to
	// commit at the next try (retry, every call of the Bolt, Flush). No
	// change is lazy meanwhile: each gets failing, as the commit would.
	failing      error
	failCause    error // the commit's own error
	failingSince time.Time
	backoff      time.Duration
	// watch, if set (OnCommitFailing), hears what a failing commit would
	// lose, and nil once nothing waits.
	watch func(pending error)

	open    atomic.Bool  // tx != nil, read without mu
	writers atomic.Int32 // other writes waiting: lazy saves step aside for them
	// lost is set once a transaction of lazy saves was lost (a bbolt write
	// failed, a fault, its changes could not be made again). No save is
	// lazy after that: a later lazy commit would move keyLazySeq past the
	// lost saves, and a restart would not redo them. Saves then commit
	// before they return, as without Lazy.
	lost atomic.Bool
}

// lazyRedo is one change in the transaction of lazy saves: redo makes it
// again in a new transaction after a commit failed. Redone in order on
// the state the first run met, it writes the same (stems and times are
// fixed beforehand).
type lazyRedo struct {
	what string // "rename a → b": what a loss names
	save bool   // a save, which the stage's journal redoes at the next mount
	redo func(t txn) error
}

// ErrCommitFailing: changes of the mount wait in memory for a commit of
// the held catalog that fails (a full disk; CommitFailing), retried; the
// error wraps the commit's.
var ErrCommitFailing = errors.New("catalog: the commit of earlier changes fails")

// Lazy retries of a failing commit: the first after lazyRetryMin, then
// twice as late up to lazyRetryMax.
const (
	lazyRetryMin = 100 * time.Millisecond
	lazyRetryMax = 2 * time.Second
)

// saveLazy saves nv in the open transaction. ok is false when nv cannot be
// saved lazily; the caller then saves it at once.
func (b *Bolt) saveLazy(db *bolt.DB, nv NewVersion) (out []Saved, ok bool, err error) {
	if nv.Revises != "" || b.lazy.writers.Load() > 0 || b.lazy.lost.Load() {
		return nil, false, nil
	}
	l := &b.lazy
	l.mu.Lock()
	defer l.mu.Unlock()
	// A damaged file (truncated under the daemon) faults inside bbolt:
	// guard turns that into ErrDamaged, and the transaction is lost.
	gerr := guard(b.path, func() error {
		out, ok, err = b.saveLazyLocked(db, nv)
		return nil
	})
	if gerr != nil {
		b.loseLazyLocked(gerr)
		return nil, true, gerr
	}
	return out, ok, err
}

// loseLazyLocked gives up the open transaction of lazy saves and what it
// holds (a fault in bbolt, a write that failed, changes that could not
// be made again): Flush reports what was lost. Called with mu.
func (b *Bolt) loseLazyLocked(err error) {
	l := &b.lazy
	l.err = errors.Join(l.err, lostError(l.ops, err))
	l.lost.Store(true)
	b.noteDamage(err)
	if l.timer != nil {
		l.timer.Stop()
	}
	if l.tx != nil {
		_ = guard(b.path, func() error { return l.tx.Rollback() })
	}
	wasFailing := l.failing != nil
	l.tx, l.ops, l.failing = nil, nil, nil
	l.open.Store(false)
	if wasFailing && l.watch != nil {
		l.watch(nil) // given up: Flush or the stop names the loss
	}
}

// lostError names the changes of ops, which are not in the catalog: the
// saves' bytes stay staged, the others are lost.
func lostError(ops []lazyRedo, err error) error {
	if len(ops) == 0 {
		return fmt.Errorf("catalog: a lazy transaction was lost: %w", err)
	}
	var saves, other []string
	for _, o := range ops {
		if o.save {
			saves = append(saves, o.what)
		} else {
			other = append(other, o.what)
		}
	}
	var parts []string
	if len(other) > 0 {
		parts = append(parts, fmt.Sprintf("%d changes made through the mount are lost: %s", len(other), strings.Join(other, "; ")))
	}
	if len(saves) > 0 {
		// Not lost: the stage's journal keeps their bytes.
		parts = append(parts, fmt.Sprintf("%d closes not committed, kept staged; the next mount commits them: %s", len(saves), strings.Join(saves, "; ")))
	}
	return fmt.Errorf("catalog: %s (%w)", strings.Join(parts, "; and "), err)
}

// saveLazyLocked is saveLazy with mu held, under guard.
func (b *Bolt) saveLazyLocked(db *bolt.DB, nv NewVersion) (out []Saved, ok bool, err error) {
	l := &b.lazy
	if l.failing != nil {
		return nil, true, l.failing
	}
	if !b.beginLazyLocked(db) {
		return nil, false, nil
	}
	t := txn{l.tx}
	// The errors a caller can cause come before save writes anything, so a
	// failed save leaves the transaction as it was.
	if a, err := t.artifactByKey(nv.Key); err != nil {
		return nil, true, err
	} else if a == nil {
		if err := t.checkPlace(nv.Key); err != nil {
			return nil, true, err
		}
	} else if err := kindCheck(a, nv); err != nil {
		return nil, true, err
	}
	// The stem of a new artifact is drawn once: a save made again after a
	// failed commit gives the version the uid its caller was told.
	stem := ref.NewStem()
	save := func(t txn) (Saved, error) {
		sb := &saveBatch{stems: []string{stem}}
		s, err := t.saveIn(nv, sb)
		if err == nil {
			err = sb.flush(t)
		}
		return s, err
	}
	s, err := save(t)
	if err != nil {
		// Not expected (a bbolt write failed): the transaction is lost with
		// the saves before this one. Flush reports it; their callers' journals
		// redo them after a restart.
		b.loseLazyLocked(err)
		return nil, true, err
	}
	l.ops = append(l.ops, lazyRedo{what: "save of " + nv.Key, save: true, redo: func(t txn) error { _, err := save(t); return err }})
	l.seq++
	s.LazySeq = l.seq
	if len(l.ops) >= LazyCommitMax {
		// A commit that fails keeps the save (retried): it is made.
		if err := b.endLazyLocked(true); err != nil && !errors.Is(err, ErrCommitFailing) {
			return nil, true, err
		}
	}
	return []Saved{s}, true, nil
}

// beginLazyLocked opens the transaction of lazy saves unless it is open,
// and reports whether it is. Called with mu.
func (b *Bolt) beginLazyLocked(db *bolt.DB) bool {
	l := &b.lazy
	if l.tx != nil {
		return true
	}
	if l.lost.Load() || l.writers.Load() > 0 {
		// Checked again under mu: a caller that passed the check before a
		// commit failed would open a transaction whose commit moves
		// keyLazySeq past the lost saves; and a writer that committed the
		// lazy transaction (Bolt.with) must not wait for a new one.
		return false
	}
	tx, err := db.Begin(true)
	if err != nil {
		return false
	}
	l.db, l.tx, l.ops = db, tx, nil
	if l.seq == 0 {
		l.seq = lazySeqOf(tx)
	}
	l.open.Store(true)
	l.timer = time.AfterFunc(b.lazyAfter, func() { _ = b.commitLazy() })
	return true
}

// lazyOp runs op, a change of the mount other than a save (a trash, a
// rename, a folder kept), in the open transaction of lazy saves when ctx is
// marked Lazy and the file is held, so that rm of many files commits them
// together. op returns the errors its caller can cause before it writes
// (wrote false), or errNotLazy; an error after a write loses the
// transaction, as in saveLazy. redo makes op's change again after a failed
// commit (lazyRedo); what names it. ok is false when the change is not
// made lazily; the caller then makes it at once. Nothing redoes a lazy
// change lost to a kill: the file is back after the restart, as a removal
// not yet synced may be on a plain file system; Flush (fsync of a folder)
// makes it durable.
func (b *Bolt) lazyOp(ctx context.Context, what string, op func(t txn) (wrote bool, err error), redo func(t txn) error) (ok bool, err error) {
	if !isLazy(ctx) || b.lazy.writers.Load() > 0 || b.lazy.lost.Load() {
		return false, nil
	}
	b.mu.Lock()
	db := b.held
	b.mu.Unlock()
	if db == nil {
		return false, nil
	}
	l := &b.lazy
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failing != nil {
		// The changes before this one wait for room to commit: this one
		// fails as their commit does, rather than return and be lost.
		return true, l.failing
	}
	var began, wrote bool
	if gerr := guard(b.path, func() error {
		if began = b.beginLazyLocked(db); began {
			wrote, err = op(txn{l.tx})
		}
		return nil
	}); gerr != nil {
		b.loseLazyLocked(gerr)
		return true, gerr
	}
	if !began {
		return false, nil
	}
	switch {
	case err == errNotLazy:
		return false, nil
	case err != nil && wrote:
		b.loseLazyLocked(err)
		return true, err
	case err != nil:
		return true, err
	case wrote:
		if l.ops = append(l.ops, lazyRedo{what: what, redo: redo}); len(l.ops) >= LazyCommitMax {
			if err := b.endLazyLocked(true); err != nil && !errors.Is(err, ErrCommitFailing) {
				return true, err
			}
		}
	}
	return true, nil
}

// lazyDo is lazyOp of an op with a result: op is run again, its result
// dropped, to redo it.
func lazyDo[T any](b *Bolt, ctx context.Context, what string, op func(t txn) (T, bool, error)) (out T, ok bool, err error) {
	ok, err = b.lazyOp(ctx, what, func(t txn) (bool, error) {
		var wrote bool
		var err error
		out, wrote, err = op(t)
		return wrote, err
	}, func(t txn) error { _, _, err := op(t); return err })
	return out, ok, err
}

// endLazyLocked commits (or rolls back) the open transaction. A commit
// that fails (a full disk: bbolt rolls back) makes the changes again in a
// new transaction, left open and committed at a later try: none of them
// is lost while the process runs. Called with mu, under guard.
func (b *Bolt) endLazyLocked(commit bool) error {
	l := &b.lazy
	if l.tx == nil {
		return nil
	}
	l.timer.Stop()
	if !commit {
		_ = l.tx.Rollback()
		l.tx, l.ops = nil, nil
		l.open.Store(false)
		return nil
	}
	err := l.tx.Bucket(bMeta).Put(keyLazySeq, binary.BigEndian.AppendUint64(nil, l.seq))
	if err == nil {
		err = l.tx.Commit()
	} else {
		_ = l.tx.Rollback()
	}
	l.tx = nil
	l.open.Store(false)
	if err == nil {
		if l.failing != nil && l.watch != nil {
			l.watch(nil)
		}
		l.ops, l.failing, l.backoff = nil, nil, 0
		return nil
	}
	if l.failing == nil {
		l.failingSince = time.Now()
		if l.watch != nil {
			// No change joins ops while the commit fails (each gets
			// failing): what they are now is what a kill would lose.
			l.watch(lostError(l.ops, err))
		}
	}
	l.failCause = err
	l.failing = fmt.Errorf("%w: %d changes wait for room (tried again every %s): %w",
		ErrCommitFailing, len(l.ops), lazyRetryMax, err)
	if rerr := b.redoLazyLocked(); rerr != nil {
		b.loseLazyLocked(errors.Join(err, fmt.Errorf("could not make them again: %w", rerr)))
		return l.err
	}
	l.backoff = min(max(2*l.backoff, lazyRetryMin), lazyRetryMax)
	l.timer = time.AfterFunc(l.backoff, func() { _ = b.commitLazy() })
	return l.failing
}

// redoLazyLocked begins a new transaction and makes ops again in it.
func (b *Bolt) redoLazyLocked() error {
	l := &b.lazy
	tx, err := l.db.Begin(true)
	if err != nil {
		return err
	}
	for _, o := range l.ops {
		if err := o.redo(txn{tx}); err != nil {
			_ = tx.Rollback()
			return fmt.Errorf("%s: %w", o.what, err)
		}
	}
	l.tx = tx
	l.open.Store(true)
	return nil
}

// commitLazy commits the lazy saves waiting in the open transaction.
func (b *Bolt) commitLazy() error {
	l := &b.lazy
	// Always under mu: open is false for a moment while a failed commit
	// makes its changes again (endLazyLocked), and nil then would tell a
	// Flush they are committed.
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.tx == nil {
		return l.failing
	}
	var err error
	if gerr := guard(b.path, func() error { err = b.endLazyLocked(true); return nil }); gerr != nil {
		b.loseLazyLocked(gerr)
		return gerr
	}
	return err
}

// readPending runs fn, a read, in the open transaction of lazy changes
// while their commit fails, so that reads see them as the mount does.
// done is false when no commit fails: the caller reads as usual.
func (b *Bolt) readPending(fn func(tx *bolt.Tx) error) (done bool, err error) {
	l := &b.lazy
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failing == nil || l.tx == nil {
		return false, nil
	}
	return true, b.noteDamage(guard(b.path, func() error { return fn(l.tx) }))
}

// lazyFailing reports whether lazy changes wait for a commit that fails.
func (b *Bolt) lazyFailing() bool {
	l := &b.lazy
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failing != nil
}

// OnCommitFailing makes fn hear, when a commit of lazy changes starts to
// fail, the error naming what a stop would lose (as GiveUpLazy's), and
// nil once they are committed or given up: a daemon keeps it where a
// kill -9 leaves it for the next mount to show. fn runs under the lazy
// lock and must not call the Bolt.
func (b *Bolt) OnCommitFailing(fn func(pending error)) {
	b.lazy.mu.Lock()
	b.lazy.watch = fn
	b.lazy.mu.Unlock()
}

// CommitFailing reports the lazy changes waiting for a commit that fails
// (a full disk), with the commit's error and since when it fails: n is 0
// when none does.
func (b *Bolt) CommitFailing() (n int, since time.Time, err error) {
	l := &b.lazy
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failing == nil {
		return 0, time.Time{}, nil
	}
	return len(l.ops), l.failingSince, l.failCause
}

// Flush makes every lazy save durable. It returns the error of a commit
// that still fails (its changes wait: a later Flush tries again), or of
// lazy changes lost since the last Flush: they are not in the catalog.
func (b *Bolt) Flush(ctx context.Context) error {
	if err := b.damaged(); err != nil {
		return err
	}
	err := b.commitLazy()
	l := &b.lazy
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		err = errors.Join(l.err, err)
	}
	l.err = nil
	return err
}

// GiveUpLazy rolls back lazy changes whose commit fails, for a process
// that stops: the error names them (nil when none waited).
func (b *Bolt) GiveUpLazy() error {
	l := &b.lazy
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failing == nil {
		return nil
	}
	b.loseLazyLocked(l.failCause)
	err := l.err
	l.err = nil
	return err
}

// keyLazySeq in the meta bucket is the LazySeq of the last lazy save
// committed.
var keyLazySeq = []byte("lazy-seq")

func lazySeqOf(tx *bolt.Tx) uint64 {
	if v := tx.Bucket(bMeta).Get(keyLazySeq); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// LazyCommitted returns the LazySeq of the last lazy save that was
// committed: a lazy save with a higher one was lost (the process stopped
// before its transaction committed), and its caller redoes it. While a
// commit fails, the error wraps ErrCommitFailing: the saves above n wait
// in memory, neither committed nor lost. n is read from the committed
// file, never from the changes waiting.
func (b *Bolt) LazyCommitted(ctx context.Context) (uint64, error) {
	_ = b.commitLazy() // what is lazy now is committed, or its commit fails
	b.mu.Lock()
	db := b.held
	b.mu.Unlock()
	var n uint64
	read := func(tx *bolt.Tx) error { n = lazySeqOf(tx); return nil }
	if db == nil {
		// Not held: no lazy change waits.
		return n, b.with(false, read)
	}
	if err := b.damaged(); err != nil {
		return 0, err
	}
	// Under mu, so that no commit comes between the read and failing.
	l := &b.lazy
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := b.noteDamage(guard(b.path, func() error { return db.View(read) })); err != nil {
		return 0, err
	}
	if l.failing != nil {
		return n, l.failing
	}
	return n, nil
}
