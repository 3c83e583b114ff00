package lineage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lamina-bio/lamina/catalog"
	"golang.org/x/sys/unix"
)

// What the tracker reads of /proc. Inside a FUSE request handler only
// /proc/TID/cgroup, /proc/TID/status and /proc/TID/cmdline are read: they
// answer even while the caller is in execve. /proc/PID/stat and environ
// block then (docs/lineage.md); stat is read only outside handlers
// (registration), environ only under a deadline.

// readProc reads /proc/TID/name.
func readProc(tid int, name string) ([]byte, error) {
	return os.ReadFile("/proc/" + strconv.Itoa(tid) + "/" + name)
}

// procCgroup returns tid's cgroup v2 path ("0::/a/b" → "/a/b").
func procCgroup(tid int) string {
	b, err := readProc(tid, "cgroup")
	if err != nil {
		return ""
	}
	return parseCgroup(b)
}

// parseCgroup returns the cgroup v2 path of a /proc/TID/cgroup, or "".
func parseCgroup(b []byte) string {
	for _, line := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			return p
		}
	}
	return ""
}

// procStatus returns tid's process id and parent process id.
func procStatus(tid int) (tgid, ppid int, err error) {
	b, err := readProc(tid, "status")
	if err != nil {
		return 0, 0, err
	}
	return parseStatus(tid, b)
}

// parseStatus returns the process id and parent process id of tid's
// /proc/TID/status.
func parseStatus(tid int, b []byte) (tgid, ppid int, err error) {
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
	start, _, err := procStat(pid)
	return start, err
}

// procStat returns pid's start time (ProcStart) and state (field 3: "Z"
// for a zombie).
func procStat(pid int) (start uint64, state string, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, "", err
	}
	// The command name (field 2) may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, "", errors.New("lineage: malformed /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, "", errors.New("lineage: short /proc stat")
	}
	start, err = strconv.ParseUint(f[19], 10, 64) // field 22; f[0] is field 3
	return start, f[0], err
}

// procCmdline returns pid's argv.
func procCmdline(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
}

