package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	lfs "github.com/lamina-bio/lamina/fs"
	"github.com/lamina-bio/lamina/storage/s3/s3test"
)

// The S3 tests run the built binary against a real S3 server on 127.0.0.1
// (storage/s3/s3test: versitygw) through a fault-injecting proxy, with the
// credentials in the standard environment variables. Every one of them
// checks at the end that the secret key appears in nothing the CLI printed
// and no file it wrote (settings, catalog, sidecars, logs, the cache).

// s3Env is an isolated user with an instance on a fresh bucket.
type s3Env struct {
	*mntEnv
	srv    s3test.Server
	proxy  *s3test.Proxy
	bucket string
	said   bytes.Buffer // everything the CLI printed
}

// newS3Env is instance "s3" on the test server, reached through a proxy
// that injects faults, with extraEnv added to its environment. A test
// whose server fails at once (503s, resets, refused connections) cuts the
// retries short with LAMINA_S3_RETRY's attempts and wait, not its budget:
// that bounds a hang, and short (200 ms) it cut an answer a loaded server
// was slow to give.
func newS3Env(t *testing.T, extraEnv ...string) *s3Env {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Fatal("no /dev/fuse: the S3 mount tests need FUSE")
	}
	srv := s3test.Real(t)
	bucket := srv.CreateBucket(t)
	proxy, via := s3test.NewProxy(t, srv)
	dir := t.TempDir()
	m := &mntEnv{t: t, dir: dir, bin: mntBinary(t)}
	m.env = append(os.Environ(), "HOME="+dir+"/home", "XDG_CONFIG_HOME="+dir+"/cfg", "XDG_DATA_HOME="+dir+"/data",
		"XDG_CACHE_HOME="+dir+"/cache", "XDG_RUNTIME_DIR="+dir+"/run", "LAMINA_INSTANCE=", "LAMINA_NO_PROGRESS=1",
		"AWS_ACCESS_KEY_ID="+srv.AccessKey, "AWS_SECRET_ACCESS_KEY="+srv.SecretKey, "AWS_PROFILE=", "AWS_CONFIG_FILE=/dev/null",
		"AWS_SHARED_CREDENTIALS_FILE=/dev/null")
	m.env = append(m.env, extraEnv...)
	e := &s3Env{mntEnv: m, srv: srv, proxy: proxy, bucket: bucket}
	e.ok("init", "--storage", "s3://"+bucket+"/lab", "--name", "s3", "--endpoint", via.Endpoint, "--region", "us-east-1", "--path-style")
	t.Cleanup(e.noSecrets)
	return e
}

func (e *s3Env) run(args ...string) (string, string, error) {
	out, errs, err := e.mntEnv.run(args...)
	e.said.WriteString(out + errs)
	return out, errs, err
}

func (e *s3Env) ok(args ...string) string {
	e.t.Helper()
	out, errs, err := e.run(args...)
	if err != nil {
		e.t.Fatalf("lamina %s: %v\n%s", strings.Join(args, " "), err, errs)
	}
	return out
}

// noSecrets fails the test if the secret key is in the CLI's output or in
// any file under the user's folders.
func (e *s3Env) noSecrets() {
	secret := e.srv.SecretKey
	if strings.Contains(e.said.String(), secret) {
		e.t.Errorf("the secret key appears in the CLI's output")
	}
	filepath.WalkDir(e.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !d.Type().IsRegular() {
			return nil
		}
		if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(secret)) {
			e.t.Errorf("the secret key appears in %s", p)
		}
		return nil
	})
}

