package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	lfs "github.com/lamina-bio/lamina/fs"
)

// The mount tests run the built binary: `lamina mount` re-executes itself
// as a daemon.
var (
	mntBinOnce sync.Once
	mntBin     string
	mntBinErr  error
)

func mntBinary(t testing.TB) string {
	t.Helper()
	mntBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "lamina-bin")
		if err != nil {
			mntBinErr = err
			return
		}
		mntBin = filepath.Join(dir, "lamina")
		out, err := exec.Command("go", "build", "-o", mntBin, ".").CombinedOutput()
		if err != nil {
			mntBinErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if mntBinErr != nil {
		t.Fatal(mntBinErr)
	}
	return mntBin
}

// mntEnv is an isolated user with an instance and the built binary.
type mntEnv struct {
	t   testing.TB
	dir string
	bin string
	env []string
}

func newMntEnv(t testing.TB) *mntEnv {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		if os.Getenv("LAMINA_SKIP_FUSE") == "1" {
			t.Skip("no /dev/fuse and LAMINA_SKIP_FUSE=1")
		}
		t.Fatal("no /dev/fuse: the mount tests need FUSE (LAMINA_SKIP_FUSE=1 skips them)")
	}
	dir := t.TempDir()
	e := &mntEnv{t: t, dir: dir, bin: mntBinary(t)}
	e.env = append(os.Environ(), "HOME="+dir+"/home", "XDG_CONFIG_HOME="+dir+"/cfg", "XDG_DATA_HOME="+dir+"/data",
		"XDG_CACHE_HOME="+dir+"/cache", "XDG_RUNTIME_DIR="+dir+"/run", "LAMINA_INSTANCE=")
	e.ok("init", "--storage", dir+"/storage", "--name", "m")
	return e
}

func (e *mntEnv) run(args ...string) (string, string, error) {
	cmd := exec.Command(e.bin, args...)
	cmd.Env = e.env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

func (e *mntEnv) ok(args ...string) string {
	e.t.Helper()
	out, errs, err := e.run(args...)
	if err != nil {
		e.t.Fatalf("lamina %s: %v\n%s", strings.Join(args, " "), err, errs)
	}
	return out
}

func (e *mntEnv) fails(want string, args ...string) {
	e.t.Helper()
	_, errs, err := e.run(args...)
	if err == nil || !strings.Contains(errs, want) {
		e.t.Fatalf("lamina %s: %v %q; want an error saying %q", strings.Join(args, " "), err, errs, want)
	}
}

func (e *mntEnv) file(name string, data []byte) string {
	p := filepath.Join(e.dir, "src", name)
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		e.t.Fatal(err)
	}
	return p
}

// notMounted runs `lamina status ARGS…`, which must exit
// exitNotMounted, and returns what it printed.
func (e *mntEnv) notMounted(args ...string) string {
	e.t.Helper()
	out, errs, err := e.run(append([]string{"status"}, args...)...)
	if codeOf(err) != exitNotMounted {
		e.t.Fatalf("lamina status %s: exit %d (%v), want %d (not mounted)\n%s%s", strings.Join(args, " "), codeOf(err), err, exitNotMounted, out, errs)
	}
	return out
}

