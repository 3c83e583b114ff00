package dataset

import (
	"bytes"
	"cmp"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
)

// This file is a minimal, read-only HDF5 reader for the subset of the format
// that h5py and anndata write (docs/annotate.md says why it exists rather
// than cgo): superblock versions 0 to 3, object header versions 1 and 2,
// old-style groups (symbol table B-tree + local heap) and compact new-style
// groups (link messages), attributes stored in the object header,
// contiguous, compact and chunked (B-tree v1) datasets with the deflate,
// shuffle and fletcher32 filters, and numeric, boolean-enum, fixed and
// variable-length string types. Anything else is a clear error, never a
// wrong answer. Every read is a ReadAt of exactly the structure needed, so
// opening a group or reading one column never touches the bytes of X.

// errHDF5 marks a file that is not HDF5, is truncated, or uses a part of
// the format this reader does not implement.
var errHDF5 = errors.New("hdf5")

type h5file struct {
	r       io.ReaderAt
	size    int64
	offSize int // bytes of an address
	lenSize int // bytes of a length
	base    uint64
	root    uint64            // root object header address
	heaps   map[uint64][]byte // local heaps by address
	gheaps  map[uint64]*globalHeap
}

const undefAddr = math.MaxUint64

func h5errorf(format string, a ...any) error {
	return fmt.Errorf("%w: %s", errHDF5, fmt.Sprintf(format, a...))
}

// readAt reads n bytes at addr (relative to the base address); reading past
// the end of the file is a truncation error.
func (f *h5file) readAt(addr uint64, n int) ([]byte, error) {
	a := addr + f.base
	if n < 0 || a > uint64(f.size) || uint64(n) > uint64(f.size)-a {
		return nil, h5errorf("the file is truncated or corrupt: %d bytes at offset %d lie past its end (%d bytes)", n, a, f.size)
	}
	b := make([]byte, n)
	if _, err := f.r.ReadAt(b, int64(a)); err != nil && !(errors.Is(err, io.EOF) && n > 0) {
		return nil, fmt.Errorf("%w: read at %d: %v", errHDF5, a, err)
	}
	return b, nil
}

