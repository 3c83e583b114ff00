package main

import (
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// asNobody makes a folder everyone may write and returns it with a runner
// of this binary as the CLI, as the unprivileged user "nobody", with its
// settings, data, cache and runtime folders inside, and a runner of sh
// scripts in that folder as nobody. Root may do anything, so tests of
// permissions switch to nobody.
func asNobody(t *testing.T) (dir string, run func(args ...string) (string, error), sh func(script string) (string, error)) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("LAMINA_ALLOW_SKIP") == "" {
			t.Fatal("this test switches to user nobody and needs root (set LAMINA_ALLOW_SKIP=1 to skip)")
		}
		t.Skip("needs root")
	}
	dir, err := os.MkdirTemp("", "lamina-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	// The test binary sits in a root-only build folder: copy it out.
	bin := filepath.Join(dir, "lamina")
	src, err := os.Open(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	dst, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	src.Close()
	dst.Close()
	cmd := func(name string, args ...string) (string, error) {
		out, err := nobodyCmd(dir, name, args...).CombinedOutput()
		return string(out), err
	}
	run = func(args ...string) (string, error) { return cmd(bin, args...) }
	sh = func(script string) (string, error) { return cmd("sh", "-c", script) }
	return dir, run, sh
}

// nobodyCmd is a command run as nobody in asNobody's folder dir, with its
// settings.
func nobodyCmd(dir, name string, args ...string) *exec.Cmd {
	c := exec.Command(name, args...)
	c.Dir = dir
	c.Env = []string{"LAMINA_TEST_AS_CLI=1", "HOME=" + dir + "/home", "XDG_CONFIG_HOME=" + dir + "/config",
		"XDG_DATA_HOME=" + dir + "/data", "XDG_CACHE_HOME=" + dir + "/cache", "XDG_RUNTIME_DIR=" + dir + "/run", "PATH=/usr/bin:/bin"}
	c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	return c
}

// A file its user cannot read: root reads everything, so the save runs as
// the unprivileged user "nobody" on a root-owned 0600 file.
func TestSaveUnreadableFile(t *testing.T) {
	dir, run, _ := asNobody(t)
	secret := filepath.Join(dir, "secret.csv")
	if err := os.WriteFile(secret, []byte("a,b\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := run("init", "--storage", dir+"/storage", "--name", "nobody"); err != nil {
		t.Fatalf("init as nobody: %v\n%s", err, out)
	}
	out, err := run("save", secret, "--key", "secret.csv")
	if err == nil || !strings.Contains(out, "permission denied") || !strings.Contains(out, secret) {
		t.Fatalf("save of an unreadable file: %v\n%s", err, out)
	}
	if out, err := run("ls", "--format", "json"); err != nil || strings.TrimSpace(out) != "[]" {
		t.Fatalf("after the failed save: %v\n%s", err, out)
	}
}

// TestProtectedFileRefusesWrites: a file chmod 0444 in the mount (what
// Snakemake does to protected() outputs) refuses its user's writes — an
// append, a truncating open, truncate(1), an O_CREAT open — as a plain file
// system would, makes no version for them, and takes writes again once
// made writable. The mount runs as nobody through fusermount3.
func TestProtectedFileRefusesWrites(t *testing.T) {
	dir, run, sh := asNobody(t)
	if _, err := exec.LookPath("fusermount3"); err != nil {
		t.Fatal("fusermount3 is not installed (apt-get install fuse3)")
	}
	if out, err := run("init", "--storage", dir+"/storage", "--name", "nobody"); err != nil {
		t.Fatalf("init as nobody: %v\n%s", err, out)
	}
	// A folder the user may not write: fusermount3 refuses it, and the
	// mount says why.
	if err := os.Mkdir(filepath.Join(dir, "rootdir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := run("mount", "rootdir"); err == nil || !strings.Contains(out, "you may not write to") {
		t.Fatalf("mount on a folder of root's: %v\n%s", err, out)
	}
	if out, err := sh("mkdir mnt"); err != nil {
		t.Fatal(out)
	}
	if out, err := run("mount", "mnt"); err != nil {
		t.Fatalf("mount as nobody: %v\n%s", err, out)
	}
	t.Cleanup(func() { run("umount", "mnt") })
	if out, err := sh("echo first > mnt/out.txt && chmod 0444 mnt/out.txt"); err != nil {
		t.Fatal(out)
	}
	for _, script := range []string{"echo more >> mnt/out.txt", "echo new > mnt/out.txt", "truncate -s 0 mnt/out.txt",
		"python3 -c 'open(\"mnt/out.txt\", \"r+\").write(\"x\")'"} {
		out, err := sh(script)
		if err == nil || !strings.Contains(strings.ToLower(out), "permission denied") {
			t.Fatalf("%s on a 0444 file: %v, %q; want permission denied", script, err, out)
		}
	}
	if out, err := sh("test ! -w mnt/out.txt && cat mnt/out.txt"); err != nil || out != "first\n" {
		t.Fatalf("after the refused writes: %v, %q", err, out)
	}
	if out, err := sh("chmod 0644 mnt/out.txt && echo more >> mnt/out.txt && cat mnt/out.txt"); err != nil || out != "first\nmore\n" {
		t.Fatalf("writable again: %v, %q", err, out)
	}
	if out, err := run("ls", "out.txt", "--versions", "--format", "json"); err != nil || strings.Count(out, `"version"`) != 2 {
		t.Fatalf("versions of out.txt: %v\n%s", err, out)
	}
	// Appends keep the mode: each made the file 000 and the next refused.
	if out, err := sh("for i in 1 2 3; do echo $i >> mnt/log.txt; done && cat mnt/log.txt && stat -c %a mnt/log.txt"); err != nil || out != "1\n2\n3\n644\n" {
		t.Fatalf("three appends: %v, %q", err, out)
	}
	// Read and execute bits are the user's too, for open and access(2).
	for _, c := range []struct{ script, want string }{
		{"echo s > mnt/p.txt && chmod 000 mnt/p.txt && cat mnt/p.txt", "cat: mnt/p.txt: permission denied"},
		{"test -r mnt/p.txt || echo unreadable", "unreadable"},
		{"chmod 0200 mnt/p.txt && echo w > mnt/p.txt && echo wrote && cat mnt/p.txt", "wrote\ncat: mnt/p.txt: permission denied"},
		{"printf '#!/bin/sh\\necho ran\\n' > mnt/s.sh && test -x mnt/s.sh || echo not executable", "not executable"},
		{"find mnt -maxdepth 1 -type f -executable", ""},
		{"chmod 755 mnt/s.sh && test -x mnt/s.sh && mnt/s.sh && find mnt -type f -executable", "ran\nmnt/s.sh"},
		{"cp /bin/echo mnt/e111 && chmod 111 mnt/e111 && mnt/e111 execute-only", "execute-only"},
	} {
		out, _ := sh(c.script)
		if got := strings.ToLower(strings.TrimSpace(out)); got != c.want {
			t.Errorf("%s: %q, want %q", c.script, got, c.want)
		}
	}
}

// TestMountThroughSymlink: a user's mountpoint given as a symbolic link to
// a folder mounts on the folder (fusermount3 refuses a link: "mountpoint
// is not a directory", which the mount reported as fusermount3 missing),
// and umount and status know it by either name.
func TestMountThroughSymlink(t *testing.T) {
	dir, run, sh := asNobody(t)
	if _, err := exec.LookPath("fusermount3"); err != nil {
		t.Fatal("fusermount3 is not installed (apt-get install fuse3)")
	}
	if err := explainMount(errors.New("fusermount exited with code 256")); strings.Contains(err.Error(), "apt-get install fuse3") {
		t.Errorf("with fusermount3 installed: %v", err)
	}
	if out, err := run("init", "--storage", dir+"/storage", "--name", "nobody"); err != nil {
		t.Fatalf("init as nobody: %v\n%s", err, out)
	}
	if out, err := sh("mkdir real && ln -s real labl"); err != nil {
		t.Fatal(out)
	}
	if out, err := run("mount", "labl"); err != nil {
		t.Fatalf("mount through a link: %v\n%s", err, out)
	}
	t.Cleanup(func() { run("umount", "real") })
	if out, err := sh("echo x > labl/a.txt && cat real/a.txt"); err != nil || out != "x\n" {
		t.Fatalf("through the mount: %v, %q", err, out)
	}
	if out, err := run("status"); err != nil || !strings.Contains(out, filepath.Join(dir, "real")) {
		t.Errorf("status: %v\n%s", err, out)
	}
	if out, err := run("umount", "labl"); err != nil {
		t.Fatalf("umount through the link: %v\n%s", err, out)
	}
}
