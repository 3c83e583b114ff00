package fs_test

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/lamina-bio/lamina/catalog"
)

// oneVersion waits for key's latest version to hold want and fails unless
// it is key's only one.
func (w *world) oneVersion(key, want, why string) {
	w.t.Helper()
	vs := w.settled(key, func(vs []catalog.Version) bool { return len(vs) >= 1 && vs[len(vs)-1].Size == int64(len(want)) })
	if len(vs) != 1 {
		w.t.Errorf("%s: versions of %v bytes, want one of %d: %s", key, sizes(vs), len(want), why)
	}
	if got := string(w.read(key)); got != want {
		w.t.Errorf("%s = %q, want %q", key, got, want)
	}
}

// A shell's redirect of a command (open, dup2 to 1, close) and of a group
// of builtins (bash saves 1, dup2s the file to it and restores 1 after:
// the restore closes the copy), a fork child that writes through the
// descriptor it inherited and exits (or execs) while its parent goes on
// writing, and a Python child handed the file as stdout: one version each,
// made by the last close, holding every byte.
func TestWritersThroughCopiesMakeOneVersion(t *testing.T) {
	needTool(t, "bash")
	needTool(t, "python3")
	w := newWorld(t)
	w.mountRW()
	w.sh(`bash -c 'seq 1 2000 > seq.txt'`)
	seq, _ := exec.Command("seq", "1", "2000").Output()
	w.oneVersion("seq.txt", string(seq), "the redirect's close")
	w.sh(`bash -c '{ echo a; echo b; echo c; } > grp.txt'`)
	w.oneVersion("grp.txt", "a\nb\nc\n", "the restore of 1 or the builtins' writes")
	w.sh(`python3 -c '
import os
for name, child in (("fork.txt", "exit"), ("forkexec.txt", "exec")):
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, b"parent ")
    pid = os.fork()
    if pid == 0:
        os.write(fd, b"child ")
        if child == "exec":
            os.set_inheritable(fd, True)
            os.execv("/bin/true", ["true"])
        os._exit(0)
    os.waitpid(pid, 0)
    os.write(fd, b"parent again")
    os.close(fd)
'`)
	w.oneVersion("fork.txt", "parent child parent again", "the child's exit")
	w.oneVersion("forkexec.txt", "parent child parent again", "the child's exec")
	w.sh(`python3 -c '
import subprocess
with open("popen.txt", "w") as f:
    f.write("head\n")
    f.flush()
    subprocess.Popen(["seq", "1", "500"], stdout=f).wait()
    subprocess.Popen(["sh", "-c", "echo one; echo two >&2"], stdout=f, stderr=f).wait()
    f.write("tail\n")
'`)
	pseq, _ := exec.Command("seq", "1", "500").Output()
	w.oneVersion("popen.txt", "head\n"+string(pseq)+"one\ntwo\ntail\n", "a child's close")
}