var h5sig = []byte{0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'}

func openHDF5(r io.ReaderAt, size int64) (*h5file, error) {
	f := &h5file{r: r, size: size, heaps: map[uint64][]byte{}}
	// The superblock may sit at 0, 512, 1024, … (a user block before it).
	var sb []byte
	var at int64
	for at = 0; at < size; at = max(512, at*2) {
		b := make([]byte, 8)
		if _, err := r.ReadAt(b, at); err != nil {
			break
		}
		if bytes.Equal(b, h5sig) {
			n := min(int64(128), size-at)
			sb = make([]byte, n)
			r.ReadAt(sb, at)
			break
		}
	}
	if sb == nil {
		return nil, h5errorf("not an HDF5 file (no signature)")
	}
	if len(sb) < 16 {
		return nil, h5errorf("the file is truncated: no complete superblock")
	}
	d := &decoder{b: sb, p: 8}
	ver := d.u8()
	switch ver {
	case 0, 1:
		d.skip(4) // free-space, root symtab, reserved, shared header versions
		f.offSize, f.lenSize = int(d.u8()), int(d.u8())
		d.skip(1 + 2 + 2 + 4)
		if ver == 1 {
			d.skip(4)
		}
		f.base = d.addr(f.offSize)
		d.skip(f.offSize) // free space info
		eof := d.addr(f.offSize)
		d.skip(f.offSize) // driver info
		// Root group symbol table entry.
		d.skip(f.offSize)
		f.root = d.addr(f.offSize)
		if d.err != nil {
			return nil, h5errorf("the file is truncated: incomplete superblock")
		}
		if eof != undefAddr && int64(eof+f.base) > size {
			return nil, h5errorf("the file is truncated: it should have %d bytes but has %d", eof+f.base, size)
		}
	case 2, 3:
		f.offSize, f.lenSize = int(d.u8()), int(d.u8())
		d.skip(1)
		f.base = d.addr(f.offSize)
		d.skip(f.offSize) // superblock extension
		eof := d.addr(f.offSize)
		f.root = d.addr(f.offSize)
		if d.err != nil {
			return nil, h5errorf("the file is truncated: incomplete superblock")
		}
		if eof != undefAddr && int64(eof+f.base) > size {
			return nil, h5errorf("the file is truncated: it should have %d bytes but has %d", eof+f.base, size)
		}
	default:
		return nil, h5errorf("superblock version %d is not supported", ver)
	}
	if f.offSize != 8 || f.lenSize != 8 {
		return nil, h5errorf("%d-byte addresses are not supported", f.offSize)
	}
	return f, nil
}

// decoder reads little-endian fields; the first short read sets err and
// every later read returns zeros.
type decoder struct {
	b   []byte
	p   int
	err error
}

func (d *decoder) need(n int) bool {
	if d.err != nil {
		return false
	}
	if n < 0 || d.p+n > len(d.b) {
		d.err = h5errorf("structure is shorter than its fields (corrupt file)")
		return false
	}
	return true
}
func (d *decoder) skip(n int) {
	if d.need(n) {
		d.p += n
	}
}
func (d *decoder) bytes(n int) []byte {
	if !d.need(n) {
		return nil
	}
	d.p += n
	return d.b[d.p-n : d.p]
}
func (d *decoder) u8() uint8 {
	if !d.need(1) {
		return 0
	}
	d.p++
	return d.b[d.p-1]
}
func (d *decoder) u16() uint16 {
	if !d.need(2) {
		return 0
	}
	d.p += 2
	return binary.LittleEndian.Uint16(d.b[d.p-2:])
}
func (d *decoder) u32() uint32 {
	if !d.need(4) {
		return 0
	}
	d.p += 4
	return binary.LittleEndian.Uint32(d.b[d.p-4:])
}
func (d *decoder) u64() uint64 {
	if !d.need(8) {
		return 0
	}
	d.p += 8
	return binary.LittleEndian.Uint64(d.b[d.p-8:])
}

// uvar reads an unsigned little-endian integer of n bytes.
func (d *decoder) uvar(n int) uint64 {
	if !d.need(n) {
		return 0
	}
	var v uint64
	for i := n - 1; i >= 0; i-- {
		v = v<<8 | uint64(d.b[d.p+i])
	}
	d.p += n
	return v
}
func (d *decoder) addr(n int) uint64 {
	v := d.uvar(n)
	if n == 8 && v == undefAddr {
		return undefAddr
	}
	return v
}

// ---- object headers ----

type h5msg struct {
	typ   uint16
	flags uint8
	data  []byte
}

type h5object struct {
	f     *h5file
	addr  uint64
	name  string
	msgs  []h5msg
	links map[string]uint64 // a group's members; nil for datasets
	order []string          // member names in storage order
}

const (
	msgDataspace    = 0x01
	msgLinkInfo     = 0x02
	msgDatatype     = 0x03
	msgLayout       = 0x08
	msgLink         = 0x06
	msgFilters      = 0x0B
	msgAttribute    = 0x0C
	msgContinuation = 0x10
	msgSymbolTable  = 0x11
	msgAttrInfo     = 0x15
)

func (f *h5file) object(addr uint64, name string) (*h5object, error) {
	o := &h5object{f: f, addr: addr, name: name}
	head, err := f.readAt(addr, 16)
	if err != nil {
		return nil, err
	}
	type block struct {
		addr uint64
		n    uint64
	}
	var blocks []block
	v2 := bytes.Equal(head[:4], []byte("OHDR"))
	if v2 {
		d := &decoder{b: head, p: 4}
		if d.u8() != 2 {
			return nil, h5errorf("object %s: unknown object header version", name)
		}
		flags := d.u8()
		pre := 6
		if flags&0x20 != 0 {
			pre += 16
		}
		if flags&0x10 != 0 {
			pre += 4
		}
		hb, err := f.readAt(addr, pre+8)
		if err != nil {
			return nil, err
		}
		d = &decoder{b: hb, p: pre}
		sz := d.uvar(1 << (flags & 3))
		p := uint64(pre + (1 << (flags & 3)))
		blocks = append(blocks, block{addr + p, sz})
		for i := 0; i < len(blocks); i++ {
			bl := blocks[i]
			if bl.n > 1<<26 {
				return nil, h5errorf("object %s: implausible header size", name)
			}
			b, err := f.readAt(bl.addr, int(bl.n))
			if err != nil {
				return nil, err
			}
			if i > 0 {
				if !bytes.HasPrefix(b, []byte("OCHK")) {
					return nil, h5errorf("object %s: bad continuation block", name)
				}
				b = b[4 : len(b)-4]
			}
			d := &decoder{b: b}
			for d.p+4 <= len(b) {
				typ := uint16(d.u8())
				size := int(d.u16())
				mflags := d.u8()
				if flags&0x04 != 0 {
					d.skip(2)
				}
				data := d.bytes(size)
				if d.err != nil {
					return nil, fmt.Errorf("object %s: %w", name, d.err)
				}
				if typ == msgContinuation {
					cd := &decoder{b: data}
					blocks = append(blocks, block{cd.addr(8), cd.u64()})
					continue
				}
				o.msgs = append(o.msgs, h5msg{typ, mflags, data})
			}
		}
	} else {
		d := &decoder{b: head}
		if d.u8() != 1 {
			return nil, h5errorf("object %s at %d: unknown object header version (corrupt file?)", name, addr)
		}
		d.skip(1)
		nmsgs := int(d.u16())
		d.skip(4)
		sz := d.u32()
		blocks = append(blocks, block{addr + 16, uint64(sz)})
		for i := 0; i < len(blocks) && len(o.msgs) <= nmsgs; i++ {
			bl := blocks[i]
			if bl.n > 1<<26 {
				return nil, h5errorf("object %s: implausible header size", name)
			}
			b, err := f.readAt(bl.addr, int(bl.n))
			if err != nil {
				return nil, err
			}
			d := &decoder{b: b}
			for d.p+8 <= len(b) {
				typ := d.u16()
				size := int(d.u16())
				mflags := d.u8()
				d.skip(3)
				data := d.bytes(size)
				if d.err != nil {
					return nil, fmt.Errorf("object %s: %w", name, d.err)
				}
				if typ == msgContinuation {
					cd := &decoder{b: data}
					blocks = append(blocks, block{cd.addr(8), cd.u64()})
					continue
				}
				o.msgs = append(o.msgs, h5msg{typ, mflags, data})
			}
		}
	}
	for _, m := range o.msgs {
		if m.flags&0x02 != 0 && (m.typ == msgDatatype || m.typ == msgDataspace) {
			return nil, h5errorf("object %s: shared (committed) types are not supported", name)
		}
	}
	if err := o.loadLinks(); err != nil {
		return nil, err
	}
	return o, nil
}

func (o *h5object) msg(typ uint16) []byte {
	for _, m := range o.msgs {
		if m.typ == typ {
			return m.data
		}
	}
	return nil
}

func (o *h5object) isGroup() bool { return o.links != nil }

func (o *h5object) loadLinks() error {
	f := o.f
	if st := o.msg(msgSymbolTable); st != nil {
		d := &decoder{b: st}
		btree, heap := d.addr(8), d.addr(8)
		names, err := f.localHeap(heap)
		if err != nil {
			return fmt.Errorf("group %s: %w", o.name, err)
		}
		o.links = map[string]uint64{}
		return f.walkGroupBTree(btree, names, o, 0)
	}
	hasLinks := false
	for _, m := range o.msgs {
		if m.typ == msgLink {
			hasLinks = true
			if o.links == nil {
				o.links = map[string]uint64{}
			}
			name, addr, err := parseLink(m.data)
			if err != nil {
				return fmt.Errorf("group %s: %w", o.name, err)
			}
			if addr != undefAddr {
				o.links[name] = addr
				o.order = append(o.order, name)
			}
		}
	}
	if li := o.msg(msgLinkInfo); li != nil && !hasLinks {
		d := &decoder{b: li}
		d.skip(1)
		flags := d.u8()
		if flags&1 != 0 {
			d.skip(8)
		}
		heap := d.addr(8)
		if heap != undefAddr {
			return h5errorf("group %s: dense link storage (fractal heap) is not supported", o.name)
		}
		o.links = map[string]uint64{}
	}
	return nil
}

func parseLink(b []byte) (string, uint64, error) {
	d := &decoder{b: b}
	if d.u8() != 1 {
		return "", 0, h5errorf("unknown link message version")
	}
	flags := d.u8()
	typ := uint8(0)
	if flags&0x08 != 0 {
		typ = d.u8()
	}
	if flags&0x04 != 0 {
		d.skip(8)
	}
	if flags&0x10 != 0 {
		d.skip(1)
	}
	n := int(d.uvar(1 << (flags & 3)))
	name := string(d.bytes(n))
	if typ != 0 {
		return name, undefAddr, d.err // soft or external link: not followed
	}
	return name, d.addr(8), d.err
}

func (f *h5file) localHeap(addr uint64) ([]byte, error) {
	if h, ok := f.heaps[addr]; ok {
		return h, nil
	}
	b, err := f.readAt(addr, 32)
	if err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(b, []byte("HEAP")) {
		return nil, h5errorf("bad local heap signature at %d (corrupt file)", addr)
	}
	d := &decoder{b: b, p: 8}
	size := d.u64()
	d.skip(8)
	data := d.addr(8)
	if size > 1<<28 {
		return nil, h5errorf("implausible local heap size")
	}
	h, err := f.readAt(data, int(size))
	if err != nil {
		return nil, err
	}
	f.heaps[addr] = h
	return h, nil
}

func cstr(b []byte, off uint64) string {
	if off >= uint64(len(b)) {
		return ""
	}
	s := b[off:]
	if i := bytes.IndexByte(s, 0); i >= 0 {
		s = s[:i]
	}
	return string(s)
}

func (f *h5file) walkGroupBTree(addr uint64, names []byte, o *h5object, depth int) error {
	if depth > 32 {
		return h5errorf("group B-tree too deep (corrupt file)")
	}
	head, err := f.readAt(addr, 24)
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(head, []byte("TREE")) || head[4] != 0 {
		return h5errorf("bad group B-tree at %d (corrupt file)", addr)
	}
	level := head[5]
	n := int(binary.LittleEndian.Uint16(head[6:]))
	body, err := f.readAt(addr+24, (2*n+1)*8)
	if err != nil {
		return err
	}
	d := &decoder{b: body}
	for i := 0; i < n; i++ {
		d.skip(8) // key
		child := d.addr(8)
		if level > 0 {
			if err := f.walkGroupBTree(child, names, o, depth+1); err != nil {
				return err
			}
			continue
		}
		if err := f.symbolNode(child, names, o); err != nil {
			return err
		}
	}
	return nil
}

func (f *h5file) symbolNode(addr uint64, names []byte, o *h5object) error {
	head, err := f.readAt(addr, 8)
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(head, []byte("SNOD")) {
		return h5errorf("bad symbol table node at %d (corrupt file)", addr)
	}
	n := int(binary.LittleEndian.Uint16(head[6:]))
	body, err := f.readAt(addr+8, n*40)
	if err != nil {
		return err
	}
	d := &decoder{b: body}
	for i := 0; i < n; i++ {
		nameOff := d.u64()
		obj := d.addr(8)
		d.skip(24)
		name := cstr(names, nameOff)
		o.links[name] = obj
		o.order = append(o.order, name)
	}
	return d.err
}

// child opens the member name of a group.
func (o *h5object) child(name string) (*h5object, error) {
	addr, ok := o.links[name]
	if !ok {
		return nil, fmt.Errorf("%s has no member %q: %w", o.name, name, errMissing)
	}
	return o.f.object(addr, strings.TrimSuffix(o.name, "/")+"/"+name)
}

// ---- datatypes and dataspaces ----

type h5kind uint8

const (
	kInt h5kind = iota
	kUint
	kFloat
	kBool
	kFixedString
	kVlenString
	kOther
)

type h5type struct {
	kind  h5kind
	size  int
	enum  map[int64]string // for enums that are not booleans
	class uint8
}

func parseDatatype(b []byte) (h5type, error) {
	d := &decoder{b: b}
	cv := d.u8()
	class := cv & 0x0f
	bits0 := d.u8()
	d.skip(2)
	size := int(d.u32())
	t := h5type{size: size, class: class}
	switch class {
	case 0: // fixed point
		if bits0&1 != 0 {
			return t, h5errorf("big-endian integers are not supported")
		}
		t.kind = kUint
		if bits0&0x08 != 0 {
			t.kind = kInt
		}
	case 1:
		if bits0&1 != 0 {
			return t, h5errorf("big-endian floats are not supported")
		}
		t.kind = kFloat
	case 3:
		t.kind = kFixedString
	case 9:
		if bits0&0x0f == 1 {
			t.kind = kVlenString
		} else {
			t.kind = kOther
		}
	case 8: // enum: h5py writes numpy bool as enum {FALSE, TRUE}
		base, err := parseDatatype(b[8:])
		if err != nil {
			return t, err
		}
		nm := int(binary.LittleEndian.Uint16(b[1:3]))
		// names (null-terminated, padded to 8 for version < 3), then values
		p := 8 + 8 + datatypePropLen(b[8:])
		var names []string
		vers := cv >> 4
		for i := 0; i < nm && p < len(b); i++ {
			e := bytes.IndexByte(b[p:], 0)
			if e < 0 {
				return t, h5errorf("bad enum datatype")
			}
			names = append(names, string(b[p:p+e]))
			if vers >= 3 {
				p += e + 1
			} else {
				p += (e + 8) / 8 * 8
			}
		}
		t.enum = map[int64]string{}
		for i := 0; i < len(names) && p+base.size <= len(b); i++ {
			dd := &decoder{b: b[p : p+base.size]}
			t.enum[int64(dd.uvar(base.size))] = names[i]
			p += base.size
		}
		if len(names) == 2 && t.enum[0] == "FALSE" && t.enum[1] == "TRUE" {
			t.kind = kBool
		} else {
			t.kind = kOther
		}
	default:
		t.kind = kOther
	}
	return t, d.err
}

// datatypePropLen is the length of the properties of a simple (non-enum)
// datatype, enough to find an enum's names after its base type.
func datatypePropLen(b []byte) int {
	switch b[0] & 0x0f {
	case 0:
		return 4
	case 1:
		return 12
	}
	return 0
}

func parseDataspace(b []byte) ([]int64, error) {
	d := &decoder{b: b}
	ver := d.u8()
	rank := int(d.u8())
	d.u8() // flags
	switch ver {
	case 1:
		d.skip(5)
	case 2:
		if typ := d.u8(); typ == 2 {
			return nil, nil // null
		}
	default:
		return nil, h5errorf("dataspace version %d is not supported", ver)
	}
	dims := make([]int64, rank)
	for i := range dims {
		dims[i] = int64(d.u64())
	}
	return dims, d.err
}

func count(dims []int64) int64 {
	n := int64(1)
	for _, x := range dims {
		n *= x
	}
	return n
}

// ---- attributes ----

func (o *h5object) attr(name string) (any, bool, error) {
	for _, m := range o.msgs {
		if m.typ != msgAttribute {
			continue
		}
		an, val, err := o.f.parseAttribute(m.data, name)
		if err != nil {
			return nil, false, fmt.Errorf("%s attribute %s: %w", o.name, name, err)
		}
		if an == name {
			return val, true, nil
		}
	}
	if o.msg(msgAttrInfo) != nil {
		d := &decoder{b: o.msg(msgAttrInfo)}
		d.skip(1)
		flags := d.u8()
		if flags&1 != 0 {
			d.skip(2)
		}
		if heap := d.addr(8); heap != undefAddr {
			return nil, false, h5errorf("%s: dense attribute storage is not supported", o.name)
		}
	}
	return nil, false, nil
}

// parseAttribute decodes an attribute message; it decodes the value only
// when the name is want.
func (f *h5file) parseAttribute(b []byte, want string) (string, any, error) {
	d := &decoder{b: b}
	ver := d.u8()
	d.skip(1)
	nameLen, typeLen, spaceLen := int(d.u16()), int(d.u16()), int(d.u16())
	pad := func(n int) int { return n }
	switch ver {
	case 1:
		pad = func(n int) int { return (n + 7) / 8 * 8 }
	case 2:
	case 3:
		d.skip(1)
	default:
		return "", nil, h5errorf("attribute message version %d is not supported", ver)
	}
	name := strings.TrimRight(string(d.bytes(pad(nameLen))), "\x00")
	if d.err != nil || name != want {
		return name, nil, d.err
	}
	tb := d.bytes(pad(typeLen))
	sb := d.bytes(pad(spaceLen))
	if d.err != nil {
		return name, nil, d.err
	}
	t, err := parseDatatype(tb)
	if err != nil {
		return name, nil, err
	}
	dims, err := parseDataspace(sb)
	if err != nil {
		return name, nil, err
	}
	n := count(dims)
	data := b[d.p:]
	if int64(len(data)) < n*int64(t.size) {
		return name, nil, h5errorf("attribute data is short (corrupt file)")
	}
	v, err := f.decodeValues(t, data[:n*int64(t.size)], int(n))
	if err != nil {
		return name, nil, err
	}
	if len(dims) == 0 { // scalar
		switch x := v.(type) {
		case []string:
			return name, x[0], nil
		case []int64:
			return name, x[0], nil
		case []uint64:
			return name, x[0], nil
		case []float64:
			return name, x[0], nil
		case []bool:
			return name, x[0], nil
		}
	}
	return name, v, nil
}

// decodeValues turns n packed elements of type t into []int64, []float64,
// []bool or []string; unsigned 64-bit integers into []uint64 when one is
// beyond the int64 range (an id), so that none wraps to a negative.
// decodeUint64s reads n packed little-endian uint64s.
func decodeUint64s(b []byte, n int) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		out[i] = binary.LittleEndian.Uint64(b[i*8:])
	}
	return out
}

