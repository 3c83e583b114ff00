package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/lamina-bio/lamina/catalog/postgres/pgtest"
	"github.com/lamina-bio/lamina/storage"
	s3b "github.com/lamina-bio/lamina/storage/s3"
	"github.com/lamina-bio/lamina/storage/s3/s3test"
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

// TestS3CorruptPackBlamesStorage: a pack damaged in the bucket made reads
// fail with "cache: corrupt object", which blamed the local cache for
// bytes that came fresh from S3 (the cache drops what fails verification
// and fetches it again), and the log named only a chunk. It says the copy
// in storage is corrupt now, with the version and the pack.
func TestS3CorruptPackBlamesStorage(t *testing.T) {
	e := newS3Env(t)
	ctx := context.Background()
	e.ok("save", e.file("bad.bin", randomBytes(t, 1<<20)), "--key", "d/bad.bin")
	raw, err := s3b.Open(ctx, e.srv.Config(e.bucket))
	if err != nil {
		t.Fatal(err)
	}
	var packs []string
	raw.List(ctx, "lab/packs/", func(i storage.Info) error { packs = append(packs, i.Name); return nil })
	if len(packs) != 1 {
		t.Fatalf("packs: %v", packs)
	}
	b, err := raw.Get(ctx, packs[0])
	if err != nil {
		t.Fatal(err)
	}
	for i := 100; i < 64<<10; i += 512 { // the file's first chunk, not the manifest at the end
		b[i] ^= 0xff
	}
	if err := raw.Put(ctx, packs[0], b); err != nil {
		t.Fatal(err)
	}
	e.ok("cache", "clear")
	mnt := e.mountS3(filepath.Join(e.dir, "mnt"))
	f, err := os.Open(filepath.Join(mnt, "d", "bad.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.ReadAt(make([]byte, 4096), 0); !errors.Is(err, syscall.EIO) {
		t.Fatalf("read of a corrupt pack: %v, want EIO", err)
	}
	log := e.daemonLog()
	id := filepath.Base(packs[0])
	if !strings.Contains(log, "d/bad.bin@v1") || !strings.Contains(log, id) || !strings.Contains(log, "the copy in storage is corrupt") {
		t.Errorf("the mount's log does not say the copy in storage of pack %s of d/bad.bin@v1 is corrupt:\n%s", id, log)
	}
	if strings.Contains(log, "cache: corrupt") {
		t.Errorf("the mount's log blames the cache:\n%s", log)
	}
}

// TestS3RestoredPackReadsAgain: the cache keeps an object's size in a
// file beside its blocks, trusted forever: after a pack was truncated in
// the bucket (and read so), then restored, every read of its end failed
// "range X past the end (N bytes)", across restarts, until `lamina cache
// clear`. A read past the end of a cached size checks the size in storage
// once now.
func TestS3RestoredPackReadsAgain(t *testing.T) {
	e := newS3Env(t)
	ctx := context.Background()
	data := randomBytes(t, 24<<20) // a full pack, and the rest with the manifest
	e.ok("save", e.file("a.bin", data), "--key", "d/a.bin")
	raw, err := s3b.Open(ctx, e.srv.Config(e.bucket))
	if err != nil {
		t.Fatal(err)
	}
	var big storage.Info
	raw.List(ctx, "lab/packs/", func(i storage.Info) error {
		if i.Size > big.Size {
			big = i
		}
		return nil
	})
	if big.Size < 16<<20 {
		t.Fatalf("no full pack: %+v", big)
	}
	b, err := raw.Get(ctx, big.Name)
	if err != nil {
		t.Fatal(err)
	}
	if err := raw.Put(ctx, big.Name, b[:6<<20]); err != nil {
		t.Fatal(err)
	}
	e.ok("cache", "clear")
	out := filepath.Join(e.dir, "out.bin")
	if _, errs, err := e.run("get", "d/a.bin", "-o", out); err == nil || !strings.Contains(errs, "past the end") {
		t.Fatalf("get of a truncated pack: %v\n%s", err, errs)
	}
	if err := raw.Put(ctx, big.Name, b); err != nil {
		t.Fatal(err)
	}
	if _, errs, err := e.run("get", "d/a.bin", "-o", out); err != nil {
		t.Fatalf("get once the pack is restored: %v\n%s", err, errs)
	}
	if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("get once the pack is restored: %v", err)
	}
}

// TestTeamLostPackWaitedForOnce: on a shared catalog a read waits for a
// pack another workstation has not uploaded yet; when the pack is lost
// instead, every READ of the file waited the whole wait (30 s), and the
// kernel retries failed READs: 6 minutes for a 200 MiB file. The first
// read waits; the next ones of that pack fail at once.
func TestTeamLostPackWaitedForOnce(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Real(t)
	bucket := srv.CreateBucket(t)
	proxy, via := s3test.NewProxy(t, srv)
	db := pgtest.URL(t)
	a, b := workstation(t, "ana", srv), workstation(t, "ben", srv)
	a.ok("init", "--storage", "s3://"+bucket+"/lab", "--endpoint", via.Endpoint, "--region", "us-east-1", "--path-style", "--db", db, "--name", "lab")
	b.ok("connect", "lab", "--db", db)
	b.env = append(b.env, "LAMINA_PACK_WAIT=2s")
	// Three packs: the two full ones, lost below, hold the file's start;
	// the last holds its end and the manifest.
	a.ok("save", a.file("lost.bin", randomBytes(t, 40<<20)), "--key", "d/lost.bin")
	raw, err := s3b.Open(ctx, srv.Config(bucket))
	if err != nil {
		t.Fatal(err)
	}
	var packs []storage.Info
	raw.List(ctx, "lab/packs/", func(i storage.Info) error { packs = append(packs, i); return nil })
	if len(packs) != 3 {
		t.Fatalf("packs: %v", packs)
	}
	for _, p := range packs {
		if p.Size >= 16<<20 {
			if err := raw.Delete(ctx, p.Name); err != nil {
				t.Fatal(err)
			}
		}
	}
	mb := filepath.Join(b.dir, "mnt")
	b.mount(mb)
	f, err := os.Open(filepath.Join(mb, "d", "lost.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Reads of the file's first chunks: one pack (a batch of chunks, ~4
	// MiB, goes into one pack).
	var asked []int
	for _, off := range []int64{0, 512 << 10, 1 << 20} {
		n0 := proxy.Requests()
		if _, err := f.ReadAt(make([]byte, 4096), off); !errors.Is(err, syscall.EIO) {
			t.Fatalf("read at %d of a lost pack: %v, want EIO", off, err)
		}
		asked = append(asked, proxy.Requests()-n0)
	}
	t.Logf("requests of each read: %v", asked)
	if asked[0] < 4 || asked[1] > 4 || asked[2] > 4 {
		t.Errorf("reads of a lost pack asked storage %v times: want the first to wait for it (several) and the next ones not (one or two, and the kernel's retry)", asked)
	}
}
