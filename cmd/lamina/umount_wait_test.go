package main

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/instance"
)

// TestWaitDaemonSaysWhatHappens checks that umount's wait for a busy
// daemon says at once what it waits for, and that an interrupt before
// any upload progress says how the daemon goes on, not just "context
// canceled".
func TestWaitDaemonSaysWhatHappens(t *testing.T) {
	newEnv(t)
	dirs, err := instance.UserDirs()
	if err != nil {
		t.Fatal(err)
	}
	busy := exec.Command("sleep", "30") // a daemon that does not stop soon
	if err := busy.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { busy.Process.Kill(); busy.Wait() })
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	var out bytes.Buffer
	err = waitDaemon(ctx, &out, dirs, "m", mountState{PID: busy.Process.Pid, Mountpoint: "/mnt/lab"}, false, false)
	if !strings.Contains(out.String(), "waiting for the daemon to stop") {
		t.Errorf("umount printed %q while the daemon was busy", out.String())
	}
	if err == nil {
		t.Fatal("waitDaemon returned nil while the daemon lives")
	}
	for _, want := range []string{"interrupted", "lamina status", "lamina umount --force /mnt/lab"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("interrupted wait said %q; want %q in it", err, want)
		}
	}
}
