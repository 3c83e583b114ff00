package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/lineage"
	"github.com/lamina-bio/lamina/stage"
	"golang.org/x/sys/unix"
)

// inheritedFd is a descriptor among 0, 1 and 2 that lamina run got from
// its caller open on a file of the mount: a redirect of the shell that
// started it (`lamina run -- tr a-z A-Z < in.txt > out.txt`). The shell
// opened it, not the command, so the mount attributed neither open to
// the run: the run recorded no input and no output.
type inheritedFd struct {
	fd     int
	path   string // as /proc/self/fd/N names it
	key    string
	write  bool   // opened to write (O_WRONLY, O_RDWR): the run's output
	before string // a write's key's latest version when the command started; "" if none
}

// inheritedFds returns the descriptors 0, 1 and 2 open on files of the
// mount at mnt, but scratch files (no versions: nothing to record).
func inheritedFds(mnt string, scratch stage.Scratch) []inheritedFd {
	if mnt == "" {
		return nil
	}
	resolve := lineage.KeyResolver(mnt, mountLinks(mnt))
	var out []inheritedFd
	for fd := 0; fd <= 2; fd++ {
		p, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
		if err != nil || !strings.HasPrefix(p, "/") || strings.HasSuffix(p, " (deleted)") {
			continue // closed, a pipe, a socket, a file removed since
		}
		key, ok := resolve(p)
		if !ok || scratch.Match(key) {
			continue
		}
		var st unix.Stat_t
		if unix.Fstat(fd, &st) == nil && st.Mode&unix.S_IFMT != unix.S_IFREG {
			continue // a FIFO of the mount (mkfifo there): no versions either
		}
		fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
		if err != nil {
			continue
		}
		out = append(out, inheritedFd{fd: fd, path: p, key: key, write: fl&unix.O_ACCMODE != unix.O_RDONLY})
	}
	return out
}

// takeInherited records, before the command starts, what the run reads
// through the descriptors fds: the key's latest version (the one its open
// bound, unless it changed in between) is an input of run uid. Of each
// descriptor it writes it notes the latest version, to tell the one the
// command's writes make (creditInherited).
func takeInherited(ctx context.Context, errw io.Writer, cat catalog.Catalog, uid string, fds []inheritedFd) {
	var ins []string
	for i, f := range fds {
		v, err := cat.ByKey(ctx, f.key, 0)
		if f.write {
			if err == nil {
				fds[i].before = v.UID
			}
			continue
		}
		if err == nil {
			ins = append(ins, v.UID)
		} else {
			fmt.Fprintf(errw, "lamina: warning: fd %d (%s) was opened by the caller (a redirect): its version is unknown, not recorded as an input of the run: %v\n", f.fd, f.path, explain(err))
		}
	}
	if len(ins) > 0 {
		if err := cat.AddInputs(ctx, uid, ins); err != nil {
			fmt.Fprintf(errw, "lamina: warning: the inputs the caller's redirects give the run were not recorded: %v\n", explain(err))
		}
	}
}

// redirectKeys returns the keys of the descriptors of fds opened to
// write: the run's Redirects, whose handles the daemon credits to the run.
func redirectKeys(fds []inheritedFd) []string {
	var keys []string
	for _, f := range fds {
		if f.write && !slices.Contains(keys, f.key) {
			keys = append(keys, f.key)
		}
	}
	return keys
}

// creditInherited makes what the command wrote through the descriptors
// fds opened to write the outputs of run uid, once the command exited.
// The daemon credits their handles to the run (Run.Redirects), and the
// mount commits a handle at each close by the process that opened it:
// stdout is closed here (made /dev/null), so that when a shell's child
// opened it and exec'd lamina run (bash) the version is there for the
// summary. Stderr stays open for lamina's own messages, and a descriptor
// the shell itself opened (dash, `{ lamina run -- cmd; } > out`) commits
// when the shell closes it: noted. A daemon that credited nothing (one of
// an earlier lamina) leaves the version to be credited here, if it came.
func creditInherited(ctx context.Context, errw io.Writer, cat catalog.Catalog, uid string, fds []inheritedFd) {
	for _, f := range fds {
		// Not when stderr goes to the same file (> out 2>&1): lamina's
		// summary goes there too, and closing stdout first made two
		// versions, the second with the summary.
		if f.write && f.fd == 1 && !slices.ContainsFunc(fds, func(g inheritedFd) bool { return g.fd == 2 && g.path == f.path }) {
			if null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0); err == nil {
				unix.Dup2(int(null.Fd()), f.fd) // closes it: the mount commits
				null.Close()
			}
		}
	}
	var outs []string
	done := map[string]bool{}
	for _, f := range fds {
		if !f.write || done[f.key] {
			continue
		}
		done[f.key] = true
		v, err := cat.ByKey(ctx, f.key, 0)
		switch {
		case err != nil || v.UID == f.before:
			// Unchanged: the caller commits it at its close (dash), or
			// the command wrote what the key holds (no new version).
			if f.fd != 2 && parentHolds(f.path) {
				fmt.Fprintf(errw, "lamina: fd %d (%s) is still open in the caller: its new version, the run's output, is committed when the caller closes it\n", f.fd, f.path)
			}
		case v.Run == "":
			outs = append(outs, v.UID)
		}
	}
	if len(outs) > 0 {
		if _, err := cat.CreditOutputs(ctx, uid, outs); err != nil {
			fmt.Fprintf(errw, "lamina: warning: the outputs written through the caller's redirects were not credited to the run: %v\n", explain(err))
		}
	}
}

// parentHolds reports whether this process's parent (the shell that
// started lamina run) has a descriptor open on path.
func parentHolds(path string) bool {
	dir := "/proc/" + strconv.Itoa(os.Getppid()) + "/fd"
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range ents {
		if p, err := os.Readlink(dir + "/" + e.Name()); err == nil && p == path {
			return true
		}
	}
	return false
}
