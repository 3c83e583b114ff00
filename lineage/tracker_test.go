package lineage_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/catalog/catalogtest"
	"github.com/lamina-bio/lamina/lineage"
)

// startTree starts sh (the root) with a sleeping child and returns both.
func startTree(t *testing.T) (root *exec.Cmd, child int) {
	t.Helper()
	root = exec.Command("sh", "-c", "sleep 30 & echo $!; wait")
	out, err := root.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := root.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Process.Kill(); root.Wait() })
	var b [32]byte
	n, _ := out.Read(b[:])
	for _, c := range b[:n] {
		if c >= '0' && c <= '9' {
			child = child*10 + int(c-'0')
		}
	}
	return root, child
}

func TestTrackerAttribution(t *testing.T) {
	ctx := context.Background()
	c := openBolt(t)
	tr := lineage.NewTracker(c, lineage.TrackerOptions{FlushEvery: time.Hour})
	defer tr.Close()
	cat := tr.Wrap(c)
	tf, _ := c.SaveTransform(ctx, catalog.Transform{Name: "t", Kind: "named"})

	if got := tr.Caller(uint32(os.Getpid())); got != "" {
		t.Fatalf("nothing registered: Caller = %q", got)
	}
	root, child := startTree(t)
	start, err := lineage.ProcStart(root.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("WrongStartTimeRefused", func(t *testing.T) {
		_, err := cat.StartRun(ctx, catalog.Run{Transform: tf.UID, RootPID: root.Process.Pid, RootStart: start + 1})
		if !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("a root with another start time: %v", err)
		}
	})
	r, err := cat.StartRun(ctx, catalog.Run{Transform: tf.UID, RootPID: root.Process.Pid, RootStart: start})
	if err != nil {
		t.Fatal(err)
	}
	if got := tr.Caller(uint32(child)); got != r.UID {
		t.Fatalf("child of the root: Caller = %q, want %q", got, r.UID)
	}
	if got := tr.Caller(uint32(os.Getpid())); got != "" {
		t.Fatalf("untracked process: Caller = %q", got)
	}
	t.Run("InputsSkipOwnOutputs", func(t *testing.T) {
		in := save1(t, c, catalogtest.NV("raw/x", "x"))
		nv := catalogtest.NV("out/y", "y")
		nv.Run = r.UID
		own := save1(t, c, nv)
		tr.Used(r.UID, in)
		tr.Used(r.UID, in)
		tr.Used(r.UID, own)
		zero := 0
		if _, err := cat.FinishRun(ctx, r.UID, catalog.RunEnd{FinishedAt: time.Now(), ExitCode: &zero}); err != nil {
			t.Fatal(err)
		}
		rec, _ := c.RunRecord(ctx, r.UID)
		if len(rec.Inputs) != 1 || rec.Inputs[0] != in.UID {
			t.Fatalf("inputs %v", rec.Inputs)
		}
	})
	t.Run("FinishedRunNoLongerAttributes", func(t *testing.T) {
		if got := tr.Caller(uint32(child)); got != "" {
			t.Fatalf("after finish: Caller = %q", got)
		}
	})
	t.Run("DeadPidNeverMatches", func(t *testing.T) {
		r2, err := cat.StartRun(ctx, catalog.Run{Transform: tf.UID, RootPID: root.Process.Pid, RootStart: start})
		if err != nil {
			t.Fatal(err)
		}
		if got := tr.Caller(uint32(child)); got != r2.UID {
			t.Fatalf("Caller = %q", got)
		}
		// The root and its child die: the cached answer and the root are
		// dead handles, so a process that reuses either number is not
		// attributed to the run.
		root.Process.Kill()
		root.Wait()
		exec.Command("kill", "-9", itoa(child)).Run()
		deadline := time.Now().Add(30 * time.Second)
		for tr.Caller(uint32(child)) != "" {
			if time.Now().After(deadline) {
				t.Fatal("a dead process is still attributed")
			}
			time.Sleep(20 * time.Millisecond)
		}
		// A new process under this test (not under the dead root).
		p := exec.Command("sleep", "5")
		p.Start()
		defer func() { p.Process.Kill(); p.Wait() }()
		if got := tr.Caller(uint32(p.Process.Pid)); got != "" {
			t.Fatalf("new process attributed to %q", got)
		}
	})
}

