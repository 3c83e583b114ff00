package storage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// Local is a Backend on a local directory. Objects are plain files under the
// root; a Put writes a temporary file beside the target and renames it, so a
// crash leaves either the old state or the new object plus, at worst, a
// "*.tmp-*" file that List skips and Clean removes.
type Local struct {
	root string

	mu      sync.Mutex // guards dirs and the fields below
	dirs    map[string]bool
	written map[string]bool // objects Put since the last Sync, unless syncAll
	cached  int             // how many of them went through the page cache
	syncAll bool            // the next Sync is one syncfs: too many objects, or a new folder
	syncfsN int             // syncfs calls, for tests

	noDirect atomic.Bool // the file system refused O_DIRECT (direct.go)

	open *OpenFiles // objects kept open for ranged reads
}

const tmpMarker = ".tmp-"

// ErrRootGone is what a Local whose root folder is missing returns for a
// write (and CheckRoot for such a root): its disk is not mounted, or the
// folder was moved or removed. A Local never makes its root again: an
// empty new root would take the writes of an instance whose data is
// elsewhere, and its reads would then fail ("pack not in storage").
var ErrRootGone = errors.New("the storage folder is gone")

// rootGone is ErrRootGone for a root, in words for the user.
type rootGone struct{ root string }

func (e rootGone) Error() string {
	return "storage folder " + e.root + " is gone: is its disk mounted? (if it was moved, move it back: lamina does not make a new, empty one in its place)"
}

func (e rootGone) Is(target error) bool { return target == ErrRootGone }

// CheckRoot returns nil when root is a folder, an error wrapping
// ErrRootGone when nothing is there, and another error when it cannot be
// read or is not a folder.
func CheckRoot(root string) error {
	abs, err := filepath.Abs(root)
	if err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	fi, err := os.Stat(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return rootGone{abs}
	case err != nil:
		return fmt.Errorf("storage folder %s: %w", abs, err)
	case !fi.IsDir():
		return fmt.Errorf("storage folder %s is not a folder", abs)
	}
	return nil
}

// OpenLocal opens a local storage root. It does not create it: a root
// that is missing opens (reads find no object, as in an empty root) but
// takes no write (ErrRootGone), and CheckRoot tells the caller first.
// CreateLocal makes a new root.
func OpenLocal(root string) (*Local, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	return &Local{root: abs, dirs: map[string]bool{}, written: map[string]bool{}, open: NewOpenFiles(64)}, nil
}

// CreateLocal opens a local storage root, creating it (and the folders
// above it) if needed: for a new root (lamina init, tests).
func CreateLocal(root string) (*Local, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("storage: create root: %w", err)
	}
	return OpenLocal(abs)
}

// Root returns the absolute path of the storage root.
func (l *Local) Root() string { return l.root }

func (l *Local) String() string { return l.root }

func (l *Local) path(name string) (string, error) {
	if name == "" || strings.HasPrefix(name, "/") || strings.Contains(name, "..") || strings.Contains(name, tmpMarker) {
		return "", fmt.Errorf("storage: bad object name %q", name)
	}
	return filepath.Join(l.root, filepath.FromSlash(name)), nil
}

func (l *Local) mkdir(dir string) error {
	l.mu.Lock()
	ok := l.dirs[dir]
	l.mu.Unlock()
	if ok {
		return nil
	}
	if dir == l.root {
		// Never made here: a root that is gone stays gone (ErrRootGone).
		if err := CheckRoot(l.root); err != nil {
			return err
		}
		l.mu.Lock()
		l.dirs[dir] = true
		l.mu.Unlock()
		return nil
	}
	// A folder made (not one found) must reach the disk at the next Sync.
	made := true
	err := os.Mkdir(dir, 0o755)
	if errors.Is(err, fs.ErrExist) {
		made, err = false, nil
	} else if errors.Is(err, fs.ErrNotExist) {
		err = l.mkdirBelowRoot(dir)
	}
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.dirs[dir] = true
	l.syncAll = l.syncAll || made
	l.mu.Unlock()
	return nil
}

