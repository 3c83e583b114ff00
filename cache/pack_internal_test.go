package cache

import (
	"bytes"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/lamina-bio/lamina/ref"
)

// TestEncodeChunkSkipsIncompressible: random bytes are stored raw without a
// full compression attempt; text, and a chunk that compresses only past its
// start, are still compressed.
func TestEncodeChunkSkipsIncompressible(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 64<<10)
	for i := range random {
		random[i] = byte(rnd.Uint32())
	}
	obo, err := os.ReadFile("../../shared/data/ontologies/cl-basic.obo")
	if err != nil {
		t.Fatal(err)
	}
	text := obo[:64<<10]
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
	rnd := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 64<<10)
	for i := range random {
		random[i] = byte(rnd.Uint32())
	}
	obo, err := os.ReadFile("../../shared/data/ontologies/cl-basic.obo")
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		data []byte
	}{{"random", random}, {"text", obo[:64<<10]}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.data)))
			dst := make([]byte, 0, 80<<10)
			for i := 0; i < b.N; i++ {
				dst = encodeChunk(dst, c.data)
			}
		})
	}
}
