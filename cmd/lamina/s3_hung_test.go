package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/storage/s3/s3test"
)

// TestS3HungServer: a server that accepts requests and never answers.
// Every request had 5 minutes, whatever it moved, and the retry budget
// did not cut an attempt in flight, so a 4 KiB read blocked 10 minutes (two
// HEADs); and `lamina status` said "storage answering" throughout, since a
// call that timed out was not noted as a failure. Now a read fails with EIO
// within the retry budget and status says the storage is not answering.
// With the budget counted as time without progress, an attempt it cut
// came back as the SDK's "context canceled": the mount answered EINTR, Go's
// ReadAt tried again, and the read never ended (a HEAD every 4 s).
func TestS3HungServer(t *testing.T) {
	e := newS3Env(t, "LAMINA_S3_RETRY=3,50ms,4s")
	data := randomBytes(t, 48<<20)
	e.ok("save", e.file("a.bin", data), "--key", "x/a.bin")
	e.ok("cache", "clear") // the read below goes to the server
	mnt := e.mountS3(filepath.Join(e.dir, "mnt"))
	f, err := os.Open(filepath.Join(mnt, "x", "a.bin")) // reads its manifest
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if st := e.ok("status"); strings.Contains(st, "not answering") {
		t.Fatalf("status before the server hangs:\n%s", st)
	}
	e.proxy.Always(s3test.Hang)
	defer e.proxy.Always(s3test.None)
	before := e.proxy.Requests()
	start := time.Now()
	done := make(chan error, 1)
	// In the first pack: the manifest, which the open read, is at the end
	// of the last, and the blocks fetched with it may hold bytes near the
	// file's end (a read at 40 MiB found them cached now and then).
	go func() { _, err := f.ReadAt(make([]byte, 4096), 1<<20); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, syscall.EIO) {
			t.Fatalf("read against a hung server: %v, want EIO", err)
		}
		t.Logf("EIO after %v", time.Since(start).Round(time.Millisecond))
		// The read went to the hung server (not to bytes the open
		// cached), and its request was cut by the retry budget: an
		// attempt cut by it once came back as "context canceled", the
		// mount answered EINTR, and the reader tried again for ever.
		if e.proxy.Requests() == before {
			t.Fatal("the read asked the server nothing: it was served from the cache")
		}
		if log := e.daemonLog(); !strings.Contains(log, "retry budget spent") {
			t.Fatalf("no spent retry budget in the daemon's log:\n%s", log)
		}
	case <-time.After(40 * time.Second):
		e.proxy.Always(s3test.None)
		t.Log(e.daemonLog())
		t.Fatalf("a 4 KiB read against a hung server still blocks after %v", time.Since(start).Round(time.Second))
	}
	if st := e.ok("status"); !strings.Contains(st, "not answering") {
		t.Fatalf("status with the server hung:\n%s", st)
	}
}
