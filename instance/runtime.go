package instance

import "path/filepath"

// RuntimeDir is where the mount daemon of the named instance keeps its
// socket, state and log. Only the owner may enter it.
func (d Dirs) RuntimeDir(name string) string { return filepath.Join(d.Runtime, name) }

// SocketPath is the Unix socket on which the mount daemon of the named
// instance serves its catalog.
func (d Dirs) SocketPath(name string) string {
	return filepath.Join(d.RuntimeDir(name), "catalog.sock")
}
