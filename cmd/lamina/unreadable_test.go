package main

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// A file its user cannot read: root reads everything, so the save runs as
// the unprivileged user "nobody" on a root-owned 0600 file.
func TestSaveUnreadableFile(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("LAMINA_ALLOW_SKIP") == "" {
			t.Fatal("this test switches to user nobody and needs root (set LAMINA_ALLOW_SKIP=1 to skip)")
		}
		t.Skip("needs root")
	}
	dir, err := os.MkdirTemp("", "lamina-unreadable-")
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
	secret := filepath.Join(dir, "secret.csv")
	if err := os.WriteFile(secret, []byte("a,b\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env = []string{"LAMINA_TEST_AS_CLI=1", "HOME=" + dir + "/home", "XDG_CONFIG_HOME=" + dir + "/config",
			"XDG_DATA_HOME=" + dir + "/data", "XDG_CACHE_HOME=" + dir + "/cache", "XDG_RUNTIME_DIR=" + dir + "/run", "PATH=/usr/bin:/bin"}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		return string(out), err
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
