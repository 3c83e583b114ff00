package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lamina-bio/lamina/storage"
	"golang.org/x/sys/unix"
)

// Uploads is a storage.Backend decorator that makes writes durable locally
// and uploads them in the background: a Put writes the object into a
// staging folder (and, at Sync, fsyncs it), a pool of workers uploads the
// staged objects to the backend in parallel, and an object leaves the
// folder only once the backend has it. Until then reads of it are served
// from the folder. The folder is the queue: whatever a crash or a kill
// leaves there is found and uploaded at the next start, so a write that
// Sync acknowledged is never lost.
//
// An upload that fails is retried with backoff for as long as the process
// runs (a retry decorator below handles the short faults); it never fails a
// write. With SyncUpload (the CLI), Put uploads directly from memory and
// stages an object only when the backend fails, and Sync also waits until
// everything written before it is uploaded: the save path then writes no
// byte to the local disk (docs/s3-bench.md has the measurements).
type Uploads struct {
	b        storage.Backend
	dir      string
	log      *slog.Logger
	sync     bool
	workers  int
	maxDelay time.Duration

	ctx    context.Context // cancelled by Close: stops the workers
	cancel context.CancelFunc
	wg     sync.WaitGroup
	lock   *os.File // held while this process owns the queue; nil if another does

	mu       sync.Mutex // guards everything below
	cond     *sync.Cond // signalled when an item is uploaded or queued
	items    map[string]*upItem
	queue    []*upItem
	seq      uint64 // last sequence number handed out
	unsynced []string
	done     int64 // objects uploaded since the start
	doneB    int64 // bytes uploaded since the start
	fails    int64
	lastErr  string
	closed   bool
	uploaded func(name string, data []byte) // OnUploaded
	allow    func(ctx context.Context, name string) error
	onLost   func(names []string) // UploadOptions.OnLost
}

type upItem struct {
	name      string
	size      int64
	seq       uint64
	uploading bool
	deleted   bool
	attempts  int
	// foreign: staged by the process that owns the queue; this one reads
	// it while it is there but leaves its upload to the owner.
	foreign bool
	// deferred: a write-through Put that failed past the retry budget and
	// was staged for the queue: Sync does not wait for it (the server may
	// be away for hours).
	deferred bool
	// lost: its staged file vanished with the folder before its upload
	// (logged once).
	lost bool
	// mine: staged by this process's Put (no other process removes it).
	mine bool
	// held: UploadOptions.Allow refused its upload for good (ErrHold):
	// it stays staged, and this process no longer tries it.
	held    bool
	heldWhy string
}

// ErrHold, wrapped in what UploadOptions.Allow returns, keeps a staged
// object out of the uploads of this process for good: it stays in the
// staging folder (Pending lists it as held). Any other error from Allow
// counts as a failed attempt, retried.
var ErrHold = errors.New("kept staged, not uploaded")

var (
	_ storage.Backend = (*Uploads)(nil)
	_ storage.Storer  = (*Uploads)(nil)
)

// UploadOptions configure Uploads.
type UploadOptions struct {
	Workers    int           // parallel uploads; 8 when zero
	SyncUpload bool          // Sync waits for the uploads
	MaxDelay   time.Duration // longest wait between attempts of a failing upload; 1 min when zero
	AdoptEvery time.Duration // how often the owner looks for what other processes staged; 1 min when zero
	Logger     *slog.Logger
	// Allow, if set, is asked before each upload of a staged object and
	// before a write-through Put (SyncUpload; not PutStored): an error
	// wrapping ErrHold holds the object (the storage was taken over, and
	// only immutable objects may still go), any other fails the attempt.
	// A write-through Put it holds returns that error and stages nothing:
	// the caller is there to say so.
	Allow func(ctx context.Context, name string) error
	// OnLost is called with the names of staged objects whose files
	// vanished before their upload (the folder removed from outside): the
	// caller keeps a record that outlives the process, so that status
	// goes on saying what is lost after a restart (the queue no longer
	// knows them then).
	OnLost func(names []string)
}

