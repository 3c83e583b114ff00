package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/mountinfo"
)

// TestKeyArgPaths: every KEY argument takes a path into the instance's
// mount (keypath.go): absolute, through a symbolic link outside it, with
// @vN or .meta, and, with the current folder in the mount, ./NAME, ../NAME
// and a bare NAME from the current folder. A path into another instance's
// mount, or into none, is a usage error saying so; a bare key outside the
// mounts is the key it always was. `lamina show out.csv` in the mount's
// exp/ showed the key out.csv at the root.
func TestKeyArgPaths(t *testing.T) {
	e := newMntEnv(t)
	e.ok("save", e.file("o1.csv", []byte("one\n")), "--key", "exp/out.csv")
	e.ok("save", e.file("o2.csv", []byte("two\n")), "--key", "exp/out.csv")
	e.ok("save", e.file("root.csv", []byte("root\n")), "--key", "out.csv")
	e.ok("save", e.file("deep.csv", []byte("deep\n")), "--key", "exp/sub/deep.csv")
	e.ok("label", "create", "checked")
	// A second instance, mounted too.
	e.ok("init", "--storage", filepath.Join(e.dir, "storage2"), "--name", "other")
	e.ok("save", e.file("x.csv", []byte("x\n")), "--key", "x.csv")
	e.ok("use", "m")
	mnt, mnt2 := filepath.Join(e.dir, "lab"), filepath.Join(e.dir, "lab2")
	e.mount(mnt)
	e.mount(mnt2, "--instance", "other")
	exp := filepath.Join(mnt, "exp")
	link := filepath.Join(e.dir, "home", "lablink") // outside the mount, to it
	os.MkdirAll(filepath.Dir(link), 0o755)
	if err := os.Symlink(mnt, link); err != nil {
		t.Fatal(err)
	}
	rootUID := e.showVersion("out.csv").UID

	// shown runs show --format json in dir and returns key@vN.
	shown := func(dir, arg string) string {
		t.Helper()
		out, errs, code := e.runIn(dir, "show", arg, "--format", "json")
		if code != 0 {
			t.Errorf("in %s: lamina show %s: exit %d\n%s", dir, arg, code, errs)
			return ""
		}
		var v catalog.Version
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatal(err)
		}
		return v.Ref()
	}
	outside := e.dir
	for _, tc := range []struct{ dir, arg, want string }{
		{outside, filepath.Join(mnt, "exp/out.csv"), "exp/out.csv@v2"},
		{outside, filepath.Join(mnt, "exp/out.csv@v1"), "exp/out.csv@v1"},
		{outside, filepath.Join(mnt, "exp/out.csv.meta"), "exp/out.csv@v2"},
		{outside, filepath.Join(mnt, "exp/out.csv@v1.meta"), "exp/out.csv@v1"},
		{outside, filepath.Join(link, "exp/out.csv"), "exp/out.csv@v2"},
		{outside, mnt + "/exp/../out.csv", "out.csv@v1"},
		{outside, "out.csv", "out.csv@v1"},         // a key, as before
		{outside, "exp/out.csv", "exp/out.csv@v2"}, // a key, as before
		{exp, "./out.csv", "exp/out.csv@v2"},
		{exp, "out.csv", "exp/out.csv@v2"}, // not the root's out.csv
		{exp, "out.csv@v1", "exp/out.csv@v1"},
		{exp, "sub/deep.csv", "exp/sub/deep.csv@v1"},
		{exp, "../out.csv", "out.csv@v1"},
		{exp, rootUID, "out.csv@v1"}, // a uid stays a uid
		{filepath.Join(exp, "sub"), "../out.csv@v1", "exp/out.csv@v1"},
		{mnt, "out.csv", "out.csv@v1"},
		{mnt, "exp/out.csv", "exp/out.csv@v2"},
	} {
		if got := shown(tc.dir, tc.arg); got != tc.want {
			t.Errorf("in %s: lamina show %s: %s, want %s", tc.dir, tc.arg, got, tc.want)
		}
	}

	// The other commands that take a KEY.
	if out, errs, code := e.runIn(exp, "get", "out.csv@v1", "-o", "-"); code != 0 || out != "one\n" {
		t.Errorf("get out.csv@v1 in exp/: %q exit %d %s", out, code, errs)
	}
	if out, errs, code := e.runIn(exp, "lineage", "./out.csv@v1"); code != 0 || !strings.Contains(out, "exp/out.csv@v1") {
		t.Errorf("lineage ./out.csv@v1 in exp/: exit %d %s%s", code, out, errs)
	}
	if _, errs, code := e.runIn(exp, "annotate", "out.csv", "--label", "checked"); code != 0 {
		t.Errorf("annotate out.csv in exp/: exit %d %s", code, errs)
	}
	if out := e.ok("show", "exp/out.csv"); !strings.Contains(out, "checked") {
		t.Errorf("annotate out.csv in exp/ did not label exp/out.csv:\n%s", out)
	}
	if out := e.ok("show", "out.csv"); strings.Contains(out, "checked") {
		t.Errorf("annotate out.csv in exp/ labelled the root's out.csv:\n%s", out)
	}
	if out, errs, code := e.runIn(exp, "ls", "--versions", "out.csv"); code != 0 || !strings.Contains(out, "exp/out.csv") || strings.Count(out, "exp/out.csv") != 2 {
		t.Errorf("ls --versions out.csv in exp/: exit %d\n%s%s", code, out, errs)
	}
	if out, errs, code := e.runIn(filepath.Join(exp, "sub"), "ls", "."); code != 0 || !strings.Contains(out, "exp/sub/deep.csv") || strings.Contains(out, "exp/out.csv") {
		t.Errorf("ls . in exp/sub/: exit %d\n%s%s", code, out, errs)
	}
	// ls alone lists the current folder in the mount (it listed every
	// key), everything at its root and outside it.
	if out, errs, code := e.runIn(filepath.Join(exp, "sub"), "ls"); code != 0 || !strings.Contains(out, "exp/sub/deep.csv") || strings.Contains(out, "exp/out.csv") {
		t.Errorf("ls in exp/sub/: exit %d\n%s%s", code, out, errs)
	}
	for _, dir := range []string{mnt, outside} {
		if out, errs, code := e.runIn(dir, "ls"); code != 0 || !strings.Contains(out, "exp/sub/deep.csv") || !strings.Contains(out, "exp/out.csv") {
			t.Errorf("ls in %s: exit %d\n%s%s", dir, code, out, errs)
		}
	}
	// A symbolic link is said to be one, with its target (it was "no
	// artifact has key"), by path and by key.
	if err := os.Symlink("out.csv", filepath.Join(exp, "ln.csv")); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"show", filepath.Join(exp, "ln.csv")}, {"show", "exp/ln.csv"}, {"get", "exp/ln.csv", "-o", "-"}, {"lineage", "exp/ln.csv"}} {
		if _, errs, code := e.runIn(outside, args...); code != 2 || !strings.Contains(errs, "exp/ln.csv is a symbolic link to out.csv (key exp/out.csv), not an artifact") {
			t.Errorf("%s of a symbolic link: exit %d %s", strings.Join(args, " "), code, errs)
		}
	}
	// KEY@vN of a link, and delete of one, said "no artifact" (exit 4):
	// a link has no versions.
	for _, args := range [][]string{{"show", "exp/ln.csv@v1"}, {"get", "exp/ln.csv@v1", "-o", "-"}, {"lineage", "exp/ln.csv@v1"}, {"delete", "exp/ln.csv@v1"}} {
		if _, errs, code := e.runIn(outside, args...); code != 2 || !strings.Contains(errs, "exp/ln.csv@v1: exp/ln.csv is a symbolic link to out.csv (key exp/out.csv), not an artifact, and links have no versions") {
			t.Errorf("%s of a symbolic link: exit %d %s", strings.Join(args, " "), code, errs)
		}
	}
	if _, errs, code := e.runIn(outside, "delete", "exp/ln.csv"); code != 2 || !strings.Contains(errs, "exp/ln.csv is a symbolic link to out.csv (key exp/out.csv), not an artifact: `rm` in the mount removes it; nothing deleted") {
		t.Errorf("delete of a symbolic link: exit %d %s", code, errs)
	}
	if _, errs, code := e.runIn(outside, "delete", "exp/out.csv@v1"); code != 2 || !strings.Contains(errs, `"exp/out.csv@v1" names one version`) {
		t.Errorf("delete KEY@vN: exit %d %s", code, errs)
	}
	if out, errs, code := e.runIn(exp, "collection", "create", "both", "out.csv", "../out.csv"); code != 0 || !strings.Contains(out, "2 versions") {
		t.Errorf("collection create both out.csv ../out.csv in exp/: exit %d %s%s", code, out, errs)
	}
	if _, errs, code := e.runIn(exp, "delete", "sub/deep.csv.meta"); code != 2 || !strings.Contains(errs, "is a sidecar") {
		t.Errorf("delete of a sidecar's path: exit %d %s", code, errs)
	}
	if _, errs, code := e.runIn(exp, "delete", "sub/deep.csv"); code != 0 {
		t.Errorf("delete sub/deep.csv in exp/: exit %d %s", code, errs)
	}
	if out := e.ok("ls", "--trash"); !strings.Contains(out, "exp/sub/deep.csv") {
		t.Errorf("delete sub/deep.csv in exp/: the trash holds\n%s", out)
	}
	if _, errs, code := e.runIn(e.dir, "restore", filepath.Join(exp, "sub/deep.csv")); code != 0 {
		t.Errorf("restore PATH: exit %d %s", code, errs)
	}
	if got := shown(outside, "exp/sub/deep.csv"); got != "exp/sub/deep.csv@v1" {
		t.Errorf("after restore PATH: %s", got)
	}

	// Refused, exit 2 as other usage errors, saying why.
	for _, tc := range []struct {
		dir  string
		args []string
		want string
	}{
		{outside, []string{"show", filepath.Join(mnt2, "x.csv")}, `is in the mount of instance "other" at ` + mnt2 + `, not of "m": use --instance other`},
		{mnt2, []string{"show", "x.csv"}, `is in the mount of instance "other"`},
		{mnt2, []string{"delete", "./x.csv"}, `is in the mount of instance "other"`},
		{mnt2, []string{"ls", "--trash", "x"}, `is in the mount of instance "other"`},
		{mnt2, []string{"restore", "x.csv"}, `is in the mount of instance "other"`},
		{mnt2, []string{"annotate", "x.csv", "--label", "checked"}, `is in the mount of instance "other"`},
		{mnt2, []string{"collection", "create", "c", "x.csv"}, `is in the mount of instance "other"`},
		{outside, []string{"lineage", "/elsewhere/out.csv"}, `/elsewhere/out.csv is not in the mount of instance "m" (at ` + mnt + `)`},
		{outside, []string{"get", "./out.csv", "-o", "-"}, `is not in the mount of instance "m"`},
		{outside, []string{"show", mnt}, "is the root of the mount"},
	} {
		_, errs, code := e.runIn(tc.dir, tc.args...)
		if code != 2 || !strings.Contains(errs, tc.want) {
			t.Errorf("in %s: lamina %s: exit %d %q; want exit 2 saying %q", tc.dir, strings.Join(tc.args, " "), code, errs, tc.want)
		}
	}
	// The other instance's own path is its key.
	if out, errs, code := e.runIn(mnt2, "--instance", "other", "get", "x.csv", "-o", "-"); code != 0 || out != "x\n" {
		t.Errorf("--instance other get x.csv in its mount: %q exit %d %s", out, code, errs)
	}
	// A name the current folder does not hold says how it was read.
	if _, errs, code := e.runIn(exp, "show", "nothere.csv"); code == 0 || !strings.Contains(errs, "a path from the current folder: exp/nothere.csv") {
		t.Errorf("show nothere.csv in exp/: exit %d %s", code, errs)
	}
}

