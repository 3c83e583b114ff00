// Package curate validates the columns of a table (a CSV, TSV or Parquet
// file, the obs and var of an AnnData) against a schema of typed features,
// using ontologies for the categorical features that name an ontology
// entity and a list of labels for cat[ULabel]. It reports every failing
// value with its count and suggestions, says what standardizing would
// change, and lists the ontology terms each column holds, so that a saved
// curated version can be annotated with them.
//
// It reads tables with package dataset and matches values with package
// ontology; of catalogs it uses only the rules values are stored by
// (catalog.Normalize), so that a value curate passes is one annotate
// takes. It knows nothing of storage.
package curate

import (
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/dataset"
	"github.com/lamina-bio/lamina/ontology"
)

// Field is one feature of a schema.
type Field struct {
	Name     string
	Dtype    string // int, float, str, bool, date, datetime, cat[ENTITY]
	Optional bool
}

// Schema lists the features a table's columns must satisfy.
type Schema struct {
	Name    string
	Fields  []Field
	NoExtra bool // columns not in the schema fail
}

// Options tell Validate where categorical values come from.
type Options struct {
	// Ontology returns the index of an ontology entity named by a
	// cat[ENTITY] dtype (cat[celltype], cat[tissue], …). Required when the
	// schema has such fields.
	Ontology func(entity string) (*ontology.Index, error)
	// Labels are the names of the catalog's labels, for cat[ULabel].
	Labels []string
	// Related also maps through RELATED synonyms when standardizing.
	Related bool
}

// Value is what was found for one distinct value of a column.
type Value struct {
	Value       string   `json:"value"`
	Count       int      `json:"count"`
	Standard    string   `json:"standard,omitempty"`    // what --standardize maps it to
	Reason      string   `json:"reason"`                // why it fails or how it maps
	Suggestions []string `json:"suggestions,omitempty"` // close terms or labels, for failures
}

// Term is an ontology term a column holds (after standardizing).
type Term struct {
	Entity string `json:"entity"`
	ID     string `json:"id"`
	Name   string `json:"name"`
	Count  int    `json:"count"`
}

// ColumnReport is the outcome for one schema feature.
type ColumnReport struct {
	Feature string  `json:"feature"`
	Dtype   string  `json:"dtype"`
	Slot    string  `json:"slot,omitempty"`
	Rows    int     `json:"rows"`              // of the table the column is in (the obs or var of an AnnData)
	Valid   int     `json:"valid"`             // values that validate as they are
	Missing int     `json:"missing,omitempty"` // missing values (not checked): empty cells and pandas' NA spellings of a CSV/TSV (dataset.MissingText), nulls, a float column's NaN, NaN in a number feature
	Mapped  []Value `json:"mapped,omitempty"`  // fail as they are; --standardize fixes them
	Failed  []Value `json:"failed,omitempty"`  // fail even after standardizing
	Terms   []Term  `json:"terms,omitempty"`   // the column's terms, standardized
	// Standard lists the column's distinct values after standardizing, for
	// annotating categorical features.
	Standard []string `json:"-"`
}

// Report is the outcome of Validate.
type Report struct {
	Schema   string         `json:"schema"`
	Format   string         `json:"format"`
	Rows     int            `json:"rows"` // of the first table (the obs of an AnnData); each column has its table's
	Columns  []ColumnReport `json:"columns"`
	Missing  []string       `json:"missing_columns,omitempty"` // required features without a column
	Extra    []string       `json:"extra_columns,omitempty"`   // columns not in the schema, each name once
	ExtraErr bool           `json:"extra_is_error,omitempty"`
	// ExtraRepeated lists the names of Extra that more than one column has.
	ExtraRepeated []string `json:"repeated_extra_columns,omitempty"`

	// Near names, per missing feature, the columns whose name is close to
	// its (case, _ - . and space, a typo): likely the column meant.
	Near map[string][]string `json:"near_columns,omitempty"`
	// Available lists the tables' columns (SLOT.NAME for an AnnData) when a
	// required feature is missing, for a person to see what is there.
	Available []string `json:"available_columns,omitempty"`
	// Ambiguous lists the features more than one column is named after:
	// which one holds the feature is unclear, so none is checked.
	Ambiguous []string `json:"ambiguous_columns,omitempty"`
}

