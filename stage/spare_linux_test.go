package stage_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/lamina-bio/lamina/stage"
)

// delayed reports whether the first extent of the file at path is still
// delayed allocation (FIEMAP_EXTENT_DELALLOC): its bytes are in the page
// cache, not yet written back. ok is false where FIEMAP does not work.
func delayed(t *testing.T, path string) (delalloc, ok bool) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// struct fiemap (32 bytes) and one struct fiemap_extent (56); no
	// FIEMAP_FLAG_SYNC, which would write the file back first.
	var buf [32 + 56]uint8
	*(*uint64)(unsafe.Pointer(&buf[8])) = ^uint64(0) // fm_length
	*(*uint32)(unsafe.Pointer(&buf[24])) = 1         // fm_extent_count
	const fsIocFiemap = 0xC020660B
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), fsIocFiemap, uintptr(unsafe.Pointer(&buf[0]))); e != 0 {
		return false, false
	}
	if *(*uint32)(unsafe.Pointer(&buf[20])) == 0 { // fm_mapped_extents
		return false, false
	}
	const extentDelalloc = 0x4
	return *(*uint32)(unsafe.Pointer(&buf[32+40]))&extentDelalloc != 0, true
}

// stagedFile returns the path and inode of the one staging file in dir
// (neither a spare nor the journal).
func stagedFile(t *testing.T, dir string) (string, uint64) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), stage.SparePrefix) && e.Name() != stage.JournalName {
			found = append(found, e.Name())
		}
	}
	if len(found) != 1 {
		t.Fatalf("staging files %v, want one", found)
	}
	p := filepath.Join(dir, found[0])
	info, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return p, info.Sys().(*syscall.Stat_t).Ino
}

// A staging file reused from a spare keeps its bytes in the page cache at
// its close, as a new one does. Spares were emptied by truncate(2), which
// marks an ext4 file for "replace by truncate" (auto_da_alloc): the next
// close of it then wrote its pages back at once, in the daemon's RELEASE —
// about 5% of the mount's CPU per small file created.
func TestReusedStagingFileNotWrittenBackAtClose(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s, write := deferredStage(t, e)
	body := strings.Repeat("4 KiB of a small output file\n", 142)
	control := false
	for i := range 5 {
		// Background writeback (other programs' dirty pages) may write a
		// file back at any time: one delayed file of five attempts is the
		// proof, none is the bug.
		write(fmt.Sprintf("r/new%d.txt", i), body)
		p, _ := stagedFile(t, e.dir)
		d, ok := delayed(t, p)
		if !ok {
			t.Skip("FIEMAP does not work on the staging folder's file system")
		}
		if err := s.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if control = d; d {
			break
		}
	}
	if !control {
		t.Skip("no delayed allocation on the staging folder's file system")
	}
	for i := range 5 {
		_, spare := theSpare(t, e.dir)
		write(fmt.Sprintf("r/reused%d.txt", i), body)
		p, ino := stagedFile(t, e.dir)
		if ino != spare {
			t.Fatalf("the staging file (inode %d) is not the spare (inode %d)", ino, spare)
		}
		if d, _ := delayed(t, p); d {
			return
		}
		if err := s.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	t.Fatal("a staging file reused from a spare was written back at its close, five times of five")
}

// theSpare returns the path and inode of the first spare in dir (the tests
// above keep one).
func theSpare(t *testing.T, dir string) (string, uint64) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), stage.SparePrefix) {
			info, err := e.Info()
			if err != nil {
				t.Fatal(err)
			}
			return filepath.Join(dir, e.Name()), info.Sys().(*syscall.Stat_t).Ino
		}
	}
	t.Fatal("no spare")
	return "", 0
}
