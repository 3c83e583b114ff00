package dataset

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/pierrec/lz4/v4"
)

// zarrNode is a group or array of a zarr v2 directory store.
type zarrNode struct{ path string }

func (n zarrNode) attrs() (map[string]any, error) {
	b, err := os.ReadFile(filepath.Join(n.path, ".zattrs"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return parseZattrs(filepath.Join(n.path, ".zattrs"), b)
}

// parseZattrs reads the attributes in b, the .zattrs file at p. zarr v2
// leaves .zattrs out where there are none; one that is there must hold a
// JSON object, so an empty one is as damaged as zarr-python finds it.
func parseZattrs(p string, b []byte) (map[string]any, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, corruptf("%s is empty: a zarr .zattrs holds a JSON object (or is left out)", p)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, corruptf("%s is not a JSON object: %v", p, err)
	}
	return m, nil
}

// CheckZarr reports what is wrong with the root of the zarr store at path
// (a folder named .zarr): its .zattrs, when there is one, must be a JSON
// object. It returns nil for anything else, and for a store that is fine
// but holds no AnnData (DetectFormat tells).
func CheckZarr(path string) error { return CheckZarrAs(path, path) }

// CheckZarrAs is CheckZarr of the folder at path named name (a key): only a
// name ending in .zarr is checked.
func CheckZarrAs(path, name string) error {
	if !strings.HasSuffix(strings.ToLower(strings.TrimSuffix(name, "/")), ".zarr") {
		return nil
	}
	p := filepath.Join(path, ".zattrs")
	b, err := os.ReadFile(p)
	if err != nil {
		return nil // none (optional), or path is no folder
	}
	_, err = parseZattrs(p, b)
	return err
}

func (n zarrNode) attr(name string) (any, bool, error) {
	m, err := n.attrs()
	if err != nil {
		return nil, false, err
	}
	v, ok := m[name]
	if !ok {
		return nil, false, nil
	}
	switch x := v.(type) {
	case []any:
		var ss []string
		var is []int64
		for _, e := range x {
			switch y := e.(type) {
			case string:
				ss = append(ss, y)
			case float64:
				is = append(is, int64(y))
			}
		}
		if is != nil {
			return is, true, nil
		}
		if ss == nil {
			ss = []string{}
		}
		return ss, true, nil
	}
	return v, true, nil
}

func (n zarrNode) child(name string) (node, error) {
	p := filepath.Join(n.path, name)
	if _, err := os.Stat(p); err != nil {
		return nil, fmt.Errorf("%s has no member %q: %w", n.path, name, errMissing)
	}
	if err := checkZgroup(p); err != nil {
		return nil, err
	}
	return zarrNode{p}, nil
}

// checkZgroup refuses a damaged .zgroup in the folder dir (one that is
// not a JSON object): the folder would be taken for a group regardless.
func checkZgroup(dir string) error {
	p := filepath.Join(dir, ".zgroup")
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil || m == nil {
		return corruptf("%s is damaged: a zarr .zgroup holds a JSON object", p)
	}
	return nil
}

func (n zarrNode) isGroup() bool {
	_, err := os.Stat(filepath.Join(n.path, ".zgroup"))
	return err == nil
}

func (n zarrNode) list() []string {
	es, _ := os.ReadDir(n.path)
	var out []string
	for _, e := range es {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	return out
}

type zarray struct {
	Shape      []int64          `json:"shape"`
	Chunks     []int64          `json:"chunks"`
	Dtype      any              `json:"dtype"`
	Compressor map[string]any   `json:"compressor"`
	Filters    []map[string]any `json:"filters"`
	Order      string           `json:"order"`
	Fill       any              `json:"fill_value"`
	Format     int              `json:"zarr_format"`
}

func (n zarrNode) meta() (*zarray, error) {
	b, err := os.ReadFile(filepath.Join(n.path, ".zarray"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, corruptf("%s is not a zarr array", n.path)
		}
		return nil, err
	}
	var z zarray
	if err := json.Unmarshal(b, &z); err != nil {
		return nil, corruptf("%s/.zarray: %v", n.path, err)
	}
	if z.Format != 2 {
		return nil, corruptf("%s: zarr format %d is not supported (only v2)", n.path, z.Format)
	}
	return &z, nil
}

func (n zarrNode) arrayShape() ([]int64, error) {
	z, err := n.meta()
	if err != nil {
		return nil, err
	}
	return z.Shape, nil
}

// read returns a 1-D array's values. The shape and chunk size come from
// .zarray, which may be damaged: the column is bounded as HDF5's are
// (maxColumnBytes), only the chunk files present are read (a missing one
// holds fill values), and no chunk is decompressed past what is needed.
func (n zarrNode) read() (any, error) {
	z, err := n.meta()
	if err != nil {
		return nil, err
	}
	if len(z.Shape) != 1 || len(z.Chunks) != 1 || z.Chunks[0] <= 0 || z.Shape[0] < 0 {
		return nil, corruptf("%s: only 1-D arrays are read (shape %v, chunks %v)", n.path, z.Shape, z.Chunks)
	}
	dt, _ := z.Dtype.(string)
	total, chunkLen := z.Shape[0], z.Chunks[0]
	if dt == "|O" {
		if total > maxColumnValues {
			return nil, corruptf("%s: column too large (%d strings)", n.path, total)
		}
		out := make([]string, 0, min(total, 1<<16))
		for c := int64(0); int64(len(out)) < total; c++ {
			raw, err := n.chunk(z, c, maxColumnBytes)
			if err != nil {
				return nil, err
			}
			if raw == nil {
				return nil, corruptf("%s: chunk %d is missing: %d strings, want %d", n.path, c, len(out), total)
			}
			ss, err := vlenUTF8(raw)
			if err != nil {
				return nil, fmt.Errorf("%s chunk %d: %w", n.path, c, err)
			}
			if len(ss) == 0 {
				return nil, corruptf("%s: chunk %d holds no strings: %d, want %d", n.path, c, len(out), total)
			}
			out = append(out, ss...)
		}
		return out[:total], nil
	}
	kind, size, err := parseNumpyDtype(dt)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.path, err)
	}
	if total > maxColumnValues || total > maxColumnBytes/int64(size) {
		return nil, corruptf("%s: column too large (%d values of %d bytes)", n.path, total, size)
	}
	buf := make([]byte, total*int64(size))
	// A missing chunk holds the fill value (zarr writes none for a chunk
	// all fill); 0 was used whatever .zarray said.
	if fill, _ := fillBytes(kind, size, z.Fill); fill != nil {
		for at := 0; at < len(buf); at += size {
			copy(buf[at:], fill)
		}
	}
	chunks, err := n.chunkIndexes()
	if err != nil {
		return nil, err
	}
	for _, c := range chunks {
		if c > total/chunkLen || c*chunkLen >= total {
			continue // past the shape: not part of the array
		}
		at := c * chunkLen * int64(size)
		need := min(chunkLen, total-c*chunkLen) * int64(size)
		raw, err := n.chunk(z, c, need)
		if err != nil {
			return nil, err
		}
		if int64(len(raw)) < need {
			return nil, corruptf("%s chunk %d is short", n.path, c)
		}
		copy(buf[at:], raw[:need])
	}
	h5 := &h5file{}
	return h5.decodeValues(h5type{kind: kind, size: size}, buf, int(total))
}

