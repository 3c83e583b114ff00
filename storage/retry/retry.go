// Package retry is a storage.Backend decorator that retries failed calls
// with exponential backoff and full jitter, for as long as the error is
// worth another try and the budget (attempts and time without progress)
// allows.
//
// Which errors are worth it is the wrapped backend's to say: an error that
// has a `Retryable() bool` method returning true (storage/s3's errors do for
// 5xx, 429, throttling, resets, timeouts, truncated bodies). Missing objects,
// denied requests and the caller's cancelled context are never retried.
package retry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lamina-bio/lamina/storage"
)

// Policy is the retry budget.
type Policy struct {
	Attempts int           // total attempts, at least 1
	Base     time.Duration // first backoff ceiling
	Max      time.Duration // backoff ceiling cap
	// Elapsed: give up after this much time without progress (bytes
	// received; for a write, since the start) in all attempts (0: no limit).
	Elapsed time.Duration
	// Away replaces Elapsed for reads while the storage is known to be
	// away (Health.Failing: a call already spent its budget, or the mount
	// started without it): a read then fails in seconds rather than a
	// minute, and the first answer restores the full budget. 0: Elapsed.
	Away time.Duration
}

// DefaultPolicy gives a call a minute without progress: 8 attempts,
// backoff ceilings 100 ms, 200 ms, … capped at 8 s; 5 s without progress
// for a read while the storage is known to be away.
var DefaultPolicy = Policy{Attempts: 8, Base: 100 * time.Millisecond, Max: 8 * time.Second, Elapsed: time.Minute, Away: 5 * time.Second}

// Backend retries the calls of the backend it wraps. It is safe for
// concurrent use if the wrapped backend is.
type Backend struct {
	b   storage.Backend
	p   Policy
	log *slog.Logger

	mu     sync.Mutex
	health Health
	// answered is when the storage last answered (a call that got an
	// answer, bytes received, a probe's answer); probed when the last
	// probe ended; probing is closed when the probe in flight ends.
	answered, probed time.Time
	probing          chan struct{}
}

// Health is what the last calls said of the storage: `lamina status` shows
// it, so that a user sees an outage before the EIOs it causes.
type Health struct {
	Failing   bool      `json:"failing"`
	Since     time.Time `json:"since,omitzero"` // the first failure since it last answered
	LastError string    `json:"last_error,omitempty"`
	// LastAnswer is when the storage last answered (zero: not since the
	// start); Checked when Probe last asked it.
	LastAnswer time.Time `json:"last_answer,omitzero"`
	Checked    time.Time `json:"checked,omitzero"`
}

// Health returns what the last calls said.
func (r *Backend) Health() Health {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.healthLocked()
}

func (r *Backend) healthLocked() Health {
	h := r.health
	h.LastAnswer, h.Checked = r.answered, r.probed
	return h
}

// Probe makes the health current: when the storage has not answered for
// maxAge and was not probed for as long, it asks it with check, bounded by
// timeout, and notes the outcome. Callers share the probe in flight (never
// more than one), each waiting for it at most until its ctx ends. The
// health is otherwise what the last calls said: with nothing but hung
// uploads in flight (a server stopped) it said "answering" for as long as
// their timeouts, 15 s and more.
func (r *Backend) Probe(ctx context.Context, maxAge, timeout time.Duration, check func(context.Context) error) Health {
	r.mu.Lock()
	ch := r.probing
	if ch == nil {
		if time.Since(r.answered) < maxAge || time.Since(r.probed) < maxAge {
			defer r.mu.Unlock()
			return r.healthLocked()
		}
		ch = make(chan struct{})
		r.probing = ch
		// Not the caller's ctx: one caller's going spoils no other's.
		go r.probe(ch, timeout, check)
	}
	r.mu.Unlock()
	select {
	case <-ch:
	case <-ctx.Done():
	}
	return r.Health()
}

func (r *Backend) probe(done chan struct{}, timeout time.Duration, check func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	err := check(ctx)
	if err != nil && ctx.Err() != nil {
		err = noAnswer(timeout)
	}
	cancel()
	r.note(context.Background(), err)
	r.mu.Lock()
	r.probed, r.probing = time.Now(), nil
	r.mu.Unlock()
	close(done)
}