// mountS3 mounts the instance at dir (unmounted at the end of the test).
func (e *s3Env) mountS3(dir string, flags ...string) string {
	e.t.Helper()
	os.MkdirAll(dir, 0o755)
	e.ok(append([]string{"mount", dir}, flags...)...)
	e.t.Cleanup(func() { e.mntEnv.run("umount", "--force", dir) })
	return dir
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// daemonLog returns the mount daemon's log.
func (e *s3Env) daemonLog() string {
	b, _ := os.ReadFile(filepath.Join(e.dir, "run", "lamina", "s3", "mount.log"))
	if b == nil { // the runtime folder's layout is the instance package's
		filepath.WalkDir(filepath.Join(e.dir, "run"), func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Name() == "mount.log" {
				b, _ = os.ReadFile(p)
			}
			return nil
		})
	}
	return string(b)
}

// TestS3CLI goes through the user story on S3: init with an
// endpoint, save, get, the cache commands, status with uploads pending and
// an umount that waits for them.
func TestS3CLI(t *testing.T) {
	e := newS3Env(t)
	if info := e.ok("info"); !strings.Contains(info, "credentials from EnvConfigCredentials") || !strings.Contains(info, "path-style") {
		t.Errorf("info does not name the S3 setup and credential source:\n%s", info)
	}
	data := randomBytes(t, 3<<20+12345)
	src := e.file("f.bin", data)
	e.ok("save", src, "--key", "raw/f.bin")
	out := filepath.Join(e.dir, "out.bin")
	e.ok("get", "raw/f.bin", "-o", out)
	if !bytes.Equal(mustRead(t, out), data) {
		t.Fatal("get returned other bytes than were saved")
	}

	var ci struct {
		Cache struct {
			Used int64 `json:"used_bytes"`
		} `json:"cache"`
		Uploads struct {
			Objects int `json:"objects"`
		} `json:"uploads"`
	}
	cacheInfo := func() {
		t.Helper()
		if err := json.Unmarshal([]byte(e.ok("cache", "info", "--format", "json")), &ci); err != nil {
			t.Fatal(err)
		}
	}
	cacheInfo()
	if ci.Cache.Used == 0 || ci.Uploads.Objects != 0 {
		t.Errorf("after a get: %+v; want bytes cached, no uploads waiting", ci)
	}
	if s := e.ok("cache", "clear"); !strings.Contains(s, "cleared") {
		t.Errorf("cache clear said %q", s)
	}
	if cacheInfo(); ci.Cache.Used != 0 {
		t.Errorf("cache clear left %d bytes", ci.Cache.Used)
	}
	if s := e.ok("cache", "prefetch", "raw/f.bin"); !strings.Contains(s, "in the cache") {
		t.Errorf("cache prefetch said %q", s)
	}
	if cacheInfo(); ci.Cache.Used < int64(len(data)) {
		t.Errorf("after prefetch the cache holds %d bytes, want at least %d", ci.Cache.Used, len(data))
	}
	gets := e.proxy.RequestsOf("GET")
	os.Remove(out)
	e.ok("get", "raw/f.bin", "-o", out)
	if !bytes.Equal(mustRead(t, out), data) {
		t.Fatal("get from the cache returned other bytes")
	}
	// One: the owner object (instance.json), read from the server by
	// every command that uses storage (a cached copy missed a take-over).
	if n := e.proxy.RequestsOf("GET") - gets; n != 1 {
		t.Errorf("a get of a prefetched version made %d GET requests, want 1 (the owner object)", n)
	}
	if s := e.ok("cache", "limit", "20GB"); !strings.Contains(s, "cache limit") {
		t.Errorf("cache limit said %q", s)
	}
	if s := e.ok("cache", "limit"); !strings.Contains(s, "cache limit 20.0 GB") && !strings.Contains(s, "cache limit 18.6 GiB") {
		t.Errorf("cache limit without a size said %q", s)
	}

	// A write through the mount while S3 is away: close succeeds, the
	// uploads wait, status shows them, umount waits for them.
	mnt := e.mountS3(filepath.Join(e.dir, "mnt"))
	meta := mustRead(t, filepath.Join(mnt, "raw", "f.bin.meta"))
	if !strings.Contains(string(meta), `"version"`) || strings.Contains(string(meta), e.srv.SecretKey) {
		t.Errorf("the sidecar is not the version's JSON, or names the secret:\n%s", meta)
	}
	e.said.Write(meta)
	if s := e.ok("status"); !strings.Contains(s, "storage         answering") {
		t.Errorf("status of a mount whose server answers:\n%s", s)
	}
	e.proxy.Down()
	written := randomBytes(t, 2<<20+777)
	if err := os.WriteFile(filepath.Join(mnt, "raw", "w.bin"), written, 0o644); err != nil {
		t.Fatalf("write through the mount with S3 away: %v", err)
	}
	if got := mustRead(t, filepath.Join(mnt, "raw", "w.bin")); !bytes.Equal(got, written) {
		t.Fatal("a version waiting for upload reads back wrong")
	}
	var st []mountStatus
	deadline := time.Now().Add(60 * time.Second)
	for {
		if err := json.Unmarshal([]byte(e.ok("status", "--format", "json")), &st); err != nil || len(st) != 1 {
			t.Fatalf("status: %v %+v", err, st)
		}
		if st[0].Uploads != nil && st[0].Uploads.Objects > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status shows no uploads pending with S3 away: %+v", st[0].Uploads)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if s := e.ok("status"); !strings.Contains(s, "waiting for upload") {
		t.Errorf("status does not show the pending uploads:\n%s", s)
	}
	// The server comes back once umount says it waits (a timer could let
	// it back before umount got there on a loaded machine).
	umc := exec.Command(e.bin, "umount", mnt)
	umc.Env = e.env
	var umOut lockedBuffer // progress_test.go: read while umount writes
	umc.Stdout = &umOut
	var umErr bytes.Buffer
	umc.Stderr = &umErr
	if err := umc.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(60 * time.Second); !strings.Contains(umOut.String(), "waiting for uploads"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			e.proxy.Up()
			umc.Wait()
			t.Fatalf("umount did not say it waits for the uploads in 60 s:\n%s%s", umOut.String(), umErr.String())
		}
	}
	if err := e.proxy.Up(); err != nil {
		t.Fatal(err)
	}
	err := umc.Wait()
	um := umOut.String()
	e.said.WriteString(um + umErr.String())
	if err != nil || !strings.Contains(um, "unmounted") {
		t.Errorf("umount did not wait for the uploads with progress: %v\n%s%s", err, um, umErr.String())
	}
	if s := e.notMounted(); !strings.Contains(s, "none pending") {
		t.Errorf("after umount: %s", s)
	}
	// From S3 itself: nothing staged, nothing cached.
	e.ok("cache", "clear")
	os.Remove(out)
	e.ok("get", "raw/w.bin", "-o", out)
	if !bytes.Equal(mustRead(t, out), written) {
		t.Fatal("the version written through the mount did not reach S3 intact")
	}
}

