package fs

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"syscall"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/ref"
	"github.com/lamina-bio/lamina/storage"
)

// errno turns an error into the errno a FUSE caller sees. It is the only
// place that does; anything it does not know is logged once here and
// becomes EIO.
func errno(log *slog.Logger, op string, err error) syscall.Errno {
	var e syscall.Errno
	switch {
	case err == nil:
		return 0
	case errors.Is(err, context.Canceled):
		return syscall.EINTR
	case storage.IsUnreachable(err):
		// A socket's errno (ECONNREFUSED, ECONNRESET, ETIMEDOUT) says
		// nothing about the file: storage could not be reached.
	case op == "read" && errors.Is(err, fs.ErrNotExist):
		// The file is open: what is missing is its data in storage.
	case errors.As(err, &e):
		return e
	case errors.Is(err, ref.ErrKeyTooLong):
		return syscall.ENAMETOOLONG
	case errors.Is(err, ref.ErrBadKey):
		return syscall.EINVAL
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, catalog.ErrNotFound):
		return syscall.ENOENT
	}
	log.Error("lamina mount: "+op, "err", err)
	return syscall.EIO
}

// readErrno is errno for a READ, which knows its request's context: a
// cancel the request was not sent (one the storage layers made) is a
// failed read, EIO. EINTR tells the reader to try again, and readers do
// (Go's os.File, many tools): a storage failing that way every time made a
// read that never ended.
func readErrno(ctx context.Context, log *slog.Logger, err error) syscall.Errno {
	if ctx.Err() == nil && errors.Is(err, context.Canceled) {
		log.Error("lamina mount: read", "err", err)
		return syscall.EIO
	}
	return errno(log, "read", err)
}
