package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	lfs "github.com/lamina-bio/lamina/fs"
	"github.com/lamina-bio/lamina/instance"
)

// The upload queue, the staging folder, the tombstone queue and the
// scratch folder hold the only copy of what they keep: they live in the
// data folder, and a cache cleaner (rm -rf ~/.cache) loses nothing. They
// lived in the cache folder: a file written while S3 was away, its upload
// queued, was lost with it (the mount logged "lost", status said "none
// pending", get failed after 30 s).

func (e *s3Env) dataDir() string  { return filepath.Join(e.dir, "data", "lamina", "s3") }
func (e *s3Env) cacheDir() string { return filepath.Join(e.dir, "cache", "lamina", "s3") }

// getsBack checks that key reads back as data from S3 (the cache cleared).
func (e *s3Env) getsBack(key string, data []byte) {
	e.t.Helper()
	out := filepath.Join(e.dir, "out-"+strings.ReplaceAll(key, "/", "_"))
	if _, errs, err := e.run("get", key, "-o", out); err != nil {
		e.t.Fatalf("get %s: %v\n%s", key, err, errs)
	}
	if b, err := os.ReadFile(out); err != nil || !bytes.Equal(b, data) {
		e.t.Fatalf("%s: the bytes read back are not those written", key)
	}
}

func TestS3RemovedCacheFolderLosesNothing(t *testing.T) {
	e := newS3Env(t)
	mnt := e.mountS3(filepath.Join(e.dir, "mnt"))
	e.proxy.Down()
	data := randomBytes(t, 1<<20+12345)
	if err := os.MkdirAll(filepath.Join(mnt, "t"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mnt, "t", "pending.bin"), data, 0o644); err != nil {
		t.Fatalf("write through the mount: %v", err)
	}
	if err := os.RemoveAll(filepath.Join(e.dir, "cache")); err != nil { // rm -rf ~/.cache
		t.Fatal(err)
	}
	var st []mountStatus
	if err := json.Unmarshal([]byte(e.ok("status", "--format", "json")), &st); err != nil || len(st) != 1 {
		t.Fatalf("status: %v", err)
	}
	if st[0].Uploads == nil || st[0].Uploads.Objects == 0 {
		t.Fatalf("nothing pending after the cache folder was removed: %+v", st[0].Uploads)
	}
	e.ok("umount", "--force", mnt) // the uploads stay queued
	if err := e.proxy.Up(); err != nil {
		t.Fatal(err)
	}
	e.ok("cache", "clear")
	e.getsBack("t/pending.bin", data) // its open uploads the queue first
	if s, _, _ := e.run("status"); !strings.Contains(s, "none pending") || strings.Contains(s, "lost") {
		t.Fatalf("status after the uploads:\n%s", s)
	}
	if log := e.daemonLog(); strings.Contains(log, "lost") {
		t.Fatalf("the daemon says something was lost:\n%s", log)
	}
}

