// Package ref holds the small value types every other package shares: content
// digests, artifact and version uids, and catalog keys. It imports only the
// standard library (and the hash it names), so any package may depend on it.
package ref

import (
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/zeebo/blake3"
)

// Digest is the BLAKE3-256 hash of some bytes. BLAKE3 was chosen over SHA-256
// by measurement (docs/design.md): about twice as fast on these machines.
type Digest [32]byte

// Sum returns the digest of b.
func Sum(b []byte) Digest { return Digest(blake3.Sum256(b)) }

// Hasher computes a Digest over a stream.
type Hasher struct{ h *blake3.Hasher }

// NewHasher returns a Hasher ready for writing.
func NewHasher() *Hasher { return &Hasher{h: blake3.New()} }

// Write adds b to the hashed stream. It never fails.
func (h *Hasher) Write(b []byte) (int, error) { return h.h.Write(b) }

// Clone returns a Hasher that goes on from what h has hashed so far.
func (h *Hasher) Clone() *Hasher { return &Hasher{h: h.h.Clone()} }

// Digest returns the digest of everything written so far.
func (h *Hasher) Digest() Digest {
	var d Digest
	h.h.Sum(d[:0])
	return d
}

// String is the lowercase hex form used in storage names and output.
func (d Digest) String() string { return hex.EncodeToString(d[:]) }

// IsZero reports whether d is the zero digest (no content recorded).
func (d Digest) IsZero() bool { return d == Digest{} }

// MarshalText implements encoding.TextMarshaler.
func (d Digest) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Digest) UnmarshalText(b []byte) error {
	p, err := ParseDigest(string(b))
	if err != nil {
		return err
	}
	*d = p
	return nil
}

// ErrBadDigest is returned for text that is not 64 hex digits.
var ErrBadDigest = errors.New("bad digest")

// ParseDigest parses the hex form written by String.
func ParseDigest(s string) (Digest, error) {
	var d Digest
	if len(s) != 64 {
		return d, fmt.Errorf("%w: %q: want 64 hex digits", ErrBadDigest, s)
	}
	if _, err := hex.Decode(d[:], []byte(s)); err != nil {
		return d, fmt.Errorf("%w: %q: %v", ErrBadDigest, s, err)
	}
	return d, nil
}
