package instance_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/instance"
	"github.com/lamina-bio/lamina/storage"
)

// refusing fails the next fails Puts under records/ (storage away).
type refusing struct {
	storage.Backend
	fails atomic.Int32
}

func (r *refusing) Put(ctx context.Context, name string, data []byte) error {
	if strings.HasPrefix(name, "records/") && r.fails.Add(-1) >= 0 {
		return errors.New("storage away")
	}
	return r.Backend.Put(ctx, name, data)
}

// trashed saves key and trashes it: the versions a purge would delete.
func trashed(t *testing.T, in *instance.Instance, key string) []catalog.Version {
	t.Helper()
	stored(t, in, key, []byte("bytes of "+key))
	ctx := context.Background()
	if _, err := in.Catalog.Trash(ctx, key); err != nil {
		t.Fatal(err)
	}
	vs, err := in.Catalog.Versions(ctx, key, true)
	if err != nil || len(vs) != 1 {
		t.Fatalf("versions of %s: %v, %v", key, vs, err)
	}
	return vs
}

// tombstoned says whether storage holds a tombstone naming uid.
func tombstoned(t *testing.T, b storage.Backend, uid string) bool {
	t.Helper()
	found := false
	err := b.List(context.Background(), "records/", func(i storage.Info) error {
		data, err := b.Get(context.Background(), i.Name)
		if err != nil {
			return err
		}
		found = found || strings.Contains(string(data), `"purged"`) && strings.Contains(string(data), uid)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// A tombstone storage refuses is written again until storage has it.
func TestTombstonesRetryRefusedWrite(t *testing.T) {
	in, _ := workstations(t)
	ctx := context.Background()
	vs := trashed(t, in, "tmp.txt")
	b := &refusing{Backend: in.Backend}
	b.fails.Store(3)
	q, err := instance.OpenTombstones(filepath.Join(t.TempDir(), "tombstones"), in.Catalog, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	q.Retry = 5 * time.Millisecond
	q.Start()
	defer q.Close(ctx)
	id, err := q.Prepare(vs)
	if err != nil {
		t.Fatal(err)
	}
	purged, err := in.Catalog.PurgeTrashed(ctx, "tmp.txt", "")
	if err != nil {
		t.Fatal(err)
	}
	q.Done(id, purged)
	for i := 0; q.Pending() > 0; i++ {
		if i == 1000 {
			t.Fatalf("tombstone not written after %d refusals left", b.fails.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !tombstoned(t, in.Backend, vs[0].UID) {
		t.Fatal("no tombstone in storage")
	}
}

// What a killed process left in the queue goes to storage at the next
// start, but only for versions whose purge committed.
func TestTombstonesAfterKill(t *testing.T) {
	in, _ := workstations(t)
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "tombstones")
	open := func() *instance.Tombstones {
		q, err := instance.OpenTombstones(dir, in.Catalog, in.Backend, nil)
		if err != nil {
			t.Fatal(err)
		}
		return q
	}
	live := trashed(t, in, "kept.txt")    // killed before its purge committed
	gone := trashed(t, in, "gone.txt")    // killed after
	failed := trashed(t, in, "again.txt") // a purge that failed
	q := open()
	if _, err := q.Prepare(live); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Prepare(gone); err != nil {
		t.Fatal(err)
	}
	if _, err := in.Catalog.PurgeTrashed(ctx, "gone.txt", ""); err != nil {
		t.Fatal(err)
	}
	id, err := q.Prepare(failed)
	if err != nil {
		t.Fatal(err)
	}
	q.Done(id, nil) // no writer running: stays queued, as at a kill
	// q is dropped without Close: the process was killed.
	q = open()
	if err := q.Recover(); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if !tombstoned(t, in.Backend, gone[0].UID) {
		t.Fatal("the committed purge has no tombstone")
	}
	for _, v := range []catalog.Version{live[0], failed[0]} {
		if tombstoned(t, in.Backend, v.UID) {
			t.Fatalf("a tombstone names %s, still in the catalog", v.Key)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "queue")); len(b) != 0 {
		t.Fatalf("the queue holds after Close:\n%s", b)
	}
	if q.Pending() != 0 {
		t.Fatalf("%d purges pending after Close", q.Pending())
	}
	rec, err := in.Recorded(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := rec[gone[0].UID]; ok {
		t.Fatal("Recorded still has the purged version")
	}
}

// tombstones lists the tombstones in storage: name → uids.
func tombstones(t *testing.T, b storage.Backend) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	err := b.List(context.Background(), "records/", func(i storage.Info) error {
		data, err := b.Get(context.Background(), i.Name)
		if err != nil {
			return err
		}
		var ts struct{ Purged []string }
		if json.Unmarshal(data, &ts) == nil {
			out[i.Name] = ts.Purged
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// gc merges the tombstones, one per purge, into one: an import reads
// every record object.
func TestGCMergesTombstones(t *testing.T) {
	in, _ := workstations(t)
	ctx := context.Background()
	var uids []string
	for _, key := range []string{"a.txt", "b.txt", "c.txt"} {
		vs := trashed(t, in, key)
		purged, err := in.Catalog.PurgeTrashed(ctx, key, "")
		if err != nil {
			t.Fatal(err)
		}
		if err := instance.RecordPurged(ctx, in.Backend, purged); err != nil {
			t.Fatal(err)
		}
		uids = append(uids, vs[0].UID)
	}
	if n := len(tombstones(t, in.Backend)); n != 3 {
		t.Fatalf("%d tombstones before gc", n)
	}
	st, err := in.GC(ctx, instance.GCOptions{DryRun: true})
	if err != nil || st.Tombstones != 3 || len(tombstones(t, in.Backend)) != 3 {
		t.Fatalf("dry run: %+v, %v, %d tombstones", st, err, len(tombstones(t, in.Backend)))
	}
	if st, err = in.GC(ctx, instance.GCOptions{}); err != nil || st.Tombstones != 3 {
		t.Fatalf("gc: %+v, %v", st, err)
	}
	ts := tombstones(t, in.Backend)
	if len(ts) != 1 {
		t.Fatalf("%d tombstones after gc: %v", len(ts), ts)
	}
	for _, got := range ts {
		slices.Sort(got)
		slices.Sort(uids)
		if !slices.Equal(got, uids) {
			t.Fatalf("merged tombstone names %v, want %v", got, uids)
		}
	}
	if st, err = in.GC(ctx, instance.GCOptions{}); err != nil || st.Tombstones != 0 || len(tombstones(t, in.Backend)) != 1 {
		t.Fatalf("second gc: %+v, %v", st, err)
	}
}

// merging moves a tombstone to a new name when it is first read, as a gc
// merging tombstones between an import's listing and its read.
type merging struct {
	storage.Backend
	name  string
	moved atomic.Bool
}

func (m *merging) Get(ctx context.Context, name string) ([]byte, error) {
	if name != m.name || m.moved.Swap(true) {
		return m.Backend.Get(ctx, name)
	}
	data, err := m.Backend.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	if err := m.Backend.Put(ctx, "records/9"+strings.TrimPrefix(name, "records/"), data); err != nil {
		return nil, err
	}
	if err := m.Backend.Delete(ctx, name); err != nil {
		return nil, err
	}
	return m.Backend.Get(ctx, name) // not found
}

// Recorded reads a tombstone that a gc merged into a new one after it
// listed records/: it took the purged version for one an export lacks.
func TestRecordedDuringTombstoneMerge(t *testing.T) {
	in, _ := workstations(t)
	ctx := context.Background()
	dir := t.TempDir()
	var items []instance.SaveItem
	for _, key := range []string{"live.txt", "gone.txt"} {
		p := filepath.Join(dir, key)
		if err := os.WriteFile(p, []byte(key), 0o644); err != nil {
			t.Fatal(err)
		}
		items = append(items, instance.SaveItem{Path: p, Key: key})
	}
	if _, err := in.Save(ctx, items, instance.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := in.Catalog.Trash(ctx, "gone.txt"); err != nil {
		t.Fatal(err)
	}
	purged, err := in.Catalog.PurgeTrashed(ctx, "gone.txt", "")
	if err != nil || len(purged) != 1 {
		t.Fatalf("purge: %v, %v", purged, err)
	}
	if err := instance.RecordPurged(ctx, in.Backend, purged); err != nil {
		t.Fatal(err)
	}
	var name string
	for n := range tombstones(t, in.Backend) {
		name = n
	}
	m := &merging{Backend: in.Backend, name: name}
	rec, err := instance.New(instance.Settings{Name: "team"}, in.Catalog, m, nil).Recorded(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !m.moved.Load() {
		t.Fatal("the tombstone was not read")
	}
	if _, ok := rec[purged[0].UID]; ok {
		t.Fatal("Recorded has the purged version: it missed its tombstone, merged meanwhile")
	}
	if len(rec) != 1 {
		t.Fatalf("Recorded: %v", rec)
	}
}

// A line a machine's crash cut short in the log is dropped by Recover,
// and the next purge's line is not appended onto it.
func TestTombstonesCutLine(t *testing.T) {
	in, _ := workstations(t)
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "tombstones")
	one, two := trashed(t, in, "one.txt"), trashed(t, in, "two.txt")
	for _, key := range []string{"one.txt", "two.txt"} {
		if _, err := in.Catalog.PurgeTrashed(ctx, key, ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	log := `{"id":"1-aa","purged":["` + one[0].UID + `"]}` + "\n" + `{"id":"2-bb","pur`
	if err := os.WriteFile(filepath.Join(dir, "queue"), []byte(log), 0o600); err != nil {
		t.Fatal(err)
	}
	q, err := instance.OpenTombstones(dir, in.Catalog, in.Backend, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Recover(); err != nil {
		t.Fatal(err)
	}
	id, err := q.Prepare(two)
	if err != nil {
		t.Fatal(err)
	}
	q.Done(id, two)
	// Killed: a new process finds both.
	q, err = instance.OpenTombstones(dir, in.Catalog, in.Backend, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Recover(); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for _, v := range []catalog.Version{one[0], two[0]} {
		if !tombstoned(t, in.Backend, v.UID) {
			t.Fatalf("no tombstone for %s", v.Key)
		}
	}
}
