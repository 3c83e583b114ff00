package fs_test

import (
	"bufio"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// mapper is a python3 process holding a shared read-only mapping of a file
// (a page fault on the mount from the test's own process would stop its
// FUSE server with it): show prints what the mapping holds now.
type mapper struct {
	t   *testing.T
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

func newMapper(t *testing.T, path string) *mapper {
	t.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("no python3")
	}
	cmd := exec.Command("python3", "-c", `
import mmap, sys
f = open(sys.argv[1], "rb")
try:
    m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
except OSError as e:
    print("error", e, flush=True)
    sys.exit(0)
print("read", f.read().hex(), flush=True)
for line in sys.stdin:
    print("map", m[:].hex(), flush=True)
`, path)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	m := &mapper{t: t, cmd: cmd, in: in, out: bufio.NewReader(out)}
	t.Cleanup(m.close)
	if kind, _ := m.line(); kind != "read" {
		t.Fatalf("mmap of %s while a writer holds it: %s", path, kind)
	}
	return m
}

// line is the mapper's next line: its kind and the bytes it names.
func (m *mapper) line() (string, string) {
	m.t.Helper()
	l, err := m.out.ReadString('\n')
	if err != nil {
		m.t.Fatalf("mapper: %v (%q)", err, l)
	}
	kind, rest, _ := strings.Cut(strings.TrimSpace(l), " ")
	if kind == "error" {
		return kind + " " + rest, ""
	}
	b, err := hex.DecodeString(rest)
	if err != nil {
		m.t.Fatalf("mapper: %q", l)
	}
	return kind, string(b)
}

func (m *mapper) show() string {
	m.t.Helper()
	if _, err := io.WriteString(m.in, "show\n"); err != nil {
		m.t.Fatal(err)
	}
	_, b := m.line()
	return b
}

func (m *mapper) close() {
	m.in.Close()
	m.cmd.Wait()
}

// A shared read-only mapping of a file that another descriptor holds open
// for writing failed with ENODEV: such readers are served past the page
// cache (FOPEN_DIRECT_IO, openLatest) and the mount did not ask the kernel
// for DIRECT_IO_ALLOW_MMAP. The mapping shows the committed version, as
// read(2) of its descriptor does, and a version that lands meanwhile.
func TestMapWhileWriterHolds(t *testing.T) {
	w := newWorld(t)
	w.save("m", []byte("version one\n"))
	w.mountRW()
	h := openFile(t, w.p("m"), os.O_RDWR)
	defer h.Close()
	m := newMapper(t, w.p("m"))
	if got := m.show(); got != "version one\n" {
		t.Fatalf("mapping while a writer holds the file: %q", got)
	}
	// A version saved elsewhere lands: the mapping's pages go, and it
	// shows the new bytes (its first 12), as read(2) would.
	w.save("m", []byte("saved elsewhere\n"))
	if !waitFor(func() bool { return m.show() == "saved elsewh" }) {
		t.Fatalf("mapping after a new version landed: %q", m.show())
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
}

// A mapping's page faults read the committed version through the reader's
// descriptor, and a short read there made the kernel take the committed
// end for the file's size (fuse_short_read), the writers' size being
// larger: the writer's lseek(SEEK_END) then answered 12, not 13, and its
// next write went over its own last byte.
func TestMapWhileWriterHoldsKeepsWritersSize(t *testing.T) {
	w := newWorld(t)
	w.save("m", []byte("version one\n"))
	w.mountRW()
	h := openFile(t, w.p("m"), os.O_RDWR)
	defer h.Close()
	if _, err := h.WriteAt([]byte("TWO and more\n"), 0); err != nil {
		t.Fatal(err)
	}
	m := newMapper(t, w.p("m"))
	// The mapping is as long as stat says (the writer's 13 bytes) and
	// holds the committed ones, as read(2) gives.
	if got := m.show(); !strings.HasPrefix(got, "version one\n") {
		t.Fatalf("mapping while a writer holds changes: %q", got)
	}
	end, err := h.Seek(0, io.SeekEnd)
	if err != nil || end != 13 {
		t.Fatalf("the writer's lseek(SEEK_END) after a mapping's faults: %d, %v; want 13", end, err)
	}
	if _, err := h.Write([]byte("APP\n")); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	const want = "TWO and more\nAPP\n"
	if got := string(w.read("m")); got != want {
		t.Fatalf("after the writer's close: %q, want %q", got, want)
	}
	// A new mapping shows the new version (the close committed it).
	if got := newMapper(t, w.p("m")).show(); got != want {
		t.Fatalf("a new mapping after the close: %q, want %q", got, want)
	}
}
