package stage

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
)

// StagedFile is a file whose bytes the staging folder keeps because no
// commit holds them yet: a close whose commit failed (Closed), or a file
// a daemon that died had open (not Closed; Recover keeps it under
// lost+found/).
type StagedFile struct {
	Key    string `json:"key"`    // the key its writer wrote
	Path   string `json:"path"`   // its bytes, in the staging folder
	Closed bool   `json:"closed"` // its writer closed it: the bytes are the file's whole
}

// Staged lists what the staging folder dir keeps that no commit holds
// (committed files waiting for a sync are left out), in key order. It
// only reads: run it when no daemon uses dir, or for a report.
func Staged(dir string) ([]StagedFile, error) {
	if _, err := os.Stat(dir); os.IsNotExist(err) {
		return nil, nil
	}
	s := &Stage{opts: Options{Dir: dir}, log: slog.New(slog.DiscardHandler)}
	js, err := s.readStaged()
	if err != nil {
		return nil, fmt.Errorf("stage: %w", err)
	}
	var out []StagedFile
	for _, j := range js {
		if j.State != stateOpen && j.State != stateClosed {
			continue
		}
		p := filepath.Join(dir, j.ID)
		if _, err := os.Stat(p); err != nil {
			continue
		}
		out = append(out, StagedFile{Key: j.Key, Path: p, Closed: j.State == stateClosed})
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Key < out[b].Key })
	return out, nil
}

// FailedFiles are the files whose commit at their last close failed and
// that are not committed yet (FailedCommits counts them), in key order.
func (s *Stage) FailedFiles() []StagedFile {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	out := make([]StagedFile, 0, len(s.failedFiles))
	for id, key := range s.failedFiles {
		out = append(out, StagedFile{Key: key, Path: filepath.Join(s.opts.Dir, id), Closed: true})
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Key < out[b].Key })
	return out
}

// addFailed counts fc among the failed closes and queues its retry.
func (s *Stage) addFailed(fc failedClose) {
	s.failed.Add(1)
	s.rmu.Lock()
	if s.failedFiles == nil {
		s.failedFiles = map[string]string{}
	}
	s.failedFiles[fc.j.ID] = fc.j.Key
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
