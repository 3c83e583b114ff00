package cache

import (
	"context"
	"fmt"

	"github.com/lamina-bio/lamina/storage"
)

var _ storage.RangeFiller = (*Uploads)(nil)

// GetRangeInto reads len(buf) bytes at off into buf: from the staged file
// while the object waits for its upload, else from the backend, straight
// into buf when the backend can (storage/s3 through storage/retry).
func (u *Uploads) GetRangeInto(ctx context.Context, name string, off int64, buf []byte) error {
	if f, ok := u.open(name); ok {
		defer f.Close()
		if _, err := f.ReadAt(buf, off); err != nil {
			return fmt.Errorf("storage: get %s: range %d+%d: %w", name, off, len(buf), err)
		}
		return nil
	}
	return storage.GetRangeInto(ctx, u.b, name, off, buf)
}
