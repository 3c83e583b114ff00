package instance

import (
	"os"
	"path/filepath"
)

// RuntimeDir is where the mount daemon of the named instance keeps its
// socket, state and log. Only the owner may enter it.
func (d Dirs) RuntimeDir(name string) string { return filepath.Join(d.Runtime, name) }

// SocketPath is the Unix socket on which the mount daemon of the named
// instance serves its catalog, in this process's runtime folder.
func (d Dirs) SocketPath(name string) string {
	return filepath.Join(d.RuntimeDir(name), "catalog.sock")
}

// socketLink is the symbolic link in the instance's data folder to the
// socket its mount daemon serves on. The runtime folder follows
// XDG_RUNTIME_DIR, which cron, sudo or another login set differently (or
// not at all); the data folder does not.
func (d Dirs) socketLink(s Settings) string {
	dir := s.DataDir
	if dir == "" {
		dir = filepath.Join(d.Data, s.Name)
	}
	return filepath.Join(dir, "daemon.sock")
}

// DaemonSocket is the socket to reach the mount daemon of s on: the one in
// this process's runtime folder when it exists, else the one the daemon
// recorded (LinkSocket), else the runtime folder's (where nothing serves).
// The socket stays where the daemon made it, owner-only; the link only
// names it.
func (d Dirs) DaemonSocket(s Settings) string {
	own := d.SocketPath(s.Name)
	l := d.socketLink(s)
	lfi, lerr := os.Lstat(l)
	if lerr != nil || !isSocket(l) {
		return own
	}
	if ofi, err := os.Stat(own); err == nil && ofi.Mode()&os.ModeSocket != 0 && !lfi.ModTime().After(ofi.ModTime()) {
		// Both: the newer is the live one (one daemon per instance holds
		// the catalog); a socket a killed daemon left here is older than
		// the link the next daemon made elsewhere.
		return own
	}
	return l
}

// LinkSocket records sock as the socket of the mount daemon of s, for
// DaemonSocket. unlink removes the record while it still names sock.
func (d Dirs) LinkSocket(s Settings, sock string) (unlink func(), err error) {
	l := d.socketLink(s)
	abs, err := filepath.Abs(sock)
	if err != nil {
		return func() {}, err
	}
	tmp := l + ".new"
	os.Remove(tmp)
	if err := os.Symlink(abs, tmp); err != nil {
		return func() {}, err
	}
	if err := os.Rename(tmp, l); err != nil {
		os.Remove(tmp)
		return func() {}, err
	}
	return func() {
		if t, err := os.Readlink(l); err == nil && t == abs {
			os.Remove(l)
		}
	}, nil
}

// LinkedRuntime is the runtime folder (what Dirs.Runtime is in the
// daemon) of the mount daemon of s, as the link LinkSocket made records
// it: a daemon started under another XDG_RUNTIME_DIR keeps its state
// there. False when there is no link to a socket, or when it is not a
// SocketPath.
func (d Dirs) LinkedRuntime(s Settings) (string, bool) {
	l := d.socketLink(s)
	t, err := os.Readlink(l)
	if err != nil || !filepath.IsAbs(t) || !isSocket(l) {
		return "", false
	}
	if filepath.Base(t) != "catalog.sock" || filepath.Base(filepath.Dir(t)) != s.Name {
		return "", false
	}
	return filepath.Dir(filepath.Dir(t)), true
}

func isSocket(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode()&os.ModeSocket != 0
}
