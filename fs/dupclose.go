package fs

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/lamina-bio/lamina/mountinfo"
	"golang.org/x/sys/unix"
)

// The close of a copy of a descriptor (dup; bash's `echo >&3`, which dup2s
// 3 to 1 and restores 1 after) sends a FLUSH as the last close does, and
// committing there made a version of the half-written file at each echo.
// Such a close commits nothing while its process holds a copy (copyClose);
// the last one's, or the handle's RELEASE, commits.

// copyClose reports whether the FLUSH from ctx's caller closes a copy of
// w's descriptor while its process keeps another: it then commits nothing,
// and w's RELEASE commits what it leaves (skipped). Asked only of a handle
// that wrote since its File's last commit: other closes commit nothing of
// their own, or must commit now (AwaitsWrite), and a create's single close
// pays for no /proc read.
func (w *writeHandle) copyClose(ctx context.Context) bool {
	tid := callerTID(ctx)
	if tid == 0 || w.always || !w.wroteSince() || w.f.AwaitsWrite() {
		return false
	}
	if !w.n.m.writers.copyKept(w, tid) {
		return false
	}
	w.skipped.Store(true)
	return true
}

// copyKept reports whether the process of thread tid, closing a descriptor
// of w, holds more writable descriptors of w's inode on this mount than
// the other open handles of the inode that it opened: one is then a copy
// of w's. Two opens of a file in one process still commit at each one's
// close; a handle whose opener's process is not known counts as the
// process's (it may be). A descriptor another process opened and this one inherited counts
// as a copy: the close then commits at its RELEASE, a moment later.
func (s *writerSet) copyKept(w *writeHandle, tid uint32) bool {
	n := w.n.m.writableFds(tid, w.ino())
	return n > 0 && n > s.ownOpen(w, tid)
}

// holdsCopy reports whether the process of thread tid, closing w, which
// was created or truncated and has nothing written, may keep a copy of its
// descriptor: a shell's redirect closes the one it opened after dup2,
// before the command writes through the copy. holdsInode counts any
// writable descriptor of the inode, so `exec 3>>f; echo a >&3; : > f`
// left the empty version to the RELEASE, after close(2) returned (which
// then could not report a failed commit), and a stat or read right after
// the close saw the truncation or not by the RELEASE's timing. Where the
// process's descriptors are counted, one is a copy only if they outnumber
// its other open handles of the inode (copyKept); where they cannot be,
// holdsInode's answer stands.
func (s *writerSet) holdsCopy(w *writeHandle, tid uint32) bool {
	if !w.n.m.holdsInode(tid, w.ino()) {
		return false
	}
	n := w.n.m.writableFds(tid, w.ino())
	return n == 0 || n > s.ownOpen(w, tid)
}

// ownOpen counts the open handles of w's inode but w that the process of
// thread tid opened (one whose opener's process is not known counts).
func (s *writerSet) ownOpen(w *writeHandle, tid uint32) int {
	ino := w.ino()
	s.mu.Lock()
	var others []*writeHandle
	for o := range s.ws {
		if o != w && o.opener != 0 && o.ino() == ino && o.isOpen() {
			others = append(others, o)
		}
	}
	s.mu.Unlock()
	if len(others) == 0 {
		return 0
	}
	tg, k := threadGroup(tid), 0
	for _, o := range others {
		if o.opener == tid {
			k++
		} else if og := o.openerGroup(); og == 0 || og == tg {
			k++
		}
	}
	return k
}

// childCopy reports whether the close of w from ctx's caller, a handle
// that wrote since the last commit whose process holds no copy of its
// descriptor (copyClose), should leave the commit to w's RELEASE, a child
// holding a copy (childHolds). Then w.skipped.
func (w *writeHandle) childCopy(ctx context.Context) bool {
	if w.always || !w.wroteSince() || !w.childHolds(callerTID(ctx)) {
		return false
	}
	w.skipped.Store(true)
	return true
}

