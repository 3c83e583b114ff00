package postgres_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/catalog/catalogtest"
	"github.com/lamina-bio/lamina/catalog/postgres"
	"github.com/lamina-bio/lamina/catalog/postgres/pgtest"
)

// Find reads pages in key order and stops at the limit; Search plans each
// statement for its words. Both answer as bbolt does on the curation
// benchmark's catalog (smaller), with filters that keep few of the rows a
// page holds, so that Find reads several pages.
func TestQueriesLikeBolt(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "c.db")
	catalogtest.BuildAnnotated(t, path, 1500)
	b, err := catalog.OpenBolt(path, catalog.BoltOptions{Hold: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	p := loadBolt(t, b)
	tcell := [][]string{{"CL:0000084", "CL:0000624", "CL:0000625"}}
	for _, f := range []catalog.Filter{
		{Limit: 300, Terms: tcell},
		{Limit: 100, Labels: []string{"high_quality"}, Where: []catalog.Cond{{Field: "size", Op: ">", Values: []string{"100KB"}}}},
		{Limit: 50, Where: []catalog.Cond{{Field: "tissue", Op: "=", Values: []string{"bone marrow"}}, {Field: "batch", Op: ">", Values: []string{"3"}}}},
		{Limit: 1000, Prefix: "scrna/f07/", Terms: tcell},
		{Terms: tcell, Where: []catalog.Cond{{Field: "size", Op: "<", Values: []string{"20KB"}}}},
		{Limit: 20, Order: "-created_at", Labels: []string{"treated"}},
	} {
		want, err := b.Find(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		got, err := p.Find(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		if len(want) == 0 || !slices.Equal(uids(got), uids(want)) {
			t.Errorf("Find %+v: %d versions %v; bbolt: %d %v", f, len(got), head(uids(got)), len(want), head(uids(want)))
		}
	}
	// "donor 1" and "run 5 single" hold a short word: phrase ranking
	// (catalog.PhraseRank) reads pages of candidates, all of them for
	// "donor 1" (a few versions have the phrase, 150 the word).
	for _, q := range []string{"PBMC gene expression", "bone marrow treated", "k000123", "donor 1", "run 5 single"} {
		want, err := b.Search(ctx, q, 20)
		if err != nil {
			t.Fatal(err)
		}
		got, err := p.Search(ctx, q, 20)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(hitList(got)) != fmt.Sprint(hitList(want)) {
			t.Errorf("Search %q: %v; bbolt: %v", q, hitList(got), hitList(want))
		}
	}
}

func uids(vs []catalog.Version) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.UID)
	}
	return out
}

func head(s []string) []string { return s[:min(len(s), 3)] }

func hitList(hs []catalog.Hit) []string {
	var out []string
	for _, h := range hs {
		out = append(out, fmt.Sprintf("%s %.3f", h.Version.Key, h.Score))
	}
	return out
}

