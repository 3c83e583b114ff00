package fs

import (
	"encoding/binary"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/ref"
)

// Name is a parsed name of the namespace: base, optionally "@vN", optionally
// ".meta".
type Name struct {
	Base    string
	Version int  // 0: the latest
	Meta    bool // the JSON sidecar
}

// ParseName splits a hidden name: "a.csv@v2.meta" is {a.csv, 2, true}. A
// plain name comes back as {name, 0, false}. Only the canonical spelling of
// a version resolves ("@v2", not "@v02"), so each version has one name.
func ParseName(name string) Name {
	n := Name{Base: name}
	if b, ok := strings.CutSuffix(n.Base, ".meta"); ok && b != "" {
		n.Base, n.Meta = b, true
	}
	if i := strings.LastIndex(n.Base, "@v"); i > 0 {
		digits := n.Base[i+2:]
		if v, err := strconv.Atoi(digits); err == nil && v > 0 && strconv.Itoa(v) == digits {
			n.Base, n.Version = n.Base[:i], v
		}
	}
	return n
}

// String is the name back.
func (n Name) String() string {
	s := n.Base
	if n.Version > 0 {
		s += "@v" + strconv.Itoa(n.Version)
	}
	if n.Meta {
		s += ".meta"
	}
	return s
}

// Sidecar is the JSON a ".meta" name shows: what `lamina show --format json`
// prints, plus "lineage" (null until the lineage issue records runs).
func Sidecar(v catalog.Version) []byte { return SidecarWith(v, nil) }

// SidecarWith is Sidecar with lineage as its "lineage" field.
func SidecarWith(v catalog.Version, lineage any) []byte {
	b, err := json.MarshalIndent(struct {
		catalog.Version
		Lineage any `json:"lineage"`
	}{Version: v, Lineage: lineage}, "", "  ")
	if err != nil {
		panic(err) // a Version always marshals
	}
	return append(b, '\n')
}

// Inode tags: what kind of thing an inode number names.
const (
	tagDir         = "d"  // a key prefix
	tagLatest      = "l"  // a file shown at its key (the latest version)
	tagVersion     = "v"  // a file shown at key@vN
	tagMeta        = "m"  // a sidecar (the same bytes at name.meta and name@vN.meta)
	tagFolderLat   = "fl" // inside a folder artifact at its key
	tagFolderVer   = "fv" // inside a folder artifact at key@vN
	tagFolderLatD  = "dl"
	tagFolderVerD  = "dv"
	firstFreeInode = 2 // 1 is the root
)

// Ino derives a stable inode number from a tag and what the name shows.
func Ino(tag string, parts ...string) uint64 {
	s := tag + "\x00" + strings.Join(parts, "\x00")
	d := ref.Sum([]byte(s))
	n := binary.LittleEndian.Uint64(d[:8])
	if n < firstFreeInode {
		n += firstFreeInode
	}
	return n
}
