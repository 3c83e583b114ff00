package fs

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/lamina-bio/lamina/mountinfo"
)

// Problems with a mountpoint, each with a message that says what to do.
var (
	ErrNoMountpoint = errors.New("no such mountpoint")
	ErrNotEmpty     = errors.New("mountpoint not empty")
	ErrMounted      = errors.New("already mounted")
	ErrStale        = errors.New("stale mount")
	ErrNoFUSE       = errors.New("no FUSE")
	ErrNotMounted   = errors.New("not mounted")
)

type mountpointError struct {
	msg  string
	kind error
}

func (e *mountpointError) Error() string { return e.msg }
func (e *mountpointError) Unwrap() error { return e.kind }

// CheckMountpoint says whether dir can be mounted on: it must exist, be an
// empty folder, not be mounted on already, and /dev/fuse must exist.
func CheckMountpoint(dir string) error {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return &mountpointError{"/dev/fuse does not exist: this machine (or container) has no FUSE; load the fuse module (modprobe fuse) or run the container with --device /dev/fuse", ErrNoFUSE}
	}
	// A mount first, from mountinfo alone: a stat of one whose daemon
	// hangs would wait for good.
	if mi, ok := MountInfo(dir); ok {
		if !Answers(dir, 2*time.Second) {
			return &mountpointError{fmt.Sprintf("%s holds a stale mount left by a lamina daemon that died or does not answer; run `lamina umount %s`, then mount again", dir, dir), ErrStale}
		}
		return &mountpointError{fmt.Sprintf("%s is already mounted (%s %s); unmount it first (lamina umount %s)", dir, mi.Type, mi.Source, dir), ErrMounted}
	}
	info, err := os.Stat(dir)
	switch {
	case errors.Is(err, syscall.ENOTCONN), errors.Is(err, syscall.ECONNABORTED): // as Stale: a daemon killed mid-request
		return &mountpointError{fmt.Sprintf("%s holds a stale mount left by a lamina daemon that died; run `lamina umount %s`, then mount again", dir, dir), ErrStale}
	case errors.Is(err, os.ErrNotExist):
		return &mountpointError{fmt.Sprintf("mountpoint %s does not exist; create it first (mkdir -p %s)", dir, dir), ErrNoMountpoint}
	case err != nil:
		return fmt.Errorf("mountpoint %s: %w", dir, err)
	case !info.IsDir():
		return &mountpointError{fmt.Sprintf("mountpoint %s is not a folder", dir), ErrNoMountpoint}
	}
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("mountpoint %s: %w", dir, err)
	}
	defer f.Close()
	if names, _ := f.Readdirnames(1); len(names) > 0 {
		return &mountpointError{fmt.Sprintf("mountpoint %s is not empty (it holds %s); mount on an empty folder", dir, names[0]), ErrNotEmpty}
	}
	// fusermount3's rule for a user other than root; said here, because
	// its own message is lost with its exit status.
	if os.Geteuid() != 0 && syscall.Access(dir, 2 /* W_OK */) != nil {
		return &mountpointError{fmt.Sprintf("you may not write to %s: mounting as a user other than root needs a mountpoint you can write (one in your home folder, say)", dir), ErrNoMountpoint}
	}
	return nil
}

// MountPoint is one line of /proc/self/mountinfo.
type MountPoint struct {
	Dir, Type, Source string
	Dev               string // the file system's device, major:minor (st_dev)
	Options           string // the super block's options (a FUSE mount's user_id=…)
}

// MountsAt returns the mounts at dir, the one seen (the top) last.
func MountsAt(dir string) []MountPoint {
	var out []MountPoint
	scanMounts(func(m MountPoint) {
		if m.Dir == dir {
			out = append(out, m)
		}
	})
	return out
}

// MountsOf returns the mounts whose source is source ("lamina:NAME" for the
// mount of instance NAME) made by user uid (a FUSE mount's user_id).
func MountsOf(source string, uid int) []MountPoint {
	var out []MountPoint
	scanMounts(func(m MountPoint) {
		if m.Source == source && slices.Contains(strings.Split(m.Options, ","), fmt.Sprintf("user_id=%d", uid)) {
			out = append(out, m)
		}
	})
	return out
}

// scanMounts calls fn with each line of /proc/self/mountinfo that names a
// file system type.
func scanMounts(fn func(MountPoint)) {
	for _, m := range mountinfo.Read() {
		if m.Type == "" {
			continue
		}
		fn(MountPoint{Dir: m.Dir, Type: m.Type, Source: m.Source, Dev: m.Dev, Options: m.Options})
	}
}

// MountInfo reports what is mounted at dir (an absolute, clean path).
func MountInfo(dir string) (MountPoint, bool) {
	var found MountPoint
	ok := false
	scanMounts(func(m MountPoint) {
		if m.Dir == dir {
			found, ok = m, true // the last one wins
		}
	})
	return found, ok
}

