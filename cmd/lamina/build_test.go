package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lamina-bio/lamina/catalog/catalogrpc"
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

// A lamina that meets a daemon of another build says which is the newer
// and the way that works from there: an older lamina is told to use the
// daemon's program (named from /proc), since following "umount && mount"
// with it unmounted and then could not mount (the catalog was upgraded),
// or took the mount back to the older build; a newer one is told to
// remount with itself. Before, every case got the remount (audit d4).
func TestBuildAdviceSaysWhichIsNewer(t *testing.T) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	const ownTime = "2026-11-28T10:00:00Z"
	remount := "`lamina umount /m && lamina mount /m`"
	p := catalogrpc.Protocol
	for _, c := range []struct {
		name string
		h    catalogrpc.Hello
		want age
	}{
		{"newer protocol", catalogrpc.Hello{Build: "b", Protocol: p + 1, BuildTime: "2020-01-01T00:00:00Z"}, newer},
		{"older protocol", catalogrpc.Hello{Build: "b", Protocol: p - 1, BuildTime: "2030-01-01T00:00:00Z"}, older},
		{"no build said", catalogrpc.Hello{}, older},
		{"later commit", catalogrpc.Hello{Build: "b", Protocol: p, BuildTime: "2026-11-28T11:00:00Z"}, newer},
		{"earlier commit", catalogrpc.Hello{Build: "b", Protocol: p, BuildTime: "2026-11-28T09:00:00Z"}, older},
		{"same commit", catalogrpc.Hello{Build: "b", Protocol: p, BuildTime: ownTime}, unknownAge},
		{"no commit time", catalogrpc.Hello{Build: "b", Protocol: p}, unknownAge},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.h.PID = os.Getpid()
			if got := daemonAge(c.h, ownTime); got != c.want {
				t.Fatalf("daemonAge = %d, want %d", got, c.want)
			}
			what, todo := buildAdvice(c.h, "own", ownTime, "/m")
			switch c.want {
			case newer:
				if !strings.Contains(what, "newer than this one") || !strings.Contains(what, exe) ||
					!strings.Contains(todo, "use the daemon's lamina") || !strings.Contains(todo, "do not remount with this one") {
					t.Errorf("a newer daemon: %s; %s", what, todo)
				}
			case older:
				if !strings.Contains(what, "older than this one") || todo != "remount with this lamina: "+remount {
					t.Errorf("an older daemon: %s; %s", what, todo)
				}
			default:
				if !strings.Contains(what, exe) || !strings.Contains(todo, "use the daemon's lamina") || !strings.Contains(todo, "if this one is the newer, remount with it: "+remount) {
					t.Errorf("a daemon of unknown age: %s; %s", what, todo)
				}
			}
		})
	}
}
