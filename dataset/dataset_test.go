package dataset_test

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/dataset"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/deprecated"
	"github.com/parquet-go/parquet-go/encoding/thrift"
	"github.com/parquet-go/parquet-go/format"
)

const samples = "../../shared/data/samples"

func sample(name string) string { return filepath.Join(samples, name) }

func colNames(cs []dataset.Column, slot string) []string {
	var out []string
	for _, c := range cs {
		if c.Slot == slot {
			out = append(out, c.Name)
		}
	}
	return out
}

var pbmcObs = []string{"cell_type", "tissue", "disease", "development_stage", "sex", "donor_id", "assay", "organism", "n_counts", "n_genes"}

func TestDescribe(t *testing.T) {
	cases := []struct {
		file    string
		format  string
		otype   string
		n       int64
		shape   []int64
		columns []string // of the first slot ("" or obs)
		slot    string
	}{
		{"pbmc_small.h5ad", dataset.H5AD, "AnnData", 315, []int64{315, 50}, pbmcObs, "obs"},
		{"pbmc_small.zarr", dataset.AnnDataZarr, "AnnData", 315, []int64{315, 50}, pbmcObs, "obs"},
		{"cellxgene_example_valid.h5ad", dataset.H5AD, "AnnData", 2, []int64{2, 7}, nil, "obs"},
		{"pbmc_small_obs.csv", dataset.CSV, "DataFrame", 315, []int64{315, 11}, append([]string{"cell_id"}, pbmcObs...), ""},
		{"pbmc_small_obs.parquet", dataset.Parquet, "DataFrame", 315, []int64{315, 11}, append([]string{"cell_id"}, pbmcObs...), ""},
		{"parquet-testing_alltypes_plain.parquet", dataset.Parquet, "DataFrame", 8, []int64{8, 11}, nil, ""},
		{"parquet-testing_alltypes_plain.snappy.parquet", dataset.Parquet, "DataFrame", 2, []int64{2, 11}, nil, ""},
		{"fcsparser_cyflow_cube_8.fcs", dataset.FCS, "", 725, []int64{725, 10}, []string{"FSC", "SSC", "FL1", "FL2", "FL3", "FL4", "FL5", "FL6", "TIME", "DOUBLET"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			info, err := dataset.Describe(sample(tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if info.Format != tc.format || info.OType != tc.otype || info.NObservations != tc.n || !reflect.DeepEqual(info.Shape, tc.shape) {
				t.Fatalf("Describe = %s %q n=%d shape=%v; want %s %q n=%d shape=%v", info.Format, info.OType, info.NObservations, info.Shape, tc.format, tc.otype, tc.n, tc.shape)
			}
			if tc.columns != nil {
				if got := colNames(info.Columns, tc.slot); !reflect.DeepEqual(got, tc.columns) {
					t.Fatalf("columns = %v, want %v", got, tc.columns)
				}
			}
		})
	}
	t.Run("dtypes", func(t *testing.T) {
		info, _ := dataset.Describe(sample("pbmc_small.h5ad"))
		want := map[string]string{"obs.cell_type": "cat", "obs.n_counts": "float", "obs.n_genes": "int", "var.ensembl_gene_id": "str", "var.feature_type": "cat"}
		for _, c := range info.Columns {
			if w, ok := want[c.Slot+"."+c.Name]; ok && w != c.Dtype {
				t.Errorf("%s.%s is %s, want %s", c.Slot, c.Name, c.Dtype, w)
			}
		}
		info, _ = dataset.Describe(sample("cellxgene_example_valid.h5ad"))
		for _, c := range info.Columns {
			if c.Name == "is_primary_data" && c.Dtype != "bool" {
				t.Errorf("is_primary_data (an h5py bool enum) is %s", c.Dtype)
			}
		}
		info, _ = dataset.Describe(sample("fcsparser_cyflow_cube_8.fcs"))
		if info.Metadata["cyt"] != "Cube_15" || info.Metadata["version"] != "FCS3.0" {
			t.Errorf("FCS metadata = %v", info.Metadata)
		}
	})
}

// The same AnnData read from h5ad, zarr, CSV and Parquet gives the same
// obs values.
func TestTablesAgree(t *testing.T) {
	read := func(name string) dataset.Table {
		ts, err := dataset.Tables(sample(name))
		if err != nil {
			t.Fatal(err)
		}
		return ts[0]
	}
	h5, zr, csv, pq := read("pbmc_small.h5ad"), read("pbmc_small.zarr"), read("pbmc_small_obs.csv"), read("pbmc_small_obs.parquet")
	if h5.Index != "_index" || h5.NRows != 315 {
		t.Fatalf("h5ad obs: index %q, %d rows", h5.Index, h5.NRows)
	}
	for _, col := range []string{"cell_type", "tissue", "disease", "organism", "n_counts", "n_genes"} {
		a, _ := h5.Col(col)
		for name, other := range map[string]dataset.Table{"zarr": zr, "csv": csv, "parquet": pq} {
			b, ok := other.Col(col)
			if !ok {
				t.Fatalf("%s has no %s", name, col)
			}
			if !reflect.DeepEqual(a.Values(), b.Values()) {
				t.Fatalf("%s.%s differs from h5ad:\n%q\n%q", name, col, a.Values()[:5], b.Values()[:5])
			}
		}
	}
	ix, _ := h5.Col("_index")
	cid, _ := csv.Col("cell_id")
	if !reflect.DeepEqual(ix.Values(), cid.Values()) {
		t.Fatal("h5ad obs index differs from the CSV cell_id")
	}
	ct, _ := h5.Col("cell_type")
	if ct.Dtype != "cat" || len(ct.Categories) != 15 {
		t.Fatalf("cell_type: %s with %d categories", ct.Dtype, len(ct.Categories))
	}
	ts, _ := dataset.Tables(sample("pbmc_small.h5ad"))
	if len(ts) != 2 || ts[1].Slot != "var" || ts[1].NRows != 50 {
		t.Fatalf("var: %+v", ts[1:])
	}
	genes, _ := ts[1].Col("_index")
	if genes.Text(0) != "CD3D" {
		t.Fatalf("first gene %q", genes.Text(0))
	}
}

func TestTruncatedAndCorrupt(t *testing.T) {
	dir := t.TempDir()
	full, err := os.ReadFile(sample("pbmc_small.h5ad"))
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(dir, "cut.h5ad")
	os.WriteFile(cut, full[:len(full)/2], 0o644)
	tiny := filepath.Join(dir, "tiny.h5ad")
	os.WriteFile(tiny, full[:20], 0o644)
	notH5 := filepath.Join(dir, "text.h5ad")
	os.WriteFile(notH5, []byte("just text, not HDF5 at all\n"), 0o644)
	// Garbage over the middle of the file, length unchanged.
	garbled := append([]byte(nil), full...)
	for i := 512; i < len(garbled)-512; i++ {
		garbled[i] = byte(i * 7)
	}
	bad := filepath.Join(dir, "garbled.h5ad")
	os.WriteFile(bad, garbled, 0o644)
	// FCS header offsets that are wrong but inside the file: not truncated.
	fcs, err := os.ReadFile(sample("fcsparser_cyflow_cube_8.fcs"))
	if err != nil {
		t.Fatal(err)
	}
	fcsWith := func(name string, field int, value string) string {
		b := append([]byte(nil), fcs...)
		copy(b[10+8*field:18+8*field], fmt.Sprintf("%8s", value))
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o644)
		return p
	}
	textAfterEnd := fcsWith("text-start.fcs", 0, "99999999")
	textInHeader := fcsWith("text-header.fcs", 0, "10")
	dataAfterEnd := fcsWith("data-start.fcs", 2, "99999999")
	emptyCSV := filepath.Join(dir, "empty.csv") // no header line: no table
	os.WriteFile(emptyCSV, nil, 0o644)
	blankTSV := filepath.Join(dir, "blank.tsv")
	os.WriteFile(blankTSV, []byte("\n\n"), 0o644)
	badCSV := filepath.Join(dir, "bad.csv")
	os.WriteFile(badCSV, []byte("a,b\n1,\"unterminated\n"), 0o644)
	cases := []struct {
		path string
		want string
	}{
		{sample("npm-fcs_AriaFile1.TRUNCATED.fcs"), "truncated: the header says DATA ends at byte 482635 and the file has 293161 bytes"},
		{textAfterEnd, "the FCS header is damaged: it says TEXT starts at byte 99999999 and ends at byte 1455, before its start"},
		{textInHeader, "TEXT starts at byte 10, inside the 58-byte header"},
		{dataAfterEnd, "the FCS header is damaged: it says DATA starts at byte 99999999 and ends at byte 16680, before its start"},
		{cut, "truncated"},
		{tiny, "truncated"},
		{notH5, "not an HDF5 file"},
		{bad, "corrupt"},
		{badCSV, "line 2"},
		{emptyCSV, "the file is empty: a table has at least its header line"},
		{blankTSV, "the file is empty"},
	}
	for _, tc := range cases {
		t.Run(filepath.Base(tc.path), func(t *testing.T) {
			_, err := dataset.Describe(tc.path)
			if !errors.Is(err, dataset.ErrCorrupt) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Describe: %v; want ErrCorrupt with %q", err, tc.want)
			}
			if dataset.DetectFormat(tc.path) != dataset.FCS {
				if _, err := dataset.Tables(tc.path); !errors.Is(err, dataset.ErrCorrupt) {
					t.Fatalf("Tables: %v", err)
				}
			}
		})
	}
	if _, err := dataset.Describe(filepath.Join(dir, "x.txt")); !errors.Is(err, dataset.ErrFormat) {
		t.Fatalf("unknown format: %v", err)
	}
}

