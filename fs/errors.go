package fs

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"sync"
	"syscall"
	"time"

	"github.com/lamina-bio/lamina/cache"
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
	case errors.Is(err, syscall.ENOSPC):
		// A full disk stays the cause when a cancel it made travels with
		// it (the workers it stopped): EINTR would tell a writer to retry.
		return syscall.ENOSPC
	case errors.Is(err, syscall.EDQUOT):
		return syscall.EDQUOT
	case errors.Is(err, context.Canceled):
		return syscall.EINTR
	case storage.IsUnreachable(err):
		// A socket's errno (ECONNREFUSED, ECONNRESET, ETIMEDOUT) says
		// nothing about the file: storage could not be reached.
	case op == "read" && errors.Is(err, fs.ErrNotExist):
		// The file is open: what is missing is its data in storage.
	case errors.Is(err, cache.ErrPackMissing):
		// The name exists; its data is not in storage (not uploaded yet
		// by the workstation that saved it, or lost): not ENOENT. The
		// error names the pack and the version.
	case errors.As(err, &e):
		return e
	case errors.Is(err, ref.ErrKeyTooLong):
		return syscall.ENAMETOOLONG
	case errors.Is(err, ref.ErrBadKey):
		return syscall.EINVAL
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, catalog.ErrNotFound):
		return syscall.ENOENT
	case errors.Is(err, catalog.ErrUpgraded):
		// A newer lamina upgraded the shared catalog: this mount writes
		// no more (the daemon logs it once, and status says it).
		return syscall.EROFS
	case errors.Is(err, catalog.ErrDamaged):
		damagedLog(log, op, err)
		return syscall.EIO
	}
	log.Error("lamina mount: "+op, "err", err)
	return syscall.EIO
}

// damagedEvery is how often a mount whose catalog is damaged (or lost: a
// database reset under it) says again that requests fail.
const damagedEvery = 10 * time.Minute

// damaged counts, per mount's logger, the requests that failed on a
// damaged catalog since it last said so: once it is, every request
// fails the same way, and a line each (every lookup of a walk) buried
// the log.
var damaged struct {
	mu   sync.Mutex
	last map[*slog.Logger]*damagedSince
}

type damagedSince struct {
	at     time.Time
	failed int
}

// damagedLog logs the first failure on a damaged catalog, then a reminder
// with the count of those since, at most every damagedEvery.
func damagedLog(log *slog.Logger, op string, err error) {
	damaged.mu.Lock()
	d := damaged.last[log]
	if d == nil {
		if damaged.last == nil {
			damaged.last = map[*slog.Logger]*damagedSince{}
		}
		d = &damagedSince{}
		damaged.last[log] = d
	}
	d.failed++
	first := d.at.IsZero()
	n, due := d.failed, first || time.Since(d.at) >= damagedEvery
	if due {
		d.at, d.failed = time.Now(), 0
	}
	damaged.mu.Unlock()
	switch {
	case !due:
	case first:
		log.Error("lamina mount: "+op+" (requests that fail the same way are not logged each: a reminder comes every "+damagedEvery.String()+")", "err", err)
	default:
		log.Error("lamina mount: requests still fail on the catalog (EIO)", "failed", n, "last", op, "err", err)
	}
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
