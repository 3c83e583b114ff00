package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/lamina-bio/lamina/storage"
	s3b "github.com/lamina-bio/lamina/storage/s3"
)

// TestS3LostPackFailsAtOnce: with a catalog file no other workstation
// writes to, a pack missing from the bucket is lost, not on its way: a
// read of it waited 30 s for its upload all the same, and the kernel
// retries failed READs (a minute for a small file, 6 for a large one).
// It fails at once now, and the log names the version and the pack (it
// named a chunk digest).
func TestS3LostPackFailsAtOnce(t *testing.T) {
	e := newS3Env(t)
	ctx := context.Background()
	e.ok("save", e.file("lost.bin", randomBytes(t, 1<<20)), "--key", "d/lost.bin")
	mnt := e.mountS3(filepath.Join(e.dir, "mnt"))
	f, err := os.Open(filepath.Join(mnt, "d", "lost.bin")) // reads the manifest
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	raw, err := s3b.Open(ctx, e.srv.Config(e.bucket))
	if err != nil {
		t.Fatal(err)
	}
	var packs []string
	raw.List(ctx, "lab/packs/", func(i storage.Info) error { packs = append(packs, i.Name); return nil })
	if len(packs) != 1 {
		t.Fatalf("packs: %v", packs)
	}
	if err := raw.Delete(ctx, packs[0]); err != nil {
		t.Fatal(err)
	}
	e.ok("cache", "clear") // through the daemon: its blocks and sizes
	n0 := e.proxy.Requests()
	_, err = f.ReadAt(make([]byte, 4096), 0)
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("read of a lost pack: %v, want EIO", err)
	}
	if n := e.proxy.Requests() - n0; n > 10 {
		t.Errorf("a read of a lost pack asked storage %d times: it waited for an upload no one will make", n)
	}
	log := e.daemonLog()
	if id := filepath.Base(packs[0]); !strings.Contains(log, "d/lost.bin@v1") || !strings.Contains(log, id) {
		t.Errorf("the mount's log does not name the version and the pack %s:\n%s", id, log)
	}
}