// ForceUnmount removes a FUSE mount whose daemon is gone (or will not
// answer): lazily, so that processes still inside it do not keep it alive.
func ForceUnmount(dir string) error {
	if os.Geteuid() == 0 {
		err := syscall.Unmount(dir, 0)
		if err == nil || errors.Is(err, syscall.EINVAL) {
			if _, still := MountInfo(dir); !still {
				return nil
			}
		}
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			return fmt.Errorf("unmount %s: %w", dir, err)
		}
		return nil
	}
	return fusermount(dir, "-u", "-z")
}

// ClearStale removes the mount at dir whose daemon died or does not
// answer. As root it first aborts the mount's FUSE connection: a daemon
// stuck on its way out (a thread waiting in the kernel) keeps /dev/fuse
// open, and every process using the mount would wait for it for good; a
// detached mount does not free them. A user without root relies on
// fusermount3's lazy unmount.
func ClearStale(dir string) error {
	if os.Geteuid() == 0 {
		abortConnection(dir)
	}
	return ForceUnmount(dir)
}

// abortConnection aborts the FUSE connection of the mount at dir through
// the fusectl file system (mounted here if it is not).
func abortConnection(dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	const conns = "/sys/fs/fuse/connections"
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || mountinfo.Unescape(f[4]) != dir {
			continue
		}
		_, minor, ok := strings.Cut(f[2], ":")
		if !ok {
			continue
		}
		if _, err := os.Stat(conns + "/" + minor); err != nil {
			syscall.Mount("fusectl", conns, "fusectl", 0, "")
		}
		os.WriteFile(conns+"/"+minor+"/abort", []byte("1"), 0)
	}
}

// Unmount unmounts the FUSE mount at dir as umount(8) would: it fails while
// the mount is in use. As a user other than root it goes through
// fusermount3, as the mount did.
func Unmount(dir string) error {
	if os.Geteuid() == 0 {
		return syscall.Unmount(dir, 0)
	}
	return fusermount(dir, "-u")
}

func fusermount(dir string, args ...string) error {
	for _, prog := range []string{"fusermount3", "fusermount"} {
		if p, err := exec.LookPath(prog); err == nil {
			out, err := exec.Command(p, append(args, dir)...).CombinedOutput()
			if err != nil {
				return fmt.Errorf("%s %s %s: %v: %s", prog, strings.Join(args, " "), dir, err, strings.TrimSpace(string(out)))
			}
			return nil
		}
	}
	return fmt.Errorf("cannot unmount %s: not root, and fusermount3 is not installed (apt-get install fuse3)", dir)
}

// Abs cleans dir into the absolute path mountinfo shows, following symbolic
// links of its parents and of dir itself when dir is one (~/lab a link to
// a folder: fusermount3 refuses a link, "mountpoint is not a directory").
// A path mountinfo lists is not looked at at all: a stale mount answers
// nothing, and the root of one whose daemon hangs (a killed daemon's
// thread stuck in the kernel) keeps even lstat waiting for good, and
// `lamina umount`, the command that clears it, with it.
func Abs(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	if _, mounted := MountInfo(abs); mounted {
		return abs, nil
	}
	parent, err := filepath.EvalSymlinks(filepath.Dir(abs))
	if err != nil {
		return abs, nil
	}
	abs = filepath.Join(parent, filepath.Base(abs))
	if _, mounted := MountInfo(abs); mounted {
		return abs, nil
	}
	if fi, err := os.Lstat(abs); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		if real, err := filepath.EvalSymlinks(abs); err == nil {
			return real, nil
		}
	}
	return abs, nil
}

// Answers reports whether the FUSE mount at dir is served: it is not
// Stale, and says so within wait. A daemon that hangs (stopped with
// SIGSTOP, or a killed one's thread stuck in the kernel) never answers;
// the stat asking it is left waiting in its goroutine.
func Answers(dir string, wait time.Duration) bool {
	live := make(chan bool, 1)
	go func() { live <- !Stale(dir) }()
	select {
	case ok := <-live:
		return ok
	case <-time.After(wait):
		return false
	}
}

// Stale reports whether dir is a FUSE mount whose daemon is gone: the
// kernel answers "transport endpoint is not connected", or "connection
// aborted" when the connection died with requests in flight (stat may
// still succeed from cached attributes, so this asks statfs and readdir).
func Stale(dir string) bool {
	gone := func(err error) bool { return errors.Is(err, syscall.ENOTCONN) || errors.Is(err, syscall.ECONNABORTED) }
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); gone(err) {
		return true
	}
	f, err := os.Open(dir)
	if gone(err) {
		return true
	}
	if err != nil {
		return false
	}
	defer f.Close()
	_, err = f.Readdirnames(1)
	return gone(err)
}
