package dataset

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/big"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/deprecated"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"
)

func openParquet(path string) (*parquet.File, *os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	// parquet-go allocates the footer's claimed length (up to 4 GiB)
	// before it reads it: a damaged length is caught here first. It
	// trusts the footer's thrift too (a list's length, to allocate its
	// elements): the footer is walked first (checkThrift).
	// A Parquet file starts and ends with "PAR1": without, parquet-go's
	// own words were `invalid magic footer … "\x00PAR"` or "readat:
	// negative offset"; as for h5ad and FCS, say it is truncated.
	var head [4]byte
	var tail [8]byte
	if st.Size() >= 12 {
		if _, err := f.ReadAt(head[:], 0); err != nil {
			f.Close()
			return nil, nil, err
		}
		if _, err := f.ReadAt(tail[:], st.Size()-8); err != nil {
			f.Close()
			return nil, nil, err
		}
	}
	if string(head[:]) == "PARE" && string(tail[4:]) == "PARE" {
		f.Close()
		return nil, nil, corruptf("the file is encrypted Parquet (PARE), which lamina does not read")
	}
	if string(head[:]) != "PAR1" || string(tail[4:]) != "PAR1" {
		f.Close()
		return nil, nil, corruptf("the file is truncated or not Parquet (%d bytes): a Parquet file starts and ends with \"PAR1\"", st.Size())
	}
	n := int64(binary.LittleEndian.Uint32(tail[:4]))
	if n > st.Size()-12 {
		f.Close()
		return nil, nil, corruptf("truncated or damaged: the footer says the file's metadata takes %d bytes and the file has %d", n, st.Size())
	}
	dataEnd := st.Size() - 8 - n
	footer := make([]byte, n)
	if _, err := f.ReadAt(footer, dataEnd); err != nil {
		f.Close()
		return nil, nil, err
	}
	if err := checkThrift(footer); err != nil {
		f.Close()
		return nil, nil, corruptf("damaged footer (the file's metadata): %v", err)
	}
	pf, err := parquet.OpenFile(f, st.Size(), parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		f.Close()
		return nil, nil, corruptf("%v", err)
	}
	if err := checkParquetMeta(pf.Metadata(), dataEnd); err != nil {
		f.Close()
		return nil, nil, corruptf("damaged footer (the file's metadata): %v", err)
	}
	return pf, f, nil
}

// parquetColumn says how a column of type t is read: the dtype it is
// described and read as and, for the values an int64 or float64 does not
// hold as the file means them, how a value becomes text. The integers that
// mean a time (the INT96 of Spark and Impala, INT64 TIMESTAMP, INT32 DATE,
// TIME) read as text of dtype datetime, date or str: a timestamp adjusted
// to UTC as RFC 3339 with Z; one that is not (local wall time, what pandas
// writes for a naive datetime) without a zone, as curate and the catalog
// read it: 2006-01-02T15:04:05. A time of day reads as a str,
// 15:04:05.5: no feature dtype is a time. A DECIMAL reads as its exact
// decimal text (Series.Exact), an int when its scale is 0, else a float;
// UINT_64 as exact text too, an int. Smaller unsigned integers read as
// ints (text nil, the value through parquetInt).
func parquetColumn(t parquet.Type) (dtype string, text func(parquet.Value) string) {
	if lt := t.LogicalType(); lt != nil {
		switch lt := lt.Value.(type) {
		case *format.TimestampType:
			if unit := timeUnit(lt.Unit); unit > 0 {
				layout := "2006-01-02T15:04:05.999999999"
				if lt.IsAdjustedToUTC {
					layout = time.RFC3339Nano
				}
				return "datetime", func(v parquet.Value) string {
					return unixTime(parquetInt(v), unit).Format(layout)
				}
			}
		case *format.DateType:
			return "date", func(v parquet.Value) string {
				return time.Unix(parquetInt(v)*86400, 0).UTC().Format(time.DateOnly)
			}
		case *format.TimeType:
			if unit := timeUnit(lt.Unit); unit > 0 {
				return "str", func(v parquet.Value) string {
					return unixTime(parquetInt(v), unit).Format("15:04:05.999999999")
				}
			}
		case *format.DecimalType:
			dtype := "float"
			if lt.Scale == 0 {
				dtype = "int"
			}
			return dtype, func(v parquet.Value) string { return decimalText(v, int(lt.Scale)) }
		case *format.UUIDType:
			if t.Kind() == parquet.FixedLenByteArray && t.Length() == 16 {
				return "str", func(v parquet.Value) string { return uuidText(v.ByteArray()) }
			}
		case *format.IntType:
			if !lt.IsSigned && lt.BitWidth == 64 && t.Kind() == parquet.Int64 {
				return "int", func(v parquet.Value) string { return strconv.FormatUint(v.Uint64(), 10) }
			}
		}
	}
	switch t.Kind() {
	case parquet.Boolean:
		return "bool", nil
	case parquet.Int32, parquet.Int64:
		return "int", nil
	case parquet.Float, parquet.Double:
		return "float", nil
	case parquet.Int96: // only ever a timestamp (Spark, Impala, Hive)
		return "datetime", func(v parquet.Value) string {
			return int96Time(v.Int96()).Format(time.RFC3339Nano)
		}
	}
	return "str", nil
}

