package dataset_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/lamina-bio/lamina/dataset"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"
)

// handParquet writes a Parquet file of one INT64 column x (optional or
// required) with rows rows in one data page, the page's bytes as given
// (compressed with codec), and its header saying they hold uncompressed
// bytes.
func handParquet(t *testing.T, codec format.CompressionCodec, page []byte, uncompressed int32, rows int, optional bool) string {
	t.Helper()
	enc := func(v any) []byte {
		b, err := thrift.Marshal(new(thrift.CompactProtocol), v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	h := enc(&format.PageHeader{
		Type:                 format.DataPage,
		UncompressedPageSize: uncompressed,
		CompressedPageSize:   int32(len(page)),
		DataPageHeader: thrift.New(format.DataPageHeader{NumValues: int32(rows), Encoding: format.Plain,
			DefinitionLevelEncoding: format.RLE, RepetitionLevelEncoding: format.RLE}),
	})
	chunk := append(h, page...)
	rep := format.Required
	if optional {
		rep = format.Optional
	}
	footer := enc(&format.FileMetaData{
		Version: 1,
		Schema: []format.SchemaElement{
			{Name: "schema", NumChildren: thrift.New[int32](1)},
			{Name: "x", Type: thrift.New(format.Int64), RepetitionType: thrift.New(rep)},
		},
		NumRows: int64(rows),
		RowGroups: []format.RowGroup{{
			NumRows:       int64(rows),
			TotalByteSize: int64(len(chunk)),
			Columns: []format.ColumnChunk{{FileOffset: 4, MetaData: format.ColumnMetaData{
				Type: format.Int64, Encoding: []format.Encoding{format.Plain}, PathInSchema: []string{"x"},
				Codec: codec, NumValues: int64(rows), DataPageOffset: 4,
				TotalUncompressedSize: int64(len(h)) + int64(uncompressed), TotalCompressedSize: int64(len(chunk)),
			}}},
		}},
	})
	var b bytes.Buffer
	b.WriteString("PAR1")
	b.Write(chunk)
	b.Write(footer)
	binary.Write(&b, binary.LittleEndian, uint32(len(footer)))
	b.WriteString("PAR1")
	p := filepath.Join(t.TempDir(), "hand.parquet")
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// zstdRLE is a zstd frame of n RLE blocks of 128 KiB of zeros each, with
// no content size in its header: 4 bytes a block.
func zstdRLE(n int) []byte {
	b := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, (17 - 10) << 3} // no FCS; window 2^17
	for i := range n {
		h := uint32(128<<10)<<3 | 1<<1 // RLE block
		if i == n-1 {
			h |= 1 // last
		}
		b = append(b, byte(h), byte(h>>8), byte(h>>16), 0)
	}
	return b
}

// A compressed page's data is held to its header's uncompressed size
// before parquet-go decompresses it. parquet-go allocated what a snappy
// block's length says (4 GiB: a damaged varint), grew its buffer for a
// zstd page whatever its header said (256 MiB from 8 KiB of RLE blocks),
// and doubled its buffer forever on LZ4 data it could not decompress (a
// codec byte in the footer damaged from SNAPPY to LZ4_RAW: the process
// died out of memory).
func TestParquetPageDataBounded(t *testing.T) {
	const rows = 16
	for _, tc := range []struct {
		name  string
		codec format.CompressionCodec
		page  []byte
		want  string
	}{
		{"snappy_length", format.Snappy, []byte{0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0}, "its snappy data says it holds 4294967295 bytes, and its header 128"},
		{"zstd_bomb", format.Zstd, zstdRLE(2048), "its ZSTD data holds more than the 128 bytes its header says"},
		{"lz4_garbage", format.Lz4Raw, bytes.Repeat([]byte{0xff}, 24), "damaged LZ4 data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := handParquet(t, tc.codec, tc.page, 8*rows, rows, false)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := dataset.Tables(p)
			rerr := dataset.RewriteParquet(p, io.Discard, nil)
			runtime.ReadMemStats(&after)
			for _, err := range []error{err, rerr} {
				if !errors.Is(err, dataset.ErrCorrupt) || !strings.Contains(err.Error(), "column x: page 0: "+tc.want) {
					t.Errorf("%v; want ErrCorrupt with %q", err, tc.want)
				}
			}
			if d := after.TotalAlloc - before.TotalAlloc; d > 16<<20 {
				t.Errorf("allocated %d MiB", d>>20)
			}
		})
	}
	// The same file, intact, reads.
	for _, codec := range []format.CompressionCodec{format.Snappy, format.Zstd} {
		plain := make([]byte, 8*rows)
		for i := range rows {
			binary.LittleEndian.PutUint64(plain[8*i:], uint64(i))
		}
		page := snappyLiteral(plain)
		if codec == format.Zstd {
			page = zstdRaw(plain)
		}
		ts, err := dataset.Tables(handParquet(t, codec, page, int32(len(plain)), rows, false))
		if err != nil || ts[0].Columns[0].Ints[rows-1] != rows-1 {
			t.Errorf("%v, intact: %v", codec, err)
		}
	}
}

// snappyLiteral is b as a snappy block of one literal.
func snappyLiteral(b []byte) []byte {
	out := binary.AppendUvarint(nil, uint64(len(b)))
	out = append(out, byte(len(b)-1)<<2) // a literal of up to 60 bytes
	if len(b) > 60 {
		out = append(out[:len(out)-1], 60<<2, byte(len(b)-1))
	}
	return append(out, b...)
}

// zstdRaw is b as a zstd frame of one raw block, with its content size.
func zstdRaw(b []byte) []byte {
	out := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x20, byte(len(b))} // single segment, 1-byte FCS
	h := uint32(len(b))<<3 | 1
	return append(append(out, byte(h), byte(h>>8), byte(h>>16)), b...)
}

