package stage

import (
	"context"
	"io"
	"os"
	"sync"

	"github.com/lamina-bio/lamina/cache"
)

// DefaultStreamAfter is the size past which a File written sequentially
// from its start is stored while it is written (Options.StreamAfter).
const DefaultStreamAfter = 8 << 20

// stream stores a File's bytes while a sequential writer is still writing
// them: a cache.Writer chunks, hashes, compresses and packs what the
// staging file holds so far, and waits for more. Close then stores only the
// tail instead of reading the whole file back (docs/write-bench.md).
//
// A write anywhere but at the end voids the stream (HDF5 rewrites its
// superblock at offset 0 when it closes a file): the commit then stores the
// staged file again through the same session, where every chunk the stream
// stored is known, so only the changed ones are written twice.
type stream struct {
	w    *cache.Writer
	data *os.File

	mu     sync.Mutex
	more   *sync.Cond // signalled when avail, end or void change
	avail  int64      // bytes of data written so far
	end    bool       // the writer is done: avail is the size
	void   bool       // the bytes stored are not the File's: end the stream at what it has
	done   chan struct{}
	stored cache.File     // once done: what PutFile stored
	mark   cache.HashMark // and its digest state at its last chunk (PutStats.Mark)
	err    error
}

func startStream(content Content, data *os.File, avail int64) *stream {
	st := &stream{w: content.NewWriter(), data: data, avail: avail, done: make(chan struct{})}
	st.more = sync.NewCond(&st.mu)
	go func() {
		file, pst, err := st.w.PutFile(context.Background(), &tailReader{st: st}, nil)
		if err != nil {
			st.w.Abort()
		}
		st.stored, st.mark, st.err = file, pst.Mark, err
		close(st.done)
	}()
	return st
}

// grow says the staging file now holds n bytes.
func (st *stream) grow(n int64) {
	st.mu.Lock()
	st.avail = n
	st.mu.Unlock()
	st.more.Broadcast()
}

// cancel voids the stream and returns its session once the stream has
// stopped (nil if it failed, after Abort).
func (st *stream) cancel() *cache.Writer {
	st.mu.Lock()
	st.void = true
	st.mu.Unlock()
	st.more.Broadcast()
	<-st.done
	if st.err != nil {
		return nil
	}
	return st.w
}

// finish ends the stream at size bytes and returns what it stored, with the
// session to commit.
func (st *stream) finish(size int64) (*cache.Writer, cache.File, error) {
	st.mu.Lock()
	st.avail, st.end = size, true
	st.mu.Unlock()
	st.more.Broadcast()
	<-st.done
	return st.w, st.stored, st.err
}

// tailReader reads the staging file as it grows, until the stream ends.
type tailReader struct {
	st  *stream
	off int64
}

func (r *tailReader) Read(p []byte) (int, error) {
	st := r.st
	st.mu.Lock()
	for r.off >= st.avail && !st.end && !st.void {
		st.more.Wait()
	}
	avail, end, void := st.avail, st.end, st.void
	st.mu.Unlock()
	if void || (r.off >= avail && end) {
		return 0, io.EOF
	}
	if n := avail - r.off; int64(len(p)) > n {
		p = p[:n]
	}
	n, err := st.data.ReadAt(p, r.off)
	r.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}
