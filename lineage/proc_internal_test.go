package lineage

import (
	"os/exec"
	"testing"

	"golang.org/x/sys/unix"
)

// A poll interrupted by a signal (EINTR: the Go runtime signals its own
// threads all the time) says nothing about the process: it was taken for
// an exit, and live runs were marked abandoned mid-run.
func TestPidfdAliveThroughEINTR(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	fd, ok := openPidfd(cmd.Process.Pid)
	if !ok {
		t.Skip("no pidfd_open here")
	}
	defer fd.close()
	interrupts := 0
	poll = func(fds []unix.PollFd, timeout int) (int, error) {
		if interrupts < 3 {
			interrupts++
			return 0, unix.EINTR
		}
		return unix.Poll(fds, timeout)
	}
	defer func() { poll = unix.Poll }()
	if !fd.alive() {
		t.Fatal("a running process whose poll was interrupted is taken for gone")
	}
	cmd.Process.Kill()
	cmd.Wait()
	if fd.alive() {
		t.Fatal("a process that exited is taken for alive")
	}
}