func (f *h5file) decodeValues(t h5type, b []byte, n int) (any, error) {
	switch t.kind {
	case kInt, kUint:
		out := make([]int64, n)
		for i := range out {
			e := b[i*t.size : (i+1)*t.size]
			switch t.size {
			case 1:
				out[i] = int64(e[0])
				if t.kind == kInt {
					out[i] = int64(int8(e[0]))
				}
			case 2:
				x := binary.LittleEndian.Uint16(e)
				out[i] = int64(x)
				if t.kind == kInt {
					out[i] = int64(int16(x))
				}
			case 4:
				x := binary.LittleEndian.Uint32(e)
				out[i] = int64(x)
				if t.kind == kInt {
					out[i] = int64(int32(x))
				}
			case 8:
				x := binary.LittleEndian.Uint64(e)
				if t.kind == kUint && x > math.MaxInt64 {
					return decodeUint64s(b, n), nil
				}
				out[i] = int64(x)
			default:
				return nil, h5errorf("%d-byte integers are not supported", t.size)
			}
		}
		return out, nil
	case kFloat:
		out := make([]float64, n)
		for i := range out {
			switch t.size {
			case 4:
				out[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(b[i*4:])))
			case 8:
				out[i] = math.Float64frombits(binary.LittleEndian.Uint64(b[i*8:]))
			default:
				return nil, h5errorf("%d-byte floats are not supported", t.size)
			}
		}
		return out, nil
	case kBool:
		out := make([]bool, n)
		for i := range out {
			out[i] = b[i*t.size] != 0
		}
		return out, nil
	case kFixedString:
		out := make([]string, n)
		for i := range out {
			out[i] = strings.TrimRight(string(b[i*t.size:(i+1)*t.size]), "\x00 ")
		}
		return out, nil
	case kVlenString:
		out := make([]string, n)
		for i := range out {
			d := &decoder{b: b[i*t.size : (i+1)*t.size]}
			length := d.u32()
			coll := d.addr(8)
			idx := d.u32()
			if length == 0 || coll == undefAddr {
				continue
			}
			s, err := f.globalObject(coll, idx)
			if err != nil {
				return nil, err
			}
			out[i] = string(s)
		}
		return out, nil
	}
	return nil, h5errorf("datatype class %d is not supported", t.class)
}

