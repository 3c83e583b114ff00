package postgres_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

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
	var recs []catalog.Record
	if err := b.Dump(ctx, func(r catalog.Record) error { recs = append(recs, r); return nil }); err != nil {
		t.Fatal(err)
	}
	p, err := postgres.Open(ctx, pgtest.URL(t), postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Load(ctx, func(yield func(catalog.Record, error) bool) {
		for _, r := range recs {
			if !yield(r, nil) {
				return
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
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
	for _, q := range []string{"PBMC gene expression", "bone marrow treated", "k000123"} {
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
