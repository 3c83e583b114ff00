package cache

import "time"

// SetCondemnedFresh sets how old a list of gc's marks a reuse decision
// may use, and returns what puts it back.
func SetCondemnedFresh(d time.Duration) (restore func()) {
	old := condemnedFresh
	condemnedFresh = d
	return func() { condemnedFresh = old }
}
