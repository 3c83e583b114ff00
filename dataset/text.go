package dataset

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"strconv"
	"strings"
	"unicode/utf8"
)

// bom is the UTF-8 byte order mark, which Excel writes at the start of a
// CSV it saves as UTF-8.
const bom = "\ufeff"

// skipBOM returns r past a leading byte order mark, and whether it had
// one: left in, the mark would be part of the first column's name.
func skipBOM(r io.Reader) (*bufio.Reader, bool) {
	br := bufio.NewReader(r)
	if b, _ := br.Peek(len(bom)); string(b) == bom {
		br.Discard(len(bom))
		return br, true
	}
	return br, false
}

// endsInCRLF reports whether the first record buffered in br (its first
// line break outside quotes, within 64 KiB) is CR LF.
func endsInCRLF(br *bufio.Reader) bool {
	b, _ := br.Peek(64 << 10)
	quoted := false
	for i, c := range b {
		switch {
		case c == '"':
			quoted = !quoted
		case c == '\n' && !quoted:
			return i > 0 && b[i-1] == '\r'
		}
	}
	return false
}

// NewTextReader reads the CSV, or TSV by format, in r, past a leading byte
// order mark, so that every reader of a table's text (describe, curate,
// ontology inspect) names its columns the same. It reuses its record
// slice (csv.Reader.ReuseRecord).
func NewTextReader(r io.Reader, format string) *csv.Reader {
	br, _ := skipBOM(r)
	return newTextReader(br, format)
}

func newTextReader(r io.Reader, format string) *csv.Reader {
	cr := csv.NewReader(r)
	if format == TSV {
		cr.Comma = '\t'
		cr.LazyQuotes = true
	}
	cr.ReuseRecord = true
	return cr
}

// naText are the cells pandas' read_csv reads as missing by default
// (its STR_NA_VALUES, pandas 2; keep_default_na), besides the empty cell:
// R writes NA, pandas NaN or <NA>, Excel #N/A. LaminDB reads a CSV or TSV
// with pandas, so these are missing values here too, in every column:
// counted as missing, never checked as a number, label or term (Uberon
// has "NA" as an EXACT synonym of nasal artery, org.Hs.eg.db as an alias
// of XK). As in pandas, the cell must be exactly so: " NA" and "na" are
// text.
var naText = map[string]bool{
	"#N/A": true, "#N/A N/A": true, "#NA": true, "-1.#IND": true, "-1.#QNAN": true,
	"-NaN": true, "-nan": true, "1.#IND": true, "1.#QNAN": true, "<NA>": true,
	"N/A": true, "NA": true, "NULL": true, "NaN": true, "None": true,
	"n/a": true, "nan": true, "null": true,
}

// MissingText reports whether a cell of a CSV or TSV file is a missing
// value: empty, or one of pandas' default NA spellings (NA, NaN, N/A,
// null, None, <NA>, #N/A, …). Only text tables: a Parquet or AnnData
// string "NA" is a value, as pandas reads it.
func MissingText(v string) bool { return v == "" || naText[v] }

// typeState infers a text column's dtype: the narrowest of int, float,
// bool and str that every cell not missing (MissingText) fits: 1, NA, 3
// is an int column with a missing value. An integer beyond int64 (a
// uint64 id) keeps the column an int (big: read as Series.Exact): as a
// float, neighbouring ids would read the same.
type typeState struct{ notInt, notFloat, notBool, seen, big bool }

func (s *typeState) add(v string) {
	if MissingText(v) {
		return
	}
	s.seen = true
	if !s.notInt {
		if _, err := strconv.ParseInt(v, 10, 64); errors.Is(err, strconv.ErrRange) {
			s.big = true
		} else if err != nil {
			s.notInt = true
		}
	}
	if !s.notFloat {
		// 1_000 and 0x1p4 are Go's syntax, which pandas reads as text.
		if _, err := strconv.ParseFloat(v, 64); err != nil || goSyntax(v) {
			s.notFloat = true
		}
	}
	if !s.notBool {
		switch v {
		case "true", "false", "True", "False", "TRUE", "FALSE":
		default:
			s.notBool = true
		}
	}
}

func (s *typeState) dtype() string {
	switch {
	case !s.seen:
		return "str"
	case !s.notInt:
		return "int"
	case !s.notFloat:
		return "float"
	case !s.notBool:
		return "bool"
	}
	return "str"
}

