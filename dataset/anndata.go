package dataset

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// node is a group or array of an AnnData store (HDF5 or zarr).
type node interface {
	attr(name string) (any, bool, error)
	child(name string) (node, error) // wraps errMissing when absent
	members() []string               // a group's members in storage order
	isGroup() bool
	shape() ([]int64, error)
	read() (any, error) // []int64, []uint64, []float64, []bool or []string
	// stored is how many values of a 1-D array its storage holds, read
	// from its chunk index or listing, not its data: the values past it
	// would be fill values.
	stored() (int64, error)
}

type h5node struct{ o *h5object }

func (n h5node) attr(name string) (any, bool, error) { return n.o.attr(name) }
func (n h5node) child(name string) (node, error) {
	c, err := n.o.child(name)
	if err != nil {
		return nil, err
	}
	return h5node{c}, nil
}
func (n h5node) members() []string         { return n.o.order }
func (n h5node) isGroup() bool             { return n.o.isGroup() }
func (n h5node) shape() ([]int64, error)   { return n.o.shape() }
func (n h5node) read() (any, error)        { return n.o.read() }
func (n h5node) stored() (int64, error)    { return n.o.stored() }
func (n h5node) String() string            { return n.o.name }
func (n zarrNode) String() string          { return n.path }
func (n zarrNode) members() []string       { return n.list() }
func (n zarrNode) shape() ([]int64, error) { return n.arrayShape() }

