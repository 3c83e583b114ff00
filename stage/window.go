package stage

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
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
// or a keptName (Kept true) of Key. Times are Unix nanoseconds: a
// TrashedAt must equal the catalog's to the nanosecond.
type windowEntry struct {
	Key       string `json:"key"`
	At        int64  `json:"at"`
	TrashedAt int64  `json:"trashed_at,omitempty"`
	Run       string `json:"run,omitempty"`
	MovedTo   string `json:"moved_to,omitempty"`
	UID       string `json:"uid,omitempty"`
	Kept      bool   `json:"kept,omitempty"`
	Restore   bool   `json:"restore,omitempty"`
	By        string `json:"by,omitempty"`
}

// appendJSON appends e, a line, as json.Marshal would: a file of 65 536
// entries took 320 ms with json.Encoder, 100 ms so, under the lock an
// fsync's Sync waits for.
func (e windowEntry) appendJSON(b []byte) []byte {
	b = appendJSONString(append(b, `{"key":`...), e.Key)
	b = strconv.AppendInt(append(b, `,"at":`...), e.At, 10)
	if e.TrashedAt != 0 {
		b = strconv.AppendInt(append(b, `,"trashed_at":`...), e.TrashedAt, 10)
	}
	for _, f := range [...]struct{ name, v string }{{"run", e.Run}, {"moved_to", e.MovedTo}, {"uid", e.UID}, {"by", e.By}} {
		if f.v != "" {
			b = appendJSONString(append(append(append(b, ',', '"'), f.name...), '"', ':'), f.v)
		}
	}
	if e.Kept {
		b = append(b, `,"kept":true`...)
	}
	if e.Restore {
		b = append(b, `,"restore":true`...)
	}
	return append(b, '}', '\n')
}

// unixNano is t in Unix nanoseconds, 0 for the zero time.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// fromUnixNano is unixNano's inverse.
func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
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
			es = append(es, windowEntry{Key: k, At: unixNano(u.at), TrashedAt: unixNano(u.trashedAt), Run: u.run, MovedTo: u.movedTo, UID: u.uid})
		}
	}
	for k, kn := range s.movedAway {
		if now.Sub(kn.at) <= w {
			es = append(es, windowEntry{Key: k, At: unixNano(kn.at), Kept: true, Restore: kn.restore, By: kn.by})
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
	var line []byte
	for _, e := range es {
		line = e.appendJSON(line[:0])
		if _, werr := bw.Write(line); werr != nil {
			err = werr
			break
		}
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
		if json.Unmarshal(sc.Bytes(), &e) != nil || e.Key == "" {
			continue // torn
		}
		at := fromUnixNano(e.At)
		if now.Sub(at) > w || at.After(now) {
			continue // past the window (or from a clock set back)
		}
		if e.Kept {
			s.movedAway[e.Key] = keptName{at: at, restore: e.Restore, by: e.By}
		} else if len(s.unlinked) < maxUnlinked {
			s.unlinked[e.Key] = unlinkedKey{at: at, trashedAt: fromUnixNano(e.TrashedAt), run: e.Run, movedTo: e.MovedTo, uid: e.UID}
		}
	}
	// The file holds them until the next Sync rewrites it.
	s.windowGen++
}