// footerOf returns the footer of the Parquet file b and the bytes before it.
func footerOf(t *testing.T, b []byte) (data, footer []byte) {
	t.Helper()
	n := int(binary.LittleEndian.Uint32(b[len(b)-8:]))
	return b[:len(b)-8-n], b[len(b)-8-n : len(b)-8]
}

func withFooter(t *testing.T, data, footer []byte) string {
	t.Helper()
	b := append(append([]byte(nil), data...), footer...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(footer)))
	b = append(b, "PAR1"...)
	p := filepath.Join(t.TempDir(), "footer.parquet")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// The footer's thrift is walked before parquet-go decodes it: parquet-go
// allocated a list's claimed length (2^31-1 schema elements, hundreds of
// GiB: the process died out of memory) and recursed once per nested
// value, without bound (a hostile footer overflows the stack). Its row
// counts and column chunks are held to each other and to the file: a
// damaged row count was described as the table's.
func TestParquetFooterChecked(t *testing.T) {
	full, err := os.ReadFile(sample("pbmc_small_obs.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	data, footer := footerOf(t, full)
	// version (i32), then the schema: a list of 12 structs
	if footer[0] != 0x15 || footer[2] != 0x19 || footer[3] != 0xcc {
		t.Fatalf("footer starts % x", footer[:4])
	}
	longList := append(append(append([]byte(nil), footer[:3]...), 0xfc, 0xff, 0xff, 0xff, 0xff, 0x07), footer[4:]...)
	// an unknown field (id 100) of 100 nested structs, before the stop
	deep := append([]byte(nil), footer[:len(footer)-1]...)
	deep = append(deep, 0x0c, 0xc8, 0x01)
	deep = append(deep, bytes.Repeat([]byte{0x1c}, 100)...)
	deep = append(deep, make([]byte, 102)...)
	meta := func(edit func(m *format.FileMetaData)) []byte {
		var m format.FileMetaData
		if err := thrift.Unmarshal(new(thrift.CompactProtocol), footer, &m); err != nil {
			t.Fatal(err)
		}
		edit(&m)
		b, err := thrift.Marshal(new(thrift.CompactProtocol), &m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tc := range []struct {
		name   string
		footer []byte
		want   string
	}{
		{"list_length", longList, "a list of 2147483647 elements with"},
		{"nesting", deep, "values nested deeper than 32"},
		{"num_rows", meta(func(m *format.FileMetaData) { m.NumRows++ }), "the footer says the file has 316 rows, and its row groups 315"},
		{"row_group_rows", meta(func(m *format.FileMetaData) { m.RowGroups[0].NumRows = 1 << 40 }), "row group 0 has 1099511627776 rows, and the file 315 in all"},
		{"chunk_in_footer", meta(func(m *format.FileMetaData) {
			c := &m.RowGroups[0].Columns[10].MetaData
			c.TotalCompressedSize = int64(len(data)) + 1 - c.DataPageOffset // one byte into the footer
		}), fmt.Sprintf("the footer puts column chunk 10 of row group 0 at bytes %d to %d, and the file's data ends at byte %d", 4581, len(data)+1, len(data))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := withFooter(t, data, tc.footer)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := dataset.Describe(p)
			_, terr := dataset.Tables(p)
			rerr := dataset.RewriteParquet(p, io.Discard, nil)
			runtime.ReadMemStats(&after)
			for i, err := range []error{err, terr, rerr} {
				if !errors.Is(err, dataset.ErrCorrupt) || !strings.Contains(err.Error(), "damaged footer (the file's metadata): ") || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("reader %d: %v; want ErrCorrupt with %q", i, err, tc.want)
				}
			}
			if d := after.TotalAlloc - before.TotalAlloc; d > 16<<20 {
				t.Errorf("allocated %d MiB", d>>20)
			}
		})
	}
	// the footer re-encoded unchanged reads
	if _, err := dataset.Tables(withFooter(t, data, meta(func(*format.FileMetaData) {}))); err != nil {
		t.Errorf("re-encoded footer: %v", err)
	}
	// A file whose count is 0, its row groups' counts given (some writers
	// do so: parquet-testing's repeated_no_annotation.parquet), reads
	// with the row groups' rows; a row group counting more rows than its
	// chunks hold values does not.
	zero := withFooter(t, data, meta(func(m *format.FileMetaData) { m.NumRows = 0 }))
	if info, err := dataset.Describe(zero); err != nil || info.NObservations != 315 {
		t.Errorf("file count 0: Describe %v, %d rows; want 315", err, info.NObservations)
	}
	if ts, err := dataset.Tables(zero); err != nil || ts[0].NRows != 315 || ts[0].Columns[0].Len() != 315 {
		t.Errorf("file count 0: Tables %v", err)
	}
	over := withFooter(t, data, meta(func(m *format.FileMetaData) { m.NumRows, m.RowGroups[0].NumRows = 0, 1<<40 }))
	if _, err := dataset.Tables(over); !errors.Is(err, dataset.ErrCorrupt) || !strings.Contains(err.Error(), "row group 0 has 1099511627776 rows, and its column chunks 315 values at most") {
		t.Errorf("file count 0, a row group of 2^40 rows: %v", err)
	}
}

// A file of a hundred bytes whose footer and page say 2^31-1 rows, all
// missing (a run of nulls takes a few bytes), took the process out of
// memory: parquet-go allocates a page's levels before it reads them. A
// table is read whole up to an AnnData column's bound of rows; a
// thousand such rows read.
func TestParquetNullRunBounded(t *testing.T) {
	nulls := func(rows int) string {
		run := binary.AppendUvarint(nil, uint64(rows)<<1) // an RLE run of level 0
		run = append(run, 0)
		page := append(binary.LittleEndian.AppendUint32(nil, uint32(len(run))), run...)
		return handParquet(t, format.Uncompressed, page, int32(len(page)), rows, true)
	}
	p := nulls(1<<31 - 1)
	info, err := dataset.Describe(p)
	if err != nil || info.NObservations != 1<<31-1 {
		t.Errorf("Describe: %v, %d rows", err, info.NObservations)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err = dataset.Tables(p)
	rerr := dataset.RewriteParquet(p, io.Discard, nil)
	runtime.ReadMemStats(&after)
	const want = "the footer says the file has 2147483647 rows, more than the 134217728 a table is read with"
	for _, err := range []error{err, rerr} {
		if !errors.Is(err, dataset.ErrCorrupt) || !strings.Contains(err.Error(), want) {
			t.Errorf("%v; want ErrCorrupt with %q", err, want)
		}
	}
	if d := after.TotalAlloc - before.TotalAlloc; d > 16<<20 {
		t.Errorf("allocated %d MiB", d>>20)
	}
	ts, err := dataset.Tables(nulls(1000))
	if err != nil || ts[0].NRows != 1000 || !ts[0].Columns[0].IsNull(999) {
		t.Errorf("1000 nulls: %v", err)
	}
}

// A rewrite of a file without columns held its rows, as many as the
// footer says, in one slice: a 60-byte file saying 10^8 rows took 2.3 GB.
// Rows are written a batch at a time.
func TestRewriteParquetNoColumns(t *testing.T) {
	const rows = 10_000_000
	footer, err := thrift.Marshal(new(thrift.CompactProtocol), &format.FileMetaData{
		Version: 1, Schema: []format.SchemaElement{{Name: "schema", NumChildren: thrift.New[int32](0)}},
		NumRows: rows, RowGroups: []format.RowGroup{{NumRows: rows}},
	})
	if err != nil {
		t.Fatal(err)
	}
	p := withFooter(t, []byte("PAR1"), footer)
	out := filepath.Join(t.TempDir(), "out.parquet")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	err = dataset.RewriteParquet(p, f, nil)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if d := after.TotalAlloc - before.TotalAlloc; d > 64<<20 {
		t.Errorf("allocated %d MiB", d>>20)
	}
	// parquet-go's writer counts no rows without columns: the rewritten
	// file says 0 (as it did when the rows were written in one slice).
	if _, err := dataset.Describe(out); err != nil {
		t.Errorf("the rewritten file: %v", err)
	}
}

// parquet-go reads every chunk of a column with the codec of the
// column's first chunk, whatever a chunk's own metadata says: a second
// row group saying UNCOMPRESSED, its page not checked as compressed data,
// had its zstd bomb decompressed by parquet-go with the first row group's
// ZSTD (256 MiB allocated). Each chunk is now read with its own codec,
// decompressed once, by the page checks.
func TestParquetChunkCodecsDiffer(t *testing.T) {
	const rows = 16
	plain := make([]byte, 8*rows)
	for i := range rows {
		binary.LittleEndian.PutUint64(plain[8*i:], uint64(i))
	}
	two := func(codec format.CompressionCodec, page []byte) string {
		b, err := os.ReadFile(handParquet(t, format.Zstd, zstdRaw(plain), int32(len(plain)), rows, false))
		if err != nil {
			t.Fatal(err)
		}
		data, footer := footerOf(t, b)
		var m format.FileMetaData
		if err := thrift.Unmarshal(new(thrift.CompactProtocol), footer, &m); err != nil {
			t.Fatal(err)
		}
		h, err := thrift.Marshal(new(thrift.CompactProtocol), &format.PageHeader{
			Type: format.DataPage, UncompressedPageSize: int32(len(plain)), CompressedPageSize: int32(len(page)),
			DataPageHeader: thrift.New(format.DataPageHeader{NumValues: rows, Encoding: format.Plain,
				DefinitionLevelEncoding: format.RLE, RepetitionLevelEncoding: format.RLE}),
		})
		if err != nil {
			t.Fatal(err)
		}
		g := m.RowGroups[0]
		g.Columns = slices.Clone(g.Columns)
		c := &g.Columns[0].MetaData
		c.Codec, c.DataPageOffset, c.TotalCompressedSize = codec, int64(len(data)), int64(len(h)+len(page))
		c.TotalUncompressedSize = int64(len(h) + len(plain))
		g.Columns[0].FileOffset, g.Ordinal = c.DataPageOffset, 1
		m.RowGroups, m.NumRows = append(m.RowGroups, g), 2*rows
		footer, err = thrift.Marshal(new(thrift.CompactProtocol), &m)
		if err != nil {
			t.Fatal(err)
		}
		return withFooter(t, append(append(data, h...), page...), footer)
	}
	p := two(format.Uncompressed, zstdRLE(2048))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := dataset.Tables(p)
	rerr := dataset.RewriteParquet(p, io.Discard, nil)
	runtime.ReadMemStats(&after)
	for _, err := range []error{err, rerr} {
		if !errors.Is(err, dataset.ErrCorrupt) {
			t.Errorf("%v; want ErrCorrupt", err)
		}
	}
	if d := after.TotalAlloc - before.TotalAlloc; d > 16<<20 {
		t.Errorf("allocated %d MiB", d>>20)
	}
	// Intact, a ZSTD row group then an uncompressed or a snappy one reads.
	for _, codec := range []format.CompressionCodec{format.Uncompressed, format.Snappy} {
		page := plain
		if codec == format.Snappy {
			page = snappyLiteral(plain)
		}
		ts, err := dataset.Tables(two(codec, page))
		if err != nil || ts[0].NRows != 2*rows || ts[0].Columns[0].Ints[2*rows-1] != rows-1 {
			t.Errorf("ZSTD then %v: %v", codec, err)
		}
	}
}

// A compressed page's checksum is held to its bytes, as parquet-go
// holds it when it decompresses the page itself.
func TestParquetPageChecksum(t *testing.T) {
	const rows = 16
	plain := make([]byte, 8*rows)
	page := zstdRaw(plain)
	b, err := os.ReadFile(handParquet(t, format.Zstd, page, int32(len(plain)), rows, false))
	if err != nil {
		t.Fatal(err)
	}
	data, footer := footerOf(t, b)
	h, err := thrift.Marshal(new(thrift.CompactProtocol), &format.PageHeader{
		Type: format.DataPage, UncompressedPageSize: int32(len(plain)), CompressedPageSize: int32(len(page)), CRC: 1,
		DataPageHeader: thrift.New(format.DataPageHeader{NumValues: rows, Encoding: format.Plain,
			DefinitionLevelEncoding: format.RLE, RepetitionLevelEncoding: format.RLE}),
	})
	if err != nil {
		t.Fatal(err)
	}
	var m format.FileMetaData
	if err := thrift.Unmarshal(new(thrift.CompactProtocol), footer, &m); err != nil {
		t.Fatal(err)
	}
	m.RowGroups[0].Columns[0].MetaData.TotalCompressedSize = int64(len(h) + len(page))
	if footer, err = thrift.Marshal(new(thrift.CompactProtocol), &m); err != nil {
		t.Fatal(err)
	}
	_, err = dataset.Tables(withFooter(t, append(append(data[:4:4], h...), page...), footer))
	if !errors.Is(err, dataset.ErrCorrupt) || !strings.Contains(err.Error(), "column x: ") || !strings.Contains(err.Error(), "checksum") {
		t.Errorf("%v; want ErrCorrupt with a checksum", err)
	}
}

// sharedChunkParquet writes a Parquet file of one required INT64 column x
// whose groups row groups of a row each are the same column chunk: the
// given pages (a header's values and uncompressed size, and its data),
// compressed with codec, the chunk saying it takes uncompressed bytes.
func sharedChunkParquet(t *testing.T, codec format.CompressionCodec, groups int, uncompressed int64, pages ...handPage) string {
	t.Helper()
	chunk := []byte("PAR1")
	for _, p := range pages {
		h, err := thrift.Marshal(new(thrift.CompactProtocol), &format.PageHeader{
			Type: format.DataPage, UncompressedPageSize: p.size, CompressedPageSize: int32(len(p.data)),
			DataPageHeader: thrift.New(format.DataPageHeader{NumValues: p.values, Encoding: format.Plain,
				DefinitionLevelEncoding: format.RLE, RepetitionLevelEncoding: format.RLE}),
		})
		if err != nil {
			t.Fatal(err)
		}
		chunk = append(append(chunk, h...), p.data...)
	}
	g := format.RowGroup{NumRows: 1, TotalByteSize: uncompressed, Columns: []format.ColumnChunk{{FileOffset: 4, MetaData: format.ColumnMetaData{
		Type: format.Int64, Encoding: []format.Encoding{format.Plain}, PathInSchema: []string{"x"}, Codec: codec,
		NumValues: 1, TotalUncompressedSize: uncompressed, TotalCompressedSize: int64(len(chunk)) - 4, DataPageOffset: 4}}}}
	m := format.FileMetaData{Version: 1, NumRows: int64(groups), Schema: []format.SchemaElement{
		{Name: "schema", NumChildren: thrift.New[int32](1)},
		{Name: "x", Type: thrift.New(format.Int64), RepetitionType: thrift.New(format.Required)},
	}}
	for range groups {
		m.RowGroups = append(m.RowGroups, g)
	}
	footer, err := thrift.Marshal(new(thrift.CompactProtocol), &m)
	if err != nil {
		t.Fatal(err)
	}
	return withFooter(t, chunk, footer)
}

type handPage struct {
	values, size int32
	data         []byte
}

// A compressed chunk's pages are held to its uncompressed size together,
// not only each: a page may hold no values, and the chunk's pages are
// kept decompressed for parquet-go to read. A chunk claiming 64 MiB with
// 16 pages of 64 MiB of zeros (a few KiB of zstd) took 2.4 GB.
func TestParquetChunkPagesBounded(t *testing.T) {
	one := zstdRaw(binary.LittleEndian.AppendUint64(nil, 42))
	zeros := handPage{0, 1 << 20, zstdRLE(8)} // 1 MiB
	const stated = 1<<20 + 64                 // room for the headers
	p := sharedChunkParquet(t, format.Zstd, 1, stated, append([]handPage{{1, 8, one}}, slices.Repeat([]handPage{zeros}, 16)...)...)
	_, err := dataset.Tables(p)
	rerr := dataset.RewriteParquet(p, io.Discard, nil)
	want := fmt.Sprintf("column x: page 2: damaged header: with it the pages take %d bytes uncompressed, more than the column chunk's stated %d", 8+2<<20, stated)
	for _, err := range []error{err, rerr} {
		if !errors.Is(err, dataset.ErrCorrupt) || !strings.Contains(err.Error(), want) {
			t.Errorf("%v; want ErrCorrupt with %q", err, want)
		}
	}
	// Within its size, the chunk reads.
	ts, err := dataset.Tables(sharedChunkParquet(t, format.Zstd, 1, stated, handPage{1, 8, one}, zeros))
	if err != nil || ts[0].Columns[0].Ints[0] != 42 {
		t.Errorf("%v, within its size", err)
	}
}

// A row group's buffer is sized by its chunks' claims only as far as
// the bytes they take in the file make them believable: a damaged footer
// of 2,000 row groups, each claiming 64 MiB of the same 8-byte page, had
// a buffer of 72 MiB allocated for each (41 s, in an 86 KB file).
func TestParquetRowGroupClaimsBounded(t *testing.T) {
	const groups = 32
	p := sharedChunkParquet(t, format.Zstd, groups, 64<<20, handPage{1, 8, zstdRaw(binary.LittleEndian.AppendUint64(nil, 42))})
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	ts, err := dataset.Tables(p)
	runtime.ReadMemStats(&after)
	if err != nil || ts[0].NRows != groups || ts[0].Columns[0].Ints[groups-1] != 42 {
		t.Fatalf("%v", err)
	}
	// the claims would take 32 × 72 MiB
	if d := after.TotalAlloc - before.TotalAlloc; d > 64<<20 {
		t.Errorf("allocated %d MiB", d>>20)
	}
}
