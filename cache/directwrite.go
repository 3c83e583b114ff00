package cache

import (
	"errors"
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// directAlign is the alignment O_DIRECT wants of the buffer, the length and
// the file offset: a page covers every logical block size in use.
const directAlign = 4096

// writeBlockFile writes data to the new file p (which must not exist),
// bypassing the page cache for its whole pages. A cold read through the
// mount writes every block it fetches here, and copying them into the
// page cache cost 0.4–2.8 s of CPU per GiB on these machines (page
// reclaim under a full page cache), against 0.15–0.26 s with O_DIRECT:
// half of the daemon's CPU per cold GiB (docs/s3-bench.md, eighth pass).
// What a reader reads stays in the mount's own page cache, so keeping the
// cache folder's copy there too was a second copy in memory (the kernel's
// fscache writes its cache files with direct I/O for the same reason).
// A short tail goes through the page cache. A folder that refuses
// O_DIRECT sets noDirect, and its blocks are written as plain files.
func writeBlockFile(p string, data []byte, noDirect *atomic.Bool) error {
	whole := len(data) &^ (directAlign - 1)
	if noDirect.Load() || whole == 0 || uintptr(unsafe.Pointer(unsafe.SliceData(data)))%directAlign != 0 {
		return os.WriteFile(p, data, 0o600)
	}
	fd, err := unix.Open(p, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC|unix.O_DIRECT, 0o600)
	if errors.Is(err, unix.EINVAL) {
		noDirect.Store(true)
		return os.WriteFile(p, data, 0o600)
	}
	if err != nil {
		return &os.PathError{Op: "open", Path: p, Err: err}
	}
	f := os.NewFile(uintptr(fd), p)
	if _, err := f.Write(data[:whole]); err != nil {
		f.Close()
		if errors.Is(err, unix.EINVAL) { // opened, but the writes are refused
			noDirect.Store(true)
			os.Remove(p)
			return os.WriteFile(p, data, 0o600)
		}
		return err
	}
	if whole < len(data) {
		// O_DIRECT refuses a length that is not a multiple of the block.
		if err := clearDirect(f); err != nil {
			f.Close()
			return err
		}
		if _, err := f.Write(data[whole:]); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

// clearDirect turns O_DIRECT off on f.
func clearDirect(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		fl, err := unix.FcntlInt(fd, unix.F_GETFL, 0)
		if err != nil {
			ferr = err
			return
		}
		_, ferr = unix.FcntlInt(fd, unix.F_SETFL, fl&^unix.O_DIRECT)
	}); err != nil {
		return err
	}
	return ferr
}