// fillBytes is one value of the fill value fill (.zarray's fill_value)
// of an array of kind and size, little-endian, nil when it is all zero
// bytes; text is the value as a warning names it.
func fillBytes(kind h5kind, size int, fill any) (b []byte, text string) {
	b = make([]byte, size)
	switch v := fill.(type) {
	case nil:
		return nil, "0 (no fill_value)"
	case bool:
		if v && kind == kBool {
			b[0] = 1
		}
		text = strconv.FormatBool(v)
	case float64:
		text = strconv.FormatFloat(v, 'g', -1, 64)
		switch {
		case kind == kFloat && size == 4:
			binary.LittleEndian.PutUint32(b, math.Float32bits(float32(v)))
		case kind == kFloat && size == 8:
			binary.LittleEndian.PutUint64(b, math.Float64bits(v))
		case (kind == kInt || kind == kUint) && size <= 8:
			var w [8]byte
			binary.LittleEndian.PutUint64(w[:], uint64(int64(v)))
			copy(b, w[:size])
		case kind == kBool && v != 0:
			b[0] = 1
		}
	case string: // "NaN", "Infinity", "-Infinity" for floats
		f := map[string]float64{"NaN": math.NaN(), "Infinity": math.Inf(1), "-Infinity": math.Inf(-1)}
		x, ok := f[v]
		if !ok || kind != kFloat {
			return nil, "0"
		}
		text = v
		if size == 4 {
			binary.LittleEndian.PutUint32(b, math.Float32bits(float32(x)))
		} else if size == 8 {
			binary.LittleEndian.PutUint64(b, math.Float64bits(x))
		}
	default:
		return nil, "0"
	}
	if !slices.ContainsFunc(b, func(c byte) bool { return c != 0 }) {
		return nil, text
	}
	return b, text
}

