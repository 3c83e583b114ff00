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
