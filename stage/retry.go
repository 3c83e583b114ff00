package stage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/lamina-bio/lamina/catalog"
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
	j      journal // its record: ID, Key, Mode
	mtime  time.Time
	run    string
	closed time.Time // when it was released: retries keep the order of closes
	// Set for bytes Recover could not keep (a full disk at the mount):
	// lostWhy says why they go under lost+found/ ("" commits them to
	// their key as any failed close), gone that the content a version
	// of them names never reached the disk (store every chunk anew).
	lostWhy string
	gone    bool
}

// firstRetry is the first wait before a failed close is tried again;
// negative when failed closes are left to Recover.
func (s *Stage) firstRetry() time.Duration {
	if s.opts.RetryFailed == 0 {
		return DefaultRetryFailed
	}
	return s.opts.RetryFailed
}

// retryLater queues fc and makes sure a retry comes.
func (s *Stage) retryLater(fc failedClose) {
	first := s.firstRetry()
	if first < 0 {
		return
	}
	s.rmu.Lock()
	defer s.rmu.Unlock()
	if s.retryStopped {
		return
	}
	fc.closed = time.Now()
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

// retrySoon tries the failed closes now, unless a retry began within the
// first wait: a commit has just reached the disk, so what made them fail
// (a full disk, the catalog away) may be over, and the backoff, grown
// while it lasted, could keep them waiting for minutes more.
func (s *Stage) retrySoon() {
	first := s.firstRetry()
	s.rmu.Lock()
	due := first >= 0 && !s.retryStopped && len(s.failedCloses) > 0 && time.Since(s.retryBegan) >= first
	if due {
		s.retryBegan = time.Now() // no second one before this has begun
	}
	s.rmu.Unlock()
	if due {
		go s.RetryFailed(context.Background())
	}
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
	s.inRetry = list
	if len(list) > 0 {
		s.retryBegan = time.Now()
	}
	s.rmu.Unlock()
	// In the order of the closes; a key whose earlier close still fails
	// keeps its later ones waiting, so that the last close stays latest.
	slices.SortStableFunc(list, func(a, b failedClose) int { return a.closed.Compare(b.closed) })
	var keep []failedClose
	stuck := map[string]bool{}
	var done []string
	for _, fc := range list {
		if stuck[fc.j.Key] || !s.retryOne(ctx, fc) {
			stuck[fc.j.Key] = true
			keep = append(keep, fc)
			continue
		}
		done = append(done, fc.j.Key)
	}
	s.rmu.Lock()
	s.inRetry = nil
	s.failedCloses = append(keep, s.failedCloses...)
	left = len(s.failedCloses)
	if left == 0 {
		s.retriedAt = nil
	} else if s.retryTimer == nil && !s.retryStopped && s.firstRetry() >= 0 {
		// A timer's retry that found the list taken by this call (started
		// by retrySoon) saw nothing left and set no timer.
		s.retryWait = max(s.retryWait, s.firstRetry())
		s.retryTimer = time.AfterFunc(s.retryWait, s.retryTick)
	}
	notify := s.retried
	s.rmu.Unlock()
	if notify != nil && len(done) > 0 {
		notify(done) // outside any FUSE request: the kernel may be told at once
	}
	return left
}

// OnRetried sets what learns of the keys that RetryFailed committed: the
// mount's listings and the kernel's caches, which no handle's close told.
func (s *Stage) OnRetried(fn func(keys []string)) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	s.retried = fn
}

// OnReproduced sets what learns that a commit of run wrote the bytes of
// v, its key's latest version, again (no new version; the catalog records
// the run among v's: catalog.Runs.Reruns): the mount's lineage tracker,
// which then takes a read of v by the run for its own output, not an
// input. It is called before the commit returns and must not block.
func (s *Stage) OnReproduced(fn func(run string, v catalog.Version)) {
	s.reproduced.Store(&fn)
}

// OnCommitted sets what learns of each new version a close (or its
// retry) committed: the mount, which names those committed after a
// take-over of its storage. It must not block.
func (s *Stage) OnCommitted(fn func(v catalog.Version)) {
	s.committed.Store(&fn)
}

// StopRetries stops the timer of RetryFailed, and waits for a retry in
// flight: the catalog is going away (and a test's folders with it: a
// retry's pack written during their removal failed it).
func (s *Stage) StopRetries() {
	s.rmu.Lock()
	s.retryStopped = true
	if s.retryTimer != nil {
		s.retryTimer.Stop()
	}
	s.rmu.Unlock()
	s.retrying.Lock()
	//lint:ignore SA2001 an empty section: it waits for a RetryFailed in flight
	s.retrying.Unlock()
}

