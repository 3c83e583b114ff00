package catalog

import "time"

// DumpFormat is the version of the export format (Record lines). 2: folders
// and links in the trash (TrashedNode), versions' Revises; a lamina that
// reads only 1 would drop them without a word, so it refuses a 2.
const DumpFormat = 2

// DumpFormatOf is the format a dump is written in: 1 when the catalog holds
// nothing format 2 adds (no TrashedNode, no version that revises another),
// so that a lamina that reads only 1 imports it; 2 otherwise.
func DumpFormatOf(trashedNodes, revises bool) int {
	if trashedNodes || revises {
		return DumpFormat
	}
	return 1
}

// Record is one line of a catalog export (`lamina export-catalog`): every
// record of a store, exactly as kept, so that another store loads the same
// catalog — uids, numbers, trash (with removed folders and links), outbox,
// folders, links, annotations and
// every collection version. Exactly one field is set. A dump lists
// features, labels and schemas first, then artifacts before their
// versions, and versions before their annotations and outbox entries;
// then collections, transforms, runs and run inputs.
type Record struct {
	Format      int             `json:"format,omitempty"` // the first line: DumpFormat
	Feature     *Feature        `json:"feature,omitempty"`
	Label       *Label          `json:"label,omitempty"`
	Schema      *Schema         `json:"schema,omitempty"`
	Artifact    *ArtifactRecord `json:"artifact,omitempty"`
	Version     *Version        `json:"version,omitempty"`
	Outbox      string          `json:"outbox,omitempty"` // a version uid whose storage record is unwritten
	Folder      *FolderRecord   `json:"folder,omitempty"`
	Link        *Link           `json:"link,omitempty"`
	TrashedNode *TrashedNode    `json:"trashed_node,omitempty"` // a folder or link in the trash
	Annotations *Annotations    `json:"annotations,omitempty"`
	Collection  *Collection     `json:"collection,omitempty"`
	Transform   *Transform      `json:"transform,omitempty"`
	Run         *Run            `json:"run,omitempty"`
	Input       *RunInput       `json:"input,omitempty"`
}

// RunInput records that a run used a version (Runs.AddInputs).
type RunInput struct {
	Run string `json:"run"`
	UID string `json:"uid"`
}

// ArtifactRecord is an artifact: its key and the numbers of its versions.
type ArtifactRecord struct {
	Stem      string     `json:"stem"`
	Key       string     `json:"key"`
	Kind      string     `json:"kind"`
	Versions  int        `json:"versions"` // highest number ever assigned
	Latest    int        `json:"latest"`   // highest live number; 0 when all are trashed
	TrashedAt *time.Time `json:"trashed_at,omitempty"`
}

// FolderRecord is a folder's own record: made by MakeFolder (the folder
// then persists while empty) or by SetAttrs of a folder (chmod, touch).
type FolderRecord struct {
	Key   string    `json:"key"`
	Mtime time.Time `json:"mtime"` // when it was made, or what SetAttrs set (Touched)
	// Mode is the folder's st_mode as chmod left it (S_IFDIR and the
	// permission bits, so that chmod 000 is not 0); 0 if never set, which
	// shows as 0755.
	Mode uint32 `json:"mode,omitempty"`
	// Touched says SetAttrs set Mtime: the folder shows it as its mtime,
	// where an untouched folder shows its newest file's.
	Touched bool `json:"touched,omitempty"`
}

// FolderMode is the permission bits of a folder whose record has mode
// (FolderRecord.Mode): 0755 when none was set.
func FolderMode(mode uint32) uint32 {
	if mode == 0 {
		return 0o755
	}
	return mode & 0o7777
}

// SetAttrs applies a to the record (SetAttrs of its folder).
func (f *FolderRecord) SetAttrs(a Attrs) {
	if a.Mtime != nil {
		f.Mtime, f.Touched = a.Mtime.UTC(), true
	}
	if a.Mode != nil {
		f.Mode = folderModeOf(*a.Mode)
	}
}

// Moved is the record of the folder f renamed to key at now: its mode and
// a time SetAttrs set move with it (rename(2) keeps a folder's inode and
// attributes); an untouched one's time is now.
func (f FolderRecord) Moved(key string, now time.Time) FolderRecord {
	f.Key = key
	if !f.Touched {
		f.Mtime = now
	}
	return f
}

// folderModeOf is the FolderRecord.Mode of an Attrs.Mode, which comes as a
// Version's Mode (ModeOf: 0 for 0644, ModeNone for 0).
func folderModeOf(mode uint32) uint32 {
	return 0o040000 | Perm(mode)
}
