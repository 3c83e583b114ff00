package storage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
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
	top     map[string]bool // top-level folders the root held at the open, or the Local made or found since
	ident   rootID          // the root's device and inode at the open (or since accepted); zero if it was missing
	written map[string]bool // objects Put since the last Sync, unless syncAll
	cached  int             // how many of them went through the page cache
	syncAll bool            // the next Sync is one syncfs: too many objects, or a new folder
	syncfsN int             // syncfs calls, for tests

	noDirect atomic.Bool // the file system refused O_DIRECT (direct.go)

	open *OpenFiles // objects kept open for ranged reads

	topMu sync.Mutex // one top-level folder made at a time (ensureTop)
}

// rootID is a folder's device and inode.
type rootID struct{ dev, ino uint64 }

// statRoot returns the identity of the folder at root, ok false if there
// is none.
func statRoot(root string) (rootID, bool) {
	var st unix.Stat_t
	if err := unix.Stat(root, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return rootID{}, false
	}
	return rootID{dev: uint64(st.Dev), ino: st.Ino}, true
}

const tmpMarker = ".tmp-"

// ErrRootGone is what a Local whose root folder is missing returns for a
// write (and CheckRoot for such a root): its disk is not mounted, or the
// folder was moved or removed. A Local never makes its root again: an
// empty new root would take the writes of an instance whose data is
// elsewhere, and its reads would then fail ("pack not in storage"). Nor
// does it make again, in a root that is there, the top-level folders
// (packs/, records/ …) the root held, or write into an empty folder
// other than the one it opened (checkLayout): what a disk unmounted under
// a running mount leaves, its empty mount point, gets ErrRootGone too.
// A read that finds nothing in such a root says so (NotInRootError).
var ErrRootGone = errors.New("the storage folder is gone")

// rootGone is ErrRootGone for a root, in words for the user.
type rootGone struct{ root string }

func (e rootGone) Error() string {
	return "storage folder " + e.root + " is gone: is its disk mounted? (if it was moved, move it back: lamina does not make a new, empty one in its place)"
}

func (e rootGone) Is(target error) bool { return target == ErrRootGone }

// rootEmptied is ErrRootGone for a root that is there but lost its
// top-level folders (packs/, records/ …), or an empty folder that is not
// the one the Local opened: what a disk unmounted under a running mount
// leaves, its empty mount point. The folders are not made again there:
// the writes would go to a folder that is not the instance's storage,
// and would be lost from it once its disk is back.
type rootEmptied struct {
	root    string
	missing []string // the top-level folders it no longer holds; none: an empty folder in its place
}

func (e rootEmptied) Error() string {
	if len(e.missing) == 0 {
		return "storage folder " + e.root + " is a new, empty folder, not the one lamina opened: is its disk mounted? (if the folder was moved, move it back: lamina does not write into an empty one in its place)"
	}
	what := e.missing[len(e.missing)-1]
	if n := len(e.missing); n > 1 {
		what = strings.Join(e.missing[:n-1], ", ") + " and " + what
	}
	return "storage folder " + e.root + " no longer holds its " + what + ": is its disk mounted? (if the folder was moved, move it back: lamina does not make them again in a folder that lost them)"
}

func (e rootEmptied) Is(target error) bool { return target == ErrRootGone }

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
	l := &Local{root: abs, dirs: map[string]bool{}, top: map[string]bool{}, written: map[string]bool{}, open: NewOpenFiles(64)}
	// What the root holds now: the folders a write never makes again
	// there, and the folder itself (checkLayout).
	l.ident, _ = statRoot(abs)
	if ents, err := os.ReadDir(abs); err == nil {
		for _, e := range ents {
			if e.IsDir() {
				l.top[e.Name()] = true
			}
		}
	}
	return l, nil
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
		// Never made here: a root that is gone stays gone (ErrRootGone),
		// and an object is not written into a folder that is not the
		// one opened. Not remembered: writes at the top are few.
		return l.checkLayout("")
	}
	rel, err := filepath.Rel(l.root, dir)
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return fmt.Errorf("storage: %s is not inside the root %s", dir, l.root)
	}
	top, _, below := strings.Cut(rel, string(filepath.Separator))
	// A folder made (not one found) must reach the disk at the next Sync.
	made := false
	if !below {
		made, err = l.ensureTop(top)
	} else {
		made = true
		err = os.Mkdir(dir, 0o755)
		if errors.Is(err, fs.ErrExist) {
			made, err = false, nil
		} else if errors.Is(err, fs.ErrNotExist) {
			err = l.mkdirBelowRoot(top, rel)
		}
	}
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.dirs[dir] = true
	l.top[top] = true
	l.syncAll = l.syncAll || made
	l.mu.Unlock()
	return nil
}

// mkdirBelowRoot makes rel, a folder below the top-level folder top, and
// the folders between, one at a time from the root down, never the root
// itself, and top only as ensureTop does.
func (l *Local) mkdirBelowRoot(top, rel string) error {
	if _, err := l.ensureTop(top); err != nil {
		return err
	}
	p := filepath.Join(l.root, top)
	for _, part := range strings.Split(rel, string(filepath.Separator))[1:] {
		p = filepath.Join(p, part)
		err := os.Mkdir(p, 0o755)
		if errors.Is(err, fs.ErrNotExist) {
			return l.goneIfRootIs(err, top)
		}
		if err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	}
	return nil
}

