package lineage_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/lineage"
)

// TestSweepOrphanedJobs: at a daemon's start (and in `runs ls`), the job
// runs a daemon of this host made and left running when it died (kill -9)
// after their pipeline's run ended are abandoned, with a note: nothing
// else would ever end them. Before, they stayed "running" for ever. Job
// runs of another host (a teammate's workstation on a shared PostgreSQL
// catalog), of a daemon still running, or of a pipeline still running
// (the new daemon adopts those: Resume) are left alone.
func TestSweepOrphanedJobs(t *testing.T) {
	ctx := context.Background()
	c := openBolt(t)
	host, _ := os.Hostname()
	tf, _ := c.SaveTransform(ctx, catalog.Transform{Name: "snakemake", Kind: "pipeline"})
	start := func(r catalog.Run) catalog.Run {
		t.Helper()
		r.Transform = tf.UID
		got, err := c.StartRun(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	// A daemon that is gone: a process of this boot that exited.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	deadStart := uint64(1) // and no process has its pid with this start time
	live := lineage.DaemonID()
	if live == "" {
		t.Skip("no /proc boot id")
	}
	boot := strings.Split(live, "/")[0]
	deadID := fmt.Sprintf("%s/%d/%d", boot, dead.Process.Pid, deadStart)
	otherBoot := fmt.Sprintf("00000000-0000-0000-0000-000000000000/%d/%s", os.Getpid(), strings.Split(live, "/")[2])

	ended := start(catalog.Run{Name: "snakemake", Host: host, Split: true})
	code := 1
	if _, err := c.FinishRun(ctx, ended.UID, catalog.RunEnd{FinishedAt: time.Now(), ExitCode: &code}); err != nil {
		t.Fatal(err)
	}
	running := start(catalog.Run{Name: "snakemake", Host: host, Split: true})
	job := func(parent, h, daemon string) string {
		return start(catalog.Run{Name: "job", Parent: parent, Host: h, Daemon: daemon}).UID
	}
	want := map[string]string{
		job(ended.UID, host, deadID):        catalog.RunAbandoned, // its daemon was killed
		job(ended.UID, host, otherBoot):     catalog.RunAbandoned, // its daemon's boot is over
		job(ended.UID, host, ""):            catalog.RunAbandoned, // made before daemons were recorded
		job(ended.UID, host, live):          catalog.RunRunning,   // its daemon still runs
		job(ended.UID, "elsewhere", ""):     catalog.RunRunning,   // another workstation's
		job(ended.UID, "elsewhere", deadID): catalog.RunRunning,   // its pid means nothing here
		job(running.UID, host, deadID):      catalog.RunRunning,   // its pipeline runs on: Resume adopts it
	}
	runs, err := c.ListRuns(ctx, catalog.RunQuery{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]catalog.Run{}
	for _, r := range lineage.SweepRuns(ctx, c, runs) {
		got[r.UID] = r
	}
	for uid, st := range want {
		rec, err := c.RunRecord(ctx, uid)
		if err != nil {
			t.Fatal(err)
		}
		r := rec.Run
		if r.Status != st || got[uid].Status != st {
			t.Errorf("job run %s (host %s, daemon %q): stored %s, listed %s; want %s", uid, r.Host, r.Daemon, r.Status, got[uid].Status, st)
		}
		if st == catalog.RunAbandoned && (r.FinishedAt == nil || r.Note != lineage.OrphanNote) {
			t.Errorf("abandoned job run %+v: want an end and the note", r)
		}
	}
	for uid := range want {
		rec, _ := c.RunRecord(ctx, uid)
		if rec.Run.Status == catalog.RunRunning {
			continue
		}
		// An amend that learnt how the job ended drops the note.
		zero := 0
		if r, err := c.FinishRun(ctx, uid, catalog.RunEnd{ExitCode: &zero}); err != nil || r.Status != catalog.RunOK || r.Note != "" {
			t.Errorf("amended to ok: %+v, %v", r, err)
		}
	}
}

// TestEndJobs: `lamina run` ends the job runs of its pipeline's run that
// are still running once it recorded the pipeline's end (the daemon that
// would have ended them may be dead); a nested run with a root of its own
// is not a job run and is left alone.
func TestEndJobs(t *testing.T) {
	ctx := context.Background()
	c := openBolt(t)
	host, _ := os.Hostname()
	tf, _ := c.SaveTransform(ctx, catalog.Transform{Name: "snakemake", Kind: "pipeline"})
	p, _ := c.StartRun(ctx, catalog.Run{Transform: tf.UID, Name: "snakemake", Host: host, Split: true})
	j1, _ := c.StartRun(ctx, catalog.Run{Transform: tf.UID, Name: "job", Parent: p.UID, Host: host})
	j2, _ := c.StartRun(ctx, catalog.Run{Transform: tf.UID, Name: "job", Parent: p.UID, Host: host})
	nested, _ := c.StartRun(ctx, catalog.Run{Transform: tf.UID, Name: "n", Parent: p.UID, Host: host, RootPID: os.Getpid(), RootStart: 1})
	end := catalog.RunEnd{FinishedAt: time.Now(), Abandoned: true, Note: lineage.OrphanNote}
	if n := lineage.EndJobs(ctx, c, p.UID, end); n != 2 {
		t.Fatalf("EndJobs ended %d runs, want 2", n)
	}
	for uid, st := range map[string]string{j1.UID: catalog.RunAbandoned, j2.UID: catalog.RunAbandoned, nested.UID: catalog.RunRunning} {
		if rec, _ := c.RunRecord(ctx, uid); rec.Run.Status != st {
			t.Errorf("run %s %+v: want %s", uid, rec.Run, st)
		}
	}
}
