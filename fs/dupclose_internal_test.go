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

// onMount counts a descriptor only if its mnt_id is one of the mount's,
// and when that cannot be told: the scanners it serves lose data by a miss.
func TestOnMount(t *testing.T) {
	var proc, other mountinfo.Mount
	for _, mi := range mountinfo.Read() {
		if mi.Dir == "/proc" {
			proc = mi
		} else if mi.ID != "" && mi.Dev != "" && other.ID == "" {
			other = mi
		}
	}
	if proc.ID == "" || other.ID == "" || other.Dev == proc.Dev {
		t.Skip("no /proc and other mount in mountinfo")
	}
	info := func(id string) string { return "pos:\t0\nflags:\t02\nmnt_id:\t" + id + "\nino:\t7\n" }
	m := &Mount{dev: proc.Dev}
	for _, c := range []struct {
		info string
		want bool
	}{
		{info(proc.ID), true},
		{info(other.ID), false},
		{info("999999999"), true}, // another namespace's: cannot be told
		{"pos:\t0\nflags:\t02\nino:\t7\n", true},
	} {
		if got := m.onMount(c.info); got != c.want {
			t.Errorf("onMount(%q) = %v, want %v", c.info, got, c.want)
		}
	}
	if !(&Mount{}).onMount(info(other.ID)) {
		t.Error("a mount whose device is unknown counted no descriptor")
	}
}
