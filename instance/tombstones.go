package instance

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/storage"
)

// Tombstones is a mount's queue of tombstones (RecordPurged): a log in a
// local folder where each purge's uids wait until storage has them, so
// that an unmount, a kill or a storage outage does not lose one
// (import-catalog would then ask for --partial for versions that are gone,
// and gc would free their data). A purge goes
//
//	id, err := q.Prepare(vs) // logged before the purge: no purge without it
//	purged, err := cat.PurgeTrashed(…)
//	q.Done(id, purged)       // whether it committed or not
//
// Before a tombstone goes to storage, its uids are looked up in the catalog
// and those it still has are left out: a purge that failed, or that a crash
// stopped before it committed, leaves a line naming live versions, and a
// tombstone must never name one (uids are not reused). A background writer
// puts what is ready as one tombstone, retrying a failed write with
// backoff; Close makes a last try, and Recover, at the next start, takes up
// what is left.
//
// The log is appended with one write(2) per purge, without fsync, as the
// stage's journal is: a killed daemon loses nothing the kernel has, and
// the rename that purges (a FUSE request) pays for no file to create or
// sync. The writer syncs it before it writes to storage; a machine that
// loses power within that moment loses the tombstone (the import then asks
// for --partial, as for a purge by a lamina from before tombstones).
type Tombstones struct {
	path string
	b    storage.Backend
	cat  interface {
		ByUID(ctx context.Context, uid string) (catalog.Version, error)
	}
	log *slog.Logger
	// Retry is the first wait after a failed write; it doubles up to
	// maxTombstoneRetry.
	Retry time.Duration

	mu      sync.Mutex // guards the fields below
	f       *os.File   // the log, open for appending; nil until the first line
	pending map[string][]string
	open    map[string]bool // ids prepared and not yet Done: never written
	ready   []string        // ids whose purge is over, to write in order

	wake chan struct{}
	stop context.CancelFunc
	done chan struct{}
	fmu  sync.Mutex // one Flush at a time; taken before mu
}

// tombLine is a line of the log: the uids of a purge to come (more lines
// of one id add to it), or that id's tombstone is in storage.
type tombLine struct {
	ID      string   `json:"id"`
	Purged  []string `json:"purged,omitempty"`
	Written bool     `json:"written,omitempty"`
}

const maxTombstoneRetry = time.Minute

// OpenTombstones keeps its log in dir, writes to b and checks uids in cat.
// Recover takes up what an earlier process left; Start starts the writer.
func OpenTombstones(dir string, cat catalog.Catalog, b storage.Backend, log *slog.Logger) (*Tombstones, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("tombstones: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Tombstones{path: filepath.Join(dir, "queue"), b: b, cat: cat, log: log, Retry: time.Second,
		pending: map[string][]string{}, open: map[string]bool{}, wake: make(chan struct{}, 1)}, nil
}

// Prepare logs the uids of vs as a tombstone to come; the caller purges
// only once it returns nil.
func (q *Tombstones) Prepare(vs []catalog.Version) (string, error) {
	id := strings.TrimSuffix(strings.TrimPrefix(recordName(), "records/"), ".json")
	uids := uidsOf(vs)
	q.mu.Lock()
	defer q.mu.Unlock()
	if err := q.appendLocked(tombLine{ID: id, Purged: uids}); err != nil {
		return "", err
	}
	q.pending[id] = uids
	q.open[id] = true
	return id, nil
}

// Done says the purge Prepare announced is over: purged is what it deleted
// (none if it failed). The tombstone is written in the background.
func (q *Tombstones) Done(id string, purged []catalog.Version) {
	q.mu.Lock()
	// The purge may have deleted more than Prepare was told of (a version
	// trashed at the key since): the log must name them too.
	var more []string
	for _, u := range uidsOf(purged) {
		if !slices.Contains(q.pending[id], u) {
			more = append(more, u)
		}
	}
	if len(more) > 0 {
		if err := q.appendLocked(tombLine{ID: id, Purged: more}); err != nil {
			q.log.Warn("lamina mount: could not queue the record of versions deleted for good; an import-catalog of this storage will ask for --partial for them", "err", err)
		}
		q.pending[id] = append(q.pending[id], more...)
	}
	delete(q.open, id)
	q.ready = append(q.ready, id)
	q.mu.Unlock()
	q.kick()
}

// appendLocked appends l to the log in one write.
func (q *Tombstones) appendLocked(ls ...tombLine) error {
	var b []byte
	for _, l := range ls {
		line, err := json.Marshal(l)
		if err != nil {
			return err
		}
		b = append(append(b, line...), '\n')
	}
	if q.f == nil {
		f, err := os.OpenFile(q.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("tombstones: %w", err)
		}
		q.f = f
	}
	if _, err := q.f.Write(b); err != nil {
		return fmt.Errorf("tombstones: %w", err)
	}
	return nil
}

