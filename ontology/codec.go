package ontology

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// The binary encoding of a Source, for the catalog to store as one blob
// and reload without re-parsing the original file:
//
//	magic "LMNONT" | version byte (1)
//	strings Entity, Ontology, Version, Organism, Digest
//	uvarint count, then that many Warnings
//	uvarint count, then that many terms:
//	  strings ID, Name, Definition, Namespace; flags byte (bit 0: obsolete)
//	  uvarint count, then synonyms (string Text, byte Scope)
//	  string lists Parents, PartOf, ReplacedBy, Consider, AltIDs
//	CRC-32 (IEEE) of everything before it, little-endian
//
// A string is a uvarint length then UTF-8 bytes; a list is a uvarint count
// then its items. A new layout gets a new version byte; Unmarshal rejects
// versions it does not know rather than guessing.
const (
	codecMagic   = "LMNONT"
	codecVersion = 1
)

// ErrCodec is wrapped by every Unmarshal error.
var ErrCodec = errors.New("ontology: invalid encoded source")

// Marshal encodes src.
func Marshal(src *Source) []byte {
	size := 64
	for i := range src.Terms {
		size += len(src.Terms[i].ID) + len(src.Terms[i].Name) + len(src.Terms[i].Definition) + 32
	}
	b := make([]byte, 0, size)
	b = append(b, codecMagic...)
	b = append(b, codecVersion)
	for _, s := range []string{src.Entity, src.Ontology, src.Version, src.Organism, src.Digest} {
		b = putString(b, s)
	}
	b = putList(b, src.Warnings)
	b = binary.AppendUvarint(b, uint64(len(src.Terms)))
	for i := range src.Terms {
		t := &src.Terms[i]
		b = putString(b, t.ID)
		b = putString(b, t.Name)
		b = putString(b, t.Definition)
		b = putString(b, t.Namespace)
		var flags byte
		if t.Obsolete {
			flags |= 1
		}
		b = append(b, flags)
		b = binary.AppendUvarint(b, uint64(len(t.Synonyms)))
		for _, s := range t.Synonyms {
			b = putString(b, s.Text)
			b = append(b, byte(s.Scope))
		}
		for _, l := range [][]string{t.Parents, t.PartOf, t.ReplacedBy, t.Consider, t.AltIDs} {
			b = putList(b, l)
		}
	}
	return binary.LittleEndian.AppendUint32(b, crc32.ChecksumIEEE(b))
}

func putString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func putList(b []byte, l []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(l)))
	for _, s := range l {
		b = putString(b, s)
	}
	return b
}

// Unmarshal decodes what Marshal produced. It checks the checksum first,
// so a corrupt blob fails as a whole, and bounds every count by the bytes
// left, so a hostile blob cannot make it allocate much.
func Unmarshal(data []byte) (*Source, error) {
	if len(data) < len(codecMagic)+1+4 || string(data[:len(codecMagic)]) != codecMagic {
		return nil, fmt.Errorf("%w: not an encoded source", ErrCodec)
	}
	if v := data[len(codecMagic)]; v != codecVersion {
		return nil, fmt.Errorf("%w: format version %d, this build reads %d", ErrCodec, v, codecVersion)
	}
	body, sum := data[:len(data)-4], binary.LittleEndian.Uint32(data[len(data)-4:])
	if crc32.ChecksumIEEE(body) != sum {
		return nil, fmt.Errorf("%w: checksum mismatch (corrupt blob)", ErrCodec)
	}
	// One string conversion for the whole blob: every field is a substring
	// of it, which makes decoding a few allocations per term.
	d := decoder{s: string(body), off: len(codecMagic) + 1}
	src := &Source{}
	for _, p := range []*string{&src.Entity, &src.Ontology, &src.Version, &src.Organism, &src.Digest} {
		*p = d.str()
	}
	src.Warnings = d.list()
	n := d.count(6) // a term takes at least 6 bytes
	if n > 0 {
		src.Terms = make([]Term, n)
	}
	for i := 0; i < n && d.err == nil; i++ {
		t := &src.Terms[i]
		t.ID, t.Name, t.Definition, t.Namespace = d.str(), d.str(), d.str(), d.str()
		flags := d.byte()
		if flags&^1 != 0 {
			d.fail("unknown term flags %#x", flags)
		}
		t.Obsolete = flags&1 != 0
		if ns := d.count(2); ns > 0 {
			t.Synonyms = make([]Synonym, ns)
			for j := range t.Synonyms {
				// Sources stored before imports dropped language tags
				// still hold "Herz@de".
				t.Synonyms[j].Text = stripLangTag(d.str())
				sc := Scope(d.byte())
				if sc > Symbol {
					d.fail("unknown synonym scope %d", sc)
				}
				t.Synonyms[j].Scope = sc
			}
		}
		t.Parents, t.PartOf, t.ReplacedBy, t.Consider, t.AltIDs = d.list(), d.list(), d.list(), d.list(), d.list()
	}
	if d.err == nil && d.off != len(d.s) {
		d.fail("%d trailing bytes", len(d.s)-d.off)
	}
	if d.err != nil {
		return nil, d.err
	}
	return src, nil
}

type decoder struct {
	s   string
	off int
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: at byte %d: %s", ErrCodec, d.off, fmt.Sprintf(format, args...))
	}
	d.off = len(d.s)
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	var v uint64
	for shift := uint(0); shift < 64; shift += 7 {
		if d.off >= len(d.s) {
			d.fail("truncated")
			return 0
		}
		c := d.s[d.off]
		d.off++
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			if c == 0 && shift > 0 {
				d.fail("non-minimal varint") // Marshal never writes one
			}
			return v
		}
	}
	d.fail("varint overflow")
	return 0
}

// count reads a count and checks that the items, each at least minSize
// bytes, fit in what is left.
func (d *decoder) count(minSize int) int {
	n := d.uvarint()
	if left := uint64(len(d.s) - d.off); n > left/uint64(minSize) {
		d.fail("count %d exceeds the data", n)
		return 0
	}
	return int(n)
}

func (d *decoder) str() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.s)-d.off) {
		d.fail("string length %d exceeds the data", n)
		return ""
	}
	s := d.s[d.off : d.off+int(n)]
	d.off += int(n)
	return s
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if d.off >= len(d.s) {
		d.fail("truncated")
		return 0
	}
	c := d.s[d.off]
	d.off++
	return c
}

func (d *decoder) list() []string {
	n := d.count(1)
	if n == 0 {
		return nil
	}
	l := make([]string, n)
	for i := range l {
		l[i] = d.str()
	}
	return l
}
