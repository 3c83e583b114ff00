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

// EndAttrsWindow ends the window in which listings carry files'
// attributes, as its passing does, for a test that cannot tell how long
// its own steps take on a loaded machine.
func (m *Mount) EndAttrsWindow() { m.attrsUntil.Store(0) }