// A close that commits nothing because its process holds another writable
// descriptor of the file (here one it inherited, of a handle another
// process opened, which counts as a copy) leaves its bytes to the
// handle's RELEASE, which commits them though the inherited handle still
// shares the File: they waited for that handle's close.
func TestReleaseCommitsWhatACopysCloseLeft(t *testing.T) {
	needTool(t, "python3")
	w := newWorld(t)
	w.mountRW()
	if err := os.WriteFile(w.p("rel.txt"), []byte("base\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	kept, err := os.OpenFile(w.p("rel.txt"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer kept.Close()
	cmd := exec.Command("sh", "-ec", `cd "$1"; python3 -c 'open("rel.txt", "a").write("child\n")'`, "sh", w.dir)
	cmd.ExtraFiles = []*os.File{kept} // its fd 3: a writable descriptor of rel.txt
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	vs := w.settled("rel.txt", func(vs []catalog.Version) bool { return len(vs) == 2 })
	if len(vs) != 2 || vs[1].Size != 11 {
		t.Fatalf("rel.txt: versions of %v bytes while another handle is open, want [5 11]: the child's write is stranded", sizes(vs))
	}
	if err := kept.Close(); err != nil {
		t.Fatal(err)
	}
	if got := string(w.read("rel.txt")); got != "base\nchild\n" {
		t.Errorf("rel.txt = %q", got)
	}
}

// Only descriptors of this mount count as copies: an inode of another
// lamina mount with the same number (a hash of the key) that the closing
// process holds made its close commit nothing, and the version came at
// RELEASE, after close(2) returned (or never, while another process kept
// the handle: here).
func TestOtherMountsDescriptorIsNoCopy(t *testing.T) {
	a, b := newWorld(t), newWorld(t)
	a.mountRW()
	b.mountRW()
	for _, w := range []*world{a, b} {
		if err := os.WriteFile(w.p("x.txt"), []byte("one\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var sa, sb syscall.Stat_t
	if err := syscall.Stat(a.p("x.txt"), &sa); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Stat(b.p("x.txt"), &sb); err != nil {
		t.Fatal(err)
	}
	if sa.Ino != sb.Ino {
		t.Fatalf("x.txt has inode %d on one mount and %d on the other: the test needs them equal", sa.Ino, sb.Ino)
	}
	other, err := os.OpenFile(b.p("x.txt"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	f, err := os.OpenFile(a.p("x.txt"), os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	holdElsewhere(t, f) // no RELEASE
	if _, err := f.WriteString("two\n"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if vs := a.versions("x.txt"); len(vs) != 2 {
		t.Errorf("x.txt: versions of %v bytes when close returned, want [4 4]: the other mount's descriptor was taken for a copy", sizes(vs))
	}
	if got := string(a.read("x.txt")); !strings.HasPrefix(got, "two") {
		t.Errorf("x.txt = %q", got)
	}
}

// A descriptor a child inherited keeps the file open after its opener's
// process closed its own or exited: the commands a background job runs
// close copies at each exit, and the opener's close left a child writing.
// Audit: `exec 3>f; (loop) >&3 & exit 0` made a version at each command of
// the loop (sizes 0, 3, 6, …), `Popen(stdout=f)` then `f.close()` an empty
// one, and a fork child writing after its parent's close a second one.
// One version each, of every byte, made by the last copy's close.
func TestInheritedCopiesOutliveTheirOpener(t *testing.T) {
	needTool(t, "bash")
	needTool(t, "python3")
	w := newWorld(t)
	w.mountRW()
	w.sh(`bash -c 'exec 3>bg.txt; (for i in $(seq 1 10); do echo w$i; sleep 0.05; done) >&3 & exit 0'`)
	var loop strings.Builder
	for i := 1; i <= 10; i++ {
		fmt.Fprintf(&loop, "w%d\n", i)
	}
	w.oneVersion("bg.txt", loop.String(), "a command of the background job closed its copy after the shell exited")
	w.sh(`python3 -c '
import subprocess
loop = "for i in 1 2 3 4 5 6 7 8 9 10; do echo w$i; sleep 0.05; done"
f = open("gone.txt", "w")
subprocess.Popen(["sh", "-c", loop], stdout=f)
f.close()
'`)
	w.oneVersion("gone.txt", loop.String(), "the parent's close, or a command's after the parent exited")
	w.sh(`python3 -c '
import subprocess
f = open("popen.txt", "w")
p = subprocess.Popen(["sh", "-c", "sleep 0.2; echo one; echo two"], stdout=f)
f.close()
p.wait()
'`)
	w.oneVersion("popen.txt", "one\ntwo\n", "the parent's close before the child wrote")
	w.sh(`python3 -c '
import os, time
fd = os.open("fork.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
r, wr = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(wr)
    os.read(r, 1)
    for i in range(5):
        os.write(fd, b"child\n")
    os._exit(0)
os.close(r)
os.write(fd, b"p1\n")
os.close(fd)
os.close(wr)
os.waitpid(pid, 0)
'`)
	w.oneVersion("fork.txt", "p1\n"+strings.Repeat("child\n", 5), "the parent's close while its child held a copy")
}
