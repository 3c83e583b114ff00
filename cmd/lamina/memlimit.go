package main

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// daemonMemLimit is the mount daemon's soft memory limit while what it
// holds is small. The RSS goals (issue 3: < 150 MB with 100,000 artifacts
// listed; issue 4: < 200 MB writing 4 GiB) count the binary's and the
// catalog's mapped pages too, ~40 MB; with the default GOGC the heap grows to
// twice what is live before a collection.
const daemonMemLimit = 100 << 20

// limitMemory sets the soft memory limit to base and, once a second, raises
// it to 1.5 × the live heap when that is larger: a fixed limit under the
// live heap (a mount holding a million inodes) makes the GC run back to
// back, while this one costs at most a collection per third of live heap
// allocated. It returns when ctx ends. GOMEMLIMIT in the environment wins.
func limitMemory(ctx context.Context, base int64) {
	debug.SetMemoryLimit(base)
	live := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		metrics.Read(live)
		if live[0].Value.Kind() != metrics.KindUint64 {
			return // a runtime without the metric: keep base
		}
		debug.SetMemoryLimit(max(base, int64(live[0].Value.Uint64())*3/2))
	}
}
