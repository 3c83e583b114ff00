package lineage

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/catalog"
)

// TestResumeLeavesAnotherDaemonsRun: a second daemon of the same catalog
// on this host (another instance connected to the same PostgreSQL) that
// starts while a run registered with the first one runs leaves the run
// to it. It adopted it, saw its root exit after the first daemon had
// finished the run ok, and overwrote the run as abandoned, its exit code
// lost.
func TestResumeLeavesAnotherDaemonsRun(t *testing.T) {
	ctx := context.Background()
	c, err := catalog.OpenBolt(filepath.Join(t.TempDir(), "catalog.db"), catalog.BoltOptions{Hold: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tf, _ := c.SaveTransform(ctx, catalog.Transform{Name: "bash", Kind: "program"})
	root := exec.Command("sleep", "30")
	if err := root.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { root.Process.Kill(); root.Wait() }()
	start, err := ProcStart(root.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()

	first := NewTracker(c, TrackerOptions{FlushEvery: time.Hour})
	defer first.Close()
	if first.daemon == "" {
		t.Skip("no /proc boot id")
	}
	r, err := first.Wrap(c).StartRun(ctx, catalog.Run{Transform: tf.UID, Host: host, HostID: HostID(), RootPID: root.Process.Pid, RootStart: start})
	if err != nil {
		t.Fatal(err)
	}
	if r.Daemon != first.daemon {
		t.Fatalf("run registered by %q, want %q", r.Daemon, first.daemon)
	}

	// The second daemon: another process in this test (both trackers
	// live in this one), that runs.
	other := exec.Command("sleep", "30")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { other.Process.Kill(); other.Wait() }()
	otherStart, _ := ProcStart(other.Process.Pid)
	second := newTracker(c, TrackerOptions{FlushEvery: 10 * time.Millisecond}, fmt.Sprintf("%s/%d/%d", bootID(), other.Process.Pid, otherStart))
	defer second.Close()
	runs, _ := c.ListRuns(ctx, catalog.RunQuery{})
	if got := second.Resume(ctx, runs); len(got) != 0 {
		t.Fatalf("the second daemon resumed %v, a run the first one tracks", got)
	}

	zero := 0
	if _, err := first.Wrap(c).FinishRun(ctx, r.UID, catalog.RunEnd{FinishedAt: time.Now(), ExitCode: &zero}); err != nil {
		t.Fatal(err)
	}
	root.Process.Kill()
	root.Wait()
	time.Sleep(100 * time.Millisecond) // the second daemon reaps
	if rec, err := c.RunRecord(ctx, r.UID); err != nil || rec.Run.Status != catalog.RunOK || rec.Run.ExitCode == nil {
		t.Fatalf("run %+v, %v; want ok, exit 0", rec.Run, err)
	}

	// Once the daemon that registered it is gone, a later one adopts it.
	root2 := exec.Command("sleep", "30")
	if err := root2.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { root2.Process.Kill(); root2.Wait() }()
	start2, _ := ProcStart(root2.Process.Pid)
	boot := bootID()
	gone := fmt.Sprintf("%s/%d/%d", boot, root.Process.Pid, start) // exited
	r2, err := c.StartRun(ctx, catalog.Run{Transform: tf.UID, Host: host, HostID: HostID(), RootPID: root2.Process.Pid, RootStart: start2, Daemon: gone})
	if err != nil {
		t.Fatal(err)
	}
	runs, _ = c.ListRuns(ctx, catalog.RunQuery{})
	if got := second.Resume(ctx, runs); len(got) != 1 || got[0] != r2.UID {
		t.Fatalf("resumed %v, want %s (its daemon is gone)", got, r2.UID)
	}
	// It claims the run: a third daemon leaves it to the second.
	if rec, _ := c.RunRecord(ctx, r2.UID); rec.Run.Daemon != second.daemon || rec.Run.Status != catalog.RunRunning {
		t.Fatalf("resumed run %+v; want running, claimed by %s", rec.Run, second.daemon)
	}
	// A third daemon leaves it to the second until the second stops,
	// and then tracks it.
	third := newTracker(c, TrackerOptions{FlushEvery: 10 * time.Millisecond}, "third")
	defer third.Close()
	runs, _ = c.ListRuns(ctx, catalog.RunQuery{})
	if got := third.Resume(ctx, runs); len(got) != 0 {
		t.Fatalf("a third daemon resumed %v, runs the second one tracks", got)
	}
	other.Process.Kill()
	other.Wait()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if rec, _ := c.RunRecord(ctx, r2.UID); rec.Run.Daemon == "third" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the third daemon did not track the run once the second stopped")
		}
	}
	if third.Caller(uint32(root2.Process.Pid)) != r2.UID {
		t.Fatalf("the third daemon does not credit the run's root to it")
	}
}

// TestHereTellsNamespacesApart: two machines with one host name on a
// shared catalog (containers with the host network's name and their own
// pid namespaces, workstations named alike) abandoned each other's
// running runs: a pid of one means nothing on the other. A run judged
// here must have this process's HostID; a run recorded before runs had
// one is judged by its host name, as before.
func TestHereTellsNamespacesApart(t *testing.T) {
	host, _ := os.Hostname()
	me := HostID()
	if me == "" {
		t.Skip("no /proc boot id or pid namespace")
	}
	if out, err := exec.Command("unshare", "--pid", "--fork", "--mount-proc", "readlink", "/proc/self/ns/pid").Output(); err == nil {
		other := bootID() + "/" + string(out[len("pid:["):len(out)-2])
		if other == me {
			t.Fatalf("a pid namespace of its own has the host's id %s", me)
		}
	}
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	daemon := fmt.Sprintf("%s/%d/1", bootID(), dead.Process.Pid) // gone
	elsewhere := bootID() + "/1"                                 // no pid namespace has inode 1
	for _, tc := range []struct {
		hostID string
		want   bool
	}{{me, true}, {"", true}, {elsewhere, false}} {
		root := catalog.Run{Status: catalog.RunRunning, Host: host, HostID: tc.hostID, RootPID: dead.Process.Pid, RootStart: 1}
		if got := Vanished(root, host); got != tc.want {
			t.Errorf("host id %q: Vanished = %v, want %v", tc.hostID, got, tc.want)
		}
		job := catalog.Run{Status: catalog.RunRunning, Host: host, HostID: tc.hostID, Parent: "p", Daemon: daemon}
		if got := Orphaned(job, host, func(string) string { return catalog.RunOK }); got != tc.want {
			t.Errorf("host id %q: Orphaned = %v, want %v", tc.hostID, got, tc.want)
		}
	}
}
