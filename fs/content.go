package fs

import (
	"container/list"
	"context"
	"io"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/ref"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/singleflight"
)

// chunkCache keeps decoded, verified chunks in memory, least recently used
// evicted first, and collapses concurrent fetches of one chunk into one.
// Readers of many files share it, so its size bounds the memory reads use.
type chunkCache struct {
	content Content
	warmer  warmer // nil when content has no cache to warm
	max     int64
	flight  singleflight.Group
	ahead   chan struct{} // bounds prefetches in flight

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
	cc := &chunkCache{content: c, max: max, ahead: make(chan struct{}, 16), lru: list.New(), items: map[ref.Digest]*list.Element{}}
	cc.warmer, _ = c.(warmer)
	return cc
}

// warmer is Content that can fetch chunks into a local cache in the
// background (cache.Store over S3): a sequential reader asks it for the
// chunks up to cache.WarmWindow ahead, where the chunk cache's own
// prefetch reaches only a few chunks.
type warmer interface {
	Warm(chunks []cache.Chunk)
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

// get returns the chunk's bytes; callers must not modify them.
func (cc *chunkCache) get(ctx context.Context, c cache.Chunk) ([]byte, error) {
	if data := cc.lookup(c.Digest); data != nil {
		return data, nil
	}
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
		return data, nil
	})
	if err != nil {
		return nil, err
	}
	return res.([]byte), nil
}

// prefetch fetches c in the background unless enough prefetches are running.
func (cc *chunkCache) prefetch(c cache.Chunk) {
	cc.mu.Lock()
	_, ok := cc.items[c.Digest]
	cc.mu.Unlock()
	if ok {
		return
	}
	select {
	case cc.ahead <- struct{}{}:
	default:
		return
	}
	go func() {
		defer func() { <-cc.ahead }()
		cc.get(context.Background(), c)
	}()
}

// CacheStats are the figures of the chunk cache.
type CacheStats struct {
	Bytes  int64 `json:"bytes"`
	Max    int64 `json:"max_bytes"`
	Chunks int   `json:"chunks"`
	Hits   int64 `json:"hits"`
	Misses int64 `json:"misses"`
}

func (cc *chunkCache) stats() CacheStats {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return CacheStats{Bytes: cc.bytes, Max: cc.max, Chunks: cc.lru.Len(), Hits: cc.hits, Misses: cc.miss}
}

// fileReader reads one file through the chunk cache. A read that continues
// where the previous one ended prefetches the chunks after it.
type fileReader struct {
	cc      *chunkCache
	f       cache.File
	offsets []int64 // offsets[i] is where chunk i starts

	mu     sync.Mutex // guards next, warmTo, window
	next   int64      // where a sequential reader reads next
	warmTo int64      // the content is being fetched up to here
	window int64      // how far ahead to warm: grows with what is read
	streak int        // sequential READs in a row: prefetch from the second
}

// readAhead is how many chunks past a READ a sequential reader fetches
// ahead (2 MiB of 64 KiB chunks: two of the kernel's 1 MiB READs).
const readAhead = 32

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

// ReadAt reads len(p) bytes at off, fetching only the chunks it needs.
func (r *fileReader) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	if off >= r.f.Size {
		return 0, io.EOF
	}
	i := sort.Search(len(r.offsets), func(i int) bool { return r.offsets[i] > off }) - 1
	end := off + int64(len(p))
	r.mu.Lock()
	// The kernel's read-ahead sends several reads at once: they arrive a
	// little out of order.
	sequential := off == 0 || (off >= r.next-seqSlack && off <= r.next+seqSlack)
	var warm []cache.Chunk
	if sequential {
		r.next = max(r.next, end)
		if r.cc.warmer != nil {
			// Slow start: the window grows by what is read, up to
			// cache.WarmWindow; a quarter of it is asked for at a time.
			r.window = min(max(r.window+int64(len(p)), 4<<20), cache.WarmWindow)
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
	if sequential {
		r.streak++
	} else {
		r.streak = 0
	}
	ahead := sequential && r.streak >= 2 // a random read near the last one is not a stream
	r.mu.Unlock()
	if len(warm) > 0 {
		r.cc.warmer.Warm(warm)
	}
	last := sort.Search(len(r.offsets), func(j int) bool { return r.offsets[j] >= end })
	if last-i > 1 {
		// A READ spans many chunks (1 MiB is 16 of them): fetch, verify
		// and decode them on every core at once, not one after another.
		var g errgroup.Group
		g.SetLimit(runtime.GOMAXPROCS(0))
		for j := i + 1; j < last; j++ {
			g.Go(func() error { _, err := r.cc.get(ctx, r.f.Chunks[j]); return err })
		}
		_, err := r.cc.get(ctx, r.f.Chunks[i])
		if gerr := g.Wait(); err == nil {
			err = gerr
		}
		if err != nil {
			return 0, err
		}
	}
	n := 0
	for n < len(p) && i < len(r.offsets) {
		d, err := r.cc.get(ctx, r.f.Chunks[i])
		if err != nil {
			return n, err
		}
		n += copy(p[n:], d[off+int64(n)-r.offsets[i]:])
		i++
	}
	if ahead {
		for j := i; j < len(r.f.Chunks) && j < i+readAhead; j++ {
			r.cc.prefetch(r.f.Chunks[j])
		}
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
