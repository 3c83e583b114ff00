package fs

import (
	"os"
	"os/exec"
	"slices"
	"strconv"
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

// threadsOf tells a process from any of its threads (/proc lists the
// group leader first), and childrenOf finds a child whichever thread
// forked it.
func TestThreadsOfNamesTheProcess(t *testing.T) {
	c := exec.Command("sleep", "600")
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { c.Process.Kill(); c.Wait() }()
	tids, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Skip(err)
	}
	if len(tids) < 2 {
		t.Fatalf("the test process has %d threads: the test needs more", len(tids))
	}
	for _, e := range tids {
		tid, _ := strconv.Atoi(e.Name())
		tg, ts := threadsOf(uint32(tid))
		if tg != os.Getpid() || len(ts) < 2 {
			t.Errorf("threadsOf(%d) = %d, %v; want %d and its threads", tid, tg, ts, os.Getpid())
		}
		if kids := childrenOf(uint32(tid), 64); !slices.Contains(kids, c.Process.Pid) {
			t.Errorf("childrenOf(%d) = %v, want it to hold %d", tid, kids, c.Process.Pid)
		}
	}
}
