package fs_test

import (
	"bytes"
	"os"
	"os/exec"
	"testing"
)

// Readers of a file that writers hold are served past the page cache
// (FOPEN_DIRECT_IO, openLatest) with the committed version. Letting such a
// reader map the file (DIRECT_IO_ALLOW_MMAP, tried and reverted this
// session) refilled the inode's page cache, which the writers' handles
// share, with the committed bytes: the writer read back stale bytes and
// wrote whole stale pages over its own changes (audit e1). The mapping is
// refused (ENODEV) instead; the writer's bytes must survive the attempt.
func TestMapAttemptKeepsWritersBytes(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("no python3")
	}
	w := newWorld(t)
	w.save("rmw", bytes.Repeat([]byte("."), 8192))
	w.mountRW()
	h := openFile(t, w.p("rmw"), os.O_RDWR)
	defer h.Close()
	if _, err := h.WriteAt([]byte("HEADER-V2"), 0); err != nil {
		t.Fatal(err)
	}
	// What numpy's mmap_mode='r' does, from another process (a fault in
	// the test's own process would stop its FUSE server with it).
	out, err := exec.Command("python3", "-c", `
import mmap, sys
f = open(sys.argv[1], "rb")
try:
    m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    m[:]
    print("mapped")
except OSError as e:
    print("refused", e)
`, w.p("rmw")).CombinedOutput()
	if err != nil {
		t.Fatalf("mapper: %v\n%s", err, out)
	}
	t.Logf("mapper: %s", bytes.TrimSpace(out))
	blk := make([]byte, 4096)
	if _, err := h.ReadAt(blk, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(blk, []byte("HEADER-V2")) {
		t.Fatalf("the writer reads back %q after another process's mapping, not its own bytes", blk[:16])
	}
	copy(blk[100:], "DATA")
	if _, err := h.WriteAt(blk, 0); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	got := w.read("rmw")
	if !bytes.HasPrefix(got, []byte("HEADER-V2")) || string(got[100:104]) != "DATA" || len(got) != 8192 {
		t.Fatalf("version after the writer's close: %q…, %d bytes; want HEADER-V2 at 0 and DATA at 100", got[:110], len(got))
	}
}