// globalHeap is a global heap collection read whole, with the place of
// each of its objects. A vlen string column points into a few collections
// (h5py writes 64 KiB ones of about 2,700 strings) object by object:
// scanning the collection for each one made reading a column quadratic
// in the strings per collection (250,000 cells: 3.3 s).
type globalHeap struct {
	b    []byte
	objs []gobj // by idx, in the collection's order when that is sorted
}

// gobj is where the data of a global heap object lies in its collection.
type gobj struct {
	idx       uint16
	off, size uint32
}

// overrun is the offset of an object whose size overruns its collection.
const overrun = math.MaxUint32

// globalObject returns object idx of the global heap collection at addr.
// Collections are read and indexed once and cached.
func (f *h5file) globalObject(addr uint64, idx uint32) ([]byte, error) {
	h, ok := f.gheaps[addr]
	if !ok {
		var err error
		if h, err = f.readGlobalHeap(addr); err != nil {
			return nil, err
		}
		if f.gheaps == nil {
			f.gheaps = map[uint64]*globalHeap{}
		}
		f.gheaps[addr] = h
	}
	// h5py numbers a collection's objects 1, 2, 3, …: object idx is then
	// at idx-1, else it is searched for.
	i := int(idx) - 1
	if i < 0 || i >= len(h.objs) || uint32(h.objs[i].idx) != idx {
		var found bool
		i, found = slices.BinarySearchFunc(h.objs, idx, func(o gobj, t uint32) int { return cmp.Compare(uint32(o.idx), t) })
		if !found {
			return nil, h5errorf("global heap object %d not found (corrupt file)", idx)
		}
	}
	o := h.objs[i]
	if o.off == overrun {
		return nil, h5errorf("global heap object overruns its collection (corrupt file)")
	}
	return h.b[o.off : o.off+o.size], nil
}

