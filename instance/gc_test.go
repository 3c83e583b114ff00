package instance_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/instance"
	"github.com/lamina-bio/lamina/storage"
)

// workstations are two instances of one team: one storage and one catalog,
// each with its own dedup index (as two machines have).
func workstations(t *testing.T) (a, b *instance.Instance) {
	t.Helper()
	dir := t.TempDir()
	st, err := storage.CreateLocal(filepath.Join(dir, "storage"))
	if err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.OpenBolt(filepath.Join(dir, "catalog.db"), catalog.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	open := func(name string) *instance.Instance {
		store, err := cache.NewStore(st, filepath.Join(dir, name, "index.db"), cache.DefaultParams)
		if err != nil {
			t.Fatal(err)
		}
		return instance.New(instance.Settings{Name: "team", ID: "team-id", Storage: filepath.Join(dir, "storage"), DataDir: filepath.Join(dir, name)}, cat, st, store)
	}
	return open("a"), open("b")
}

// stored saves data under key on in.
func stored(t *testing.T, in *instance.Instance, key string, data []byte) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f.bin")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := in.Save(context.Background(), []instance.SaveItem{{Path: p, Key: key}}, instance.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
}

func readsBack(t *testing.T, in *instance.Instance, key string, want []byte) {
	t.Helper()
	var out bytes.Buffer
	v, err := in.Catalog.ByKey(context.Background(), key, 0)
	if err == nil {
		err = in.WriteTo(context.Background(), v, &out, nil)
	}
	if err != nil || !bytes.Equal(out.Bytes(), want) {
		t.Fatalf("%s after gc: %v (%d of %d bytes)", key, err, out.Len(), len(want))
	}
}

// gc on one workstation while the other saves content whose chunks are in
// packs gc is deleting (its index still names them): a save after the
// marks stores the chunks again; a save that reused them before the marks
// and commits during the settle period keeps the packs.
func TestGCSafeAgainstSavesElsewhere(t *testing.T) {
	ctx := context.Background()
	data := make([]byte, 3<<20)
	rand.Read(data)
	for _, tc := range []struct {
		name         string
		reuseEarly   bool // B's save found the chunks in its index before gc's marks
		wantDeleted  bool
		wantPardoned bool
	}{
		{"save after the marks", false, true, false},
		{"save that reused before the marks", true, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := workstations(t)
			stored(t, b, "old.bin", data)
			if _, err := b.Catalog.Purge(ctx, "old.bin"); err != nil {
				t.Fatal(err)
			}
			// B's early session: its chunks come from B's index now.
			var early *cache.Writer
			var file cache.File
			if tc.reuseEarly {
				early = b.Store.NewWriter()
				var st cache.PutStats
				var err error
				if file, st, err = early.PutFile(ctx, bytes.NewReader(data), nil); err != nil || st.NewChunks != 0 {
					t.Fatalf("early put: %v, %d new chunks (want all reused)", err, st.NewChunks)
				}
			}
			waiting := make(chan struct{})
			done := make(chan struct{})
			var gst instance.GCStats
			var gerr error
			go func() {
				defer close(done)
				gst, gerr = a.GC(ctx, instance.GCOptions{Settle: 1500 * time.Millisecond,
					Waiting: func(int, int64, time.Duration) { close(waiting) }})
			}()
			select {
			case <-waiting:
			case <-done:
				t.Fatalf("gc returned without waiting: %+v, %v", gst, gerr)
			}
			if tc.reuseEarly {
				m := &cache.Manifest{Kind: cache.KindFile, Files: []cache.File{file}}
				md, err := early.PutManifest(ctx, m)
				if err == nil {
					err = early.Commit(ctx)
				}
				if err != nil {
					t.Fatal(err)
				}
				now := time.Now().UTC()
				if _, err := b.Catalog.Save(ctx, []catalog.NewVersion{{Key: "new.bin", Kind: m.Kind, Size: m.Size(),
					Digest: m.Digest(), Manifest: string(md), CreatedBy: "b", CreatedAt: now, Mtime: now}}); err != nil {
					t.Fatal(err)
				}
			} else {
				stored(t, b, "new.bin", data)
			}
			<-done
			if gerr != nil {
				t.Fatal(gerr)
			}
			if (gst.DeadPacks > 0) != tc.wantDeleted || (gst.Pardoned > 0) != tc.wantPardoned {
				t.Errorf("gc: %d packs deleted, %d pardoned; want deleted %v, pardoned %v", gst.DeadPacks, gst.Pardoned, tc.wantDeleted, tc.wantPardoned)
			}
			readsBack(t, a, "new.bin", data)
			// Marks stay only on packs gc deleted (KeepDeletedMarks).
			marks, err := a.Store.Condemned(ctx)
			if err != nil {
				t.Fatal(err)
			}
			a.Store.Packs(ctx, func(p cache.PackInfo, _ error) error {
				if marks[p.ID] {
					t.Errorf("pack %s is still in storage and still marked after gc", p.ID)
				}
				return nil
			})
		})
	}
}