// envMarker returns the LAMINA_RUN value in tid's environment as read
// reads it, giving up after d (reading environ blocks while the process is
// in execve, or while another thread of it waits for its mmap lock). ok is
// false when it could not tell: the read timed out or failed other than
// refused (a process of another user), so "" is no answer to keep.
func envMarker(read func(tid int, name string) ([]byte, error), tid int, d time.Duration) (m string, ok bool) {
	type answer struct {
		m  string
		ok bool
	}
	ch := make(chan answer, 1)
	go func() {
		b, err := read(tid, "environ")
		if err != nil {
			ch <- answer{"", errors.Is(err, os.ErrPermission)}
			return
		}
		for _, kv := range bytes.Split(b, []byte{0}) {
			if v, ok := bytes.CutPrefix(kv, []byte(EnvRun+"=")); ok {
				ch <- answer{string(v), true}
				return
			}
		}
		ch <- answer{"", true}
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case a := <-ch:
		return a.m, a.ok
	case <-t.C:
		return "", false
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

// alive reports whether the process has not exited (a zombie has): only
// the pidfd's POLLIN (or an error on it) says it has. A poll that fails
// (EINTR: the Go runtime signals its own threads) says nothing, and is
// asked again; taking it for an exit marked live runs abandoned.
func (p pidfd) alive() bool {
	fds := []unix.PollFd{{Fd: int32(p), Events: unix.POLLIN}}
	for {
		n, err := poll(fds, 0)
		switch {
		case err == unix.EINTR || err == unix.EAGAIN:
			continue
		case err != nil:
			return true // cannot tell: the caller must not give up on it
		}
		return n == 0 || fds[0].Revents&(unix.POLLIN|unix.POLLHUP) == 0
	}
}

var poll = unix.Poll // tests interrupt it

// pidfsMagic is the file system type of pidfds since Linux 6.9 (pidfs).
const pidfsMagic = 0x50494446

// id returns the number of the process the pidfd holds, unique on this
// host until it reboots (its pidfs inode: never reused, the same in every
// process that opens one on it), or 0 on a kernel without pidfs (every
// pidfd shares one inode there). A fstat of the handle: it never waits on
// the process, and is safe inside a FUSE handler.
func (p pidfd) id() uint64 {
	var fs unix.Statfs_t
	if err := unix.Fstatfs(int(p), &fs); err != nil || fs.Type != pidfsMagic {
		return 0
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(p), &st); err != nil {
		return 0
	}
	return st.Ino
}

func (p pidfd) close() { unix.Close(int(p)) }

// Vanished reports whether r is a running run of this host (Here) whose
// registered root process is gone: a `lamina run` killed with SIGKILL, a
// tracked shell closed without `track finish`. Runs of other hosts and
// runs with no root (a Snakemake job's) are never vanished here. It reads /proc/PID/stat: never call it inside
// a FUSE handler.
func Vanished(r catalog.Run, host string) bool {
	if r.Status != catalog.RunRunning || r.RootPID <= 0 || !Here(r, host) {
		return false
	}
	start, err := ProcStart(r.RootPID)
	return err != nil || start != r.RootStart
}

// Lingers reports whether run r, which ended, lingers: its command left
// processes in its cgroup on this host (Here; ProcsLeft), and some are still there. A daemon keeps such a run
// registered (Tracker), so the mount credits what its processes read and
// write to it, found by their cgroup or their LAMINA_RUN; the CLI credits
// their `lamina get` and `lamina save` by the marker the same way. It
// reads the cgroup tree: never call it inside a FUSE handler.
func Lingers(r catalog.Run, host string) bool {
	return r.Status != catalog.RunRunning && r.ProcsLeft && r.Cgroup != "" && Here(r, host) && cgroupBusy(r.Cgroup)
}

// Finisher is the part of a catalog that ends runs.
type Finisher interface {
	FinishRun(ctx context.Context, uid string, e catalog.RunEnd) (catalog.Run, error)
	ListRuns(ctx context.Context, q catalog.RunQuery) ([]catalog.Run, error)
	RunRecord(ctx context.Context, uid string) (catalog.RunRecord, error)
}

// Abandon records that run r's root process vanished unfinished (status
// catalog.RunAbandoned, no exit code, finished when noticed), and so did
// its running children without a root of their own (Snakemake jobs). A run
// whose cgroup still holds processes is recorded with ProcsLeft: it
// lingers. It returns the run as stored.
func Abandon(ctx context.Context, cat Finisher, r catalog.Run) (catalog.Run, error) {
	end := catalog.RunEnd{FinishedAt: time.Now(), Abandoned: true}
	EndJobs(ctx, cat, r.UID, end)
	// Its command may run on in its cgroup: it lingers (Tracker.Resume).
	end.ProcsLeft = cgroupBusy(r.Cgroup)
	return cat.FinishRun(ctx, r.UID, end)
}

// EndJobs ends with end the running children of run uid that have no root
// process of their own (a Snakemake run's job runs, which only the
// tracker that made them ends) and returns how many. `lamina run` calls it
// once it recorded its pipeline's end: the daemon that would have ended
// them may be gone (killed), and nothing else would.
func EndJobs(ctx context.Context, cat Finisher, uid string, end catalog.RunEnd) int {
	kids, err := cat.ListRuns(ctx, catalog.RunQuery{Parent: uid})
	if err != nil {
		return 0
	}
	n := 0
	for _, k := range kids {
		if k.Status == catalog.RunRunning && k.RootPID == 0 {
			if _, err := cat.FinishRun(ctx, k.UID, end); err == nil {
				n++
			}
		}
	}
	return n
}

// SweepRuns abandons the runs of this host among runs whose root process
// is gone (Vanished), and the job runs nothing can end any more
// (Orphaned), and returns runs with those updated. It is what lists of
// runs and a daemon's start call, so that a dead run is never shown
// running.
func SweepRuns(ctx context.Context, cat Finisher, runs []catalog.Run) []catalog.Run {
	host, _ := os.Hostname()
	status := map[string]string{} // uid → status, as listed
	for _, r := range runs {
		status[r.UID] = r.Status
	}
	parentStatus := func(uid string) string {
		if s, ok := status[uid]; ok {
			return s
		}
		if rec, err := cat.RunRecord(ctx, uid); err == nil {
			status[uid] = rec.Run.Status
			return rec.Run.Status
		}
		return "" // unknown: left alone
	}
	for i, r := range runs {
		switch {
		case Vanished(r, host):
			if got, err := Abandon(ctx, cat, r); err == nil {
				runs[i] = got
				status[r.UID] = got.Status
			}
		case Orphaned(r, host, parentStatus):
			end := catalog.RunEnd{FinishedAt: time.Now(), Abandoned: true, Note: OrphanNote}
			if got, err := cat.FinishRun(ctx, r.UID, end); err == nil {
				runs[i] = got
			}
		}
	}
	return runs
}

// OrphanNote is the note of a job run ended because the daemon that
// tracked it stopped first.
const OrphanNote = "the mount daemon that tracked it stopped (killed?) before its pipeline's run ended"

// Orphaned reports whether r is a running job run (no root process of its
// own: a Snakemake job's, which only the tracker that made it ends) of this
// host (Here, and with a host name recorded) that nothing can end any more: its
// pipeline's run (parentStatus of r.Parent) ended, and the daemon that made
// it (r.Daemon) is no longer running, or none is recorded (a run made
// before daemons were). A daemon ends its job runs before their pipeline's
// run, so such a run is left over from a daemon that died (kill -9). A run
// of another host (another workstation's daemon on a shared PostgreSQL
// catalog) is never orphaned here: its daemon cannot be checked. It reads
// /proc/PID/stat: never call it inside a FUSE handler.
func Orphaned(r catalog.Run, host string, parentStatus func(uid string) string) bool {
	if r.Status != catalog.RunRunning || r.RootPID > 0 || r.Parent == "" || r.Host == "" || !Here(r, host) {
		return false
	}
	if r.Daemon != "" && DaemonAlive(r.Daemon) {
		return false
	}
	ps := parentStatus(r.Parent)
	return ps != "" && ps != catalog.RunRunning
}

// Here reports whether run r was recorded on the machine this process
// sees, as far as its record tells: its Host is host (os.Hostname; ""
// for a run that recorded none) and its HostID this process's (HostID;
// "" for a run recorded before runs had one). Only then do its pids, its
// cgroup and its daemon name processes here: a container that has the
// host's name and a pid namespace of its own, or another workstation of
// that name on a shared PostgreSQL catalog, must not judge them.
func Here(r catalog.Run, host string) bool {
	return (r.Host == "" || r.Host == host) && (r.HostID == "" || r.HostID == hostID())
}

// hostID is HostID, read once; tests replace it.
var hostID = sync.OnceValue(HostID)

// HostID names the machine this process sees (catalog.Run.HostID):
// "BOOT_ID/PIDNS", PIDNS the inode of its pid namespace. Two machines
// differ in boot id; two pid namespaces of one kernel (containers) in
// their inode. "" when /proc cannot tell.
func HostID() string {
	boot := bootID()
	ns, err := os.Readlink("/proc/self/ns/pid") // "pid:[4026531836]"
	ino, ok := strings.CutPrefix(ns, "pid:[")
	if err != nil || !ok || boot == "" {
		return ""
	}
	return boot + "/" + strings.TrimSuffix(ino, "]")
}

// bootID tells boots apart: pid and start time name a process only
// within one.
func bootID() string {
	b, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return strings.TrimSpace(string(b))
}

// DaemonID names this process as the daemon that made a run
// (catalog.Run.Daemon): "BOOT_ID/PID/START", START its start time in clock
// ticks since boot. "" when /proc cannot tell.
func DaemonID() string {
	pid, start, err := Self()
	boot := bootID()
	if err != nil || boot == "" {
		return ""
	}
	return fmt.Sprintf("%s/%d/%d", boot, pid, start)
}

// DaemonAlive reports whether the daemon id names (DaemonID) still runs:
// the same boot, a process with its pid and start time that has not
// exited (a zombie has: a daemon's parent may not have reaped it yet). An
// id it cannot read is taken as alive: a run is never ended on a guess.
func DaemonAlive(id string) bool {
	f := strings.Split(id, "/")
	if len(f) != 3 {
		return true
	}
	pid, err1 := strconv.Atoi(f[1])
	start, err2 := strconv.ParseUint(f[2], 10, 64)
	if err1 != nil || err2 != nil {
		return true
	}
	if f[0] != bootID() {
		return false // rebooted since
	}
	got, state, err := procStat(pid)
	return err == nil && got == start && state != "Z" && state != "X"
}

// Shell returns the shell pid stands for: pid itself, or, when pid is a
// subshell the shell forked, that shell. Bash forks a subshell for
// "$(lamina track start 2>/dev/null)" (any redirection in the command
// substitution) rather than exec'ing lamina in it, and that copy exits
// as soon as lamina does: registering it would track nothing. A forked
// subshell has not exec'd, so its executable, command line and initial
// environment (/proc/PID/environ) are its parent's byte for byte; a shell
// started from a shell differs at least in its environment (SHLVL and _
// change). Climbs while so, a few levels at most.
func Shell(pid int) int {
	for range 8 {
		_, ppid, err := procStatus(pid)
		if err != nil || ppid <= 1 || !forkedFrom(pid, ppid) {
			return pid
		}
		pid = ppid
	}
	return pid
}

// forkedFrom reports whether child looks like a copy of parent that has
// not exec'd: the same executable, command line and initial environment.
func forkedFrom(child, parent int) bool {
	p := func(pid int, f string) string { return "/proc/" + strconv.Itoa(pid) + "/" + f }
	ce, err1 := os.Readlink(p(child, "exe"))
	pe, err2 := os.Readlink(p(parent, "exe"))
	if err1 != nil || err2 != nil || ce != pe {
		return false
	}
	for _, f := range []string{"cmdline", "environ"} {
		cb, err1 := os.ReadFile(p(child, f))
		pb, err2 := os.ReadFile(p(parent, f))
		if err1 != nil || err2 != nil || !bytes.Equal(cb, pb) {
			return false
		}
	}
	return true
}
