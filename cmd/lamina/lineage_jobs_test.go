package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/lineage"
)

// TestLineageSnakemakeJobTimes: each job's run takes the start and end
// Snakemake recorded for it (.snakemake/metadata), not the pipeline's end.
func TestLineageSnakemakeJobTimes(t *testing.T) {
	e, wf := snakemakeMount(t)
	os.WriteFile(filepath.Join(wf, "raw/a.csv"), []byte("a,1\n"), 0o644)
	os.WriteFile(filepath.Join(wf, "Snakefile"), []byte(`rule all:
    input: "results/b.csv"

rule a:
    input: "raw/a.csv"
    output: "results/a.csv"
    shell: "cat {input} > {output}"

rule b:
    input: "results/a.csv"
    output: "results/b.csv"
    shell: "sleep 2; cat {input} > {output}"
`), 0o644)
	if _, errs, code := e.runIn(wf, "run", "--", "snakemake", "-j1"); code != 0 {
		t.Fatalf("lamina run -- snakemake: exit %d\n%s", code, errs)
	}
	runs := e.runsByName()
	sm, a, b := runs["snakemake"], runs["a"], runs["b"]
	if a.FinishedAt == nil || b.FinishedAt == nil || sm.FinishedAt == nil {
		t.Fatalf("runs %+v", runs)
	}
	meta := func(out string) (start, end time.Time) {
		raw, err := os.ReadFile(filepath.Join(wf, ".snakemake", "metadata", base64.StdEncoding.EncodeToString([]byte(out))))
		if err != nil {
			t.Fatal(err)
		}
		var m struct{ Starttime, Endtime float64 }
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		return epochTime(m.Starttime), epochTime(m.Endtime)
	}
	for _, tc := range []struct {
		r   catalog.Run
		out string
	}{{a, "results/a.csv"}, {b, "results/b.csv"}} {
		start, end := meta(tc.out)
		if d := tc.r.StartedAt.Sub(start); d < -time.Millisecond || d > time.Millisecond {
			t.Errorf("rule %s started %s, Snakemake says %s", tc.r.Name, tc.r.StartedAt, start)
		}
		if d := tc.r.FinishedAt.Sub(end); d < -time.Millisecond || d > time.Millisecond {
			t.Errorf("rule %s finished %s, Snakemake says %s", tc.r.Name, tc.r.FinishedAt, end)
		}
	}
	// a ended before b's two-second sleep, well before the pipeline.
	if sm.FinishedAt.Sub(*a.FinishedAt) < 1500*time.Millisecond || b.FinishedAt.Sub(b.StartedAt) < 1500*time.Millisecond {
		t.Fatalf("a finished %s, b %s..%s, the pipeline %s", a.FinishedAt, b.StartedAt, b.FinishedAt, sm.FinishedAt)
	}
}

// TestLineageSnakemakeFailedJobTime: a failed job's run ends when its log
// says it failed, not at the pipeline's end.
func TestLineageSnakemakeFailedJobTime(t *testing.T) {
	e, wf := snakemakeMount(t)
	os.WriteFile(filepath.Join(wf, "raw/a.csv"), []byte("a,1\n"), 0o644)
	os.WriteFile(filepath.Join(wf, "Snakefile"), []byte(`rule all:
    input: "results/bad.csv", "results/slow.csv"

rule bad:
    input: "raw/a.csv"
    output: "results/bad.csv"
    shell: "cat {input} > /dev/null; exit 1"

rule slow:
    input: "raw/a.csv"
    output: "results/slow.csv"
    shell: "sleep 3; cat {input} > {output}"
`), 0o644)
	if _, errs, code := e.runIn(wf, "run", "--", "snakemake", "-j2", "--keep-going"); code == 0 {
		t.Fatalf("lamina run -- snakemake with a failing rule: exit 0\n%s", errs)
	}
	runs := e.runsByName()
	sm, bad := runs["snakemake"], runs["bad"]
	if bad.FinishedAt == nil || sm.FinishedAt == nil {
		t.Fatalf("runs %+v", runs)
	}
	if d := sm.FinishedAt.Sub(*bad.FinishedAt); d < 1500*time.Millisecond {
		t.Fatalf("the failed job finished %s, %s before the pipeline (%s): it took the pipeline's end", bad.FinishedAt, d, sm.FinishedAt)
	}
	if bad.FinishedAt.Before(bad.StartedAt) {
		t.Fatalf("the failed job finished %s before it started %s", bad.FinishedAt, bad.StartedAt)
	}
}

func epochTime(sec float64) time.Time {
	return time.Unix(0, int64(sec*1e9))
}

// TestLineageSnakemakeKilled: a job still running when Snakemake is
// killed (SIGKILL: the OOM killer, say) is not recorded ok: its run is
// abandoned, as the pipeline that would judge it is gone.
func TestLineageSnakemakeKilled(t *testing.T) {
	e, wf := snakemakeMount(t)
	os.WriteFile(filepath.Join(wf, "raw/in.txt"), []byte("1\n2\n3\n4\n"), 0o644)
	// The job goes on once the test has killed Snakemake (a sleep could
	// end before the kill under load: the job was then ok). Bounded: it
	// gives up after 60 s.
	goFile := filepath.Join(e.dir, "go")
	defer os.WriteFile(goFile, nil, 0o644) // the left job ends with the test
	os.WriteFile(filepath.Join(wf, "Snakefile"), []byte(`rule slow:
    input: "raw/in.txt"
    output: "out.txt"
    shell: "head -2 {input} > {output}; i=0; while [ ! -e `+goFile+` ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done; tail -2 {input} >> {output}"
`), 0o644)
	cmd := exec.Command(e.bin, "run", "--", "snakemake", "-j1")
	cmd.Env, cmd.Dir = e.env, wf
	var errb strings.Builder
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	out := filepath.Join(wf, "out.txt")
	// Wait for the job's first write, by the clock: under load Snakemake
	// took most of a minute to start it, and a kill before it started
	// tested nothing (no job run).
	started := false
	for deadline := time.Now().Add(90 * time.Second); !started && time.Now().Before(deadline); {
		if b, err := os.ReadFile(out); err == nil && len(b) > 0 {
			started = true
		} else {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if !started {
		t.Fatalf("the job wrote nothing to out.txt in 90 s\n%s", errb.String())
	}
	// lamina run's child is Snakemake.
	kids := childPIDs(cmd.Process.Pid)
	if len(kids) != 1 {
		t.Fatalf("processes under lamina run: %v\n%s", kids, errb.String())
	}
	syscall.Kill(kids[0], syscall.SIGKILL)
	os.WriteFile(goFile, nil, 0o644)
	// The job holds lamina run's stderr: Wait returns once it exited.
	if err := cmd.Wait(); err == nil {
		t.Fatalf("lamina run of a killed Snakemake exited 0\n%s", errb.String())
	}
	runs := e.runsByName()
	if p := runs["snakemake"]; p.Status != catalog.RunFailed || p.Signal != "SIGKILL" {
		t.Fatalf("the pipeline's run %+v", p)
	}
	rec := e.runRecord(runs["snakemake"].UID)
	if len(rec.Children) != 1 {
		t.Fatalf("child runs %v\n%s", rec.Children, errb.String())
	}
	job := e.runRecord(rec.Children[0])
	if job.Run.Status == catalog.RunOK || job.Run.Status == catalog.RunRunning {
		t.Fatalf("the job cut off by the kill is %s: %+v", job.Run.Status, job.Run)
	}
	// The orphaned job goes on: what it writes later is still its run's
	// (lamina run's cgroup holds it, and the tracker remembers its pid).
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if b, _ := os.ReadFile(out); strings.Count(string(b), "\n") == 4 {
			break
		}
	}
	var v catalog.Version
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if v = e.showVersion("wf/out.txt"); v.Version == 2 {
			break
		}
	}
	if v.Version != 2 || v.Run != job.Run.UID {
		t.Fatalf("the job's later append: %s@v%d of run %q, want v2 of the job's run %s", v.Key, v.Version, v.Run, job.Run.UID)
	}
}

