package lineage

import (
	"errors"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// recordWatch watches the .snakemake/metadata folder of a Snakemake run
// whose working directory is outside the mount: the mount never sees the
// records written there (Tracker.ScratchRenamed), so the tracker reads
// them off an inotify descriptor. Non-blocking: it is drained before a
// job's pass is decided (Tracker.job), and Snakemake renames a job's
// record into place before it starts the next job, so the events of the
// records written so far are queued by then.
//
// Snakemake keeps the record of a long output path in "@"-prefixed
// subfolders (snakemakeRecordOf): each is watched too, those there at the
// start and each as it appears; one that appears is scanned once watched,
// for the records renamed into it before. When the kernel's queue
// overflowed (events lost), every folder is scanned again. A scan takes
// the records written since the run started only: an older one is an
// earlier run's, whose job may be running again.
//
// A drain reads until the queue is empty: each record costs two events
// (the temporary file's IN_CREATE, watched for the new "@" folders, which
// inotify cannot tell from files when it queues them, and the rename's
// IN_MOVED_TO), and a job's end may leave thousands of them before the
// record that matters, or the overflow marker. Safe for concurrent use:
// mu serialises drains and close, so that a drain never reads a
// descriptor closed (and its number reused) meanwhile. A drain, its scan
// of every record after an overflow included, holds mu only, never the
// Tracker's mu.
type recordWatch struct {
	dir string // Snakemake's working directory
	// via is the path its folders are reached by: dir, or
	// /proc/self/fd/N (viaFd, an O_PATH descriptor of it) for a folder
	// under the mountpoint (another mount nested in it), whose path walk
	// would ask the mount (a LOOKUP, from inside its own handler).
	via   string
	viaFd int       // -1: none
	since time.Time // the run's start
	// maxReads bounds a drain's reads: more than the kernel's queue holds
	// (maxQueued events of the longest size), so that a drain reaches the
	// end of what was queued when it began even while records keep coming.
	maxReads int

	mu sync.Mutex // guards the fields below
	fd int        // the inotify descriptor; -1: nothing to watch (or closed)
	// dirs maps each watch descriptor to its folder, relative to
	// .snakemake/metadata ("" for it, "@A", "@A/@B" for subfolders).
	dirs       map[int32]string
	overflowed bool // logged an overflow already
}

const (
	recordMask = unix.IN_MOVED_TO | unix.IN_CREATE | unix.IN_ONLYDIR
	// maxRecordDirs bounds the folders one watch holds (watches are a
	// per-user kernel resource); records in others are missed, and their
	// jobs' passes taken as before (same command line: one run).
	maxRecordDirs = 4096
	// maxRecordDepth bounds the nesting of "@" folders followed: a
	// PATH_MAX-long output is about 22 deep.
	maxRecordDepth = 32
	// recordBuf is a drain's read buffer; maxEvent the longest event.
	recordBuf = 16 << 10
	maxEvent  = unix.SizeofInotifyEvent + unix.NAME_MAX + 1
)

// maxQueued is the kernel's bound on the events an inotify descriptor
// queues (fs.inotify.max_queued_events, fixed for a descriptor when it is
// made), 16384 when it cannot be read.
func maxQueued() int {
	b, err := os.ReadFile("/proc/sys/fs/inotify/max_queued_events")
	if err != nil {
		return 16384
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n <= 0 {
		return 16384
	}
	return n
}

// watchRecords returns a watch of the records of the Snakemake process
// pid, of the run started at since, nil while its .snakemake/metadata is
// not there yet (tried again at the next job). A working directory on the
// mount (or on a bind mount of it; or none known) gets a watch of nothing:
// the mount reports those records itself. It reads /proc/PID/cwd and looks at paths off the mount
// only: safe in a FUSE handler.
func watchRecords(pid int, mountpoint string, since time.Time) *recordWatch {
	none := &recordWatch{fd: -1, viaFd: -1}
	if mountpoint == "" {
		return none
	}
	cwd, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/cwd")
	if err != nil || !filepath.IsAbs(cwd) {
		return none
	}
	// The mount reports the records only when they are written on it:
	// not in another mount nested in it (a tmpfs at MNT/scratch), whose
	// renames the daemon never sees.
	if onMount(cwd, mountpoint) {
		return none
	}
	if cwd != mountpoint && !strings.HasPrefix(cwd, strings.TrimSuffix(mountpoint, "/")+"/") {
		return newRecordWatch(cwd, since)
	}
	// Reached through /proc/PID/cwd, which leads to the folder without
	// walking the mount's path to it.
	fd, err := unix.Open("/proc/"+strconv.Itoa(pid)+"/cwd", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return none
	}
	via := "/proc/self/fd/" + strconv.Itoa(fd)
	if now, err := os.Readlink(via); err != nil || now != cwd { // it moved meanwhile
		unix.Close(fd)
		return none
	}
	w := newRecordWatchVia(cwd, via, since)
	if w == nil || w.fd < 0 {
		unix.Close(fd)
		return w
	}
	w.viaFd = fd
	return w
}

// newRecordWatch watches dir/.snakemake/metadata and its "@" subfolders;
// nil when the folder is not there.
func newRecordWatch(dir string, since time.Time) *recordWatch {
	return newRecordWatchVia(dir, dir, since)
}

// newRecordWatchVia is newRecordWatch with dir's folders reached by the
// path via.
func newRecordWatchVia(dir, via string, since time.Time) *recordWatch {
	// Read before the descriptor is made: its queue's bound is the one
	// set then. Each read but the last returns more than recordBuf less
	// one event's longest size; one more read sees the queue empty.
	reads := (maxQueued()+1)*maxEvent/(recordBuf-maxEvent) + 2
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return &recordWatch{fd: -1, viaFd: -1}
	}
	w := &recordWatch{fd: fd, dir: dir, via: via, viaFd: -1, since: since, maxReads: reads, dirs: map[int32]string{}}
	if err := w.add(""); err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.ENOENT) {
			return nil // Snakemake has not made it yet
		}
		return &recordWatch{fd: -1, viaFd: -1}
	}
	// The subfolders already there (an earlier run's): new records land
	// in them too. Their records are not read: none is this run's yet.
	w.walk("", 0, nil)
	return w
}

