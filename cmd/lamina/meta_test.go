package main

import (
	"strings"
	"testing"

	"github.com/lamina-bio/lamina/catalog"
)

// annotations returns what show --format json says key is annotated with.
func annotations(t *testing.T, e *env, key string) catalog.Annotations {
	t.Helper()
	var got struct {
		Annotations catalog.Annotations `json:"annotations"`
	}
	e.jsonOut(&got, "show", key, "--format", "json")
	return got.Annotations
}

// TestIntFeatureValues: an int value out of range, inf or nan is refused
// with the feature named (it was stored as -9223372036854775808), and a
// large int is stored exactly (9007199254740993 became …992).
func TestIntFeatureValues(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("feature", "create", "batch", "--dtype", "int")
	e.ok("feature", "create", "score", "--dtype", "float")
	e.ok("save", e.write("a.txt", []byte("a")), "--key", "a.txt")
	for _, tc := range []struct{ value, want string }{
		{"batch=99999999999999999999", `feature batch (int): invalid: "99999999999999999999" is out of the range of an int`},
		{"batch=inf", `feature batch (int): invalid: "inf" is not an integer`},
		{"batch=nan", `feature batch (int): invalid: "nan" is not an integer`},
		{"score=inf", `feature score (float): invalid: "inf" is not a finite number`},
	} {
		if err := e.fails(tc.want, "annotate", "a.txt", "--feature", tc.value); exitCode(err) != 1 {
			t.Errorf("--feature %s: exit %d, want 1", tc.value, exitCode(err))
		}
	}
	if a := annotations(t, e, "a.txt"); !a.IsZero() {
		t.Fatalf("refused values were stored: %+v", a)
	}
	e.ok("annotate", "a.txt", "--feature", "batch=9007199254740993", "--feature", "batch=3.0")
	if got := annotations(t, e, "a.txt").Features["batch"]; strings.Join(got, ",") != "3,9007199254740993" {
		t.Fatalf("batch = %v, want [3 9007199254740993]", got)
	}
	e.fails(`--where batch=inf: invalid: "inf" is not an integer`, "ls", "--where", "batch=inf")
}
