package catalog_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/lamina-bio/lamina/catalog"
)

// TestNormalizeNumbers: an int is stored exactly or refused, never rounded
// through a float64 (99999999999999999999 and inf were stored as
// -9223372036854775808, 9007199254740993 as …992); a float is finite.
func TestNormalizeNumbers(t *testing.T) {
	for _, tc := range []struct {
		dtype, in, want, err string // want "" when refused with err
	}{
		{"int", "42", "42", ""},
		{"int", " -7 ", "-7", ""},
		{"int", "9007199254740993", "9007199254740993", ""},
		{"int", "9223372036854775807", "9223372036854775807", ""},
		{"int", "-9223372036854775808", "-9223372036854775808", ""},
		{"int", "3.0", "3", ""},
		{"int", "1e3", "1000", ""},
		{"int", "-0.0", "0", ""},
		{"int", "9007199254740993.0", "9007199254740993", ""},
		{"int", "99999999999999999999", "", "out of the range of an int"},
		{"int", "9223372036854775808", "", "out of the range of an int"},
		{"int", "1e19", "", "out of the range of an int"},
		{"int", "1e400", "", "out of the range of an int"},
		{"int", "inf", "", "not an integer"},
		{"int", "-Inf", "", "not an integer"},
		{"int", "nan", "", "not an integer"},
		{"int", "2.5", "", "not an integer"},
		{"int", "4503599627370496.5", "", "not an integer"}, // a float64 rounds it to an integer
		{"int", "1e-400", "", "not an integer"},
		{"int", "0.1", "", "not an integer"},
		{"int", "one", "", "not a number"},
		// Go literal syntax, which pandas reads as text.
		{"int", "1_000", "", "not a number"},
		{"int", "0x10", "", "not a number"},
		{"int", "0x1p4", "", "not a number"},
		{"float", "1_000.5", "", "not a number"},
		{"float", "-0x1p4", "", "not a number"},
		{"float", "1e1_0", "", "not a number"},
		{"float", "2.50", "2.5", ""},
		{"float", "1e-400", "0", ""},
		{"float", "inf", "", "finite"},
		{"float", "NaN", "", "finite"},
		{"float", "1e400", "", "out of the range of a float"},
	} {
		t.Run(tc.dtype+"/"+tc.in, func(t *testing.T) {
			got, _, err := catalog.Normalize(tc.dtype, tc.in)
			if tc.err == "" {
				if err != nil || got != tc.want {
					t.Fatalf("Normalize(%s, %q) = %q, %v; want %q", tc.dtype, tc.in, got, err, tc.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, catalog.ErrInvalid) {
				t.Fatalf("Normalize(%s, %q) = %q, %v; want an ErrInvalid with %q", tc.dtype, tc.in, got, err, tc.err)
			}
		})
	}
	// Index keys keep the order of the numbers.
	_, a, _ := catalog.Normalize("int", "-9223372036854775808")
	_, b, _ := catalog.Normalize("int", "-1")
	_, c, _ := catalog.Normalize("float", "0.5")
	if !catalog.CompareKeys("<", a, b) || !catalog.CompareKeys("<", b, c) {
		t.Fatal("index keys out of order")
	}
}

// TestParseDtype: LaminDB's spellings cat[bionty.CellType] and
// cat[bt.CellType], which docs/annotate.md lists, were refused.
func TestParseDtype(t *testing.T) {
	for in, want := range map[string]string{
		"int": "int", "cat": "cat[ULabel]", "cat[ULabel]": "cat[ULabel]", "cat[ulabel]": "cat[ULabel]",
		"cat[celltype]": "cat[celltype]", "cat[CellType]": "cat[CellType]",
		"cat[bionty.CellType]": "cat[CellType]", "cat[bt.Tissue]": "cat[Tissue]",
		"integer": "", "cat[]": "", "cat[x.Y]": "", "cat[bionty.]": "", "cat[bionty.Cell Type]": "", "cat[1x]": "",
	} {
		got, err := catalog.ParseDtype(in)
		if got != want || (want == "") != (err != nil) || err != nil && !errors.Is(err, catalog.ErrInvalid) {
			t.Errorf("ParseDtype(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// TestShownZeroObservations: a table of 0 rows shows n_observations 0; a
// version of no table (a record from before, too) shows none.
func TestShownZeroObservations(t *testing.T) {
	for _, tc := range []struct {
		v    catalog.Version
		want string
	}{
		{catalog.Version{Shape: []int64{0, 2}}, `"n_observations":0`},
		{catalog.Version{NObservations: 5, Shape: []int64{5, 2}}, `"n_observations":5`},
		{catalog.Version{}, ``},
	} {
		b, err := json.Marshal(catalog.Shown(tc.v))
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(string(b), `"n_observations"`); tc.want == "" && n != 0 || tc.want != "" && (n != 1 || !strings.Contains(string(b), tc.want)) {
			t.Errorf("Shown(%+v) = %s, want %s", tc.v, b, tc.want)
		}
	}
}

// TestAddUnique: merging annotations appends the new values in order,
// each once, by id (a set: a scan per value was quadratic).
func TestAddUnique(t *testing.T) {
	id := func(s string) string { return s }
	got := catalog.AddUnique([]string{"b", "a"}, []string{"c", "a", "d", "c", "b", "e"}, id)
	if want := []string{"b", "a", "c", "d", "e"}; !slices.Equal(got, want) {
		t.Fatalf("AddUnique = %v; want %v", got, want)
	}
	terms := catalog.AddUnique(nil, []catalog.Term{{ID: "X:1", Name: "first"}, {ID: "X:1", Name: "second"}}, func(t catalog.Term) string { return t.ID })
	if len(terms) != 1 || terms[0].Name != "first" {
		t.Fatalf("terms = %+v; want the first X:1 only", terms)
	}
}

// TestParseCondUnquotes: a value wrapped in matching quotes, as a shell
// user types it inside a quoted argument, is the text inside; anything
// else is kept as typed.
func TestParseCondUnquotes(t *testing.T) {
	for in, want := range map[string]string{
		`cell_type="T cell"`:   "T cell",
		`cell_type='T cell'`:   "T cell",
		`cell_type= "T cell" `: "T cell",
		`cell_type="T cell'`:   `"T cell'`,
		`cell_type="`:          `"`,
		`cell_type=""`:         "",
		`cell_type=T "x"`:      `T "x"`,
	} {
		c, err := catalog.ParseCond(in)
		if err != nil || c.Field != "cell_type" || c.Values[0] != want {
			t.Errorf("ParseCond(%s) = %+v, %v; want value %q", in, c, err, want)
		}
	}
}
