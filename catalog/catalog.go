// Package catalog holds Lamina's records — artifacts, their versions, and
// the trash — and the stores that keep them: bbolt on one machine (this
// file's Bolt), PostgreSQL for a team (later). Every store passes the suite
// in catalogtest.
//
// The catalog never touches content: callers store a version's bytes first
// and then record the version, so a record never points at missing data.
package catalog

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/lamina-bio/lamina/ref"
)

// Errors the stores return. Test with errors.Is.
var (
	ErrNotFound error = sentinel{"not found", fs.ErrNotExist}
	ErrConflict error = sentinel{"conflict", fs.ErrExist}
	ErrKind           = errors.New("wrong kind of artifact")
	ErrSchema         = errors.New("catalog schema")
	// ErrUpgraded: a write refused because a newer lamina upgraded the
	// schema of a shared catalog while this store had it open. It matches
	// ErrSchema (and travels to the CLI as that).
	ErrUpgraded error = sentinel{"catalog schema upgraded by a newer lamina", ErrSchema}
	// ErrWrittenAgain: a key whose versions were all in the trash has a
	// live one again (PurgeTrashed keeps it).
	ErrWrittenAgain = errors.New("written again since it was trashed")
	// ErrReferenced: something refers to a version that PurgeTrashed with
	// PurgeUnreferenced was asked to remove (it keeps it).
	ErrReferenced = errors.New("referred to")
)

// PurgeUnreferenced is the kind of PurgeTrashed that removes an artifact
// wholly in the trash only when nothing refers to any of its versions.
const PurgeUnreferenced = "unreferenced"

// References says what refers to versions vs, for PurgeUnreferenced,
// with the reads of the store's purging transaction: annotated reads a
// version's annotations, users the runs that read it, collections the
// collection versions that may list one of uids (more is fine: members
// are checked here). It returns descriptions for people ("KEY@vN is in
// collection C@vM"), none when nothing refers to them. A run's outputs
// are no reference: a temporary a run wrote hands its content, and the
// run, to the name it is renamed to.
func References(vs []Version, annotated func(uid string) (Annotations, error),
	users func(uid string) ([]string, error), collections func(uids []string) ([]Collection, error)) ([]string, error) {
	var out []string
	byUID := map[string]Version{}
	uids := make([]string, 0, len(vs))
	for _, v := range vs {
		byUID[v.UID] = v
		uids = append(uids, v.UID)
		a, err := annotated(v.UID)
		if err != nil {
			return nil, err
		}
		if !a.IsZero() {
			out = append(out, fmt.Sprintf("%s is annotated", v.Ref()))
		}
		rs, err := users(v.UID)
		if err != nil {
			return nil, err
		}
		for _, r := range rs {
			out = append(out, fmt.Sprintf("%s is an input of run %s", v.Ref(), r))
		}
	}
	cs, err := collections(uids)
	if err != nil {
		return nil, err
	}
	for _, c := range cs {
		for _, m := range c.Members {
			if v, ok := byUID[m]; ok {
				out = append(out, fmt.Sprintf("%s is in collection %s@v%d", v.Ref(), c.Name, c.Version))
			}
		}
	}
	return out, nil
}

// ReferencedError is ErrReferenced naming what refers to key's versions.
func ReferencedError(key string, refs []string) error {
	const most = 5
	if len(refs) > most {
		refs = append(refs[:most:most], fmt.Sprintf("… and %d more", len(refs)-most))
	}
	return errorf(ErrReferenced, "%q is kept in the trash: %s", key, strings.Join(refs, "; "))
}

// sentinel is a package error that also matches an io/fs error.
type sentinel struct {
	msg string
	is  error
}

func (s sentinel) Error() string        { return s.msg }
func (s sentinel) Is(target error) bool { return target == s.is }

// detail is an error whose message is written for people and which still
// matches its sentinel with errors.Is.
type detail struct {
	msg  string
	kind error
}

func (d *detail) Error() string { return d.msg }
func (d *detail) Unwrap() error { return d.kind }

// errorf formats a message for people that errors.Is matches to kind.
func errorf(kind error, format string, a ...any) error {
	return &detail{msg: fmt.Sprintf(format, a...), kind: kind}
}

