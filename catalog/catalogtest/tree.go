package catalogtest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

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
	t.Run("ChildrenFollowsEveryChange", func(t *testing.T) {
		c := open(t)
		mtime := time.Date(2025, 3, 4, 5, 6, 7, 890, time.UTC)
		mode := uint32(0o444)
		steps := []struct {
			name string
			do   func() error
		}{
			{"save", func() error {
				var nvs []catalog.NewVersion
				for _, k := range []string{"a/x.csv", "a/y.csv", "a/b/z.csv", "a/b/w.csv", "c/one", "top"} {
					nvs = append(nvs, NV(k, k))
				}
				_, err := c.Save(ctx, nvs)
				return err
			}},
			{"new version", func() error { _, err := c.Save(ctx, []catalog.NewVersion{NV("a/x.csv", "x2")}); return err }},
			{"same bytes", func() error { _, err := c.Save(ctx, []catalog.NewVersion{NV("a/x.csv", "x2")}); return err }},
			{"set mtime and mode", func() error {
				_, err := c.SetAttrs(ctx, "a/y.csv", catalog.Attrs{Mtime: &mtime, Mode: &mode})
				return err
			}},
			{"rename to a free key", func() error { _, err := c.Rename(ctx, "a/b/z.csv", "c/z.csv"); return err }},
			{"rename onto a key", func() error { _, err := c.Rename(ctx, "c/one", "a/x.csv"); return err }},
			{"rename a folder", func() error { return c.RenameFolder(ctx, "a/b", "moved") }},
			{"trash", func() error { _, err := c.Trash(ctx, "a/y.csv"); return err }},
			{"save over the trash", func() error { _, err := c.Save(ctx, []catalog.NewVersion{NV("a/y.csv", "y2")}); return err }},
			{"trash again", func() error { _, err := c.Trash(ctx, "a/y.csv"); return err }},
			{"restore", func() error { _, err := c.Restore(ctx, "a/y.csv"); return err }},
			{"trash the last of a folder", func() error { _, err := c.Trash(ctx, "moved/w.csv"); return err }},
			{"purge", func() error { _, err := c.Purge(ctx, "top"); return err }},
		}
		for _, st := range steps {
			if err := st.do(); err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
			for _, p := range []string{"", "a/", "a/b/", "c/", "moved/"} {
				checkChildren(t, c, st.name, p)
			}
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

// checkChildren compares Children(prefix) with the latest versions List
// gives under it: the same files with the same listed fields, and a sub-prefix
// for every deeper key.
func checkChildren(t *testing.T, c catalog.Catalog, step, prefix string) {
	t.Helper()
	ctx := context.Background()
	d, err := c.Children(ctx, prefix)
	if err != nil {
		t.Fatalf("after %s: Children(%q): %v", step, prefix, err)
	}
	all, err := c.List(ctx, catalog.Query{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	type listed struct {
		UID, Kind string
		Version   int
		Size      int64
		Mtime     time.Time
		Mode      uint32
	}
	of := func(v catalog.Version) listed {
		return listed{v.UID, v.Kind, v.Version, v.Size, v.Mtime.UTC(), v.Mode}
	}
	want, dirs := map[string]listed{}, map[string]bool{}
	for _, v := range all {
		rest := strings.TrimPrefix(v.Key, prefix)
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			dirs[rest[:i]] = true
			continue
		}
		want[v.Key] = of(v)
	}
	got := map[string]listed{}
	for _, v := range d.Files {
		got[v.Key] = of(v)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("after %s: Children(%q) files\n got %+v\nwant %+v", step, prefix, got, want)
	}
	for dir := range dirs {
		if !slices.Contains(d.Subdirs, dir) {
			t.Errorf("after %s: Children(%q) = dirs %v; %q missing", step, prefix, d.Subdirs, dir)
		}
	}
	for _, dir := range d.Subdirs {
		if !dirs[dir] && prefix+dir != "moved" { // RenameFolder left "moved" a folder of its own
			t.Errorf("after %s: Children(%q) lists dir %q with nothing in it", step, prefix, dir)
		}
	}
}