// childPIDs returns the processes whose parent is pid.
func childPIDs(pid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, en := range ents {
		p, err := strconv.Atoi(en.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + en.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid …: comm may hold spaces and parentheses.
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, p)
		}
	}
	return out
}

// TestLineageSnakemakeDirectoryTimestamp: the .snakemake_timestamp
// Snakemake leaves in a directory() output is scratch: no artifact, no
// lineage (it was an output of the pipeline's run, downstream of every
// input of the workflow), and Snakemake still finds the output up to date.
func TestLineageSnakemakeDirectoryTimestamp(t *testing.T) {
	e, wf := snakemakeMount(t)
	os.WriteFile(filepath.Join(wf, "raw/a.txt"), []byte("a\n"), 0o644)
	os.WriteFile(filepath.Join(wf, "raw/b.txt"), []byte("b\n"), 0o644)
	os.WriteFile(filepath.Join(wf, "Snakefile"), []byte(`rule all:
    input: "out/d", "out/b.txt"

rule d:
    input: "raw/a.txt"
    output: directory("out/d")
    shell: "mkdir -p {output}; cat {input} > {output}/x.txt"

rule b:
    input: "raw/b.txt"
    output: "out/b.txt"
    shell: "cat {input} > {output}"
`), 0o644)
	for i, args := range [][]string{{"-j1"}, {"-j1"}, {"-j1", "--forceall"}} {
		if _, errs, code := e.runIn(wf, append([]string{"run", "--", "snakemake"}, args...)...); code != 0 {
			t.Fatalf("run %d: lamina run -- snakemake: exit %d\n%s", i, code, errs)
		}
		if i == 1 {
			// Up to date: Snakemake read the timestamp's time back.
			if rec := e.runRecord(e.runsByName()["snakemake"].UID); len(rec.Children) != 0 {
				t.Fatalf("second run ran %d jobs", len(rec.Children))
			}
		}
	}
	if _, err := os.Stat(filepath.Join(wf, "out/d/.snakemake_timestamp")); err != nil {
		t.Fatalf("the timestamp is gone from the mount: %v", err)
	}
	// By key, from outside the mount (in it, a name is a path from the current folder).
	if out, _, err := e.run("ls", "wf/out/d/.snakemake_timestamp"); err == nil && strings.Contains(out, "snakemake_timestamp") {
		t.Fatalf("the timestamp is an artifact:\n%s", out)
	}
	down := e.ok("lineage", "wf/raw/b.txt", "--down")
	if strings.Contains(down, "snakemake_timestamp") {
		t.Fatalf("the timestamp is downstream of raw/b.txt:\n%s", down)
	}
	if got := string(mustRead(t, filepath.Join(wf, "out/d/x.txt"))); got != "a\n" {
		t.Fatalf("out/d/x.txt %q", got)
	}
}

// TestLineageLeftProcesses: processes a run's command leaves running in
// its cgroup (`… &`, setsid) keep working for the run until they exit:
// what they read is its input and what they write its output, though the
// run ended when its command did.
func TestLineageLeftProcesses(t *testing.T) {
	e := newMntEnv(t)
	mnt := filepath.Join(e.dir, "lab")
	e.mount(mnt)
	os.MkdirAll(filepath.Join(mnt, "np"), 0o755)
	os.WriteFile(filepath.Join(mnt, "np/a.txt"), []byte("a\n"), 0o644)
	os.WriteFile(filepath.Join(mnt, "np/z.txt"), []byte("z\n"), 0o644)
	if _, errs, code := e.runIn(mnt, "run", "--transform", "bg", "--", "sh", "-c",
		`(sleep 1; cat np/z.txt > np/bg1.txt) & setsid sh -c 'sleep 1; cat np/a.txt > np/bg2.txt' & cat np/a.txt > np/fg.txt`); code != 0 {
		t.Fatalf("lamina run: exit %d\n%s", code, errs)
	}
	uid := e.runsByName()["bg"].UID
	want := "np/bg1.txt@v1 np/bg2.txt@v1 np/fg.txt@v1 | np/a.txt@v1 np/z.txt@v1"
	var got string
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		rec := e.runRecord(uid)
		if got = strings.Join(e.refs(rec.Outputs), " ") + " | " + strings.Join(e.refs(rec.Inputs), " "); got == want {
			break
		}
	}
	if got != want {
		t.Fatalf("outputs | inputs: %s, want %s", got, want)
	}
	// Once they are gone, the run's marker credits nothing: the daemon
	// lets the run go on its next 200 ms tick after its cgroup empties.
	waitCgroupEmpty(t, lineage.CgroupRoot()+e.runsByName()["bg"].Cgroup)
	time.Sleep(time.Second)
	cmd := exec.Command("sh", "-c", "cat np/a.txt > np/after.txt")
	cmd.Dir, cmd.Env = mnt, append(os.Environ(), "LAMINA_RUN="+uid)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if v := e.showVersion("np/after.txt"); v.Run != "" {
		t.Fatalf("written after the run's last process exited, credited to run %s", v.Run)
	}
}

// TestLineageSnakemakeOwnWrites: touch() outputs and benchmark files,
// which Snakemake's own process writes, are outputs of the job whose
// output they are, not of the pipeline's run with every input of the
// workflow.
func TestLineageSnakemakeOwnWrites(t *testing.T) {
	e, wf := snakemakeMount(t)
	os.WriteFile(filepath.Join(wf, "raw/a.txt"), []byte("aa\n"), 0o644)
	os.WriteFile(filepath.Join(wf, "raw/b.txt"), []byte("bb\n"), 0o644)
	os.WriteFile(filepath.Join(wf, "Snakefile"), []byte(`rule all:
    input: "out/final.txt", "out/b.txt"

rule flag:
    input: "raw/a.txt"
    output: touch("out/a.done")
    shell: "cat {input} > /dev/null"

rule final:
    input: "out/a.done", "raw/a.txt"
    output: "out/final.txt"
    shell: "cat {input} > {output}"

rule b:
    input: "raw/b.txt"
    output: "out/b.txt"
    benchmark: "bench/b.tsv"
    shell: "cat {input} > {output}"
`), 0o644)
	if _, errs, code := e.runIn(wf, "run", "--", "snakemake", "-j1"); code != 0 {
		t.Fatalf("lamina run -- snakemake: exit %d\n%s", code, errs)
	}
	runs := e.runsByName()
	for _, tc := range []struct{ rule, outputs, inputs string }{
		{"flag", "wf/out/a.done@v1", "wf/raw/a.txt@v1"},
		{"b", "wf/bench/b.tsv@v1 wf/out/b.txt@v1", "wf/raw/b.txt@v1"},
		{"final", "wf/out/final.txt@v1", "wf/out/a.done@v1 wf/raw/a.txt@v1"},
	} {
		rec := e.runRecord(runs[tc.rule].UID)
		if got := strings.Join(e.refs(rec.Outputs), " "); got != tc.outputs {
			t.Errorf("rule %s: outputs %s, want %s", tc.rule, got, tc.outputs)
		}
		if got := strings.Join(e.refs(rec.Inputs), " "); got != tc.inputs {
			t.Errorf("rule %s: inputs %s, want %s", tc.rule, got, tc.inputs)
		}
	}
	if got := e.refs(e.runRecord(runs["snakemake"].UID).Outputs); len(got) != 0 {
		t.Errorf("the pipeline's own outputs %v", got)
	}
	if up := e.ok("lineage", "wf/out/final.txt", "--up"); strings.Contains(up, "raw/b.txt") {
		t.Errorf("final.txt is downstream of raw/b.txt:\n%s", up)
	}
	var side struct {
		Lineage struct{ Run string } `json:"lineage"`
	}
	if err := json.Unmarshal(mustRead(t, filepath.Join(wf, "out/a.done.meta")), &side); err != nil || side.Lineage.Run != runs["flag"].UID {
		t.Errorf("a.done's sidecar names run %q (%v), want rule flag's %s", side.Lineage.Run, err, runs["flag"].UID)
	}
}