// OpenUploads opens the staging folder dir in front of b and starts the
// workers. One process at a time owns the folder's queue (a lock file): the
// owner uploads what earlier runs and other processes left there; any other
// (the CLI while a mount daemon runs) reads those objects from the folder
// while they are there, uploads only what it stages itself, and leaves the
// rest to the owner, so no object is uploaded by two processes that then
// each try to remove it.
func OpenUploads(b storage.Backend, dir string, o UploadOptions) (*Uploads, error) {
	if o.Workers <= 0 {
		o.Workers = 8
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = time.Minute
	}
	if o.AdoptEvery <= 0 {
		o.AdoptEvery = time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("uploads: %w", err)
	}
	u := &Uploads{b: b, dir: dir, log: o.Logger, sync: o.SyncUpload, workers: o.Workers, maxDelay: o.MaxDelay, items: map[string]*upItem{}, allow: o.Allow, onLost: o.OnLost}
	u.cond = sync.NewCond(&u.mu)
	u.ctx, u.cancel = context.WithCancel(context.Background())
	lock, err := lockQueue(dir)
	if err != nil {
		return nil, err
	}
	u.lock = lock
	if n, bytes, err := u.adopt(); err != nil {
		u.unlock()
		return nil, err
	} else if n > 0 && lock != nil {
		u.log.Info("resuming uploads left by an earlier run", "objects", n, "bytes", bytes)
	}
	for i := 0; i < u.workers; i++ {
		u.wg.Add(1)
		go u.worker()
	}
	u.wg.Add(1)
	go u.adoptEvery(o.AdoptEvery)
	return u, nil
}

// lockQueue takes the queue's lock without waiting: nil, nil when another
// process holds it.
func lockQueue(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, queueLock), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("uploads: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, nil
		}
		return nil, fmt.Errorf("uploads: lock %s: %w", f.Name(), err)
	}
	return f, nil
}

// queueLock is the lock file of a staging folder; not an object.
const queueLock = ".lock"

// QueueOwned reports whether a process holds the queue of dir (a daemon
// still uploading after its mount is gone, say).
func QueueOwned(dir string) bool {
	f, err := lockQueue(dir)
	if err != nil || f == nil {
		return err == nil
	}
	f.Close()
	return false
}

func (u *Uploads) unlock() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.lock != nil {
		u.lock.Close()
		u.lock = nil
	}
}

// adopt learns the staged objects it does not know yet: queued when this
// process owns the queue, foreign otherwise. It returns how many.
func (u *Uploads) adopt() (int, int64, error) {
	staged, err := ScanUploads(u.dir)
	if err != nil {
		return 0, 0, err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	n, size := 0, int64(0)
	for _, p := range staged.Items {
		if u.items[p.Name] != nil {
			continue
		}
		u.seq++
		it := &upItem{name: p.Name, size: p.Size, seq: u.seq, foreign: u.lock == nil}
		u.items[p.Name] = it
		if !it.foreign {
			u.queue = append(u.queue, it)
		}
		n++
		size += p.Size
	}
	u.cond.Broadcast()
	return n, size, nil
}

// adoptEvery makes this process the owner once the queue is free (the
// daemon that owned it stopped) and then adopts what other processes staged
// and left (a CLI save whose upload failed).
func (u *Uploads) adoptEvery(d time.Duration) {
	defer u.wg.Done()
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-u.ctx.Done():
			return
		case <-t.C:
		}
		if _, err := os.Stat(u.dir); errors.Is(err, fs.ErrNotExist) {
			u.restoreDir()
		}
		u.mu.Lock()
		owner := u.lock != nil
		u.mu.Unlock()
		if !owner {
			l, err := lockQueue(u.dir)
			if err != nil || l == nil {
				continue
			}
			u.mu.Lock()
			u.lock = l
			for _, it := range u.items {
				if it.foreign {
					it.foreign = false
					u.queue = append(u.queue, it)
				}
			}
			u.cond.Broadcast()
			u.mu.Unlock()
		}
		if n, _, err := u.adopt(); err == nil && n > 0 {
			u.log.Info("queued uploads another process staged", "objects", n)
		}
	}
}