// mkdirBelowRoot makes dir and the folders between it and the root, one
// at a time from the root down, never the root itself: under a root that
// is gone the first one fails, and that is ErrRootGone.
func (l *Local) mkdirBelowRoot(dir string) error {
	rel, err := filepath.Rel(l.root, dir)
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return fmt.Errorf("storage: %s is not inside the root %s", dir, l.root)
	}
	p := l.root
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		p = filepath.Join(p, part)
		err := os.Mkdir(p, 0o755)
		if errors.Is(err, fs.ErrNotExist) {
			if gone := CheckRoot(l.root); gone != nil {
				return gone
			}
		}
		if err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	}
	return nil
}

// goneIfRootIs returns ErrRootGone for err, a write's ErrNotExist, when
// the root is what went (after the folders were made: a disk unmounted
// under a running mount), else err.
func (l *Local) goneIfRootIs(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		if gone := CheckRoot(l.root); errors.Is(gone, ErrRootGone) {
			l.mu.Lock()
			l.dirs = map[string]bool{} // made again, under a root put back
			l.mu.Unlock()
			return gone
		}
	}
	return err
}

func (l *Local) Put(ctx context.Context, name string, data []byte) error {
	p, err := l.path(name)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := l.mkdir(filepath.Dir(p)); err != nil {
		return fmt.Errorf("storage: put %s: %w", name, err)
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	tmp := p + tmpMarker + hex.EncodeToString(rnd[:])
	direct, err := writeFile(tmp, data, 0o644, &l.noDirect)
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("storage: put %s: %w", name, l.goneIfRootIs(err))
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("storage: put %s: %w", name, err)
	}
	l.open.Forget(p)
	l.mu.Lock()
	if !l.syncAll && !l.written[p] {
		l.written[p] = true
		if !direct {
			l.cached++
		}
		if l.cached > syncEachMax || len(l.written) >= writtenMax {
			l.syncAll, l.written = true, map[string]bool{}
		}
	}
	l.mu.Unlock()
	return nil
}

func (l *Local) Get(ctx context.Context, name string) ([]byte, error) {
	p, err := l.path(name)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	if err != nil {
		return nil, fmt.Errorf("storage: get %s: %w", name, err)
	}
	return b, nil
}

func (l *Local) GetRange(ctx context.Context, name string, off, n int64) ([]byte, error) {
	p, err := l.path(name)
	if err != nil {
		return nil, err
	}
	of, err := l.open.acquire(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	if err != nil {
		return nil, fmt.Errorf("storage: get %s: %w", name, err)
	}
	defer l.open.release(of)
	b := make([]byte, n)
	if _, err := of.f.ReadAt(b, off); err != nil {
		return nil, fmt.Errorf("storage: get %s [%d:+%d]: %w", name, off, n, err)
	}
	return b, nil
}

// ReadRange reads the object's bytes at off into bufs, one after another,
// with one preadv and no allocation: the content store reads a chunk's
// codec byte and its body straight into the caller's buffers this way. An
// object shorter than the bufs is an error.
func (l *Local) ReadRange(ctx context.Context, name string, off int64, bufs ...[]byte) error {
	p, err := l.path(name)
	if err != nil {
		return err
	}
	err = l.open.ReadAt(p, bufs, off)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	if err != nil {
		return fmt.Errorf("storage: get %s [%d]: %w", name, off, err)
	}
	return nil
}

// Warm asks the kernel to read n bytes at off of the object into the page
// cache in the background (posix_fadvise WILLNEED). A file's chunks lie in
// its packs out of file order, so a sequential reader of the file reads
// each pack in 64 KiB pieces at scattered offsets, which the kernel's own
// readahead does not follow: each piece was a synchronous disk read. The
// content store calls Warm for the merged ranges ahead of such a reader
// (docs/mount-bench.md). Errors are ignored: the read that follows reports
// them.
func (l *Local) Warm(name string, off, n int64) {
	p, err := l.path(name)
	if err != nil || n <= 0 || off < 0 {
		return
	}
	of, err := l.open.acquire(p)
	if err != nil {
		return
	}
	defer l.open.release(of)
	if rc, err := of.f.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) { _ = unix.Fadvise(int(fd), off, n, unix.FADV_WILLNEED) })
	}
}