// TestLineageCopyOfSourceIsData: the transform's own script is code, not
// an input; a byte-identical copy of it under another key, read as data,
// is an input.
func TestLineageCopyOfSourceIsData(t *testing.T) {
	e := newMntEnv(t)
	mnt := filepath.Join(e.dir, "lab")
	e.mount(mnt)
	os.MkdirAll(filepath.Join(mnt, "sc"), 0o755)
	script := []byte("import shutil, sys\nopen(sys.argv[0]).read()\nshutil.copyfile('sc/copy_of_me.py', 'sc/out.txt')\n")
	os.WriteFile(filepath.Join(mnt, "sc/me.py"), script, 0o644)
	os.WriteFile(filepath.Join(mnt, "sc/copy_of_me.py"), script, 0o644)
	if _, errs, code := e.runIn(mnt, "run", "--", "python3", "sc/me.py"); code != 0 {
		t.Fatalf("lamina run: exit %d\n%s", code, errs)
	}
	rec := e.runRecord(e.runsByName()["me.py"].UID)
	if got := strings.Join(e.refs(rec.Inputs), " "); got != "sc/copy_of_me.py@v1" {
		t.Fatalf("inputs %q, want sc/copy_of_me.py@v1 (not the script itself)", got)
	}
}

// TestLineageSnakemakeEarlyFailure: a job that fails before it opens
// anything under the mount (the tracker never saw it) still gets a run,
// failed, named after its rule, from the log's error block.
func TestLineageSnakemakeEarlyFailure(t *testing.T) {
	e, wf := snakemakeMount(t)
	os.WriteFile(filepath.Join(wf, "raw/in.txt"), []byte("x\n"), 0o644)
	os.WriteFile(filepath.Join(wf, "Snakefile"), []byte(`rule early:
    input: "raw/in.txt"
    output: "out.txt"
    shell: "echo validating >&2; exit 2; cat {input} > {output}"
`), 0o644)
	if _, errs, code := e.runIn(wf, "run", "--", "snakemake", "-j1"); code == 0 {
		t.Fatalf("the failing workflow succeeded\n%s", errs)
	}
	runs := e.runsByName()
	sm, early := runs["snakemake"], runs["early"]
	if early.UID == "" || early.Parent != sm.UID || early.Status != catalog.RunFailed || early.FinishedAt == nil {
		t.Fatalf("rule early's run %+v (the pipeline's %s)", early, sm.UID)
	}
	if rec := e.runRecord(early.UID); rec.Transform.Name != "early" || rec.Transform.Kind != "rule" {
		t.Fatalf("its transform %+v", rec.Transform)
	}
	if rec := e.runRecord(sm.UID); len(rec.Children) != 1 {
		t.Fatalf("the pipeline's child runs %v", rec.Children)
	}
}

// TestLineageSnakemakeBenchmarkRepeat: a rule with `benchmark:
// repeat(…, 2)` runs its shell command twice, each time in a new process,
// but it is one job (Snakemake's records name one): one run of the rule,
// with the inputs and outputs of both passes.
func TestLineageSnakemakeBenchmarkRepeat(t *testing.T) {
	e, wf := snakemakeMount(t)
	os.WriteFile(filepath.Join(wf, "raw/b.txt"), []byte("bb\n"), 0o644)
	os.WriteFile(filepath.Join(wf, "raw/c.txt"), []byte("cc\n"), 0o644)
	os.WriteFile(filepath.Join(wf, "Snakefile"), []byte(`rule all:
    input: "out/b.txt", "out/c.txt"

rule b:
    input: "raw/b.txt"
    output: "out/b.txt"
    benchmark: repeat("bench/b.tsv", 2)
    shell: "(cat {input}; date +%N) > {output}"

rule c:
    input: "raw/c.txt"
    output: "out/c.txt"
    shell: "cat {input} > {output}"
`), 0o644)
	if _, errs, code := e.runIn(wf, "run", "--", "snakemake", "-j1"); code != 0 {
		t.Fatalf("lamina run -- snakemake: exit %d\n%s", code, errs)
	}
	var bs []catalog.Run
	if err := json.Unmarshal([]byte(e.ok("runs", "ls", "--transform", "b", "--format", "json")), &bs); err != nil {
		t.Fatal(err)
	}
	sm := e.runRecord(e.runsByName()["snakemake"].UID)
	if len(bs) != 1 || len(sm.Children) != 2 {
		t.Fatalf("rule b's runs %+v; the pipeline's child runs %v\n%s", bs, sm.Children, e.ok("runs", "ls"))
	}
	rec := e.runRecord(bs[0].UID)
	if got, want := strings.Join(e.refs(rec.Outputs), " "), "wf/bench/b.tsv@v1 wf/out/b.txt@v1 wf/out/b.txt@v2"; got != want {
		t.Errorf("rule b's outputs %s, want %s", got, want)
	}
	if v := e.showVersion("wf/out/b.txt"); v.Run != rec.Run.UID {
		t.Errorf("out/b.txt is run %s's, want rule b's %s", v.Run, rec.Run.UID)
	}
	if got := strings.Join(e.refs(rec.Inputs), " "); got != "wf/raw/b.txt@v1" {
		t.Errorf("rule b's inputs %s", got)
	}
	if rec.Run.Status != catalog.RunOK {
		t.Errorf("rule b's run %+v", rec.Run)
	}
}

