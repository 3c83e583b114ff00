package cache

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lamina-bio/lamina/storage"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/singleflight"
	"golang.org/x/sys/unix"
)

// DiskCache is a storage.Backend decorator that keeps the bytes it fetches
// in a local folder, so that a remote backend (S3) is asked for each byte
// at most once while the cache has room. It caches aligned blocks of
// objects: a ranged read fetches the blocks it touches (one GET each,
// concurrent requests for a block collapsed into one), and a reader moving
// forward through an object makes it fetch the next blocks ahead in
// parallel, the window doubling while the reader keeps up.
//
// The cache is bounded: least recently used blocks go first, but never one
// being read. Blocks are files named by a hash of the object name and the
// block number, so the cache survives restarts (the LRU order is rebuilt
// from file times) and is shared by the processes of one instance. Objects
// are assumed immutable once written (packs are); a Put through the cache
// drops what it held of that name.
//
// The cache does not check bytes itself: the content store verifies every
// chunk against its digest and calls Invalidate on a mismatch, after which
// the blocks are fetched again.
type DiskCache struct {
	b     storage.Backend
	dir   string
	block int64
	log   *slog.Logger
	keep  bool // keep the bytes of a Put in the cache
	// keepRecent: DiskCacheOptions.KeepRecent
	keepRecent int

	flight singleflight.Group
	files  *storage.OpenFiles // block files kept open for reading
	pool   *spanPool          // buffers for GET bodies
	ahead  chan struct{}      // bounds read-ahead fetches in flight
	bg     sync.WaitGroup     // fetches and block writes in the background
	bgctx  context.Context
	stop   context.CancelFunc // ends background fetches (Close)
	// nudge: DiskCacheOptions.Nudge; nudgeWG waits for one in flight.
	nudge   func()
	nudgeWG sync.WaitGroup
	// fullNudged: when a store that found the disk full last asked the
	// owner to evict (storeBlock).
	fullNudged time.Time

	mu      sync.Mutex // guards everything below
	limit   int64
	used    int64
	lru     *list.List                         // of *block, most recent first
	objects map[string]map[int64]*list.Element // object hash → block number → lru element
	sizes   map[string]int64                   // object name → size
	sized   map[string]bool                    // objects whose size file is written (sizePath)
	streams map[string]*stream                 // object name → sequential reader state
	pending map[string]*blockCall              // blocks being fetched, by blockKey
	// rechecked: when a read past the end of an object last had its size
	// checked against the storage (sizeFor).
	rechecked map[string]time.Time
	// unstored: fetched blocks whose file could not be written, by
	// blockKey, until one is; Settle reports them.
	unstored map[string]error
	// room is what the file system of the folder can hold of the cache
	// (its free space, what the cache uses, less a margin) when that is
	// below limit, else -1: the limit in force is the smaller
	// (limitLocked). checkRoom measures it before each block is written:
	// a cache on a disk smaller than its limit filled it, every block
	// written after failed with ENOSPC and was fetched again by the
	// next read (836 MiB fetched for a 200 MiB file on a 64 MiB disk).
	room int64
	// storeFailed counts the blocks that could not be written, storeErr
	// says why the last one could not; diskFull is set while the last
	// write failed for want of space.
	storeFailed int64
	storeErr    string
	diskFull    bool
	hits        int64
	misses      int64
	fetched     int64 // bytes fetched from the backend
	// lock is the folder's owner lock (ownerLock): held exclusively by
	// the owner (owner set), else open to probe it (guestLocked).
	lock  *os.File
	owner bool
	// guestStored: bytes stored while another process owned the folder,
	// since the last nudge; nudging: a nudge is in flight.
	guestStored int64
	nudging     bool
}

type block struct {
	obj     string // object hash
	n       int64  // block number
	size    int64
	pins    int // readers using the file
	touched time.Time
}

type stream struct {
	next   int64 // block after the last one read
	window int64 // blocks to read ahead
	warmed bool  // Warm is fetching ahead of this reader: no read-ahead
}

var (
	_ storage.Backend = (*DiskCache)(nil)
	_ storage.Storer  = (*DiskCache)(nil)
)

// DiskCacheOptions configure a DiskCache.
type DiskCacheOptions struct {
	Limit      int64 // bytes; DefaultCacheLimit when zero
	BlockSize  int64 // DefaultBlockSize when zero
	ReadAhead  int   // most blocks fetched ahead at once; 16 when zero
	KeepWrites bool  // also cache what is written through the cache
	// KeepRecent is how many of the most recently used blocks eviction
	// keeps whatever the limit, besides those read ahead (minKeepLocked);
	// 0 keeps none. A mount sets it (KeepRecentForReads).
	KeepRecent int
	// Own makes this cache the owner of the folder (a mount daemon's):
	// while it is open, it alone evicts, under its limit, and other
	// processes' caches of the folder (CLI commands) only add blocks.
	// One cache, one limit, one owner: a CLI command applied the
	// settings' limit to the daemon's blocks (cache limit 50MB, mount
	// --cache-size 2GB: a `lamina get` deleted all but 50 MB of them).
	Own bool
	// Nudge, for a cache that is not the owner, tells the owner to count
	// the blocks this one stored and evict down to its limit (a Rescan in
	// the owner): called in the background once every NudgeEvery bytes
	// stored while another process owns the folder, and at Close.
	Nudge  func()
	Logger *slog.Logger
}

// NudgeEvery is how many bytes a cache that does not own its folder
// stores between two nudges of the owner (DiskCacheOptions.Nudge).
const NudgeEvery = 64 << 20

// ownerLock is the file in the blocks folder whose flock marks its owner:
// exclusive for the owner; others probe it (not a block: no "." number).
const ownerLock = "owner.lock"

// KeepRecentForReads is the KeepRecent of a cache that FUSE reads go
// through: the kernel's read-ahead may have up to 16 MiB of READs in
// flight (1 MiB over S3: fs.S3ReadAheadKB).
const KeepRecentForReads = 4

// DefaultBlockSize is the unit of fetching and caching: large enough that
// the per-request overhead of S3 is small against the transfer, small
// enough that a short read does not fetch much more than it needs
// (docs/s3-bench.md has the measurements).
const DefaultBlockSize = 4 << 20

// DefaultCacheLimit bounds a cache no one configured.
const DefaultCacheLimit = 10 << 30

