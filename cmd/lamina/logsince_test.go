package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLogSince: a mount whose daemon stopped before it was ready printed
// the instance's whole mount log (earlier mounts' lines, up to 8 MiB), its
// own reason the last line of it. Now only this daemon's last lines.
func TestLogSince(t *testing.T) {
	p := filepath.Join(t.TempDir(), "mount.log")
	earlier := strings.Repeat("level=INFO msg=\"mounted\" an earlier mount\n", 50)
	own := "level=INFO msg=starting\nlevel=ERROR msg=\"instance \\\"lab\\\" is already mounted at /mnt/b\"\n"
	if err := os.WriteFile(p, []byte(earlier+own), 0o600); err != nil {
		t.Fatal(err)
	}
	got := logSince(p, int64(len(earlier)), 20)
	if got != strings.TrimSpace(own) {
		t.Fatalf("logSince = %q, want this daemon's lines %q", got, own)
	}
	if got := logSince(p, 0, 3); strings.Count(got, "\n") != 2 || !strings.HasSuffix(got, "already mounted at /mnt/b\"") {
		t.Fatalf("logSince with 3 lines = %q", got)
	}
	// Rotated since the offset was taken: read from its start.
	if got := logSince(p, 1<<30, 1); !strings.Contains(got, "already mounted") {
		t.Fatalf("logSince of a rotated log = %q", got)
	}
}
