package catalogtest

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/ref"
)

// runRuns checks catalog.Runs: transforms, runs, inputs, outputs, children.
func runRuns(t *testing.T, open func(t *testing.T) catalog.Catalog) {
	ctx := context.Background()
	t.Run("TransformsDedupByDigest", func(t *testing.T) {
		c := open(t)
		a, err := c.SaveTransform(ctx, catalog.Transform{Name: "qc.py", Kind: "script", Digest: ref.Sum([]byte("v1")), Source: "print(1)"})
		if err != nil || a.UID == "" {
			t.Fatalf("SaveTransform = %+v, %v", a, err)
		}
		b, _ := c.SaveTransform(ctx, catalog.Transform{Name: "qc.py", Kind: "script", Digest: ref.Sum([]byte("v1"))})
		d, _ := c.SaveTransform(ctx, catalog.Transform{Name: "qc.py", Kind: "script", Digest: ref.Sum([]byte("v2"))})
		if b.UID != a.UID || b.Source != "print(1)" || d.UID == a.UID {
			t.Fatalf("same digest %s vs %s (source %q); new digest %s", b.UID, a.UID, b.Source, d.UID)
		}
	})
	t.Run("RunLifecycle", func(t *testing.T) {
		c := open(t)
		tr, err := c.SaveTransform(ctx, catalog.Transform{Name: "qc", Kind: "named"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.StartRun(ctx, catalog.Run{Transform: "nosuchtransform"}); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("unknown transform: %v", err)
		}
		p, err := c.StartRun(ctx, catalog.Run{Transform: tr.UID, Name: "qc", Params: map[string]any{"min_genes": 200.0, "strict": true},
			Argv: []string{"python3", "qc.py"}, StartedAt: time.Now().Add(-time.Second)})
		if err != nil || p.UID == "" || p.Status != catalog.RunRunning {
			t.Fatalf("StartRun = %+v, %v", p, err)
		}
		ch, err := c.StartRun(ctx, catalog.Run{Transform: tr.UID, Parent: p.UID, Name: "child"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.StartRun(ctx, catalog.Run{Transform: tr.UID, Parent: "nosuchparent0000"}); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("unknown parent: %v", err)
		}
		in := save1(t, c, NV("raw/a.csv", "a"))
		out := NV("res/b.csv", "b")
		out.Run = p.UID
		o := save1(t, c, out)
		if o.Run != p.UID {
			t.Fatalf("version run %q", o.Run)
		}
		if err := c.AddInputs(ctx, p.UID, []string{in.UID, in.UID}); err != nil {
			t.Fatal(err)
		}
		if err := c.AddInputs(ctx, "nosuchrun0000000", []string{in.UID}); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("unknown run: %v", err)
		}
		one := 1
		f, err := c.FinishRun(ctx, p.UID, catalog.RunEnd{FinishedAt: time.Now(), ExitCode: &one})
		if err != nil || f.Status != catalog.RunFailed || f.FinishedAt == nil || *f.ExitCode != 1 {
			t.Fatalf("FinishRun = %+v, %v", f, err)
		}
		zero := 0
		if f, err := c.FinishRun(ctx, ch.UID, catalog.RunEnd{ExitCode: &zero, Name: "rule_a"}); err != nil || f.Status != catalog.RunOK || f.Name != "rule_a" {
			t.Fatalf("FinishRun child = %+v, %v", f, err)
		}
		if _, err := c.FinishRun(ctx, "nosuchrun0000000", catalog.RunEnd{}); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("finish unknown: %v", err)
		}
		rec, err := c.RunRecord(ctx, p.UID[:10])
		if err != nil {
			t.Fatal(err)
		}
		if rec.Run.UID != p.UID || rec.Transform.UID != tr.UID || rec.Run.Params["min_genes"] != 200.0 || rec.Run.Params["strict"] != true {
			t.Fatalf("RunRecord = %+v", rec)
		}
		if !reflect.DeepEqual(rec.Inputs, []string{in.UID}) || !reflect.DeepEqual(rec.Outputs, []string{o.UID}) || !reflect.DeepEqual(rec.Children, []string{ch.UID}) {
			t.Fatalf("inputs %v outputs %v children %v", rec.Inputs, rec.Outputs, rec.Children)
		}
		users, err := c.UsedBy(ctx, in.UID)
		if err != nil || !reflect.DeepEqual(users, []string{p.UID}) {
			t.Fatalf("UsedBy = %v, %v", users, err)
		}
		// A purged output (a temporary file renamed onto a key) is no
		// output any more.
		tmp := NV("res/b.csv.tmp1", "t")
		tmp.Run = p.UID
		save1(t, c, tmp)
		if _, err := c.Purge(ctx, "res/b.csv.tmp1"); err != nil {
			t.Fatal(err)
		}
		if rec, err := c.RunRecord(ctx, p.UID); err != nil || !reflect.DeepEqual(rec.Outputs, []string{o.UID}) {
			t.Fatalf("outputs after a purge %v, %v", rec.Outputs, err)
		}
		if _, err := c.RunRecord(ctx, "nosuchrun0000000"); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("unknown run record: %v", err)
		}
		all, err := c.ListRuns(ctx, catalog.RunQuery{})
		if err != nil || len(all) != 2 || all[0].UID != ch.UID {
			t.Fatalf("ListRuns = %v, %v (want newest first)", all, err)
		}
		kids, err := c.ListRuns(ctx, catalog.RunQuery{Parent: p.UID})
		if err != nil || len(kids) != 1 || kids[0].UID != ch.UID {
			t.Fatalf("ListRuns parent = %v, %v", kids, err)
		}
		other, _ := c.SaveTransform(ctx, catalog.Transform{Name: "other", Kind: "named"})
		c.StartRun(ctx, catalog.Run{Transform: other.UID})
		byT, err := c.ListRuns(ctx, catalog.RunQuery{Transform: "qc", Limit: 1})
		if err != nil || len(byT) != 1 || byT[0].Transform != tr.UID {
			t.Fatalf("ListRuns transform = %v, %v", byT, err)
		}
	})
}

func save1(t *testing.T, c catalog.Catalog, nv catalog.NewVersion) catalog.Version {
	t.Helper()
	s, err := c.Save(context.Background(), []catalog.NewVersion{nv})
	if err != nil {
		t.Fatalf("Save: %v", err)
	}
	return s[0].Version
}
