package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/lamina-bio/lamina/instance"
)

// commitFailingPath is where a mount daemon keeps, while the catalog's
// commit fails (a full data folder), the changes it holds in memory for
// it: a kill -9 loses them without a word (any other stop names them in
// lost-changes, settleCatalog), so the next mount, status and umount
// read them there.
func commitFailingPath(dirs instance.Dirs, name string) string {
	return filepath.Join(dirs.RuntimeDir(name), "commit-failing")
}

// failingNoteRoom is the room a failingNote reserves: its text is cut
// there.
const failingNoteRoom = 64 << 10

// failingNote is the file at commitFailingPath while a daemon runs. Its
// room is reserved when the mount starts: without XDG_RUNTIME_DIR the
// runtime folder is in the data folder, whose being full is what fails
// the commit, and a file written only then would fail too. Its text ends
// at the first NUL byte; none means nothing waits.
type failingNote struct {
	mu sync.Mutex
	f  *os.File // nil once closed
}

// openFailingNote creates the note at path, empty, with its room.
func openFailingNote(path string) (*failingNote, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	// Not every file system reserves: writes there need room as usual.
	_ = syscall.Fallocate(int(f.Fd()), 0, 0, failingNoteRoom)
	return &failingNote{f: f}, nil
}

// set writes what waits for the failing commit (catalog.Bolt's
// OnCommitFailing), or clears the note when pending is nil. No sync: a
// kill -9 loses nothing the kernel has.
func (n *failingNote) set(pending error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.f == nil {
		return
	}
	b := []byte{0}
	if pending != nil {
		text := "its daemon stopped without saving them (killed?) while the catalog's commit failed: " + strings.TrimPrefix(pending.Error(), "catalog: ")
		if len(text) > failingNoteRoom-8 {
			text = text[:failingNoteRoom-8] + " …"
		}
		b = append([]byte(text), 0)
	}
	_, _ = n.f.WriteAt(b, 0)
}

// close removes the note: the daemon stops, and a stop that gives the
// changes up names them in lost-changes.
func (n *failingNote) close() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.f != nil {
		n.f.Close()
		os.Remove(n.f.Name())
		n.f = nil
	}
}

// readFailingNote returns the text of the note at path: "" when there is
// none or it says nothing waits.
func readFailingNote(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return strings.TrimSpace(string(b))
}

// lostChangesNote says what the last daemon of instance name could not
// save, for status while no daemon runs: what its stop gave up
// (lost-changes), or what waited for a failing commit when it was killed.
// "" when neither.
func lostChangesNote(dirs instance.Dirs, name string) string {
	if b, err := os.ReadFile(lostChangesPath(dirs, name)); err == nil {
		return lastStopNote + strings.TrimPrefix(strings.TrimSpace(string(b)), "catalog: ")
	}
	if t := readFailingNote(commitFailingPath(dirs, name)); t != "" {
		return lastStopNote + t
	}
	return ""
}

// lastStopNote starts what a stop could not commit. Not "lost": the closes
// among it stay staged for the next mount (catalog's lostError says which
// changes are lost).
const lastStopNote = "the last stop of this mount could not commit everything: "