// readGlobalHeap reads the collection at addr and indexes its objects.
func (f *h5file) readGlobalHeap(addr uint64) (*globalHeap, error) {
	head, err := f.readAt(addr, 16)
	if err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(head, []byte("GCOL")) {
		return nil, h5errorf("bad global heap at %d (corrupt file)", addr)
	}
	size := binary.LittleEndian.Uint64(head[8:])
	if size > 1<<30 {
		return nil, h5errorf("implausible global heap size")
	}
	coll, err := f.readAt(addr, int(size))
	if err != nil {
		return nil, err
	}
	h := &globalHeap{b: coll}
	scan := func(add func(gobj)) {
		d := &decoder{b: coll, p: 16}
		for d.p+16 <= len(coll) {
			i := d.u16()
			d.skip(6)
			sz := d.u64()
			if i == 0 {
				break // free space
			}
			if sz > uint64(len(coll)-d.p) {
				// The objects before it are still found, as they were
				// when the collection was scanned for each object.
				add(gobj{idx: i, off: overrun})
				break
			}
			add(gobj{idx: i, off: uint32(d.p), size: uint32(sz)})
			d.skip(int((sz + 7) / 8 * 8))
		}
	}
	// Counted first: the index is allocated once, at its size.
	n := 0
	scan(func(gobj) { n++ })
	h.objs = make([]gobj, 0, n)
	scan(func(o gobj) { h.objs = append(h.objs, o) })
	// Stable: of two objects with one index (a damaged collection) the
	// first is found, as by a scan.
	slices.SortStableFunc(h.objs, func(a, b gobj) int { return cmp.Compare(a.idx, b.idx) })
	return h, nil
}

