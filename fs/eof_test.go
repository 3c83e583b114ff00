package fs_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/catalog"
	lfs "github.com/lamina-bio/lamina/fs"
	"github.com/lamina-bio/lamina/instance"
	"github.com/lamina-bio/lamina/storage"
)

// eofBackend fails its reads, while fail is set, the way the S3 SDK does
// when the connection drops: an error that wraps io.EOF; with canceled
// set, as the SDK does when a context other than the caller's ends the
// request: one that wraps context.Canceled.
type eofBackend struct {
	storage.Backend
	fail     atomic.Bool
	canceled atomic.Bool
}

func (b *eofBackend) err() error {
	switch {
	case b.canceled.Load():
		return fmt.Errorf("operation error S3: GetObject: %w", context.Canceled)
	case b.fail.Load():
		return fmt.Errorf("request send failed: %w", io.EOF)
	}
	return nil
}

func (b *eofBackend) GetRange(ctx context.Context, name string, off, n int64) ([]byte, error) {
	if err := b.err(); err != nil {
		return nil, err
	}
	return b.Backend.GetRange(ctx, name, off, n)
}

func (b *eofBackend) Get(ctx context.Context, name string) ([]byte, error) {
	if err := b.err(); err != nil {
		return nil, err
	}
	return b.Backend.Get(ctx, name)
}

// A read whose request failed with an error that wraps io.EOF (the SDK's
// "request send failed … EOF" on a dropped connection) read as the end of
// the file: cat printed nothing, exited 0, and the kernel took the file
// for 0 bytes long. It is EIO, and the size stays.
func TestDroppedConnectionIsNotEOF(t *testing.T) {
	w, b, data := eofWorld(t)
	b.fail.Store(true)
	w.mount(lfs.MountOptions{})
	p := filepath.Join(w.dir, "big")
	got, err := os.ReadFile(p)
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("read with the connection dropping: %d bytes, err %v; want EIO", len(got), err)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Size() != int64(len(data)) {
		t.Fatalf("stat after the failed read: %v, %v; want %d bytes", fi, err, len(data))
	}
	b.fail.Store(false)
	if got := w.read("big"); len(got) != len(data) || string(got) != string(data) {
		t.Fatalf("read once the storage answers: %d bytes, want %d", len(got), len(data))
	}
}

// A read the storage failed with a cancel the reader never asked for (the
// SDK reports a request its own deadline ended as "context canceled") was
// EINTR, and readers try again on EINTR (Go's os.File does, silently): a
// read against such a storage never ended. It is EIO; EINTR stays for a
// READ the kernel interrupted.
func TestStorageCancelIsNotEINTR(t *testing.T) {
	w, b, _ := eofWorld(t)
	b.canceled.Store(true)
	w.mount(lfs.MountOptions{})
	fd, err := syscall.Open(filepath.Join(w.dir, "big"), syscall.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	buf := make([]byte, 4096)
	// One pread, not os.File's loop, which would retry EINTR for ever.
	if n, err := syscall.Pread(fd, buf, 0); err != syscall.EIO {
		t.Fatalf("read with the storage's requests cancelled: %d bytes, err %v; want EIO", n, err)
	}
}

// eofWorld is a catalog with a 3 MiB file "big" on an eofBackend.
func eofWorld(t *testing.T) (*world, *eofBackend, []byte) {
	needFUSE(t)
	tmp := t.TempDir()
	cat, err := catalog.OpenBolt(filepath.Join(tmp, "catalog.db"), catalog.BoltOptions{Hold: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	local, err := storage.CreateLocal(filepath.Join(tmp, "storage"))
	if err != nil {
		t.Fatal(err)
	}
	b := &eofBackend{Backend: local}
	store, err := cache.NewStore(b, filepath.Join(tmp, "index.db"), cache.DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	s := instance.Settings{Name: "t", Storage: local.Root(), DataDir: filepath.Join(tmp, "data")}
	w := &world{t: t, in: instance.New(s, cat, local, store), cat: cat, tmp: tmp}
	data := make([]byte, 3<<20)
	for i := range data {
		data[i] = byte(i*7 + i>>13)
	}
	w.save("big", data)
	return w, b, data
}
