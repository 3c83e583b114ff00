package postgres_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/catalog/catalogtest"
	"github.com/lamina-bio/lamina/catalog/postgres"
	"github.com/lamina-bio/lamina/catalog/postgres/pgtest"
	"github.com/lamina-bio/lamina/ref"
)

func open(t *testing.T) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), pgtest.URL(t), postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	catalogtest.Run(t, func(t *testing.T) catalog.Catalog { return open(t) })
}

func TestRefusesNewerSchema(t *testing.T) {
	u := pgtest.URL(t)
	s, err := postgres.Open(context.Background(), u, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	pgtest.Exec(t, u, `UPDATE schema_version SET version = 99`)
	_, err = postgres.Open(context.Background(), u, postgres.Options{})
	if !errors.Is(err, catalog.ErrSchema) || !strings.Contains(err.Error(), "upgrade lamina") {
		t.Fatalf("newer schema: %v", err)
	}
}

// schema6Key is the index key schema 6 gave the int n: its nearest
// float64's, sign bit flipped (negatives inverted).
func schema6Key(n int64) []byte {
	bits := math.Float64bits(float64(n))
	if bits>>63 == 0 {
		bits ^= 1 << 63
	} else {
		bits = ^bits
	}
	return binary.BigEndian.AppendUint64([]byte{'n'}, bits)
}

// Schema 6 keyed an int feature value by its nearest float64: 2^53 and
// 2^53+1 shared a key (one row for a version with both). Migrating to 7
// rewrites the keys of such values, so id=2^53+1 finds the versions that
// hold it, as a bbolt catalog upgraded from schema 4 does.
func TestMigratesIntKeys(t *testing.T) {
	ctx := context.Background()
	u := pgtest.URL(t)
	s, err := postgres.Open(ctx, u, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateFeature(ctx, catalog.Feature{Name: "id", Dtype: "int"}); err != nil {
		t.Fatal(err)
	}
	ids := map[string][]int64{"a": {1 << 53}, "b": {1<<53 + 1}, "c": {1 << 53, 1<<53 + 1}, "d": {-(1<<53 + 1)}, "e": {7}}
	uids := map[string]string{}
	for k, ns := range ids {
		saved, err := s.Save(ctx, []catalog.NewVersion{catalogtest.NV(k, k)})
		if err != nil {
			t.Fatal(err)
		}
		uids[k] = saved[0].Version.UID
		var vs []string
		for _, n := range ns {
			vs = append(vs, fmt.Sprint(n))
		}
		if _, err := s.Annotate(ctx, uids[k], catalog.Annotations{Features: map[string][]string{"id": vs}}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	// What schema 6 wrote.
	pgtest.Exec(t, u, `DELETE FROM idx_features WHERE feature = 'id'`)
	for k, ns := range ids {
		for _, n := range ns {
			pgtest.Exec(t, u, `INSERT INTO idx_features (feature, vkey, uid) VALUES ('id', $1, $2) ON CONFLICT DO NOTHING`, schema6Key(n), uids[k])
		}
	}
	pgtest.Exec(t, u, `DROP TABLE run_reruns`)          // schema 8's
	pgtest.Exec(t, u, `DROP TABLE collections_deleted`) // schema 9's
	pgtest.Exec(t, u, `UPDATE schema_version SET version = 6`)
	if s, err = postgres.Open(ctx, u, postgres.Options{}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for value, want := range map[string]string{"9007199254740992": "a c", "9007199254740993": "b c", "-9007199254740993": "d", "7": "e"} {
		vs, err := s.Find(ctx, catalog.Filter{Where: []catalog.Cond{{Field: "id", Op: "=", Values: []string{value}}}})
		var got []string
		for _, v := range vs {
			got = append(got, v.Key)
		}
		if err != nil || strings.Join(got, " ") != want {
			t.Errorf("id=%s: %v, %v; want %s", value, got, err, want)
		}
	}
}

// A schema 8 database (before deleted collections kept their numbers)
// migrates to 9: a collection deleted then keeps its highest number, and
// the name made again continues after it, as in bbolt.
func TestMigratesDeletedCollections(t *testing.T) {
	ctx := context.Background()
	u := pgtest.URL(t)
	s, err := postgres.Open(ctx, u, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	saved, err := s.Save(ctx, []catalog.NewVersion{catalogtest.NV("a.csv", "1"), catalogtest.NV("b.csv", "2")})
	if err != nil {
		t.Fatal(err)
	}
	for _, sv := range saved {
		if _, err := s.SaveCollection(ctx, catalog.NewCollection{Name: "pick", Members: []string{sv.Version.UID}}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	pgtest.Exec(t, u, `DROP TABLE collections_deleted`) // what schema 8 had
	pgtest.Exec(t, u, `UPDATE schema_version SET version = 8`)
	if s, err = postgres.Open(ctx, u, postgres.Options{}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.DeleteCollection(ctx, "pick"); err != nil {
		t.Fatal(err)
	}
	col, err := s.SaveCollection(ctx, catalog.NewCollection{Name: "pick", Members: []string{saved[0].Version.UID}})
	if err != nil || col.Version != 3 {
		t.Fatalf("pick made again after the migration: v%d, %v; want v3", col.Version, err)
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"postgresql://lamina:secret@db:5432/lab":                     "postgresql://lamina@db:5432/lab",
		"postgresql://lamina@db/lab":                                 "postgresql://lamina@db/lab",
		"postgres://db/lab?sslmode=require":                          "postgres://db/lab?sslmode=require",
		"postgresql://lamina@db/lab?password=s3cret&sslmode=disable": "postgresql://lamina@db/lab?sslmode=disable",
		"host=db password=s3cret dbname=lab":                         "host=db password=xxxxx dbname=lab",
		"host=db password='s 3cret' dbname=lab":                      "host=db password=xxxxx dbname=lab",
	} {
		if got := postgres.Redact(in); got != want {
			t.Errorf("Redact(%s) = %s, want %s", in, got, want)
		}
	}
	for in, want := range map[string]bool{
		"postgresql://a:b@h/d": true, "postgresql://a@h/d": false, "postgresql://a@h/d?password=b": true,
		"postgresql://a@h/d?sslmode=disable": false, "host=h password=b": true, "host=h user=a": false,
	} {
		if got := postgres.HasPassword(in); got != want {
			t.Errorf("HasPassword(%s) = %v", in, got)
		}
	}
}

// A role that may only read: reads work, writes fail with ErrReadOnly.
func TestReadOnlyRole(t *testing.T) {
	ctx := context.Background()
	u := pgtest.URL(t)
	rw := open2(t, u)
	if _, err := rw.Save(ctx, []catalog.NewVersion{catalogtest.NV("a/b", "1")}); err != nil {
		t.Fatal(err)
	}
	schema := schemaOf(t, u)
	role := "ro_" + schema
	pgtest.Exec(t, u, `CREATE ROLE `+role+` NOLOGIN`)
	t.Cleanup(func() { pgtest.Exec(t, pgtest.Base(t), `DROP OWNED BY `+role+`; DROP ROLE `+role) })
	pgtest.Exec(t, u, `GRANT USAGE ON SCHEMA `+schema+` TO `+role+`; GRANT SELECT ON ALL TABLES IN SCHEMA `+schema+` TO `+role)
	// The test user becomes the reader for every connection of this URL.
	ro := open2(t, pgtest.WithParam(u, "role", role))
	if ok, err := ro.Writable(ctx); err != nil || ok {
		t.Fatalf("Writable = %v, %v", ok, err)
	}
	if ok, err := rw.Writable(ctx); err != nil || !ok {
		t.Fatalf("Writable (owner) = %v, %v", ok, err)
	}
	if v, err := ro.ByKey(ctx, "a/b", 0); err != nil || v.Version != 1 {
		t.Fatalf("read: %v %v", v, err)
	}
	_, err := ro.Save(ctx, []catalog.NewVersion{catalogtest.NV("a/b", "2")})
	if !errors.Is(err, postgres.ErrReadOnly) || !errors.Is(err, fs.ErrPermission) {
		t.Fatalf("write as reader: %v", err)
	}
	if err := ro.MakeFolder(ctx, "x"); !errors.Is(err, fs.ErrPermission) {
		t.Fatalf("mkdir as reader: %v", err)
	}
}

func open2(t *testing.T, u string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), u, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func schemaOf(t *testing.T, u string) string {
	i := strings.Index(u, "search_path=")
	if i < 0 {
		t.Fatal("no schema in", u)
	}
	return u[i+len("search_path="):]
}

// Two stores on one database (two workstations): every save lands, numbers
// never collide, and each hears of the other's changes.
func TestTwoWriters(t *testing.T) {
	ctx := context.Background()
	u := pgtest.URL(t)
	a, b := open2(t, u), open2(t, u)
	heard := make(chan []string, 1000)
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go b.Listen(lctx, func(keys []string) { heard <- keys })
	time.Sleep(200 * time.Millisecond) // LISTEN is up
	const n = 40
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for _, s := range []*postgres.Store{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n; i++ {
				if _, err := s.Save(ctx, []catalog.NewVersion{catalogtest.NV("shared/k", fmt.Sprintf("%p-%d", s, i))}); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	vs, err := a.Versions(ctx, "shared/k", false)
	if err != nil || len(vs) != 2*n {
		t.Fatalf("versions: %d, %v", len(vs), err)
	}
	for i, v := range vs {
		if v.Version != i+1 {
			t.Fatalf("version %d is number %d", i, v.Version)
		}
	}
	// b hears a's saves (not its own).
	deadline := time.After(2 * time.Second)
	got := 0
	for got < n {
		select {
		case keys := <-heard:
			got += len(keys)
		case <-deadline:
			t.Fatalf("heard %d of %d changes", got, n)
		}
	}
	// Lineage links across workstations: a run started on a, its input
	// and output recorded on b, read back on a.
	tr, err := a.SaveTransform(ctx, catalog.Transform{Name: "align.sh", Kind: "script"})
	if err != nil {
		t.Fatal(err)
	}
	run, err := a.StartRun(ctx, catalog.Run{Transform: tr.UID})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.AddInputs(ctx, run.UID, []string{vs[0].UID}); err != nil {
		t.Fatal(err)
	}
	out := catalogtest.NV("shared/out", "o")
	out.Run = run.UID
	sv, err := b.Save(ctx, []catalog.NewVersion{out})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := a.RunRecord(ctx, run.UID)
	if err != nil || !slices.Equal(rec.Inputs, []string{vs[0].UID}) || !slices.Equal(rec.Outputs, []string{sv[0].Version.UID}) {
		t.Fatalf("lineage across stores: %+v, %v", rec, err)
	}
	for len(heard) > 0 {
		<-heard
	}
	if _, err := a.Trash(ctx, "shared/k"); err != nil {
		t.Fatal(err)
	}
	select {
	case keys := <-heard:
		if !slices.Equal(keys, []string{"shared/k", catalog.DeleteChange("shared/k")}) {
			t.Fatalf("heard %v", keys)
		}
	case <-time.After(time.Second):
		t.Fatal("trash not heard within a second")
	}
}

// Save commits durably, so it runs SyncFirst's sync before it writes, and
// records nothing when the sync fails (the content it would name might
// not survive a crash).
func TestSaveSyncsContentFirst(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	calls := 0
	synced := catalog.SyncFirst(catalog.Lazy(ctx), func(context.Context) error { calls++; return nil })
	nv := catalog.NewVersion{Key: "a/x.csv", Kind: "file", Size: 1, Digest: ref.Sum([]byte("x")), CreatedAt: time.Now(), Mtime: time.Now()}
	if _, err := s.Save(synced, []catalog.NewVersion{nv}); err != nil || calls != 1 {
		t.Fatalf("Save: %v, %d syncs, want 1", err, calls)
	}
	failing := catalog.SyncFirst(ctx, func(context.Context) error { return errors.New("disk full") })
	nv.Key, nv.Digest = "a/y.csv", ref.Sum([]byte("y"))
	if _, err := s.Save(failing, []catalog.NewVersion{nv}); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Save whose content sync failed: %v", err)
	}
	if _, err := s.ByKey(ctx, "a/y.csv", 0); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("a save whose content sync failed was recorded: %v", err)
	}
}

// TestOldNegativeZeroShownZero: a float -0 an older build stored (text
// -0) is returned as 0 by Annotations, Annotate and Unannotate (show
// --format json and the mount's sidecar printed -0); a str "-0" stays.
func TestOldNegativeZeroShownZero(t *testing.T) {
	ctx := context.Background()
	u := pgtest.URL(t)
	s, err := postgres.Open(ctx, u, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for name, dtype := range map[string]string{"score": "float", "other": "float", "note": "str"} {
		if _, err := s.CreateFeature(ctx, catalog.Feature{Name: name, Dtype: dtype}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.CreateLabel(ctx, catalog.Label{Name: "control"}); err != nil {
		t.Fatal(err)
	}
	saved, err := s.Save(ctx, []catalog.NewVersion{catalogtest.NV("t/one.csv", "a,b\n1,2\n")})
	if err != nil {
		t.Fatal(err)
	}
	uid := saved[0].Version.UID
	if _, err := s.Annotate(ctx, uid, catalog.Annotations{Features: map[string][]string{"score": {"1.5"}, "other": {"2"}, "note": {"x"}}}); err != nil {
		t.Fatal(err)
	}
	// The record as an older build wrote it.
	pgtest.Exec(t, u, `UPDATE annotations SET rec = jsonb_set(jsonb_set(jsonb_set(rec, '{features,score}', '["-0"]'),
		'{features,other}', '["-0", "0", "2"]'), '{features,note}', '["-0"]') WHERE uid = $1`, uid)
	check := func(what string, a catalog.Annotations, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		for name, want := range map[string][]string{"score": {"0"}, "other": {"0", "2"}, "note": {"-0"}} {
			if got := a.Features[name]; !slices.Equal(got, want) {
				t.Errorf("%s: %s = %q, want %q", what, name, got, want)
			}
		}
	}
	a, err := s.Annotations(ctx, uid)
	check("Annotations", a, err)
	a, err = s.Annotate(ctx, uid, catalog.Annotations{Labels: []string{"control"}})
	check("Annotate", a, err)
	a, err = s.Unannotate(ctx, uid, catalog.Annotations{Labels: []string{"control"}})
	check("Unannotate", a, err)
}

// Open tells OnMigrated once that it upgraded an existing catalog, from
// which schema to which: the daemons of older builds on other
// workstations turn read-only then, and the CLI says so (audit d4: a
// plain `lamina ls` migrated 8→9 without a word). Creating a catalog, or
// opening a current one, tells nothing.
func TestMigrationTold(t *testing.T) {
	ctx := context.Background()
	u := pgtest.URL(t)
	var told [][2]int
	o := postgres.Options{OnMigrated: func(from, to int) { told = append(told, [2]int{from, to}) }}
	s, err := postgres.Open(ctx, u, o)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if len(told) != 0 {
		t.Fatalf("creating the catalog told %v", told)
	}
	pgtest.Exec(t, u, `DROP TABLE collections_deleted`) // schema 9's
	pgtest.Exec(t, u, `UPDATE schema_version SET version = 8`)
	for range 2 {
		s, err := postgres.Open(ctx, u, o)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	if want := [][2]int{{8, postgres.SchemaVersion}}; !slices.Equal(told, want) {
		t.Fatalf("told %v, want %v", told, want)
	}
}