// ---- datasets ----

// shape returns a dataset's dimensions from its header alone.
func (o *h5object) shape() ([]int64, error) {
	sp := o.msg(msgDataspace)
	if sp == nil {
		return nil, h5errorf("%s is not a dataset", o.name)
	}
	return parseDataspace(sp)
}

// read returns a 1-D dataset's values as []int64, []uint64, []float64,
// []bool or []string (decodeValues).
func (o *h5object) read() (any, error) {
	dims, err := o.shape()
	if err != nil {
		return nil, err
	}
	tb := o.msg(msgDatatype)
	if tb == nil {
		return nil, h5errorf("%s has no datatype", o.name)
	}
	t, err := parseDatatype(tb)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.name, err)
	}
	if len(dims) > 1 {
		return nil, h5errorf("%s has %d dimensions; only 1-D columns are read", o.name, len(dims))
	}
	n := count(dims)
	if n < 0 || n > maxColumnValues || t.size <= 0 {
		return nil, h5errorf("%s: column too large (%d values)", o.name, n)
	}
	raw, err := o.rawData(n * int64(t.size))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.name, err)
	}
	v, err := o.f.decodeValues(t, raw, int(n))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.name, err)
	}
	return v, nil
}

func (o *h5object) rawData(total int64) ([]byte, error) {
	lb := o.msg(msgLayout)
	if lb == nil {
		return nil, h5errorf("no layout")
	}
	if total > maxColumnBytes {
		return nil, h5errorf("column too large (%d bytes)", total)
	}
	d := &decoder{b: lb}
	if v := d.u8(); v != 3 {
		return nil, h5errorf("data layout version %d is not supported", v)
	}
	switch d.u8() {
	case 0: // compact
		n := int(d.u16())
		b := d.bytes(n)
		if d.err != nil || int64(n) < total {
			return nil, h5errorf("compact data is short (corrupt file)")
		}
		return b[:total], nil
	case 1: // contiguous
		addr := d.addr(8)
		if addr == undefAddr {
			return make([]byte, total), nil
		}
		return o.f.readAt(addr, int(total))
	case 2: // chunked
		rank := int(d.u8())
		btree := d.addr(8)
		cdims := make([]uint32, rank)
		for i := range cdims {
			cdims[i] = d.u32()
		}
		if d.err != nil {
			return nil, d.err
		}
		if rank != 2 {
			return nil, h5errorf("chunked data of %d dimensions is not supported", rank-1)
		}
		elem := int64(cdims[1])
		chunkBytes := int64(cdims[0]) * elem
		filters, err := parseFilters(o.msg(msgFilters))
		if err != nil {
			return nil, err
		}
		out := make([]byte, total)
		if btree == undefAddr {
			return out, nil
		}
		err = o.f.walkChunks(btree, rank, 0, func(start int64, mask uint32, addr uint64, size uint32) error {
			raw, err := o.f.readAt(addr, int(size))
			if err != nil {
				return err
			}
			data, err := unfilter(filters, mask, raw, int(elem), chunkBytes)
			if err != nil {
				return err
			}
			at := start * elem
			if at >= total {
				return nil
			}
			copy(out[at:], data[:min(int64(len(data)), total-at)])
			return nil
		})
		return out, err
	}
	return nil, h5errorf("unknown data layout class")
}

