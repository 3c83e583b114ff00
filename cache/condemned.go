package cache

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"

	"github.com/lamina-bio/lamina/ref"
	"github.com/lamina-bio/lamina/storage"
	"github.com/lamina-bio/lamina/storage/retry"
	"golang.org/x/sync/errgroup"
)

// gc deletes a pack in two steps so that no save, on any machine, reuses a
// blob of a pack being deleted (the dedup index is per machine; a lock could
// only be). First it marks each unreferenced pack in storage
// (gc/condemned/<id>); then it waits a settle period, reads the catalog
// again, and deletes the packs still unreferenced. A save does not reuse
// blobs of marked packs, and reuses a blob only on a list of marks at most
// condemnedFresh old; a Writer whose oldest reuse decision is older than
// reuseRecheck when it commits checks its packs again. So any version that
// reuses a marked pack was in the catalog before gc's second read, as long
// as the settle period is longer than condemnedFresh + reuseRecheck + the
// catalog's commit (MinSettle).
const condemnedPrefix = "gc/condemned/"

var (
	// condemnedFresh is how old a list of marks a reuse decision may use.
	condemnedFresh = 10 * time.Second
	// reuseRecheck is how old a Writer's reuse decisions may be at Commit
	// before it checks its reused packs again.
	reuseRecheck = 30 * time.Second
)

// MinSettle is the shortest settle period that keeps gc safe while other
// processes save: condemnedFresh and reuseRecheck plus a minute and a half
// for the catalog's commit of the version (bbolt waits up to a minute for
// its lock).
const MinSettle = 2 * time.Minute

// ErrReusedPackCondemned is returned by Commit when a pack whose blobs the
// session reused has since been marked for deletion by gc, or deleted.
var ErrReusedPackCondemned = errors.New("data this save reused is being deleted by gc (on this or another machine): save again")

func condemnedName(id string) string { return condemnedPrefix + id }

