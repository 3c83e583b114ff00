package cache

import (
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/ref"
)

// Lookups in a row share one open of the index file (one lookup per close
// of a small file in the mount opened, mapped and closed it each time).
func TestIndexLookupsShareAnOpen(t *testing.T) {
	ix, err := OpenIndex(filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	d := ref.Sum([]byte("a chunk"))
	if err := ix.Add(map[ref.Digest]Loc{d: {Pack: newPackID(), Off: 1, Len: 2}}); err != nil {
		t.Fatal(err)
	}
	before := ix.opens.Load()
	for range 100 {
		found, err := ix.Lookup([]ref.Digest{d})
		if err != nil || found[d].Len != 2 {
			t.Fatalf("lookup: %v, %v", found, err)
		}
	}
	// The handle is closed after indexHold: a slow machine may need a
	// few; one per lookup is the bug.
	if n := ix.opens.Load() - before; n > 20 {
		t.Fatalf("100 lookups opened the index %d times", n)
	}
	// A write of this process closes the held handle first (its shared
	// lock would keep the write out) and the next lookup sees it.
	e := ref.Sum([]byte("another chunk"))
	done := make(chan error, 1)
	go func() { done <- ix.Add(map[ref.Digest]Loc{e: {Pack: newPackID(), Off: 3, Len: 4}}) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("an Add waited for the held handle of its own index")
	}
	if found, err := ix.Lookup([]ref.Digest{e}); err != nil || found[e].Len != 4 {
		t.Fatalf("lookup after Add: %v, %v", found, err)
	}
}

// Another process's write (another Index on the file: bbolt's flock is per
// open file) gets in while this one looks up without a pause, and the
// lookups see it once it is written.
func TestIndexWriterGetsInBetweenLookups(t *testing.T) {
	path := filepath.Join(t.TempDir(), "index.db")
	reader, err := OpenIndex(path)
	if err != nil {
		t.Fatal(err)
	}
	writer, err := OpenIndex(path)
	if err != nil {
		t.Fatal(err)
	}
	d := ref.Sum([]byte("written by the other process"))
	var seen atomic.Bool
	stop := make(chan struct{})
	looking := make(chan struct{})
	go func() {
		defer close(looking)
		for {
			select {
			case <-stop:
				return
			default:
			}
			found, err := reader.Lookup([]ref.Digest{d})
			if err != nil {
				t.Error(err)
				return
			}
			if _, ok := found[d]; ok {
				seen.Store(true)
			}
		}
	}()
	defer func() { close(stop); <-looking }()
	done := make(chan error, 1)
	go func() { done <- writer.Add(map[ref.Digest]Loc{d: {Pack: newPackID(), Off: 5, Len: 6}}) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("a write of another process waited a minute for a process looking up")
	}
	deadline := time.Now().Add(30 * time.Second)
	for !seen.Load() {
		if time.Now().After(deadline) {
			t.Fatal("the lookups never saw the other process's write")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
