package catalog_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/catalog/catalogtest"
	"github.com/lamina-bio/lamina/ref"
	bolt "go.etcd.io/bbolt"
)

func TestBoltConformance(t *testing.T) {
	for _, hold := range []bool{false, true} {
		name := "PerCall"
		if hold {
			name = "Held"
		}
		t.Run(name, func(t *testing.T) {
			catalogtest.Run(t, func(t *testing.T) catalog.Catalog {
				c, err := catalog.OpenBolt(filepath.Join(t.TempDir(), "catalog.db"), catalog.BoltOptions{Hold: hold})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				return c
			})
		})
	}
}

func TestBoltRefusesNewerSchema(t *testing.T) {
	p := filepath.Join(t.TempDir(), "catalog.db")
	c, err := catalog.OpenBolt(p, catalog.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	db, err := bolt.Open(p, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("meta")).Put([]byte("schema"), []byte("99")) })
	db.Close()
	if _, err := catalog.OpenBolt(p, catalog.BoltOptions{}); !errors.Is(err, catalog.ErrSchema) {
		t.Fatalf("newer schema: %v", err)
	}
}

// A schema 3 catalog (before removed folders were kept and versions said
// what they revise) opens as 4, its trash bucket made and its listing kept
// as it was; a schema 3 build then refuses it (TestBoltRefusesNewerSchema).
func TestBoltUpgradesSchema3(t *testing.T) {
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "catalog.db")
	c, err := catalog.OpenBolt(p, catalog.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Save(ctx, []catalog.NewVersion{catalogtest.NV("d/a.csv", "1")}); err != nil {
		t.Fatal(err)
	}
	c.Close()
	db, err := bolt.Open(p, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket([]byte("trashtree")); err != nil {
			return err
		}
		return tx.Bucket([]byte("meta")).Put([]byte("schema"), []byte("3"))
	})
	db.Close()
	c, err = catalog.OpenBolt(p, catalog.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.MakeFolder(ctx, "e"); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveFolder(ctx, "e"); err != nil {
		t.Fatalf("rmdir in an upgraded catalog: %v", err)
	}
	if d, err := c.Children(ctx, "d/"); err != nil || len(d.Files) != 1 {
		t.Fatalf("listing after the upgrade: %+v, %v", d, err)
	}
	c.Close()
	db, err = bolt.Open(p, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.View(func(tx *bolt.Tx) error {
		if s := string(tx.Bucket([]byte("meta")).Get([]byte("schema"))); s != fmt.Sprint(catalog.SchemaVersion) || s != "8" {
			t.Errorf("schema after opening = %q, want 8", s)
		}
		return nil
	})
}

// A schema 6 catalog (before reruns were recorded) opens as 7 (now 8): a build of
// schema 6 refuses a catalog that may hold reruns ("upgrade lamina")
// rather than export it without them or leave them behind a purge.
func TestBoltUpgradesSchema6(t *testing.T) {
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "catalog.db")
	c, err := catalog.OpenBolt(p, catalog.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Save(ctx, []catalog.NewVersion{catalogtest.NV("d/a.csv", "1")}); err != nil {
		t.Fatal(err)
	}
	c.Close()
	schema := func() string {
		t.Helper()
		db, err := bolt.Open(p, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var s string
		db.View(func(tx *bolt.Tx) error { s = string(tx.Bucket([]byte("meta")).Get([]byte("schema"))); return nil })
		return s
	}
	if s := schema(); s != "8" {
		t.Fatalf("a new catalog has schema %q; a build of 6 would read it without its reruns", s)
	}
	db, err := bolt.Open(p, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("meta")).Put([]byte("schema"), []byte("6")) })
	db.Close()
	c, err = catalog.OpenBolt(p, catalog.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tr, _ := c.SaveTransform(ctx, catalog.Transform{Name: "t", Kind: "named"})
	r, _ := c.StartRun(ctx, catalog.Run{Transform: tr.UID})
	nv := catalogtest.NV("d/a.csv", "1")
	nv.Run = r.UID
	if s, err := c.Save(ctx, []catalog.NewVersion{nv}); err != nil || !s[0].Unchanged {
		t.Fatalf("a rerun in an upgraded catalog: %+v, %v", s, err)
	}
	if got, err := c.Reruns(ctx, mustKey(t, c, "d/a.csv").UID); err != nil || len(got) != 1 {
		t.Fatalf("Reruns = %v, %v", got, err)
	}
	c.Close()
	if s := schema(); s != "8" {
		t.Fatalf("schema after opening a schema 6 catalog = %q, want 8", s)
	}
}

// A schema 7 catalog (before deleted collections kept their numbers)
// opens as 8, with the bucket that keeps them: a build of 7 refuses it
// rather than make a deleted name again from v1 or export it without
// them. A collection deleted before keeps no number.
func TestBoltUpgradesSchema7(t *testing.T) {
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "catalog.db")
	c, err := catalog.OpenBolt(p, catalog.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Save(ctx, []catalog.NewVersion{catalogtest.NV("a.csv", "1"), catalogtest.NV("b.csv", "2")})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 2} {
		if _, err := c.SaveCollection(ctx, catalog.NewCollection{Name: "pick", Members: []string{s[n-1].Version.UID}}); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	db, err := bolt.Open(p, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket([]byte("collections_deleted")); err != nil {
			return err
		}
		return tx.Bucket([]byte("meta")).Put([]byte("schema"), []byte("7"))
	})
	db.Close()
	c, err = catalog.OpenBolt(p, catalog.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.DeleteCollection(ctx, "pick"); err != nil {
		t.Fatal(err)
	}
	if col, err := c.SaveCollection(ctx, catalog.NewCollection{Name: "pick", Members: []string{s[0].Version.UID}}); err != nil || col.Version != 3 {
		t.Fatalf("pick made again in an upgraded catalog: v%d, %v; want v3", col.Version, err)
	}
	c.Close()
	db, err = bolt.Open(p, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.View(func(tx *bolt.Tx) error {
		if s := string(tx.Bucket([]byte("meta")).Get([]byte("schema"))); s != "8" {
			t.Errorf("schema after opening a schema 7 catalog = %q, want 8", s)
		}
		return nil
	})
}

func mustKey(t *testing.T, c catalog.Catalog, key string) catalog.Version {
	t.Helper()
	v, err := c.ByKey(context.Background(), key, 0)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// schema4Key is the index key schema 4 gave the int n: its nearest
// float64's, sign bit flipped (negatives inverted).
func schema4Key(n int64) []byte {
	bits := math.Float64bits(float64(n))
	if bits>>63 == 0 {
		bits ^= 1 << 63
	} else {
		bits = ^bits
	}
	return binary.BigEndian.AppendUint64([]byte{'n'}, bits)
}

// A schema 4 catalog keyed an int feature value by its nearest float64:
// 2^53 and 2^53+1 shared a key, and a version annotated with both had one
// index entry. Opening it as 5 rewrites the keys of such values (and
// only those), so id=2^53+1 finds the versions that hold it.
func TestBoltUpgradesSchema4(t *testing.T) {
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "catalog.db")
	c, err := catalog.OpenBolt(p, catalog.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateFeature(ctx, catalog.Feature{Name: "id", Dtype: "int"}); err != nil {
		t.Fatal(err)
	}
	ids := map[string][]string{"a": {"9007199254740992"}, "b": {"9007199254740993"}, "c": {"9007199254740992", "9007199254740993"}, "d": {"-9007199254740993"}, "e": {"7"}}
	for k, vs := range ids {
		s, err := c.Save(ctx, []catalog.NewVersion{catalogtest.NV(k, k)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Annotate(ctx, s[0].Version.UID, catalog.Annotations{Features: map[string][]string{"id": vs}}); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	// What schema 4 wrote: the index keyed by float64.
	db, err := bolt.Open(p, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		idx := tx.Bucket([]byte("idx_features"))
		type entry struct{ k, v []byte }
		var old []entry
		var drop [][]byte
		idx.ForEach(func(k, v []byte) error {
			drop = append(drop, append([]byte(nil), k...))
			mid := k[len("id\x00") : len(k)-ref.UIDLen-1]
			uid := k[len(k)-ref.UIDLen:]
			f := binary.BigEndian.Uint64(mid[1:9])
			if f>>63 == 1 {
				f ^= 1 << 63
			} else {
				f = ^f
			}
			n := int64(math.Float64frombits(f))
			if len(mid) == 11 {
				n += int64(binary.BigEndian.Uint16(mid[9:]) &^ 0x8000)
			}
			key := append(append([]byte("id\x00"), schema4Key(n)...), 0)
			old = append(old, entry{append(key, uid...), append([]byte(nil), v...)})
			return nil
		})
		for _, k := range drop {
			if err := idx.Delete(k); err != nil {
				return err
			}
		}
		for _, e := range old {
			if err := idx.Put(e.k, e.v); err != nil {
				return err
			}
		}
		return tx.Bucket([]byte("meta")).Put([]byte("schema"), []byte("4"))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	c, err = catalog.OpenBolt(p, catalog.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for value, want := range map[string]string{"9007199254740992": "a c", "9007199254740993": "b c", "-9007199254740993": "d", "7": "e"} {
		vs, err := c.Find(ctx, catalog.Filter{Where: []catalog.Cond{{Field: "id", Op: "=", Values: []string{value}}}})
		var got []string
		for _, v := range vs {
			got = append(got, v.Key)
		}
		if err != nil || strings.Join(got, " ") != want {
			t.Errorf("id=%s: %v, %v; want %s", value, got, err, want)
		}
	}
	c.Close()
	db, err = bolt.Open(p, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.View(func(tx *bolt.Tx) error {
		if s := string(tx.Bucket([]byte("meta")).Get([]byte("schema"))); s != "8" {
			t.Errorf("schema after opening = %q, want 8", s)
		}
		return nil
	})
}

// A schema 5 catalog left a renamed version's index entries on its old
// key and kept the old key's words: opening it as 6 rebuilds the indexes,
// so Find by the new key's prefix and Search by its words find it, and
// the old key's words find nothing.
func TestBoltUpgradesSchema5(t *testing.T) {
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "catalog.db")
	c, err := catalog.OpenBolt(p, catalog.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateFeature(ctx, catalog.Feature{Name: "n", Dtype: "int"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateLabel(ctx, catalog.Label{Name: "red"}); err != nil {
		t.Fatal(err)
	}
	nv := catalogtest.NV("r/platypus", "p")
	nv.Description = "monotreme"
	s, err := c.Save(ctx, []catalog.NewVersion{nv})
	if err != nil {
		t.Fatal(err)
	}
	uid := s[0].Version.UID
	if _, err := c.Annotate(ctx, uid, catalog.Annotations{Features: map[string][]string{"n": {"9"}}, Labels: []string{"red"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Rename(ctx, "r/platypus", "r/echidna"); err != nil {
		t.Fatal(err)
	}
	c.Close()
	// What schema 5 left: the entries on the old key, its words, and none
	// of the new key's.
	db, err := bolt.Open(p, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range []string{"idx_features", "idx_labels"} {
			bk := tx.Bucket([]byte(name))
			var ks [][]byte
			bk.ForEach(func(k, _ []byte) error { ks = append(ks, append([]byte(nil), k...)); return nil })
			for _, k := range ks {
				if err := bk.Put(k, []byte("r/platypus")); err != nil {
					return err
				}
			}
		}
		w := tx.Bucket([]byte("idx_words"))
		if err := w.Delete([]byte("echidna\x00" + uid)); err != nil {
			return err
		}
		if err := w.Put([]byte("platypus\x00"+uid), []byte{30, 1}); err != nil {
			return err
		}
		return tx.Bucket([]byte("meta")).Put([]byte("schema"), []byte("5"))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	c, err = catalog.OpenBolt(p, catalog.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, f := range []catalog.Filter{
		{Prefix: "r/e", Where: []catalog.Cond{{Field: "n", Op: "=", Values: []string{"9"}}}},
		{Labels: []string{"red"}, Where: []catalog.Cond{{Field: "key", Op: ">", Values: []string{"r/d"}}}},
	} {
		if vs, err := c.Find(ctx, f); err != nil || len(vs) != 1 || vs[0].Key != "r/echidna" {
			t.Errorf("Find(%+v) = %v, %v", f, vs, err)
		}
	}
	for q, want := range map[string]int{"echidna": 1, "monotreme": 1, "platypus": 0} {
		if hits, err := c.Search(ctx, q, 10); err != nil || len(hits) != want {
			t.Errorf("Search(%q) = %+v, %v; want %d hits", q, hits, err, want)
		}
	}
}

func TestBoltCorruptFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "catalog.db")
	os.WriteFile(p, []byte("this is not a bbolt file, just some text that is long enough"), 0o600)
	_, err := catalog.OpenBolt(p, catalog.BoltOptions{})
	if err == nil {
		t.Fatal("opened a corrupt catalog")
	}
	_ = context.Background()
}

// lastTxID is the id of the file's last committed transaction.
func lastTxID(t *testing.T, p string) int {
	t.Helper()
	db, err := bolt.Open(p, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var id int
	db.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil })
	return id
}

// TestBoltOpenIsReadOnly: opening a catalog that is set up writes nothing
// and takes only a shared lock, so it succeeds while another process reads.
func TestBoltOpenIsReadOnly(t *testing.T) {
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "catalog.db")
	c, err := catalog.OpenBolt(p, catalog.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Save(ctx, []catalog.NewVersion{catalogtest.NV("a.txt", "a")}); err != nil {
		t.Fatal(err)
	}
	before := lastTxID(t, p)
	reader, err := bolt.Open(p, 0o600, &bolt.Options{ReadOnly: true}) // a shared lock, as a reading lamina holds
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	for range 3 {
		c, err := catalog.OpenBolt(p, catalog.BoltOptions{Timeout: 300 * time.Millisecond})
		if err != nil {
			t.Fatalf("open beside a reader: %v", err)
		}
		if vs, err := c.List(ctx, catalog.Query{}); err != nil || len(vs) != 1 {
			t.Fatalf("List = %v, %v", vs, err)
		}
	}
	reader.Close()
	if after := lastTxID(t, p); after != before {
		t.Fatalf("opening committed %d transactions", after-before)
	}
}

// TestBoltConcurrentFirstOpen: processes racing to create one catalog all
// succeed and agree on it.
func TestBoltConcurrentFirstOpen(t *testing.T) {
	p := filepath.Join(t.TempDir(), "catalog.db")
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := catalog.OpenBolt(p, catalog.BoltOptions{})
			if err == nil {
				_, err = c.Save(context.Background(), []catalog.NewVersion{catalogtest.NV(fmt.Sprintf("k%d", i), "x")})
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	c, _ := catalog.OpenBolt(p, catalog.BoltOptions{})
	if n, err := c.Counts(context.Background()); err != nil || n.Artifacts != 8 {
		t.Fatalf("Counts = %+v, %v", n, err)
	}
}

// readAll is everything a catalog answers about its versions, for
// comparing two states of one catalog.
func readAll(t *testing.T, c *catalog.Bolt) map[string]any {
	t.Helper()
	ctx := context.Background()
	out := map[string]any{}
	get := func(name string, v any, err error) {
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out[name] = v
	}
	vs, err := c.List(ctx, catalog.Query{})
	get("List", vs, err)
	all, err := c.Versions(ctx, "d/a.csv", true)
	get("Versions", all, err)
	v, err := c.ByUID(ctx, all[0].UID)
	get("ByUID", v, err)
	v, err = c.ByKey(ctx, "d/b.csv", 0)
	get("ByKey", v, err)
	d, err := c.Children(ctx, "d/")
	get("Children", d, err)
	found, err := c.Find(ctx, catalog.Filter{Labels: []string{"keep"}, AllVersions: true})
	get("Find", found, err)
	hits, err := c.Search(ctx, "donor", 10)
	get("Search", hits, err)
	n, err := c.Counts(ctx)
	get("Counts", n, err)
	tr, err := c.TrashList(ctx)
	get("TrashList", tr, err)
	var each []catalog.Version
	get("Each", each, c.Each(ctx, func(v catalog.Version) error { each = append(each, v); return nil }))
	out["Each"] = each
	return out
}

// TestBoltReadsSchema1Catalog: a catalog written before schema 2 (JSON
// version and artifact records) reads as before, is upgraded in place,
// and gets binary records as it is written to.
func TestBoltReadsSchema1Catalog(t *testing.T) {
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "catalog.db")
	c, err := catalog.OpenBolt(p, catalog.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var nvs []catalog.NewVersion
	for _, k := range []string{"d/a.csv", "d/b.csv", "d/e/f.csv", "gone.txt"} {
		nv := catalogtest.NV(k, k)
		nv.Description = "donor " + k
		nv.Shape, nv.Columns = []int64{3, 2}, []catalog.Column{{Name: "x", Dtype: "int"}}
		nvs = append(nvs, nv)
	}
	saved, err := c.Save(ctx, nvs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Save(ctx, []catalog.NewVersion{catalogtest.NV("d/a.csv", "second")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Trash(ctx, "gone.txt"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateLabel(ctx, catalog.Label{Name: "keep"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Annotate(ctx, saved[0].Version.UID, catalog.Annotations{Labels: []string{"keep"}}); err != nil {
		t.Fatal(err)
	}
	want := readAll(t, c)

	// Write every version and artifact record as JSON, as schema 1 did.
	recs := map[string][]byte{}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.Dump(ctx, func(r catalog.Record) error {
		switch {
		case r.Version != nil:
			recs["versions\x00"+r.Version.UID], _ = json.Marshal(r.Version)
		case r.Artifact != nil:
			recs["artifacts\x00"+r.Artifact.Stem], _ = json.Marshal(r.Artifact)
		}
		return nil
	}))
	db, err := bolt.Open(p, 0o600, nil)
	must(err)
	must(db.Update(func(tx *bolt.Tx) error {
		for k, raw := range recs {
			bucket, key, _ := strings.Cut(k, "\x00")
			if err := tx.Bucket([]byte(bucket)).Put([]byte(key), raw); err != nil {
				return err
			}
		}
		// Schema 1 had no listing bucket: opening builds it.
		if err := tx.DeleteBucket([]byte("listing")); err != nil {
			return err
		}
		return tx.Bucket([]byte("meta")).Put([]byte("schema"), []byte("1"))
	}))
	db.Close()

	c, err = catalog.OpenBolt(p, catalog.BoltOptions{})
	must(err)
	if got := readAll(t, c); !reflect.DeepEqual(got, want) {
		for k := range want {
			if !reflect.DeepEqual(got[k], want[k]) {
				t.Errorf("%s of the JSON catalog:\n got %+v\nwant %+v", k, got[k], want[k])
			}
		}
		t.FailNow()
	}
	// Upgraded: schema 3; untouched records stay JSON, written ones are binary.
	s2, err := c.Save(ctx, []catalog.NewVersion{catalogtest.NV("d/b.csv", "new")})
	must(err)
	db, err = bolt.Open(p, 0o600, &bolt.Options{ReadOnly: true})
	must(err)
	defer db.Close()
	db.View(func(tx *bolt.Tx) error {
		if s := string(tx.Bucket([]byte("meta")).Get([]byte("schema"))); s != fmt.Sprint(catalog.SchemaVersion) {
			t.Errorf("schema after opening = %q, want %d", s, catalog.SchemaVersion)
		}
		vb, ab := tx.Bucket([]byte("versions")), tx.Bucket([]byte("artifacts"))
		if r := vb.Get([]byte(saved[0].Version.UID)); r[0] != '{' {
			t.Errorf("untouched version record rewritten: %q", r)
		}
		if r := vb.Get([]byte(s2[0].Version.UID)); r[0] == '{' {
			t.Errorf("new version record is JSON: %q", r)
		}
		if r := ab.Get([]byte(s2[0].Version.Stem())); r[0] == '{' {
			t.Errorf("written artifact record is JSON: %q", r)
		}
		return nil
	})
	if v, err := c.ByKey(ctx, "d/b.csv", 0); err != nil || v.Version != 2 {
		t.Fatalf("ByKey after a write = %+v, %v", v, err)
	}
}

// TestBoltBatchSave: a Save of many new keys (stems drawn in order, word
// index written at the end) gives every key its own artifact, numbers two
// versions of one key in the batch in order, and indexes every word.
func TestBoltBatchSave(t *testing.T) {
	ctx := context.Background()
	c, err := catalog.OpenBolt(filepath.Join(t.TempDir(), "catalog.db"), catalog.BoltOptions{Hold: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	now := time.Now()
	var nvs []catalog.NewVersion
	for i := range 500 {
		nvs = append(nvs, catalog.NewVersion{Key: fmt.Sprintf("batch/f%03d.csv", i), Kind: "file",
			Digest: ref.Sum([]byte{byte(i), byte(i >> 8)}), CreatedAt: now, Mtime: now,
			Description: fmt.Sprintf("sample w%03d", i)})
	}
	nvs = append(nvs, catalog.NewVersion{Key: "batch/f007.csv", Kind: "file", Digest: ref.Sum([]byte("again")), CreatedAt: now, Mtime: now})
	saved, err := c.Save(ctx, nvs)
	if err != nil {
		t.Fatal(err)
	}
	if len(saved) != len(nvs) {
		t.Fatalf("%d saved for %d", len(saved), len(nvs))
	}
	stems := map[string]string{}
	for i, s := range saved[:500] {
		if s.Version.Key != nvs[i].Key || s.Version.Version != 1 {
			t.Fatalf("saved[%d] = %s v%d, want %s v1", i, s.Version.Key, s.Version.Version, nvs[i].Key)
		}
		stem := s.Version.UID[:ref.StemLen]
		if other, ok := stems[stem]; ok {
			t.Fatalf("%s and %s share stem %s", other, s.Version.Key, stem)
		}
		stems[stem] = s.Version.Key
	}
	if last := saved[500].Version; last.Version != 2 || last.UID[:ref.StemLen] != saved[7].Version.UID[:ref.StemLen] {
		t.Fatalf("second version of f007 in the batch: %+v", last)
	}
	for _, i := range []int{0, 123, 499} {
		hits, err := c.Search(ctx, fmt.Sprintf("w%03d", i), 5)
		if err != nil {
			t.Fatal(err)
		}
		if len(hits) != 1 || hits[0].Version.Key != nvs[i].Key {
			t.Fatalf("search w%03d: %+v", i, hits)
		}
	}
}

// A catalog another process holds too long: the error says how long this
// one waited, not the timeout it had.
func TestBoltLockedSaysTimeWaited(t *testing.T) {
	p := filepath.Join(t.TempDir(), "catalog.db")
	c, err := catalog.OpenBolt(p, catalog.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	holder, err := bolt.Open(p, 0o600, nil) // an exclusive lock, as a daemon holds
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	c, err = catalog.OpenBolt(p, catalog.BoltOptions{Timeout: 300 * time.Millisecond, Existing: true})
	if err == nil {
		_, err = c.List(context.Background(), catalog.Query{})
	}
	if err == nil || (!strings.Contains(err.Error(), "(waited 300ms") && !strings.Contains(err.Error(), "(waited 400ms")) {
		t.Fatalf("err = %v", err)
	}
}

// TestBoltSaveStem: a new artifact takes NewVersion.Stem when no artifact
// has it (the redo of a close keeps the uid its writer was told), lazily
// or not; a stem taken, or malformed, is not reused.
func TestBoltSaveStem(t *testing.T) {
	ctx := context.Background()
	b, err := catalog.OpenBolt(filepath.Join(t.TempDir(), "c.db"), catalog.BoltOptions{Hold: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	stem := ref.NewStem()
	for i, c := range []struct {
		ctx  context.Context
		key  string
		stem string
		want bool
	}{
		{ctx, "a", stem, true},
		{ctx, "b", stem, false},          // a's
		{ctx, "c", "not a stem!", false}, // malformed
		{catalog.Lazy(ctx), "d", ref.NewStem(), true},
	} {
		nv := catalogtest.NV(c.key, "x"+c.key)
		nv.Stem = c.stem
		saved, err := b.Save(c.ctx, []catalog.NewVersion{nv})
		if err != nil {
			t.Fatal(err)
		}
		if got := saved[0].Version.UID[:ref.StemLen] == c.stem; got != c.want {
			t.Errorf("%d: %s saved as %s with Stem %q", i, c.key, saved[0].Version.UID, c.stem)
		}
	}
	// A version of an existing artifact keeps the artifact's stem.
	nv := catalogtest.NV("a", "again")
	nv.Stem = ref.NewStem()
	if saved, err := b.Save(ctx, []catalog.NewVersion{nv}); err != nil || saved[0].Version.UID != ref.VersionUID(stem, 2) {
		t.Fatalf("v2 of a: %+v, %v", saved, err)
	}
}
