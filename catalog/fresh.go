package catalog

import "context"

type freshKey struct{}

// Fresh marks ctx for reads that a write will build on (the version a
// copy-on-write open copies, say): a store that caches lookups must answer
// them from its database, not from its cache, which may lag another
// workstation's commit by the time its notification takes.
func Fresh(ctx context.Context) context.Context {
	return context.WithValue(ctx, freshKey{}, true)
}

// IsFresh reports whether ctx was marked by Fresh.
func IsFresh(ctx context.Context) bool {
	fresh, _ := ctx.Value(freshKey{}).(bool)
	return fresh
}
