package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/storage/s3/s3test"
)

// TestS3StatusAndUmountSeeTheServerGone: `lamina status` said "storage
// answering" for as long as no call had failed, seconds to minutes after
// the server died or stopped (SIGSTOP), and `lamina umount` waited for the
// queue without a word on why. The daemon now asks the storage (one
// bounded HEAD of the bucket) when it has not answered for a few seconds.
// The server dies (the proxy stops listening: refused connections) and
// then stops (the proxy holds every request: a SIGSTOPped server, without
// stopping the one server the package's tests share). The retry budget is
// 5 minutes, so that no call's own failure says it within the test's
// bounds: only the probe can.
func TestS3StatusAndUmountSeeTheServerGone(t *testing.T) {
	e := newS3Env(t, "LAMINA_S3_RETRY=100,1s,5m")
	mnt := e.mountS3(filepath.Join(e.dir, "mnt"))
	status := func() mountStatus {
		t.Helper()
		var st []mountStatus
		if err := json.Unmarshal([]byte(e.ok("status", "--format", "json")), &st); err != nil || len(st) != 1 || st[0].Storage == nil {
			t.Fatalf("status: %v %+v", err, st)
		}
		return st[0]
	}
	waitStatus := func(what string, ok func(mountStatus) bool) mountStatus {
		t.Helper()
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			st := status()
			if ok(st) {
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("status does not say %s after 60 s: %+v", what, *st.Storage)
			}
		}
	}
	if st := status(); st.Storage.Failing {
		t.Fatalf("status of a mount whose server answers: %+v", *st.Storage)
	}

	// Dead: nothing pending, no call made; status asks.
	e.proxy.Down()
	st := waitStatus("not answering with the server dead", func(st mountStatus) bool { return st.Storage.Failing })
	if h := st.Storage; !strings.Contains(h.LastError, "cannot reach endpoint") || h.Since.IsZero() || h.Checked.IsZero() {
		t.Errorf("status with the server dead: %+v; want why (cannot reach endpoint), since when, checked when", *h)
	}
	if s := e.ok("status"); !strings.Contains(s, "not answering since") || !strings.Contains(s, "cannot reach endpoint") {
		t.Errorf("status with the server dead:\n%s", s)
	}
	if err := e.proxy.Up(); err != nil {
		t.Fatal(err)
	}
	waitStatus("answering once the server is back", func(st mountStatus) bool { return !st.Storage.Failing })

	// Stopped, with an upload queued: the upload hangs, status says it.
	e.proxy.Always(s3test.Hang)
	defer e.proxy.Always(s3test.None)
	written := randomBytes(t, 2<<20+333)
	if err := os.WriteFile(filepath.Join(mnt, "w.bin"), written, 0o644); err != nil {
		t.Fatalf("write through the mount with the server stopped: %v", err)
	}
	st = waitStatus("not answering with the server stopped and an upload queued", func(st mountStatus) bool {
		return st.Storage.Failing && st.Uploads != nil && st.Uploads.Objects > 0
	})
	if h := st.Storage; !strings.Contains(h.LastError, "no answer within") {
		t.Errorf("status with the server stopped: %+v; want why (no answer)", *h)
	}

	// umount says at once what it waits for and that the server does not
	// answer; the server comes back once it has.
	umc := exec.Command(e.bin, "umount", mnt)
	umc.Env = e.env
	var umOut lockedBuffer
	var umErr bytes.Buffer
	umc.Stdout, umc.Stderr = &umOut, &umErr
	if err := umc.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(60 * time.Second); !strings.Contains(umOut.String(), "the storage is not answering since"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			e.proxy.Always(s3test.None)
			umc.Wait()
			t.Fatalf("umount does not say in 60 s that the storage is not answering:\n%s%s", umOut.String(), umErr.String())
		}
	}
	if s := umOut.String(); !strings.Contains(s, "no answer within") || !strings.Contains(s, "umount --force") || !strings.Contains(s, "pending, kept staged for the next start") {
		t.Errorf("umount with the server stopped does not say why, or what --force leaves:\n%s", s)
	}
	// Status of the stopping daemon (its socket gone) says it too.
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		out, _, _ := e.run("status")
		if strings.Contains(out, "a stopping mount daemon is uploading them, but the storage is not answering since") {
			break
		}
		if time.Now().After(deadline) {
			e.proxy.Always(s3test.None)
			umc.Wait()
			t.Fatalf("status of the stopping daemon does not say in 60 s that the storage is not answering:\n%s", out)
		}
	}
	e.proxy.Always(s3test.None)
	err := umc.Wait()
	um := umOut.String() + umErr.String()
	e.said.WriteString(um)
	if err != nil || !strings.Contains(um, "unmounted") {
		t.Fatalf("umount once the server is back: %v\n%s", err, um)
	}
	if s := e.notMounted(); !strings.Contains(s, "none pending") {
		t.Errorf("after umount: %s", s)
	}
	out := filepath.Join(e.dir, "out.bin")
	e.ok("cache", "clear")
	e.ok("get", "w.bin", "-o", out)
	if !bytes.Equal(mustRead(t, out), written) {
		t.Fatal("the version written with the server stopped did not reach it intact")
	}
}