// OpenDiskCache opens (creating if needed) the cache folder dir in front of
// b and indexes what earlier runs left there.
func OpenDiskCache(b storage.Backend, dir string, o DiskCacheOptions) (*DiskCache, error) {
	if o.Limit <= 0 {
		o.Limit = DefaultCacheLimit
	}
	if o.BlockSize <= 0 {
		o.BlockSize = DefaultBlockSize
	}
	if o.ReadAhead <= 0 {
		o.ReadAhead = 16
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	dir = filepath.Join(dir, "blocks-"+strconv.FormatInt(o.BlockSize, 10))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	c := &DiskCache{
		b: b, dir: dir, block: o.BlockSize, log: o.Logger, keep: o.KeepWrites, keepRecent: o.KeepRecent, ahead: make(chan struct{}, o.ReadAhead),
		files: storage.NewOpenFiles(64), pool: newSpanPool(spanBuffers, int(maxSpan*o.BlockSize+o.BlockSize/4)),
		limit: o.Limit, lru: list.New(), objects: map[string]map[int64]*list.Element{},
		sizes: map[string]int64{}, sized: map[string]bool{}, streams: map[string]*stream{}, pending: map[string]*blockCall{}, rechecked: map[string]time.Time{},
		unstored: map[string]error{}, room: -1, nudge: o.Nudge,
	}
	c.bgctx, c.stop = context.WithCancel(context.Background())
	if o.Own {
		c.lock = c.takeOwnership()
		c.owner = c.lock != nil
	}
	if err := c.scan(); err != nil {
		c.closeLock()
		return nil, err
	}
	c.checkRoom()
	return c, nil
}

// takeOwnership takes the folder's owner lock (DiskCacheOptions.Own). A
// probe holds it shared for an instant, so it tries for a second; if
// another owner keeps it (a second daemon on the folder), this cache
// goes on as one that owns nothing but evicts for itself, as before. It
// returns the locked file, or nil.
func (c *DiskCache) takeOwnership() *os.File {
	f, err := os.OpenFile(filepath.Join(c.dir, ownerLock), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		c.log.Warn("cache: cannot open the cache folder's owner lock; CLI commands may evict this cache's blocks", "err", err)
		return nil
	}
	for i := 0; ; i++ {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil || !errors.Is(err, unix.EWOULDBLOCK) || i == 50 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		f.Close()
		c.log.Warn("cache: another process owns the cache folder", "dir", c.dir, "err", err)
		return nil
	}
	return f
}

// guestLocked reports whether another process owns the folder: then this
// cache removes no block file but those it must (Invalidate, a Put of
// the name), and leaves eviction to the owner.
func (c *DiskCache) guestLocked() bool {
	if c.owner {
		return false
	}
	if c.lock == nil {
		f, err := os.OpenFile(filepath.Join(c.dir, ownerLock), os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return false
		}
		c.lock = f
	}
	if err := unix.Flock(int(c.lock.Fd()), unix.LOCK_SH|unix.LOCK_NB); err != nil {
		return errors.Is(err, unix.EWOULDBLOCK)
	}
	unix.Flock(int(c.lock.Fd()), unix.LOCK_UN)
	return false
}

func (c *DiskCache) closeLock() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lock != nil {
		c.lock.Close()
		c.lock, c.owner = nil, false
	}
}

// scan indexes the block files in the folder, oldest last, and removes
// what interrupted writes left.
func (c *DiskCache) scan() error { return c.scanFiles(true) }

// Rescan indexes the blocks other processes of the instance (CLI commands
// beside a mount daemon) put in the folder since it was opened, so that
// Clear and SetLimit act on them too, and evicts down to the limit. It
// drops the blocks whose files are gone (removed by another process or
// by hand) and closes the files it held open for them: they were counted
// as used, and their disk space stayed taken while held open.
func (c *DiskCache) Rescan() error {
	if err := c.scanFiles(false); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.measureRoomLocked()
	c.evictLocked()
	return nil
}

func (c *DiskCache) scanFiles(cleanTmp bool) error {
	// A process that does not own the folder removes nothing the owner
	// may be writing (its temporary files, the size file of a block it
	// is storing).
	c.mu.Lock()
	guest := c.guestLocked()
	c.mu.Unlock()
	var found []*block
	gone := false
	var sidecars []string
	err := filepath.WalkDir(c.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil && p == c.dir && errors.Is(err, fs.ErrNotExist) {
			// The folder was removed under us (rm -rf of the cache):
			// its blocks are gone; make it again.
			gone = true
			if err := os.MkdirAll(c.dir, 0o700); err != nil {
				return err
			}
			return filepath.SkipDir
		}
		if err != nil || d.IsDir() {
			return err
		}
		if strings.Contains(d.Name(), ".tmp") {
			if cleanTmp && !guest {
				os.Remove(p)
			}
			return nil
		}
		if obj, ok := strings.CutSuffix(d.Name(), sizeSuffix); ok && len(obj) == 32 {
			sidecars = append(sidecars, obj)
			return nil
		}
		obj, n, ok := parseBlockName(d.Name())
		if !ok {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		found = append(found, &block{obj: obj, n: n, size: info.Size(), touched: info.ModTime()})
		return nil
	})
	if err != nil {
		return fmt.Errorf("cache: scan %s: %w", c.dir, err)
	}
	sort.Slice(found, func(i, j int) bool { return found[i].touched.After(found[j].touched) })
	c.mu.Lock()
	defer c.mu.Unlock()
	if gone {
		c.log.Warn("cache: the cache folder was removed while in use; made again (what it held is fetched again when read)", "dir", c.dir)
		for el := c.lru.Back(); el != nil; { // their files are gone
			prev := el.Prev()
			if el.Value.(*block).pins == 0 {
				c.removeLocked(el)
			}
			el = prev
		}
	}
	if gone && c.owner { // the lock file went with the folder
		c.lock.Close()
		c.lock = c.takeOwnership()
		c.owner = c.lock != nil
	}
	if !cleanTmp && !gone {
		// Blocks whose files are gone: not counted, their open files
		// closed. One stored since the walk is there: it stays.
		seen := make(map[string]bool, len(found))
		for _, b := range found {
			seen[blockKey(b.obj, b.n)] = true
		}
		for el := c.lru.Back(); el != nil; {
			prev := el.Prev()
			b := el.Value.(*block)
			if !seen[blockKey(b.obj, b.n)] && b.pins == 0 {
				if _, err := os.Stat(c.path(b.obj, b.n)); errors.Is(err, fs.ErrNotExist) {
					c.dropLocked(el, false)
				}
			}
			el = prev
		}
	}
	for _, b := range found {
		c.insertLocked(b, false)
	}
	for _, obj := range sidecars {
		if c.objects[obj] != nil {
			c.sized[obj] = true
		} else if cleanTmp && !guest { // its blocks are gone (a crash between the removals)
			os.Remove(c.sizePath(obj))
		}
	}
	return nil
}

// sizeSuffix names the file beside an object's blocks that holds its size
// (decimal), so that a new process reads cached blocks without asking the
// storage for the size first: fully cached data reads offline after a
// restart. It is written with the object's first cached block and removed
// with its last.
const sizeSuffix = ".size"

func (c *DiskCache) sizePath(obj string) string {
	return filepath.Join(c.dir, obj[:2], obj+sizeSuffix)
}

// readSize reads the size file of the object, if there is one.
func (c *DiskCache) readSize(name string) (int64, bool) {
	b, err := os.ReadFile(c.sizePath(objHash(name)))
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n, err == nil && n >= 0
}

// writeSizeLocked writes the size file of obj unless it is there.
func (c *DiskCache) writeSizeLocked(obj string, size int64) {
	if c.sized[obj] {
		return
	}
	p := c.sizePath(obj)
	tmp := p + ".tmp-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	if err := os.WriteFile(tmp, []byte(strconv.FormatInt(size, 10)+"\n"), 0o600); err != nil {
		os.Remove(tmp)
		return
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return
	}
	c.sized[obj] = true
}

