package main

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/catalog/postgres"
	"github.com/lamina-bio/lamina/catalog/postgres/pgtest"
	"github.com/lamina-bio/lamina/instance"
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
	raw, packs := bucketPacks(t, srv.Config(bucket), 3)
	deleteFullPacks(t, raw, packs)
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

// TestS3GetOfLostPackNamesVersion: the CLI waited up to the pack wait (30
// s) for a pack missing from the bucket whatever the version's age, where
// the mount waits only for a version saved less than
// cache.PackUploadWindow ago, and its error named a chunk and a pack, not
// the version. get, cache prefetch and gc of an old version's lost pack
// fail at once now (the wait here is 10 minutes: a command is stopped
// long before, and the error says the pack was not waited for), and get's
// and prefetch's errors name KEY@vN, with or without @vN in the argument.
func TestS3GetOfLostPackNamesVersion(t *testing.T) {
	e := newS3Env(t, "LAMINA_PACK_WAIT=10m")
	ctx := context.Background()
	// Three packs: the two full ones hold the file's start; the last its
	// end and the manifest.
	e.ok("save", e.file("a.bin", randomBytes(t, 40<<20)), "--key", "d/a.bin")
	// d/old.bin@v1, saved two hours ago (before the window), has the
	// same content: the catalog takes the time it is given.
	for _, kv := range e.env {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "XDG_") {
			t.Setenv(k, v)
		}
	}
	dirs, err := instance.UserDirs()
	if err != nil {
		t.Fatal(err)
	}
	s, err := dirs.Current("s3")
	if err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.OpenBolt(s.Catalog, catalog.BoltOptions{Hold: true})
	if err != nil {
		t.Fatal(err)
	}
	v, err := cat.ByKey(ctx, "d/a.bin", 1)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(-2 * cache.PackUploadWindow)
	if _, err := cat.Save(ctx, []catalog.NewVersion{{Key: "d/old.bin", Kind: v.Kind, Suffix: v.Suffix, Size: v.Size,
		Digest: v.Digest, Manifest: v.Manifest, CreatedBy: v.CreatedBy, CreatedAt: at, Mtime: at}}); err != nil {
		t.Fatal(err)
	}
	cat.Close()
	raw, packs := bucketPacks(t, e.srv.Config(e.bucket), 3)
	deleteFullPacks(t, raw, packs)
	var last string // the pack of the manifest
	for _, p := range packs {
		if p.Size < 16<<20 {
			last = p.Name
		}
	}
	e.ok("cache", "clear")
	// run runs the CLI with env added, stopped after a minute: a command
	// that waits the 10 minutes for a pack fails the test.
	run := func(env []string, args ...string) string {
		t.Helper()
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		cmd := exec.CommandContext(cctx, e.bin, args...)
		cmd.Env = append(append([]string(nil), e.env...), env...)
		var out, errs bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errs
		err := cmd.Run()
		e.said.WriteString(errs.String())
		if cctx.Err() != nil {
			t.Fatalf("lamina %s waited for a pack of a version saved %s ago:\n%s", strings.Join(args, " "), time.Since(at).Round(time.Minute), errs.String())
		}
		if err == nil {
			t.Fatalf("lamina %s of a lost pack: no error", strings.Join(args, " "))
		}
		t.Logf("lamina %s: %s", strings.Join(args, " "), errs.String())
		return errs.String()
	}
	out := filepath.Join(e.dir, "out.bin")
	check := func(what string, errs string, want ...string) {
		t.Helper()
		for _, w := range append(want, "missing from storage") {
			if !strings.Contains(errs, w) {
				t.Errorf("%s: the error does not say %q:\n%s", what, w, errs)
			}
		}
	}
	for _, args := range [][]string{
		{"get", "d/old.bin@v1", "-o", out},
		{"get", "d/old.bin", "-o", "-"},
		{"cache", "prefetch", "d/old.bin"},
	} {
		check(strings.Join(args, " "), run(nil, args...), "d/old.bin@v1", "not waited for")
	}
	if _, err := os.Stat(out); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a failed get left %s: %v", out, err)
	}
	// A version saved now is waited for (here 1 s), then named.
	check("get of a recent version", run([]string{"LAMINA_PACK_WAIT=1s"}, "get", "d/a.bin", "-o", out), "d/a.bin@v1", "waited 1s")

	// The manifest's pack lost too: get fails reading it.
	if err := raw.Delete(ctx, last); err != nil {
		t.Fatal(err)
	}
	e.ok("cache", "clear")
	check("get of a lost manifest", run(nil, "get", "d/old.bin", "-o", out), "d/old.bin@v1", filepath.Base(last), "not waited for")
	// gc reads every version's manifest: d/old.bin's alone now.
	e.ok("delete", "--permanent", "--yes", "d/a.bin")
	// Its advice unblocks gc: saving the file again left it stuck on
	// d/old.bin@v1.
	said := run(nil, "gc")
	check("gc", said, "gc stopped, nothing deleted: d/old.bin@v1", "not waited for", "`lamina delete --permanent d/old.bin`")
	if strings.Contains(said, "save the file again") {
		t.Errorf("gc's advice does not unblock it:\n%s", said)
	}
	e.ok("delete", "--permanent", "--yes", "d/old.bin")
	e.ok("gc")
}

