package cache

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/lamina-bio/lamina/ref"
)

// Chunk is one entry of a file's chunk list: what the bytes are and where
// they are stored.
type Chunk struct {
	Digest ref.Digest `json:"d"`
	Size   int64      `json:"n"`
	Loc
}

// File is the content of one file: its size, whole-file digest (over the
// bytes, independent of chunking) and chunk list.
type File struct {
	Path   string     `json:"path,omitempty"` // inside a folder; empty for a file artifact
	Size   int64      `json:"size"`
	Digest ref.Digest `json:"digest"`
	Mode   uint32     `json:"mode,omitempty"`
	Chunks []Chunk    `json:"chunks"`
}

// Manifest describes the content of one version: a file, or a folder's files
// sorted by path.
type Manifest struct {
	Format int    `json:"format"`
	Kind   string `json:"kind"` // "file" or "folder"
	Files  []File `json:"files"`
}

const manifestFormat = 1

// Kinds of artifact content.
const (
	KindFile   = "file"
	KindFolder = "folder"
)

// Size is the total byte count of the content.
func (m *Manifest) Size() int64 {
	var n int64
	for _, f := range m.Files {
		n += f.Size
	}
	return n
}

// Digest is the whole-content digest: the file's digest, or for a folder the
// digest of its sorted "path\x00size\x00digest\n" lines, so two folders with
// the same files have the same digest.
func (m *Manifest) Digest() ref.Digest {
	if m.Kind == KindFile && len(m.Files) == 1 {
		return m.Files[0].Digest
	}
	h := ref.NewHasher()
	for _, f := range m.Files {
		fmt.Fprintf(h, "%s\x00%d\x00%s\n", f.Path, f.Size, f.Digest)
	}
	return h.Digest()
}

func (m *Manifest) validate() error {
	switch m.Kind {
	case KindFile:
		if len(m.Files) != 1 || m.Files[0].Path != "" {
			return fmt.Errorf("%w: file manifest with %d entries", ErrCorrupt, len(m.Files))
		}
	case KindFolder:
		if !sort.SliceIsSorted(m.Files, func(i, j int) bool { return m.Files[i].Path < m.Files[j].Path }) {
			return fmt.Errorf("%w: folder manifest not sorted", ErrCorrupt)
		}
	default:
		return fmt.Errorf("%w: manifest kind %q", ErrCorrupt, m.Kind)
	}
	for _, f := range m.Files {
		var n int64
		for _, c := range f.Chunks {
			if c.Size <= 0 || len(c.Pack) != 32 || c.Off < 0 || c.Len <= 0 {
				return fmt.Errorf("%w: chunk %s of size %d at %s:%d+%d", ErrCorrupt, c.Digest, c.Size, c.Pack, c.Off, c.Len)
			}
			n += c.Size
		}
		if n != f.Size {
			return fmt.Errorf("%w: %q: chunks add to %d bytes, file has %d", ErrCorrupt, f.Path, n, f.Size)
		}
	}
	return nil
}

// Ref names a stored manifest: its location and its digest. Its text form
// ("pack:offset:length:digest") is what the catalog keeps for a version.
type Ref string

func makeRef(l Loc, d ref.Digest) Ref {
	return Ref(fmt.Sprintf("%s:%d:%d:%s", l.Pack, l.Off, l.Len, d))
}

// Parse splits a Ref into location and digest.
func (r Ref) Parse() (Loc, ref.Digest, error) {
	var l Loc
	parts := strings.Split(string(r), ":")
	if len(parts) != 4 || len(parts[0]) != 32 {
		return l, ref.Digest{}, fmt.Errorf("%w: manifest reference %q", ErrCorrupt, string(r))
	}
	l.Pack = parts[0]
	var err error
	if l.Off, err = strconv.ParseInt(parts[1], 10, 64); err != nil {
		return l, ref.Digest{}, fmt.Errorf("%w: manifest reference %q", ErrCorrupt, string(r))
	}
	if l.Len, err = strconv.ParseInt(parts[2], 10, 64); err != nil {
		return l, ref.Digest{}, fmt.Errorf("%w: manifest reference %q", ErrCorrupt, string(r))
	}
	d, err := ref.ParseDigest(parts[3])
	return l, d, err
}

// encodeManifest returns the JSON form and its digest (the manifest's name).
func encodeManifest(m *Manifest) ([]byte, ref.Digest, error) {
	m.Format = manifestFormat
	b, err := json.Marshal(m)
	if err != nil {
		return nil, ref.Digest{}, err
	}
	return b, ref.Sum(b), nil
}

// DecodeManifest parses and checks a manifest's JSON form.
func DecodeManifest(b []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: manifest: %v", ErrCorrupt, err)
	}
	if m.Format != manifestFormat {
		return nil, fmt.Errorf("%w: manifest format %d (this lamina reads %d)", ErrCorrupt, m.Format, manifestFormat)
	}
	if err := m.validate(); err != nil {
		return nil, err
	}
	return &m, nil
}
