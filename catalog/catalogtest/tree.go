package catalogtest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/ref"
)

// runTree checks Children: one level of the key namespace.
func runTree(t *testing.T, open func(t *testing.T) catalog.Catalog) {
	ctx := context.Background()
	names := func(vs []catalog.Version) []string {
		out := []string{}
		for _, v := range vs {
			out = append(out, v.Key)
		}
		return out
	}
	t.Run("Children", func(t *testing.T) {
		c := open(t)
		var nvs []catalog.NewVersion
		for _, k := range []string{"top.csv", "a/x.csv", "a/y.csv", "a/b/deep.csv", "a/b/c/deeper.csv",
			"a-sibling/z", "a.txt", "a0/q", "gone/only", "mixed/live", "mixed/sub/trashed"} {
			nvs = append(nvs, NV(k, k))
		}
		if _, err := c.Save(ctx, nvs); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Save(ctx, []catalog.NewVersion{NV("a/x.csv", "second")}); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"gone/only", "mixed/sub/trashed"} {
			if _, err := c.Trash(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
		cases := []struct {
			prefix string
			files  []string
			dirs   []string
		}{
			{"", []string{"a.txt", "top.csv"}, []string{"a", "a-sibling", "a0", "mixed"}},
			{"a/", []string{"a/x.csv", "a/y.csv"}, []string{"b"}},
			{"a", []string{"a/x.csv", "a/y.csv"}, []string{"b"}}, // the slash is implied
			{"a/b/", []string{"a/b/deep.csv"}, []string{"c"}},
			{"mixed/", []string{"mixed/live"}, []string{}},
			{"gone/", []string{}, []string{}},
			{"nothing/", []string{}, []string{}},
		}
		for _, tc := range cases {
			d, err := c.Children(ctx, tc.prefix)
			if err != nil {
				t.Fatalf("Children(%q): %v", tc.prefix, err)
			}
			dirs := d.Subdirs
			if dirs == nil {
				dirs = []string{}
			}
			if got := names(d.Files); !reflect.DeepEqual(got, tc.files) || !reflect.DeepEqual(dirs, tc.dirs) {
				t.Errorf("Children(%q) = files %v dirs %v; want %v %v", tc.prefix, got, dirs, tc.files, tc.dirs)
			}
		}
		d, _ := c.Children(ctx, "a/")
		if len(d.Files) != 2 || d.Files[0].Version != 2 || d.Files[0].UID == "" {
			t.Fatalf("Children lists %+v; want the latest version of a/x.csv", d.Files)
		}
		if _, err := c.Children(ctx, "/abs"); !errors.Is(err, ref.ErrBadKey) {
			t.Fatalf("bad prefix: %v", err)
		}
	})
	t.Run("ChildrenMany", func(t *testing.T) {
		c := open(t)
		var nvs []catalog.NewVersion
		for d := 0; d < 20; d++ {
			for f := 0; f < 30; f++ {
				nvs = append(nvs, NV(fmt.Sprintf("m/d%02d/f%02d", d, f), fmt.Sprint(d, f)))
			}
		}
		if _, err := c.Save(ctx, nvs); err != nil {
			t.Fatal(err)
		}
		top, err := c.Children(ctx, "m/")
		if err != nil || len(top.Subdirs) != 20 || len(top.Files) != 0 {
			t.Fatalf("Children(m/) = %d dirs %d files, %v", len(top.Subdirs), len(top.Files), err)
		}
		one, err := c.Children(ctx, "m/d07/")
		if err != nil || len(one.Files) != 30 || one.Files[29].Key != "m/d07/f29" {
			t.Fatalf("Children(m/d07/) = %d files, %v", len(one.Files), err)
		}
	})
}
