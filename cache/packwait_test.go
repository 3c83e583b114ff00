package cache_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/storage"
)

// notYetUploaded is shared storage seen from another workstation: the
// objects are not there until the writer's upload queue has put them.
type notYetUploaded struct {
	storage.Backend
	uploaded atomic.Bool
}

func (b *notYetUploaded) GetRange(ctx context.Context, name string, off, n int64) ([]byte, error) {
	if !b.uploaded.Load() {
		return nil, fmt.Errorf("get %s: %w", name, storage.ErrNotFound)
	}
	return b.Backend.GetRange(ctx, name, off, n)
}

// A read of a version whose packs are not uploaded yet waits for them (up
// to the pack wait) rather than failing; without a wait, or past it, it
// fails with a not-found error that says so.
func TestReadWaitsForPackUpload(t *testing.T) {
	ctx := context.Background()
	data := randomBytes(21, 200<<10)
	local, err := storage.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	writer, err := cache.NewStore(local, t.TempDir()+"/index.db", cache.DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	f := storeFile(t, writer, data)

	remote := &notYetUploaded{Backend: local}
	reader, err := cache.NewStore(remote, t.TempDir()+"/index.db", cache.DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reader.ReadChunk(ctx, f.Chunks[0], nil); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("no pack wait: %v, want not found at once", err)
	}
	reader.SetPackWait(100 * time.Millisecond)
	if _, err := reader.ReadChunk(ctx, f.Chunks[0], nil); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "waited") {
		t.Fatalf("a pack never uploaded: %v", err)
	}
	reader.SetPackWait(time.Minute)
	go func() {
		time.Sleep(150 * time.Millisecond)
		remote.uploaded.Store(true)
	}()
	checkChunks(t, reader, f, data) // waits for the upload, then reads
}
