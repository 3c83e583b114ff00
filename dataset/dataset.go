// Package dataset reads what Lamina records and curates about a data file
// without loading the data itself: the columns of a CSV, TSV or Parquet
// table, the obs and var tables and the shape of X of an AnnData (h5ad or
// zarr), and the TEXT segment of an FCS file (channels, event count).
//
// Describe reads a file's structure (cheap: headers, and for AnnData only
// the obs/var indexes); Tables reads whole columns for curation. Both are
// read-only, import no other package of Lamina, and give a clear error
// (wrapping ErrCorrupt) for a truncated or corrupt file. Readers never read
// the matrix X of an AnnData: its shape comes from metadata alone.
package dataset

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Errors. Test with errors.Is.
var (
	// ErrCorrupt: the file is truncated, corrupt, or uses a part of its
	// format this package does not read. It can still be saved as a plain
	// file.
	ErrCorrupt = errors.New("cannot read the file's structure")
	// ErrFormat: the format is not one this package reads.
	ErrFormat = errors.New("not a format lamina reads")
	// errMissing: a member of an AnnData group is absent.
	errMissing = fs.ErrNotExist
)

// Formats Describe recognises.
const (
	CSV         = "csv"
	TSV         = "tsv"
	Parquet     = "parquet"
	H5AD        = "h5ad"
	AnnDataZarr = "anndata_zarr"
	FCS         = "fcs"
)

// Info is what a file's structure says about it.
type Info struct {
	Format        string            `json:"format"`
	OType         string            `json:"otype,omitempty"` // DataFrame, AnnData, or "" (FCS)
	NObservations int64             `json:"n_observations"`
	Shape         []int64           `json:"shape,omitempty"`
	Columns       []Column          `json:"columns,omitempty"`
	Metadata      map[string]string `json:"metadata,omitempty"` // FCS keywords such as $CYT
}

// Column describes one column of a table, an obs or var column of an
// AnnData, or a channel of an FCS file.
type Column struct {
	Name  string `json:"name"`
	Slot  string `json:"slot,omitempty"`  // "obs" or "var" for AnnData
	Dtype string `json:"dtype"`           // int, float, bool, str, cat, datetime, date
	Label string `json:"label,omitempty"` // an FCS channel's $PnS
}

// Table is one data frame read in full: a CSV, TSV or Parquet file, or the
// obs or var of an AnnData.
type Table struct {
	Slot    string // "", "obs" or "var"
	Index   string // the index column's name ("" when there is none)
	NRows   int
	Columns []Series
	// Unread: the columns of an AnnData frame this package does not read,
	// by name: a group of an unknown encoding-type (the value), or data
	// compressed with a codec or filter it does not decode ("codec:" and
	// its name, as Describe gives the dtype after "?"). They are not in
	// Columns, and stop nothing unless asked for; UnreadErr says why.
	Unread map[string]string
	// Warnings: by column name, what was read but may not be what was
	// written (a zarr chunk with no file, read as the fill value), for
	// stderr.
	Warnings map[string][]string
}

// UnreadErr is the error (ErrCorrupt) reading the column name would give
// when it is in t.Unread, else nil.
func (t *Table) UnreadErr(name string) error {
	why, ok := t.Unread[name]
	if !ok {
		return nil
	}
	where := name
	if t.Slot != "" {
		where = t.Slot + " column " + name
	}
	if _, ok := strings.CutPrefix(why, codecPrefix); ok {
		return corruptf("%s is %s, which lamina does not read (%s)", where, UnreadReason("?"+why), codecHint)
	}
	return corruptf("%s is stored with encoding-type %q, which lamina does not read", where, why)
}

// codecPrefix marks an Unread value (and a Column's dtype after "?") of a
// column whose data is compressed with a codec this package does not
// decode.
const codecPrefix = "codec:"

// codecHint says how to write a file lamina reads.
const codecHint = "write it with gzip/zlib, or for zarr Blosc with lz4, the default"

// codecNames are the codecs named in a dtype, for people.
var codecNames = map[string]string{
	"blosc-blosclz": "Blosc blosclz", "blosc-snappy": "Blosc snappy",
	"blosc-zlib": "Blosc zlib", "blosc-zstd": "Blosc zstd",
	"blosc-bitshuffle": "Blosc bitshuffle", "lzf": "LZF (HDF5 filter 32000)",
	"hdf5-blosc": "Blosc (HDF5 filter 32001)", "hdf5-lz4": "LZ4 (HDF5 filter 32004)",
	"hdf5-bitshuffle": "bitshuffle (HDF5 filter 32008)", "hdf5-zstd": "Zstandard (HDF5 filter 32015)",
	"bzip2": "bzip2 (HDF5 filter 307)", "szip": "SZIP (HDF5 filter 4)",
	"nbit": "N-bit (HDF5 filter 5)", "scaleoffset": "scale-offset (HDF5 filter 6)",
}

