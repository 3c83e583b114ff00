package cache

import (
	"bytes"
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/lamina-bio/lamina/ref"
)

// TestEncodeChunkSkipsIncompressible: random bytes are stored raw without a
// full compression attempt; text, and a chunk that compresses only past its
// start, are still compressed.
func TestEncodeChunkSkipsIncompressible(t *testing.T) {
	random, text := sampleChunks(t)
	mixed := append(append([]byte{}, random[:8<<10]...), make([]byte, 56<<10)...)
	for _, c := range []struct {
		name  string
		data  []byte
		codec byte
	}{
		{"random", random, codecRaw},
		{"text", text, codecZstd},
		{"random start, zeros after", mixed, codecZstd},
		{"small random", random[:4<<10], codecRaw},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := compressible(c.data); got != (c.codec == codecZstd) && len(c.data) > 8*compressSample {
				t.Fatalf("compressible = %v", got)
			}
			enc := encodeChunk(nil, c.data)
			if enc[0] != c.codec {
				t.Fatalf("codec %q, want %q", enc[0], c.codec)
			}
			dec, err := decodeChunk(nil, enc, ref.Sum(c.data))
			if err != nil || !bytes.Equal(dec, c.data) {
				t.Fatalf("decoded %d bytes, %v", len(dec), err)
			}
		})
	}
}

// BenchmarkEncodeChunk: a 64 KiB chunk of random bytes (stored raw) and of
// OBO text (compressed).
func BenchmarkEncodeChunk(b *testing.B) {
	random, text := sampleChunks(b)
	for _, c := range []struct {
		name string
		data []byte
	}{{"random", random}, {"text", text}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.data)))
			dst := make([]byte, 0, 80<<10)
			for i := 0; i < b.N; i++ {
				dst = encodeChunk(dst, c.data)
			}
		})
	}
}

// compressibleByFormula is compressible as first written: the entropy of the
// three samples with a math.Log2 per byte value.
func compressibleByFormula(data []byte) bool {
	if len(data) <= 8*compressSample {
		return true
	}
	var counts [256]int
	mid := len(data)/2 - compressSample/2
	for _, s := range [][]byte{data[:compressSample], data[mid : mid+compressSample], data[len(data)-compressSample:]} {
		for _, c := range s {
			counts[c]++
		}
	}
	bits := 0.0
	for _, c := range counts {
		if c > 0 {
			p := float64(c) / compressSamples
			bits -= p * math.Log2(p)
		}
	}
	return bits <= 7.75
}

// TestCompressibleTable: the table gives the formula's answer on data whose
// entropy spans the threshold (random bytes drawn from alphabets of 128 to
// 256 values, and real files from ../shared/data).
func TestCompressibleTable(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 4))
	var inputs [][]byte
	for alphabet := 128; alphabet <= 256; alphabet += 4 {
		b := make([]byte, 64<<10)
		for i := range b {
			b[i] = byte(rnd.IntN(alphabet))
		}
		inputs = append(inputs, b)
	}
	obo, err := os.ReadFile("../../shared/data/ontologies/cl-basic.obo")
	if err != nil {
		t.Fatal(err)
	}
	inputs = append(inputs, obo[:256<<10], obo[:17<<10])
	saw := map[bool]int{}
	for i, b := range inputs {
		want := compressibleByFormula(b)
		if got := compressible(b); got != want {
			t.Fatalf("input %d (%d bytes): compressible = %v, the formula says %v", i, len(b), got, want)
		}
		saw[want]++
	}
	if saw[true] == 0 || saw[false] == 0 {
		t.Fatalf("the inputs do not span the threshold: %v", saw)
	}
}

// BenchmarkCompressible: the guess for one 64 KiB chunk of random bytes.
func BenchmarkCompressible(b *testing.B) {
	random, _ := sampleChunks(b)
	b.Run("table", func(b *testing.B) {
		for b.Loop() {
			compressible(random)
		}
	})
	b.Run("formula", func(b *testing.B) {
		for b.Loop() {
			compressibleByFormula(random)
		}
	})
}

// sampleChunks returns 64 KiB of random bytes and 64 KiB of OBO text.
func sampleChunks(tb testing.TB) (random, text []byte) {
	tb.Helper()
	rnd := rand.New(rand.NewPCG(1, 2))
	random = make([]byte, 64<<10)
	for i := range random {
		random[i] = byte(rnd.Uint32())
	}
	obo, err := os.ReadFile("../../shared/data/ontologies/cl-basic.obo")
	if err != nil {
		tb.Fatal(err)
	}
	return random, obo[:64<<10]
}
