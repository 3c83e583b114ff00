package stage

import (
	"context"

	"github.com/lamina-bio/lamina/catalog"
)

// Lineage: a version committed for a tracked process carries the uid of
// its run (catalog.NewVersion.Run).

type runKey struct{}

// WithRun returns ctx carrying run: what commitFile (CommitPath, say)
// records as the new version's run. An empty run leaves ctx as it is.
func WithRun(ctx context.Context, run string) context.Context {
	if run == "" {
		return ctx
	}
	return context.WithValue(ctx, runKey{}, run)
}

func runOf(ctx context.Context) string {
	s, _ := ctx.Value(runKey{}).(string)
	return s
}

type closerKey struct{}

// ByCloser returns ctx saying that a commit made with it is the close of
// one writer whose run is run ("" for an untracked process): a File that
// appenders share commits each close for the writer that closed, not for
// whichever of them opened it last.
func ByCloser(ctx context.Context, run string) context.Context {
	return context.WithValue(ctx, closerKey{}, run)
}

// runFor is the run a commit of f with ctx credits: the closing writer's
// (ByCloser), else the run f was last given.
func (f *File) runFor(ctx context.Context) string {
	if run, ok := ctx.Value(closerKey{}).(string); ok {
		return run
	}
	return f.run
}

// SetRun credits the versions f commits from now on to run.
func (f *File) SetRun(run string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.run = run
}

// Base returns the committed version whose bytes f holds: the version an
// open without O_TRUNC copies on write (an append's previous content), or
// the version f's last commit made. ok is false when f holds none (a new
// key, a File truncated to zero: an O_TRUNC open).
func (f *File) Base() (v catalog.Version, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.observe()
	if f.base == nil || f.base.UID == "" || f.copied && f.size == 0 {
		return catalog.Version{}, false
	}
	return *f.base, true
}

// Emptied counts f's truncations to zero: a writer that saw Base compares
// the count at its commit to tell whether the bytes it started from are
// still there (the kernel sends an open's O_TRUNC as a truncation after
// the open).
func (f *File) Emptied() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.emptied
}

// Moved counts f's moves onto a newer version of its key another writer
// committed (a clean File follows it): the bytes a writer saw at its open
// are gone from f once the count changed.
func (f *File) Moved() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.moved
}

type builtOnKey struct{}

// WithBuiltOn returns ctx under which a commit of a File calls fn with the
// committed version whose bytes the new version holds (its base, unless
// emptied since), while it holds the File: fn must not block. Appenders
// share a File, so the base of a writer's close is the version another's
// close made after the writer opened, not the one it opened on.
func WithBuiltOn(ctx context.Context, fn func(catalog.Version)) context.Context {
	return context.WithValue(ctx, builtOnKey{}, fn)
}

// builtOn is f's base that a commit now builds on: what Base says,
// unless f was emptied since the base was set. Called with f.mu.
func (f *File) builtOn() (catalog.Version, bool) {
	if f.base == nil || f.base.UID == "" || f.rewritten || f.copied && f.size == 0 {
		return catalog.Version{}, false
	}
	return *f.base, true
}