// stored is how many values of the 1-D dataset its storage holds: all of
// them when compact or contiguous (a read checks the bytes are there),
// up to the end of its last chunk when chunked (the chunks' B-tree is
// read, not their data); none when no storage was allocated.
func (o *h5object) stored() (int64, error) {
	dims, err := o.shape()
	if err != nil {
		return 0, err
	}
	n := count(dims)
	lb := o.msg(msgLayout)
	if lb == nil {
		return 0, h5errorf("%s has no layout", o.name)
	}
	d := &decoder{b: lb}
	if v := d.u8(); v != 3 {
		return 0, h5errorf("data layout version %d is not supported", v)
	}
	switch d.u8() {
	case 0:
		return n, d.err
	case 1:
		if d.addr(8) == undefAddr {
			return 0, d.err
		}
		return n, d.err
	case 2:
		rank := int(d.u8())
		btree := d.addr(8)
		chunk := int64(d.u32())
		if d.err != nil {
			return 0, d.err
		}
		if btree == undefAddr {
			return 0, nil
		}
		var end int64
		err := o.f.walkChunks(btree, rank, 0, func(start int64, _ uint32, _ uint64, _ uint32) error {
			end = max(end, start+chunk)
			return nil
		})
		return min(end, n), err
	}
	return 0, h5errorf("unknown data layout class")
}