func parseBlockName(name string) (string, int64, bool) {
	obj, num, ok := strings.Cut(name, ".")
	if !ok || len(obj) != 32 {
		return "", 0, false
	}
	n, err := strconv.ParseInt(num, 10, 64)
	return obj, n, err == nil
}

func objHash(name string) string {
	h := sha256.Sum256([]byte(name))
	return hex.EncodeToString(h[:16])
}

func (c *DiskCache) path(obj string, n int64) string {
	return filepath.Join(c.dir, obj[:2], obj+"."+strconv.FormatInt(n, 10))
}

// insertLocked adds b at the front (or the back, for blocks found on disk
// in age order, which arrive newest first) unless it is indexed already.
func (c *DiskCache) insertLocked(b *block, front bool) *list.Element {
	m := c.objects[b.obj]
	if m == nil {
		m = map[int64]*list.Element{}
		c.objects[b.obj] = m
	}
	if el, ok := m[b.n]; ok {
		return el
	}
	var el *list.Element
	if front {
		el = c.lru.PushFront(b)
	} else {
		el = c.lru.PushBack(b)
	}
	m[b.n] = el
	c.used += b.size
	delete(c.unstored, blockKey(b.obj, b.n))
	return el
}

// removeLocked drops the block and removes its file.
func (c *DiskCache) removeLocked(el *list.Element) { c.dropLocked(el, true) }

// dropLocked drops the block from the index and closes its open file; with
// remove, it removes the file too (and the object's size file with its
// last block).
func (c *DiskCache) dropLocked(el *list.Element, remove bool) {
	b := c.lru.Remove(el).(*block)
	c.used -= b.size
	if m := c.objects[b.obj]; m != nil {
		delete(m, b.n)
		if len(m) == 0 {
			delete(c.objects, b.obj)
			delete(c.sized, b.obj)
			if remove {
				os.Remove(c.sizePath(b.obj))
			}
		}
	}
	c.files.Forget(c.path(b.obj, b.n))
	if remove {
		os.Remove(c.path(b.obj, b.n))
	}
}

// evictLocked removes the least recently used blocks that no one reads
// until the cache fits its limit, keeping the most recent few whatever the
// limit (minKeepLocked). While another process owns the folder (a mount
// daemon) it removes nothing: the owner evicts, under its own limit, once
// nudged (DiskCacheOptions.Nudge).
func (c *DiskCache) evictLocked() { c.evictToLocked(c.limitLocked(), c.minKeepLocked()) }

// evictToLocked removes the least recently used blocks that no one reads
// until the cache holds at most target bytes or keep blocks; nothing while
// another process owns the folder.
func (c *DiskCache) evictToLocked(target int64, keep int) {
	if c.used <= target || c.guestLocked() {
		return
	}
	for el := c.lru.Back(); el != nil && c.used > target && c.lru.Len() > keep; {
		prev := el.Prev()
		if el.Value.(*block).pins == 0 {
			c.removeLocked(el)
		}
		el = prev
	}
}

// size returns the object's size, asking the backend once per name.
func (c *DiskCache) size(ctx context.Context, name string) (int64, error) {
	c.mu.Lock()
	sz, ok := c.sizes[name]
	c.mu.Unlock()
	if ok {
		return sz, nil
	}
	if sz, ok := c.readSize(name); ok { // cached by an earlier process
		c.mu.Lock()
		c.sizes[name] = sz
		c.mu.Unlock()
		return sz, nil
	}
	v, err, _ := c.flight.Do("stat\x00"+name, func() (any, error) {
		info, err := c.b.Stat(ctx, name)
		if err != nil {
			return int64(0), err
		}
		c.mu.Lock()
		if len(c.sizes) > 1<<16 {
			clear(c.sizes)
		}
		c.sizes[name] = info.Size
		c.mu.Unlock()
		return info.Size, nil
	})
	return v.(int64), err
}

// sizeFor returns the object's size, which a read of n bytes at off needs. A
// cached size (its size file outlives the process) that ends before end
// is checked against the storage once (sizeRecheck): a pack truncated in
// the bucket and restored left its short size in the cache, and every
// read of its end failed "past the end" across restarts until the cache
// was cleared. A size that changed drops the object's cached blocks.
func (c *DiskCache) sizeFor(ctx context.Context, name string, off, n int64) (int64, error) {
	size, err := c.size(ctx, name)
	if err != nil || off+n <= size || c.b == nil {
		return size, err
	}
	// Concurrent readers of the object wait for one check.
	v, err, _ := c.flight.Do("recheck\x00"+name, func() (any, error) {
		c.mu.Lock()
		last, checked := c.rechecked[name]
		due := !checked || time.Since(last) > sizeRecheck
		if due {
			if len(c.rechecked) > 1024 {
				clear(c.rechecked)
			}
			c.rechecked[name] = time.Now()
		}
		c.mu.Unlock()
		if !due { // checked a moment ago: what it found
			return c.size(ctx, name)
		}
		info, err := c.b.Stat(ctx, name)
		if err != nil {
			return int64(0), err
		}
		if info.Size != size {
			c.log.Warn("cache: an object's size in storage is not the one cached: its cached blocks are dropped", "name", name, "cached", size, "stored", info.Size)
			c.resized(name, info.Size)
		}
		return info.Size, nil
	})
	if err != nil {
		return 0, err
	}
	if size = v.(int64); off+n > size {
		return 0, fmt.Errorf("storage: get %s: range %d+%d past the end (%d bytes)", name, off, n, size)
	}
	return size, nil
}

// sizeRecheck is how often a read past the end of an object has its size
// checked against the storage.
const sizeRecheck = time.Minute

// resized drops what the cache holds of an object whose size in storage
// is not the one it knew, and notes the new one.
func (c *DiskCache) resized(name string, size int64) {
	obj := objHash(name)
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.streams, name)
	for _, el := range c.objects[obj] {
		if el.Value.(*block).pins == 0 {
			c.removeLocked(el)
		}
	}
	delete(c.sized, obj)
	os.Remove(c.sizePath(obj))
	c.sizes[name] = size
}

// GetRange serves n bytes at off from cached blocks, fetching the missing
// ones, and reads ahead when the object is being read front to back.
func (c *DiskCache) GetRange(ctx context.Context, name string, off, n int64) ([]byte, error) {
	if n <= 0 || off < 0 {
		return c.b.GetRange(ctx, name, off, n)
	}
	size, err := c.sizeFor(ctx, name, off, n)
	if err != nil {
		return nil, err
	}
	out := make([]byte, n)
	if err := c.readRange(ctx, name, size, off, [][]byte{out}); err != nil {
		return nil, err
	}
	return out, nil
}

