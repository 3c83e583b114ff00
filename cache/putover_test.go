package cache_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"reflect"
	"sync/atomic"
	"testing"

	"github.com/lamina-bio/lamina/cache"
)

// PutFileOver of bytes edited in place gives what PutFile of all of them
// gives: size, digest and every chunk (digest, size, and here, with one
// index, location). A reuse of the base's last chunk (cut by its end of
// file) on an append, or of a chunk past the first changed byte, fails.
func TestPutFileOverSameAsPutFile(t *testing.T) {
	ctx := context.Background()
	p := cache.DefaultParams
	base := randomBytes(7, 3<<20+12345)
	var mid int // the end of a chunk of base near its middle
	for _, c := range chunks(t, base, p) {
		if mid += len(c); mid > len(base)/2 {
			break
		}
	}
	text := bytes.Repeat([]byte("2026-11-28 06:40:00 INFO something happened in the log\n"), 60000)
	for _, tc := range []struct {
		name string
		base []byte
		edit func(b []byte) ([]byte, int64) // the new bytes, the first changed offset
	}{
		{"append a byte", base, func(b []byte) ([]byte, int64) { return append(b, 'x'), int64(len(b)) }},
		{"append 300 KiB", base, func(b []byte) ([]byte, int64) { return append(b, randomBytes(8, 300<<10)...), int64(len(b)) }},
		{"append to a log", text, func(b []byte) ([]byte, int64) { return append(b, "one more line\n"...), int64(len(b)) }},
		{"nothing changed", base, func(b []byte) ([]byte, int64) { return b, int64(len(b)) }},
		{"4 KiB in the middle", base, func(b []byte) ([]byte, int64) { copy(b[len(b)/2:], randomBytes(9, 4096)); return b, int64(len(b) / 2) }},
		{"the last byte of a chunk", base, func(b []byte) ([]byte, int64) { b[mid-1]++; return b, int64(mid - 1) }},
		{"the first byte of a chunk", base, func(b []byte) ([]byte, int64) { b[mid]++; return b, int64(mid) }},
		{"a byte at the start", base, func(b []byte) ([]byte, int64) { b[0]++; return b, 0 }},
		{"a byte in the last chunk", base, func(b []byte) ([]byte, int64) { b[len(b)-2]++; return b, int64(len(b) - 2) }},
		{"truncated in the middle", base, func(b []byte) ([]byte, int64) { return b[:len(b)/2+1], int64(len(b)/2 + 1) }},
		{"truncated to empty", base, func(b []byte) ([]byte, int64) { return b[:0], 0 }},
		{"extended with zeros", base, func(b []byte) ([]byte, int64) { return append(b, make([]byte, 1<<20)...), int64(len(b)) }},
		{"truncated then appended", base, func(b []byte) ([]byte, int64) {
			return append(b[:len(b)/3:len(b)/3], randomBytes(10, 100<<10)...), int64(len(b) / 3)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newStore(t)
			w := s.NewWriter()
			old, _, err := w.PutFile(ctx, bytes.NewReader(tc.base), nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			next, same := tc.edit(append([]byte(nil), tc.base...))
			// Also at every chunk boundary of the base around the change:
			// a chunk ending exactly at the first changed byte is kept, one
			// ending a byte after it is not.
			sames := []int64{same}
			var end int64
			for _, c := range old.Chunks {
				end += c.Size
				if end <= same && end+int64(p.Max) > same {
					sames = append(sames, end, end-1)
				}
			}
			// Digest states of the base part way: where its last chunk
			// starts (an append's), at a chunk end below the change and one
			// above it (ignored), and none.
			marks := []cache.HashMark{{}}
			ats := []int64{cache.LastChunkStart(old)}
			end = 0
			for _, c := range old.Chunks {
				if end += c.Size; end > same {
					ats = append(ats, end)
					break
				}
				if end+2*c.Size <= same {
					ats = append(ats[:1], end)
				}
			}
			for _, at := range ats {
				if at >= old.Size {
					continue // no mark at the end
				}
				_, m, err := s.Open(old).WriteToMarked(ctx, io.Discard, nil, at)
				if err != nil {
					t.Fatal(err)
				}
				if m.N != at {
					t.Fatalf("a mark at %d, wanted %d", m.N, at)
				}
				marks = append(marks, m)
			}
			for i, same := range sames {
				mark := marks[i%len(marks)]
				w := s.NewWriter()
				over, _, err := w.PutFileOver(ctx, bytes.NewReader(next), int64(len(next)), old, same, mark, nil)
				if err != nil {
					t.Fatal(err)
				}
				if err := w.Commit(ctx); err != nil {
					t.Fatal(err)
				}
				w = s.NewWriter()
				full, _, err := w.PutFile(ctx, bytes.NewReader(next), nil)
				if err != nil {
					t.Fatal(err)
				}
				if err := w.Commit(ctx); err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(over, full) {
					t.Fatalf("same=%d, mark at %d: PutFileOver gave %s, PutFile %s", same, mark.N, describe(over), describe(full))
				}
				got := make([]byte, over.Size)
				if _, err := s.Open(over).ReadAt(got, 0); err != nil && over.Size > 0 {
					t.Fatal(err)
				}
				if !bytes.Equal(got, next) {
					t.Fatalf("same=%d: the stored bytes differ", same)
				}
			}
		})
	}
}

func describe(f cache.File) string {
	s := fmt.Sprintf("size %d digest %s, %d chunks:", f.Size, f.Digest, len(f.Chunks))
	for _, c := range f.Chunks {
		s += fmt.Sprintf(" %d@%s:%d", c.Size, c.Pack[:min(6, len(c.Pack))], c.Off)
	}
	return s
}

// countingReaderAt counts the bytes read below at.
type countingReaderAt struct {
	r     *bytes.Reader
	at    int64
	below atomic.Int64
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < c.at {
		c.below.Add(min(int64(len(p)), c.at-off))
	}
	return c.r.ReadAt(p, off)
}

// A store's PutStats.Mark is the digest's state where the file's last
// chunk starts: a PutFileOver of an append with it reads nothing before
// that chunk, and stores what a full store does.
func TestPutStatsMarkResumesTheDigest(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	base := randomBytes(11, 2<<20+777)
	w := s.NewWriter()
	old, st, err := w.PutFile(ctx, bytes.NewReader(base), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	last := cache.LastChunkStart(old)
	if !st.Mark.Valid() || st.Mark.N != last {
		t.Fatalf("PutFile's mark at %d (valid %v), want at the last chunk's start %d", st.Mark.N, st.Mark.Valid(), last)
	}
	for round := range 3 {
		next := append(append([]byte(nil), base...), randomBytes(uint64(20+round), 5000)...)
		r := &countingReaderAt{r: bytes.NewReader(next), at: last}
		w := s.NewWriter()
		got, gst, err := w.PutFileOver(ctx, r, int64(len(next)), old, int64(len(base)), st.Mark, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		if n := r.below.Load(); n != 0 {
			t.Fatalf("round %d: the append read %d bytes before the base's last chunk", round, n)
		}
		w = s.NewWriter()
		want, _, err := w.PutFile(ctx, bytes.NewReader(next), nil)
		if err != nil {
			t.Fatal(err)
		}
		w.Abort()
		if got.Digest != want.Digest || !reflect.DeepEqual(got.Chunks, want.Chunks) {
			t.Fatalf("round %d: the append stored otherwise than a full store", round)
		}
		base, old, st, last = next, got, gst, cache.LastChunkStart(got)
		if !gst.Mark.Valid() || gst.Mark.N != last {
			t.Fatalf("round %d: PutFileOver's mark at %d, want %d", round, gst.Mark.N, last)
		}
	}
}
