package storage

import (
	"errors"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Large objects (a 16 MiB pack) are written with O_DIRECT, past the page
// cache. On these machines (a Firecracker VM that hands freed memory back to
// its host) every page the page cache takes anew is slow to fill: 1 GiB
// written buffered and fsynced takes 3.4 s and 1.56 s of CPU, written
// direct in 16 MiB writes 1.8 s and 0.35 s (docs/write-bench.md, "Packs
// past the page cache"). Small objects stay buffered: they cost a syscall
// either way, and a read soon after finds them in memory.
const directMin = 1 << 20

// dioAlign satisfies O_DIRECT's alignment of buffer address, length and
// offset on every block device (logical blocks of 512 or 4096 bytes).
const dioAlign = 4096

// bounceSize is the aligned buffer an unaligned object goes through.
const bounceSize = 1 << 20

var bounces = sync.Pool{New: func() any { b := alignedBuf(bounceSize); return &b }}

func alignedBuf(n int) []byte {
	b := make([]byte, n+dioAlign)
	off := (dioAlign - int(uintptr(unsafe.Pointer(&b[0]))%dioAlign)) % dioAlign
	return b[off : off+n : off+n]
}

func aligned(b []byte) bool { return uintptr(unsafe.Pointer(&b[0]))%dioAlign == 0 }

// openDirect is os.OpenFile; a test makes it refuse O_DIRECT as some file
// systems do.
var openDirect = os.OpenFile

// errNoDirect says the file system refused O_DIRECT or its alignment.
var errNoDirect = errors.New("storage: O_DIRECT not supported here")

// writeFile is os.WriteFile for a file that will not be read again soon:
// data of directMin bytes or more goes past the page cache unless noDirect
// says the file system refused it once (then it is set), the rest through
// it. It reports whether the bytes went direct. Like os.WriteFile it does
// not fsync: Local.Sync makes the object durable.
func writeFile(path string, data []byte, perm os.FileMode, noDirect *atomic.Bool) (direct bool, err error) {
	if len(data) >= directMin && !noDirect.Load() {
		err := writeDirect(path, data, perm)
		if !errors.Is(err, errNoDirect) {
			return err == nil, err
		}
		noDirect.Store(true)
	}
	return false, writeSmall(path, data, perm)
}

// writeSmall is os.WriteFile in plain system calls. A close of a small file
// in the mount writes a pack object, and os.OpenFile offers each regular
// file to the poller first (fcntl twice, an epoll_ctl that fails, fcntl
// twice more): ~2% of the mount's CPU per file created.
func writeSmall(path string, data []byte, perm os.FileMode) error {
	fd, err := retryEINTR(func() (int, error) {
		return unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC|unix.O_CLOEXEC, uint32(perm.Perm()))
	})
	if err != nil {
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	for len(data) > 0 {
		n, err := retryEINTR(func() (int, error) { return unix.Write(fd, data) })
		if err == nil && n == 0 {
			err = io.ErrShortWrite
		}
		if err != nil {
			unix.Close(fd)
			return &os.PathError{Op: "write", Path: path, Err: err}
		}
		data = data[n:]
	}
	if err := unix.Close(fd); err != nil {
		return &os.PathError{Op: "close", Path: path, Err: err}
	}
	return nil
}

// readFile is os.ReadFile in plain system calls (see writeSmall): a
// local folder's owner object is read once per pack written.
func readFile(path string) ([]byte, error) {
	fd, err := retryEINTR(func() (int, error) { return unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0) })
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	size := 0
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() && int64(int(st.Size())) == st.Size() {
		size = int(st.Size())
	}
	b := make([]byte, 0, size+1) // +1: the read that finds the end
	for {
		n, err := f.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
	}
}

// rename is os.Rename without its lstat of newpath (which refuses a
// folder there): for object names, never folders. One per pack written.
func rename(oldpath, newpath string) error {
	if _, err := retryEINTR(func() (int, error) { return 0, unix.Rename(oldpath, newpath) }); err != nil {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: err}
	}
	return nil
}

func retryEINTR(call func() (int, error)) (int, error) {
	for {
		n, err := call()
		if !errors.Is(err, unix.EINTR) {
			return n, err
		}
	}
}

// writeDirect writes data to path with O_DIRECT. The last partial block
// goes out padded to a whole one and the file is truncated to len(data)
// after it.
func writeDirect(path string, data []byte, perm os.FileMode) (err error) {
	f, err := openDirect(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|unix.O_DIRECT, perm)
	if errors.Is(err, unix.EINVAL) {
		return errNoDirect
	}
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if errors.Is(err, unix.EINVAL) {
			err = errNoDirect
		}
	}()
	whole := len(data) &^ (dioAlign - 1)
	bp := bounces.Get().(*[]byte)
	defer bounces.Put(bp)
	bounce := *bp
	if aligned(data) {
		if _, err := f.Write(data[:whole]); err != nil {
			return err
		}
	} else {
		for off := 0; off < whole; off += bounceSize {
			n := copy(bounce[:min(bounceSize, whole-off)], data[off:whole])
			if _, err := f.Write(bounce[:n]); err != nil {
				return err
			}
		}
	}
	if tail := len(data) - whole; tail > 0 {
		block := bounce[:dioAlign]
		clear(block[copy(block, data[whole:]):])
		if _, err := f.Write(block); err != nil {
			return err
		}
		return f.Truncate(int64(len(data)))
	}
	return nil
}