func (e *mntEnv) mount(dir string, args ...string) {
	e.t.Helper()
	os.MkdirAll(dir, 0o755)
	e.ok(append(append([]string{"mount"}, args...), dir)...)
	e.t.Cleanup(func() {
		e.run("umount", dir)
		if _, ok := lfs.MountInfo(dir); ok {
			lfs.ForceUnmount(dir)
		}
		if e.t.Failed() { // the daemon's side of a failure
			logs, _ := filepath.Glob(filepath.Join(e.dir, "run", "lamina", "*", "mount.log"))
			for _, p := range logs {
				b, _ := os.ReadFile(p)
				e.t.Logf("%s:\n%s", p, b)
			}
		}
	})
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMountEndToEnd(t *testing.T) {
	e := newMntEnv(t)
	data := make([]byte, 3<<20)
	rand.Read(data)
	e.ok("save", e.file("b1.csv", []byte("a,b\n1,2\n")), "--key", "experiments/batch1.csv")
	e.ok("save", e.file("b1.csv", data), "--key", "experiments/batch1.csv")
	mnt := filepath.Join(e.dir, "lab")
	e.mount(mnt)

	// Latest and @v1 are byte-equal to lamina get.
	for _, spec := range []string{"experiments/batch1.csv", "experiments/batch1.csv@v1"} {
		got := mustRead(t, filepath.Join(mnt, spec))
		want := e.ok("get", spec, "-o", "-")
		if !bytes.Equal(got, []byte(want)) {
			t.Fatalf("%s: mount and get differ (%d vs %d bytes)", spec, len(got), len(want))
		}
	}
	// The sidecar is what show prints, lineage included.
	var side, show map[string]any
	json.Unmarshal(mustRead(t, filepath.Join(mnt, "experiments/batch1.csv@v1.meta")), &side)
	json.Unmarshal([]byte(e.ok("show", "experiments/batch1.csv@v1", "--format", "json")), &show)
	if _, ok := side["lineage"]; !ok {
		t.Fatalf("sidecar has no lineage: %v", side)
	}
	if a, b := mustJSON(side), mustJSON(show); a != b {
		t.Fatalf("sidecar %s\nshow    %s", a, b)
	}

	// The CLI works while mounted, and the mount shows its changes at once.
	if out := e.ok("ls"); !strings.Contains(out, "experiments/batch1.csv") {
		t.Fatalf("ls while mounted: %s", out)
	}
	os.ReadFile(filepath.Join(mnt, "experiments/new.csv")) // a cached "no such file"
	e.ok("save", e.file("new.csv", []byte("new")), "--key", "experiments/new.csv")
	if got := string(mustRead(t, filepath.Join(mnt, "experiments/new.csv"))); got != "new" {
		t.Fatalf("new key in the mount: %q", got)
	}
	e.ok("save", e.file("b1.csv", []byte("third")), "--key", "experiments/batch1.csv")
	if got := string(mustRead(t, filepath.Join(mnt, "experiments/batch1.csv"))); got != "third" {
		t.Fatalf("latest after a save while mounted: %q", got)
	}
	e.ok("delete", "experiments/new.csv")
	if _, err := os.Stat(filepath.Join(mnt, "experiments/new.csv")); !os.IsNotExist(err) {
		t.Fatalf("deleted key still in the mount: %v", err)
	}
	e.ok("restore", "experiments/new.csv")
	if _, err := os.Stat(filepath.Join(mnt, "experiments/new.csv")); err != nil {
		t.Fatalf("restored key not in the mount: %v", err)
	}
	if out := e.ok("status"); !strings.Contains(out, mnt) || !strings.Contains(out, "chunk cache") ||
		!strings.Contains(out, "opens to read") {
		t.Fatalf("status: %s", out) // opens, each counted; it said "files opened to read"
	}
	sock := filepath.Join(e.dir, "run", "lamina", "m", "catalog.sock")
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket %v %v", fi, err)
	}

	// Error cases.
	e.fails("already mounted", "mount", mnt)
	other := filepath.Join(e.dir, "other")
	os.Mkdir(other, 0o755)
	e.fails("already mounted at "+mnt, "mount", other)
	// With another runtime folder the daemon is found through the data
	// folder's socket link, and the refusal named no mountpoint (audit a1).
	runtime := e.env
	e.env = append(slices.Clone(e.env), "XDG_RUNTIME_DIR="+e.dir+"/run2")
	e.fails("already mounted at "+mnt+" (daemon pid", "mount", other)
	e.env = runtime
	e.fails("does not exist", "mount", filepath.Join(e.dir, "nope"))
	full := filepath.Join(e.dir, "full")
	os.Mkdir(full, 0o755)
	os.WriteFile(filepath.Join(full, "x"), nil, 0o644)
	e.fails("not empty", "mount", full)
	e.fails("is not mounted", "umount", other)

	// SIGKILL of the daemon leaves a stale mount: mount says so, umount
	// clears it, and mounting again works.
	e.killDaemon("m")
	e.fails("stale mount", "mount", mnt)
	e.fails("is gone", "status")
	statusJSONBroken(t, e, mnt, "is gone")
	if out := e.ok("ls"); !strings.Contains(out, "batch1.csv") { // the CLI opens the catalog itself again
		t.Fatalf("ls after the daemon died: %s", out)
	}
	if out := e.ok("umount", mnt); !strings.Contains(out, "stale") {
		t.Fatalf("umount of a stale mount: %s", out)
	}
	e.ok("mount", mnt)
	if got := string(mustRead(t, filepath.Join(mnt, "experiments/batch1.csv"))); got != "third" {
		t.Fatalf("after remount: %q", got)
	}
	// The killed daemon's log lines stay: the next daemon appends.
	if log := string(mustRead(t, filepath.Join(e.dir, "run", "lamina", "m", "mount.log"))); strings.Count(log, "msg=mounted") < 2 {
		t.Fatalf("mount.log after a remount has the lines of one daemon:\n%s", log)
	}

	// umount from a shell whose runtime folder does not know the daemon (another
	// XDG_RUNTIME_DIR): the mount is live, not stale; umount finds the daemon
	// through its socket link, and it commits what it was given and stops.
	if err := os.WriteFile(filepath.Join(mnt, "experiments/late.csv"), []byte("late"), 0o644); err != nil {
		t.Fatal(err)
	}
	pid := e.daemonPID("m")
	elsewhere := exec.Command(e.bin, "umount", mnt)
	elsewhere.Env = append(slices.Clone(e.env), "XDG_RUNTIME_DIR="+t.TempDir())
	out, err := elsewhere.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "unmounted "+mnt) || strings.Contains(string(out), "died") {
		t.Fatalf("umount of a live mount unknown to this runtime folder: %v: %s", err, out)
	}
	waitExit(t, pid, "the daemon did not stop after its mount went")
	e.ok("mount", mnt)
	if got := string(mustRead(t, filepath.Join(mnt, "experiments/late.csv"))); got != "late" {
		t.Fatalf("a file written before the foreign umount: %q", got)
	}

	// A hung daemon (stopped) does not answer: the foreign umount detaches the
	// mount within its 2 s wait instead of hanging with it.
	pid = e.daemonPID("m")
	syscall.Kill(pid, syscall.SIGSTOP)
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGCONT) }) // a failure below left it stopped for good
	// kill returns before every thread has stopped: one still running
	// could take umount's request off /dev/fuse, and a request the daemon
	// took waits for its answer past SIGKILL (the kernel's rule), so umount
	// could not even exit. Wait until all of them are stopped.
	waitStopped(t, pid)
	// A process using the mount meanwhile waits for the daemon; clearing
	// the stale mount frees it (the connection is aborted), where a
	// detached mount kept it waiting until the daemon ran again.
	waiter := exec.Command("stat", filepath.Join(mnt, "nothing-here"))
	if err := waiter.Start(); err != nil {
		t.Fatal(err)
	}
	waiterDone := make(chan struct{})
	go func() { waiter.Wait(); close(waiterDone) }()
	// --force: a daemon alive but stopped is not taken for a dead one
	// without it (TestStoppedDaemon).
	hung := exec.Command(e.bin, "umount", "--force", mnt)
	hung.Env = append(slices.Clone(e.env), "XDG_RUNTIME_DIR="+t.TempDir())
	done := make(chan error, 1)
	var hungOut []byte
	go func() { var err error; hungOut, err = hung.CombinedOutput(); done <- err }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("umount of a hung mount: %v: %s", err, hungOut)
		}
	case <-time.After(60 * time.Second):
		syscall.Kill(pid, syscall.SIGCONT)
		t.Fatal("umount of a mount whose daemon is stopped hung")
	}
	if _, still := lfs.MountInfo(mnt); still {
		t.Fatalf("still mounted after the umount of a hung daemon: %s", hungOut)
	}
	select {
	case <-waiterDone:
	case <-time.After(30 * time.Second):
		syscall.Kill(pid, syscall.SIGCONT)
		t.Fatal("a process waiting on the hung mount still waits after umount cleared it")
	}
	syscall.Kill(pid, syscall.SIGCONT)
	waitExit(t, pid, "the resumed daemon did not stop after its mount went")
	e.ok("mount", mnt)
	e.ok("umount", mnt)
	if _, ok := lfs.MountInfo(mnt); ok {
		t.Fatal("still mounted after umount")
	}
	if out := e.notMounted(); !strings.Contains(out, "not mounted") {
		t.Fatalf("status after umount: %s", out)
	}
}