// TestKeyArgNoLookupInMount: a path in a lamina mount is mapped by name,
// never looked at (a hung daemon would hang the CLI): here the mount point
// has no such files, and the paths still resolve; outside it a symbolic
// link is followed.
func TestKeyArgNoLookupInMount(t *testing.T) {
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(dir, "mnt")
	os.Mkdir(mnt, 0o755)
	os.Symlink(mnt, filepath.Join(dir, "link"))
	kp := &keyPaths{name: "m", dev: "0:99", read: true, cwd: filepath.Join(mnt, "a"), mounts: []mountinfo.Mount{
		{Dir: "/", Root: "/", Source: "/dev/root", Type: "ext4", Dev: "8:1"},
		{Dir: mnt, Root: "/", Source: "lamina:m", Type: "fuse.lamina", Options: "rw,user_id=1", Dev: "0:99"},
		{Dir: filepath.Join(dir, "bind"), Root: "/a/b", Source: "lamina:m", Type: "fuse.lamina", Options: "rw,user_id=1", Dev: "0:99"},
	}}
	for _, tc := range []struct{ arg, want string }{
		{filepath.Join(mnt, "a/b/c.csv@v3"), "a/b/c.csv@v3"},
		{filepath.Join(dir, "link/a/../d.csv.meta"), "d.csv"},
		{filepath.Join(dir, "bind/c.csv"), "a/b/c.csv"},
		{"x/y.csv", "a/x/y.csv"},
		{"..", ""},
		{"./", "a/"},
	} {
		ka, err := kp.arg(tc.arg, true)
		if err != nil || ka.Spec != tc.want {
			t.Errorf("%s: %q %v, want %q", tc.arg, ka.Spec, err, tc.want)
		}
	}
}

