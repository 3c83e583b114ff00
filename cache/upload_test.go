package cache_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/storage"
)

// flaky is a backend whose Puts fail while down, and that counts the Puts
// that land, per name.
type flaky struct {
	storage.Backend
	down atomic.Bool
	mu   sync.Mutex
	puts map[string]int
}

func (f *flaky) Put(ctx context.Context, name string, data []byte) error {
	if f.down.Load() {
		return errors.New("server away")
	}
	f.mu.Lock()
	f.puts[name]++
	f.mu.Unlock()
	return f.Backend.Put(ctx, name, data)
}

func (f *flaky) landed(name string) int { f.mu.Lock(); defer f.mu.Unlock(); return f.puts[name] }

// newFlaky is a flaky local folder, up.
func newFlaky(t *testing.T) *flaky {
	t.Helper()
	local, err := storage.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &flaky{Backend: local, puts: map[string]int{}}
}

// One process owns a staging folder's queue: another one (the CLI while a
// mount daemon runs) reads what the owner staged but neither uploads nor
// waits for it; the owner adopts what the other left; a staged object that
// disappeared (uploaded by whoever staged it) is done, not retried forever.
func TestUploadQueueHasOneOwner(t *testing.T) {
	ctx := context.Background()
	remote := newFlaky(t)
	dir := t.TempDir()
	opts := cache.UploadOptions{MaxDelay: 20 * time.Millisecond, AdoptEvery: 50 * time.Millisecond}
	owner, err := cache.OpenUploads(remote, dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer owner.Close()
	remote.down.Store(true)
	if err := owner.Put(ctx, "packs/aa/x", []byte("x bytes")); err != nil {
		t.Fatal(err)
	}
	other, err := cache.OpenUploads(remote, dir, cache.UploadOptions{SyncUpload: true, MaxDelay: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if p := other.Pending(); p.Objects != 0 {
		t.Fatalf("the other process counts the owner's upload as its own: %+v", p)
	}
	if b, err := other.Get(ctx, "packs/aa/x"); err != nil || string(b) != "x bytes" {
		t.Fatalf("the other process reads a staged object: %q, %v", b, err)
	}
	if !cache.QueueOwned(dir) {
		t.Fatal("QueueOwned = false while a process owns the queue")
	}
	// The other process stages what it could not upload, and exits.
	if err := other.Put(ctx, "packs/bb/y", []byte("y bytes")); err != nil {
		t.Fatal(err)
	}
	other.Close()

	remote.down.Store(false)
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for owner.Pending().Objects != 0 || remote.landed("packs/bb/y") == 0 {
		if wctx.Err() != nil {
			t.Fatalf("uploads did not finish: %+v; y landed %d times", owner.Pending(), remote.landed("packs/bb/y"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := remote.landed("packs/aa/x"); n != 1 {
		t.Errorf("x uploaded %d times, want once (by the owner)", n)
	}

	// A staged object removed from under the queue is done.
	remote.down.Store(true)
	if err := owner.Put(ctx, "packs/cc/z", []byte("z bytes")); err != nil {
		t.Fatal(err)
	}
	staged, _ := filepath.Glob(filepath.Join(dir, "packs*cc*z"))
	if len(staged) != 1 {
		t.Fatalf("staged z: %v", staged)
	}
	os.Remove(staged[0])
	remote.down.Store(false)
	if err := owner.WaitIdle(wctx, nil); err != nil {
		t.Fatalf("a staged object that disappeared is still pending: %v %+v", err, owner.Pending())
	}
	owner.Close()
	if cache.QueueOwned(dir) {
		t.Fatal("QueueOwned = true after the owner closed")
	}
	if b, err := remote.Backend.Get(ctx, "packs/bb/y"); err != nil || !bytes.Equal(b, []byte("y bytes")) {
		t.Fatalf("y in the backend: %q, %v", b, err)
	}
}

// When the owner stops (a daemon that finished), another process that has
// the queue open takes it over and uploads what the owner left.
func TestUploadQueueTakenOver(t *testing.T) {
	ctx := context.Background()
	remote := newFlaky(t)
	dir := t.TempDir()
	opts := cache.UploadOptions{MaxDelay: 20 * time.Millisecond, AdoptEvery: 50 * time.Millisecond}
	owner, err := cache.OpenUploads(remote, dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	other, err := cache.OpenUploads(remote, dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	remote.down.Store(true)
	if err := owner.Put(ctx, "packs/dd/w", []byte("w bytes")); err != nil {
		t.Fatal(err)
	}
	owner.Close() // w stays staged
	remote.down.Store(false)
	for deadline := time.Now().Add(10 * time.Second); remote.landed("packs/dd/w") == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the other process did not take the queue over")
		}
	}
}

// A write-through Put that fails past the backend's retries is staged for
// the queue, and Sync does not wait for it: a save against a server that
// went away returns, its data staged, rather than wait for the server.
func TestSyncDoesNotWaitForDeferredUploads(t *testing.T) {
	ctx := context.Background()
	remote := newFlaky(t)
	u, err := cache.OpenUploads(remote, t.TempDir(), cache.UploadOptions{SyncUpload: true, MaxDelay: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	remote.down.Store(true)
	if err := u.Put(ctx, "packs/ee/v", []byte("v bytes")); err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := u.Sync(sctx); err != nil {
		t.Fatalf("Sync with the server away: %v (it waited for the staged object)", err)
	}
	if p := u.Pending(); p.Objects != 1 {
		t.Fatalf("pending %+v, want the object staged", p)
	}
	remote.down.Store(false)
	if err := u.WaitIdle(sctx, nil); err != nil || remote.landed("packs/ee/v") != 1 {
		t.Fatalf("the queue did not upload it once the server was back: %v", err)
	}
	if p := u.Pending(); p.Failures != 0 || p.LastError != "" {
		t.Errorf("the outage is over but Pending still quotes it: %+v", p)
	}
}

// PutStored never stages, in either mode: with the server refusing it, it
// fails and nothing waits in the queue; with the server up, the backend
// has the object when it returns (gc's marks, the storage claim).
func TestPutStoredNeverStages(t *testing.T) {
	ctx := context.Background()
	for _, sync := range []bool{false, true} {
		remote := newFlaky(t)
		u, err := cache.OpenUploads(remote, t.TempDir(), cache.UploadOptions{SyncUpload: sync, MaxDelay: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		remote.down.Store(true)
		if err := u.PutStored(ctx, "gc/condemned/p1", []byte("mark")); err == nil {
			t.Errorf("sync %v: PutStored succeeded with the server refusing it", sync)
		}
		if p := u.Pending(); p.Objects != 0 {
			t.Errorf("sync %v: %d objects staged after a refused PutStored", sync, p.Objects)
		}
		if _, err := u.GetStored(ctx, "gc/condemned/p1"); !storage.IsNotFound(err) {
			t.Errorf("sync %v: GetStored of a mark the server never had: %v", sync, err)
		}
		remote.down.Store(false)
		if err := u.PutStored(ctx, "gc/condemned/p1", []byte("mark")); err != nil || remote.landed("gc/condemned/p1") != 1 {
			t.Errorf("sync %v: PutStored with the server up: %v, landed %d", sync, err, remote.landed("gc/condemned/p1"))
		}
		u.Close()
	}
}

// An object UploadOptions.Allow holds (ErrHold: the storage was taken over
// and only packs may still go) stays staged and is reported as held; the
// queue uploads the rest, and neither WaitIdle nor Sync waits for it. An
// Allow that fails otherwise (the owner could not be read) is retried.
func TestUploadQueueHoldsWhatAllowRefuses(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	remote := newFlaky(t)
	dir := t.TempDir()
	first, err := cache.OpenUploads(remote, dir, cache.UploadOptions{MaxDelay: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	remote.down.Store(true)
	for _, name := range []string{"packs/aa/x", "records/r.json"} {
		if err := first.Put(ctx, name, []byte(name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := first.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	first.Close()
	remote.down.Store(false)

	var asked atomic.Int32
	allow := func(_ context.Context, name string) error {
		if name == "packs/aa/x" {
			return nil
		}
		if asked.Add(1) == 1 {
			return errors.New("owner not read: server away") // a failed attempt
		}
		return fmt.Errorf("%w: taken over", cache.ErrHold)
	}
	u, err := cache.OpenUploads(remote, dir, cache.UploadOptions{SyncUpload: true, MaxDelay: 20 * time.Millisecond, Allow: allow})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if err := u.WaitIdle(ctx, nil); err != nil {
		t.Fatalf("WaitIdle with a held object: %v", err)
	}
	if err := u.Sync(ctx); err != nil {
		t.Fatalf("Sync with a held object: %v", err)
	}
	if remote.landed("packs/aa/x") != 1 || remote.landed("records/r.json") != 0 {
		t.Fatalf("landed: pack %d, record %d; want the pack only", remote.landed("packs/aa/x"), remote.landed("records/r.json"))
	}
	if n := asked.Load(); n != 2 {
		t.Errorf("Allow asked %d times about the record, want 2 (a failure, retried, then held)", n)
	}
	p := u.Pending()
	if p.Objects != 0 || len(p.Held) != 1 || p.Held[0].Name != "records/r.json" || !strings.Contains(p.HeldWhy, "taken over") {
		t.Fatalf("pending %+v, want the record held and nothing else", p)
	}
	if left, err := cache.ScanUploads(dir); err != nil || left.Objects != 1 || left.Items[0].Name != "records/r.json" {
		t.Fatalf("staged after the uploads: %+v %v, want the record kept", left, err)
	}
}

// A write-through Put (SyncUpload, the CLI's) asks Allow too: what it
// holds is refused, neither uploaded nor staged. The CLI's records went
// through putThrough unasked, so `delete --permanent` of an instance
// whose storage was taken over wrote its record of the purge into the
// new owner's storage. A failed Allow (owner not read) stages the object
// for the queue, which asks again.
func TestUploadWriteThroughAsksAllow(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	remote := newFlaky(t)
	dir := t.TempDir()
	var away atomic.Bool
	allow := func(_ context.Context, name string) error {
		if strings.HasPrefix(name, "packs/") {
			return nil
		}
		if away.Load() {
			return errors.New("owner not read: server away")
		}
		return fmt.Errorf("%w: taken over", cache.ErrHold)
	}
	u, err := cache.OpenUploads(remote, dir, cache.UploadOptions{SyncUpload: true, MaxDelay: 20 * time.Millisecond, Allow: allow})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if err := u.Put(ctx, "packs/aa/x", []byte("p")); err != nil {
		t.Fatal(err)
	}
	if err := u.Put(ctx, "records/r.json", []byte("r")); !errors.Is(err, cache.ErrHold) {
		t.Fatalf("write-through Put of a record Allow holds: %v, want ErrHold", err)
	}
	if remote.landed("packs/aa/x") != 1 || remote.landed("records/r.json") != 0 {
		t.Fatalf("landed: pack %d, record %d; want the pack only", remote.landed("packs/aa/x"), remote.landed("records/r.json"))
	}
	if left, err := cache.ScanUploads(dir); err != nil || left.Objects != 0 {
		t.Fatalf("staged after a refused write-through Put: %+v %v, want nothing", left, err)
	}
	// The owner not read in time: the put goes (the command read it at
	// its start); staged, a slow server's record never went.
	away.Store(true)
	if err := u.Put(ctx, "records/s.json", []byte("s")); err != nil {
		t.Fatalf("write-through Put while Allow cannot read the owner: %v", err)
	}
	if remote.landed("records/s.json") != 1 {
		t.Fatal("write-through Put while Allow cannot read the owner: not uploaded")
	}
	if left, err := cache.ScanUploads(dir); err != nil || left.Objects != 0 {
		t.Fatalf("staged while the owner is not read: %+v %v, want nothing", left, err)
	}
}
