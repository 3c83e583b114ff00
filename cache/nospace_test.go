package cache_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/storage"
)

// TestPutFileNoSpace: a storage root on a full file system fails PutFile
// with ENOSPC, not with the "context canceled" of the workers it stopped
// (the CLI printed "cannot save r50: context canceled", the mount's close
// EINTR).
func TestPutFileNoSpace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	ctx := context.Background()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	b, err := storage.CreateLocal(filepath.Join(dir, "root"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := cache.NewStore(b, filepath.Join(t.TempDir(), "index.db"), cache.DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	w := s.NewWriter()
	defer w.Abort()
	_, _, err = w.PutFile(ctx, bytes.NewReader(randomBytes(9, 64<<20)), nil)
	if !errors.Is(err, syscall.ENOSPC) || errors.Is(err, context.Canceled) {
		t.Fatalf("PutFile of 64 MiB into 4 MiB: %v, want ENOSPC (not context canceled)", err)
	}
}