// TestKeyArgPathPrefetch: cache prefetch takes a path into the mount too,
// through the mount's daemon.
func TestKeyArgPathPrefetch(t *testing.T) {
	e := newS3Env(t)
	e.ok("save", e.file("f.bin", []byte("prefetched\n")), "--key", "raw/f.bin")
	mnt := filepath.Join(e.dir, "lab")
	e.mount(mnt)
	e.ok("cache", "clear")
	if out := e.ok("cache", "prefetch", filepath.Join(mnt, "raw/f.bin@v1")); !strings.Contains(out, "raw/f.bin@v1:") {
		t.Errorf("cache prefetch PATH@v1 said %q", out)
	}
	if out, errs, code := e.runIn(filepath.Join(mnt, "raw"), "cache", "prefetch", "f.bin"); code != 0 || !strings.Contains(out, "raw/f.bin@v1:") {
		t.Errorf("cache prefetch f.bin in raw/: exit %d %s%s", code, out, errs)
	}
}

// TestKeyArgCurrentFolderGone: a folder that only its keys made vanishes
// with its last key while a shell sits in it, and getcwd fails there. A bare
// name given then fell back to a key from the root: `lamina delete
// --permanent out.csv` in proj/ deleted the live root out.csv for good. It
// is refused now, saying why.
func TestKeyArgCurrentFolderGone(t *testing.T) {
	e := newMntEnv(t)
	e.ok("save", e.file("root.csv", []byte("root\n")), "--key", "out.csv")
	e.ok("save", e.file("proj.csv", []byte("proj\n")), "--key", "proj/out.csv")
	mnt := filepath.Join(e.dir, "lab")
	e.mount(mnt)
	sh := exec.Command("sh", "-c", `cd "$1/proj" && "$2" delete out.csv && "$2" delete --permanent --yes out.csv`, "sh", mnt, e.bin)
	sh.Env = e.env
	out, err := sh.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "is gone from the mount") {
		t.Errorf("delete --permanent out.csv in a vanished proj/: %v\n%s", err, out)
	}
	if got := e.showVersion("out.csv").Ref(); got != "out.csv@v1" {
		t.Errorf("the root's out.csv: %s", got)
	}
	if tr := e.ok("ls", "--trash"); !strings.Contains(tr, "proj/out.csv") {
		t.Errorf("proj/out.csv not in the trash:\n%s", tr)
	}
}

