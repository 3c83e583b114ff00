package cache

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing"
)

// BenchmarkChunker is the content-defined chunking of random bytes alone:
// a save spends a fifth of its CPU here.
func BenchmarkChunker(b *testing.B) {
	data := make([]byte, 64<<20)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		c, err := NewChunker(bytes.NewReader(data), DefaultParams)
		if err != nil {
			b.Fatal(err)
		}
		for {
			if _, err := c.Next(); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
		}
		c.Release()
	}
}

// cutByteByByte is the chunker's cut as FastCDC states it, one byte per
// step: scan's two-byte steps must find exactly its boundaries, since the
// boundaries are the storage format.
func cutByteByByte(c *Chunker, b []byte) int {
	n := min(len(b), c.p.Max)
	if len(b) <= c.p.Min {
		return len(b)
	}
	var fp uint64
	for i := c.p.Min; i < n; i++ {
		fp = fp<<1 + gear[b[i]]
		mask := c.maskL
		if i < c.p.Avg {
			mask = c.maskS
		}
		if fp&mask == 0 {
			return i + 1
		}
	}
	return n
}

func TestCutMatchesByteByByte(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, p := range []Params{{Min: 64, Avg: 256, Max: 1024}, {Min: 63, Avg: 128, Max: 301}, DefaultParams} {
		c, err := NewChunker(nil, p)
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 2*p.Max+7)
		for k := 0; k < 300_000/p.Min; k++ {
			for i := range b {
				b[i] = byte(r.Uint32())
			}
			// Every length around the bounds, odd and even.
			n := []int{p.Min - 1, p.Min, p.Min + 1, p.Avg - 1, p.Avg, p.Avg + 1, p.Max - 1, p.Max, p.Max + 1, len(b)}[k%10]
			if got, want := c.cut(b[:n]), cutByteByByte(c, b[:n]); got != want {
				t.Fatalf("params %+v, %d bytes: cut %d, byte by byte %d", p, n, got, want)
			}
		}
	}
}