// uuidText is a UUID's 16 bytes as its canonical text,
// 123e4567-e89b-12d3-a456-426614174000 (pyarrow and Spark write ids so).
func uuidText(b []byte) string {
	if len(b) != 16 {
		return hex.EncodeToString(b)
	}
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// decimalText is the DECIMAL v of the given scale as exact decimal text
// with scale digits after the point (-1.50 for the unscaled -150, scale
// 2). INT32 and INT64 hold the unscaled value; BYTE_ARRAY and
// FIXED_LEN_BYTE_ARRAY hold it big-endian in two's complement.
func decimalText(v parquet.Value, scale int) string {
	var digits string
	switch v.Kind() {
	case parquet.Int32, parquet.Int64:
		digits = strconv.FormatInt(parquetInt(v), 10)
	default:
		b := v.ByteArray()
		n := new(big.Int).SetBytes(b)
		if len(b) > 0 && b[0]&0x80 != 0 { // negative: subtract 2^(8·len)
			n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
		}
		digits = n.String()
	}
	neg := strings.HasPrefix(digits, "-")
	digits = strings.TrimPrefix(digits, "-")
	switch {
	case scale < 0: // the format forbids it; read as what it would mean
		digits += strings.Repeat("0", -scale)
	case scale > 0:
		if len(digits) <= scale {
			digits = strings.Repeat("0", scale-len(digits)+1) + digits
		}
		digits = digits[:len(digits)-scale] + "." + digits[len(digits)-scale:]
	}
	if neg {
		return "-" + digits
	}
	return digits
}

// timeUnit is the duration of unit; 0 when the file names none this
// package knows.
func timeUnit(unit format.TimeUnit) time.Duration {
	if unit.Value == nil {
		return 0
	}
	return unit.Value.Duration()
}

// unixTime is the UTC time n units after the Unix epoch.
func unixTime(n int64, unit time.Duration) time.Time {
	per := int64(time.Second / unit)
	return time.Unix(n/per, n%per*int64(unit)).UTC()
}

// parquetInt is the integer an INT32 or INT64 value holds.
func parquetInt(v parquet.Value) int64 {
	if v.Kind() == parquet.Int32 {
		return int64(v.Int32())
	}
	return v.Int64()
}

// unsigned32 reports whether t is an unsigned integer of at most 32 bits
// (UINT_8, UINT_16, UINT_32), which INT32 holds as its bits: 4294967295 is
// the INT32 -1.
func unsigned32(t parquet.Type) bool {
	lt := t.LogicalType()
	if lt == nil {
		return false
	}
	it, ok := lt.Value.(*format.IntType)
	return ok && !it.IsSigned && t.Kind() == parquet.Int32
}

func describeParquet(path string) (Info, error) {
	pf, f, err := openParquet(path)
	if err != nil {
		return Info{}, err
	}
	defer f.Close()
	cols := pf.Schema().Columns()
	info := Info{OType: "DataFrame", NObservations: pf.NumRows(), Shape: []int64{pf.NumRows(), int64(len(cols))}}
	for _, p := range cols {
		leaf, _ := pf.Schema().Lookup(p...)
		dtype, _ := parquetColumn(leaf.Node.Type())
		info.Columns = append(info.Columns, Column{Name: strings.Join(p, "."), Dtype: dtype})
	}
	return info, nil
}

func readParquet(path string) (Table, error) {
	pf, f, err := openParquet(path)
	if err != nil {
		return Table{}, err
	}
	defer f.Close()
	if err := tableRows(pf); err != nil {
		return Table{}, err
	}
	schema := pf.Schema()
	paths := schema.Columns()
	t := Table{NRows: int(pf.NumRows())}
	t.Columns = make([]Series, len(paths))
	texts := make([]func(parquet.Value) string, len(paths))
	uns := make([]bool, len(paths))
	for i, p := range paths {
		leaf, _ := schema.Lookup(p...)
		if leaf.MaxRepetitionLevel > 0 {
			return Table{}, fmt.Errorf("%w: column %s is repeated; only flat tables are read", ErrFormat, strings.Join(p, "."))
		}
		t.Columns[i].Name = strings.Join(p, ".")
		t.Columns[i].Dtype, texts[i] = parquetColumn(leaf.Node.Type())
		uns[i] = unsigned32(leaf.Node.Type())
	}
	pages := newPageChecker(pf, f)
	for r := range pf.RowGroups() {
		rg, err := pages.rowGroup(r)
		if err != nil {
			return Table{}, corruptf("%v", err)
		}
		for i, cc := range rg.ColumnChunks() {
			s := &t.Columns[i]
			if err := chunkValues(cc, func(v parquet.Value) { appendValue(s, v, texts[i], uns[i]) }); err != nil {
				return Table{}, corruptf("column %s: %v", s.Name, err)
			}
		}
	}
	for i := range t.Columns {
		if t.Columns[i].Len() != t.NRows {
			return Table{}, corruptf("column %s has %d values, not %d", t.Columns[i].Name, t.Columns[i].Len(), t.NRows)
		}
	}
	return t, nil
}

// tableRows reports a file whose rows are too many to read whole. Its
// row count bounds the values of each column, and parquet-go allocates a
// page's values (a level byte, more) before it reads them: a file of a
// hundred bytes whose footer and page both say 2^31 missing values (a
// run of nulls takes a few bytes) took the process out of memory. The
// bound is an AnnData column's (maxColumnValues).
func tableRows(pf *parquet.File) error {
	if n := pf.NumRows(); n > maxColumnValues {
		return corruptf("the footer says the file has %d rows, more than the %d a table is read with (a damaged count, or a table too big to read whole)", n, maxColumnValues)
	}
	return nil
}

// appendValue appends v to s; text, when set, makes it the text s holds
// (exact text for an int or float). unsigned says an INT32 holds a UINT_32
// (or narrower).
func appendValue(s *Series, v parquet.Value, text func(parquet.Value) string, unsigned bool) {
	null := v.IsNull()
	if null {
		if s.Null == nil {
			s.Null = make([]bool, s.Len(), s.Len()+1)
		}
	}
	if s.Null != nil {
		s.Null = append(s.Null, null)
	}
	switch {
	case text != nil:
		x := ""
		if !null {
			x = text(v)
		}
		if s.Dtype == "int" || s.Dtype == "float" {
			s.Exact = append(s.Exact, x)
		} else {
			s.Strings = append(s.Strings, x)
		}
	case s.Dtype == "bool":
		s.Bools = append(s.Bools, !null && v.Boolean())
	case s.Dtype == "int":
		var x int64
		switch {
		case null:
		case unsigned:
			x = int64(uint32(v.Int32()))
		default:
			x = parquetInt(v)
		}
		s.Ints = append(s.Ints, x)
	case s.Dtype == "float":
		var x float64
		if !null {
			x = v.Double()
			if v.Kind() == parquet.Float {
				x = float64(v.Float())
			}
		}
		s.Floats = append(s.Floats, x)
	default:
		x := ""
		if !null {
			if v.Kind() == parquet.ByteArray || v.Kind() == parquet.FixedLenByteArray {
				x = string(v.ByteArray())
			} else {
				x = v.String()
			}
		}
		s.Strings = append(s.Strings, x)
	}
}

// unixJulianDay is the Julian day of 1970-01-01.
const unixJulianDay = 2440588

// int96Time reads a legacy INT96 timestamp: nanoseconds within the day in
// its low 64 bits, then the Julian day. parquet-go reads it as a 96-bit
// integer, which no one can read as a time.
func int96Time(x deprecated.Int96) time.Time {
	return time.Unix((int64(x[2])-unixJulianDay)*86400, x.Int64()).UTC()
}

// chunkValues calls fn with every value of a column chunk, page by page.
// A value's bytes are valid during the call only.
func chunkValues(cc parquet.ColumnChunk, fn func(parquet.Value)) error {
	pages := cc.Pages()
	defer pages.Close()
	buf := make([]parquet.Value, 1024)
	for {
		page, err := pages.ReadPage()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		vr := page.Values()
		for {
			n, err := vr.ReadValues(buf)
			for _, v := range buf[:n] {
				fn(v)
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return err
			}
		}
		parquet.Release(page)
	}
}

// pageChecker reads the page headers of a column chunk before
// parquet-go reads its pages. parquet-go allocates what a header claims
// before reading it: the page's bytes (up to 2 GiB), its uncompressed
// bytes, and per value a level byte and a 4-byte offset (8 GiB for a
// damaged count). A header is held to the chunk it is in: its bytes to
// what is left of the chunk's byte range (itself inside the file), its
// uncompressed bytes to the chunk's, its values to the chunk's (a flat
// column has a value, or null, per row of the row group).
type pageChecker struct {
	r      io.ReaderAt
	size   int64
	meta   *format.FileMetaData
	pf     *parquet.File
	buf    *[]byte // decompressed data, a page at a time
	footer *int    // the length of the last row group's footer (rowGroup)
}

func newPageChecker(pf *parquet.File, r io.ReaderAt) pageChecker {
	return pageChecker{r: r, size: pf.Size(), meta: pf.Metadata(), pf: pf, buf: new([]byte), footer: new(int)}
}

// rowGroup checks the pages of row group r and returns it for reading;
// an error names the column whose pages are damaged. A compressed page
// must be decompressed to be checked (pageData), and parquet-go would
// decompress it again: the row group's pages are decompressed once,
// here, and parquet-go reads them from a file of that row group alone
// whose chunks say they are uncompressed. (parquet-go also reads every
// chunk of a column with the codec of the column's first chunk, whatever
// its own says.)
func (c pageChecker) rowGroup(r int) (parquet.RowGroup, error) {
	if c.direct(r) {
		for i := range c.meta.RowGroups[r].Columns {
			if err := c.check(r, i, nil); err != nil {
				return nil, c.columnErr(i, err)
			}
		}
		return c.pf.RowGroups()[r], nil
	}
	var out bytes.Buffer
	out.WriteString("PAR1")
	g := c.meta.RowGroups[r]
	g.Columns = slices.Clone(g.Columns)
	out.Grow(c.room(&g))
	for i := range g.Columns {
		start := int64(out.Len())
		if err := c.check(r, i, &out); err != nil {
			return nil, c.columnErr(i, err)
		}
		cc := &g.Columns[i]
		cc.FilePath, cc.FileOffset = "", start
		cc.OffsetIndexOffset, cc.OffsetIndexLength, cc.ColumnIndexOffset, cc.ColumnIndexLength = 0, 0, 0, 0
		m := &cc.MetaData
		m.Codec, m.DataPageOffset, m.TotalCompressedSize = format.Uncompressed, start, int64(out.Len())-start
		if m.DictionaryPageOffset > 0 {
			m.DictionaryPageOffset = start
		}
		m.IndexPageOffset, m.BloomFilterOffset, m.BloomFilterLength = 0, 0, 0
	}
	meta := *c.meta
	g.Ordinal = 0 // its position in this file
	meta.RowGroups, meta.NumRows = []format.RowGroup{g}, g.NumRows
	footer, err := thrift.Marshal(new(thrift.CompactProtocol), &meta)
	if err != nil {
		return nil, fmt.Errorf("row group %d: %v", r, err)
	}
	*c.footer = len(footer)
	out.Write(footer)
	out.Write(binary.LittleEndian.AppendUint32(nil, uint32(len(footer))))
	out.WriteString("PAR1")
	f, err := parquet.OpenFile(bytes.NewReader(out.Bytes()), int64(out.Len()), parquet.SkipPageIndex(true), parquet.SkipBloomFilters(true))
	if err != nil {
		return nil, fmt.Errorf("row group %d, its pages decompressed: %v", r, err)
	}
	return f.RowGroups()[0], nil
}

// columnErr is err in column i's pages, naming the column.
func (c pageChecker) columnErr(i int, err error) error {
	return fmt.Errorf("column %s: %w", strings.Join(c.pf.Schema().Columns()[i], "."), err)
}

// room is what row group g takes uncompressed, as a file of its own:
// its chunks' word for their size, as far as it is believable without
// reading them, room for the page headers (some writers leave them out
// of it) and for the footer (the last row group's, and more). The chunks'
// word is held to 32 times the bytes they take in the file (a row group
// of parquet-go's, zstd, takes 16 times its bytes uncompressed; more is
// grown as it comes): a damaged footer's 2,000 row groups, each claiming
// 64 MiB of the same 8-byte page, had 2,000 buffers of 72 MiB allocated.
func (c pageChecker) room(g *format.RowGroup) int {
	var size, packed int64
	for i := range g.Columns {
		m := &g.Columns[i].MetaData
		size += min(max(m.TotalUncompressedSize, 0), 64<<20) // no overflow
		packed += max(m.TotalCompressedSize, 0)              // within the file (checkParquetMeta)
	}
	size = min(size, 32*packed, 64<<20)
	footer := int64(*c.footer)
	if footer == 0 {
		footer = min(64<<10, c.size)
	}
	return int(size + size/8 + footer + footer/4 + 1<<10)
}

// direct reports whether parquet-go reads row group r as it is: its
// chunks are uncompressed or snappy (whose size is checked without
// decompressing it), each with the codec parquet-go reads its column
// with.
func (c pageChecker) direct(r int) bool {
	for i := range c.meta.RowGroups[r].Columns {
		codec := c.meta.RowGroups[r].Columns[i].MetaData.Codec
		if codec != c.meta.RowGroups[0].Columns[i].MetaData.Codec || codec != format.Uncompressed && codec != format.Snappy {
			return false
		}
	}
	return true
}

// check checks the pages of column i of row group rg; with out set, it
// writes them there uncompressed (uncompress), else checks the size of
// snappy data (snappyLen).
func (c pageChecker) check(rg, i int, out *bytes.Buffer) error {
	g := &c.meta.RowGroups[rg]
	m := &g.Columns[i].MetaData
	start := m.DataPageOffset
	if m.DictionaryPageOffset > 0 {
		start = m.DictionaryPageOffset
	}
	end := start + m.TotalCompressedSize
	if start < 4 || m.TotalCompressedSize < 0 || end > c.size-8 {
		return fmt.Errorf("the footer puts the column chunk at bytes %d to %d of a file of %d", start, end, c.size)
	}
	if m.NumValues < 0 || m.NumValues > g.NumRows {
		return fmt.Errorf("the footer says the column chunk holds %d values in a row group of %d rows", m.NumValues, g.NumRows)
	}
	values, unpacked := m.NumValues, int64(0)
	for page := 0; start < end; page++ {
		h, n, err := c.header(start, end)
		if err != nil {
			return fmt.Errorf("page %d: damaged header: %v", page, err)
		}
		start += n
		if size, left := int64(h.CompressedPageSize), end-start; size < 0 || size > left {
			return fmt.Errorf("page %d: damaged header: it says the page takes %d bytes, and the column chunk has %d left", page, size, left)
		}
		if size := int64(h.UncompressedPageSize); m.Codec != format.Uncompressed {
			if size < 0 || size > m.TotalUncompressedSize {
				return fmt.Errorf("page %d: damaged header: it says the page takes %d bytes uncompressed, and the whole column chunk %d", page, size, m.TotalUncompressedSize)
			}
			// The pages together too: a page may hold no values, and a
			// compressed chunk's pages are kept decompressed (rowGroup).
			// 16 pages of 64 MiB of zeros each in a chunk claiming 64 MiB
			// took 2.4 GB. (The chunk's size counts its page headers.)
			if unpacked += size; unpacked > m.TotalUncompressedSize {
				return fmt.Errorf("page %d: damaged header: with it the pages take %d bytes uncompressed, more than the column chunk's stated %d", page, unpacked, m.TotalUncompressedSize)
			}
		}
		switch {
		case h.DictionaryPageHeader.Valid:
			// a dictionary value takes a byte at least (a boolean a bit)
			if nv := int64(h.DictionaryPageHeader.V.NumValues); nv < 0 || nv > 8*int64(h.UncompressedPageSize) {
				return fmt.Errorf("page %d: damaged header: it says the dictionary holds %d values in %d bytes", page, nv, h.UncompressedPageSize)
			}
		case h.DataPageHeader.Valid, h.DataPageHeaderV2.Valid:
			nv := int64(h.DataPageHeader.V.NumValues)
			if h.DataPageHeaderV2.Valid {
				nv = int64(h.DataPageHeaderV2.V.NumValues)
			}
			if nv < 0 || nv > values {
				return fmt.Errorf("page %d: damaged header: it says the page holds %d values, and the column chunk has %d left", page, nv, values)
			}
			values -= nv
		}
		next := start + int64(h.CompressedPageSize)
		switch {
		case out != nil:
			err = c.uncompress(out, m.Codec, &h, start)
		case m.Codec == format.Snappy:
			err = c.checkSnappy(&h, start)
		}
		if err != nil {
			return fmt.Errorf("page %d: %v", page, err)
		}
		start = next
	}
	return nil
}

// pageBytes reads the data of the page whose header h ends at start, and
// says where its compressed bytes begin: at levels, or nowhere when
// levels is -1. A version 2 data page keeps its levels uncompressed,
// ahead of its compressed values, or may not be compressed.
func (c pageChecker) pageBytes(h *format.PageHeader, start int64) (data []byte, levels int64, err error) {
	data = make([]byte, h.CompressedPageSize)
	if _, err := c.r.ReadAt(data, start); err != nil {
		return nil, 0, err
	}
	switch v2 := h.DataPageHeaderV2; {
	case v2.Valid && v2.V.IsCompressed.Valid && !v2.V.IsCompressed.V:
		return data, -1, nil
	case v2.Valid:
		levels := int64(v2.V.DefinitionLevelsByteLength) + int64(v2.V.RepetitionLevelsByteLength)
		if v2.V.DefinitionLevelsByteLength < 0 || v2.V.RepetitionLevelsByteLength < 0 || levels > int64(len(data)) || levels > int64(h.UncompressedPageSize) {
			return nil, 0, fmt.Errorf("damaged header: it says the page's levels take %d and %d bytes, and the page %d", v2.V.DefinitionLevelsByteLength, v2.V.RepetitionLevelsByteLength, h.CompressedPageSize)
		}
		return data, levels, nil
	case h.DataPageHeader.Valid, h.DictionaryPageHeader.Valid:
		return data, 0, nil
	}
	return data, -1, nil // an index page, which parquet-go refuses
}

// checkSnappy checks the snappy data of the page whose header h ends at
// start says no more bytes than the header (snappyLen).
func (c pageChecker) checkSnappy(h *format.PageHeader, start int64) error {
	data, levels, err := c.pageBytes(h, start)
	if err != nil || levels < 0 {
		return err
	}
	_, err = snappyLen(data[levels:], int64(h.UncompressedPageSize)-levels)
	return err
}

// uncompress writes to out the page whose header h ends at start, its
// data uncompressed (pageData) and its header saying so. The page's
// checksum, when it has one, is held to its bytes as read, as parquet-go
// would.
func (c pageChecker) uncompress(out *bytes.Buffer, codec format.CompressionCodec, h *format.PageHeader, start int64) error {
	data, levels, err := c.pageBytes(h, start)
	if err != nil {
		return err
	}
	if sum := crc32.ChecksumIEEE(data); h.CRC != 0 && sum != uint32(h.CRC) {
		return fmt.Errorf("damaged data: its checksum is %08X, and its header says %08X", sum, uint32(h.CRC))
	}
	switch {
	case levels > 0:
		var values []byte
		if values, err = pageData(*c.buf, codec, data[levels:], int64(h.UncompressedPageSize)-levels); err == nil {
			data = append(data[:levels:levels], values...)
		}
	case levels == 0:
		if data, err = pageData(*c.buf, codec, data, int64(h.UncompressedPageSize)); codec != format.Uncompressed {
			*c.buf = data // the next page's decompressed data takes its place
		}
	}
	if err != nil {
		return err
	}
	h.CompressedPageSize, h.UncompressedPageSize, h.CRC = int32(len(data)), int32(len(data)), 0
	b, err := thrift.Marshal(new(thrift.CompactProtocol), h)
	if err != nil {
		return err
	}
	out.Write(b)
	out.Write(data)
	return nil
}

// header decodes the page header at start, reading no further than end;
// n is its length. It reads a small window first and more only while
// the header does not fit (statistics may hold long values).
func (c pageChecker) header(start, end int64) (h format.PageHeader, n int64, err error) {
	for window := min(end-start, 256); ; window = min(window*8, end-start) {
		buf := make([]byte, window)
		if _, err := c.r.ReadAt(buf, start); err != nil {
			return h, 0, err
		}
		// walked first: the decoder trusts a list's length and recurses
		// without bound on nested values
		w := thriftWalker{b: buf}
		if err = w.structure(0); err == nil {
			h = format.PageHeader{}
			err = thrift.NewDecoder(new(thrift.CompactProtocol).NewReaderFromBytes(buf[:w.off])).Decode(&h)
		}
		if err == nil {
			return h, int64(w.off), nil
		}
		if window == end-start {
			return h, 0, err
		}
	}
}

// RewriteParquet copies the Parquet file at src to w with its schema,
// passing every non-null value of the named string columns through mapFn.
// Rows are put together from each column's pages, as readParquet reads
// them: parquet-go's row reader trusts the footer's page offsets, and on a
// damaged one hands out values pointing outside any buffer, which crashed
// the process (a fault, not a panic) when written.
func RewriteParquet(src string, w io.Writer, mapFn map[string]func(string) string) (err error) {
	defer recoverCorrupt(src, &err)
	pf, f, err := openParquet(src)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := tableRows(pf); err != nil {
		return err
	}
	schema := pf.Schema()
	paths := schema.Columns()
	fns := make([]func(string) string, len(paths))
	for i, p := range paths {
		name := strings.Join(p, ".")
		if leaf, _ := schema.Lookup(p...); leaf.MaxRepetitionLevel > 0 {
			return fmt.Errorf("%w: column %s is repeated; only flat tables are rewritten", ErrFormat, name)
		}
		fns[i] = mapFn[name]
	}
	// A write that fails while w does not is the file's doing (a column
	// whose metadata names an encoding no writer has): ErrCorrupt, not
	// an error of the disk written to.
	ew := &errWriter{w: w}
	wrote := func(err error) error {
		if ew.err != nil {
			return err
		}
		return corruptf("the file's columns cannot be written back: %v", err)
	}
	pw := parquet.NewWriter(ew, schema)
	pages := newPageChecker(pf, f)
	for r := range pf.RowGroups() {
		rg, err := pages.rowGroup(r)
		if err != nil {
			return corruptf("%v", err)
		}
		n := rg.NumRows()
		cols := make([][]parquet.Value, len(paths))
		for i, cc := range rg.ColumnChunks() {
			cols[i] = make([]parquet.Value, 0, min(n, 1<<20))
			err := chunkValues(cc, func(v parquet.Value) {
				if fn := fns[i]; fn != nil && !v.IsNull() && v.Kind() == parquet.ByteArray {
					v = parquet.ValueOf(fn(string(v.ByteArray()))).Level(0, v.DefinitionLevel(), i)
				}
				cols[i] = append(cols[i], v.Clone())
			})
			if err != nil {
				return corruptf("column %s: %v", strings.Join(paths[i], "."), err)
			}
			if int64(len(cols[i])) != n {
				return corruptf("column %s has %d values in a row group of %d rows", strings.Join(paths[i], "."), len(cols[i]), n)
			}
		}
		// Rows are written a batch at a time: a row group's count is
		// bounded by nothing else when the schema has no columns (a
		// 60-byte file saying 10^8 rows took 2.3 GB as one slice).
		const batch = 4096
		rows := make([]parquet.Row, min(n, batch))
		for at := int64(0); at < n; at += batch {
			rows = rows[:min(n-at, batch)]
			for r := range rows {
				rows[r] = make(parquet.Row, len(cols))
				for c := range cols {
					rows[r][c] = cols[c][at+int64(r)]
				}
			}
			if _, err := pw.WriteRows(rows); err != nil {
				return wrote(err)
			}
		}
	}
	if err := pw.Close(); err != nil {
		return wrote(err)
	}
	return nil
}

// errWriter passes writes to w and keeps the last error w returned.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(b []byte) (int, error) {
	n, err := e.w.Write(b)
	if err != nil {
		e.err = err
	}
	return n, err
}