// A save on another workstation that starts after a gc has ended, of
// content in packs that workstation saw in storage less than a minute ago
// (it trusts for a minute that a pack it saw is there) and once its list
// of marks, trusted for 10 s, is stale: the marks of the packs gc deleted
// must still be there, or the save points the new version at packs that
// are gone (an audit lost a version so with --settle 5s).
func TestSaveAfterGCDeletedPacksItSaw(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out the 10 s a list of marks is trusted")
	}
	ctx := context.Background()
	data := make([]byte, 3<<20)
	rand.Read(data)
	a, b := workstations(t)
	stored(t, b, "old.bin", data)
	stored(t, b, "again.bin", data) // reuses: B stats old.bin's packs and lists the marks
	for _, k := range []string{"old.bin", "again.bin"} {
		if _, err := b.Catalog.Purge(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	gst, err := a.GC(ctx, instance.GCOptions{Settle: 50 * time.Millisecond})
	if err != nil || gst.DeadPacks == 0 {
		t.Fatalf("gc: %+v, %v", gst, err)
	}
	time.Sleep(11 * time.Second) // B's list of marks is stale (condemnedFresh), its packs seen are not
	stored(t, b, "new.bin", data)
	readsBack(t, a, "new.bin", data)
	// The next gc keeps the marks of packs it finds gone until they are
	// KeepDeletedMarks old.
	if _, err := a.GC(ctx, instance.GCOptions{Settle: 50 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if marks, _ := a.Store.Condemned(ctx); len(marks) == 0 {
		t.Error("the marks of just-deleted packs went at the next gc")
	}
}

// One instance owns a storage root: another one there must take it over,
// and the one that lost it may no longer collect it.
func TestStorageOwner(t *testing.T) {
	ctx := context.Background()
	a, b := workstations(t)
	b.Settings.ID, b.Settings.Name = "other-id", "other"
	stored(t, a, "x.bin", []byte("made before owners were claimed"))
	if _, err := b.CheckClaim(ctx, false); !errors.Is(err, instance.ErrStorageTaken) {
		t.Fatalf("claim of a root holding packs: %v", err)
	}
	if err := a.CheckStorage(ctx, true); err != nil { // claims it
		t.Fatal(err)
	}
	if o, found, err := a.StorageOwner(ctx); err != nil || !found || o.ID != "team-id" {
		t.Fatalf("owner after the claim: %+v %v %v", o, found, err)
	}
	if _, err := b.ClaimStorage(ctx, false); !errors.Is(err, instance.ErrStorageTaken) {
		t.Fatalf("claim of a root another instance owns: %v", err)
	}
	if _, err := b.ClaimStorage(ctx, true); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Catalog.Purge(ctx, "x.bin"); err != nil {
		t.Fatal(err)
	}
	st, err := a.GC(ctx, instance.GCOptions{})
	if !errors.Is(err, instance.ErrStorageTaken) || st.DeadPacks != 0 {
		t.Fatalf("gc by the instance that lost the storage: %+v, %v", st, err)
	}
	if err := b.CheckStorage(ctx, false); err != nil {
		t.Fatalf("the new owner: %v", err)
	}
	// A root inside another's is refused, take-over or not.
	innerRoot := filepath.Join(b.Settings.Storage, "packs", "x")
	innerB, err := storage.CreateLocal(innerRoot)
	if err != nil {
		t.Fatal(err)
	}
	inner := instance.New(instance.Settings{Name: "inner", ID: "inner-id", Storage: innerRoot}, nil, innerB, nil)
	if _, err := inner.CheckClaim(ctx, true); !errors.Is(err, instance.ErrStorageTaken) {
		t.Fatalf("a root inside another instance's: %v", err)
	}
	// And one that holds another's.
	top, err := storage.CreateLocal(filepath.Dir(b.Settings.Storage))
	if err != nil {
		t.Fatal(err)
	}
	outer := instance.New(instance.Settings{Name: "outer", ID: "outer-id", Storage: filepath.Dir(b.Settings.Storage)}, nil, top, nil)
	if _, err := outer.CheckClaim(ctx, true); !errors.Is(err, instance.ErrStorageTaken) {
		t.Fatalf("a root holding another instance's: %v", err)
	}
	// Roots nested before init refused them keep their migration path:
	// --take-over of one that holds an instance.json already warns.
	if err := top.Put(ctx, "instance.json", []byte(`{"id":"old-outer","name":"old"}`)); err != nil {
		t.Fatal(err)
	}
	warns, err := outer.CheckClaim(ctx, true)
	if err != nil || len(warns) != 1 || !strings.Contains(warns[0], "holds "+b.Settings.Storage+", the storage root of another instance; taken over anyway") {
		t.Fatalf("take-over of an outer root nested before the check: %q %v", warns, err)
	}
	if _, err := outer.CheckClaim(ctx, false); !errors.Is(err, instance.ErrStorageTaken) {
		t.Fatalf("without --take-over: %v", err)
	}
	warns, err = b.CheckClaim(ctx, true) // the inner one, which owns its root
	if err != nil || len(warns) != 1 || !strings.Contains(warns[0], "is inside "+filepath.Dir(b.Settings.Storage)) {
		t.Fatalf("take-over of an inner root nested before the check: %q %v", warns, err)
	}
}

// Roots nested in another's (made before init refused them, or by hand):
// the outer instance's gc lists its own folders to the bottom, and must
// still touch nothing of an inner instance, even one whose root is one of
// those folders.
func TestGCKeepsToItsOwnLayout(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	open := func(name, root string) *instance.Instance {
		st, err := storage.CreateLocal(root)
		if err != nil {
			t.Fatal(err)
		}
		cat, err := catalog.OpenBolt(filepath.Join(dir, name, "catalog.db"), catalog.BoltOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cat.Close() })
		store, err := cache.NewStore(st, filepath.Join(dir, name, "index.db"), cache.DefaultParams)
		if err != nil {
			t.Fatal(err)
		}
		return instance.New(instance.Settings{Name: name, ID: name + "-id", Storage: root, DataDir: filepath.Join(dir, name)}, cat, st, store)
	}
	root := filepath.Join(dir, "storage")
	data := map[string][]byte{}
	var inners []*instance.Instance
	for _, sub := range []string{"records", "packs", "gc/condemned", "lab"} {
		in := open(filepath.Base(sub), filepath.Join(root, filepath.FromSlash(sub)))
		if err := in.CheckStorage(ctx, true); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 100<<10)
		rand.Read(b)
		stored(t, in, "x.bin", b)
		if err := in.FlushRecords(ctx); err != nil {
			t.Fatal(err)
		}
		data[sub] = b
		inners = append(inners, in)
	}
	// Another process's Put in progress in an inner root.
	tmp := filepath.Join(root, "lab", "packs", "zz.tmp-1")
	if err := os.WriteFile(tmp, []byte("in progress"), 0o644); err != nil {
		t.Fatal(err)
	}
	var before []string // all the inner instances' objects
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			before = append(before, p)
		}
		return nil
	})
	outer := open("outer", root)
	stored(t, outer, "gone.bin", []byte("the outer instance's only version, purged below"))
	if _, err := outer.Catalog.Purge(ctx, "gone.bin"); err != nil {
		t.Fatal(err)
	}
	if err := outer.FlushRecords(ctx); err != nil {
		t.Fatal(err)
	}
	// Everything is older than any grace and than the marks kept of
	// deleted packs.
	old := time.Now().Add(-48 * time.Hour)
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			os.Chtimes(p, old, old)
		}
		return nil
	})
	st, err := outer.GC(ctx, instance.GCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st.DeadPacks != 1 || st.Records != 1 || st.Unreadable != 0 {
		t.Errorf("the outer gc counted another instance's objects: %+v", st)
	}
	for _, p := range before {
		if _, err := os.Stat(p); err != nil {
			rel, _ := filepath.Rel(root, p)
			t.Errorf("the outer gc removed %s of an inner instance", rel)
		}
	}
	for i, sub := range []string{"records", "packs", "gc/condemned", "lab"} {
		readsBack(t, inners[i], "x.bin", data[sub])
	}
}