// An instance an older lamina left with its queued uploads, a staged close
// whose commit had failed and a scratch file in the cache folder: the
// next mount moves them to the data folder before it opens them (and the
// cache folder can go then), commits the staged close, and the uploads
// reach S3.
func TestS3OldLayoutMovesToDataFolder(t *testing.T) {
	e := newS3Env(t)
	mnt := e.mountS3(filepath.Join(e.dir, "mnt"))
	e.proxy.Down()
	queued := randomBytes(t, 1<<20+777)
	os.MkdirAll(filepath.Join(mnt, "t"), 0o755)
	if err := os.WriteFile(filepath.Join(mnt, "t", "queued.bin"), queued, 0o644); err != nil {
		t.Fatalf("write through the mount: %v", err)
	}
	e.ok("umount", "--force", mnt)
	// The older layout: everything in the cache folder.
	for _, name := range []string{"uploads", "staging", "scratch", "tombstones"} {
		from, to := filepath.Join(e.dataDir(), name), filepath.Join(e.cacheDir(), name)
		if _, err := os.Stat(from); err == nil {
			os.RemoveAll(to)
			if err := os.Rename(from, to); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n := countFiles(filepath.Join(e.cacheDir(), "uploads")); n == 0 {
		t.Fatal("no queued upload to move")
	}
	staging := filepath.Join(e.cacheDir(), "staging")
	os.MkdirAll(staging, 0o700)
	staged := randomBytes(t, 300<<10)
	const id = "00c0ffee00c0ffee00c0ffee00c0ffee"
	if err := os.WriteFile(filepath.Join(staging, id), staged, 0o600); err != nil {
		t.Fatal(err)
	}
	rec := `{"id":"` + id + `","state":"closed","key":"t/staged.bin","mode":420}` + "\n"
	if err := os.WriteFile(filepath.Join(staging, "journal"), []byte(rec), 0o600); err != nil {
		t.Fatal(err)
	}
	scratch := filepath.Join(e.cacheDir(), "scratch", ".snakemake", "log", "run.log")
	os.MkdirAll(filepath.Dir(scratch), 0o755)
	if err := os.WriteFile(scratch, []byte("scratch bytes"), 0o644); err != nil {
		t.Fatal(err)
	}

	// The mount moves them (the server still away), commits the staged
	// close; then a cache cleaner runs. Other commands start meanwhile:
	// each moves what is left, one at a time, and none loses an entry.
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%2 == 0 {
				e.mntEnv.run("status")
			} else {
				e.mntEnv.run("cache", "info")
			}
		}()
	}
	_, errs, err := e.run("mount", mnt)
	wg.Wait()
	if err != nil {
		t.Fatalf("mount: %v\n%s", err, errs)
	}
	t.Cleanup(func() { e.mntEnv.run("umount", "--force", mnt) })
	for _, name := range []string{"uploads", "staging", "scratch"} {
		if _, err := os.Stat(filepath.Join(e.cacheDir(), name)); err == nil {
			t.Errorf("%s is still in the cache folder after the mount", name)
		}
	}
	if b, err := os.ReadFile(filepath.Join(mnt, ".snakemake", "log", "run.log")); err != nil || string(b) != "scratch bytes" {
		t.Errorf("the scratch file through the mount: %q %v", b, err)
	}
	if err := os.RemoveAll(filepath.Join(e.dir, "cache")); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(mnt, ".snakemake", "log", "run.log")); err != nil || string(b) != "scratch bytes" {
		t.Errorf("the scratch file after rm -rf of the cache folder: %q %v", b, err)
	}
	e.ok("umount", "--force", mnt)
	if err := e.proxy.Up(); err != nil {
		t.Fatal(err)
	}
	e.ok("cache", "clear")
	e.getsBack("t/queued.bin", queued)
	e.getsBack("t/staged.bin", staged)
	if s, _, _ := e.run("status"); !strings.Contains(s, "none pending") || strings.Contains(s, "lost") {
		t.Fatalf("status after the uploads:\n%s", s)
	}
}

// When the daemon finds queued data gone (someone removed the queue
// itself), status says so, naming the versions, after the daemon is gone
// too, until --forget-lost; it said "none pending".
func TestS3LostUploadsStayInStatus(t *testing.T) {
	e := newS3Env(t)
	mnt := e.mountS3(filepath.Join(e.dir, "mnt"))
	e.proxy.Down()
	os.MkdirAll(filepath.Join(mnt, "t"), 0o755)
	if err := os.WriteFile(filepath.Join(mnt, "t", "gone.bin"), randomBytes(t, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	// The daemon may be adding to the queue as it goes ("directory not
	// empty" under load in CI): removed again until it is gone.
	var err error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if err = os.RemoveAll(filepath.Join(e.dataDir(), "uploads")); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	// The worker's next attempt (within a minute of backoff) finds it gone.
	var s string
	for i := 0; i < 180; i++ {
		if s = e.ok("status"); strings.Contains(s, "t/gone.bin@v1") {
			break
		}
		time.Sleep(time.Second)
	}
	if !strings.Contains(s, "lost uploads") || !strings.Contains(s, "t/gone.bin@v1") {
		t.Fatalf("status of the mount after the queue was removed:\n%s", s)
	}
	if err := e.proxy.Up(); err != nil {
		t.Fatal(err)
	}
	e.ok("umount", mnt)
	s = e.notMounted()
	if !strings.Contains(s, "lost uploads") || !strings.Contains(s, "t/gone.bin@v1") || strings.Contains(s, "uploads: none pending\n") {
		t.Fatalf("status after the unmount:\n%s", s)
	}
	e.notMounted("--forget-lost")
	if s := e.notMounted(); strings.Contains(s, "lost") || !strings.Contains(s, "none pending") {
		t.Fatalf("status after --forget-lost:\n%s", s)
	}
}

func countFiles(dir string) int {
	n := 0
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && d.Name() != ".lock" {
			n++
		}
		return nil
	})
	return n
}

