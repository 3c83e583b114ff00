package curate_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/curate"
	"github.com/lamina-bio/lamina/dataset"
	"github.com/lamina-bio/lamina/ontology"
	"github.com/parquet-go/parquet-go"
)

const data = "../../shared/data"

var (
	clOnce sync.Once
	cl     *ontology.Index
	clErr  error
)

func celltypes(t *testing.T) func(string) (*ontology.Index, error) {
	clOnce.Do(func() {
		src, err := ontology.Import(context.Background(), filepath.Join(data, "ontologies", "cl-basic.obo"), ontology.ImportOptions{Entity: "celltype"})
		if err != nil {
			clErr = err
			return
		}
		cl, clErr = ontology.Build(src)
	})
	if clErr != nil {
		t.Fatal(clErr)
	}
	return func(e string) (*ontology.Index, error) {
		if e != "celltype" {
			return nil, fmt.Errorf("no %s ontology in this test", e)
		}
		return cl, nil
	}
}

func tables(t *testing.T, name string) []dataset.Table {
	t.Helper()
	ts, err := dataset.Tables(filepath.Join(data, "samples", name))
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

var schema = curate.Schema{Name: "pbmc", Fields: []curate.Field{
	{Name: "cell_type", Dtype: "cat[celltype]"},
	{Name: "donor_id", Dtype: "cat[ULabel]"},
	{Name: "n_genes", Dtype: "int"},
	{Name: "n_counts", Dtype: "float"},
	{Name: "batch", Dtype: "int", Optional: true},
}}

func TestValidateAnnData(t *testing.T) {
	labels := []string{"D01", "D02", "D03", "D04", "D05", "D06", "d07"}
	for _, file := range []string{"pbmc_small.h5ad", "pbmc_small.zarr", "pbmc_small_obs.csv", "pbmc_small_obs.parquet"} {
		t.Run(file, func(t *testing.T) {
			r, err := curate.Validate(tables(t, file), "", schema, curate.Options{Ontology: celltypes(t), Labels: labels})
			if err != nil {
				t.Fatal(err)
			}
			if r.OK() || r.OKAfterStandardize() || r.Rows != 315 {
				t.Fatalf("ok=%v after=%v rows=%d", r.OK(), r.OKAfterStandardize(), r.Rows)
			}
			ct := r.Columns[0]
			failed := map[string]curate.Value{}
			for _, f := range ct.Failed {
				failed[f.Value] = f
			}
			// pbmc_small.expected.tsv: typos and non-terms fail, with counts.
			if f := failed["dendritc cell"]; f.Count != 6 || len(f.Suggestions) == 0 || !strings.HasPrefix(f.Suggestions[0], "dendritic cell (CL:0000451)") {
				t.Fatalf("dendritc cell: %+v", f)
			}
			if f := failed["doublet"]; f.Count != 5 {
				t.Fatalf("doublet: %+v", f)
			}
			mapped := map[string]string{}
			for _, m := range ct.Mapped {
				mapped[m.Value] = m.Standard
			}
			want := map[string]string{"B lymphocyte": "B cell", "NK cell": "natural killer cell", "T-cell": "T cell",
				"Monocyte ": "monocyte", "cd8-positive, alpha-beta t cell": "CD8-positive, alpha-beta T cell"}
			if !reflect.DeepEqual(mapped, want) {
				t.Fatalf("mapped = %v", mapped)
			}
			if ct.Valid != 264 {
				t.Fatalf("valid = %d", ct.Valid)
			}
			ids := map[string]int{}
			for _, tm := range ct.Terms {
				ids[tm.ID] = tm.Count
			}
			if ids["CL:0000624"] != 70 || ids["CL:0000236"] != 50 || ids["CL:0000084"] != 10 {
				t.Fatalf("terms = %v", ids)
			}
			// Labels: D07 is "d07" in the catalog (case), the rest exact.
			dn := r.Columns[1]
			if len(dn.Failed) != 0 || len(dn.Mapped) != 1 || dn.Mapped[0].Standard != "d07" {
				t.Fatalf("donor_id: %+v", dn)
			}
			if len(r.Columns) != 4 || len(r.Missing) != 0 {
				t.Fatalf("columns %d, missing %v", len(r.Columns), r.Missing)
			}
			var out bytes.Buffer
			curate.WriteReport(&out, r, false)
			for _, s := range []string{`failed "dendritc cell" (6)`, `did you mean "dendritic cell (CL:0000451)"`, `--standardize would map "T-cell" (10) → "T cell"`, "not valid"} {
				if !strings.Contains(out.String(), s) {
					t.Fatalf("report lacks %q:\n%s", s, out.String())
				}
			}
		})
	}
}

func TestTypesAndSchemaOptions(t *testing.T) {
	s := curate.Schema{Name: "s", NoExtra: true, Fields: []curate.Field{
		{Name: "n_counts", Dtype: "int"}, // floats like 225.0 are integers; fine
		{Name: "cell_id", Dtype: "int"},  // text is not
		{Name: "sex", Dtype: "bool"},
		{Name: "required_missing", Dtype: "str"},
	}}
	r, err := curate.Validate(tables(t, "pbmc_small_obs.csv"), dataset.CSV, s, curate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Columns[0].Failed) != 0 || len(r.Columns[1].Failed) != 315 || r.Columns[1].Failed[0].Reason != "not an integer" {
		t.Fatalf("types: %+v", r.Columns[:2])
	}
	if len(r.Columns[2].Failed) != 2 || !reflect.DeepEqual(r.Missing, []string{"required_missing"}) {
		t.Fatalf("bool/missing: %+v %v", r.Columns[2], r.Missing)
	}
	if !r.ExtraErr || len(r.Extra) != 8 {
		t.Fatalf("extra columns: %v", r.Extra)
	}
}

// A required column that is missing is named with the columns close to
// it, or with a short header; a repeated one is ambiguous, not checked.
func TestColumnHints(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, header string
		fields       []string
		near         map[string][]string
		ambiguous    []string
		report       []string // lines the report has
		not          string   // text it has not
	}{
		{"case and typo", "Cell_Type,tisue,n", []string{"cell_type", "tissue"},
			map[string][]string{"cell_type": {"Cell_Type"}, "tissue": {"tisue"}}, nil,
			[]string{`✗ cell_type: required column is missing; did you mean "Cell_Type"?`, `✗ tissue: required column is missing; did you mean "tisue"?`},
			"the table's columns"},
		{"separators", "cell type,n", []string{"cell_type"}, map[string][]string{"cell_type": {"cell type"}}, nil, nil, ""},
		{"not near", "age,n", []string{"sex"}, nil, nil,
			[]string{"✗ sex: required column is missing", `    the table's columns: "age", "n"`}, "did you mean"},
		{"another feature is not near", "cell_type,n", []string{"cell_type", "celltype"}, nil, nil, nil, "did you mean"},
		{"repeated", "disease,disease,n", []string{"disease"}, nil, []string{"disease"},
			[]string{"✗ disease: more than one column has this name; rename or remove all but one"}, "missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".csv")
			n := strings.Count(tc.header, ",") + 1
			row := strings.TrimSuffix(strings.Repeat("x,", n), ",")
			if err := os.WriteFile(path, []byte(tc.header+"\n"+row+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			s := curate.Schema{Name: "s"}
			for _, f := range tc.fields {
				s.Fields = append(s.Fields, curate.Field{Name: f, Dtype: "str"})
			}
			ts, err := dataset.Tables(path)
			if err != nil {
				t.Fatal(err)
			}
			r, err := curate.Validate(ts, dataset.CSV, s, curate.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(r.Near, tc.near) || !reflect.DeepEqual(r.Ambiguous, tc.ambiguous) || r.OKAfterStandardize() {
				t.Fatalf("near %v, ambiguous %v, ok %v", r.Near, r.Ambiguous, r.OKAfterStandardize())
			}
			var out bytes.Buffer
			curate.WriteReport(&out, r, false)
			for _, l := range tc.report {
				if !strings.Contains(out.String(), l+"\n") {
					t.Errorf("report lacks %q:\n%s", l, out.String())
				}
			}
			if tc.not != "" && strings.Contains(out.String(), tc.not) {
				t.Errorf("report has %q:\n%s", tc.not, out.String())
			}
		})
	}
}

// A column name outside the schema that the header repeats is listed once,
// marked as repeated.
func TestExtraColumns(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.csv")
	if err := os.WriteFile(path, []byte("n,batch,x,batch,batch\n1,a,b,c,d\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ts, err := dataset.Tables(path)
	if err != nil {
		t.Fatal(err)
	}
	s := curate.Schema{Name: "s", NoExtra: true, Fields: []curate.Field{{Name: "n", Dtype: "int"}}}
	r, err := curate.Validate(ts, dataset.CSV, s, curate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(r.Extra, []string{"batch", "x"}) || !reflect.DeepEqual(r.ExtraRepeated, []string{"batch"}) || r.OK() {
		t.Fatalf("extra %q, repeated %q, ok %v", r.Extra, r.ExtraRepeated, r.OK())
	}
	var out bytes.Buffer
	curate.WriteReport(&out, r, false)
	if want := "✗ columns not in the schema: batch (repeated), x\n"; !strings.Contains(out.String(), want) {
		t.Fatalf("report lacks %q:\n%s", want, out.String())
	}
}

// A Parquet INT96 timestamp validates as a datetime.
func TestParquetTimestamp(t *testing.T) {
	s := curate.Schema{Name: "ts", Fields: []curate.Field{{Name: "timestamp_col", Dtype: "datetime"}, {Name: "date_string_col", Dtype: "str"}}}
	r, err := curate.Validate(tables(t, "parquet-testing_alltypes_plain.parquet"), dataset.Parquet, s, curate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK() || r.Columns[0].Valid != 8 {
		t.Fatalf("ok=%v %+v", r.OK(), r.Columns[0])
	}
}

// pandasRow is a row of a table as pandas writes it to Parquet: a naive
// datetime64[ns] (not adjusted to UTC), a tz-aware one (adjusted) and a
// date, each possibly missing.
type pandasRow struct {
	Collected    *int64 `parquet:"collected,optional,timestamp(nanosecond:local)"`
	CollectedUTC *int64 `parquet:"collected_utc,optional,timestamp(microsecond:utc)"`
	Visit        *int32 `parquet:"visit,optional,date"`
}

// Parquet's INT64 TIMESTAMP and INT32 DATE columns, as pandas writes them,
// validate as datetime and date features; a missing value is empty.
func TestParquetLogicalTimes(t *testing.T) {
	at := time.Date(2024, 3, 15, 13, 45, 30, 0, time.UTC)
	ns, us, day := at.UnixNano(), at.UnixMicro(), int32(at.Unix()/86400)
	ts := parquetTables(t, []pandasRow{{&ns, &us, &day}, {}, {&ns, &us, &day}})
	s := curate.Schema{Name: "visits", NoExtra: true, Fields: []curate.Field{
		{Name: "collected", Dtype: "datetime"}, {Name: "collected_utc", Dtype: "datetime"}, {Name: "visit", Dtype: "date"}}}
	r, err := curate.Validate(ts, dataset.Parquet, s, curate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	curate.WriteReport(&out, r, false)
	if !r.OK() || len(r.Columns) != 3 {
		t.Fatalf("not valid:\n%s", out.String())
	}
	for _, c := range r.Columns {
		if c.Valid != 2 || c.Missing != 1 {
			t.Errorf("%s: %d valid, %d missing; want 2 and 1:\n%s", c.Feature, c.Valid, c.Missing, out.String())
		}
	}
}

// Ids with stray white space (cellxgene *_ontology_term_id columns) map
// to the id, not to the term's name; so do alt_ids and obsolete ids.
func TestStandardizeIDColumn(t *testing.T) {
	in := filepath.Join(t.TempDir(), "ids.csv")
	csv := "cell_type_ontology_term_id\nCL:0000084\n\" CL:0000084\"\n\"CL:0000236 \"\n\" CL:0000804\"\nCL:0000375\n\" CL:9999999\"\n"
	if err := os.WriteFile(in, []byte(csv), 0o644); err != nil {
		t.Fatal(err)
	}
	s := curate.Schema{Name: "ids", Fields: []curate.Field{{Name: "cell_type_ontology_term_id", Dtype: "cat[celltype]"}}}
	ts, err := dataset.Tables(in)
	if err != nil {
		t.Fatal(err)
	}
	r, err := curate.Validate(ts, dataset.CSV, s, curate.Options{Ontology: celltypes(t)})
	if err != nil {
		t.Fatal(err)
	}
	c := r.Columns[0]
	mapped := map[string]string{}
	for _, m := range c.Mapped {
		mapped[m.Value] = m.Standard
	}
	want := map[string]string{" CL:0000084": "CL:0000084", "CL:0000236 ": "CL:0000236", " CL:0000804": "CL:0000084", "CL:0000375": "CL:0007010"}
	if c.Valid != 1 || !reflect.DeepEqual(mapped, want) || len(c.Failed) != 1 || c.Failed[0].Value != " CL:9999999" {
		t.Fatalf("valid %d, mapped %v, failed %+v", c.Valid, mapped, c.Failed)
	}
	if !slices.Equal(c.Standard, []string{"CL:0000084", "CL:0000236", "CL:0007010"}) {
		t.Fatalf("standard values %v", c.Standard)
	}
}

// Standardizing a table that only fails on mappable values makes it valid.
func TestStandardizeCSVAndParquet(t *testing.T) {
	dir := t.TempDir()
	s := curate.Schema{Name: "ct", Fields: []curate.Field{{Name: "cell_type", Dtype: "cat[celltype]"}}}
	// Drop the rows whose cell type nothing can fix.
	raw, _ := os.ReadFile(filepath.Join(data, "samples", "pbmc_small_obs.csv"))
	var keep []string
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		if !strings.Contains(line, ",dendritc cell,") && !strings.Contains(line, ",doublet,") {
			keep = append(keep, line)
		}
	}
	in := filepath.Join(dir, "in.csv")
	os.WriteFile(in, []byte(strings.Join(keep, "\n")+"\n"), 0o644)
	ts, _ := dataset.Tables(in)
	r, err := curate.Validate(ts, dataset.CSV, s, curate.Options{Ontology: celltypes(t)})
	if err != nil {
		t.Fatal(err)
	}
	if r.OK() || !r.OKAfterStandardize() {
		t.Fatalf("ok=%v after=%v", r.OK(), r.OKAfterStandardize())
	}
	for _, kind := range []string{dataset.CSV, dataset.Parquet} {
		src := in
		if kind == dataset.Parquet {
			src = filepath.Join(data, "samples", "pbmc_small_obs.parquet")
		}
		out := filepath.Join(dir, "out."+kind)
		f, _ := os.Create(out)
		if err := curate.WriteStandardized(src, kind, r, f); err != nil {
			t.Fatal(err)
		}
		f.Close()
		ts2, err := dataset.Tables(out)
		if err != nil {
			t.Fatal(err)
		}
		r2, _ := curate.Validate(ts2, kind, s, curate.Options{Ontology: celltypes(t)})
		if len(r2.Columns[0].Mapped) != 0 {
			t.Fatalf("%s: still mapped after standardizing: %+v", kind, r2.Columns[0].Mapped)
		}
		if kind == dataset.CSV && !r2.OK() {
			t.Fatalf("standardized CSV does not validate")
		}
	}
	var m bytes.Buffer
	r.WriteMapping(&m)
	if !strings.Contains(m.String(), "cell_type\tT-cell\tT cell\t") {
		t.Fatalf("mapping:\n%s", m.String())
	}
	if err := curate.WriteStandardized(filepath.Join(data, "samples", "pbmc_small.h5ad"), dataset.H5AD, r, &m); err == nil {
		t.Fatal("h5ad rewritten")
	}
}

// numbersRow is a row of a table with a DECIMAL price, a wide DECIMAL
// count and a uint64 id, as Spark and pyarrow write them.
type numbersRow struct {
	Price *int32  `parquet:"price,optional,decimal(2:9)"`
	Count *int64  `parquet:"count,optional,decimal(0:18)"`
	ID    *uint64 `parquet:"id,optional"`
}

// A DECIMAL column validates as a float feature (its scale-0 form as an
// int), and each value is the number it means, not its unscaled integer:
// 2^53 and 2^53+1 stay two values. A uint64 id beyond the int64 range
// fails an int feature saying so: it was read as a negative int, valid.
func TestParquetDecimalAndUint64(t *testing.T) {
	p := func(x int32) *int32 { return &x }
	c := func(x int64) *int64 { return &x }
	u := func(x uint64) *uint64 { return &x }
	rows := []numbersRow{
		{p(-150), c(1 << 53), u(1<<64 - 1)},
		{nil, c(1<<53 + 1), u(1<<64 - 2)},
		{p(5), c(1<<53 + 1), u(7)},
	}
	ts := parquetTables(t, rows)
	s := curate.Schema{Name: "numbers", NoExtra: true, Fields: []curate.Field{
		{Name: "price", Dtype: "float"}, {Name: "count", Dtype: "int"}, {Name: "id", Dtype: "int"}}}
	r, err := curate.Validate(ts, dataset.Parquet, s, curate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	curate.WriteReport(&out, r, false)
	price, count, id := r.Columns[0], r.Columns[1], r.Columns[2]
	if price.Valid != 2 || price.Missing != 1 || len(price.Failed) != 0 || count.Valid != 3 || len(count.Failed) != 0 {
		t.Fatalf("price or count not valid:\n%s", out.String())
	}
	const reason = "an integer out of the int range (-9223372036854775808 to 9223372036854775807)"
	want := []curate.Value{{Value: "18446744073709551615", Count: 1, Reason: reason}, {Value: "18446744073709551614", Count: 1, Reason: reason}}
	if id.Valid != 1 || !reflect.DeepEqual(id.Failed, want) {
		t.Fatalf("id: %d valid, failed %+v; want 1 and %+v:\n%s", id.Valid, id.Failed, want, out.String())
	}
	col, _ := ts[0].Col("price")
	cnt, _ := ts[0].Col("count")
	if got := append(col.Values(), cnt.Values()...); !reflect.DeepEqual(got, []string{"-1.50", "", "0.05", "9007199254740992", "9007199254740993", "9007199254740993"}) {
		t.Fatalf("values %q", got)
	}
}

// parquetTables writes rows as a Parquet file (columns from T's fields)
// and reads it back as tables.
func parquetTables[T any](t *testing.T, rows []T) []dataset.Table {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rows.parquet")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := parquet.NewGenericWriter[T](f)
	if _, err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	ts, err := dataset.Tables(path)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// Numbers, booleans and dates with white space around them fit their
// dtype, as `lamina annotate` and --where take them (" 7 " is 7), and so
// does an int written as a float; a fraction is no int.
func TestTypesTrimLikeAnnotate(t *testing.T) {
	in := filepath.Join(t.TempDir(), "in.csv")
	os.WriteFile(in, []byte("batch,score,ok,day\n\" 7 \",\" 7.5 \",\" true \",\" 2026-01-05 \"\n3.0,NaN,false,2026-01-05T10:00\n2.5,x,maybe,soon\n"), 0o644)
	s := curate.Schema{Name: "s", Fields: []curate.Field{{Name: "batch", Dtype: "int"}, {Name: "score", Dtype: "float"},
		{Name: "ok", Dtype: "bool"}, {Name: "day", Dtype: "date"}}}
	ts, err := dataset.Tables(in)
	if err != nil {
		t.Fatal(err)
	}
	r, err := curate.Validate(ts, dataset.CSV, s, curate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range r.Columns {
		valid := 2
		if c.Feature == "score" {
			valid = 1 // NaN is missing
		}
		if c.Valid != valid || len(c.Failed) != 1 {
			t.Errorf("%s: %d valid, failed %+v; want %d valid and the last row failed", c.Feature, c.Valid, c.Failed, valid)
		}
	}
}

// A NaN in a number column is a missing value, as pandas reads it; inf
// and a float beyond float64 fail with annotate's reasons (the catalog
// cannot store them), where they passed.
func TestNaNMissingInfFails(t *testing.T) {
	in := filepath.Join(t.TempDir(), "in.csv")
	os.WriteFile(in, []byte("x,n\nNaN,1\nnan,NaN\ninf,2\n-Inf,3\nInfinity,4\n1e309,5\n2.5,6\n"), 0o644)
	s := curate.Schema{Name: "s", Fields: []curate.Field{{Name: "x", Dtype: "float"}, {Name: "n", Dtype: "int"}}}
	ts, err := dataset.Tables(in)
	if err != nil {
		t.Fatal(err)
	}
	r, err := curate.Validate(ts, dataset.CSV, s, curate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range r.Columns {
		failed := map[string]string{}
		for _, f := range c.Failed {
			failed[f.Value] = f.Reason
		}
		switch c.Feature {
		case "x":
			inf := "not a finite number (inf and nan cannot be stored)"
			want := map[string]string{"inf": inf, "-Inf": inf, "Infinity": inf, "1e309": "out of the range of a float"}
			if !reflect.DeepEqual(failed, want) || c.Missing != 2 || c.Valid != 1 {
				t.Errorf("x: %d valid, %d missing, failed %q", c.Valid, c.Missing, failed)
			}
		case "n":
			if len(failed) != 0 || c.Missing != 1 || c.Valid != 6 {
				t.Errorf("n: %d valid, %d missing, failed %q", c.Valid, c.Missing, failed)
			}
		}
	}
	if r.OK() {
		t.Error("a table with inf passed")
	}
}

// TestFailuresAsWritten: a failing number is quoted as the file has it
// (1e30, not 1e+30), so that it can be found there; 9223372036854775807.0
// is the largest int, not the float 9.223372036854776e+18 beyond it; Go
// literal syntax (1_000, 0x1p4), which pandas reads as text, fails.
func TestFailuresAsWritten(t *testing.T) {
	in := filepath.Join(t.TempDir(), "in.csv")
	os.WriteFile(in, []byte("n,m,x\n1e30,1_000,1_000.5\nInf,5,0x1p4\n2.50e0,5,2.5\n9223372036854775807.0,5,2.5\n3,5,2.5\n"), 0o644)
	s := curate.Schema{Name: "s", Fields: []curate.Field{{Name: "n", Dtype: "int"}, {Name: "m", Dtype: "int"}, {Name: "x", Dtype: "float"}}}
	ts, err := dataset.Tables(in)
	if err != nil {
		t.Fatal(err)
	}
	r, err := curate.Validate(ts, dataset.CSV, s, curate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"n": {"1e30", "Inf", "2.50e0"}, "m": {"1_000"}, "x": {"1_000.5", "0x1p4"}}
	for _, c := range r.Columns {
		var failed []string
		for _, f := range c.Failed {
			failed = append(failed, f.Value)
		}
		if !reflect.DeepEqual(failed, want[c.Feature]) || c.Valid != 5-len(failed) {
			t.Errorf("%s: %d valid, failed %q; want failed %q", c.Feature, c.Valid, failed, want[c.Feature])
		}
	}
	var out strings.Builder
	curate.WriteReport(&out, r, false)
	if !strings.Contains(out.String(), `failed "1e30" (1): an integer out of the int range`) {
		t.Errorf("report:\n%s", out.String())
	}
}

// A column of very many failing values: the report prints the MaxListed
// most frequent with suggestions and says how many more there are; the
// report keeps them all, without suggestions past MaxListed (70,000
// distinct failures took 17 s to suggest for, and printed 70,003 lines).
func TestManyFailures(t *testing.T) {
	const maxListed = 20 // curate.MaxListed
	var b strings.Builder
	b.WriteString("cell_type,donor\n")
	for i := range 500 {
		fmt.Fprintf(&b, "T cel%d,D%d\n", i, i)
	}
	b.WriteString("B cel,D0\nB cel,D0\n") // the most frequent failures
	in := filepath.Join(t.TempDir(), "in.csv")
	os.WriteFile(in, []byte(b.String()), 0o644)
	ts, err := dataset.Tables(in)
	if err != nil {
		t.Fatal(err)
	}
	s := curate.Schema{Name: "s", Fields: []curate.Field{{Name: "cell_type", Dtype: "cat[celltype]"}, {Name: "donor", Dtype: "cat[ULabel]"}}}
	r, err := curate.Validate(ts, dataset.CSV, s, curate.Options{Ontology: celltypes(t), Labels: []string{"D1"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range r.Columns {
		if len(c.Failed) < 499 || c.Failed[0].Count < 2 { // B cel twice, D0 three times
			t.Fatalf("%s: %d failed, first %+v", c.Feature, len(c.Failed), c.Failed[0])
		}
		for i, f := range c.Failed {
			if (i < maxListed) != (len(f.Suggestions) > 0) {
				t.Fatalf("%s: failure %d (%q) has suggestions %q", c.Feature, i, f.Value, f.Suggestions)
			}
		}
	}
	var out bytes.Buffer
	curate.WriteReport(&out, r, false)
	if n := strings.Count(out.String(), "\n"); n > 2*maxListed+6 {
		t.Fatalf("report of %d lines:\n%s", n, out.String())
	}
	for _, want := range []string{`failed "B cel" (2)`, "… and 481 more failed values (481 rows); --format json lists them all",
		`failed "D0" (3)`, "… and 479 more failed values (479 rows)"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("report lacks %q:\n%s", want, out.String())
		}
	}
}

// An AnnData with pandas nullable columns (Int64, boolean) and a column of
// an encoding-type the reader does not know (dataset/testdata) validates
// on any schema that leaves that column out (it was "obs/n: /obs/n has no
// member \"codes\"" whatever the schema); a schema naming it is an error
// naming its encoding-type.
func TestNullableAndUnreadColumns(t *testing.T) {
	ts, err := dataset.Tables("../dataset/testdata/nullable.h5ad")
	if err != nil {
		t.Fatal(err)
	}
	s := curate.Schema{Name: "s", NoExtra: true, Fields: []curate.Field{{Name: "n", Dtype: "int"}, {Name: "f", Dtype: "bool"}}}
	r, err := curate.Validate(ts, dataset.H5AD, s, curate.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.Extra, []string{"cell_type", "tissue", "s", "u"}) {
		t.Errorf("extra %q", r.Extra)
	}
	for _, c := range r.Columns {
		if c.Valid != 1 || c.Missing != 1 {
			t.Errorf("%s: %d valid, %d missing; want 1, 1", c.Feature, c.Valid, c.Missing)
		}
	}
	s.Fields = append(s.Fields, curate.Field{Name: "u", Dtype: "str"})
	if _, err := curate.Validate(ts, dataset.H5AD, s, curate.Options{}); !errors.Is(err, dataset.ErrCorrupt) || !strings.Contains(err.Error(), `"awkward-array"`) {
		t.Errorf("a schema naming u: %v", err)
	}
}

var (
	uberonOnce sync.Once
	uberon     *ontology.Index
	uberonErr  error
)

// tissues is the cellxgene Uberon, where "NA" is an EXACT synonym of
// nasal artery (UBERON:2005085).
func tissues(t *testing.T) *ontology.Index {
	uberonOnce.Do(func() {
		src, err := ontology.Import(context.Background(), filepath.Join(data, "ontologies", "cellxgene-json", "UBERON-ontology-v2026-04-01.json.gz"), ontology.ImportOptions{Entity: "tissue"})
		if err != nil {
			uberonErr = err
			return
		}
		uberon, uberonErr = ontology.Build(src)
	})
	if uberonErr != nil {
		t.Fatal(uberonErr)
	}
	return uberon
}

// TestPandasMissingValues: in a CSV or TSV, the cells pandas' read_csv
// reads as missing by default (R writes NA, pandas NaN or <NA>, Excel
// #N/A) are missing in every column, as LaminDB reads them: not "not an
// integer", not a label, and never standardized to a term ("NA" is an
// EXACT synonym of nasal artery in Uberon). " NA" and "na" are text, as
// in pandas. In a Parquet file a string "NA" is a value and a null is
// missing, as pandas reads them.
func TestPandasMissingValues(t *testing.T) {
	na := []string{"NA", "N/A", "n/a", "null", "NULL", "NaN", "-NaN", "nan", "-nan", "None", "<NA>", "#N/A", "#N/A N/A", "#NA", "1.#IND", "-1.#IND", "1.#QNAN", "-1.#QNAN", ""}
	s := curate.Schema{Name: "s", Fields: []curate.Field{
		{Name: "n", Dtype: "int"}, {Name: "x", Dtype: "float"}, {Name: "ok", Dtype: "bool"}, {Name: "when", Dtype: "date"},
		{Name: "cell_type", Dtype: "cat[celltype]"}, {Name: "tissue", Dtype: "cat[tissue]"}, {Name: "donor", Dtype: "cat[ULabel]"}, {Name: "note", Dtype: "str"}}}
	o := curate.Options{Labels: []string{"D1", "NA"}, Ontology: func(e string) (*ontology.Index, error) {
		if e == "tissue" {
			return tissues(t), nil
		}
		return celltypes(t)(e)
	}}
	for _, format := range []string{dataset.CSV, dataset.TSV} {
		t.Run(format, func(t *testing.T) {
			sep := ","
			if format == dataset.TSV {
				sep = "\t"
			}
			var b strings.Builder
			b.WriteString(strings.Join([]string{"n", "x", "ok", "when", "cell_type", "tissue", "donor", "note"}, sep) + "\n")
			for _, v := range na {
				b.WriteString(strings.Join([]string{v, v, v, v, v, v, v, v}, sep) + "\n")
			}
			b.WriteString(strings.Join([]string{"3", "2.5", "true", "2026-01-05", "T cell", "blood", "D1", "x"}, sep) + "\n")
			in := filepath.Join(t.TempDir(), "in."+format)
			if err := os.WriteFile(in, []byte(b.String()), 0o644); err != nil {
				t.Fatal(err)
			}
			ts, err := dataset.Tables(in)
			if err != nil {
				t.Fatal(err)
			}
			r, err := curate.Validate(ts, format, s, o)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			curate.WriteReport(&out, r, false)
			if !r.OK() {
				t.Fatalf("pandas' missing values failed:\n%s", out.String())
			}
			for _, c := range r.Columns {
				if c.Valid != 1 || c.Missing != len(na) || len(c.Mapped) != 0 || len(c.Failed) != 0 {
					t.Errorf("%s: %d valid, %d missing, mapped %+v, failed %+v; want 1 and %d", c.Feature, c.Valid, c.Missing, c.Mapped, c.Failed, len(na))
				}
				if slices.ContainsFunc(c.Terms, func(tm curate.Term) bool { return tm.ID == "UBERON:2005085" }) || slices.Contains(c.Standard, "NA") {
					t.Errorf("%s: a missing value recorded: terms %+v, values %q", c.Feature, c.Terms, c.Standard)
				}
			}
			if !strings.Contains(out.String(), fmt.Sprintf("1 of 1 values valid, %d missing", len(na))) {
				t.Errorf("report does not count them missing:\n%s", out.String())
			}
			col, _ := ts[0].Col("n")
			if col.Dtype != "int" {
				t.Errorf("1 and NA read as %s, want int", col.Dtype)
			}
		})
	}
	t.Run("spaced", func(t *testing.T) { // pandas: only the exact cell is missing
		in := filepath.Join(t.TempDir(), "in.csv")
		os.WriteFile(in, []byte("n,donor\n\" NA\",na\n1,D1\n"), 0o644)
		ts, err := dataset.Tables(in)
		if err != nil {
			t.Fatal(err)
		}
		r, err := curate.Validate(ts, dataset.CSV, curate.Schema{Name: "s", Fields: []curate.Field{{Name: "n", Dtype: "int"}, {Name: "donor", Dtype: "cat[ULabel]"}}}, o)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range r.Columns {
			if c.Missing != 0 || len(c.Failed)+len(c.Mapped) != 1 {
				t.Errorf("%s: %d missing, failed %+v, mapped %+v", c.Feature, c.Missing, c.Failed, c.Mapped)
			}
		}
	})
	t.Run("float NaN", func(t *testing.T) { // an h5ad's or a Parquet's: missing for any feature
		ts := parquetTables(t, []struct {
			Score float64 `parquet:"score"`
		}{{math.NaN()}, {2.5}})
		r, err := curate.Validate(ts, dataset.Parquet, curate.Schema{Name: "s", Fields: []curate.Field{{Name: "score", Dtype: "str"}}}, o)
		if err != nil {
			t.Fatal(err)
		}
		if c := r.Columns[0]; c.Valid != 1 || c.Missing != 1 || !slices.Equal(c.Standard, []string{"2.5"}) {
			t.Errorf("float NaN as str: %d valid, %d missing, values %q", c.Valid, c.Missing, c.Standard)
		}
	})
	t.Run("parquet", func(t *testing.T) {
		str := func(s string) *string { return &s }
		ts := parquetTables(t, []struct {
			Tissue *string `parquet:"tissue,optional"`
		}{{str("NA")}, {nil}, {str("blood")}})
		r, err := curate.Validate(ts, dataset.Parquet, curate.Schema{Name: "s", Fields: []curate.Field{{Name: "tissue", Dtype: "cat[tissue]"}}}, o)
		if err != nil {
			t.Fatal(err)
		}
		c := r.Columns[0]
		if c.Valid != 1 || c.Missing != 1 || len(c.Mapped) != 1 || c.Mapped[0].Value != "NA" || c.Mapped[0].Standard != "nasal artery" {
			t.Errorf("parquet: %d valid, %d missing, mapped %+v", c.Valid, c.Missing, c.Mapped)
		}
	})
}
