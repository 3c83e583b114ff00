package instance

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// The folders that hold the only copy of user data until it is committed or
// uploaded live in the instance's data folder ($XDG_DATA_HOME/lamina/NAME),
// next to the catalog: users and cleaners (rm -rf ~/.cache, BleachBit,
// tmpreaper, systemd-tmpfiles) take the cache folder for disposable, and a
// queued upload removed from there was lost for good. The cache folder
// keeps only what can be fetched or derived again: blocks read from S3,
// ontology indexes. An older lamina kept these folders in the cache
// folder; MoveFromCache moves them.

// UploadDir is where packs wait for their upload to S3 (cache.Uploads).
func (s Settings) UploadDir() string { return filepath.Join(s.dataHome(), "uploads") }

// StagingDir is where the mount stages files being written, with its
// journal and the bytes of closes whose commit failed (stage.Stage).
func (s Settings) StagingDir() string { return filepath.Join(s.dataHome(), "staging") }

// TombstoneDir is the mount's queue of tombstones of purged temporaries
// (Tombstones).
func (s Settings) TombstoneDir() string { return filepath.Join(s.dataHome(), "tombstones") }

// ScratchDir is the plain folder behind the mounts' scratch files (files
// no version holds: they are only here).
func (s Settings) ScratchDir() string { return filepath.Join(s.dataHome(), "scratch") }

// dataHome is the data folder; settings without one (made by hand) keep
// these folders in the cache folder, as before, rather than in the
// working directory.
func (s Settings) dataHome() string {
	if s.DataDir == "" {
		return s.CacheDir
	}
	return s.DataDir
}

// movedFolders are the folders an older lamina kept in the cache folder,
// in the order MoveFromCache moves them.
var movedFolders = []string{"uploads", "tombstones", "staging", "scratch"}

// layoutLock is the lock file in the data folder that serialises moves.
const layoutLock = "layout.lock"

// MoveReport says what MoveFromCache did.
type MoveReport struct {
	Moved []string // folders (old paths) whose entries all moved
	// Busy are old folders a process of an older lamina still uses (its
	// upload queue's lock, its mount daemon): left for the next start.
	Busy []string
	// Kept are old entries that could not move because an entry of the
	// same name and other content is in the new folder: left in place.
	Kept []string
	// Dropped are sockets of the old scratch folder, removed: they mean
	// nothing once the process that bound them is gone. (FIFOs are made
	// anew; hard links across file systems become separate copies.)
	Dropped []string
	// Unsupported are entries of a kind that cannot be moved across file
	// systems (device nodes): left in place, and in the report only the
	// first time (unsupportedSeen).
	Unsupported []string
}

// errDropped and errUnsupported are what moveEntry says of an entry
// that it does not move: a socket, to remove; a device node, to leave.
var (
	errDropped     = errors.New("socket dropped")
	errUnsupported = errors.New("entry of a kind that cannot move")
)

// unsupportedSeen is the file in the data folder that lists the
// unsupported entries reported already, so that each is reported once.
const unsupportedSeen = "layout.unsupported"

// MoveFromCache moves the upload queue, the staging folder, the tombstone
// queue and the scratch folder that an older lamina kept in the cache
// folder to the data folder, before anything opens them. A folder whose new
// place does not exist yet is renamed whole (atomic on one file system);
// otherwise, and across file systems, entry by entry: a rename, or a copy
// to a temporary name, fsync, rename into place and only then the removal
// of the old entry. A crash anywhere leaves every entry in the old place,
// the new one or (a copy finished, its source not yet removed) both with
// the same bytes, which the next run takes as moved: it is idempotent and
// loses no entry. The staging journal moves after the files it names, and
// is appended to a journal already in the new folder.
//
// Movers of one instance take turns on a lock file in the data folder. The
// upload queue is moved only while no process holds its lock (an older
// lamina still running has it open); the other folders only while daemonLive
// (nil: never) says no mount daemon of the instance runs: a daemon of this
// build has moved them before it opened them, so one that runs is an older
// lamina's, whose folders must not move under it. What is busy stays for
// the next start; nothing reads it meanwhile.
func MoveFromCache(s Settings, daemonLive func() bool) (MoveReport, error) {
	var r MoveReport
	if s.CacheDir == "" || s.DataDir == "" || filepath.Clean(s.CacheDir) == filepath.Clean(s.DataDir) {
		return r, nil
	}
	var todo []string
	for _, name := range movedFolders {
		if _, err := os.Lstat(filepath.Join(s.CacheDir, name)); err == nil {
			todo = append(todo, name)
		}
	}
	if len(todo) == 0 {
		return r, nil
	}
	if err := os.MkdirAll(s.DataDir, 0o700); err != nil {
		return r, err
	}
	lf, err := os.OpenFile(filepath.Join(s.DataDir, layoutLock), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return r, err
	}
	defer lf.Close()
	if err := unix.Flock(int(lf.Fd()), unix.LOCK_EX); err != nil {
		return r, fmt.Errorf("lock %s: %w", lf.Name(), err)
	}
	live := -1 // asked once, when needed
	var errs []error
	for _, name := range todo {
		old, dst := filepath.Join(s.CacheDir, name), filepath.Join(s.DataDir, name)
		if _, err := os.Lstat(old); err != nil {
			continue // moved by another process meanwhile
		}
		var unlock func()
		if name == "uploads" {
			l, err := lockOldQueue(old)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if l == nil {
				r.Busy = append(r.Busy, old)
				continue
			}
			unlock = func() { l.Close() }
		} else {
			if live < 0 {
				live = 0
				if daemonLive != nil && daemonLive() {
					live = 1
				}
			}
			if live == 1 {
				r.Busy = append(r.Busy, old)
				continue
			}
		}
		left := len(r.Unsupported)
		kept, err := moveFolder(old, dst, name == "staging", &r)
		if unlock != nil {
			unlock()
		}
		r.Kept = append(r.Kept, kept...)
		if err != nil {
			errs = append(errs, fmt.Errorf("move %s to %s: %w", old, dst, err))
			continue
		}
		if len(kept) == 0 && len(r.Unsupported) == left {
			r.Moved = append(r.Moved, old)
		}
	}
	r.Unsupported = onlyNew(filepath.Join(s.DataDir, unsupportedSeen), r.Unsupported, len(r.Busy) == 0)
	return r, errors.Join(errs...)
}

