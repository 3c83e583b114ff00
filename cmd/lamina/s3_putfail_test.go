package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lamina-bio/lamina/storage"
	s3b "github.com/lamina-bio/lamina/storage/s3"
	"github.com/lamina-bio/lamina/storage/s3/s3test"
)

// objects counts the objects under prefix in the instance's root, asked of
// the server itself (past the proxy and any machine's staging folder).
func (e *s3Env) objects(prefix string) int {
	e.t.Helper()
	cfg := e.srv.Config(e.bucket)
	cfg.Prefix = "lab"
	b, err := s3b.Open(context.Background(), cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	n := 0
	if err := b.List(context.Background(), prefix, func(storage.Info) error { n++; return nil }); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// gc against a server that refuses PUTs and still allows GET, LIST and
// DELETE (a full bucket, a quota: Ceph's 403 QuotaExceeded) deletes
// nothing and says so. Its marks were staged locally, read back from
// there, and the packs deleted with no mark in the bucket: saves on other
// machines went on reusing them (audit: versions lost).
func TestS3GCWithPutsRefused(t *testing.T) {
	e := newS3Env(t, "LAMINA_S3_RETRY=2,10ms,30s")
	e.ok("save", e.file("g1.bin", randomBytes(t, 64<<10)), "--key", "x/G1")
	e.ok("delete", "x/G1")
	e.ok("delete", "--permanent", "--yes", "x/G1")
	packs := e.objects("packs/")
	if packs == 0 {
		t.Fatal("no pack in the bucket after the save")
	}
	e.proxy.Only("PUT ")
	e.proxy.Always(s3test.Status503)
	_, errs, err := e.run("gc", "--grace", "0s", "--settle", "1s")
	if err == nil || !strings.Contains(errs, "nothing was deleted") {
		t.Errorf("gc with PUTs refused: %v, want an error saying nothing was deleted\n%s", err, errs)
	}
	t.Logf("gc with PUTs refused said: %s", errs)
	if n := e.objects("packs/"); n != packs {
		t.Fatalf("gc deleted %d of %d packs with %d marks in the bucket\n%s", packs-n, packs, e.objects("gc/condemned/"), errs)
	}
	e.proxy.Always(s3test.None)
	e.ok("gc", "--grace", "0s", "--settle", "1s")
	if n := e.objects("packs/"); n != 0 {
		t.Errorf("%d packs left after gc with the server back", n)
	}
}

// A mount starts, warning, when the server answers 503 to its first
// request, as it does when the server cannot be reached (docs/design.md):
// it refused to start.
func TestS3MountStartsOnServer503(t *testing.T) {
	e := newS3Env(t, "LAMINA_S3_RETRY=2,10ms,30s")
	data := randomBytes(t, 256<<10)
	e.ok("save", e.file("a.bin", data), "--key", "x/a.bin")
	e.ok("cache", "clear")
	e.proxy.Always(s3test.Status503)
	mnt := filepath.Join(e.dir, "mnt")
	os.MkdirAll(mnt, 0o755)
	_, errs, err := e.run("mount", mnt)
	if err != nil || !strings.Contains(errs, "does not answer") {
		t.Fatalf("mount with the server answering 503: %v\n%s", err, errs)
	}
	t.Cleanup(func() { e.mntEnv.run("umount", "--force", mnt) })
	if ents, err := os.ReadDir(filepath.Join(mnt, "x")); err != nil || len(ents) != 1 {
		t.Errorf("listing of the mount: %v %v", ents, err)
	}
	e.proxy.Always(s3test.None)
	if got, err := os.ReadFile(filepath.Join(mnt, "x", "a.bin")); err != nil || !bytes.Equal(got, data) {
		t.Errorf("read once the server answers: %v", err)
	}
	e.ok("umount", mnt)
}
