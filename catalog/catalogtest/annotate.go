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
)

// runAnnotate checks features, labels, schemas, annotations, Find, Search
// and collections.
func runAnnotate(t *testing.T, open func(t *testing.T) catalog.Catalog) {
	ctx := context.Background()
	must := func(t *testing.T, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	keys := func(vs []catalog.Version) []string {
		out := []string{}
		for _, v := range vs {
			out = append(out, v.Key)
		}
		return out
	}
	// setup makes three annotated versions and one unannotated.
	setup := func(t *testing.T) (catalog.Catalog, map[string]catalog.Version) {
		c := open(t)
		for _, f := range []catalog.Feature{{Name: "tissue", Dtype: "cat[tissue]"}, {Name: "condition", Dtype: "cat"},
			{Name: "batch", Dtype: "int"}, {Name: "score", Dtype: "float"}, {Name: "day", Dtype: "date"}} {
			_, err := c.CreateFeature(ctx, f)
			must(t, err)
		}
		for _, l := range []catalog.Label{{Name: "quality"}, {Name: "high_quality", Parent: "quality"}, {Name: "treated"}, {Name: "control"}} {
			_, err := c.CreateLabel(ctx, l)
			must(t, err)
		}
		vs := map[string]catalog.Version{}
		for _, k := range []string{"scrna/a.h5ad", "scrna/b.h5ad", "bulk/c.csv", "other/d.txt"} {
			nv := NV(k, k)
			nv.Description = "PBMC gene expression " + k
			if k == "other/d.txt" {
				nv.Description = "notes"
			}
			s, err := c.Save(ctx, []catalog.NewVersion{nv})
			must(t, err)
			vs[k] = s[0].Version
		}
		ann := map[string]catalog.Annotations{
			"scrna/a.h5ad": {Features: map[string][]string{"tissue": {"bone marrow"}, "condition": {"treated"}, "batch": {"1"}, "day": {"2026-01-05"}},
				Labels: []string{"high_quality"}, Terms: []catalog.Term{{Entity: "celltype", ID: "CL:0000624", Name: "CD4-positive, alpha-beta T cell"}}},
			"scrna/b.h5ad": {Features: map[string][]string{"tissue": {"blood"}, "condition": {"control"}, "batch": {"5"}, "score": {"-2.5"}},
				Labels: []string{"quality"}, Terms: []catalog.Term{{Entity: "celltype", ID: "CL:0000236", Name: "B cell"}}},
			"bulk/c.csv": {Features: map[string][]string{"tissue": {"bone marrow"}, "batch": {"10"}, "score": {"3"}}},
		}
		for k, a := range ann {
			_, err := c.Annotate(ctx, vs[k].UID, a)
			must(t, err)
		}
		return c, vs
	}

	t.Run("FeaturesLabelsSchemas", func(t *testing.T) {
		c := open(t)
		f, err := c.CreateFeature(ctx, catalog.Feature{Name: "batch", Dtype: "int"})
		if err != nil || f.Dtype != "int" || f.CreatedAt.IsZero() {
			t.Fatalf("CreateFeature = %+v, %v", f, err)
		}
		if _, err := c.CreateFeature(ctx, catalog.Feature{Name: "batch", Dtype: "int"}); err != nil {
			t.Fatalf("same feature again: %v", err)
		}
		// The same feature with a description: it is updated, the rest kept;
		// without one, the description stays.
		if g, err := c.CreateFeature(ctx, catalog.Feature{Name: "batch", Dtype: "int", Description: "sequencing batch"}); err != nil ||
			g.Description != "sequencing batch" || !g.CreatedAt.Equal(f.CreatedAt) {
			t.Fatalf("a new description: %+v, %v", g, err)
		}
		if g, err := c.CreateFeature(ctx, catalog.Feature{Name: "batch", Dtype: "int"}); err != nil || g.Description != "sequencing batch" {
			t.Fatalf("no description given: %+v, %v", g, err)
		}
		if _, err := c.CreateFeature(ctx, catalog.Feature{Name: "batch", Dtype: "str"}); !errors.Is(err, catalog.ErrConflict) {
			t.Fatalf("other dtype: %v", err)
		}
		if _, err := c.CreateFeature(ctx, catalog.Feature{Name: "x", Dtype: "integer"}); !errors.Is(err, catalog.ErrInvalid) {
			t.Fatalf("bad dtype: %v", err)
		}
		if _, err := c.CreateFeature(ctx, catalog.Feature{Name: "size", Dtype: "int"}); !errors.Is(err, catalog.ErrInvalid) {
			t.Fatalf("builtin name: %v", err)
		}
		if f, _ := c.CreateFeature(ctx, catalog.Feature{Name: "cond", Dtype: "cat"}); f.Dtype != "cat[ULabel]" {
			t.Fatalf("cat = %q", f.Dtype)
		}
		fs, err := c.Features(ctx)
		if err != nil || len(fs) != 2 || fs[0].Name != "batch" || fs[0].Description != "sequencing batch" {
			t.Fatalf("Features = %+v, %v", fs, err)
		}
		if _, err := c.CreateLabel(ctx, catalog.Label{Name: "child", Parent: "nope"}); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("missing parent: %v", err)
		}
		_, err = c.CreateLabel(ctx, catalog.Label{Name: "parent"})
		must(t, err)
		_, err = c.CreateLabel(ctx, catalog.Label{Name: "child", Parent: "parent"})
		must(t, err)
		if _, err := c.CreateLabel(ctx, catalog.Label{Name: "parent", Parent: "child"}); !errors.Is(err, catalog.ErrInvalid) {
			t.Fatalf("cycle: %v", err)
		}
		ls, err := c.Labels(ctx)
		if err != nil || len(ls) != 2 || ls[0].Name != "child" || ls[0].Parent != "parent" {
			t.Fatalf("Labels = %+v, %v", ls, err)
		}
		// Again without a parent or with its own: unchanged. With another
		// parent: moved there (lamina label create asks for --move first).
		for _, p := range []string{"", "parent"} {
			if l, err := c.CreateLabel(ctx, catalog.Label{Name: "child", Parent: p, Description: "new"}); err != nil || l.Parent != "parent" || l.Description != "" {
				t.Fatalf("child again with parent %q = %+v, %v", p, l, err)
			}
		}
		_, err = c.CreateLabel(ctx, catalog.Label{Name: "other"})
		must(t, err)
		if l, err := c.CreateLabel(ctx, catalog.Label{Name: "child", Parent: "other"}); err != nil || l.Parent != "other" {
			t.Fatalf("move = %+v, %v", l, err)
		}
		if ls, err := c.Labels(ctx); err != nil || len(ls) != 3 || ls[0].Name != "child" || ls[0].Parent != "other" {
			t.Fatalf("Labels after the move = %+v, %v", ls, err)
		}
		_, err = c.CreateSchema(ctx, catalog.Schema{Name: "s", Features: []catalog.SchemaFeature{{Feature: "batch"}, {Feature: "btch"}}})
		if !errors.Is(err, catalog.ErrNotFound) || !strings.Contains(err.Error(), `"batch"`) {
			t.Fatalf("schema with unknown feature: %v (want a suggestion)", err)
		}
		s, err := c.CreateSchema(ctx, catalog.Schema{Name: "s", Features: []catalog.SchemaFeature{{Feature: "batch"}, {Feature: "cond", Optional: true}}})
		must(t, err)
		ss, err := c.Schemas(ctx)
		if err != nil || len(ss) != 1 || !reflect.DeepEqual(ss[0].Features, s.Features) {
			t.Fatalf("Schemas = %+v, %v", ss, err)
		}
	})

	t.Run("Annotate", func(t *testing.T) {
		c, vs := setup(t)
		uid := vs["scrna/a.h5ad"].UID
		a, err := c.Annotate(ctx, uid, catalog.Annotations{Features: map[string][]string{"batch": {"1", "2.0"}}, Labels: []string{"treated"}})
		must(t, err)
		if got := a.Features["batch"]; !reflect.DeepEqual(got, []string{"1", "2"}) {
			t.Fatalf("batch values = %v (canonical, merged)", got)
		}
		if !reflect.DeepEqual(a.Labels, []string{"high_quality", "treated"}) || len(a.Terms) != 1 {
			t.Fatalf("annotations = %+v", a)
		}
		got, err := c.Annotations(ctx, uid)
		if err != nil || !reflect.DeepEqual(got, a) {
			t.Fatalf("Annotations = %+v, %v; want %+v", got, err, a)
		}
		for _, bad := range []catalog.Annotations{
			{Features: map[string][]string{"batch": {"one"}}},
			{Features: map[string][]string{"batch": {"1.5"}}},
			{Features: map[string][]string{"day": {"yesterday"}}},
		} {
			if _, err := c.Annotate(ctx, uid, bad); !errors.Is(err, catalog.ErrInvalid) {
				t.Fatalf("Annotate(%v): %v", bad, err)
			}
		}
		_, err = c.Annotate(ctx, uid, catalog.Annotations{Features: map[string][]string{"tisue": {"x"}}})
		if !errors.Is(err, catalog.ErrNotFound) || !strings.Contains(err.Error(), `"tissue"`) {
			t.Fatalf("typo in feature: %v", err)
		}
		if _, err := c.Annotate(ctx, uid, catalog.Annotations{Features: map[string][]string{"condition": {"nope"}}}); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("cat[ULabel] value that is no label: %v", err)
		}
		if _, err := c.Annotate(ctx, uid, catalog.Annotations{Labels: []string{"nope"}}); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("unknown label: %v", err)
		}
		if _, err := c.Annotate(ctx, "zzzzzzzzzzzzzzzzzzzz", catalog.Annotations{Labels: []string{"treated"}}); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("unknown uid: %v", err)
		}
		// A failed Annotate changes nothing.
		if got, _ := c.Annotations(ctx, uid); !reflect.DeepEqual(got, a) {
			t.Fatalf("after failures: %+v", got)
		}
	})

	// Merging keeps each list sorted and unique (by id for terms, the
	// first name recorded kept), with sets, not a scan per value; the
	// same values again write nothing and the index still answers.
	t.Run("AnnotateDedupe", func(t *testing.T) {
		c, vs := setup(t)
		uid := vs["other/d.txt"].UID
		add := catalog.Annotations{Features: map[string][]string{"tissue": {"lung", "blood", "lung", "blood", "aorta"}},
			Labels: []string{"treated", "control", "treated"},
			Terms:  []catalog.Term{{Entity: "tissue", ID: "UBERON:2", Name: "lung"}, {Entity: "tissue", ID: "UBERON:1", Name: "blood"}, {Entity: "tissue", ID: "UBERON:2", Name: "other"}}}
		want := catalog.Annotations{UID: uid, Features: map[string][]string{"tissue": {"aorta", "blood", "lung"}},
			Labels: []string{"control", "treated"},
			Terms:  []catalog.Term{{Entity: "tissue", ID: "UBERON:1", Name: "blood"}, {Entity: "tissue", ID: "UBERON:2", Name: "lung"}}}
		for i := 0; i < 2; i++ { // again: unchanged
			a, err := c.Annotate(ctx, uid, add)
			must(t, err)
			if !reflect.DeepEqual(a, want) {
				t.Fatalf("Annotate #%d = %+v; want %+v", i+1, a, want)
			}
		}
		a, err := c.Annotate(ctx, uid, catalog.Annotations{Features: map[string][]string{"tissue": {"heart", "lung"}},
			Terms: []catalog.Term{{Entity: "tissue", ID: "UBERON:0", Name: "heart"}, {Entity: "tissue", ID: "UBERON:1", Name: "renamed"}}})
		must(t, err)
		if got := a.Features["tissue"]; !reflect.DeepEqual(got, []string{"aorta", "blood", "heart", "lung"}) {
			t.Fatalf("tissue = %v", got)
		}
		if len(a.Terms) != 3 || a.Terms[0].ID != "UBERON:0" || a.Terms[1].Name != "blood" {
			t.Fatalf("terms = %+v", a.Terms)
		}
		for _, f := range []catalog.Filter{
			{Where: []catalog.Cond{{Field: "tissue", Op: "=", Values: []string{"aorta"}}}, Prefix: "other/"},
			{Where: []catalog.Cond{{Field: "tissue", Op: "=", Values: []string{"heart"}}}},
			{Labels: []string{"control"}, Prefix: "other/"},
			{Terms: [][]string{{"UBERON:2"}}},
		} {
			got, err := c.Find(ctx, f)
			must(t, err)
			if !reflect.DeepEqual(keys(got), []string{"other/d.txt"}) {
				t.Fatalf("Find(%+v) = %v", f, keys(got))
			}
		}
		hits, err := c.Search(ctx, "aorta heart", 10)
		must(t, err)
		if len(hits) != 1 || hits[0].Version.UID != uid {
			t.Fatalf("Search = %+v", hits)
		}
	})

	// Unannotate takes values, labels, terms and the schema off a version
	// and out of every index: Find and Search no longer find the version
	// by them. Something the version does not have is ErrNotFound saying
	// what it has, and nothing is removed.
	t.Run("Unannotate", func(t *testing.T) {
		c, vs := setup(t)
		uid := vs["scrna/a.h5ad"].UID
		find := func(t *testing.T, f catalog.Filter) []string {
			t.Helper()
			got, err := c.Find(ctx, f)
			must(t, err)
			return keys(got)
		}
		where := func(field, op, value string) catalog.Filter {
			return catalog.Filter{Where: []catalog.Cond{{Field: field, Op: op, Values: []string{value}}}}
		}
		wantKeys := func(t *testing.T, f catalog.Filter, want ...string) {
			t.Helper()
			if want == nil {
				want = []string{}
			}
			if got := find(t, f); !reflect.DeepEqual(got, want) {
				t.Fatalf("Find(%+v) = %v, want %v", f, got, want)
			}
		}
		_, err := c.Annotate(ctx, uid, catalog.Annotations{Features: map[string][]string{"batch": {"2"}}})
		must(t, err)
		wantKeys(t, where("batch", "=", "1"), "scrna/a.h5ad")

		// One value of an int feature, given as the dtype reads it.
		a, err := c.Unannotate(ctx, uid, catalog.Annotations{Features: map[string][]string{"batch": {"1.0"}}})
		must(t, err)
		if got := a.Features["batch"]; !reflect.DeepEqual(got, []string{"2"}) {
			t.Fatalf("batch after removing 1 = %v", got)
		}
		if got, err := c.Annotations(ctx, uid); err != nil || !reflect.DeepEqual(got, a) {
			t.Fatalf("Annotations = %+v, %v; want %+v", got, err, a)
		}
		wantKeys(t, where("batch", "=", "1"))
		wantKeys(t, where("batch", "<", "2"))
		wantKeys(t, where("batch", "=", "2"), "scrna/a.h5ad")
		wantKeys(t, where("batch", "<", "10"), "scrna/a.h5ad", "scrna/b.h5ad")

		// Not there: an error naming what the version has; nothing removed,
		// even what the same call named that is there.
		for _, tc := range []struct {
			remove catalog.Annotations
			kind   error
			msg    string
		}{
			{catalog.Annotations{Features: map[string][]string{"batch": {"1"}}}, catalog.ErrNotFound, `scrna/a.h5ad@v1 has no batch = "1" (its batch values: "2")`},
			{catalog.Annotations{Labels: []string{"high_quality"}, Features: map[string][]string{"batch": {"7"}}}, catalog.ErrNotFound, `has no batch = "7"`},
			{catalog.Annotations{Labels: []string{"high_quality", "treated"}}, catalog.ErrNotFound, `its labels: "high_quality"`},
			{catalog.Annotations{Terms: []catalog.Term{{ID: "CL:0000624"}, {ID: "CL:0000236"}}}, catalog.ErrNotFound, `its terms: CL:0000624 "CD4-positive, alpha-beta T cell"`},
			{catalog.Annotations{Features: map[string][]string{"score": nil}}, catalog.ErrNotFound, "has values of batch, condition, day, tissue"},
			{catalog.Annotations{Features: map[string][]string{"tisue": nil}}, catalog.ErrNotFound, `"tissue"`},
			{catalog.Annotations{Schema: "s"}, catalog.ErrNotFound, "it has none"},
			{catalog.Annotations{}, catalog.ErrInvalid, "nothing to remove"},
		} {
			_, err := c.Unannotate(ctx, uid, tc.remove)
			if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("Unannotate(%+v) = %v; want %v saying %s", tc.remove, err, tc.kind, tc.msg)
			}
			if got, _ := c.Annotations(ctx, uid); !reflect.DeepEqual(got, a) {
				t.Fatalf("after a failed Unannotate(%+v): %+v, want %+v", tc.remove, got, a)
			}
		}
		if _, err := c.Unannotate(ctx, "zzzzzzzzzzzzzzzzzzzz", catalog.Annotations{Labels: []string{"treated"}}); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("unknown uid: %v", err)
		}
		wantKeys(t, catalog.Filter{Labels: []string{"high_quality"}}, "scrna/a.h5ad")

		// A label, a term, and every value of a feature (none given).
		a, err = c.Unannotate(ctx, uid, catalog.Annotations{Labels: []string{"high_quality"}, Terms: []catalog.Term{{ID: "CL:0000624"}},
			Features: map[string][]string{"tissue": nil}})
		must(t, err)
		if a.Labels != nil || a.Terms != nil || a.Features["tissue"] != nil || len(a.Features) != 3 {
			t.Fatalf("after removing the label, the term and tissue: %+v", a)
		}
		wantKeys(t, catalog.Filter{Labels: []string{"high_quality"}})
		wantKeys(t, catalog.Filter{Labels: []string{"quality"}}, "scrna/b.h5ad")
		wantKeys(t, catalog.Filter{Terms: [][]string{{"CL:0000624"}}})
		wantKeys(t, where("tissue", "=", "bone marrow"), "bulk/c.csv")
		hits, err := c.Search(ctx, "marrow", 10)
		must(t, err)
		if len(hits) != 1 || hits[0].Version.Key != "bulk/c.csv" {
			t.Fatalf("Search marrow = %+v", hits)
		}

		// The schema, then the rest: no annotations left, as before any.
		_, err = c.CreateSchema(ctx, catalog.Schema{Name: "s", Features: []catalog.SchemaFeature{{Feature: "batch"}}})
		must(t, err)
		_, err = c.Annotate(ctx, uid, catalog.Annotations{Schema: "s"})
		must(t, err)
		if _, err := c.Unannotate(ctx, uid, catalog.Annotations{Schema: "t"}); !errors.Is(err, catalog.ErrNotFound) || !strings.Contains(err.Error(), `its schema: "s"`) {
			t.Fatalf("another schema: %v", err)
		}
		a, err = c.Unannotate(ctx, uid, catalog.Annotations{Schema: "s", Features: map[string][]string{"batch": {"2"}, "condition": {}, "day": {"2026-01-05T00:00:00Z"}}})
		must(t, err)
		if !a.IsZero() || a.UID != uid {
			t.Fatalf("after removing everything: %+v", a)
		}
		if got, err := c.Annotations(ctx, uid); err != nil || !reflect.DeepEqual(got, catalog.Annotations{UID: uid}) {
			t.Fatalf("Annotations after removing everything = %+v, %v", got, err)
		}
		wantKeys(t, where("batch", ">", "0"), "bulk/c.csv", "scrna/b.h5ad")
		wantKeys(t, where("condition", "=", "treated"))
		wantKeys(t, where("day", ">=", "2026-01-01"))
		// Annotated again afterwards, as any version.
		_, err = c.Annotate(ctx, uid, catalog.Annotations{Features: map[string][]string{"batch": {"3"}}})
		must(t, err)
		wantKeys(t, where("batch", "=", "3"), "scrna/a.h5ad")
	})

	// A value of a cat[ENTITY] feature names its terms: a Find by the
	// value requires one (cmd/lamina/query.go), so Unannotate takes the
	// terms with the last value naming them, decided in its transaction,
	// and refuses a term a value left names.
	t.Run("UnannotateTermsOfValues", func(t *testing.T) {
		c, vs := setup(t)
		uid := vs["other/d.txt"].UID
		for _, f := range []catalog.Feature{{Name: "cell_type", Dtype: "cat[bionty.CellType]"}, {Name: "cell_type2", Dtype: "cat[celltype]"},
			{Name: "sorted_as", Dtype: "cat[CellType]"}, {Name: "stage", Dtype: "cat[bionty.DevelopmentStage]"}} {
			_, err := c.CreateFeature(ctx, f)
			must(t, err)
		}
		tcell := catalog.Term{Entity: "celltype", ID: "CL:0000084", Name: "T cell"}
		adult := catalog.Term{Entity: "developmental_stage", ID: "HsapDv:0000087", Name: "adult stage"}
		annotate := func(t *testing.T, a catalog.Annotations) {
			t.Helper()
			_, err := c.Annotate(ctx, uid, a)
			must(t, err)
		}
		values := func(f, x string) catalog.Annotations {
			return catalog.Annotations{Features: map[string][]string{f: {x}}}
		}
		// What ls --where cell_type2="T cell" asks.
		byValue := func(f string) catalog.Filter {
			return catalog.Filter{Where: []catalog.Cond{{Field: f, Op: "=", Values: []string{"T cell"}}}, Terms: [][]string{{tcell.ID}}}
		}
		found := func(t *testing.T, f catalog.Filter) bool {
			t.Helper()
			got, err := c.Find(ctx, f)
			must(t, err)
			return slices.Contains(keys(got), "other/d.txt")
		}
		a := values("cell_type", "T cell")
		a.Terms = []catalog.Term{tcell}
		annotate(t, a)
		a = values("stage", "adult stage")
		a.Terms = []catalog.Term{adult}
		annotate(t, a)

		// A term a value left names: refused, naming the value; nothing
		// removed (the label named with it stays).
		_, err := c.CreateLabel(ctx, catalog.Label{Name: "l"})
		must(t, err)
		annotate(t, catalog.Annotations{Labels: []string{"l"}})
		before, err := c.Annotations(ctx, uid)
		must(t, err)
		for _, tc := range []struct {
			remove catalog.Annotations
			msg    string
		}{
			{catalog.Annotations{Terms: []catalog.Term{{ID: tcell.ID}}, Labels: []string{"l"}}, `other/d.txt@v1 keeps term CL:0000084 "T cell": its value cell_type = "T cell" names it`},
			// cat[bionty.DevelopmentStage] is the entity developmental_stage.
			{catalog.Annotations{Terms: []catalog.Term{{ID: adult.ID}}}, `its value stage = "adult stage" names it`},
		} {
			if _, err := c.Unannotate(ctx, uid, tc.remove); !errors.Is(err, catalog.ErrConflict) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("Unannotate(%+v) = %v; want ErrConflict saying %s", tc.remove, err, tc.msg)
			}
			if got, _ := c.Annotations(ctx, uid); !reflect.DeepEqual(got, before) {
				t.Fatalf("after a refused Unannotate(%+v): %+v, want %+v", tc.remove, got, before)
			}
		}

		// Annotated with cell_type2 = "T cell" after a caller read the
		// annotations to remove cell_type: the term it named beside the
		// value, read then, must not go (it did, 6 times in 15, when the
		// CLI worked the terms out before the call).
		a = values("cell_type2", "T cell")
		a.Terms = []catalog.Term{tcell}
		annotate(t, a)
		if _, err := c.Unannotate(ctx, uid, catalog.Annotations{Features: map[string][]string{"cell_type": nil}, Terms: []catalog.Term{tcell}}); !errors.Is(err, catalog.ErrConflict) {
			t.Fatalf("removing cell_type with the term cell_type2 names: %v, want ErrConflict", err)
		}
		got, err := c.Unannotate(ctx, uid, catalog.Annotations{Features: map[string][]string{"cell_type": nil}})
		must(t, err)
		if got.Features["cell_type"] != nil || !slices.Contains(got.Terms, tcell) {
			t.Fatalf("after removing cell_type, cell_type2 left: %+v", got)
		}
		if !found(t, byValue("cell_type2")) || found(t, byValue("cell_type")) {
			t.Fatal("Find by cell_type2 = T cell misses the version, or by cell_type finds it")
		}

		// A value given as its id (curate stores those) names the term
		// too; a value of another entity, or a label, does not.
		annotate(t, values("sorted_as", tcell.ID))
		annotate(t, values("tissue", "T cell"))
		_, err = c.CreateLabel(ctx, catalog.Label{Name: "T cell"})
		must(t, err)
		annotate(t, values("condition", "T cell"))
		got, err = c.Unannotate(ctx, uid, catalog.Annotations{Features: map[string][]string{"cell_type2": {"T cell"}}})
		must(t, err)
		if !slices.Contains(got.Terms, tcell) || !found(t, catalog.Filter{Terms: [][]string{{tcell.ID}}}) {
			t.Fatalf("the term sorted_as = %s names went with cell_type2: %+v", tcell.ID, got)
		}
		// The last value naming it: the term goes with it, and the other
		// entity's term stays.
		got, err = c.Unannotate(ctx, uid, catalog.Annotations{Features: map[string][]string{"sorted_as": nil}})
		must(t, err)
		if !reflect.DeepEqual(got.Terms, []catalog.Term{adult}) || found(t, catalog.Filter{Terms: [][]string{{tcell.ID}}}) {
			t.Fatalf("after removing the last value naming T cell: %+v", got)
		}
		// A term no value names goes when named.
		annotate(t, catalog.Annotations{Terms: []catalog.Term{tcell}})
		got, err = c.Unannotate(ctx, uid, catalog.Annotations{Terms: []catalog.Term{{ID: tcell.ID}}, Features: map[string][]string{"stage": nil}})
		must(t, err)
		if got.Terms != nil {
			t.Fatalf("after removing the T cell term and stage: %+v", got)
		}
	})

	// curate keeps a value given as an alt_id (CL:0000739) and records the
	// primary term (CL:0000043 "mature basophil"): the value names its
	// term by neither name nor id. Removing another value that names the
	// term took the term, and ls --where by the alt id found nothing.
	t.Run("UnannotateValueNamingNoTerm", func(t *testing.T) {
		c, vs := setup(t)
		uid := vs["other/d.txt"].UID
		for _, f := range []catalog.Feature{{Name: "cell_type", Dtype: "cat[celltype]"}, {Name: "cell_type_id", Dtype: "cat[celltype]"}} {
			_, err := c.CreateFeature(ctx, f)
			must(t, err)
		}
		basophil := catalog.Term{Entity: "celltype", ID: "CL:0000043", Name: "mature basophil"}
		lung := catalog.Term{Entity: "tissue", ID: "UBERON:0002048", Name: "lung"}
		annotate := func(t *testing.T) {
			t.Helper()
			_, err := c.Annotate(ctx, uid, catalog.Annotations{
				Features: map[string][]string{"cell_type": {"mature basophil"}, "cell_type_id": {"CL:0000739"}, "tissue": {"lung"}},
				Terms:    []catalog.Term{basophil, lung}})
			must(t, err)
		}
		// What ls --where cell_type_id=CL:0000739 asks.
		byAltID := catalog.Filter{Where: []catalog.Cond{{Field: "cell_type_id", Op: "=", Values: []string{"CL:0000739"}}}, Terms: [][]string{{basophil.ID}}}
		found := func(t *testing.T, f catalog.Filter) bool {
			t.Helper()
			got, err := c.Find(ctx, f)
			must(t, err)
			return slices.Contains(keys(got), "other/d.txt")
		}
		annotate(t)
		got, err := c.Unannotate(ctx, uid, catalog.Annotations{Features: map[string][]string{"cell_type": {"mature basophil"}}})
		must(t, err)
		if !slices.Contains(got.Terms, basophil) || !found(t, byAltID) {
			t.Fatalf("the term the value CL:0000739 stands for went with cell_type: %+v", got)
		}
		// Named, the term is refused while the value is left.
		before, err := c.Annotations(ctx, uid)
		must(t, err)
		msg := `other/d.txt@v1 keeps term CL:0000043 "mature basophil": its value cell_type_id = "CL:0000739" may name it`
		if _, err := c.Unannotate(ctx, uid, catalog.Annotations{Terms: []catalog.Term{{ID: basophil.ID}}}); !errors.Is(err, catalog.ErrConflict) || !strings.Contains(err.Error(), msg) {
			t.Fatalf("removing the term: %v; want ErrConflict saying %s", err, msg)
		}
		if got, _ := c.Annotations(ctx, uid); !reflect.DeepEqual(got, before) {
			t.Fatalf("after a refused Unannotate: %+v, want %+v", got, before)
		}
		// Another entity's terms still go with their value.
		got, err = c.Unannotate(ctx, uid, catalog.Annotations{Features: map[string][]string{"tissue": nil}})
		must(t, err)
		if !reflect.DeepEqual(got.Terms, []catalog.Term{basophil}) {
			t.Fatalf("after removing tissue: %+v", got.Terms)
		}
		// With the value, the term goes.
		got, err = c.Unannotate(ctx, uid, catalog.Annotations{Features: map[string][]string{"cell_type_id": nil}, Terms: []catalog.Term{{ID: basophil.ID}}})
		must(t, err)
		if got.Terms != nil || found(t, catalog.Filter{Terms: [][]string{{basophil.ID}}}) {
			t.Fatalf("after removing cell_type_id and its term: %+v", got)
		}
		// Both values in one call take the term.
		annotate(t)
		got, err = c.Unannotate(ctx, uid, catalog.Annotations{Features: map[string][]string{"cell_type": nil, "cell_type_id": nil}})
		must(t, err)
		if !reflect.DeepEqual(got.Terms, []catalog.Term{lung}) {
			t.Fatalf("after removing both cell type values: %+v", got.Terms)
		}
	})

	// The CLI resolves the values of cat[ENTITY] features through its
	// ontology and says so in Resolved: a value left that names a term
	// only by an alt id keeps that term alone, not every term of its
	// entity; a value Resolved lacks (annotated after the caller read)
	// still keeps them all.
	t.Run("UnannotateResolved", func(t *testing.T) {
		c, vs := setup(t)
		uid := vs["other/d.txt"].UID
		for _, f := range []catalog.Feature{{Name: "cell_type", Dtype: "cat[celltype]"}, {Name: "cell_type_id", Dtype: "cat[celltype]"}} {
			_, err := c.CreateFeature(ctx, f)
			must(t, err)
		}
		basophil := catalog.Term{Entity: "celltype", ID: "CL:0000043", Name: "mature basophil"}
		bcell := catalog.Term{Entity: "celltype", ID: "CL:0000236", Name: "B cell"}
		_, err := c.Annotate(ctx, uid, catalog.Annotations{
			Features: map[string][]string{"cell_type": {"mature basophil", "B cell"}, "cell_type_id": {"CL:0000739", "CL:0000236"}},
			Terms:    []catalog.Term{basophil, bcell}})
		must(t, err)
		resolved := map[string]map[string][]string{"celltype": {
			"mature basophil": {basophil.ID}, "CL:0000739": {basophil.ID}, "B cell": {bcell.ID}, "CL:0000236": {bcell.ID}}}
		// CL:0000236 still names B cell.
		got, err := c.Unannotate(ctx, uid, catalog.Annotations{Features: map[string][]string{"cell_type": {"B cell"}}, Resolved: resolved})
		must(t, err)
		if !reflect.DeepEqual(got.Terms, []catalog.Term{basophil, bcell}) {
			t.Fatalf("after removing cell_type B cell: %+v", got.Terms)
		}
		// A value Resolved lacks keeps every term of its entity.
		lacking := map[string]map[string][]string{"celltype": {"mature basophil": {basophil.ID}, "CL:0000236": {bcell.ID}}}
		msg := `other/d.txt@v1 keeps term CL:0000236 "B cell": its value cell_type_id = "CL:0000739" may name it`
		before, err := c.Annotations(ctx, uid)
		must(t, err)
		if _, err := c.Unannotate(ctx, uid, catalog.Annotations{Terms: []catalog.Term{{ID: bcell.ID}}, Features: map[string][]string{"cell_type_id": {"CL:0000236"}}, Resolved: lacking}); !errors.Is(err, catalog.ErrConflict) || !strings.Contains(err.Error(), msg) {
			t.Fatalf("removing the term with a value unresolved: %v; want ErrConflict saying %s", err, msg)
		}
		if got, _ := c.Annotations(ctx, uid); !reflect.DeepEqual(got, before) {
			t.Fatalf("after a refused Unannotate: %+v, want %+v", got, before)
		}
		// No value left names B cell: its term goes with the last one.
		got, err = c.Unannotate(ctx, uid, catalog.Annotations{Features: map[string][]string{"cell_type_id": {"CL:0000236"}}, Resolved: resolved})
		must(t, err)
		if !reflect.DeepEqual(got.Terms, []catalog.Term{basophil}) {
			t.Fatalf("after removing every value naming B cell: %+v", got.Terms)
		}
		// The alt id names mature basophil: the term stays, and is refused.
		got, err = c.Unannotate(ctx, uid, catalog.Annotations{Features: map[string][]string{"cell_type": nil}, Resolved: resolved})
		must(t, err)
		if !reflect.DeepEqual(got.Terms, []catalog.Term{basophil}) {
			t.Fatalf("after removing cell_type: %+v", got.Terms)
		}
		msg = `other/d.txt@v1 keeps term CL:0000043 "mature basophil": its value cell_type_id = "CL:0000739" names it`
		if _, err := c.Unannotate(ctx, uid, catalog.Annotations{Terms: []catalog.Term{{ID: basophil.ID}}, Resolved: resolved}); !errors.Is(err, catalog.ErrConflict) || !strings.Contains(err.Error(), msg) {
			t.Fatalf("removing the term its alt id names: %v; want ErrConflict saying %s", err, msg)
		}
		// Removing the alt id takes the term it names.
		got, err = c.Unannotate(ctx, uid, catalog.Annotations{Features: map[string][]string{"cell_type_id": {"CL:0000739"}}, Resolved: resolved})
		must(t, err)
		if got.Terms != nil || !got.IsZero() {
			t.Fatalf("after removing the alt id: %+v", got)
		}
	})

	t.Run("Find", func(t *testing.T) {
		c, _ := setup(t)
		cases := []struct {
			name string
			f    catalog.Filter
			want []string
		}{
			{"feature =", catalog.Filter{Where: []catalog.Cond{{Field: "tissue", Op: "=", Values: []string{"bone marrow"}}}}, []string{"bulk/c.csv", "scrna/a.h5ad"}},
			{"any of", catalog.Filter{Where: []catalog.Cond{{Field: "tissue", Op: "=", Values: []string{"blood", "bone marrow"}}}}, []string{"bulk/c.csv", "scrna/a.h5ad", "scrna/b.h5ad"}},
			{"and", catalog.Filter{Where: []catalog.Cond{{Field: "tissue", Op: "=", Values: []string{"bone marrow"}}, {Field: "condition", Op: "=", Values: []string{"treated"}}}}, []string{"scrna/a.h5ad"}},
			{"int >", catalog.Filter{Where: []catalog.Cond{{Field: "batch", Op: ">", Values: []string{"1"}}}}, []string{"bulk/c.csv", "scrna/b.h5ad"}},
			{"int >= numeric not text", catalog.Filter{Where: []catalog.Cond{{Field: "batch", Op: ">=", Values: []string{"5"}}}}, []string{"bulk/c.csv", "scrna/b.h5ad"}},
			{"int <", catalog.Filter{Where: []catalog.Cond{{Field: "batch", Op: "<", Values: []string{"10"}}}}, []string{"scrna/a.h5ad", "scrna/b.h5ad"}},
			{"negative float", catalog.Filter{Where: []catalog.Cond{{Field: "score", Op: "<", Values: []string{"0"}}}}, []string{"scrna/b.h5ad"}},
			{"!=", catalog.Filter{Where: []catalog.Cond{{Field: "tissue", Op: "!=", Values: []string{"blood"}}}}, []string{"bulk/c.csv", "scrna/a.h5ad"}},
			{"date", catalog.Filter{Where: []catalog.Cond{{Field: "day", Op: ">=", Values: []string{"2026-01-01"}}}}, []string{"scrna/a.h5ad"}},
			{"prefix", catalog.Filter{Prefix: "scrna/", Where: []catalog.Cond{{Field: "batch", Op: ">", Values: []string{"0"}}}}, []string{"scrna/a.h5ad", "scrna/b.h5ad"}},
			{"key ^=", catalog.Filter{Where: []catalog.Cond{{Field: "key", Op: "^=", Values: []string{"bulk/"}}}}, []string{"bulk/c.csv"}},
			{"size and created_at", catalog.Filter{Where: []catalog.Cond{{Field: "size", Op: ">", Values: []string{"9B"}}, {Field: "created_at", Op: ">=", Values: []string{"2020-01-01"}}}}, []string{"bulk/c.csv", "other/d.txt", "scrna/a.h5ad", "scrna/b.h5ad"}},
			{"size with features", catalog.Filter{Where: []catalog.Cond{{Field: "size", Op: ">", Values: []string{"9"}}, {Field: "batch", Op: ">", Values: []string{"0"}}}}, []string{"bulk/c.csv", "scrna/a.h5ad", "scrna/b.h5ad"}},
			{"label with descendants", catalog.Filter{Labels: []string{"quality"}}, []string{"scrna/a.h5ad", "scrna/b.h5ad"}},
			{"label exact", catalog.Filter{Labels: []string{"quality"}, ExactLabels: true}, []string{"scrna/b.h5ad"}},
			{"terms", catalog.Filter{Terms: [][]string{{"CL:0000084", "CL:0000624"}}}, []string{"scrna/a.h5ad"}},
			{"limit", catalog.Filter{Where: []catalog.Cond{{Field: "batch", Op: ">", Values: []string{"0"}}}, Limit: 2}, []string{"bulk/c.csv", "scrna/a.h5ad"}},
			{"size with a limit", catalog.Filter{Where: []catalog.Cond{{Field: "size", Op: ">", Values: []string{"9B"}}}, Limit: 2}, []string{"bulk/c.csv", "other/d.txt"}},
			{"key range with a limit", catalog.Filter{Where: []catalog.Cond{{Field: "key", Op: ">=", Values: []string{"other/"}}}, Limit: 2}, []string{"other/d.txt", "scrna/a.h5ad"}},
			{"nothing", catalog.Filter{Where: []catalog.Cond{{Field: "tissue", Op: "=", Values: []string{"liver"}}}}, []string{}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				vs, err := c.Find(ctx, tc.f)
				if err != nil {
					t.Fatal(err)
				}
				if got := keys(vs); !reflect.DeepEqual(got, tc.want) {
					t.Fatalf("Find = %v, want %v", got, tc.want)
				}
			})
		}
		vs, err := c.Find(ctx, catalog.Filter{Where: []catalog.Cond{{Field: "batch", Op: ">", Values: []string{"0"}}}, Order: "-created_at"})
		if err != nil || len(vs) != 3 || vs[0].Key != "bulk/c.csv" {
			t.Fatalf("-created_at = %v, %v", keys(vs), err)
		}
		_, err = c.Find(ctx, catalog.Filter{Where: []catalog.Cond{{Field: "tisue", Op: "=", Values: []string{"blood"}}}})
		if !errors.Is(err, catalog.ErrNotFound) || !strings.Contains(err.Error(), `did you mean "tissue"`) {
			t.Fatalf("typo: %v", err)
		}
		if _, err := c.Find(ctx, catalog.Filter{Where: []catalog.Cond{{Field: "batch", Op: ">", Values: []string{"many"}}}}); !errors.Is(err, catalog.ErrInvalid) {
			t.Fatalf("bad number: %v", err)
		}
		// Only the latest version of a key; a trashed key is gone.
		s, err := c.Save(ctx, []catalog.NewVersion{NV("scrna/a.h5ad", "new bytes")})
		must(t, err)
		if vs, _ := c.Find(ctx, catalog.Filter{Labels: []string{"high_quality"}}); len(vs) != 0 {
			t.Fatalf("old version's label matched: %v", keys(vs))
		}
		if vs, _ := c.Find(ctx, catalog.Filter{Labels: []string{"high_quality"}, AllVersions: true}); len(vs) != 1 || vs[0].Version != 1 {
			t.Fatalf("AllVersions = %v", vs)
		}
		_, err = c.Annotate(ctx, s[0].Version.UID, catalog.Annotations{Labels: []string{"high_quality"}})
		must(t, err)
		if vs, _ := c.Find(ctx, catalog.Filter{Labels: []string{"high_quality"}}); len(vs) != 1 || vs[0].Version != 2 {
			t.Fatalf("new version = %v", vs)
		}
		_, err = c.Trash(ctx, "bulk/c.csv")
		must(t, err)
		if vs, _ := c.Find(ctx, catalog.Filter{Where: []catalog.Cond{{Field: "batch", Op: "=", Values: []string{"10"}}}}); len(vs) != 0 {
			t.Fatalf("trashed found: %v", keys(vs))
		}
		_, err = c.Purge(ctx, "bulk/c.csv")
		must(t, err)
		if vs, _ := c.Find(ctx, catalog.Filter{Where: []catalog.Cond{{Field: "batch", Op: "=", Values: []string{"10"}}}, AllVersions: true}); len(vs) != 0 {
			t.Fatalf("purged found: %v", keys(vs))
		}
	})

	// Ints are exact in the index: 2^53 and 2^53+1, one float64, are two
	// values (both were found by either), and ranges compare ints with
	// floats as numbers, an int feature with a number that is no integer
	// too (batch>2.5).
	t.Run("ExactInts", func(t *testing.T) {
		c, vs := setup(t)
		_, err := c.CreateFeature(ctx, catalog.Feature{Name: "id", Dtype: "int"})
		must(t, err)
		for k, id := range map[string]string{"scrna/a.h5ad": "9007199254740992", "scrna/b.h5ad": "9007199254740993",
			"bulk/c.csv": "9223372036854775807", "other/d.txt": "-9007199254740993"} {
			_, err := c.Annotate(ctx, vs[k].UID, catalog.Annotations{Features: map[string][]string{"id": {id}}})
			must(t, err)
		}
		for _, tc := range []struct {
			field, op, value string
			want             []string
		}{
			{"id", "=", "9007199254740993", []string{"scrna/b.h5ad"}},
			{"id", "=", "9007199254740992", []string{"scrna/a.h5ad"}},
			{"id", "=", "-9007199254740992", []string{}},
			{"id", "!=", "9007199254740992", []string{"bulk/c.csv", "other/d.txt", "scrna/b.h5ad"}},
			{"id", ">", "9007199254740992", []string{"bulk/c.csv", "scrna/b.h5ad"}},
			{"id", ">=", "9007199254740993", []string{"bulk/c.csv", "scrna/b.h5ad"}},
			{"id", "<", "9007199254740993", []string{"other/d.txt", "scrna/a.h5ad"}},
			{"id", ">", "9223372036854775806", []string{"bulk/c.csv"}},
			{"id", "<", "-9007199254740992", []string{"other/d.txt"}},
			{"id", ">", "-9007199254740993", []string{"bulk/c.csv", "scrna/a.h5ad", "scrna/b.h5ad"}},
			{"id", "<", "9.3e18", []string{"bulk/c.csv", "other/d.txt", "scrna/a.h5ad", "scrna/b.h5ad"}},
			{"id", ">", "1e300", []string{}},
			{"id", ">", "-0.5", []string{"bulk/c.csv", "scrna/a.h5ad", "scrna/b.h5ad"}},
			// Fractional bounds beyond 2^53, which a float64 rounds to an int.
			{"id", ">=", "9007199254740992.5", []string{"bulk/c.csv", "scrna/b.h5ad"}},
			{"id", ">", "9007199254740992.5", []string{"bulk/c.csv", "scrna/b.h5ad"}},
			{"id", "<=", "9007199254740992.5", []string{"other/d.txt", "scrna/a.h5ad"}},
			{"id", "<", "9007199254740993.5", []string{"other/d.txt", "scrna/a.h5ad", "scrna/b.h5ad"}},
			{"id", "<=", "-9007199254740992.5", []string{"other/d.txt"}},
			{"id", ">=", "-9007199254740993.5", []string{"bulk/c.csv", "other/d.txt", "scrna/a.h5ad", "scrna/b.h5ad"}},
			{"id", ">", "9223372036854775806.5", []string{"bulk/c.csv"}},
			{"id", ">", "9223372036854775807.5", []string{}},
			{"batch", ">", "2.5", []string{"bulk/c.csv", "scrna/b.h5ad"}},
			{"batch", "<=", "5.0", []string{"scrna/a.h5ad", "scrna/b.h5ad"}},
			{"batch", "<", "1.5", []string{"scrna/a.h5ad"}},
			{"score", ">", "-3", []string{"bulk/c.csv", "scrna/b.h5ad"}},
			{"version", ">", "0.5", []string{"bulk/c.csv", "other/d.txt", "scrna/a.h5ad", "scrna/b.h5ad"}},
		} {
			t.Run(tc.field+tc.op+tc.value, func(t *testing.T) {
				got, err := c.Find(ctx, catalog.Filter{Where: []catalog.Cond{{Field: tc.field, Op: tc.op, Values: []string{tc.value}}}})
				if err != nil || !reflect.DeepEqual(keys(got), tc.want) {
					t.Fatalf("Find = %v, %v; want %v", keys(got), err, tc.want)
				}
			})
		}
		// = and != compare with an int only.
		if _, err := c.Find(ctx, catalog.Filter{Where: []catalog.Cond{{Field: "batch", Op: "=", Values: []string{"2.5"}}}}); !errors.Is(err, catalog.ErrInvalid) {
			t.Fatalf("batch=2.5: %v", err)
		}
	})

	// A text field a version lacks (suffix, otype, description) is empty:
	// "suffix=" finds the keys without a suffix, "suffix!=" those with one.
	t.Run("FindEmptyText", func(t *testing.T) {
		c := open(t)
		nv := NV("e/data.csv", "1")
		nv.Suffix, nv.OType, nv.Description = ".csv", "DataFrame", "counts"
		bare := NV("e/README", "2")
		_, err := c.Save(ctx, []catalog.NewVersion{nv, bare})
		must(t, err)
		cases := []struct {
			field, op, value string
			want             []string
		}{
			{"suffix", "=", "", []string{"e/README"}},
			{"suffix", "!=", "", []string{"e/data.csv"}},
			{"suffix", "!=", ".csv", []string{"e/README"}},
			{"suffix", "=", ".csv", []string{"e/data.csv"}},
			{"otype", "=", "", []string{"e/README"}},
			{"otype", "!=", "", []string{"e/data.csv"}},
			{"description", "=", "", []string{"e/README"}},
			{"description", "!=", "", []string{"e/data.csv"}},
			{"description", "<", "b", []string{"e/README"}},
		}
		for _, tc := range cases {
			for _, limit := range []int{0, 1} {
				f := catalog.Filter{Where: []catalog.Cond{{Field: tc.field, Op: tc.op, Values: []string{tc.value}}}, Limit: limit}
				vs, err := c.Find(ctx, f)
				if err != nil {
					t.Fatalf("%s%s%q: %v", tc.field, tc.op, tc.value, err)
				}
				if got := keys(vs); !reflect.DeepEqual(got, tc.want) {
					t.Errorf("%s%s%q limit %d: %v, want %v", tc.field, tc.op, tc.value, limit, got, tc.want)
				}
			}
		}
	})

	// A float -0 is 0: stored as 0, found by score=0 and score>=0, not by
	// score<0 (its key was -0's, just below 0's).
	t.Run("NegativeZero", func(t *testing.T) {
		c, vs := setup(t)
		a, err := c.Annotate(ctx, vs["other/d.txt"].UID, catalog.Annotations{Features: map[string][]string{"score": {"-0.0"}}})
		must(t, err)
		if got := a.Features["score"]; !reflect.DeepEqual(got, []string{"0"}) {
			t.Fatalf("score -0.0 stored as %q, want 0", got)
		}
		for _, tc := range []struct {
			op, value string
			want      []string
		}{
			{"=", "0", []string{"other/d.txt"}},
			{"=", "-0", []string{"other/d.txt"}},
			{"<", "0", []string{"scrna/b.h5ad"}},
			{">=", "0", []string{"bulk/c.csv", "other/d.txt"}},
			{"<=", "-0", []string{"other/d.txt", "scrna/b.h5ad"}},
			{"!=", "0", []string{"bulk/c.csv", "scrna/b.h5ad"}},
		} {
			got, err := c.Find(ctx, catalog.Filter{Where: []catalog.Cond{{Field: "score", Op: tc.op, Values: []string{tc.value}}}})
			if err != nil || !reflect.DeepEqual(keys(got), tc.want) {
				t.Errorf("score%s%s = %v, %v; want %v", tc.op, tc.value, keys(got), err, tc.want)
			}
		}
	})

	// A table of 0 rows has n_observations 0 (known); a version of no
	// table has none, as before.
	t.Run("ZeroObservations", func(t *testing.T) {
		c := open(t)
		empty := NV("z/empty.csv", "a,b\n")
		empty.Shape = []int64{0, 2}
		rows := NV("z/rows.csv", "a,b\n1,2\n")
		rows.NObservations, rows.Shape = 1, []int64{1, 2}
		_, err := c.Save(ctx, []catalog.NewVersion{empty, rows, NV("z/README", "notes")})
		must(t, err)
		for _, tc := range []struct {
			op, value string
			want      []string
		}{
			{"=", "0", []string{"z/empty.csv"}},
			{"<", "1", []string{"z/empty.csv"}},
			{">=", "0", []string{"z/empty.csv", "z/rows.csv"}},
			{"!=", "0", []string{"z/README", "z/rows.csv"}},
			{"!=", "1", []string{"z/README", "z/empty.csv"}},
		} {
			got, err := c.Find(ctx, catalog.Filter{Where: []catalog.Cond{{Field: "n_observations", Op: tc.op, Values: []string{tc.value}}}})
			if err != nil || !reflect.DeepEqual(keys(got), tc.want) {
				t.Errorf("n_observations%s%s = %v, %v; want %v", tc.op, tc.value, keys(got), err, tc.want)
			}
		}
	})

	t.Run("Search", func(t *testing.T) {
		c, _ := setup(t)
		hits, err := c.Search(ctx, "PBMC gene expression", 10)
		must(t, err)
		if len(hits) != 3 {
			t.Fatalf("hits = %d, want 3 (the versions with that description)", len(hits))
		}
		hits, err = c.Search(ctx, "bone marrow", 10)
		must(t, err)
		if len(hits) != 2 || hits[0].Score < hits[len(hits)-1].Score {
			t.Fatalf("feature values: %+v", hits)
		}
		hits, err = c.Search(ctx, "alpha-beta T", 10)
		must(t, err)
		if len(hits) == 0 || hits[0].Version.Key != "scrna/a.h5ad" || !strings.Contains(strings.Join(hits[0].Fields, ","), "term") {
			t.Fatalf("term names: %+v", hits)
		}
		// The key ranks above the description; a prefix matches.
		hits, err = c.Search(ctx, "bulk", 10)
		must(t, err)
		if len(hits) == 0 || hits[0].Version.Key != "bulk/c.csv" {
			t.Fatalf("key: %+v", hits)
		}
		if hits, _ := c.Search(ctx, "note", 10); len(hits) != 1 || hits[0].Version.Key != "other/d.txt" {
			t.Fatalf("prefix: %+v", hits)
		}
		if hits, _ := c.Search(ctx, "xyzzy", 10); len(hits) != 0 {
			t.Fatalf("nonsense: %+v", hits)
		}
		if _, err := c.Search(ctx, "  ", 10); !errors.Is(err, catalog.ErrInvalid) {
			t.Fatalf("empty query: %v", err)
		}
		_, err = c.Trash(ctx, "other/d.txt")
		must(t, err)
		if hits, _ := c.Search(ctx, "notes", 10); len(hits) != 0 {
			t.Fatalf("trashed: %+v", hits)
		}
	})

	// A term renamed since a version was annotated: SearchWith finds the
	// version by the name the caller's ontology gives the term now, as
	// well as by the name it recorded, scored as a recorded name, on
	// every store alike; plain Search only by the recorded one.
	t.Run("SearchTermNames", func(t *testing.T) {
		c, vs := setup(t)
		fat := NV("fat/liver.h5ad", "fat")
		s, err := c.Save(ctx, []catalog.NewVersion{fat})
		must(t, err)
		_, err = c.Annotate(ctx, s[0].Version.UID, catalog.Annotations{Terms: []catalog.Term{{Entity: "celltype", ID: "CL:0000136", Name: "fat cell"}}})
		must(t, err)
		ts, ok := c.(catalog.TermSearcher)
		if !ok {
			// A mount daemon's client (catalogrpc): the daemon resolves
			// the names for its Search (cmd/lamina, namedSearch); the
			// stores it serves run this test themselves.
			t.Logf("%T is no catalog.TermSearcher", c)
			return
		}
		names := map[string][]string{"CL:0000136": {"adipocyte"}, "CL:0000236": {"B cell"}, "CL:9999999": {"adipocyte of nowhere"}}
		if hits, _ := c.Search(ctx, "adipocyte", 10); len(hits) != 0 {
			t.Fatalf("Search by a name no version recorded: %+v", hits)
		}
		for _, q := range []string{"adipocyte", "adipo", "fat cell", "Adipocyte liver"} {
			hits, err := ts.SearchWith(ctx, q, catalog.SearchOptions{Limit: 10, TermNames: names})
			must(t, err)
			if len(hits) == 0 || hits[0].Version.Key != "fat/liver.h5ad" || !slices.Contains(hits[0].Fields, "term") {
				t.Errorf("SearchWith(%q) = %+v, want fat/liver.h5ad first, by its term", q, hits)
			}
		}
		// Scored as a recorded name: the same as a version that recorded
		// "adipocyte" gets.
		s2, err := c.Save(ctx, []catalog.NewVersion{NV("y/z.h5ad", "z")})
		must(t, err)
		_, err = c.Annotate(ctx, s2[0].Version.UID, catalog.Annotations{Terms: []catalog.Term{{Entity: "celltype", ID: "CL:0000136", Name: "adipocyte"}}})
		must(t, err)
		got, err := ts.SearchWith(ctx, "adipocyte", catalog.SearchOptions{Limit: 10, TermNames: names})
		must(t, err)
		if len(got) != 2 || got[0].Score != got[1].Score {
			t.Errorf("SearchWith(adipocyte) = %+v, want 2 hits of one score", got)
		}
		// A name both recorded and given counts once; a term's name
		// matches only the versions with that term.
		hits, err := ts.SearchWith(ctx, "B cell", catalog.SearchOptions{Limit: 10, TermNames: names})
		must(t, err)
		plain, _ := c.Search(ctx, "B cell", 10)
		if len(hits) != len(plain) || len(hits) == 0 || hits[0].Version.UID != vs["scrna/b.h5ad"].UID || hits[0].Score != plain[0].Score {
			t.Errorf("SearchWith(B cell) = %+v, Search = %+v", hits, plain)
		}
	})

	// A renamed key or folder takes its versions' index entries with it:
	// Find filters, pages and orders by the new key, and Search finds the
	// new key's words and no longer the old one's (bbolt left both on the
	// old key).
	t.Run("RenameKeepsIndexes", func(t *testing.T) {
		c, vs := setup(t)
		for _, k := range []string{"fold/x.csv", "fold/sub/y.csv"} {
			nv := NV(k, k)
			nv.Description = "monotreme " + k
			s, err := c.Save(ctx, []catalog.NewVersion{nv})
			must(t, err)
			vs[k] = s[0].Version
			_, err = c.Annotate(ctx, vs[k].UID, catalog.Annotations{Features: map[string][]string{"batch": {"42"}},
				Labels: []string{"treated"}, Terms: []catalog.Term{{Entity: "celltype", ID: "CL:0000084", Name: "T cell"}}})
			must(t, err)
		}
		_, err := c.Rename(ctx, "scrna/a.h5ad", "scrna/zebra.h5ad")
		must(t, err)
		must(t, c.RenameFolder(ctx, "fold", "platypus"))
		batch := func(op, n string) []catalog.Cond {
			return []catalog.Cond{{Field: "batch", Op: op, Values: []string{n}}}
		}
		cases := []struct {
			name string
			f    catalog.Filter
			want []string
		}{
			{"renamed key by prefix", catalog.Filter{Prefix: "scrna/z", Where: batch("=", "1")}, []string{"scrna/zebra.h5ad"}},
			{"old key by prefix", catalog.Filter{Prefix: "scrna/a", Where: batch(">", "0")}, []string{}},
			{"ordered by the new key", catalog.Filter{Prefix: "scrna/", Where: batch(">", "0")}, []string{"scrna/b.h5ad", "scrna/zebra.h5ad"}},
			{"key ^=", catalog.Filter{Where: append(batch(">", "0"), catalog.Cond{Field: "key", Op: "^=", Values: []string{"scrna/z"}})}, []string{"scrna/zebra.h5ad"}},
			{"label", catalog.Filter{Labels: []string{"high_quality"}}, []string{"scrna/zebra.h5ad"}},
			{"terms", catalog.Filter{Terms: [][]string{{"CL:0000624"}}, Prefix: "scrna/z"}, []string{"scrna/zebra.h5ad"}},
			{"renamed folder", catalog.Filter{Prefix: "platypus/", Where: batch("=", "42")}, []string{"platypus/sub/y.csv", "platypus/x.csv"}},
			{"old folder", catalog.Filter{Prefix: "fold/", Where: batch("=", "42")}, []string{}},
			{"folder label", catalog.Filter{Prefix: "platypus/", Labels: []string{"treated"}}, []string{"platypus/sub/y.csv", "platypus/x.csv"}},
			{"folder terms", catalog.Filter{Prefix: "platypus/", Terms: [][]string{{"CL:0000084"}}}, []string{"platypus/sub/y.csv", "platypus/x.csv"}},
			{"ordered by the new folder", catalog.Filter{Where: batch(">", "0")}, []string{"bulk/c.csv", "platypus/sub/y.csv", "platypus/x.csv", "scrna/b.h5ad", "scrna/zebra.h5ad"}},
			{"limit", catalog.Filter{Where: batch(">", "0"), Limit: 2}, []string{"bulk/c.csv", "platypus/sub/y.csv"}},
			{"after a key", catalog.Filter{Where: append(batch(">", "0"), catalog.Cond{Field: "key", Op: ">", Values: []string{"platypus/x.csv"}})}, []string{"scrna/b.h5ad", "scrna/zebra.h5ad"}},
			{"label after a key", catalog.Filter{Labels: []string{"treated"}, Where: []catalog.Cond{{Field: "key", Op: ">", Values: []string{"platypus/sub"}}}}, []string{"platypus/sub/y.csv", "platypus/x.csv"}},
			{"all versions", catalog.Filter{Prefix: "platypus/", Where: batch("=", "42"), AllVersions: true}, []string{"platypus/sub/y.csv", "platypus/x.csv"}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				got, err := c.Find(ctx, tc.f)
				if err != nil {
					t.Fatal(err)
				}
				if k := keys(got); !reflect.DeepEqual(k, tc.want) {
					t.Fatalf("Find = %v, want %v", k, tc.want)
				}
			})
		}
		search := func(q string) []string {
			t.Helper()
			hits, err := c.Search(ctx, q, 10)
			must(t, err)
			out := []string{}
			for _, h := range hits {
				if !slices.Contains(h.Fields, "key") {
					continue // the description still names the old key
				}
				out = append(out, h.Version.Key)
			}
			slices.Sort(out)
			return out
		}
		for q, want := range map[string][]string{
			"zebra":     {"scrna/zebra.h5ad"},
			"h5ad":      {"scrna/b.h5ad", "scrna/zebra.h5ad"},
			"platypus":  {"platypus/sub/y.csv", "platypus/x.csv"},
			"sub":       {"platypus/sub/y.csv"},
			"fold":      {},
			"monotreme": {},
		} {
			if got := search(q); !reflect.DeepEqual(got, want) {
				t.Errorf("Search(%q) = %v, want %v", q, got, want)
			}
		}
		// A word of the old key alone finds nothing; one of the new key
		// finds it once more after another rename.
		_, err = c.Rename(ctx, "bulk/c.csv", "bulk/walrus.csv")
		must(t, err)
		_, err = c.Rename(ctx, "bulk/walrus.csv", "bulk/seal.csv")
		must(t, err)
		if got := search("walrus"); len(got) != 0 {
			t.Errorf("Search(walrus) = %v, want nothing", got)
		}
		if got := search("seal"); !reflect.DeepEqual(got, []string{"bulk/seal.csv"}) {
			t.Errorf("Search(seal) = %v", got)
		}
		if hits, _ := c.Search(ctx, "walrus", 10); len(hits) != 0 {
			t.Errorf("Search(walrus) = %+v", hits)
		}
		if vs, _ := c.Find(ctx, catalog.Filter{Prefix: "bulk/s", Where: batch("=", "10")}); !reflect.DeepEqual(keys(vs), []string{"bulk/seal.csv"}) {
			t.Errorf("Find bulk/s = %v", keys(vs))
		}
	})

	// One-letter words are not indexed: "T cell" finds the versions with
	// "cell", and the T cell datasets rank first by the phrase (a key word
	// outweighs a term word, so without it natural killer cells would).
	t.Run("SearchShortWords", func(t *testing.T) {
		c := open(t)
		for k, name := range map[string]string{
			"nk_cell/atlas.h5ad":    "natural killer cell",
			"epithelium/cells.h5ad": "epithelial cell",
			"lymph/blood.h5ad":      "T cell",
			"lymph/cd4.h5ad":        "CD4-positive, alpha-beta T cell",
			"lymph/b.h5ad":          "B cell",
			"lymph/t_mast.h5ad":     "mast cell", // a t, but not next to cell
			"thymus/notes.txt":      "",
		} {
			nv := NV(k, k)
			if name == "" {
				nv.Description = "what a T cell is"
			}
			s, err := c.Save(ctx, []catalog.NewVersion{nv})
			must(t, err)
			if name != "" {
				_, err = c.Annotate(ctx, s[0].Version.UID, catalog.Annotations{Terms: []catalog.Term{{Entity: "celltype", ID: "CL:x", Name: name}}})
				must(t, err)
			}
		}
		for i := range 30 { // more candidates than a first page holds
			nv := NV(fmt.Sprintf("culture/run%02d.csv", i), fmt.Sprint(i))
			nv.Description = "cell culture"
			_, err := c.Save(ctx, []catalog.NewVersion{nv})
			must(t, err)
		}
		top := func(q string, limit int) []string {
			t.Helper()
			hits, err := c.Search(ctx, q, limit)
			must(t, err)
			var out []string
			for i, h := range hits {
				out = append(out, h.Version.Key)
				if i > 0 && h.Score > hits[i-1].Score {
					t.Errorf("Search(%q): not best first: %+v", q, hits)
				}
			}
			return out
		}
		tcell := []string{"lymph/blood.h5ad", "lymph/cd4.h5ad", "thymus/notes.txt"}
		for _, limit := range []int{1, 2, 3, 4, 20, 100} {
			got := top("T cell", limit)
			n := min(limit, 3)
			if len(got) < n || !sameSet(got[:n], tcell[:n], tcell) {
				t.Fatalf("Search(T cell, %d) = %v, want the T cell datasets %v first", limit, got, tcell)
			}
			if limit > 3 && got[3] != "nk_cell/atlas.h5ad" {
				t.Errorf("Search(T cell, %d) = %v, want the NK cell dataset (key) fourth", limit, got)
			}
			if limit == 100 && len(got) != 37 {
				t.Errorf("Search(T cell, 100): %d hits, want 37 (every version with cell)", len(got))
			}
		}
		if got := top("T cel", 3); len(got) < 3 || !sameSet(got, tcell, tcell) {
			t.Errorf("Search(T cel) = %v, want %v", got, tcell)
		}
		if got := top("B cell", 3); len(got) == 0 || got[0] != "lymph/b.h5ad" {
			t.Errorf("Search(B cell) = %v", got)
		}
		if got := top("alpha-beta T", 3); len(got) == 0 || got[0] != "lymph/cd4.h5ad" {
			t.Errorf("Search(alpha-beta T) = %v", got)
		}
		// Only the latest live versions count.
		for _, k := range tcell[1:] {
			_, err := c.Trash(ctx, k)
			must(t, err)
		}
		if got := top("T cell", 1); !slices.Equal(got, tcell[:1]) {
			t.Errorf("Search(T cell, 1) = %v, want the T cell dataset", got)
		}
	})

	t.Run("Collections", func(t *testing.T) {
		c, vs := setup(t)
		m := []string{vs["scrna/b.h5ad"].UID, vs["scrna/a.h5ad"].UID}
		col, err := c.SaveCollection(ctx, catalog.NewCollection{Name: "scRNA-seq batches Q1", Members: m, CreatedBy: "tester", CreatedAt: time.Now()})
		if err != nil || col.Version != 1 || col.Unchanged {
			t.Fatalf("SaveCollection = %+v, %v", col, err)
		}
		again, err := c.SaveCollection(ctx, catalog.NewCollection{Name: "scRNA-seq batches Q1", Members: m})
		if err != nil || !again.Unchanged || again.Version != 1 {
			t.Fatalf("same members = %+v, %v", again, err)
		}
		v2, err := c.SaveCollection(ctx, catalog.NewCollection{Name: "scRNA-seq batches Q1", Members: m[:1]})
		if err != nil || v2.Version != 2 {
			t.Fatalf("v2 = %+v, %v", v2, err)
		}
		_, err = c.SaveCollection(ctx, catalog.NewCollection{Name: "other", Members: m[1:]})
		must(t, err)
		if _, err := c.SaveCollection(ctx, catalog.NewCollection{Name: "bad", Members: []string{"zzzzzzzzzzzzzzzzzzzz"}}); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("unknown member: %v", err)
		}
		all, err := c.Collections(ctx)
		if err != nil || len(all) != 2 || all[0].Name != "other" || all[1].Version != 2 {
			t.Fatalf("Collections = %+v, %v", all, err)
		}
		got, err := c.Collection(ctx, "scRNA-seq batches Q1", 1)
		if err != nil || len(got.Versions) != 2 || got.Versions[0].Key != "scrna/b.h5ad" || got.Versions[1].Key != "scrna/a.h5ad" {
			t.Fatalf("Collection v1 = %+v, %v", got, err)
		}
		if got, err := c.Collection(ctx, "scRNA-seq batches Q1", 0); err != nil || got.Version != 2 || len(got.Versions) != 1 {
			t.Fatalf("latest = %+v, %v", got, err)
		}
		if _, err := c.Collection(ctx, "scRNA-seq batches Q2", 0); !errors.Is(err, catalog.ErrNotFound) || !strings.Contains(err.Error(), "did you mean") {
			t.Fatalf("missing: %v", err)
		}
		// Every version, oldest first, without the members' records;
		// another name's versions are not among them.
		hist, err := c.CollectionVersions(ctx, "scRNA-seq batches Q1")
		if err != nil || len(hist) != 2 {
			t.Fatalf("CollectionVersions = %+v, %v", hist, err)
		}
		for i, h := range hist {
			if h.Name != "scRNA-seq batches Q1" || h.Version != i+1 || h.Versions != nil || h.CreatedAt.IsZero() {
				t.Fatalf("CollectionVersions[%d] = %+v", i, h)
			}
		}
		if !slices.Equal(hist[0].Members, m) || !slices.Equal(hist[1].Members, m[:1]) || hist[0].CreatedBy != "tester" {
			t.Fatalf("CollectionVersions members: %+v", hist)
		}
		if hist, err := c.CollectionVersions(ctx, "other"); err != nil || len(hist) != 1 || hist[0].Version != 1 {
			t.Fatalf("CollectionVersions other = %+v, %v", hist, err)
		}
		// A name that is a prefix of another's is its own collection.
		if _, err := c.CollectionVersions(ctx, "scRNA-seq"); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("prefix of a name: %v", err)
		}
		if _, err := c.CollectionVersions(ctx, "scRNA-seq batches Q2"); !errors.Is(err, catalog.ErrNotFound) || !strings.Contains(err.Error(), "did you mean") {
			t.Fatalf("CollectionVersions missing: %v", err)
		}
	})
}

// sameSet reports whether got holds n distinct members of set, n = len(want).
func sameSet(got, want, set []string) bool {
	seen := map[string]bool{}
	for _, g := range got {
		if !slices.Contains(set, g) || seen[g] {
			return false
		}
		seen[g] = true
	}
	return len(got) == len(want)
}