// Pending lists staged objects.
type Pending struct {
	Objects   int           `json:"objects"`
	Bytes     int64         `json:"bytes"`
	Uploading int           `json:"uploading"`
	Uploaded  int64         `json:"uploaded_objects"` // since the start
	Failures  int64         `json:"failures"`         // failed attempts since the queue was last empty
	LastError string        `json:"last_error,omitempty"`
	Items     []PendingItem `json:"-"`
	// Held are staged objects this process will not upload (ErrHold),
	// not counted in Objects and Bytes; HeldWhy is why the first was.
	Held      []PendingItem `json:"held,omitempty"`
	HeldBytes int64         `json:"held_bytes,omitempty"`
	HeldWhy   string        `json:"held_why,omitempty"`
}

// PendingItem is one staged object.
type PendingItem struct {
	Name string
	Size int64
}

// ScanUploads reads what a staging folder holds, without uploading; for
// `lamina status` when no process has the queue open. Leftover temporary
// files of an interrupted Put are removed.
func ScanUploads(dir string) (Pending, error) {
	var p Pending
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return p, nil
	}
	if err != nil {
		return p, fmt.Errorf("uploads: %w", err)
	}
	for _, e := range ents {
		if e.Name() == queueLock {
			continue
		}
		if strings.Contains(e.Name(), ".tmp-") {
			if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > time.Hour {
				os.Remove(filepath.Join(dir, e.Name()))
			}
			continue
		}
		name, err := url.PathUnescape(e.Name())
		if err != nil || e.IsDir() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		p.Items = append(p.Items, PendingItem{Name: name, Size: info.Size()})
		p.Bytes += info.Size()
	}
	sort.Slice(p.Items, func(i, j int) bool { return p.Items[i].Name < p.Items[j].Name })
	p.Objects = len(p.Items)
	return p, nil
}

func (u *Uploads) path(name string) string { return filepath.Join(u.dir, url.PathEscape(name)) }

type throughKey struct{}

// WritingThrough reports whether Allow is asked by a write-through Put
// (UploadOptions.SyncUpload), not by the queue: the command that puts has
// just read what Allow checks, and may answer from that.
func WritingThrough(ctx context.Context) bool { return ctx.Value(throughKey{}) != nil }

// Put stages data under name and queues its upload. The bytes are durable
// after the next Sync. With SyncUpload, Put first uploads the bytes itself
// and stages them only if that fails.
func (u *Uploads) Put(ctx context.Context, name string, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if name == "" || strings.Contains(name, "..") {
		return fmt.Errorf("storage: bad object name %q", name)
	}
	if u.sync {
		// Write-through: Sync would wait for this upload anyway, so send
		// it now from memory instead of writing, fsyncing and reading it
		// back. Only if the backend fails (after the retry decorator's
		// budget) is it staged and left to the queue. What Allow holds
		// is refused here: the command that wrote it (a CLI's record of
		// a purge after a take-over) says so, and no staged copy waits.
		// Another answer of Allow (the owner not read in time) lets it
		// go: the command read the owner at its start.
		if u.allow != nil {
			if err := u.allow(context.WithValue(ctx, throughKey{}, true), name); errors.Is(err, ErrHold) {
				return err
			}
		}
		err := u.putThrough(ctx, name, data)
		if err == nil {
			return nil
		}
		if cerr := ctx.Err(); cerr != nil {
			return err
		}
		u.log.Warn("upload failed; staging it locally for the queue", "name", name, "err", err)
	}
	return u.stage(name, data, u.sync)
}

