package main

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/instance"
	"github.com/lamina-bio/lamina/stage"
	"github.com/lamina-bio/lamina/storage"
)

// mountWrites sets up the write side of a mount: the staging folder in the
// instance's data dir, with whatever a killed daemon left in it committed
// or kept under lost+found/ before the mount serves; and the queue of
// tombstones of purged temporaries, with what an earlier daemon left in it.
func mountWrites(ctx context.Context, s instance.Settings, cat catalog.Catalog, b storage.Backend, store *cache.Store, log *slog.Logger) (*stage.Stage, *instance.Tombstones, error) {
	in := instance.New(s, cat, nil, store)
	// A purged temporary's tombstone is logged in the data dir before the
	// purge and goes to storage in the background: its storage write must
	// not hold the rename (a FUSE request) that purged it, and must
	// survive an unmount, a kill and a storage outage.
	tombs, err := instance.OpenTombstones(s.TombstoneDir(), cat, b, log)
	if err != nil {
		return nil, nil, err
	}
	if err := tombs.Recover(); err != nil {
		return nil, nil, err
	}
	st, err := stage.New(cat, store, stage.Options{Dir: s.StagingDir(), User: in.User, Logger: log, Tombstones: tombs,
		// close commits; durability follows within 2 s, at fsync and at
		// unmount (docs/write-bench.md).
		SyncEvery: 2 * time.Second, RetryFailed: retryFailedEvery()})
	if err != nil {
		return nil, nil, err
	}
	// Recover logs each file it commits or keeps under lost+found/.
	if _, err := st.Recover(ctx); err != nil {
		return nil, nil, err
	}
	tombs.Start()
	return st, tombs, nil
}

// scratchPatterns are the instance's scratch patterns or the defaults.
func scratchPatterns(s instance.Settings) []string {
	if s.Scratch != nil {
		return s.Scratch
	}
	return stage.DefaultScratch
}

// retryFailedEvery is the first wait before a close whose commit failed is
// committed again: stage.DefaultRetryFailed, or LAMINA_RETRY_FAILED (tests).
func retryFailedEvery() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("LAMINA_RETRY_FAILED")); err == nil && d > 0 {
		return d
	}
	return 0
}
