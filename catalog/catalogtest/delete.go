package catalogtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/ref"
)

// runDelete checks DeleteFeature, DeleteLabel, DeleteSchema (and
// DeleteCollection, which refuses nothing): what is
// in use stays, with a message that says what uses it and what to run;
// what is not leaves the catalog and its indexes.
func runDelete(t *testing.T, open func(t *testing.T) catalog.Catalog) {
	ctx := context.Background()
	must := func(t *testing.T, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// inUse checks that err refuses and says each of want.
	inUse := func(t *testing.T, what string, err error, want ...string) {
		t.Helper()
		if !errors.Is(err, catalog.ErrConflict) {
			t.Fatalf("%s: %v, want ErrConflict", what, err)
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Fatalf("%s: %q does not say %q", what, err, w)
			}
		}
	}
	setup := func(t *testing.T) (catalog.Catalog, map[string]catalog.Version) {
		c := open(t)
		for _, f := range []catalog.Feature{{Name: "batch", Dtype: "int"}, {Name: "condition", Dtype: "cat"},
			{Name: "tissu", Dtype: "str"}, {Name: "ph", Dtype: "float"}} {
			_, err := c.CreateFeature(ctx, f)
			must(t, err)
		}
		for _, l := range []catalog.Label{{Name: "quality"}, {Name: "high quality", Parent: "quality"},
			{Name: "treated"}, {Name: "spare"}} {
			_, err := c.CreateLabel(ctx, l)
			must(t, err)
		}
		vs := map[string]catalog.Version{}
		for _, k := range []string{"a.csv", "b.csv", "c.csv"} {
			s, err := c.Save(ctx, []catalog.NewVersion{NV(k, k)})
			must(t, err)
			vs[k] = s[0].Version
		}
		for k, a := range map[string]catalog.Annotations{
			"a.csv": {Features: map[string][]string{"batch": {"1", "2"}}, Labels: []string{"high quality"}},
			"b.csv": {Features: map[string][]string{"batch": {"5"}, "condition": {"treated"}}},
		} {
			_, err := c.Annotate(ctx, vs[k].UID, a)
			must(t, err)
		}
		return c, vs
	}
	refs := func(vs map[string]catalog.Version, keys ...string) []string {
		var out []string
		for _, k := range keys {
			out = append(out, vs[k].Ref())
		}
		return out
	}
	// saysOne checks that err names one of the versions as its example.
	saysOne := func(t *testing.T, err error, examples []string) {
		t.Helper()
		if !slices.ContainsFunc(examples, func(r string) bool { return strings.Contains(err.Error(), "(e.g. "+r) }) {
			t.Fatalf("%q names none of %v as an example", err, examples)
		}
	}

	t.Run("DeleteFeature", func(t *testing.T) {
		c, vs := setup(t)
		if _, err := c.DeleteFeature(ctx, "tisu"); !errors.Is(err, catalog.ErrNotFound) || !strings.Contains(err.Error(), `"tissu"`) {
			t.Fatalf("unknown feature: %v (want a suggestion)", err)
		}
		// In use: values on two versions (three values), nothing removed.
		_, err := c.DeleteFeature(ctx, "batch")
		inUse(t, "batch", err, `feature "batch"`, "2 versions have values of it", "lamina annotate ", "--remove --feature batch")
		saysOne(t, err, refs(vs, "a.csv", "b.csv"))
		if got, _ := c.Find(ctx, catalog.Filter{Where: []catalog.Cond{{Field: "batch", Op: ">", Values: []string{"0"}}}}); len(got) != 2 {
			t.Fatalf("after a refused delete, Find batch > 0 = %v", got)
		}
		// A schema lists it.
		_, err = c.CreateSchema(ctx, catalog.Schema{Name: "s1", Features: []catalog.SchemaFeature{{Feature: "ph"}, {Feature: "batch", Optional: true}}})
		must(t, err)
		_, err = c.CreateSchema(ctx, catalog.Schema{Name: "s0", Features: []catalog.SchemaFeature{{Feature: "ph", Optional: true}}})
		must(t, err)
		_, err = c.DeleteFeature(ctx, "ph")
		inUse(t, "ph", err, "2 schemas list it (e.g. s0)", "lamina schema delete s0")
		if strings.Contains(err.Error(), "version") {
			t.Fatalf("ph: %q speaks of versions; none has a value of it", err)
		}
		// Unused: gone from the catalog, the indexes and queries.
		f, err := c.DeleteFeature(ctx, "tissu")
		if err != nil || f.Name != "tissu" || f.Dtype != "str" {
			t.Fatalf("DeleteFeature(tissu) = %+v, %v", f, err)
		}
		fs, err := c.Features(ctx)
		must(t, err)
		if slices.ContainsFunc(fs, func(f catalog.Feature) bool { return f.Name == "tissu" }) || len(fs) != 3 {
			t.Fatalf("Features after the delete = %+v", fs)
		}
		if _, err := c.DeleteFeature(ctx, "tissu"); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("deleted twice: %v", err)
		}
		if _, err := c.Find(ctx, catalog.Filter{Where: []catalog.Cond{{Field: "tissu", Op: "=", Values: []string{"x"}}}}); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("Find by a deleted feature: %v", err)
		}
		if _, err := c.Annotate(ctx, vs["c.csv"].UID, catalog.Annotations{Features: map[string][]string{"tissu": {"x"}}}); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("Annotate with a deleted feature: %v", err)
		}
		// The name is free: another dtype now.
		if f, err := c.CreateFeature(ctx, catalog.Feature{Name: "tissu", Dtype: "int"}); err != nil || f.Dtype != "int" {
			t.Fatalf("created again = %+v, %v", f, err)
		}
		// Once the schemas and values are gone, it goes.
		for _, s := range []string{"s0", "s1"} {
			if _, err := c.DeleteSchema(ctx, s); err != nil {
				t.Fatalf("DeleteSchema(%s): %v", s, err)
			}
		}
		if _, err := c.DeleteFeature(ctx, "ph"); err != nil {
			t.Fatalf("ph without schemas: %v", err)
		}
		for _, k := range []string{"a.csv", "b.csv"} {
			_, err := c.Unannotate(ctx, vs[k].UID, catalog.Annotations{Features: map[string][]string{"batch": nil}})
			must(t, err)
		}
		if _, err := c.DeleteFeature(ctx, "batch"); err != nil {
			t.Fatalf("batch without values: %v", err)
		}
		if a, err := c.Annotations(ctx, vs["a.csv"].UID); err != nil || len(a.Labels) != 1 {
			t.Fatalf("Annotations after the deletes = %+v, %v", a, err)
		}
	})

	t.Run("DeleteFeatureTrashed", func(t *testing.T) {
		c, vs := setup(t)
		_, err := c.Annotate(ctx, vs["c.csv"].UID, catalog.Annotations{Features: map[string][]string{"tissu": {"liver"}}})
		must(t, err)
		_, err = c.Trash(ctx, "c.csv")
		must(t, err)
		// The trash keeps the values: restore brings them back.
		_, err = c.DeleteFeature(ctx, "tissu")
		inUse(t, "tissu", err, "1 version has values of it (e.g. c.csv@v1 in the trash)", "lamina annotate "+vs["c.csv"].UID+" --remove --feature tissu")
		// Several: each named, a trashed one by its uid (ls --where
		// skips the trash, so nothing else lists it), a live one by its
		// reference; past MaxUsers, a count.
		_, err = c.Annotate(ctx, vs["a.csv"].UID, catalog.Annotations{Features: map[string][]string{"tissu": {"lung"}}})
		must(t, err)
		_, err = c.DeleteFeature(ctx, "tissu")
		inUse(t, "tissu", err, "2 versions have values of it", "\nthe versions, one in the trash by its uid:",
			"\n  "+vs["c.csv"].UID+" (c.csv@v1, in the trash)", "\n  "+vs["a.csv"].Ref())
		var more []string
		for i := range catalog.MaxUsers {
			s, err := c.Save(ctx, []catalog.NewVersion{NV(fmt.Sprintf("m/%02d.csv", i), fmt.Sprint(i))})
			must(t, err)
			_, err = c.Annotate(ctx, s[0].Version.UID, catalog.Annotations{Features: map[string][]string{"tissu": {"x"}}})
			must(t, err)
			more = append(more, s[0].Version.UID)
		}
		_, err = c.DeleteFeature(ctx, "tissu")
		inUse(t, "tissu", err, fmt.Sprintf("%d versions have values of it", catalog.MaxUsers+2), "\n  … and 2 more")
		if n := strings.Count(err.Error(), "\n  "); n != catalog.MaxUsers+1 {
			t.Fatalf("the refusal names %d lines, want %d and a count:\n%s", n, catalog.MaxUsers+1, err)
		}
		for _, uid := range append(more, vs["a.csv"].UID) {
			_, err = c.Unannotate(ctx, uid, catalog.Annotations{Features: map[string][]string{"tissu": nil}})
			must(t, err)
		}
		_, err = c.Unannotate(ctx, vs["c.csv"].UID, catalog.Annotations{Features: map[string][]string{"tissu": nil}})
		must(t, err)
		if _, err := c.DeleteFeature(ctx, "tissu"); err != nil {
			t.Fatalf("without its values: %v", err)
		}
	})

	t.Run("DeleteLabel", func(t *testing.T) {
		c, vs := setup(t)
		if _, err := c.DeleteLabel(ctx, "qualty"); !errors.Is(err, catalog.ErrNotFound) || !strings.Contains(err.Error(), `"quality"`) {
			t.Fatalf("unknown label: %v (want a suggestion)", err)
		}
		// A parent.
		_, err := c.DeleteLabel(ctx, "quality")
		inUse(t, "quality", err, `label "quality"`, "the parent of 1 label (e.g. high quality)", "lamina label delete 'high quality'")
		if strings.Contains(err.Error(), "version") {
			t.Fatalf("quality: %q speaks of versions; none has it", err)
		}
		// On a version.
		_, err = c.DeleteLabel(ctx, "high quality")
		inUse(t, "high quality", err, "it is on 1 version (e.g. "+vs["a.csv"].Ref()+")", "lamina annotate "+vs["a.csv"].Ref()+" --remove --label 'high quality'")
		// A value of a cat[ULabel] feature.
		_, err = c.DeleteLabel(ctx, "treated")
		inUse(t, "treated", err, "it is on 1 version (e.g. "+vs["b.csv"].Ref()+", as a value of feature condition)", "--remove --feature condition=treated")
		// Both: counted once per version.
		_, err = c.Annotate(ctx, vs["b.csv"].UID, catalog.Annotations{Labels: []string{"treated"}})
		must(t, err)
		_, err = c.Annotate(ctx, vs["c.csv"].UID, catalog.Annotations{Features: map[string][]string{"condition": {"treated"}}})
		must(t, err)
		_, err = c.DeleteLabel(ctx, "treated")
		inUse(t, "treated", err, "it is on 2 versions (e.g. "+vs["b.csv"].Ref()+"; on some as a value of feature condition)",
			"--remove --label treated (--feature condition=treated where it is a value of condition)")
		// Unused: gone, and queries no longer know it.
		l, err := c.DeleteLabel(ctx, "spare")
		if err != nil || l.Name != "spare" {
			t.Fatalf("DeleteLabel(spare) = %+v, %v", l, err)
		}
		ls, err := c.Labels(ctx)
		must(t, err)
		if slices.ContainsFunc(ls, func(l catalog.Label) bool { return l.Name == "spare" }) || len(ls) != 3 {
			t.Fatalf("Labels after the delete = %+v", ls)
		}
		if _, err := c.Find(ctx, catalog.Filter{Labels: []string{"spare"}}); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("Find by a deleted label: %v", err)
		}
		if _, err := c.Annotate(ctx, vs["c.csv"].UID, catalog.Annotations{Labels: []string{"spare"}}); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("Annotate with a deleted label: %v", err)
		}
		// A child deleted, the parent follows.
		_, err = c.Unannotate(ctx, vs["a.csv"].UID, catalog.Annotations{Labels: []string{"high quality"}})
		must(t, err)
		if _, err := c.DeleteLabel(ctx, "high quality"); err != nil {
			t.Fatalf("high quality, unused: %v", err)
		}
		if _, err := c.DeleteLabel(ctx, "quality"); err != nil {
			t.Fatalf("quality without children: %v", err)
		}
	})

	t.Run("DeleteSchema", func(t *testing.T) {
		c, vs := setup(t)
		_, err := c.CreateSchema(ctx, catalog.Schema{Name: "my schema", Features: []catalog.SchemaFeature{{Feature: "batch"}}})
		must(t, err)
		_, err = c.CreateSchema(ctx, catalog.Schema{Name: "other", Features: []catalog.SchemaFeature{{Feature: "batch"}}})
		must(t, err)
		if _, err := c.DeleteSchema(ctx, "my schem"); !errors.Is(err, catalog.ErrNotFound) || !strings.Contains(err.Error(), `"my schema"`) {
			t.Fatalf("unknown schema: %v (want a suggestion)", err)
		}
		// Curated with it (curate records the schema).
		_, err = c.Annotate(ctx, vs["a.csv"].UID, catalog.Annotations{Schema: "my schema"})
		must(t, err)
		_, err = c.Annotate(ctx, vs["b.csv"].UID, catalog.Annotations{Schema: "other"})
		must(t, err)
		_, err = c.DeleteSchema(ctx, "my schema")
		inUse(t, "my schema", err, "1 version was curated with it (e.g. "+vs["a.csv"].Ref()+")", "--remove --schema 'my schema'")
		_, err = c.Unannotate(ctx, vs["a.csv"].UID, catalog.Annotations{Schema: "my schema"})
		must(t, err)
		s, err := c.DeleteSchema(ctx, "my schema")
		if err != nil || s.Name != "my schema" || len(s.Features) != 1 {
			t.Fatalf("DeleteSchema = %+v, %v", s, err)
		}
		if ss, err := c.Schemas(ctx); err != nil || len(ss) != 1 || ss[0].Name != "other" {
			t.Fatalf("Schemas after the delete = %+v, %v", ss, err)
		}
		if _, err := c.Annotate(ctx, vs["a.csv"].UID, catalog.Annotations{Schema: "my schema"}); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("Annotate with a deleted schema: %v", err)
		}
	})

	// An Annotate racing a delete: one of the two wins, never both, and
	// a deleted feature or label leaves no value behind.
	t.Run("DeleteCollection", func(t *testing.T) {
		c, vs := setup(t)
		for _, ms := range [][]string{{vs["a.csv"].UID}, {vs["a.csv"].UID, vs["b.csv"].UID}} {
			_, err := c.SaveCollection(ctx, catalog.NewCollection{Name: "pick", Members: ms})
			must(t, err)
		}
		// "pick2" shares the prefix "pick" and a NUL-free longer name: it stays.
		_, err := c.SaveCollection(ctx, catalog.NewCollection{Name: "pick2", Members: []string{vs["c.csv"].UID}})
		must(t, err)
		got, err := c.DeleteCollection(ctx, "pick")
		must(t, err)
		if len(got) != 2 || got[0].Version != 1 || got[1].Version != 2 || got[0].Name != "pick" || len(got[1].Members) != 2 {
			t.Fatalf("DeleteCollection returned %+v, want pick v1 and v2, oldest first", got)
		}
		if _, err := c.Collection(ctx, "pick", 0); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("Collection after the delete: %v, want ErrNotFound", err)
		}
		if _, err := c.CollectionVersions(ctx, "pick"); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("CollectionVersions after the delete: %v, want ErrNotFound", err)
		}
		cs, err := c.Collections(ctx)
		must(t, err)
		if len(cs) != 1 || cs[0].Name != "pick2" {
			t.Fatalf("Collections after the delete: %+v, want pick2 alone", cs)
		}
		// The members stay; the name can be used again, after the highest
		// number it had: pick@v1 (in a run's inputs, a note, a script)
		// never names the new list. It started over at v1.
		for _, k := range []string{"a.csv", "b.csv"} {
			if _, err := c.ByUID(ctx, vs[k].UID); err != nil {
				t.Fatalf("member %s after the delete: %v", k, err)
			}
		}
		col, err := c.SaveCollection(ctx, catalog.NewCollection{Name: "pick", Members: []string{vs["c.csv"].UID}})
		must(t, err)
		if col.Version != 3 || col.Unchanged {
			t.Fatalf("pick made again is v%d (unchanged %v), want v3", col.Version, col.Unchanged)
		}
		for _, n := range []int{1, 2} {
			if _, err := c.Collection(ctx, "pick", n); !errors.Is(err, catalog.ErrNotFound) {
				t.Fatalf("pick@v%d of the deleted collection after it was made again: %v, want ErrNotFound", n, err)
			}
		}
		if got, err := c.CollectionVersions(ctx, "pick"); err != nil || len(got) != 1 || got[0].Version != 3 {
			t.Fatalf("CollectionVersions of pick made again: %+v, %v; want v3 alone", got, err)
		}
		// Its next version, and again after another delete; the members
		// of a deleted version are no "unchanged" latest.
		col, err = c.SaveCollection(ctx, catalog.NewCollection{Name: "pick", Members: []string{vs["a.csv"].UID}})
		must(t, err)
		if col.Version != 4 {
			t.Fatalf("pick's next version is v%d, want v4", col.Version)
		}
		got, err = c.DeleteCollection(ctx, "pick")
		must(t, err)
		if len(got) != 2 || got[0].Version != 3 || got[1].Version != 4 {
			t.Fatalf("DeleteCollection of pick made again returned %+v, want v3 and v4", got)
		}
		col, err = c.SaveCollection(ctx, catalog.NewCollection{Name: "pick", Members: []string{vs["a.csv"].UID}})
		must(t, err)
		if col.Version != 5 || col.Unchanged {
			t.Fatalf("pick made a third time is v%d (unchanged %v), want v5", col.Version, col.Unchanged)
		}
		// Another name, never deleted, starts at v1; so does one that only
		// shares a deleted name's prefix.
		for _, name := range []string{"fresh", "picking"} {
			col, err = c.SaveCollection(ctx, catalog.NewCollection{Name: name, Members: []string{vs["a.csv"].UID}})
			if err != nil || col.Version != 1 {
				t.Fatalf("SaveCollection of %s: v%d, %v; want v1", name, col.Version, err)
			}
		}
		_, err = c.DeleteCollection(ctx, "pik")
		if !errors.Is(err, catalog.ErrNotFound) || !strings.Contains(err.Error(), `no collection "pik"; did you mean "pick`) {
			t.Fatalf("DeleteCollection of no collection: %v", err)
		}
	})

	// Names and filters that are not UTF-8 are refused alike by every
	// store (PostgreSQL answered its own "invalid byte sequence", bbolt
	// stored them, and an export changed them to U+FFFD).
	t.Run("NotUTF8", func(t *testing.T) {
		c, vs := setup(t)
		bad := "x\xff"
		notUTF8 := func(what string, err error) {
			t.Helper()
			if !errors.Is(err, ref.ErrNotUTF8) || !strings.Contains(err.Error(), "valid UTF-8") {
				t.Fatalf("%s: %v, want ref.ErrNotUTF8", what, err)
			}
		}
		_, err := c.CreateLabel(ctx, catalog.Label{Name: bad})
		notUTF8("CreateLabel", err)
		_, err = c.CreateSchema(ctx, catalog.Schema{Name: bad, Features: []catalog.SchemaFeature{{Feature: "batch"}}})
		notUTF8("CreateSchema", err)
		_, err = c.SaveCollection(ctx, catalog.NewCollection{Name: bad, Members: []string{vs["a.csv"].UID}})
		notUTF8("SaveCollection", err)
		_, err = c.Collection(ctx, bad, 0)
		notUTF8("Collection", err)
		_, err = c.CollectionVersions(ctx, bad)
		notUTF8("CollectionVersions", err)
		_, err = c.DeleteCollection(ctx, bad)
		notUTF8("DeleteCollection", err)
		_, err = c.DeleteLabel(ctx, bad)
		notUTF8("DeleteLabel", err)
		_, err = c.DeleteFeature(ctx, bad)
		notUTF8("DeleteFeature", err)
		_, err = c.DeleteSchema(ctx, bad)
		notUTF8("DeleteSchema", err)
		for what, f := range map[string]catalog.Filter{
			"prefix": {Prefix: "d/" + bad},
			"key^=":  {Where: []catalog.Cond{{Field: "key", Op: "^=", Values: []string{bad}}}},
			"label":  {Labels: []string{bad}},
			"value":  {Where: []catalog.Cond{{Field: "tissu", Op: "=", Values: []string{bad}}}},
		} {
			_, err := c.Find(ctx, f)
			notUTF8("Find "+what, err)
		}
		ls, err := c.Labels(ctx)
		must(t, err)
		if len(ls) != 4 {
			t.Fatalf("labels after the refusals: %+v", ls)
		}
	})

	t.Run("DeleteRacesAnnotate", func(t *testing.T) {
		c, vs := setup(t)
		uid := vs["c.csv"].UID
		for i := range 25 {
			name := fmt.Sprintf("f%d", i)
			_, err := c.CreateFeature(ctx, catalog.Feature{Name: name, Dtype: "str"})
			must(t, err)
			_, err = c.CreateLabel(ctx, catalog.Label{Name: name})
			must(t, err)
			var wg sync.WaitGroup
			var delF, delL, ann error
			wg.Add(3)
			go func() { defer wg.Done(); _, delF = c.DeleteFeature(ctx, name) }()
			go func() { defer wg.Done(); _, delL = c.DeleteLabel(ctx, name) }()
			go func() {
				defer wg.Done()
				_, ann = c.Annotate(ctx, uid, catalog.Annotations{Features: map[string][]string{name: {"x"}}, Labels: []string{name}})
			}()
			wg.Wait()
			a, err := c.Annotations(ctx, uid)
			must(t, err)
			_, hasF := a.Features[name]
			hasL := slices.Contains(a.Labels, name)
			// A delete before the annotate fails it, after which the other
			// delete finds nothing in use; an annotate first keeps both.
			if ann == nil && !(errors.Is(delF, catalog.ErrConflict) && errors.Is(delL, catalog.ErrConflict) && hasF && hasL) {
				t.Fatalf("round %d: annotated, yet deletes %v / %v, annotations %+v", i, delF, delL, a)
			}
			if ann != nil && !(errors.Is(ann, catalog.ErrNotFound) && delF == nil && delL == nil && !hasF && !hasL) {
				t.Fatalf("round %d: annotate %v, deletes %v / %v, annotations %+v", i, ann, delF, delL, a)
			}
			if ann == nil {
				_, err := c.Unannotate(ctx, uid, catalog.Annotations{Features: map[string][]string{name: nil}, Labels: []string{name}})
				must(t, err)
			}
		}
	})
}