// CheckUTF8 returns an error (ErrCorrupt) naming the line and column of
// the first byte of rec, the record cr just read, that is not UTF-8: a
// Latin-1 "Müller cell" read as "M\xfcller cell" was "no term with this
// name", and JSON showed U+FFFD. As the OBO import says it.
func CheckUTF8(cr *csv.Reader, rec []string) error {
	for i, v := range rec {
		if utf8.ValidString(v) {
			continue
		}
		if line, col := cr.FieldPos(i); line == 1 && col == 1 {
			if err := utf16Err([]byte(v)); err != nil {
				return err
			}
		}
		at := 0
		for at < len(v) {
			r, size := utf8.DecodeRuneInString(v[at:])
			if r == utf8.RuneError && size == 1 {
				break
			}
			at += size
		}
		line, col := cr.FieldPos(i)
		return corruptf("line %d: not UTF-8 (byte %#x at column %d): convert the file to UTF-8 first (iconv -f latin1 -t utf-8, say)", line, v[at], col+at)
	}
	return nil
}

func textErr(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return corruptf("line %d: %v", pe.Line, pe.Err)
	}
	return err
}

// errNoHeader: a table of no rows still has its header line; a file
// without one (empty, or blank lines only) is no table.
var errNoHeader = corruptf("the file is empty: a table has at least its header line")

// errBinary: a table file is text.
var errBinary = corruptf("binary content, not text")

// utf16Err refuses a file that starts with a UTF-16 byte-order mark
// (Excel's "Unicode text"): Latin-1 is the wrong guess for it, and its
// NUL bytes would call it binary.
func utf16Err(head []byte) error {
	if len(head) < 2 {
		return nil
	}
	if (head[0] == 0xff && head[1] == 0xfe) || (head[0] == 0xfe && head[1] == 0xff) {
		return corruptf("the file is UTF-16 (byte-order mark %#x %#x), not UTF-8: convert it to UTF-8 first (iconv -f utf-16 -t utf-8, say)", head[0], head[1])
	}
	return nil
}

func describeText(path, format string) (Info, error) {
	f, err := os.Open(path)
	if err != nil {
		return Info{}, err
	}
	defer f.Close()
	// A binary file (an h5ad saved under a .csv key) is no table: text
	// has no NUL byte.
	var sniff [8 << 10]byte
	k, _ := io.ReadFull(f, sniff[:])
	if err := utf16Err(sniff[:k]); err != nil {
		return Info{}, err
	}
	if bytes.IndexByte(sniff[:k], 0) >= 0 {
		return Info{}, errBinary
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return Info{}, err
	}
	cr := NewTextReader(f, format)
	head, err := cr.Read()
	if err == io.EOF {
		return Info{}, errNoHeader
	}
	if err != nil {
		return Info{}, textErr(err)
	}
	names := append([]string(nil), head...)
	types := make([]typeState, len(names))
	var n int64
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return Info{}, textErr(err)
		}
		for i, v := range rec {
			types[i].add(v)
		}
		n++
	}
	info := Info{OType: "DataFrame", NObservations: n, Shape: []int64{n, int64(len(names))}}
	for i, name := range names {
		info.Columns = append(info.Columns, Column{Name: name, Dtype: types[i].dtype()})
	}
	return info, nil
}