// TestLineageLeftProcessesAcrossRestart: a run whose command left
// processes running says so in its record, and a daemon that starts while
// they run (after an umount, or after the daemon was killed) knows the
// run from the catalog: what they read and write later is still the
// run's, not nobody's.
func TestLineageLeftProcessesAcrossRestart(t *testing.T) {
	for _, how := range []string{"umount", "kill"} {
		t.Run(how, func(t *testing.T) {
			e := newMntEnv(t)
			mnt := filepath.Join(e.dir, "lab")
			e.mount(mnt)
			os.MkdirAll(filepath.Join(mnt, "np"), 0o755)
			os.WriteFile(filepath.Join(mnt, "np/a.txt"), []byte("a\n"), 0o644)
			os.WriteFile(filepath.Join(mnt, "np/z.txt"), []byte("z\n"), 0o644)
			goFile, doneFile := filepath.Join(e.dir, "go"), filepath.Join(e.dir, "done")
			defer os.WriteFile(goFile, nil, 0o644) // the left process ends with the test
			np := filepath.Join(mnt, "np")
			// Bounded: the left process gives up after 2 minutes.
			bg := `i=0; while [ ! -e ` + goFile + ` ] && [ $i -lt 2400 ]; do sleep 0.05; i=$((i+1)); done; cat ` + np + `/z.txt > ` + np + `/bg.txt; touch ` + doneFile
			if _, errs, code := e.runIn(e.dir, "run", "--transform", "bg", "--", "sh", "-c",
				`setsid sh -c '`+bg+`' </dev/null >/dev/null 2>&1 & cat `+np+`/a.txt > `+np+`/fg.txt`); code != 0 {
				t.Fatalf("lamina run: exit %d\n%s", code, errs)
			}
			r := e.runsByName()["bg"]
			if r.Cgroup == "" {
				t.Fatal("the run has no cgroup (is the cgroup v2 tree writable?)")
			}
			if !r.ProcsLeft || !strings.Contains(e.ok("runs", "show", r.UID), "left:") {
				t.Fatalf("the run does not say it left processes: %+v", r)
			}
			if how == "kill" {
				e.killDaemon("m")
			}
			e.ok("umount", mnt)
			e.ok("mount", mnt)
			logs, _ := filepath.Glob(filepath.Join(e.dir, "run", "lamina", "*", "mount.log"))
			seen := func() bool {
				for _, p := range logs {
					if b, _ := os.ReadFile(p); strings.Contains(string(b), "tracked again") && strings.Contains(string(b), r.UID) {
						return true
					}
				}
				return false
			}
			for end := time.Now().Add(60 * time.Second); !seen() && time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
			}
			os.WriteFile(goFile, nil, 0o644)
			for end := time.Now().Add(60 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
				if _, err := os.Stat(doneFile); err == nil {
					break
				}
			}
			want := "np/bg.txt@v1 np/fg.txt@v1 | np/a.txt@v1 np/z.txt@v1"
			var got string
			for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
				rec := e.runRecord(r.UID)
				if got = strings.Join(e.refs(rec.Outputs), " ") + " | " + strings.Join(e.refs(rec.Inputs), " "); got == want {
					break
				}
			}
			if got != want {
				t.Fatalf("outputs | inputs: %s, want %s", got, want)
			}
		})
	}
}

// TestLineageLeftProcessesCLI: a process a run's command left running
// works for the run through the CLI as through the mount: its `lamina
// get` is an input of the run and its `lamina save` an output, after the
// run ended. Once the run's last process is gone, its marker credits
// nothing (TestLineageLeftProcesses).
func TestLineageLeftProcessesCLI(t *testing.T) {
	e := newMntEnv(t)
	mnt := filepath.Join(e.dir, "lab")
	e.mount(mnt)
	e.ok("save", e.file("in.txt", []byte("in\n")), "--key", "cl/in.txt")
	src := e.file("saved.txt", []byte("saved\n"))
	goFile, doneFile := filepath.Join(e.dir, "go"), filepath.Join(e.dir, "done")
	defer os.WriteFile(goFile, nil, 0o644) // the left process ends with the test
	bg := `i=0; while [ ! -e ` + goFile + ` ] && [ $i -lt 2400 ]; do sleep 0.05; i=$((i+1)); done; ` +
		e.bin + ` get cl/in.txt -o - >/dev/null && ` + e.bin + ` save ` + src + ` --key cl/saved.txt; touch ` + doneFile
	if _, errs, code := e.runIn(e.dir, "run", "--transform", "bgcli", "--", "sh", "-c", `setsid sh -c '`+bg+`' </dev/null >/dev/null 2>&1 &`); code != 0 {
		t.Fatalf("lamina run: exit %d\n%s", code, errs)
	}
	r := e.runsByName()["bgcli"]
	if r.Status != catalog.RunOK || !r.ProcsLeft {
		t.Fatalf("run %+v", r)
	}
	os.WriteFile(goFile, nil, 0o644)
	for end := time.Now().Add(60 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(doneFile); err == nil {
			break
		}
	}
	rec := e.runRecord(r.UID)
	if got := strings.Join(e.refs(rec.Outputs), " ") + " | " + strings.Join(e.refs(rec.Inputs), " "); got != "cl/saved.txt@v1 | cl/in.txt@v1" {
		t.Fatalf("outputs | inputs: %s, want cl/saved.txt@v1 | cl/in.txt@v1", got)
	}
}

// ruleRun returns the one run of rule (a Snakemake job's, named after its
// rule) and its record, failing unless there is exactly one.
func (e *mntEnv) ruleRun(t *testing.T, rule string) catalog.RunRecord {
	t.Helper()
	var rs []catalog.Run
	if err := json.Unmarshal([]byte(e.ok("runs", "ls", "--transform", rule, "--format", "json")), &rs); err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 {
		t.Fatalf("rule %s's runs: %+v, want one\n%s", rule, rs, e.ok("runs", "ls"))
	}
	return e.runRecord(rs[0].UID)
}

// TestLineageSnakemakeSameShellJobs: two jobs whose shell commands are the
// same text, the second started after the first exited, are two runs, each
// with its own inputs and outputs (they were taken for passes of one job,
// as a `benchmark: repeat`'s, and shared a run).
func TestLineageSnakemakeSameShellJobs(t *testing.T) {
	for _, c := range []struct{ name, out string }{
		{"short", "out"},
		// Outputs whose paths encode to more than 254 characters: Snakemake
		// keeps their records in "@"-prefixed subfolders of
		// .snakemake/metadata.
		{"long", "out/" + strings.Repeat("a-folder-name-to-make-paths-long/", 6) + "o"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e, wf := snakemakeMount(t)
			os.WriteFile(filepath.Join(wf, "raw/a.txt"), []byte("aa\n"), 0o644)
			os.MkdirAll(filepath.Join(wf, c.out), 0o755)
			// One script for both rules: what it does depends on what is there.
			os.WriteFile(filepath.Join(wf, "step.sh"), []byte("O="+c.out+"; if [ -e $O/x.txt ]; then cat $O/x.txt > $O/y.txt; else cat raw/a.txt > $O/x.txt; fi\n"), 0o644)
			os.WriteFile(filepath.Join(wf, "Snakefile"), []byte(`O = "`+c.out+`"
rule all:
    input: O + "/y.txt"

rule x:
    input: "raw/a.txt"
    output: O + "/x.txt"
    shell: "sh step.sh"

rule y:
    input: O + "/x.txt"
    output: O + "/y.txt"
    shell: "sh step.sh"
`), 0o644)
			if _, errs, code := e.runIn(wf, "run", "--", "snakemake", "-j1"); code != 0 {
				t.Fatalf("lamina run -- snakemake: exit %d\n%s", code, errs)
			}
			checkSameShellJobs(t, e, "wf/"+c.out)
		})
	}
}

