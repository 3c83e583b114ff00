package cache

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lamina-bio/lamina/ref"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Index maps blob digests to their pack locations, for deduplication. It is
// a bbolt file opened only for the length of each call, so that any number of
// lamina processes share it (bbolt locks the file while it is open).
//
//	blobs  digest(32) → pack id(16) | offset(8) | length(8)
type Index struct {
	path string
	// mu orders this process's opens: bbolt retries a busy file lock only
	// every 50 ms, so concurrent commits in one daemon queue here instead.
	// It guards held, whose lookups take it shared.
	mu       sync.RWMutex
	held     *bolt.DB  // read-only, kept between lookups (viewHeld)
	released time.Time // when the last held one was closed
	opens    atomic.Int64
	unbuilt  atomic.Bool // made anew and not yet rebuilt from the packs (bMeta)
	old      atomic.Bool // no bMeta: made by a lamina from before it (Store.CheckOldIndex)
	// gen counts the files set aside as damaged: a rebuild that began
	// before one was set aside did not fill the new file.
	gen atomic.Int64
	// notes are warnings said before a logger was set (setLogger).
	logMu sync.Mutex
	log   *slog.Logger
	notes []string
}

// A read-only handle is kept for lookups for indexHold, then closed for
// indexGap before another is kept. Opening the file for each lookup (open,
// flock, mmap, munmap, close) was 7-13% of the mount's CPU per small file
// created, one lookup per close. The handle holds bbolt's shared lock:
// another process's write waits for it, retrying every 50 ms, so the gap
// is longer than that and a writer waits at most about indexHold +
// indexGap. This process closes it before each of its own writes.
const (
	indexHold = 200 * time.Millisecond
	indexGap  = 60 * time.Millisecond
)

var (
	bBlobs = []byte("blobs")
	// bMeta holds kUnbuilt from the index's creation until RebuildIndex
	// has added what the packs in storage hold: an index made anew (its
	// file lost, or a new workstation) knows none of them, and dedup of
	// content stored before would be off for good. An index of before
	// has no such bucket: it was built as the packs were written.
	bMeta    = []byte("meta")
	kUnbuilt = []byte("unbuilt")
)

// OpenIndex opens or creates the index file at path. A damaged file is
// set aside (setAside) and a new one made: the index only saves storing
// content twice, and no command may fail for it.
func OpenIndex(path string) (*Index, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	ix := &Index{path: path}
	// Set up already: a read-only look, no write transaction and fsync on
	// every command. It reads the meta pages and the root page; damage
	// deeper is found by the lookup that reads it (withSync).
	if st, err := os.Stat(path); err == nil && st.Size() > 0 {
		ready := false
		err := ix.withSync(false, true, func(tx *bolt.Tx) error {
			ready = tx.Bucket(bBlobs) != nil
			ix.unbuilt.Store(unbuilt(tx))
			ix.old.Store(tx.Bucket(bMeta) == nil)
			return nil
		})
		if err != nil {
			return nil, err
		}
		if ready {
			return ix, nil
		}
	}
	return ix, ix.makeAnew()
}

// makeAnew creates the index file, marked unbuilt (create), where there is
// none: only this may create it (open takes a missing file for damage).
func (ix *Index) makeAnew() error {
	return guardIndex(func() error { return ix.openFile(true, true, true, ix.create) })
}

// create sets up the buckets of a new index file, marked unbuilt.
func (ix *Index) create(tx *bolt.Tx) error {
	if tx.Bucket(bBlobs) == nil {
		if _, err := tx.CreateBucket(bBlobs); err != nil {
			return err
		}
		m, err := tx.CreateBucketIfNotExists(bMeta)
		if err != nil {
			return err
		}
		if err := m.Put(kUnbuilt, []byte{1}); err != nil {
			return err
		}
	}
	ix.unbuilt.Store(unbuilt(tx))
	ix.old.Store(tx.Bucket(bMeta) == nil)
	return nil
}

// damagedError is an index file bbolt cannot read as it is: garbled pages
// (bbolt panics on them), a file truncated under its mapping (SIGBUS), or
// meta pages that fail their checksum.
type damagedError struct {
	cause string
	seen  os.FileInfo // the file found damaged (nil: none there), or unknown: see try
	known bool
}

func (e *damagedError) Error() string { return "damaged: " + e.cause }

// guardIndex runs fn, bbolt calls on the index file, turning a panic raised
// in bbolt's code or a memory fault reading the mapping into a
// damagedError. Any other panic goes on. (catalog/bolt_damage.go does the
// same for the catalog file, which cannot just be made anew.)
func guardIndex(fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		if !bboltFault(r) {
			panic(r)
		}
		err = &damagedError{cause: fmt.Sprint(r)}
	}()
	return fn()
}

// bboltFault reports whether r, being recovered, is a memory fault at an
// address or a panic raised in bbolt's code.
func bboltFault(r any) bool {
	if _, ok := r.(interface{ Addr() uintptr }); ok {
		return true
	}
	pcs := make([]uintptr, 64)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(1, pcs)])
	panicking := false
	for {
		fr, more := frames.Next()
		switch {
		case fr.Function == "runtime.gopanic":
			panicking = true
		case panicking && !strings.HasPrefix(fr.Function, "runtime."):
			return strings.HasPrefix(fr.Function, "go.etcd.io/bbolt")
		}
		if !more {
			return false
		}
	}
}

