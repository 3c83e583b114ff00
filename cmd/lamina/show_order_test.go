package main

import (
	"reflect"
	"strings"
	"testing"

	"github.com/lamina-bio/lamina/catalog"
)

// TestShowNumericValueOrder: show and annotate listed the values of an
// int or float feature in text order, "batch = -3; 10; 7; 9", and a
// datetime's with a fraction of a second before the whole second. They
// are listed in the order of their values; --format json keeps the
// record's order, and str features stay in text order. ls --where
// compares numbers as numbers, on either catalog.
func TestShowNumericValueOrder(t *testing.T) {
	onBothCatalogs(t, showNumericValueOrder)
}

func showNumericValueOrder(t *testing.T, e *env) {
	e.ok("feature", "create", "batch", "--dtype", "int")
	e.ok("feature", "create", "score", "--dtype", "float")
	e.ok("feature", "create", "when", "--dtype", "datetime")
	e.ok("feature", "create", "note", "--dtype", "str")
	for _, k := range []string{"a", "b", "c"} {
		e.ok("save", e.write(k+".txt", []byte(k+"\n")), "--key", "t/"+k+".txt")
	}
	out := e.ok("annotate", "t/a.txt", "--feature", "batch=10", "--feature", "batch=7", "--feature", "batch=9", "--feature", "batch=-3",
		"--feature", "score=10", "--feature", "score=2.5", "--feature", "score=-1e3", "--feature", "score=0.01",
		"--feature", "when=2026-01-01T00:00:00.5Z", "--feature", "when=2026-01-01T00:00:00Z",
		"--feature", "note=10", "--feature", "note=9")
	want := []string{
		"batch = -3; 7; 9; 10\n",
		"score = -1000; 0.01; 2.5; 10\n",
		"when = 2026-01-01T00:00:00Z; 2026-01-01T00:00:00.5Z\n",
		"note = 10; 9\n",
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("annotate output lacks %q:\n%s", w, out)
		}
	}
	out = e.ok("show", "t/a.txt")
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("show lacks %q:\n%s", w, out)
		}
	}
	out = e.ok("annotate", "t/a.txt", "--remove", "--feature", "batch=7")
	if !strings.Contains(out, "batch = -3; 9; 10\n") {
		t.Errorf("annotate --remove output lacks batch = -3; 9; 10:\n%s", out)
	}
	var v struct {
		Annotations catalog.Annotations `json:"annotations"`
	}
	e.jsonOut(&v, "show", "t/a.txt", "--format", "json")
	if got := v.Annotations.Features["batch"]; !reflect.DeepEqual(got, []string{"-3", "10", "9"}) {
		t.Errorf("show --format json batch = %q, want the record's order", got)
	}

	// ls --where: 9 < 10 and 9.5 < 10, where text has "10" < "9".
	e.ok("annotate", "t/b.txt", "--feature", "batch=9", "--feature", "score=9.5")
	e.ok("annotate", "t/c.txt", "--feature", "batch=100", "--feature", "score=-2", "--feature", "score=-10")
	for _, tc := range []struct {
		where string
		want  []string
	}{
		{"batch<10", []string{"t/a.txt", "t/b.txt"}}, // a has -3 and 9
		{"batch>10", []string{"t/c.txt"}},
		{"batch>=10", []string{"t/a.txt", "t/c.txt"}},
		{"batch<9", []string{"t/a.txt"}},
		{"score>9.5", []string{"t/a.txt"}},
		{"score<10", []string{"t/a.txt", "t/b.txt", "t/c.txt"}},
		{"score<-5", []string{"t/a.txt", "t/c.txt"}},
		{"score>-5", []string{"t/a.txt", "t/b.txt", "t/c.txt"}},
		{"score<=-1000", []string{"t/a.txt"}},
	} {
		if got := lsKeys(t, e, "--where", tc.where); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ls --where %s = %v, want %v", tc.where, got, tc.want)
		}
	}
}