func (f *h5file) walkChunks(addr uint64, rank, depth int, fn func(start int64, mask uint32, addr uint64, size uint32) error) error {
	if depth > 32 {
		return h5errorf("chunk B-tree too deep (corrupt file)")
	}
	head, err := f.readAt(addr, 24)
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(head, []byte("TREE")) || head[4] != 1 {
		return h5errorf("bad chunk B-tree at %d (corrupt file)", addr)
	}
	level := head[5]
	n := int(binary.LittleEndian.Uint16(head[6:]))
	keyLen := 8 + rank*8
	body, err := f.readAt(addr+24, n*(keyLen+8)+keyLen)
	if err != nil {
		return err
	}
	d := &decoder{b: body}
	for i := 0; i < n; i++ {
		size := d.u32()
		mask := d.u32()
		start := int64(d.u64())
		d.skip((rank - 1) * 8)
		child := d.addr(8)
		if d.err != nil {
			return d.err
		}
		if level > 0 {
			if err := f.walkChunks(child, rank, depth+1, fn); err != nil {
				return err
			}
			continue
		}
		if err := fn(start, mask, child, size); err != nil {
			return err
		}
	}
	return nil
}

type h5filter struct {
	id     uint16
	client []uint32
}

func parseFilters(b []byte) ([]h5filter, error) {
	if b == nil {
		return nil, nil
	}
	d := &decoder{b: b}
	ver := d.u8()
	n := int(d.u8())
	if ver == 1 {
		d.skip(6)
	}
	var out []h5filter
	for i := 0; i < n; i++ {
		id := d.u16()
		nameLen := 0
		if ver == 1 || id >= 256 {
			nameLen = int(d.u16())
		}
		d.skip(2) // flags
		nc := int(d.u16())
		if ver == 1 {
			nameLen = (nameLen + 7) / 8 * 8
		}
		d.skip(nameLen)
		fl := h5filter{id: id}
		for j := 0; j < nc; j++ {
			fl.client = append(fl.client, d.u32())
		}
		if ver == 1 && nc%2 == 1 {
			d.skip(4)
		}
		out = append(out, fl)
	}
	return out, d.err
}

// h5filterCodecs name the registered HDF5 filters seen in AnnData files
// (keys of codecNames).
var h5filterCodecs = map[uint16]string{
	4: "szip", 5: "nbit", 6: "scaleoffset", 307: "bzip2", 32000: "lzf",
	32001: "hdf5-blosc", 32004: "hdf5-lz4", 32008: "hdf5-bitshuffle", 32015: "hdf5-zstd",
}

func unfilter(filters []h5filter, mask uint32, b []byte, elem int, chunkBytes int64) ([]byte, error) {
	for i := len(filters) - 1; i >= 0; i-- {
		if mask&(1<<i) != 0 {
			continue
		}
		switch filters[i].id {
		case 1: // deflate
			zr, err := zlib.NewReader(bytes.NewReader(b))
			if err != nil {
				return nil, h5errorf("deflate: %v (corrupt file)", err)
			}
			out, err := io.ReadAll(io.LimitReader(zr, chunkBytes+1))
			if err != nil {
				return nil, h5errorf("deflate: %v (corrupt file)", err)
			}
			b = out
		case 2: // shuffle
			size := elem
			if len(filters[i].client) > 0 {
				size = int(filters[i].client[0])
			}
			b = unshuffle(b, size)
		case 3: // fletcher32: drop the checksum
			if len(b) < 4 {
				return nil, h5errorf("fletcher32: chunk too short")
			}
			b = b[:len(b)-4]
		default:
			codec := h5filterCodecs[filters[i].id]
			if codec == "" {
				codec = fmt.Sprintf("hdf5-filter-%d", filters[i].id)
			}
			return nil, &codecError{codec, h5errorf("filter %d is not supported (only deflate, shuffle, fletcher32)", filters[i].id)}
		}
	}
	return b, nil
}

// unshuffle undoes the byte shuffle used by HDF5 and Blosc: the i-th bytes
// of all elements are stored together.
func unshuffle(b []byte, size int) []byte {
	if size <= 1 || len(b) < size {
		return b
	}
	n := len(b) / size
	out := make([]byte, len(b))
	for j := 0; j < size; j++ {
		for i := 0; i < n; i++ {
			out[i*size+j] = b[j*n+i]
		}
	}
	copy(out[n*size:], b[n*size:])
	return out
}
