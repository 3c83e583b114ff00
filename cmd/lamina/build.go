package main

import (
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
// that the mount runs another build and how to restart it; nil if they
// match.
func daemonBuildError(h catalogrpc.Hello, own string, dirs instance.Dirs, s instance.Settings) error {
	if h.Build == own {
		return nil
	}
	daemon := h.Build
	if daemon == "" {
		daemon = "an older build, which does not say which"
	}
	dir := "DIR"
	if st, err := readState(dirs, s.Name); err == nil && st.Mountpoint != "" {
		dir = st.Mountpoint
	}
	return fmt.Errorf("the mount daemon of instance %q (pid %d) runs another lamina build (%s; this lamina is %s): it could drop what it does not know of a write, so writes are refused; run `lamina umount %s && lamina mount %s`",
		s.Name, h.PID, daemon, own, dir, dir)
}

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