// missingChunks lists the first chunks (up to 10) of the 1-D numeric
// array n within its shape that have no file, read as the fill value
// (text: fillBytes), and how many there are.
func (n zarrNode) missingChunks() (missing []int64, count int64, fill string, err error) {
	z, err := n.meta()
	if err != nil {
		return nil, 0, "", err
	}
	dt, _ := z.Dtype.(string)
	if len(z.Shape) != 1 || len(z.Chunks) != 1 || z.Chunks[0] <= 0 || z.Shape[0] <= 0 || dt == "|O" {
		return nil, 0, "", nil
	}
	kind, size, err := parseNumpyDtype(dt)
	if err != nil {
		return nil, 0, "", nil
	}
	chunks, err := n.chunkIndexes()
	if err != nil {
		return nil, 0, "", err
	}
	n0 := (z.Shape[0] + z.Chunks[0] - 1) / z.Chunks[0]
	have := map[int64]bool{}
	for _, c := range chunks {
		if c < n0 {
			have[c] = true
		}
	}
	count = n0 - int64(len(have))
	for c := int64(0); c < n0 && int64(len(missing)) < min(count, 10); c++ {
		if !have[c] {
			missing = append(missing, c)
		}
	}
	_, fill = fillBytes(kind, size, z.Fill)
	return missing, count, fill, nil
}

// stored is how many values of the 1-D array its chunk files hold: up
// to the end of the last one present.
func (n zarrNode) stored() (int64, error) {
	z, err := n.meta()
	if err != nil {
		return 0, err
	}
	if len(z.Shape) != 1 || len(z.Chunks) != 1 || z.Chunks[0] <= 0 {
		return 0, corruptf("%s: only 1-D arrays are read (shape %v, chunks %v)", n.path, z.Shape, z.Chunks)
	}
	chunks, err := n.chunkIndexes()
	if err != nil {
		return 0, err
	}
	var end int64
	for _, c := range chunks {
		if c < z.Shape[0]/z.Chunks[0]+1 {
			end = max(end, (c+1)*z.Chunks[0])
		}
	}
	return min(end, z.Shape[0]), nil
}

// chunkIndexes lists the chunks of a 1-D array that have a file.
func (n zarrNode) chunkIndexes() ([]int64, error) {
	es, err := os.ReadDir(n.path)
	if err != nil {
		return nil, err
	}
	var out []int64
	for _, e := range es {
		if c, err := strconv.ParseInt(e.Name(), 10, 64); err == nil && c >= 0 && !e.IsDir() {
			out = append(out, c)
		}
	}
	return out, nil
}

