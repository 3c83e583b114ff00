package cache

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/lamina-bio/lamina/ref"
)

// The cuts over runs of zeros, which the Chunker remembers rather than
// rolls, are those the gear hash gives: at the run's start, inside it, at
// the end of the file, and with data right after it.
func TestChunkerZeroRunsCutAsScanned(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	var data []byte
	for _, part := range [][]byte{
		random(100 << 10), make([]byte, 3<<20+5), random(70 << 10), make([]byte, 20000),
		random(1), make([]byte, 300<<10), {1}, make([]byte, 17<<10+3), random(5000), make([]byte, 1<<20+999),
	} {
		data = append(data, part...)
	}
	for _, p := range []Params{DefaultParams, {Min: 2 << 10, Avg: 8 << 10, Max: 32 << 10}} {
		// The reference: every cut rolled.
		rolled := &Chunker{p: p}
		nc, _ := NewChunker(bytes.NewReader(nil), p)
		rolled.maskS, rolled.maskL = nc.maskS, nc.maskL
		var want []int
		for pos := 0; pos < len(data); {
			b := data[pos:]
			n := len(b)
			if n > p.Min {
				n = rolled.scanCut(b, min(n, p.Max))
			}
			want = append(want, n)
			pos += n
		}
		for _, end := range []int{len(data), len(data) - 999, 100<<10 + 3<<20} { // also ending inside a run
			c, _ := NewChunker(bytes.NewReader(data[:end]), p)
			var got []int
			for {
				b, err := c.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, len(b))
			}
			c.Release()
			if end == len(data) && !equalInts(got, want) {
				t.Fatalf("params %+v: %d chunks, rolled %d; first difference at %d", p, len(got), len(want), firstDifference(got, want))
			}
			var total int
			for _, n := range got {
				total += n
			}
			if total != end {
				t.Fatalf("chunks of %d bytes for %d", total, end)
			}
		}
	}
	for _, n := range []int{1, 4096, 16 << 10, 65 << 10, 256 << 10, 256 << 10, 4096} {
		if got, want := sumChunk(make([]byte, n)), ref.Sum(make([]byte, n)); got != want {
			t.Fatalf("zeros of %d: %s, want %s", n, got, want)
		}
	}
}

func equalInts(a, b []int) bool { return firstDifference(a, b) < 0 }

func firstDifference(a, b []int) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	if len(a) != len(b) {
		return min(len(a), len(b))
	}
	return -1
}
