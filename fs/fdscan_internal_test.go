package fs

import (
	"os/exec"
	"testing"
)

// The cost of the descriptor check that every committing close makes
// (copyKept), on a process holding what a writer usually does (pipes,
// /dev/null), against reading each fdinfo by path (holdsInode).
func BenchmarkCloseCheck(b *testing.B) {
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
	tid := uint32(c.Process.Pid)
	b.Run("writableFds", func(b *testing.B) {
		for range b.N {
			if writableFds(tid, 1) != 0 {
				b.Fatal("held")
			}
		}
	})
	b.Run("holdsInode", func(b *testing.B) {
		for range b.N {
			if holdsInode(tid, 1) {
				b.Fatal("held")
			}
		}
	})
}