// Away reports whether the storage is known not to answer now
// (Health.Failing): callers that can decide without it (the content
// store's dedup checks in a close) do not wait for it then.
func (r *Backend) Away() bool { return r.Health().Failing }

// Failed notes a failure seen outside the Backend's calls (a mount that
// started while the server was away).
func (r *Backend) Failed(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.health.Failing {
		r.health = Health{Failing: true, Since: time.Now()}
	}
	r.health.LastError = err.Error()
}

// note updates the health after a call that ended with err: any answer,
// even "no such object", says the storage is there. A call that timed out
// (an attempt's deadline, the retry budget's, or the caller's) says it is
// not answering; only a call the caller cancelled says nothing.
func (r *Backend) note(ctx context.Context, err error) {
	switch {
	case err == nil || (!Retryable(err) && !storage.IsUnreachable(err) && !errors.Is(err, context.DeadlineExceeded)):
		r.answering()
	case !errors.Is(ctx.Err(), context.Canceled):
		r.Failed(err)
	}
}

// answering notes that the storage sent bytes: a slow server that
// answers is not "not answering", whatever its calls' outcome.
func (r *Backend) answering() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.health, r.answered = Health{}, time.Now()
}

var (
	_ storage.Backend     = (*Backend)(nil)
	_ storage.RangeFiller = (*Backend)(nil)
)

type failFastKey struct{}

// FailFast makes the calls made with ctx fail at the first attempt that
// finds the storage unreachable (a refused or reset connection, no route,
// a name that does not resolve: storage.IsUnreachable) instead of spending
// the retry budget on it: for a reader with a local copy to fall back on
// (the ontology registry), seconds of retries before using the copy are
// worse than the copy. Other failures are retried as usual.
func FailFast(ctx context.Context) context.Context {
	return context.WithValue(ctx, failFastKey{}, true)
}

func failingFast(ctx context.Context) bool {
	ff, _ := ctx.Value(failFastKey{}).(bool)
	return ff
}

