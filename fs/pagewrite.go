package fs

import (
	"sync"
	"sync/atomic"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// pageWrites tells handle.Write which WRITEs carry FUSE_WRITE_CACHE: pages
// of the kernel's page cache written back, a shared mapping's (the mount
// has no writeback cache). The kernel sends them through whichever
// writable handle of the inode it picks, another process's maybe, so they
// are no handle's writes: a process that wrote through its mapping and
// closed its descriptor left them to the other's close (no version, and
// "not closed" after a kill). go-fuse passes the handler no flags, so the
// request's payload, which the handler gets, names it.
type pageWrites struct {
	n  atomic.Int32 // len(in): every WRITE asks, few are page writes
	mu sync.Mutex
	in map[*byte]struct{}
}

// mark notes data as a page write until the returned func is called.
func (p *pageWrites) mark(data []byte) func() {
	if len(data) == 0 {
		return func() {}
	}
	k := &data[0]
	p.mu.Lock()
	if p.in == nil {
		p.in = map[*byte]struct{}{}
	}
	p.in[k] = struct{}{}
	p.n.Add(1)
	p.mu.Unlock()
	return func() {
		p.mu.Lock()
		delete(p.in, k)
		p.n.Add(-1)
		p.mu.Unlock()
	}
}

// of reports whether data is the payload of a page write being handled.
func (p *pageWrites) of(data []byte) bool {
	if len(data) == 0 || p.n.Load() == 0 {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.in[&data[0]]
	return ok
}

// pageWriteFS notes the payloads of WRITEs with FUSE_WRITE_CACHE. A WRITE
// of several pieces comes to Writev, which the node bridge refuses
// (handles have Write only), then to Write with the pieces copied.
type pageWriteFS struct {
	fuse.RawFileSystem
	p *pageWrites
}

func (f pageWriteFS) Write(cancel <-chan struct{}, in *fuse.WriteIn, data []byte) (uint32, fuse.Status) {
	if in.WriteFlags&fuse.WRITE_CACHE != 0 {
		defer f.p.mark(data)()
	}
	return f.RawFileSystem.Write(cancel, in, data)
}

func (f pageWriteFS) Writev(cancel <-chan struct{}, in *fuse.WriteIn, data [][]byte) (uint32, fuse.Status) {
	if in.WriteFlags&fuse.WRITE_CACHE != 0 && len(data) == 1 {
		defer f.p.mark(data[0])()
	}
	return f.RawFileSystem.Writev(cancel, in, data)
}