// ReadRange reads the object's bytes at off into bufs, one after another,
// from cached blocks (fetching the missing ones), without allocating: the
// content store reads a chunk's codec byte and body straight into the
// mount's reply this way.
func (c *DiskCache) ReadRange(ctx context.Context, name string, off int64, bufs ...[]byte) error {
	var n int64
	for _, b := range bufs {
		n += int64(len(b))
	}
	if n == 0 {
		return nil
	}
	if off < 0 {
		return fmt.Errorf("storage: get %s: range %d+%d before the start", name, off, n)
	}
	size, err := c.sizeFor(ctx, name, off, n)
	if err != nil {
		return err
	}
	return c.readRange(ctx, name, size, off, bufs)
}

// readRange fills bufs with the bytes at off, block by block (the blocks of
// a range longer than one are read in parallel), and reads ahead when the
// object is being read front to back.
func (c *DiskCache) readRange(ctx context.Context, name string, size, off int64, bufs [][]byte) error {
	var n int64
	for _, b := range bufs {
		n += int64(len(b))
	}
	obj := objHash(name)
	first, last := off/c.block, (off+n-1)/c.block
	if first == last { // most reads: a chunk inside one block
		if err := c.readBlock(ctx, name, obj, size, first, bufs, off-first*c.block); err != nil {
			return err
		}
		c.readAhead(name, obj, size, first, last)
		return nil
	}
	g, gctx := errgroup.WithContext(ctx)
	for bn := first; bn <= last; bn++ {
		g.Go(func() error {
			bstart := bn * c.block
			lo, hi := max(off, bstart), min(off+n, bstart+c.block)
			return c.readBlock(gctx, name, obj, size, bn, subBufs(bufs, lo-off, hi-off), lo-bstart)
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	c.readAhead(name, obj, size, first, last)
	return nil
}

// subBufs returns the parts of bufs that hold bytes from to to of their
// concatenation.
func subBufs(bufs [][]byte, from, to int64) [][]byte {
	var out [][]byte
	var at int64
	for _, b := range bufs {
		lo, hi := max(from, at), min(to, at+int64(len(b)))
		if lo < hi {
			out = append(out, b[lo-at:hi-at])
		}
		at += int64(len(b))
	}
	return out
}

// readBlock fills bufs with the bytes of block bn from at, from the cache
// file or, failing that, from one fetch of the whole block.
func (c *DiskCache) readBlock(ctx context.Context, name, obj string, size, bn int64, bufs [][]byte, at int64) error {
	if c.readCached(obj, bn, blockLen(size, bn, c.block), bufs, at) {
		return nil
	}
	return c.fetch(ctx, name, obj, size, bn, bufs, at)
}

func blockLen(size, bn, bs int64) int64 { return min(bs, size-bn*bs) }

// readCached reads from the block's file if it is there and whole.
func (c *DiskCache) readCached(obj string, bn, want int64, bufs [][]byte, at int64) bool {
	c.mu.Lock()
	var el *list.Element
	if m := c.objects[obj]; m != nil {
		el = m[bn]
	}
	if el == nil {
		// Another process of the instance may have fetched it.
		info, err := os.Stat(c.path(obj, bn))
		if err != nil || info.Size() != want {
			c.misses++
			c.mu.Unlock()
			return false
		}
		el = c.insertLocked(&block{obj: obj, n: bn, size: want, touched: info.ModTime()}, true)
	}
	b := el.Value.(*block)
	if b.size != want {
		// Fetched for a size of the object that has changed since
		// (sizeFor): not the block the reader needs.
		if b.pins == 0 {
			c.dropLocked(el, !c.guestLocked())
		}
		c.misses++
		c.mu.Unlock()
		return false
	}
	c.lru.MoveToFront(el)
	b.pins++
	touch := time.Since(b.touched) > time.Minute
	if touch {
		b.touched = time.Now()
	}
	c.mu.Unlock()

	p := c.path(obj, bn)
	ok := c.files.ReadAt(p, bufs, at) == nil
	if ok && touch {
		now := time.Now()
		os.Chtimes(p, now, now) // the LRU order for the next start
	}
	c.mu.Lock()
	b.pins--
	if ok {
		c.hits++
	} else {
		c.misses++
		if m := c.objects[obj]; m != nil && m[bn] == el && b.pins == 0 {
			// Gone or unreadable: another process may be storing it
			// anew, so only its owner removes the file.
			c.dropLocked(el, !c.guestLocked())
		}
	}
	c.mu.Unlock()
	return ok
}

// blockCall is one block being fetched: whoever needs the block takes a
// reference on its span (under DiskCache.mu, while the call is pending),
// waits for the bytes it needs to land in the span (or for done), copies
// them, and releases the span. done is closed once the whole span is here
// or failed (err); the call stays in DiskCache.pending until its block
// file is written, so that no one fetches it again meanwhile, unless
// Invalidate drops it first (dropped: its bytes failed verification and
// are not stored). stored is closed once it has left pending, its block
// written or not (DiskCache.unstored), for Settle.
type blockCall struct {
	done    chan struct{}
	stored  chan struct{}
	span    *spanBuf
	off     int64 // of the block in the span
	name    string
	err     error
	dropped bool // guarded by DiskCache.mu
}

// spanBuf is the buffer that one GET of a span of blocks fills. It goes
// back to the pool when the last of its users lets go: the fetch once the
// blocks are written, each waiter once it has copied its bytes.
//
// A reader is answered as soon as its bytes have landed, not when the
// whole span has: on a slow link a 16 MiB span takes a minute, and a read
// of its first chunk waited for all of it. The bytes land in order from
// the start (storage.WithLanding); the content store verifies every chunk
// before it serves it, as it does for bytes read from the cache folder.
type spanBuf struct {
	buf  *poolBuf // nil: the bytes are in the Go heap (no pool buffer fitted)
	refs int      // guarded by DiskCache.mu

	mu     sync.Mutex // guards the fields below
	data   []byte     // the span's bytes, filled from the start
	landed int        // how many of them are here
	waits  []landWait // readers of bytes not landed yet
}

type landWait struct {
	need int // landed at least this
	ch   chan struct{}
}

// setData gives the span the buffer its GET fills, before the first byte
// lands.
func (sb *spanBuf) setData(data []byte) {
	sb.mu.Lock()
	sb.data = data
	sb.mu.Unlock()
}

// land notes n more bytes of data landed and wakes the readers they
// complete.
func (sb *spanBuf) land(n int) {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	sb.landed = min(sb.landed+n, len(sb.data))
	kept := sb.waits[:0]
	for _, w := range sb.waits {
		if w.need <= sb.landed {
			close(w.ch)
		} else {
			kept = append(kept, w)
		}
	}
	sb.waits = kept
}

// await returns nil when the first need bytes have landed, else a channel
// closed once they have.
func (sb *spanBuf) await(need int) chan struct{} {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	if need <= sb.landed {
		return nil
	}
	ch := make(chan struct{})
	sb.waits = append(sb.waits, landWait{need, ch})
	return ch
}

// upTo returns the span's first need bytes if they have landed.
func (sb *spanBuf) upTo(need int) ([]byte, bool) {
	sb.mu.Lock()
	defer sb.mu.Unlock()
	if need > sb.landed {
		return nil, false
	}
	return sb.data[:need], true
}

// spanBuffers is how many GET bodies the cache holds at once: four spans
// of 16 MiB are WarmWindow's worth, and six were no faster
// (docs/s3-bench.md, sixth pass). With 4 MiB blocks that is 4 × 17 MiB
// outside the heap.
const spanBuffers = 4

// release drops a reference on sb and gives its buffer back with the last.
func (c *DiskCache) release(sb *spanBuf) {
	c.mu.Lock()
	sb.refs--
	last := sb.refs == 0
	c.mu.Unlock()
	if last && sb.buf != nil {
		c.pool.put(sb.buf)
	}
}

// joinLocked returns the pending fetch of a block with a reference taken
// on its span, or nil.
func (c *DiskCache) joinLocked(obj string, bn int64) *blockCall {
	call := c.pending[blockKey(obj, bn)]
	if call != nil {
		call.span.refs++
	}
	return call
}

// copyFrom waits until the bytes of call's block from at that bufs hold
// have landed (or the fetch failed before they did), copies them into
// bufs, then releases the reference the caller took.
func (c *DiskCache) copyFrom(call *blockCall, bufs [][]byte, at int64) error {
	defer c.release(call.span)
	from := int(call.off + at)
	need := from
	for _, b := range bufs {
		need += len(b)
	}
	if ch := call.span.await(need); ch != nil {
		select {
		case <-ch:
		case <-call.done:
		}
	}
	data, ok := call.span.upTo(need)
	if !ok {
		<-call.done
		if call.err == nil {
			// The span ended well short of these bytes: it was cut at a
			// size of the object that a check since found out of date.
			return errShortSpan
		}
		return call.err
	}
	for _, b := range bufs {
		from += copy(b, data[from:])
	}
	return nil
}

// errShortSpan is copyFrom's answer when the fetch it joined ended well
// without the bytes the reader needs: fetch tries again.
var errShortSpan = errors.New("cache: the fetch joined ended short of the bytes needed")

func blockKey(obj string, bn int64) string { return obj + "." + strconv.FormatInt(bn, 10) }

// maxSpan is the most blocks one GET fetches for read-ahead: consecutive
// blocks are fetched together, as one request of up to 16 MiB, which costs
// less per byte than four of 4 MiB (docs/s3-bench.md), while a short read
// still fetches one block.
const maxSpan = 4

// fetch fills bufs with the bytes of block bn from at, getting the whole
// block from the backend once however many ask, and stores it in the
// cache.
func (c *DiskCache) fetch(ctx context.Context, name, obj string, size, bn int64, bufs [][]byte, at int64) error {
	want := blockLen(size, bn, c.block)
	for range 3 {
		c.mu.Lock()
		call := c.joinLocked(obj, bn)
		c.mu.Unlock()
		if call == nil {
			if calls := c.fetchSpan(ctx, name, obj, size, bn, 1, true); len(calls) > 0 {
				call = calls[0]
			}
		}
		if call == nil { // cached meanwhile (or being fetched by another span)
			c.mu.Lock()
			call = c.joinLocked(obj, bn)
			c.mu.Unlock()
		}
		if call != nil {
			err := c.copyFrom(call, bufs, at)
			if err != errShortSpan {
				return err
			}
			// Once the short block is stored, readCached drops it
			// (its size is not want) and the next turn fetches it.
			<-call.stored
		}
		if c.readCached(obj, bn, want, bufs, at) {
			return nil
		}
	}
	return fmt.Errorf("cache: block %d of %s vanished while being fetched", bn, name)
}

// fetchSpan fetches, with one GET, the blocks from first to first+span-1
// that are neither cached nor being fetched: those at the start that are
// are skipped, and the span stops at the next one. It returns the calls of
// the blocks it fetches (none if no block needed a fetch); they end
// together as soon as the bytes are here, and the blocks are written to
// the cache folder after: no reader waits for the disk. A reader's fetch
// serves every waiter: it does not end with the context of the caller that
// started it, and the caller holds a reference on the span (copyFrom
// releases it).
func (c *DiskCache) fetchSpan(ctx context.Context, name, obj string, size, first int64, span int, reader bool) []*blockCall {
	nblocks := (size + c.block - 1) / c.block
	var calls []*blockCall
	sb := &spanBuf{refs: 1} // the fetch's own, released once the blocks are written
	if reader {
		sb.refs++
	}
	c.mu.Lock()
	end := min(nblocks, first+int64(span))
	for bn := first; bn < end; bn++ {
		key := blockKey(obj, bn)
		if m := c.objects[obj]; (m != nil && m[bn] != nil) || c.pending[key] != nil {
			if len(calls) > 0 {
				break
			}
			// A reader got to the first blocks before the read-ahead
			// did: fetch the rest of the span.
			first = bn + 1
			continue
		}
		call := &blockCall{done: make(chan struct{}), stored: make(chan struct{}), span: sb, off: int64(len(calls)) * c.block, name: name}
		c.pending[key] = call
		calls = append(calls, call)
	}
	c.mu.Unlock()
	if len(calls) == 0 {
		return nil
	}
	if reader {
		ctx = context.WithoutCancel(ctx)
	}
	c.bg.Add(1)
	go func() {
		defer c.bg.Done()
		c.runSpan(ctx, name, obj, size, first, calls, reader)
	}()
	return calls
}

// spans splits the blocks from first to last that are neither cached nor
// being fetched into runs of at most maxSpan consecutive blocks.
func (c *DiskCache) spansLocked(obj string, size, first, last int64) [][2]int64 {
	var out [][2]int64 // first block, count
	// A pack is a little over 16 MiB: its short last block joins the
	// span before it rather than costing a request of its own.
	tail := int64(-1)
	if nb := (size + c.block - 1) / c.block; size%c.block != 0 && size%c.block < c.block/4 {
		tail = nb - 1
	}
	m := c.objects[obj]
	for bn := first; bn <= last; bn++ {
		if (m != nil && m[bn] != nil) || c.pending[blockKey(obj, bn)] != nil {
			continue
		}
		if k := len(out) - 1; k >= 0 && out[k][0]+out[k][1] == bn && (out[k][1] < maxSpan || bn == tail) {
			out[k][1]++
			continue
		}
		out = append(out, [2]int64{bn, 1})
	}
	return out
}

// fetchAhead starts the fetch of a span in the background, holding a
// read-ahead slot (taken by the caller) until it is done. The blocks are
// marked as being fetched before it returns, so that the next reader does
// not ask for them again.
func (c *DiskCache) fetchAhead(name, obj string, size int64, sp [2]int64) {
	calls := c.fetchSpan(c.bgctx, name, obj, size, sp[0], int(sp[1]), false)
	if len(calls) == 0 {
		<-c.ahead
		return
	}
	c.bg.Add(1)
	go func() {
		defer c.bg.Done()
		defer func() { <-c.ahead }()
		last := calls[len(calls)-1]
		<-last.done
		if last.err != nil {
			c.log.Debug("cache: read-ahead failed", "name", name, "block", sp[0], "err", last.err)
		}
	}()
}

// runSpan GETs the blocks of calls, hands them to their waiters, then
// writes them to the cache folder. A block that Invalidate dropped
// meanwhile is not written: its bytes failed verification.
func (c *DiskCache) runSpan(ctx context.Context, name, obj string, size, first int64, calls []*blockCall, reader bool) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	sb := calls[0].span
	defer c.release(sb)
	off := first * c.block
	n := min(int64(len(calls))*c.block, size-off)
	data, err := c.get(ctx, name, off, n, sb, reader)
	if err == nil {
		sb.land(len(data)) // a backend that fills buf at once says nothing
	}
	for _, call := range calls {
		call.err = err
		close(call.done) // waiters go on while the blocks are written
	}
	for i, call := range calls {
		bn := first + int64(i)
		key := blockKey(obj, bn)
		var serr error
		if err == nil {
			serr = c.store(obj, size, bn, data[call.off:min(call.off+c.block, n)], call)
		}
		c.mu.Lock()
		if serr != nil {
			if len(c.unstored) > 1<<16 {
				clear(c.unstored)
			}
			c.unstored[key] = serr
		}
		if c.pending[key] == call {
			delete(c.pending, key)
		}
		c.mu.Unlock()
		close(call.stored)
	}
}

// get reads n bytes at off of the object for a span: into a pool buffer
// (sb keeps it until its last user is done) when the backend can read into
// one and the span fits, else into a new slice. A reader's own fetch
// (reader) takes a new slice rather than wait for a buffer: read-ahead of
// a large file can hold them all, and a small read of another file would
// wait behind its GETs. The bytes are in sb as they land (spanBuf).
func (c *DiskCache) get(ctx context.Context, name string, off, n int64, sb *spanBuf, reader bool) ([]byte, error) {
	f, ok := c.b.(storage.RangeFiller)
	if !ok {
		data, err := c.b.GetRange(ctx, name, off, n)
		sb.setData(data)
		return data, err
	}
	var data []byte
	switch {
	case n > int64(c.pool.size):
		data = make([]byte, n)
	case reader:
		if buf := c.pool.tryGet(); buf != nil {
			sb.buf, data = buf, buf.b[:n]
		} else {
			data = make([]byte, n)
		}
	default:
		buf, err := c.pool.get(ctx)
		if err != nil {
			return nil, err
		}
		sb.buf, data = buf, buf.b[:n]
	}
	sb.setData(data)
	if err := f.GetRangeInto(storage.WithLanding(ctx, sb.land), name, off, data); err != nil {
		return nil, err
	}
	return data, nil
}

// store writes a block file (atomically) and indexes it, unless the call
// that fetched it (nil for a Put) was dropped by Invalidate. It returns
// why the block could not be written (logged here).
func (c *DiskCache) store(obj string, size, bn int64, data []byte, call *blockCall) error {
	c.mu.Lock()
	c.fetched += int64(len(data))
	c.mu.Unlock()
	return c.storeBlock(obj, size, bn, data, call)
}

// storeBlock is store without counting the bytes as fetched. A write
// that finds the disk full evicts the least recently used blocks and is
// tried once more.
func (c *DiskCache) storeBlock(obj string, size, bn int64, data []byte, call *blockCall) error {
	c.checkRoom()
	err := c.storeBlockOnce(obj, size, bn, data, call)
	// Tried up to three times: concurrent stores on a full disk race for
	// what one eviction freed (out of inodes, the last blocks read were
	// lost so: TestDiskCacheEvictsWhenTheDiskIsFull under load).
	for try := 0; errors.Is(err, syscall.ENOSPC) && try < 3; try++ {
		c.mu.Lock()
		c.measureRoomLocked()
		guest, retry := c.guestLocked(), true
		if !guest {
			// Whatever the limits say, the block needs its size: the
			// disk may have been filled by others. The blocks read
			// ahead stay (minKeepLocked): evicted, they are fetched again.
			c.evictToLocked(min(c.limitLocked(), c.used-int64(len(data))), c.minKeepLocked())
		} else {
			// The owner evicts, under what the disk holds: one ask at a
			// time and at most one a second (each rescans its folder; a
			// disk full of others' files frees nothing), the blocks
			// between them not tried again.
			retry = c.nudge != nil && !c.nudging && time.Since(c.fullNudged) >= time.Second
			if retry {
				c.nudging, c.fullNudged = true, time.Now()
			}
		}
		c.mu.Unlock()
		if guest && retry {
			c.nudge()
			c.mu.Lock()
			c.nudging = false
			c.mu.Unlock()
		}
		if !retry {
			break
		}
		err = c.storeBlockOnce(obj, size, bn, data, call)
	}
	c.mu.Lock()
	if err != nil {
		c.storeFailed++
		c.storeErr = err.Error()
		c.diskFull = errors.Is(err, syscall.ENOSPC)
	} else {
		c.diskFull = false
	}
	c.mu.Unlock()
	if err != nil {
		c.log.Warn("cache: cannot store a block", "err", err)
	}
	return err
}

func (c *DiskCache) storeBlockOnce(obj string, size, bn int64, data []byte, call *blockCall) error {
	p := c.path(obj, bn)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return fmt.Errorf("cache: store a block: %w", err)
	}
	tmp := p + ".tmp-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("cache: store a block in %s: %w", c.dir, err)
	}
	c.mu.Lock()
	// A span cut at a size that a check has changed since (sizeFor) serves
	// its readers but is not stored: its last block may be short, and the
	// size file would go back to the old size. Checked under the lock that
	// resized takes, so that no resize slips in before the rename.
	if call != nil {
		if known, ok := c.sizes[call.name]; call.dropped || ok && known != size {
			c.mu.Unlock()
			os.Remove(tmp)
			return nil
		}
	}
	// Renamed under the lock: Invalidate, which removes the file under it
	// too, cannot run between the check above and the rename.
	if err := os.Rename(tmp, p); err != nil {
		c.mu.Unlock()
		os.Remove(tmp)
		return fmt.Errorf("cache: store a block: %w", err)
	}
	c.insertLocked(&block{obj: obj, n: bn, size: int64(len(data)), touched: time.Now()}, true)
	c.writeSizeLocked(obj, size)
	if c.guestLocked() {
		// The owner evicts: it is told what this one stored.
		c.guestStored += int64(len(data))
		if c.guestStored >= NudgeEvery && c.nudge != nil && !c.nudging {
			c.guestStored, c.nudging = 0, true
			c.nudgeWG.Add(1)
			go func() {
				defer c.nudgeWG.Done()
				c.nudge()
				c.mu.Lock()
				c.nudging = false
				c.mu.Unlock()
			}()
		}
	} else {
		c.evictLocked()
	}
	c.mu.Unlock()
	return nil
}