// TestKeyArgOtherHomesMountOfTheName: with this home's instance m not
// mounted, a path in another home's mount of an instance also named m was
// taken as this one's (any of the user's mounts of the name): `lamina
// delete q.csv` there trashed this home's exp/q.csv.
func TestKeyArgOtherHomesMountOfTheName(t *testing.T) {
	e, o := newMntEnv(t), newMntEnv(t)
	e.ok("save", e.file("q.csv", []byte("mine\n")), "--key", "exp/q.csv")
	o.ok("save", o.file("q.csv", []byte("theirs\n")), "--key", "exp/q.csv")
	mnt := filepath.Join(o.dir, "lab")
	o.mount(mnt)
	if _, errs, code := e.runIn(filepath.Join(mnt, "exp"), "delete", "q.csv"); code != 2 || !strings.Contains(errs, "not this one's") {
		t.Errorf("delete q.csv in another home's mount of m: exit %d %s", code, errs)
	}
	if got := e.showVersion("exp/q.csv").Ref(); got != "exp/q.csv@v1" {
		t.Errorf("this home's exp/q.csv: %s", got)
	}
}

// TestKeyArgStoppedDaemonFromPATH: lamina run through PATH with the current
// folder in the mount looked "lamina" up there (urfave/cli stats
// os.Args[0] for its Compiled time), and hung on a stopped daemon; it
// says the daemon is stopped, as with an absolute argv0.
func TestKeyArgStoppedDaemonFromPATH(t *testing.T) {
	e := newMntEnv(t)
	e.ok("save", e.file("q.csv", []byte("q\n")), "--key", "exp/q.csv")
	mnt := filepath.Join(e.dir, "lab")
	e.mount(mnt)
	// argv0 "lamina", as a shell found through PATH gives it.
	sh := startWaitingShell(t, e, filepath.Join(mnt, "exp"), `exec -a lamina "$0" show ./q.csv`)
	pid := e.daemonPID("m")
	syscall.Kill(pid, syscall.SIGSTOP)
	defer syscall.Kill(pid, syscall.SIGCONT)
	waitStopped(t, pid)
	out, err := sh.run()
	if err == nil || !strings.Contains(out, "is stopped") {
		t.Errorf("lamina show ./q.csv through PATH in a stopped daemon's mount: %v\n%s", err, out)
	}
}