func parseNumpyDtype(dt string) (h5kind, int, error) {
	if len(dt) < 3 {
		return 0, 0, corruptf("dtype %q is not supported", dt)
	}
	if dt[0] == '>' {
		return 0, 0, corruptf("big-endian dtype %q is not supported", dt)
	}
	size, err := strconv.Atoi(dt[2:])
	if err != nil || size <= 0 {
		return 0, 0, corruptf("dtype %q is not supported", dt)
	}
	switch dt[1] {
	case 'i':
		return kInt, size, nil
	case 'u':
		return kUint, size, nil
	case 'f':
		return kFloat, size, nil
	case 'b':
		return kBool, size, nil
	case 'S', 'U':
		if dt[1] == 'U' {
			return 0, 0, corruptf("dtype %q (UCS-4 strings) is not supported", dt)
		}
		return kFixedString, size, nil
	}
	return 0, 0, corruptf("dtype %q is not supported", dt)
}

// chunk returns chunk c decompressed, or nil when the chunk file is absent.
// A zlib or gzip chunk is decompressed to at most limit bytes: a damaged
// one cannot expand without bound (a Blosc frame says its size, at most
// 2 GiB).
func (n zarrNode) chunk(z *zarray, c, limit int64) ([]byte, error) {
	raw, err := os.ReadFile(filepath.Join(n.path, strconv.FormatInt(c, 10)))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if z.Compressor != nil {
		id, _ := z.Compressor["id"].(string)
		switch id {
		case "blosc":
			raw, err = bloscDecompress(raw)
		case "zlib":
			var r io.ReadCloser
			if r, err = zlib.NewReader(bytes.NewReader(raw)); err == nil {
				raw, err = io.ReadAll(io.LimitReader(r, limit))
			}
		case "gzip":
			var r io.ReadCloser
			if r, err = gzip.NewReader(bytes.NewReader(raw)); err == nil {
				raw, err = io.ReadAll(io.LimitReader(r, limit))
			}
		default:
			codec := "?" // the file's text: named only when it is a plain name
			if d := unreadDtype(id); d != "?" {
				codec = d[1:]
			}
			return nil, &codecError{codec, corruptf("%s: compressor %q is not supported (blosc, zlib, gzip)", n.path, id)}
		}
		if ce := (*codecError)(nil); errors.As(err, &ce) {
			return nil, &codecError{ce.codec, corruptf("%s chunk %d: %v", n.path, c, err)}
		}
		if err != nil {
			return nil, corruptf("%s chunk %d: %v", n.path, c, err)
		}
	}
	return raw, nil
}

func vlenUTF8(b []byte) ([]string, error) {
	if len(b) < 4 {
		return nil, corruptf("vlen-utf8 chunk too short")
	}
	n := int(binary.LittleEndian.Uint32(b))
	if n > len(b) {
		return nil, corruptf("vlen-utf8 chunk: implausible count")
	}
	out := make([]string, 0, n)
	p := 4
	for i := 0; i < n; i++ {
		if p+4 > len(b) {
			return nil, corruptf("vlen-utf8 chunk is short")
		}
		l := int(binary.LittleEndian.Uint32(b[p:]))
		p += 4
		if l < 0 || p+l > len(b) {
			return nil, corruptf("vlen-utf8 chunk is short")
		}
		out = append(out, string(b[p:p+l]))
		p += l
	}
	return out, nil
}

// bloscCodecs are Blosc 1's codec formats by number (lz4 and lz4hc share 1).
var bloscCodecs = []string{"blosclz", "lz4", "snappy", "zlib", "zstd"}

