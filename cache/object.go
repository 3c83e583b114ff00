package cache

import (
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/lamina-bio/lamina/ref"
)

// Codec bytes that start every stored chunk.
const (
	codecRaw  = 0
	codecZstd = 1
)

// ErrCorrupt is returned when stored bytes do not match their digest or do not
// decode. A chunk that failed verification again once fetched afresh from
// storage says so (storageCorrupt): the message was "cache: corrupt
// object", which blamed the local cache for bytes that came from S3.
var ErrCorrupt = errors.New("corrupt data")

// storageCorrupt names the pack of a chunk that failed verification as it
// came from storage (a caching backend's copy was dropped and fetched
// again, or there is none).
func storageCorrupt(c Chunk, err error) error {
	if !errors.Is(err, ErrCorrupt) {
		return err
	}
	return fmt.Errorf("the copy in storage is corrupt: pack %s (bytes %d+%d): %w", c.Pack, c.Off, c.Len, err)
}

var (
	encoder, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)))
	decoder, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(1<<30))
	bufPool    = sync.Pool{New: func() any { b := make([]byte, 0, DefaultParams.Max+64); return &b }}
)

// encodeChunk returns the stored form of a chunk: compressed when that saves
// at least 1/32 of its size, raw otherwise.
func encodeChunk(dst, data []byte) []byte {
	if !compressible(data) { // pack.go: no full attempt on incompressible data
		return append(append(dst[:0], codecRaw), data...)
	}
	dst = append(dst[:0], codecZstd)
	dst = encoder.EncodeAll(data, dst)
	if len(dst)-1 < len(data)-len(data)/32 {
		return dst
	}
	dst = append(dst[:0], codecRaw)
	return append(dst, data...)
}

// decodeChunk reverses encodeChunk and verifies the digest. With a nil dst
// the result may share obj's memory.
func decodeChunk(dst, obj []byte, want ref.Digest) ([]byte, error) {
	if len(obj) == 0 {
		return nil, fmt.Errorf("%w: chunk %s is empty", ErrCorrupt, want)
	}
	var data []byte
	switch obj[0] {
	case codecRaw:
		if cap(dst) == 0 {
			data = obj[1:len(obj):len(obj)] // no copy: obj is the caller's to give
		} else {
			data = append(dst[:0], obj[1:]...)
		}
	case codecZstd:
		var err error
		if data, err = decoder.DecodeAll(obj[1:], dst[:0]); err != nil {
			return nil, fmt.Errorf("%w: chunk %s: %v", ErrCorrupt, want, err)
		}
	default:
		return nil, fmt.Errorf("%w: chunk %s: unknown codec %d", ErrCorrupt, want, obj[0])
	}
	if got := ref.Sum(data); got != want {
		return nil, fmt.Errorf("%w: chunk %s has digest %s", ErrCorrupt, want, got)
	}
	return data, nil
}