// TestKeyArgCurrentFolderOnDetachedMount: a shell in the mount when its
// daemon died, after the stale mount was cleared and the instance mounted
// again, sits in a folder of the detached mount: getcwd fails, and /proc
// names the folder from the detached mount's root ("/t", no "(deleted)").
// A bare name there was a key from the root again: `delete --permanent
// x.txt` in t/ deleted the live x.txt.
func TestKeyArgCurrentFolderOnDetachedMount(t *testing.T) {
	e := newMntEnv(t)
	e.ok("save", e.file("root.txt", []byte("root\n")), "--key", "x.txt")
	e.ok("save", e.file("t.txt", []byte("t\n")), "--key", "t/x.txt")
	mnt := filepath.Join(e.dir, "lab")
	e.mount(mnt)
	sh := startWaitingShell(t, e, filepath.Join(mnt, "t"), `"$0" delete --permanent --yes x.txt`)
	e.killDaemon("m")
	e.run("umount", mnt) // clears the stale mount, detaching it under the shell
	e.mount(mnt)
	out, err := sh.run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(out, "gone from the mount") {
		t.Errorf("delete --permanent x.txt in t/ of a detached mount: %v\n%s", err, out)
	}
	if got := e.showVersion("x.txt").Ref(); got != "x.txt@v1" {
		t.Errorf("the root's x.txt: %s", got)
	}
}

// TestKeyArgOtherRuntimeDir: a CLI with another XDG_RUNTIME_DIR than the
// daemon's (cron, sudo -u, another login) found no mount.json, took the
// instance's own mount for another home's and refused paths into it;
// status finds the daemon through the socket link, and so does it now.
func TestKeyArgOtherRuntimeDir(t *testing.T) {
	e := newMntEnv(t)
	e.ok("save", e.file("f1.txt", []byte("f1\n")), "--key", "t/f1.txt")
	mnt := filepath.Join(e.dir, "lab")
	e.mount(mnt)
	cmd := exec.Command(e.bin, "show", "f1.txt", "--format", "json")
	cmd.Env = append(slices.Clone(e.env), "XDG_RUNTIME_DIR="+t.TempDir())
	cmd.Dir = filepath.Join(mnt, "t")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"key": "t/f1.txt"`) {
		t.Errorf("show f1.txt in t/ with another runtime folder: %v\n%s", err, out)
	}
}

// waitingShell is a bash in dir (in a mount) that has entered it and
// waits for go before it runs script: what the test does to the mount
// meanwhile (stop or kill its daemon) must not reach the test process,
// whose exec stats cmd.Dir. $0 in script is the lamina binary.
type waitingShell struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out strings.Builder
}

func startWaitingShell(t *testing.T, e *mntEnv, dir, script string) *waitingShell {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // a bound on a hang, not a timing
	t.Cleanup(cancel)
	ready := filepath.Join(t.TempDir(), "ready") // outside the mount
	w := &waitingShell{}
	w.cmd = exec.CommandContext(ctx, "bash", "-c", `: > "$1"; read go; `+script, e.bin, ready)
	w.cmd.Env, w.cmd.Dir = e.env, dir
	in, err := w.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	w.in = in
	w.cmd.Stdout, w.cmd.Stderr = &w.out, &w.out
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(ready); err == nil {
			break // bash is past its start, which looks at its folder
		}
	}
	return w
}

// run lets the shell go on and waits for it (a hang ends at the bound,
// killed: an error, and not the output a test wants).
func (w *waitingShell) run() (string, error) {
	w.in.Write([]byte("go\n"))
	err := w.cmd.Wait()
	return w.out.String(), err
}