// onlyNew returns the paths of left that the list in file seen does not
// have, and makes the file list all of left (removed when none is left
// and all was looked at).
func onlyNew(seen string, left []string, all bool) []string {
	b, _ := os.ReadFile(seen)
	old := strings.Split(strings.TrimSpace(string(b)), "\n")
	var fresh []string
	for _, p := range left {
		if !slices.Contains(old, p) {
			fresh = append(fresh, p)
		}
	}
	if len(left) == 0 && all {
		os.Remove(seen)
	} else if len(fresh) > 0 {
		os.WriteFile(seen, []byte(strings.Join(left, "\n")+"\n"), 0o600)
	}
	return fresh
}

// lockOldQueue takes the lock of the upload queue in dir without waiting
// (cache.Uploads holds it while a process owns the queue): nil, nil when a
// process holds it.
func lockOldQueue(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, nil
		}
		return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return f, nil
}

// moveFolder moves folder old to dst and returns the old entries it left
// in place (a conflict). staging: the journal goes last, appended to a
// journal dst has.
func moveFolder(old, dst string, staging bool, rep *MoveReport) ([]string, error) {
	if _, err := os.Lstat(dst); errors.Is(err, fs.ErrNotExist) {
		err := os.Rename(old, dst)
		if err == nil {
			return nil, errors.Join(syncDir(filepath.Dir(dst)), syncDir(filepath.Dir(old)))
		}
		if !errors.Is(err, syscall.EXDEV) {
			return nil, err
		}
	}
	left := len(rep.Unsupported)
	kept, err := mergeInto(old, dst, staging, rep)
	if err != nil {
		return kept, err
	}
	if len(kept) == 0 && len(rep.Unsupported) == left {
		os.Remove(filepath.Join(old, ".lock"))
		if err := os.Remove(old); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return kept, err
		}
		return kept, syncDir(filepath.Dir(old))
	}
	return kept, nil
}

// mergeInto moves every entry of folder old into folder dst (made with
// old's mode if missing), subfolders recursively; old itself stays.
func mergeInto(old, dst string, staging bool, rep *MoveReport) ([]string, error) {
	info, err := os.Lstat(old)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dst, info.Mode().Perm()|0o700); err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(old)
	if err != nil {
		return nil, err
	}
	// The staging journal names the staged files: it moves after them,
	// or a crash between would leave files a journal in the new folder
	// does not know (Recover removes those).
	sort.SliceStable(ents, func(a, b int) bool {
		return staging && ents[b].Name() == "journal" && ents[a].Name() != "journal"
	})
	var kept []string
	var errs []error
	for _, e := range ents {
		name := e.Name()
		if name == ".lock" { // the old queue's lock, held by this process
			continue
		}
		from, to := filepath.Join(old, name), filepath.Join(dst, name)
		k, err := moveEntry(from, to, staging && name == "journal", rep)
		kept = append(kept, k...)
		switch {
		case errors.Is(err, errDropped):
			if err := os.Remove(from); err != nil {
				errs = append(errs, err)
			}
			rep.Dropped = append(rep.Dropped, from)
		case errors.Is(err, errUnsupported):
			rep.Unsupported = append(rep.Unsupported, from)
		case err != nil:
			errs = append(errs, err)
		}
	}
	if err := syncDir(dst); err != nil {
		errs = append(errs, err)
	}
	return kept, errors.Join(errs...)
}

