package fs

import (
	"context"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// A folder artifact's files are read-only per version: an unlink or rmdir
// inside one is EROFS, as is any write, and an rmdir of its top while it
// holds files is ENOTEMPTY (a tool that prunes empty folders with rmdir
// must not take an artifact away). `rm -r` of the artifact, or of a
// folder above it, asks for the whole of it, and moves it to the trash as
// an unlink of a file does (DESIGN §3): rm empties folders before it
// removes them, and stops at the first file it cannot remove, so the
// mount recognises rm by the caller's process (its name from
// /proc/TID/status, its arguments and working folder) at the first
// unlink inside the artifact. The artifact goes to the trash then, whole
// (`lamina restore` brings it back); the unlinks and rmdirs that rm sends
// for the rest of it succeed as no-ops for that process only
// (removedFolders). Any other process, and rm without -r or with -i
// (which would ask about each file), still gets EROFS.
//
// rm at a terminal, run by anyone but root, first asks access(W_OK) of
// each file to decide whether to ask "remove write-protected file?", and
// an error other than EACCES makes it report the file and leave it. So
// W_OK inside the artifact answers 0 to that same rm (where its unlink
// would succeed), and EROFS to everyone else (`test -w`, editors).
//
// Only an unlink trashes, never an rmdir: the tree has no empty folders
// (buildTree makes folders from file paths), and rm removes a folder only
// after what it holds, so an rmdir of a subfolder before any unlink means
// rm left a file in it — the user answered "n", or the file was refused —
// and rm goes on to rmdir the folder all the same (GNU rm 9: only the
// failed rmdir keeps it from the folders above). That rmdir is ENOTEMPTY,
// as on any file system, and nothing goes to the trash. With W_OK
// answered 0, an rm that takes the artifact asks nothing about its files,
// so once its first unlink trashed the artifact no "n" can follow.

// removedFolders remembers the folder artifacts an rm -r moved to the
// trash, with the rm's process, so that its removal of what it listed
// inside them succeeds.
type removedFolders struct {
	mu sync.Mutex               // guards m
	m  map[string]removedFolder // by key
}

type removedFolder struct {
	pid int
	at  time.Time // the last operation of the rm on it
}

// removedFor is how long after its last operation an rm's removal of a
// folder artifact is remembered.
const removedFor = time.Minute

func (r *removedFolders) add(key string, pid int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	if r.m == nil {
		r.m = map[string]removedFolder{}
	}
	for k, f := range r.m {
		if now.Sub(f.at) > removedFor {
			delete(r.m, k)
		}
	}
	r.m[key] = removedFolder{pid: pid, at: now}
}

// by reports whether the process of thread tid moved the folder artifact
// key to the trash with rm -r a moment ago.
func (r *removedFolders) by(key string, tid uint32) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	f, ok := r.m[key]
	if !ok || time.Since(f.at) > removedFor {
		return false
	}
	pid := f.pid
	if tid != uint32(pid) {
		pid = threadGroup(tid) // rm has one thread: its pid
	}
	if pid != f.pid {
		return false
	}
	r.m[key] = removedFolder{pid: pid, at: time.Now()}
	return true
}

// folderKey is the key of the folder artifact whose tree holds n, a
// folder or file of it, and the path of the tree's top in the mount, by
// where the kernel has it now (a mv of the artifact moves its inodes
// without a lookup): the key itself, or KEY@vN for a version's tree
// (version is then true).
func (n *node) folderKey() (key, top string, version bool) {
	if n.e.Kind != KindFolder && n.e.Kind != KindFolderFile || n.EmbeddedInode() == nil {
		return "", "", false
	}
	top, inner := n.Path(nil), n.e.Path()
	if inner != "" {
		var ok bool
		if top, ok = strings.CutSuffix(top, "/"+inner); !ok {
			return "", "", false
		}
	}
	if n.e.Latest {
		return top, top, false
	}
	dir, name := path.Split(top)
	pn := ParseName(name)
	if pn.Version == 0 || pn.Meta {
		return "", "", false
	}
	return dir + pn.Base, top, true
}