// ensureTop makes the top-level folder name of the root unless it is
// there, and says whether it made it. It makes it only when checkLayout
// lets it: never in a root that held it (at the open, or since), nor in
// one that lost all it held, nor in an empty folder put in the opened
// one's place. A fresh root (lamina init) gets each folder once.
func (l *Local) ensureTop(name string) (bool, error) {
	p := filepath.Join(l.root, name)
	if _, err := os.Lstat(p); err == nil {
		return false, nil // there (a file in its place: the write below it says so)
	}
	l.topMu.Lock()
	defer l.topMu.Unlock()
	if err := l.checkLayout(name); err != nil {
		return false, err
	}
	err := os.Mkdir(p, 0o755)
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	l.mu.Lock()
	l.top[name] = true
	l.mu.Unlock()
	return true, nil
}

// checkLayout returns nil when the root is still the folder the Local
// opened, as far as a write at its top (an object, or the top-level
// folder name) can tell: the root exists (else rootGone); it still holds
// name if it held it, and at least one of the top-level folders it held
// (else rootEmptied naming them); and it is not an empty folder other than
// the opened one (device and inode: an empty mount point). A folder that
// is not the opened one but holds data (a copy put back from a backup)
// passes, and is the root from then on. It costs a few stats: only the
// paths that make folders, writes at the top and misses call it.
func (l *Local) checkLayout(name string) error {
	if err := CheckRoot(l.root); err != nil {
		return err
	}
	l.mu.Lock()
	known := make([]string, 0, len(l.top))
	for d := range l.top {
		known = append(known, d)
	}
	had, seen := l.top[name], l.ident
	l.mu.Unlock()
	if name != "" && had {
		if _, err := os.Lstat(filepath.Join(l.root, name)); errors.Is(err, fs.ErrNotExist) {
			return rootEmptied{root: l.root, missing: []string{name}}
		}
	}
	if len(known) > 0 {
		holds := false
		for _, d := range known {
			if _, err := os.Lstat(filepath.Join(l.root, d)); err == nil {
				holds = true
				break
			}
		}
		if !holds {
			slices.Sort(known)
			return rootEmptied{root: l.root, missing: known}
		}
	}
	now, ok := statRoot(l.root)
	if !ok || now == seen {
		return nil
	}
	if seen != (rootID{}) && isEmptyDir(l.root) {
		return rootEmptied{root: l.root}
	}
	l.mu.Lock()
	l.ident = now
	l.mu.Unlock()
	return nil
}

// isEmptyDir reports whether dir is a folder that holds nothing.
func isEmptyDir(dir string) bool {
	f, err := os.Open(dir)
	if err != nil {
		return false
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	return len(names) == 0 && errors.Is(err, io.EOF)
}

// goneIfRootIs returns the error of checkLayout for err, a write's
// ErrNotExist below the top-level folder top, when the root or
// that folder is what went (a disk unmounted under a running mount, an
// empty mount point in its place), else err. The folders remembered as
// made are forgotten: a root put back has them, or they are made again.
func (l *Local) goneIfRootIs(err error, top string) error {
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	l.mu.Lock()
	l.dirs = map[string]bool{}
	l.mu.Unlock()
	if gone := l.checkLayout(top); gone != nil {
		return gone
	}
	return err
}

// NotInRootError is a Local's ErrNotFound: the object name is not in the
// storage folder Root. Why, if not nil, is what checkLayout says of the
// folder (an ErrRootGone: its disk is not mounted, the folder moved or an
// empty one in its place), which a read that finds nothing then says
// rather than only that the object is missing.
type NotInRootError struct {
	Root, Name string
	Why        error
}

func (e *NotInRootError) Error() string {
	msg := ErrNotFound.Error() + ": " + e.Name
	if e.Why != nil {
		msg += ": " + e.Why.Error()
	}
	return msg
}

func (e *NotInRootError) Unwrap() []error {
	if e.Why == nil {
		return []error{ErrNotFound}
	}
	return []error{ErrNotFound, e.Why}
}

// notFound is the error of a read of name that found nothing.
func (l *Local) notFound(name string) error {
	return &NotInRootError{Root: l.root, Name: name, Why: l.checkLayout(topOf(name))}
}

// topOf is the top-level folder of the object name, "" for an object at
// the top.
func topOf(name string) string {
	top, _, below := strings.Cut(name, "/")
	if !below {
		return ""
	}
	return top
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
		return fmt.Errorf("storage: put %s: %w", name, l.goneIfRootIs(err, topOf(name)))
	}
	if err := rename(tmp, p); err != nil {
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
	b, err := readFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, l.notFound(name)
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
		return nil, l.notFound(name)
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
		return l.notFound(name)
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
		return Info{}, l.notFound(name)
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
	if errors.Is(err, fs.ErrNotExist) {
		if gone := CheckRoot(l.root); gone != nil {
			return gone
		}
	}
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
