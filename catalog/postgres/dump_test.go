package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/catalog/catalogtest"
	"github.com/lamina-bio/lamina/catalog/postgres"
	"github.com/lamina-bio/lamina/catalog/postgres/pgtest"
)

type dumpLoader interface {
	catalog.Catalog
	Dump(ctx context.Context, fn func(catalog.Record) error) error
	Load(ctx context.Context, recs iter.Seq2[catalog.Record, error]) error
}

// populate gives c one of every kind of record.
func populate(t *testing.T, c catalog.Catalog) {
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	tr, err := c.SaveTransform(ctx, catalog.Transform{Name: "qc.py", Kind: "script", Source: "print(1)"})
	must(err)
	parent, err := c.StartRun(ctx, catalog.Run{Transform: tr.UID, Params: map[string]any{"n": 3.0}})
	must(err)
	child, err := c.StartRun(ctx, catalog.Run{Transform: tr.UID, Parent: parent.UID, Name: "rule a"})
	must(err)
	code := 0
	_, err = c.FinishRun(ctx, child.UID, catalog.RunEnd{FinishedAt: time.Now(), ExitCode: &code})
	must(err)
	var uids []string
	for i, kc := range [][2]string{{"exp/a.csv", "1"}, {"exp/a.csv", "2"}, {"exp/b.csv", "3"}, {"gone/c", "4"}, {"gone/c", "5"}, {"x", "6"}} {
		nv := catalogtest.NV(kc[0], kc[1])
		nv.Description = "sample " + kc[1]
		nv.Columns = []catalog.Column{{Name: "gene", Dtype: "str"}}
		nv.Shape = []int64{int64(i), 2}
		if i == 2 {
			nv.Run = child.UID
		}
		s, err := c.Save(ctx, []catalog.NewVersion{nv})
		must(err)
		uids = append(uids, s[0].Version.UID)
	}
	must(c.AddInputs(ctx, child.UID, uids[:2]))
	again := catalogtest.NV("exp/b.csv", "3") // the same bytes again, by another run
	again.Run = parent.UID
	_, err = c.Save(ctx, []catalog.NewVersion{again})
	must(err)
	_, err = c.Trash(ctx, "gone/c")
	must(err)
	// An output deleted for good: its run keeps what it was (Run.Purged).
	purged := catalogtest.NV("gone/p", "7")
	purged.Run = parent.UID
	_, err = c.Save(ctx, []catalog.NewVersion{purged})
	must(err)
	_, err = c.Purge(ctx, "gone/p")
	must(err)
	must(c.OutboxDone(ctx, uids[:2]))
	must(c.MakeFolder(ctx, "empty/dir"))
	must(c.Symlink(ctx, "exp/link", "a.csv"))
	// A folder and a link removed: kept in the trash for lamina restore.
	must(c.MakeFolder(ctx, "old/dir"))
	mode := uint32(0o700)
	_, err = c.SetAttrs(ctx, "old/dir", catalog.Attrs{Mode: &mode})
	must(err)
	must(c.RemoveFolder(ctx, "old/dir"))
	must(c.Symlink(ctx, "exp/oldlink", "b.csv"))
	must(c.RemoveLink(ctx, "exp/oldlink"))
	_, err = c.CreateFeature(ctx, catalog.Feature{Name: "temp", Dtype: "float"})
	must(err)
	_, err = c.CreateFeature(ctx, catalog.Feature{Name: "organ", Dtype: "cat"})
	must(err)
	_, err = c.CreateLabel(ctx, catalog.Label{Name: "tissue"})
	must(err)
	_, err = c.CreateLabel(ctx, catalog.Label{Name: "liver", Parent: "tissue"})
	must(err)
	_, err = c.CreateSchema(ctx, catalog.Schema{Name: "s", Features: []catalog.SchemaFeature{{Feature: "temp"}}})
	must(err)
	_, err = c.Annotate(ctx, uids[1], catalog.Annotations{Features: map[string][]string{"temp": {"37.5"}, "organ": {"liver"}},
		Labels: []string{"liver"}, Terms: []catalog.Term{{Entity: "celltype", ID: "CL:0000182", Name: "hepatocyte"}}, Schema: "s"})
	must(err)
	_, err = c.SaveCollection(ctx, catalog.NewCollection{Name: "set", Members: uids[1:3], CreatedBy: "t"})
	must(err)
	_, err = c.SaveCollection(ctx, catalog.NewCollection{Name: "set", Members: uids[1:2], CreatedBy: "t"})
	must(err)
}