func readText(path, format string) (Table, error) {
	f, err := os.Open(path)
	if err != nil {
		return Table{}, err
	}
	defer f.Close()
	cr := NewTextReader(f, format)
	cr.ReuseRecord = false
	head, err := cr.Read()
	if err == io.EOF {
		return Table{}, errNoHeader
	}
	if err != nil {
		return Table{}, textErr(err)
	}
	if err := CheckUTF8(cr, head); err != nil {
		return Table{}, err
	}
	cols := make([][]string, len(head))
	types := make([]typeState, len(head))
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return Table{}, textErr(err)
		}
		if err := CheckUTF8(cr, rec); err != nil {
			return Table{}, err
		}
		for i, v := range rec {
			cols[i] = append(cols[i], v)
			types[i].add(v)
		}
	}
	t := Table{}
	for i, name := range head {
		s := Series{Name: name, Dtype: types[i].dtype()}
		vals := cols[i]
		t.NRows = len(vals)
		var null []bool
		mark := func(k int) {
			if null == nil {
				null = make([]bool, len(vals))
			}
			null[k] = true
		}
		switch s.Dtype {
		case "int":
			if types[i].big {
				s.Exact = make([]string, len(vals))
			} else {
				s.Ints = make([]int64, len(vals))
			}
			for k, v := range vals {
				if MissingText(v) {
					mark(k)
					continue
				}
				if s.Exact != nil {
					n, _ := new(big.Int).SetString(v, 10)
					s.Exact[k] = n.String() // 007 and +7 read as 7, as ParseInt reads them
					continue
				}
				s.Ints[k], _ = strconv.ParseInt(v, 10, 64)
			}
		case "float":
			s.Floats = make([]float64, len(vals))
			for k, v := range vals {
				if MissingText(v) {
					mark(k)
					continue
				}
				s.Floats[k], _ = strconv.ParseFloat(v, 64)
			}
		case "bool":
			s.Bools = make([]bool, len(vals))
			for k, v := range vals {
				if MissingText(v) {
					mark(k)
					continue
				}
				s.Bools[k] = strings.EqualFold(v, "true")
			}
		default:
			s.Strings = vals
			for k, v := range vals {
				if MissingText(v) {
					mark(k)
				}
			}
		}
		s.Null = null
		if s.Dtype == "int" || s.Dtype == "float" {
			s.Written = written(&s, vals)
		}
		t.Columns = append(t.Columns, s)
	}
	return t, nil
}

// written is vals, the cells of a number column s read, when some cell
// is written otherwise than s.Text gives it (1e30, 2.50, 007), else nil:
// a column whose cells read back as written keeps no second copy.
func written(s *Series, vals []string) []string {
	for k, v := range vals {
		if !s.IsNull(k) && v != s.Text(k) {
			return vals
		}
	}
	return nil
}

// goSyntax reports whether a number has an underscore or a hexadecimal
// prefix, as catalog.ParseNumber refuses.
func goSyntax(v string) bool {
	if strings.ContainsRune(v, '_') {
		return true
	}
	v = strings.TrimLeft(v, "+-")
	return len(v) > 1 && v[0] == '0' && (v[1] == 'x' || v[1] == 'X')
}

// WriteText writes header and rows as CSV or TSV (by format) to w.
func WriteText(w io.Writer, format string, header []string, rows [][]string) error {
	cw := csv.NewWriter(w)
	if format == TSV {
		cw.Comma = '\t'
	}
	if err := cw.Write(header); err != nil {
		return err
	}
	if err := cw.WriteAll(rows); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// RewriteText copies the CSV or TSV at src to w, passing every cell of the
// named columns through mapFn. Records end as the file's first does (CR LF
// or LF); a line break inside a quoted cell becomes that ending too, as
// encoding/csv reads CR LF there as LF and writes LF as the ending.
func RewriteText(src, format string, w io.Writer, mapFn map[string]func(string) string) (err error) {
	defer recoverCorrupt(src, &err)
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	br, hadBOM := skipBOM(f)
	if hadBOM { // kept: without it Excel reads UTF-8 as its locale's code page
		if _, err := io.WriteString(w, bom); err != nil {
			return err
		}
	}
	br = bufio.NewReaderSize(br, 64<<10) // room for endsInCRLF's look at a wide header
	crlf := endsInCRLF(br)
	cr := newTextReader(br, format)
	// Records end as the file's first one did; a line break inside a
	// quoted cell stays a bare LF (as Excel writes it in CRLF files, and
	// as encoding/csv reads any break there): csv.Writer's UseCRLF would
	// turn it into CR LF, changing cells no mapping touched.
	var rb bytes.Buffer
	cw := csv.NewWriter(&rb)
	if format == TSV {
		cw.Comma = '\t'
	}
	var fns []func(string) string
	for line := 0; ; line++ {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return textErr(err)
		}
		if err := CheckUTF8(cr, rec); err != nil {
			return err
		}
		if line == 0 {
			fns = make([]func(string) string, len(rec))
			for i, name := range rec {
				fns[i] = mapFn[name]
			}
		} else {
			for i, v := range rec {
				if i < len(fns) && fns[i] != nil {
					rec[i] = fns[i](v)
				}
			}
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
		cw.Flush()
		if err := cw.Error(); err != nil {
			return err
		}
		b := rb.Bytes()
		if crlf && len(b) > 0 && b[len(b)-1] == '\n' {
			b = append(b[:len(b)-1], '\r', '\n')
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
		rb.Reset()
	}
	return nil
}