// OK reports whether the table validates as it is.
func (r *Report) OK() bool { return r.OKAfterStandardize() && r.mappedCount() == 0 }

// OKAfterStandardize reports whether it validates once standardized.
func (r *Report) OKAfterStandardize() bool {
	if len(r.Missing) > 0 || len(r.Ambiguous) > 0 || (r.ExtraErr && len(r.Extra) > 0) {
		return false
	}
	for _, c := range r.Columns {
		if len(c.Failed) > 0 {
			return false
		}
	}
	return true
}

func (r *Report) mappedCount() int {
	n := 0
	for _, c := range r.Columns {
		n += len(c.Mapped)
	}
	return n
}

// Mapping returns, per column, the values standardizing changes.
func (r *Report) Mapping() map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, c := range r.Columns {
		for _, m := range c.Mapped {
			if out[c.Feature] == nil {
				out[c.Feature] = map[string]string{}
			}
			out[c.Feature][m.Value] = m.Standard
		}
	}
	return out
}

// WriteMapping writes the mapping as TSV: column, value, standard, reason.
func (r *Report) WriteMapping(w io.Writer) error {
	rows := [][]string{}
	for _, c := range r.Columns {
		for _, m := range c.Mapped {
			rows = append(rows, []string{c.Feature, m.Value, m.Standard, m.Reason})
		}
	}
	return dataset.WriteText(w, dataset.TSV, []string{"column", "value", "standard", "reason"}, rows)
}

// Entity returns the X of a cat[X] dtype.
func Entity(dtype string) string {
	if strings.HasPrefix(dtype, "cat[") && strings.HasSuffix(dtype, "]") {
		return dtype[4 : len(dtype)-1]
	}
	return ""
}

// Validate checks tables (one for a table file; obs then var for an
// AnnData) against s. Each field is looked up among the columns of the
// tables in order; extra columns are those of the first table.
func Validate(tables []dataset.Table, format string, s Schema, o Options) (*Report, error) {
	r := &Report{Schema: s.Name, Format: format, ExtraErr: s.NoExtra}
	if len(tables) > 0 {
		r.Rows = tables[0].NRows
	}
	inSchema := map[string]bool{}
	for _, f := range s.Fields {
		inSchema[f.Name] = true
	}
	for _, f := range s.Fields {
		var col *dataset.Series
		var slot string
		var rows int
		ambiguous := false
		for i := range tables {
			if c, ok := tables[i].Col(f.Name); ok {
				col, slot, rows = c, tables[i].Slot, tables[i].NRows
				ambiguous = columnsNamed(&tables[i], f.Name) > 1
				break
			}
			// A column of an encoding the reader does not know (an
			// AnnData group) cannot be checked: the schema names it.
			if err := tables[i].UnreadErr(f.Name); err != nil {
				return nil, err
			}
		}
		if ambiguous { // a repeated header (disease,disease): checking only the first would pass the other unseen
			r.Ambiguous = append(r.Ambiguous, f.Name)
			continue
		}
		if col == nil {
			if !f.Optional {
				r.Missing = append(r.Missing, f.Name)
			}
			continue
		}
		cr, err := validateColumn(col, f, slot, o)
		if err != nil {
			return nil, err
		}
		cr.Rows = rows
		r.Columns = append(r.Columns, cr)
	}
	if len(tables) > 0 {
		seen := map[string]int{}
		for _, c := range tables[0].Columns {
			if inSchema[c.Name] || c.Name == tables[0].Index {
				continue
			}
			if seen[c.Name]++; seen[c.Name] == 1 {
				r.Extra = append(r.Extra, c.Name)
			} else if seen[c.Name] == 2 {
				r.ExtraRepeated = append(r.ExtraRepeated, c.Name)
			}
		}
		for _, name := range slices.Sorted(maps.Keys(tables[0].Unread)) {
			if !inSchema[name] {
				r.Extra = append(r.Extra, name)
			}
		}
	}
	if len(r.Missing) > 0 {
		r.Available, r.Near = nearColumns(tables, r.Missing, inSchema)
	}
	return r, nil
}