// TestLineageSnakemakeSameShellJobsNestedMount: as
// TestLineageSnakemakeSameShellJobsWorkdirOutside, with Snakemake's
// working directory on a tmpfs mounted inside the lamina mount: its
// records are renamed on the tmpfs, which the daemon never sees. Before,
// the tracker took the working directory, under the mountpoint, for one
// the mount reports, watched nothing, and the two jobs shared a run.
func TestLineageSnakemakeSameShellJobsNestedMount(t *testing.T) {
	e, wf := snakemakeMount(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	os.WriteFile(filepath.Join(wf, "raw/a.txt"), []byte("aa\n"), 0o644)
	os.MkdirAll(filepath.Join(wf, "out"), 0o755)
	os.WriteFile(filepath.Join(wf, "step.sh"), []byte("cd "+wf+"; O=out; if [ -e $O/x.txt ]; then cat $O/x.txt > $O/y.txt; else cat raw/a.txt > $O/x.txt; fi\n"), 0o644)
	work := filepath.Join(filepath.Dir(wf), "scratch")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", work, "tmpfs", 0, ""); err != nil {
		t.Fatal("mount tmpfs in the lamina mount:", err)
	}
	t.Cleanup(func() { syscall.Unmount(work, syscall.MNT_DETACH) }) // before the lamina mount's
	os.WriteFile(filepath.Join(work, "Snakefile"), []byte(`R = config["root"]
O = R + "/out"
rule all:
    input: O + "/y.txt"

rule x:
    input: R + "/raw/a.txt"
    output: O + "/x.txt"
    shell: "sh " + R + "/step.sh"

rule y:
    input: O + "/x.txt"
    output: O + "/y.txt"
    shell: "sh " + R + "/step.sh"
`), 0o644)
	if _, errs, code := e.runIn(e.dir, "run", "--", "snakemake", "-j1", "-s", filepath.Join(work, "Snakefile"), "-d", work, "--config", "root="+wf); code != 0 {
		t.Fatalf("lamina run -- snakemake: exit %d\n%s", code, errs)
	}
	checkSameShellJobs(t, e, "wf/out")
}

// TestLineageSnakemakeSameShellJobsWorkdirOutside: as
// TestLineageSnakemakeSameShellJobs, with Snakemake's working directory
// (-d) outside the mount and the data in it: Snakemake's records of its
// jobs are written on the local disk, which the mount never sees (the
// two jobs shared a run; the second's output was credited to the first).
func TestLineageSnakemakeSameShellJobsWorkdirOutside(t *testing.T) {
	for _, c := range []struct {
		name, out string
		link      bool
	}{
		{"short", "out", false},
		// Records in "@"-prefixed subfolders (long paths), which the watch
		// of .snakemake/metadata follows.
		{"long", "out/" + strings.Repeat("a-folder-name-to-make-paths-long/", 6) + "o", false},
		// The Snakefile reaches the mount through a symlink outside it
		// (work/data -> wf): a record's path is resolved to its key.
		// Before, its tail (data/out/x.txt) was no key: one run.
		{"symlink", "out", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			e, wf := snakemakeMount(t)
			os.WriteFile(filepath.Join(wf, "raw/a.txt"), []byte("aa\n"), 0o644)
			os.MkdirAll(filepath.Join(wf, c.out), 0o755)
			os.WriteFile(filepath.Join(wf, "step.sh"), []byte("cd "+wf+"; O="+c.out+"; if [ -e $O/x.txt ]; then cat $O/x.txt > $O/y.txt; else cat raw/a.txt > $O/x.txt; fi\n"), 0o644)
			work := filepath.Join(e.dir, "work")
			os.MkdirAll(work, 0o755)
			root := wf
			if c.link {
				root = filepath.Join(work, "data")
				os.Symlink(wf, root)
			}
			os.WriteFile(filepath.Join(work, "Snakefile"), []byte(`R = config["root"]
O = R + "/`+c.out+`"
rule all:
    input: O + "/y.txt"

rule x:
    input: R + "/raw/a.txt"
    output: O + "/x.txt"
    shell: "sh " + R + "/step.sh"

rule y:
    input: O + "/x.txt"
    output: O + "/y.txt"
    shell: "sh " + R + "/step.sh"
`), 0o644)
			if _, errs, code := e.runIn(e.dir, "run", "--", "snakemake", "-j1", "-s", filepath.Join(work, "Snakefile"), "-d", work, "--config", "root="+root); code != 0 {
				t.Fatalf("lamina run -- snakemake: exit %d\n%s", code, errs)
			}
			checkSameShellJobs(t, e, "wf/"+c.out)
		})
	}
}

// TestLineageSnakemakeSameShellJobsMountLink: as
// TestLineageSnakemakeSameShellJobs, the jobs writing their outputs
// through a symlink in the mount (wf/out -> data: the mount's link
// record), Snakemake's working directory in the mount (its records name
// out/x.txt) or outside it (they name MNT/wf/out/x.txt), the link's
// target relative or absolute. The job wrote
// wf/data/x.txt; before, the record's path taken as text was wf/out/x.txt,
// no key a job wrote: the two jobs shared a run.
func TestLineageSnakemakeSameShellJobsMountLink(t *testing.T) {
	for _, c := range []struct {
		name         string
		outside, abs bool
	}{{"workdir", false, false}, {"outside", true, false}, {"absolute", false, true}} {
		t.Run(c.name, func(t *testing.T) {
			e, wf := snakemakeMount(t)
			os.WriteFile(filepath.Join(wf, "raw/a.txt"), []byte("aa\n"), 0o644)
			os.MkdirAll(filepath.Join(wf, "data"), 0o755)
			target := "data"
			if c.abs {
				target = filepath.Join(wf, "data")
			}
			if err := os.Symlink(target, filepath.Join(wf, "out")); err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(wf, "step.sh"), []byte("cd "+wf+"; O=out; if [ -e $O/x.txt ]; then cat $O/x.txt > $O/y.txt; else cat raw/a.txt > $O/x.txt; fi\n"), 0o644)
			work, root := wf, "."
			if c.outside {
				work, root = filepath.Join(e.dir, "work"), wf
				os.MkdirAll(work, 0o755)
			}
			os.WriteFile(filepath.Join(work, "Snakefile"), []byte(`R = config["root"]
O = R + "/out"
rule all:
    input: O + "/y.txt"

rule x:
    input: R + "/raw/a.txt"
    output: O + "/x.txt"
    shell: "sh `+wf+`/step.sh"

rule y:
    input: O + "/x.txt"
    output: O + "/y.txt"
    shell: "sh `+wf+`/step.sh"
`), 0o644)
			if _, errs, code := e.runIn(work, "run", "--", "snakemake", "-j1", "--config", "root="+root); code != 0 {
				t.Fatalf("lamina run -- snakemake: exit %d\n%s", code, errs)
			}
			checkSameShellJobs(t, e, "wf/data")
		})
	}
}

// TestLineageSnakemakePassesWorkdirOutside: with Snakemake's working
// directory outside the mount (its records watched there), the passes of
// a `benchmark: repeat` and the attempts of a `retries:` job are still one
// run each, a second time too (the records of the first are there).
func TestLineageSnakemakePassesWorkdirOutside(t *testing.T) {
	e, wf := snakemakeMount(t)
	os.WriteFile(filepath.Join(wf, "raw/a.txt"), []byte("aa\n"), 0o644)
	work := filepath.Join(e.dir, "work")
	os.MkdirAll(work, 0o755)
	once := filepath.Join(e.dir, "failed-once")
	os.WriteFile(filepath.Join(work, "Snakefile"), []byte(`R = config["root"]
rule all:
    input: R + "/out/b.txt", R + "/out/r.txt"

rule b:
    input: R + "/raw/a.txt"
    output: R + "/out/b.txt"
    benchmark: repeat(R + "/bench/b.tsv", 2)
    shell: "(cat {input}; date +%N) > {output}"

rule r:
    input: R + "/out/b.txt"
    output: R + "/out/r.txt"
    retries: 1
    shell: "if [ ! -e `+once+` ]; then touch `+once+`; echo partial > {output}; exit 1; fi; cat {input} > {output}"
`), 0o644)
	for round := range 2 {
		os.Remove(once)
		if _, errs, code := e.runIn(work, "run", "--", "snakemake", "-j1", "--forceall", "--config", "root="+wf); code != 0 {
			t.Fatalf("round %d: lamina run -- snakemake: exit %d\n%s", round, code, errs)
		}
	}
	var sms []catalog.Run
	if err := json.Unmarshal([]byte(e.ok("runs", "ls", "--transform", "snakemake", "--format", "json")), &sms); err != nil {
		t.Fatal(err)
	}
	if len(sms) != 2 {
		t.Fatalf("the pipeline's runs %+v", sms)
	}
	for _, sm := range sms {
		if rec := e.runRecord(sm.UID); len(rec.Children) != 2 {
			t.Errorf("run %s's child runs %v, want one of rule b and one of rule r\n%s", sm.UID, rec.Children, e.ok("runs", "ls"))
		}
	}
}

