package stage

import (
	"path"
	"strings"
)

// DefaultScratch are the names that are scratch unless an instance says
// otherwise: Snakemake's bookkeeping (its .snakemake folder, and the
// .snakemake_timestamp it leaves in each directory() output, which would
// otherwise be an artifact of the pipeline's run with all its inputs);
// editor swap files (vim's .swp, .swo
// …, and the file it probes with when it makes one: .NAME.swpx for a NAME
// without a dot, .NAME.swx for one with), backups, lock files and Emacs's
// auto-saves; the file vim creates and removes to test that it may write a
// folder (4913); NFS's silly-renamed files; and the journals and shared
// memory of SQLite databases (a database's own working files: each
// transaction would leave versions of its journal in the trash), by the
// suffixes SQLite databases commonly have: .db, .sqlite, .sqlite3,
// .sqlitedb, and GeoPackage (.gpkg), MBTiles (.mbtiles), .db3, .s3db and
// .sl3. A GeoPackage in WAL mode made a version of its -wal file at each
// transaction's close (404 in 2×200 transactions). Only SQLite's own
// sidecar names (-journal, -wal, -shm): x.gpkg-old stays a key.
var DefaultScratch = []string{".snakemake", ".snakemake_timestamp", ".*.sw?", ".*.swpx", "*~", ".#*", "#*#", ".nfs*", "4913",
	"*.db-journal", "*.db-wal", "*.db-shm", "*.sqlite*-journal", "*.sqlite*-wal", "*.sqlite*-shm",
	"*.gpkg-journal", "*.gpkg-wal", "*.gpkg-shm", "*.mbtiles-journal", "*.mbtiles-wal", "*.mbtiles-shm",
	"*.db3-journal", "*.db3-wal", "*.db3-shm", "*.s3db-journal", "*.s3db-wal", "*.s3db-shm",
	"*.sl3-journal", "*.sl3-wal", "*.sl3-shm"}

// Scratch decides which paths of a mount are scratch: a plain POSIX folder
// with no versions. A path is scratch when any of its segments matches one
// of the patterns (path.Match syntax, one segment each), so everything
// under a ".snakemake" folder is.
type Scratch []string

// Match reports whether the slash-separated path p is scratch.
func (s Scratch) Match(p string) bool {
	for _, seg := range strings.Split(p, "/") {
		if seg != "" && s.MatchName(seg) {
			return true
		}
	}
	return false
}

// MatchName reports whether one name is scratch. So is rsync's temporary
// of a scratch name (.x~.Ab12Cd for x~): a key, it went to the trash when
// rsync renamed it onto x~.
func (s Scratch) MatchName(name string) bool {
	for _, pat := range s {
		if !mayMatch(pat, name) {
			continue
		}
		if ok, _ := path.Match(pat, name); ok {
			return true
		}
	}
	if base, ok := rsyncTemporaryOf(name); ok {
		return s.MatchName(base)
	}
	return false
}

// mayMatch is false when path.Match(pat, name) cannot hold: pat starts or
// ends with a literal byte that name does not. The mount asks about every
// name a create, lookup or rename meets, and path.Match of all of
// DefaultScratch's 30 patterns was 3.5% of its CPU per file created; this
// turns down nearly all of them for an ordinary name.
func mayMatch(pat, name string) bool {
	if pat == "" || name == "" {
		return true
	}
	meta := func(c byte) bool { return c == '*' || c == '?' || c == '[' || c == ']' || c == '\\' }
	if c := pat[0]; !meta(c) && c != name[0] {
		return false
	}
	// A last byte that is literal must end name: it cannot be inside a
	// class (one ends with ']', or the pattern is bad and matches nothing).
	if c := pat[len(pat)-1]; !meta(c) && c != name[len(name)-1] {
		return false
	}
	return true
}

// rsyncTemporaryOf returns the name whose temporary rsync names name:
// "." + the name + "." + six letters or digits (mkstemp's XXXXXX).
func rsyncTemporaryOf(name string) (string, bool) {
	const suffix = 7 // ".XXXXXX"
	if len(name) < 2+suffix || name[0] != '.' || name[len(name)-suffix] != '.' {
		return "", false
	}
	for _, c := range name[len(name)-suffix+1:] {
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
			return "", false
		}
	}
	return name[1 : len(name)-suffix], true
}
