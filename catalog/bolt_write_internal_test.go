package catalog

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/ref"
	bolt "go.etcd.io/bbolt"
)

func testNV(key, content string) NewVersion {
	now := time.Now()
	return NewVersion{Key: key, Kind: "file", Digest: ref.Sum([]byte(content)), Manifest: "m" + content,
		Size: int64(len(content)), CreatedBy: "tester", CreatedAt: now, Mtime: now}
}

// heldBolt is a new catalog held open, as the mount daemon holds its own,
// closed at the end of the test.
func heldBolt(t *testing.T) *Bolt {
	t.Helper()
	b, err := OpenBolt(filepath.Join(t.TempDir(), "c.db"), BoltOptions{Hold: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func lastTxID(t *testing.T, db *bolt.DB) int {
	t.Helper()
	var id int
	if err := db.View(func(tx *bolt.Tx) error { id = int(tx.ID()); return nil }); err != nil {
		t.Fatal(err)
	}
	return id
}

// TestGroupCommit: Saves that arrive while a transaction commits are saved
// together in the next one (one fsync), and a Save that fails in a group
// gets its error without failing the others.
func TestGroupCommit(t *testing.T) {
	ctx := context.Background()
	b := heldBolt(t)
	if _, err := b.Save(ctx, []NewVersion{testNV("f", "a file")}); err != nil {
		t.Fatal(err)
	}
	before := lastTxID(t, b.held)

	// Hold bbolt's write lock so that the Saves below pile up.
	started, release, blocked := make(chan struct{}), make(chan struct{}), make(chan error)
	go func() {
		blocked <- b.held.Update(func(*bolt.Tx) error { close(started); <-release; return nil })
	}()
	<-started
	const n = 10
	errs := make([]error, n+1)
	var wg sync.WaitGroup
	save := func(i int) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nv := testNV(fmt.Sprintf("k/%02d", i), fmt.Sprint(i))
			if i == n {
				nv = testNV("f/under-a-file", "x") // a conflict
			}
			_, errs[i] = b.Save(ctx, []NewVersion{nv})
		}()
	}
	waitQueue := func(leading bool, queued int) {
		for {
			b.saves.mu.Lock()
			ok := b.saves.leading == leading && len(b.saves.queue) == queued
			b.saves.mu.Unlock()
			if ok {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}
	// The first Save leads, takes itself off the queue and waits for the
	// lock; the others queue behind it.
	save(0)
	waitQueue(true, 0)
	for i := 1; i <= n; i++ {
		save(i)
	}
	waitQueue(true, n)
	close(release)
	if err := <-blocked; err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	failed := 0
	for i, err := range errs {
		if errors.Is(err, ErrConflict) {
			failed++
		} else if err != nil {
			t.Fatalf("save %d: %v", i, err)
		}
	}
	if failed != 1 {
		t.Fatalf("%d saves failed with a conflict, want 1: %v", failed, errs)
	}
	vs, err := b.List(ctx, Query{Prefix: "k/"})
	if err != nil || len(vs) != n {
		t.Fatalf("List = %d versions, %v; want %d", len(vs), err, n)
	}
	// The blocker, the leader's own Save, then one for the ten queued (the
	// attempt with the conflict was rolled back).
	if got := lastTxID(t, b.held) - before; got != 3 {
		t.Fatalf("%d write transactions for 11 Saves, want 3", got)
	}
}

// crashImage copies the catalog file as a killed process would leave it.
func crashImage(t *testing.T, b *Bolt) *Bolt {
	t.Helper()
	raw, err := os.ReadFile(b.Path())
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "crashed.db")
	if err := os.WriteFile(p, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := OpenBolt(p, BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestLazySave: a lazy Save is seen at once by every other call, which
// commits it first; until then a killed process loses it, and
// LazyCommitted tells its caller so. A lazy Save that fails leaves the
// others in the open transaction; the timer commits them without any call.
func TestLazySave(t *testing.T) {
	ctx := context.Background()
	lazy := Lazy(ctx)
	b := heldBolt(t)
	s, err := b.Save(lazy, []NewVersion{testNV("a/x", "1")})
	if err != nil || s[0].LazySeq != 1 {
		t.Fatalf("lazy Save = %+v, %v", s, err)
	}
	lost := crashImage(t, b)
	if _, err := lost.ByKey(ctx, "a/x", 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the crash image has the lazy save: %v", err)
	}
	if n, err := lost.LazyCommitted(ctx); err != nil || n != 0 {
		t.Fatalf("crash image: LazyCommitted = %d, %v; want 0", n, err)
	}
	if v, err := b.ByKey(ctx, "a/x", 0); err != nil || v.UID != s[0].Version.UID {
		t.Fatalf("ByKey after a lazy save = %+v, %v", v, err)
	}
	if n, _ := b.LazyCommitted(ctx); n != 1 {
		t.Fatalf("LazyCommitted = %d after a read, want 1", n)
	}
	if _, err := crashImage(t, b).ByKey(ctx, "a/x", 0); err != nil {
		t.Fatalf("a read did not commit the lazy save: %v", err)
	}

	// A failed lazy save leaves the one before it.
	if _, err := b.Save(lazy, []NewVersion{testNV("b", "2")}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Save(lazy, []NewVersion{testNV("a/x/y", "3")}); !errors.Is(err, ErrConflict) {
		t.Fatalf("lazy save under a file: %v, want a conflict", err)
	}
	folder := testNV("a/x", "4")
	folder.Kind = "folder"
	if _, err := b.Save(lazy, []NewVersion{folder}); !errors.Is(err, ErrKind) {
		t.Fatalf("lazy save of a folder onto a file: %v, want ErrKind", err)
	}
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := crashImage(t, b).ByKey(ctx, "b", 0); err != nil {
		t.Fatalf("b after Flush: %v", err)
	}

	// Nobody calls: the timer commits.
	if s, err = b.Save(lazy, []NewVersion{testNV("c", "4")}); err != nil || s[0].LazySeq != 3 {
		t.Fatalf("lazy Save = %+v, %v", s, err)
	}
	for deadline := time.Now().Add(10 * time.Second); b.lazy.open.Load(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the lazy save of c was not committed within 10 s")
		}
	}
	if _, err := crashImage(t, b).ByKey(ctx, "c", 0); err != nil {
		t.Fatalf("c after the timer: %v", err)
	}
}

// TestLazyOffAfterLoss: once a transaction of lazy saves was lost, saves
// commit before they return, so the recorded LazySeq stays below the lost
// ones and a restart redoes them.
func TestLazyOffAfterLoss(t *testing.T) {
	ctx := context.Background()
	b := heldBolt(t)
	if _, err := b.Save(Lazy(ctx), []NewVersion{testNV("a", "1")}); err != nil {
		t.Fatal(err)
	}
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	b.lazy.lost.Store(true) // as after a failed commit (endLocked)
	s, err := b.Save(Lazy(ctx), []NewVersion{testNV("b", "2")})
	if err != nil || s[0].LazySeq != 0 {
		t.Fatalf("save after a loss = %+v, %v; want a save that is not lazy", s, err)
	}
	img := crashImage(t, b)
	if _, err := img.ByKey(ctx, "b", 0); err != nil {
		t.Fatalf("the save after a loss is not durable when it returns: %v", err)
	}
	if n, _ := img.LazyCommitted(ctx); n != 1 {
		t.Fatalf("LazyCommitted = %d after the loss, want 1 (unchanged)", n)
	}
}

// TestMakeFolderMadeCommitsNothing: the mount keeps a folder at every
// unlink in it, so MakeFolder of a folder that is made must not cost a
// write transaction (two fsyncs) each time.
func TestMakeFolderMadeCommitsNothing(t *testing.T) {
	ctx := context.Background()
	b := heldBolt(t)
	if err := b.MakeFolder(ctx, "exp/raw"); err != nil {
		t.Fatal(err)
	}
	before := lastTxID(t, b.held)
	for range 3 {
		if err := b.MakeFolder(ctx, "exp/raw"); err != nil {
			t.Fatal(err)
		}
	}
	if after := lastTxID(t, b.held); after != before {
		t.Fatalf("MakeFolder of a made folder committed %d transactions", after-before)
	}
	if err := b.MakeFolder(ctx, "exp/other"); err != nil || lastTxID(t, b.held) != before+1 {
		t.Fatalf("a new folder: %v, transactions %d → %d", err, before, lastTxID(t, b.held))
	}
}

// TestLazyTrashAndAttrs: the mount's removals, touches, mkdirs and rmdirs
// (Lazy) wait in the open transaction of lazy saves and commit together,
// as closes do; the errors a caller causes come back at once and lose
// nothing else waiting there.
func TestLazyTrashAndAttrs(t *testing.T) {
	ctx := context.Background()
	b := heldBolt(t)
	var nvs []NewVersion
	for i := range 10 {
		nvs = append(nvs, testNV(fmt.Sprintf("rm/f%d", i), fmt.Sprint(i)))
	}
	nvs = append(nvs, testNV("keep/t.txt", "t"))
	if _, err := b.Save(ctx, nvs); err != nil {
		t.Fatal(err)
	}
	lazy := Lazy(ctx)
	before := lastTxID(t, b.held)
	for i := range 10 {
		if _, err := b.Trash(lazy, fmt.Sprintf("rm/f%d", i)); err != nil {
			t.Fatal(err)
		}
		if err := b.MakeFolder(lazy, "rm"); err != nil {
			t.Fatal(err)
		}
	}
	mtime := time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC)
	mode := uint32(0o444)
	if _, err := b.SetAttrs(lazy, "keep/t.txt", Attrs{Mtime: &mtime, Mode: &mode}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"made/a", "made/b", "gone"} {
		if err := b.MakeFolder(lazy, f); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.RemoveFolder(lazy, "gone"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []struct {
		do   func() error
		want error
	}{
		{func() error { _, err := b.Trash(lazy, "rm/f3"); return err }, ErrNotFound}, // already in the trash
		{func() error { _, err := b.Trash(lazy, "rm/none"); return err }, ErrNotFound},
		{func() error { _, err := b.SetAttrs(lazy, "rm/none", Attrs{Mtime: &mtime}); return err }, ErrNotFound},
		{func() error { return b.RemoveFolder(lazy, "none") }, ErrNotFound},
		{func() error { return b.RemoveFolder(lazy, "keep") }, ErrNotEmpty},
		{func() error { return b.MakeFolder(lazy, "keep/t.txt") }, ErrConflict},
	} {
		if err := bad.do(); !errors.Is(err, bad.want) {
			t.Fatalf("got %v, want %v", err, bad.want)
		}
	}
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// One transaction, or two if the commit timer struck in between; 16
	// without Lazy.
	if n := lastTxID(t, b.held) - before; n < 1 || n > 2 {
		t.Fatalf("%d write transactions", n)
	}
	// Ten artifacts, and the removed folder (kept for restore).
	tl, err := b.TrashList(ctx)
	if err != nil || len(tl) != 11 || !slices.ContainsFunc(tl, func(e TrashEntry) bool { return e.Key == "gone" && e.Kind == "folder" }) {
		t.Fatalf("trash holds %d, %v; want 10 artifacts and the folder gone: %+v", len(tl), err, tl)
	}
	v, err := b.ByKey(ctx, "keep/t.txt", 0)
	if err != nil || !v.Mtime.Equal(mtime) || v.Mode != 0o444 {
		t.Fatalf("keep/t.txt = %+v, %v", v, err)
	}
	d, err := b.Children(ctx, "rm/")
	if err != nil || len(d.Files) != 0 {
		t.Fatalf("rm/ lists %+v, %v", d, err)
	}
	if dirs, err := b.Children(ctx, ""); err != nil || !slices.Contains(dirs.Subdirs, "rm") ||
		!slices.Contains(dirs.Subdirs, "made") || slices.Contains(dirs.Subdirs, "gone") {
		t.Fatalf("folders: %+v, %v; want rm and made, not gone", dirs.Subdirs, err)
	}
}

// TestLazyRename: the mount's renames of files to a free key or onto a file
// of their kind (Lazy) commit together; any other rename (a link, a key
// that does not exist, a place taken by a folder) is made at once, with
// the error it always had, and loses nothing waiting.
func TestLazyRename(t *testing.T) {
	ctx := context.Background()
	b := heldBolt(t)
	var nvs []NewVersion
	for i := range 10 {
		nvs = append(nvs, testNV(fmt.Sprintf("mv/f%d", i), fmt.Sprint(i)))
	}
	nvs = append(nvs, testNV("mv/target", "old"), testNV("dir/x", "x"))
	if _, err := b.Save(ctx, nvs); err != nil {
		t.Fatal(err)
	}
	lazy := Lazy(ctx)
	before := lastTxID(t, b.held)
	for i := range 9 {
		if v, err := b.Rename(lazy, fmt.Sprintf("mv/f%d", i), fmt.Sprintf("mv/g%d", i)); err != nil || v.Key != fmt.Sprintf("mv/g%d", i) {
			t.Fatalf("rename %d: %+v, %v", i, v, err)
		}
	}
	v, err := b.Rename(lazy, "mv/f9", "mv/target") // onto a file: its new version
	if err != nil || v.Key != "mv/target" || v.Version != 2 || v.Digest != nvs[9].Digest {
		t.Fatalf("rename onto mv/target: %+v, %v", v, err)
	}
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := lastTxID(t, b.held) - before; n < 1 || n > 2 {
		t.Fatalf("10 renames made %d write transactions, want 1 (2 if the commit timer struck)", n)
	}
	// What cannot be lazy is made at once, with the error it always had.
	if _, err := b.Rename(lazy, "mv/g0", "mv/h0"); err != nil { // waiting when the next fail
		t.Fatal(err)
	}
	if _, err := b.Rename(lazy, "mv/none", "mv/x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("rename of no key: %v", err)
	}
	if _, err := b.Rename(lazy, "mv/g1", "dir"); !errors.Is(err, ErrConflict) && !errors.Is(err, ErrKind) {
		t.Fatalf("rename onto a folder of keys: %v", err)
	}
	if err := b.Symlink(ctx, "mv/link", "g2"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Rename(lazy, "mv/link", "mv/link2"); err != nil {
		t.Fatalf("rename of a link: %v", err)
	}
	if err := b.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	d, err := b.Children(ctx, "mv/")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, v := range d.Files {
		keys = append(keys, v.Key)
	}
	want := []string{"mv/g1", "mv/g2", "mv/g3", "mv/g4", "mv/g5", "mv/g6", "mv/g7", "mv/g8", "mv/h0", "mv/target"}
	if !slices.Equal(keys, want) || len(d.Links) != 1 || d.Links[0].Key != "mv/link2" {
		t.Fatalf("mv/ holds %v and links %+v; want %v and mv/link2", keys, d.Links, want)
	}
}

// A durable save runs SyncFirst's sync before it writes, and fails whole
// when the sync does; a lazy save leaves it to the caller's Flush.
func TestSyncFirst(t *testing.T) {
	ctx := context.Background()
	calls := 0
	sync := func(context.Context) error { calls++; return nil }
	b := heldBolt(t)
	if _, err := b.Save(SyncFirst(Lazy(ctx), sync), []NewVersion{testNV("lazy", "1")}); err != nil || calls != 0 {
		t.Fatalf("lazy save: %v, %d syncs, want 0", err, calls)
	}
	if _, err := b.Save(SyncFirst(ctx, sync), []NewVersion{testNV("durable", "2")}); err != nil || calls != 1 {
		t.Fatalf("durable save: %v, %d syncs, want 1", err, calls)
	}
	failing := SyncFirst(ctx, func(context.Context) error { return errors.New("disk full") })
	if _, err := b.Save(failing, []NewVersion{testNV("unsynced", "3")}); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("save whose content sync failed: %v", err)
	}
	if _, err := b.ByKey(ctx, "unsynced", 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a save whose content sync failed was recorded: %v", err)
	}
}
