package s3_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/lamina-bio/lamina/storage"
	"github.com/lamina-bio/lamina/storage/s3/s3test"
)

// TestGetRangeInto reads ranges of an object on the real server straight
// into the caller's buffers (the disk cache's GETs): every byte of the
// buffer is the object's, and a range past the end or a missing object is
// an error.
func TestGetRangeInto(t *testing.T) {
	b := open(t, s3test.Real(t), "into")
	ctx := context.Background()
	data := bytes.Repeat([]byte("lamina-range-into"), 40000) // 680,000 bytes
	if err := b.Put(ctx, "packs/aa/x", data); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		off, n int64
	}{
		{"head", 0, 100},
		{"middle", 12345, 300000},
		{"tail", int64(len(data)) - 7, 7},
		{"whole", 0, int64(len(data))},
		{"empty", 500, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			buf := bytes.Repeat([]byte{0xee}, int(tc.n))
			if err := b.GetRangeInto(ctx, "packs/aa/x", tc.off, buf); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf, data[tc.off:tc.off+tc.n]) {
				t.Fatal("the buffer does not hold the object's bytes")
			}
		})
	}
	if err := b.GetRangeInto(ctx, "packs/aa/x", int64(len(data))-10, make([]byte, 20)); err == nil {
		t.Fatal("a range past the end read without an error")
	}
	if err := b.GetRangeInto(ctx, "packs/aa/missing", 0, make([]byte, 10)); !storage.IsNotFound(err) {
		t.Fatalf("GetRangeInto(missing) = %v, want not found", err)
	}
}
