package main

import (
	"cmp"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/lamina-bio/lamina/catalog/catalogrpc"
	"github.com/lamina-bio/lamina/instance"
)

// buildID identifies this build of lamina, for a CLI and a mount daemon
// to tell whether they are the same program: every build says version
// 0.1.0-dev, and a new CLI's write through an old daemon lost what the
// daemon did not know (save --revises) without a word. It is the version,
// the protocol number, the commit it was built from and how (debug.BuildInfo:
// vcs.revision, flags such as -ldflags), and, for a build of a modified
// tree or without a commit, the executable's identity (exeIdentity): two
// such builds differ in their code, not in their stamps.
var buildID = sync.OnceValue(func() string {
	id := fmt.Sprintf("%s protocol %d", version, catalogrpc.Protocol)
	var stamps []string
	rev, exact := "", false
	if bi, ok := debug.ReadBuildInfo(); ok {
		stamps = append(stamps, bi.GoVersion, bi.Main.Version)
		for _, s := range bi.Settings {
			stamps = append(stamps, s.Key+"="+s.Value)
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				exact = s.Value == "false"
			}
		}
	}
	sort.Strings(stamps)
	h := sha256.New()
	io.WriteString(h, strings.Join(stamps, "\n"))
	if rev == "" || !exact {
		io.WriteString(h, exeIdentity())
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev != "" {
		id += " rev " + rev
	}
	return id + " " + hex.EncodeToString(h.Sum(nil))[:12]
})

// exeIdentity identifies the running executable: the Go build ID the
// linker writes into it (a hash of its inputs and content; one ELF note,
// read in well under a millisecond), else a hash of the whole file (~100
// ms for 34 MB). /proc/self/exe is the running program even once a
// rebuild replaced its file, where os.Executable names the new one.
func exeIdentity() string {
	const exe = "/proc/self/exe"
	if f, err := elf.Open(exe); err == nil {
		defer f.Close()
		if sec := f.Section(".note.go.buildid"); sec != nil {
			// One note: namesz, descsz, type (4 bytes each), "Go\x00\x00", desc.
			if b, err := sec.Data(); err == nil && len(b) >= 16 {
				if n := f.ByteOrder.Uint32(b[4:8]); 16+int(n) <= len(b) && n > 0 {
					return string(b[16 : 16+n])
				}
			}
		}
	}
	f, err := os.Open(exe)
	if err != nil {
		return ""
	}
	defer f.Close()
	h := sha256.New()
	io.Copy(h, f)
	return hex.EncodeToString(h.Sum(nil))
}

// checkDaemonBuild makes cl refuse writes when the daemon it talks to is
// another build of lamina (buildID), saying how to restart it, and warns
// once on stderr: reads still go to it, as they may only miss what the
// daemon does not know.
func checkDaemonBuild(cl *catalogrpc.Client, dirs instance.Dirs, s instance.Settings) {
	err := daemonBuildError(cl.Hello(), buildID(), dirs, s)
	if err == nil {
		return
	}
	cl.RefuseWrites(err)
	fmt.Fprintf(os.Stderr, "lamina: warning: %v\n", err)
}

// daemonBuildError says, when the daemon's build (h.Build) is not own,
// that the mount runs another build and what to do; nil if they match.
func daemonBuildError(h catalogrpc.Hello, own string, dirs instance.Dirs, s instance.Settings) error {
	if h.Build == own {
		return nil
	}
	dir := "DIR"
	if st, err := readState(dirs, s.Name); err == nil && st.Mountpoint != "" {
		dir = st.Mountpoint
	}
	what, todo := buildAdvice(h, own, buildTime(), dir)
	return fmt.Errorf("the mount daemon of instance %q (pid %d) runs %s: it could drop what it does not know of a write, so writes are refused; %s",
		s.Name, h.PID, what, todo)
}

// buildAdvice says which build the daemon of h runs beside this one (own,
// its commit made at ownTime) and what to do to write through the mount
// at dir. The way depends on which is the newer: a remount by an older
// lamina unmounted, then refused the catalog a newer one had upgraded
// ("understands up to …"), or took the mount back to the older build.
func buildAdvice(h catalogrpc.Hello, own, ownTime, dir string) (what, todo string) {
	daemon := cmp.Or(h.Build, "an older build, which does not say which")
	exe := daemonExe(h.PID)
	remount := fmt.Sprintf("`lamina umount %s && lamina mount %s`", dir, dir)
	switch daemonAge(h, ownTime) {
	case older:
		return fmt.Sprintf("another lamina build, older than this one (%s; this lamina is %s)", daemon, own),
			"remount with this lamina: " + remount
	case newer:
		return fmt.Sprintf("another lamina build, newer than this one (%s%s; this lamina is %s)", daemon, exe, own),
			"use the daemon's lamina, or upgrade this one; do not remount with this one: it would take the mount back to the older build, or refuse the catalog the newer one upgraded"
	}
	return fmt.Sprintf("another lamina build (%s%s; this lamina is %s)", daemon, exe, own),
		"use the daemon's lamina, or, if this one is the newer, remount with it: " + remount
}

// daemonExe is ", the program PATH" the daemon pid runs, as /proc tells
// it: "" when it does not (another user's process, gone).
func daemonExe(pid int) string {
	if pid <= 0 {
		return ""
	}
	p, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return ""
	}
	if q, ok := strings.CutSuffix(p, " (deleted)"); ok {
		return fmt.Sprintf(", the program %s, replaced since the daemon started", q)
	}
	return ", the program " + p
}

type age int

const (
	unknownAge age = iota
	older
	newer
)

// daemonAge tells whether the daemon of h is an older or newer build
// than this one (its commit made at ownTime): by the protocol, which
// only grows, then by the time of the commits each was built from.
// Two builds of one commit (a modified tree) are not told apart.
func daemonAge(h catalogrpc.Hello, ownTime string) age {
	switch {
	case h.Build == "" || h.Protocol < catalogrpc.Protocol: // every build since Build says it
		return older
	case h.Protocol > catalogrpc.Protocol:
		return newer
	}
	theirs, err1 := time.Parse(time.RFC3339, h.BuildTime)
	ours, err2 := time.Parse(time.RFC3339, ownTime)
	switch {
	case err1 != nil || err2 != nil || theirs.Equal(ours):
		return unknownAge
	case theirs.Before(ours):
		return older
	}
	return newer
}

// commitTime is the time of the commit built, set by `make build`
// (-ldflags -X): Go stamps none with -buildvcs=false.
var commitTime string

// buildTime is the time of the commit this lamina was built from
// (vcs.time, else commitTime), "" when the build does not say.
var buildTime = sync.OnceValue(func() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.time" {
				return s.Value
			}
		}
	}
	if _, err := time.Parse(time.RFC3339, commitTime); err == nil {
		return commitTime
	}
	return ""
})

// dialDaemon dials the mount daemon of s and checks its build
// (checkDaemonBuild).
func dialDaemon(ctx context.Context, dirs instance.Dirs, s instance.Settings) (*catalogrpc.Client, error) {
	cl, err := catalogrpc.Dial(ctx, dirs.DaemonSocket(s), s.ID)
	if err != nil {
		return nil, err
	}
	checkDaemonBuild(cl, dirs, s)
	return cl, nil
}
