package stage

import (
	"errors"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Staging files are emptied and kept for reuse rather than removed and
// created anew. On ext4 without a journal (these machines' root file
// system) allocating an inode skips every inode of its group freed in the
// last 60 s (300 s while its inode table block is dirty), one buffer lookup
// each (`recently_deleted` in fs/ext4/ialloc.c): with a staging file
// removed for every file closed, creating files spent more than half of
// the daemon's CPU there (docs/write-bench.md). A spare is renamed to its
// next name, which allocates no inode.

// maxSpares bounds the emptied files kept: more than a burst of creates
// retires between two Syncs (2 s at ~1,000 files/s), so that none is
// removed; an empty file costs an inode and no block.
var maxSpares = 4096

// sparePrefix names spares; Recover adopts those it finds.
const sparePrefix = "spare-"

// newStaging opens an empty staging file at path: a spare renamed there,
// or a new file.
func (s *Stage) newStaging(path string) (*os.File, error) {
	s.spareMu.Lock()
	var spare string
	if n := len(s.spares); n > 0 {
		spare = s.spares[n-1]
		s.spares = s.spares[:n-1]
	}
	s.spareMu.Unlock()
	if spare != "" {
		if err := rename(spare, path); err == nil {
			if f, err := openFile(path, os.O_RDWR, 0o600); err == nil {
				return f, nil
			}
			os.Remove(path)
		} else {
			os.Remove(spare)
		}
	}
	return openFile(path, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600)
}

// retire empties the staging file at path (no one has it open any more)
// and keeps it as a spare, or removes it when there are spares enough or
// it cannot be emptied.
func (s *Stage) retire(path string) {
	s.spareMu.Lock()
	full := len(s.spares) >= maxSpares
	shared := s.shared[filepath.Base(path)]
	delete(s.shared, filepath.Base(path))
	s.spareMu.Unlock()
	if full || shared || empty(path) != nil {
		os.Remove(path)
		return
	}
	spare := filepath.Join(filepath.Dir(path), sparePrefix+newID())
	if err := rename(path, spare); err != nil {
		os.Remove(path)
		return
	}
	s.spareMu.Lock()
	s.spares = append(s.spares, spare)
	s.spareMu.Unlock()
}

// adoptSpare keeps the spare at path, emptied, unless there are spares
// enough; it reports whether it did.
func (s *Stage) adoptSpare(path string) bool {
	s.spareMu.Lock()
	defer s.spareMu.Unlock()
	if len(s.spares) >= maxSpares || empty(path) != nil {
		return false
	}
	s.spares = append(s.spares, path)
	return true
}

// empty truncates the file at path to nothing through a descriptor it
// closes at once. ext4 marks a file truncated to 0 for "replace by
// truncate" (auto_da_alloc): the next close of a descriptor of it writes
// its dirty pages back there and then. Emptied by path, a spare carried
// the mark to its next staging file, whose close at RELEASE then started
// the writeback of its 4 KiB: ~0.04 ms of the daemon's CPU per create.
// Closing here clears the mark while there is nothing to write.
func empty(path string) error {
	fd, err := retryEINTR(func() (int, error) { return unix.Open(path, unix.O_WRONLY|unix.O_TRUNC|unix.O_CLOEXEC, 0) })
	if err != nil {
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	return unix.Close(fd)
}

// The staging files of small files are opened, renamed and emptied per
// file, so these skip what os adds to the system calls: os.Rename lstats
// the new name first (to refuse a folder there), and os.OpenFile offers a
// regular file to the poller (fcntl twice, epoll_ctl that fails, fcntl
// twice more). Both were ~3% of the mount's CPU per file created.

// rename is os.Rename without its lstat of newpath: a staging or spare
// name, never a folder.
func rename(oldpath, newpath string) error {
	if _, err := retryEINTR(func() (int, error) { return 0, unix.Rename(oldpath, newpath) }); err != nil {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: err}
	}
	return nil
}

// openFile is os.OpenFile for a regular file, kept out of the poller as
// os.OpenFile keeps it after trying.
func openFile(path string, flag int, perm uint32) (*os.File, error) {
	fd, err := retryEINTR(func() (int, error) { return unix.Open(path, flag|unix.O_CLOEXEC, perm) })
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

func retryEINTR(call func() (int, error)) (int, error) {
	for {
		n, err := call()
		if !errors.Is(err, unix.EINTR) {
			return n, err
		}
	}
}