// TestLineageSnakemakeRetries: the attempts of a `retries:` job (Snakemake
// runs the same command again after it failed) are one run, ok once the
// last attempt succeeded, whose outputs include what the failed one wrote.
func TestLineageSnakemakeRetries(t *testing.T) {
	e, wf := snakemakeMount(t)
	os.WriteFile(filepath.Join(wf, "raw/a.txt"), []byte("aa\n"), 0o644)
	once := filepath.Join(e.dir, "failed-once")
	os.WriteFile(filepath.Join(wf, "Snakefile"), []byte(`rule all:
    input: "out/r.txt"

rule r:
    input: "raw/a.txt"
    output: "out/r.txt"
    retries: 1
    shell: "if [ ! -e `+once+` ]; then touch `+once+`; echo partial > {output}; exit 1; fi; cat {input} > {output}"
`), 0o644)
	if _, errs, code := e.runIn(wf, "run", "--", "snakemake", "-j1"); code != 0 {
		t.Fatalf("lamina run -- snakemake: exit %d\n%s", code, errs)
	}
	sm := e.runRecord(e.runsByName()["snakemake"].UID)
	r := e.ruleRun(t, "r")
	if len(sm.Children) != 1 || r.Run.Status != catalog.RunOK {
		t.Fatalf("the pipeline's child runs %v; rule r's run %+v", sm.Children, r.Run)
	}
	if got, want := strings.Join(e.refs(r.Outputs), " "), "wf/out/r.txt@v1 wf/out/r.txt@v2"; got != want {
		t.Errorf("rule r's outputs %s, want %s", got, want)
	}
	if got := strings.Join(e.refs(r.Inputs), " "); got != "wf/raw/a.txt@v1" {
		t.Errorf("rule r's inputs %s", got)
	}
}

// TestLineageSnakemakeScriptBenchmarkRepeat: the passes of a `script:`
// job's `benchmark: repeat` are one run, as a shell job's: Snakemake
// writes the script anew for each pass, under a new temporary name in
// .snakemake/scripts, so the passes' command lines differ by that name
// (each pass was a run of its own).
func TestLineageSnakemakeScriptBenchmarkRepeat(t *testing.T) {
	e, wf := snakemakeMount(t)
	os.WriteFile(filepath.Join(wf, "raw/b.txt"), []byte("bb\n"), 0o644)
	os.WriteFile(filepath.Join(wf, "copy.py"), []byte(`import time
with open(snakemake.input[0]) as f, open(snakemake.output[0], "w") as g:
    g.write(f.read() + str(time.time_ns()) + "\n")
`), 0o644)
	os.WriteFile(filepath.Join(wf, "Snakefile"), []byte(`rule all:
    input: "out/b.txt"

rule b:
    input: "raw/b.txt"
    output: "out/b.txt"
    benchmark: repeat("bench/b.tsv", 2)
    script: "copy.py"
`), 0o644)
	if _, errs, code := e.runIn(wf, "run", "--", "snakemake", "-j1"); code != 0 {
		t.Fatalf("lamina run -- snakemake: exit %d\n%s", code, errs)
	}
	sm := e.runRecord(e.runsByName()["snakemake"].UID)
	b := e.ruleRun(t, "b")
	if len(sm.Children) != 1 || b.Run.Status != catalog.RunOK {
		t.Fatalf("the pipeline's child runs %v; rule b's run %+v", sm.Children, b.Run)
	}
	if got, want := strings.Join(e.refs(b.Outputs), " "), "wf/bench/b.tsv@v1 wf/out/b.txt@v1 wf/out/b.txt@v2"; got != want {
		t.Errorf("rule b's outputs %s, want %s", got, want)
	}
	if got := strings.Join(e.refs(b.Inputs), " "); got != "wf/raw/b.txt@v1" {
		t.Errorf("rule b's inputs %s", got)
	}
}