// loadBolt copies the bbolt catalog b into a new PostgreSQL store (same
// uids, numbers and records).
func loadBolt(t *testing.T, b *catalog.Bolt) *postgres.Store {
	t.Helper()
	ctx := context.Background()
	var recs []catalog.Record
	if err := b.Dump(ctx, func(r catalog.Record) error { recs = append(recs, r); return nil }); err != nil {
		t.Fatal(err)
	}
	p, err := postgres.Open(ctx, pgtest.URL(t), postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	if err := p.Load(ctx, func(yield func(catalog.Record, error) bool) {
		for _, r := range recs {
			if !yield(r, nil) {
				return
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	return p
}

// Find's conditions on version fields are SQL (fields.go), so that it can
// stop at the limit: every field and operator answers as bbolt's Go check
// does, with and without a limit, over versions that have the field or
// not (empty otype, suffix, description, no observations), non-ASCII
// text, and several versions a key.
func TestFieldConditionsLikeBolt(t *testing.T) {
	ctx := context.Background()
	b, p := smallCatalogs(t)
	some, err := b.ByKey(ctx, "b/k05", 0)
	if err != nil {
		t.Fatal(err)
	}
	values := map[string][]string{
		"key":            {"b/k05", "données/k02", "b/", "a/k1", ""},
		"uid":            {some.UID, some.UID[:8], ""},
		"kind":           {"file", "folder"},
		"created_by":     {"bob", "", "zoë", "b"},
		"otype":          {"AnnData", "", "B"},
		"suffix":         {".txt", "", ".h"},
		"description":    {"beta", "", "Beta é", "B"},
		"version":        {"2", "1", "3"},
		"size":           {"20000", "20KB", "0", "1.5KB"},
		"n_observations": {"5", "0", "100"},
		"created_at":     {"2026-01-02T03:04:20Z", "2026-01-02T03:04:2", "2026-01-02"},
		"mtime":          {"2026-01-02T03:04:35.5Z"},
	}
	matched := 0
	for field, vals := range values {
		for _, val := range vals {
			for _, op := range []string{"=", "!=", "<", "<=", ">", ">=", "^="} {
				c := catalog.Cond{Field: field, Op: op, Values: []string{val}}
				for _, f := range []catalog.Filter{
					{Where: []catalog.Cond{c}},
					{Where: []catalog.Cond{c}, Limit: 3},
					{Where: []catalog.Cond{c}, Limit: 5, AllVersions: true},
					{Where: []catalog.Cond{c, {Field: "size", Op: ">=", Values: []string{"10KB"}}}, Limit: 4, Prefix: "b/"},
				} {
					want, werr := b.Find(ctx, f)
					got, gerr := p.Find(ctx, f)
					if (werr != nil) != (gerr != nil) {
						t.Errorf("Find %s%s%q %+v: error %v; bbolt: %v", field, op, val, f, gerr, werr)
						continue
					}
					if !slices.Equal(refs(got), refs(want)) {
						t.Errorf("Find %s%s%q %+v: %v; bbolt: %v", field, op, val, f, refs(got), refs(want))
					}
					if len(want) > 0 {
						matched++
					}
				}
			}
		}
	}
	t.Logf("%d filters matched versions", matched)
	if matched < 300 {
		t.Fatalf("only %d filters matched anything: the test tests little", matched)
	}
}

// smallCatalogs builds a small catalog in bbolt — versions that have a
// field or not (empty otype, suffix, description, no observations),
// non-ASCII text, several versions a key, a trashed key, a renamed one —
// and loads it into PostgreSQL.
func smallCatalogs(t *testing.T) (*catalog.Bolt, *postgres.Store) {
	ctx := context.Background()
	b, err := catalog.OpenBolt(filepath.Join(t.TempDir(), "c.db"), catalog.BoltOptions{Hold: true})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	otypes := []string{"", "AnnData", "DataFrame"}
	suffixes := []string{"", ".txt", ".csv", ".h5ad"}
	descs := []string{"", "alpha", "Beta é", "beta"}
	users := []string{"alice", "bob", "", "zoë"}
	for i := 0; i < 48; i++ {
		nv := catalogtest.NV(fmt.Sprintf("%s/k%02d", []string{"a", "b", "données", "z"}[i%4], i%16), fmt.Sprint(i))
		nv.OType, nv.Suffix, nv.Description, nv.CreatedBy = otypes[i%3], suffixes[i%4], descs[(i/3)%4], users[(i/2)%4]
		nv.NObservations = int64([]int{0, 5, 100, 7}[(i/4)%4])
		nv.Size = int64(i * 1000)
		nv.CreatedAt = start.Add(time.Duration(i) * 1500 * time.Millisecond)
		nv.Mtime = nv.CreatedAt
		if _, err := b.Save(ctx, []catalog.NewVersion{nv}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Trash(ctx, "z/k03"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Rename(ctx, "a/k04", "a/k04 renamed"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b, loadBolt(t, b)
}

// Search ranks in SQL (searchRankSQL): the same hits, order, scores and
// fields as bbolt for words that match whole words or prefixes of longer
// ones, several words matched in part, words of older, trashed and
// renamed versions (not live), and limits that cut ties.
func TestSearchLikeBolt(t *testing.T) {
	ctx := context.Background()
	b, p := smallCatalogs(t)
	matched := 0
	for _, q := range []string{"beta", "be", "k0", "k04", "alpha beta", "données k02", "donn", "k04 k0 beta", "z k03", "nothing", "k01 k02 k03", "bet alp", "alpha",
		"a k0", "k04 a", "b k1 beta", "z k0 a"} { // short words: phrase ranking

		for _, limit := range []int{1, 3, 20, 100} {
			want, err := b.Search(ctx, q, limit)
			if err != nil {
				t.Fatal(err)
			}
			got, err := p.Search(ctx, q, limit)
			if err != nil {
				t.Fatal(err)
			}
			if g, w := fmt.Sprint(fullHits(got)), fmt.Sprint(fullHits(want)); g != w {
				t.Errorf("Search %q limit %d:\n%s\nbbolt:\n%s", q, limit, g, w)
			}
			matched += len(want)
		}
	}
	if matched < 100 {
		t.Fatalf("%d hits in all: the test tests little", matched)
	}
}

func fullHits(hs []catalog.Hit) []string {
	var out []string
	for _, h := range hs {
		out = append(out, fmt.Sprintf("%s %s %v %v\n", h.Version.Ref(), h.Version.UID, h.Score, h.Fields))
	}
	return out
}

func refs(vs []catalog.Version) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.Ref()+" "+v.UID)
	}
	return out
}

// SearchWith's term names (catalog.TermMatches through the term index)
// rank in SQL as in bbolt: the same hits, order, scores and fields, for
// names whole and as prefixes, names also recorded, several words, a short
// word (PhraseRank reads the names), and limits that cut ties.
func TestSearchTermNamesLikeBolt(t *testing.T) {
	ctx := context.Background()
	b, err := catalog.OpenBolt(filepath.Join(t.TempDir(), "c.db"), catalog.BoltOptions{Hold: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	terms := []catalog.Term{{Entity: "celltype", ID: "CL:0000136", Name: "fat cell"}, {Entity: "celltype", ID: "CL:0000084", Name: "T cell"},
		{Entity: "celltype", ID: "CL:0000236", Name: "B cell"}, {Entity: "celltype", ID: "CL:0000576"}}
	for i := 0; i < 40; i++ {
		nv := catalogtest.NV(fmt.Sprintf("%s/k%02d", []string{"liver", "blood", "fat"}[i%3], i), fmt.Sprint(i))
		nv.Description = []string{"", "adipose tissue", "T cell line", "monocytes"}[i%4]
		s, err := b.Save(ctx, []catalog.NewVersion{nv})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.Annotate(ctx, s[0].Version.UID, catalog.Annotations{Terms: []catalog.Term{terms[i%4], terms[(i/4)%4]}}); err != nil {
			t.Fatal(err)
		}
	}
	p := loadBolt(t, b)
	names := map[string][]string{"CL:0000136": {"adipocyte", "fat cell"}, "CL:0000084": {"T cell"}, "CL:0000576": {"monocyte"}, "CL:0000236": {"B lymphocyte"}}
	matched := 0
	for _, q := range []string{"adipocyte", "adipo", "fat", "cell", "monocyte", "mono", "T cell", "B lymphocyte", "adipocyte liver", "b cell", "nothing"} {
		for _, limit := range []int{1, 3, 20} {
			opts := catalog.SearchOptions{Limit: limit, TermNames: names}
			want, err := b.SearchWith(ctx, q, opts)
			if err != nil {
				t.Fatal(err)
			}
			got, err := p.SearchWith(ctx, q, opts)
			if err != nil {
				t.Fatal(err)
			}
			if g, w := fmt.Sprint(fullHits(got)), fmt.Sprint(fullHits(want)); g != w {
				t.Errorf("SearchWith %q limit %d:\n%s\nbbolt:\n%s", q, limit, g, w)
			}
			matched += len(want)
		}
	}
	if matched < 100 {
		t.Fatalf("%d hits in all: the test tests little", matched)
	}
}

// Search sorts only the best matches, a few more than it returns
// (searchBound), when more versions match: the best may be older versions
// of one artifact, which it leaves out, and then it runs again without
// the bound. Here the 300 versions of zoo/k tie, its latest has the
// highest uid of them, and more than the bound come before it.
func TestSearchPastOlderVersions(t *testing.T) {
	ctx := context.Background()
	b, err := catalog.OpenBolt(filepath.Join(t.TempDir(), "c.db"), catalog.BoltOptions{Hold: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	var nvs []catalog.NewVersion
	for i := 0; i < 300; i++ {
		nv := catalogtest.NV("zoo/k", fmt.Sprint(i))
		nv.Description = "a zebra stripe"
		nvs = append(nvs, nv)
	}
	for i := 0; i < 5; i++ {
		nv := catalogtest.NV(fmt.Sprintf("zoo/m%d", i), fmt.Sprint(i))
		nv.Description = "a zebra stripe"
		nvs = append(nvs, nv)
	}
	for _, nv := range nvs { // one by one: the versions of one key
		if _, err := b.Save(ctx, []catalog.NewVersion{nv}); err != nil {
			t.Fatal(err)
		}
	}
	p := loadBolt(t, b)
	// One word (its count of matches comes with the rows), the same with
	// a short word (pages of candidates, PhraseRank), two words (counted
	// first).
	for _, q := range []string{"zebra", "a zebra", "zebra stripe"} {
		for _, limit := range []int{1, 3, 20} {
			want, err := b.Search(ctx, q, limit)
			if err != nil {
				t.Fatal(err)
			}
			got, err := p.Search(ctx, q, limit)
			if err != nil {
				t.Fatal(err)
			}
			if len(want) != min(limit, 6) {
				t.Fatalf("bbolt: %d hits for %q limit %d", len(want), q, limit)
			}
			if g, w := fmt.Sprint(fullHits(got)), fmt.Sprint(fullHits(want)); g != w {
				t.Errorf("Search %q limit %d:\n%s\nbbolt:\n%s", q, limit, g, w)
			}
		}
	}
}