func TestRewrite(t *testing.T) {
	dir := t.TempDir()
	upper := map[string]func(string) string{"tissue": strings.ToUpper}
	for _, name := range []string{"pbmc_small_obs.csv", "pbmc_small_obs.parquet"} {
		t.Run(name, func(t *testing.T) {
			out := filepath.Join(dir, name)
			f, _ := os.Create(out)
			var err error
			if strings.HasSuffix(name, ".csv") {
				err = dataset.RewriteText(sample(name), dataset.CSV, f, upper)
			} else {
				err = dataset.RewriteParquet(sample(name), f, upper)
			}
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			before, _ := dataset.Tables(sample(name))
			after, err := dataset.Tables(out)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := before[0].Col("tissue")
			a, _ := after[0].Col("tissue")
			for i := range b.Values() {
				if a.Text(i) != strings.ToUpper(b.Text(i)) {
					t.Fatalf("row %d: %q -> %q", i, b.Text(i), a.Text(i))
				}
			}
			bn, _ := before[0].Col("n_genes")
			an, _ := after[0].Col("n_genes")
			if !reflect.DeepEqual(an.Values(), bn.Values()) || an.Dtype != bn.Dtype {
				t.Fatal("other columns changed")
			}
		})
	}
}

// A Parquet rewrite keeps every value: nulls, DECIMALs, unsigned ints,
// INT96, and rows across several row groups.
func TestRewriteParquetKeepsValues(t *testing.T) {
	dir := t.TempDir()
	groups := filepath.Join(dir, "groups.parquet")
	f, err := os.Create(groups)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		Name  *string `parquet:"name,optional"`
		Price *int64  `parquet:"price,optional,decimal(3:18)"`
		ID    uint64  `parquet:"id"`
	}
	s := func(x string) *string { return &x }
	d := func(x int64) *int64 { return &x }
	w := parquet.NewGenericWriter[row](f, parquet.MaxRowsPerRowGroup(2))
	if _, err := w.Write([]row{{s("a"), d(-1), 1<<64 - 1}, {nil, d(2500), 2}, {s("c"), nil, 1 << 53}, {s("d"), d(7), 1<<53 + 1}, {nil, nil, 0}}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if st, _ := f.Stat(); st != nil {
		if pf, err := parquet.OpenFile(f, st.Size()); err != nil || len(pf.RowGroups()) != 3 {
			t.Fatalf("fixture: %v, want 3 row groups", err)
		}
	}
	f.Close()
	for _, src := range []string{groups, sample("pbmc_small_obs.parquet"), sample("parquet-testing_alltypes_plain.parquet"), sample("parquet-testing_alltypes_plain.snappy.parquet")} {
		t.Run(filepath.Base(src), func(t *testing.T) {
			before, err := dataset.Tables(src)
			if err != nil {
				t.Fatal(err)
			}
			after, err := rewrittenTables(t, src)
			if err != nil || !reflect.DeepEqual(after, before) {
				t.Fatalf("rewritten: %v\n%+v\nwant\n%+v", err, after, before)
			}
		})
	}
}

// A UTF-8 byte order mark before the header (Excel writes one) is not part
// of the first column's name, and a rewrite keeps it.
func TestTextBOM(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, text string }{
		{"bom.csv", "\ufeffdisease,x\r\nSLE,1\r\nCOVID-19,2\r\n"},
		{"bom.tsv", "\ufeffdisease\tx\nSLE\t1\nCOVID-19\t2\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name)
			if err := os.WriteFile(path, []byte(tc.text), 0o644); err != nil {
				t.Fatal(err)
			}
			info, err := dataset.Describe(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := colNames(info.Columns, ""); !reflect.DeepEqual(got, []string{"disease", "x"}) || info.Columns[1].Dtype != "int" {
				t.Fatalf("Describe columns = %q", info.Columns)
			}
			ts, err := dataset.Tables(path)
			if err != nil {
				t.Fatal(err)
			}
			c, ok := ts[0].Col("disease")
			if !ok || !reflect.DeepEqual(c.Values(), []string{"SLE", "COVID-19"}) {
				t.Fatalf("Tables: disease %v, columns %+v", ok, ts[0].Columns)
			}
			var out strings.Builder
			err = dataset.RewriteText(path, dataset.FileFormat(path), &out, map[string]func(string) string{"disease": strings.ToLower})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(out.String(), "\ufeffdisease") || !strings.Contains(out.String(), "covid-19") {
				t.Fatalf("RewriteText = %q", out.String())
			}
		})
	}
}

// A UTF-16 table (Excel's "Unicode text") is named as such, with the
// iconv that converts it, not called binary or Latin-1.
func TestTextUTF16(t *testing.T) {
	dir := t.TempDir()
	text := "disease,x\nSLE,1\n"
	le, be := []byte{0xff, 0xfe}, []byte{0xfe, 0xff}
	for _, r := range text {
		le = append(le, byte(r), 0)
		be = append(be, 0, byte(r))
	}
	for name, b := range map[string][]byte{"le.csv": le, "be.csv": be} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name)
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			want := fmt.Sprintf("the file is UTF-16 (byte-order mark %#x %#x), not UTF-8: convert it to UTF-8 first (iconv -f utf-16 -t utf-8, say)", b[0], b[1])
			if _, err := dataset.Describe(path); !errors.Is(err, dataset.ErrCorrupt) || !strings.Contains(err.Error(), want) {
				t.Fatalf("Describe: %v; want %q", err, want)
			}
			if _, err := dataset.Tables(path); !errors.Is(err, dataset.ErrCorrupt) || !strings.Contains(err.Error(), want) {
				t.Fatalf("Tables: %v; want %q", err, want)
			}
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			cr := dataset.NewTextReader(f, dataset.CSV)
			rec, err := cr.Read()
			if err != nil {
				t.Fatal(err)
			}
			if err := dataset.CheckUTF8(cr, rec); err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("CheckUTF8: %v; want %q", err, want)
			}
		})
	}
}