// TestLineageSnakemakeKilledAcrossRestart: a job a killed Snakemake left
// running still works for its own run after the mount daemon restarted,
// not for the pipeline's: the new daemon finds it in the pipeline's
// cgroup by its command line (the old one knew it by pid only).
func TestLineageSnakemakeKilledAcrossRestart(t *testing.T) {
	e, wf := snakemakeMount(t)
	mnt := filepath.Dir(wf)
	os.WriteFile(filepath.Join(wf, "raw/in.txt"), []byte("1\n2\n3\n4\n"), 0o644)
	goFile, doneFile := filepath.Join(e.dir, "go"), filepath.Join(e.dir, "done")
	defer os.WriteFile(goFile, nil, 0o644) // the left job ends with the test
	// After the restart the job's working directory is the old mount's:
	// only absolute paths reach the new one. Bounded: it gives up after 60 s.
	os.WriteFile(filepath.Join(wf, "Snakefile"), []byte(`rule slow:
    input: "raw/in.txt"
    output: "out.txt"
    shell: "head -2 {input} > {output}; i=0; while [ ! -e `+goFile+` ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done; tail -2 `+wf+`/raw/in.txt >> `+wf+`/out.txt; touch `+doneFile+`"
`), 0o644)
	cmd := exec.Command(e.bin, "run", "--", "snakemake", "-j1")
	cmd.Env, cmd.Dir = e.env, wf
	// A file, not a pipe: the left job holds lamina run's stderr, and Wait
	// would wait for it to close.
	errf, err := os.Create(filepath.Join(e.dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer errf.Close()
	cmd.Stderr = errf
	errs := func() string { b, _ := os.ReadFile(errf.Name()); return string(b) }
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	out := filepath.Join(wf, "out.txt")
	started := false
	for deadline := time.Now().Add(90 * time.Second); !started && time.Now().Before(deadline); {
		if b, err := os.ReadFile(out); err == nil && len(b) > 0 {
			started = true
		} else {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if !started {
		t.Fatalf("the job wrote nothing to out.txt in 90 s\n%s", errs())
	}
	kids := childPIDs(cmd.Process.Pid)
	if len(kids) != 1 {
		t.Fatalf("processes under lamina run: %v\n%s", kids, errs())
	}
	syscall.Kill(kids[0], syscall.SIGKILL)
	cmd.Wait()
	sm := e.runsByName()["snakemake"]
	rec := e.runRecord(sm.UID)
	if len(rec.Children) != 1 || !sm.ProcsLeft {
		t.Fatalf("the pipeline's run %+v, child runs %v\n%s", sm, rec.Children, errs())
	}
	job := rec.Children[0]
	e.killDaemon("m")
	e.ok("umount", mnt)
	e.ok("mount", mnt)
	logs, _ := filepath.Glob(filepath.Join(e.dir, "run", "lamina", "*", "mount.log"))
	seen := func() bool {
		for _, p := range logs {
			if b, _ := os.ReadFile(p); strings.Contains(string(b), "tracked again") && strings.Contains(string(b), sm.UID) {
				return true
			}
		}
		return false
	}
	for end := time.Now().Add(60 * time.Second); !seen() && time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
	}
	if _, err := os.Stat(doneFile); err == nil {
		t.Fatal("the job ended before the daemon restarted: it waited too little")
	}
	os.WriteFile(goFile, nil, 0o644)
	for end := time.Now().Add(60 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(doneFile); err == nil {
			break
		}
	}
	var v catalog.Version
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if v = e.showVersion("wf/out.txt"); v.Version == 2 {
			break
		}
	}
	if v.Version != 2 || v.Run != job {
		t.Fatalf("the left job's append after the restart: %s@v%d of run %q, want v2 of the job's run %s (the pipeline's %s)", v.Key, v.Version, v.Run, job, sm.UID)
	}
}

// checkSameShellJobs checks the runs of the same-shell workflow: rules x
// and y, both `sh step.sh`, each a run of its own with its own inputs and
// outputs (x.txt and y.txt in the folder out, a key prefix), both ok.
func checkSameShellJobs(t *testing.T, e *mntEnv, out string) {
	t.Helper()
	sm := e.runRecord(e.runsByName()["snakemake"].UID)
	x, y := e.ruleRun(t, "x"), e.ruleRun(t, "y")
	if len(sm.Children) != 2 || x.Run.UID == y.Run.UID {
		t.Fatalf("the pipeline's child runs %v; rule x's %s, rule y's %s", sm.Children, x.Run.UID, y.Run.UID)
	}
	for _, c := range []struct {
		rec     catalog.RunRecord
		in, out string
	}{
		{x, "wf/raw/a.txt@v1 wf/step.sh@v1", out + "/x.txt@v1"},
		{y, out + "/x.txt@v1 wf/step.sh@v1", out + "/y.txt@v1"},
	} {
		if got := strings.Join(e.refs(c.rec.Inputs), " "); got != c.in {
			t.Errorf("rule %s's inputs %s, want %s", c.rec.Run.Name, got, c.in)
		}
		if got := strings.Join(e.refs(c.rec.Outputs), " "); got != c.out {
			t.Errorf("rule %s's outputs %s, want %s", c.rec.Run.Name, got, c.out)
		}
		if c.rec.Run.Status != catalog.RunOK {
			t.Errorf("rule %s's run %+v", c.rec.Run.Name, c.rec.Run)
		}
	}
}

// TestLineageSnakemakeOutsideOutputLikeKey: a job's output outside the
// mount whose path ends like a key another job wrote in it
// (DIR/x/wf/out/a.txt and wf/out/a.txt) is not that key: its record does
// not close the other job to passes, so the passes of that job's
// `benchmark: repeat` stay one run. Before, the record matched the key by
// its tail and the passes after it were taken for another job (two runs
// of rule bench, the second's outputs the first's).
func TestLineageSnakemakeOutsideOutputLikeKey(t *testing.T) {
	e, wf := snakemakeMount(t)
	work := filepath.Join(e.dir, "work")
	os.MkdirAll(work, 0o755)
	other := filepath.Join(e.dir, "x", "wf", "out", "a.txt")
	// outside's record is written while bench's first pass sleeps.
	os.WriteFile(filepath.Join(work, "Snakefile"), []byte(`rule all:
    input: "`+other+`", "`+wf+`/out/a.txt"

rule outside:
    output: "`+other+`"
    shell: "sleep 0.5; echo o > {output}"

rule bench:
    output: "`+wf+`/out/a.txt"
    benchmark: repeat("b.tsv", 3)
    shell: "date +%N > {output}; sleep 1.5"
`), 0o644)
	if _, errs, code := e.runIn(work, "run", "--", "snakemake", "-j2"); code != 0 {
		t.Fatalf("lamina run -- snakemake: exit %d\n%s", code, errs)
	}
	var bs []catalog.Run
	if err := json.Unmarshal([]byte(e.ok("runs", "ls", "--transform", "bench", "--format", "json")), &bs); err != nil {
		t.Fatal(err)
	}
	if len(bs) != 1 {
		t.Fatalf("rule bench's runs %+v, want one\n%s", bs, e.ok("runs", "ls"))
	}
	rec := e.runRecord(bs[0].UID)
	if got, want := strings.Join(e.refs(rec.Outputs), " "), "wf/out/a.txt@v1 wf/out/a.txt@v2 wf/out/a.txt@v3"; got != want {
		t.Errorf("rule bench's outputs %s, want %s", got, want)
	}
}

// TestLineageSnakemakeScriptJobsParallel: the jobs of one `script:` rule
// run with -j4 are one run each, with its own input and output. Their
// command lines differ only by the temporary name of the script's copy,
// which the passes of a `benchmark: repeat` change too: a job started
// while another had exited but was not recorded done yet was taken for a
// pass of it (27 child runs for 30 jobs; s26's output listed raw/s26.csv
// and raw/s29.csv as inputs).
func TestLineageSnakemakeScriptJobsParallel(t *testing.T) {
	e, wf := snakemakeMount(t)
	const n = 30
	var samples []string
	for i := range n {
		s := fmt.Sprintf("s%02d", i)
		samples = append(samples, `"`+s+`"`)
		os.WriteFile(filepath.Join(wf, "raw", s+".csv"), []byte(s+",1\n"), 0o644)
	}
	os.WriteFile(filepath.Join(wf, "stats.py"), []byte(`with open(snakemake.input[0]) as f, open(snakemake.output[0], "w") as g:
    g.write(str(len(f.read())) + "\n")
`), 0o644)
	os.WriteFile(filepath.Join(wf, "Snakefile"), []byte(`S = [`+strings.Join(samples, ", ")+`]
rule all:
    input: expand("out/{s}.stats.txt", s=S)

rule stats:
    input: "raw/{s}.csv"
    output: "out/{s}.stats.txt"
    script: "stats.py"
`), 0o644)
	if _, errs, code := e.runIn(wf, "run", "--", "snakemake", "-j4"); code != 0 {
		t.Fatalf("lamina run -- snakemake: exit %d\n%s", code, errs)
	}
	sm := e.runRecord(e.runsByName()["snakemake"].UID)
	if len(sm.Children) != n {
		t.Errorf("the pipeline's child runs: %d, want %d (one per job)", len(sm.Children), n)
	}
	for i := range n {
		s := fmt.Sprintf("s%02d", i)
		var doc struct {
			Lineage *lineage.SidecarLineage `json:"lineage"`
		}
		if err := json.Unmarshal(mustRead(t, filepath.Join(wf, "out", s+".stats.txt.meta")), &doc); err != nil || doc.Lineage == nil {
			t.Errorf("%s's output has no run (%v)", s, err)
			continue
		}
		rec := e.runRecord(doc.Lineage.Run)
		if got, want := strings.Join(e.refs(rec.Inputs), " "), "wf/raw/"+s+".csv@v1"; got != want {
			t.Errorf("the run of %s's output has inputs %s, want %s", s, got, want)
		}
		if got, want := strings.Join(e.refs(rec.Outputs), " "), "wf/out/"+s+".stats.txt@v1"; got != want {
			t.Errorf("the run of %s's output has outputs %s, want %s", s, got, want)
		}
	}
}

// TestLineageSourceRunFromAnotherPath: a script byte-identical to one run
// before from another path is the same transform, but each run's source
// is the path it ran: `runs show` names it, and reading it is no input of
// the run. The transform kept the first run's path, and the second run
// recorded its own script as an input (the tracker compared the files it
// read with that stale path).
func TestLineageSourceRunFromAnotherPath(t *testing.T) {
	e := newMntEnv(t)
	mnt := filepath.Join(e.dir, "lab")
	e.mount(mnt)
	script := []byte("import sys\nopen(sys.argv[0]).read()\n")
	for _, d := range []string{"a", "b"} {
		os.MkdirAll(filepath.Join(mnt, d), 0o755)
		os.WriteFile(filepath.Join(mnt, d, "s.py"), script, 0o644)
	}
	for _, d := range []string{"a", "b"} {
		if _, errs, code := e.runIn(mnt, "run", "--", "python3", d+"/s.py"); code != 0 {
			t.Fatalf("lamina run: exit %d\n%s", code, errs)
		}
		rec := e.lastRun("s.py")
		if got := strings.Join(e.refs(rec.Inputs), " "); got != "" {
			t.Errorf("the run of %s/s.py has inputs %q, want none (its own script)", d, got)
		}
		if want := filepath.Join(mnt, d, "s.py"); rec.Transform.Path != want {
			t.Errorf("the run of %s/s.py has source %q, want %q", d, rec.Transform.Path, want)
		}
		if show, want := e.ok("runs", "show", rec.Run.UID), "source:    "+filepath.Join(mnt, d, "s.py")+"  digest"; !strings.Contains(show, want) {
			t.Errorf("runs show of the run of %s/s.py does not say %q:\n%s", d, want, show)
		}
	}
}

// TestLineageSnakemakeJobCwd: with `snakemake -d DIR` a job's run records
// the folder the job ran in, DIR, not the one the pipeline was started in
// (the tracker gave every job its pipeline's); so does the run of a job
// the tracker never saw (it failed before it opened anything in the mount).
func TestLineageSnakemakeJobCwd(t *testing.T) {
	e, wf := snakemakeMount(t)
	mnt := filepath.Dir(wf)
	os.WriteFile(filepath.Join(wf, "raw/a.txt"), []byte("a\n"), 0o644)
	os.WriteFile(filepath.Join(wf, "Snakefile"), []byte(`rule all:
    input: "out/a.txt", "out/early.txt"

rule a:
    input: "raw/a.txt"
    output: "out/a.txt"
    shell: "cat {input} > {output}"

rule early:
    output: "out/early.txt"
    shell: "exit 1"
`), 0o644)
	if _, errs, code := e.runIn(mnt, "run", "--", "snakemake", "-s", "wf/Snakefile", "-d", "wf", "-j1", "--keep-going"); code == 0 {
		t.Fatalf("lamina run -- snakemake: exit 0, want the failure of rule early\n%s", errs)
	}
	if got := e.runRecord(e.runsByName()["snakemake"].UID).Run.Cwd; got != mnt {
		t.Errorf("the pipeline's run has cwd %q, want %q", got, mnt)
	}
	for _, rule := range []string{"a", "early"} {
		if got := e.ruleRun(t, rule).Run.Cwd; got != wf {
			t.Errorf("rule %s's run has cwd %q, want %q", rule, got, wf)
		}
	}
}

// TestLineageRunRedirects: the calling shell's redirects on the mount
// (`lamina run -- tr a-z A-Z < in > out`) are the run's input and output,
// whether the shell opens them in the child it then runs lamina in
// (bash) or in itself before it forks (dash). The shell opened both, so
// the mount credited neither: 0 inputs, 0 outputs, a null sidecar
// lineage.
func TestLineageRunRedirects(t *testing.T) {
	e := newMntEnv(t)
	mnt := filepath.Join(e.dir, "lab")
	e.mount(mnt)
	os.MkdirAll(filepath.Join(mnt, "raw"), 0o755)
	os.MkdirAll(filepath.Join(mnt, "res"), 0o755)
	os.WriteFile(filepath.Join(mnt, "raw/in1.txt"), []byte("abc\n"), 0o644)
	for _, shell := range []string{"bash", "dash"} {
		out := "res/redir-" + shell + ".txt"
		sh := exec.Command(shell, "-c", `"$0" run --transform `+shell+` -- tr a-z A-Z < "$1/raw/in1.txt" > "$1/`+out+`"`, e.bin, mnt)
		sh.Env, sh.Dir = e.env, e.dir
		if msgs, err := sh.CombinedOutput(); err != nil {
			t.Fatalf("%s: lamina run: %v\n%s", shell, err, msgs)
		}
		if got := string(mustRead(t, filepath.Join(mnt, out))); got != "ABC\n" {
			t.Fatalf("%s: %s %q", shell, out, got)
		}
		rec := e.lastRun(shell)
		if got := strings.Join(e.refs(rec.Inputs), " "); got != "raw/in1.txt@v1" {
			t.Errorf("%s: inputs %q, want raw/in1.txt@v1", shell, got)
		}
		if got := strings.Join(e.refs(rec.Outputs), " "); got != out+"@v1" {
			t.Errorf("%s: outputs %q, want %s@v1", shell, got, out)
		}
		var doc struct {
			Lineage *lineage.SidecarLineage `json:"lineage"`
		}
		if err := json.Unmarshal(mustRead(t, filepath.Join(mnt, out+".meta")), &doc); err != nil || doc.Lineage == nil || doc.Lineage.Run != rec.Run.UID {
			t.Errorf("%s: sidecar lineage %+v (%v), want run %s", shell, doc.Lineage, err, rec.Run.UID)
		}
	}
	// The same bytes again (no new version), and redirects to and from a
	// scratch name (no versions): nothing to say, and the run goes on
	// (audit a6: "fd 1 … is still open in the caller", "its version is
	// unknown").
	for _, cmdline := range []string{
		`"$0" run -- tr a-z A-Z < "$1/raw/in1.txt" > "$1/res/redir-bash.txt"`,
		`"$0" run -- tr a-z A-Z < "$1/raw/in1.txt" > "$1/res/o.txt~"`,
		`"$0" run -- cat < "$1/res/o.txt~" > "$1/res/from-scratch.txt"`,
		// A FIFO of the mount (mkfifo there: no versions either).
		`mkfifo "$1/res/p" && { timeout 30 sh -c 'echo x > "$0"' "$1/res/p" & "$0" run -- cat < "$1/res/p" > "$1/res/from-fifo.txt"; wait; rm "$1/res/p"; }`,
	} {
		sh := exec.Command("bash", "-c", cmdline, e.bin, mnt)
		sh.Env, sh.Dir = e.env, e.dir
		msgs, err := sh.CombinedOutput()
		if err != nil || strings.Contains(string(msgs), "still open") || strings.Contains(string(msgs), "warning") {
			t.Errorf("%s: %v\n%s", cmdline, err, msgs)
		}
	}
	// > out 2>&1: one version, with the command's output and lamina's
	// summary (closing stdout first made two).
	sh := exec.Command("bash", "-c", `"$0" run -- tr a-z A-Z < "$1/raw/in1.txt" > "$1/res/both.txt" 2>&1`, e.bin, mnt)
	sh.Env, sh.Dir = e.env, e.dir
	if msgs, err := sh.CombinedOutput(); err != nil {
		t.Fatalf("2>&1: %v\n%s", err, msgs)
	}
	if vs := e.ok("ls", "--versions", "res/both.txt", "--format", "csv"); strings.Count(strings.TrimSpace(vs), "\n") != 1 {
		t.Errorf("> out 2>&1 made more than one version:\n%s", vs)
	}
}