func (w *recordWatch) meta() string { return filepath.Join(w.via, ".snakemake", "metadata") }

// add watches the folder rel (relative to .snakemake/metadata). Adding
// one watched already is a no-op (the kernel returns its descriptor).
// Called with mu held, or before w is shared (newRecordWatch).
func (w *recordWatch) add(rel string) error {
	if len(w.dirs) >= maxRecordDirs {
		for _, r := range w.dirs {
			if r == rel {
				return nil
			}
		}
		return unix.ENOSPC
	}
	wd, err := unix.InotifyAddWatch(w.fd, filepath.Join(w.meta(), filepath.FromSlash(rel)), recordMask)
	if err != nil {
		return err
	}
	w.dirs[int32(wd)] = rel
	return nil
}

// walk watches the "@" subfolders of rel (depth folders below
// .snakemake/metadata), recursively, and, when outs is not nil, appends to
// it the outputs of the records in rel and in them written since the run
// started. Called with mu held, or before w is shared. A folder of 100,000 records is listed in chunks,
// unsorted, and, when outs is nil, only the "@" names are looked at (a
// record's name is base64, never "@"): the first listing walked such a
// folder in 0.5 s, sorting names it skipped.
func (w *recordWatch) walk(rel string, depth int, outs *[]string) {
	f, err := os.Open(filepath.Join(w.meta(), filepath.FromSlash(rel)))
	if err != nil {
		return
	}
	defer f.Close()
	for {
		ents, err := f.ReadDir(1024)
		for _, e := range ents {
			at := strings.HasPrefix(e.Name(), "@")
			if !at && outs == nil {
				continue
			}
			sub := path.Join(rel, e.Name())
			if e.IsDir() {
				// Watched before it is read: a record renamed in
				// meanwhile is read now or queued.
				if at && depth < maxRecordDepth && w.add(sub) == nil {
					w.walk(sub, depth+1, outs)
				}
				continue
			}
			if outs == nil {
				continue
			}
			if info, err := e.Info(); err != nil || info.ModTime().Before(w.since) {
				continue
			}
			if out, ok := snakemakeRecordOf(filepath.ToSlash(w.dir) + "/.snakemake/metadata/" + sub); ok {
				*outs = append(*outs, out)
			}
		}
		if err != nil || len(ents) == 0 {
			return
		}
	}
}

// drain returns the outputs named by the records written since the last
// call: absolute paths, or mount-relative keys for those in the mount.
func (w *recordWatch) drain(mountpoint string, log *slog.Logger) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fd < 0 {
		return nil
	}
	var outs, newDirs []string
	overflow := false
	var buf [recordBuf]byte
	for range w.maxReads { // until the queue is empty (EAGAIN): bounded by what it holds
		n, err := unix.Read(w.fd, buf[:])
		if err != nil || n <= 0 {
			break
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(ev.Len)]
			off += unix.SizeofInotifyEvent + int(ev.Len)
			if i := strings.IndexByte(string(name), 0); i >= 0 {
				name = name[:i]
			}
			if ev.Mask&unix.IN_Q_OVERFLOW != 0 {
				overflow = true
				continue
			}
			if ev.Mask&unix.IN_IGNORED != 0 { // its folder was removed
				delete(w.dirs, ev.Wd)
				continue
			}
			rel, ok := w.dirs[ev.Wd]
			if !ok {
				continue
			}
			sub := path.Join(rel, string(name))
			if ev.Mask&unix.IN_ISDIR != 0 {
				if strings.HasPrefix(string(name), "@") {
					newDirs = append(newDirs, sub)
				}
				continue
			}
			if ev.Mask&unix.IN_MOVED_TO == 0 {
				continue // a file created: Snakemake's temporary file
			}
			if out, ok := snakemakeRecordOf(filepath.ToSlash(w.dir) + "/.snakemake/metadata/" + sub); ok {
				outs = append(outs, out)
			} // else Snakemake's temporary file
		}
	}
	if overflow {
		// Events were dropped: every record written since the run
		// started is read again (those read already too: taking one in
		// twice changes nothing), and the folders made meanwhile watched.
		if !w.overflowed {
			w.overflowed = true
			log.Warn("lineage: inotify queue of Snakemake's records overflowed; reading them all again", "dir", filepath.Join(w.dir, ".snakemake", "metadata"))
		}
		w.walk("", 0, &outs)
	} else {
		for _, d := range newDirs {
			if depth := strings.Count(d, "/") + 1; depth <= maxRecordDepth && w.add(d) == nil {
				w.walk(d, depth, &outs)
			}
		}
	}
	for i, out := range outs {
		if key, ok := strings.CutPrefix(out, strings.TrimSuffix(mountpoint, "/")+"/"); ok {
			outs[i] = key
		}
	}
	return outs
}

// close closes the descriptor; it waits for a drain under way.
func (w *recordWatch) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fd >= 0 {
		unix.Close(w.fd)
		w.fd = -1
	}
	if w.viaFd >= 0 {
		unix.Close(w.viaFd)
		w.viaFd = -1
	}
}
