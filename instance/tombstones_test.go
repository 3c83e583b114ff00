package instance_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
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
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("the queue holds %d files after Close", len(ents))
	}
	rec, err := in.Recorded(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := rec[gone[0].UID]; ok {
		t.Fatal("Recorded still has the purged version")
	}
}