// setAside renames a damaged index file to index.db.damaged-TIME (kept for
// a look, never read again) and makes a new one, unbuilt: the next save
// rebuilds it from the packs, as after a loss.
func (ix *Index) setAside(cause *damagedError) error {
	ix.mu.Lock()
	guardIndex(func() error { ix.releaseLocked(); return nil })
	// Another process that found the same damage may have made the file
	// anew meanwhile: that one is used, not set aside in turn (audit e6:
	// a mount and a save did, warning of damage a healthy file did not have).
	if cur, err := os.Stat(ix.path); err == nil && cause.known && (cause.seen == nil || !os.SameFile(cur, cause.seen)) {
		ix.mu.Unlock()
		ix.gen.Add(1)
		return nil
	}
	aside := ix.path + ".damaged-" + time.Now().UTC().Format("20060102T150405.000Z")
	err := os.Rename(ix.path, aside)
	ix.mu.Unlock()
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("chunk index %s is %v, and cannot be set aside: %w", ix.path, cause, err)
	}
	ix.gen.Add(1)
	if err != nil { // nothing there to set aside
		ix.warn(fmt.Sprintf("the dedup index %s is %v: made anew; it is rebuilt from the packs in storage at the next save (reads never need it)", ix.path, cause))
	} else {
		ix.warn(fmt.Sprintf("the dedup index %s is %v: set aside as %s and made anew; it is rebuilt from the packs in storage at the next save (reads never need it)", ix.path, cause, filepath.Base(aside)))
	}
	return ix.makeAnew()
}

// setLogger sets where warnings go, saying those noted before.
func (ix *Index) setLogger(l *slog.Logger) {
	ix.logMu.Lock()
	defer ix.logMu.Unlock()
	ix.log = l
	for _, n := range ix.notes {
		l.Warn(n)
	}
	ix.notes = nil
}

func (ix *Index) warn(msg string) {
	ix.logMu.Lock()
	defer ix.logMu.Unlock()
	if ix.log != nil {
		ix.log.Warn(msg)
	} else {
		ix.notes = append(ix.notes, msg)
	}
}

func unbuilt(tx *bolt.Tx) bool {
	m := tx.Bucket(bMeta)
	return m != nil && m.Get(kUnbuilt) != nil
}

// built clears the mark of an index made anew (RebuildIndex is done), if
// no file was set aside since gen: the rebuild's adds went partly to
// that one. Its write is synced, and with it the rebuild's adds before it
// (written without): a crash before leaves the mark.
func (ix *Index) built(gen int64) error {
	err := ix.with(true, func(tx *bolt.Tx) error {
		if ix.gen.Load() != gen {
			return errors.New("the dedup index was set aside as damaged during its rebuild")
		}
		if m := tx.Bucket(bMeta); m != nil {
			return m.Delete(kUnbuilt)
		}
		return nil
	})
	if err == nil {
		ix.unbuilt.Store(false)
	}
	return err
}

func (ix *Index) with(write bool, fn func(tx *bolt.Tx) error) error {
	return ix.withSync(write, true, fn)
}

// withSync is with; a write without sync leaves the file to the page cache
// (Index.sync makes it durable). A damaged file is set aside and fn run
// again on a new one.
func (ix *Index) withSync(write, sync bool, fn func(tx *bolt.Tx) error) error {
	err := ix.try(write, sync, fn)
	var d *damagedError
	if !errors.As(err, &d) {
		return err
	}
	if err := ix.setAside(d); err != nil {
		return err
	}
	return ix.try(write, sync, fn)
}

// try is withSync once: damage is a damagedError.
func (ix *Index) try(write, sync bool, fn func(tx *bolt.Tx) error) error {
	seen, _ := os.Stat(ix.path)
	err := guardIndex(func() error { return ix.openFile(write, sync, false, fn) })
	if d, ok := err.(*damagedError); ok {
		d.seen, d.known = seen, true
	}
	return err
}

// openFile runs fn in a transaction on the file; one missing is damage
// unless mayCreate (makeAnew).
func (ix *Index) openFile(write, sync, mayCreate bool, fn func(tx *bolt.Tx) error) error {
	if write {
		ix.mu.Lock()
		defer ix.mu.Unlock()
		ix.releaseLocked() // its shared lock would keep this write's out
	} else {
		if ok, err := ix.viewHeld(fn); ok {
			return err
		}
		ix.mu.RLock()
		defer ix.mu.RUnlock()
	}
	ix.opens.Add(1)
	// Deleted under a running process (rm DATA/index.db): a read-only open
	// failed each lookup, and every close with it, until a write made it
	// anew (audit e6), and a write made it anew unmarked, taken as built.
	// Made anew now, unbuilt (setAside).
	if _, err := os.Stat(ix.path); !mayCreate && errors.Is(err, fs.ErrNotExist) {
		return &damagedError{cause: "gone (deleted)"}
	}
	db, err := bolt.Open(ix.path, 0o600, &bolt.Options{Timeout: 2 * time.Minute, ReadOnly: !write, NoSync: !sync})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return fmt.Errorf("chunk index %s is locked by another lamina process", ix.path)
	}
	if errors.Is(err, bolterrors.ErrInvalid) || errors.Is(err, bolterrors.ErrChecksum) || errors.Is(err, bolterrors.ErrVersionMismatch) {
		return &damagedError{cause: err.Error()}
	}
	if err != nil {
		return fmt.Errorf("chunk index %s: %w", ix.path, err)
	}
	defer db.Close()
	if write {
		return db.Update(fn)
	}
	return db.View(fn)
}