// A staged file of an older lamina's cache folder that cannot move (the
// data folder has another file of its name) stays where it is, and the
// mount refuses to start rather than run without it.
func TestMountRefusedWhileStagingLeftInCache(t *testing.T) {
	e := newMntEnv(t)
	old := filepath.Join(e.dir, "cache", "lamina", "m", "staging")
	cur := filepath.Join(e.dir, "data", "lamina", "m", "staging")
	for dir, b := range map[string]string{old: "old bytes", cur: "other bytes"} {
		os.MkdirAll(dir, 0o700)
		if err := os.WriteFile(filepath.Join(dir, "00aa"), []byte(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	mnt := filepath.Join(e.dir, "mnt")
	os.MkdirAll(mnt, 0o755)
	_, errs, err := e.run("mount", mnt)
	if err == nil {
		e.run("umount", "--force", mnt)
		t.Fatal("mounted with a staging folder left in the cache folder")
	}
	if !strings.Contains(errs, "left "+filepath.Join(old, "00aa")+" in place") || !strings.Contains(errs, "could not be moved") {
		t.Fatalf("mount: %v\n%s", err, errs)
	}
	if b, err := os.ReadFile(filepath.Join(old, "00aa")); err != nil || string(b) != "old bytes" {
		t.Fatalf("the staged file left in the cache folder: %q %v", b, err)
	}
}

// A daemon killed with uploads queued, then its PID taken by another
// process (after a reboot the state file stays in the data folder when
// XDG_RUNTIME_DIR is unset). Status named the staged files but not the
// queued uploads. And the other process was taken for the daemon: every
// command said the cache folder's queues were "still in use by a running
// older lamina", status that the daemon was hung, and umount sent it
// SIGTERM. Now a PID counts only if its start time is the daemon's.
func TestS3KilledDaemonPIDReused(t *testing.T) {
	e := newS3Env(t)
	mnt := e.mountS3(filepath.Join(e.dir, "mnt"))
	e.proxy.Down()
	os.MkdirAll(filepath.Join(mnt, "t"), 0o755)
	if err := os.WriteFile(filepath.Join(mnt, "t", "queued.bin"), randomBytes(t, 1<<20), 0o644); err != nil {
		t.Fatalf("write through the mount: %v", err)
	}
	e.killDaemon("s3")
	out, errs, err := e.run("status")
	if err == nil || !strings.Contains(errs, "is gone") || !strings.Contains(out, "uploads:") || strings.Contains(out, "none pending") {
		t.Fatalf("status after the daemon was killed: %v\n%s%s", err, out, errs)
	}

	// Another process gets the daemon's PID.
	stand := exec.Command("sleep", "600")
	stand.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := stand.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stand.Process.Kill(); stand.Wait() })
	statePath := filepath.Join(e.dir, "run", "lamina", "s3", "mount.json")
	b, err := os.ReadFile(statePath)
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	st["pid"] = stand.Process.Pid
	b, _ = json.Marshal(st)
	if err := os.WriteFile(statePath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	// And an older lamina's scratch folder waits in the cache folder.
	if err := os.MkdirAll(filepath.Join(e.cacheDir(), "scratch"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.cacheDir(), "scratch", "x"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errs, err = e.run("status")
	if err == nil || !strings.Contains(errs, "is gone") || strings.Contains(out+errs, "still u") || strings.Contains(out+errs, "hung") {
		t.Fatalf("status with the daemon's PID reused: %v\n%s%s", err, out, errs)
	}
	if _, err := os.Stat(filepath.Join(e.dataDir(), "scratch", "x")); err != nil {
		t.Errorf("the old scratch folder did not move: %v", err)
	}
	out, errs, err = e.run("umount", mnt)
	if err != nil || strings.Contains(out+errs, "still u") {
		t.Fatalf("umount with the daemon's PID reused: %v\n%s%s", err, out, errs)
	}
	if processState(stand.Process.Pid) == 0 {
		t.Fatal("umount stopped the process that had the dead daemon's PID")
	}
	if _, ok := lfs.MountInfo(mnt); ok {
		t.Fatal("the stale mount is still there after umount")
	}
}

// While an older lamina still runs with its upload queue in the cache
// folder (it holds the queue's lock: nothing moves it), `cache info` and
// export-catalog's warning counted only the new queue.
func TestS3OldQueueInUseIsCounted(t *testing.T) {
	e := newS3Env(t)
	old := filepath.Join(e.cacheDir(), "uploads")
	if err := os.MkdirAll(old, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(old, "packs%2Faa%2Faabbccddeeff00112233445566778899"), []byte("pack one"), 0o600); err != nil {
		t.Fatal(err)
	}
	held, err := os.OpenFile(filepath.Join(old, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if err := syscall.Flock(int(held.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	out, errs, err := e.run("cache", "info")
	if err != nil || !strings.Contains(out, "1 objects") || !strings.Contains(out, old) {
		t.Fatalf("cache info with an older lamina's queue in use: %v\n%s%s", err, out, errs)
	}
	if strings.Count(errs, "still uses") != 1 {
		t.Errorf("cache info said other than one line of what is in use:\n%s", errs)
	}
	out, errs, err = e.run("export-catalog", filepath.Join(e.dir, "dump.jsonl"))
	if err != nil || !strings.Contains(errs, "1 pack") || !strings.Contains(errs, old) {
		t.Fatalf("export-catalog with an older lamina's queue in use: %v\n%s%s", err, out, errs)
	}
}

// A scratch folder left in the cache folder while a daemon of this build
// is mounted (it uses the data folder's): moved, not "still in use by a
// running older lamina" at every command.
func TestOldScratchMovesUnderThisBuildsDaemon(t *testing.T) {
	e := newMntEnv(t)
	mnt := filepath.Join(e.dir, "mnt")
	e.mount(mnt)
	old := filepath.Join(e.dir, "cache", "lamina", "m", "scratch")
	if err := os.MkdirAll(old, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(old, "x"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errs, err := e.run("status")
	if err != nil || strings.Contains(errs, "still u") || strings.Contains(errs, "older lamina") {
		t.Fatalf("status: %v\n%s%s", err, out, errs)
	}
	if b, err := os.ReadFile(filepath.Join(e.dir, "data", "lamina", "m", "scratch", "x")); err != nil || string(b) != "x" {
		t.Fatalf("the old scratch file in the data folder: %q %v", b, err)
	}
}

// The state file of an older lamina's daemon has no start time: its PID
// counts when the process's command line is that daemon's, and the start
// time is recorded then.
func TestOlderStateFileWithoutStartTime(t *testing.T) {
	e := newMntEnv(t)
	mnt := filepath.Join(e.dir, "mnt")
	e.mount(mnt)
	pid := e.daemonPID("m")
	statePath := filepath.Join(e.dir, "run", "lamina", "m", "mount.json")
	var st map[string]any
	if b, err := os.ReadFile(statePath); err != nil || json.Unmarshal(b, &st) != nil || st["start_ticks"] == nil {
		t.Fatalf("the state file has no start time: %v %v", st, err)
	}
	delete(st, "start_ticks")
	b, _ := json.Marshal(st)
	if err := os.WriteFile(statePath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, kv := range [][2]string{{"HOME", "home"}, {"XDG_CONFIG_HOME", "cfg"}, {"XDG_DATA_HOME", "data"}, {"XDG_CACHE_HOME", "cache"}, {"XDG_RUNTIME_DIR", "run"}} {
		t.Setenv(kv[0], filepath.Join(e.dir, kv[1]))
	}
	dirs, err := instance.UserDirs()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := readState(dirs, "m"); err != nil || got.PID != pid || got.StartTicks == 0 {
		t.Fatalf("the state of an older daemon: %+v %v, want pid %d and its start time", got, err, pid)
	}
	if got, err := readState(dirs, "m"); err != nil || got.PID != pid || got.StartTicks == 0 {
		t.Fatalf("the state of an older daemon, read again: %+v %v", got, err)
	}
	out := e.ok("umount", mnt)
	if !strings.Contains(out, "unmounted") || processState(pid) != 0 {
		t.Fatalf("umount of an older daemon's mount: %s (daemon alive: %v)", out, processState(pid) != 0)
	}
}
