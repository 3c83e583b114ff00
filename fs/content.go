package fs

import (
	"cmp"
	"container/list"
	"context"
	"fmt"
	"io"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/ref"
	"golang.org/x/sync/singleflight"
)

// chunkCache keeps decoded, verified chunks in memory, least recently used
// evicted first, and collapses concurrent fetches of one chunk into one.
// Readers of many files share it, so its size bounds the memory reads use.
type chunkCache struct {
	content Content
	warmer  warmer       // nil when content has no cache to warm
	window  windower     // nil: cache.WarmWindow bounds the warming
	direct  directReader // nil when content cannot read into a buffer
	max     int64
	flight  singleflight.Group
	storing chan struct{} // bounds chunks being stored in the kernel (storingTo)
	stored  atomic.Int64  // chunks stored in the kernel's page cache

	mu    sync.Mutex // guards lru, items, bytes, hits, misses
	lru   *list.List // of *chunkItem, most recent first
	items map[ref.Digest]*list.Element
	bytes int64
	hits  int64
	miss  int64
}

type chunkItem struct {
	d    ref.Digest
	data []byte
}

func newChunkCache(c Content, max int64) *chunkCache {
	cc := &chunkCache{content: c, max: max, storing: make(chan struct{}, storeInFlight), lru: list.New(), items: map[ref.Digest]*list.Element{}}
	cc.warmer, _ = c.(warmer)
	cc.window, _ = c.(windower)
	cc.direct, _ = c.(directReader)
	return cc
}

// warmer is Content that can fetch chunks ahead of a sequential reader in
// the background (cache.Store: into the disk cache over S3, into the page
// cache over local storage). The reader asks for the chunks up to
// cache.WarmWindow ahead; the kernel's own readahead (up to 16 MiB of
// READs in flight) keeps the daemon busy meanwhile. A prefetch of chunks
// into the chunk cache was dropped: it cost a copy and an allocation per
// chunk for no gain (docs/mount-bench.md).
type warmer interface {
	Warm(chunks []cache.Chunk)
}

// windower is a warmer that bounds how far ahead warming pays (a quarter
// of a small disk cache: more is evicted before it is read).
type windower interface {
	WarmWindow() int64
}

func (cc *chunkCache) lookup(d ref.Digest) []byte {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if el, ok := cc.items[d]; ok {
		cc.lru.MoveToFront(el)
		cc.hits++
		return el.Value.(*chunkItem).data
	}
	cc.miss++
	return nil
}

func (cc *chunkCache) add(d ref.Digest, data []byte) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if _, ok := cc.items[d]; ok {
		return
	}
	cc.items[d] = cc.lru.PushFront(&chunkItem{d: d, data: data})
	cc.bytes += int64(len(data))
	for cc.bytes > cc.max && cc.lru.Len() > 1 {
		el := cc.lru.Back()
		it := cc.lru.Remove(el).(*chunkItem)
		delete(cc.items, it.d)
		cc.bytes -= int64(len(it.data))
	}
}

// get returns the chunk's bytes, and whether this call read them from the
// content rather than the cache; callers must not modify them.
func (cc *chunkCache) get(ctx context.Context, c cache.Chunk) ([]byte, bool, error) {
	if data := cc.lookup(c.Digest); data != nil {
		return data, false, nil
	}
	fetched := false
	res, err, _ := cc.flight.Do(string(c.Digest[:]), func() (any, error) {
		if data := cc.lookup(c.Digest); data != nil {
			return data, nil
		}
		// The fetch serves every waiter: one caller giving up must not
		// fail the others.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
		defer cancel()
		data, err := cc.content.ReadChunk(fctx, c, nil)
		if err != nil {
			return nil, err
		}
		cc.add(c.Digest, data)
		fetched = true
		return data, nil
	})
	if err != nil {
		return nil, false, err
	}
	return res.([]byte), fetched, nil
}

// chunkWork is handed chunks of READs to read and verify. Its goroutines
// live as long as the process: a goroutine started per chunk grew its stack
// for BLAKE3 each time (runtime.newstack and copystack were 4% of a cold
// read's CPU, docs/mount-bench.md). Four per core, since a chunk not yet
// in the page cache blocks its goroutine on the disk.
var chunkWork = sync.OnceValue(func() chan func() {
	work := make(chan func())
	for range 4 * runtime.GOMAXPROCS(0) {
		go func() {
			for fn := range work {
				fn()
			}
		}()
	}
	return work
})