// columnsNamed counts the columns of t called name.
func columnsNamed(t *dataset.Table, name string) int {
	n := 0
	for _, c := range t.Columns {
		if c.Name == name {
			n++
		}
	}
	return n
}

// nearColumns lists the columns of tables (SLOT.NAME for an AnnData's)
// and, for each missing feature, those not named after another feature
// whose name is within a typo of it once case and separators are ignored
// (Cell_Type, cell type and celltype for cell_type; tisue for tissue).
func nearColumns(tables []dataset.Table, missing []string, inSchema map[string]bool) (all []string, near map[string][]string) {
	var cands []candidate
	seen := map[string]bool{}
	for _, t := range tables {
		for _, c := range t.Columns {
			name := c.Name
			if t.Slot != "" {
				name = t.Slot + "." + c.Name
			}
			if seen[name] {
				continue
			}
			seen[name] = true
			all = append(all, name)
			if !inSchema[c.Name] && c.Name != t.Index {
				cands = append(cands, candidate{name, columnKey(c.Name)})
			}
		}
	}
	for _, m := range missing {
		k := columnKey(m)
		if ns := closest(k, cands, max(1, len(k)/4)); len(ns) > 0 {
			if near == nil {
				near = map[string][]string{}
			}
			near[m] = ns
		}
	}
	return all, near
}

// columnKey is a column name as compared for nearness: lower case, without
// the separators people swap (_ - . and space).
func columnKey(name string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '_', '-', '.', ' ':
			return -1
		}
		return unicode.ToLower(r)
	}, name)
}

// distinct counts the non-missing values of col in first-seen order. A
// NaN of a float column (an h5ad's, a Parquet's) is missing whatever the
// feature's dtype, as pandas takes it: a str or cat feature counted it as
// the value "NaN" (and org.Hs.eg.db has NaN as an alias of SCN11A).
func distinct(col *dataset.Series) (vals []string, counts map[string]int, missing int) {
	counts = map[string]int{}
	floats := col.Dtype == "float" && col.Exact == nil
	for i := 0; i < col.Len(); i++ {
		if col.IsNull(i) || floats && math.IsNaN(col.Floats[i]) {
			missing++
			continue
		}
		v := col.WrittenText(i) // as in the file: a failing 1e30 is quoted so, not as 1e+30
		if counts[v] == 0 {
			vals = append(vals, v)
		}
		counts[v]++
	}
	return vals, counts, missing
}