// Condemn marks packs for deletion and returns once storage has the marks.
func (s *Store) Condemn(ctx context.Context, ids []string, note string) error {
	err := eachID(ctx, ids, func(ctx context.Context, id string) error {
		// Never staged to upload later: other machines must see the
		// mark, and gc deletes the pack on the strength of it.
		if err := s.putStored(ctx, condemnedName(id), []byte(note)); err != nil {
			return fmt.Errorf("write the gc mark of pack %s: %w", id, err) // "marked" or "deleted": Condemn writes both
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		return nil
	}
	if err := s.obj.Sync(ctx); err != nil {
		return fmt.Errorf("mark packs for deletion: %w", err)
	}
	s.forgetCondemned()
	return nil
}

// putStored writes to the storage itself, never staged (storage.Storer).
func (s *Store) putStored(ctx context.Context, name string, data []byte) error {
	if st, ok := s.obj.(storage.Storer); ok {
		return st.PutStored(ctx, name, data)
	}
	return s.obj.Put(ctx, name, data)
}

// getStored reads the storage's copy, never a cached or staged one.
func (s *Store) getStored(ctx context.Context, name string) ([]byte, error) {
	if st, ok := s.obj.(storage.Storer); ok {
		return st.GetStored(ctx, name)
	}
	return s.obj.Get(ctx, name)
}

// Pardon removes the marks of packs gc will not delete after all.
func (s *Store) Pardon(ctx context.Context, ids []string) error {
	err := eachID(ctx, ids, func(ctx context.Context, id string) error {
		return s.obj.Delete(ctx, condemnedName(id))
	})
	s.forgetCondemned()
	return err
}

// MarkNotes reads the marks of ids: what each says, for those marked. gc
// reads them after marking and again before deleting, and deletes only
// packs whose mark stayed the same all along: a mark removed meanwhile (by
// another gc's pardon) let saves reuse the pack.
func (s *Store) MarkNotes(ctx context.Context, ids []string) (map[string]string, error) {
	notes := map[string]string{}
	var mu sync.Mutex
	err := eachID(ctx, ids, func(ctx context.Context, id string) error {
		// The storage's copy: another gc may rewrite a mark (never a
		// cached copy), and what other machines see is what counts
		// (never a staged one).
		b, err := s.getStored(ctx, condemnedName(id))
		if storage.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read the mark of pack %s: %w", id, err)
		}
		mu.Lock()
		notes[id] = string(b)
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return notes, nil
}

// bulkRequests is how many requests a bulk operation on marks or packs
// has in flight: one at a time, 2,000 doomed packs cost gc thousands of
// round trips in a row (a minute or more at S3's latency).
const bulkRequests = 16

// eachID runs fn for each id, bulkRequests at a time; the first error
// stops those not begun and is returned once the others end.
func eachID[T any](ctx context.Context, ids []T, fn func(context.Context, T) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(bulkRequests)
	for _, id := range ids {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error { return fn(gctx, id) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err() // ids not begun: the caller's context ended
}

// Condemned lists the packs marked for deletion.
func (s *Store) Condemned(ctx context.Context) (map[string]bool, error) {
	marks := map[string]bool{}
	err := s.obj.List(ctx, condemnedPrefix, func(i storage.Info) error {
		if id := strings.TrimPrefix(i.Name, condemnedPrefix); isPackID(id) { // not another root's below gc/
			marks[id] = true
		}
		return nil
	})
	return marks, err
}

// KeepDeletedMarks is how long the mark of a pack gc deleted stays: a
// save elsewhere that saw the pack in storage less than packSeenFor ago
// would reuse its chunks without the mark (a short --settle ends before).
const KeepDeletedMarks = 5 * time.Minute

// MarkTimes lists the packs marked for deletion with when each mark was
// written.
func (s *Store) MarkTimes(ctx context.Context) (map[string]time.Time, error) {
	marks := map[string]time.Time{}
	err := s.obj.List(ctx, condemnedPrefix, func(i storage.Info) error {
		if id := strings.TrimPrefix(i.Name, condemnedPrefix); isPackID(id) { // not another root's below gc/
			marks[id] = i.ModTime
		}
		return nil
	})
	return marks, err
}

func (s *Store) forgetCondemned() {
	s.seenMu.Lock()
	s.condAt = time.Time{}
	s.seenMu.Unlock()
}

// condemnedNow returns the marks, listed again when the last list is older
// than maxAge, and when that list was taken.
func (s *Store) condemnedNow(ctx context.Context, maxAge time.Duration) (map[string]bool, time.Time, error) {
	s.seenMu.Lock()
	if !s.condAt.IsZero() && time.Since(s.condAt) <= maxAge {
		defer s.seenMu.Unlock()
		return s.cond, s.condAt, nil
	}
	s.seenMu.Unlock()
	at := time.Now()
	marks, err := s.Condemned(ctx)
	if err != nil {
		return nil, time.Time{}, err
	}
	s.seenMu.Lock()
	defer s.seenMu.Unlock()
	if at.After(s.condAt) {
		s.cond, s.condAt = marks, at
	}
	return marks, at, nil
}

// condemnedWait bounds a listing of the marks for a reuse decision, and
// condemnedRetry is how long a failed one is not tried again (variables
// for tests).
var (
	condemnedWait  = 5 * time.Second
	condemnedRetry = 30 * time.Second
)

// dropCondemned removes from found the blobs of packs marked for deletion
// and returns when the marks were listed. When they cannot be listed it
// reuses only packs this machine can put back should gc delete them
// (protect): a chunk stored twice costs space, one
// reused from a pack being deleted costs the version.
//
// The listing gets condemnedWait, and after one fails the next comes only
// condemnedRetry later; none is tried while the storage is known not to
// answer: a close of content the instance already stores ran the
// storage's whole retry budget (a minute on a hung server) each time
// while the storage was away, though writes are meant to queue.
func (s *Store) dropCondemned(found map[ref.Digest]Loc, protected map[string]bool) time.Time {
	if len(found) == 0 {
		return time.Time{}
	}
	unlisted := func() time.Time {
		// A pack seen in storage within packSeenFor was not checked by
		// dropGone; without the marks it needs a copy all the same.
		ok := map[string]bool{}
		for _, l := range found {
			if _, done := ok[l.Pack]; !done {
				ok[l.Pack] = protected[l.Pack] || s.protect(l.Pack)
			}
		}
		for d, l := range found {
			if !ok[l.Pack] {
				delete(found, d)
			}
		}
		if len(found) == 0 {
			return time.Time{}
		}
		return time.Now() // the decision's time, for Commit's recheck
	}
	s.seenMu.Lock()
	failed := s.condFailed
	s.seenMu.Unlock()
	if (!failed.IsZero() && time.Since(failed) < condemnedRetry) || s.storageAway() {
		return unlisted()
	}
	ctx, cancel := context.WithTimeout(retry.FailFast(context.Background()), condemnedWait)
	defer cancel()
	marks, at, err := s.condemnedNow(ctx, condemnedFresh)
	s.seenMu.Lock()
	if err != nil {
		s.condFailed = time.Now()
	} else {
		s.condFailed = time.Time{}
	}
	s.seenMu.Unlock()
	if err != nil {
		return unlisted()
	}
	gone := map[string]bool{}
	for d, l := range found {
		if marks[l.Pack] {
			delete(found, d)
			gone[l.Pack] = true
		}
	}
	if len(gone) > 0 {
		// The chunks are stored again; the index must name the new copies,
		// or every save until gc would store them once more. (A pack gc
		// pardons loses its index entries: a second copy at worst.)
		_ = s.idx.RemovePacks(gone)
	}
	return at
}

// noteReuse records the packs of blobs found in the index and when the marks
// that allowed their reuse were listed.
func (w *Writer) noteReuse(found map[ref.Digest]Loc, at time.Time) {
	if len(found) == 0 || at.IsZero() { // none from the index
		return
	}
	if w.reused == nil {
		w.reused = map[string]bool{}
	}
	for _, l := range found {
		w.reused[l.Pack] = true
	}
	if w.reusedAt.IsZero() || at.Before(w.reusedAt) {
		w.reusedAt = at
	}
}

// recheckReuse makes sure, when the session's reuse decisions are older
// than reuseRecheck, that none of the packs it reused has been marked for
// deletion or deleted since.
func (w *Writer) recheckReuse(ctx context.Context) error {
	w.mu.Lock()
	packs, at := maps.Clone(w.reused), w.reusedAt
	w.mu.Unlock()
	if len(packs) == 0 || time.Since(at) <= reuseRecheck {
		return nil
	}
	for p := range packs {
		if w.s.protected(p) {
			delete(packs, p) // put back if gc deletes it (Uploads.StageRestore)
		}
	}
	if len(packs) == 0 {
		return nil
	}
	marks, now, err := w.s.condemnedNow(ctx, 0)
	if err != nil {
		return fmt.Errorf("check the data this save reused: %w", err)
	}
	for p := range packs {
		if marks[p] {
			return ErrReusedPackCondemned
		}
		if _, err := w.s.obj.Stat(ctx, packName(p)); err != nil {
			if storage.IsNotFound(err) {
				return ErrReusedPackCondemned
			}
			return fmt.Errorf("check the data this save reused: %w", err)
		}
	}
	w.mu.Lock()
	w.reusedAt = now
	w.mu.Unlock()
	return nil
}

// Marked reports which of packs gc has marked for deletion, on a list of
// marks at most condemnedFresh old (listed within condemnedWait).
func (s *Store) Marked(ctx context.Context, packs []string) (map[string]bool, error) {
	ctx, cancel := context.WithTimeout(retry.FailFast(ctx), condemnedWait)
	defer cancel()
	marks, _, err := s.condemnedNow(ctx, condemnedFresh)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, p := range packs {
		if marks[p] {
			out[p] = true
		}
	}
	return out, nil
}
