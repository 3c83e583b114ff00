package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lamina-bio/lamina/storage/s3/s3test"
)

// secondHome is another workstation of e's team: its own folders, the
// same credentials and server.
func (e *s3Env) secondHome(name string) *mntEnv {
	e.t.Helper()
	dir := filepath.Join(e.t.TempDir(), name)
	m := &mntEnv{t: e.t, dir: dir, bin: e.bin}
	for _, kv := range e.env {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_RUNTIME_DIR":
			continue
		}
		m.env = append(m.env, kv)
	}
	m.env = append(m.env, "HOME="+dir+"/home", "XDG_CONFIG_HOME="+dir+"/cfg", "XDG_DATA_HOME="+dir+"/data",
		"XDG_CACHE_HOME="+dir+"/cache", "XDG_RUNTIME_DIR="+dir+"/run")
	return m
}

// A save whose PUTs failed leaves its pack and record in the upload
// queue. Another workstation then takes the storage over and imports the
// catalog exported before: its versions name a pack that only the old
// machine's queue holds. Every command of the old instance was refused:
// a refused mount closed the queue at once; a refused get or save
// uploaded the whole queue, the old catalog's records into the new
// owner's storage too, and status promised "the next mount, save or get
// uploads them". Now `lamina cache push`, and the refused get and mount,
// upload the queued packs (immutable: always safe to add) and keep the
// records, naming them and where they are; the new owner reads the
// version.
func TestS3TakeOverUploadsQueuedPacks(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string // the old machine's command after the take-over; "MNT" is a mount point
		refused bool
	}{
		{"cache push", []string{"cache", "push"}, false},
		{"refused get", []string{"get", "x/q.bin", "-o", "/dev/null"}, true},
		{"refused mount", []string{"mount", "MNT"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) { takeOverWithQueue(t, tc.args, tc.refused) })
	}
}

func takeOverWithQueue(t *testing.T, args []string, refused bool) {
	e := newS3Env(t, "LAMINA_S3_RETRY=2,10ms,1s")
	data := randomBytes(t, 200<<10)
	e.proxy.Only("PUT ")
	e.proxy.Always(s3test.Status503)
	_, errs, err := e.run("save", e.file("q.bin", data), "--key", "x/q.bin")
	if err != nil {
		t.Fatalf("save with PUTs refused: %v\n%s", err, errs)
	}
	e.proxy.Always(s3test.None)
	if n := e.objects("packs/"); n != 0 {
		t.Fatalf("%d packs in the bucket after a save whose PUTs failed", n)
	}
	records := e.objects("records/")
	export := filepath.Join(e.dir, "s3.jsonl")
	e.ok("export-catalog", export)

	b := e.secondHome("b")
	b.ok("init", "--storage", "s3://"+e.bucket+"/lab", "--name", "tb", "--endpoint", e.srv.Endpoint,
		"--region", "us-east-1", "--path-style", "--take-over")
	if _, errs, err := b.run("import-catalog", export); err == nil || !strings.Contains(errs, "upload queue") || !strings.Contains(errs, "cache push") {
		t.Errorf("import of versions whose pack waits in the old machine's queue: %v\n%s\nwant a refusal that names the upload queue and cache push", err, errs)
	}

	staging := filepath.Join(e.dir, "cache", "lamina", "s3", "uploads")
	out, _, _ := e.run("status") // exits 3: not mounted
	if strings.Contains(out, "the next mount, save or get uploads them") || !strings.Contains(out, "instance tb took the storage over") ||
		!strings.Contains(out, "lamina --instance s3 cache push") || !strings.Contains(out, "records/") || !strings.Contains(out, staging) {
		t.Errorf("status of a taken-over instance with uploads queued:\n%s\nwant no promise of the next mount; the new owner, cache push, the record and %s", out, staging)
	}

	for i, a := range args {
		if a == "MNT" {
			args[i] = filepath.Join(e.dir, "mnt")
			os.MkdirAll(args[i], 0o755)
		}
	}
	out, errs, err = e.run(args...)
	said := out + errs
	t.Logf("lamina %s after the take-over: %v\n%s", strings.Join(args, " "), err, said)
	if refused != (err != nil) {
		t.Fatalf("lamina %s after the take-over: %v, want refused=%v\n%s", strings.Join(args, " "), err, refused, said)
	}
	if n := e.objects("packs/"); n == 0 {
		t.Fatalf("the queued pack is not in the bucket after lamina %s\n%s", strings.Join(args, " "), said)
	}
	if n := e.objects("records/"); n != records {
		t.Errorf("%d record objects in the bucket, %d before: the old catalog's records were written after the take-over", n, records)
	}
	if !strings.Contains(said, "uploaded 1 pack") || !strings.Contains(said, "records/") || !strings.Contains(said, staging) {
		t.Errorf("lamina %s: want it to say it uploaded the pack, and name the record kept and %s\n%s", strings.Join(args, " "), staging, said)
	}
	if kept, _ := filepath.Glob(filepath.Join(staging, "records*")); len(kept) != 1 {
		t.Errorf("records kept in %s: %v, want 1", staging, kept)
	}
	if out, _, _ := e.run("status"); !strings.Contains(out, "records/") || strings.Contains(out, "the next mount, save or get uploads them") || strings.Contains(out, "pack") {
		t.Errorf("status with a record kept after a take-over:\n%s", out)
	}

	b.ok("import-catalog", export)
	got := filepath.Join(b.dir, "q.out")
	b.ok("get", "x/q.bin", "-o", got)
	if !bytes.Equal(mustRead(t, got), data) {
		t.Fatal("the new owner reads other bytes")
	}
}
