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
		if _, err := t.makeFolder(key); err != nil { // the checks of mkdir
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
	var v Version
	ok, err := b.lazyOp(ctx, func(t txn) (bool, error) {
		// rename checks some of what its caller asked after it has
		// written: only a rename that passes them all beforehand goes
		// into the lazy transaction.
		if !t.renamesCleanly(from, to) {
			return false, errNotLazy
		}
		var err error
		v, err = t.rename(from, to, time.Now().UTC())
		return true, err
	})
	if ok {
		return v, err
	}
	err = b.with(true, func(tx *bolt.Tx) error {
		var err error
		v, err = txn{tx}.rename(from, to, time.Now().UTC())
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
			suffix, otype = s, ref.OType(s)
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
		if _, _, err := t.setTrashed(from, true); err != nil {
			return Version{}, err
		}
		return s.Version, nil
	}
	if err := t.checkPlace(to); err != nil {
		return Version{}, err
	}
	return t.rekey(a, to)
}

// rekey moves artifact a, every version of it, to the free key to.
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
	for _, v := range vs {
		was := v
		v.Key = to
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
		if _, _, err := t.setTrashed(to, true); err != nil {
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
	var v Version
	op := func(t txn) (wrote bool, err error) {
		v, wrote, err = t.setAttrs(key, at)
		return wrote, err
	}
	if ok, err := b.lazyOp(ctx, op); ok {
		return v, err
	}
	err := b.with(true, func(tx *bolt.Tx) error {
		_, err := op(txn{tx})
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
	if ok, err := b.lazyOp(ctx, func(t txn) (bool, error) { return t.makeFolder(key) }); ok {
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
		_, err := txn{tx}.makeFolder(key)
		return err
	})
}

// makeFolder records the folder key unless it is recorded. The errors a
// caller can cause come before it writes (wrote).
func (t txn) makeFolder(key string) (wrote bool, err error) {
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
	return true, putJSON(t.tx.Bucket(bFolders), []byte(key), folder{Mtime: time.Now().UTC()})
}

func (b *Bolt) RemoveFolder(ctx context.Context, key string) error {
	key = strings.TrimSuffix(key, "/")
	if ok, err := b.lazyOp(ctx, func(t txn) (bool, error) { return t.removeFolder(key) }); ok {
		return err
	}
	return b.with(true, func(tx *bolt.Tx) error {
		_, err := txn{tx}.removeFolder(key)
		return err
	})
}

// removeFolder removes the empty folder key. The errors a caller can cause
// come before it writes (wrote).
func (t txn) removeFolder(key string) (wrote bool, err error) {
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
	if err := t.putTrashed(TrashedNode{Folder: f, TrashedAt: time.Now().UTC()}); err != nil {
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
	_ = b.commitLazy() // Flush reports a failure
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
	mu    sync.Mutex // guards tx, n, seq, timer, err
	tx    *bolt.Tx   // open write transaction, or nil
	n     int        // saves in tx
	seq   uint64     // the last LazySeq given; 0 until read from the file
	timer *time.Timer
	err   error // a commit of lazy saves that failed, for Flush to report

	open    atomic.Bool  // tx != nil, read without mu
	writers atomic.Int32 // other writes waiting: lazy saves step aside for them
	// lost is set once a transaction of lazy saves was lost (a bbolt write
	// or commit failed). No save is lazy after that: a later lazy commit
	// would move keyLazySeq past the lost saves, and a restart would not
	// redo them. Saves then commit before they return, as without Lazy.
	lost atomic.Bool
}

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

// loseLazyLocked gives up the open transaction of lazy saves after a fault
// in bbolt (a damaged file): its saves are lost, as after a failed commit.
// Called with mu.
func (b *Bolt) loseLazyLocked(err error) {
	l := &b.lazy
	l.err = fmt.Errorf("catalog: %d saves were not committed: %w", l.n, err)
	l.lost.Store(true)
	b.noteDamage(err)
	if l.tx != nil {
		_ = guard(b.path, func() error { return l.tx.Rollback() })
		if l.timer != nil {
			l.timer.Stop()
		}
		l.tx, l.n = nil, 0
		l.open.Store(false)
	}
}

// saveLazyLocked is saveLazy with mu held, under guard.
func (b *Bolt) saveLazyLocked(db *bolt.DB, nv NewVersion) (out []Saved, ok bool, err error) {
	l := &b.lazy
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
	s, err := t.save(nv)
	if err != nil {
		// Not expected (a bbolt write failed): the transaction is lost with
		// the saves before this one. Flush reports it; their callers' journals
		// redo them after a restart.
		l.err = fmt.Errorf("catalog: %d saves were not committed: %w", l.n, err)
		l.lost.Store(true)
		l.endLocked(false)
		return nil, true, err
	}
	l.n++
	l.seq++
	s.LazySeq = l.seq
	if l.n >= LazyCommitMax {
		if err := l.endLocked(true); err != nil {
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
	if l.lost.Load() {
		// Checked again under mu: a caller that passed the check before a
		// commit failed would open a transaction whose commit moves
		// keyLazySeq past the lost saves.
		return false
	}
	tx, err := db.Begin(true)
	if err != nil {
		return false
	}
	l.tx, l.n = tx, 0
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
// transaction, as in saveLazy. ok is false when the change is not made
// lazily; the caller then makes it at once. Nothing redoes a lazy change lost
// to a kill: the file is back after the restart, as a removal not yet
// synced may be on a plain file system; Flush (fsync of a folder) makes it
// durable.
func (b *Bolt) lazyOp(ctx context.Context, op func(t txn) (wrote bool, err error)) (ok bool, err error) {
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
		l.err = fmt.Errorf("catalog: %d saves were not committed: %w", l.n, err)
		l.lost.Store(true)
		l.endLocked(false)
		return true, err
	case err != nil:
		return true, err
	case wrote:
		if l.n++; l.n >= LazyCommitMax {
			return true, l.endLocked(true)
		}
	}
	return true, nil
}

// endLocked commits (or rolls back) the open transaction. Called with mu.
func (l *lazySaves) endLocked(commit bool) error {
	if l.tx == nil {
		return nil
	}
	l.timer.Stop()
	var err error
	if commit {
		err = l.tx.Bucket(bMeta).Put(keyLazySeq, binary.BigEndian.AppendUint64(nil, l.seq))
		if err == nil {
			err = l.tx.Commit()
		} else {
			_ = l.tx.Rollback()
		}
		if err != nil {
			l.err = fmt.Errorf("catalog: %d saves were not committed: %w", l.n, err)
			l.lost.Store(true)
		}
	} else {
		_ = l.tx.Rollback()
	}
	l.tx, l.n = nil, 0
	l.open.Store(false)
	return err
}

// commitLazy commits the lazy saves waiting in the open transaction.
func (b *Bolt) commitLazy() error {
	l := &b.lazy
	if !l.open.Load() {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var err error
	if gerr := guard(b.path, func() error { err = l.endLocked(true); return nil }); gerr != nil {
		b.loseLazyLocked(gerr)
		return gerr
	}
	return err
}

// Flush makes every lazy save durable. It returns the error of any commit of
// lazy saves that failed since the last Flush: their versions are not in the
// catalog.
func (b *Bolt) Flush(ctx context.Context) error {
	if err := b.damaged(); err != nil {
		return err
	}
	err := b.commitLazy()
	l := &b.lazy
	l.mu.Lock()
	defer l.mu.Unlock()
	if err == nil {
		err = l.err
	}
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
// before its transaction committed), and its caller redoes it.
func (b *Bolt) LazyCommitted(ctx context.Context) (uint64, error) {
	var n uint64
	err := b.with(false, func(tx *bolt.Tx) error { n = lazySeqOf(tx); return nil })
	return n, err
}
