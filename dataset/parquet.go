package dataset

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/deprecated"
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
	pf, err := parquet.OpenFile(f, st.Size())
	if err != nil {
		f.Close()
		return nil, nil, corruptf("%v", err)
	}
	return pf, f, nil
}

func parquetDtype(k parquet.Kind) string {
	switch k {
	case parquet.Boolean:
		return "bool"
	case parquet.Int32, parquet.Int64:
		return "int"
	case parquet.Float, parquet.Double:
		return "float"
	case parquet.Int96: // only ever a timestamp (Spark, Impala, Hive)
		return "datetime"
	}
	return "str"
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
		info.Columns = append(info.Columns, Column{Name: strings.Join(p, "."), Dtype: parquetDtype(leaf.Node.Type().Kind())})
	}
	return info, nil
}

func readParquet(path string) (Table, error) {
	pf, f, err := openParquet(path)
	if err != nil {
		return Table{}, err
	}
	defer f.Close()
	schema := pf.Schema()
	paths := schema.Columns()
	t := Table{NRows: int(pf.NumRows())}
	t.Columns = make([]Series, len(paths))
	for i, p := range paths {
		leaf, _ := schema.Lookup(p...)
		if leaf.MaxRepetitionLevel > 0 {
			return Table{}, fmt.Errorf("%w: column %s is repeated; only flat tables are read", ErrFormat, strings.Join(p, "."))
		}
		t.Columns[i] = Series{Name: strings.Join(p, "."), Dtype: parquetDtype(leaf.Node.Type().Kind())}
	}
	buf := make([]parquet.Value, 1024)
	for _, rg := range pf.RowGroups() {
		for i, cc := range rg.ColumnChunks() {
			s := &t.Columns[i]
			pages := cc.Pages()
			for {
				page, err := pages.ReadPage()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					pages.Close()
					return Table{}, corruptf("column %s: %v", s.Name, err)
				}
				vr := page.Values()
				for {
					n, err := vr.ReadValues(buf)
					for _, v := range buf[:n] {
						appendValue(s, v)
					}
					if errors.Is(err, io.EOF) {
						break
					}
					if err != nil {
						pages.Close()
						return Table{}, corruptf("column %s: %v", s.Name, err)
					}
				}
				parquet.Release(page)
			}
			pages.Close()
		}
	}
	for i := range t.Columns {
		if t.Columns[i].Len() != t.NRows {
			return Table{}, corruptf("column %s has %d values, not %d", t.Columns[i].Name, t.Columns[i].Len(), t.NRows)
		}
	}
	return t, nil
}

func appendValue(s *Series, v parquet.Value) {
	null := v.IsNull()
	if null {
		if s.Null == nil {
			s.Null = make([]bool, s.Len(), s.Len()+1)
		}
	}
	if s.Null != nil {
		s.Null = append(s.Null, null)
	}
	switch s.Dtype {
	case "bool":
		s.Bools = append(s.Bools, !null && v.Boolean())
	case "int":
		var x int64
		if !null {
			x = v.Int64()
			if v.Kind() == parquet.Int32 {
				x = int64(v.Int32())
			}
		}
		s.Ints = append(s.Ints, x)
	case "float":
		var x float64
		if !null {
			x = v.Double()
			if v.Kind() == parquet.Float {
				x = float64(v.Float())
			}
		}
		s.Floats = append(s.Floats, x)
	case "datetime":
		x := ""
		if !null {
			x = int96Time(v.Int96()).Format(time.RFC3339Nano)
		}
		s.Strings = append(s.Strings, x)
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

// RewriteParquet copies the Parquet file at src to w with its schema,
// passing every non-null value of the named string columns through mapFn.
func RewriteParquet(src string, w io.Writer, mapFn map[string]func(string) string) error {
	pf, f, err := openParquet(src)
	if err != nil {
		return err
	}
	defer f.Close()
	fns := map[int]func(string) string{}
	for i, p := range pf.Schema().Columns() {
		if fn := mapFn[strings.Join(p, ".")]; fn != nil {
			fns[i] = fn
		}
	}
	pw := parquet.NewWriter(w, pf.Schema())
	rows := make([]parquet.Row, 256)
	for _, rg := range pf.RowGroups() {
		rr := rg.Rows()
		for {
			n, err := rr.ReadRows(rows)
			for _, row := range rows[:n] {
				for k, v := range row {
					fn := fns[v.Column()]
					if fn == nil || v.IsNull() || v.Kind() != parquet.ByteArray {
						continue
					}
					row[k] = parquet.ValueOf(fn(string(v.ByteArray()))).Level(v.RepetitionLevel(), v.DefinitionLevel(), v.Column())
				}
			}
			if n > 0 {
				if _, werr := pw.WriteRows(rows[:n]); werr != nil {
					rr.Close()
					return werr
				}
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				rr.Close()
				return corruptf("%v", err)
			}
		}
		rr.Close()
	}
	return pw.Close()
}
