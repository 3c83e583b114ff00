package ontology

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"unsafe"
)

// An index file holds an Index's tables as they sit in memory, so that a
// process gets a ready Index from one read and a checksum, with no parsing
// and no maps to fill (Mondo: ~2 s of CPU to build, a few ms to load):
//
//	header, 88 bytes:
//	  magic "LMNINDEX" | format version uint32 | section count uint32
//	  source digest (64 bytes, hex, zero-padded)
//	  CRC-32C of everything after the header | CRC-32C of the header before it
//	section lengths in bytes, one uint64 each
//	sections in the order of tables.sections(), each padded to 8 bytes
//
// Numbers are little-endian. A section is a string or an array of uint8,
// uint16, uint32 or uint64; on a little-endian machine LoadIndex uses the
// arrays in place. A new layout gets a new IndexFormat; a file of another format,
// of another source, or with a bad checksum is refused with ErrIndex, and
// the caller rebuilds it from the source.
const (
	IndexFormat = 5 // 4: fold reads typographic apostrophes as '; 5: fuzzy entries spell out marker signs (markerFold)
	indexMagic  = "LMNINDEX"
	headerSize  = 88
	digestSize  = 64
)

// ErrIndex is wrapped by every LoadIndex error: the file is corrupt,
// stale (another source or format) or not an index.
var ErrIndex = errors.New("ontology: unusable index file")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// sections lists the tables' fields in file order.
func (t *tables) sections() []any {
	s := []any{&t.strs, &t.strOff, &t.meta, &t.warnings,
		&t.termID, &t.termName, &t.termDef, &t.termNS, &t.termFlags, &t.synScope, &t.synTerm}
	for _, l := range t.lists() {
		s = append(s, &l.start, &l.items)
	}
	for _, m := range t.maps() {
		s = append(s, &m.slots, &m.keys, &m.post.start, &m.post.items)
	}
	return append(s, &t.entryTerm, &t.entrySyn, &t.entryFold, &t.triKeys, &t.triCount, &t.words)
}

func (t *tables) lists() []*list {
	return []*list{&t.syns, &t.parentIDs, &t.partOfIDs, &t.replacedBy, &t.consider, &t.altIDs,
		&t.parents, &t.partOf, &t.children, &t.partChildren, &t.tri, &t.wordPost}
}

func (t *tables) maps() []*strMap {
	return []*strMap{&t.byID, &t.byAlt, &t.byName, &t.byFold, &t.synFold}
}

// MarshalIndex encodes x for LoadIndex.
func (x *Index) MarshalIndex() []byte {
	secs := x.sections()
	size := headerSize + 8*len(secs)
	for _, s := range secs {
		size += pad8(sectionLen(s))
	}
	out := make([]byte, headerSize, size)
	copy(out, indexMagic)
	binary.LittleEndian.PutUint32(out[8:], IndexFormat)
	binary.LittleEndian.PutUint32(out[12:], uint32(len(secs)))
	copy(out[16:16+digestSize], x.str(x.meta[metaDigest]))
	for _, s := range secs {
		out = binary.LittleEndian.AppendUint64(out, uint64(sectionLen(s)))
	}
	var zeros [8]byte
	for _, s := range secs {
		out = appendSection(out, s)
		out = append(out, zeros[:pad8(len(out))-len(out)]...)
	}
	binary.LittleEndian.PutUint32(out[80:], crc32.Checksum(out[headerSize:], castagnoli))
	binary.LittleEndian.PutUint32(out[84:], crc32.Checksum(out[:84], castagnoli))
	return out
}

func pad8(n int) int { return (n + 7) &^ 7 }

func sectionLen(s any) int {
	switch v := s.(type) {
	case *string:
		return len(*v)
	case *[]uint8:
		return len(*v)
	case *[]uint16:
		return 2 * len(*v)
	case *[]uint32:
		return 4 * len(*v)
	case *[]uint64:
		return 8 * len(*v)
	}
	panic(fmt.Sprintf("ontology: section of type %T", s))
}

func appendSection(b []byte, s any) []byte {
	switch v := s.(type) {
	case *string:
		return append(b, *v...)
	case *[]uint8:
		return append(b, *v...)
	case *[]uint16:
		for _, n := range *v {
			b = binary.LittleEndian.AppendUint16(b, n)
		}
	case *[]uint32:
		for _, n := range *v {
			b = binary.LittleEndian.AppendUint32(b, n)
		}
	case *[]uint64:
		for _, n := range *v {
			b = binary.LittleEndian.AppendUint64(b, n)
		}
	}
	return b
}

