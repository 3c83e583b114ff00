package retry_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/storage"
	"github.com/lamina-bio/lamina/storage/retry"
)

// hung is a storage whose reads hang until their context ends, while down
// is set, and answer otherwise: a server that stopped answering.
type hung struct {
	storage.Backend
	down atomic.Bool
}

func (h *hung) GetRange(ctx context.Context, name string, off, n int64) ([]byte, error) {
	if h.down.Load() {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return h.Backend.GetRange(ctx, name, off, n)
}

// TestReadsFailFastWhileAway: once a read has spent its whole budget, the
// storage is known to be away and the next reads give up after Away; the
// first answer restores the full budget. A `cat` of an uncached file took
// the full minute each time while `lamina status` said "not answering".
func TestReadsFailFastWhileAway(t *testing.T) {
	ctx := context.Background()
	local, err := storage.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := local.Put(ctx, "o", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	h := &hung{Backend: local}
	const elapsed, away = 1500 * time.Millisecond, 200 * time.Millisecond
	r := retry.New(h, retry.Policy{Attempts: 5, Base: 10 * time.Millisecond, Max: 50 * time.Millisecond, Elapsed: elapsed, Away: away}, nil)
	read := func() (time.Duration, error) {
		start := time.Now()
		_, err := r.GetRange(ctx, "o", 0, 5)
		return time.Since(start), err
	}

	h.down.Store(true)
	if d, err := read(); err == nil || d < elapsed {
		t.Fatalf("first read of a hung storage: %v after %v, want an error after the whole budget (%v)", err, d, elapsed)
	}
	if !r.Health().Failing {
		t.Fatal("a read that spent its budget left the health answering")
	}
	if d, err := read(); err == nil || d >= elapsed {
		t.Fatalf("read while the storage is known away: %v after %v, want an error within %v", err, d, away)
	}

	h.down.Store(false)
	if _, err := read(); err != nil {
		t.Fatalf("read once the storage answers again: %v", err)
	}
	if r.Health().Failing {
		t.Fatal("an answer left the health failing")
	}
	h.down.Store(true)
	if d, err := read(); err == nil || d < elapsed {
		t.Fatalf("read after the storage came back and hung again: %v after %v, want the whole budget (%v) again", err, d, elapsed)
	}
}

// flakyList fails its first listing after two objects, as a server that
// answers one page and then a 500.
type flakyList struct {
	storage.Backend
	failed atomic.Bool
}

type retryableErr struct{}

func (retryableErr) Error() string   { return "503 Slow Down" }
func (retryableErr) Retryable() bool { return true }

func (f *flakyList) List(ctx context.Context, prefix string, fn func(storage.Info) error) error {
	n := 0
	return f.Backend.List(ctx, prefix, func(i storage.Info) error {
		if n++; n == 3 && !f.failed.Swap(true) {
			return retryableErr{}
		}
		return fn(i)
	})
}

// TestListRetriedAfterAPage: a listing that fails after some objects is
// retried, and every object is shown once. It failed for good, so a gc on
// S3 gave up on one 500.
func TestListRetriedAfterAPage(t *testing.T) {
	ctx := context.Background()
	local, err := storage.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"p/a", "p/b", "p/c", "p/d", "p/e"} {
		if err := local.Put(ctx, n, []byte(n)); err != nil {
			t.Fatal(err)
		}
	}
	r := retry.New(&flakyList{Backend: local}, retry.Policy{Attempts: 3, Base: time.Millisecond, Max: time.Millisecond, Elapsed: 5 * time.Second}, nil)
	got := map[string]int{}
	if err := r.List(ctx, "p/", func(i storage.Info) error { got[i.Name]++; return nil }); err != nil {
		t.Fatalf("List after one failed page: %v", err)
	}
	if len(got) != 5 {
		t.Fatalf("listed %v, want the 5 objects", got)
	}
	for n, k := range got {
		if k != 1 {
			t.Fatalf("%s listed %d times", n, k)
		}
	}
}
