package catalog

import "time"

// DumpFormat is the version of the export format (Record lines). 2: folders
// and links in the trash (TrashedNode), versions' Revises; a lamina that
// reads only 1 would drop them without a word, so it refuses a 2. 3: Rerun
// records; a lamina that reads only 2 took them for records of no kind
// ("holds 8  records where its count line says 0"). 4: DeletedCollection
// records; a lamina that reads only 3 would import the catalog without
// them, and a collection made again under a deleted name would take its
// old numbers again.
const DumpFormat = 4

// DumpFormatOf is the format a dump is written in: the lowest that holds
// what the catalog has, so that an older lamina imports it when it can. 1
// when the catalog holds nothing format 2 adds (no TrashedNode, no version
// that revises another); 2 with those; 3 with reruns (Runs.Reruns); 4
// with the numbers of deleted collections (DeletedCollection).
func DumpFormatOf(trashedNodes, revises, reruns, deletedCollections bool) int {
	switch {
	case deletedCollections:
		return 4
	case reruns:
		return 3
	case trashedNodes || revises:
		return 2
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
// then collections and deleted collections' numbers, transforms, runs,
// run inputs and reruns.
type Record struct {
	Format int `json:"format,omitempty"` // the first line: DumpFormat
	// Counted (with Format, on the first line) says the file ends with a
	// Count record: a file without it was cut. Older exports lack both,
	// and a lamina that knows neither ignores them, so they need no new
	// format number.
	Counted     bool            `json:"counted,omitempty"`
	Count       *DumpCount      `json:"count,omitempty"` // the last line
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
	// DeletedCollection is the highest number a deleted collection had.
	DeletedCollection *DeletedCollection `json:"deleted_collection,omitempty"`
	Transform         *Transform         `json:"transform,omitempty"`
	Run               *Run               `json:"run,omitempty"`
	Input             *RunInput          `json:"input,omitempty"`
	Rerun             *RunInput          `json:"rerun,omitempty"` // a run that wrote a version's bytes again (Runs.Reruns)
}

// DumpCount is the last line of an export that says it is Counted.
type DumpCount struct {
	Records map[string]int `json:"records"` // by Kind, the first line and this one aside
}

// Kind is the name of the field r sets ("version", "trashed_node", …):
// what a Count counts.
func (r Record) Kind() string {
	switch {
	case r.Format != 0:
		return "format"
	case r.Count != nil:
		return "count"
	case r.Feature != nil:
		return "feature"
	case r.Label != nil:
		return "label"
	case r.Schema != nil:
		return "schema"
	case r.Artifact != nil:
		return "artifact"
	case r.Version != nil:
		return "version"
	case r.Outbox != "":
		return "outbox"
	case r.Folder != nil:
		return "folder"
	case r.Link != nil:
		return "link"
	case r.TrashedNode != nil:
		return "trashed_node"
	case r.Annotations != nil:
		return "annotations"
	case r.Collection != nil:
		return "collection"
	case r.DeletedCollection != nil:
		return "deleted_collection"
	case r.Transform != nil:
		return "transform"
	case r.Run != nil:
		return "run"
	case r.Input != nil:
		return "input"
	case r.Rerun != nil:
		return "rerun"
	}
	return ""
}

// DeletedCollection is the highest version number a collection name had
// when it was deleted (Annotator.DeleteCollection) and not made again
// since. A collection made again under the name continues after it
// (SaveCollection), so that NAME@vN, in a run's inputs, a note or a
// script, never comes to name another list. The record goes once the
// name is used again: its versions then hold the highest number.
type DeletedCollection struct {
	Name    string `json:"name"`
	Version int    `json:"version"`
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
