package fs

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/catalog"
)

// What a FUSE caller sees for the errors the mount meets.
func TestErrno(t *testing.T) {
	refused := fmt.Errorf("s3: get range: %w", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)})
	for _, tc := range []struct {
		op   string
		err  error
		want syscall.Errno
	}{
		{"read", refused, syscall.EIO}, // not the socket's ECONNREFUSED
		{"lookup", refused, syscall.EIO},
		{"read", fmt.Errorf("chunk x: %w", fs.ErrNotExist), syscall.EIO}, // the open file's data is gone
		{"lookup", fmt.Errorf("key: %w", catalog.ErrNotFound), syscall.ENOENT},
		{"lookup", fmt.Errorf("pack: %w", fs.ErrNotExist), syscall.ENOENT},
		// A version whose pack storage lacks: the name exists.
		{"open", fmt.Errorf("%w: p1: %w", cache.ErrPackMissing, fs.ErrNotExist), syscall.EIO},
		{"lookup", fmt.Errorf("%w: p1: %w", cache.ErrPackMissing, fs.ErrNotExist), syscall.EIO},
		{"write", fmt.Errorf("stage: %w", syscall.ENOSPC), syscall.ENOSPC},
		{"read", fmt.Errorf("get: %w", context.Canceled), syscall.EINTR},
		// A full storage root: the cancel of the stopped workers is not the cause.
		{"flush", errors.Join(fmt.Errorf("put pack: %w", syscall.ENOSPC), context.Canceled), syscall.ENOSPC},
		{"read", &net.OpError{Op: "read", Err: context.Canceled}, syscall.EINTR},
	} {
		if got := errno(slog.New(slog.DiscardHandler), tc.op, tc.err); got != tc.want {
			t.Errorf("%s: %v → %v, want %v", tc.op, tc.err, got, tc.want)
		}
	}
}
