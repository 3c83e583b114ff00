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

// A pack gc deleted (absent, and its mark there) is not waited for: the
// read fails at once saying gc deleted it. Reads of packs never uploaded
// made with WithPackWaitUntil wait no longer than its bound in all.
func TestReadOfPackGCDeletedFailsAtOnce(t *testing.T) {
	data := randomBytes(22, 200<<10)
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
	// Bounds only so that a wait for the upload fails the test rather
	// than hangs it.
	reader.SetPackWait(time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bounded := cache.WithPackWaitUntil(ctx, time.Now().Add(100*time.Millisecond))
	if _, err := reader.ReadChunk(bounded, f.Chunks[0], nil); !errors.Is(err, cache.ErrPackMissing) || errors.Is(err, cache.ErrPackDeleted) {
		t.Fatalf("a pack not uploaded, its wait bounded: %v, want not in storage", err)
	}
	pack := f.Chunks[0].Pack
	note := "deleted by lamina gc on b (someone) at 2026-01-02T03:04:05Z (0011223344556677)\n"
	if err := local.Put(ctx, "gc/condemned/"+pack, []byte(note)); err != nil {
		t.Fatal(err)
	}
	reader.SetPackWait(time.Hour) // forgets the wait in vain above
	_, err = reader.ReadChunk(ctx, f.Chunks[0], nil)
	if !errors.Is(err, cache.ErrPackDeleted) || !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "lamina gc on b (someone) at 2026-01-02T03:04:05Z") || !strings.Contains(err.Error(), "deleted for good") {
		t.Fatalf("a pack gc deleted: %v, want deleted by gc at once", err)
	}
}
