package catalog

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"
)

// ErrNotEmpty is returned by RemoveFolder and RenameFolder for a folder that
// still holds keys, folders or links.
var ErrNotEmpty = errors.New("folder not empty")

// Link is a symbolic link kept in the catalog: a name and the text it points
// to. Links have no versions; they exist so that tools that make them (a
// Snakemake shadow rule, say) work inside a mount.
type Link struct {
	Key    string    `json:"key"`
	Target string    `json:"target"`
	Mtime  time.Time `json:"mtime"`
}

// TrashedNode is a folder record or a link that RemoveFolder or RemoveLink
// removed (rmdir, or unlink of a link, in a mount). It is kept in the trash
// so that restoring a folder removed with rm -r brings the tree back whole:
// folder modes and times, empty folders, links. Restore brings one back;
// making a folder or link at its key again drops it.
type TrashedNode struct {
	Folder    *FolderRecord `json:"folder,omitempty"`
	Link      *Link         `json:"link,omitempty"`
	TrashedAt time.Time     `json:"trashed_at"`
	// RemovalFrom is, for a folder removed through a mount, when the
	// removal that emptied it began (WithRemovalFrom): what was trashed
	// under it before then (a lock, a journal, a placeholder its tools
	// unlinked) was gone before the removal, and restore FOLDER/ leaves it
	// in the trash. nil if unknown (a record of before, an rmdir from
	// another pid namespace): restore takes everything under the folder.
	RemovalFrom *time.Time `json:"removal_from,omitempty"`
}

// Key is the key of the folder or link.
func (n TrashedNode) Key() string {
	if n.Link != nil {
		return n.Link.Key
	}
	return n.Folder.Key
}

// ParentRecord is the record Restore of n gives the folder key above it
// when that folder has no record: its own if the trash holds one
// (trashed; nil if not), else, when it holds nothing live (full false:
// rm -r removed it with n), a new one with n's time, or now if n has none.
// Without it such a folder showed the time of nothing beneath it: 1970.
// ok is false when the folder is to stay as it is.
func (n TrashedNode) ParentRecord(key string, trashed *TrashedNode, full bool) (r FolderRecord, ok bool) {
	if trashed != nil && trashed.Folder != nil {
		return *trashed.Folder, true
	}
	if full {
		return FolderRecord{}, false
	}
	mtime := n.TrashedAt
	if n.Link != nil {
		mtime = n.Link.Mtime
	} else if n.Folder != nil {
		mtime = n.Folder.Mtime
	}
	if mtime.Unix() <= 0 {
		mtime = time.Now()
	}
	return FolderRecord{Key: key, Mtime: mtime.UTC()}, true
}

// Entry is n as TrashList shows it.
func (n TrashedNode) Entry() TrashEntry {
	kind := "folder"
	if n.Link != nil {
		kind = "link"
	}
	return TrashEntry{Key: n.Key(), Kind: kind, TrashedAt: n.TrashedAt, RemovalFrom: n.RemovalFrom}
}

type removalFromKey struct{}

// WithRemovalFrom marks ctx for a RemoveFolder whose removal (rm -r of the
// folder, as the mount saw the process remove what was in it) began at
// from: the store keeps it with the folder in the trash
// (TrashedNode.RemovalFrom). It is kept to the microsecond, rounded down,
// as PostgreSQL keeps a version's trash time: the removal's first entry
// is never trashed before it.
func WithRemovalFrom(ctx context.Context, from time.Time) context.Context {
	return context.WithValue(ctx, removalFromKey{}, from.UTC().Truncate(time.Microsecond))
}

// RemovalFromOf is the time WithRemovalFrom put in ctx, nil if none.
func RemovalFromOf(ctx context.Context) *time.Time {
	if t, ok := ctx.Value(removalFromKey{}).(time.Time); ok {
		return &t
	}
	return nil
}

// SortTrash puts a trash listing in TrashList's order: by key (byte
// order), and at one key the artifact before the folder or link removed
// there. Every store sorts with it, so they list the same trash alike.
func SortTrash(es []TrashEntry) {
	rank := func(kind string) int {
		switch kind {
		case "":
			return 0
		case "folder":
			return 1
		}
		return 2
	}
	slices.SortStableFunc(es, func(a, b TrashEntry) int {
		if c := strings.Compare(a.Key, b.Key); c != 0 {
			return c
		}
		return rank(a.Kind) - rank(b.Kind)
	})
}

// TakenNames lists the names that moving the folder from to to makes live,
// given the keys, links and folder records under from/ that move: to, each
// one's new name and every folder between to and it. RenameFolder drops
// the folders and links trashed at them, as a save, mkdir or ln -s at a
// name drops them; what the trash holds at other names under to/, and
// under from/ (the trash of the old names, where the source's trashed
// files stay), is kept.
func TakenNames(from, to string, moved ...[]string) []string {
	seen := map[string]bool{to: true}
	out := []string{to}
	for _, ks := range moved {
		for _, k := range ks {
			n := to + k[len(from):]
			for i := len(to) + 1; i <= len(n); i++ {
				if (i == len(n) || n[i] == '/') && !seen[n[:i]] {
					seen[n[:i]] = true
					out = append(out, n[:i])
				}
			}
		}
	}
	return out
}

// Attrs are the metadata SetAttrs changes; nil fields are left alone.
type Attrs struct {
	Mtime *time.Time `json:"mtime,omitempty"`
	Mode  *uint32    `json:"mode,omitempty"` // a Version's Mode (0 the default, ModeNone none), or st_mode
}

// Writer holds the calls the write side of a mount makes besides Save and
// Trash. Each call is one transaction.
type Writer interface {
	// Rename gives the live artifact (or link) at from the name to. When to
	// is free, the artifact moves with every version it has. When to holds
	// an artifact (live or trashed), to gets a new version with from's
	// latest content and mtime (unless the bytes are the same) and from goes
	// to the trash. A link at to is replaced by what comes (as rename(2)
	// replaces a name); a link renamed onto a live file puts the file's
	// artifact in the trash, as Trash does. It returns the latest version
	// at to (zero for a link).
	// Errors: ErrNotFound, ErrConflict (to is a folder, or sits under a
	// file), ErrKind (a file onto a folder artifact, or the reverse).
	Rename(ctx context.Context, from, to string) (Version, error)
	// RenameFolder moves every live key, folder and link under from to the
	// same place under to. to must not exist, or be an empty folder.
	// Errors: ErrNotFound (from is no folder), ErrConflict (to is a file or
	// link), ErrNotEmpty (to holds something). Folders and links in the
	// trash at the names it makes live leave it (TakenNames).
	RenameFolder(ctx context.Context, from, to string) error
	// SetAttrs changes the mtime or mode of the latest version of key (or
	// the mtime of a link) in place: no new version.
	SetAttrs(ctx context.Context, key string, a Attrs) (Version, error)
	// MakeFolder records key as a folder that persists while empty. A folder
	// that exists already is not an error. ErrConflict if a live file or
	// link is at key or above it.
	MakeFolder(ctx context.Context, key string) error
	// RemoveFolder removes an empty folder, keeping its record in the trash
	// (TrashedNode). ErrNotEmpty if it holds a live key, a folder or a link;
	// ErrNotFound if there is no such folder.
	RemoveFolder(ctx context.Context, key string) error
	// Symlink records a link at key. ErrConflict if key is taken.
	Symlink(ctx context.Context, key, target string) error
	// RemoveLink moves the link at key to the trash (TrashedNode);
	// ErrNotFound if there is none.
	RemoveLink(ctx context.Context, key string) error
}
