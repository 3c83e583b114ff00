package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/catalog/catalogtest"
	"github.com/lamina-bio/lamina/catalog/postgres"
	"github.com/lamina-bio/lamina/catalog/postgres/pgtest"
)

// serving waits until the lookup cache of a listening store serves.
func serving(t *testing.T, s *postgres.Store) {
	t.Helper()
	for i := 0; i < 200; i++ {
		if _, _, ok := s.LookupStats(); ok {
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatal("the lookup cache never started serving")
}

// describeKey is what ByKey answers, as text to compare.
func describeKey(c catalog.Catalog, key string, n int) string {
	v, err := c.ByKey(context.Background(), key, n)
	switch {
	case errors.Is(err, catalog.ErrNotFound):
		return "not found"
	case err != nil:
		return "error " + err.Error()
	}
	return describe(v)
}

func describe(v catalog.Version) string {
	return fmt.Sprintf("%s %s@v%d mtime %d mode %o trashed %v %q", v.UID, v.Key, v.Version, v.Mtime.UnixNano(), v.Mode, v.Trashed, v.Description)
}

// describeDir is what Children answers, as text to compare.
func describeDir(c catalog.Catalog, prefix string) string {
	d, err := c.Children(context.Background(), prefix)
	if err != nil {
		return "error " + err.Error()
	}
	var b strings.Builder
	for _, v := range d.Files {
		fmt.Fprintf(&b, "file %s\n", describe(v))
	}
	fmt.Fprintf(&b, "dirs %v\n", d.Subdirs)
	for _, l := range d.Links {
		fmt.Fprintf(&b, "link %s -> %s %d\n", l.Key, l.Target, l.Mtime.UnixNano())
	}
	return b.String()
}

// sameAnswers fails unless cached answers what truth (a store without a
// cache) does, for each key (latest and v1) and folder.
func sameAnswers(t *testing.T, step string, cached, truth catalog.Catalog, keys, dirs []string) {
	t.Helper()
	for _, k := range keys {
		for _, n := range []int{0, 1} {
			if got, want := describeKey(cached, k, n), describeKey(truth, k, n); got != want {
				t.Errorf("after %s: ByKey(%s, %d) = %s; the database says %s", step, k, n, got, want)
			}
		}
	}
	for _, p := range dirs {
		if got, want := describeDir(cached, p), describeDir(truth, p); got != want {
			t.Errorf("after %s: Children(%q) =\n%s; the database says\n%s", step, p, got, want)
		}
	}
}

// sameUIDs fails unless cached answers ByUID as truth does for each uid.
func sameUIDs(t *testing.T, step string, cached, truth catalog.Catalog, uids map[string]bool) {
	t.Helper()
	byUID := func(c catalog.Catalog, uid string) string {
		v, err := c.ByUID(context.Background(), uid)
		if err != nil {
			return "error " + err.Error()
		}
		return describe(v)
	}
	for u := range uids {
		if got, want := byUID(cached, u), byUID(truth, u); got != want {
			t.Errorf("after %s: ByUID(%s) = %s; the database says %s", step, u, got, want)
		}
	}
}

// Two handles on one database (two workstations): every kind of change
// made through one reaches the other's lookup cache by notification.
// Before each change the cache holds the answers (read twice: the second
// time from the cache); once the change is heard, the cached store answers
// exactly what the database does, for the key, its folders and the keys
// around it.
func TestLookupCacheFollowsOtherStore(t *testing.T) {
	ctx := context.Background()
	u := pgtest.URL(t)
	a, w, truth := listen(t, u), open2(t, u), open2(t, u)
	serving(t, a.Store)
	if _, err := w.CreateLabel(ctx, catalog.Label{Name: "good"}); err != nil {
		t.Fatal(err)
	}
	keys := []string{"x/a.txt", "x/c.txt", "x/sub/b.txt", "x/l", "y/a.txt", "y/sub/b.txt", "y/l", "x", "y"}
	dirs := []string{"", "x/", "x/sub/", "x/empty/", "y/", "y/sub/", "y/empty/", "z/"}
	n := 0
	save := func(key string) func() error {
		return func() error {
			n++
			_, err := w.Save(ctx, []catalog.NewVersion{catalogtest.NV(key, fmt.Sprint(n))})
			return err
		}
	}
	mtime := time.Date(2020, 1, 2, 3, 4, 5, 6000, time.UTC)
	steps := []struct {
		name string
		key  string // a key the change notifies
		op   func() error
	}{
		{"save x/a.txt", "x/a.txt", save("x/a.txt")},
		{"save x/a.txt again", "x/a.txt", save("x/a.txt")},
		{"save x/sub/b.txt", "x/sub/b.txt", save("x/sub/b.txt")},
		{"touch x/a.txt", "x/a.txt", func() error { _, err := w.SetAttrs(ctx, "x/a.txt", catalog.Attrs{Mtime: &mtime}); return err }},
		{"annotate x/a.txt", "x/a.txt", func() error {
			v, err := truth.ByKey(ctx, "x/a.txt", 0)
			if err == nil {
				_, err = w.Annotate(ctx, v.UID, catalog.Annotations{Labels: []string{"good"}})
			}
			return err
		}},
		{"trash x/a.txt", "x/a.txt", func() error { _, err := w.Trash(ctx, "x/a.txt"); return err }},
		{"restore x/a.txt", "x/a.txt", func() error { _, err := w.Restore(ctx, "x/a.txt"); return err }},
		{"rename x/a.txt x/c.txt", "x/c.txt", func() error { _, err := w.Rename(ctx, "x/a.txt", "x/c.txt"); return err }},
		{"save x/a.txt anew", "x/a.txt", save("x/a.txt")},
		{"rename x/c.txt onto x/a.txt", "x/a.txt", func() error { _, err := w.Rename(ctx, "x/c.txt", "x/a.txt"); return err }},
		{"mkdir x/empty", "x/empty", func() error { return w.MakeFolder(ctx, "x/empty") }},
		{"symlink x/l", "x/l", func() error { return w.Symlink(ctx, "x/l", "a.txt") }},
		{"rename folder x y", "y/a.txt", func() error { return w.RenameFolder(ctx, "x", "y") }},
		{"remove link y/l", "y/l", func() error { return w.RemoveLink(ctx, "y/l") }},
		{"rmdir y/empty", "y/empty", func() error { return w.RemoveFolder(ctx, "y/empty") }},
		{"purge y/sub/b.txt", "y/sub/b.txt", func() error { _, err := w.Purge(ctx, "y/sub/b.txt"); return err }},
	}
	uids := map[string]bool{} // every version seen: ByUID must follow each change too
	for _, st := range steps {
		for _, k := range keys {
			for _, n := range []int{0, 1} {
				if v, err := truth.ByKey(ctx, k, n); err == nil {
					uids[v.UID] = true
				}
			}
		}
		sameAnswers(t, "the step before "+st.name, a, truth, keys, dirs) // fills the cache
		sameAnswers(t, "the step before "+st.name, a, truth, keys, dirs) // answered from it
		sameUIDs(t, "the step before "+st.name, a, truth, uids)
		sameUIDs(t, "the step before "+st.name, a, truth, uids)
		if err := st.op(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		hear(t, a.heard, st.key, 5*time.Second)
		sameAnswers(t, st.name, a, truth, keys, dirs)
		sameUIDs(t, st.name, a, truth, uids)
	}
	hits, misses, _ := a.LookupStats()
	t.Logf("lookup cache: %d hits, %d misses", hits, misses)
	if hits < int64(len(steps)*(len(keys)*2+len(dirs))) {
		t.Fatalf("the cache answered %d lookups: the test did not test it", hits)
	}
}

// While the listener is disconnected the cache does not serve: a change
// committed then is seen at once, not the answer cached before.
func TestLookupCacheOffWhileListenerDown(t *testing.T) {
	ctx := context.Background()
	u := pgtest.URL(t)
	a, w := listen(t, u), open2(t, u)
	serving(t, a.Store)
	if got := describeKey(a, "k", 0); got != "not found" {
		t.Fatal(got)
	}
	if got := describeKey(a, "k", 0); got != "not found" { // cached
		t.Fatal(got)
	}
	a.cut(t)
	if _, _, ok := a.LookupStats(); ok {
		t.Fatal("the cache serves without a listener")
	}
	sv, err := w.Save(ctx, []catalog.NewVersion{catalogtest.NV("k", "1")})
	if err != nil {
		t.Fatal(err)
	}
	a.away(t)
	if got, want := describeKey(a, "k", 0), describe(sv[0].Version); got != want {
		t.Fatalf("with the listener away: ByKey = %s, want %s", got, want)
	}
	hear(t, a.heard, "k", 15*time.Second) // caught up after the reconnect
	serving(t, a.Store)
	before, _, _ := a.LookupStats()
	for i := 0; i < 2; i++ {
		if got, want := describeKey(a, "k", 0), describe(sv[0].Version); got != want {
			t.Fatalf("after the reconnect: ByKey = %s, want %s", got, want)
		}
	}
	if after, _, _ := a.LookupStats(); after != before+1 {
		t.Fatalf("after the reconnect the cache answered %d of 2 lookups, want 1", after-before)
	}
}

// A store that does not listen (a CLI process) never caches; a listening
// one does, and catalog.Fresh reads around it. A change written behind
// lamina's back (no notification) shows which answer came from where.
func TestLookupCacheOnlyWithListenerAndNotFresh(t *testing.T) {
	ctx := context.Background()
	u := pgtest.URL(t)
	a, plain := listen(t, u), open2(t, u)
	serving(t, a.Store)
	if _, err := plain.Save(ctx, []catalog.NewVersion{catalogtest.NV("d/k", "1")}); err != nil {
		t.Fatal(err)
	}
	hear(t, a.heard, "d/k", 5*time.Second)
	for _, c := range []catalog.Catalog{a, plain} {
		describeKey(c, "d/k", 0)
		describeDir(c, "d/")
	}
	pgtest.Exec(t, u, `UPDATE versions SET rec = jsonb_set(rec, '{description}', '"changed quietly"')`)
	description := func(ctx context.Context, c catalog.Catalog) string {
		v, err := c.ByKey(ctx, "d/k", 0)
		if err != nil {
			t.Fatal(err)
		}
		d, err := c.Children(ctx, "d/")
		if err != nil || len(d.Files) != 1 {
			t.Fatal(d, err)
		}
		return v.Description + "|" + d.Files[0].Description
	}
	if got := description(ctx, plain); got != "changed quietly|changed quietly" {
		t.Errorf("the store without a listener answered %q: it cached", got)
	}
	if got := description(ctx, a); got != "|" {
		t.Errorf("the listening store answered %q: it did not cache", got)
	}
	if got := description(catalog.Fresh(ctx), a); got != "changed quietly|changed quietly" {
		t.Errorf("the listening store answered %q to a Fresh read: it used its cache", got)
	}
	if hits, misses, ok := plain.LookupStats(); hits != 0 || misses != 0 || ok {
		t.Errorf("the store without a listener: %d hits, %d misses, serving %v", hits, misses, ok)
	}
}

// The conformance suite on a listening store: its own writes keep its
// lookup cache exact.
func TestConformanceCached(t *testing.T) {
	var stores []*postgres.Store
	catalogtest.Run(t, func(t *testing.T) catalog.Catalog {
		l := listen(t, pgtest.URL(t))
		serving(t, l.Store)
		stores = append(stores, l.Store)
		return l.Store
	})
	var hits int64
	for _, s := range stores {
		h, _, _ := s.LookupStats()
		hits += h
	}
	t.Logf("%d stores, %d lookups answered from their caches", len(stores), hits)
	if hits == 0 {
		t.Fatal("no lookup was answered from a cache: the suite did not test it")
	}
}

// A listening store keeps what it saved: looking it up right after costs
// no round trip (the mount's post-commit lookup, the conformance
// workload's save-then-ByKey), answers exactly what the database holds,
// and another store's later version replaces it once notified.
func TestLookupCacheLearnsOwnSave(t *testing.T) {
	ctx := context.Background()
	u := pgtest.URL(t)
	a, w, truth := listen(t, u), open2(t, u), open2(t, u)
	serving(t, a.Store)
	nv := catalogtest.NV("d/k.txt", "1")
	nv.Shape, nv.Description = []int64{3, 4}, "first"
	if got := describeKey(a, "d/k.txt", 0); got != "not found" { // cached "not found"
		t.Fatal(got)
	}
	sv, err := a.Save(ctx, []catalog.NewVersion{nv})
	if err != nil {
		t.Fatal(err)
	}
	hits, misses, _ := a.LookupStats()
	for _, n := range []int{0, 1} {
		got, err := a.ByKey(ctx, "d/k.txt", n)
		if err != nil {
			t.Fatal(err)
		}
		want, err := truth.ByKey(ctx, "d/k.txt", n)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("ByKey(d/k.txt, %d) after the save = %+v; the database holds %+v", n, got, want)
		}
		if got.UID != sv[0].Version.UID {
			t.Errorf("ByKey(d/k.txt, %d) = %s, saved %s", n, got.UID, sv[0].Version.UID)
		}
	}
	if h, m, _ := a.LookupStats(); h-hits != 2 || m != misses {
		t.Errorf("the lookups after the save: %d hits, %d misses; want 2 hits, 0 misses", h-hits, m-misses)
	}
	sv2, err := w.Save(ctx, []catalog.NewVersion{catalogtest.NV("d/k.txt", "2")})
	if err != nil {
		t.Fatal(err)
	}
	hear(t, a.heard, "d/k.txt", 5*time.Second)
	if got, want := describeKey(a, "d/k.txt", 0), describe(sv2[0].Version); got != want {
		t.Errorf("after another store's save: ByKey = %s, want %s", got, want)
	}
}

// Two stores save one key at once, one of them listening and caching its
// own saves: once the notifications are in, its cache answers the last
// version, whichever store wrote it.
func TestLookupCacheRacingSaves(t *testing.T) {
	ctx := context.Background()
	u := pgtest.URL(t)
	a, w := listen(t, u), open2(t, u)
	serving(t, a.Store)
	var wg sync.WaitGroup
	for _, c := range []catalog.Catalog{a, w} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 40; i++ {
				if _, err := c.Save(ctx, []catalog.NewVersion{catalogtest.NV("r/k", fmt.Sprint(c == w, i))}); err != nil {
					t.Error(err)
					return
				}
				a.ByKey(ctx, "r/k", 0) // fill, or hit
			}
		}()
	}
	wg.Wait()
	want := describeKey(w, "r/k", 0)
	if !strings.Contains(want, "@v80 ") {
		t.Fatalf("the last version: %s", want)
	}
	for i := 0; describeKey(a, "r/k", 0) != want; i++ {
		if i == 200 {
			t.Fatalf("the listening store answers %s for good; the database holds %s", describeKey(a, "r/k", 0), want)
		}
		time.Sleep(25 * time.Millisecond)
	}
}
