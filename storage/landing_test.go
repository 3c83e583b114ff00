package storage_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/lamina-bio/lamina/storage"
)

// reportingBackend reads into slices of its own and reports the bytes as
// they move, as storage/s3's GetRange does; it is no RangeFiller.
type reportingBackend struct {
	storage.Backend
	data []byte
}

func (b reportingBackend) GetRange(ctx context.Context, name string, off, n int64) ([]byte, error) {
	out := make([]byte, n)
	for i := int64(0); i < n; i += 4 {
		end := min(i+4, n)
		copy(out[i:end], b.data[off+i:off+end])
		storage.Progress(ctx, int(end-i))
	}
	return out, nil
}

// TestLandingIsBytesInBuffer: WithLanding hears only of bytes in the
// caller's buffer. Through a backend that reads into slices of its own,
// the bytes it reports are not in buf yet: the disk cache answers readers
// from a span as its bytes land, and would have served bytes still to come.
func TestLandingIsBytesInBuffer(t *testing.T) {
	b := reportingBackend{data: []byte("0123456789abcdefghij")}
	buf := make([]byte, 10)
	var progress, landed int
	ctx := storage.WithProgress(context.Background(), func(n int) { progress += n })
	ctx = storage.WithLanding(ctx, func(n int) {
		if !bytes.Equal(buf[:landed+n], b.data[5:5+landed+n]) {
			t.Errorf("told of %d landed bytes, buf holds %q", landed+n, buf)
		}
		landed += n
	})
	if err := storage.GetRangeInto(ctx, b, "x", 5, buf); err != nil {
		t.Fatal(err)
	}
	if landed != len(buf) || progress != len(buf) {
		t.Fatalf("landed %d, progress %d, want %d each", landed, progress, len(buf))
	}
}
