package cache_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/cache"
)

// TestFoldersRecreatedWhenRemoved checks that removing the cache folder
// while in use (rm -rf ~/.cache/lamina/NAME under a mount) does not break
// every later write until a restart: the staging folder is made again, the
// loss of what was staged and not uploaded is logged as an error, and the
// disk cache's Rescan (cache clear through the daemon) does not fail on
// the missing blocks folder.
func TestFoldersRecreatedWhenRemoved(t *testing.T) {
	ctx := context.Background()
	remote := newFlaky(t)
	remote.down.Store(true) // what is staged stays staged
	root := t.TempDir()
	var logs lockedBuffer // the queue's worker logs while the test reads
	log := slog.New(slog.NewTextHandler(&logs, nil))
	up, err := cache.OpenUploads(remote, filepath.Join(root, "uploads"), cache.UploadOptions{MaxDelay: time.Hour, AdoptEvery: time.Hour, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	disk, err := cache.OpenDiskCache(up, root, cache.DiskCacheOptions{Limit: 1 << 30, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer disk.Close()
	if err := disk.Put(ctx, "packs/aa/one", []byte("pending one")); err != nil {
		t.Fatal(err)
	}
	// The queue's worker may make the folder again meanwhile: like rm -rf,
	// try until it is gone.
	for i := 0; ; i++ {
		if err := os.RemoveAll(root); err == nil || i == 10 {
			break
		}
	}
	if err := disk.Put(ctx, "packs/bb/two", []byte("after the rm")); err != nil {
		t.Fatalf("Put after the folder was removed: %v", err)
	}
	if err := disk.Sync(ctx); err != nil {
		t.Fatalf("Sync after the folder was removed: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "uploads", "packs%2Fbb%2Ftwo")); err != nil || string(b) != "after the rm" {
		t.Errorf("the new write is not staged: %q, %v", b, err)
	}
	if l := logs.String(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, "packs/aa/one") {
		t.Errorf("the loss of a pending upload was not logged as an error naming it:\n%s", l)
	}
	if err := disk.Rescan(); err != nil {
		t.Fatalf("Rescan after the folder was removed: %v", err)
	}
	disk.Clear()
}

// lockedBuffer is a bytes.Buffer safe to write and read at once.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
