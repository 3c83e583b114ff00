package instance

import (
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

// Tombstones is a mount's queue of tombstones (RecordPurged): a local
// folder where each purge's uids wait until storage has them, so that an
// unmount, a kill or a storage outage does not lose one (import-catalog
// would then ask for --partial for versions that are gone, and gc would
// free their data). A purge goes
//
//	id, err := q.Prepare(vs) // fsynced before the purge: no purge without it
//	purged, err := cat.PurgeTrashed(…)
//	q.Done(id, purged)       // whether it committed or not
//
// Before a tombstone goes to storage, its uids are looked up in the catalog
// and those it still has are left out: a purge that failed, or that a crash
// stopped before it committed, leaves a file naming live versions, and a
// tombstone must never name one (uids are not reused). A background writer
// retries a failed write with backoff; Close makes a last try, and Recover,
// at the next start, takes up what is left.
type Tombstones struct {
	dir string
	b   storage.Backend
	cat interface {
		ByUID(ctx context.Context, uid string) (catalog.Version, error)
	}
	log *slog.Logger
	// Retry is the first wait after a failed write; it doubles up to
	// maxTombstoneRetry.
	Retry time.Duration

	mu    sync.Mutex
	ready []string        // ids whose purge is over, to write in order
	open  map[string]bool // ids prepared and not yet Done: never written
	wake  chan struct{}
	stop  context.CancelFunc
	done  chan struct{}
	fmu   sync.Mutex // one flush at a time
}

const maxTombstoneRetry = time.Minute

// OpenTombstones keeps its queue in dir, writes to b and checks uids in
// cat. Recover takes up what an earlier process left; Start starts the
// writer.
func OpenTombstones(dir string, cat catalog.Catalog, b storage.Backend, log *slog.Logger) (*Tombstones, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("tombstones: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Tombstones{dir: dir, b: b, cat: cat, log: log, Retry: time.Second, open: map[string]bool{}, wake: make(chan struct{}, 1)}, nil
}

// Prepare writes, and syncs, the uids of vs as a tombstone to come; the
// caller purges only once it returns nil.
func (q *Tombstones) Prepare(vs []catalog.Version) (string, error) {
	name := strings.TrimPrefix(recordName(), "records/")
	id := strings.TrimSuffix(name, ".json")
	q.mu.Lock()
	q.open[id] = true
	q.mu.Unlock()
	if err := q.write(id, uidsOf(vs)); err != nil {
		q.mu.Lock()
		delete(q.open, id)
		q.mu.Unlock()
		return "", err
	}
	return id, nil
}

// Done says the purge Prepare announced is over: purged is what it deleted
// (none if it failed). The tombstone is written in the background.
func (q *Tombstones) Done(id string, purged []catalog.Version) {
	if len(purged) > 0 {
		// The purge may have deleted more than Prepare was told of (a
		// version trashed at the key since): the file must name them too.
		uids, err := q.read(id)
		if err == nil {
			n := len(uids)
			for _, u := range uidsOf(purged) {
				if !slices.Contains(uids, u) {
					uids = append(uids, u)
				}
			}
			if len(uids) > n {
				err = q.write(id, uids)
			}
		}
		if err != nil {
			q.log.Warn("lamina mount: could not queue the record of versions deleted for good; an import-catalog of this storage will ask for --partial for them", "err", err)
		}
	}
	q.mu.Lock()
	delete(q.open, id)
	q.ready = append(q.ready, id)
	q.mu.Unlock()
	q.kick()
}

// Recover queues what an earlier process left in the folder: files of
// purges a crash or an unmount left unwritten, or that storage refused.
func (q *Tombstones) Recover() error {
	ents, err := os.ReadDir(q.dir)
	if err != nil {
		return err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, e := range ents {
		n := e.Name()
		if strings.HasSuffix(n, ".tmp") {
			os.Remove(filepath.Join(q.dir, n)) // a Prepare that did not finish: no purge followed
			continue
		}
		id, ok := strings.CutSuffix(n, ".json")
		if !ok || q.open[id] || slices.Contains(q.ready, id) {
			continue
		}
		q.ready = append(q.ready, id)
	}
	slices.Sort(q.ready) // ids begin with the time: oldest first
	if len(q.ready) > 0 {
		q.kick()
	}
	return nil
}

// Pending is how many tombstones wait for storage.
func (q *Tombstones) Pending() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.ready) + len(q.open)
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
// is left waits in the folder for the next Recover.
func (q *Tombstones) Close(ctx context.Context) error {
	if q.stop != nil {
		q.stop()
		<-q.done
	}
	if err := q.Flush(ctx); err != nil {
		return fmt.Errorf("%d tombstones not written, kept for the next mount: %w", q.Pending(), err)
	}
	return nil
}

// Flush writes the tombstones ready, in order, to storage, and removes
// their files once storage has them. It stops at the first failure.
func (q *Tombstones) Flush(ctx context.Context) error {
	q.fmu.Lock()
	defer q.fmu.Unlock()
	q.mu.Lock()
	ids := slices.Clone(q.ready)
	q.mu.Unlock()
	var written []string
	var err error
	for _, id := range ids {
		if err = q.put(ctx, id); err != nil {
			break
		}
		written = append(written, id)
	}
	if len(written) > 0 {
		if serr := q.b.Sync(ctx); serr != nil {
			return serr // all kept: written again (same names) next time
		}
		for _, id := range written {
			os.Remove(filepath.Join(q.dir, id+".json"))
		}
		q.mu.Lock()
		q.ready = slices.DeleteFunc(q.ready, func(id string) bool { return slices.Contains(written, id) })
		q.mu.Unlock()
	}
	return err
}

// put writes id's tombstone to storage, without the uids the catalog
// still has (a purge that did not commit); it writes nothing if none is
// left. A put repeated after a crash replaces the same object.
func (q *Tombstones) put(ctx context.Context, id string) error {
	uids, err := q.read(id)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		// Not ours (files are renamed into place whole): it must not
		// hold up the others.
		q.log.Warn("lamina mount: unreadable tombstone file dropped", "file", filepath.Join(q.dir, id+".json"), "err", err)
		os.Remove(filepath.Join(q.dir, id+".json"))
		return nil
	}
	if err != nil {
		return err
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
	if len(gone) == 0 {
		return nil
	}
	data, err := json.Marshal(tombstone{Purged: gone})
	if err != nil {
		return err
	}
	return q.b.Put(ctx, "records/"+id+".json", data)
}

func (q *Tombstones) read(id string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(q.dir, id+".json"))
	if err != nil {
		return nil, err
	}
	var t tombstone
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("tombstone %s: %w", id, err)
	}
	return t.Purged, nil
}

// write replaces id's file, synced, through a temporary file.
func (q *Tombstones) write(id string, uids []string) error {
	data, err := json.Marshal(tombstone{Purged: uids})
	if err != nil {
		return err
	}
	tmp := filepath.Join(q.dir, id+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(q.dir, id+".json"))
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	d, err := os.Open(q.dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func uidsOf(vs []catalog.Version) []string {
	uids := make([]string, len(vs))
	for i, v := range vs {
		uids[i] = v.UID
	}
	return uids
}
