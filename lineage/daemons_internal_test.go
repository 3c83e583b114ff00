package lineage

import (
	"context"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/catalog"
)

// TestResumeTracksAnotherDaemonsRun: a second daemon of the same catalog
// on this host (another instance connected to the same PostgreSQL) that
// starts while a run registered with the first one runs registers it too,
// so that what the run does through its mount is credited (left to the
// first daemon, a run whose own mount then restarted lost its outputs),
// but leaves to the first daemon the judgment that the run was
// abandoned: it adopted it, saw its root exit after the first daemon had
// finished the run ok, and overwrote the run as abandoned.
func TestResumeTracksAnotherDaemonsRun(t *testing.T) {
	defer func(g time.Duration) { ownerGrace = g }(ownerGrace)
	ownerGrace = 500 * time.Millisecond
	ctx := context.Background()
	c, err := catalog.OpenBolt(filepath.Join(t.TempDir(), "catalog.db"), catalog.BoltOptions{Hold: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tf, _ := c.SaveTransform(ctx, catalog.Transform{Name: "bash", Kind: "program"})
	host, _ := os.Hostname()
	sleeper := func() (*exec.Cmd, uint64) {
		cmd := exec.Command("sleep", "30")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		start, err := ProcStart(cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		return cmd, start
	}
	status := func(uid string) catalog.Run {
		rec, err := c.RunRecord(ctx, uid)
		if err != nil {
			t.Fatal(err)
		}
		return rec.Run
	}

	root, start := sleeper()
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
	other, otherStart := sleeper()
	second := newTracker(c, TrackerOptions{FlushEvery: 10 * time.Millisecond}, fmt.Sprintf("%s/%d/%d", bootID(), other.Process.Pid, otherStart))
	defer second.Close()
	runs, _ := c.ListRuns(ctx, catalog.RunQuery{})
	if got := second.Resume(ctx, runs); len(got) != 1 || got[0] != r.UID {
		t.Fatalf("the second daemon resumed %v, want %s", got, r.UID)
	}
	if second.Caller(uint32(root.Process.Pid)) != r.UID {
		t.Fatal("the second daemon does not credit the run's root to it")
	}
	if d := status(r.UID).Daemon; d != first.daemon {
		t.Fatalf("the run's daemon is %q, want the first daemon's, alive", d)
	}

	zero := 0
	if _, err := first.Wrap(c).FinishRun(ctx, r.UID, catalog.RunEnd{FinishedAt: time.Now(), ExitCode: &zero}); err != nil {
		t.Fatal(err)
	}
	root.Process.Kill()
	root.Wait()
	// The second daemon reaps it (its tick), and drops it.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		second.mu.Lock()
		_, known := second.byRun[r.UID]
		second.mu.Unlock()
		if !known {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the second daemon still tracks a run whose root exited after 30 s")
		}
	}
	if got := status(r.UID); got.Status != catalog.RunOK || got.ExitCode == nil {
		t.Fatalf("run %+v; want ok, exit 0", got)
	}

	// Once the daemon that registered it is gone, a later one claims it.
	root2, start2 := sleeper()
	gone := fmt.Sprintf("%s/%d/%d", bootID(), root.Process.Pid, start) // exited
	r2, err := c.StartRun(ctx, catalog.Run{Transform: tf.UID, Host: host, HostID: HostID(), RootPID: root2.Process.Pid, RootStart: start2, Daemon: gone})
	if err != nil {
		t.Fatal(err)
	}
	// A run whose daemon lives but gives no end (a sleep stands for it).
	root3, start3 := sleeper()
	owner3, owner3Start := sleeper()
	r3, err := c.StartRun(ctx, catalog.Run{Transform: tf.UID, Host: host, HostID: HostID(), RootPID: root3.Process.Pid, RootStart: start3,
		Daemon: fmt.Sprintf("%s/%d/%d", bootID(), owner3.Process.Pid, owner3Start)})
	if err != nil {
		t.Fatal(err)
	}
	third := newTracker(c, TrackerOptions{FlushEvery: 10 * time.Millisecond}, first.daemon+"-third")
	defer third.Close()
	runs, _ = c.ListRuns(ctx, catalog.RunQuery{})
	if got := second.Resume(ctx, runs); len(got) != 2 {
		t.Fatalf("resumed %v, want %s and %s", got, r3.UID, r2.UID)
	}
	if got := status(r2.UID); got.Daemon != second.daemon || got.Status != catalog.RunRunning {
		t.Fatalf("resumed run %+v; want running, claimed by %s", got, second.daemon)
	}
	runs, _ = c.ListRuns(ctx, catalog.RunQuery{})
	if got := third.Resume(ctx, runs); len(got) != 2 {
		t.Fatalf("a third daemon resumed %v, want %s and %s", got, r3.UID, r2.UID)
	}
	if d := status(r2.UID).Daemon; d != second.daemon {
		t.Fatalf("the third daemon claimed %s from the second, alive (%s)", r2.UID, d)
	}
	if third.Caller(uint32(root2.Process.Pid)) != r2.UID || third.Caller(uint32(root3.Process.Pid)) != r3.UID {
		t.Fatal("the third daemon does not credit the runs' roots to them")
	}

	// Their roots exit unfinished: the second daemon, whose run it is,
	// abandons r2 at once; r3's daemon lives, and the others leave it to
	// it for ownerGrace, then abandon it.
	killed := time.Now()
	root2.Process.Kill()
	root2.Wait()
	root3.Process.Kill()
	root3.Wait()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if status(r2.UID).Status == catalog.RunAbandoned && status(r3.UID).Status == catalog.RunAbandoned {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("runs %+v, %+v; want both abandoned", status(r2.UID), status(r3.UID))
		}
	}
	// Not at once: a load that delays the check only makes the end later.
	if got := status(r3.UID); got.FinishedAt == nil || got.FinishedAt.Sub(killed) < ownerGrace {
		t.Fatalf("run %+v ended %v after its root, by a daemon not its own; want %v later at least", got, got.FinishedAt.Sub(killed), ownerGrace)
	}
	// `lamina run`, a moment after, records how it ended: its end wins.
	five := 5
	if got, err := c.FinishRun(ctx, r3.UID, catalog.RunEnd{FinishedAt: time.Now(), ExitCode: &five}); err != nil || got.Status != catalog.RunFailed || got.ExitCode == nil || *got.ExitCode != 5 {
		t.Fatalf("run ended by its client after an abandon: %+v, %v", got, err)
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

// TestJobRunOneForTwoDaemons: a Snakemake job seen by two daemons that
// track its pipeline (another instance's mount of a shared catalog, or
// one started while the job ran) got a job run from each, its lineage
// split between them. Both find one run, keyed by the job's process.
func TestJobRunOneForTwoDaemons(t *testing.T) {
	ctx := context.Background()
	c, err := catalog.OpenBolt(filepath.Join(t.TempDir(), "catalog.db"), catalog.BoltOptions{Hold: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tf, _ := c.SaveTransform(ctx, catalog.Transform{Name: "snakemake", Kind: "pipeline"})
	host, _ := os.Hostname()
	// root (lamina run) → command (snakemake) → job.
	root := exec.Command("sh", "-c", "sh -c 'sleep 30; true'; true")
	if err := root.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Process.Kill(); root.Wait() })
	job := 0
	for deadline := time.Now().Add(30 * time.Second); job == 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		if cmd := children(root.Process.Pid); len(cmd) == 1 {
			if j := children(cmd[0]); len(j) == 1 {
				job = j[0]
			}
		}
	}
	if job == 0 {
		t.Fatal("no job process in 30 s")
	}
	defer syscall.Kill(job, syscall.SIGKILL)
	start, err := ProcStart(root.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	first := NewTracker(c, TrackerOptions{FlushEvery: time.Hour})
	defer first.Close()
	r, err := first.Wrap(c).StartRun(ctx, catalog.Run{Transform: tf.UID, Host: host, HostID: HostID(), RootPID: root.Process.Pid, RootStart: start, Split: true})
	if err != nil {
		t.Fatal(err)
	}
	second := newTracker(c, TrackerOptions{FlushEvery: time.Hour}, first.daemon+"-second")
	defer second.Close()
	runs, _ := c.ListRuns(ctx, catalog.RunQuery{})
	if got := second.Resume(ctx, runs); len(got) != 1 {
		t.Fatalf("the second daemon resumed %v, want %s", got, r.UID)
	}
	a, b := first.Caller(uint32(job)), second.Caller(uint32(job))
	kids, _ := c.ListRuns(ctx, catalog.RunQuery{Parent: r.UID})
	if a == r.UID || a == "" || a != b || len(kids) != 1 {
		t.Fatalf("the job's runs: %q from the first daemon, %q from the second, %d child runs; want one child run of %s", a, b, len(kids), r.UID)
	}
	// Keyed by the pidfs inode alone: a daemon in another pid namespace
	// knows the job by another pid.
	if fd, ok := openPidfd(job); ok {
		if id := fd.id(); id != 0 && kids[0].Job != fmt.Sprintf("pidfs %d", id) {
			t.Errorf("job run keyed %q, want by its pidfs inode %d alone", kids[0].Job, id)
		}
		fd.close()
	}
}

// children returns the pids of pid's child processes.
func children(pid int) []int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if n, err := strconv.Atoi(f); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// TestWatchFindsRunsOfAnotherDaemon: a daemon already up learnt nothing
// of a run registered with another daemon of the catalog, and what the
// run did through its mount was nobody's. Told of its start (the catalog's
// change notifications: Changed) it registers the run, whatever its start
// time says: found by start time (since the last look, 2 s before), a run
// whose record committed later than that (locks, retries, a slow link, a
// clock that stepped) was never tracked, and a clock ahead made every
// daemon read the runs table again and again. It reads no list of runs,
// and does not register again a run it ended.
func TestWatchFindsRunsOfAnotherDaemon(t *testing.T) {
	ctx := context.Background()
	b, err := catalog.OpenBolt(filepath.Join(t.TempDir(), "catalog.db"), catalog.BoltOptions{Hold: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	c := &listCounter{Catalog: b}
	tf, _ := c.SaveTransform(ctx, catalog.Transform{Name: "bash", Kind: "program"})
	host, _ := os.Hostname()
	tk := newTracker(c, TrackerOptions{FlushEvery: time.Hour}, "this-daemon")
	defer tk.Close()
	for _, at := range []time.Time{time.Now().Add(-time.Hour), time.Now().Add(time.Hour)} {
		root := exec.Command("sleep", "30")
		if err := root.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { root.Process.Kill(); root.Wait() })
		start, err := ProcStart(root.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		// Registered with the other daemon: recorded in the catalog only,
		// its start time an hour off.
		r, err := c.StartRun(ctx, catalog.Run{Transform: tf.UID, Host: host, HostID: HostID(), RootPID: root.Process.Pid, RootStart: start, Daemon: "other-daemon", StartedAt: at})
		if err != nil {
			t.Fatal(err)
		}
		tk.Changed([]string{"some/key", catalog.RunStartChange(r.UID)})
		for deadline := time.Now().Add(30 * time.Second); tk.Caller(uint32(root.Process.Pid)) != r.UID; {
			if time.Now().After(deadline) {
				t.Fatalf("the run started at %v is not tracked after 30 s", at)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if got, err := c.RunRecord(ctx, r.UID); err != nil || got.Run.Daemon != "other-daemon" {
			t.Fatalf("run %+v, %v; want it left to its daemon", got.Run, err)
		}
		// Ended here (its end not written yet: unregister alone), never
		// registered again.
		tk.unregister(r.UID, false)
		tk.Changed([]string{catalog.RunStartChange(r.UID)})
		time.Sleep(200 * time.Millisecond)
		if got := tk.Caller(uint32(root.Process.Pid)); got != "" {
			t.Fatalf("the run ended here is tracked again: %q", got)
		}
	}
	if n := c.lists.Load(); n != 0 {
		t.Fatalf("%d lists of every run read", n)
	}
}

// listCounter counts the lists of all runs (not of a run's children).
type listCounter struct {
	catalog.Catalog
	lists atomic.Int32
}

func (c *listCounter) ListRuns(ctx context.Context, q catalog.RunQuery) ([]catalog.Run, error) {
	if q.Parent == "" {
		c.lists.Add(1)
	}
	return c.Catalog.ListRuns(ctx, q)
}

// TestMarkerOfRunNotHeardOfYet: a run registered with another daemon of a
// shared catalog whose process opens through this mount before the run's
// start notification reaches this daemon (a `lamina run` through mount B
// reading at once through mount A) lost the read: nothing told this daemon
// of the run yet. Here no notification ever comes (Changed is never
// called): the process's LAMINA_RUN has the run looked up at its open.
func TestMarkerOfRunNotHeardOfYet(t *testing.T) {
	ctx := context.Background()
	c, err := catalog.OpenBolt(filepath.Join(t.TempDir(), "catalog.db"), catalog.BoltOptions{Hold: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tf, _ := c.SaveTransform(ctx, catalog.Transform{Name: "bash", Kind: "program"})
	host, _ := os.Hostname()
	start := func(env ...string) *exec.Cmd {
		cmd := exec.Command("sleep", "30")
		cmd.Env = append(os.Environ(), env...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	root := start()
	rs, err := ProcStart(root.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	// Registered with the other daemon: in the catalog only.
	r, err := c.StartRun(ctx, catalog.Run{Transform: tf.UID, Host: host, HostID: HostID(), RootPID: root.Process.Pid, RootStart: rs, Daemon: "other-daemon", StartedAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	// EnvDeadline: the lookup is under test, not the 20 ms the daemon
	// gives a caller's environment (CI's load exceeded it: the marker
	// was never read, so never looked up).
	tk := newTracker(c, TrackerOptions{FlushEvery: time.Hour, Shared: true, MissWait: time.Minute, EnvDeadline: 10 * time.Second}, "this-daemon")
	defer tk.Close()
	proc := start(EnvRun + "=" + r.UID)
	if got := tk.Caller(uint32(proc.Process.Pid)); got != r.UID {
		t.Fatalf("a process of run %s not heard of yet resolves to %q", r.UID, got)
	}
	// A marker naming no run (garbage, a run of nothing) is looked up
	// once and credits nothing.
	for _, m := range []string{"garbage", "ABCDEFGH12345678"} {
		p := start(EnvRun + "=" + m)
		if got := tk.Caller(uint32(p.Process.Pid)); got != "" {
			t.Fatalf("marker %q resolves to %q", m, got)
		}
	}
	tk.mu.Lock()
	missed := tk.missed["ABCDEFGH12345678"]
	tk.mu.Unlock()
	if !missed {
		t.Fatal("a marker of no run is not remembered as such")
	}
	// Not shared (bbolt: the daemon is the only one): no lookup.
	solo := newTracker(c, TrackerOptions{FlushEvery: time.Hour}, "solo-daemon")
	defer solo.Close()
	if got := solo.Caller(uint32(proc.Process.Pid)); got != "" {
		t.Fatalf("an unshared tracker resolves %q", got)
	}
}

// unreachableRuns is a catalog that cannot read runs: the database away.
// Reads after the first hang until hung is closed: the daemon's own retry
// (a second later) is not what the test counts, however late it looks.
type unreachableRuns struct {
	catalog.Catalog
	reads atomic.Int64 // reads answered
	hung  chan struct{}
}

func (u *unreachableRuns) RunRecord(ctx context.Context, uid string) (catalog.RunRecord, error) {
	if u.reads.Load() > 0 {
		select {
		case <-u.hung:
		case <-ctx.Done():
		}
	}
	u.reads.Add(1)
	return catalog.RunRecord{}, errors.New("connection refused")
}

// TestMarkerOfUnreadableRunNotWaitedFor: with the catalog away, a
// process whose marker names a run this daemon does not know made each
// of its opens wait MissWait (2 s) for a lookup that kept failing (audit
// a5). A failed lookup lets the waiting opens go on, and the marker is
// not looked up again for a while.
func TestMarkerOfUnreadableRunNotWaitedFor(t *testing.T) {
	c, err := catalog.OpenBolt(filepath.Join(t.TempDir(), "catalog.db"), catalog.BoltOptions{Hold: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	u := &unreachableRuns{Catalog: c, hung: make(chan struct{})}
	// MissWait: the failed lookup, not the deadline, lets the opens go on.
	tk := newTracker(u, TrackerOptions{FlushEvery: time.Hour, Shared: true, MissWait: 30 * time.Second, EnvDeadline: 10 * time.Second}, "this-daemon")
	defer tk.Close()
	defer close(u.hung) // before Close, which waits for the retry
	cmd := exec.Command("sleep", "30")
	cmd.Env = append(os.Environ(), EnvRun+"=ABCDEFGH12345678")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	for range 3 {
		if got := tk.Caller(uint32(cmd.Process.Pid)); got != "" {
			t.Fatalf("resolves to %q", got)
		}
	}
	tk.mu.Lock()
	_, waiting := tk.looking["ABCDEFGH12345678"]
	tk.mu.Unlock()
	if n := u.reads.Load(); n != 1 || waiting {
		t.Fatalf("%d lookups of an unreadable run for three opens (one expected), opens still waiting: %v", n, waiting)
	}
}

// readOnlyRuns is a catalog whose role may only read: ending a run is
// denied (postgres.ErrReadOnly matches fs.ErrPermission).
type readOnlyRuns struct{ catalog.Catalog }

func (readOnlyRuns) FinishRun(ctx context.Context, uid string, e catalog.RunEnd) (catalog.Run, error) {
	return catalog.Run{}, fmt.Errorf("finish run %s: the catalog is read-only for this database role: %w", uid, iofs.ErrPermission)
}

// errorCount counts the log records at level Error (its Handler must be
// enabled at every level, or slog never calls Handle).
type errorCount struct {
	slog.Handler
	n *atomic.Int64
}

func (h errorCount) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		h.n.Add(1)
	}
	return h.Handler.Handle(ctx, r)
}

// A daemon whose catalog role may only read logged an ERROR for every run
// whose process it saw exit (each run another daemon of its host began):
// it cannot end them, and one that may write does.
func TestReapOnReadOnlyCatalogLogsNoError(t *testing.T) {
	ctx := context.Background()
	c, err := catalog.OpenBolt(filepath.Join(t.TempDir(), "catalog.db"), catalog.BoltOptions{Hold: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tf, _ := c.SaveTransform(ctx, catalog.Transform{Name: "bash", Kind: "program"})
	host, _ := os.Hostname()
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	start, err := ProcStart(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	var errs atomic.Int64
	log := slog.New(errorCount{slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelDebug}), &errs})
	tr := NewTracker(readOnlyRuns{c}, TrackerOptions{FlushEvery: time.Hour, Logger: log})
	defer tr.Close()
	if tr.daemon == "" {
		t.Skip("no /proc boot id")
	}
	// Registered by a daemon that may write; this one tracks it too.
	writer := NewTracker(c, TrackerOptions{FlushEvery: time.Hour})
	defer writer.Close()
	if _, err := writer.Wrap(c).StartRun(ctx, catalog.Run{Transform: tf.UID, Host: host, HostID: HostID(), RootPID: cmd.Process.Pid, RootStart: start}); err != nil {
		t.Fatal(err)
	}
	runs, _ := c.ListRuns(ctx, catalog.RunQuery{})
	if got := tr.Resume(ctx, runs); len(got) != 1 {
		t.Fatalf("resumed %v, want the run", got)
	}
	cmd.Process.Kill()
	cmd.Wait()
	tr.reap()
	if n := errs.Load(); n != 0 {
		t.Fatalf("%d errors logged for a run a read-only daemon cannot end", n)
	}
}