func validateColumn(col *dataset.Series, f Field, slot string, o Options) (ColumnReport, error) {
	cr := ColumnReport{Feature: f.Name, Dtype: f.Dtype, Slot: slot}
	vals, counts, missing := distinct(col)
	cr.Missing = missing
	entity := Entity(f.Dtype)
	var suggest func(value string) []string // for the failures listed (MaxListed)
	switch {
	case entity == "ULabel":
		labels := map[string]bool{}
		folded := map[string][]string{}
		for _, l := range o.Labels {
			labels[l] = true
			k := strings.ToLower(strings.Join(strings.Fields(l), " "))
			folded[k] = append(folded[k], l)
		}
		for _, v := range vals {
			n := counts[v]
			if labels[v] {
				cr.Valid += n
				cr.Standard = append(cr.Standard, v)
				continue
			}
			k := strings.ToLower(strings.Join(strings.Fields(v), " "))
			if ls := folded[k]; len(ls) == 1 {
				cr.Mapped = append(cr.Mapped, Value{Value: v, Count: n, Standard: ls[0], Reason: "label differs in case or white space"})
				cr.Standard = append(cr.Standard, ls[0])
				continue
			}
			cr.Failed = append(cr.Failed, Value{Value: v, Count: n, Reason: "not a label (lamina label create)"})
		}
		suggest = func(v string) []string { return closeLabels(v, o.Labels) }
	case entity != "":
		if o.Ontology == nil {
			return cr, fmt.Errorf("curate: feature %s is %s but no ontology is available", f.Name, f.Dtype)
		}
		x, err := o.Ontology(entity)
		if err != nil {
			return cr, fmt.Errorf("feature %s (%s): %w", f.Name, f.Dtype, err)
		}
		terms := map[string]*Term{}
		addTerm := func(id, name string, n int) {
			t := terms[id]
			if t == nil {
				t = &Term{Entity: entity, ID: id, Name: name}
				terms[id] = t
			}
			t.Count += n
		}
		seenStd := map[string]bool{}
		std := func(s string) {
			if !seenStd[s] {
				seenStd[s] = true
				cr.Standard = append(cr.Standard, s)
			}
		}
		// As x.Inspect, but suggestions (an edit distance to every term)
		// are left to the failures the report lists.
		for _, value := range vals {
			n := counts[value]
			val, st := StandardTerm(x, value, ontology.StandardizeOptions{Related: o.Related})
			if val.Valid {
				cr.Valid += n
				for _, id := range val.TermIDs() { // a name of several terms is all of them
					addTerm(id, val.Name, n)
				}
				std(value)
				continue
			}
			if st.Matched() {
				standard := StandardValue(st)
				cr.Mapped = append(cr.Mapped, Value{Value: value, Count: n, Standard: standard, Reason: st.Reason()})
				for _, id := range st.TermIDs() {
					addTerm(id, st.Name, n)
				}
				std(standard)
				continue
			}
			cr.Failed = append(cr.Failed, Value{Value: value, Count: n, Reason: st.Reason()})
		}
		suggest = func(v string) []string {
			var out []string
			for _, sg := range x.Suggest(v, 3) {
				out = append(out, sg.String())
			}
			return out
		}
		for _, t := range terms {
			cr.Terms = append(cr.Terms, *t)
		}
		sort.Slice(cr.Terms, func(i, j int) bool { return cr.Terms[i].ID < cr.Terms[j].ID })
	default:
		for _, v := range vals {
			n := counts[v]
			if (f.Dtype == "int" || f.Dtype == "float") && isNaN(v) {
				cr.Missing += n // pandas' missing value: an int column with one reads as float
				continue
			}
			if reason := checkType(f.Dtype, col.Dtype, v); reason != "" {
				cr.Failed = append(cr.Failed, Value{Value: v, Count: n, Reason: reason})
				continue
			}
			cr.Valid += n
			if f.Dtype == "str" {
				cr.Standard = append(cr.Standard, v)
			}
		}
	}
	sort.SliceStable(cr.Failed, func(i, j int) bool { return cr.Failed[i].Count > cr.Failed[j].Count })
	if suggest != nil {
		for i := range cr.Failed[:min(len(cr.Failed), MaxListed)] {
			cr.Failed[i].Suggestions = suggest(cr.Failed[i].Value)
		}
	}
	return cr, nil
}

// StandardTerm is how curate matches value, a value of a cat[ENTITY]
// feature, against x: val.Valid when value is a live term's name or
// primary id, which is kept as it is (st is then zero); otherwise st says
// what value maps to (StandardValue), if anything. A secondary id
// (alt_id) validates but is not the term's id: it is mapped to the
// primary id (Standardize: ByAltID), as a synonym is to the name, so
// that --standardize rewrites it; val.Valid is false for it. lamina
// annotate --feature stores values by the same rule.
func StandardTerm(x *ontology.Index, value string, opts ontology.StandardizeOptions) (val ontology.Validation, st ontology.Standardization) {
	if val = x.Validate(value); val.Valid && !val.Alt {
		return val, st
	}
	return ontology.Validation{Value: value}, x.Standardize(value, opts)
}

