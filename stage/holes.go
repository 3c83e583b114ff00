package stage

import (
	"errors"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// holeReader reads a staging file, size bytes long, as ReadAt does, but
// fills the file's holes (truncate or a seek past the end: `truncate -s 8G`,
// a sparse HDF5 or database file) with zeros without reading them: a read of
// a hole makes the kernel give each page of it a page-cache page of zeros,
// which cost more than chunking them (docs/write-bench.md). The file system
// says where the holes are (lseek SEEK_DATA / SEEK_HOLE); one that cannot
// is read throughout. Not for a file others may write meanwhile (a File's
// commit holds its lock; adopted Files are not read through it).
// Safe for concurrent use, as a ReaderAt is (a commit hashes a kept head
// while it chunks the rest).
type holeReader struct {
	f    *os.File
	size int64

	mu sync.Mutex
	// [from, to) is known to be data (hole false) or a hole.
	from, to int64
	hole     bool
	noSeek   bool
}

func newHoleReader(f *os.File, size int64) *holeReader {
	if fi, err := f.Stat(); err == nil && fi.Size() < size {
		size = fi.Size() // what is not there reads as the end, not as zeros
	}
	return &holeReader{f: f, size: size}
}

func (h *holeReader) ReadAt(p []byte, off int64) (int, error) {
	if off >= h.size {
		return 0, io.EOF
	}
	if rest := h.size - off; int64(len(p)) > rest {
		n, err := h.ReadAt(p[:rest], off)
		if err == nil {
			err = io.EOF
		}
		return n, err
	}
	n := 0
	for n < len(p) {
		o := off + int64(n)
		h.mu.Lock()
		if !h.noSeek && (o < h.from || o >= h.to) {
			h.locate(o)
		}
		noSeek, to, hole := h.noSeek, h.to, h.hole
		h.mu.Unlock()
		if noSeek {
			m, err := h.f.ReadAt(p[n:], o)
			return n + m, err
		}
		m := int(min(int64(len(p)-n), to-o))
		if hole {
			clear(p[n : n+m])
		} else {
			k, err := h.f.ReadAt(p[n:n+m], o)
			if err != nil {
				return n + k, err
			}
		}
		n += m
	}
	return n, nil
}

// locate finds the data or hole region holding o (o < size). Called with
// h.mu held.
func (h *holeReader) locate(o int64) {
	fd := int(h.f.Fd())
	d, err := unix.Seek(fd, o, unix.SEEK_DATA)
	switch {
	case errors.Is(err, unix.ENXIO): // no data from o on
		h.from, h.to, h.hole = o, h.size, true
	case err != nil || d < o:
		h.noSeek = true
	case d > o:
		h.from, h.to, h.hole = o, min(d, h.size), true
	default:
		e, err := unix.Seek(fd, o, unix.SEEK_HOLE)
		if err != nil || e <= o {
			h.noSeek = true
			return
		}
		h.from, h.to, h.hole = o, min(e, h.size), false
	}
}
