package lineage_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/lamina-bio/lamina/lineage"
)

// TestParseParams: a value is typed only when the typed value writes back
// as the same text; anything else stays the string given.
func TestParseParams(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want any
	}{
		{"n=200", int64(200)},
		{"n=-3", int64(-3)},
		{"n=0", int64(0)},
		{"sample=007", "007"},
		{"n=+7", "+7"},
		{"big=123456789012345678901", "123456789012345678901"},
		{"big=9007199254740993", "9007199254740993"}, // a JSON reader would get ...992
		{"x=0.5", 0.5},
		{"x=-2.25", -2.25},
		{"tool_version=1.10", "1.10"},
		{"x=1.0", "1.0"},
		{"x=1e3", "1e3"},
		{"x=NaN", "NaN"},
		{"x=Inf", "Inf"},
		{"ok=true", true},
		{"ok=false", false},
		{"ok=True", "True"},
		{"genes=CD4,CD8", "CD4,CD8"},
		{"filter=a,b=c", "a,b=c"},
		{"sp=  5 ", "  5 "},
		{"empty=", ""},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := lineage.ParseParams([]string{tc.in})
			k, _, _ := strings.Cut(tc.in, "=")
			if err != nil || len(got) != 1 || !reflect.DeepEqual(got[k], tc.want) {
				t.Fatalf("ParseParams(%q) = %#v, %v; want %s=%#v", tc.in, got, err, k, tc.want)
			}
		})
	}
	for _, bad := range [][]string{{"a=1", "a=2"}, {"noequals"}, {"=v"}} {
		if got, err := lineage.ParseParams(bad); err == nil {
			t.Errorf("ParseParams(%q) = %v, want an error", bad, got)
		}
	}
}