func itoa(n int) string {
	b := []byte{}
	for n > 0 {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
	}
	return string(b)
}

func save1(t *testing.T, c catalog.Catalog, nv catalog.NewVersion) catalog.Version {
	t.Helper()
	s, err := c.Save(context.Background(), []catalog.NewVersion{nv})
	if err != nil {
		t.Fatal(err)
	}
	return s[0].Version
}

// slowInputs is a catalog whose AddInputs waits for release.
type slowInputs struct {
	*catalog.Bolt
	entered chan struct{}
	release chan struct{}
}

func (c *slowInputs) AddInputs(ctx context.Context, run string, uids []string) error {
	c.entered <- struct{}{}
	<-c.release
	return c.Bolt.AddInputs(ctx, run, uids)
}

// A run's end waits for a periodic flush that is writing its inputs: the
// record its caller reads right after has them.
func TestFinishWaitsForFlushInProgress(t *testing.T) {
	ctx := context.Background()
	b := openBolt(t)
	c := &slowInputs{Bolt: b, entered: make(chan struct{}, 1), release: make(chan struct{})}
	tr := lineage.NewTracker(c, lineage.TrackerOptions{FlushEvery: time.Millisecond})
	defer tr.Close()
	var once sync.Once
	release := func() { once.Do(func() { close(c.release) }) }
	defer release() // before Close, which waits for the flusher
	cat := tr.Wrap(c)
	tf, _ := b.SaveTransform(ctx, catalog.Transform{Name: "t", Kind: "named"})
	r, err := cat.StartRun(ctx, catalog.Run{Transform: tf.UID})
	if err != nil {
		t.Fatal(err)
	}
	in := save1(t, b, catalogtest.NV("raw/x", "x"))
	tr.Used(r.UID, in)
	<-c.entered // the periodic flush holds the input
	finished := make(chan error, 1)
	go func() {
		zero := 0
		_, err := cat.FinishRun(ctx, r.UID, catalog.RunEnd{FinishedAt: time.Now(), ExitCode: &zero})
		finished <- err
	}()
	select {
	case err := <-finished:
		t.Fatalf("FinishRun returned (%v) while its inputs were still being written", err)
	case <-time.After(200 * time.Millisecond):
	}
	release()
	if err := <-finished; err != nil {
		t.Fatal(err)
	}
	rec, err := b.RunRecord(ctx, r.UID)
	if err != nil || len(rec.Inputs) != 1 || rec.Inputs[0] != in.UID {
		t.Fatalf("inputs after the run's end: %v, %v", rec.Inputs, err)
	}
}