// limitLocked is the limit in force: the configured one, or less when
// the file system of the folder cannot hold that much (room).
func (c *DiskCache) limitLocked() int64 {
	if c.room >= 0 && c.room < c.limit {
		return c.room
	}
	return c.limit
}

// checkRoom measures what the file system can hold and evicts down to it.
func (c *DiskCache) checkRoom() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.measureRoomLocked()
	c.evictLocked()
}

// measureRoomLocked sets room from the free space of the folder's file
// system (a statfs: a few microseconds, against a block's write). The
// margin leaves room for the block being written, the size files and
// the other users of the disk: a twentieth of it, at least a block and
// at most 1 GiB.
func (c *DiskCache) measureRoomLocked() {
	var st syscall.Statfs_t
	if err := syscall.Statfs(c.dir, &st); err != nil || st.Blocks == 0 {
		c.room = -1
		return
	}
	bs := int64(st.Bsize)
	total, avail := int64(st.Blocks)*bs, int64(st.Bavail)*bs
	margin := max(c.block, min(total/20, 1<<30))
	room := max(c.used+avail-margin, 0)
	if room >= c.limit {
		room = -1
	}
	c.room = room
}

// minKeepLocked is how many of the most recently used blocks eviction
// keeps even over the limit: the blocks the kernel's read-ahead has READs
// in flight for (up to 16 MiB) and the ones read ahead of them. A limit below that (1 MB, less than one 4 MiB block) evicted
// each block as soon as it was stored, so every READ inside it fetched it
// again: a 200 MiB file read sequentially was fetched five times over.
func (c *DiskCache) minKeepLocked() int {
	if c.keepRecent <= 0 {
		return 0
	}
	return int(c.aheadBlocksLocked()) + c.keepRecent
}

