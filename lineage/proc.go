package lineage

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// What the tracker reads of /proc. Inside a FUSE request handler only
// /proc/TID/cgroup, /proc/TID/status and /proc/TID/cmdline are read: they
// answer even while the caller is in execve. /proc/PID/stat and environ
// block then (docs/lineage.md); stat is read only outside handlers
// (registration), environ only under a deadline.

// procCgroup returns tid's cgroup v2 path ("0::/a/b" → "/a/b").
func procCgroup(tid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(tid) + "/cgroup")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			return p
		}
	}
	return ""
}

// procStatus returns tid's process id and parent process id.
func procStatus(tid int) (tgid, ppid int, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(tid) + "/status")
	if err != nil {
		return 0, 0, err
	}
	tgid, ppid = -1, -1
	for _, line := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("Tgid:")); ok {
			tgid, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
		} else if v, ok := bytes.CutPrefix(line, []byte("PPid:")); ok {
			ppid, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
			break // PPid comes after Tgid
		}
	}
	if tgid < 0 || ppid < 0 {
		return 0, 0, fmt.Errorf("lineage: /proc/%d/status: no Tgid or PPid", tid)
	}
	return tgid, ppid, nil
}

// ProcStart returns the start time of process pid in clock ticks after
// boot (field 22 of /proc/PID/stat). Never call it inside a FUSE handler.
func ProcStart(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("lineage: malformed /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, errors.New("lineage: short /proc stat")
	}
	return strconv.ParseUint(f[19], 10, 64) // field 22; f[0] is field 3
}

// procCmdline returns pid's argv.
func procCmdline(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
}

// envMarker returns the LAMINA_RUN value in tid's environment, giving up
// after d (reading environ blocks while the process is in execve).
func envMarker(tid int, d time.Duration) string {
	ch := make(chan string, 1)
	go func() {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(tid) + "/environ")
		if err != nil {
			ch <- ""
			return
		}
		for _, kv := range bytes.Split(b, []byte{0}) {
			if v, ok := bytes.CutPrefix(kv, []byte(EnvRun+"=")); ok {
				ch <- string(v)
				return
			}
		}
		ch <- ""
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case s := <-ch:
		return s
	case <-t.C:
		return ""
	}
}

// pidfd is a handle on one process (or thread) that tells whether that
// very process has exited, whatever happens to its number afterwards.
type pidfd int

func openPidfd(tid int) (pidfd, bool) {
	fd, err := unix.PidfdOpen(tid, unix.PIDFD_THREAD)
	if err != nil {
		return -1, false
	}
	return pidfd(fd), true
}

// alive reports whether the process has not exited (a zombie has).
func (p pidfd) alive() bool {
	fds := []unix.PollFd{{Fd: int32(p), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 0)
	return err == nil && n == 0
}

func (p pidfd) close() { unix.Close(int(p)) }