// TestS3MountFaults reads through the mount while the proxy injects faults:
// transient ones are retried and the read succeeds; a server that keeps
// failing gives EIO once the retry budget is spent, a log line says what
// failed, and the mount stays up and serves again once the server does.
func TestS3MountFaults(t *testing.T) {
	e := newS3Env(t, "LAMINA_S3_RETRY=6,20ms")
	a, b, c := randomBytes(t, 5<<20), randomBytes(t, 5<<20), randomBytes(t, 24<<20)
	e.ok("save", e.file("a.bin", a), "--key", "x/a.bin")
	e.ok("save", e.file("b.bin", b), "--key", "x/b.bin")
	e.ok("save", e.file("c.bin", c), "--key", "x/c.bin")
	e.ok("cache", "clear") // what the saves left: every read below goes to the server
	mnt := e.mountS3(filepath.Join(e.dir, "mnt"))

	e.proxy.Only("GET ")
	e.proxy.SetLatency(2 * time.Millisecond)
	e.proxy.Next(s3test.Reset, s3test.Truncate, s3test.Status500, s3test.Status503, s3test.Reset)
	if got := mustRead(t, filepath.Join(mnt, "x", "a.bin")); !bytes.Equal(got, a) {
		t.Fatal("read through transient faults returned other bytes")
	}

	f, err := os.Open(filepath.Join(mnt, "x", "b.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	e.proxy.Always(s3test.Status503)
	start := time.Now()
	_, err = f.ReadAt(make([]byte, 4096), 1<<20)
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("read against a failing server: %v, want EIO", err)
	}
	if d := time.Since(start); d > 45*time.Second { // the default budget is a minute
		t.Errorf("the failing read took %v", d)
	} else {
		t.Logf("EIO after %v", d.Round(time.Millisecond))
	}
	if _, err := os.Stat(filepath.Join(mnt, "x")); err != nil {
		t.Fatalf("the mount is not up after a failed read: %v", err)
	}
	if got := mustRead(t, filepath.Join(mnt, "x", "a.bin")); !bytes.Equal(got, a) {
		t.Fatal("a cached version does not read while the server fails")
	}
	e.proxy.Always(s3test.None)
	got := make([]byte, len(b))
	if _, err := f.ReadAt(got, 0); err != nil || !bytes.Equal(got, b) {
		t.Fatalf("read once the server is back: %v", err)
	}
	f.Close()

	// A server that is gone: EIO as well, not the socket's ECONNREFUSED.
	fc, err := os.Open(filepath.Join(mnt, "x", "c.bin")) // reads its manifest
	if err != nil {
		t.Fatal(err)
	}
	e.proxy.Down()
	start = time.Now()
	if _, err := fc.ReadAt(make([]byte, 4096), 8<<20); !errors.Is(err, syscall.EIO) {
		t.Fatalf("read with the server gone: %v, want EIO", err)
	}
	t.Logf("EIO with the server gone after %v", time.Since(start).Round(time.Millisecond))
	fc.Close()
	if err := e.proxy.Up(); err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, filepath.Join(mnt, "x", "c.bin")); !bytes.Equal(got, c) {
		t.Fatal("read once the server is up again returned other bytes")
	}
	e.ok("umount", mnt)
	log := e.daemonLog()
	if !strings.Contains(log, "retry budget spent") || !strings.Contains(log, "get range") || !strings.Contains(log, "503") {
		t.Errorf("the mount's log does not say what failed:\n%s", log)
	}
}

