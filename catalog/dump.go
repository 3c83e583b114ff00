package catalog

import "time"

// DumpFormat is the version of the export format (Record lines).
const DumpFormat = 1

// Record is one line of a catalog export (`lamina export-catalog`): every
// record of a store, exactly as kept, so that another store loads the same
// catalog — uids, numbers, trash, outbox, folders, links, annotations and
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

// FolderRecord is a folder that persists while empty.
type FolderRecord struct {
	Key   string    `json:"key"`
	Mtime time.Time `json:"mtime"`
}
