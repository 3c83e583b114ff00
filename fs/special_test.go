package fs_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// within fails the test if f has not returned after d: a FIFO or socket
// that does not work waits forever, and the test must fail, not hang.
func within(t *testing.T, d time.Duration, what string, f func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	case <-time.After(d):
		t.Fatalf("%s: not done after %v", what, d)
	}
}

// listedMode returns the type ReadDir gives name in dir, and whether it
// is listed.
func (w *world) listedMode(dir, name string) (os.FileMode, bool) {
	w.t.Helper()
	es, err := os.ReadDir(w.p(dir))
	if err != nil {
		w.t.Fatal(err)
	}
	for _, e := range es {
		if e.Name() == name {
			return e.Type(), true
		}
	}
	return 0, false
}

// A FIFO made at a key's path (Snakemake's pipe() outputs) is listed,
// stat'ed, carries bytes from a writer to a reader, and is unlinked; it is
// no version, and no key's name can be created over it.
func TestFIFOAtKeyPath(t *testing.T) {
	w := newWorld(t)
	w.save("wf/in.txt", []byte("in\n"))
	w.mountRW()
	p := w.p("wf/mid.pipe")
	if err := syscall.Mkfifo(p, 0o644); err != nil {
		t.Fatalf("mkfifo in the mount: %v", err)
	}
	if fi, err := os.Lstat(p); err != nil || fi.Mode().Type() != os.ModeNamedPipe || fi.Mode().Perm() != 0o644 {
		t.Fatalf("lstat: %v %v", fi, err)
	}
	if typ, ok := w.listedMode("wf", "mid.pipe"); !ok || typ != os.ModeNamedPipe {
		t.Fatalf("listing: %v listed %v", typ, ok)
	}

	// A reader and a writer, each in its goroutine; more than a pipe's
	// buffer, so that they must run together. The reader opens first,
	// without blocking; the writer's open then does not wait either.
	r, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	wr, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer wr.Close()
	r.SetDeadline(time.Now().Add(30 * time.Second))
	wr.SetDeadline(time.Now().Add(30 * time.Second))
	want := bytes.Repeat([]byte("0123456789abcdef"), 1<<14) // 256 KiB
	wrote := make(chan error, 1)
	go func() {
		_, err := wr.Write(want)
		wr.Close()
		wrote <- err
	}()
	within(t, 40*time.Second, "reading the FIFO", func() error {
		got, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, want) {
			return fmt.Errorf("read %d bytes, other than the %d written", len(got), len(want))
		}
		return <-wrote
	})
	r.Close()
	// Two processes, as a shell pipes through it.
	n := filepath.Join(t.TempDir(), "n")
	t.Setenv("N", n)
	w.sh(`timeout 30 sh -c 'seq 1000 > wf/mid.pipe & wc -l < wf/mid.pipe > "$N"; wait'`)
	if b, err := os.ReadFile(n); err != nil || strings.TrimSpace(string(b)) != "1000" {
		t.Fatalf("seq | wc -l through the FIFO: %q %v", b, err)
	}

	// No version, nothing in the trash.
	if vs := w.versions("wf/mid.pipe"); len(vs) != 0 {
		t.Fatalf("the FIFO made versions: %+v", vs)
	}
	if tk := w.trashKeys(); len(tk) != 0 {
		t.Fatalf("trash: %v", tk)
	}

	// No file may take its name; a device is still refused.
	if _, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644); !errors.Is(err, syscall.EEXIST) {
		t.Fatalf("O_EXCL create over the FIFO: %v", err)
	}
	if err := syscall.Mkfifo(p, 0o644); !errors.Is(err, syscall.EEXIST) {
		t.Fatalf("mkfifo again: %v", err)
	}
	if err := syscall.Mkfifo(w.p("wf/in.txt"), 0o644); !errors.Is(err, syscall.EEXIST) {
		t.Fatalf("mkfifo over a key: %v", err)
	}
	if err := syscall.Mknod(w.p("wf/dev"), syscall.S_IFCHR|0o644, 0x0103); !errors.Is(err, syscall.EPERM) {
		t.Fatalf("mknod of a device: %v", err)
	}

	// Renamed to a name no key has: still the FIFO. Onto a key: EXDEV
	// (mv makes it anew there). A key renamed onto it replaces it.
	if err := os.Rename(p, w.p("wf/other.pipe")); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(w.p("wf/other.pipe")); err != nil || fi.Mode().Type() != os.ModeNamedPipe {
		t.Fatalf("renamed: %v %v", fi, err)
	}
	if _, err := os.Lstat(p); !os.IsNotExist(err) {
		t.Fatalf("old name after rename: %v", err)
	}
	if err := os.Rename(w.p("wf/other.pipe"), w.p("wf/in.txt")); !errors.Is(err, syscall.EXDEV) {
		t.Fatalf("FIFO onto a key: %v", err)
	}
	w.save("wf/k.txt", []byte("key\n"))
	if err := os.Rename(w.p("wf/k.txt"), w.p("wf/other.pipe")); err != nil {
		t.Fatalf("key onto the FIFO: %v", err)
	}
	if fi, err := os.Lstat(w.p("wf/other.pipe")); err != nil || !fi.Mode().IsRegular() {
		t.Fatalf("key renamed onto the FIFO: %v %v", fi, err) // before a read, which would wait on a FIFO
	}
	if got := string(w.read("wf/other.pipe")); got != "key\n" {
		t.Fatalf("key renamed onto the FIFO reads %q", got)
	}
	if len(w.versions("wf/other.pipe")) != 1 {
		t.Fatalf("renamed key: %+v", w.versions("wf/other.pipe"))
	}

	// Unlinked: gone from stat and listing.
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(p); !os.IsNotExist(err) {
		t.Fatalf("after unlink: %v", err)
	}
	if _, ok := w.listedMode("wf", "mid.pipe"); ok {
		t.Fatal("listed after unlink")
	}
	if err := os.WriteFile(p, []byte("a file now\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if vs := w.versions("wf/mid.pipe"); len(vs) != 1 || vs[0].Size != 11 {
		t.Fatalf("a file at the FIFO's name once unlinked: %+v", vs)
	}

	// Kept as scratch files are: across a remount.
	if err := syscall.Mkfifo(w.p("wf/kept.pipe"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := w.mnt.Unmount(); err != nil {
		t.Fatal(err)
	}
	w.mountRW()
	if fi, err := os.Lstat(w.p("wf/kept.pipe")); err != nil || fi.Mode().Type() != os.ModeNamedPipe {
		t.Fatalf("after a remount: %v %v", fi, err)
	}
	if typ, ok := w.listedMode("wf", "kept.pipe"); !ok || typ != os.ModeNamedPipe {
		t.Fatalf("listed after a remount: %v %v", typ, ok)
	}
}

// mknod(2) of a regular file (Python's os.mknod) makes the key as create
// does; FIFOs are made at scratch names too.
func TestMknodRegularAndScratch(t *testing.T) {
	w := newWorld(t)
	w.save("d/x", []byte("x"))
	w.mountRW()
	if err := syscall.Mknod(w.p("d/made"), syscall.S_IFREG|0o640, 0); err != nil {
		t.Fatalf("mknod S_IFREG: %v", err)
	}
	if vs := w.eventually("d/made", 1); len(vs) != 1 || vs[0].Size != 0 {
		t.Fatalf("versions: %+v", vs)
	}
	if fi, err := os.Stat(w.p("d/made")); err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o640 {
		t.Fatalf("stat: %v %v", fi, err)
	}
	if err := syscall.Mknod(w.p("d/x"), syscall.S_IFREG|0o640, 0); !errors.Is(err, syscall.EEXIST) {
		t.Fatalf("mknod over a key: %v", err)
	}
	// At a scratch name: a scratch file, and a scratch FIFO.
	if err := syscall.Mknod(w.p("d/.x.swp"), syscall.S_IFREG|0o600, 0); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(w.p("d/.y.swp"), 0o600); err != nil {
		t.Fatal(err)
	}
	if typ, ok := w.listedMode("d", ".y.swp"); !ok || typ != os.ModeNamedPipe {
		t.Fatalf("scratch FIFO listed %v %v", typ, ok)
	}
	if vs := w.versions("d/.x.swp"); len(vs) != 0 {
		t.Fatalf("scratch versions: %+v", vs)
	}
	// A key renamed onto a scratch name's FIFO (an editor's backup name)
	// replaces it: its copy is not written into the FIFO.
	if err := syscall.Mkfifo(w.p("d/x~"), 0o600); err != nil {
		t.Fatal(err)
	}
	within(t, 30*time.Second, "mv d/x d/x~ onto a FIFO", func() error { return os.Rename(w.p("d/x"), w.p("d/x~")) })
	if fi, err := os.Lstat(w.p("d/x~")); err != nil || !fi.Mode().IsRegular() || string(w.read("d/x~")) != "x" {
		t.Fatalf("d/x~ after the rename: %v %v", fi, err)
	}
}

// bind(2) of a unix socket in the mount (a MKNOD of S_IFSOCK) makes a
// socket that accepts connections.
func TestUnixSocketInMount(t *testing.T) {
	w := newWorld(t)
	w.save("srv/readme", []byte("r"))
	w.mountRW()
	p := w.p("srv/app.sock")
	l, err := net.Listen("unix", p)
	if err != nil {
		t.Fatalf("bind in the mount: %v", err)
	}
	defer l.Close()
	if fi, err := os.Lstat(p); err != nil || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("lstat: %v %v", fi, err)
	}
	if typ, ok := w.listedMode("srv", "app.sock"); !ok || typ != os.ModeSocket {
		t.Fatalf("listing: %v %v", typ, ok)
	}
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		io.Copy(c, io.LimitReader(c, 5))
	}()
	within(t, 40*time.Second, "a connection through the socket", func() error {
		c, err := net.DialTimeout("unix", p, 30*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := c.Write([]byte("hello")); err != nil {
			return err
		}
		b := make([]byte, 5)
		if _, err := io.ReadFull(c, b); err != nil || string(b) != "hello" {
			return errors.New("echo: " + string(b))
		}
		return nil
	})
	l.Close() // Go's listener unlinks its path
	if _, err := os.Lstat(p); !os.IsNotExist(err) {
		t.Fatalf("after close: %v", err)
	}
	if vs := w.versions("srv/app.sock"); len(vs) != 0 {
		t.Fatalf("versions: %+v", vs)
	}
}

// snakePipe pipes one job's output into the next (pipe(): a FIFO next to
// the workflow's outputs).
const snakePipe = `
rule all:
    input: "out.txt"
rule produce:
    input: "in.txt"
    output: pipe("mid.pipe")
    shell: "cat {input} > {output}"
rule consume:
    input: "mid.pipe"
    output: "out.txt"
    shell: "wc -l < {input} > {output}"
`

func TestSnakemakePipe(t *testing.T) {
	needTool(t, "snakemake")
	needTool(t, "timeout")
	w := newWorld(t)
	w.save("wp/in.txt", []byte(strings.Repeat("line\n", 1000)))
	w.mountRW()
	wd := w.p("wp")
	if err := os.WriteFile(filepath.Join(wd, "Snakefile"), []byte(snakePipe), 0o644); err != nil {
		t.Fatal(err)
	}
	// cd after exec (see world.sh). Snakemake 7.21 hangs when a job
	// cannot make its pipe and ignores SIGTERM: timeout kills it, and
	// WaitDelay stops waiting for its jobs' hold of the output.
	cmd := exec.Command("sh", "-c", `cd "$0" && exec timeout -k 5 60 snakemake -j2`, wd)
	cmd.WaitDelay = 10 * time.Second
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("snakemake: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(string(w.read("wp/out.txt"))); got != "1000" {
		t.Fatalf("out.txt = %q", got)
	}
	if vs := w.versions("wp/mid.pipe"); len(vs) != 0 {
		t.Fatalf("the pipe made versions: %+v", vs)
	}
}

// keyTracker is a Tracker that puts the processes named in comm in run
// "r" and keeps the keys it was told of.
type keyTracker struct {
	commTracker
	wrote []string
}

func (k *keyTracker) Wrote(run, key string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.wrote = append(k.wrote, key)
}

// A tracked process's opens of a FIFO are no input and no output: the
// kernel does a FIFO's I/O, and no OPEN reaches the mount.
func TestTrackedFIFOOpensNotRecorded(t *testing.T) {
	w := newWorld(t)
	tr := &keyTracker{commTracker: commTracker{comm: "cat tee"}}
	w.mountTracked(tr)
	w.sh(`mkdir wf && mkfifo wf/mid.pipe && timeout 30 sh -c 'seq 1000 | tee wf/mid.pipe >/dev/null & cat wf/mid.pipe > /dev/null; wait'`)
	w.sh(`seq 3 | tee wf/t.txt > /dev/null`) // a key: recorded
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if len(tr.used) != 0 || strings.Join(tr.wrote, " ") != "wf/t.txt" {
		t.Fatalf("recorded: used %v, wrote %v; want wrote wf/t.txt only", tr.used, tr.wrote)
	}
}
