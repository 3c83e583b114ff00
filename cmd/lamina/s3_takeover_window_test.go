package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/storage/s3/s3test"
)

// On S3 the mount reads the owner every ownerCheckEvery, not after each
// close (a GET per close costs too much). A close between a take-over and
// the check that sees it committed a version into the old catalog only:
// it returned 0, the new owner's catalog does not know it (its gc deletes
// the pack after the grace), and nothing ever said so. Now the mount names
// those versions once it sees the take-over, in its log, status (mounted
// and not), umount, and a record in the data folder until
// `status --forget-take-over`; reads of them through the read-only mount
// still work. The owner reads are refused (503) around the take-over, so
// that the mount's check cannot see it before the write, whatever the
// timing.
func TestS3WritesInTakeOverWindowNamed(t *testing.T) {
	e := newS3Env(t, "LAMINA_OWNER_CHECK=200ms", "LAMINA_S3_RETRY=2,10ms,30s")
	mnt := e.mountS3(filepath.Join(e.dir, "mnt"))
	os.MkdirAll(filepath.Join(mnt, "x"), 0o755)
	if err := os.WriteFile(filepath.Join(mnt, "x", "a.csv"), []byte("n\none\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	export := filepath.Join(e.dir, "l3.jsonl")
	e.ok("export-catalog", export)
	// The claim's time is to the second: the take-over comes in a later
	// second than a.csv's commit.
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(1100 * time.Millisecond)))

	e.proxy.Only("GET /" + e.bucket + "/lab/instance.json")
	e.proxy.Always(s3test.Status503)
	b := e.secondHome("b")
	b.ok("init", "--storage", "s3://"+e.bucket+"/lab", "--name", "tb", "--endpoint", e.srv.Endpoint,
		"--region", "us-east-1", "--path-style", "--take-over")
	b.ok("import-catalog", export)
	if err := os.WriteFile(filepath.Join(mnt, "x", "b.csv"), []byte("n\ntwo\n"), 0o644); err != nil {
		t.Fatalf("the write in the window failed (%v): the test wants the window", err)
	}
	e.proxy.Always(s3test.None)

	var st []mountStatus
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if err := json.Unmarshal([]byte(e.ok("status", "--format", "json")), &st); err != nil || len(st) != 1 {
			t.Fatalf("status: %v", err)
		}
		if st[0].AfterTakeOver != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the mount does not name the version committed after the take-over:\n%s", e.daemonLog())
		}
	}
	if a := st[0].AfterTakeOver; a.Owner != "tb" || len(a.Versions) != 1 || a.Versions[0] != "x/b.csv@v1" {
		t.Errorf("after take-over: %+v, want x/b.csv@v1 of tb", a)
	}
	want := "committed after instance tb took the storage over, not in its catalog: x/b.csv@v1"
	if out := e.ok("status"); !strings.Contains(out, want) {
		t.Errorf("status of the mount:\n%s\nwant %q", out, want)
	}
	if !strings.Contains(e.daemonLog(), "x/b.csv@v1") {
		t.Errorf("the daemon's log does not name x/b.csv@v1:\n%s", e.daemonLog())
	}
	if got, err := os.ReadFile(filepath.Join(mnt, "x", "b.csv")); err != nil || string(got) != "n\ntwo\n" {
		t.Errorf("read of x/b.csv through the old mount: %q, %v", got, err)
	}
	if _, _, err := b.run("get", "x/b.csv", "-o", "/dev/null"); err == nil {
		t.Error("the new owner knows x/b.csv: the test's premise is gone")
	}
	out, errs, err := e.run("umount", mnt)
	if !strings.Contains(out+errs, "x/b.csv@v1") {
		t.Errorf("umount (%v) does not name x/b.csv@v1:\n%s", err, out+errs)
	}
	out, _, _ = e.run("status") // not mounted
	if !strings.Contains(out, want) {
		t.Errorf("status after umount:\n%s\nwant %q", out, want)
	}
	e.run("status", "--forget-take-over")
	if out, _, _ := e.run("status"); strings.Contains(out, "x/b.csv@v1") {
		t.Errorf("status after --forget-take-over still names x/b.csv@v1:\n%s", out)
	}
}