// aheadBlocksLocked is how many blocks may be read ahead of a reader: the
// read-ahead bound, and at most a quarter of the cache, so that a small
// cache does not evict what it read ahead before the reader gets there
// (a 1 GiB read through a 20 MB cache fetched 2.5 GiB).
func (c *DiskCache) aheadBlocksLocked() int64 {
	n := int64(cap(c.ahead))
	if lim := c.limitLocked(); lim > 0 {
		n = min(n, max(1, lim/(4*c.block)))
	}
	return n
}

// readAhead notices a reader moving forward through an object and fetches
// the blocks after what it read in the background, the window doubling up
// to the read-ahead limit while the reader keeps going.
func (c *DiskCache) readAhead(name, obj string, size, first, last int64) {
	c.mu.Lock()
	s := c.streams[name]
	if s == nil {
		if len(c.streams) > 1024 {
			clear(c.streams)
		}
		s = &stream{}
		c.streams[name] = s
	}
	if s.warmed {
		c.mu.Unlock()
		return
	}
	// A first read (of block 0, say: `head -c 100`) is no stream yet: only
	// a reader that goes on to the next blocks is read ahead of.
	sequential := s.next > 0 && first >= s.next-1 && first <= s.next+s.window
	switch {
	case !sequential:
		s.window = 0
		s.next = last + 1
	case last >= s.next:
		s.window = min(max(1, 2*s.window), c.aheadBlocksLocked())
		s.next = last + 1
	}
	window := s.window
	nblocks := (size + c.block - 1) / c.block
	todo := c.spansLocked(obj, size, last+1, min(last+window, nblocks-1))
	c.mu.Unlock()
	for _, sp := range todo {
		select {
		case c.ahead <- struct{}{}:
		default:
			return // enough in flight
		}
		c.fetchAhead(name, obj, size, sp)
	}
}

