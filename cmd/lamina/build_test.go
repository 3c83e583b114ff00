package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestDaemonOfAnotherBuild: a lamina of another build than the mount's
// daemon refuses to write through it, saying how to restart the mount,
// and still reads; after a remount with it, it writes. Every build said
// 0.1.0-dev, and a new CLI's save through an old daemon lost what the
// daemon did not know (save --revises) without a word.
func TestDaemonOfAnotherBuild(t *testing.T) {
	e := newMntEnv(t)
	other := filepath.Join(t.TempDir(), "lamina")
	if out, err := exec.Command("go", "build", "-ldflags", "-X main.version=9.9.9-other", "-o", other, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	mnt := filepath.Join(e.dir, "mnt")
	e.ok("save", e.file("a.txt", []byte("a\n")), "--key", "a.txt")
	e.mount(mnt)
	run := func(bin string, args ...string) (string, string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env = e.env
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		return out.String(), errb.String(), err
	}
	_, errs, err := run(other, "save", e.file("b.txt", []byte("b\n")), "--key", "b.txt")
	if err == nil || !strings.Contains(errs, "runs another lamina build") || !strings.Contains(errs, "lamina umount "+mnt+" && lamina mount "+mnt) {
		t.Fatalf("save by another build through the daemon: %v\n%s", err, errs)
	}
	if _, err := os.Stat(filepath.Join(mnt, "b.txt")); !os.IsNotExist(err) {
		t.Fatalf("b.txt after the refused save: %v", err)
	}
	out, errs, err := run(other, "ls")
	if err != nil || !strings.Contains(out, "a.txt") || !strings.Contains(errs, "warning") {
		t.Fatalf("ls by another build: %v\n%s%s", err, out, errs)
	}
	if st := e.ok("status"); strings.Contains(st, "another lamina build") {
		t.Errorf("status by the daemon's own build says another build:\n%s", st)
	}
	if st, _, _ := run(other, "status"); !strings.Contains(st, "another lamina build") {
		t.Errorf("status by another build does not say so:\n%s", st)
	}
	// status --format json says so too.
	mismatch := func(js string) bool {
		var sts []mountStatus
		if err := json.Unmarshal([]byte(js), &sts); err != nil || len(sts) != 1 || sts[0].DaemonBuild == "" {
			t.Fatalf("status --format json: %v\n%s", err, js)
		}
		return sts[0].BuildMismatch
	}
	if mismatch(e.ok("status", "--format", "json")) {
		t.Errorf("status --format json by the daemon's own build says build_mismatch")
	}
	if js, _, _ := run(other, "status", "--format", "json"); !mismatch(js) {
		t.Errorf("status --format json by another build does not say build_mismatch:\n%s", js)
	}
	e.ok("save", e.file("c.txt", []byte("c\n")), "--key", "c.txt") // the daemon's own build writes
	if _, errs, err := run(other, "umount", mnt); err != nil {
		t.Fatalf("umount by another build: %v\n%s", err, errs)
	}
	if _, errs, err := run(other, "mount", mnt); err != nil {
		t.Fatalf("mount by the other build: %v\n%s", err, errs)
	}
	if _, errs, err := run(other, "save", e.file("b.txt", []byte("b\n")), "--key", "b.txt"); err != nil || strings.Contains(errs, "warning") {
		t.Fatalf("save by the build the daemon runs: %v\n%s", err, errs)
	}
	if got := string(mustRead(t, filepath.Join(mnt, "b.txt"))); got != "b\n" {
		t.Fatalf("b.txt after a save by the daemon's build: %q", got)
	}
}

// The executable's identity is the Go build ID the linker wrote (read
// from one ELF note), not a hash of the whole file: the CLI reads it at
// each command while a mount is up.
func TestExeIdentityIsGoBuildID(t *testing.T) {
	want, err := exec.Command("go", "tool", "buildid", os.Args[0]).Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := exeIdentity(); got != strings.TrimSpace(string(want)) {
		t.Fatalf("exeIdentity() = %q, want the Go build ID %q", got, want)
	}
}
