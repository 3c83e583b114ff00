package stage

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// A close whose commit failed (the catalog away, a full disk) keeps its
// bytes staged. The Stage tries that commit again while it runs, backing
// off from Options.RetryFailed to retryMax, so that a catalog back after a
// minute does not leave the file's version waiting for the next mount;
// what is still failing at unmount stays for Recover.

// DefaultRetryFailed is the first wait before a failed close's commit is
// tried again.
const DefaultRetryFailed = 30 * time.Second

const retryMax = 10 * time.Minute

// failedClose is a released File whose commit failed.
type failedClose struct {
	j     journal // its record: ID, Key, Mode
	mtime time.Time
	run   string
}

// retryLater queues fc and makes sure a retry comes.
func (s *Stage) retryLater(fc failedClose) {
	first := s.opts.RetryFailed
	if first == 0 {
		first = DefaultRetryFailed
	}
	if first < 0 {
		return
	}
	s.rmu.Lock()
	defer s.rmu.Unlock()
	if s.retryStopped {
		return
	}
	s.failedCloses = append(s.failedCloses, fc)
	if s.retryTimer == nil {
		s.retryWait = first
		s.retryTimer = time.AfterFunc(first, s.retryTick)
	}
}

// retryTick retries every failed close and, while some still fail, comes
// back later, waiting twice as long each time.
func (s *Stage) retryTick() {
	s.RetryFailed(context.Background())
	s.rmu.Lock()
	defer s.rmu.Unlock()
	s.retryTimer = nil
	if s.retryStopped || len(s.failedCloses) == 0 {
		return
	}
	s.retryWait = min(2*s.retryWait, retryMax)
	s.retryTimer = time.AfterFunc(s.retryWait, s.retryTick)
}

// RetryFailed tries once more to commit every close whose commit failed,
// and returns how many still wait (FailedCommits counts them too). The
// mount calls it at unmount; a timer calls it before.
func (s *Stage) RetryFailed(ctx context.Context) (left int) {
	s.retrying.Lock() // the unmount's call waits for the timer's
	defer s.retrying.Unlock()
	s.rmu.Lock()
	list := s.failedCloses
	s.failedCloses = nil
	s.rmu.Unlock()
	var keep []failedClose
	for _, fc := range list {
		if !s.retryOne(ctx, fc) {
			keep = append(keep, fc)
		}
	}
	s.rmu.Lock()
	defer s.rmu.Unlock()
	s.failedCloses = append(keep, s.failedCloses...)
	return len(s.failedCloses)
}

// StopRetries stops the timer of RetryFailed: the catalog is going away.
func (s *Stage) StopRetries() {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	s.retryStopped = true
	if s.retryTimer != nil {
		s.retryTimer.Stop()
	}
}

// retryOne commits the bytes of fc as Recover would: as the key's next
// version, or under lost+found/ if the key was saved again since its
// close (they would hide the newer content), or not at all if the key's
// latest version holds them already. It reports whether fc is done.
func (s *Stage) retryOne(ctx context.Context, fc failedClose) bool {
	data := filepath.Join(s.opts.Dir, fc.j.ID)
	if _, err := os.Stat(data); err != nil {
		s.log.Error("lamina mount: the staged bytes of a failed close are gone", "key", fc.j.Key, "file", data, "err", err)
		s.failed.Add(-1)
		return true
	}
	newer, same := s.savedSince(ctx, fc.j.Key, data, time.Now())
	if !same {
		key, desc := fc.j.Key, ""
		if newer {
			key = lostKey(fc.j)
			desc = fmt.Sprintf("recovered bytes of %s: its commit failed at close, and the key was saved again since", fc.j.Key)
		}
		fh, err := os.Open(data)
		if err == nil {
			_, err = s.commitFile(WithRun(ctx, fc.run), key, fh, fc.mtime, fc.j.Mode, desc, false)
			fh.Close()
		}
		if err != nil {
			s.log.Warn("lamina mount: the commit of a closed file failed again; its bytes stay staged", "key", fc.j.Key, "err", err)
			return false
		}
		if newer {
			s.log.Warn("lamina mount: a failed close's bytes were kept under lost+found", "key", fc.j.Key, "saved_as", key)
		} else {
			s.log.Info("lamina mount: committed a file whose commit had failed at close", "key", key)
		}
	}
	s.dropStaged(fc.j.ID)
	s.failed.Add(-1)
	return true
}
