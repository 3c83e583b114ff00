package cache_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/storage"
)

// inflight counts the requests a backend has at once; each waits a while
// for company, so that requests sent together overlap.
type inflight struct {
	storage.Backend
	mu       sync.Mutex
	now, max int
}

func (f *inflight) enter() {
	f.mu.Lock()
	f.now++
	f.max = max(f.max, f.now)
	f.mu.Unlock()
	for range 50 { // at most ~100 ms: a lone request goes on
		f.mu.Lock()
		n := f.now
		f.mu.Unlock()
		if n > 1 {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (f *inflight) leave() { f.mu.Lock(); f.now--; f.mu.Unlock() }

func (f *inflight) Get(ctx context.Context, name string) ([]byte, error) {
	f.enter()
	defer f.leave()
	return f.Backend.Get(ctx, name)
}

func (f *inflight) Put(ctx context.Context, name string, b []byte) error {
	f.enter()
	defer f.leave()
	return f.Backend.Put(ctx, name, b)
}

func (f *inflight) Delete(ctx context.Context, name string) error {
	f.enter()
	defer f.leave()
	return f.Backend.Delete(ctx, name)
}

// gc reads, writes and removes the marks of many packs, and deletes the
// packs, several requests at a time but at most 16 (audit 28: 2,000
// doomed packs cost 4,000 reads of marks in a row, a minute and more at
// S3's latency). The marks read are those written.
func TestBulkMarksInParallel(t *testing.T) {
	ctx := context.Background()
	b, err := storage.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := &inflight{Backend: b}
	s, err := cache.NewStore(f, filepath.Join(t.TempDir(), "index.db"), cache.DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 64 {
		ids = append(ids, fmt.Sprintf("%032x", i))
	}
	check := func(what string) {
		t.Helper()
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.max < 2 || f.max > 16 {
			t.Errorf("%s: %d requests at once at most, want 2 to 16", what, f.max)
		}
		f.max = 0
	}
	if err := s.Condemn(ctx, ids, "note"); err != nil {
		t.Fatal(err)
	}
	check("Condemn")
	notes, err := s.MarkNotes(ctx, append(ids, fmt.Sprintf("%032x", 999)))
	if err != nil || len(notes) != len(ids) {
		t.Fatalf("MarkNotes: %d notes, %v", len(notes), err)
	}
	for _, id := range ids {
		if notes[id] != "note" {
			t.Fatalf("mark of %s: %q", id, notes[id])
		}
	}
	check("MarkNotes")
	if err := s.DeletePacks(ctx, ids); err != nil {
		t.Fatal(err)
	}
	check("DeletePacks")
	if err := s.Pardon(ctx, ids); err != nil {
		t.Fatal(err)
	}
	check("Pardon")
	if marks, err := s.Condemned(ctx); err != nil || len(marks) != 0 {
		t.Fatalf("marks after Pardon: %v %v", marks, err)
	}
}
