package cache

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/lamina-bio/lamina/ref"
)

// Blob types inside a pack.
const (
	BlobChunk    = 'c'
	BlobManifest = 'm'
)

// packMagic ends every pack; the 4 bytes before it are the trailer length.
var packMagic = []byte("LMP1")

// PackTarget is the size at which a pack is closed and written.
const PackTarget = 16 << 20

// Loc says where a blob is stored.
type Loc struct {
	Pack string `json:"p"` // pack id: 32 hex characters
	Off  int64  `json:"o"`
	Len  int64  `json:"l"` // stored (encoded) length
}

// blobEntry is one blob in a pack trailer.
type blobEntry struct {
	Type   byte       `json:"t"`
	Digest ref.Digest `json:"d"`
	Off    int64      `json:"o"`
	Len    int64      `json:"l"`
	Raw    int64      `json:"r"` // decoded length
}

func newPackID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func packName(id string) string { return "packs/" + id[:2] + "/" + id }

// isPackID says whether id is a pack id: 32 lowercase hex characters.
func isPackID(id string) bool {
	if len(id) != 32 {
		return false
	}
	for _, c := range []byte(id) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// packID returns the id of the pack an object name of a listing of
// "packs/" names, and false for any other name: only packs/<id[:2]>/<id>
// is a pack of this root (another instance's root may lie below packs/,
// made before init refused nested roots; its objects are not ours).
func packID(name string) (string, bool) {
	rest, ok := strings.CutPrefix(name, "packs/")
	if !ok || len(rest) != 35 || rest[2] != '/' || rest[:2] != rest[3:5] {
		return "", false
	}
	return rest[3:], isPackID(rest[3:])
}

// PackOf returns the id of the pack that the object name stores, and
// false for an object that is no pack (a record, a tombstone).
func PackOf(name string) (string, bool) { return packID(name) }

// packBuilder accumulates encoded blobs for one pack.
type packBuilder struct {
	id      string
	buf     *bytes.Buffer // from packBufs
	entries []blobEntry
}

// packBufs holds the buffers of written packs for the next ones: a pack
// buffer grown by doubling cost more CPU in copying and zeroing than the
// upload's MD5 (docs/s3-bench.md).
var packBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func newPackBuilder() *packBuilder {
	p := &packBuilder{id: newPackID()}
	b := packBufs.Get().(*bytes.Buffer)
	b.Reset()
	p.buf = b
	return p
}

// packCap is what a pack's buffer grows to once it outgrows a small one.
var packCap = PackTarget + 2*DefaultParams.Max + 64<<10

// reserve makes room for n more bytes: a small session (one small file
// committed at close) keeps a small buffer instead of clearing 16 MiB, and
// a growing pack goes to full size at once.
func (p *packBuilder) reserve(n int) {
	need := p.buf.Len() + n
	if need <= p.buf.Cap() {
		return
	}
	c := packCap
	if need < 1<<20 {
		c = max(2*need, 64<<10)
	} else if b := takeFullBuf(); b != nil {
		b.Write(p.buf.Bytes())
		packBufs.Put(p.buf)
		p.buf = b
	}
	p.buf.Grow(max(c, need) - p.buf.Len())
}

// fullBufs keeps full-size pack buffers across garbage collections, which
// empty packBufs: a large write (the mount's, under its memory limit,
// collects often) otherwise allocated and cleared 16 MiB per pack, 3% of
// the daemon's CPU (docs/write-bench.md), and a save to S3, with 8 packs
// in flight, 12% of its CPU in clearing new pages. It keeps keepFull: the
// pack being filled, one being closed and those being written
// (Store.SetPackUploads), what the peak holds anyway.
var (
	fullBufs = make(chan *bytes.Buffer, maxKeepFull)
	keepFull atomic.Int32 // raised by each NewWriter
)

const maxKeepFull = 16

// keepFullBufs raises the number of full-size pack buffers kept to n.
func keepFullBufs(n int) {
	n = min(n, maxKeepFull)
	for {
		old := keepFull.Load()
		if int(old) >= n || keepFull.CompareAndSwap(old, int32(n)) {
			return
		}
	}
}

func takeFullBuf() *bytes.Buffer {
	select {
	case b := <-fullBufs:
		b.Reset()
		return b
	default:
		return nil
	}
}

// release hands the pack's buffer back once no one reads the bytes that
// finish returned.
func (p *packBuilder) release() {
	if p.buf.Cap() >= packCap && len(fullBufs) < int(keepFull.Load()) {
		select {
		case fullBufs <- p.buf:
			p.buf = nil
			return
		default:
		}
	}
	packBufs.Put(p.buf)
	p.buf = nil
}

func (p *packBuilder) add(typ byte, d ref.Digest, raw int64, enc []byte) Loc {
	p.reserve(len(enc))
	off := int64(p.buf.Len())
	p.buf.Write(enc)
	p.entries = append(p.entries, blobEntry{Type: typ, Digest: d, Off: off, Len: int64(len(enc)), Raw: raw})
	return Loc{Pack: p.id, Off: off, Len: int64(len(enc))}
}

// addRaw adds a blob stored raw (an incompressible chunk, a small
// manifest): its codec byte and data, copied once, straight into the pack.
func (p *packBuilder) addRaw(typ byte, d ref.Digest, data []byte) Loc {
	n := 1 + len(data)
	p.reserve(n)
	off := int64(p.buf.Len())
	p.buf.WriteByte(codecRaw)
	p.buf.Write(data)
	p.entries = append(p.entries, blobEntry{Type: typ, Digest: d, Off: off, Len: int64(n), Raw: int64(len(data))})
	return Loc{Pack: p.id, Off: off, Len: int64(n)}
}

// finish appends the trailer and returns the whole pack.
func (p *packBuilder) finish() ([]byte, error) {
	t, err := json.Marshal(p.entries)
	if err != nil {
		return nil, err
	}
	z := encoder.EncodeAll(t, nil)
	p.buf.Write(z)
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(z)))
	p.buf.Write(n[:])
	p.buf.Write(packMagic)
	return p.buf.Bytes(), nil
}