// fillAll calls fill for the chunks from i to last-1 on every core at
// once: the READ's goroutine fills those no worker is free for. It returns
// the first error.
func fillAll(i, last int, fill func(int) error) error {
	if last-i == 1 {
		return fill(i)
	}
	var (
		wg    sync.WaitGroup
		errMu sync.Mutex
		first error
	)
	run := func(j int) {
		if err := fill(j); err != nil {
			errMu.Lock()
			first = cmp.Or(first, err)
			errMu.Unlock()
		}
	}
	work := chunkWork()
	for j := i; j < last; j++ {
		wg.Add(1)
		select {
		case work <- func() { defer wg.Done(); run(j) }:
		default:
			run(j)
			wg.Done()
		}
	}
	wg.Wait()
	return first
}

// storeInFlight bounds the chunks being written into the kernel's page
// cache at once; a random read that finds no slot just skips it.
const storeInFlight = 8

// storingTo makes r put each chunk a random read fetched into the page
// cache of in (FUSE_NOTIFY_STORE), in the background: the kernel locks the
// pages of a READ until the reply, so the READ's own goroutine must not
// wait for the store. For inodes whose content never changes (a version)
// pg is nil; a latest path's inode, which shows one version after another,
// stores only while pg says the kernel may keep the pages of uid, r's
// version (inode.go).
func (r *fileReader) storingTo(in *fusefs.Inode, pg *pageState, uid [ref.UIDLen]byte) *fileReader {
	cc := r.cc
	r.store = func(off int64, data []byte) {
		select {
		case cc.storing <- struct{}{}:
		default:
			return
		}
		go func() {
			defer func() { <-cc.storing }()
			put := func() {
				if errno := in.WriteCache(off, data); errno == 0 {
					cc.stored.Add(1)
				}
			}
			if pg == nil {
				put()
			} else {
				pg.store(uid, put)
			}
		}()
	}
	return r
}

// directReader is Content that reads a chunk into the caller's buffer
// (cache.Store).
type directReader interface {
	ReadChunkInto(ctx context.Context, c cache.Chunk, dst []byte) error
}

// readInto fills dst (c.Size bytes) with the chunk: from the chunk cache if
// it holds it, else read straight into dst without entering the cache,
// since the kernel's page cache keeps what a READ returned.
func (cc *chunkCache) readInto(ctx context.Context, c cache.Chunk, dst []byte) error {
	if data := cc.lookup(c.Digest); data != nil {
		copy(dst, data)
		return nil
	}
	if cc.direct == nil {
		data, _, err := cc.get(ctx, c)
		if err == nil {
			copy(dst, data)
		}
		return err
	}
	return cc.direct.ReadChunkInto(ctx, c, dst)
}

// CacheStats are the figures of the chunk cache.
type CacheStats struct {
	Bytes  int64 `json:"bytes"`
	Max    int64 `json:"max_bytes"`
	Chunks int   `json:"chunks"`
	Hits   int64 `json:"hits"`
	Misses int64 `json:"misses"`
	Stored int64 `json:"stored_in_kernel"` // chunks put into the kernel's page cache (storingTo)
}

func (cc *chunkCache) stats() CacheStats {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return CacheStats{Bytes: cc.bytes, Max: cc.max, Chunks: cc.lru.Len(), Hits: cc.hits, Misses: cc.miss, Stored: cc.stored.Load()}
}

// fileReader reads one file: a chunk a READ covers whole is read straight
// into the reply, the others through the chunk cache. A read that
// continues where the previous one ended warms the content ahead of it.
type fileReader struct {
	cc      *chunkCache
	f       cache.File
	offsets []int64 // offsets[i] is where chunk i starts

	mu     sync.Mutex // guards next, warmTo, window
	next   int64      // where a sequential reader reads next
	warmTo int64      // the content is being fetched up to here
	window int64      // how far ahead to warm: grows with what is read

	// store, if set, is given each chunk that a random read fetched and
	// verified, to put all of it into the kernel's page cache: the next
	// small reads in that chunk are then answered by the kernel.
	store func(off int64, data []byte)

	of *versionOf // what the content is of; nil: not known (named)
}

// versionOf is the version a fileReader reads, looked up the first time
// it is needed (a read fails, a pack is missing): its name for the error,
// and when it was saved for the content store's pack wait
// (cache.WithVersion).
type versionOf struct {
	ns   *Namespace
	e    Entry
	once sync.Once
	name string
	at   time.Time
}