// rmCaller returns the key of the folder artifact that holds n (a folder
// or file of it) and the caller's process if it is an rm -r that takes
// the artifact whole; pid is 0 otherwise. A version's tree (KEY@vN/,
// listed with --show-versions) goes with its artifact only when rm was
// given a folder above it, as rm of a file's KEY@vN is EROFS.
func (n *node) rmCaller(ctx context.Context) (key string, pid int, tid uint32) {
	key, top, version := n.folderKey()
	if key == "" {
		return "", 0, 0
	}
	tid = callerTID(ctx)
	return key, rmRecursivePID(tid, filepath.Join(n.m.dir, filepath.FromSlash(top)), version), tid
}

// rmInFolder answers an unlink (rmdir false) or rmdir inside the folder
// node n: ok is false when it is no removal of rm -r (then EROFS stands).
// Only an unlink moves the artifact to the trash; an rmdir before it is
// ENOTEMPTY (see the top of this file).
func (n *node) rmInFolder(ctx context.Context, rmdir bool) (errno syscall.Errno, ok bool) {
	key, pid, tid := n.rmCaller(ctx)
	if pid == 0 {
		return 0, false
	}
	if n.m.removed.by(key, uint32(pid)) {
		return 0, true // the rest of what rm listed
	}
	if rmdir {
		return syscall.ENOTEMPTY, true // rm left a file in it
	}
	if e := n.m.trashFolder(ctx, key); e != 0 {
		return e, true
	}
	n.m.removed.add(key, pid)
	if n.m.listsDerived() {
		n.m.unlinked.add(key, tid) // its KEY@vN and sidecar names: ghosts for rm (write.go)
	}
	return 0, true
}

// trashFolder moves the folder artifact key to the trash.
func (m *Mount) trashFolder(ctx context.Context, key string) syscall.Errno {
	if err := m.ns.st.Unlink(ctx, key); err != nil {
		return errno(m.log, "unlink", err)
	}
	m.removals.removed(parentKey(key), callerTID(ctx), time.Now()) // removal.go
	m.log.Info("folder artifact moved to the trash by rm -r", "key", key)
	m.held.drop([]string{key})
	m.ns.remove(key)
	m.notifyAsync(key)
	return 0
}

// rmRecursivePID returns the process of thread tid if it is an rm asked to
// remove recursively, without asking about each file, the folder root (an
// absolute path in the mount; unless strict) or a folder above it; 0
// otherwise. Only the
// arguments as given count: a path through a symbolic link does not match
// (and would need a lookup in this mount, from inside one of its
// requests). The arguments are read only of a single-threaded process
// named rm: reading another's /proc/PID/cmdline could wait for its memory
// while one of its threads waits for this mount.
func rmRecursivePID(tid uint32, root string, strict bool) int {
	if tid == 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(int(tid)) + "/status")
	if err != nil {
		return 0
	}
	var name string
	pid, threads := 0, 0
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		v = strings.TrimSpace(v)
		switch k {
		case "Name":
			name = v
		case "Tgid":
			pid, _ = strconv.Atoi(v)
		case "Threads":
			threads, _ = strconv.Atoi(v)
		}
	}
	if name != "rm" || threads != 1 || pid <= 0 {
		return 0
	}
	proc := "/proc/" + strconv.Itoa(pid)
	cmdline, err := os.ReadFile(proc + "/cmdline")
	if err != nil {
		return 0
	}
	cwd, err := os.Readlink(proc + "/cwd")
	if err != nil {
		return 0
	}
	args := strings.Split(strings.TrimSuffix(string(cmdline), "\x00"), "\x00")
	if !rmTakesWhole(args[1:], cwd, root, strict) {
		return 0
	}
	return pid
}