// New wraps b. A nil log discards the retry log lines.
func New(b storage.Backend, p Policy, log *slog.Logger) *Backend {
	if p.Attempts < 1 {
		p.Attempts = 1
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Backend{b: b, p: p, log: log}
}

// Unwrap returns the wrapped backend.
func (r *Backend) Unwrap() storage.Backend { return r.b }

type retryable interface{ Retryable() bool }

// Retryable reports whether err says another attempt may succeed.
func Retryable(err error) bool {
	var re retryable
	return errors.As(err, &re) && re.Retryable()
}

// noCut is the size of a call whose attempts the budget does not cut: a
// listing of any length, whose pages have deadlines of their own and whose
// caller's work between pages is no sign of a hung server.
const noCut = -1

// elapsed is how long a call may go on without progress: the policy's
// Elapsed, or Away for a read while the storage is known to be away (a
// user's `cat` of an uncached file waited a minute for its EIO while
// `lamina status` already said the storage was not answering).
func (r *Backend) elapsed(write bool) time.Duration {
	if !write && r.p.Away > 0 && r.p.Away < r.p.Elapsed && r.Health().Failing {
		return r.p.Away
	}
	return r.p.Elapsed
}

// budget is how long a call that moves n bytes may go on without
// progress: its elapsed, plus, for a write, what storage/s3 gives one
// request for its bytes (4 s per MiB written: a PUT reports no progress,
// so its budget counts from its start). A read reports the bytes it
// receives (storage.Progress), and each one starts its budget again: a
// slow link that moves bytes never spends it, a server that stops does.
func budget(elapsed time.Duration, n int64, write bool) time.Duration {
	if write {
		return elapsed + time.Duration(n)*4*time.Second/(1<<20)
	}
	return elapsed
}

// noAnswer is a probe's timeout: a stalled call (storage.ErrStalled),
// said plainly (the SDK's text is "operation error S3: HeadBucket, https
// response error StatusCode: 0, … context deadline exceeded").
type noAnswer time.Duration

func (e noAnswer) Error() string {
	return fmt.Sprintf("a check of the storage got no answer within %v", time.Duration(e))
}
func (e noAnswer) Unwrap() error { return storage.ErrStalled }

// cutError is the error of an attempt that the budget cut: a timeout,
// whatever the backend made of the cancel. The
// AWS SDK hands a cancelled request up as "context canceled", which reads
// as the caller's own cancel: the mount answered it with EINTR, a reader
// retried the READ, and a read against a hung server never ended (each
// try cut by the budget, none noted as a failure).
type cutError struct {
	cause error // the budget's: wraps storage.ErrStalled
	err   error // the attempt's, for the message only
}

func (e cutError) Error() string   { return fmt.Sprintf("%v (%v)", e.cause, e.err) }
func (e cutError) Unwrap() error   { return e.cause } // not err: it may say "canceled"
func (e cutError) Retryable() bool { return true }    // a timeout: the storage is not answering

// do calls fn until it succeeds, fails for good, or the budget is spent.
// The budget bounds the time without progress (bytes received, reported
// through storage.Progress) across all attempts: fn gets a context that
// ends when it is spent, so an attempt in flight (a hung server) is cut
// at its end instead of running out its own request timeout, and fails
// as a timeout (cutError), while one that keeps receiving bytes goes on
// however long it takes. n is what the call moves (budget), or noCut.
// Bytes received also say the storage answers (Health).
func (r *Backend) do(ctx context.Context, op, name string, n int64, fn func(context.Context) error) error {
	start := time.Now()
	var last atomic.Int64 // UnixNano of the last progress
	last.Store(start.UnixNano())
	idle := func() time.Duration { return time.Since(time.Unix(0, last.Load())) }
	actx := ctx
	elapsed := r.elapsed(op == "put")
	if elapsed > 0 && n != noCut {
		allow := budget(elapsed, n, op == "put")
		var cancel context.CancelCauseFunc
		actx, cancel = context.WithCancelCause(ctx)
		var t *time.Timer
		t = time.AfterFunc(allow, func() {
			if d := idle(); d < allow {
				t.Reset(allow - d)
				return
			}
			cancel(fmt.Errorf("retry budget spent, %v without progress: %w", allow, storage.ErrStalled))
		})
		defer func() { t.Stop(); cancel(nil) }()
	}
	var answered atomic.Bool
	actx = storage.WithProgress(actx, func(int) {
		last.Store(time.Now().UnixNano())
		if !answered.Swap(true) {
			r.answering()
		}
	})
	var err error
	for i := 0; ; i++ {
		err = fn(actx)
		if c := context.Cause(actx); err != nil && ctx.Err() == nil && c != nil && !errors.Is(err, c) {
			err = cutError{c, err}
		}
		if err == nil || !Retryable(err) || ctx.Err() != nil || (storage.IsUnreachable(err) && failingFast(ctx)) {
			r.note(ctx, err)
			if err != nil && i > 0 {
				r.log.Error("storage call failed", "op", op, "name", name, "attempts", i+1, "err", err)
			}
			return err
		}
		if i+1 >= r.p.Attempts || actx.Err() != nil || (elapsed > 0 && idle() >= elapsed) {
			r.log.Error("storage call failed; retry budget spent", "op", op, "name", name, "attempts", i+1, "elapsed", time.Since(start).Round(time.Millisecond), "err", err)
			r.note(ctx, err)
			return err
		}
		ceil := r.p.Base << i
		if ceil > r.p.Max || ceil <= 0 {
			ceil = r.p.Max
		}
		wait := time.Duration(rand.Int64N(int64(ceil) + 1)) // full jitter
		r.log.Warn("storage call failed; retrying", "op", op, "name", name, "attempt", i+1, "wait", wait.Round(time.Millisecond), "err", err)
		t := time.NewTimer(wait)
		select {
		case <-actx.Done():
			t.Stop()
			r.log.Error("storage call failed; retry budget spent", "op", op, "name", name, "attempts", i+1, "elapsed", time.Since(start).Round(time.Millisecond), "err", err)
			r.note(ctx, err)
			return err
		case <-t.C:
		}
	}
}

func (r *Backend) Put(ctx context.Context, name string, data []byte) error {
	return r.do(ctx, "put", name, int64(len(data)), func(ctx context.Context) error { return r.b.Put(ctx, name, data) })
}

func (r *Backend) Get(ctx context.Context, name string) (data []byte, err error) {
	err = r.do(ctx, "get", name, 0, func(ctx context.Context) (err error) { data, err = r.b.Get(ctx, name); return err })
	return data, err
}

// GetRange reads a new buffer through GetRangeInto, so that a range that
// fails after some bytes is resumed, not started over.
func (r *Backend) GetRange(ctx context.Context, name string, off, n int64) (data []byte, err error) {
	if n <= 0 {
		err = r.do(ctx, "get range", name, 0, func(ctx context.Context) (err error) { data, err = r.b.GetRange(ctx, name, off, n); return err })
		return data, err
	}
	data = make([]byte, n)
	if err := r.GetRangeInto(ctx, name, off, data); err != nil {
		return nil, err
	}
	return data, nil
}

// GetRangeInto retries a read into buf, straight into it when the wrapped
// backend can (storage.RangeFiller).
//
// An attempt that fails after some bytes landed leaves them: the next one
// asks only for the rest (a RangeFiller reports the bytes of buf it
// filled, in order: storage.WithProgress), so on a slow link a retry does
// not start a long range over.
func (r *Backend) GetRangeInto(ctx context.Context, name string, off int64, buf []byte) error {
	_, filler := r.b.(storage.RangeFiller)
	done := 0
	return r.do(ctx, "get range", name, int64(len(buf)), func(ctx context.Context) error {
		got := 0
		if filler {
			ctx = storage.WithProgress(ctx, func(n int) { got += n })
		}
		err := storage.GetRangeInto(ctx, r.b, name, off+int64(done), buf[done:])
		if err != nil && filler && got > 0 && done+got < len(buf) {
			done += got
		}
		return err
	})
}

func (r *Backend) Stat(ctx context.Context, name string) (info storage.Info, err error) {
	err = r.do(ctx, "stat", name, 0, func(ctx context.Context) (err error) { info, err = r.b.Stat(ctx, name); return err })
	return info, err
}

func (r *Backend) Delete(ctx context.Context, name string) error {
	return r.do(ctx, "delete", name, 0, func(ctx context.Context) error { return r.b.Delete(ctx, name) })
}

// List retries a listing that failed, even after some pages: the new
// listing skips the objects fn has seen, so none is shown twice (a gc on
// S3 failed for good on one 500 in its listing). An error from fn stops
// the listing and is not retried.
func (r *Backend) List(ctx context.Context, prefix string, fn func(storage.Info) error) error {
	seen := map[string]bool{}
	return r.do(ctx, "list", prefix, noCut, func(ctx context.Context) error {
		return r.b.List(ctx, prefix, func(i storage.Info) error {
			if seen[i.Name] {
				return nil
			}
			if err := fn(i); err != nil {
				return noRetry{err}
			}
			seen[i.Name] = true
			return nil
		})
	})
}

type noRetry struct{ error }

func (e noRetry) Unwrap() error   { return e.error }
func (e noRetry) Retryable() bool { return false }

func (r *Backend) Sync(ctx context.Context) error {
	return r.do(ctx, "sync", "", 0, func(ctx context.Context) error { return r.b.Sync(ctx) })
}

func (r *Backend) String() string { return r.b.String() }

// GetTag retries the wrapped Swapper's GetTag; it is there only when the
// wrapped backend (or one under it) is a Swapper.
func (r *Backend) GetTag(ctx context.Context, name string) (data []byte, tag string, err error) {
	s, ok := storage.FindSwapper(r.b)
	if !ok {
		return nil, "", errNoSwap
	}
	err = r.do(ctx, "get", name, 0, func(ctx context.Context) (err error) { data, tag, err = s.GetTag(ctx, name); return err })
	return data, tag, err
}

// PutIf retries the wrapped Swapper's PutIf. A retry after an attempt
// that stored the object but lost the answer gets ErrChanged: the caller
// reads again and finds its own write.
func (r *Backend) PutIf(ctx context.Context, name string, data []byte, tag string) error {
	s, ok := storage.FindSwapper(r.b)
	if !ok {
		return errNoSwap
	}
	return r.do(ctx, "put", name, int64(len(data)), func(ctx context.Context) error { return s.PutIf(ctx, name, data, tag) })
}

var errNoSwap = fmt.Errorf("storage: this backend cannot replace an object conditionally: %w", errors.ErrUnsupported)
