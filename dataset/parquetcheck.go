package dataset

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sync"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go/format"
	"github.com/pierrec/lz4/v4"
)

// This file holds what is checked of a Parquet file before parquet-go
// reads it: parquet-go trusts the footer and the page headers, and
// allocates what they claim (a thrift list of 2^31 structs, a page's
// uncompressed bytes) or loops on what it cannot decode (an LZ4 page it
// cannot decompress doubles its buffer until the process dies). A
// damaged or hostile file must be ErrCorrupt, not a crash.

// maxThriftDepth bounds the nesting of thrift structs and containers:
// parquet-go's decoder recurses once per level, and the footer's deepest
// legitimate nesting (a column's statistics in its metadata) is 5.
const maxThriftDepth = 32

// checkThrift walks the compact-protocol struct b begins with, without
// allocating, and reports the first thing parquet-go's decoder would
// trust to allocate or recurse on: a list, set, map or binary longer
// than the bytes left (each element takes one byte at least), nesting
// deeper than maxThriftDepth, or bytes that end early.
func checkThrift(b []byte) error {
	w := thriftWalker{b: b}
	return w.structure(0)
}

type thriftWalker struct {
	b   []byte
	off int
}

var errThriftEnd = errors.New("the bytes end inside a value")

func (w *thriftWalker) byte() (byte, error) {
	if w.off >= len(w.b) {
		return 0, errThriftEnd
	}
	w.off++
	return w.b[w.off-1], nil
}

func (w *thriftWalker) uvarint() (uint64, error) {
	x, n := binary.Uvarint(w.b[w.off:])
	if n <= 0 {
		if n == 0 {
			return 0, errThriftEnd
		}
		return 0, errors.New("an integer longer than 64 bits")
	}
	w.off += n
	return x, nil
}

func (w *thriftWalker) skip(n uint64) error {
	if n > uint64(len(w.b)-w.off) {
		return fmt.Errorf("a value of %d bytes with %d left", n, len(w.b)-w.off)
	}
	w.off += int(n)
	return nil
}

// count reads a container's element count: each element takes per bytes
// at least.
func (w *thriftWalker) count(n uint64, per int) error {
	if left := uint64(len(w.b) - w.off); n > left/uint64(per) {
		return fmt.Errorf("a list of %d elements with %d bytes left", n, left)
	}
	return nil
}

func (w *thriftWalker) structure(depth int) error {
	if depth > maxThriftDepth {
		return fmt.Errorf("values nested deeper than %d", maxThriftDepth)
	}
	for {
		h, err := w.byte()
		if err != nil {
			return err
		}
		if h == 0 { // stop
			return nil
		}
		if h>>4 == 0 { // a field id of its own, zigzag i16
			if _, err := w.uvarint(); err != nil {
				return err
			}
		}
		if t := h & 0xf; t != 1 && t != 2 { // a bool field's value is its type
			if err := w.value(t, depth); err != nil {
				return err
			}
		}
	}
}

func (w *thriftWalker) value(t byte, depth int) error {
	switch t {
	case 1, 2, 3: // a bool in a container, i8
		_, err := w.byte()
		return err
	case 4, 5, 6: // i16, i32, i64
		_, err := w.uvarint()
		return err
	case 7: // double
		return w.skip(8)
	case 8: // binary
		n, err := w.uvarint()
		if err != nil {
			return err
		}
		return w.skip(n)
	case 9, 10: // list, set
		h, err := w.byte()
		if err != nil {
			return err
		}
		n := uint64(h >> 4)
		if n == 15 {
			if n, err = w.uvarint(); err != nil {
				return err
			}
		}
		if err := w.count(n, 1); err != nil {
			return err
		}
		for range n {
			if err := w.value(h&0xf, depth+1); err != nil {
				return err
			}
		}
		return nil
	case 11: // map
		n, err := w.uvarint()
		if err != nil || n == 0 {
			return err
		}
		kv, err := w.byte()
		if err != nil {
			return err
		}
		if err := w.count(n, 2); err != nil {
			return err
		}
		for range n {
			if err := w.value(kv>>4, depth+1); err != nil {
				return err
			}
			if err := w.value(kv&0xf, depth+1); err != nil {
				return err
			}
		}
		return nil
	case 12:
		return w.structure(depth + 1)
	case 13: // uuid
		return w.skip(16)
	}
	return fmt.Errorf("a value of unknown type %d", t)
}