func (v *versionOf) load() {
	v.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		full, err := v.ns.Full(ctx, v.e)
		if err != nil {
			v.name = v.e.Name
			return
		}
		v.name, v.at = full.Ref(), full.CreatedAt
		if p := v.e.Path(); p != "" && v.e.Kind == KindFolderFile {
			v.name += "/" + p
		}
	})
}

// SavedAt is cache.Version's.
func (v *versionOf) SavedAt() (time.Time, bool) {
	v.load()
	return v.at, !v.at.IsZero()
}

// named tells r which version (or file of a folder version) it reads, for
// its errors (the mount's log named only a chunk) and the pack wait.
func (r *fileReader) named(ns *Namespace, e Entry) *fileReader {
	r.of = &versionOf{ns: ns, e: e}
	return r
}

// seqSlack is how far from where the last read ended a read may start and
// still count as sequential.
const seqSlack = 4 << 20

func newFileReader(cc *chunkCache, f cache.File) *fileReader {
	r := &fileReader{cc: cc, f: f, offsets: make([]int64, len(f.Chunks))}
	var off int64
	for i, c := range f.Chunks {
		r.offsets[i] = off
		off += c.Size
	}
	return r
}

// warmLimit is how far ahead of the reader warming pays: cache.WarmWindow,
// or less over a small disk cache (Store.WarmWindow; 0: not at all).
func (r *fileReader) warmLimit() int64 {
	if r.cc.window != nil {
		return r.cc.window.WarmWindow()
	}
	return cache.WarmWindow
}

// ReadAt reads len(p) bytes at off, fetching only the chunks it needs.
func (r *fileReader) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	if off >= r.f.Size {
		return 0, io.EOF
	}
	i := sort.Search(len(r.offsets), func(i int) bool { return r.offsets[i] > off }) - 1
	end := off + int64(len(p))
	r.mu.Lock()
	// The kernel's read-ahead sends several reads at once: they arrive a
	// little out of order. The first read warms nothing: `head -c 100`
	// must cost one block, and a reader that goes on is warmed from its
	// next read.
	first := r.next == 0 && r.window == 0
	sequential := off == 0 || (off >= r.next-seqSlack && off <= r.next+seqSlack)
	var warm []cache.Chunk
	if sequential && first {
		r.next = end
	} else if sequential {
		r.next = max(r.next, end)
		if limit := r.warmLimit(); r.cc.warmer != nil && limit > 0 {
			// Slow start: the window grows by what is read, up to
			// cache.WarmWindow; a quarter of it is asked for at a time.
			// Bounded by what the cache below keeps (warmLimit).
			r.window = min(max(r.window+int64(len(p)), 4<<20), limit)
			if end+r.window*3/4 > r.warmTo {
				from, to := max(r.warmTo, end), end+r.window
				a := sort.Search(len(r.offsets), func(i int) bool { return r.offsets[i] > from }) - 1
				b := sort.Search(len(r.offsets), func(i int) bool { return r.offsets[i] >= to })
				warm = r.f.Chunks[max(a, 0):b]
				r.warmTo = to
			}
		}
	} else {
		r.next, r.window, r.warmTo = end, 0, 0
	}
	r.mu.Unlock()
	if len(warm) > 0 {
		r.cc.warmer.Warm(warm)
	}
	end = min(end, r.f.Size)
	if r.of != nil {
		ctx = cache.WithVersion(ctx, r.of)
	}
	last := sort.Search(len(r.offsets), func(j int) bool { return r.offsets[j] >= end })
	// A READ spans many chunks (1 MiB is 16 of them): fetch, verify and
	// decode them on every core at once. A chunk that lies wholly inside
	// the READ is read straight into p; the ones it shares with the READs
	// before and after go through the chunk cache.
	fill := func(j int) error {
		c, cs := r.f.Chunks[j], r.offsets[j]
		lo, hi := max(cs, off), min(cs+c.Size, end)
		dst := p[lo-off : hi-off]
		if lo == cs && hi == cs+c.Size {
			return r.cc.readInto(ctx, c, dst)
		}
		d, fetched, err := r.cc.get(ctx, c)
		if err != nil {
			return err
		}
		copy(dst, d[lo-cs:])
		if fetched && !sequential && r.store != nil {
			r.store(cs, d)
		}
		return nil
	}
	if err := fillAll(i, last, fill); err != nil {
		if r.of != nil {
			r.of.load()
			return 0, fmt.Errorf("%s: %w", r.of.name, err)
		}
		return 0, err
	}
	n := int(end - off)
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