// parseTrailer reads the blob list from the last bytes of a pack. tail must
// hold at least the trailer and the 8-byte footer.
func parseTrailer(tail []byte) ([]blobEntry, int, error) {
	if len(tail) < 8 || !bytes.Equal(tail[len(tail)-4:], packMagic) {
		return nil, 0, fmt.Errorf("%w: pack has no trailer", ErrCorrupt)
	}
	n := int(binary.BigEndian.Uint32(tail[len(tail)-8:]))
	if n > len(tail)-8 {
		return nil, n + 8, nil // caller must read more
	}
	raw, err := decoder.DecodeAll(tail[len(tail)-8-n:len(tail)-8], nil)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: pack trailer: %v", ErrCorrupt, err)
	}
	var es []blobEntry
	if err := json.Unmarshal(raw, &es); err != nil {
		return nil, 0, fmt.Errorf("%w: pack trailer: %v", ErrCorrupt, err)
	}
	return es, n + 8, nil
}

// compressSample is the size of each of the three samples compressible
// looks at.
const compressSample = 2 << 10

// compressible guesses whether zstd saves at least 1/32 of data: not when
// the bytes of three samples (its start, middle and end) carry more than
// 7.75 bits each (8 × 31/32), as random bytes and already-compressed
// formats do, for then entropy coding cannot save 1/32 and such data
// rarely repeats. A full attempt on such a chunk cost as much CPU time as
// hashing it (docs/write-bench.md); the guess costs a few microseconds. A
// wrong guess costs space only, at most the 1/32 rule's margin or what
// repeats in the chunk.
func compressible(data []byte) bool {
	if len(data) <= 8*compressSample {
		return true // small: the full attempt is cheap
	}
	// Four histograms, summed after: consecutive equal bytes then do not
	// wait on each other's increment.
	var counts [4][256]uint16
	mid := len(data)/2 - compressSample/2
	for _, s := range [][]byte{data[:compressSample], data[mid : mid+compressSample], data[len(data)-compressSample:]} {
		for i := 0; i+3 < len(s); i += 4 {
			counts[0][s[i]]++
			counts[1][s[i+1]]++
			counts[2][s[i+2]]++
			counts[3][s[i+3]]++
		}
	}
	// The entropy is log2(n) - Σ c·log2(c) / n; c·log2(c) comes from a
	// table, not 256 calls of math.Log2 per chunk (the guess was 4% of the
	// daemon's CPU writing random bytes: 64 KiB chunks, 16,000 a GiB).
	sum := 0.0
	for b := range 256 {
		sum += cLog2c[int(counts[0][b])+int(counts[1][b])+int(counts[2][b])+int(counts[3][b])]
	}
	return math.Log2(compressSamples)-sum/compressSamples <= 7.75
}

// compressSamples is how many bytes compressible counts.
const compressSamples = 3 * compressSample

// cLog2c[c] is c·log2(c), for the counts compressible sums.
var cLog2c = func() (t [compressSamples + 1]float64) {
	for c := 2; c <= compressSamples; c++ {
		t[c] = float64(c) * math.Log2(float64(c))
	}
	return t
}()

// IsPackName reports whether name is the object name of a pack
// (packs/<id[:2]>/<id>): an immutable object, written once.
func IsPackName(name string) bool {
	_, ok := packID(name)
	return ok
}