// StandardValue is the value curate --standardize writes for a value st
// matched: the term's id for a value given as an id (" CL:0000084", an
// alt_id, an obsolete id), so that a cellxgene *_ontology_term_id column
// stays one, otherwise the standard name. For a value st did not match,
// it is the value.
func StandardValue(st ontology.Standardization) string {
	if st.Matched() && st.ID != "" && (st.Match == ontology.ByID || st.Match == ontology.ByAltID || strings.TrimSpace(st.Value) == st.Obsolete) {
		return st.ID
	}
	return st.Standard()
}

// checkType says why text v of a column stored as have does not fit
// dtype, or "" when it fits. A value fits when the catalog would store it
// (catalog.Normalize, which `lamina annotate` and --where use): " 7 " is
// an int, as annotate --feature batch=" 7 " takes it.
func checkType(dtype, have, v string) string {
	switch dtype {
	case "str":
		return ""
	case "int", "float", "bool", "date", "datetime":
		_, _, err := catalog.Normalize(dtype, v)
		if err == nil {
			return ""
		}
		// A uint64 id, a wide DECIMAL, 1e30: the catalog's ints are int64.
		if dtype == "int" && strings.Contains(err.Error(), "out of the range") {
			return "an integer out of the int range (-9223372036854775808 to 9223372036854775807)"
		}
		// As annotate says: 1e309, and inf (NaN is missing, validateColumn).
		if dtype == "float" && strings.Contains(err.Error(), "out of the range") {
			return "out of the range of a float"
		}
		if f, err := catalog.ParseNumber(strings.TrimSpace(v)); err == nil && dtype == "float" && math.IsInf(f, 0) {
			return "not a finite number (inf and nan cannot be stored)"
		}
	default:
		return fmt.Sprintf("unknown dtype %s", dtype)
	}
	switch dtype {
	case "int":
		return "not an integer"
	case "float":
		return "not a number"
	case "bool":
		return "not true or false"
	}
	return "not a date (2006-01-02) or time (RFC 3339)"
}

// isNaN reports whether v is a NaN (NaN, nan: pandas writes a missing
// number so).
func isNaN(v string) bool {
	f, err := catalog.ParseNumber(strings.TrimSpace(v))
	return err == nil && math.IsNaN(f)
}

func closeLabels(v string, labels []string) []string {
	cands := make([]candidate, len(labels))
	for i, l := range labels {
		cands[i] = candidate{l, strings.ToLower(l)}
	}
	return closest(strings.ToLower(v), cands, max(2, len(v)/3))
}

// candidate is a name and the form it is compared in.
type candidate struct{ name, key string }

// closest returns the names of up to 3 candidates whose key is within
// maxDist edits of key, nearest first.
func closest(key string, cands []candidate, maxDist int) []string {
	type sc struct {
		l string
		d int
	}
	var out []sc
	for _, c := range cands {
		if d := ontology.EditDistance(key, c.key); d <= maxDist {
			out = append(out, sc{c.name, d})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].d < out[j].d || out[i].d == out[j].d && out[i].l < out[j].l })
	var names []string
	for i := 0; i < len(out) && i < 3; i++ {
		names = append(names, out[i].l)
	}
	return names
}

// WriteStandardized writes the table file at src with the report's
// mapping applied: CSV and TSV stay text, Parquet keeps its schema. Other
// formats (h5ad, zarr) are not rewritten: an error.
func WriteStandardized(src, format string, r *Report, w io.Writer) error {
	fns := map[string]func(string) string{}
	for col, m := range r.Mapping() {
		fns[col] = func(v string) string {
			if s, ok := m[v]; ok {
				return s
			}
			return v
		}
	}
	switch format {
	case dataset.CSV, dataset.TSV:
		return dataset.RewriteText(src, format, w, fns)
	case dataset.Parquet:
		return dataset.RewriteParquet(src, w, fns)
	}
	return fmt.Errorf("curate: a %s file is not rewritten; save the value mapping instead", format)
}