// TestStatusExitNotMounted: `lamina status` of an instance that is not
// mounted said so and exited 0, as for a mount: a script could not tell
// them apart but by parsing. It exits exitNotMounted (3), with --format
// json too.
func TestStatusExitNotMounted(t *testing.T) {
	e := newMntEnv(t)
	if out := e.notMounted(); out != "instance m is not mounted\n" {
		t.Errorf("status: %q", out)
	}
	if out := e.notMounted("--format", "json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("status --format json: %q", out)
	}
	mnt := filepath.Join(e.dir, "mnt")
	e.mount(mnt)
	for _, args := range [][]string{{"status"}, {"status", "--format", "json"}} {
		if out, errs, err := e.run(args...); err != nil || !strings.Contains(out, mnt) {
			t.Errorf("lamina %s of a mount: exit %d (%v)\n%s%s", strings.Join(args, " "), codeOf(err), err, out, errs)
		}
	}
	e.ok("umount", mnt)
	e.notMounted()
	out, _, _ := e.run("status", "--help")
	if !strings.Contains(out, "0 mounted; 3 not mounted") {
		t.Errorf("status --help says nothing of the exit status:\n%s", out)
	}
}

func TestMountSignals(t *testing.T) {
	e := newMntEnv(t)
	e.ok("save", e.file("a", []byte("a")), "--key", "k/a")
	mnt := filepath.Join(e.dir, "fg")
	os.Mkdir(mnt, 0o755)
	// SIGHUP: the terminal of a --foreground mount went away (it killed
	// the daemon and left a dead mount).
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP} {
		cmd := exec.Command(e.bin, "mount", "--foreground", "--show-meta", mnt)
		cmd.Env = e.env
		var errb bytes.Buffer
		cmd.Stderr = &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		ok := false
		for deadline := time.Now().Add(60 * time.Second); !ok && time.Now().Before(deadline); {
			time.Sleep(25 * time.Millisecond)
			ents, _ := os.ReadDir(filepath.Join(mnt, "k"))
			ok = len(ents) == 2 // a and a.meta
		}
		if !ok {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("foreground mount never showed k/a and k/a.meta: %s", errb.String())
		}
		cmd.Process.Signal(sig)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("%v: daemon exited with %v: %s", sig, err, errb.String())
		}
		if _, mounted := lfs.MountInfo(mnt); mounted {
			lfs.ForceUnmount(mnt)
			t.Fatalf("%v left the mount in place", sig)
		}
	}

	// The background daemon has no terminal: a stray SIGHUP changes nothing.
	e.mount(mnt)
	pid := e.daemonPID("m")
	syscall.Kill(pid, syscall.SIGHUP)
	time.Sleep(300 * time.Millisecond)
	// The read needs the daemon to run, and so to have taken the signal.
	if got := string(mustRead(t, filepath.Join(mnt, "k", "a"))); got != "a" {
		t.Fatalf("read after SIGHUP: %q", got)
	}
	if !processAlive(pid) {
		t.Fatal("SIGHUP killed the background mount daemon")
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestMountKilledBeforeSync: files closed through the mount are committed at
// once and made durable later (stage.Options.SyncEvery); a daemon killed in
// between loses nothing and duplicates nothing when mounted again.
func TestMountKilledBeforeSync(t *testing.T) {
	e := newMntEnv(t)
	mnt := filepath.Join(e.dir, "mnt")
	e.mount(mnt)
	os.MkdirAll(filepath.Join(mnt, "out"), 0o755)
	for i := 0; i < 20; i++ {
		if err := os.WriteFile(filepath.Join(mnt, "out", fmt.Sprintf("f%02d.txt", i)), []byte(fmt.Sprint("content ", i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	e.killDaemon("m")
	e.ok("umount", mnt)
	e.ok("mount", mnt)
	for i := 0; i < 20; i++ {
		name := fmt.Sprintf("out/f%02d.txt", i)
		if got := string(mustRead(t, filepath.Join(mnt, name))); got != fmt.Sprint("content ", i) {
			t.Fatalf("%s after the restart: %q", name, got)
		}
		if _, err := os.Stat(filepath.Join(mnt, name+"@v2")); err == nil {
			t.Fatalf("%s: the restart made a second version", name)
		}
	}
	if n := stagedFiles(t, filepath.Join(e.dir, "data", "lamina", "m", "staging")); n != 0 {
		t.Fatalf("staging holds %d files after the restart", n)
	}
	if _, err := os.Stat(filepath.Join(mnt, "lost+found")); err == nil {
		t.Fatal("lost+found after a kill with intact content")
	}
}

// killDaemon sends SIGKILL to the mount daemon of instance name and waits
// (up to 30 s) until it is gone, leaving its mount stale.
func (e *mntEnv) killDaemon(name string) {
	e.t.Helper()
	pid := e.daemonPID(name)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		e.t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); processAlive(pid) && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if processAlive(pid) {
		// A daemon thread stuck in the kernel keeps /dev/fuse open, and the
		// processes using the mount wait for it for good: say where it is
		// stuck, and free them, rather than hang the test run.
		var b strings.Builder
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
		for _, task := range tasks {
			stat, _ := os.ReadFile(task + "/stat")
			stack, _ := os.ReadFile(task + "/stack")
			fmt.Fprintf(&b, "%s\n%s\n", strings.TrimSpace(string(stat)), stack)
		}
		e.abortMounts()
		e.t.Fatalf("the daemon (pid %d) did not die within 30 s of SIGKILL; its threads:\n%s", pid, b.String())
	}
}

// abortMounts aborts the FUSE connections of the mounts under the test's
// folder.
func (e *mntEnv) abortMounts() {
	const conns = "/sys/fs/fuse/connections"
	if ents, _ := os.ReadDir(conns); len(ents) == 0 {
		syscall.Mount("fusectl", conns, "fusectl", 0, "") // not mounted on every machine
	}
	b, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || !strings.HasPrefix(f[4], e.dir) {
			continue
		}
		if _, minor, ok := strings.Cut(f[2], ":"); ok {
			os.WriteFile(conns+"/"+minor+"/abort", []byte("1"), 0)
		}
	}
}

// daemonPID is the pid in the state file of instance name's mount daemon.
func (e *mntEnv) daemonPID(name string) int {
	e.t.Helper()
	b, err := os.ReadFile(filepath.Join(e.dir, "run", "lamina", name, "mount.json"))
	if err != nil {
		e.t.Fatal(err)
	}
	var st struct{ PID int }
	if err := json.Unmarshal(b, &st); err != nil {
		e.t.Fatal(err)
	}
	return st.PID
}

// stagedFiles counts the files in a staging folder but the emptied ones the
// stage keeps for reuse ("spare-…", which must be empty).
func stagedFiles(t *testing.T, dir string) int {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	n := 0
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "spare-") {
			n++
		} else if info, err := e.Info(); err != nil || info.Size() != 0 {
			t.Fatalf("spare %s holds bytes (%v)", e.Name(), err)
		}
	}
	return n
}

// The storage records of versions written through a mount reach storage
// while it is mounted (the storage root must be able to rebuild the
// catalog's records), not only at umount.
func TestMountWritesRecordsWhileMounted(t *testing.T) {
	e := newMntEnv(t)
	e.env = append(e.env, "LAMINA_RECORDS_EVERY=200ms")
	mnt := filepath.Join(e.dir, "lab")
	e.mount(mnt)
	if err := os.WriteFile(filepath.Join(mnt, "notes.txt"), []byte("written through the mount\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var v struct{ UID string }
	if err := json.Unmarshal([]byte(e.ok("show", "notes.txt", "--format", "json")), &v); err != nil || v.UID == "" {
		t.Fatalf("show: %v", err)
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		recs, _ := filepath.Glob(filepath.Join(e.dir, "storage", "records", "*.json"))
		written := false
		for _, p := range recs {
			b, _ := os.ReadFile(p)
			written = written || bytes.Contains(b, []byte(v.UID))
		}
		status := e.ok("status", "--format", "json")
		if written && strings.Contains(status, `"pending_records": 0`) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("while mounted: record of %s written %v (%d record objects); status:\n%s", v.UID, written, len(recs), status)
		}
	}
}

// A file still open for writing when the daemon is killed comes back under
// lost+found/, and a plain listing walk of the new mount shows it.
func TestLostAndFoundListed(t *testing.T) {
	e := newMntEnv(t)
	mnt := filepath.Join(e.dir, "lab")
	e.mount(mnt)
	os.MkdirAll(filepath.Join(mnt, "k"), 0o755)
	f, err := os.Create(filepath.Join(mnt, "k", "half.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(bytes.Repeat([]byte("x"), 8<<20)); err != nil {
		t.Fatal(err)
	}
	e.killDaemon("m")
	f.Close()
	e.ok("umount", mnt)
	e.ok("mount", mnt)
	var found []string
	filepath.WalkDir(filepath.Join(mnt, "lost+found"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			found = append(found, p)
		}
		return nil
	})
	if len(found) != 1 || !strings.HasSuffix(found[0], "/k/half.bin") {
		t.Fatalf("lost+found walked: %v; lamina ls says:\n%s", found, e.ok("ls", "lost+found/"))
	}
}

// waitStopped waits up to 60 s until every thread of process pid, sent
// SIGSTOP, is stopped, failing the test otherwise.
func waitStopped(t *testing.T, pid int) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); !allStopped(pid); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d is not stopped 60 s after SIGSTOP", pid)
		}
	}
}