// checkParquetMeta holds the footer's row counts and column chunks to the
// file and to each other, before anything is read on their word: the
// file's row count is its row groups', a chunk lies between the leading magic and the footer, which
// starts at dataEnd. (parquet-go checks a row group has a chunk per
// column; pageChecker holds a chunk's values to its row group's rows,
// and its pages to the chunk.)
func checkParquetMeta(m *format.FileMetaData, dataEnd int64) error {
	if m.NumRows < 0 {
		return fmt.Errorf("the footer says the file has %d rows", m.NumRows)
	}
	if m.NumRows == 0 {
		// Some writers leave the file's count 0 and count the rows of each
		// row group only (parquet-testing's repeated_no_annotation.parquet):
		// those are believed, each no more than its chunks' values (a
		// row is at least one value or null in each column).
		for r := range m.RowGroups {
			g := &m.RowGroups[r]
			most := int64(0)
			for i := range g.Columns {
				most = max(most, g.Columns[i].MetaData.NumValues)
			}
			if g.NumRows < 0 || (len(g.Columns) > 0 && g.NumRows > most) || g.NumRows > math.MaxInt64-m.NumRows {
				return fmt.Errorf("the footer says row group %d has %d rows, and its column chunks %d values at most", r, g.NumRows, most)
			}
			m.NumRows += g.NumRows // parquet-go's File.NumRows reads it
		}
	}
	var rows int64
	for r := range m.RowGroups {
		g := &m.RowGroups[r]
		if g.NumRows < 0 || g.NumRows > m.NumRows-rows {
			return fmt.Errorf("the footer says row group %d has %d rows, and the file %d in all", r, g.NumRows, m.NumRows)
		}
		rows += g.NumRows
		for i := range g.Columns {
			c := &g.Columns[i].MetaData
			// The chunk is read from its first page on, page by page:
			// with a dictionary, the data page offset is not used (and
			// a damaged one does not stop the read).
			start := c.DataPageOffset
			if c.DictionaryPageOffset > 0 {
				start = c.DictionaryPageOffset
			}
			end := start + c.TotalCompressedSize
			if start < 4 || c.TotalCompressedSize < 0 || end > dataEnd || end < start {
				return fmt.Errorf("the footer puts column chunk %d of row group %d at bytes %d to %d, and the file's data ends at byte %d", i, r, start, end, dataEnd)
			}
			if c.NumValues < 0 || c.TotalUncompressedSize < 0 {
				return fmt.Errorf("the footer says column chunk %d of row group %d holds %d values in %d bytes", i, r, c.NumValues, c.TotalUncompressedSize)
			}
		}
	}
	if rows != m.NumRows {
		return fmt.Errorf("the footer says the file has %d rows, and its row groups %d", m.NumRows, rows)
	}
	return nil
}

