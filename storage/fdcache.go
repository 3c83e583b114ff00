package storage

import (
	"container/list"
	"os"
	"sync"
)

// fdCache keeps recently read objects open. Beyond saving an open and a
// close per ranged read, it keeps the kernel's readahead state, which lives
// in the open file: reading a pack chunk by chunk through fresh opens made
// every 64 KiB read a synchronous disk read (cold mount reads at a quarter
// of the disk's speed).
type fdCache struct {
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

func newFDCache(max int) *fdCache {
	return &fdCache{max: max, files: map[string]*openFile{}, order: list.New()}
}

// acquire returns an open file for path; release it when done.
func (c *fdCache) acquire(path string) (*openFile, error) {
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

func (c *fdCache) release(of *openFile) {
	c.mu.Lock()
	defer c.mu.Unlock()
	of.refs--
	if of.dropped && of.refs == 0 {
		of.f.Close()
	}
}

// forget drops path (it was replaced or deleted).
func (c *fdCache) forget(path string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if of, ok := c.files[path]; ok {
		c.dropLocked(of)
	}
}

func (c *fdCache) dropLocked(of *openFile) {
	c.order.Remove(of.el)
	delete(c.files, of.path)
	of.dropped = true
	if of.refs == 0 {
		of.f.Close()
	}
}