// MaxListed is how many failing values of a column get suggestions and
// are printed (the most frequent first), and how many mapped values are
// printed: 70,000 distinct failures took 17 s to suggest for and printed
// 70,000 lines. The JSON report has every value, suggestions for these.
const MaxListed = 20

// maxListedColumns bounds the header a report lists for a missing
// feature: a longer one is noise (the JSON report has it whole).
const maxListedColumns = 12

// Rewrites reports whether a table of format is saved standardized
// (WriteStandardized rewrites it): CSV, TSV and Parquet. An AnnData (h5ad,
// zarr) is saved as it is: standardizing maps its values to standard terms
// in the version's annotations only.
func Rewrites(format string) bool {
	switch format {
	case dataset.CSV, dataset.TSV, dataset.Parquet:
		return true
	}
	return false
}

// formatFiles names the files of format for a person ("h5ad files").
func formatFiles(format string) string {
	if format == dataset.AnnDataZarr {
		return "AnnData zarr stores"
	}
	return format + " files"
}

// WriteReport prints r for a person. With standardize, a format that is
// rewritten (Rewrites) says its values were standardized; any other says
// they map to standard terms in the annotations only, the file kept as it
// is: it said "standardized" of an h5ad saved unchanged.
func WriteReport(w io.Writer, r *Report, standardize bool) {
	annotationOnly := standardize && !Rewrites(r.Format)
	fmt.Fprintf(w, "schema %s: %s\n", r.Schema, r.tableRows())
	for _, m := range r.Missing {
		fmt.Fprintf(w, "✗ %s: required column is missing", m)
		if near := r.Near[m]; len(near) > 0 {
			fmt.Fprintf(w, "; did you mean %s?", strings.Join(quoteAll(near), " or "))
		}
		fmt.Fprintln(w)
	}
	// A short header is listed when some missing feature has no near
	// column: the person sees at once what the table calls it.
	if len(r.Near) < len(r.Missing) && len(r.Available) > 0 && len(r.Available) <= maxListedColumns {
		fmt.Fprintf(w, "    the table's columns: %s\n", strings.Join(quoteAll(r.Available), ", "))
	}
	for _, a := range r.Ambiguous {
		fmt.Fprintf(w, "✗ %s: more than one column has this name; rename or remove all but one\n", a)
	}
	if len(r.Extra) > 0 && r.ExtraErr {
		extra := make([]string, len(r.Extra))
		for i, e := range r.Extra {
			extra[i] = e
			if slices.Contains(r.ExtraRepeated, e) {
				extra[i] += " (repeated)"
			}
		}
		fmt.Fprintf(w, "✗ columns not in the schema: %s\n", strings.Join(extra, ", "))
	}
	for _, c := range r.Columns {
		mapped, failed := 0, 0
		for _, m := range c.Mapped {
			mapped += m.Count
		}
		for _, f := range c.Failed {
			failed += f.Count
		}
		total := c.Valid + mapped + failed
		mark := "✓"
		if len(c.Failed) > 0 || (len(c.Mapped) > 0 && !standardize) {
			mark = "✗"
		}
		where := c.Feature
		if c.Slot != "" {
			where = c.Slot + "." + c.Feature
		}
		if annotationOnly && mapped > 0 {
			fmt.Fprintf(w, "%s %s (%s): %d of %d values valid (%d mapped to standard terms, annotation only)", mark, where, c.Dtype, c.Valid+mapped, total, mapped)
		} else if standardize && mapped > 0 { // the values as saved: standardized ones are valid
			fmt.Fprintf(w, "%s %s (%s): %d of %d values valid (%d standardized)", mark, where, c.Dtype, c.Valid+mapped, total, mapped)
		} else {
			fmt.Fprintf(w, "%s %s (%s): %d of %d values valid", mark, where, c.Dtype, c.Valid, total)
		}
		if c.Missing > 0 {
			fmt.Fprintf(w, ", %d missing", c.Missing) // empty, NA, NaN, null
		}
		fmt.Fprintln(w)
		for _, m := range c.Mapped[:min(len(c.Mapped), MaxListed)] {
			verb := "--standardize would map"
			switch {
			case annotationOnly:
				verb = "maps"
			case standardize:
				verb = "standardized"
			}
			fmt.Fprintf(w, "    %s %s (%d) → %s: %s\n", verb, Quote(m.Value), m.Count, Quote(m.Standard), m.Reason)
		}
		writeMore(w, c.Mapped, "mapped", "--mapping FILE")
		for _, f := range c.Failed[:min(len(c.Failed), MaxListed)] {
			fmt.Fprintf(w, "    failed %s (%d): %s", Quote(f.Value), f.Count, f.Reason)
			if len(f.Suggestions) > 0 {
				fmt.Fprintf(w, "; did you mean %s?", strings.Join(quoteAll(f.Suggestions), " or "))
			}
			fmt.Fprintln(w)
		}
		writeMore(w, c.Failed, "failed", "--format json")
	}
	switch {
	case r.OK():
		fmt.Fprintln(w, "valid")
	case r.OKAfterStandardize() && annotationOnly && r.mappedCount() > 0:
		fmt.Fprintf(w, "valid with the values mapped to standard terms (annotation only: %s are saved as they are, not rewritten; CSV, TSV and Parquet are; --mapping FILE writes the mapping)\n", formatFiles(r.Format))
	case r.OKAfterStandardize() && standardize:
		fmt.Fprintln(w, "valid after standardizing")
	case r.OKAfterStandardize():
		fmt.Fprintln(w, "not valid: rerun with --standardize to map the values above")
	default:
		fmt.Fprintln(w, "not valid")
	}
}