// childHolds reports whether a child of the process of thread tid holds a
// writable descriptor of w's inode on this mount that is no handle of its
// own: a copy it inherited, so the file is not closed (Python's
// `Popen(stdout=f)` then `f.close()` made an empty version each run; a fork
// child's writes after its parent's close came as a second version). Asked
// at a close that would commit: for a process without children it costs
// listing its threads and reading their children. Only direct children: a
// copy held by a grandchild whose parent exited is not seen, and that close
// commits, as before.
func (w *writeHandle) childHolds(tid uint32) bool {
	if tid == 0 {
		return false
	}
	kids := childrenOf(tid, 64)
	if len(kids) == 0 {
		return false
	}
	// Each other handle of the inode must be a child's own: a copy of one
	// the process opened could be what a child holds.
	ino := w.ino()
	s := &w.n.m.writers
	s.mu.Lock()
	var others []*writeHandle
	for o := range s.ws {
		if o != w && o.ino() == ino && !o.isReleased() {
			others = append(others, o)
		}
	}
	s.mu.Unlock()
	own := map[int]int{}
	for _, o := range others {
		og := o.openerGroup()
		if og <= 0 || !slices.Contains(kids, og) {
			return false
		}
		own[og]++
	}
	for _, k := range kids {
		if n := w.n.m.writableFds(uint32(k), ino); n > own[k] {
			return true
		}
	}
	return false
}

// childrenOf lists up to max children of the process of thread tid, of all
// its threads (/proc/TID/task/*/children); none if /proc does not tell.
func childrenOf(tid uint32, max int) []int {
	_, tids := threadsOf(tid)
	p := "/proc/" + strconv.FormatUint(uint64(tid), 10) + "/task/"
	var kids []int
	for _, t := range tids {
		b, err := readSmall(p + t + "/children")
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(b) {
			if k, err := strconv.Atoi(f); err == nil && len(kids) < max {
				kids = append(kids, k)
			}
		}
	}
	return kids
}

// threadsOf lists the threads of the process of thread tid, and tells the
// process (its thread group) from the list's first: /proc lists the group
// leader first, whose number is the group's. One getdents, cheaper than
// reading and parsing /proc/TID/status. 0, nil if unknown.
func threadsOf(tid uint32) (tg int, tids []string) {
	if tid == 0 {
		return 0, nil
	}
	fd, err := unix.Open("/proc/"+strconv.FormatUint(uint64(tid), 10)+"/task", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, nil
	}
	defer unix.Close(fd)
	var buf [4096]byte
	for {
		k, err := unix.Getdents(fd, buf[:])
		if err != nil || k <= 0 {
			break
		}
		_, _, tids = unix.ParseDirent(buf[:k], -1, tids)
	}
	if len(tids) == 0 {
		return 0, nil
	}
	tg, _ = strconv.Atoi(tids[0])
	return tg, tids
}

// isReleased reports whether the handle's RELEASE came.
func (w *writeHandle) isReleased() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.released
}

// isOpen reports whether the File counts the handle open.
func (w *writeHandle) isOpen() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return !w.closed && !w.released
}

// writableFds counts the descriptors of the process of thread tid that are
// open for writing on the inode number ino of this mount (fdinfo's mnt_id
// one of the mount's: a lamina inode's number is a hash of its key, the
// same on another lamina mount of the instance); 0 if that cannot be told
// (another user's process, one exiting: its table is gone from /proc
// before its descriptors close). Cheap, for it runs at each close that
// wrote: a descriptor whose /proc link names no path under the mount (a
// writer's pipes, terminal, other files) costs one readlinkat; only the
// others' fdinfo is read.
func (m *Mount) writableFds(tid uint32, ino uint64) int {
	dirs := m.mounts.dirs(m)
	if len(dirs) == 0 {
		return 0
	}
	p := "/proc/" + strconv.FormatUint(uint64(tid), 10)
	dfd, err := unix.Open(p+"/fd", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0
	}
	defer unix.Close(dfd)
	var buf [4096]byte
	var link [unix.PathMax]byte
	count := 0
	for {
		k, err := unix.Getdents(dfd, buf[:])
		if err != nil || k <= 0 {
			return count
		}
		_, _, names := unix.ParseDirent(buf[:k], -1, nil)
		done := k < len(buf)-512 // /proc lists every descriptor that fits: none is left
		for _, name := range names {
			l, err := unix.Readlinkat(dfd, name, link[:])
			if err != nil || !under(string(link[:l]), dirs) {
				continue
			}
			info, err := readSmall(p + "/fdinfo/" + name)
			if err != nil {
				continue
			}
			if id, ok := fdinfoField(info, "mnt_id"); ok && m.mounts.ours(m, id) && writableOn(info, ino) {
				count++
			}
		}
		if done {
			return count
		}
	}
}

