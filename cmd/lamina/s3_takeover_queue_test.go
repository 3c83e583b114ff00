package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/cache"
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
	e := newS3Env(t, "LAMINA_S3_RETRY=2,10ms,30s")
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
	if _, errs, err := e.run("export-catalog", export); err != nil || !strings.Contains(errs, "1 pack") || !strings.Contains(errs, "cache push") {
		t.Errorf("export with a pack queued (%v):\n%s\nwant a warning naming the pack queued and cache push", err, errs)
	}

	b := e.secondHome("b")
	b.ok("init", "--storage", "s3://"+e.bucket+"/lab", "--name", "tb", "--endpoint", e.srv.Endpoint,
		"--region", "us-east-1", "--path-style", "--take-over")
	if _, errs, err := b.run("import-catalog", export); err == nil || !strings.Contains(errs, "upload queue") || !strings.Contains(errs, "cache push") {
		t.Errorf("import of versions whose pack waits in the old machine's queue: %v\n%s\nwant a refusal that names the upload queue and cache push", err, errs)
	}

	staging := filepath.Join(e.dataDir(), "uploads")
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

// A mount whose storage is taken over while its queue holds a pack and a
// record (PUTs refused) goes on uploading the pack, and holds the record:
// its queue sits below the owner guard, and uploaded the old catalog's
// records into the new owner's storage. status says what it keeps, and
// umount names it instead of promising an upload at the next start.
func TestS3TakeOverMountQueueHoldsRecords(t *testing.T) {
	e := newS3Env(t, "LAMINA_RECORDS_EVERY=200ms", "LAMINA_OWNER_CHECK=200ms", "LAMINA_S3_RETRY=2,10ms,30s")
	mnt := e.mountS3(filepath.Join(e.dir, "mnt"))
	records := e.objects("records/")
	e.proxy.Only("PUT ")
	e.proxy.Always(s3test.Status503)
	data := randomBytes(t, 300<<10)
	if err := os.WriteFile(filepath.Join(mnt, "m.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	staging := filepath.Join(e.dataDir(), "uploads")
	staged := func(prefix string) bool {
		p, _ := cache.ScanUploads(staging)
		for _, it := range p.Items {
			if strings.HasPrefix(it.Name, prefix) {
				return true
			}
		}
		return false
	}
	for deadline := time.Now().Add(30 * time.Second); !staged("records/") || !staged("packs/"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the mount did not stage its pack and record")
		}
	}
	export := filepath.Join(e.dir, "s3.jsonl")
	e.ok("export-catalog", export)
	b := e.secondHome("b")
	b.ok("init", "--storage", "s3://"+e.bucket+"/lab", "--name", "tb", "--endpoint", e.srv.Endpoint,
		"--region", "us-east-1", "--path-style", "--take-over")
	e.proxy.Always(s3test.None)

	var st []mountStatus
	for deadline := time.Now().Add(120 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if err := json.Unmarshal([]byte(e.ok("status", "--format", "json")), &st); err != nil || len(st) != 1 {
			t.Fatalf("status: %v", err)
		}
		if u := st[0].Uploads; u != nil && u.Objects == 0 && len(u.Held) > 0 {
			break
		}
		if n := e.objects("records/"); n != records {
			t.Fatalf("%d record objects in the bucket, %d before: the old catalog's record was written after the take-over", n, records)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the mount's queue did not upload its pack and hold its record after the take-over: %+v\nbucket: %d packs, %d records (%d before)",
				st[0].Uploads, e.objects("packs/"), e.objects("records/"), records)
		}
	}
	if u := st[0].Uploads; len(u.Held) != 1 || !strings.HasPrefix(u.Held[0].Name, "records/") {
		t.Errorf("held: %+v, want the record", u.Held)
	}
	if n := e.objects("packs/"); n == 0 {
		t.Error("the pack is not in the bucket")
	}
	if n := e.objects("records/"); n != records {
		t.Errorf("%d record objects in the bucket, %d before: the old catalog's record was written after the take-over", n, records)
	}
	if out := e.ok("status"); !strings.Contains(out, "kept staged, not uploaded") {
		t.Errorf("status of the taken-over mount says nothing of the record kept:\n%s", out)
	}
	out, errs, err := e.run("umount", mnt)
	if said := out + errs; err != nil || strings.Contains(said, "upload at the next start") || !strings.Contains(said, "records/") || !strings.Contains(said, staging) {
		t.Errorf("umount of the taken-over mount (%v):\n%s\nwant the record kept and %s named, no upload at the next start", err, said, staging)
	}
	if !strings.Contains(e.daemonLog(), "records/") {
		t.Errorf("the daemon's log does not name the record kept:\n%s", e.daemonLog())
	}
	b.ok("import-catalog", export)
	got := filepath.Join(b.dir, "m.out")
	b.ok("get", "m.bin", "-o", got)
	if !bytes.Equal(mustRead(t, got), data) {
		t.Fatal("the new owner reads other bytes")
	}
}