// Recover queues what an earlier process left in the log: purges a crash
// or an unmount left unwritten, or that storage refused. Call it before
// the first Prepare.
func (q *Tombstones) Recover() error {
	f, err := os.Open(q.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	q.mu.Lock()
	defer q.mu.Unlock()
	var order []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		var l tombLine
		if json.Unmarshal(sc.Bytes(), &l) != nil || l.ID == "" {
			continue // a line cut by a machine's crash: its purge is unrecorded
		}
		if l.Written {
			delete(q.pending, l.ID)
			continue
		}
		if _, ok := q.pending[l.ID]; !ok {
			order = append(order, l.ID)
		}
		q.pending[l.ID] = append(q.pending[l.ID], l.Purged...)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("tombstones: %w", err)
	}
	var lines []tombLine
	for _, id := range order {
		if uids, ok := q.pending[id]; ok && !slices.Contains(q.ready, id) {
			q.ready = append(q.ready, id)
			lines = append(lines, tombLine{ID: id, Purged: uids})
		}
	}
	// The log afresh with what waits: no line written, none cut short
	// that an append would run on.
	if err := q.rewriteLocked(lines); err != nil {
		return err
	}
	if len(q.ready) > 0 {
		q.kick()
	}
	return nil
}

// rewriteLocked replaces the log with lines (removes it if none).
func (q *Tombstones) rewriteLocked(lines []tombLine) error {
	if q.f != nil {
		q.f.Close()
		q.f = nil
	}
	if len(lines) == 0 {
		if err := os.Remove(q.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("tombstones: %w", err)
		}
		return nil
	}
	var b []byte
	for _, l := range lines {
		line, err := json.Marshal(l)
		if err != nil {
			return err
		}
		b = append(append(b, line...), '\n')
	}
	tmp := q.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("tombstones: %w", err)
	}
	_, err = f.Write(b)
	err = errors.Join(err, f.Sync(), f.Close())
	if err == nil {
		err = os.Rename(tmp, q.path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("tombstones: %w", err)
	}
	return nil
}

// Pending is how many purges wait for their tombstone.
func (q *Tombstones) Pending() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.pending)
}

// Start starts the background writer.
func (q *Tombstones) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	q.stop, q.done = cancel, make(chan struct{})
	go q.run(ctx)
}

func (q *Tombstones) kick() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *Tombstones) run(ctx context.Context) {
	defer close(q.done)
	wait := time.Duration(0)
	var retry <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-q.wake:
		case <-retry:
		}
		if err := q.Flush(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			if wait == 0 {
				q.log.Warn("lamina mount: could not record in storage versions deleted for good; retrying", "err", err)
			}
			wait = min(max(2*wait, q.Retry), maxTombstoneRetry)
			retry = time.After(wait)
			continue
		}
		wait, retry = 0, nil
	}
}

// Close stops the writer and makes a last try with ctx (unmount); what
// is left waits in the log for the next Recover.
func (q *Tombstones) Close(ctx context.Context) error {
	if q.stop != nil {
		q.stop()
		<-q.done
	}
	err := q.Flush(ctx)
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.f != nil {
		err = errors.Join(err, q.f.Sync(), q.f.Close())
		q.f = nil
	}
	if err != nil {
		return fmt.Errorf("%d purges not recorded in storage, kept for the next mount: %w", len(q.pending), err)
	}
	return nil
}

// Flush writes the purges ready as one tombstone, named after the first,
// and logs them written once storage has it. A write repeated after a
// crash replaces the same object, or, with more purges, names some uids
// twice: harmless.
func (q *Tombstones) Flush(ctx context.Context) error {
	q.fmu.Lock()
	defer q.fmu.Unlock()
	q.mu.Lock()
	ids := slices.Clone(q.ready)
	var uids []string
	for _, id := range ids {
		uids = append(uids, q.pending[id]...)
	}
	var serr error
	if q.f != nil && len(ids) > 0 {
		serr = q.f.Sync() // a storage write that fails leaves them here
	}
	q.mu.Unlock()
	if len(ids) == 0 {
		return nil
	}
	if serr != nil {
		return fmt.Errorf("tombstones: %w", serr)
	}
	var gone []string
	for _, u := range uids {
		_, err := q.cat.ByUID(ctx, u)
		if errors.Is(err, catalog.ErrNotFound) {
			gone = append(gone, u)
		} else if err != nil {
			return err
		}
	}
	if len(gone) > 0 {
		data, err := json.Marshal(tombstone{Purged: gone})
		if err != nil {
			return err
		}
		if err := q.b.Put(ctx, "records/"+ids[0]+".json", data); err != nil {
			return err
		}
		if err := q.b.Sync(ctx); err != nil {
			return err
		}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, id := range ids {
		delete(q.pending, id)
	}
	q.ready = slices.DeleteFunc(q.ready, func(id string) bool { return slices.Contains(ids, id) })
	if len(q.pending) == 0 {
		// Nothing waits: the log starts afresh (appends go to its end).
		if q.f != nil {
			return q.f.Truncate(0)
		}
		return q.rewriteLocked(nil) // Recover's, written by an earlier process
	}
	done := make([]tombLine, len(ids))
	for i, id := range ids {
		done[i] = tombLine{ID: id, Written: true}
	}
	return q.appendLocked(done...)
}

func uidsOf(vs []catalog.Version) []string {
	uids := make([]string, len(vs))
	for i, v := range vs {
		uids[i] = v.UID
	}
	return uids
}