// Warm fetches the blocks that hold n bytes at off of the object into the
// cache in the background, skipping those cached or being fetched. It does
// not block: the fetches share the read-ahead bound (ReadAhead blocks in
// flight) and wait for their turn. The content store calls it for the
// chunks ahead of a sequential reader, whose file spans many objects.
func (c *DiskCache) Warm(name string, off, n int64) {
	if n <= 0 || off < 0 {
		return
	}
	c.mu.Lock()
	if s := c.streams[name]; s != nil {
		s.warmed = true
	} else {
		if len(c.streams) > 1024 {
			clear(c.streams)
		}
		c.streams[name] = &stream{warmed: true}
	}
	c.mu.Unlock()
	c.bg.Add(1)
	go func() {
		defer c.bg.Done()
		ctx := c.bgctx
		size, err := c.size(ctx, name)
		if err != nil {
			c.log.Debug("cache: warm failed", "name", name, "err", err)
			return
		}
		if off >= size {
			return
		}
		obj := objHash(name)
		c.mu.Lock()
		if lim := c.limitLocked(); lim > 0 { // a quarter of the cache at most, as for readAhead
			n = min(n, max(c.block, lim/4))
		}
		todo := c.spansLocked(obj, size, off/c.block, (min(off+n, size)-1)/c.block)
		c.mu.Unlock()
		for _, sp := range todo {
			select {
			case c.ahead <- struct{}{}:
			case <-ctx.Done():
				return
			}
			c.fetchAhead(name, obj, size, sp)
		}
	}()
}

// Prefetch brings n bytes at off of the object into the cache folder.
func (c *DiskCache) Prefetch(ctx context.Context, name string, off, n int64) error {
	if _, err := c.GetRange(ctx, name, off, n); err != nil {
		return err
	}
	return c.Settle(ctx, name, off, n)
}