// allStopped reports whether every thread of process pid is stopped
// (state T in /proc/PID/task/TID/stat).
func allStopped(pid int) bool {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil || len(tasks) == 0 {
		return false
	}
	for _, tk := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, tk.Name()))
		if err != nil {
			return false
		}
		// pid (comm) STATE ...: comm may hold spaces, the state follows the last ')'.
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 || i+2 >= len(b) || (b[i+2] != 'T' && b[i+2] != 't') {
			return false
		}
	}
	return true
}

// After a kill -9 of the daemon, a mount of the instance at another folder
// clears the stale one (it stayed, answering "transport endpoint is not
// connected", and status showed only the new mount); status names a stale
// mount of the instance that no state file records.
func TestMountClearsStaleMountElsewhere(t *testing.T) {
	e := newMntEnv(t)
	lab, lab2 := filepath.Join(e.dir, "lab"), filepath.Join(e.dir, "lab2")
	e.mount(lab)
	e.killDaemon("m")
	os.Remove(filepath.Join(e.dir, "run", "lamina", "m", "mount.json")) // what no state file records
	if out, _, err := e.run("status"); err == nil || !strings.Contains(out, "stale mount at "+lab) {
		t.Errorf("status with a stale mount and no state file: %v (want exit 1)\n%s", err, out)
	}
	os.MkdirAll(lab2, 0o755)
	out, errs, err := e.run("mount", lab2)
	if err != nil {
		t.Fatalf("mount at another folder: %v\n%s", err, errs)
	}
	t.Cleanup(func() { e.run("umount", lab2) })
	if !strings.Contains(errs, "cleared the stale mount of m at "+lab) {
		t.Errorf("mount did not say it cleared %s: %s%s", lab, out, errs)
	}
	if mi, ok := lfs.MountInfo(lab); ok {
		t.Errorf("%s is still mounted: %+v", lab, mi)
	}
	if out := e.ok("status"); strings.Contains(out, "stale") || !strings.Contains(out, lab2) {
		t.Errorf("status after the new mount:\n%s", out)
	}
}

// A CLI whose XDG_RUNTIME_DIR differs from the daemon's (cron, sudo,
// another login) or is unset still finds the running mount: the daemon
// links its socket from the instance's data folder. status names the
// mount, ls answers at once (it waited a minute for the catalog's lock),
// and the link goes with the daemon.
func TestMountFoundFromAnotherRuntimeDir(t *testing.T) {
	e := newMntEnv(t)
	e.ok("save", e.file("a.csv", []byte("a\n")), "--key", "x/a.csv")
	// The other runtime folder holds the socket a killed daemon left there
	// before this mount: the newer link wins over it.
	other := t.TempDir()
	os.MkdirAll(filepath.Join(other, "lamina", "m"), 0o700)
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(other, "lamina", "m", "catalog.sock"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()
	time.Sleep(20 * time.Millisecond)
	mnt := filepath.Join(e.dir, "lab")
	e.mount(mnt)
	link := filepath.Join(e.dir, "data", "lamina", "m", "daemon.sock")
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("no link to the socket: %v %v", fi, err)
	}
	sock := filepath.Join(e.dir, "run", "lamina", "m", "catalog.sock")
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket %v %v", fi, err)
	}
	for name, env := range map[string][]string{
		"another": append(slices.Clone(e.env), "XDG_RUNTIME_DIR="+other),
		"unset":   slices.DeleteFunc(slices.Clone(e.env), func(v string) bool { return strings.HasPrefix(v, "XDG_RUNTIME_DIR=") }),
	} {
		run := func(args ...string) (string, error) {
			cmd := exec.Command(e.bin, args...)
			cmd.Env = env
			out, err := cmd.CombinedOutput()
			return string(out), err
		}
		if out, err := run("status"); err != nil || !strings.Contains(out, mnt) {
			t.Errorf("%s XDG_RUNTIME_DIR: status: %v\n%s", name, err, out)
		}
		start := time.Now()
		if out, err := run("ls", "x/"); err != nil || !strings.Contains(out, "x/a.csv") || time.Since(start) > 30*time.Second {
			t.Errorf("%s XDG_RUNTIME_DIR: ls in %s: %v\n%s", name, time.Since(start), err, out)
		}
	}
	e.ok("umount", mnt)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if _, err := os.Lstat(link); err != nil {
			return
		}
	}
	t.Errorf("the link to the socket outlived the daemon")
}