func (l *Local) Stat(ctx context.Context, name string) (Info, error) {
	p, err := l.path(name)
	if err != nil {
		return Info{}, err
	}
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return Info{}, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	if err != nil {
		return Info{}, fmt.Errorf("storage: stat %s: %w", name, err)
	}
	return Info{Name: name, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

func (l *Local) Delete(ctx context.Context, name string) error {
	p, err := l.path(name)
	if err != nil {
		return err
	}
	l.open.Forget(p)
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("storage: delete %s: %w", name, err)
	}
	return nil
}

func (l *Local) List(ctx context.Context, prefix string, fn func(Info) error) error {
	// Walk from the deepest directory the prefix names.
	dir := prefix
	if i := strings.LastIndexByte(dir, '/'); i >= 0 {
		dir = dir[:i]
	} else {
		dir = ""
	}
	start := filepath.Join(l.root, filepath.FromSlash(dir))
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, _ := filepath.Rel(l.root, p)
		name := filepath.ToSlash(rel)
		if d.IsDir() {
			if p != start && !strings.HasPrefix(name+"/", prefix) && !strings.HasPrefix(prefix, name+"/") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasPrefix(name, prefix) || strings.Contains(d.Name(), tmpMarker) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		return fn(Info{Name: name, Size: fi.Size(), ModTime: fi.ModTime()})
	})
	if err != nil {
		what := prefix
		if what == "" {
			what = "everything" // not an empty name in the message
		}
		return fmt.Errorf("storage: list %s: %w", what, err)
	}
	return nil
}

// syncEachMax is how many objects written through the page cache Sync
// flushes one by one; past it one syncfs(2) is cheaper, which is what makes
// saving many small files fast.
const syncEachMax = 16

// writtenMax bounds the objects a Sync fsyncs one by one (and the memory
// that remembers them when no Sync comes).
const writtenMax = 4096

// Sync makes the objects Put since the last Sync durable. A few objects, or
// objects written past the page cache (whose bytes are on the disk already),
// are fsynced one by one with their folders; else one syncfs(2) flushes the
// root's file system. The first spares what else is dirty on that file
// system: the mount's staging files, which live beside the storage by
// default and which the stage removes right after this Sync, would
// otherwise reach the disk for nothing (docs/write-bench.md).
func (l *Local) Sync(ctx context.Context) error {
	l.mu.Lock()
	written, cached, all := l.written, l.cached, l.syncAll
	l.written, l.cached, l.syncAll = map[string]bool{}, 0, false
	l.mu.Unlock()
	var err error
	if all {
		err = l.syncfs()
	} else {
		err = syncEach(written)
	}
	if err != nil {
		l.mu.Lock()
		for p := range written {
			l.written[p] = true
		}
		l.cached += cached
		l.syncAll = l.syncAll || all
		l.mu.Unlock()
		return fmt.Errorf("storage: sync: %w", err)
	}
	return nil
}

func (l *Local) syncfs() error {
	l.mu.Lock()
	l.syncfsN++
	l.mu.Unlock()
	f, err := os.Open(l.root)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Syncfs(int(f.Fd()))
}

// syncEach fsyncs each file of written and each folder holding one, a few
// at once so that the file system commits them together. A file removed
// since it was written needs nothing.
func syncEach(written map[string]bool) error {
	dirs := map[string]bool{}
	var g errgroup.Group
	g.SetLimit(8)
	fsync := func(p string) {
		g.Go(func() error {
			f, err := os.Open(p)
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if err != nil {
				return err
			}
			err = f.Sync()
			f.Close()
			return err
		})
	}
	for p := range written {
		fsync(p)
		dirs[filepath.Dir(p)] = true
	}
	if err := g.Wait(); err != nil {
		return err
	}
	for d := range dirs {
		fsync(d)
	}
	return g.Wait()
}

// Clean removes temporary files left by Puts that a crash interrupted,
// last written before the given time: a younger one may be a Put of another
// process still writing.
func (l *Local) Clean(ctx context.Context, before time.Time) (int, error) {
	n := 0
	err := filepath.WalkDir(l.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() && p != l.root {
			// Another instance's root (made before init refused nested
			// roots): its Puts in progress are not ours to judge.
			if _, err := os.Lstat(filepath.Join(p, "instance.json")); err == nil {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.IsDir() && strings.Contains(d.Name(), tmpMarker) {
			if fi, err := d.Info(); err != nil || fi.ModTime().After(before) {
				return nil
			}
			if os.Remove(p) == nil {
				n++
			}
		}
		return nil
	})
	return n, err
}