// pageData decompresses a page's data compressed with codec into buf's
// storage, and returns it: no more than the size bytes its header says.
// It is the page's only decompression: the page is handed to parquet-go
// uncompressed (pageChecker.rowGroup). parquet-go allocates a snappy
// page's or a zstd frame's claimed size (4 GiB from a damaged byte),
// grows its buffer without bound for a gzip, brotli or zstd page that
// decompresses to more, and doubles it forever for an LZ4 page it cannot
// decompress.
func pageData(buf []byte, codec format.CompressionCodec, data []byte, size int64) ([]byte, error) {
	if size < 0 {
		return nil, fmt.Errorf("it says the page takes %d bytes uncompressed", size)
	}
	var r io.Reader
	switch codec {
	case format.Uncompressed:
		return data, nil
	case format.Snappy:
		n, err := snappyLen(data, size)
		if err != nil {
			return nil, err
		}
		b, err := snappy.Decode(slices.Grow(buf[:0], n)[:n], data)
		if err != nil {
			return nil, fmt.Errorf("damaged snappy data: %v", err)
		}
		return b, nil
	case format.Lz4Raw:
		b := slices.Grow(buf[:0], int(size))[:size]
		n, err := lz4.UncompressBlock(data, b)
		if err != nil {
			return nil, fmt.Errorf("damaged LZ4 data (or more than the %d bytes its header says): %v", size, err)
		}
		return b[:n], nil
	case format.Zstd:
		var h zstd.Header
		if err := h.Decode(data); err != nil {
			return nil, fmt.Errorf("damaged zstd data: %v", err)
		}
		if h.HasFCS && h.FrameContentSize > uint64(size) {
			return nil, fmt.Errorf("its zstd data says it holds %d bytes, and its header %d", h.FrameContentSize, size)
		}
		// A streaming writer (Hadoop's, Spark's) declares its level's
		// window whatever the page's size: up to 2^25 for level 20.
		d, err := zstd.NewReader(bytes.NewReader(data), zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(uint64(max(size, 1<<25))))
		if err != nil {
			return nil, fmt.Errorf("damaged zstd data: %v", err)
		}
		defer d.Close()
		r = d
	case format.Gzip:
		z, _ := gzipReaders.Get().(*gzip.Reader)
		if z == nil {
			z = new(gzip.Reader)
		}
		if err := z.Reset(bytes.NewReader(data)); err != nil {
			return nil, fmt.Errorf("damaged gzip data: %v", err)
		}
		defer gzipReaders.Put(z)
		r = z
	case format.Brotli:
		b, _ := brotliReaders.Get().(*brotli.Reader)
		if b == nil {
			b = brotli.NewReader(nil)
		}
		b.Reset(bytes.NewReader(data))
		defer brotliReaders.Put(b)
		r = b
	default: // a codec parquet-go does not read either
		return nil, fmt.Errorf("its column chunk is compressed with %s, which is not read", codec)
	}
	// read up to one byte past the header's size, to see there is no more
	b, err := readUpTo(buf[:0], r, size+1)
	if err != nil {
		return nil, fmt.Errorf("damaged %s data: %v", codec, err)
	}
	if int64(len(b)) > size {
		return nil, fmt.Errorf("its %s data holds more than the %d bytes its header says", codec, size)
	}
	return b, nil
}

// snappyLen returns the length snappy data says it decompresses to, no
// more than size.
func snappyLen(data []byte, size int64) (int, error) {
	n, err := snappy.DecodedLen(data)
	if err != nil {
		return 0, fmt.Errorf("damaged snappy data: %v", err)
	}
	if int64(n) > size {
		return 0, fmt.Errorf("its snappy data says it holds %d bytes, and its header %d", n, size)
	}
	return n, nil
}

// The readers of gzip and brotli pages, kept for the next page: a
// brotli reader allocates its window anew otherwise.
var gzipReaders, brotliReaders sync.Pool

// readUpTo appends to b what r holds, n bytes at most. b grows as the
// data comes, not to a size a damaged header claims.
func readUpTo(b []byte, r io.Reader, n int64) ([]byte, error) {
	end := int64(len(b)) + n
	for int64(len(b)) < end {
		if len(b) == cap(b) {
			b = slices.Grow(b, int(min(max(int64(cap(b)), 4096), end-int64(len(b)))))
		}
		m, err := r.Read(b[len(b):min(int64(cap(b)), end)])
		b = b[:len(b)+m]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
	return b, nil
}
