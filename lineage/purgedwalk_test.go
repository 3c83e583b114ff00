package lineage_test

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/catalog/catalogtest"
	"github.com/lamina-bio/lamina/catalog/postgres"
	"github.com/lamina-bio/lamina/catalog/postgres/pgtest"
	"github.com/lamina-bio/lamina/lineage"
)

// TestWalkThroughPurged: a version deleted for good cut off the lineage
// behind it, though the runs that made and used it keep their records:
// t1 `cat in1 in2 > out`, t2 `sort out > out2`, then in1 and out purged;
// `lineage out2` stopped at out (no t1, no live in2) and `lineage in2`
// at out (no t2, no out2). The walk goes on through the purged version's
// runs (catalog.Run.Purged), t3, which wrote out's bytes again, too.
// Both catalogs.
func TestWalkThroughPurged(t *testing.T) {
	for _, name := range []string{"bolt", "postgres"} {
		t.Run(name, func(t *testing.T) {
			var c catalog.Catalog
			if name == "bolt" {
				c = openBolt(t)
			} else {
				pg, err := postgres.Open(context.Background(), pgtest.URL(t), postgres.Options{})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { pg.Close() })
				c = pg
			}
			testWalkThroughPurged(t, c)
		})
	}
}

func testWalkThroughPurged(t *testing.T, c catalog.Catalog) {
	ctx := context.Background()
	tr, err := c.SaveTransform(ctx, catalog.Transform{Name: "sh", Kind: "script"})
	if err != nil {
		t.Fatal(err)
	}
	save := func(nv catalog.NewVersion) catalog.Version {
		t.Helper()
		s, err := c.Save(ctx, []catalog.NewVersion{nv})
		if err != nil {
			t.Fatal(err)
		}
		return s[0].Version
	}
	run := func(name string, in []catalog.Version, out string) (catalog.Run, catalog.Version) {
		t.Helper()
		r, err := c.StartRun(ctx, catalog.Run{Transform: tr.UID, Name: name, User: "ana"})
		if err != nil {
			t.Fatal(err)
		}
		var uids []string
		for _, v := range in {
			uids = append(uids, v.UID)
		}
		if err := c.AddInputs(ctx, r.UID, uids); err != nil {
			t.Fatal(err)
		}
		nv := catalogtest.NV(out, name+out)
		nv.Run = r.UID
		v := save(nv)
		zero := 0
		if _, err := c.FinishRun(ctx, r.UID, catalog.RunEnd{FinishedAt: time.Now(), ExitCode: &zero}); err != nil {
			t.Fatal(err)
		}
		return r, v
	}
	in1, in2 := save(catalogtest.NV("r/in1.csv", "one")), save(catalogtest.NV("r/in2.csv", "two"))
	t1, out := run("t1", []catalog.Version{in1, in2}, "r/out.csv")
	t2, out2 := run("t2", []catalog.Version{out}, "r/out2.csv")
	t3, err := c.StartRun(ctx, catalog.Run{Transform: tr.UID, Name: "t3", User: "ana"}) // writes out's bytes again
	if err != nil {
		t.Fatal(err)
	}
	again := catalogtest.NV(out.Key, "t1"+out.Key)
	again.Run = t3.UID
	if v := save(again); v.UID != out.UID {
		t.Fatalf("t3 wrote out's bytes again as %s, not out (%s)", v.Ref(), out.Ref())
	}
	for _, key := range []string{in1.Key, out.Key} {
		if _, err := c.Purge(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]string{ // every edge of the chain, both ways
		in1.UID + " " + t1.UID: lineage.Used, in2.UID + " " + t1.UID: lineage.Used,
		t1.UID + " " + out.UID: lineage.Generated, out.UID + " " + t2.UID: lineage.Used,
		t2.UID + " " + out2.UID: lineage.Generated, t3.UID + " " + out.UID: lineage.Reproduced,
	}
	check := func(g *lineage.Graph, what string, edges ...string) {
		t.Helper()
		var got []string
		for _, e := range g.Edges {
			got = append(got, e.From+" "+e.To)
			if want[e.From+" "+e.To] != e.Kind {
				t.Errorf("%s: edge %s -> %s %s, not of the chain", what, g.Nodes[e.From].Label(), g.Nodes[e.To].Label(), e.Kind)
			}
		}
		names := map[string]string{in1.UID: "in1", in2.UID: "in2", out.UID: "out", out2.UID: "out2", t1.UID: "t1", t2.UID: "t2", t3.UID: "t3"}
		for _, e := range edges {
			if !slices.Contains(got, e) {
				f := strings.Fields(e)
				t.Errorf("%s lacks the edge %s -> %s", what, names[f[0]], names[f[1]])
			}
		}
		for _, v := range []catalog.Version{in1, out} {
			if n := g.Nodes[v.UID]; n != nil && !n.Purged {
				t.Errorf("%s: %s not marked purged", what, v.Ref())
			}
		}
	}
	up := walk(t, c, out2, lineage.Options{})
	check(up, "lineage out2", in1.UID+" "+t1.UID, in2.UID+" "+t1.UID, t1.UID+" "+out.UID, t3.UID+" "+out.UID, out.UID+" "+t2.UID, t2.UID+" "+out2.UID)
	if n := up.Nodes[in2.UID]; n == nil || n.Purged || n.Version.Digest.IsZero() {
		t.Errorf("lineage out2: in2, live, as %+v", n)
	}
	// DOT gave a purged node style and fillcolor twice (Graphviz takes
	// the last; other readers need not).
	var b bytes.Buffer
	if err := lineage.WriteDOT(&b, up); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(b.String(), "\n") {
		if strings.Contains(line, "(deleted for good)") &&
			(strings.Count(line, " style=") != 1 || strings.Count(line, " fillcolor=") != 1 || !strings.Contains(line, `style="filled,dashed", fillcolor="#e0e0e0"`)) {
			t.Errorf("dot: a purged node's style and fill, once each:\n%s", line)
		}
	}
	down := walk(t, c, in2, lineage.Options{})
	check(down, "lineage in2", in2.UID+" "+t1.UID, t1.UID+" "+out.UID, out.UID+" "+t2.UID, t2.UID+" "+out2.UID)
	// Depth counts a purged version as any other: out, then out2.
	if g := walk(t, c, in2, lineage.Options{Depth: 1, NoUp: true}); g.Nodes[t2.UID] != nil {
		t.Errorf("--depth 1 --down from in2 reached t2 beyond out")
	}
}
