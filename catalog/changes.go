package catalog

import "strings"

// Change notifications (the mount daemon's catalog server, PostgreSQL's
// LISTEN/NOTIFY) carry a list of keys: the keys whose namespace entry a
// call changed. Annotating a version reports its key (its sidecars
// changed). A new version of a collection is reported among the keys by
// CollectionChange, a string that starts with NUL, which no key holds.

const collectionChange = "\x00collection:"

// CollectionChange is what a change notification lists for "collection
// name has a new version".
func CollectionChange(name string) string { return collectionChange + name }

// ChangedCollection reports the collection a listed change names, if it
// is a CollectionChange rather than a key.
func ChangedCollection(change string) (name string, ok bool) {
	return strings.CutPrefix(change, collectionChange)
}

// A rename and a trash are reported among the keys by a marker as well,
// besides the keys they change: a mount that holds files of the old key
// open makes their next commit follow (stage.Stage.Moved, Deleted), as its
// own rename or unlink would. A mount of a lamina that predates the
// markers takes them for keys no listing holds, and only asks the kernel
// to forget names that no folder has (they hold NUL).
const (
	renameChange = "\x00renamed:"
	deleteChange = "\x00deleted:"
)

// RenameChange is what a change notification lists for "the key or
// folder from is now to".
func RenameChange(from, to string) string { return renameChange + from + "\x00" + to }

// ChangedRename reports the rename a listed change names, if it is a
// RenameChange.
func ChangedRename(change string) (from, to string, ok bool) {
	rest, ok := strings.CutPrefix(change, renameChange)
	if !ok {
		return "", "", false
	}
	return strings.Cut(rest, "\x00")
}

// DeleteChange is what a change notification lists for "key went to the
// trash".
func DeleteChange(key string) string { return deleteChange + key }

// ChangedDelete reports the key a listed change trashed, if it is a
// DeleteChange.
func ChangedDelete(change string) (key string, ok bool) {
	return strings.CutPrefix(change, deleteChange)
}

// IsMarker reports whether a listed change is a marker (a collection, a
// rename, a trash) rather than a key.
func IsMarker(change string) bool { return strings.HasPrefix(change, "\x00") }

// A run started with a root process (one a mount daemon can track) is
// reported by a marker too, in the transaction that records it: PostgreSQL
// logs and notifies it in commit order (postgres.Store.Listen), so every
// other daemon of the catalog learns of it when it commits, however late
// that is after the run's start time.
const runStartChange = "\x00run-started:"

// RunStartChange is what a change notification lists for "run uid
// started".
func RunStartChange(uid string) string { return runStartChange + uid }

// StartedRun reports the run a listed change names, if it is a
// RunStartChange.
func StartedRun(change string) (uid string, ok bool) {
	return strings.CutPrefix(change, runStartChange)
}
