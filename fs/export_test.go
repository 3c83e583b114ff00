package fs

import "time"

// SetAttrsWindow sets how long listings carry files' attributes after a
// LOOKUP showed a walk that stats (Mount.wantAttrs), and returns a func
// that restores it.
func SetAttrsWindow(d time.Duration) (restore func()) {
	old := attrsWindow
	attrsWindow = d
	return func() { attrsWindow = old }
}