// A path under the running mount names its key in show, get, annotate and
// lineage: `lamina show ~/lab/experiments/batch1.csv` was a bad key.
func TestMountPathAsKey(t *testing.T) {
	e := newMntEnv(t)
	e.ok("save", e.file("a.csv", []byte("a\n")), "--key", "x/a.csv")
	mnt := filepath.Join(e.dir, "lab")
	e.mount(mnt)
	p := filepath.Join(mnt, "x", "a.csv")
	if out := e.ok("show", p); !strings.Contains(out, "x/a.csv") {
		t.Errorf("show PATH: %s", out)
	}
	if out := e.ok("get", p+"@v1", "-o", "-"); out != "a\n" {
		t.Errorf("get PATH@v1: %q", out)
	}
	e.ok("lineage", p)
	// outside the mount it is a usage error that says so (keypath_test.go)
	_, errs, err := e.run("lineage", "/elsewhere/a.csv")
	if err == nil || !strings.Contains(errs, "is not in the mount of instance") {
		t.Errorf("lineage of a path outside the mount: %v %q", err, errs)
	} else if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Errorf("lineage of a path outside the mount: %v", err)
	}
}

// A stopped daemon (SIGSTOP) is not "died": status says it is stopped and
// how to go on, and exits 1; a command that opens the catalog says so at
// once instead of waiting a minute for the catalog's lock.
func TestStoppedDaemon(t *testing.T) {
	e := newMntEnv(t)
	mnt := filepath.Join(e.dir, "lab")
	e.mount(mnt)
	pid := e.daemonPID("m")
	syscall.Kill(pid, syscall.SIGSTOP)
	defer syscall.Kill(pid, syscall.SIGCONT)
	waitStopped(t, pid)
	if _, errs, err := e.run("status"); err == nil || !strings.Contains(errs, "is stopped") || !strings.Contains(errs, "kill -CONT") {
		t.Fatalf("status of a stopped daemon: %v %q", err, errs)
	}
	statusJSONBroken(t, e, mnt, "is stopped")
	start := time.Now()
	if _, errs, err := e.run("ls"); err == nil || !strings.Contains(errs, "is stopped") || time.Since(start) > 30*time.Second {
		t.Fatalf("ls with a stopped daemon, in %s: %v %q", time.Since(start), err, errs)
	}
	// Neither umount from a shell whose runtime folder does not know the
	// daemon nor a mount elsewhere takes the stopped daemon's mount for a
	// stale one: they detached it, and its writers lost what they had not
	// closed.
	elsewhere := exec.Command(e.bin, "umount", mnt)
	elsewhere.Env = append(slices.Clone(e.env), "XDG_RUNTIME_DIR="+t.TempDir())
	if out, err := elsewhere.CombinedOutput(); err == nil || !strings.Contains(string(out), "is alive but does not answer") {
		t.Fatalf("umount from another runtime folder of a stopped daemon's mount: %v: %s", err, out)
	}
	other := filepath.Join(e.dir, "other")
	os.Mkdir(other, 0o755)
	e.run("mount", other) // refused: the instance is mounted
	if _, ok := lfs.MountInfo(mnt); !ok {
		t.Fatal("the stopped daemon's mount was cleared")
	}
	syscall.Kill(pid, syscall.SIGCONT)
	e.ok("status")
}

