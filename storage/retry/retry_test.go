package retry_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/storage"
	"github.com/lamina-bio/lamina/storage/retry"
)

// stub is a backend whose reads either hang until their context ends or
// trickle bytes, reporting each piece (as storage/s3 does).
type stub struct {
	storage.Backend
	trickle time.Duration // 0: hang; else deliver 10 pieces this far apart
}

type timeoutErr struct{ error }

func (timeoutErr) Retryable() bool { return true }
func (e timeoutErr) Unwrap() error { return e.error }

func (s stub) GetRange(ctx context.Context, name string, off, n int64) ([]byte, error) {
	if s.trickle == 0 {
		<-ctx.Done()
		return nil, timeoutErr{fmt.Errorf("get %s: %w", name, context.Cause(ctx))}
	}
	for i := 0; i < 10; i++ {
		select {
		case <-time.After(s.trickle):
			storage.Progress(ctx, int(n/10))
		case <-ctx.Done():
			return nil, timeoutErr{fmt.Errorf("get %s: %w", name, context.Cause(ctx))}
		}
	}
	return make([]byte, n), nil
}

func (stub) String() string { return "stub" }

// TestBudgetIsTimeWithoutProgress: the retry budget bounds the time
// without progress, not the call: a read that keeps receiving bytes for
// longer than the budget succeeds (at 256 KiB/s the mount's 8 MiB ranges
// outlasted the budget and failed, audit 7), also while the storage is
// known to be away, and says the storage answers; a read that receives
// nothing fails within the budget, and within the shorter Away budget once
// the storage is known to be away (TestReadsFailFastWhileAway).
func TestBudgetIsTimeWithoutProgress(t *testing.T) {
	p := retry.Policy{Attempts: 3, Base: time.Millisecond, Max: 5 * time.Millisecond, Elapsed: 600 * time.Millisecond, Away: 200 * time.Millisecond}
	ctx := context.Background()
	slow := retry.New(stub{trickle: 100 * time.Millisecond}, p, nil) // 1 s in all
	hung := retry.New(stub{}, p, nil)
	t.Run("slowSucceeds", func(t *testing.T) {
		start := time.Now()
		if _, err := slow.GetRange(ctx, "x", 0, 64<<10); err != nil {
			t.Fatalf("a read that trickles for %v: %v", time.Since(start).Round(time.Millisecond), err)
		}
	})
	t.Run("hungFailsWithinBudget", func(t *testing.T) {
		start := time.Now()
		_, err := hung.GetRange(ctx, "x", 0, 64<<10)
		if d := time.Since(start); err == nil || !errors.Is(err, context.DeadlineExceeded) || d > time.Second {
			t.Fatalf("a hung read: %v after %v, want a timeout within the 600 ms budget", err, d)
		}
		if !hung.Health().Failing {
			t.Fatal("health after a hung read spent its budget: not failing")
		}
	})
	t.Run("readsFailFastWhileAway", func(t *testing.T) {
		start := time.Now()
		if _, err := hung.GetRange(ctx, "x", 0, 64<<10); err == nil {
			t.Fatal("a hung read succeeded")
		}
		if d := time.Since(start); d > 450*time.Millisecond {
			t.Fatalf("a hung read while away failed after %v, want about the 200 ms Away budget", d)
		}
	})
	t.Run("slowWhileAwaySucceeds", func(t *testing.T) {
		slow.Failed(errors.New("away"))
		if _, err := slow.GetRange(ctx, "x", 0, 64<<10); err != nil {
			t.Fatalf("a read that trickles while the storage is known to be away: %v", err)
		}
		if h := slow.Health(); h.Failing {
			t.Fatalf("health after a slow read that succeeded: %+v", h)
		}
	})
}

// sdkLike is a storage that hangs until the context ends and then fails
// as the AWS SDK does: "context canceled", not worth a retry.
type sdkLike struct{ storage.Backend }

type sdkErr struct{ error }

func (sdkErr) Retryable() bool { return false }
func (e sdkErr) Unwrap() error { return e.error }
func (sdkLike) String() string { return "sdk-like" }
func (sdkLike) hang(ctx context.Context) error {
	<-ctx.Done()
	return sdkErr{fmt.Errorf("operation error S3: canceled, %w", ctx.Err())}
}

func (s sdkLike) Get(ctx context.Context, name string) ([]byte, error) { return nil, s.hang(ctx) }
func (s sdkLike) GetRange(ctx context.Context, name string, off, n int64) ([]byte, error) {
	return nil, s.hang(ctx)
}
func (s sdkLike) Stat(ctx context.Context, name string) (storage.Info, error) {
	return storage.Info{}, s.hang(ctx)
}
func (s sdkLike) Delete(ctx context.Context, name string) error        { return s.hang(ctx) }
func (s sdkLike) Put(ctx context.Context, name string, b []byte) error { return s.hang(ctx) }

// TestCutIsATimeout: an attempt that the budget cuts fails as a timeout,
// and the storage is noted as not answering, whatever the backend made of
// the cancel. The SDK says "context canceled": the call returned that, the
// health said "answering", and the mount answered the READ with EINTR,
// which a reader (Go's ReadAt, many tools) retries: a read of an uncached
// file against a hung server never ended (TestS3HungServer).
func TestCutIsATimeout(t *testing.T) {
	ctx := context.Background()
	for _, op := range []string{"get", "get range", "get range into", "stat", "delete", "put"} {
		r := retry.New(sdkLike{}, retry.Policy{Attempts: 3, Base: time.Millisecond, Max: time.Millisecond, Elapsed: 100 * time.Millisecond}, nil)
		done := make(chan error, 1)
		go func() {
			var err error
			switch op {
			case "get":
				_, err = r.Get(ctx, "o")
			case "get range":
				_, err = r.GetRange(ctx, "o", 0, 10)
			case "get range into":
				err = r.GetRangeInto(ctx, "o", 0, make([]byte, 10))
			case "stat":
				_, err = r.Stat(ctx, "o")
			case "delete":
				err = r.Delete(ctx, "o")
			case "put":
				err = r.Put(ctx, "o", []byte("x"))
			}
			done <- err
		}()
		select {
		case err := <-done:
			if errors.Is(err, context.Canceled) || !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, storage.ErrStalled) {
				t.Errorf("%s cut by the budget: %v, want a timeout (storage.ErrStalled), not a cancel", op, err)
			}
			if !r.Health().Failing {
				t.Errorf("%s cut by the budget left the health answering", op)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s of a hung storage still runs after 10 s (budget 100 ms)", op)
		}
	}
}