// IndexDigest returns the source digest an index file's header names,
// without checking the rest.
func IndexDigest(b []byte) (string, error) {
	if err := checkHeader(b); err != nil {
		return "", err
	}
	return digestField(b), nil
}

func digestField(b []byte) string {
	d := b[16 : 16+digestSize]
	for len(d) > 0 && d[len(d)-1] == 0 {
		d = d[:len(d)-1]
	}
	return string(d)
}

func checkHeader(b []byte) error {
	if len(b) < headerSize || string(b[:8]) != indexMagic {
		return fmt.Errorf("%w: not an index file", ErrIndex)
	}
	if crc32.Checksum(b[:84], castagnoli) != binary.LittleEndian.Uint32(b[84:]) {
		return fmt.Errorf("%w: header checksum mismatch (corrupt)", ErrIndex)
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != IndexFormat {
		return fmt.Errorf("%w: format %d, this build reads %d", ErrIndex, v, IndexFormat)
	}
	return nil
}

// LoadIndex returns the Index that MarshalIndex encoded in b. With digest
// set, the index must be of the source with that digest. The Index uses b
// in place: the caller must not modify b afterwards. Errors wrap ErrIndex.
func LoadIndex(b []byte, digest string) (*Index, error) {
	if err := checkHeader(b); err != nil {
		return nil, err
	}
	if got := digestField(b); digest != "" && got != digest {
		return nil, fmt.Errorf("%w: index of source %.12s, want %.12s (stale)", ErrIndex, got, digest)
	}
	if crc32.Checksum(b[headerSize:], castagnoli) != binary.LittleEndian.Uint32(b[80:]) {
		return nil, fmt.Errorf("%w: checksum mismatch (corrupt or truncated)", ErrIndex)
	}
	var t tables
	secs := t.sections()
	if n := binary.LittleEndian.Uint32(b[12:]); int(n) != len(secs) {
		return nil, fmt.Errorf("%w: %d sections, want %d", ErrIndex, n, len(secs))
	}
	off := headerSize + 8*len(secs)
	if off > len(b) {
		return nil, fmt.Errorf("%w: truncated", ErrIndex)
	}
	for k, s := range secs {
		n := binary.LittleEndian.Uint64(b[headerSize+8*k:])
		if n > uint64(len(b)-off) {
			return nil, fmt.Errorf("%w: section %d overruns the file", ErrIndex, k)
		}
		if err := setSection(s, b[off:off+int(n)]); err != nil {
			return nil, fmt.Errorf("%w: section %d: %v", ErrIndex, k, err)
		}
		off = min(off+pad8(int(n)), len(b))
	}
	if off != len(b) {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrIndex, len(b)-off)
	}
	if err := t.check(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrIndex, err)
	}
	return newIndex(t), nil
}

var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// setSection points s at b, in place where the layout allows.
func setSection(s any, b []byte) error {
	if len(b) == 0 {
		return nil
	}
	switch v := s.(type) {
	case *string:
		*v = unsafe.String(&b[0], len(b))
	case *[]uint8:
		*v = b
	case *[]uint16:
		if len(b)%2 != 0 {
			return errors.New("odd length")
		}
		*v = view[uint16](b, binary.LittleEndian.Uint16)
	case *[]uint32:
		if len(b)%4 != 0 {
			return errors.New("length not a multiple of 4")
		}
		*v = view[uint32](b, binary.LittleEndian.Uint32)
	case *[]uint64:
		if len(b)%8 != 0 {
			return errors.New("length not a multiple of 8")
		}
		*v = view[uint64](b, binary.LittleEndian.Uint64)
	}
	return nil
}

// view returns b as a slice of T: in place when the machine is
// little-endian and b is aligned (a fresh read buffer is), else a copy.
func view[T uint16 | uint32 | uint64](b []byte, get func([]byte) T) []T {
	size := int(unsafe.Sizeof(T(0)))
	p := unsafe.Pointer(&b[0])
	if littleEndian && uintptr(p)%uintptr(size) == 0 {
		return unsafe.Slice((*T)(p), len(b)/size)
	}
	out := make([]T, len(b)/size)
	for i := range out {
		out[i] = get(b[i*size:])
	}
	return out
}

