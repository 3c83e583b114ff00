package ref

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

// UID lengths, LaminDB's scheme: a 16-character stem shared by every version
// of an artifact and a 4-character suffix per version.
const (
	StemLen      = 16
	SuffixLen    = 4
	UIDLen       = StemLen + SuffixLen
	MinUIDPrefix = 8 // shortest prefix that resolves
)

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// ErrBadUID is returned for text that cannot be a uid or uid prefix.
var ErrBadUID = errors.New("bad uid")

// NewStem returns a random 16-character base62 stem (95 bits of entropy).
func NewStem() string {
	var b [StemLen]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	for i := range b {
		// 248 is the largest multiple of 62 below 256: rejection keeps it uniform.
		for b[i] >= 248 {
			var one [1]byte
			_, _ = rand.Read(one[:])
			b[i] = one[0]
		}
		b[i] = base62[b[i]%62]
	}
	return string(b[:])
}

// StemOf returns a stem derived from parts, the same for the same parts
// (SHA-256 of them, NUL-separated, in base62): a record that several
// writers may make at once, keyed by what they all know, gets one uid.
func StemOf(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	sum := h.Sum(nil)
	var b [StemLen]byte
	for i := range b {
		// 16 bits per character: the bias of % 62 is under 0.1%.
		b[i] = base62[binary.BigEndian.Uint16(sum[2*i:])%62]
	}
	return string(b[:])
}

// VersionUID returns the uid of version n (1-based) of the artifact with stem.
// The suffix is n-1 in base62, so version 1 ends in "0000" as in LaminDB.
func VersionUID(stem string, n int) string {
	if n < 1 || n > 62*62*62*62 {
		panic(fmt.Sprintf("ref: version %d out of range", n))
	}
	var s [SuffixLen]byte
	v := n - 1
	for i := SuffixLen - 1; i >= 0; i-- {
		s[i] = base62[v%62]
		v /= 62
	}
	return stem + string(s[:])
}

// IsUIDPrefix reports whether s is made only of base62 characters and is
// between MinUIDPrefix and UIDLen long: something that may name a version.
func IsUIDPrefix(s string) bool {
	if len(s) < MinUIDPrefix || len(s) > UIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return true
}
