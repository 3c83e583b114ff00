package catalog_test

import (
	"cmp"
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"testing"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/catalog/catalogtest"
)

// findCatalog has 300 keys. The first 40 keys (in key order) have 6
// versions each, every one annotated, so the indexes list five stale
// versions for each live one there; sizes alternate around 1 kB.
func findCatalog(t *testing.T) *catalog.Bolt {
	t.Helper()
	ctx := context.Background()
	c, err := catalog.OpenBolt(filepath.Join(t.TempDir(), "catalog.db"), catalog.BoltOptions{Hold: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	for _, f := range []catalog.Feature{{Name: "tissue", Dtype: "str"}, {Name: "batch", Dtype: "int"}} {
		if _, err := c.CreateFeature(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range []catalog.Label{{Name: "quality"}, {Name: "high", Parent: "quality"}, {Name: "low", Parent: "quality"}} {
		if _, err := c.CreateLabel(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	for round := range 6 {
		var nvs []catalog.NewVersion
		for i := range 300 {
			if round > 0 && i >= 40 {
				break
			}
			nv := catalogtest.NV(fmt.Sprintf("k/%03d.csv", i), fmt.Sprint(i, round))
			nv.Size = int64(900 + 200*((i+round)%2))
			nvs = append(nvs, nv)
		}
		saved, err := c.Save(ctx, nvs)
		if err != nil {
			t.Fatal(err)
		}
		var adds []catalog.Annotations
		for i, s := range saved {
			adds = append(adds, catalog.Annotations{UID: s.Version.UID,
				Features: map[string][]string{"tissue": {[]string{"blood", "liver", "lung"}[i%3]}, "batch": {strconv.Itoa(i % 10)}},
				Labels:   []string{[]string{"high", "low"}[i%2]},
				Terms:    []catalog.Term{{Entity: "celltype", ID: fmt.Sprintf("CL:%d", i%4)}, {Entity: "celltype", ID: fmt.Sprintf("CL:%d", (i+1)%4)}},
			})
		}
		if err := c.AnnotateBatch(ctx, adds); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func keysOf(vs []catalog.Version) []string {
	out := []string{}
	for _, v := range vs {
		out = append(out, fmt.Sprintf("%s@v%d", v.Key, v.Version))
	}
	return out
}

// TestFindLimitIsAPrefix: with a limit, Find returns the first rows of
// what it returns without one, however many stale versions, duplicate
// entries and version conditions stand in the way of the bounded
// selection; and the order of the conditions does not matter.
func TestFindLimitIsAPrefix(t *testing.T) {
	c := findCatalog(t)
	ctx := context.Background()
	where := func(ws ...string) []catalog.Cond {
		var out []catalog.Cond
		for _, w := range ws {
			cond, err := catalog.ParseCond(w)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, cond)
		}
		return out
	}
	cases := []struct {
		name string
		f    catalog.Filter
		min  int // rows expected without a limit, at least
	}{
		{"one label", catalog.Filter{Labels: []string{"high"}}, 150},
		{"label closure", catalog.Filter{Labels: []string{"quality"}}, 300},
		{"terms with duplicates", catalog.Filter{Terms: [][]string{{"CL:0", "CL:1"}}}, 200},
		{"two features", catalog.Filter{Where: where("tissue=blood", "batch>3")}, 50},
		{"feature, label and size", catalog.Filter{Where: where("batch>=2", "size>1kB"), Labels: []string{"low"}}, 50},
		{"!= and terms", catalog.Filter{Where: where("tissue!=lung"), Terms: [][]string{{"CL:2"}}}, 50},
		{"all versions", catalog.Filter{Labels: []string{"high"}, AllVersions: true}, 250},
		{"prefix", catalog.Filter{Prefix: "k/0", Where: where("batch<5")}, 50},
		{"nothing", catalog.Filter{Where: where("tissue=blood", "tissue=liver")}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			all, err := c.Find(ctx, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if len(all) < tc.min {
				t.Fatalf("%d rows without a limit, want at least %d", len(all), tc.min)
			}
			if !slices.IsSortedFunc(all, func(a, b catalog.Version) int {
				if c := cmp.Compare(a.Key, b.Key); c != 0 {
					return c
				}
				return cmp.Compare(a.Version, b.Version)
			}) {
				t.Fatalf("not in key order: %v", keysOf(all))
			}
			for _, limit := range []int{1, 3, 10, 64, 1000} {
				f := tc.f
				f.Limit = limit
				got, err := c.Find(ctx, f)
				if err != nil {
					t.Fatal(err)
				}
				want := all[:min(limit, len(all))]
				if !reflect.DeepEqual(keysOf(got), keysOf(want)) {
					t.Fatalf("limit %d:\n got %v\nwant %v", limit, keysOf(got), keysOf(want))
				}
			}
			f := tc.f
			f.Where = slices.Clone(f.Where)
			slices.Reverse(f.Where)
			if got, err := c.Find(ctx, f); err != nil || !reflect.DeepEqual(keysOf(got), keysOf(all)) {
				t.Fatalf("conditions reversed: %v, %v", keysOf(got), err)
			}
		})
	}
}
