package storage

import (
	"context"
	"fmt"
)

// RangeFiller is a backend that reads a range of an object straight into
// the caller's buffer (storage/s3, and the decorators above it), so that a
// cache can read GET bodies into buffers it reuses instead of a fresh
// allocation per request.
type RangeFiller interface {
	// GetRangeInto fills buf with the len(buf) bytes at off of the object;
	// an object shorter than off+len(buf) is an error. On an error buf
	// holds garbage.
	GetRangeInto(ctx context.Context, name string, off int64, buf []byte) error
}

// GetRangeInto fills buf from b: straight into buf when b is a
// RangeFiller, else through GetRange and a copy.
func GetRangeInto(ctx context.Context, b Backend, name string, off int64, buf []byte) error {
	if f, ok := b.(RangeFiller); ok {
		return f.GetRangeInto(ctx, name, off, buf)
	}
	// The bytes land in a slice of b's first: the caller's WithLanding
	// hears of them once they are copied into buf.
	data, err := b.GetRange(withoutLanding(ctx), name, off, int64(len(buf)))
	if err != nil {
		return err
	}
	if len(data) != len(buf) {
		return fmt.Errorf("storage: get %s: range %d+%d: got %d bytes", name, off, len(buf), len(data))
	}
	copy(buf, data)
	landed(ctx, len(buf))
	return nil
}
