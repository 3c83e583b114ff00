package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestS3CachedReadsOffline: what the cache holds reads with the server
// gone, in a process started after it was cached (a new mount): the disk
// cache kept object sizes in memory only and HEADed each object first.
func TestS3CachedReadsOffline(t *testing.T) {
	e := newS3Env(t, "LAMINA_S3_RETRY=2,20ms,30s")
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

// TestS3WrittenReadsOffline: a file written through the mount and uploaded
// reads and appends with the server gone. The upload queue removed the
// staged copy once S3 had it, and the bytes were in no cache: cat and
// echo >> failed with EIO after the retry budget. With --sync-upload the
// close uploads from memory and nothing is staged: the same must hold.
func TestS3WrittenReadsOffline(t *testing.T) {
	for _, flags := range [][]string{nil, {"--sync-upload"}} {
		t.Run(strings.Join(append([]string{"mount"}, flags...), " "), func(t *testing.T) {
			testS3WrittenReadsOffline(t, flags)
		})
	}
}

func testS3WrittenReadsOffline(t *testing.T, flags []string) {
	e := newS3Env(t, "LAMINA_S3_RETRY=2,20ms,30s")
	mnt := e.mountS3(filepath.Join(e.dir, "mnt"), flags...)
	p := filepath.Join(mnt, "w", "t.txt")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("line1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		var st []mountStatus
		if err := json.Unmarshal([]byte(e.ok("status", "--format", "json")), &st); err != nil || len(st) != 1 {
			t.Fatalf("status: %v %+v", err, st)
		}
		if u := st[0].Uploads; u != nil && u.Objects == 0 && u.Uploaded > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("uploads not done: %+v, %d records pending", st[0].Uploads, st[0].PendingRecords)
		}
		time.Sleep(50 * time.Millisecond)
	}
	e.proxy.Down()
	defer e.proxy.Up()
	if got, err := os.ReadFile(p); err != nil || string(got) != "line1\n" {
		t.Fatalf("read of a written and uploaded file with the server gone: %q, %v", got, err)
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatalf("open for append with the server gone: %v", err)
	}
	_, err = f.WriteString("line2\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("append with the server gone: %v", err)
	}
	if got, err := os.ReadFile(p); err != nil || string(got) != "line1\nline2\n" {
		t.Fatalf("read after the append with the server gone: %q, %v", got, err)
	}
}