// A legacy INT96 timestamp (Spark, Impala) is a datetime, not a 26-digit
// integer: nanoseconds within the day, then the Julian day.
func TestParquetInt96(t *testing.T) {
	for _, tc := range []struct {
		file string
		want []string
	}{
		{"parquet-testing_alltypes_plain.parquet", []string{"2009-03-01T00:00:00Z", "2009-03-01T00:01:00Z", "2009-04-01T00:00:00Z", "2009-04-01T00:01:00Z",
			"2009-02-01T00:00:00Z", "2009-02-01T00:01:00Z", "2009-01-01T00:00:00Z", "2009-01-01T00:01:00Z"}},
		{"parquet-testing_alltypes_plain.snappy.parquet", []string{"2009-04-01T00:00:00Z", "2009-04-01T00:01:00Z"}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			info, err := dataset.Describe(sample(tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if c := info.Columns[len(info.Columns)-1]; c.Name != "timestamp_col" || c.Dtype != "datetime" {
				t.Fatalf("Describe: last column %+v", c)
			}
			ts, err := dataset.Tables(sample(tc.file))
			if err != nil {
				t.Fatal(err)
			}
			c, ok := ts[0].Col("timestamp_col")
			if !ok || c.Dtype != "datetime" || !reflect.DeepEqual(c.Values(), tc.want) {
				t.Fatalf("Tables: timestamp_col %s %q", c.Dtype, c.Values())
			}
		})
	}
}

// legacyType is an INT32 or INT64 type a writer from before logical types
// annotated with a converted type only (TIMESTAMP_MILLIS, DATE).
type legacyType struct {
	parquet.Type
	converted deprecated.ConvertedType
}

func (legacyType) LogicalType() *format.LogicalType           { return nil }
func (t legacyType) ConvertedType() *deprecated.ConvertedType { return &t.converted }

// fixtureColumn is one optional column of a Parquet fixture: its type and
// its values, nil for a null.
type fixtureColumn struct {
	node parquet.Node
	vals []any
}

// writeParquet writes the optional columns cols to a Parquet file in dir
// with parquet-go's writer, as pandas and pyarrow write such columns.
func writeParquet(t *testing.T, dir string, cols map[string]fixtureColumn) string {
	t.Helper()
	group := parquet.Group{}
	nrows := 0
	for name, c := range cols {
		group[name] = parquet.Optional(c.node)
		nrows = len(c.vals)
	}
	schema := parquet.NewSchema("fixture", group)
	rows := make([]parquet.Row, nrows)
	for i, p := range schema.Columns() {
		for r, x := range cols[p[0]].vals {
			v := parquet.ValueOf(x).Level(0, 1, i)
			if x == nil {
				v = parquet.NullValue().Level(0, 0, i)
			}
			rows[r] = append(rows[r], v)
		}
	}
	path := filepath.Join(dir, "fixture.parquet")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := parquet.NewWriter(f, schema)
	if _, err := w.WriteRows(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// Parquet's INT64 TIMESTAMP (what pandas and pyarrow write, in every unit),
// INT32 DATE, their legacy converted types and TIME are read as text a
// datetime or date feature validates, not as integers: a timestamp adjusted
// to UTC in RFC 3339 with Z, one that is not (a naive pandas datetime) as
// wall time without a zone. Nulls stay null.
func TestParquetLogicalTimes(t *testing.T) {
	at := time.Date(2024, 3, 15, 13, 45, 30, 123456789, time.UTC).UnixNano()
	const ms, us = int64(time.Millisecond), int64(time.Microsecond)
	day := int32(at / int64(24*time.Hour))
	ofDay := at % int64(24*time.Hour)
	stamps := func(unit int64) []any { return []any{at / unit, nil, -500 * ms / unit} }
	cases := map[string]parquetCase{
		"utc_ms":   {parquet.Timestamp(parquet.Millisecond), stamps(ms), "datetime", []string{"2024-03-15T13:45:30.123Z", "", "1969-12-31T23:59:59.5Z"}},
		"utc_us":   {parquet.Timestamp(parquet.Microsecond), stamps(us), "datetime", []string{"2024-03-15T13:45:30.123456Z", "", "1969-12-31T23:59:59.5Z"}},
		"utc_ns":   {parquet.Timestamp(parquet.Nanosecond), stamps(1), "datetime", []string{"2024-03-15T13:45:30.123456789Z", "", "1969-12-31T23:59:59.5Z"}},
		"local_ms": {parquet.TimestampAdjusted(parquet.Millisecond, false), stamps(ms), "datetime", []string{"2024-03-15T13:45:30.123", "", "1969-12-31T23:59:59.5"}},
		"local_us": {parquet.TimestampAdjusted(parquet.Microsecond, false), stamps(us), "datetime", []string{"2024-03-15T13:45:30.123456", "", "1969-12-31T23:59:59.5"}},
		"local_ns": {parquet.TimestampAdjusted(parquet.Nanosecond, false), stamps(1), "datetime", []string{"2024-03-15T13:45:30.123456789", "", "1969-12-31T23:59:59.5"}},
		"date":     {parquet.Date(), []any{day, nil, int32(-1)}, "date", []string{"2024-03-15", "", "1969-12-31"}},
		"legacy_ms": {parquet.Leaf(legacyType{parquet.Int64Type, deprecated.TimestampMillis}), stamps(ms), "datetime",
			[]string{"2024-03-15T13:45:30.123Z", "", "1969-12-31T23:59:59.5Z"}},
		"legacy_us": {parquet.Leaf(legacyType{parquet.Int64Type, deprecated.TimestampMicros}), stamps(us), "datetime",
			[]string{"2024-03-15T13:45:30.123456Z", "", "1969-12-31T23:59:59.5Z"}},
		"legacy_date": {parquet.Leaf(legacyType{parquet.Int32Type, deprecated.Date}), []any{day, nil, int32(-1)}, "date", []string{"2024-03-15", "", "1969-12-31"}},
		"time_ms":     {parquet.Time(parquet.Millisecond), []any{int32(ofDay / ms), nil, int32(0)}, "str", []string{"13:45:30.123", "", "00:00:00"}},
		"time_us":     {parquet.Time(parquet.Microsecond), []any{ofDay / us, nil, int64(0)}, "str", []string{"13:45:30.123456", "", "00:00:00"}},
		"time_ns":     {parquet.Time(parquet.Nanosecond), []any{ofDay, nil, int64(0)}, "str", []string{"13:45:30.123456789", "", "00:00:00"}},
		"count":       {parquet.Int(64), []any{int64(7), nil, int64(-1)}, "int", []string{"7", "", "-1"}},
	}
	checkParquetColumns(t, cases)
}

// damagedParquet writes a copy of the Parquet sample with one byte of its
// page index changed (the audit's reproduction): parquet-go panics on it
// with a slice out of range instead of returning an error.
func damagedParquet(t *testing.T, at int, to byte) string {
	t.Helper()
	b, err := os.ReadFile(sample("pbmc_small_obs.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	b[at] = to
	p := filepath.Join(t.TempDir(), "damaged.parquet")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// A panic of the Parquet library is ErrCorrupt, from every reader, so
// save stores the file as a plain file and curate says what is wrong
// (byte 5557, in the footer: an integer divide by zero). So is a column
// whose metadata names an encoding that does not exist (byte 6072, 16 →
// 17): it reads, but curate --standardize failed writing it back with the
// writer's "encoding not supported for type BYTE_ARRAY".
func TestDamagedParquetIsCorrupt(t *testing.T) {
	for _, tc := range []struct {
		at int
		to byte
	}{{5557, 0x7f}, {6072, 17}} {
		t.Run(fmt.Sprintf("byte%d", tc.at), func(t *testing.T) {
			p := damagedParquet(t, tc.at, tc.to)
			if tc.at != 6072 {
				if _, err := dataset.Describe(p); !errors.Is(err, dataset.ErrCorrupt) || !strings.Contains(err.Error(), p) {
					t.Errorf("Describe: %v; want ErrCorrupt naming the file", err)
				}
				if _, err := dataset.Tables(p); !errors.Is(err, dataset.ErrCorrupt) {
					t.Errorf("Tables: %v", err)
				}
			}
			if err := dataset.RewriteParquet(p, io.Discard, nil); !errors.Is(err, dataset.ErrCorrupt) {
				t.Errorf("RewriteParquet: %v", err)
			}
		})
	}
	// A full disk is the disk's error, not the file's.
	if err := dataset.RewriteParquet(sample("pbmc_small_obs.parquet"), fullDisk{}, nil); !errors.Is(err, errFull) || errors.Is(err, dataset.ErrCorrupt) {
		t.Errorf("RewriteParquet to a full disk: %v", err)
	}
}

// A damaged footer length (the 4 bytes before the closing PAR1) made
// parquet-go allocate what it claims, up to 4 GiB, before reading it:
// describing such a file on save took gigabytes. It is truncation now.
func TestParquetFooterLength(t *testing.T) {
	full, err := os.ReadFile(sample("pbmc_small_obs.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	for _, top := range []byte{0xff, 0x7f, 0x10} {
		b := append([]byte(nil), full...)
		b[len(b)-5] = top
		p := filepath.Join(t.TempDir(), "footer.parquet")
		os.WriteFile(p, b, 0o644)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := dataset.Describe(p)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, dataset.ErrCorrupt) || !strings.Contains(err.Error(), "the footer says the file's metadata takes") {
			t.Errorf("length %#x…: %v; want ErrCorrupt naming the footer", top, err)
		}
		if d := after.TotalAlloc - before.TotalAlloc; d > 16<<20 {
			t.Errorf("length %#x…: allocated %d MiB", top, d>>20)
		}
	}
}

// The page index (column and offset indexes) is an optional accelerator
// a whole-table read does not need: damaged (bytes 6357 and 6361, on which
// parquet-go panicked; 5424, an offset index) it is not read, and the
// table reads as the intact file does. A damaged data page offset in the
// footer (byte 5912) reads too, page by page; rewriting either crashed the
// process (parquet-go's row reader handed out values pointing outside any
// buffer: a fault, which no recover catches). Both rewrite to the table
// they hold.
func TestDamagedParquetIndexes(t *testing.T) {
	intact, err := dataset.Tables(sample("pbmc_small_obs.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		at int
		to byte
	}{{6361, 93}, {6357, 76}, {5424, 0x7f}, {5912, 0x7f}} {
		t.Run(fmt.Sprintf("byte%d", tc.at), func(t *testing.T) {
			p := damagedParquet(t, tc.at, tc.to)
			if _, err := dataset.Describe(p); err != nil {
				t.Fatalf("Describe: %v", err)
			}
			ts, err := dataset.Tables(p)
			if err != nil || !reflect.DeepEqual(ts, intact) {
				t.Fatalf("Tables: %v; differs from the intact file's: %v", err, !reflect.DeepEqual(ts, intact))
			}
			if ts, err := rewrittenTables(t, p); err != nil || !reflect.DeepEqual(ts, intact) {
				t.Fatalf("the rewritten file: %v; differs: %v", err, !reflect.DeepEqual(ts, intact))
			}
		})
	}
}

var errFull = errors.New("no space left on device")

type fullDisk struct{}

func (fullDisk) Write([]byte) (int, error) { return 0, errFull }

// twos is n as big-endian two's complement in size bytes, as a DECIMAL's
// BYTE_ARRAY or FIXED_LEN_BYTE_ARRAY holds it.
func twos(n *big.Int, size int) []byte {
	x := new(big.Int).Set(n)
	if x.Sign() < 0 {
		x.Add(x, new(big.Int).Lsh(big.NewInt(1), uint(8*size)))
	}
	return x.FillBytes(make([]byte, size))
}

func bigInt(s string) *big.Int {
	n, ok := new(big.Int).SetString(s, 10)
	if !ok {
		panic(s)
	}
	return n
}

// Parquet DECIMAL columns of each physical type read as their exact
// decimal text (a float, or an int at scale 0), and unsigned integers as
// unsigned: UINT_64 beyond 2^63 and UINT_32 beyond 2^31 were read as
// negative ints, a DECIMAL as its unscaled integer or its raw bytes. A
// UUID reads as its canonical text, not its 16 raw bytes.
func TestParquetDecimalAndUnsigned(t *testing.T) {
	const p53 = int64(1) << 53
	cases := map[string]parquetCase{
		"dec_int32":   {parquet.Decimal(2, 9, parquet.Int32Type), []any{int32(-150), nil, int32(5)}, "float", []string{"-1.50", "", "0.05"}},
		"dec_int64":   {parquet.Decimal(3, 18, parquet.Int64Type), []any{-(p53 + 1), nil, int64(7)}, "float", []string{"-9007199254740.993", "", "0.007"}},
		"dec_int64_0": {parquet.Decimal(0, 18, parquet.Int64Type), []any{p53, nil, p53 + 1}, "int", []string{"9007199254740992", "", "9007199254740993"}},
		"dec_fixed": {parquet.Decimal(4, 38, parquet.FixedLenByteArrayType(16)),
			[]any{twos(bigInt("-1000000000000000000000000000007"), 16), nil, twos(bigInt("123456789012345678901234567890"), 16)},
			"float", []string{"-100000000000000000000000000.0007", "", "12345678901234567890123456.7890"}},
		"dec_bytes": {parquet.Decimal(0, 30, parquet.ByteArrayType),
			[]any{twos(bigInt("-18446744073709551617"), 9), nil, twos(bigInt("9007199254740993"), 7)},
			"int", []string{"-18446744073709551617", "", "9007199254740993"}},
		"uint64":        {parquet.Uint(64), []any{uint64(1<<64 - 1), nil, uint64(p53 + 1)}, "int", []string{"18446744073709551615", "", "9007199254740993"}},
		"legacy_uint64": {parquet.Leaf(legacyType{parquet.Int64Type, deprecated.Uint64}), []any{int64(-2), nil, int64(0)}, "int", []string{"18446744073709551614", "", "0"}},
		"uint32":        {parquet.Uint(32), []any{uint32(1<<32 - 1), nil, uint32(1 << 31)}, "int", []string{"4294967295", "", "2147483648"}},
		"uint16":        {parquet.Uint(16), []any{uint16(1<<16 - 1), nil, uint16(0)}, "int", []string{"65535", "", "0"}},
		"uint8":         {parquet.Uint(8), []any{uint8(255), nil, uint8(1)}, "int", []string{"255", "", "1"}},
		"int64":         {parquet.Int(64), []any{p53, nil, p53 + 1}, "int", []string{"9007199254740992", "", "9007199254740993"}},
		"uuid": {parquet.UUID(), []any{[]byte{0x12, 0x3e, 0x45, 0x67, 0xe8, 0x9b, 0x12, 0xd3, 0xa4, 0x56, 0x42, 0x66, 0x14, 0x17, 0x40, 0}, nil, make([]byte, 16)},
			"str", []string{"123e4567-e89b-12d3-a456-426614174000", "", "00000000-0000-0000-0000-000000000000"}},
	}
	checkParquetColumns(t, cases)
}

// writeZarrArray writes a 1-D uncompressed zarr v2 array of dtype (numpy
// spelling) holding raw at dir.
func writeZarrArray(t *testing.T, dir, dtype string, n int, raw []byte) {
	t.Helper()
	meta := fmt.Sprintf(`{"chunks":[%d],"compressor":null,"dtype":%q,"fill_value":0,"filters":null,"order":"C","shape":[%d],"zarr_format":2}`, n, dtype, n)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, ".zarray"), []byte(meta), 0o644)
	os.WriteFile(filepath.Join(dir, "0"), raw, 0o644)
}

// Integer ids stay exact through every reader: 2^53 and 2^53+1, which a
// float64 reads as one number, and uint64 ids beyond 2^63, which a CSV
// read as floats (so neighbours collapsed into 1.8446744073709552e+19)
// and an AnnData zarr (the HDF5 decoder it shares) as negative int64s.
func TestIntegerKeysExact(t *testing.T) {
	dir := t.TempDir()
	ids := []string{"9007199254740992", "9007199254740993"}
	huge := []string{"18446744073709551615", "18446744073709551614", "", "9223372036854775808"}

	csvPath := filepath.Join(dir, "ids.csv")
	os.WriteFile(csvPath, []byte("id,big\n"+ids[0]+","+huge[0]+"\n"+ids[1]+","+huge[1]+"\n9007199254740993,\n7,+9223372036854775808\n"), 0o644)
	info, err := dataset.Describe(csvPath)
	if err != nil {
		t.Fatal(err)
	}
	if info.Columns[0].Dtype != "int" || info.Columns[1].Dtype != "int" {
		t.Errorf("Describe: %+v, want two int columns", info.Columns)
	}
	ts, err := dataset.Tables(csvPath)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := ts[0].Col("id")
	b, _ := ts[0].Col("big")
	if got := id.Values(); id.Dtype != "int" || !reflect.DeepEqual(got, []string{ids[0], ids[1], ids[1], "7"}) {
		t.Errorf("csv id: %s %q", id.Dtype, got)
	}
	if got := b.Values(); b.Dtype != "int" || !reflect.DeepEqual(got, huge) || !b.IsNull(2) {
		t.Errorf("csv big: %s %q null=%v, want int %q", b.Dtype, got, b.Null, huge)
	}

	store := filepath.Join(dir, "ids.zarr")
	os.MkdirAll(filepath.Join(store, "obs"), 0o755)
	os.WriteFile(filepath.Join(store, ".zgroup"), []byte(`{"zarr_format":2}`), 0o644)
	os.WriteFile(filepath.Join(store, ".zattrs"), []byte(`{"encoding-type":"anndata","encoding-version":"0.1.0"}`), 0o644)
	os.WriteFile(filepath.Join(store, "obs", ".zgroup"), []byte(`{"zarr_format":2}`), 0o644)
	os.WriteFile(filepath.Join(store, "obs", ".zattrs"), []byte(`{"_index":"_index","column-order":["donor"],"encoding-type":"dataframe","encoding-version":"0.2.0"}`), 0o644)
	le := func(xs ...uint64) []byte {
		var out []byte
		for _, x := range xs {
			out = binary.LittleEndian.AppendUint64(out, x)
		}
		return out
	}
	writeZarrArray(t, filepath.Join(store, "obs", "_index"), "<i8", 2, le(1<<53, 1<<53+1))
	writeZarrArray(t, filepath.Join(store, "obs", "donor"), "<u8", 2, le(1<<64-1, 1<<64-2))
	ts, err = dataset.Tables(store)
	if err != nil {
		t.Fatal(err)
	}
	ix, _ := ts[0].Col("_index")
	donor, _ := ts[0].Col("donor")
	if got := ix.Values(); ix.Dtype != "int" || !reflect.DeepEqual(got, ids) {
		t.Errorf("zarr obs index: %s %q, want %q", ix.Dtype, got, ids)
	}
	if got := donor.Values(); donor.Dtype != "int" || !reflect.DeepEqual(got, huge[:2]) {
		t.Errorf("zarr obs donor: %s %q, want %q", donor.Dtype, got, huge[:2])
	}
	if info, err := dataset.Describe(store); err != nil || info.NObservations != 2 || info.Columns[0].Dtype != "int" {
		t.Errorf("Describe zarr: %+v %v", info, err)
	}
}

// zarrStore writes an AnnData zarr store whose obs has the index _index
// (two int64 ids) and the column col, and returns its path.
func zarrStore(t *testing.T, dir string) string {
	t.Helper()
	store := filepath.Join(dir, "s.zarr")
	os.MkdirAll(filepath.Join(store, "obs"), 0o755)
	os.WriteFile(filepath.Join(store, ".zgroup"), []byte(`{"zarr_format":2}`), 0o644)
	os.WriteFile(filepath.Join(store, ".zattrs"), []byte(`{"encoding-type":"anndata","encoding-version":"0.1.0"}`), 0o644)
	os.WriteFile(filepath.Join(store, "obs", ".zgroup"), []byte(`{"zarr_format":2}`), 0o644)
	os.WriteFile(filepath.Join(store, "obs", ".zattrs"), []byte(`{"_index":"_index","column-order":["col"],"encoding-type":"dataframe","encoding-version":"0.2.0"}`), 0o644)
	writeZarrArray(t, filepath.Join(store, "obs", "_index"), "<i8", 2, make([]byte, 16))
	return store
}

// A damaged .zarray (a shape or chunk size of billions) or chunk (a zlib
// bomb) of an AnnData zarr column is refused or read without allocating
// what it claims: save, curate and inspect died with "fatal error: out of
// memory" (not a panic: nothing recovers), or allocated gigabytes.
func TestZarrDamagedSizes(t *testing.T) {
	var bomb bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&bomb, zlib.BestSpeed)
	zero := make([]byte, 1<<20)
	for range 64 { // 64 MiB of zeros
		zw.Write(zero)
	}
	zw.Close()
	for _, tc := range []struct {
		name, meta string
		chunk      []byte // file "0"; nil: none
		want       string // "" for no error
	}{
		{"strings", `{"chunks":[2],"compressor":null,"dtype":"|O","shape":[2000000000],"zarr_format":2}`, nil, "has 2000000000 values, not 2"},
		{"strings-missing", `{"chunks":[1],"compressor":null,"dtype":"|O","shape":[2],"zarr_format":2}`, nil, "chunk 0 is missing"},
		{"ints", `{"chunks":[2],"compressor":null,"dtype":"<i8","shape":[4000000000],"zarr_format":2}`, nil, "has 4000000000 values, not 2"},
		{"long", `{"chunks":[2],"compressor":null,"dtype":"<i8","shape":[100000000],"zarr_format":2}`, nil, "has 100000000 values, not 2"},
		{"chunk", `{"chunks":[8000000000],"compressor":null,"dtype":"<i8","shape":[2],"zarr_format":2}`, nil, ""},
		{"huge-chunk", `{"chunks":[4611686018427387904],"compressor":null,"dtype":"<i8","shape":[2],"zarr_format":2}`, make([]byte, 16), ""},
		{"negative", `{"chunks":[2],"compressor":null,"dtype":"<i8","shape":[-2],"zarr_format":2}`, nil, "has -2 values, not 2"},
		{"zero-size", `{"chunks":[2],"compressor":null,"dtype":"<i0","shape":[2],"zarr_format":2}`, nil, "dtype \"<i0\" is not supported"},
		{"short", `{"chunks":[2],"compressor":null,"dtype":"<i8","shape":[2],"zarr_format":2}`, make([]byte, 9), "chunk 0 is short"},
		{"bomb", `{"chunks":[2],"compressor":{"id":"zlib"},"dtype":"<i8","shape":[2],"zarr_format":2}`, bomb.Bytes(), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := zarrStore(t, t.TempDir())
			col := filepath.Join(store, "obs", "col")
			os.MkdirAll(col, 0o755)
			os.WriteFile(filepath.Join(col, ".zarray"), []byte(tc.meta), 0o644)
			if tc.chunk != nil {
				os.WriteFile(filepath.Join(col, "0"), tc.chunk, 0o644)
			}
			// Describe reads a column for its dtype only when its length
			// is the index's; Tables checks every length first.
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, derr := dataset.Describe(store)
			ts, err := dataset.Tables(store)
			runtime.ReadMemStats(&after)
			if d := after.TotalAlloc - before.TotalAlloc; d > 16<<20 {
				t.Errorf("allocated %d MiB", d>>20)
			}
			if derr != nil && !errors.Is(derr, dataset.ErrCorrupt) {
				t.Errorf("Describe: %v", derr)
			}
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if c, _ := ts[0].Col("col"); !reflect.DeepEqual(c.Values(), []string{"0", "0"}) {
					t.Fatalf("col = %q", c.Values())
				}
				return
			}
			if !errors.Is(err, dataset.ErrCorrupt) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Tables: %v; want ErrCorrupt with %q", err, tc.want)
			}
		})
	}
}

// A damaged length of an h5ad column (byte 55352: the dataspace of the
// int8 codes of obs development_stage, 315 → 2130706747) had Tables read
// 2 GiB and decode it to 17 GiB of int64s before finding the length
// differs from the index's; Describe is bounded as well.
func TestH5adDamagedLength(t *testing.T) {
	b, err := os.ReadFile(sample("pbmc_small.h5ad"))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []byte{0x7f, 0x10} {
		b[55352] = v
		p := filepath.Join(t.TempDir(), "damaged.h5ad")
		os.WriteFile(p, b, 0o644)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, derr := dataset.Describe(p)
		_, err := dataset.Tables(p)
		runtime.ReadMemStats(&after)
		if d := after.TotalAlloc - before.TotalAlloc; d > 16<<20 {
			t.Errorf("%#x: allocated %d MiB", v, d>>20)
		}
		if derr != nil && !errors.Is(derr, dataset.ErrCorrupt) {
			t.Errorf("%#x: Describe: %v", v, derr)
		}
		if !errors.Is(err, dataset.ErrCorrupt) || !strings.Contains(err.Error(), "obs column development_stage has") {
			t.Errorf("%#x: Tables: %v", v, err)
		}
	}
}

// parquetCase is a column of three values, the second null, written with
// node and read back as dtype and want.
type parquetCase struct {
	node  parquet.Node
	vals  []any
	dtype string
	want  []string
}

// checkParquetColumns writes cases as one Parquet file and checks what
// Describe and Tables make of each column.
func checkParquetColumns(t *testing.T, cases map[string]parquetCase) {
	t.Helper()
	cols := map[string]fixtureColumn{}
	for name, tc := range cases {
		cols[name] = fixtureColumn{tc.node, tc.vals}
	}
	path := writeParquet(t, t.TempDir(), cols)
	info, err := dataset.Describe(path)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := dataset.Tables(path)
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if i := slices.IndexFunc(info.Columns, func(c dataset.Column) bool { return c.Name == name }); i < 0 || info.Columns[i].Dtype != tc.dtype {
				t.Errorf("Describe: %+v, want a column of dtype %s", info.Columns, tc.dtype)
			}
			c, ok := ts[0].Col(name)
			if !ok || c.Dtype != tc.dtype || c.Len() != 3 || !reflect.DeepEqual(c.Values(), tc.want) || !c.IsNull(1) || c.IsNull(0) {
				t.Fatalf("Tables: %s %q null=%v, want %s %q with the second null", c.Dtype, c.Values(), c.Null, tc.dtype, tc.want)
			}
		})
	}
}