// AmbiguousError is returned when a uid prefix names several versions.
type AmbiguousError struct {
	Prefix     string
	Candidates []Version
}

func (e *AmbiguousError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "uid prefix %q is ambiguous; it matches:", e.Prefix)
	for _, v := range e.Candidates {
		fmt.Fprintf(&b, "\n  %s  %s@v%d", v.UID, v.Key, v.Version)
	}
	return b.String()
}

// Version is one immutable state of an artifact.
type Version struct {
	UID           string     `json:"uid"`
	Key           string     `json:"key"`
	Version       int        `json:"version"`
	Kind          string     `json:"kind"` // "file" or "folder"
	Suffix        string     `json:"suffix"`
	OType         string     `json:"otype,omitempty"`
	NObservations int64      `json:"n_observations,omitempty"`
	Shape         []int64    `json:"shape,omitempty"`   // rows × columns, or obs × var of an AnnData
	Columns       []Column   `json:"columns,omitempty"` // read from the content when saved (annotate.go)
	NFiles        int        `json:"n_files,omitempty"`
	Size          int64      `json:"size"`
	Digest        ref.Digest `json:"digest"`
	Manifest      string     `json:"manifest"` // where the content store keeps the manifest (opaque)
	Description   string     `json:"description,omitempty"`
	CreatedBy     string     `json:"created_by"`
	CreatedAt     time.Time  `json:"created_at"`
	Mtime         time.Time  `json:"mtime"`
	Run           string     `json:"run,omitempty"`
	Revises       string     `json:"revises,omitempty"` // uid of the version of the same key this one revises (save --revises)
	Mode          uint32     `json:"mode,omitempty"`    // permission bits set by chmod; 0 means the default (Perm)
	Trashed       bool       `json:"trashed,omitempty"`
	TrashedAt     *time.Time `json:"trashed_at,omitempty"`
}

// ModeNone is the Mode of a version whose permission bits are all clear
// (chmod 000, tar's placeholders): a Mode of 0 means the default, 0644.
// It is such a regular file's st_mode.
const ModeNone uint32 = 0o100000

// Perm is the permission bits a version's Mode stands for.
func Perm(mode uint32) uint32 {
	if mode == 0 {
		return 0o644
	}
	return mode & 0o7777
}

// ModeOf is the Mode that stands for the permission bits perm (higher
// bits are ignored).
func ModeOf(perm uint32) uint32 {
	switch perm &= 0o7777; perm {
	case 0o644:
		return 0
	case 0:
		return ModeNone
	}
	return perm
}

// ShownVersion is a Version as users read it (sidecars, `--format json`):
// "mode" is the permission bits chmod set, absent for the default 0644
// and 0 for none, where the record keeps ModeNone; "n_observations" is
// there for a table of 0 rows too.
type ShownVersion struct {
	Version
	Mode *uint32 `json:"mode,omitempty"`
	// NObservations is present when known (HasNObservations), 0 too.
	NObservations *int64 `json:"n_observations,omitempty"`
}

// Shown is v as users read it.
func Shown(v Version) ShownVersion {
	s := ShownVersion{Version: v}
	if v.HasNObservations() {
		n := v.NObservations
		s.NObservations = &n
	}
	if v.Mode != 0 {
		perm := Perm(v.Mode)
		s.Mode = &perm
	}
	return s
}

// HasNObservations reports whether v's NObservations is known: a table
// (one with a Shape, whose first number it is) of 0 rows has 0; a version
// of no table has none. The records keep 0 as absent (omitempty), as
// they always have, so the Shape tells the two apart.
func (v Version) HasNObservations() bool { return v.NObservations > 0 || len(v.Shape) > 0 }

// Stem is the uid part shared by every version of the artifact.
func (v Version) Stem() string { return v.UID[:ref.StemLen] }

// Ref is "key@vN".
func (v Version) Ref() string { return fmt.Sprintf("%s@v%d", v.Key, v.Version) }