// under reports whether the /proc link l names a path in one of dirs.
func under(l string, dirs []string) bool {
	for _, d := range dirs {
		if strings.HasPrefix(l, d) && (len(l) == len(d) || l[len(d)] == '/' || d == "/") {
			return true
		}
	}
	return false
}

// readSmall reads a /proc file of less than 4 KiB in one read.
func readSmall(path string) (string, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	var b [4096]byte
	n, err := unix.Read(fd, b[:])
	if err != nil {
		return "", err
	}
	return string(b[:n]), nil
}

// fdinfoField returns the value of a "name:\tvalue" line of fdinfo text.
func fdinfoField(info, name string) (string, bool) {
	i := strings.Index(info, name+":\t")
	if i < 0 || i > 0 && info[i-1] != '\n' {
		return "", false
	}
	v, _, _ := strings.Cut(info[i+len(name)+2:], "\n")
	return v, true
}

// writableOn reports whether fdinfo text info is of a descriptor open for
// writing on the inode number ino.
func writableOn(info string, ino uint64) bool {
	v, ok := fdinfoField(info, "ino")
	if !ok {
		return false
	}
	if i, err := strconv.ParseUint(v, 10, 64); err != nil || i != ino {
		return false
	}
	fl, ok := fdinfoField(info, "flags")
	if !ok {
		return false
	}
	f, err := strconv.ParseUint(fl, 8, 32)
	return err == nil && f&syscall.O_ACCMODE != syscall.O_RDONLY
}

// mountIDs tells which mount IDs (fdinfo's mnt_id) and folders are the
// mount's: mountinfo's lines with its device, the mount at its folder and
// bind mounts of it. Read once, and again when an unknown ID turns up
// (a bind mount made since); an ID known to be another mount's stays so
// (one freed and taken by a bind mount of this one only makes its closes
// commit, as they did).
type mountIDs struct {
	mu    sync.Mutex
	read  bool
	ids   map[string]bool
	paths []string
}

func (s *mountIDs) load(m *Mount) {
	s.read = true
	if s.ids == nil {
		s.ids = map[string]bool{}
	}
	var paths []string // a new slice: dirs' callers read the old one
	for _, mi := range mountinfo.Read() {
		if mi.ID == "" {
			continue
		}
		ours := mi.Dev == m.dev
		s.ids[mi.ID] = ours
		if ours {
			paths = append(paths, mi.Dir)
		}
	}
	s.paths = paths
}

// dirs returns the folders the mount is seen at; none if its device is not
// known (the checks then find no descriptor: each close commits).
func (s *mountIDs) dirs(m *Mount) []string {
	if m.dev == "" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.read {
		s.load(m)
	}
	return s.paths
}

// ours reports whether the mount ID id is the mount's.
func (s *mountIDs) ours(m *Mount, id string) bool {
	o, _ := s.owner(m, id)
	return o
}

// owner reports whether the mount ID id is the mount's, and whether
// mountinfo lists it at all (not if it is a mount of another namespace's).
func (s *mountIDs) owner(m *Mount, id string) (ours, known bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, known := s.ids[id]
	if !known {
		s.load(m)
		o, known = s.ids[id]
	}
	return o, known
}

// onMount reports whether the fdinfo text info is of a descriptor on this
// mount, or whether that cannot be told (the mount's device or the
// descriptor's mnt_id unknown, or an ID of another mount namespace's): the
// check of the /proc scanners for which a descriptor missed loses data
// (holdsInode, opensInode, heldByAnyProcess). A lamina inode's number is a
// hash of its key, the same on another mount of it: matching it alone
// counted another mount's descriptor. Asked only of a descriptor whose
// inode number matched: it costs a map lookup.
func (m *Mount) onMount(info string) bool {
	if m.dev == "" {
		return true
	}
	id, ok := fdinfoField(info, "mnt_id")
	if !ok {
		return true
	}
	ours, known := m.mounts.owner(m, id)
	return ours || !known
}