// writeMore says how many of vals the report left out (beyond MaxListed)
// and where they all are.
func writeMore(w io.Writer, vals []Value, what, where string) {
	if len(vals) <= MaxListed {
		return
	}
	rows := 0
	for _, v := range vals[MaxListed:] {
		rows += v.Count
	}
	fmt.Fprintf(w, "    … and %d more %s values (%d rows); %s lists them all\n", len(vals)-MaxListed, what, rows, where)
}

// tableRows says how many rows the tables the columns were checked in
// have: "315 rows" for a table file, "obs 315 rows, var 50 rows" for an
// AnnData whose schema has features in both.
func (r *Report) tableRows() string {
	var parts []string
	seen := map[string]bool{}
	for _, c := range r.Columns {
		if seen[c.Slot] {
			continue
		}
		seen[c.Slot] = true
		if c.Slot == "" {
			parts = append(parts, fmt.Sprintf("%d rows", c.Rows))
		} else {
			parts = append(parts, fmt.Sprintf("%s %d rows", c.Slot, c.Rows))
		}
	}
	if len(parts) == 0 { // no column checked: the first table's
		return fmt.Sprintf("%d rows", r.Rows)
	}
	return strings.Join(parts, ", ")
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = Quote(s)
	}
	return out
}

// MaxShown is about how many bytes of a value a report for people shows.
const MaxShown = 200

// Quote is v quoted for a person, as %q does (bytes that are not UTF-8
// as \xe9, control characters escaped), cut after MaxShown bytes with "…"
// and the value's length: a 1.2 MB obs value was printed whole. The JSON
// report keeps whole values: a script maps them by their exact text.
func Quote(v string) string {
	short, cut := Cut(v)
	if !cut {
		return strconv.Quote(v)
	}
	return fmt.Sprintf("%s (%d bytes)", strconv.Quote(short+"…"), len(v))
}

// Cut returns v cut to at most MaxShown bytes at a character boundary, and
// whether it was cut.
func Cut(v string) (string, bool) {
	if len(v) <= MaxShown {
		return v, false
	}
	i := MaxShown
	for i > MaxShown-utf8.UTFMax && !utf8.RuneStart(v[i]) {
		i--
	}
	return v[:i], true
}