// stage writes data under name in the staging folder and queues it.
func (u *Uploads) stage(name string, data []byte, deferred bool) error {
	p := u.path(name)
	tmp := p + ".tmp-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if errors.Is(err, fs.ErrNotExist) && u.restoreDir() {
		f, err = os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	}
	if err != nil {
		return fmt.Errorf("uploads: stage %s: %w", name, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("uploads: stage %s: %w", name, err)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.seq++
	it := &upItem{name: name, size: int64(len(data)), seq: u.seq, deferred: deferred, mine: true}
	if old := u.items[name]; old != nil && !old.uploading {
		u.dropQueuedLocked(old)
	}
	u.items[name] = it
	u.queue = append(u.queue, it)
	u.unsynced = append(u.unsynced, name)
	u.cond.Broadcast()
	return nil
}

// putThrough uploads data under name from memory; once the backend has
// it, a staged older copy is dropped.
func (u *Uploads) putThrough(ctx context.Context, name string, data []byte) error {
	err := u.b.Put(ctx, name, data)
	if err != nil {
		if ctx.Err() == nil {
			u.mu.Lock()
			u.fails++
			u.lastErr = err.Error()
			u.mu.Unlock()
		}
		return err
	}
	u.mu.Lock()
	fn := u.uploaded
	u.mu.Unlock()
	if fn != nil {
		fn(name, data)
	}
	u.mu.Lock()
	if old := u.items[name]; old != nil && !old.uploading {
		u.dropQueuedLocked(old)
		delete(u.items, name)
		os.Remove(u.path(name))
	}
	u.done++
	u.doneB += int64(len(data))
	u.cond.Broadcast()
	u.mu.Unlock()
	return nil
}

// PutStored uploads data under name and returns the backend's error,
// with or without SyncUpload: it never stages the object. For objects
// other machines must see before this one acts on them (gc's marks, the
// instance's claim): staged, Put returns nil while the storage has nothing.
func (u *Uploads) PutStored(ctx context.Context, name string, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if name == "" || strings.Contains(name, "..") {
		return fmt.Errorf("storage: bad object name %q", name)
	}
	return u.putThrough(ctx, name, data)
}

// GetStored reads name from the backend, never the staged copy.
func (u *Uploads) GetStored(ctx context.Context, name string) ([]byte, error) {
	return u.b.Get(ctx, name)
}

// restoreDir makes the staging folder again after it vanished (someone
// removed the cache folder while in use: every Put failed with ENOENT until
// the next start) and logs, as an error, what was staged in it and is now
// lost. It reports whether the folder exists again.
func (u *Uploads) restoreDir() bool {
	if _, err := os.Stat(u.dir); errors.Is(err, fs.ErrNotExist) {
		u.log.Warn("uploads: the staging folder was removed while in use; making it again", "dir", u.dir)
	}
	if err := os.MkdirAll(u.dir, 0o700); err != nil {
		u.log.Error("uploads: the staging folder vanished and cannot be made again", "dir", u.dir, "err", err)
		return false
	}
	var lost []string
	defer func() {
		if len(lost) > 0 && u.onLost != nil {
			u.onLost(lost) // outside u.mu
		}
	}()
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.lock != nil {
		// The lock held is on a removed file: take the new folder's, or
		// another process could think the queue free.
		if l, err := lockQueue(u.dir); err == nil && l != nil {
			u.lock.Close()
			u.lock = l
		}
	}
	var bytes int64
	for name, it := range u.items {
		if it.lost {
			continue
		}
		if _, err := os.Stat(u.path(name)); errors.Is(err, fs.ErrNotExist) {
			it.lost = true
			lost = append(lost, name)
			bytes += it.size
		}
	}
	if len(lost) > 0 {
		sort.Strings(lost)
		u.log.Error("uploads: data staged and not yet uploaded to S3 was removed from the upload queue's folder while in use (deleted by hand or by a cleaner?): it is lost, and the versions that use it cannot be read", "dir", u.dir, "objects", len(lost), "bytes", bytes, "names", lost)
	}
	return true
}

// OnUploaded has the workers (and Put, with SyncUpload) call fn with the
// bytes of each object once the backend has it, before any staged file is
// removed: the mount
// hands them to the disk cache (DiskCache.Keep), so that what was written
// and uploaded still reads, and appends, with the server away. Without it
// the bytes left the machine with the staged file, and the first read
// after the upload had to fetch them. A crash between the upload and fn
// loses nothing: the object is in the backend.
func (u *Uploads) OnUploaded(fn func(name string, data []byte)) {
	u.mu.Lock()
	u.uploaded = fn
	u.mu.Unlock()
}

func (u *Uploads) dropQueuedLocked(it *upItem) {
	for i, q := range u.queue {
		if q == it {
			u.queue = append(u.queue[:i], u.queue[i+1:]...)
			return
		}
	}
}

func (u *Uploads) worker() {
	defer u.wg.Done()
	for {
		u.mu.Lock()
		for len(u.queue) == 0 && !u.closed {
			u.cond.Wait()
		}
		if u.closed {
			u.mu.Unlock()
			return
		}
		it := u.queue[0]
		u.queue = u.queue[1:]
		it.uploading = true
		u.mu.Unlock()

		data, err := u.upload(it)
		if err == nil && data != nil {
			u.mu.Lock()
			fn := u.uploaded
			current := u.items[it.name] == it && !it.deleted
			u.mu.Unlock()
			if fn != nil && current {
				fn(it.name, data)
			}
		}

		u.mu.Lock()
		it.uploading = false
		if err != nil && errors.Is(err, ErrHold) {
			if u.items[it.name] == it && !u.closed {
				it.held, it.heldWhy = true, err.Error()
				u.log.Warn("upload held: the object stays staged", "name", it.name, "dir", u.dir, "why", err)
			}
			u.cond.Broadcast()
			u.mu.Unlock()
			continue
		}
		if err != nil {
			it.attempts++
			u.fails++
			u.lastErr = err.Error()
			if u.closed || u.items[it.name] != it {
				u.mu.Unlock()
				continue
			}
			delay := min(u.maxDelay, time.Duration(1<<min(it.attempts, 20))*100*time.Millisecond)
			u.log.Warn("upload failed; it stays staged and is retried", "name", it.name, "attempt", it.attempts, "wait", delay, "err", err)
			u.mu.Unlock()
			go func() {
				select {
				case <-time.After(delay):
				case <-u.ctx.Done():
					return
				}
				u.mu.Lock()
				if u.items[it.name] == it && !u.closed {
					u.queue = append(u.queue, it)
					u.cond.Broadcast()
				}
				u.mu.Unlock()
			}()
			continue
		}
		u.done++
		u.doneB += it.size
		if u.items[it.name] == it {
			delete(u.items, it.name)
			os.Remove(u.path(it.name))
		}
		if u.fails > 0 && u.pendingLocked().Objects == 0 { // a scan of the items only after failures
			// An outage that is over is no news: status and umount stop
			// quoting its last error.
			u.fails, u.lastErr = 0, ""
		}
		u.cond.Broadcast()
		u.mu.Unlock()
	}
}

// upload sends the staged object to the backend and returns its bytes (nil
// when there was nothing to upload).
func (u *Uploads) upload(it *upItem) ([]byte, error) {
	data, err := os.ReadFile(u.path(it.name))
	if errors.Is(err, fs.ErrNotExist) {
		u.mu.Lock()
		mine := it.mine
		u.mu.Unlock()
		if _, serr := os.Stat(u.dir); mine || errors.Is(serr, fs.ErrNotExist) {
			// Staged by this process, which alone removes it: removed
			// from outside (rm -rf of the cache folder). Say what is lost.
			u.restoreDir()
		}
		// Uploaded and removed by the process that staged it (a CLI
		// whose retry went through): nothing left to do.
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read staged %s: %w", it.name, err)
	}
	u.mu.Lock()
	if u.items[it.name] != it {
		// Replaced or deleted while waiting: nothing of this one to do.
		u.mu.Unlock()
		return nil, nil
	}
	u.mu.Unlock()
	name := it.name
	if target, ok := strings.CutSuffix(name, restoreSuffix); ok {
		put, err := u.restoreNeeded(target)
		if err != nil || !put {
			return nil, err // present: nothing to upload, the copy goes
		}
		name = target
	}
	if u.allow != nil {
		if err := u.allow(u.ctx, name); err != nil {
			return nil, err
		}
	}
	if err := u.b.Put(u.ctx, name, data); err != nil {
		return nil, err
	}
	if name != it.name {
		return nil, nil // a pack put back: not this process's write to keep in the cache
	}
	u.mu.Lock()
	deleted := it.deleted
	u.mu.Unlock()
	if deleted {
		return nil, u.b.Delete(u.ctx, it.name)
	}
	return data, nil
}

// restoreSuffix names the staged copy of a pack a close reused while the
// storage did not answer (StageRestore).
const restoreSuffix = "#restore"

// StageRestore stages data, the bytes of the pack name as this machine
// has them (its block cache), to be put back if the storage turns out to
// have lost the pack. A close that reuses a pack it cannot check (the
// storage away) keeps its version safe so without waiting: once the
// storage answers, the queue drops the copy if the pack is there and not
// marked by gc, and uploads it if gc deleted it (or the bucket lost it);
// while a mark is on it the copy waits for gc's decision.
func (u *Uploads) StageRestore(name string, data []byte) error {
	if u.Restoring(name) {
		return nil
	}
	// Deferred: Sync (a CLI's save) does not wait for the storage to
	// come back to settle it.
	return u.stage(name+restoreSuffix, data, true)
}

// Restoring reports whether a copy of name is staged to be put back.
func (u *Uploads) Restoring(name string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	it := u.items[name+restoreSuffix]
	return it != nil && !it.deleted
}

// Staged reports whether name is staged (not uploaded yet).
func (u *Uploads) Staged(name string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	it := u.items[name]
	return it != nil && !it.deleted
}

// errMarked keeps a restore copy staged while gc's mark is on its pack.
var errMarked = errors.New("the pack is marked by gc: its copy waits for gc's decision")

// restoreNeeded tells whether the pack a restore copy is of must be put
// back: it is missing from storage. While gc's mark is on it, gc may
// still delete it (its second look at the catalog may have come before
// the version that reused it): the copy stays and is asked again.
func (u *Uploads) restoreNeeded(name string) (bool, error) {
	id, ok := packID(name)
	if !ok {
		return false, nil
	}
	if _, err := u.b.Stat(u.ctx, condemnedName(id)); err == nil {
		return false, errMarked
	} else if !storage.IsNotFound(err) {
		return false, err
	}
	_, err := u.b.Stat(u.ctx, name)
	if storage.IsNotFound(err) {
		u.log.Warn("uploads: a pack a close reused while the storage was away is gone from it; putting this machine's copy back", "name", name)
		return true, nil
	}
	return false, err
}

// open returns the staged file of name, if it is staged.
func (u *Uploads) open(name string) (*os.File, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if it := u.items[name]; it == nil || it.deleted {
		return nil, false
	}
	f, err := os.Open(u.path(name))
	if err != nil {
		return nil, false
	}
	return f, true
}

func (u *Uploads) Get(ctx context.Context, name string) ([]byte, error) {
	if f, ok := u.open(name); ok {
		defer f.Close()
		return io.ReadAll(f)
	}
	return u.b.Get(ctx, name)
}

func (u *Uploads) GetRange(ctx context.Context, name string, off, n int64) ([]byte, error) {
	if f, ok := u.open(name); ok {
		defer f.Close()
		buf := make([]byte, n)
		if _, err := f.ReadAt(buf, off); err != nil {
			return nil, fmt.Errorf("storage: get %s: range %d+%d: %w", name, off, n, err)
		}
		return buf, nil
	}
	return u.b.GetRange(ctx, name, off, n)
}

func (u *Uploads) Stat(ctx context.Context, name string) (storage.Info, error) {
	if f, ok := u.open(name); ok {
		defer f.Close()
		if info, err := f.Stat(); err == nil {
			return storage.Info{Name: name, Size: info.Size(), ModTime: info.ModTime()}, nil
		}
	}
	return u.b.Stat(ctx, name)
}

// Delete removes a staged copy (an upload in flight is deleted after it
// lands) and the object in the backend.
func (u *Uploads) Delete(ctx context.Context, name string) error {
	u.mu.Lock()
	if it := u.items[name]; it != nil {
		it.deleted = true
		if !it.uploading {
			u.dropQueuedLocked(it)
			delete(u.items, name)
		}
		os.Remove(u.path(name))
		u.cond.Broadcast()
	}
	u.mu.Unlock()
	return u.b.Delete(ctx, name)
}

// List lists the backend's objects and the staged ones, each once.
func (u *Uploads) List(ctx context.Context, prefix string, fn func(storage.Info) error) error {
	u.mu.Lock()
	staged := map[string]int64{}
	for name, it := range u.items {
		if !it.deleted && strings.HasPrefix(name, prefix) && !strings.HasSuffix(name, restoreSuffix) {
			staged[name] = it.size
		}
	}
	u.mu.Unlock()
	err := u.b.List(ctx, prefix, func(i storage.Info) error {
		delete(staged, i.Name)
		return fn(i)
	})
	if err != nil {
		return err
	}
	for name, size := range staged {
		if err := fn(storage.Info{Name: name, Size: size, ModTime: time.Now()}); err != nil {
			return err
		}
	}
	return nil
}

// Sync makes every staged object durable locally; with SyncUpload it then
// waits until everything written before it is uploaded, except what failed
// past the retry budget: that stays staged for the queue.
func (u *Uploads) Sync(ctx context.Context) error {
	u.mu.Lock()
	names := u.unsynced
	u.unsynced = nil
	upto := u.seq
	u.mu.Unlock()
	if len(names) > 0 {
		// The files were fsynced before their rename; the renames need the
		// folder's fsync.
		d, err := os.Open(u.dir)
		if errors.Is(err, fs.ErrNotExist) && u.restoreDir() {
			d, err = os.Open(u.dir)
		}
		if err != nil {
			return err
		}
		err = d.Sync()
		d.Close()
		if err != nil {
			return fmt.Errorf("uploads: sync: %w", err)
		}
	}
	if !u.sync {
		return nil
	}
	return u.wait(ctx, func() bool {
		for _, it := range u.items {
			if it.seq <= upto && !it.foreign && !it.deferred && !it.held {
				return false
			}
		}
		return true
	}, nil)
}

// WaitIdle waits until nothing is staged, calling progress (if not nil)
// about once a second with what is left. It returns ctx's error if ctx ends
// first; what is left stays staged.
func (u *Uploads) WaitIdle(ctx context.Context, progress func(Pending)) error {
	return u.wait(ctx, func() bool { return u.pendingLocked().Objects == 0 }, progress)
}

func (u *Uploads) wait(ctx context.Context, done func() bool, progress func(Pending)) error {
	stop := context.AfterFunc(ctx, func() { u.mu.Lock(); u.cond.Broadcast(); u.mu.Unlock() })
	defer stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	quit := make(chan struct{})
	defer close(quit)
	go func() {
		for {
			select {
			case <-quit:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
				u.mu.Lock()
				u.cond.Broadcast()
				u.mu.Unlock()
			}
		}
	}()
	u.mu.Lock()
	defer u.mu.Unlock()
	last := time.Time{}
	for !done() {
		if err := ctx.Err(); err != nil {
			return err
		}
		if u.closed {
			return errors.New("uploads: closed")
		}
		if progress != nil && time.Since(last) >= time.Second {
			last = time.Now()
			p := u.pendingLocked()
			u.mu.Unlock()
			progress(p)
			u.mu.Lock()
			continue
		}
		u.cond.Wait()
	}
	return nil
}

// Pending returns what is staged.
func (u *Uploads) Pending() Pending {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.pendingLocked()
}

func (u *Uploads) pendingLocked() Pending {
	p := Pending{Uploaded: u.done, Failures: u.fails, LastError: u.lastErr}
	for _, it := range u.items {
		if it.foreign {
			continue // the owner's to upload and to report
		}
		if it.held {
			p.Held = append(p.Held, PendingItem{Name: it.name, Size: it.size})
			p.HeldBytes += it.size
			continue
		}
		p.Objects++
		p.Bytes += it.size
		if it.uploading {
			p.Uploading++
		}
	}
	if len(p.Held) > 0 {
		sort.Slice(p.Held, func(i, j int) bool { return p.Held[i].Name < p.Held[j].Name })
		p.HeldWhy = u.items[p.Held[0].Name].heldWhy
	}
	return p
}

// Close stops the workers; uploads in flight are abandoned and stay staged
// for the next start. It does not wait for the queue: call WaitIdle first
// for that.
func (u *Uploads) Close() error {
	u.mu.Lock()
	u.closed = true
	u.cond.Broadcast()
	u.mu.Unlock()
	u.cancel()
	u.wg.Wait()
	u.unlock()
	return nil
}

func (u *Uploads) String() string { return u.b.String() }

// Unwrap returns the backend the uploads go to.
func (u *Uploads) Unwrap() storage.Backend { return u.b }
