package stage

import "context"

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

// SetRun credits the versions f commits from now on to run.
func (f *File) SetRun(run string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.run = run
}
