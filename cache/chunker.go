package cache

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"sync"
)

// Params are the chunk size bounds. Avg must be a power of two.
type Params struct {
	Min, Avg, Max int
}

// DefaultParams were chosen by measurement (docs/design.md, `make bench`):
// 64 KiB average chunks keep the dedup ratio of scattered 1% edits well under
// the goal while a 1 GiB file is still only ~16,000 objects.
var DefaultParams = Params{Min: 16 << 10, Avg: 64 << 10, Max: 256 << 10}

func (p Params) check() error {
	if p.Min <= 0 || p.Avg < p.Min || p.Max < p.Avg || p.Avg&(p.Avg-1) != 0 {
		return fmt.Errorf("cache: bad chunk params %+v", p)
	}
	return nil
}

// gear is FastCDC's table of 256 pseudo-random 64-bit values. It is part of
// the storage format: changing it changes every chunk boundary.
var gear = func() (g [256]uint64) {
	x := uint64(0x6c616d696e61) // "lamina"; splitmix64 stream
	for i := range g {
		x += 0x9e3779b97f4a7c15
		z := x
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		g[i] = z ^ (z >> 31)
	}
	return g
}()

// Chunker splits a stream into content-defined chunks with FastCDC's
// normalized chunking: a stricter mask below the average size and a looser
// one above it, so sizes cluster around Avg.
type Chunker struct {
	r            io.Reader
	p            Params
	maskS, maskL uint64
	buf          []byte
	start, end   int
	eof          bool
	zeroN        int // the cut over zeros of zeroN bytes is zeroCut
	zeroCut      int
}

// zeros is compared against: bytes.Equal is a vectorised memcmp.
var zeros = make([]byte, 1<<20)

// isZero reports whether b holds only zero bytes.
func isZero(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(zeros))
		if !bytes.Equal(b[:n], zeros[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}

// NewChunker returns a Chunker reading r.
func NewChunker(r io.Reader, p Params) (*Chunker, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	b := bits.TrailingZeros(uint(p.Avg))
	// Masks use the high bits: with a left-shifting gear hash they depend on
	// the last 64 bytes, the rolling window.
	mask := func(n int) uint64 { return ^uint64(0) << (64 - n) }
	var buf []byte
	if p.Max == DefaultParams.Max {
		buf = *(chunkBufs.Get().(*[]byte))
	} else {
		buf = make([]byte, 4*p.Max)
	}
	return &Chunker{r: r, p: p, maskS: mask(b + 2), maskL: mask(b - 2), buf: buf}, nil
}

// chunkBufs recycles read buffers: a save of many small files would
// otherwise allocate (and clear) 1 MiB per file.
var chunkBufs = sync.Pool{New: func() any { b := make([]byte, 4*DefaultParams.Max); return &b }}

// Release returns the Chunker's buffer for reuse; the Chunker and the last
// chunk it returned must not be used afterwards.
func (c *Chunker) Release() {
	if len(c.buf) == 4*DefaultParams.Max {
		b := c.buf
		chunkBufs.Put(&b)
	}
	c.buf = nil
}

// Next returns the next chunk, or io.EOF after the last one. The slice is
// valid only until the next call.
func (c *Chunker) Next() ([]byte, error) {
	if c.end-c.start < c.p.Max && !c.eof {
		if err := c.fill(); err != nil {
			return nil, err
		}
	}
	n := c.end - c.start
	if n == 0 {
		return nil, io.EOF
	}
	cut := c.cut(c.buf[c.start:c.end])
	chunk := c.buf[c.start : c.start+cut]
	c.start += cut
	return chunk, nil
}

func (c *Chunker) fill() error {
	copy(c.buf, c.buf[c.start:c.end])
	c.end -= c.start
	c.start = 0
	for c.end < len(c.buf) && !c.eof {
		n, err := c.r.Read(c.buf[c.end:])
		c.end += n
		if errors.Is(err, io.EOF) {
			c.eof = true
		} else if err != nil {
			return err
		}
	}
	return nil
}

// cut returns the length of the first chunk of b.
func (c *Chunker) cut(b []byte) int {
	n := len(b)
	if n <= c.p.Min {
		return n
	}
	if n > c.p.Max {
		n = c.p.Max
	}
	// A cut depends only on b[:n]: over zeros (a sparse file's holes) it is
	// the same every time, and found without rolling the hash.
	if isZero(b[:n]) {
		if c.zeroN != n {
			c.zeroN, c.zeroCut = n, c.scanCut(b, n)
		}
		return c.zeroCut
	}
	return c.scanCut(b, n)
}

func (c *Chunker) scanCut(b []byte, n int) int {
	normal := min(c.p.Avg, n)
	fp, i, found := scan(0, b[:normal], c.p.Min, c.maskS)
	if !found {
		_, i, _ = scan(fp, b[:n], normal, c.maskL)
	}
	return i
}

// scan rolls the gear hash fp over b[from:] up to the first byte after
// which the hash has no bit of mask set, and returns the hash, the length
// up to that byte and true; or the hash at the end, len(b) and false.
//
// It steps two bytes at a time: the hash after two bytes is
// fp<<2 + (gear[x]<<1 + gear[y]), and the second term does not wait for
// fp, so the dependency chain through fp is one shift and one add per two
// bytes rather than per byte: 1.5 × the speed, with the same hashes and so
// the same boundaries (TestChunkerBoundariesPinned).
func scan(fp uint64, b []byte, from int, mask uint64) (uint64, int, bool) {
	i := from
	for ; i+1 < len(b); i += 2 {
		gx, gy := gear[b[i]], gear[b[i+1]]
		if (fp<<1+gx)&mask == 0 {
			return fp<<1 + gx, i + 1, true
		}
		fp = fp<<2 + (gx<<1 + gy)
		if fp&mask == 0 {
			return fp, i + 2, true
		}
	}
	for ; i < len(b); i++ {
		fp = fp<<1 + gear[b[i]]
		if fp&mask == 0 {
			return fp, i + 1, true
		}
	}
	return fp, len(b), false
}