// check makes sure every number in the tables is in range, so that a file
// that passed the checksum but was written wrong cannot make a query
// index out of bounds.
func (t *tables) check() error {
	c := &checker{}
	strs := len(t.strOff) - 1
	if strs < 1 {
		c.fail("no string table")
		return c.err
	}
	c.offsets("strings", t.strOff, strs, len(t.strs))
	n := len(t.termID)
	c.size("meta", len(t.meta), metaLen)
	for _, a := range [][]uint32{t.meta, t.warnings, t.termID, t.termName, t.termDef, t.termNS, t.entryFold, t.words} {
		c.below("string ids", a, strs)
	}
	for _, a := range [][]uint32{t.termName, t.termDef, t.termNS} {
		c.size("term strings", len(a), n)
	}
	c.size("term flags", len(t.termFlags), n)
	for _, l := range []*list{&t.syns, &t.parentIDs, &t.partOfIDs, &t.replacedBy, &t.consider, &t.altIDs} {
		c.list("term strings", *l, n, strs)
	}
	for _, l := range []*list{&t.parents, &t.partOf, &t.children, &t.partChildren} {
		c.list("edges", *l, n, n)
	}
	syns := len(t.syns.items)
	c.size("synonym scopes", len(t.synScope), syns)
	c.size("synonym terms", len(t.synTerm), syns)
	c.below("synonym terms", t.synTerm, n)
	for _, m := range t.maps() {
		c.below("keys", m.keys, strs)
		for _, v := range m.slots {
			if v != 0 && (uint32(v) == 0 || int(uint32(v)) > len(m.keys)) {
				c.fail("slot %#x of %d keys", v, len(m.keys))
				break
			}
		}
		if len(m.slots) == 0 || len(m.slots)&(len(m.slots)-1) != 0 {
			c.fail("hash table of %d slots", len(m.slots))
		}
	}
	for _, m := range []*strMap{&t.byID, &t.byAlt, &t.byName, &t.byFold} {
		c.list("postings", m.post, len(m.keys), n)
	}
	c.list("synonym postings", t.synFold.post, len(t.synFold.keys), syns)
	if c.err == nil {
		// Keys hashed differently (a changed hashString) would just not
		// be found: check that the first and last keys of each map are.
		for _, m := range t.maps() {
			if len(m.keys) == 0 {
				continue
			}
			for _, k := range []uint32{0, uint32(len(m.keys) - 1)} {
				key := t.str(m.keys[k])
				if len(t.lookup(m, key)) != len(m.post.row(k)) {
					c.fail("key %q is not found: hashed by another build", key)
				}
			}
		}
	}
	entries := len(t.entryTerm)
	for _, s := range []int{len(t.entrySyn), len(t.entryFold), len(t.triCount)} {
		c.size("entries", s, entries)
	}
	c.below("entry terms", t.entryTerm, n)
	for _, g := range t.entrySyn {
		if g != noSyn && int(g) >= syns {
			c.fail("entry synonym %d of %d", g, syns)
			break
		}
	}
	// The trigram and word postings, most of the file, are checked where
	// they are read (similar, wordPrefixMatches), not here: it saves
	// scanning millions of numbers at every load.
	c.offsets("trigram postings", t.tri.start, len(t.triKeys), len(t.tri.items))
	c.offsets("word postings", t.wordPost.start, len(t.words), len(t.wordPost.items))
	return c.err
}

type checker struct{ err error }

func (c *checker) fail(format string, args ...any) {
	if c.err == nil {
		c.err = fmt.Errorf(format, args...)
	}
}

func (c *checker) size(what string, got, want int) {
	if got != want {
		c.fail("%s: %d, want %d", what, got, want)
	}
}

// below checks that every value is less than bound.
func (c *checker) below(what string, a []uint32, bound int) {
	var m uint32
	for _, v := range a {
		m = max(m, v)
	}
	if len(a) > 0 && uint64(m) >= uint64(bound) {
		c.fail("%s: %d out of range %d", what, m, bound)
	}
}

// offsets checks that start cuts total items into rows rows.
func (c *checker) offsets(what string, start []uint32, rows, total int) bool {
	if len(start) != rows+1 {
		c.fail("%s: %d row starts for %d rows", what, len(start), rows)
		return false
	}
	prev := uint32(0)
	for _, s := range start {
		if s < prev {
			c.fail("%s: rows out of order", what)
			return false
		}
		prev = s
	}
	if start[0] != 0 || int(start[rows]) != total {
		c.fail("%s: rows do not cover the items", what)
		return false
	}
	return true
}

// list checks a list of rows rows whose items are below bound.
func (c *checker) list(what string, l list, rows, bound int) {
	if c.offsets(what, l.start, rows, len(l.items)) {
		c.below(what, l.items, bound)
	}
}
