package storage

import (
	"container/list"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// OpenFiles keeps recently read files open: the local backend's packs, the
// disk cache's block files. Beyond saving an open and a close per ranged
// read, it keeps the kernel's readahead state, which lives in the open
// file: reading a pack chunk by chunk through fresh opens made every 64 KiB
// read a synchronous disk read (cold mount reads at a quarter of the disk's
// speed). Files must not change while open here, only be replaced or
// removed, after which Forget. It is safe for concurrent use.
type OpenFiles struct {
	max int

	mu    sync.Mutex // guards files and order
	files map[string]*openFile
	order *list.List // of *openFile, most recent first
}

type openFile struct {
	path    string
	f       *os.File
	refs    int  // readers using f now
	dropped bool // removed from the cache; close when refs reaches 0
	el      *list.Element
}

// NewOpenFiles keeps up to max files open.
func NewOpenFiles(max int) *OpenFiles {
	return &OpenFiles{max: max, files: map[string]*openFile{}, order: list.New()}
}

// ReadAt fills bufs, one after another, with the file's bytes at off (one
// preadv). A file shorter than the bufs is an error; a missing one wraps
// fs.ErrNotExist.
func (c *OpenFiles) ReadAt(path string, bufs [][]byte, off int64) error {
	of, err := c.acquire(path)
	if err != nil {
		return err
	}
	defer c.release(of)
	rc, err := of.f.SyscallConn()
	if err != nil {
		return err
	}
	var rerr error
	if err := rc.Control(func(fd uintptr) { rerr = preadvFull(int(fd), bufs, off) }); err != nil {
		return err
	}
	return rerr
}

// preadvFull fills bufs from fd at off, going on after short reads.
func preadvFull(fd int, bufs [][]byte, off int64) error {
	for {
		for len(bufs) > 0 && len(bufs[0]) == 0 {
			bufs = bufs[1:]
		}
		if len(bufs) == 0 {
			return nil
		}
		n, err := unix.Preadv(fd, bufs, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrUnexpectedEOF
		}
		off += int64(n)
		for len(bufs) > 0 && n >= len(bufs[0]) {
			n -= len(bufs[0])
			bufs = bufs[1:]
		}
		if n > 0 {
			bufs = append([][]byte{bufs[0][n:]}, bufs[1:]...)
		}
	}
}

// acquire returns an open file for path; release it when done.
func (c *OpenFiles) acquire(path string) (*openFile, error) {
	c.mu.Lock()
	if of, ok := c.files[path]; ok {
		of.refs++
		c.order.MoveToFront(of.el)
		c.mu.Unlock()
		return of, nil
	}
	c.mu.Unlock()
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if of, ok := c.files[path]; ok { // another reader opened it meanwhile
		f.Close()
		of.refs++
		c.order.MoveToFront(of.el)
		return of, nil
	}
	of := &openFile{path: path, f: f, refs: 1}
	of.el = c.order.PushFront(of)
	c.files[path] = of
	for c.order.Len() > c.max {
		c.dropLocked(c.order.Back().Value.(*openFile))
	}
	return of, nil
}

func (c *OpenFiles) release(of *openFile) {
	c.mu.Lock()
	defer c.mu.Unlock()
	of.refs--
	if of.dropped && of.refs == 0 {
		of.f.Close()
	}
}

// Forget closes path once no reader uses it (it was replaced or removed).
func (c *OpenFiles) Forget(path string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if of, ok := c.files[path]; ok {
		c.dropLocked(of)
	}
}

func (c *OpenFiles) dropLocked(of *openFile) {
	c.order.Remove(of.el)
	delete(c.files, of.path)
	of.dropped = true
	if of.refs == 0 {
		of.f.Close()
	}
}
