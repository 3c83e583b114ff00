package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestS3CachedReadsOffline: what the cache holds reads with the server
// gone, in a process started after it was cached (a new mount): the disk
// cache kept object sizes in memory only and HEADed each object first.
func TestS3CachedReadsOffline(t *testing.T) {
	e := newS3Env(t, "LAMINA_S3_RETRY=2,20ms,2s")
	data := randomBytes(t, 9<<20)
	e.ok("save", e.file("a.bin", data), "--key", "x/a.bin")
	e.ok("cache", "clear")
	mnt := e.mountS3(filepath.Join(e.dir, "mnt"))
	if got := mustRead(t, filepath.Join(mnt, "x", "a.bin")); !bytes.Equal(got, data) {
		t.Fatal("read with the server up returned other bytes")
	}
	e.ok("umount", mnt)
	e.proxy.Down()
	defer e.proxy.Up()
	mnt = e.mountS3(filepath.Join(e.dir, "mnt2"))
	got, err := os.ReadFile(filepath.Join(mnt, "x", "a.bin"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("cached file read in a new mount with the server gone: %d bytes, %v", len(got), err)
	}
}
