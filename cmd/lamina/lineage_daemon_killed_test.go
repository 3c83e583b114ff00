package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/lineage"
)

// TestLineageSnakemakeDaemonKilled: a kill -9 of the mount daemon during
// `lamina run -- snakemake -j 4` (its working directory in the mount)
// left every job run "running" for ever, even once the pipeline's run was
// recorded failed and after a new mount: only the dead daemon's tracker
// would have ended them. Now `lamina run` ends them with its pipeline's
// run (abandoned, with a note), and no run is left running after umount
// and mount.
func TestLineageSnakemakeDaemonKilled(t *testing.T) {
	e, wf := snakemakeMount(t)
	mnt := filepath.Dir(wf)
	goFile := filepath.Join(e.dir, "go")
	defer os.WriteFile(goFile, nil, 0o644)
	// Each job writes its output, then waits for the test (60 s at most).
	os.WriteFile(filepath.Join(wf, "Snakefile"), []byte(`rule all:
    input: expand("out/{i}.txt", i=range(4))

rule work:
    output: "out/{i}.txt"
    shell: "echo {wildcards.i} > {output}; i=0; while [ ! -e `+goFile+` ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done"
`), 0o644)
	cmd := exec.Command(e.bin, "run", "--", "snakemake", "-j4")
	cmd.Env, cmd.Dir = e.env, wf
	errf, err := os.Create(filepath.Join(e.dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer errf.Close()
	cmd.Stdout, cmd.Stderr = errf, errf
	errs := func() string { b, _ := os.ReadFile(errf.Name()); return string(b) }
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	jobs := func() []catalog.Run {
		var out []catalog.Run
		for _, r := range e.runs() {
			if r.Name == "job" { // the tracker's name for a job run
				out = append(out, r)
			}
		}
		return out
	}
	for deadline := time.Now().Add(90 * time.Second); len(jobs()) < 4; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("4 job runs did not start in 90 s: %+v\n%s", jobs(), errs())
		}
	}
	e.killDaemon("m")
	os.WriteFile(goFile, nil, 0o644)
	waited := make(chan struct{})
	go func() { cmd.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(90 * time.Second):
		t.Fatalf("lamina run did not end in 90 s after the daemon was killed\n%s", errs())
	}
	// Before a new mount: lamina run ended its job runs itself.
	check := func(when string) {
		t.Helper()
		var sm catalog.Run
		n := 0
		for _, r := range e.runs() {
			switch {
			case r.Status == catalog.RunRunning:
				t.Errorf("%s: run %s (%s) still running", when, r.UID, r.Name)
			case r.Name == "snakemake":
				sm = r
			}
		}
		for _, r := range e.runs() {
			if r.Parent != sm.UID || r.RootPID != 0 {
				continue
			}
			n++
			if r.Status != catalog.RunAbandoned || r.FinishedAt == nil || r.Note == "" {
				t.Errorf("%s: job run %+v: want abandoned, with an end and a note", when, r)
			}
		}
		if sm.Status != catalog.RunFailed || n < 4 {
			t.Errorf("%s: the pipeline's run %+v with %d job runs; want failed with 4\n%s", when, sm, n, errs())
		}
	}
	check("after lamina run")
	e.ok("umount", mnt)
	e.ok("mount", mnt)
	check("after a new mount")
	// runs show says why.
	for _, r := range e.runs() {
		if r.Parent != "" {
			if out := e.ok("runs", "show", r.UID); !strings.Contains(out, "abandoned (how it ended is unknown: "+lineage.OrphanNote) {
				t.Errorf("runs show of a job run:\n%s", out)
			}
			break
		}
	}
}

// runs lists every run, newest first.
func (e *mntEnv) runs() []catalog.Run {
	e.t.Helper()
	var runs []catalog.Run
	if err := json.Unmarshal([]byte(e.ok("runs", "ls", "--format", "json", "-n", "0")), &runs); err != nil {
		e.t.Fatal(err)
	}
	return runs
}
