package stage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"
)

// StagedFile is a file whose bytes the staging folder keeps because no
// commit holds them yet: a close whose commit failed (Closed), or a file
// a daemon that died had open (not Closed; Recover keeps it under
// lost+found/).
type StagedFile struct {
	Key    string `json:"key"`    // the key its writer wrote
	Path   string `json:"path"`   // its bytes, in the staging folder
	Closed bool   `json:"closed"` // its writer closed it: the bytes are the file's whole
	// Failed: its commit failed (at close, a retry, the mount's redo).
	// A closed file without it was closed when its daemon stopped, its
	// commit maybe in flight or landed: the next mount commits it if the
	// catalog does not hold it.
	Failed bool `json:"failed,omitempty"`
	// Mode and Mtime are what its commit would give the version: the
	// permission bits its writer left (0644 for a file created through
	// the mount; the staging file itself is 0600) and its mtime (the
	// staging file's, as Recover takes it, or the File's at a failed
	// close). A save of Path elsewhere takes them as --mode and --mtime.
	Mode  uint32    `json:"mode"`
	Mtime time.Time `json:"mtime"`
	// Hole > 0: the file at Path holds zeros in its first Hole bytes,
	// which are those of version Base of Key (an append copied only the
	// version's end: lazycopy.go). A mount's Recover puts them back;
	// saved elsewhere as it is, the file would have zeros there.
	Hole int64 `json:"hole,omitempty"`
	Base int   `json:"base,omitempty"`
	// Lost: its close returned, committed lazily, and the catalog's
	// transaction holding the version was lost when its daemon stopped
	// (kill -9): the catalog does not hold it, and the next mount's
	// Recover commits it (StagedSince).
	Lost bool `json:"lost_commit,omitempty"`
}

// Heads lists the manifests (cache.Ref) whose content staged files in dir
// read below the hole of a lazy copy (lazycopy.go): a File open for an
// append, a close whose commit failed, a commit waiting for a sync, or any
// of those left by a daemon that stopped. The version such a manifest
// belongs to may be deleted for good meanwhile (delete --permanent), and
// the file's first bytes are then in data no version references: gc
// counts these manifests' data as in use (instance.GCOptions.Held), or the
// file's commit, its reads and Recover would find them gone. It only
// reads, and may run while a daemon writes the journal.
func Heads(dir string) ([]string, error) {
	if _, err := os.Stat(dir); os.IsNotExist(err) {
		return nil, nil
	}
	s := &Stage{opts: Options{Dir: dir}, log: slog.New(slog.DiscardHandler)}
	js, err := s.readStaged()
	if err != nil {
		return nil, fmt.Errorf("stage: %w", err)
	}
	seen := map[string]bool{}
	var out []string
	for _, j := range js {
		if j.CopiedFrom == 0 || j.Head == "" || seen[j.Head] {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, j.ID)); err != nil {
			continue // removed (saved elsewhere after a take-over): nothing reads it
		}
		seen[j.Head] = true
		out = append(out, j.Head)
	}
	sort.Strings(out)
	return out, nil
}

// Staged lists what the staging folder dir keeps that no commit holds
// (committed files waiting for a sync are left out, and files open when
// their daemon stopped that hold nothing of their own by what Recover can
// tell without the catalog: never written), in key order. It only reads:
// run it when no daemon uses dir, or for a report.
func Staged(dir string) ([]StagedFile, error) { return StagedSince(dir, nil) }

// StagedSince is Staged with, besides, the files committed lazily whose
// LazySeq is above the catalog's LazyCommitted, which lazyCommitted reads
// (only when such a record is there; on an error they are left out):
// their version was lost with the daemon's transaction (Lost; Recover
// commits them again). A status after a kill -9 did not name them.
func StagedSince(dir string, lazyCommitted func() (uint64, error)) ([]StagedFile, error) {
	if _, err := os.Stat(dir); os.IsNotExist(err) {
		return nil, nil
	}
	s := &Stage{opts: Options{Dir: dir}, log: slog.New(slog.DiscardHandler)}
	js, err := s.readStaged()
	if err != nil {
		return nil, fmt.Errorf("stage: %w", err)
	}
	committed, read := uint64(math.MaxUint64), false
	var out []StagedFile
	for _, j := range js {
		if j.State == stateDone && j.LazySeq > 0 && !read && lazyCommitted != nil {
			if n, err := lazyCommitted(); err == nil {
				committed = n
			}
			read = true
		}
		lost := j.State == stateDone && j.LazySeq > committed
		if lost {
			j.State = stateClosed // as Recover takes it
		}
		if j.State != stateOpen && j.State != stateClosed {
			continue
		}
		p := filepath.Join(dir, j.ID)
		fi, err := os.Stat(p)
		if err != nil {
			continue // removed (saved elsewhere after a take-over): nothing left
		}
		if j.State == stateOpen && s.nothingOwn(context.Background(), j, p, fi.Size()) {
			// Never written (an idle O_RDWR, O_TRUNC or O_CREAT and no
			// write): Recover keeps nothing of it, as it says.
			continue
		}
		out = append(out, StagedFile{Key: j.Key, Path: p, Closed: j.State == stateClosed, Failed: j.State == stateClosed && j.Failed, Mode: j.Mode, Mtime: fi.ModTime().UTC(), Hole: j.CopiedFrom, Base: j.Base, Lost: lost})
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Key < out[b].Key })
	return out, nil
}

// FailedFiles are the files whose commit at their last close failed and
// that are not committed yet (FailedCommits counts them), in key order,
// less those whose staged bytes were removed (saved into the instance
// that took the storage over, then rm: the next retry counts them done).
func (s *Stage) FailedFiles() []StagedFile {
	s.rmu.Lock()
	out := make([]StagedFile, 0, len(s.failedFiles))
	for _, f := range s.failedFiles {
		out = append(out, f)
	}
	s.rmu.Unlock()
	out = slices.DeleteFunc(out, func(f StagedFile) bool {
		_, err := os.Stat(f.Path)
		return errors.Is(err, fs.ErrNotExist)
	})
	sort.Slice(out, func(a, b int) bool { return out[a].Key < out[b].Key })
	return out
}

// addFailed counts fc among the failed closes and queues its retry.
func (s *Stage) addFailed(fc failedClose) {
	s.failed.Add(1)
	s.rmu.Lock()
	if s.failedFiles == nil {
		s.failedFiles = map[string]StagedFile{}
	}
	s.failedFiles[fc.j.ID] = StagedFile{Key: fc.j.Key, Path: filepath.Join(s.opts.Dir, fc.j.ID), Closed: true, Failed: true, Mode: fc.j.Mode, Mtime: fc.mtime.UTC(), Hole: fc.j.CopiedFrom, Base: fc.j.Base}
	s.rmu.Unlock()
	s.retryLater(fc)
}

// doneFailed counts the failed close fc as done.
func (s *Stage) doneFailed(fc failedClose) {
	s.failed.Add(-1)
	s.rmu.Lock()
	delete(s.failedFiles, fc.j.ID)
	s.rmu.Unlock()
}
