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

	"github.com/lamina-bio/lamina/instance"
	"github.com/lamina-bio/lamina/storage"
)

// A write after the last owner check went stale checks again first, so a
// daemon whose periodic check has not run yet still refuses it; a write
// while the last check is fresh reads nothing before it, and the owner
// once it landed (TestTakeOverFailsAWriteInTheWindow). (Fresh and stale were 300
// and 350 ms apart: under load the "fresh" write came after 300 ms and
// was refused. Now one watch's checks are fresh for an hour and the
// other's stale at once.)
func TestOwnerWatchChecksBeforeAStaleWrite(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "storage")
	st, err := storage.CreateLocal(root)
	if err != nil {
		t.Fatal(err)
	}
	a := instance.New(instance.Settings{Name: "a", ID: "a-id", Storage: root}, nil, st, nil)
	b := instance.New(instance.Settings{Name: "b", ID: "b-id", Storage: root}, nil, st, nil)
	if _, err := a.ClaimStorage(ctx, false); err != nil {
		t.Fatal(err)
	}
	fw := a.WatchOwner(st, time.Hour, nil)
	fw.CheckAfterWrites() // as a mount of a local folder
	fresh := fw.Guard(st)
	var told []string
	w := a.WatchOwner(st, time.Nanosecond, func(o instance.Owner) { told = append(told, o.Name) })
	g := w.Guard(st)
	if err := g.Put(ctx, "packs/x", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.ClaimStorage(ctx, true); err != nil {
		t.Fatal(err)
	}
	// A write while the last check is fresh is checked after it lands:
	// one that succeeded in the interval after a take-over left packs the
	// new owner's gc deleted, its close having returned 0 (a new-user
	// audit).
	if err := fresh.Put(ctx, "packs/y", []byte("y")); !errors.Is(err, instance.ErrStorageTaken) {
		t.Fatalf("a write while the last check is fresh, the storage taken over: %v; want ErrStorageTaken", err)
	}
	if err := g.Put(ctx, "packs/z", []byte("z")); !errors.Is(err, instance.ErrStorageTaken) {
		t.Fatalf("a write after a stale check, the storage taken over: %v; want ErrStorageTaken", err)
	}
	if err := g.Delete(ctx, "packs/x"); !errors.Is(err, instance.ErrStorageTaken) {
		t.Fatalf("delete: %v; want ErrStorageTaken", err)
	}
	// The ontology registry's conditional write past the guard's
	// decorators (storage.FindSwapper) is refused as well.
	sw, ok := storage.FindSwapper(g)
	if !ok {
		t.Fatal("the guard hides the storage's Swapper")
	}
	if err := sw.PutIf(ctx, "ontologies/registry.json", []byte("{}"), ""); !errors.Is(err, instance.ErrStorageTaken) {
		t.Fatalf("PutIf: %v; want ErrStorageTaken", err)
	}
	if _, err := st.Stat(ctx, "packs/z"); !storage.IsNotFound(err) {
		t.Errorf("the refused write landed: %v", err)
	}
	if o, ok := w.Taken(); !ok || o.Name != "b" || len(told) != 1 {
		t.Errorf("Taken() = %v %v; told %v", o, ok, told)
	}
}

