package stage

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// windowName is the file in the staging folder that keeps the unlinks,
// renames away and kept names of the last window across a remount: a
// workflow rerun after the daemon restarted (rm out; lamina umount; lamina
// mount; write out) split the key's history, the unlink being in the old
// daemon's memory only. Not a catalog record: the catalog's trash entry
// does not say that a mount's unlink (rather than lamina delete, or a
// removal on another workstation) put it there, and those stay in the
// trash. No id is named like it (ids are hex).
const windowName = "window"

// windowEntry is a line of the window file: an unlinkedKey (Kept false)
// or a keptName (Kept true) of Key.
type windowEntry struct {
	Key       string    `json:"key"`
	At        time.Time `json:"at"`
	TrashedAt time.Time `json:"trashed_at,omitzero"`
	Run       string    `json:"run,omitempty"`
	MovedTo   string    `json:"moved_to,omitempty"`
	UID       string    `json:"uid,omitempty"`
	Kept      bool      `json:"kept,omitempty"`
	Restore   bool      `json:"restore,omitempty"`
	By        string    `json:"by,omitempty"`
}

// windowChangedLocked notes that unlinked or movedAway changed: the next
// Sync writes the window file. Called with s.mu held.
func (s *Stage) windowChangedLocked() { s.windowGen++ }

// saveWindow writes the entries of unlinked and movedAway still within
// the window to the window file, if they changed since it was written (or
// removes it when there are none). Sync calls it, so an unmount leaves
// them for the next mount (loadWindow); a killed daemon leaves those of
// its last Sync. An entry the file keeps after it was used is harmless:
// restoreUnlinked checks the catalog (the key has no live version, the
// trash entry's TrashedAt; takeBack: the backup still shows the renamed
// version). Called with s.syncing held.
func (s *Stage) saveWindow() error {
	s.mu.Lock()
	gen := s.windowGen
	if gen == s.windowSaved {
		s.mu.Unlock()
		return nil
	}
	now, w := time.Now(), s.window()
	var es []windowEntry
	for k, u := range s.unlinked {
		if now.Sub(u.at) <= w {
			es = append(es, windowEntry{Key: k, At: u.at, TrashedAt: u.trashedAt, Run: u.run, MovedTo: u.movedTo, UID: u.uid})
		}
	}
	for k, kn := range s.movedAway {
		if now.Sub(kn.at) <= w {
			es = append(es, windowEntry{Key: k, At: kn.at, Kept: true, Restore: kn.restore, By: kn.by})
		}
	}
	s.mu.Unlock()
	p := filepath.Join(s.opts.Dir, windowName)
	if len(es) == 0 {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("stage: window: %w", err)
		}
		s.windowSaved = gen
		return nil
	}
	// No fsync: a remount finds what the kernel has; a machine's crash
	// may leave a torn or empty file, read as far as it parses.
	tmp := p + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("stage: window: %w", err)
	}
	bw := bufio.NewWriter(f)
	enc := json.NewEncoder(bw)
	for _, e := range es {
		err = errors.Join(err, enc.Encode(e))
	}
	err = errors.Join(err, bw.Flush(), f.Close())
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("stage: window: %w", err)
	}
	s.windowSaved = gen
	return nil
}

// loadWindow fills unlinked and movedAway from the window file an earlier
// Stage of the folder wrote, with the entries still within the window: a
// key unlinked before an unmount and written again after the mount within
// the window gets its versions back, as without the remount. None is
// claimed (no File of this Stage was started for it), and a run's unlink
// is kept no longer than the window: the run may not be this daemon's.
func (s *Stage) loadWindow() {
	f, err := os.Open(filepath.Join(s.opts.Dir, windowName))
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			s.log.Warn("lamina mount: unlinks of the last window not read; files written again start new histories", "err", err)
		}
		return
	}
	defer f.Close()
	now, w := time.Now(), s.window()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var e windowEntry
		if json.Unmarshal(sc.Bytes(), &e) != nil || e.Key == "" || now.Sub(e.At) > w || e.At.After(now) {
			continue // torn, or past the window (or from a clock set back)
		}
		if e.Kept {
			s.movedAway[e.Key] = keptName{at: e.At, restore: e.Restore, by: e.By}
		} else if len(s.unlinked) < maxUnlinked {
			s.unlinked[e.Key] = unlinkedKey{at: e.At, trashedAt: e.TrashedAt, run: e.Run, movedTo: e.MovedTo, uid: e.UID}
		}
	}
	// The file holds them until the next Sync rewrites it.
	s.windowGen++
}
