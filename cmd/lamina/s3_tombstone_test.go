package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/storage"
	s3b "github.com/lamina-bio/lamina/storage/s3"
	"github.com/lamina-bio/lamina/storage/s3/s3test"
)

// A purged temporary's tombstone reaches S3 when S3 refuses every PUT
// under records/ at the purge and the daemon is then killed: the next
// mount writes it (instance.Tombstones, over the upload queue).
func TestS3MountTombstoneAfterRefusedPutsAndKill(t *testing.T) {
	e := newS3Env(t, "LAMINA_RECORDS_EVERY=200ms", "LAMINA_S3_RETRY=2,20ms,30s")
	ctx := context.Background()
	raw, err := s3b.Open(ctx, e.srv.Config(e.bucket))
	if err != nil {
		t.Fatal(err)
	}
	// holding says whether an object under records/ holds all of parts.
	holding := func(parts ...string) bool {
		found := false
		raw.List(ctx, "lab/records/", func(i storage.Info) error {
			b, err := raw.Get(ctx, i.Name)
			all := err == nil
			for _, p := range parts {
				all = all && bytes.Contains(b, []byte(p))
			}
			found = found || all
			return nil
		})
		return found
	}
	mnt := e.mountS3(filepath.Join(e.dir, "mnt"))
	tmp, v := writeTemporary(t, e, mnt)
	for deadline := time.Now().Add(60 * time.Second); !holding(v.UID); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the temporary's record did not reach S3")
		}
	}
	e.proxy.Only("PUT /" + e.bucket + "/lab/records/")
	e.proxy.Always(s3test.Status503)
	if err := os.Rename(tmp, filepath.Join(mnt, "data.txt")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Fatalf("the temporary after the rename: %v", err)
	}
	e.killDaemon("s3")
	e.proxy.Always(s3test.None)
	e.ok("umount", mnt) // the dead mount
	e.ok("mount", mnt)
	e.ok("umount", mnt) // waits for the uploads
	if !holding(`"purged"`, v.UID) {
		t.Fatalf("no tombstone in S3 names the purged temporary %s; the daemon's log:\n%s", v.UID, e.daemonLog())
	}
}
