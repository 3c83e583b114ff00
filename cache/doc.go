// Package cache turns bytes into stored content and back: it splits files
// into content-defined chunks (FastCDC), names each chunk by its BLAKE3
// digest, compresses it with zstd when that pays, stores it once through a
// storage backend, and records the chunk list of each file (or the file list
// of a folder) in a manifest that is itself stored. Reads go the other way,
// through the manifest, fetching and verifying only the chunks a read needs.
//
// Storage layout (names inside a storage root):
//
//	chunks/<d[0:2]>/<d[2:4]>/<digest>   one chunk: a codec byte, then the data
//	manifests/<d[0:2]>/<digest>          a manifest, zstd-compressed JSON, named
//	                                     by the digest of its uncompressed bytes
//	records/<uid>.json                   a version's catalog record, for rebuilds
package cache