// UnreadReason says why a column of dtype "?…" (Describe) is not read:
// "compressed with Blosc zstd", `stored with encoding-type
// "awkward-array"`; "" for another dtype or a bare "?".
func UnreadReason(dtype string) string {
	rest, ok := strings.CutPrefix(dtype, "?")
	if !ok || rest == "" {
		return ""
	}
	if c, ok := strings.CutPrefix(rest, codecPrefix); ok {
		if name := codecNames[c]; name != "" {
			return "compressed with " + name
		}
		return "compressed with " + c
	}
	return fmt.Sprintf("stored with encoding-type %q", rest)
}

// codecError: data compressed with a codec or filter this package does
// not decode. It is a column's failure, not the file's: the column is
// unread (Table.Unread).
type codecError struct {
	codec string // a key of codecNames, or a plain name
	err   error
}

func (e *codecError) Error() string { return e.err.Error() }
func (e *codecError) Unwrap() error { return e.err }

// codecOf returns the codec of a codecError in err's chain, "" for none.
func codecOf(err error) string {
	var ce *codecError
	if errors.As(err, &ce) {
		return ce.codec
	}
	return ""
}

// Col returns the column called name.
func (t *Table) Col(name string) (*Series, bool) {
	for i := range t.Columns {
		if t.Columns[i].Name == name {
			return &t.Columns[i], true
		}
	}
	return nil, false
}

// Series is one column. Exactly one of the value slices is set, by Dtype:
// int → Ints, float → Floats, bool → Bools, str → Strings, datetime →
// Strings (RFC 3339 in UTC, or 2006-01-02T15:04:05 for a local wall time
// a Parquet timestamp not adjusted to UTC holds), date → Strings
// (2006-01-02), cat → Codes and Categories (code -1 is missing).
//
// An int or float column whose values an int64 or float64 cannot hold
// exactly has Exact instead: unsigned 64-bit integers (Parquet UINT_64,
// HDF5 and zarr uint64 beyond 2^63-1), integers of a CSV beyond int64, and
// Parquet DECIMALs (int when the scale is 0, else float), as decimal text:
// 18446744073709551615, -0.05, 12.30 (a DECIMAL keeps its scale's digits).
// Text returns it; nothing is rounded.
type Series struct {
	Name       string
	Dtype      string
	Ints       []int64
	Floats     []float64
	Bools      []bool
	Strings    []string
	Codes      []int64
	Categories []string
	Exact      []string
	// Written holds the cells of a CSV or TSV int or float column as the
	// file has them, when some differ from Text's (1e30 is 1e+30 read,
	// 2.50 is 2.5): messages quote a value so that it can be found in the
	// file. Nil otherwise.
	Written []string
	// Null marks missing values of str, int, float and bool columns: an
	// empty CSV cell or one pandas reads as missing (NA, NaN, null, …:
	// MissingText), a Parquet null, the mask of an AnnData nullable
	// column (pandas Int64, boolean, string). It may be nil when none is
	// missing.
	Null []bool
}

// Len is the number of values.
func (s *Series) Len() int {
	if s.Exact != nil {
		return len(s.Exact)
	}
	switch s.Dtype {
	case "int":
		return len(s.Ints)
	case "float":
		return len(s.Floats)
	case "bool":
		return len(s.Bools)
	case "cat":
		return len(s.Codes)
	}
	return len(s.Strings)
}

// IsNull reports whether value i is missing.
func (s *Series) IsNull(i int) bool {
	if s.Dtype == "cat" {
		return s.Codes[i] < 0 || int(s.Codes[i]) >= len(s.Categories)
	}
	return s.Null != nil && s.Null[i]
}

// Text returns value i as text ("" when missing).
func (s *Series) Text(i int) string {
	if s.IsNull(i) {
		return ""
	}
	if s.Exact != nil {
		return s.Exact[i]
	}
	switch s.Dtype {
	case "int":
		return strconv.FormatInt(s.Ints[i], 10)
	case "float":
		return strconv.FormatFloat(s.Floats[i], 'g', -1, 64)
	case "bool":
		return strconv.FormatBool(s.Bools[i])
	case "cat":
		return s.Categories[s.Codes[i]]
	}
	return s.Strings[i]
}

// WrittenText returns value i as the file has it (Written), else Text.
func (s *Series) WrittenText(i int) string {
	if s.Written != nil && !s.IsNull(i) {
		return s.Written[i]
	}
	return s.Text(i)
}

// Values returns every value as text, missing ones as "".
func (s *Series) Values() []string {
	out := make([]string, s.Len())
	for i := range out {
		out[i] = s.Text(i)
	}
	return out
}

// DetectFormat names the format of path from its name (and, for a folder,
// its .zattrs); "" when it is none this package reads.
func DetectFormat(path string) string { return DetectFormatAs(path, path) }

