package cache

import (
	"context"

	"golang.org/x/sys/unix"
)

// spanPool is a fixed number of equal buffers that the disk cache reads GET
// bodies into. They live outside the Go heap (anonymous mappings): a fresh
// 16 MiB slice per GET cost its zeroing and page faults, and buffers kept
// in the heap kept it at the mount's soft memory limit, where the GC ran
// every few MiB; a sync.Pool is emptied by each of those GCs
// (docs/s3-bench.md, fourth and sixth passes). Its bound is also the bound
// on GET bodies in memory: a fetch waits for a free buffer.
type spanPool struct {
	size  int
	slots chan *poolBuf // free buffers; nil entries are not made yet
}

type poolBuf struct {
	b      []byte
	mapped bool // outside the Go heap: munmap at close
}

func newSpanPool(count, size int) *spanPool {
	p := &spanPool{size: size, slots: make(chan *poolBuf, count)}
	for range count {
		p.slots <- nil
	}
	return p
}

// get returns a buffer of p.size bytes, waiting for one to be free. Its
// bytes are whatever the last user left.
func (p *spanPool) get(ctx context.Context) (*poolBuf, error) {
	select {
	case b := <-p.slots:
		if b == nil {
			b = newPoolBuf(p.size)
		}
		return b, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// tryGet returns a free buffer, or nil when all are in use.
func (p *spanPool) tryGet() *poolBuf {
	select {
	case b := <-p.slots:
		if b == nil {
			b = newPoolBuf(p.size)
		}
		return b
	default:
		return nil
	}
}

// put gives back a buffer that get or tryGet returned.
func (p *spanPool) put(b *poolBuf) { p.slots <- b }

// close unmaps the free buffers; one still in use stays mapped.
func (p *spanPool) close() {
	for {
		select {
		case b := <-p.slots:
			if b != nil && b.mapped {
				_ = unix.Munmap(b.b)
			}
		default:
			return
		}
	}
}

// newPoolBuf maps size bytes outside the Go heap, or allocates them in it
// where mapping fails.
func newPoolBuf(size int) *poolBuf {
	b, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return &poolBuf{b: make([]byte, size)}
	}
	return &poolBuf{b: b, mapped: true}
}
