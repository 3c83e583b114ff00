package fs

import (
	"os/exec"
	"testing"

	"github.com/lamina-bio/lamina/mountinfo"
)

// The cost of the descriptor check at each close of a handle that wrote
// (writableFds), on a process holding what a writer usually does (pipes,
// /dev/null), none of them under the mount.
func BenchmarkCopyCheck(b *testing.B) {
	c := exec.Command("sleep", "600")
	if _, err := c.StdinPipe(); err != nil {
		b.Fatal(err)
	}
	if _, err := c.StdoutPipe(); err != nil {
		b.Fatal(err)
	}
	if err := c.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { c.Process.Kill(); c.Wait() }()
	m := &Mount{}
	for _, mi := range mountinfo.Read() {
		if mi.Dir == "/proc" {
			m.dev = mi.Dev // a mount the process has no descriptor under
		}
	}
	if m.dev == "" {
		b.Skip("no /proc in mountinfo")
	}
	tid := uint32(c.Process.Pid)
	b.ResetTimer()
	for range b.N {
		if m.writableFds(tid, 1) != 0 {
			b.Fatal("held")
		}
	}
}