// bloscDecompress decodes a Blosc 1 frame whose blocks are LZ4 or stored
// (the zarr v2 default compressor is Blosc with LZ4).
func bloscDecompress(b []byte) ([]byte, error) {
	if len(b) < 16 {
		return nil, errors.New("blosc: frame too short")
	}
	flags := b[2]
	typesize := int(b[3])
	nbytes := int(binary.LittleEndian.Uint32(b[4:]))
	blocksize := int(binary.LittleEndian.Uint32(b[8:]))
	cbytes := int(binary.LittleEndian.Uint32(b[12:]))
	if cbytes > len(b) {
		return nil, errors.New("blosc: frame is truncated")
	}
	if nbytes > 1<<31 || (blocksize <= 0 && nbytes > 0) {
		return nil, errors.New("blosc: implausible sizes")
	}
	if flags&0x02 != 0 { // memcpyed
		if 16+nbytes > len(b) {
			return nil, errors.New("blosc: frame is truncated")
		}
		return append([]byte(nil), b[16:16+nbytes]...), nil
	}
	if compcode := flags >> 5; compcode != 1 {
		codec := fmt.Sprintf("blosc-%d", compcode)
		if int(compcode) < len(bloscCodecs) {
			codec = "blosc-" + bloscCodecs[compcode]
		}
		return nil, &codecError{codec, fmt.Errorf("blosc: codec %d is not supported (only lz4)", compcode)}
	}
	if flags&0x04 != 0 {
		return nil, &codecError{"blosc-bitshuffle", errors.New("blosc: bitshuffle is not supported")}
	}
	nblocks := (nbytes + blocksize - 1) / blocksize
	if 16+4*nblocks > len(b) {
		return nil, errors.New("blosc: frame is truncated")
	}
	starts := make([]int, nblocks)
	for i := range starts {
		starts[i] = int(binary.LittleEndian.Uint32(b[16+4*i:]))
	}
	ends := append([]int(nil), starts...)
	sort.Ints(ends)
	out := make([]byte, 0, nbytes)
	for i := 0; i < nblocks; i++ {
		bsize := min(blocksize, nbytes-i*blocksize)
		start := starts[i]
		end := cbytes
		for _, e := range ends {
			if e > start {
				end = e
				break
			}
		}
		if start < 0 || start > end || end > len(b) {
			return nil, errors.New("blosc: bad block offsets")
		}
		block, err := bloscBlock(b[start:end], bsize, typesize)
		if err != nil {
			return nil, err
		}
		if flags&0x01 != 0 {
			block = unshuffle(block, typesize)
		}
		out = append(out, block...)
	}
	return out, nil
}

// bloscBlock decodes one block: one stream, or typesize streams when the
// block was split by byte position; the split is found by checking which
// reading accounts for the block's bytes exactly.
func bloscBlock(b []byte, bsize, typesize int) ([]byte, error) {
	tryStreams := func(ns int) ([]byte, bool) {
		if ns <= 0 || bsize%ns != 0 {
			return nil, false
		}
		part := bsize / ns
		out := make([]byte, 0, bsize)
		p := 0
		for s := 0; s < ns; s++ {
			if p+4 > len(b) {
				return nil, false
			}
			cs := int(binary.LittleEndian.Uint32(b[p:]))
			p += 4
			if cs < 0 || p+cs > len(b) {
				return nil, false
			}
			if cs == part {
				out = append(out, b[p:p+cs]...)
			} else {
				dec, err := lz4Block(b[p:p+cs], part)
				if err != nil || len(dec) != part {
					return nil, false
				}
				out = append(out, dec...)
			}
			p += cs
		}
		return out, len(out) == bsize
	}
	if typesize > 1 {
		if out, ok := tryStreams(typesize); ok {
			return out, nil
		}
	}
	if out, ok := tryStreams(1); ok {
		return out, nil
	}
	return nil, errors.New("blosc: corrupt block")
}

// lz4Block decodes one LZ4 block (no frame) of exactly n bytes.
func lz4Block(src []byte, n int) ([]byte, error) {
	dst := make([]byte, n)
	k, err := lz4.UncompressBlock(src, dst)
	if err != nil {
		return nil, err
	}
	return dst[:k], nil
}
