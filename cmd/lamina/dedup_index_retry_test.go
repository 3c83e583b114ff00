package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
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

// awayRanges fails every ranged read while away is set: an S3 server
// gone when the mount started.
type awayRanges struct {
	storage.Backend
	away atomic.Bool
}

func (a *awayRanges) GetRange(ctx context.Context, name string, off, n int64) ([]byte, error) {
	if a.away.Load() {
		return nil, errors.New("connection refused")
	}
	return a.Backend.GetRange(ctx, name, off, n)
}

// TestMountIndexRebuildRetried: a mount started while the storage was away
// tried the rebuild of its dedup index once, and dedup stayed off until
// the next mount. It is tried again until done, and status says why it
// is not built meanwhile.
func TestMountIndexRebuildRetried(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b, err := storage.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	idx := filepath.Join(t.TempDir(), "index.db")
	s, err := cache.NewStore(b, idx, cache.DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 4<<20)
	for i := range data {
		data[i] = byte(rand.Uint32())
	}
	w := s.NewWriter()
	if _, _, err := w.PutFile(ctx, bytes.NewReader(data), nil); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	os.Remove(idx)
	a := &awayRanges{Backend: b}
	a.away.Store(true)
	s2, err := cache.NewStore(a, idx, cache.DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	var state atomic.Pointer[string]
	var done sync.WaitGroup
	done.Add(1)
	go func() {
		defer done.Done()
		keepIndexBuilt(ctx, s2, slog.New(slog.DiscardHandler), &state, 20*time.Millisecond)
	}()
	poll := func(what string, ok func(string) bool) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			st := ""
			if p := state.Load(); p != nil {
				st = *p
			}
			if ok(st) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: status says %q, unbuilt %v", what, st, s2.IndexUnbuilt())
			}
		}
	}
	poll("storage away", func(st string) bool { return strings.HasPrefix(st, "not built (") && s2.IndexUnbuilt() })
	a.away.Store(false)
	poll("storage back", func(st string) bool { return st == "" && !s2.IndexUnbuilt() })
	cancel()
	done.Wait()
}