// DetectFormatAs is DetectFormat of the file or folder at path named name
// (a key: its suffix names the format, whatever the local file's name).
func DetectFormatAs(path, name string) string {
	if f := FileFormat(name); f != "" {
		return f
	}
	if strings.HasSuffix(strings.ToLower(strings.TrimSuffix(name, "/")), ".zarr") && isAnnDataZarr(path) {
		return AnnDataZarr
	}
	// A folder named otherwise is one by its content (anndata writes no
	// suffix of its own: write_zarr("pbmc") makes pbmc/): a zarr group
	// whose .zattrs says encoding-type anndata. inspect said "a folder but
	// not an AnnData zarr" and save gave it no otype.
	if zarrAnnData(path) {
		return AnnDataZarr
	}
	return ""
}

// zarrAnnData reports whether path is a zarr v2 group (.zgroup) whose
// .zattrs is a JSON object with "encoding-type": "anndata".
func zarrAnnData(path string) bool {
	if _, err := os.Stat(filepath.Join(path, ".zgroup")); err != nil {
		return false
	}
	p := filepath.Join(path, ".zattrs")
	b, err := os.ReadFile(p)
	if err != nil {
		return false
	}
	m, err := parseZattrs(p, b)
	return err == nil && m["encoding-type"] == "anndata"
}

// FileFormat names the format of a single file from its name alone; ""
// when it is none this package reads (a zarr store is a folder).
func FileFormat(name string) string {
	name = strings.ToLower(filepath.Base(strings.TrimSuffix(name, "/")))
	switch {
	case strings.HasSuffix(name, ".csv"):
		return CSV
	case strings.HasSuffix(name, ".tsv"), strings.HasSuffix(name, ".tab"):
		return TSV
	case strings.HasSuffix(name, ".parquet"):
		return Parquet
	case strings.HasSuffix(name, ".h5ad"):
		return H5AD
	case strings.HasSuffix(name, ".fcs"):
		return FCS
	}
	return ""
}

// Describe reads the structure of the file or folder at path.
func Describe(path string) (Info, error) { return DescribeAs(path, DetectFormat(path)) }

// DescribeAs is Describe of a file in the given format whatever its name
// (a staged file, whose name says nothing).
func DescribeAs(path, format string) (info Info, err error) {
	defer recoverCorrupt(path, &err)
	switch format {
	case CSV, TSV:
		info, err = describeText(path, format)
	case Parquet:
		info, err = describeParquet(path)
	case H5AD, AnnDataZarr:
		info, err = describeAnnData(path, format)
	case FCS:
		info, err = describeFCS(path)
	default:
		return Info{}, fmt.Errorf("%s: %w (csv, tsv, parquet, h5ad, AnnData zarr, fcs)", path, ErrFormat)
	}
	if err != nil {
		return Info{}, describeErr(path, err)
	}
	info.Format = format
	return info, nil
}

// Tables reads the data frames of path in full: one for a table file, obs
// then var for an AnnData. X is never read.
func Tables(path string) (ts []Table, err error) {
	defer recoverCorrupt(path, &err)
	switch f := DetectFormat(path); f {
	case CSV, TSV:
		var t Table
		t, err = readText(path, f)
		ts = []Table{t}
	case Parquet:
		var t Table
		t, err = readParquet(path)
		ts = []Table{t}
	case H5AD, AnnDataZarr:
		ts, err = readAnnDataTables(path, f)
	default:
		return nil, fmt.Errorf("%s: %w (tables are read from csv, tsv, parquet, h5ad and AnnData zarr)", path, ErrFormat)
	}
	if err != nil {
		return nil, describeErr(path, err)
	}
	return ts, nil
}

func describeErr(path string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) && !errors.Is(err, errMissing) {
		return err
	}
	if errors.Is(err, ErrCorrupt) || errors.Is(err, ErrFormat) {
		return fmt.Errorf("%s: %w", path, err)
	}
	return fmt.Errorf("%s: %w: %v", path, ErrCorrupt, err)
}

// recoverCorrupt turns a panic of a reader into ErrCorrupt in *err. The
// third-party readers (parquet-go above all) panic on some damaged bytes
// (a slice out of range in a page index) instead of failing; a file they
// cannot read must still be saved as a plain file, not crash the command
// or the mount. Deferred by every exported reader.
func recoverCorrupt(path string, err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%s: %w: the reader failed on damaged bytes (%v)", path, ErrCorrupt, r)
	}
}

// maxColumnBytes bounds the bytes of one AnnData column as stored, and
// maxColumnValues its values (each 8 or 16 bytes decoded, so a column of
// int8 codes cannot claim 16 GiB): its size comes from the file, which
// may be damaged, and a reader must not allocate without bound on its
// word. 134 million rows is far beyond any AnnData's.
const (
	maxColumnBytes  = 1 << 31
	maxColumnValues = maxColumnBytes / 16
)

func corruptf(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, a...))
}

func isAnnDataZarr(path string) bool {
	b, err := os.ReadFile(filepath.Join(path, ".zattrs"))
	return err == nil && strings.Contains(string(b), `"anndata"`)
}
