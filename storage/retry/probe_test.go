package retry_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/storage"
	"github.com/lamina-bio/lamina/storage/retry"
)

// TestProbeSeesAStoppedStorage: the health was what the last calls said,
// so with a server stopped (SIGSTOP) and only hung uploads in flight,
// `lamina status` said "answering" until their timeouts. Probe asks the
// storage once the last answer is older than maxAge, one probe for all
// callers, bounded, and notes what it found; an answer clears it again.
func TestProbeSeesAStoppedStorage(t *testing.T) {
	ctx := context.Background()
	local, err := storage.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r := retry.New(local, retry.Policy{Attempts: 1}, nil)
	if err := r.Put(ctx, "o", []byte("x")); err != nil {
		t.Fatal(err)
	}
	var checks atomic.Int32
	var stopped atomic.Bool
	release := make(chan struct{})
	check := func(ctx context.Context) error {
		checks.Add(1)
		if stopped.Load() {
			select { // a stopped server: nothing comes back
			case <-ctx.Done():
				return ctx.Err()
			case <-release:
			}
		}
		return nil
	}

	// Answered just now: no probe.
	if h := r.Probe(ctx, time.Hour, time.Second, check); h.Failing || h.LastAnswer.IsZero() || checks.Load() != 0 {
		t.Fatalf("right after an answer: %+v, %d checks; want answering, no check", h, checks.Load())
	}

	// Stopped, and no answer since the start: callers at once share one
	// probe, which ends at its bound; those that come after it see its
	// answer (it ended less than maxAge ago).
	r = retry.New(local, retry.Policy{Attempts: 1}, nil)
	stopped.Store(true)
	var wg sync.WaitGroup
	hs := make([]retry.Health, 8)
	for i := range hs {
		wg.Add(1)
		go func() { defer wg.Done(); hs[i] = r.Probe(ctx, time.Hour, 300*time.Millisecond, check) }()
	}
	wg.Wait()
	if n := checks.Load(); n != 1 {
		t.Errorf("8 callers made %d checks; want them to share one", n)
	}
	for _, h := range hs {
		if !h.Failing || !strings.Contains(h.LastError, "no answer within 300ms") || h.Checked.IsZero() {
			t.Fatalf("probe of a stopped storage: %+v; want failing with a plain \"no answer\"", h)
		}
	}
	if !r.Away() {
		t.Error("a failed probe left the storage known to answer: reads keep the whole budget")
	}

	// A caller whose ctx ends first returns what is known; the probe goes on.
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	h := r.Probe(cctx, 0, time.Minute, check)
	cancel()
	if !h.Failing {
		t.Errorf("a caller that stopped waiting: %+v; want the failure known", h)
	}
	stopped.Store(false)
	close(release) // the server answers the probe in flight
	deadline := time.Now().Add(10 * time.Second)
	for r.Away() {
		if time.Now().After(deadline) {
			t.Fatal("the probe's answer did not clear the failure in 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}

	// A refused connection is noted at once, with its error.
	refused := errors.Join(errors.New("cannot reach endpoint"), storage.ErrStalled)
	if h := r.Probe(ctx, 0, time.Second, func(context.Context) error { return refused }); !h.Failing || !strings.Contains(h.LastError, "cannot reach endpoint") {
		t.Errorf("probe refused: %+v", h)
	}
}
