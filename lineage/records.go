package lineage

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
type recordWatch struct {
	fd  int    // the inotify descriptor; -1: nothing to watch
	dir string // Snakemake's working directory
}

// watchRecords returns a watch of the records of the Snakemake process
// pid, nil while its .snakemake/metadata is not there yet (tried again
// at the next job). A working directory in the mount (or none known)
// gets a watch of nothing: the mount reports those records itself. It
// reads /proc/PID/cwd and looks up a path off the mount only: safe in a
// FUSE handler.
func watchRecords(pid int, mountpoint string) *recordWatch {
	none := &recordWatch{fd: -1}
	if mountpoint == "" {
		return none
	}
	cwd, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/cwd")
	if err != nil || !filepath.IsAbs(cwd) {
		return none
	}
	if cwd == mountpoint || strings.HasPrefix(cwd, strings.TrimSuffix(mountpoint, "/")+"/") {
		return none
	}
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return none
	}
	if _, err := unix.InotifyAddWatch(fd, filepath.Join(cwd, ".snakemake/metadata"), unix.IN_MOVED_TO|unix.IN_ONLYDIR); err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.ENOENT) {
			return nil // Snakemake has not made it yet
		}
		return none
	}
	return &recordWatch{fd: fd, dir: cwd}
}

// drain returns the outputs named by the records written since the last
// call: absolute paths, or mount-relative keys for those in the mount.
func (w *recordWatch) drain(mountpoint string) []string {
	if w.fd < 0 {
		return nil
	}
	var outs []string
	var buf [16 << 10]byte
	for range 64 { // bounded: 64 full reads are ~16k records
		n, err := unix.Read(w.fd, buf[:])
		if err != nil || n <= 0 {
			return outs
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(ev.Len)]
			off += unix.SizeofInotifyEvent + int(ev.Len)
			if i := strings.IndexByte(string(name), 0); i >= 0 {
				name = name[:i]
			}
			out, ok := snakemakeRecordOf(filepath.ToSlash(w.dir) + "/.snakemake/metadata/" + string(name))
			if !ok {
				continue // Snakemake's temporary file
			}
			if key, ok := strings.CutPrefix(out, strings.TrimSuffix(mountpoint, "/")+"/"); ok {
				out = key
			}
			outs = append(outs, out)
		}
	}
	return outs
}

func (w *recordWatch) close() {
	if w.fd >= 0 {
		unix.Close(w.fd)
		w.fd = -1
	}
}