// After a take-over, delete --permanent on the old machine wrote its
// record of the purge (a tombstone of a version the new owner's catalog
// holds) into the new owner's storage, through the CLI's write-through
// upload that never asked the queue's Allow; both deletes exited 0. Now
// the permanent delete is refused before anything changes, as save is
// (a delete to the trash changes the old catalog only: still allowed),
// and no record lands.
func TestS3TakeOverPurgeWritesNoRecord(t *testing.T) {
	e := newS3Env(t, "LAMINA_S3_RETRY=2,10ms,30s")
	e.ok("save", e.file("w1.bin", randomBytes(t, 10<<10)), "--key", "w1.bin")
	export := filepath.Join(e.dir, "s3.jsonl")
	e.ok("export-catalog", export)
	b := e.secondHome("b")
	b.ok("init", "--storage", "s3://"+e.bucket+"/lab", "--name", "tb", "--endpoint", e.srv.Endpoint,
		"--region", "us-east-1", "--path-style", "--take-over")
	b.ok("import-catalog", export)
	records := e.objects("records/")

	e.ok("delete", "w1.bin")
	_, errs, err := e.run("delete", "--permanent", "--yes", "w1.bin")
	if err == nil || !strings.Contains(errs, "took") || !strings.Contains(errs, "nothing deleted") {
		t.Fatalf("delete --permanent after a take-over: %v, want refused naming the take-over\n%s", err, errs)
	}
	if n := e.objects("records/"); n != records {
		t.Fatalf("%d record objects in the bucket, %d before: the old instance wrote a record after the take-over", n, records)
	}
	if out := e.ok("ls", "--trash"); !strings.Contains(out, "w1.bin") {
		t.Fatalf("the refused purge changed the old catalog: trash\n%s", out)
	}
	if out := b.ok("ls"); !strings.Contains(out, "w1.bin") {
		t.Fatalf("the new owner lost w1.bin:\n%s", out)
	}
}

// Not mounted, status --format json counted the record an instance keeps
// after a take-over (never uploaded by it) as an upload to come, with no
// held field, where a mount's entry counts it held; cache push said it
// was uploading it. Now both count the packs only and the records held.
func TestS3TakeOverUnmountedCountsHeld(t *testing.T) {
	e := newS3Env(t, "LAMINA_S3_RETRY=2,10ms,30s")
	e.proxy.Only("PUT ")
	e.proxy.Always(s3test.Status503)
	if _, errs, err := e.run("save", e.file("q.bin", randomBytes(t, 20<<10)), "--key", "x/q.bin"); err != nil {
		t.Fatalf("save with PUTs refused: %v\n%s", err, errs)
	}
	e.proxy.Always(s3test.None)
	b := e.secondHome("b")
	b.ok("init", "--storage", "s3://"+e.bucket+"/lab", "--name", "tb", "--endpoint", e.srv.Endpoint,
		"--region", "us-east-1", "--path-style", "--take-over")

	// status reads how many go and how many are held.
	status := func(wantObjects, wantHeld int) {
		t.Helper()
		out, errs, _ := e.run("status", "--format", "json") // exits 3: not mounted
		var st []struct {
			TakenOver string         `json:"taken_over_by"`
			Uploads   *cache.Pending `json:"uploads"`
		}
		if err := json.Unmarshal([]byte(out), &st); err != nil || len(st) != 1 || st[0].Uploads == nil {
			t.Fatalf("status --format json: %v\n%s%s", err, out, errs)
		}
		u := st[0].Uploads
		if u.Objects != wantObjects || len(u.Held) != wantHeld || st[0].TakenOver != "tb" ||
			(wantHeld > 0 && (!strings.HasPrefix(u.Held[0].Name, "records/") || !strings.Contains(u.HeldWhy, "tb"))) {
			t.Fatalf("status --format json after the take-over: %s\nwant %d objects, %d held (the record), taken over by tb", out, wantObjects, wantHeld)
		}
	}
	status(1, 1) // the pack goes, the record is held

	_, errs, err := e.run("cache", "push")
	if err != nil || !strings.Contains(errs, "uploading 1 objects") {
		t.Fatalf("cache push with a pack and a record queued after a take-over: %v\n%s\nwant it to upload the pack only", err, errs)
	}
	status(0, 1)
	out, errs, err := e.run("cache", "push")
	if err != nil || strings.Contains(errs, "uploading") || !strings.Contains(out, "records/") {
		t.Fatalf("cache push with only a record kept after a take-over: %v\n%s%s\nwant no upload announced, the record named", err, out, errs)
	}
}

// A refused save (or get) after a take-over uploads the packs its queue holds
// first, for up to 10 minutes, and said nothing meanwhile. Now one line
// on stderr (never stdout) says what it uploads first and how to stop;
// here the pack's PUTs fail, so it ends naming cache push.
func TestS3TakeOverRefusedSaveSaysItUploads(t *testing.T) {
	e := newS3Env(t, "LAMINA_S3_RETRY=2,10ms,30s")
	e.proxy.Only("PUT ")
	e.proxy.Always(s3test.Status503)
	if _, errs, err := e.run("save", e.file("q.bin", randomBytes(t, 20<<10)), "--key", "x/q.bin"); err != nil {
		t.Fatalf("save with PUTs refused: %v\n%s", err, errs)
	}
	e.proxy.Always(s3test.None)
	b := e.secondHome("b")
	b.ok("init", "--storage", "s3://"+e.bucket+"/lab", "--name", "tb", "--endpoint", e.srv.Endpoint,
		"--region", "us-east-1", "--path-style", "--take-over")
	e.proxy.Only("PUT ")
	e.proxy.Always(s3test.Status503)
	out, errs, err := e.run("save", e.file("r.bin", []byte("r\n")), "--key", "x/r.bin", "--format", "json")
	if err == nil {
		t.Fatalf("save after the take-over succeeded\n%s", errs)
	}
	first, _, _ := strings.Cut(errs, "\n")
	if !strings.HasPrefix(first, "lamina: instance tb took the storage over; uploading first the 1 pack (") ||
		!strings.Contains(first, "`lamina --instance s3 cache push`") || strings.Contains(out, "uploading") {
		t.Fatalf("refused save with a pack queued: want a first line on stderr saying it uploads 1 queued pack\nstdout:\n%s\nstderr:\n%s", out, errs)
	}
	if !strings.Contains(errs, "1 objects") || !strings.Contains(errs, "cache push` tries again") {
		t.Fatalf("refused save whose pack could not go: want the pack still waiting and cache push named\n%s", errs)
	}
}
