// Package cache turns bytes into stored content and back. It splits files
// into content-defined chunks (FastCDC), names each chunk by its BLAKE3
// digest, compresses it with zstd when that pays, and stores each chunk once.
// Chunks (and the manifests that list them) are written into pack objects of
// about 16 MiB rather than one object each: creating a file costs about a
// millisecond on these machines, which would dominate small chunks and small
// files (docs/design.md has the measurements).
//
// Storage layout (names inside a storage root):
//
//	packs/<id[0:2]>/<id>     blobs back to back, then a trailer listing them
//	records/<time>-<rand>    catalog records of saved versions, for rebuilds
//
// A manifest lists a file's chunks with their pack locations, so a read needs
// no index: it goes from the manifest straight to a ranged read of a pack.
// The local index (bbolt, one per instance) maps digests to locations only to
// deduplicate writes; it can be rebuilt from the pack trailers.
package cache