// NewVersion is what a caller records; the store assigns uid and number.
type NewVersion struct {
	Key           string
	Revises       string // optional uid: must name a version of the same key
	Kind          string
	Suffix        string
	OType         string
	NObservations int64
	Shape         []int64
	Columns       []Column
	NFiles        int
	Size          int64
	Digest        ref.Digest
	Manifest      string
	// Description: "" takes the latest live version's, as LaminDB carries
	// a revised artifact's forward (a save or mount write without one
	// dropped it, and search, which reads latest versions, lost it),
	// unless NoDescription: then the version has none (save -d '').
	Description   string
	NoDescription bool
	CreatedBy     string
	CreatedAt     time.Time
	Mtime         time.Time
	Run           string
	Mode          uint32 // permission bits; 0 means the default, ModeNone none (Perm)
	// Stem, if set, is the stem a new artifact takes (the key has none)
	// unless another artifact has it: a redo of a lazy save lost to a
	// stop gives the version the uid its writer was told (stage's
	// journal). A catalog whose saves are never lazy may draw one anyway
	// (PostgreSQL does).
	Stem string `json:",omitempty"`
}

// Saved is the outcome of recording one NewVersion.
type Saved struct {
	Version   Version
	Unchanged bool // the latest version already had these bytes; nothing was recorded
	// LazySeq numbers a lazy save of a held bbolt catalog (Lazy): it is
	// durable once Bolt.LazyCommitted reaches it. 0 for other saves.
	LazySeq uint64
}

// TrashEntry is an artifact with versions in the trash, or (Kind) a
// folder or symbolic link removed from the namespace (TrashedNode).
type TrashEntry struct {
	Key       string    `json:"key"`
	Kind      string    `json:"kind,omitempty"` // "folder" or "link"; "" for an artifact
	Stem      string    `json:"stem"`
	Versions  int       `json:"versions"` // how many are trashed
	Size      int64     `json:"size"`
	TrashedAt time.Time `json:"trashed_at"`
	Live      bool      `json:"live"` // the key was written again since
	// RemovalFrom is a removed folder's TrashedNode.RemovalFrom: when the
	// removal that emptied it began, if known.
	RemovalFrom *time.Time `json:"removal_from,omitempty"`
}

// Query selects the latest versions of live artifacts.
type Query struct {
	Prefix string // key prefix; "" for all
	After  string // return keys strictly after this one (paging)
	Limit  int    // 0 means no limit
}

// Counts summarises the catalog.
type Counts struct {
	Artifacts int   `json:"artifacts"` // live
	Versions  int   `json:"versions"`  // of live artifacts, not trashed
	Trashed   int   `json:"trashed"`   // versions in the trash
	Bytes     int64 `json:"bytes"`     // sum of sizes of all recorded versions
}

