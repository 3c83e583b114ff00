package storage

import (
	"context"
	"fmt"
)

// ErrStalled means a transfer moved no byte for longer than it was
// allowed: a server that stopped answering, not one that answers slowly.
// It wraps context.DeadlineExceeded, so it counts as a timeout.
var ErrStalled = fmt.Errorf("storage: no progress: %w", context.DeadlineExceeded)

type progressKey struct{}

// WithProgress returns a context whose transfers report the bytes they
// move to fn (and to any function of ctx's, after fn). A backend calls
// Progress from the goroutine that reads or writes; fn must be cheap.
// A RangeFiller reports the bytes of GetRangeInto as they land in buf,
// in order, so that after a failure the bytes reported so far are the
// first bytes of buf (storage/retry resumes a range from there).
func WithProgress(ctx context.Context, fn func(n int)) context.Context {
	if parent, ok := ctx.Value(progressKey{}).(func(int)); ok {
		inner := fn
		fn = func(n int) { inner(n); parent(n) }
	}
	return context.WithValue(ctx, progressKey{}, fn)
}

// Progress tells ctx's WithProgress functions that n bytes moved, and its
// WithLanding function that they landed in the caller's buffer.
func Progress(ctx context.Context, n int) {
	if n <= 0 {
		return
	}
	if fn, ok := ctx.Value(progressKey{}).(func(int)); ok {
		fn(n)
	}
	if fn, ok := ctx.Value(landingKey{}).(func(int)); ok && fn != nil {
		fn(n)
	}
}

type landingKey struct{}

// WithLanding returns a context whose GetRangeInto (of a RangeFiller)
// tells fn how many more bytes of buf have landed, in order from its
// start, as they arrive: the disk cache answers a reader from a span
// still being fetched once the reader's bytes are in (docs/design.md).
// Unlike WithProgress, fn is told only of bytes already in buf.
func WithLanding(ctx context.Context, fn func(n int)) context.Context {
	return context.WithValue(ctx, landingKey{}, fn)
}

// withoutLanding hides ctx's WithLanding function from a transfer whose
// bytes do not land in the caller's buffer (they are copied there after).
func withoutLanding(ctx context.Context) context.Context {
	return context.WithValue(ctx, landingKey{}, (func(int))(nil))
}

// landed tells ctx's WithLanding function that n bytes landed.
func landed(ctx context.Context, n int) {
	if fn, ok := ctx.Value(landingKey{}).(func(int)); ok && fn != nil && n > 0 {
		fn(n)
	}
}