// openAnnData opens the root group of an h5ad file or AnnData zarr store.
// The returned close func releases the file.
func openAnnData(path, format string) (node, func(), error) {
	if format == AnnDataZarr {
		if err := checkZgroup(path); err != nil {
			return nil, nil, err
		}
		return zarrNode{path: path}, func() {}, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	h, err := openHDF5(f, st.Size())
	if err == nil {
		var root *h5object
		if root, err = h.object(h.root, "/"); err == nil {
			return h5node{root}, func() { f.Close() }, nil
		}
	}
	f.Close()
	return nil, nil, corruptf("%v", err)
}

// attrString is a string attribute of n, "" when it has none. A damaged
// attribute (an empty or truncated .zattrs) is an error: ignored, it had
// columns read in the wrong order or as the wrong kind.
func attrString(n node, name string) (string, error) {
	v, ok, err := n.attr(name)
	if !ok || err != nil {
		return "", err
	}
	s, _ := v.(string)
	return s, nil
}

func attrStrings(n node, name string) ([]string, error) {
	v, ok, err := n.attr(name)
	if !ok || err != nil {
		return nil, err
	}
	switch x := v.(type) {
	case []string:
		return x, nil
	case string:
		return []string{x}, nil
	}
	return nil, nil
}

// indexName is the name of a dataframe's index column.
func indexName(g node) (string, error) {
	index, err := attrString(g, "_index")
	if index == "" {
		index = "_index"
	}
	return index, err
}

// A dataframe column is an array, or a group whose encoding-type says
// what it holds: a categorical (codes and categories; older files leave
// the encoding-type out) or, from anndata 0.8, a pandas nullable column
// (values and a mask, true where a value is missing).
const encCategorical = "categorical"

// nullableDtypes are the dtypes of the nullable encodings.
var nullableDtypes = map[string]string{
	"nullable-integer":      "int",
	"nullable-boolean":      "bool",
	"nullable-string-array": "str",
}

// encoding is the encoding-type of a column stored as a group, "" for an
// array.
func encoding(c node) (string, error) {
	if !c.isGroup() {
		return "", nil
	}
	enc, err := attrString(c, "encoding-type")
	if err != nil {
		return "", err
	}
	if enc == "" {
		enc = encCategorical
	}
	return enc, nil
}

// known reports whether columns of the encoding enc are read.
func known(enc string) bool {
	return enc == "" || enc == encCategorical || nullableDtypes[enc] != ""
}

// unreadDtype describes a column of an encoding that is not read: "?"
// and the encoding-type when it is a plain name (it is the file's text).
func unreadDtype(enc string) string {
	if len(enc) > 64 || strings.IndexFunc(enc, func(r rune) bool {
		return !(r == '-' || r == '_' || r == '.' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	}) >= 0 {
		return "?"
	}
	return "?" + enc
}

func describeAnnData(path, format string) (Info, error) {
	root, done, err := openAnnData(path, format)
	if err != nil {
		return Info{}, err
	}
	defer done()
	info := Info{OType: "AnnData"}
	var nobs, nvar int64 = -1, -1
	for _, slot := range []string{"obs", "var"} {
		g, err := root.child(slot)
		if err != nil {
			if errors.Is(err, errMissing) {
				continue
			}
			return Info{}, err
		}
		n, cols, err := frameColumns(g, slot)
		if err != nil {
			return Info{}, err
		}
		info.Columns = append(info.Columns, cols...)
		if slot == "obs" {
			nobs = n
		} else {
			nvar = n
		}
	}
	if x, err := root.child("X"); err == nil {
		if s, err := matrixShape(x); err == nil {
			info.Shape = s
		} else {
			return Info{}, err
		}
	}
	if info.Shape == nil && nobs >= 0 && nvar >= 0 {
		info.Shape = []int64{nobs, nvar}
	}
	if nobs < 0 && len(info.Shape) > 0 {
		nobs = info.Shape[0]
	}
	if nobs < 0 {
		return Info{}, corruptf("no obs table: not an AnnData")
	}
	info.NObservations = nobs
	return info, nil
}

// matrixShape reads the shape of X from its metadata only: a dense array's
// dimensions, or a sparse group's "shape" attribute.
func matrixShape(x node) ([]int64, error) {
	if !x.isGroup() {
		return x.shape()
	}
	for _, a := range []string{"shape", "h5sparse_shape"} {
		v, ok, err := x.attr(a)
		if err != nil {
			return nil, err
		}
		if s, is := v.([]int64); ok && is {
			return s, nil
		}
	}
	return nil, corruptf("X is a group without a shape attribute")
}

// frameColumns describes a dataframe group: its row count (from the
// index) and its columns in column-order.
func frameColumns(g node, slot string) (int64, []Column, error) {
	if !g.isGroup() {
		return 0, nil, corruptf("%s is not a dataframe group (AnnData before 0.7 is not supported)", slot)
	}
	index, err := indexName(g)
	if err != nil {
		return 0, nil, err
	}
	var n int64 = -1
	if ix, err := g.child(index); err == nil {
		s, err := ix.shape()
		if err != nil {
			return 0, nil, err
		}
		if len(s) > 0 {
			n = s[0]
		}
	}
	names, err := columnOrder(g, index)
	if err != nil {
		return 0, nil, err
	}
	var cols []Column
	for _, name := range names {
		c, err := g.child(name)
		if err != nil {
			return 0, nil, err
		}
		enc, err := encoding(c)
		if err != nil {
			return 0, nil, err
		}
		col := Column{Name: name, Slot: slot}
		if enc != "" {
			switch {
			case enc == encCategorical:
				col.Dtype = "cat"
			case known(enc):
				col.Dtype = nullableDtypes[enc]
			default:
				col.Dtype = unreadDtype(enc)
			}
			if n < 0 && known(enc) {
				if l, err := seriesLen(c, enc); err == nil {
					n = l
				}
			}
		} else {
			col.Dtype = "?"
			// Cheap for one column; gives the type. Not read when its
			// length is not the index's: damaged, it could be huge.
			if l, err := seriesLen(c, ""); err == nil && (n < 0 || l == n) {
				if v, err := c.read(); err == nil {
					col.Dtype = dtypeOf(v)
				} else if codec := codecOf(err); codec != "" {
					col.Dtype = "?" + codecPrefix + codec // UnreadReason says it
				}
			}
		}
		cols = append(cols, col)
	}
	if n < 0 {
		n = 0
	}
	return n, cols, nil
}

func columnOrder(g node, index string) ([]string, error) {
	order, err := attrStrings(g, "column-order")
	if order != nil || err != nil {
		return order, err
	}
	var out []string
	for _, m := range g.members() {
		if m != index && m != "__categories" {
			out = append(out, m)
		}
	}
	return out, nil
}

func dtypeOf(v any) string {
	switch v.(type) {
	case []int64, []uint64:
		return "int"
	case []float64:
		return "float"
	case []bool:
		return "bool"
	}
	return "str"
}

func readAnnDataTables(path, format string) ([]Table, error) {
	root, done, err := openAnnData(path, format)
	if err != nil {
		return nil, err
	}
	defer done()
	var out []Table
	for _, slot := range []string{"obs", "var"} {
		g, err := root.child(slot)
		if err != nil {
			if errors.Is(err, errMissing) {
				continue
			}
			return nil, err
		}
		t, err := readFrame(g, slot)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	if len(out) == 0 {
		return nil, corruptf("no obs or var table: not an AnnData")
	}
	return out, nil
}

func readFrame(g node, slot string) (Table, error) {
	if !g.isGroup() {
		return Table{}, corruptf("%s is not a dataframe group (AnnData before 0.7 is not supported)", slot)
	}
	index, err := indexName(g)
	if err != nil {
		return Table{}, err
	}
	t := Table{Slot: slot, Index: index}
	all, err := columnOrder(g, index)
	if err != nil {
		return Table{}, err
	}
	if _, err := g.child(index); err == nil {
		all = append([]string{index}, all...)
	}
	// Every length is checked before any column is read: a damaged one
	// would be allocated. The first column's (the index's) is the table's.
	// A column of an encoding this package does not read is left out
	// (Table.Unread): it stops curation only when a schema names it.
	var names, encs []string
	var cols []node
	rows := int64(-1)
	for _, name := range all {
		c, err := g.child(name)
		if err != nil {
			return Table{}, err
		}
		enc, err := encoding(c)
		if err != nil {
			return Table{}, fmt.Errorf("%s/%s: %w", slot, name, err)
		}
		if !known(enc) {
			if t.Unread == nil {
				t.Unread = map[string]string{}
			}
			t.Unread[name] = enc
			continue
		}
		names, encs, cols = append(names, name), append(encs, enc), append(cols, c)
		if n, err := seriesLen(c, enc); err != nil {
			return Table{}, fmt.Errorf("%s/%s: %w", slot, name, err)
		} else if rows < 0 {
			rows = n
		} else if n != rows {
			return Table{}, corruptf("%s column %s has %d values, not %d", slot, name, n, rows)
		}
	}
	for i, name := range names {
		s, err := readSeries(cols[i], name, encs[i])
		if codec := codecOf(err); codec != "" && name != index {
			// Compressed with a codec not decoded (Blosc zstd, LZF): the
			// column is unread, not the file.
			if t.Unread == nil {
				t.Unread = map[string]string{}
			}
			t.Unread[name] = codecPrefix + codec
			continue
		}
		if err != nil {
			return Table{}, fmt.Errorf("%s/%s: %w", slot, name, err)
		}
		if ws := missingChunkNotes(cols[i], slot, name, encs[i]); len(ws) > 0 {
			if t.Warnings == nil {
				t.Warnings = map[string][]string{}
			}
			t.Warnings[name] = ws
		}
		t.Columns = append(t.Columns, s)
	}
	if len(t.Columns) > 0 {
		t.NRows = t.Columns[0].Len()
	}
	for _, s := range t.Columns {
		if s.Len() != t.NRows {
			return Table{}, corruptf("%s column %s has %d values, not %d", slot, s.Name, s.Len(), t.NRows)
		}
	}
	return t, nil
}

// seriesLen is the length of a column of the encoding enc from its shape
// (a categorical's codes', a nullable column's values' and mask's),
// without reading it.
func seriesLen(c node, enc string) (int64, error) {
	if nullableDtypes[enc] != "" {
		n, err := memberLen(c, "values")
		if err != nil {
			return 0, err
		}
		m, err := memberLen(c, "mask")
		if err != nil {
			return 0, err
		}
		if m != n {
			return 0, corruptf("%s has %d values and a mask of %d", enc, n, m)
		}
		return n, nil
	}
	if enc != "" {
		return memberLen(c, "codes")
	}
	return arrayLen(c)
}

func memberLen(g node, name string) (int64, error) {
	c, err := g.child(name)
	if err != nil {
		return 0, err
	}
	return arrayLen(c)
}

func arrayLen(c node) (int64, error) {
	s, err := c.shape()
	if err != nil {
		return 0, err
	}
	if len(s) != 1 {
		return 0, corruptf("a column of shape %v: only 1-D columns are read", s)
	}
	return s[0], nil
}

// readNullable reads a column of a nullable encoding (enc): its values,
// missing where the mask is true.
func readNullable(c node, name, enc string) (Series, error) {
	s := Series{Name: name}
	values, err := c.child("values")
	if err != nil {
		return s, err
	}
	mask, err := c.child("mask")
	if err != nil {
		return s, err
	}
	v, err := values.read()
	if err != nil {
		return s, err
	}
	m, err := mask.read()
	if err != nil {
		return s, err
	}
	s = arraySeries(name, v)
	if s.Dtype != nullableDtypes[enc] {
		return s, corruptf("%s column %s has %s values", enc, name, s.Dtype)
	}
	if s.Null, _ = m.([]bool); s.Null == nil {
		return s, corruptf("%s column %s has a mask that is not boolean", enc, name)
	}
	if len(s.Null) != s.Len() {
		return s, corruptf("%s column %s has %d values and a mask of %d", enc, name, s.Len(), len(s.Null))
	}
	return s, nil
}

// arraySeries is the column of the values v of an array.
func arraySeries(name string, v any) Series {
	s := Series{Name: name, Dtype: dtypeOf(v)}
	s.Ints, s.Floats, s.Bools, s.Exact = asInts(v), asFloats(v), asBools(v), asExact(v)
	s.Strings, _ = v.([]string)
	return s
}

func readSeries(c node, name, enc string) (Series, error) {
	s := Series{Name: name}
	if nullableDtypes[enc] != "" {
		return readNullable(c, name, enc)
	}
	if enc != "" {
		codes, err := c.child("codes")
		if err != nil {
			return s, err
		}
		cats, err := c.child("categories")
		if err != nil {
			return s, err
		}
		cv, err := codes.read()
		if err != nil {
			return s, err
		}
		if err := checkCategories(cats, name); err != nil {
			return s, err
		}
		kv, err := cats.read()
		if err != nil {
			return s, err
		}
		s.Dtype = "cat"
		s.Codes, _ = cv.([]int64)
		switch k := kv.(type) {
		case []string:
			s.Categories = k
		default:
			s.Categories = (&Series{Dtype: dtypeOf(kv), Ints: asInts(kv), Floats: asFloats(kv), Bools: asBools(kv), Exact: asExact(kv)}).Values()
		}
		if s.Codes == nil {
			return s, corruptf("categorical %s has non-integer codes", name)
		}
		for i, c := range s.Codes {
			if c < -1 || c >= int64(len(s.Categories)) {
				return s, corruptf("categorical %s has code %d at row %d, and %d categories", name, c, i, len(s.Categories))
			}
		}
		return s, nil
	}
	v, err := c.read()
	if err != nil {
		return s, err
	}
	return arraySeries(name, v), nil
}

// checkCategories refuses categories whose length is more than their
// storage holds. Nothing else bounds it (codes are checked against the
// index's length, categories against nothing), and a damaged length had
// the reader decode every missing value as an empty category: 117 million
// of them, 3.5 GiB, for the 15 of pbmc_small's cell_type. Every category
// is stored (they are unique: fill values could make one at most).
func checkCategories(cats node, name string) error {
	n, err := arrayLen(cats)
	if err != nil {
		return err
	}
	stored, err := cats.stored()
	if err != nil {
		return err
	}
	if n > stored {
		return corruptf("categorical %s says it has %d categories and stores %d (a damaged length, or a missing chunk)", name, n, stored)
	}
	return nil
}

func asInts(v any) []int64     { x, _ := v.([]int64); return x }
func asFloats(v any) []float64 { x, _ := v.([]float64); return x }
func asBools(v any) []bool     { x, _ := v.([]bool); return x }

// asExact is a uint64 column as decimal text (Series.Exact).
func asExact(v any) []string {
	x, ok := v.([]uint64)
	if !ok {
		return nil
	}
	out := make([]string, len(x))
	for i, u := range x {
		out[i] = strconv.FormatUint(u, 10)
	}
	return out
}

// missingChunkNotes says which chunks of the zarr arrays of column name
// (its own; a categorical's codes; a nullable's values and mask) have no
// file: zarr writes none for a chunk all fill value, so they read as it,
// but a chunk lost in a copy reads so too (every cell the first category,
// valid), and nothing said so.
func missingChunkNotes(c node, slot, name, enc string) []string {
	if _, ok := c.(zarrNode); !ok {
		return nil
	}
	var arrays []string
	switch {
	case nullableDtypes[enc] != "":
		arrays = []string{"values", "mask"}
	case enc != "":
		arrays = []string{"codes"}
	default:
		arrays = []string{""}
	}
	var out []string
	for _, a := range arrays {
		n := c
		if a != "" {
			var err error
			if n, err = c.child(a); err != nil {
				continue
			}
		}
		missing, count, fill, err := n.(zarrNode).missingChunks()
		if err != nil || count == 0 {
			continue
		}
		path := slot + "/" + name
		if a != "" {
			path += "/" + a
		}
		ids := make([]string, len(missing))
		for i, m := range missing {
			ids[i] = strconv.FormatInt(m, 10)
		}
		list := strings.Join(ids, ", ")
		if count > int64(len(missing)) {
			list += ", …"
		}
		chunks := "chunk " + list + " is"
		if count > 1 {
			chunks = fmt.Sprintf("%d chunks (%s) are", count, list)
		}
		out = append(out, fmt.Sprintf("%s: %s missing (no file %s/%d): read as the fill value %s", path, chunks, path, missing[0], fill))
	}
	return out
}
