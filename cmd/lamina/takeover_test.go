package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/stage"
)

// A mount whose storage another instance takes over turns read-only: the
// new owner's gc would delete what it wrote from then on.
func TestTakeOverMakesMountReadOnly(t *testing.T) {
	e := newMntEnv(t)
	e.env = append(e.env, "LAMINA_OWNER_CHECK=200ms")
	mnt := filepath.Join(e.dir, "mnt")
	e.mount(mnt)
	if err := os.WriteFile(filepath.Join(mnt, "before.txt"), []byte("before\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	export := filepath.Join(e.dir, "m.jsonl")
	e.ok("export-catalog", export)
	_, errs, err := e.run("init", "--storage", e.dir+"/storage", "--name", "tb", "--take-over")
	if err != nil {
		t.Fatalf("init --take-over: %v\n%s", err, errs)
	}
	if !strings.Contains(errs, `instance "m", which owned this storage, is mounted at `+mnt) || !strings.Contains(errs, "unmount it") {
		t.Errorf("init --take-over of a mounted instance's storage warned %q", errs)
	}
	e.ok("--instance", "tb", "import-catalog", export)

	deadline := time.Now().Add(60 * time.Second)
	var werr error
	for time.Now().Before(deadline) {
		// A write under way when the mount turns read-only fails at its
		// close (EIO: its commit refused); the next open gets EROFS.
		werr = os.WriteFile(filepath.Join(mnt, "after.txt"), []byte("after\n"), 0o644)
		if errors.Is(werr, syscall.EROFS) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !errors.Is(werr, syscall.EROFS) {
		t.Fatalf("writing to a mount whose storage was taken over: %v; want EROFS", werr)
	}
	for _, op := range []func() error{
		func() error { return os.Remove(filepath.Join(mnt, "before.txt")) },
		func() error { return os.Rename(filepath.Join(mnt, "before.txt"), filepath.Join(mnt, "moved.txt")) },
		func() error { return os.Mkdir(filepath.Join(mnt, "d"), 0o755) },
	} {
		if err := op(); !errors.Is(err, syscall.EROFS) {
			t.Errorf("change in a taken-over mount: %v; want EROFS", err)
		}
	}
	if b := mustRead(t, filepath.Join(mnt, "before.txt")); string(b) != "before\n" {
		t.Errorf("read %q", b)
	}
	if out := e.ok("--instance", "m", "status"); !strings.Contains(out, `storage taken over by instance tb: read-only`) {
		t.Errorf("status of a taken-over mount:\n%s", out)
	}
	if b := mustRead(t, filepath.Join(e.dir, "run", "lamina", "m", "mount.log")); !strings.Contains(string(b), `storage taken over by instance \"tb\"`) {
		t.Errorf("mount.log says nothing of the take-over:\n%s", b)
	}
}

// A mount re-reads the owner every 30 s; a write in that window after a
// take-over returned 0 and became a version of the old catalog only, and
// the new owner's `gc --grace 0s` deleted its packs (a new-user audit).
// Now a write's packs are checked after they land: the close fails.
func TestTakeOverFailsAWriteInTheWindow(t *testing.T) {
	e := newMntEnv(t)
	mnt := filepath.Join(e.dir, "mnt")
	e.mount(mnt) // the owner checked at the start; the next periodic check is 30 s away
	if err := os.WriteFile(filepath.Join(mnt, "before.txt"), []byte("before\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errs, err := e.run("init", "--storage", e.dir+"/storage", "--name", "tb", "--take-over"); err != nil {
		t.Fatalf("init --take-over: %v\n%s", err, errs)
	}
	err := os.WriteFile(filepath.Join(mnt, "window.csv"), []byte("a,b\n1,2\n"), 0o644)
	if err == nil {
		e.ok("--instance", "tb", "gc", "--grace", "0s", "--settle", "0s")
		t.Fatal("a write through the old mount right after a take-over returned no error: the new owner's gc deletes its packs")
	}
	if !errors.Is(err, syscall.EIO) && !errors.Is(err, syscall.EROFS) {
		t.Errorf("write after a take-over: %v; want EIO or EROFS", err)
	}
	if b := mustRead(t, filepath.Join(mnt, "before.txt")); string(b) != "before\n" {
		t.Errorf("read %q", b)
	}
}

// A close that failed because the storage was taken over keeps its bytes
// staged; no mount of the old instance may commit them any more (the
// storage is the new owner's). status, umount and the refused mount said
// "the next mount commits them" and named no file; now they name the key,
// where its bytes are kept and the save into the new owner.
func TestTakeOverFailedCloseNamesStagedBytes(t *testing.T) {
	e := newMntEnv(t)
	// No retry, and no storage record written, in the test's time.
	e.env = append(e.env, "LAMINA_RETRY_FAILED=1h", "LAMINA_RECORDS_EVERY=1h")
	mnt := filepath.Join(e.dir, "mnt")
	e.mount(mnt)
	// Its storage record is still to write when the daemon stops, and
	// cannot be then: the storage is tb's.
	if err := os.WriteFile(filepath.Join(mnt, "before.txt"), []byte("before\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	export := filepath.Join(e.dir, "m.jsonl")
	e.ok("export-catalog", export)
	if _, errs, err := e.run("init", "--storage", e.dir+"/storage", "--name", "tb", "--take-over"); err != nil {
		t.Fatalf("init --take-over: %v\n%s", err, errs)
	}
	e.ok("--instance", "tb", "import-catalog", export)
	content := []byte("a,b\n1,2\n")
	if err := os.WriteFile(filepath.Join(mnt, "window.csv"), content, 0o644); err == nil {
		t.Fatal("a write through the old mount right after a take-over returned no error")
	}
	staged, _ := filepath.Glob(filepath.Join(e.dir, "data", "lamina", "m", "staging", "[0-9a-f]*"))
	// Those of window.csv (before.txt's may wait for a sync).
	staged = slices.DeleteFunc(staged, func(p string) bool { b, _ := os.ReadFile(p); return string(b) != string(content) })
	if len(staged) != 1 {
		t.Fatalf("staged files: %v", staged)
	}
	path := staged[0]
	// With the mode and mtime its commit would have given it, then rm.
	save := "lamina --instance tb save " + path + " --key window.csv --mode 0644 --mtime "
	rm := " && rm " + path
	const bad = "next mount" // no mount of m may commit them
	// The close(2) failed at its flush; the release that counts the
	// failed close follows it.
	var out string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if out = e.ok("--instance", "m", "status"); strings.Contains(out, "failed closes") {
			break
		}
	}
	if strings.Contains(out, bad) || !strings.Contains(out, "window.csv") || !strings.Contains(out, save) || !strings.Contains(out, rm) {
		t.Errorf("status of a taken-over mount with a failed close:\n%s\nwant no %q, the key, and %q…%q", out, bad, save, rm)
	}
	out, errs, err := e.run("umount", mnt)
	if err != nil {
		t.Fatalf("umount: %v\n%s", err, errs)
	}
	if said := out + errs; strings.Contains(said, bad) || !strings.Contains(said, "window.csv") || !strings.Contains(said, save) {
		t.Errorf("umount of a taken-over mount with a failed close:\n%s\nwant no %q, the key, and %q", said, bad, save)
	}
	out, errs, err = e.run("--instance", "m", "status")
	if said := out + errs; strings.Contains(said, bad) || !strings.Contains(said, "window.csv") || !strings.Contains(said, save) {
		t.Errorf("status of an unmounted taken-over instance with staged bytes (%v):\n%s\nwant no %q, the key, and %q", err, said, bad, save)
	}
	_, errs, err = e.run("--instance", "m", "mount", mnt)
	if err == nil {
		t.Fatal("mount of a taken-over instance succeeded")
	}
	if strings.Contains(errs, bad) || !strings.Contains(errs, "window.csv") || !strings.Contains(errs, save) {
		t.Errorf("refused mount of a taken-over instance with staged bytes:\n%s\nwant the key and %q", errs, save)
	}
	if b := mustRead(t, path); string(b) != string(content) {
		t.Fatalf("staged bytes: %q", b)
	}
	if b := mustRead(t, filepath.Join(e.dir, "run", "lamina", "m", "mount.log")); strings.Contains(string(b), bad) || !strings.Contains(string(b), save) {
		t.Errorf("mount.log of a taken-over mount with a failed close:\n%s\nwant no %q, and %q", b, bad, save)
	}
	log := string(mustRead(t, filepath.Join(e.dir, "run", "lamina", "m", "mount.log")))
	if strings.Contains(log, "the next save retries") || !strings.Contains(log, `storage records not written: instance \"tb\" took the storage over`) {
		t.Errorf("mount.log of a taken-over mount promises a save that cannot come:\n%s", log)
	}
	// status --format json says it too (it printed []).
	var js []struct {
		Instance  string
		Mounted   bool
		Staged    []stage.StagedFile
		TakenOver string `json:"taken_over_by"`
	}
	if err := json.Unmarshal([]byte(e.notMountedM("--format", "json")), &js); err != nil || len(js) != 1 || js[0].Mounted || js[0].Instance != "m" ||
		js[0].TakenOver != "tb" || len(js[0].Staged) != 1 || js[0].Staged[0].Key != "window.csv" || js[0].Staged[0].Path != path || js[0].Staged[0].Mode != 0o644 {
		t.Fatalf("status --format json of an unmounted taken-over instance with staged bytes: %+v, %v", js, err)
	}
	// The advice, run as printed: the bytes land in tb with the mode and
	// mtime their commit would have given them (the staging file is
	// 0600; a save's mtime is its own time), and every note ends.
	var advice string
	for _, l := range strings.Split(e.notMountedM(), "\n") {
		if i := strings.Index(l, "lamina --instance tb save "); i >= 0 {
			advice = strings.TrimSpace(l[i:])
		}
	}
	if !strings.HasPrefix(advice, save) || !strings.HasSuffix(advice, rm) {
		t.Fatalf("the advice: %q", advice)
	}
	sh := exec.Command("sh", "-c", advice)
	sh.Env = append(slices.Clip(e.env), "PATH="+filepath.Dir(e.bin)+":"+os.Getenv("PATH"))
	sh.Dir = e.dir
	if b, err := sh.CombinedOutput(); err != nil {
		t.Fatalf("the way out, %s: %v\n%s", advice, err, b)
	}
	if got := e.ok("--instance", "tb", "get", "window.csv", "-o", "-"); got != string(content) {
		t.Errorf("window.csv in tb: %q", got)
	}
	got := filepath.Join(e.dir, "window.csv")
	e.ok("--instance", "tb", "get", "window.csv", "-o", got)
	if fi, err := os.Stat(got); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("window.csv saved into tb: %v, %v; want mode 0644 as written", fi.Mode(), err)
	}
	var v struct{ Mtime time.Time }
	if err := json.Unmarshal([]byte(e.ok("--instance", "tb", "show", "window.csv", "--format", "json")), &v); err != nil || !v.Mtime.Equal(js[0].Staged[0].Mtime) {
		t.Errorf("window.csv saved into tb has mtime %v (%v); want the staged file's %v", v.Mtime, err, js[0].Staged[0].Mtime)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("staged bytes after the way out: %v", err)
	}
	if out := e.notMountedM(); out != "instance m is not mounted\n" {
		t.Errorf("status once the staged bytes are saved and removed:\n%s", out)
	}
	if out := e.notMountedM("--format", "json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("status --format json once the staged bytes are saved and removed: %s", out)
	}
	if _, errs, err := e.run("--instance", "m", "mount", mnt); err == nil || strings.Contains(errs, "window.csv") || strings.Contains(errs, "staged") {
		t.Errorf("refused mount once the staged bytes are saved and removed (%v):\n%s", err, errs)
	}
}

// notMountedM is notMounted of instance m (init of tb made tb current).
func (e *mntEnv) notMountedM(args ...string) string {
	e.t.Helper()
	out, errs, err := e.run(append([]string{"--instance", "m", "status"}, args...)...)
	if codeOf(err) != exitNotMounted {
		e.t.Fatalf("lamina --instance m status %s: exit %d (%v), want %d (not mounted)\n%s%s", strings.Join(args, " "), codeOf(err), err, exitNotMounted, out, errs)
	}
	return out
}

// A mount whose daemon died after a write through it, closed by the
// shell while a child holds a copy of the descriptor (the file is still
// open: the child's copy keeps it so, fix-s6, and the next mount keeps
// its bytes under lost+found/): status named the
// stale mount and the uploads, not the bytes staged for the next mount
// (the note an unmounted instance gets), and --format json printed [].
func TestStatusDaemonDiedNamesStaged(t *testing.T) {
	e := newMntEnv(t)
	mnt := filepath.Join(e.dir, "mnt")
	e.mount(mnt)
	ready := filepath.Join(e.dir, "ready")
	sh := exec.Command("bash", "-c", `exec 4<&0 3>"$1"; echo partial >&3; (read go <&4) & exec 3>&-; : > "$2"; wait`, "bash", filepath.Join(mnt, "open.txt"), ready)
	sh.Dir = e.dir // not the mount: its daemon dies under it
	in, err := sh.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { in.Close(); sh.Wait() }()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(ready); err == nil {
			break
		}
	}
	if _, err := os.Stat(ready); err != nil {
		t.Fatal("the shell did not write through the mount")
	}
	e.killDaemon("m")
	// Its state file gone too: the mount is stale (the state file left
	// says "is gone", which names the staged bytes as well).
	_, errs, err := e.run("status")
	// Its commit did not fail: the child's copy kept it open.
	const closedNote = "1 file open when the daemon stopped (open.txt): the next mount keeps what was written under lost+found/"
	if err == nil || !strings.Contains(errs, "is gone") || !strings.Contains(errs, closedNote) || strings.Contains(errs, "failed") {
		t.Errorf("status of a mount whose daemon died (%v):\n%s", err, errs)
	}
	os.Remove(filepath.Join(e.dir, "run", "lamina", "m", "mount.json"))
	out, _, err := e.run("status")
	if codeOf(err) != 1 || !strings.Contains(out, "stale mount at "+mnt) || !strings.Contains(out, closedNote) || strings.Contains(out, "failed") {
		t.Errorf("status of a stale mount with a file open (exit %d):\n%s", codeOf(err), out)
	}
	out, _, err = e.run("status", "--format", "json")
	var js []struct {
		Mounted bool
		Stale   []string
		Staged  []stage.StagedFile
	}
	if jerr := json.Unmarshal([]byte(out), &js); jerr != nil || codeOf(err) != 1 || len(js) != 1 || js[0].Mounted || len(js[0].Stale) != 1 || len(js[0].Staged) != 1 || js[0].Staged[0].Key != "open.txt" {
		t.Errorf("status --format json of a stale mount with a file open (exit %d, %v):\n%s", codeOf(err), jerr, out)
	}
	in.Close()
	sh.Wait()
	e.ok("umount", mnt)
}

// status of a taken-over mount whose catalog does not answer promised
// "closes are committed again then" beside "no mount of m commits it".
func TestStatusCatalogRowAfterTakeOver(t *testing.T) {
	st := mountStatus{CatalogError: "connection refused", TakenOver: "tb"}
	if got := catalogNotAnswering(st); strings.Contains(got, "committed again then") || !strings.Contains(got, "instance tb took the storage over") {
		t.Errorf("catalog row of a taken-over mount: %q", got)
	}
	st.TakenOver = ""
	if got := catalogNotAnswering(st); !strings.Contains(got, "closes are committed again then") {
		t.Errorf("catalog row of a mount: %q", got)
	}
}

// A mount whose storage was taken over twice (tb from m, then tc from
// tb) named the first taker in status, JSON and its failed closes' way
// out ("save them into tb"), though tb may no longer use the storage
// either: the watch stopped reading the owner at the first take-over.
// Now it goes on reading it, and status names tc, the owner now.
func TestStatusNamesTheLastTakeOver(t *testing.T) {
	e := newMntEnv(t)
	e.env = append(e.env, "LAMINA_OWNER_CHECK=200ms")
	mnt := filepath.Join(e.dir, "mnt")
	e.mount(mnt)
	takenBy := func() (string, error) {
		var st []mountStatus
		if err := json.Unmarshal([]byte(e.ok("--instance", "m", "status", "--format", "json")), &st); err != nil || len(st) != 1 {
			return "", errors.New("status: not one entry")
		}
		return st[0].TakenOver, nil
	}
	for _, taker := range []string{"tb", "tc"} {
		if _, errs, err := e.run("init", "--storage", e.dir+"/storage", "--name", taker, "--take-over"); err != nil {
			t.Fatalf("init %s --take-over: %v\n%s", taker, err, errs)
		}
		waitFor(t, "the instance status names as the one that took the storage over", 60*time.Second, takenBy, taker)
	}
	if out := e.ok("--instance", "m", "status"); !strings.Contains(out, "storage taken over by instance tc: read-only") {
		t.Errorf("status of a mount taken over twice:\n%s", out)
	}
	if err := os.WriteFile(filepath.Join(mnt, "after.txt"), []byte("after\n"), 0o644); !errors.Is(err, syscall.EROFS) {
		t.Errorf("a write to the mount taken over twice: %v; want EROFS", err)
	}
}