// TestTrackerResume: at a daemon's start, Resume registers the runs of
// this host still running whose root lives with its registered start
// time, and only those; a job run an earlier daemon left running ends
// with its run, and what it wrote is no input of its parent.
func TestTrackerResume(t *testing.T) {
	ctx := context.Background()
	c := openBolt(t)
	tf, _ := c.SaveTransform(ctx, catalog.Transform{Name: "t", Kind: "named"})
	root, child := startTree(t)
	start, err := lineage.ProcStart(root.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	mk := func(r catalog.Run) catalog.Run {
		t.Helper()
		r.Transform = tf.UID
		got, err := c.StartRun(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	live := mk(catalog.Run{Name: "live", Host: host, RootPID: root.Process.Pid, RootStart: start, Split: true})
	job := mk(catalog.Run{Name: "job", Parent: live.UID, Host: host})
	wrong := mk(catalog.Run{Name: "wrong", Host: host, RootPID: root.Process.Pid, RootStart: start + 1})
	other := mk(catalog.Run{Name: "other", Host: host + "-elsewhere", RootPID: root.Process.Pid, RootStart: start})
	ended := mk(catalog.Run{Name: "ended", Host: host, RootPID: root.Process.Pid, RootStart: start})
	zero := 0
	c.FinishRun(ctx, ended.UID, catalog.RunEnd{FinishedAt: time.Now(), ExitCode: &zero})
	runs, _ := c.ListRuns(ctx, catalog.RunQuery{})
	ended.Status = catalog.RunRunning // as a list read before it ended says

	tr := lineage.NewTracker(c, lineage.TrackerOptions{FlushEvery: time.Hour})
	defer tr.Close()
	got := tr.Resume(ctx, append(runs, ended))
	if len(got) != 1 || got[0] != live.UID {
		t.Fatalf("Resume registered %v, want only %s (wrong start %s, other host %s, ended %s)", got, live.UID, wrong.UID, other.UID, ended.UID)
	}
	if r := tr.Caller(uint32(child)); r != live.UID {
		t.Fatalf("child of the resumed root: Caller = %q, want %s", r, live.UID)
	}
	nv := catalogtest.NV("out/j", "j")
	nv.Run = job.UID
	tr.Used(live.UID, save1(t, c, nv))
	if _, err := tr.Wrap(c).FinishRun(ctx, live.UID, catalog.RunEnd{FinishedAt: time.Now(), ExitCode: &zero}); err != nil {
		t.Fatal(err)
	}
	rec, _ := c.RunRecord(ctx, live.UID)
	jrec, _ := c.RunRecord(ctx, job.UID)
	if rec.Run.Status != catalog.RunOK || len(rec.Inputs) != 0 || jrec.Run.Status == catalog.RunRunning {
		t.Fatalf("resumed run %s with inputs %v, its job %s", rec.Run.Status, rec.Inputs, jrec.Run.Status)
	}
}

// TestTrackerJobPasses: in a split run, a job process with the command
// line of a job process that exited is another pass of that job
// (Snakemake's benchmark repeat) and takes its run; one with the same
// command line while the other still runs is another job.
func TestTrackerJobPasses(t *testing.T) {
	ctx := context.Background()
	c := openBolt(t)
	tr := lineage.NewTracker(c, lineage.TrackerOptions{FlushEvery: time.Hour})
	defer tr.Close()
	tf, _ := c.SaveTransform(ctx, catalog.Transform{Name: "t", Kind: "named"})
	// root → command (the inner sh, Snakemake's place) → jobs, one per line read.
	root := exec.Command("sh", "-c", `sh -c 'while read x; do sleep 30 & echo $!; done'; :`)
	in, _ := root.StdinPipe()
	out, _ := root.StdoutPipe()
	if err := root.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { in.Close(); root.Process.Kill(); root.Wait() }()
	var jobs []int
	newJob := func() int {
		t.Helper()
		in.Write([]byte("\n"))
		var pid int
		var b [1]byte
		for {
			if _, err := out.Read(b[:]); err != nil || b[0] == '\n' {
				break
			}
			pid = pid*10 + int(b[0]-'0')
		}
		jobs = append(jobs, pid)
		// The fork shows the shell's command line until it execs sleep: a
		// job is known by its command line (as a job is seen at its first
		// open, long after its exec), so wait for it.
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			if b, _ := os.ReadFile("/proc/" + itoa(pid) + "/cmdline"); strings.HasPrefix(string(b), "sleep\x00") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("job %d has not exec'd sleep in 30 s", pid)
			}
		}
		return pid
	}
	defer func() {
		for _, p := range jobs {
			exec.Command("kill", "-9", itoa(p)).Run()
		}
	}()
	start, err := lineage.ProcStart(root.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	r, err := tr.Wrap(c).StartRun(ctx, catalog.Run{Transform: tf.UID, RootPID: root.Process.Pid, RootStart: start, Split: true})
	if err != nil {
		t.Fatal(err)
	}
	first, second := newJob(), newJob()
	a, b := tr.Caller(uint32(first)), tr.Caller(uint32(second))
	if a == "" || a == r.UID || b == "" || b == a {
		t.Fatalf("two jobs at once: runs %q and %q (the pipeline's %s)", a, b, r.UID)
	}
	exec.Command("kill", "-9", itoa(first)).Run()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if b, err := os.ReadFile("/proc/" + itoa(first) + "/stat"); err != nil || strings.Contains(string(b), ") Z ") {
			break // gone, or a zombie: exited
		}
		if time.Now().After(deadline) {
			t.Fatal("the killed job still runs")
		}
	}
	if got := tr.Caller(uint32(newJob())); got != a {
		t.Fatalf("a job after the first exited: run %q, want the first's %s", got, a)
	}
	if got := tr.Caller(uint32(second)); got != b {
		t.Fatalf("the second job: run %q, want %s", got, b)
	}
}

// TestTrackerReadThenRewrite: a run that reads a version and then writes
// its bytes again (`sort -o f f`) keeps the read as an input, and the
// version is its output too; a run that wrote a version's bytes again and
// then reads it back (its own output) gets no input, nor does the
// pipeline a job of which wrote it again. The order decides, whenever
// the queued inputs reach the catalog (here: at the run's end).
func TestTrackerReadThenRewrite(t *testing.T) {
	ctx := context.Background()
	c := openBolt(t)
	tr := lineage.NewTracker(c, lineage.TrackerOptions{FlushEvery: time.Hour})
	defer tr.Close()
	cat := tr.Wrap(c)
	tf, _ := c.SaveTransform(ctx, catalog.Transform{Name: "t", Kind: "named"})
	start := func(parent string) catalog.Run {
		root, _ := startTree(t)
		st, err := lineage.ProcStart(root.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		r, err := cat.StartRun(ctx, catalog.Run{Transform: tf.UID, RootPID: root.Process.Pid, RootStart: st, Parent: parent})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	rewrite := func(run string, v catalog.Version) {
		t.Helper()
		nv := catalogtest.NV(v.Key, v.Key)
		nv.Run = run
		s, err := cat.Save(ctx, []catalog.NewVersion{nv})
		if err != nil || !s[0].Unchanged || s[0].Version.UID != v.UID {
			t.Fatalf("rewrite of %s: %+v, %v", v.Key, s, err)
		}
	}
	record := func(r catalog.Run) catalog.RunRecord {
		t.Helper()
		zero := 0
		if _, err := cat.FinishRun(ctx, r.UID, catalog.RunEnd{FinishedAt: time.Now(), ExitCode: &zero}); err != nil {
			t.Fatal(err)
		}
		rec, err := c.RunRecord(ctx, r.UID)
		if err != nil {
			t.Fatal(err)
		}
		return rec
	}
	for _, tc := range []struct {
		name      string
		readFirst bool
		inputs    int
	}{{"ReadThenRewrite", true, 1}, {"RewriteThenRead", false, 0}} {
		t.Run(tc.name, func(t *testing.T) {
			v := save1(t, c, catalogtest.NV("rr/"+tc.name, "rr/"+tc.name))
			r := start("")
			if tc.readFirst {
				tr.Used(r.UID, v)
			}
			rewrite(r.UID, v)
			tr.Used(r.UID, v)
			rec := record(r)
			if len(rec.Inputs) != tc.inputs || len(rec.Outputs) != 1 || rec.Outputs[0] != v.UID {
				t.Fatalf("inputs %v, outputs %v; want %d input(s) and %s", rec.Inputs, rec.Outputs, tc.inputs, v.UID)
			}
		})
	}
	t.Run("JobRewroteThenPipelineReads", func(t *testing.T) {
		v := save1(t, c, catalogtest.NV("rr/job", "rr/job"))
		pipe := start("")
		job := start(pipe.UID)
		other := start("")
		rewrite(job.UID, v)
		tr.Used(pipe.UID, v)
		tr.Used(other.UID, v)
		record(job)
		if rec := record(pipe); len(rec.Inputs) != 0 {
			t.Fatalf("the pipeline's inputs %v: what its job wrote again", rec.Inputs)
		}
		if rec := record(other); len(rec.Inputs) != 1 {
			t.Fatalf("another run's inputs %v", rec.Inputs)
		}
	})
}