// rewrittenTables rewrites the Parquet file src unchanged into a new file
// and reads that back.
func rewrittenTables(t *testing.T, src string) ([]dataset.Table, error) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "rewritten.parquet")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	err = dataset.RewriteParquet(src, f, nil)
	f.Close()
	if err != nil {
		t.Fatalf("RewriteParquet: %v", err)
	}
	return dataset.Tables(out)
}

// pageSizeDamaged writes a copy of pbmc_small_obs.parquet in which the
// first page header of column col claims 2147483632 bytes, compressed or
// uncompressed. The header keeps its length, so every offset after it
// holds: the 5-byte varint of the big size takes the room of the CRC's
// (a compressed size swaps values with the CRC, which goes unchecked) or
// of the statistics' max value (an uncompressed size keeps the CRC, so
// parquet-go reads the page).
func pageSizeDamaged(t *testing.T, col string, uncompressed bool) string {
	t.Helper()
	b, err := os.ReadFile(sample("pbmc_small_obs.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(sample("pbmc_small_obs.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pf, err := parquet.OpenFile(f, int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	var m *format.ColumnMetaData
	for i, c := range pf.Metadata().RowGroups[0].Columns {
		if strings.Join(c.MetaData.PathInSchema, ".") == col {
			m = &pf.Metadata().RowGroups[0].Columns[i].MetaData
		}
	}
	at := m.DataPageOffset
	if m.DictionaryPageOffset > 0 {
		at = m.DictionaryPageOffset
	}
	var h format.PageHeader
	r := new(thrift.CompactProtocol).NewReaderFromBytes(b[at:])
	if err := thrift.NewDecoder(r).Decode(&h); err != nil {
		t.Fatal(err)
	}
	n := r.(interface{ BytesRead() int }).BytesRead()
	if uncompressed {
		h.UncompressedPageSize = 0x7ffffff0
		max := h.DataPageHeaderV2.V.Statistics.MaxValue
		h.DataPageHeaderV2.V.Statistics.MaxValue = max[:len(max)-3]
	} else {
		h.CompressedPageSize, h.CRC = 0x7ffffff0, h.CompressedPageSize
	}
	damaged, err := thrift.Marshal(new(thrift.CompactProtocol), &h)
	if err != nil || len(damaged) != n {
		t.Fatalf("re-encoded header: %d bytes, %v; want %d", len(damaged), err, n)
	}
	copy(b[at:], damaged)
	p := filepath.Join(t.TempDir(), "page.parquet")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// A damaged page size (a data page's or a dictionary page's, compressed
// or not) had parquet-go allocate what it claims, 2 GiB, before it read
// the page (and failed on its end, "unexpected EOF", or read it when the
// uncompressed size was damaged): the header is held to the column
// chunk's bytes first.
func TestParquetPageSize(t *testing.T) {
	for _, tc := range []struct {
		col          string
		uncompressed bool
		want         string
	}{
		{"cell_id", false, "column cell_id: page 0: damaged header: it says the page takes 2147483632 bytes, and the column chunk has 1291 left"},
		{"cell_type", false, "column cell_type: page 0: damaged header: it says the page takes 2147483632 bytes, and the column chunk has 469 left"},
		{"cell_id", true, "column cell_id: page 0: damaged header: it says the page takes 2147483632 bytes uncompressed, and the whole column chunk 2968"},
	} {
		t.Run(fmt.Sprintf("%s_uncompressed=%v", tc.col, tc.uncompressed), func(t *testing.T) {
			p := pageSizeDamaged(t, tc.col, tc.uncompressed)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := dataset.Tables(p)
			rerr := dataset.RewriteParquet(p, io.Discard, nil)
			runtime.ReadMemStats(&after)
			if !errors.Is(err, dataset.ErrCorrupt) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Tables: %v; want ErrCorrupt with %q", err, tc.want)
			}
			if !errors.Is(rerr, dataset.ErrCorrupt) || !strings.Contains(rerr.Error(), tc.want) {
				t.Errorf("RewriteParquet: %v; want ErrCorrupt with %q", rerr, tc.want)
			}
			if d := after.TotalAlloc - before.TotalAlloc; d > 16<<20 {
				t.Errorf("allocated %d MiB", d>>20)
			}
		})
	}
}

// A damaged length of an h5ad categorical's categories (bytes 39413 to
// 39420: the dataspace of obs cell_type's categories, 15) had Tables
// decode every value its storage lacks as an empty category: 117 million
// of them, 3.5 GiB, for 0x0700000f. Shorter, or a code damaged itself
// (byte 9490 of the cellxgene sample: the first int8 code of
// assay_ontology_term_id, of 1 category), the codes past the categories
// read as missing values. Each is ErrCorrupt naming the column.
func TestH5adDamagedCategories(t *testing.T) {
	for _, tc := range []struct {
		file string
		at   int
		to   byte
		want string
	}{
		{"pbmc_small.h5ad", 39416, 0x07, "categorical cell_type says it has 117440527 categories and stores 15 (a damaged length, or a missing chunk)"},
		{"pbmc_small.h5ad", 39413, 0x05, "categorical cell_type has code 6 at row 2, and 5 categories"},
		{"cellxgene_example_valid.h5ad", 9490, 0x05, "categorical assay_ontology_term_id has code 5 at row 0, and 1 categories"},
	} {
		t.Run(fmt.Sprintf("%s_byte%d", tc.file, tc.at), func(t *testing.T) {
			b, err := os.ReadFile(sample(tc.file))
			if err != nil {
				t.Fatal(err)
			}
			b[tc.at] = tc.to
			p := filepath.Join(t.TempDir(), "damaged.h5ad")
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err = dataset.Tables(p)
			runtime.ReadMemStats(&after)
			if !errors.Is(err, dataset.ErrCorrupt) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Tables: %v; want ErrCorrupt with %q", err, tc.want)
			}
			if d := after.TotalAlloc - before.TotalAlloc; d > 16<<20 {
				t.Errorf("allocated %d MiB", d>>20)
			}
		})
	}
}

// RewriteText keeps a CRLF file's record endings (they became LF) and a
// line break inside a quoted cell LF, as Excel writes it (it became CR LF,
// changing a cell no mapping touched); an LF file stays LF.
func TestRewriteTextLineEndings(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ in, want string }{
		{"\"ce\r\nll\",note\r\nT-cell,\"a\r\nb\"\r\nB-cell,c\r\n", "\"ce\nll\",note\r\nt-cell,\"a\nb\"\r\nb-cell,c\r\n"},
		{"cell,note\r\nT-cell,\"a\nb\"\r\n", "cell,note\r\nt-cell,\"a\nb\"\r\n"},
		{"cell,note\nT-cell,\"a\nb\"\n", "cell,note\nt-cell,\"a\nb\"\n"},
	} {
		path := filepath.Join(dir, "t.csv")
		os.WriteFile(path, []byte(tc.in), 0o644)
		var out strings.Builder
		lower := map[string]func(string) string{"ce\nll": strings.ToLower, "cell": strings.ToLower}
		if err := dataset.RewriteText(path, dataset.CSV, &out, lower); err != nil {
			t.Fatal(err)
		}
		if out.String() != tc.want {
			t.Errorf("RewriteText(%q) = %q, want %q", tc.in, out.String(), tc.want)
		}
	}
}

// nullable.h5ad and nullable.zarr (testdata/make_nullable.py): pandas
// Int64, boolean and string columns with a missing value each, groups of
// values and mask, are read as int, bool and str columns with missing
// values; they were read as categoricals ("obs/n: /obs/n has no member
// \"codes\"": nothing of the file could be curated). A group of an
// encoding-type not read (awkward-array) is described as such and left
// out of the table, with the error a schema naming it gets.
func TestNullableColumns(t *testing.T) {
	for _, p := range []string{"testdata/nullable.h5ad", "testdata/nullable.zarr"} {
		t.Run(filepath.Ext(p), func(t *testing.T) {
			info, err := dataset.Describe(p)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, c := range info.Columns {
				got = append(got, c.Slot+"."+c.Name+" "+c.Dtype)
			}
			want := []string{"obs.cell_type cat", "obs.tissue cat", "obs.n int", "obs.f bool", "obs.s str", "obs.u ?awkward-array"}
			if !slices.Equal(got, want) || info.NObservations != 2 {
				t.Errorf("Describe: %d rows, %q; want 2, %q", info.NObservations, got, want)
			}
			ts, err := dataset.Tables(p)
			if err != nil {
				t.Fatal(err)
			}
			obs := ts[0]
			for name, want := range map[string][]string{
				"cell_type": {"T cell", "B cell"}, "n": {"1", ""}, "f": {"true", ""}, "s": {"x", ""},
			} {
				c, ok := obs.Col(name)
				if !ok {
					t.Fatalf("no column %s", name)
				}
				if got := c.Values(); !slices.Equal(got, want) || !c.IsNull(1) && name != "cell_type" {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
			if c, _ := obs.Col("n"); c.Dtype != "int" {
				t.Errorf("n is %s", c.Dtype)
			}
			if c, _ := obs.Col("f"); c.Dtype != "bool" {
				t.Errorf("f is %s", c.Dtype)
			}
			if _, ok := obs.Col("u"); ok || obs.Unread["u"] != "awkward-array" {
				t.Errorf("u: in the table %v, unread %q", ok, obs.Unread)
			}
			if err := obs.UnreadErr("u"); !errors.Is(err, dataset.ErrCorrupt) || !strings.Contains(err.Error(), `obs column u is stored with encoding-type "awkward-array"`) {
				t.Errorf("UnreadErr(u) = %v", err)
			}
			if err := obs.UnreadErr("n"); err != nil {
				t.Errorf("UnreadErr(n) = %v", err)
			}
		})
	}
}

// copyTree copies the folder src to dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A damaged .zattrs or .zgroup of a group inside an AnnData zarr store
// is an error naming it; the error was dropped, and the file read as if
// it had no attributes (obs's column order falling back to the listing's).
// A .zattrs left out is no attributes.
func TestZarrDamagedNestedMeta(t *testing.T) {
	for _, tc := range []struct{ file, content string }{
		{"obs/.zattrs", ""},
		{"obs/.zattrs", `{"_index": "_index", "column-order": ["cell_`},
		{"obs/cell_type/.zattrs", ""},
		{"obs/cell_type/.zattrs", `{"encoding-type": "categ`},
		{"obs/.zgroup", ""},
		{"obs/cell_type/.zgroup", `{"zarr_form`},
		{".zgroup", " "},
	} {
		t.Run(tc.file, func(t *testing.T) {
			store := filepath.Join(t.TempDir(), "x.zarr")
			copyTree(t, sample("pbmc_small.zarr"), store)
			p := filepath.Join(store, filepath.FromSlash(tc.file))
			if err := os.WriteFile(p, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			_, derr := dataset.Describe(store)
			_, terr := dataset.Tables(store)
			for _, err := range []error{derr, terr} {
				if !errors.Is(err, dataset.ErrCorrupt) || !strings.Contains(err.Error(), p) {
					t.Errorf("%v; want ErrCorrupt naming %s", err, p)
				}
			}
		})
	}
	t.Run("no .zattrs", func(t *testing.T) {
		store := filepath.Join(t.TempDir(), "x.zarr")
		copyTree(t, sample("pbmc_small.zarr"), store)
		if err := os.Remove(filepath.Join(store, "obs", "cell_type", ".zattrs")); err != nil {
			t.Fatal(err)
		}
		ts, err := dataset.Tables(store)
		if err != nil {
			t.Fatal(err)
		}
		if c, _ := ts[0].Col("cell_type"); c == nil || c.Dtype != "cat" {
			t.Errorf("cell_type: %+v", c)
		}
	})
}

// A column compressed with a codec or filter the reader does not decode
// (Blosc zstd or bitshuffle in a zarr, LZF in an h5ad) is unread, not the
// file: it made Tables fail ("codec 4 is not supported", "filter 32000 is
// not supported") whatever column was asked for, and Describe gave it
// dtype "?" with no reason.
func TestColumnOfUnknownCodecUnread(t *testing.T) {
	dir := t.TempDir()
	zarrWith := func(name string, flags func(byte) byte) string {
		p := filepath.Join(dir, name+".zarr")
		copyTree(t, sample("pbmc_small.zarr"), p)
		chunk := filepath.Join(p, "obs", "n_genes", "0")
		b, err := os.ReadFile(chunk)
		if err != nil {
			t.Fatal(err)
		}
		b[2] = flags(b[2]) // the Blosc header's flags
		if err := os.WriteFile(chunk, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	lzf, err := dataset.SetH5Filter(sample("pbmc_small.h5ad"), "obs", "n_genes", 32000)
	if err != nil {
		t.Fatal(err)
	}
	h5 := filepath.Join(dir, "lzf.h5ad")
	if err := os.WriteFile(h5, lzf, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, codec, why string }{
		{zarrWith("zstd", func(f byte) byte { return f&0x1f | 4<<5 }), "blosc-zstd", "compressed with Blosc zstd"},
		{zarrWith("bitshuffle", func(f byte) byte { return f | 0x04 }), "blosc-bitshuffle", "compressed with Blosc bitshuffle"},
		{h5, "lzf", "compressed with LZF (HDF5 filter 32000)"},
	} {
		t.Run(tc.codec, func(t *testing.T) {
			ts, err := dataset.Tables(tc.path)
			if err != nil {
				t.Fatal(err)
			}
			obs := ts[0]
			if c, ok := obs.Col("cell_type"); !ok || c.Len() != 315 {
				t.Errorf("cell_type: %v", ok)
			}
			if _, ok := obs.Col("n_genes"); ok || obs.Unread["n_genes"] != "codec:"+tc.codec {
				t.Errorf("n_genes: in the table %v, unread %q", ok, obs.Unread)
			}
			if err := obs.UnreadErr("n_genes"); !errors.Is(err, dataset.ErrCorrupt) || !strings.Contains(err.Error(), "obs column n_genes is "+tc.why+", which lamina does not read") {
				t.Errorf("UnreadErr(n_genes) = %v", err)
			}
			info, err := dataset.Describe(tc.path)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range info.Columns {
				if c.Name == "n_genes" && (c.Dtype != "?codec:"+tc.codec || dataset.UnreadReason(c.Dtype) != tc.why) {
					t.Errorf("Describe: n_genes is %q (%q)", c.Dtype, dataset.UnreadReason(c.Dtype))
				}
			}
		})
	}
	if got := dataset.UnreadReason("?awkward-array"); got != `stored with encoding-type "awkward-array"` {
		t.Errorf("UnreadReason(?awkward-array) = %q", got)
	}
}

// A truncated Parquet file is said to be one, with its size, as a
// truncated h5ad or FCS is: the errors were parquet-go's (`invalid magic
// footer of parquet file: "\x00PAR"`, "readat t.parquet: negative
// offset").
func TestTruncatedParquet(t *testing.T) {
	b, err := os.ReadFile(sample("pbmc_small_obs.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, n := range []int{0, 3, 7, 11, 100, len(b) / 2, len(b) - 1} {
		p := filepath.Join(dir, fmt.Sprintf("t%d.parquet", n))
		if err := os.WriteFile(p, b[:n], 0o644); err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("the file is truncated or not Parquet (%d bytes)", n)
		if _, err := dataset.Tables(p); !errors.Is(err, dataset.ErrCorrupt) || !strings.Contains(err.Error(), want) {
			t.Errorf("Tables of %d bytes: %v", n, err)
		}
		if _, err := dataset.Describe(p); !errors.Is(err, dataset.ErrCorrupt) || !strings.Contains(err.Error(), want) {
			t.Errorf("Describe of %d bytes: %v", n, err)
		}
	}
}

// A zarr chunk with no file reads as the fill value, as zarr writes no
// chunk all fill value; a chunk lost in a copy reads so too (every cell
// of pbmc_small the first category, "B cell", valid), and the table says
// which chunk and which value (Table.Warnings). The fill value is
// .zarray's: it was 0 whatever that said.
func TestZarrMissingChunkWarned(t *testing.T) {
	p := filepath.Join(t.TempDir(), "pbmc.zarr")
	copyTree(t, sample("pbmc_small.zarr"), p)
	if err := os.Remove(filepath.Join(p, "obs", "cell_type", "codes", "0")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(p, "obs", "n_genes", "0")); err != nil {
		t.Fatal(err)
	}
	meta := filepath.Join(p, "obs", "n_genes", ".zarray")
	b, err := os.ReadFile(meta)
	if err != nil {
		t.Fatal(err)
	}
	b = bytes.Replace(b, []byte(`"fill_value": 0`), []byte(`"fill_value": 7`), 1)
	if err := os.WriteFile(meta, b, 0o644); err != nil {
		t.Fatal(err)
	}
	ts, err := dataset.Tables(p)
	if err != nil {
		t.Fatal(err)
	}
	obs := ts[0]
	want := map[string]string{
		"cell_type": "obs/cell_type/codes: chunk 0 is missing (no file obs/cell_type/codes/0): read as the fill value 0",
		"n_genes":   "obs/n_genes: chunk 0 is missing (no file obs/n_genes/0): read as the fill value 7",
	}
	if len(obs.Warnings) != len(want) {
		t.Errorf("warnings %q", obs.Warnings)
	}
	for name, w := range want {
		if got := obs.Warnings[name]; len(got) != 1 || got[0] != w {
			t.Errorf("warnings of %s: %q, want %q", name, got, w)
		}
	}
	if c, _ := obs.Col("n_genes"); c == nil || c.Text(0) != "7" || c.Text(314) != "7" {
		t.Errorf("n_genes does not read as the fill value 7")
	}
	if c, _ := obs.Col("cell_type"); c == nil || c.Text(0) != c.Categories[0] {
		t.Errorf("cell_type does not read as the first category")
	}
	full, err := dataset.Tables(sample("pbmc_small.zarr"))
	if err != nil || len(full[0].Warnings) != 0 || len(full[1].Warnings) != 0 {
		t.Errorf("pbmc_small.zarr: %v, warnings %q %q", err, full[0].Warnings, full[1].Warnings)
	}
}