// moveEntry moves from to to. journal: when to exists with other bytes,
// from's records are appended to it.
func moveEntry(from, to string, journal bool, rep *MoveReport) ([]string, error) {
	fi, err := os.Lstat(from)
	if err != nil {
		return nil, err
	}
	ti, terr := os.Lstat(to)
	if fi.IsDir() {
		if terr == nil && !ti.IsDir() {
			return []string{from}, nil
		}
		if terr != nil {
			// A whole subfolder moves at once on one file system.
			if err := os.Rename(from, to); err == nil {
				return nil, nil
			} else if !errors.Is(err, syscall.EXDEV) {
				return nil, err
			}
		}
		left := len(rep.Unsupported)
		kept, err := mergeInto(from, to, false, rep)
		if err != nil || len(kept) > 0 || len(rep.Unsupported) > left {
			return kept, err
		}
		if err := os.Chtimes(to, fi.ModTime(), fi.ModTime()); err != nil {
			return nil, err
		}
		return nil, os.Remove(from)
	}
	if terr == nil {
		// There already: a copy whose source a crash kept (same bytes),
		// or another entry of the name.
		same, err := sameFile(from, to, fi, ti)
		if err != nil {
			return nil, err
		}
		switch {
		case same:
			return nil, os.Remove(from)
		case journal && fi.Mode().IsRegular() && ti.Mode().IsRegular():
			if err := appendFile(to, from); err != nil {
				return nil, err
			}
			return nil, os.Remove(from)
		}
		return []string{from}, nil
	}
	if err := os.Rename(from, to); err == nil {
		return nil, nil
	} else if !errors.Is(err, syscall.EXDEV) {
		return nil, err
	}
	// Another file system: a copy under a temporary name (which the
	// upload queue does not take for an object), synced, renamed into
	// place; the source goes only then.
	tmp := filepath.Join(filepath.Dir(to), "."+filepath.Base(to)+".tmp-move")
	switch {
	case fi.Mode().IsRegular():
		if err := copyFile(from, tmp, fi); err != nil {
			os.Remove(tmp)
			return nil, err
		}
	case fi.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(from)
		if err != nil {
			return nil, err
		}
		os.Remove(tmp)
		if err := os.Symlink(target, tmp); err != nil {
			return nil, err
		}
	case fi.Mode()&fs.ModeNamedPipe != 0:
		// A FIFO holds no bytes: made anew in the new place.
		os.Remove(tmp)
		if err := unix.Mkfifo(tmp, uint32(fi.Mode().Perm())); err != nil {
			return nil, err
		}
		os.Chmod(tmp, fi.Mode().Perm()) // past the umask
	case fi.Mode()&fs.ModeSocket != 0:
		// A socket means nothing without the process that bound it,
		// which cannot be running (nothing else uses the old folders).
		return nil, errDropped
	default: // a device node: stays, said once
		return nil, errUnsupported
	}
	if err := os.Rename(tmp, to); err != nil {
		os.Remove(tmp)
		return nil, err
	}
	if err := syncDir(filepath.Dir(to)); err != nil {
		return nil, err
	}
	return nil, os.Remove(from)
}

// sameFile reports whether from and to hold the same bytes (symlinks: the
// same target).
func sameFile(from, to string, fi, ti fs.FileInfo) (bool, error) {
	if fi.Mode().Type() != ti.Mode().Type() {
		return false, nil
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		a, err := os.Readlink(from)
		if err != nil {
			return false, err
		}
		b, err := os.Readlink(to)
		return err == nil && a == b, err
	}
	if !fi.Mode().IsRegular() || fi.Size() != ti.Size() {
		return false, nil
	}
	a, err := os.Open(from)
	if err != nil {
		return false, err
	}
	defer a.Close()
	b, err := os.Open(to)
	if err != nil {
		return false, err
	}
	defer b.Close()
	ba, bb := make([]byte, 1<<20), make([]byte, 1<<20)
	for {
		na, ea := io.ReadFull(a, ba)
		nb, eb := io.ReadFull(b, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return false, nil
		}
		if ea == io.EOF || ea == io.ErrUnexpectedEOF {
			return eb == ea, nil
		}
		if ea != nil {
			return false, ea
		}
		if eb != nil {
			return false, eb
		}
	}
}

// copyFile copies regular file from to the new file to (mode and mtime
// kept), synced.
func copyFile(from, to string, fi fs.FileInfo) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, fi.Mode().Perm())
	if err != nil {
		return err
	}
	_, err = io.Copy(dst, src)
	err = errors.Join(err, dst.Chmod(fi.Mode().Perm()), dst.Sync(), dst.Close())
	if err != nil {
		return err
	}
	return os.Chtimes(to, fi.ModTime(), fi.ModTime())
}

// appendFile appends the bytes of from to to (a journal: a line each), on a
// line of their own, and syncs it. Appended twice after a crash, the
// records say the same again: a journal's last record of a file counts.
func appendFile(to, from string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(to, os.O_RDWR|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	if info, err := f.Stat(); err == nil && info.Size() > 0 {
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, info.Size()-1); err == nil && last[0] != '\n' {
			b = append([]byte{'\n'}, b...)
		}
	}
	_, err = f.Write(b)
	return errors.Join(err, f.Sync(), f.Close())
}

// syncDir makes the entries of folder dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	return errors.Join(err, d.Close())
}
