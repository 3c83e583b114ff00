// Package fs shows a Lamina catalog as a FUSE filesystem (read side).
//
// The namespace (DESIGN §2) is plain Go in namespace.go, names.go,
// folder.go and content.go, testable without a mount: key prefixes are
// directories, a key is a file showing its latest version, and the hidden
// names "name@vN", "name.meta" and "name@vN.meta" resolve on lookup to a
// version and to JSON sidecars. A folder artifact is a read-only tree built
// from its manifest, per version too ("pbmc.zarr@v1/…").
//
// mount.go and node.go are the thin go-fuse adapter; this package is the
// only one that imports go-fuse. Errors become errnos in one function,
// errno in errors.go.
//
// Caching. Directory listings are cached in memory per prefix, a compact
// record per name (the whole version is read by uid where it is needed:
// Namespace.Full; a rename keeps the uid and the kernel's inode, not the
// key). The mount's own commits edit the cached listings in place (a file
// added, renamed or removed: listing.put, remove); Changed, which the
// catalog server calls for every key a Save, Trash, Restore or Purge
// touched, drops them. A listing is read once however many lookups want it; one whose
// folder changed while it was read answers those lookups but is not
// cached. The mount then invalidates the kernel's entry, attribute and
// readdir caches for those names from a goroutine of its own
// (never from inside a FUSE handler). Version paths and sidecars are
// immutable, so the kernel may cache them for hours (FOPEN_KEEP_CACHE).
// Decoded chunks are kept in a bounded LRU shared by every open file.
// OPENDIR is answered with ENOSYS (opendir.go): the kernel then sends no
// OPENDIR or RELEASEDIR again and keeps every listing until it is
// invalidated, so a warm walk of the tree reaches the daemon not at all. A
// folder's mtime (its newest file's) is read before the kernel caches its
// listing, because a changed mtime makes the kernel drop the listing.
//
// "/.lamina/collections" (collections.go) shows collection versions laid
// out by key, read-only; sidecars include annotations, and a change
// notification for a key drops its sidecars' cached pages (names.go).
//
// Inode numbers are derived from names, so they are the same across
// remounts: a file's latest path has one inode per key, whichever version
// it shows (latestIno: a new version, an fsync's commit included, keeps
// it; SQLite checks it before every transaction), a version path one per
// version (its uid), a directory one per prefix. A writable handle opened
// on a file renamed onto a key keeps that file's inode at the path until
// it is released (held.go).
package fs
