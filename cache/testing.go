package cache

import "time"

// SetReuseRecheck sets, for a test of another package, how old a Writer's
// reuse decisions may be at Commit before it checks them again against
// gc's marks (0: always); t's Cleanup puts it back.
func SetReuseRecheck(t interface{ Cleanup(func()) }, d time.Duration) {
	old := reuseRecheck
	reuseRecheck = d
	t.Cleanup(func() { reuseRecheck = old })
}