// A storage taken over twice (b from a, then c from b): the watch of a
// follows it to c (Taken, a refused write's error), still knows b took it
// from a (TakenFirst), and told onTaken once. It stopped reading the owner
// at the first take-over, and a mount's status named b for good.
func TestOwnerWatchFollowsASecondTakeOver(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	root := filepath.Join(t.TempDir(), "storage")
	st, err := storage.CreateLocal(root)
	if err != nil {
		t.Fatal(err)
	}
	claim := func(name string) {
		t.Helper()
		in := instance.New(instance.Settings{Name: name, ID: name + "-id", Storage: root}, nil, st, nil)
		if _, err := in.ClaimStorage(ctx, name != "a"); err != nil {
			t.Fatal(err)
		}
	}
	claim("a")
	a := instance.New(instance.Settings{Name: "a", ID: "a-id", Storage: root}, nil, st, nil)
	var told atomic.Int32
	w := a.WatchOwner(st, time.Millisecond, func(instance.Owner) { told.Add(1) })
	go w.Run(ctx)
	for _, taker := range []string{"b", "c"} {
		claim(taker)
		for i := 0; ; i++ { // bounded: the watch reads every millisecond
			if o, ok := w.Taken(); ok && o.Name == taker {
				break
			}
			if i == 2000 {
				o, _ := w.Taken()
				t.Fatalf("after %s took the storage over the watch names %q", taker, o.Name)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	if o, ok := w.TakenFirst(); !ok || o.Name != "b" {
		t.Errorf("TakenFirst() = %q %v; want b", o.Name, ok)
	}
	if n := told.Load(); n != 1 {
		t.Errorf("onTaken told %d times; want once", n)
	}
	if err := w.Guard(st).Put(ctx, "packs/x", []byte("x")); !errors.Is(err, instance.ErrStorageTaken) || !strings.Contains(err.Error(), `"c"`) {
		t.Errorf("a write after the second take-over: %v; want ErrStorageTaken naming c", err)
	}
}

// After a take-over the old instance's upload queue still sends packs and
// ontology objects named by their digest (immutable), nothing else.
func TestAddableAfterTakeOver(t *testing.T) {
	id := "0123456789abcdef0123456789abcdef"
	digest := strings.Repeat("ab", 32)
	for name, want := range map[string]bool{
		"packs/01/" + id: true,
		"ontologies/cell_type/" + digest + ".src":    true,
		"ontologies/cell_type/" + digest + ".v2.idx": true,
		"packs/02/" + id:                    false, // not its own layout
		"packs/01/" + id + "/x":             false,
		"records/1-ab.json":                 false,
		"gc/condemned/" + id:                false,
		"instance.json":                     false,
		"ontologies/registry.json":          false,
		"ontologies/cell_type/short.src":    false,
		"ontologies/a/b/" + digest + ".src": false,
	} {
		if got := instance.AddableAfterTakeOver(name); got != want {
			t.Errorf("AddableAfterTakeOver(%q) = %v, want %v", name, got, want)
		}
	}
}

// Storage that is not there takes no write: a local folder that is gone
// (ErrRootGone), or one that holds no owner record and none of the data of
// the catalog's versions (an empty mount point: ErrStorageLost). A root
// with no owner record passes when the catalog has no versions (an
// instance made before roots were claimed, which saved nothing yet) or
// when it holds data (one that saved some).
func TestCheckStorageRefusesLostStorage(t *testing.T) {
	ctx := context.Background()
	a, _ := workstations(t)
	root := a.Settings.Storage
	for _, claim := range []bool{false, true} {
		if err := a.CheckStorage(ctx, claim); err != nil {
			t.Fatalf("an empty root, no owner record, no versions (claim %v): %v", claim, err)
		}
		if err := os.Remove(filepath.Join(root, "instance.json")); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	stored(t, a, "x.bin", []byte("saved before roots were claimed"))
	if err := a.CheckStorage(ctx, false); err != nil {
		t.Fatalf("a root with data and no owner record: %v", err)
	}
	if err := os.Rename(root, root+".away"); err != nil {
		t.Fatal(err)
	}
	for _, check := range []struct {
		name string
		f    func() error
	}{
		{"CheckStorage", func() error { return a.CheckStorage(ctx, false) }},
		{"CheckStorage (claim: gc)", func() error { return a.CheckStorage(ctx, true) }},
		{"CheckLost", func() error { return a.CheckLost(ctx) }},
		{"CheckLost without a catalog", func() error {
			return instance.New(a.Settings, nil, a.Backend, nil).CheckLost(ctx)
		}},
	} {
		if err := check.f(); !errors.Is(err, storage.ErrRootGone) || !strings.Contains(err.Error(), "storage folder "+root+" is gone: is its disk mounted?") {
			t.Errorf("%s of a folder that is gone: %v", check.name, err)
		}
		if _, err := os.Lstat(root); !os.IsNotExist(err) {
			t.Fatalf("%s made the folder again", check.name)
		}
	}
	// An empty folder in its place (where the disk mounts), with the
	// version in the catalog, or only in its trash.
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, trashed := range []bool{false, true} {
		if trashed {
			if _, err := a.Catalog.Trash(ctx, "x.bin"); err != nil {
				t.Fatal(err)
			}
		}
		for _, claim := range []bool{false, true} {
			err := a.CheckStorage(ctx, claim)
			if !errors.Is(err, instance.ErrStorageLost) || !strings.Contains(err.Error(), "folder "+root+" holds no instance.json and none of the data of the 1 version in the catalog of instance \"team\": is its disk mounted") {
				t.Errorf("CheckStorage (claim %v, trashed %v) of an empty folder: %v", claim, trashed, err)
			}
		}
		if err := a.CheckLost(ctx); !errors.Is(err, instance.ErrStorageLost) {
			t.Errorf("CheckLost (trashed %v) of an empty folder: %v", trashed, err)
		}
	}
	if err := instance.New(a.Settings, nil, a.Backend, nil).CheckLost(ctx); err != nil {
		t.Errorf("CheckLost without a catalog checks only the folder: %v", err)
	}
	if ents, _ := os.ReadDir(root); len(ents) != 0 {
		t.Errorf("the refusals wrote into the empty folder: %v", ents)
	}
	// The folder back: it works, and gc's check claims it.
	if err := os.Remove(root); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(root+".away", root); err != nil {
		t.Fatal(err)
	}
	if err := a.CheckStorage(ctx, true); err != nil {
		t.Fatalf("the folder back: %v", err)
	}
	if _, found, err := a.StorageOwner(ctx); err != nil || !found {
		t.Fatalf("not claimed: %v %v", found, err)
	}
}
