package instance_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/instance"
	"github.com/lamina-bio/lamina/storage"
)

// putsRefused is storage whose PUTs fail while full is set and whose GETs,
// LISTs and DELETEs work: a full bucket, or Ceph's 403 QuotaExceeded.
type putsRefused struct {
	storage.Backend
	full atomic.Bool
}

func (p *putsRefused) Put(ctx context.Context, name string, data []byte) error {
	if p.full.Load() {
		return errors.New("403 QuotaExceeded")
	}
	return p.Backend.Put(ctx, name, data)
}

// cliWorkstation is an instance over the CLI's storage stack, DiskCache →
// Uploads (write-through) → putsRefused → a local folder, and that folder
// (what other machines see).
func cliWorkstation(t *testing.T) (*instance.Instance, *putsRefused, *storage.Local) {
	t.Helper()
	dir := t.TempDir()
	local, err := storage.CreateLocal(filepath.Join(dir, "storage"))
	if err != nil {
		t.Fatal(err)
	}
	remote := &putsRefused{Backend: local}
	up, err := cache.OpenUploads(remote, filepath.Join(dir, "uploads"), cache.UploadOptions{SyncUpload: true, MaxDelay: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { up.Close() })
	disk, err := cache.OpenDiskCache(up, filepath.Join(dir, "cache"), cache.DiskCacheOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { disk.Close() })
	cat, err := catalog.OpenBolt(filepath.Join(dir, "catalog.db"), catalog.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	store, err := cache.NewStore(disk, filepath.Join(dir, "index.db"), cache.DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	in := instance.New(instance.Settings{Name: "team", ID: "team-id", Storage: "s3://bucket/lam", DataDir: dir}, cat, disk, store)
	return in, remote, local
}

func count(t *testing.T, b storage.Backend, prefix string) int {
	t.Helper()
	n := 0
	if err := b.List(context.Background(), prefix, func(storage.Info) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// gc whose marks cannot be written to storage deletes nothing (audit: a
// mark whose PUT failed was staged locally, Condemn returned, MarkNotes
// read the staged copy back, and gc deleted packs that saves on other
// machines, seeing no mark, went on reusing).
func TestGCDeletesNothingWhenMarksFailToReachStorage(t *testing.T) {
	ctx := context.Background()
	in, remote, local := cliWorkstation(t)
	stored(t, in, "x/G1", []byte("G1 bytes"))
	if err := in.CheckStorage(ctx, true); err != nil { // claimed while PUTs work
		t.Fatal(err)
	}
	if _, err := in.Catalog.Purge(ctx, "x/G1"); err != nil {
		t.Fatal(err)
	}
	packs := count(t, local, "packs/")
	if packs == 0 {
		t.Fatal("no pack in storage after the save")
	}
	remote.full.Store(true)
	st, err := in.GC(ctx, instance.GCOptions{Settle: 10 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "nothing was deleted") {
		t.Errorf("gc with its marks refused by storage: %v, want an error saying nothing was deleted", err)
	}
	if n := count(t, local, "packs/"); n != packs || st.DeadPacks != 0 {
		t.Fatalf("gc deleted %d packs of %d (stats say %d) with %d marks in storage", packs-n, packs, st.DeadPacks, count(t, local, "gc/condemned/"))
	}
	// With storage taking PUTs again, the same gc deletes them.
	remote.full.Store(false)
	if _, err := in.GC(ctx, instance.GCOptions{Settle: 10 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if n := count(t, local, "packs/"); n != 0 {
		t.Errorf("%d packs left after gc with storage back", n)
	}
	if n := count(t, local, "gc/condemned/"); n != packs {
		t.Errorf("%d marks in storage after gc deleted %d packs, want the deleted marks", n, packs)
	}
}

// A claim of the storage (init --take-over; gc's claim of an unclaimed
// root) that storage refuses fails: staged locally, the instance it takes
// over goes on writing and its gc deletes this one's packs.
func TestClaimFailsWhenStorageRefusesIt(t *testing.T) {
	ctx := context.Background()
	in, remote, local := cliWorkstation(t)
	remote.full.Store(true)
	if err := in.WriteClaim(ctx); err == nil {
		t.Fatal("the claim succeeded while storage refused it")
	}
	if _, found, err := in.StorageOwner(ctx); err != nil || found {
		t.Errorf("owner after a refused claim: found %v, %v; want none", found, err)
	}
	if n := count(t, local, "instance.json"); n != 0 {
		t.Errorf("%d claims in storage", n)
	}
}

// gc merges tombstones only once storage has the merged one: staged here,
// the others deleted, an import on another machine would find no tombstone
// and take the purged versions for live ones.
func TestMergeTombstonesNeedsStorage(t *testing.T) {
	ctx := context.Background()
	in, remote, local := cliWorkstation(t)
	if err := in.CheckStorage(ctx, true); err != nil {
		t.Fatal(err)
	}
	for _, uid := range []string{"u1", "u2"} {
		if err := instance.RecordPurged(ctx, in.Backend, []catalog.Version{{UID: uid}}); err != nil {
			t.Fatal(err)
		}
	}
	before := count(t, local, "records/")
	remote.full.Store(true)
	if _, err := in.GC(ctx, instance.GCOptions{}); err == nil {
		t.Error("gc merged tombstones while storage refused the merged one")
	}
	if n := count(t, local, "records/"); n != before {
		t.Errorf("storage holds %d of its %d tombstones and no merged one", n, before)
	}
}

// The owner check reads the storage's claim, never the disk cache's copy:
// a take-over by another machine was missed while this one's cache held
// the old claim (its gc then deleted the new owner's packs).
func TestStorageOwnerNotFromCache(t *testing.T) {
	ctx := context.Background()
	in, _, local := cliWorkstation(t)
	if err := in.CheckStorage(ctx, true); err != nil {
		t.Fatal(err)
	}
	if err := in.CheckStorage(ctx, false); err != nil { // read once: cached, before
		t.Fatal(err)
	}
	other := []byte(`{"id": "other-id", "name": "other", "catalog": "elsewhere"}`)
	if err := local.Put(ctx, "instance.json", other); err != nil { // init --take-over elsewhere
		t.Fatal(err)
	}
	if err := in.CheckStorage(ctx, false); !errors.Is(err, instance.ErrStorageTaken) {
		t.Errorf("owner check after a take-over elsewhere: %v, want ErrStorageTaken", err)
	}
}
