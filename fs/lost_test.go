package fs_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/lamina-bio/lamina/catalog"
	lfs "github.com/lamina-bio/lamina/fs"
)

// lostCatalog is a real catalog whose reads fail with catalog.ErrDamaged
// once lost is set: a PostgreSQL store latched foreign (its database was
// reset and given to another instance).
type lostCatalog struct {
	*catalog.Bolt
	lost atomic.Bool
}

var errLost = catalog.Errorf(catalog.ErrDamaged, "the database no longer holds this instance's catalog")

func (c *lostCatalog) Children(ctx context.Context, prefix string) (catalog.Dir, error) {
	if c.lost.Load() {
		return catalog.Dir{}, errLost
	}
	return c.Bolt.Children(ctx, prefix)
}

func (c *lostCatalog) ByKey(ctx context.Context, key string, n int) (catalog.Version, error) {
	if c.lost.Load() {
		return catalog.Version{}, errLost
	}
	return c.Bolt.ByKey(ctx, key, n)
}

func (c *lostCatalog) Versions(ctx context.Context, key string, trash bool) ([]catalog.Version, error) {
	if c.lost.Load() {
		return nil, errLost
	}
	return c.Bolt.Versions(ctx, key, trash)
}

// syncBuffer is a log sink safe for the mount's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Once the catalog is lost, ForgetListings has the kernel forget what it
// cached too: names and attributes the kernel had (for a minute, the
// latest timeout) were still served, so `ls` and `stat` of names listed
// before the latch went on working, and their cached pages were read. A
// stat of a known name now fails at once. Each failed request was logged
// too; the lost catalog is logged once.
func TestForgetListingsDropsKernelCache(t *testing.T) {
	w := newWorld(t)
	w.save("d/a.txt", []byte("a\n"))
	w.save("d/sub/b.txt", []byte("b\n"))
	w.save("top.txt", []byte("t\n"))
	cat := &lostCatalog{Bolt: w.cat}
	w.mountCat = cat
	var logs syncBuffer
	w.mount(lfs.MountOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	names := []string{"d", "d/a.txt", "d/sub", "d/sub/b.txt", "top.txt"}
	for _, n := range names {
		if _, err := os.Stat(w.p(n)); err != nil {
			t.Fatal(err)
		}
	}
	if got := string(w.read("d/a.txt")); got != "a\n" { // pages in the kernel's cache
		t.Fatalf("d/a.txt = %q", got)
	}
	w.ls("d")

	cat.lost.Store(true)
	w.mnt.ForgetListings()
	for _, n := range names {
		if fi, err := os.Stat(w.p(n)); !errors.Is(err, syscall.EIO) {
			t.Errorf("stat %s after the catalog was lost: %v %v; want EIO", n, fi, err)
		}
	}
	if b, err := os.ReadFile(w.p("d/a.txt")); !errors.Is(err, syscall.EIO) {
		t.Errorf("read of d/a.txt after the catalog was lost: %q %v; want EIO", b, err)
	}
	if es, err := os.ReadDir(w.p("d")); !errors.Is(err, syscall.EIO) {
		t.Errorf("listing of d after the catalog was lost: %v %v; want EIO", es, err)
	}
	for range 20 {
		os.Stat(w.p("d/a.txt"))
	}
	if n := strings.Count(logs.String(), "no longer holds"); n != 1 {
		t.Errorf("the lost catalog logged %d times, want once:\n%s", n, logs.String())
	}
}