// Two gcs at once with different graces, and a save that reuses the data
// of one's marked pack. The gc with the longer grace found the pack inside
// its grace period and removed the mark ("pardon"), so a save deciding
// then reused the pack, and committing after the first gc's second read of
// the catalog, pointed its version at a pack that gc deleted. Odd rounds
// race the gcs (and a third, like the first); every version is read back.
func TestConcurrentGCsAndSaves(t *testing.T) {
	ctx := context.Background()
	_, b := workstations(t)
	gc := func(grace time.Duration, marked chan struct{}) (instance.GCStats, error) {
		return b.GC(ctx, instance.GCOptions{Grace: grace, Settle: 300 * time.Millisecond,
			Waiting: func(int, int64, time.Duration) {
				if marked != nil {
					close(marked)
				}
			}})
	}
	saved := map[string][]byte{}
	for round := range 6 {
		data := make([]byte, 1<<20)
		rand.Read(data)
		old, key := fmt.Sprintf("r%d/old.bin", round), fmt.Sprintf("r%d/new.bin", round)
		stored(t, b, old, data)
		if _, err := b.Catalog.Purge(ctx, old); err != nil {
			t.Fatal(err)
		}
		// gcs: the first (grace 0) marks the pack and waits; the second
		// (grace 24 h) runs meanwhile, in the odd rounds with a third.
		var wg sync.WaitGroup
		errs := make(chan error, 3)
		run := func(grace time.Duration, marked chan struct{}) {
			defer wg.Done()
			if _, err := gc(grace, marked); err != nil {
				errs <- err
			}
		}
		marked := make(chan struct{})
		wg.Add(2)
		go run(0, marked)
		<-marked
		if round%2 == 0 {
			run(24*time.Hour, nil)
		} else {
			wg.Add(1)
			go run(24*time.Hour, nil)
			go run(0, nil)
		}
		// A save of the same content decides now, while the pack is
		// marked (or being deleted), and commits after the gcs.
		w := b.Store.NewWriter()
		file, _, err := w.PutFile(ctx, bytes.NewReader(data), nil)
		if err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		m := &cache.Manifest{Kind: cache.KindFile, Files: []cache.File{file}}
		md, err := w.PutManifest(ctx, m)
		if err == nil {
			err = w.Commit(ctx)
		}
		if errors.Is(err, cache.ErrReusedPackCondemned) {
			continue // refused: nothing saved, nothing lost
		}
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now().UTC()
		if _, err := b.Catalog.Save(ctx, []catalog.NewVersion{{Key: key, Kind: m.Kind, Size: m.Size(),
			Digest: m.Digest(), Manifest: string(md), CreatedBy: "b", CreatedAt: now, Mtime: now}}); err != nil {
			t.Fatal(err)
		}
		saved[key] = data
		readsBack(t, b, key, data)
	}
	if _, err := gc(0, nil); err != nil {
		t.Fatal(err)
	}
	for key, data := range saved {
		readsBack(t, b, key, data)
	}
}