// viewHeld runs fn in the held read-only handle, keeping a new one when
// none is held and the gap has passed. It reports false, having run
// nothing, when there is none: the file is locked for a write, say.
func (ix *Index) viewHeld(fn func(tx *bolt.Tx) error) (bool, error) {
	ix.mu.RLock()
	if ix.held == nil {
		ix.mu.RUnlock()
		ix.keepHandle()
		ix.mu.RLock()
	}
	defer ix.mu.RUnlock()
	if ix.held == nil {
		return false, nil
	}
	return true, ix.held.View(fn)
}

// keepHandle opens the handle viewHeld keeps, unless one is held or the
// gap has not passed. mu is unlocked by a defer: a damaged file can make
// bbolt panic (guardIndex).
func (ix *Index) keepHandle() {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.held == nil && time.Since(ix.released) >= indexGap {
		ix.opens.Add(1)
		ix.released = time.Now() // unless kept
		// No waiting under mu: a locked file falls back to an open
		// for this lookup alone, which waits as it always did.
		db, err := bolt.Open(ix.path, 0o600, &bolt.Options{Timeout: time.Millisecond, ReadOnly: true})
		if err == nil {
			ix.held = db
			time.AfterFunc(indexHold, ix.release)
		}
	}
}

func (ix *Index) release() {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.releaseLocked()
}

// releaseLocked closes the held handle, if any. Called with mu.
func (ix *Index) releaseLocked() {
	if ix.held != nil {
		ix.held.Close()
		ix.held, ix.released = nil, time.Now()
	}
}

func encodeLoc(l Loc) []byte {
	b := make([]byte, 32)
	hex.Decode(b[:16], []byte(l.Pack))
	binary.BigEndian.PutUint64(b[16:], uint64(l.Off))
	binary.BigEndian.PutUint64(b[24:], uint64(l.Len))
	return b
}

func decodeLoc(b []byte) (Loc, bool) {
	if len(b) != 32 {
		return Loc{}, false
	}
	return Loc{Pack: hex.EncodeToString(b[:16]), Off: int64(binary.BigEndian.Uint64(b[16:])), Len: int64(binary.BigEndian.Uint64(b[24:]))}, true
}

// Lookup returns the locations of those digests the index knows.
func (ix *Index) Lookup(ds []ref.Digest) (map[ref.Digest]Loc, error) {
	out := map[ref.Digest]Loc{}
	err := ix.with(false, func(tx *bolt.Tx) error {
		b := tx.Bucket(bBlobs)
		for _, d := range ds {
			if l, ok := decodeLoc(b.Get(d[:])); ok {
				out[d] = l
			}
		}
		return nil
	})
	return out, err
}

// Add records locations; an existing entry for a digest is kept.
func (ix *Index) Add(locs map[ref.Digest]Loc) error { return ix.add(locs, false, false) }

// sync makes the index file durable (after adds without sync).
func (ix *Index) sync() error {
	f, err := os.OpenFile(ix.path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// add is Add; noSync leaves the update to the page cache (the index only
// serves deduplication: a lost entry costs a second copy once); replace
// overwrites existing entries.
func (ix *Index) add(locs map[ref.Digest]Loc, noSync, replace bool) error {
	if len(locs) == 0 {
		return nil
	}
	return ix.withSync(true, !noSync, func(tx *bolt.Tx) error {
		b := tx.Bucket(bBlobs)
		for d, l := range locs {
			if !replace && b.Get(d[:]) != nil {
				continue
			}
			if err := b.Put(d[:], encodeLoc(l)); err != nil {
				return err
			}
		}
		return nil
	})
}

// RemovePacks drops every entry that points into one of the packs.
func (ix *Index) RemovePacks(packs map[string]bool) error {
	if len(packs) == 0 {
		return nil
	}
	return ix.with(true, func(tx *bolt.Tx) error {
		c := tx.Bucket(bBlobs).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if l, ok := decodeLoc(v); ok && packs[l.Pack] {
				if err := c.Delete(); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// Reset empties the index (before a rebuild).
func (ix *Index) Reset() error {
	return ix.with(true, func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(bBlobs); err != nil && !errors.Is(err, bolterrors.ErrBucketNotFound) {
			return err
		}
		_, err := tx.CreateBucket(bBlobs)
		return err
	})
}