// TestS3UploadQueueSurvivesKill kills the mount daemon with uploads
// pending: the queue on disk is found by the next command, uploaded, and
// the version reads back intact from S3.
func TestS3UploadQueueSurvivesKill(t *testing.T) {
	e := newS3Env(t)
	mnt := e.mountS3(filepath.Join(e.dir, "mnt"))
	e.proxy.Down()
	var want [][]byte
	for i := 0; i < 3; i++ {
		data := randomBytes(t, 1<<20+i*4099)
		want = append(want, data)
		if err := os.WriteFile(filepath.Join(mnt, "k"+strconv.Itoa(i)+".bin"), data, 0o644); err != nil {
			t.Fatalf("write through the mount: %v", err)
		}
	}
	var st []mountStatus
	if err := json.Unmarshal([]byte(e.ok("status", "--format", "json")), &st); err != nil || len(st) != 1 {
		t.Fatalf("status: %v", err)
	}
	if st[0].Uploads == nil || st[0].Uploads.Objects == 0 {
		t.Fatalf("nothing pending with S3 away: %+v", st[0].Uploads)
	}
	if err := syscall.Kill(st[0].PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitExit(t, st[0].PID, "the killed daemon did not exit")
	e.ok("umount", mnt) // clears the dead mount
	if s := e.notMounted(); !strings.Contains(s, "waiting for upload") {
		t.Fatalf("after the kill, status does not show the staged uploads:\n%s", s)
	}
	if err := e.proxy.Up(); err != nil {
		t.Fatal(err)
	}
	// The next command that uses storage finds the queue and uploads it
	// before it exits (one that reads only the catalog leaves it).
	_, errs, err := e.run("get", "k0.bin", "-o", "/dev/null")
	if err != nil {
		t.Fatalf("get: %v\n%s", err, errs)
	}
	// (It says "uploading …" when they are still going at its end; a get
	// that reads for a while may find them done.)
	if s := e.notMounted(); !strings.Contains(s, "none pending") {
		t.Fatalf("uploads still pending after the next command:\n%s", s)
	}
	e.ok("cache", "clear")
	for i, data := range want {
		out := filepath.Join(e.dir, "out"+strconv.Itoa(i))
		e.ok("get", "k"+strconv.Itoa(i)+".bin", "-o", out)
		if !bytes.Equal(mustRead(t, out), data) {
			t.Fatalf("k%d.bin: the version written before the kill did not reach S3 intact", i)
		}
	}
}

// With the server away, the commands that read only the catalog work, and
// the ones that need storage say what failed.
func TestS3CatalogCommandsWithServerDown(t *testing.T) {
	e := newS3Env(t, "LAMINA_S3_RETRY=3,20ms")
	data := randomBytes(t, 1<<20)
	e.ok("save", e.file("a.bin", data), "--key", "x/a.bin")
	e.ok("cache", "clear")
	e.proxy.Down()
	for _, args := range [][]string{{"ls"}, {"show", "x/a.bin"}, {"search", "a.bin"}, {"ls", "--trash"}} {
		start := time.Now()
		if out := e.ok(args...); !strings.Contains(out, "a.bin") && args[1] != "--trash" {
			t.Errorf("lamina %s with the server down:\n%s", strings.Join(args, " "), out)
		}
		if d := time.Since(start); d > 30*time.Second { // not the minute of a retry budget
			t.Errorf("lamina %s took %v with the server down", strings.Join(args, " "), d)
		}
	}
	_, errs, err := e.run("get", "x/a.bin", "-o", e.dir+"/out.bin")
	if err == nil || !strings.Contains(errs, "connection refused") {
		t.Errorf("get with the server down: %v\n%s", err, errs)
	}
	// A mount away from the server: it mounts, says so, lists, and reads
	// what is not cached with EIO.
	mnt := filepath.Join(e.dir, "mnt")
	os.MkdirAll(mnt, 0o755)
	_, errs, err = e.run("mount", mnt)
	if err != nil || !strings.Contains(errs, "does not answer") {
		t.Fatalf("mount with the server down: %v\n%s", err, errs)
	}
	t.Logf("mount with the server down said: %s", errs)
	if ents, err := os.ReadDir(filepath.Join(mnt, "x")); err != nil || len(ents) != 1 {
		t.Errorf("listing of the offline mount: %v %v", ents, err)
	}
	if _, err := os.ReadFile(filepath.Join(mnt, "x", "a.bin")); !errors.Is(err, syscall.EIO) {
		t.Errorf("uncached read of the offline mount: %v, want EIO", err)
	}
	var st []mountStatus
	if err := json.Unmarshal([]byte(e.ok("status", "--format", "json")), &st); err != nil || len(st) != 1 ||
		st[0].Storage == nil || !st[0].Storage.Failing || !strings.Contains(st[0].Storage.LastError, "refused") {
		t.Errorf("status of the offline mount: %v %+v", err, st)
	}
	if s := e.ok("status"); !strings.Contains(s, "not answering since") {
		t.Errorf("status of the offline mount does not say the storage is away:\n%s", s)
	}
	if err := os.WriteFile(filepath.Join(mnt, "x", "offline.bin"), randomBytes(t, 1<<20), 0o644); err != nil {
		t.Fatalf("write to the offline mount: %v", err)
	}
	e.ok("umount", "--force", mnt) // its upload stays staged
	// Uploads left staged do not hold a command that reads only the catalog.
	start := time.Now()
	if out := e.ok("ls", "x/"); !strings.Contains(out, "offline.bin") {
		t.Errorf("ls after the offline mount:\n%s", out)
	}
	if d := time.Since(start); d > 30*time.Second { // not the minute of a retry budget
		t.Errorf("ls with uploads staged and the server away took %v", d)
	}
	if err := e.proxy.Up(); err != nil {
		t.Fatal(err)
	}
	if got := e.ok("get", "x/a.bin", "-o", "-"); got != string(data) {
		t.Fatal("get once the server is back returned other bytes")
	}
}

// A daemon that waits for uploads after its mount is gone (the server is
// away) holds no catalog: other commands work meanwhile, `status` says it
// is stopping, Ctrl-C of `umount` says how it goes on, and `umount --force`
// stops it with the uploads staged.
func TestS3StoppingDaemonFreesCatalog(t *testing.T) {
	e := newS3Env(t, "LAMINA_S3_RETRY=2,20ms")
	mnt := e.mountS3(filepath.Join(e.dir, "mnt"))
	e.proxy.Down()
	if err := os.WriteFile(filepath.Join(mnt, "w.bin"), randomBytes(t, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	um := exec.Command(e.bin, "umount", mnt)
	um.Env = e.env
	var out lockedBuffer // progress_test.go: read while umount writes
	um.Stdout, um.Stderr = &out, &out
	if err := um.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, still := lfs.MountInfo(mnt); !still && strings.Contains(out.String(), "waiting for uploads") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("umount did not start waiting for uploads:\n%s", out.String())
		}
	}
	um.Process.Signal(os.Interrupt)
	if err := um.Wait(); err == nil || !strings.Contains(out.String(), "umount --force") {
		t.Errorf("umount interrupted: %v\n%s", err, out.String())
	}
	start := time.Now()
	if got := e.ok("ls"); !strings.Contains(got, "w.bin") {
		t.Errorf("ls while the daemon uploads:\n%s", got)
	}
	if d := time.Since(start); d > 30*time.Second { // not the catalog lock's minute
		t.Errorf("ls took %v while the daemon uploads", d)
	}
	if got := e.notMounted(); !strings.Contains(got, "is stopping") || !strings.Contains(got, "a stopping mount daemon is uploading") {
		t.Errorf("status while the daemon uploads:\n%s", got)
	}
	e.ok("umount", "--force", mnt)
	if got := e.notMounted(); !strings.Contains(got, "not mounted") || !strings.Contains(got, "the next mount, save or get uploads them") {
		t.Errorf("status after umount --force:\n%s", got)
	}
	if err := e.proxy.Up(); err != nil {
		t.Fatal(err)
	}
}

// cache clear and cache limit reach a running mount's cache: its figures
// follow, and it holds no cleared block open.
func TestS3CacheCommandsReachTheMount(t *testing.T) {
	e := newS3Env(t)
	data := randomBytes(t, 8<<20)
	e.ok("save", e.file("a.bin", data), "--key", "a.bin")
	e.ok("save", e.file("b.bin", randomBytes(t, 6<<20)), "--key", "b.bin")
	e.ok("cache", "clear")
	mnt := e.mountS3(filepath.Join(e.dir, "mnt"))
	if !bytes.Equal(mustRead(t, filepath.Join(mnt, "a.bin")), data) {
		t.Fatal("read through the mount")
	}
	used := func() (used, limit int64) {
		var st []struct {
			DiskCache struct {
				Limit int64 `json:"limit_bytes"`
				Used  int64 `json:"used_bytes"`
			} `json:"disk_cache"`
		}
		if err := json.Unmarshal([]byte(e.ok("status", "--format", "json")), &st); err != nil || len(st) != 1 {
			t.Fatalf("status: %v", err)
		}
		return st[0].DiskCache.Used, st[0].DiskCache.Limit
	}
	if u, _ := used(); u == 0 {
		t.Fatal("nothing cached after a read through the mount")
	}
	e.ok("get", "b.bin", "-o", "/dev/null") // blocks the CLI puts in the shared cache
	if out := e.ok("cache", "clear"); !strings.Contains(out, "through the mount daemon") {
		t.Errorf("cache clear while mounted: %q", out)
	}
	if u, _ := used(); u != 0 {
		t.Errorf("the mount's cache holds %d bytes after cache clear", u)
	}
	var ci struct {
		Cache struct {
			Used int64 `json:"used_bytes"`
		} `json:"cache"`
	}
	if err := json.Unmarshal([]byte(e.ok("cache", "info", "--format", "json")), &ci); err != nil || ci.Cache.Used != 0 {
		t.Errorf("cache info after cache clear through the daemon: %d bytes used, %v (the CLI's blocks stayed)", ci.Cache.Used, err)
	}
	e.ok("cache", "limit", "5MB")
	if _, l := used(); l != 5_000_000 {
		t.Errorf("the mount's cache limit is %d after cache limit 5MB", l)
	}
	if !bytes.Equal(mustRead(t, filepath.Join(mnt, "a.bin")), data) {
		t.Fatal("read through the mount after cache clear")
	}
	// 8 MiB prefetched into a cache of 5 MB: it says what stays.
	if s := e.ok("cache", "prefetch", "a.bin"); !strings.Contains(s, "more than the cache's limit of") {
		t.Errorf("prefetch of more than the cache holds said %q", s)
	}
}

// TestS3SmallCacheFetchesOnce checks that a sequential read through a
// mount whose cache is small fetches about the file's size: the read-ahead
// (up to 64 MiB) evicted blocks before they were read, and a limit below a
// block evicted each block as soon as it was stored: a 200 MiB file read
// through a 1 MB cache was fetched five times over.
func TestS3SmallCacheFetchesOnce(t *testing.T) {
	e := newS3Env(t)
	const size = 64 << 20
	data := randomBytes(t, size)
	e.ok("save", e.file("big.bin", data), "--key", "big.bin")
	e.ok("cache", "clear")
	e.ok("cache", "limit", "1MB")
	mnt := e.mountS3(filepath.Join(e.dir, "mnt"))
	f, err := os.Open(filepath.Join(mnt, "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 0, size)
	buf := make([]byte, 1<<20)
	for {
		n, err := f.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			break
		}
	}
	f.Close()
	if !bytes.Equal(got, data) {
		t.Fatal("read through the mount differs")
	}
	var st []struct {
		DiskCache struct {
			Fetched int64 `json:"fetched_bytes"`
		} `json:"disk_cache"`
	}
	if err := json.Unmarshal([]byte(e.ok("status", "--format", "json")), &st); err != nil || len(st) != 1 {
		t.Fatalf("status: %v", err)
	}
	// Not exactly the size: a file's chunks lie in its packs in the order
	// the writers finished them, so some blocks are met twice (75–100 MiB
	// seen; 100–116 MiB at load 4 and 128 MiB in a CI run at load 15).
	// Without the fix it was 288–312 MiB.
	if f := st[0].DiskCache.Fetched; f > size*3 {
		t.Errorf("a sequential read of %d MiB through a 1 MB cache fetched %d MiB", size>>20, f>>20)
	} else {
		t.Logf("fetched %d MiB for %d MiB", f>>20, size>>20)
	}
}

// TestS3PrefetchThroughTheMount checks that `lamina cache prefetch` while
// mounted fetches into the daemon's cache: it ran in the CLI with a cache
// of its own, so the daemon's status showed 0 B cached and a read through
// the mount fetched the data again (or failed offline). Then it returned
// before the daemon had written the last blocks it fetched (reads are
// answered before): under load 4 to 8 MiB of the 80 were missing from the
// status below (Store.Prefetch now waits for them).
func TestS3PrefetchThroughTheMount(t *testing.T) {
	e := newS3Env(t)
	const size = 80 << 20
	data := randomBytes(t, size)
	e.ok("save", e.file("a.bin", data), "--key", "a.bin")
	e.ok("cache", "clear")
	mnt := e.mountS3(filepath.Join(e.dir, "mnt"))
	disk := func() (used, fetched int64) {
		var st []struct {
			DiskCache struct {
				Used    int64 `json:"used_bytes"`
				Fetched int64 `json:"fetched_bytes"`
			} `json:"disk_cache"`
		}
		if err := json.Unmarshal([]byte(e.ok("status", "--format", "json")), &st); err != nil || len(st) != 1 {
			t.Fatalf("status: %v", err)
		}
		return st[0].DiskCache.Used, st[0].DiskCache.Fetched
	}
	out, errs, err := e.run("cache", "prefetch", "a.bin")
	if err != nil {
		t.Fatalf("prefetch: %v\n%s", err, errs)
	}
	if !strings.Contains(out, "through the mount daemon") || !strings.Contains(errs, "fetched (through the mount daemon)") {
		t.Errorf("prefetch while mounted said %q (progress %q)", out, errs)
	}
	used, fetched := disk()
	if used < size {
		t.Errorf("the mount's cache holds %d bytes after a prefetch of %d", used, size)
	}
	e.proxy.Always(s3test.Reset) // S3 away: the read must come from the cache
	defer e.proxy.Always(s3test.None)
	if !bytes.Equal(mustRead(t, filepath.Join(mnt, "a.bin")), data) {
		t.Fatal("read through the mount after the prefetch")
	}
	e.proxy.Always(s3test.None)
	if _, f := disk(); f != fetched {
		t.Errorf("the read through the mount fetched %d bytes after the prefetch", f-fetched)
	}
}

// TestS3CacheLimitOfTheMount: with a mount running, `cache info` and
// `cache limit` read the settings' limit, not the one the daemon applies
// (mount --cache-size), so they contradicted `status` and prefetch; and a
// fresh mount showed a hit ratio of 100% before any read.
func TestS3CacheLimitOfTheMount(t *testing.T) {
	e := newS3Env(t)
	e.ok("save", e.file("a.bin", randomBytes(t, 1<<20)), "--key", "a.bin")
	e.ok("cache", "limit", "1GB")
	e.mountS3(filepath.Join(e.dir, "mnt"), "--cache-size", "2MB")
	if st := e.ok("status"); !strings.Contains(st, "hit ratio -") {
		t.Errorf("status of a mount with no reads yet:\n%s", st)
	}
	limits := func() (info, limit string, status int64) {
		t.Helper()
		var ci struct {
			Cache struct {
				Limit int64 `json:"limit_bytes"`
			} `json:"cache"`
		}
		if err := json.Unmarshal([]byte(e.ok("cache", "info", "--format", "json")), &ci); err != nil {
			t.Fatal(err)
		}
		var st []struct {
			DiskCache struct {
				Limit int64 `json:"limit_bytes"`
			} `json:"disk_cache"`
		}
		if err := json.Unmarshal([]byte(e.ok("status", "--format", "json")), &st); err != nil || len(st) != 1 {
			t.Fatalf("status: %v", err)
		}
		return strconv.FormatInt(ci.Cache.Limit, 10), e.ok("cache", "limit"), st[0].DiskCache.Limit
	}
	if info, limit, status := limits(); info != "2000000" || status != 2_000_000 || !strings.Contains(limit, "1.9 MiB") {
		t.Errorf("mount --cache-size 2MB: cache info says %s, cache limit %q, status %d", info, limit, status)
	}
	e.ok("cache", "limit", "3MB")
	if info, limit, status := limits(); info != "3000000" || status != 3_000_000 || !strings.Contains(limit, "2.9 MiB") {
		t.Errorf("after cache limit 3MB: cache info says %s, cache limit %q, status %d", info, limit, status)
	}
}