// TestUmountBusyFromAnotherRuntimeDir: umount from a shell whose
// XDG_RUNTIME_DIR is not the daemon's finds the daemon through its socket
// link and acts as from the daemon's own: a busy mount is refused naming
// who uses it (it said only "device or resource busy"), --force detaches
// it, and a free one is unmounted with its daemon stopped.
func TestUmountBusyFromAnotherRuntimeDir(t *testing.T) {
	e := newMntEnv(t)
	mnt := filepath.Join(e.dir, "mnt")
	e.mount(mnt)
	elsewhere := func(args ...string) (string, error) {
		cmd := exec.Command(e.bin, args...)
		cmd.Env = append(slices.Clone(e.env), "XDG_RUNTIME_DIR="+t.TempDir())
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	f, err := os.Create(filepath.Join(mnt, "busy.txt"))
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("data\n")
	out, err := elsewhere("umount", mnt)
	if err == nil || !strings.Contains(out, "is in use") || !strings.Contains(out, fmt.Sprintf("pid %d", os.Getpid())) {
		t.Fatalf("umount of a busy mount from another runtime folder: %v\n%s", err, out)
	}
	if _, ok := lfs.MountInfo(mnt); !ok {
		t.Fatal("a refused umount detached the mount")
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close after a refused umount: %v", err)
	}
	pid := e.daemonPID("m")
	if out, err := elsewhere("umount", mnt); err != nil || !strings.Contains(out, "unmounted "+mnt) {
		t.Fatalf("umount of a free mount from another runtime folder: %v\n%s", err, out)
	}
	if processAlive(pid) {
		t.Fatal("umount returned before the daemon stopped")
	}
	e.ok("mount", mnt)
	if got := string(mustRead(t, filepath.Join(mnt, "busy.txt"))); got != "data\n" {
		t.Fatalf("busy.txt after umount and mount: %q", got)
	}

	// --force detaches a busy mount from there too.
	d, err := os.Open(mnt)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if out, err := elsewhere("umount", "--force", mnt); err != nil {
		t.Fatalf("umount --force from another runtime folder: %v\n%s", err, out)
	}
	if _, ok := lfs.MountInfo(mnt); ok {
		t.Fatal("umount --force left a busy mount in place")
	}
}

// TestUmountBusy: lamina umount of a mount in use says so, names who uses
// it, and leaves the mount serving; the writer's file is then committed
// whole. It detached the mount after 10 s and said "unmounted", and a
// writer still writing lost its file to lost+found/. --force detaches.
func TestUmountBusy(t *testing.T) {
	e := newMntEnv(t)
	mnt := filepath.Join(e.dir, "mnt")
	e.mount(mnt)
	f, err := os.Create(filepath.Join(mnt, "busy.txt"))
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("first half\n")
	out, errOut, err := e.run("umount", mnt)
	if err == nil || !strings.Contains(errOut, "is in use") || !strings.Contains(errOut, fmt.Sprintf("pid %d", os.Getpid())) {
		t.Fatalf("umount of a busy mount: %v\n%s%s", err, out, errOut)
	}
	if _, ok := lfs.MountInfo(mnt); !ok {
		t.Fatal("a refused umount detached the mount")
	}
	f.WriteString("second half\n")
	if err := f.Close(); err != nil {
		t.Fatalf("close after a refused umount: %v", err)
	}
	e.ok("umount", mnt)
	e.ok("mount", mnt)
	if got := string(mustRead(t, filepath.Join(mnt, "busy.txt"))); got != "first half\nsecond half\n" {
		t.Fatalf("busy.txt after umount and mount: %q", got)
	}

	// --force detaches a busy mount.
	d, err := os.Open(filepath.Join(mnt))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	e.ok("umount", "--force", mnt)
	if _, ok := lfs.MountInfo(mnt); ok {
		t.Fatal("umount --force left a busy mount in place")
	}
}

// TestUmountSaysWhatItWaitsFor: umount of a mount with a file open for
// writing says on stderr, before it waits, who holds what and that it
// refuses after 10 s (it waited 10 s silently); nothing on stdout. The
// notice is read before the file is closed, so the umount then succeeds
// only if the notice came while it waited, not with its refusal.
func TestUmountSaysWhatItWaitsFor(t *testing.T) {
	e := newMntEnv(t)
	mnt := filepath.Join(e.dir, "mnt")
	e.mount(mnt)
	f, err := os.Create(filepath.Join(mnt, "held.txt"))
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("data\n")
	cmd := exec.Command(e.bin, "umount", mnt)
	cmd.Env = e.env
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	rd := bufio.NewReader(pipe)
	first, _ := rd.ReadString('\n')
	for _, want := range []string{"lamina: " + mnt + " is in use by pid " + strconv.Itoa(os.Getpid()), "writing " + filepath.Join(mnt, "held.txt"),
		"waiting up to 10s", "then refusing", "lamina umount --force " + mnt} {
		if !strings.Contains(first, want) {
			t.Errorf("umount's first line %q does not say %q", first, want)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close while umount waits: %v", err)
	}
	rest, _ := io.ReadAll(rd)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("umount once the file was closed: %v\n%s%s", err, first, rest)
	}
	if !strings.Contains(stdout.String(), "unmounted "+mnt) || strings.Contains(stdout.String(), "waiting") {
		t.Errorf("umount's stdout %q; want only what it did", stdout.String())
	}
}

// TestUmountForceFromAnotherHome: `lamina umount --force DIR` run with
// another HOME (another runtime folder, no settings of the instance)
// detaches a busy lamina mount lazily and says what stays pending; the
// writer that kept it busy goes on writing, and its file is committed as
// it closes, after which the daemon stops. It refused a busy mount,
// --force or not.
func TestUmountForceFromAnotherHome(t *testing.T) {
	e := newMntEnv(t)
	mnt := filepath.Join(e.dir, "mnt")
	e.mount(mnt)
	pid := e.daemonPID("m")
	f, err := os.Create(filepath.Join(mnt, "busy.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString("one\n")
	other := t.TempDir()
	cmd := exec.Command(e.bin, "umount", "--force", mnt)
	cmd.Env = append(slices.Clone(e.env), "HOME="+other, "XDG_RUNTIME_DIR="+other+"/run", "XDG_CONFIG_HOME="+other+"/cfg",
		"XDG_DATA_HOME="+other+"/data", "XDG_CACHE_HOME="+other+"/cache")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "detached "+mnt) || !strings.Contains(string(out), "still pending") ||
		!strings.Contains(string(out), fmt.Sprintf("pid %d", os.Getpid())) {
		t.Fatalf("umount --force from another HOME: %v\n%s", err, out)
	}
	if _, ok := lfs.MountInfo(mnt); ok {
		t.Fatal("umount --force left the busy mount in place")
	}
	if !processAlive(pid) {
		t.Fatal("the daemon stopped while a writer still had a file open")
	}
	if _, err := f.WriteString("two\n"); err != nil {
		t.Fatalf("write after the detach: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close after the detach: %v", err)
	}
	waitExit(t, pid, "the daemon did not stop within 60 s of its last user letting go")
	if got := e.ok("get", "busy.txt", "-o", "-"); got != "one\ntwo\n" {
		t.Fatalf("busy.txt after the detach: %q", got)
	}
}

// TestUmountOfDetachedMountWithWriter: after `lamina umount --force` from
// another HOME detached a mount lazily, the owner's plain `lamina umount`
// answered "unmounted" and stopped the daemon while a writer still wrote
// through the mount: the writer got ENOTCONN and its file went to
// lost+found/ (usersOf sees no process of a detached mount). The daemon
// knows its open files: umount refuses naming them, a SIGTERM does not stop
// the daemon either, status says the mount is detached, and the file is
// committed whole once the writer closes it.
func TestUmountOfDetachedMountWithWriter(t *testing.T) {
	e := newMntEnv(t)
	mnt := filepath.Join(e.dir, "mnt")
	e.mount(mnt)
	pid := e.daemonPID("m")
	f, err := os.Create(filepath.Join(mnt, "lz.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString("one\n")
	other := t.TempDir()
	cmd := exec.Command(e.bin, "umount", "--force", mnt)
	cmd.Env = append(slices.Clone(e.env), "HOME="+other, "XDG_RUNTIME_DIR="+other+"/run", "XDG_CONFIG_HOME="+other+"/cfg",
		"XDG_DATA_HOME="+other+"/data", "XDG_CACHE_HOME="+other+"/cache")
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "detached "+mnt) {
		t.Fatalf("umount --force from another HOME: %v\n%s", err, out)
	}
	if st := e.ok("status"); !strings.Contains(st, mnt+" (detached, 1 file open") {
		t.Errorf("status of the detached mount:\n%s", st)
	}
	// It says at once what it waits for (a first line), then refuses.
	if out, errs, err := e.run("umount", mnt); err == nil || !strings.Contains(errs, "1 file open for writing (lz.log)") || !strings.Contains(errs, "detached") ||
		!strings.Contains(strings.SplitN(errs, "\n", 2)[0], "open for writing through its mount (lz.log); waiting up to 10 s for them to be closed, then refusing") || out != "" {
		t.Errorf("umount of the detached mount with a writer: %v\n%s", err, errs)
	}
	// The daemon's own stop path waits for the writer too.
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(e.dir, "run", "lamina", "m", "mount.log")
	waitLog(t, logPath, "not stopping: files are open for writing", "the daemon did not say it waits for the writer")
	if !processAlive(pid) {
		t.Fatal("the daemon stopped while a writer still had a file open")
	}
	if _, err := f.WriteString("two\n"); err != nil {
		t.Fatalf("write after umount and SIGTERM: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close after umount and SIGTERM: %v", err)
	}
	waitExit(t, pid, "the daemon did not stop within 60 s of its last writer closing")
	if got := e.ok("get", "lz.log", "-o", "-"); got != "one\ntwo\n" {
		t.Fatalf("lz.log: %q", got)
	}
}

// lamina umount of a mount detached by umount -l, its folder mounted again
// since (a tmpfs here), unmounted that one by path, and its files with it:
// the daemon is stopped, and the tmpfs is left as it is.
func TestUmountLeavesWhatIsMountedOverADetachedMount(t *testing.T) {
	e := newMntEnv(t)
	mnt := filepath.Join(e.dir, "mnt")
	e.mount(mnt)
	pid := e.daemonPID("m")
	f, err := os.Open(mnt) // keeps the detached mount in use
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Unmount(mnt, syscall.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(mnt, syscall.MNT_DETACH) })
	marker := filepath.Join(mnt, "marker")
	if err := os.WriteFile(marker, []byte("another file system's file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errs, err := e.run("umount", mnt)
	f.Close()
	if got, rerr := os.ReadFile(marker); rerr != nil || string(got) != "another file system's file\n" {
		t.Fatalf("lamina umount unmounted what was mounted at %s after the detach: %v (umount: %v\n%s%s)", mnt, rerr, err, out, errs)
	}
	if err != nil || !strings.Contains(errs, "is now another mount (tmpfs") {
		t.Errorf("umount of the detached mount: %v\n%s%s", err, out, errs)
	}
	waitExit(t, pid, "the daemon did not stop within 60 s")
}

// A file system mounted over a live lamina mount (a tmpfs here): lamina
// umount, and the daemon's own stop on SIGTERM, unmounted it by path, and
// its files were lost. umount now refuses, saying what covers the mount,
// and the daemon waits for the cover to go.
func TestUmountOfCoveredMountLeavesTheCover(t *testing.T) {
	e := newMntEnv(t)
	mnt := filepath.Join(e.dir, "mnt")
	e.mount(mnt)
	pid := e.daemonPID("m")
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(mnt, syscall.MNT_DETACH) })
	marker := filepath.Join(mnt, "marker")
	if err := os.WriteFile(marker, []byte("kept\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	kept := func(when string) {
		t.Helper()
		if got, err := os.ReadFile(marker); err != nil || string(got) != "kept\n" {
			t.Fatalf("%s: the tmpfs over the mount was unmounted: %v", when, err)
		}
	}
	if _, errs, err := e.run("umount", mnt); err == nil || !strings.Contains(errs, "has another file system mounted over the lamina mount of m (tmpfs tmpfs)") {
		t.Errorf("umount of a covered mount: %v\n%s", err, errs)
	}
	kept("after lamina umount")
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(e.dir, "run", "lamina", "m", "mount.log")
	waitLog(t, logPath, "another file system is mounted over the mount", "the daemon did not say it waits for the cover to go")
	kept("after SIGTERM")
	// With its daemon gone (killed), the mount beneath the cover is named.
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitExit(t, pid, "the daemon did not die")
	if _, errs, err := e.run("umount", mnt); err == nil || !strings.Contains(errs, "has another file system mounted over a lamina mount (tmpfs tmpfs)") {
		t.Errorf("umount of a covered stale mount: %v\n%s", err, errs)
	}
	kept("after lamina umount of the stale covered mount")
	if err := syscall.Unmount(mnt, 0); err != nil {
		t.Fatal(err)
	}
	e.ok("umount", mnt) // clears the stale mount beneath
}

// waitExit waits up to 60 s for process pid to end, failing the test with
// why otherwise.
func waitExit(t *testing.T, pid int, why string) {
	t.Helper()
	for i := 0; processAlive(pid); i++ {
		if i == 600 {
			t.Fatal(why)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitLog waits up to 60 s for the log at path to hold text, failing the
// test with why otherwise.
func waitLog(t *testing.T, path, text, why string) {
	t.Helper()
	for i := 0; !strings.Contains(string(mustRead(t, path)), text); i++ {
		if i == 600 {
			t.Fatal(why)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestUmountRefusesAnotherInstancesMount: `lamina --instance n umount
// DIR` (or LAMINA_INSTANCE=n) unmounted whatever instance DIR held. With
// an instance named, DIR being another instance's mount is refused,
// naming both, and nothing is unmounted; without one, DIR's mount goes.
func TestUmountRefusesAnotherInstancesMount(t *testing.T) {
	e := newMntEnv(t)
	e.ok("init", "--storage", e.dir+"/storage-n", "--name", "n") // n is now the current instance
	mntM, mntN := filepath.Join(e.dir, "mnt-m"), filepath.Join(e.dir, "mnt-n")
	e.mount(mntM, "--instance", "m")
	e.mount(mntN)
	pidM, pidN := e.daemonPID("m"), e.daemonPID("n")
	want := fmt.Sprintf("%s is the mount of instance \"m\", not of \"n\"", mntM)
	refused := func(how string, env []string, args ...string) {
		t.Helper()
		cmd := exec.Command(e.bin, args...)
		cmd.Env = append(slices.Clone(e.env), env...)
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), want) || !strings.Contains(string(out), how) {
			t.Fatalf("lamina %s with %s: %v\n%s", strings.Join(args, " "), how, err, out)
		}
		for _, m := range []string{mntM, mntN} {
			if _, ok := lfs.MountInfo(m); !ok {
				t.Fatalf("a refused umount unmounted %s", m)
			}
		}
		if !processAlive(pidM) || !processAlive(pidN) {
			t.Fatal("a refused umount stopped a daemon")
		}
	}
	refused("--instance", nil, "--instance", "n", "umount", mntM)
	refused("--instance", nil, "umount", "--instance", "n", mntM)
	refused("LAMINA_INSTANCE", []string{"LAMINA_INSTANCE=n"}, "umount", mntM)
	refused("--instance", []string{"LAMINA_INSTANCE=m"}, "--instance", "n", "umount", mntM) // the flag wins

	// None named (n is only the remembered current instance): DIR's mount
	// goes, as before; the instance mounted there, named, too.
	e.ok("umount", mntM)
	waitExit(t, pidM, "the daemon of m did not stop")
	e.ok("--instance", "n", "umount", mntN)
	waitExit(t, pidN, "the daemon of n did not stop")
}

// A temporary file renamed onto a key through a mount is deleted for good
// (Stage.Rename); when its record had reached storage already, the mount
// writes a tombstone for it, so that an export imports without --partial.
func TestMountPurgedTemporaryTombstone(t *testing.T) {
	e := newMntEnv(t)
	e.env = append(e.env, "LAMINA_RECORDS_EVERY=200ms")
	mnt := filepath.Join(e.dir, "lab")
	e.mount(mnt)
	tmp, v := writeTemporary(t, e, mnt)
	// waitRecord waits for a records/ object holding all of parts.
	waitRecord := func(parts ...string) {
		t.Helper()
		for deadline := time.Now().Add(60 * time.Second); !recordsHold(filepath.Join(e.dir, "storage", "records"), parts...); time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no record holds %q", parts)
			}
		}
	}
	waitRecord(v.UID)
	if err := os.Rename(tmp, filepath.Join(mnt, "data.txt")); err != nil {
		t.Fatal(err)
	}
	waitRecord(`"purged"`, v.UID)
	e.ok("umount", mnt)
	if out := e.ok("ls", "--trash"); strings.Contains(out, "partial") {
		t.Fatalf("the temporary was not purged:\n%s", out)
	}
	dump := filepath.Join(e.dir, "e.jsonl")
	e.ok("export-catalog", dump)
	e.ok("init", "--storage", e.dir+"/storage", "--name", "again", "--take-over")
	e.ok("--instance", "again", "import-catalog", dump)
}

// A purged temporary's tombstone is not lost when storage refuses it for a
// while and the mount then stops at once, or its daemon is killed: it
// waits in the cache dir until storage has it (instance.Tombstones). It
// was written by a goroutine that logged the failure and dropped it, and
// that an unmount or a kill could stop before it ran.
func TestMountTombstoneSurvivesOutageAndKill(t *testing.T) {
	for _, kill := range []bool{false, true} {
		t.Run(map[bool]string{false: "unmount", true: "kill"}[kill], func(t *testing.T) {
			e := newMntEnv(t)
			e.env = append(e.env, "LAMINA_RECORDS_EVERY=200ms")
			mnt := filepath.Join(e.dir, "lab")
			e.mount(mnt)
			tmp, v := writeTemporary(t, e, mnt)
			recs := filepath.Join(e.dir, "storage", "records")
			holding := func(parts ...string) bool { return recordsHold(recs, parts...) }
			for deadline := time.Now().Add(60 * time.Second); !holding(v.UID); time.Sleep(100 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the temporary's record did not reach storage")
				}
			}
			// Storage refuses what goes to records/: a file where its
			// folder was.
			if err := os.Rename(recs, recs+".away"); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(recs, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, filepath.Join(mnt, "data.txt")); err != nil {
				t.Fatal(err)
			}
			logPath := filepath.Join(e.dir, "run", "lamina", "m", "mount.log")
			for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				if b, _ := os.ReadFile(logPath); bytes.Contains(b, []byte("could not record in storage")) {
					break
				}
				if time.Now().After(deadline) {
					b, _ := os.ReadFile(logPath)
					t.Fatalf("the tombstone's write did not fail:\n%s", b)
				}
			}
			if kill {
				e.killDaemon("m")
			}
			if err := os.Remove(recs); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(recs+".away", recs); err != nil {
				t.Fatal(err)
			}
			if kill {
				e.ok("umount", mnt) // the stale mount
				e.ok("mount", mnt)
			}
			e.ok("umount", mnt)
			if !holding(`"purged"`, v.UID) {
				b, _ := os.ReadFile(logPath)
				t.Fatalf("no tombstone names the purged temporary %s; the daemon's log:\n%s", v.UID, b)
			}
			dump := filepath.Join(e.dir, "e.jsonl")
			e.ok("export-catalog", dump)
			e.ok("init", "--storage", e.dir+"/storage", "--name", "again", "--take-over")
			e.ok("--instance", "again", "import-catalog", dump)
		})
	}
}

// writeTemporary writes data.txt and a temporary .data.txt.partial beside it
// in the mount at mnt, and returns the temporary's path and version.
func writeTemporary(t *testing.T, e interface{ ok(...string) string }, mnt string) (string, struct{ UID string }) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(mnt, "data.txt"), []byte("one\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(mnt, ".data.txt.partial")
	if err := os.WriteFile(tmp, []byte("two\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var v struct{ UID string }
	if err := json.Unmarshal([]byte(e.ok("show", ".data.txt.partial", "--format", "json")), &v); err != nil || v.UID == "" {
		t.Fatalf("show: %v", err)
	}
	return tmp, v
}

// recordsHold says whether an object in the local records folder dir
// holds all of parts.
func recordsHold(dir string, parts ...string) bool {
	ps, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	for _, p := range ps {
		b, _ := os.ReadFile(p)
		all := true
		for _, s := range parts {
			all = all && bytes.Contains(b, []byte(s))
		}
		if all {
			return true
		}
	}
	return false
}

// statusJSONBroken checks `status --format json` of a mount whose daemon
// died or is stopped: it printed nothing on stdout; now one entry,
// "mounted": false, with the error and the mount among the stale ones,
// and exit status 1.
func statusJSONBroken(t *testing.T, e *mntEnv, mnt, says string) {
	t.Helper()
	out, errs, err := e.run("status", "--format", "json")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("status --format json of a mount whose daemon %s: %v, want exit status 1\n%s", says, err, errs)
	}
	var st []unmountedStatus
	if jerr := json.Unmarshal([]byte(out), &st); jerr != nil || len(st) != 1 {
		t.Fatalf("status --format json of a mount whose daemon %s: %v\nstdout %q", says, jerr, out)
	}
	if st[0].Mounted || !strings.Contains(st[0].Error, says) || !slices.Contains(st[0].Stale, mnt) {
		t.Errorf("status --format json of a mount whose daemon %s: %+v, want mounted false, the error and %s stale", says, st[0], mnt)
	}
}