// rmTakesWhole reports whether rm's arguments (without argv[0]), run in
// cwd, remove recursively without asking about each file a path that is
// root (unless strict) or a folder above it. Options follow GNU rm: the
// last of -f, -i, -I and --interactive=WHEN decides whether it asks, and
// long options and WHEN may be shortened to any unambiguous prefix
// (`rm -r --inter` asks about each file; `rm -i -rf` asks nothing).
func rmTakesWhole(args []string, cwd, root string, strict bool) bool {
	recursive, match, options := false, false, true
	asks := false       // about each file: -i, --interactive[=always]
	rootRefused := true // rm refuses / without --no-preserve-root
	var operands []string
	for _, a := range args {
		switch {
		case options && a == "--":
			options = false
		case options && strings.HasPrefix(a, "--"):
			name, when, hasWhen := strings.Cut(a[2:], "=")
			switch rmLongOption(name) {
			case "recursive":
				recursive = true
			case "force":
				asks = false
			case "no-preserve-root":
				rootRefused = false
			case "interactive":
				asks = !hasWhen || rmInteractiveWhen(when) == "always"
			case "":
				return false // unknown or ambiguous: rm refuses it
			}
		case options && len(a) > 1 && a[0] == '-':
			for _, c := range a[1:] {
				switch c {
				case 'r', 'R':
					recursive = true
				case 'f', 'I': // -I asks once, before it starts
					asks = false
				case 'i':
					asks = true
				}
			}
		default:
			operands = append(operands, a)
		}
	}
	for _, a := range operands {
		// rm refuses (and skips) an operand whose last part is . or ..,
		// and / unless told otherwise: those name nothing it removes.
		if t := strings.TrimRight(a, "/"); t != "" && (path.Base(t) == "." || path.Base(t) == "..") {
			continue
		}
		p := a
		if !filepath.IsAbs(p) {
			p = filepath.Join(cwd, p)
		}
		p = filepath.Clean(p)
		if p == "/" && rootRefused {
			continue
		}
		if p == root && !strict || strings.HasPrefix(root, p+"/") || p == "/" {
			match = true
		}
	}
	return recursive && match && !asks
}

// rmLongOption is the GNU rm long option that name is or uniquely
// begins; "" when none or several.
func rmLongOption(name string) string {
	var found string
	for _, o := range []string{"force", "interactive", "one-file-system", "no-preserve-root", "preserve-root", "recursive", "dir", "verbose", "help", "version"} {
		if o == name {
			return o
		}
		if name != "" && strings.HasPrefix(o, name) {
			if found != "" {
				return ""
			}
			found = o
		}
	}
	return found
}

// rmInteractiveWhen is what --interactive=when means to rm: "never",
// "once" or "always" (also for a value rm would refuse: the safe side).
// As rm's argmatch, a prefix is enough when its matches agree.
func rmInteractiveWhen(when string) string {
	meaning := ""
	for _, w := range [][2]string{{"never", "never"}, {"no", "never"}, {"none", "never"}, {"once", "once"}, {"always", "always"}, {"yes", "always"}} {
		if w[0] == when {
			return w[1]
		}
		if when != "" && strings.HasPrefix(w[0], when) {
			if meaning != "" && meaning != w[1] {
				return "always"
			}
			meaning = w[1]
		}
	}
	if meaning == "" {
		return "always"
	}
	return meaning
}

// rmdirFolder answers an rmdir of the top of the folder artifact ent at
// key, outside an rm -r: ENOTEMPTY while it holds anything, as for any
// folder; an empty one goes to the trash.
func (n *node) rmdirFolder(ctx context.Context, ent Entry, key string) syscall.Errno {
	if !ent.Latest {
		return syscall.EROFS
	}
	ents, err := n.m.ns.readFolder(ctx, ent)
	if err != nil {
		return n.errno("rmdir", err)
	}
	if len(ents) > 0 {
		return syscall.ENOTEMPTY
	}
	return n.m.trashFolder(ctx, key)
}