// TestTeamPrefetchOfLostPackNamesVersion: on a shared catalog, cache
// prefetch goes through the mount daemon, whose reads wait for a pack not
// in storage yet; a prefetch told the store no version, so it waited the
// whole wait for the lost pack of a version of any age. It fails at once
// for an old version now, and names it.
func TestTeamPrefetchOfLostPackNamesVersion(t *testing.T) {
	ctx := context.Background()
	srv, bucket, db, a, b := team(t)
	b.env = append(b.env, "LAMINA_PACK_WAIT=10m")
	a.ok("save", a.file("a.bin", randomBytes(t, 40<<20)), "--key", "d/a.bin")
	// d/old.bin@v1, saved two hours ago, has the same content.
	cat, err := postgres.Open(ctx, db, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	v, err := cat.ByKey(ctx, "d/a.bin", 1)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(-2 * cache.PackUploadWindow)
	if _, err := cat.Save(ctx, []catalog.NewVersion{{Key: "d/old.bin", Kind: v.Kind, Suffix: v.Suffix, Size: v.Size,
		Digest: v.Digest, Manifest: v.Manifest, CreatedBy: v.CreatedBy, CreatedAt: at, Mtime: at}}); err != nil {
		t.Fatal(err)
	}
	cat.Close()
	raw, packs := bucketPacks(t, srv.Config(bucket), 3)
	deleteFullPacks(t, raw, packs)
	mb := filepath.Join(b.dir, "mnt")
	b.mount(mb) // its daemon waits up to 10 minutes for a pack
	// Stopped after a minute: a prefetch that waits for the pack fails
	// the test.
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(cctx, b.bin, "cache", "prefetch", "d/old.bin")
	cmd.Env = b.env
	var errs bytes.Buffer
	cmd.Stderr = &errs
	err = cmd.Run()
	t.Logf("cache prefetch d/old.bin: %v\n%s", err, errs.String())
	if cctx.Err() != nil {
		t.Fatalf("cache prefetch through the daemon waited for a pack of a version saved %s ago", time.Since(at).Round(time.Minute))
	}
	if err == nil || !strings.Contains(errs.String(), "d/old.bin@v1") || !strings.Contains(errs.String(), "not waited for") {
		t.Errorf("cache prefetch of an old version's lost pack: %v; want an error naming d/old.bin@v1, not waited for:\n%s", err, errs.String())
	}
}

// TestTeamOpenOfOldLostManifestFailsAtOnce: the mount told the store which
// version a READ is of, not which version an open read the manifest of:
// an open of a version saved long ago whose pack is lost waited the whole
// pack wait. It fails at once now, and the log says the pack was not
// waited for.
func TestTeamOpenOfOldLostManifestFailsAtOnce(t *testing.T) {
	ctx := context.Background()
	srv, bucket, db, a, b := team(t)
	b.env = append(b.env, "LAMINA_PACK_WAIT=10m")
	a.ok("save", a.file("a.bin", randomBytes(t, 1<<20)), "--key", "d/a.bin") // one pack, with the manifest
	cat, err := postgres.Open(ctx, db, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	v, err := cat.ByKey(ctx, "d/a.bin", 1)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(-2 * cache.PackUploadWindow)
	if _, err := cat.Save(ctx, []catalog.NewVersion{{Key: "d/old.bin", Kind: v.Kind, Suffix: v.Suffix, Size: v.Size,
		Digest: v.Digest, Manifest: v.Manifest, CreatedBy: v.CreatedBy, CreatedAt: at, Mtime: at}}); err != nil {
		t.Fatal(err)
	}
	cat.Close()
	raw, packs := bucketPacks(t, srv.Config(bucket), 1)
	if err := raw.Delete(ctx, packs[0].Name); err != nil {
		t.Fatal(err)
	}
	mb := filepath.Join(b.dir, "mnt")
	b.mount(mb) // its daemon waits up to 10 minutes for a pack
	done := make(chan error, 1)
	go func() {
		f, err := os.Open(filepath.Join(mb, "d", "old.bin"))
		if err == nil {
			f.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, syscall.EIO) {
			t.Fatalf("open of an old version whose pack is lost: %v, want EIO", err)
		}
	case <-time.After(time.Minute):
		t.Fatalf("open of a version saved %s ago waited for its lost pack", time.Since(at).Round(time.Minute))
	}
	log, _ := os.ReadFile(filepath.Join(b.dir, "run", "lamina", "lab", "mount.log"))
	if !strings.Contains(string(log), "d/old.bin@v1") || !strings.Contains(string(log), "not waited for") {
		t.Errorf("the mount's log does not name d/old.bin@v1, its pack not waited for:\n%s", log)
	}
}

// TestS3PrefetchLostPackThroughMount: `cache prefetch` through a mount
// daemon of a version whose pack is lost named the version twice
// ("k1@v1: k1@v1: …"), lacked the hint on missing data (the error's class
// does not cross the daemon's socket), and stopped there: the versions
// named after it were not fetched. Each failure is reported once, with
// the hint, the others are fetched, and the exit is non-zero.
func TestS3PrefetchLostPackThroughMount(t *testing.T) {
	e := newS3Env(t)
	ctx := context.Background()
	raw, err := s3b.Open(ctx, e.srv.Config(e.bucket))
	if err != nil {
		t.Fatal(err)
	}
	packs := func() map[string]bool {
		p := map[string]bool{}
		raw.List(ctx, "lab/packs/", func(i storage.Info) error { p[i.Name] = true; return nil })
		return p
	}
	e.ok("save", e.file("v1.bin", randomBytes(t, 1<<20)), "--key", "k1")
	old := packs()
	e.ok("save", e.file("v2.bin", randomBytes(t, 1<<20)), "--key", "k1")
	if len(old) != 1 || len(packs()) != 2 {
		t.Fatalf("packs: %v then %v", old, packs())
	}
	for p := range old {
		if err := raw.Delete(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	e.mountS3(filepath.Join(e.dir, "mnt"))
	e.ok("cache", "clear")
	out, stderr, err := e.run("cache", "prefetch", "k1@v1", "k1@v2")
	if err == nil {
		t.Fatalf("prefetch of a lost version succeeded:\n%s%s", out, stderr)
	}
	if strings.Contains(stderr, "k1@v1: k1@v1") || !strings.Contains(stderr, "k1@v1") {
		t.Errorf("the failure names k1@v1 twice or not at all:\n%s", stderr)
	}
	if !strings.Contains(stderr, "The data of that version is missing from storage") {
		t.Errorf("no hint on missing data:\n%s", stderr)
	}
	if !strings.Contains(out, "k1@v2: ") || !strings.Contains(out, "in the cache") {
		t.Errorf("k1@v2 was not fetched after k1@v1 failed (%v):\n%s\n%s", err, out, stderr)
	}
}

// bucketPacks opens the bucket past the instance and returns the packs of
// instance prefix lab/, failing the test unless there are want of them.
func bucketPacks(t *testing.T, cfg s3b.Config, want int) (*s3b.Backend, []storage.Info) {
	t.Helper()
	raw, err := s3b.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var packs []storage.Info
	raw.List(context.Background(), "lab/packs/", func(i storage.Info) error { packs = append(packs, i); return nil })
	if len(packs) != want {
		t.Fatalf("packs: %v, want %d", packs, want)
	}
	return raw, packs
}

// deleteFullPacks deletes the full packs (16 MiB and more) of packs from
// the bucket: what a file's start is in, not its manifest.
func deleteFullPacks(t *testing.T, raw *s3b.Backend, packs []storage.Info) {
	t.Helper()
	for _, p := range packs {
		if p.Size >= 16<<20 {
			if err := raw.Delete(context.Background(), p.Name); err != nil {
				t.Fatal(err)
			}
		}
	}
}
