package instance_test

import (
	"context"
	"crypto/rand"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/instance"
	"github.com/lamina-bio/lamina/storage"
)

// awayBackend is a storage that says, as retry.Backend does while the S3
// server does not answer, that it is away.
type awayBackend struct {
	storage.Backend
	away atomic.Bool
}

func (a *awayBackend) Away() bool                     { return a.away.Load() }
func (a *awayBackend) Unwrap() storage.Backend        { return a.Backend }
func (a *awayBackend) Sync(ctx context.Context) error { return a.Backend.Sync(ctx) }

// A close during an outage stores again the chunks of a pack it can
// neither check nor put back (not queued, not wholly cached: fix-r3): a
// second copy in the bucket. gc reads liveness by location, and the
// version saved during the outage names the copy, so gc keeps both while
// both versions live (no repacking), and reclaims the copy once that
// version is gone; the dedup index kept naming the first pack meanwhile,
// so later saves do not reuse the copy.
func TestGCReclaimsCopyStoredDuringOutage(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	local, err := storage.CreateLocal(filepath.Join(dir, "storage"))
	if err != nil {
		t.Fatal(err)
	}
	st := &awayBackend{Backend: local}
	cat, err := catalog.OpenBolt(filepath.Join(dir, "catalog.db"), catalog.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	s := instance.Settings{Name: "lab", ID: "lab-id", Storage: filepath.Join(dir, "storage"), DataDir: filepath.Join(dir, "data")}
	// A new store each time: a later process, which has not seen the
	// packs in storage within the last minute.
	open := func() *instance.Instance {
		store, err := cache.NewStore(st, filepath.Join(dir, "index.db"), cache.DefaultParams)
		if err != nil {
			t.Fatal(err)
		}
		return instance.New(s, cat, st, store)
	}
	data := make([]byte, 3<<20)
	rand.Read(data)
	stored(t, open(), "before.bin", data)
	packs := func() map[string]bool {
		n := map[string]bool{}
		if err := local.List(ctx, "packs/", func(i storage.Info) error { n[i.Name] = true; return nil }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	first := packs()

	st.away.Store(true)
	stored(t, open(), "during.bin", data)
	st.away.Store(false)
	copies := packs()
	for p := range first {
		delete(copies, p)
	}
	// Its chunks and its manifest: more than 3 MiB.
	var size int64
	for p := range copies {
		i, err := local.Stat(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		size += i.Size
	}
	if size < int64(len(data)) {
		t.Fatalf("the save during the outage stored no copy (%d bytes in new packs): nothing left to check", size)
	}
	stored(t, open(), "after.bin", data) // reuses the first packs, not the copy
	var again int64
	for p := range packs() {
		if !first[p] && !copies[p] {
			i, err := local.Stat(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			again += i.Size
		}
	}
	if again >= int64(len(data)) {
		t.Fatalf("the save after the outage stored the data again (%d bytes in new packs)", again)
	}

	in := open()
	gst, err := in.GC(ctx, instance.GCOptions{})
	if err != nil || gst.DeadPacks != 0 {
		t.Fatalf("gc with every version alive: %+v, %v; want nothing deleted", gst, err)
	}
	if _, err := cat.Purge(ctx, "during.bin"); err != nil {
		t.Fatal(err)
	}
	gst, err = in.GC(ctx, instance.GCOptions{})
	left := packs()
	for p := range copies {
		if left[p] {
			t.Errorf("gc once the version saved during the outage is gone kept its copy %s: %+v, %v", p, gst, err)
		}
	}
	for p := range first {
		if !left[p] {
			t.Errorf("gc deleted %s, of the versions still alive", p)
		}
	}
	readsBack(t, in, "before.bin", data)
	readsBack(t, in, "after.bin", data)
}