func dumpLines(t *testing.T, c dumpLoader) []string {
	t.Helper()
	var out []string
	err := c.Dump(context.Background(), func(r catalog.Record) error {
		b, err := json.Marshal(r)
		out = append(out, string(b))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func records(lines []string) iter.Seq2[catalog.Record, error] {
	return func(yield func(catalog.Record, error) bool) {
		for _, l := range lines {
			var r catalog.Record
			err := json.Unmarshal([]byte(l), &r)
			if !yield(r, err) {
				return
			}
		}
	}
}

func openBolt(t *testing.T) *catalog.Bolt {
	b, err := catalog.OpenBolt(filepath.Join(t.TempDir(), "catalog.db"), catalog.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// bbolt → PostgreSQL → bbolt loses nothing, and the stores answer alike.
func TestDumpLoadBothWays(t *testing.T) {
	ctx := context.Background()
	src := openBolt(t)
	populate(t, src)
	a := dumpLines(t, src)

	pg := open(t)
	if err := pg.Load(ctx, records(a)); err != nil {
		t.Fatal(err)
	}
	b := dumpLines(t, pg)
	if !slices.Equal(a, b) {
		t.Fatalf("bbolt → PostgreSQL changed records:\n%s\n----\n%s", join(a), join(b))
	}
	dst := openBolt(t)
	if err := dst.Load(ctx, records(b)); err != nil {
		t.Fatal(err)
	}
	if c := dumpLines(t, dst); !slices.Equal(a, c) {
		t.Fatalf("PostgreSQL → bbolt changed records:\n%s\n----\n%s", join(a), join(c))
	}
	// Loading twice is refused, and so is loading into a catalog that
	// holds only a removed folder (its trash).
	if err := pg.Load(ctx, records(a)); err == nil {
		t.Fatal("loaded into a full catalog")
	}
	for _, c := range []dumpLoader{openBolt(t), open(t)} {
		if err := c.MakeFolder(ctx, "old"); err != nil {
			t.Fatal(err)
		}
		if err := c.RemoveFolder(ctx, "old"); err != nil {
			t.Fatal(err)
		}
		if err := c.Load(ctx, records(a)); !errors.Is(err, catalog.ErrConflict) {
			t.Fatalf("%T: loaded into a catalog with a folder in the trash: %v", c, err)
		}
	}
	// The indexes came along: the same answers from all three.
	for _, c := range []catalog.Catalog{src, pg, dst} {
		vs, err := c.Find(ctx, catalog.Filter{Where: []catalog.Cond{{Field: "temp", Op: ">", Values: []string{"30"}}}, Labels: []string{"tissue"}})
		if err != nil || len(vs) != 1 || vs[0].Key != "exp/a.csv" {
			t.Fatalf("%T Find = %v, %v", c, vs, err)
		}
		hits, err := c.Search(ctx, "hepatocyte", 5)
		if err != nil || len(hits) != 1 {
			t.Fatalf("%T Search = %v, %v", c, hits, err)
		}
		runs, err := c.ListRuns(ctx, catalog.RunQuery{})
		if err != nil || len(runs) != 2 {
			t.Fatalf("%T ListRuns = %v, %v", c, runs, err)
		}
		rec, err := c.RunRecord(ctx, runs[0].UID)
		if err != nil || len(rec.Inputs) != 2 || len(rec.Outputs) != 1 || rec.Transform.Name != "qc.py" {
			t.Fatalf("%T RunRecord = %+v, %v", c, rec, err)
		}
		if used, err := c.UsedBy(ctx, rec.Inputs[0]); err != nil || len(used) != 1 {
			t.Fatalf("%T UsedBy = %v, %v", c, used, err)
		}
		if again, err := c.Reruns(ctx, rec.Outputs[0]); err != nil || !slices.Equal(again, []string{runs[1].UID}) {
			t.Fatalf("%T Reruns = %v, %v", c, again, err)
		}
		p, err := c.RunRecord(ctx, runs[1].UID)
		if err != nil || len(p.Run.Purged) != 1 || p.Run.Purged[0].Key != "gone/p" || !p.Run.Purged[0].Output {
			t.Fatalf("%T the rerun's purged output = %+v, %v", c, p.Run.Purged, err)
		}
		if want := slices.Sorted(slices.Values([]string{rec.Outputs[0], p.Run.Purged[0].UID})); !slices.Equal(p.Outputs, want) {
			t.Fatalf("%T the rerun's outputs = %v, want %v", c, p.Outputs, want)
		}
		top, err := c.Children(ctx, "")
		if err != nil || len(top.Files) != 1 || top.Files[0].Key != "x" || !slices.Equal(top.Subdirs, []string{"empty", "exp"}) {
			t.Fatalf("%T Children() = %+v, %v", c, top, err)
		}
		exp, err := c.Children(ctx, "exp/")
		if err != nil || len(exp.Files) != 2 || exp.Files[0].Key != "exp/a.csv" || exp.Files[0].Version != 2 || len(exp.Links) != 1 {
			t.Fatalf("%T Children(exp/) = %+v, %v", c, exp, err)
		}
		trash, err := c.TrashList(ctx)
		var kinds []string
		for _, e := range trash {
			kinds = append(kinds, e.Key+" "+e.Kind)
		}
		if err != nil || !slices.Equal(kinds, []string{"exp/oldlink link", "gone/c ", "old/dir folder"}) {
			t.Fatalf("%T TrashList = %q, %v", c, kinds, err)
		}
		n, err := c.Counts(ctx)
		if err != nil || n != (catalog.Counts{Artifacts: 3, Versions: 4, Trashed: 2, Bytes: 6}) {
			t.Fatalf("%T Counts = %+v, %v", c, n, err)
		}
	}
}

func join(ls []string) string {
	out := ""
	for _, l := range ls {
		out += l + "\n"
	}
	return out
}

// An import whose statements go in batches still fails whole: a record
// that breaks a constraint (the same version twice) fails the Load, with
// the server's reason, and leaves nothing behind.
func TestLoadFailsWhole(t *testing.T) {
	ctx := context.Background()
	src := openBolt(t)
	populate(t, src)
	a := dumpLines(t, src)
	var dup string
	for _, l := range a {
		if strings.Contains(l, `"version":{`) {
			dup = l
			break
		}
	}
	if dup == "" {
		t.Fatal("the dump holds no version")
	}
	pg := open(t)
	err := pg.Load(ctx, records(append(slices.Clone(a), dup)))
	if err == nil || !strings.Contains(err.Error(), "duplicate key") {
		t.Fatalf("Load with a version twice = %v; want a duplicate key error", err)
	}
	if n, err := pg.Counts(ctx); err != nil || n != (catalog.Counts{}) {
		t.Fatalf("after a failed Load: %+v, %v; want nothing", n, err)
	}
}

// An import of more statements than one batch lands whole; a failure in an
// early batch (a folder twice) comes back from the send in the middle of
// the import, and nothing is left behind.
func TestLoadInBatches(t *testing.T) {
	ctx := context.Background()
	const n = 1200 // more than two batches of statements
	folders := func(dupAt int) iter.Seq2[catalog.Record, error] {
		return func(yield func(catalog.Record, error) bool) {
			if !yield(catalog.Record{Format: catalog.DumpFormat}, nil) {
				return
			}
			for i := range n {
				f := &catalog.FolderRecord{Key: fmt.Sprintf("f/d%04d", i), Mtime: time.Unix(int64(i), 0).UTC()}
				if !yield(catalog.Record{Folder: f}, nil) {
					return
				}
				if i == dupAt && !yield(catalog.Record{Folder: f}, nil) {
					return
				}
			}
		}
	}
	pg := open(t)
	if err := pg.Load(ctx, folders(-1)); err != nil {
		t.Fatal(err)
	}
	if d, err := pg.Children(ctx, "f/"); err != nil || len(d.Subdirs) != n {
		t.Fatalf("after loading %d folders: %d listed, %v", n, len(d.Subdirs), err)
	}
	bad := open(t)
	err := bad.Load(ctx, folders(10))
	if err == nil || !strings.Contains(err.Error(), "duplicate key") {
		t.Fatalf("Load with a folder twice = %v; want a duplicate key error", err)
	}
	if d, err := bad.Children(ctx, "f/"); err != nil || len(d.Subdirs) != 0 {
		t.Fatalf("after a failed Load: %d folders, %v; want none", len(d.Subdirs), err)
	}
}

// A dump is in format 1 while the catalog holds nothing format 2 adds,
// so that a lamina that reads only format 1 imports it; a version that
// revises another or a folder or link in the trash makes it format 2, a
// rerun format 3.
// Every dump was format 2, which such a lamina refused. Both stores.
func TestDumpFormat(t *testing.T) {
	ctx := context.Background()
	for _, name := range []string{"bolt", "postgres"} {
		t.Run(name, func(t *testing.T) {
			fresh := func() dumpLoader {
				if name == "bolt" {
					return openBolt(t)
				}
				return open(t)
			}
			format := func(c dumpLoader) string { return dumpLines(t, c)[0] }
			plain := fresh()
			s, err := plain.Save(ctx, []catalog.NewVersion{catalogtest.NV("a.csv", "1")})
			if err != nil {
				t.Fatal(err)
			}
			if err := plain.MakeFolder(ctx, "kept"); err != nil {
				t.Fatal(err)
			}
			if _, err := plain.Trash(ctx, "a.csv"); err != nil { // a trashed version is format 1
				t.Fatal(err)
			}
			v1 := dumpLines(t, plain)
			if v1[0] != `{"format":1}` {
				t.Errorf("plain catalog: %s; want format 1", v1[0])
			}
			// It loads into the other store alike.
			var other dumpLoader = open(t)
			if name == "postgres" {
				other = openBolt(t)
			}
			if err := other.Load(ctx, records(v1)); err != nil {
				t.Fatal(err)
			}
			if got := dumpLines(t, other); !slices.Equal(got, v1) {
				t.Errorf("format 1 dump reloaded:\n%s\n----\n%s", join(v1), join(got))
			}
			if _, err := plain.Restore(ctx, "a.csv"); err != nil {
				t.Fatal(err)
			}
			nv := catalogtest.NV("a.csv", "2")
			nv.Revises = s[0].Version.UID
			if _, err := plain.Save(ctx, []catalog.NewVersion{nv}); err != nil {
				t.Fatal(err)
			}
			if got := format(plain); got != `{"format":2}` {
				t.Errorf("with a version that revises another: %s; want format 2", got)
			}
			nodes := fresh()
			if err := nodes.MakeFolder(ctx, "old"); err != nil {
				t.Fatal(err)
			}
			if err := nodes.RemoveFolder(ctx, "old"); err != nil {
				t.Fatal(err)
			}
			if got := format(nodes); got != `{"format":2}` {
				t.Errorf("with a folder in the trash: %s; want format 2", got)
			}
			// A rerun (a run wrote a version's bytes again) makes it format
			// 3: a lamina that reads only 2 said the file was cut or edited.
			again := fresh()
			tr, _ := again.SaveTransform(ctx, catalog.Transform{Name: "t", Kind: "named"})
			r, _ := again.StartRun(ctx, catalog.Run{Transform: tr.UID})
			if _, err := again.Save(ctx, []catalog.NewVersion{catalogtest.NV("b.csv", "1")}); err != nil {
				t.Fatal(err)
			}
			if got := format(again); got != `{"format":1}` {
				t.Errorf("before the rerun: %s; want format 1", got)
			}
			nv = catalogtest.NV("b.csv", "1")
			nv.Run = r.UID
			if s, err := again.Save(ctx, []catalog.NewVersion{nv}); err != nil || !s[0].Unchanged {
				t.Fatalf("rerun: %+v, %v", s, err)
			}
			v3 := dumpLines(t, again)
			if v3[0] != `{"format":3}` {
				t.Errorf("with a rerun: %s; want format 3", v3[0])
			}
			other = open(t)
			if name == "postgres" {
				other = openBolt(t)
			}
			if err := other.Load(ctx, records(v3)); err != nil {
				t.Fatal(err)
			}
			if got := dumpLines(t, other); !slices.Equal(got, v3) {
				t.Errorf("format 3 dump reloaded:\n%s\n----\n%s", join(v3), join(got))
			}
			// A deleted collection's highest number makes it format 4: a
			// lamina that reads only 3 would import the catalog without it,
			// and the name made again would start over at v1. The loaded
			// catalog continues after it; once the name is made again its
			// versions hold the number, and the export is format 1 again.
			cols := fresh()
			s, err = cols.Save(ctx, []catalog.NewVersion{catalogtest.NV("c.csv", "1"), catalogtest.NV("d.csv", "2")})
			if err != nil {
				t.Fatal(err)
			}
			for _, sv := range s {
				if _, err := cols.SaveCollection(ctx, catalog.NewCollection{Name: "pick", Members: []string{sv.Version.UID}}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := cols.DeleteCollection(ctx, "pick"); err != nil {
				t.Fatal(err)
			}
			v4 := dumpLines(t, cols)
			if v4[0] != `{"format":4}` || !slices.Contains(v4, `{"deleted_collection":{"name":"pick","version":2}}`) {
				t.Errorf("with a deleted collection:\n%s", join(v4))
			}
			other = open(t)
			if name == "postgres" {
				other = openBolt(t)
			}
			if err := other.Load(ctx, records(v4)); err != nil {
				t.Fatal(err)
			}
			if got := dumpLines(t, other); !slices.Equal(got, v4) {
				t.Errorf("format 4 dump reloaded:\n%s\n----\n%s", join(v4), join(got))
			}
			for _, c := range []dumpLoader{cols, other} {
				col, err := c.SaveCollection(ctx, catalog.NewCollection{Name: "pick", Members: []string{s[0].Version.UID}})
				if err != nil || col.Version != 3 {
					t.Errorf("%T: pick made again: v%d, %v; want v3", c, col.Version, err)
				}
				if got := format(c); got != `{"format":1}` {
					t.Errorf("%T: with pick made again: %s; want format 1", c, got)
				}
			}
		})
	}
}

// A permanent delete takes the reruns of the versions it purges: bbolt
// kept their version_reruns and run_outputs entries (an export wrote a
// rerun of a version it did not hold), PostgreSQL its run_reruns rows.
// The run's own record keeps what it wrote (Run.Purged). Both stores.
func TestPurgeDropsReruns(t *testing.T) {
	ctx := context.Background()
	for _, name := range []string{"bolt", "postgres"} {
		t.Run(name, func(t *testing.T) {
			var c dumpLoader
			var u string
			if name == "bolt" {
				c = openBolt(t)
			} else {
				u = pgtest.URL(t)
				s, err := postgres.Open(ctx, u, postgres.Options{})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Close() })
				c = s
			}
			tr, _ := c.SaveTransform(ctx, catalog.Transform{Name: "t", Kind: "named"})
			r, _ := c.StartRun(ctx, catalog.Run{Transform: tr.UID})
			if _, err := c.Save(ctx, []catalog.NewVersion{catalogtest.NV("b.csv", "1")}); err != nil {
				t.Fatal(err)
			}
			nv := catalogtest.NV("b.csv", "1")
			nv.Run = r.UID
			if s, err := c.Save(ctx, []catalog.NewVersion{nv}); err != nil || !s[0].Unchanged {
				t.Fatalf("rerun: %+v, %v", s, err)
			}
			if _, err := c.Purge(ctx, "b.csv"); err != nil {
				t.Fatal(err)
			}
			lines := dumpLines(t, c)
			for _, l := range lines {
				if strings.Contains(l, `"rerun"`) {
					t.Fatalf("the export after the purge holds %s", l)
				}
			}
			if lines[0] != `{"format":1}` {
				t.Errorf("after the purge: %s; want format 1", lines[0])
			}
			// The run still says it wrote the version (Run.Purged), in the
			// export too, as a record of the run.
			if rec, err := c.RunRecord(ctx, r.UID); err != nil || len(rec.Outputs) != 1 || len(rec.Run.Purged) != 1 ||
				rec.Outputs[0] != rec.Run.Purged[0].UID || rec.Run.Purged[0].Key != "b.csv" {
				t.Fatalf("the rerun's outputs after the purge: %v, purged %+v, %v", rec.Outputs, rec.Run.Purged, err)
			}
			if u != "" {
				conn, err := pgx.Connect(ctx, u)
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close(ctx)
				var n int
				if err := conn.QueryRow(ctx, `SELECT count(*) FROM run_reruns`).Scan(&n); err != nil || n != 0 {
					t.Fatalf("run_reruns rows after the purge: %d, %v", n, err)
				}
			}
		})
	}
}
