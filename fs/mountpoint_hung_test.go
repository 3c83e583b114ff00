package fs_test

import (
	"context"
	"errors"
	"os"
	"syscall"
	"testing"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	lfs "github.com/lamina-bio/lamina/fs"
)

// hungRoot is a file system whose root never answers (GETATTR, STATFS,
// OPENDIR) until released: a daemon stuck (a thread of a killed daemon
// waiting in the kernel) that nothing but an abort of its connection frees.
type hungRoot struct {
	fusefs.Inode
	release chan struct{}
}

func (r *hungRoot) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	<-r.release
	return 0
}

func (r *hungRoot) Opendir(ctx context.Context) syscall.Errno {
	<-r.release
	return 0
}

func (r *hungRoot) Getattr(ctx context.Context, fh fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	<-r.release
	out.Mode = syscall.S_IFDIR | 0o755
	return 0
}

// mountHung mounts a hungRoot in a new folder (as root), released and
// unmounted at the end of the test.
func mountHung(t *testing.T) string {
	if os.Geteuid() != 0 {
		t.Skip("mounts as root")
	}
	dir := t.TempDir()
	root := &hungRoot{release: make(chan struct{})}
	zero := time.Duration(0)
	server, err := fusefs.Mount(dir, root, &fusefs.Options{
		AttrTimeout: &zero, EntryTimeout: &zero,
		MountOptions: fuse.MountOptions{DirectMount: true, Name: "hungtest"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		close(root.release)
		server.Unmount()
	})
	return dir
}

// TestAbsOfHungMount: lamina umount (and mount) clean the path they are
// given with Abs, which looked at the mountpoint with lstat: on a mount
// whose daemon never answers, that stat waited in the kernel for good and
// `lamina umount` with it, so the one command that clears such a mount hung.
func TestAbsOfHungMount(t *testing.T) {
	dir := mountHung(t)
	done := make(chan string, 1)
	go func() {
		abs, _ := lfs.Abs(dir)
		done <- abs
	}()
	select {
	case abs := <-done:
		if abs != dir {
			t.Fatalf("Abs(%s) = %s", dir, abs)
		}
	case <-time.After(30 * time.Second): // it never returns if it waits: any bound tells
		t.Fatal("Abs of a mountpoint whose daemon does not answer waited in the kernel")
	}
}

// TestCheckMountpointOfHungMount: `lamina mount DIR` over a mount whose
// daemon never answers says it is stale instead of waiting with it.
func TestCheckMountpointOfHungMount(t *testing.T) {
	dir := mountHung(t)
	done := make(chan error, 1)
	go func() { done <- lfs.CheckMountpoint(dir) }()
	select {
	case err := <-done:
		if !errors.Is(err, lfs.ErrStale) {
			t.Fatalf("CheckMountpoint of a hung mount: %v, want ErrStale", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("CheckMountpoint of a mountpoint whose daemon does not answer waited in the kernel")
	}
}
