package instance_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/instance"
	"github.com/lamina-bio/lamina/storage"
)

// ownerServer answers reads of the owner object as told: hung (until the
// caller's deadline), refusing, or with the given bytes.
type ownerServer struct {
	storage.Backend
	mode  atomic.Int32 // 0 hung, 1 refusing, 2 answering
	owner atomic.Pointer[[]byte]
}

func (s *ownerServer) Get(ctx context.Context, name string) ([]byte, error) {
	switch s.mode.Load() {
	case 0:
		<-ctx.Done()
		return nil, ctx.Err()
	case 1:
		return nil, errors.New("connection refused")
	}
	return *s.owner.Load(), nil
}

// A write whose owner check was stale read instance.json with the
// caller's context while holding the lock every writer waited on, and a
// failed check did not count: with the server hung a close stayed in D
// state for minutes, with it refusing every small write paid seconds. Now
// a check is bounded, runs by itself, counts when it fails, and writes do
// not wait on a server that did not answer; a take-over is still seen once
// it answers.
func TestOwnerCheckNeverHoldsWrites(t *testing.T) {
	root := filepath.Join(t.TempDir(), "storage")
	local, err := storage.CreateLocal(root)
	if err != nil {
		t.Fatal(err)
	}
	srv := &ownerServer{Backend: local}
	a := instance.New(instance.Settings{Name: "a", ID: "a-id", Storage: root}, nil, local, nil)
	w := a.WatchOwner(srv, 20*time.Millisecond, nil)
	g := w.Guard(local)
	var slowest, total time.Duration
	for _, mode := range []int32{0, 1} {
		srv.mode.Store(mode)
		for i := 0; i < 20; i++ {
			time.Sleep(25 * time.Millisecond) // the last check is stale
			ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
			t0 := time.Now()
			err := g.Put(ctx, "x", []byte("x"))
			d := time.Since(t0)
			cancel()
			if err != nil {
				t.Fatalf("mode %d write %d: %v", mode, i, err)
			}
			slowest, total = max(slowest, d), total+d
		}
	}
	// One write may wait for one bounded check (the first after the server
	// went away); none waits longer, and together they take about that.
	if slowest > 4*time.Second || total > 5*time.Second {
		t.Fatalf("writes with the owner check failing: slowest %v, all %v", slowest, total)
	}
	b, _ := json.Marshal(instance.Owner{ID: "b-id", Name: "b"})
	srv.owner.Store(&b)
	srv.mode.Store(2)
	deadline := time.Now().Add(5 * time.Second)
	for {
		time.Sleep(25 * time.Millisecond)
		err := g.Put(context.Background(), "x", []byte("x"))
		if errors.Is(err, instance.ErrStorageTaken) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("write after a take-over, the server answering again: %v", err)
		}
	}
}
