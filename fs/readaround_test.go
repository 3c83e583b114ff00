package fs_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/cache"
	lfs "github.com/lamina-bio/lamina/fs"
	"golang.org/x/sys/unix"
)

// countingContent is a mount's content with the bytes of the chunks read
// and warmed (asked to be fetched ahead) counted.
type countingContent struct {
	s            *cache.Store
	read, warmed atomic.Int64
}

func (c *countingContent) LoadManifest(ctx context.Context, r cache.Ref) (*cache.Manifest, error) {
	return c.s.LoadManifest(ctx, r)
}

func (c *countingContent) ReadChunk(ctx context.Context, ch cache.Chunk, dst []byte) ([]byte, error) {
	c.read.Add(ch.Size)
	return c.s.ReadChunk(ctx, ch, dst)
}

func (c *countingContent) ReadChunkInto(ctx context.Context, ch cache.Chunk, dst []byte) error {
	c.read.Add(ch.Size)
	return c.s.ReadChunkInto(ctx, ch, dst)
}

func (c *countingContent) Warm(chunks []cache.Chunk) {
	for _, ch := range chunks {
		c.warmed.Add(ch.Size)
	}
	c.s.Warm(chunks)
}

// settled waits until the counts stop moving: the kernel reads around a
// fault asynchronously, and the fault returns when its own page is in.
func (c *countingContent) settled() (read, warmed int64) {
	deadline := time.Now().Add(10 * time.Second)
	read, warmed = c.read.Load(), c.warmed.Load()
	for time.Now().Before(deadline) {
		time.Sleep(300 * time.Millisecond)
		r, w := c.read.Load(), c.warmed.Load()
		if r == read && w == warmed {
			break
		}
		read, warmed = r, w
	}
	return read, warmed
}

// TestMmapRandomFaultsFetchLittle: a page fault in a memory map of a
// version reads the mount's readahead window around it, and at the window
// of an S3 mount (one READ) warms nothing ahead of it. At 16 MiB each fault
// read 16 MiB and, those READs following one another, warmed up to 20 MiB
// more (cmd/lamina's TestS3MmapRandomFaultsFetchLittle counts the fetches).
func TestMmapRandomFaultsFetchLittle(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root sets a mount's readahead window")
	}
	w := newWorld(t)
	const size = 128 << 20
	data := random(size)
	w.save("m.bin", data)
	for _, tc := range []struct {
		name string
		kb   int
	}{
		{"S3Window", lfs.S3ReadAheadKB},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc := &countingContent{s: w.in.Store}
			w.mountContent = cc
			w.mount(lfs.MountOptions{ReadAheadKB: tc.kb}) // fresh: nothing in the kernel's cache
			// The window, and the two chunks (≤ 256 KiB) it cuts at its ends.
			limit := int64(tc.kb<<10 + 512<<10)
			// Faults 32 MiB apart: even 16 MiB read around each do not meet.
			var offs []string
			for off := 5<<20 + 12345; off < size; off += 32 << 20 {
				offs = append(offs, strconv.Itoa(off))
			}
			faults := int64(len(offs))
			got := faultIn(t, filepath.Join(w.dir, "m.bin"), size, offs)
			for i, o := range offs {
				off, _ := strconv.Atoi(o)
				if got[i] != data[off] {
					t.Fatalf("byte %d: %d, want %d", off, got[i], data[off])
				}
			}
			read, warmed := cc.settled()
			t.Logf("%d faults: %d KiB read, %d KiB warmed", faults, read>>10, warmed>>10)
			if read > faults*limit {
				t.Errorf("%d faults read %d KiB, want at most %d KiB", faults, read>>10, faults*limit>>10)
			}
			if warmed != 0 {
				t.Errorf("%d faults warmed %d KiB ahead, want none", faults, warmed>>10)
			}
		})
	}
}

// faultIn maps the first size bytes of path in another process (a page
// fault in the process that serves the mount would wait for itself) and
// returns the byte at each offset.
func faultIn(t *testing.T, path string, size int, offs []string) []byte {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestMmapFaultHelper$")
	cmd.Env = append(os.Environ(), "LAMINA_TEST_MMAP="+fmt.Sprintf("%s;%d;%s", path, size, strings.Join(offs, ",")))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("faulting process: %v: %s", err, out)
	}
	var got []byte
	for _, f := range strings.Fields(string(out)) {
		if b, ok := strings.CutPrefix(f, "byte="); ok {
			n, _ := strconv.Atoi(b)
			got = append(got, byte(n))
		}
	}
	if len(got) != len(offs) {
		t.Fatalf("faulting process: %d bytes, want %d: %s", len(got), len(offs), out)
	}
	return got
}

// TestMmapFaultHelper is faultIn's other process.
func TestMmapFaultHelper(t *testing.T) {
	args := strings.Split(os.Getenv("LAMINA_TEST_MMAP"), ";")
	if len(args) != 3 {
		t.Skip("run by TestMmapRandomFaultsFetchLittle")
	}
	size, _ := strconv.Atoi(args[1])
	f, err := os.Open(args[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	for _, o := range strings.Split(args[2], ",") {
		off, _ := strconv.Atoi(o)
		fmt.Printf("byte=%d\n", m[off])
	}
}
