package fs_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/lamina-bio/lamina/cache"
	lfs "github.com/lamina-bio/lamina/fs"
	"github.com/lamina-bio/lamina/storage"
)

// An open of a version whose pack storage does not hold (not uploaded yet
// by the workstation that saved it, or lost) fails with EIO and a log line
// naming the pack and the version: it was ENOENT, for a name that exists,
// and logged nothing.
func TestOpenWithoutItsPackIsEIO(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	w.save("d/lost.txt", []byte("gone\n"))
	var packs []string
	err := w.in.Backend.List(ctx, "packs/", func(i storage.Info) error { packs = append(packs, i.Name); return nil })
	if err != nil || len(packs) == 0 {
		t.Fatalf("packs: %v, %v", packs, err)
	}
	for _, p := range packs {
		if err := w.in.Backend.Delete(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	// Another workstation's store: the one that saved keeps the manifest.
	store, err := cache.NewStore(w.in.Backend, filepath.Join(w.tmp, "other-index.db"), cache.DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	w.in.Store = store
	var logs syncBuffer
	w.mount(lfs.MountOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	f, err := os.Open(w.p("d/lost.txt"))
	if err == nil {
		f.Close()
		t.Fatal("open of a version whose pack is gone succeeded")
	}
	if !errors.Is(err, syscall.EIO) {
		t.Errorf("open of a version whose pack is gone: %v, want EIO", err)
	}
	id := strings.TrimSuffix(filepath.Base(packs[0]), filepath.Ext(packs[0]))
	if l := logs.String(); !strings.Contains(l, "d/lost.txt@v1") || !strings.Contains(l, id) {
		t.Errorf("the log does not name the version and the pack %s:\n%s", id, l)
	}
}