// Catalog is implemented by every store. Methods are safe for concurrent use
// within and across processes; each call is one transaction.
type Catalog interface {
	// Save records versions atomically: all or none. A version whose digest
	// equals the latest live version of its key is not recorded (Unchanged);
	// if it names a Run other than that version's, the version becomes an
	// output of that run too (Runs.Reruns: a rerun that reproduced it).
	// A new key gets a new artifact; a key with only trashed versions
	// continues its numbers. A version without a description takes the
	// latest live version's (NewVersion.Description). Errors: ref.ErrBadKey, ErrConflict (the key is a
	// folder of other keys, or sits under a file), ErrKind, ErrNotFound
	// (Revises names nothing).
	Save(ctx context.Context, vs []NewVersion) ([]Saved, error)
	// ByUID resolves a full uid or a prefix of at least ref.MinUIDPrefix
	// characters; *AmbiguousError when several match. Trashed versions
	// resolve (marked Trashed).
	ByUID(ctx context.Context, prefix string) (Version, error)
	// ByKey returns version n of key, or the latest live version for n == 0.
	// Trashed versions do not resolve by key.
	ByKey(ctx context.Context, key string, n int) (Version, error)
	// Versions lists every live version of key, oldest first; with trash,
	// also the trashed ones.
	Versions(ctx context.Context, key string, trash bool) ([]Version, error)
	// List returns the latest versions of live artifacts by key order.
	List(ctx context.Context, q Query) ([]Version, error)
	// Trash moves every version of key to the trash.
	Trash(ctx context.Context, key string) (TrashEntry, error)
	// Restore brings the trashed versions of key back; when key has none,
	// the folder or link last removed at key (TrashedNode), with its mode
	// and times. Versions brought back take the name: a folder or link in
	// the trash at key leaves it. ErrConflict if the key now clashes with
	// another key.
	Restore(ctx context.Context, key string) (TrashEntry, error)
	// RestoreNode brings back the folder or link in the trash at key, as
	// Restore does when key has no trashed versions, but even when it has
	// (restore FOLDER/ where a folder removed at key is newer than the
	// file trashed there: the file stays in the trash). ErrNotFound if the
	// trash holds no folder or link at key.
	RestoreNode(ctx context.Context, key string) (TrashEntry, error)
	// RestoreTrashedWith brings back the trashed version uid (a full uid)
	// and the versions of its key trashed with it, in the same
	// transaction (the same TrashedAt: one delete, rm or rename of the
	// key), as Restore does for all of them; the key's versions trashed
	// at other times stay in the trash. ErrNotFound if uid names no
	// trashed version; ErrConflict as Restore.
	RestoreTrashedWith(ctx context.Context, uid string) (TrashEntry, error)
	// TrashList lists artifacts that have trashed versions, and the
	// folders and links in the trash (TrashEntry.Kind), in SortTrash's
	// order: by key, an artifact before the folder or link at its key.
	TrashList(ctx context.Context) ([]TrashEntry, error)
	// Purge removes key's artifact and all its versions for good and returns
	// them; for a key with no artifact, the folder or link in the trash at
	// key (none returned). ErrNotFound if there is neither.
	Purge(ctx context.Context, key string) ([]Version, error)
	// PurgeTrashed removes for good what the trash holds at key and
	// nothing live, checking in the one transaction that removes it. With
	// kind "" it is key's artifact and all its versions, when every one of
	// them is trashed: ErrWrittenAgain if key has a live version (written
	// since it was trashed), and nothing is removed. With kind "folder" or
	// "link" it is only the folder or link in the trash at key (none
	// returned), never an artifact. With kind PurgeUnreferenced it is as
	// with "", and also ErrReferenced if anything refers to one of the
	// versions (annotations, a collection's member, a run's input), checked
	// in the same transaction so that none is added in between: the mount's
	// purge of a renamed temporary. ErrNotFound if the trash holds no such
	// thing at key.
	PurgeTrashed(ctx context.Context, key, kind string) ([]Version, error)
	// Each calls fn for every version, live or trashed.
	Each(ctx context.Context, fn func(Version) error) error
	// Counts summarises the catalog.
	Counts(ctx context.Context) (Counts, error)
	// Outbox lists versions whose storage record is not yet written;
	// OutboxDone removes them once written.
	Outbox(ctx context.Context) ([]Version, error)
	OutboxDone(ctx context.Context, uids []string) error
	// Children lists one level of the key namespace under prefix ("" for
	// the top, else a prefix ending in "/"): the latest versions of the live
	// keys directly under it and the names of the sub-prefixes that hold at
	// least one live key. A listed version may carry only what a folder
	// listing shows (key, uid, number, kind, size, mtime, mode); ByUID has
	// the rest. Errors: ref.ErrBadKey for a malformed prefix.
	Children(ctx context.Context, prefix string) (Dir, error)
	// Writer holds what the mount's write side needs (catalog/write.go).
	Writer
	// Annotator keeps features, labels, schemas, annotations and
	// collections, and answers queries (catalog/annotate.go).
	Annotator
	// Runs keeps lineage: transforms, runs, their inputs (catalog/runs.go).
	Runs
	// Close releases the store.
	Close() error
}

// Dir is one level of the key namespace, as Children returns it. Both lists
// are sorted by name (byte order).
type Dir struct {
	Files   []Version `json:"files"`           // latest versions of keys directly under the prefix
	Subdirs []string  `json:"subdirs"`         // next segments of deeper live keys (and of folders and links)
	Links   []Link    `json:"links,omitempty"` // symbolic links directly under the prefix
	// Folder is the prefix's own folder record (MakeFolder, SetAttrs of
	// a folder), nil if it has none. Its Key is the prefix without "/".
	Folder *FolderRecord `json:"folder,omitempty"`
	// Beneath is the newest mtime of the first live key (in key order) of
	// each sub-folder: a time that stays the same until keys change, which
	// a mount shows for a folder with no files or record of its own.
	Beneath time.Time `json:"beneath,omitzero"`
}