// Settle waits until the blocks that hold n bytes at off of the object,
// those being fetched, are written to the cache folder: a read returns as
// soon as its bytes are here and the blocks are written after, so without
// it `lamina cache prefetch` said a version was in the cache while its
// last blocks were still only in memory (and lost if the daemon stopped
// then). It returns the error of a block that could not be written; a
// block the limit evicted after it was written is none.
func (c *DiskCache) Settle(ctx context.Context, name string, off, n int64) error {
	if n <= 0 || off < 0 {
		return nil
	}
	obj := objHash(name)
	for bn := off / c.block; bn <= (off+n-1)/c.block; bn++ {
		key := blockKey(obj, bn)
		for {
			c.mu.Lock()
			call, serr := c.pending[key], c.unstored[key]
			c.mu.Unlock()
			if call == nil {
				if serr != nil {
					return fmt.Errorf("%s: %w", name, serr)
				}
				break
			}
			select {
			case <-call.stored:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return nil
}

// Invalidate drops the cached blocks that hold n bytes at off: the content
// store calls it when they failed verification.
func (c *DiskCache) Invalidate(name string, off, n int64) {
	obj := objHash(name)
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.objects[obj]
	for bn := off / c.block; bn <= (off+max(n, 1)-1)/c.block; bn++ {
		// A block still being written holds the bad bytes too: it is not
		// written, and the next reader fetches it again.
		if call := c.pending[blockKey(obj, bn)]; call != nil {
			call.dropped = true
			delete(c.pending, blockKey(obj, bn))
		}
		if el := m[bn]; el != nil {
			c.removeLocked(el)
			m = c.objects[obj]
		} else {
			c.files.Forget(c.path(obj, bn))
			os.Remove(c.path(obj, bn))
		}
	}
	c.log.Warn("cache: dropped cached bytes that failed verification", "name", name, "off", off, "len", n)
}

// Close stops the fetches running in the background (read-ahead, Warm)
// and waits for them. The cache must not be used after.
func (c *DiskCache) Close() error {
	c.stop()
	c.bg.Wait()
	c.pool.close()
	c.nudgeWG.Wait()
	c.mu.Lock()
	nudge := c.nudge != nil && c.guestStored > 0
	c.guestStored = 0
	c.mu.Unlock()
	if nudge {
		c.nudge()
	}
	c.closeLock()
	return nil
}

// CacheInfo are the figures of a DiskCache.
type CacheInfo struct {
	Dir     string `json:"dir"`
	Limit   int64  `json:"limit_bytes"`
	Used    int64  `json:"used_bytes"`
	Blocks  int    `json:"blocks"`
	Hits    int64  `json:"hits"`
	Misses  int64  `json:"misses"`
	Fetched int64  `json:"fetched_bytes"`
	// DiskLimit, when set, is below Limit: what the file system of Dir
	// can hold of the cache (its free space and what the cache uses, less
	// a margin). It is the limit in force.
	DiskLimit int64 `json:"disk_limit_bytes,omitempty"`
	// StoreFailed counts the blocks that could not be written to Dir
	// (each is fetched again when read); StoreError says why the last
	// one could not. DiskFull: the last write failed for want of space.
	StoreFailed int64  `json:"store_failed_blocks,omitempty"`
	StoreError  string `json:"store_error,omitempty"`
	DiskFull    bool   `json:"disk_full,omitempty"`
}

// InForce is the limit the cache keeps to: Limit, or DiskLimit when the
// file system holds less.
func (i CacheInfo) InForce() int64 {
	if i.DiskLimit > 0 && i.DiskLimit < i.Limit {
		return i.DiskLimit
	}
	return i.Limit
}

// Info returns the cache's figures.
func (c *DiskCache) Info() CacheInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := CacheInfo{Dir: c.dir, Limit: c.limit, Used: c.used, Blocks: c.lru.Len(), Hits: c.hits, Misses: c.misses, Fetched: c.fetched,
		StoreFailed: c.storeFailed, StoreError: c.storeErr, DiskFull: c.diskFull}
	if c.room >= 0 {
		i.DiskLimit = max(c.room, 1) // 0 would read as "no cap"
	}
	return i
}

// SetLimit changes the bound and evicts down to it.
func (c *DiskCache) SetLimit(limit int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.limit = limit
	c.measureRoomLocked()
	c.evictLocked()
}

// Clear removes every block that no one is reading.
func (c *DiskCache) Clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for el := c.lru.Back(); el != nil; {
		prev := el.Prev()
		if el.Value.(*block).pins == 0 {
			c.removeLocked(el)
		}
		el = prev
	}
	clear(c.sizes)
}

func (c *DiskCache) forget(name string) {
	obj := objHash(name)
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.sizes, name)
	delete(c.streams, name)
	for _, el := range c.objects[obj] {
		c.removeLocked(el)
	}
	delete(c.sized, obj)
	os.Remove(c.sizePath(obj))
}

// Put writes through to the backend and, with KeepWrites, keeps the bytes.
func (c *DiskCache) Put(ctx context.Context, name string, data []byte) error {
	c.forget(name)
	if err := c.b.Put(ctx, name, data); err != nil {
		return err
	}
	if c.keep {
		obj := objHash(name)
		for bn := int64(0); bn*c.block < int64(len(data)); bn++ {
			c.store(obj, int64(len(data)), bn, data[bn*c.block:min(int64(len(data)), (bn+1)*c.block)], nil)
		}
		c.mu.Lock()
		c.sizes[name] = int64(len(data))
		c.mu.Unlock()
	}
	return nil
}

// Keep stores the bytes of an object just uploaded (Uploads.OnUploaded) as
// its blocks, the most recently used, under the limit like fetched ones:
// its staged copy goes once it is uploaded, and without this a read of what
// was just written needed the backend (with S3 away, a file written through
// the mount and uploaded could be neither read nor appended to). The bytes
// are those the backend got, so they verify as fetched ones do, and a
// block failing verification is dropped by Invalidate all the same. An
// object larger than the limit is not kept: it would only push out the
// rest of the cache and then itself.
func (c *DiskCache) Keep(name string, data []byte) {
	size := int64(len(data))
	c.mu.Lock()
	fits := size <= c.limitLocked()
	c.mu.Unlock()
	if !fits {
		return
	}
	obj := objHash(name)
	for bn := int64(0); bn*c.block < size; bn++ {
		c.storeBlock(obj, size, bn, data[bn*c.block:min(size, (bn+1)*c.block)], nil)
	}
	c.mu.Lock()
	if len(c.sizes) > 1<<16 {
		clear(c.sizes)
	}
	c.sizes[name] = size
	c.mu.Unlock()
}

// Get reads a whole object through the cache.
func (c *DiskCache) Get(ctx context.Context, name string) ([]byte, error) {
	size, err := c.size(ctx, name)
	if err != nil {
		return nil, err
	}
	if size == 0 {
		return []byte{}, nil
	}
	return c.GetRange(ctx, name, 0, size)
}

// GetStored reads a whole object from the storage, never the cache nor a
// staged copy: for small objects another machine may rewrite (gc's marks,
// MarkNotes; the instance's claim).
func (c *DiskCache) GetStored(ctx context.Context, name string) ([]byte, error) {
	return storage.GetStored(ctx, c.b, name)
}

// PutStored writes through to the storage, never staged (storage.Storer).
func (c *DiskCache) PutStored(ctx context.Context, name string, data []byte) error {
	c.forget(name)
	return storage.PutStored(ctx, c.b, name, data)
}

// CachedObject returns the whole object from cached blocks alone, without
// a request: false when a block (or its size) is not cached. A close that
// reuses a pack while the storage is away keeps a copy of it so
// (Store.protect).
func (c *DiskCache) CachedObject(name string) ([]byte, bool) {
	c.mu.Lock()
	size, ok := c.sizes[name]
	c.mu.Unlock()
	if !ok {
		if size, ok = c.readSize(name); !ok {
			return nil, false
		}
	}
	if size <= 0 || size > 1<<30 {
		return nil, false
	}
	obj := objHash(name)
	data := make([]byte, size)
	for bn := int64(0); bn*c.block < size; bn++ {
		n := blockLen(size, bn, c.block)
		if !c.readCached(obj, bn, n, [][]byte{data[bn*c.block : bn*c.block+n]}, 0) {
			return nil, false
		}
	}
	return data, true
}

func (c *DiskCache) Stat(ctx context.Context, name string) (storage.Info, error) {
	return c.b.Stat(ctx, name)
}

func (c *DiskCache) Delete(ctx context.Context, name string) error {
	c.forget(name)
	return c.b.Delete(ctx, name)
}

func (c *DiskCache) List(ctx context.Context, prefix string, fn func(storage.Info) error) error {
	return c.b.List(ctx, prefix, fn)
}

func (c *DiskCache) Sync(ctx context.Context) error { return c.b.Sync(ctx) }

func (c *DiskCache) String() string { return c.b.String() }

// ErrNoCache is returned by cache commands on an instance without a disk
// cache (local storage needs none).
var ErrNoCache = errors.New("this instance keeps no disk cache: its storage is a local folder, read in place")

// Unwrap returns the backend the cache is in front of.
func (c *DiskCache) Unwrap() storage.Backend { return c.b }