// retryOne commits the bytes of fc as Recover would: as the key's next
// version, or under lost+found/ if the key was saved again since its
// close (they would hide the newer content), or not at all if the key's
// latest version holds them already. It reports whether fc is done.
func (s *Stage) retryOne(ctx context.Context, fc failedClose) bool {
	// What the key holds is checked and the bytes saved after it with no
	// save of the key between: a close committing in between went beneath
	// these older bytes.
	defer s.keys.lock(fc.j.Key)()
	ctx = withKeyHeld(ctx, fc.j.Key)
	data := filepath.Join(s.opts.Dir, fc.j.ID)
	s.rmu.Lock()
	cancelled := s.cancelled[fc.j.ID]
	delete(s.cancelled, fc.j.ID)
	s.rmu.Unlock()
	if cancelled {
		s.dropFailed(fc) // its key was unlinked while this retry ran (dropFailedOf)
		return true
	}
	if _, err := os.Stat(data); err != nil {
		s.log.Error("lamina mount: the staged bytes of a failed close are gone", "key", fc.j.Key, "file", data, "err", err)
		s.doneFailed(fc)
		return true
	}
	if s.commitFailing(ctx) {
		// What the catalog shows holds changes not committed: the key's
		// version there may be a lazy save that is still to be lost.
		return false
	}
	var newer, same bool
	switch v, err := s.cat.ByKey(ctx, fc.j.Key, 0); {
	case fc.lostWhy != "":
		newer = true // under lost+found/, whatever the key holds
	case err == nil && s.retriedBefore(v.UID, fc.closed):
		// The latest version is an earlier failed close, committed by a
		// retry: these bytes, closed after it, go on top.
	case err == nil || errors.Is(err, catalog.ErrNotFound):
		newer, same = s.savedSince(ctx, fc.j, data)
	default:
		// Whether the key was saved since is unknown: committing now could
		// put these older bytes on top of a newer save if the catalog came
		// back in between.
		return false
	}
	if same && s.commitFailing(ctx) {
		return false // seen landed in changes whose commit fails since
	}
	if !same {
		key, desc := fc.j.Key, ""
		if newer {
			why := fc.lostWhy
			if why == "" {
				why = "its commit failed at close, and the key was saved again since"
			}
			key = lostKey(fc.j)
			desc = fmt.Sprintf("recovered bytes of %s: %s", fc.j.Key, why)
		}
		cctx := WithRun(ctx, fc.run)
		if !newer { // its close, committed now
			cctx = withStem(withClosedAt(cctx, closedAt(data)), fc.j.Stem)
		}
		fh, err := s.openStaged(ctx, fc.j, data)
		var v catalog.Version
		if err == nil {
			v, err = s.commitFile(cctx, key, fh, fc.mtime, fc.j.Mode, desc, fc.gone)
			fh.Close()
		}
		if err == nil && !newer {
			s.rmu.Lock()
			if s.retriedAt == nil {
				s.retriedAt = map[string]time.Time{}
			}
			s.retriedAt[v.UID] = fc.closed
			s.rmu.Unlock()
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
	s.doneFailed(fc)
	return true
}

// retriedBefore reports whether the version uid was committed by a retry
// of a close made no later than t.
func (s *Stage) retriedBefore(uid string, t time.Time) bool {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	at, ok := s.retriedAt[uid]
	return ok && !at.After(t)
}

// dropFailedOf drops the failed closes of key that wait for a retry: key
// was unlinked (or renamed over), and their bytes go with it, as an open
// File's go when its key is unlinked (File.Release). A retry committed
// them later, and the key, removed with rc 0, came back (with the versions
// the unlink trashed: restoreUnlinked). Those a RetryFailed under way
// holds are dropped by it (retryOne). Bytes bound for lost+found/ stay.
func (s *Stage) dropFailedOf(key string) (n int) {
	s.rmu.Lock()
	var drop []failedClose
	s.failedCloses = slices.DeleteFunc(s.failedCloses, func(fc failedClose) bool {
		if fc.j.Key == key && fc.lostWhy == "" {
			drop = append(drop, fc)
			return true
		}
		return false
	})
	for _, fc := range s.inRetry {
		if fc.j.Key == key && fc.lostWhy == "" {
			if s.cancelled == nil {
				s.cancelled = map[string]bool{}
			}
			s.cancelled[fc.j.ID] = true
			n++
		}
	}
	s.rmu.Unlock()
	for _, fc := range drop {
		s.dropFailed(fc)
	}
	return n + len(drop)
}

// FailedPending returns the newest failed close of key that waits for a
// retry to commit at key: the mount shows it at a name the catalog lacks
// (a new key whose first close failed) as a file being written, which rm
// drops and mv moves (Unlink, Rename). Until then it was at no name, and
// the retry brought it back after an rm that answered ENOENT.
func (s *Stage) FailedPending(key string) (StagedFile, bool) {
	fc, ok := s.failedPending(key)
	if !ok {
		return StagedFile{}, false
	}
	sf := StagedFile{Key: key, Path: filepath.Join(s.opts.Dir, fc.j.ID), Closed: true, Mode: fc.j.Mode, Mtime: fc.mtime.UTC(), Hole: fc.j.CopiedFrom, Base: fc.j.Base}
	return sf, true
}

// failedPending is the newest failed close of key waiting for a retry
// (FailedPending).
func (s *Stage) failedPending(key string) (failedClose, bool) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	var newest *failedClose
	for _, l := range [][]failedClose{s.failedCloses, s.inRetry} {
		for i, fc := range l {
			if fc.j.Key == key && fc.lostWhy == "" && !s.cancelled[fc.j.ID] && (newest == nil || fc.closed.After(newest.closed)) {
				newest = &l[i]
			}
		}
	}
	if newest == nil {
		return failedClose{}, false
	}
	return *newest, true
}

// StagedReader reads staged bytes (OpenFailed); Close releases them.
type StagedReader interface {
	io.ReaderAt
	io.Closer
}

// OpenFailed opens the staged bytes of key's newest failed close
// (FailedPending) for reading, as its retry reads them: below the hole of
// a lazy copy, from the version it was opened on (openStaged). A read of
// those bytes fails when that content is gone (a version deleted for good
// and collected: EIO), never returning the staging file's zeros.
// fs.ErrNotExist when key has no failed close.
func (s *Stage) OpenFailed(ctx context.Context, key string) (StagedReader, error) {
	fc, ok := s.failedPending(key)
	if !ok {
		return nil, fmt.Errorf("stage: %s: %w", key, fs.ErrNotExist)
	}
	fh, err := os.Open(filepath.Join(s.opts.Dir, fc.j.ID))
	if err != nil {
		return nil, err
	}
	if fc.j.CopiedFrom == 0 {
		return fh, nil
	}
	head, err := s.headOf(ctx, fc.j)
	if err != nil {
		fh.Close()
		return nil, err
	}
	// Reads come in requests of their own, after this one's ctx ended.
	r := &lazyReader{ctx: context.WithoutCancel(ctx), head: head, from: fc.j.CopiedFrom, tail: fh}
	return struct {
		io.ReaderAt
		io.Closer
	}{r, fh}, nil
}

// hasFailed reports whether key has a failed close waiting for a retry to
// commit at it.
func (s *Stage) hasFailed(key string) bool {
	_, ok := s.FailedPending(key)
	return ok
}

// failedUnder lists the keys under prefix of failed closes waiting for a
// retry to commit at them.
func (s *Stage) failedUnder(prefix string) []string {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	var keys []string
	for _, l := range [][]failedClose{s.failedCloses, s.inRetry} {
		for _, fc := range l {
			if fc.lostWhy == "" && !s.cancelled[fc.j.ID] && strings.HasPrefix(fc.j.Key, prefix) {
				keys = append(keys, fc.j.Key)
			}
		}
	}
	return keys
}

// dropFailed drops the staged bytes of the failed close fc, whose key
// was unlinked.
func (s *Stage) dropFailed(fc failedClose) {
	var size int64
	if fi, err := os.Stat(filepath.Join(s.opts.Dir, fc.j.ID)); err == nil {
		size = fi.Size()
	}
	s.log.Info("lamina mount: a file whose commit had failed at close was removed; its staged bytes are dropped",
		"key", fc.j.Key, "size", size)
	s.dropStaged(fc.j.ID)
	s.doneFailed(fc)
}

// renameFailed makes the failed closes of from that wait for a retry
// commit to to: the file was renamed, and its bytes follow it as an open
// File's do (Rename). Those a RetryFailed under way holds commit to from.
func (s *Stage) renameFailed(from, to string) {
	s.rekeyFailed(func(k string) (string, bool) { return to, k == from })
}

// renameFailedUnder is renameFailed for a folder: the failed closes of
// keys under from/ commit under to/ (RenameFolder).
func (s *Stage) renameFailedUnder(from, to string) {
	s.rekeyFailed(func(k string) (string, bool) {
		if !strings.HasPrefix(k, from+"/") {
			return "", false
		}
		return to + k[len(from):], true
	})
}

// rekeyFailed moves each failed close waiting for a retry whose key move
// maps to a new key, journal first.
func (s *Stage) rekeyFailed(move func(key string) (string, bool)) {
	s.rmu.Lock()
	defer s.rmu.Unlock()
	for i, fc := range s.failedCloses {
		to, ok := move(fc.j.Key)
		if !ok || fc.lostWhy != "" {
			continue
		}
		// All of the record but its key: a lazy copy's hole (CopiedFrom,
		// Head) must stay named, or Recover commits zeros.
		j := fc.j
		j.State, j.Key, j.Failed = stateClosed, to, true
		if err := s.jlog.put(j); err != nil {
			s.log.Warn("lamina mount: journal", "err", err)
			continue // Recover would commit them to from
		}
		s.failedCloses[i].j.Key = to
		if f, ok := s.failedFiles[fc.j.ID]; ok {
			f.Key = to
			s.failedFiles[fc.j.ID] = f
		}
	}
}

// commitFailing reports whether the catalog holds lazy changes whose
// commit fails (a full disk): nothing is landed or lost until it commits
// them or gives them up.
func (s *Stage) commitFailing(ctx context.Context) bool {
	lc, ok := s.cat.(lazyCatalog)
	if !ok {
		return false
	}
	_, err := lc.LazyCommitted(ctx)
	return errors.Is(err, catalog.ErrCommitFailing)
}
