package main

import (
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/catalog/postgres/pgtest"
	"github.com/lamina-bio/lamina/lineage"
)

// showVersion returns what `lamina show --format json` says of spec.
func (e *mntEnv) showVersion(spec string) catalog.Version {
	e.t.Helper()
	var v catalog.Version
	if err := json.Unmarshal([]byte(e.ok("show", spec, "--format", "json")), &v); err != nil {
		e.t.Fatal(err)
	}
	return v
}

// lastRun returns the newest run named name.
func (e *mntEnv) lastRun(name string) catalog.RunRecord {
	e.t.Helper()
	r, ok := e.runsByName()[name]
	if !ok {
		e.t.Fatalf("no run %q", name)
	}
	return e.runRecord(r.UID)
}

// A `lamina save` by a tracked process makes its run's outputs, as a write
// through the mount does, with the mount up (over the daemon's socket) and
// without; what the run saved is not also its input (DESIGN §5).
func TestLineageCLISave(t *testing.T) {
	e := newMntEnv(t)
	e.ok("save", e.file("t.txt", []byte("input\n")), "--key", "exp/t.txt")
	s1 := e.file("s1.txt", []byte("one\n"))
	s2 := e.file("s2.txt", []byte("two\n"))
	folder := filepath.Dir(e.file("fold/a.txt", []byte("a\n")))
	e.file("fold/b.txt", []byte("b\n"))
	mnt := filepath.Join(e.dir, "lab")

	for _, tc := range []struct {
		name, src string
		mounted   bool
	}{
		{"no-mount", s1, false},
		{"mount", s2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.mounted {
				e.mount(mnt)
			}
			transform := "save-" + tc.name
			sh := e.bin + " get exp/t.txt -o - >/dev/null && " +
				e.bin + " save " + tc.src + " --key cli/s.txt && " +
				e.bin + " save " + folder + " --key cli/fold-" + tc.name + " && " +
				e.bin + " get cli/s.txt -o - >/dev/null" // its own output: not an input
			if tc.mounted {
				sh += " && cat " + filepath.Join(mnt, "cli/s.txt") + " >/dev/null"
			}
			_, errs, code := e.runIn(e.dir, "run", "--transform", transform, "--", "sh", "-c", sh)
			if code != 0 || !strings.Contains(errs, "1 input, 2 outputs") {
				t.Fatalf("lamina run: exit %d\n%s", code, errs)
			}
			rec := e.lastRun(transform)
			if got := strings.Join(e.refs(rec.Inputs), " "); got != "exp/t.txt@v1" {
				t.Fatalf("inputs %q, want exp/t.txt@v1 only", got)
			}
			v := e.showVersion("cli/s.txt")
			if v.Run != rec.Run.UID {
				t.Fatalf("%s: run %q, want %q", v.Ref(), v.Run, rec.Run.UID)
			}
			if f := e.showVersion("cli/fold-" + tc.name); f.Run != rec.Run.UID || f.Kind != "folder" {
				t.Fatalf("folder %s: run %q kind %s, want run %q", f.Ref(), f.Run, f.Kind, rec.Run.UID)
			}
			if got, want := strings.Join(e.refs(rec.Outputs), " "), "cli/fold-"+tc.name+"@v1 "+v.Ref(); got != want {
				t.Fatalf("outputs %q, want %q", got, want)
			}
			if !strings.Contains(e.ok("lineage", "cli/s.txt"), "<- run "+rec.Run.UID) {
				t.Fatalf("lamina lineage cli/s.txt does not name run %s", rec.Run.UID)
			}

			// A marker left behind after its run ended credits nothing.
			cmd := exec.Command(e.bin, "save", e.file("stale-"+tc.name, []byte(tc.name)), "--key", "cli/stale-"+tc.name)
			cmd.Env = append(e.env, lineage.EnvRun+"="+rec.Run.UID)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("stale save: %v\n%s", err, out)
			}
			if v := e.showVersion("cli/stale-" + tc.name); v.Run != "" {
				t.Fatalf("a save under a finished run's marker has run %q", v.Run)
			}
		})
	}
}

// `lamina show` prints the lineage the sidecar holds; its JSON is the
// sidecar's document, with the mount up and without (DESIGN §2).
func TestShowLineage(t *testing.T) {
	e := newMntEnv(t)
	e.ok("save", e.file("counts.csv", []byte("gene,count\nA,5\n")), "--key", "raw/counts.csv")
	raw := e.showVersion("raw/counts.csv")
	mnt := filepath.Join(e.dir, "lab")
	e.mount(mnt)
	os.MkdirAll(filepath.Join(mnt, "results"), 0o755)
	if _, errs, code := e.runIn(e.dir, "run", "--transform", "qc", "--", "sh", "-c",
		"cp "+filepath.Join(mnt, "raw/counts.csv")+" "+filepath.Join(mnt, "results/qc.csv")); code != 0 {
		t.Fatalf("lamina run: exit %d\n%s", code, errs)
	}
	rec := e.lastRun("qc")
	side := mustRead(t, filepath.Join(mnt, "results/qc.csv.meta"))
	var doc struct {
		Lineage *lineage.SidecarLineage `json:"lineage"`
	}
	if err := json.Unmarshal(side, &doc); err != nil || doc.Lineage == nil || doc.Lineage.Run != rec.Run.UID {
		t.Fatalf("sidecar lineage %+v (%v):\n%s", doc.Lineage, err, side)
	}
	// A version no run wrote: lineage null in both.
	plain := mustRead(t, filepath.Join(mnt, "raw/counts.csv.meta"))

	check := func(t *testing.T) {
		if got := e.ok("show", "results/qc.csv", "--format", "json"); got != string(side) {
			t.Fatalf("show --format json differs from the sidecar:\n%s\nsidecar:\n%s", got, side)
		}
		if got := e.ok("show", "raw/counts.csv", "--format", "json"); got != string(plain) {
			t.Fatalf("show --format json of a version no run wrote differs from the sidecar:\n%s\nsidecar:\n%s", got, plain)
		}
		text := e.ok("show", "results/qc.csv")
		for _, want := range []string{
			"run             " + rec.Run.UID + "\n",
			"run_status      ok\n",
			"transform       qc  uid " + rec.Transform.UID + "\n",
			"inputs          raw/counts.csv@v1 " + raw.UID + "\n",
		} {
			if !strings.Contains(text, want) {
				t.Fatalf("show lacks %q:\n%s", want, text)
			}
		}
		if text := e.ok("show", "raw/counts.csv"); strings.Contains(text, "inputs") || strings.Contains(text, "transform") {
			t.Fatalf("show of a version no run wrote prints lineage:\n%s", text)
		}
	}
	t.Run("mount", check)
	e.ok("umount", mnt)
	t.Run("no-mount", check)
}

// chain records raw/a.csv → run "first" → mid/b.csv → run "second" →
// out/c.csv without a mount (lamina get and save by tracked processes).
func (e *mntEnv) chain() {
	e.t.Helper()
	e.ok("save", e.file("a.csv", []byte("a\n")), "--key", "raw/a.csv")
	step := func(name, in, src, out string) {
		sh := e.bin + " get " + in + " -o - >/dev/null && " + e.bin + " save " + e.file(src, []byte(name+"\n")) + " --key " + out
		if _, errs, code := e.runIn(e.dir, "run", "--transform", name, "--", "sh", "-c", sh); code != 0 {
			e.t.Fatalf("run %s: exit %d\n%s", name, code, errs)
		}
	}
	step("first", "raw/a.csv", "b.csv", "mid/b.csv")
	step("second", "mid/b.csv", "c.csv", "out/c.csv")
}

// TestLineageDirections: --up and --down together walk both ways, a
// direction not walked is not reported as empty, and a negative --depth
// is a usage error.
func TestLineageDirections(t *testing.T) {
	e := newMntEnv(t)
	e.chain()
	both := []string{"upstream:\n", "<- raw/a.csv@v1", "downstream:\n", "-> out/c.csv@v1"}
	for _, tc := range []struct {
		args      []string
		want, not []string
	}{
		{nil, both, []string{"none recorded"}},
		{[]string{"--up", "--down"}, both, []string{"none recorded"}},
		{[]string{"--up"}, []string{"upstream:\n", "<- raw/a.csv@v1"}, []string{"downstream", "out/c.csv"}},
		{[]string{"--down"}, []string{"downstream:\n", "-> out/c.csv@v1"}, []string{"upstream", "raw/a.csv"}},
	} {
		t.Run(strings.Join(append([]string{"lineage"}, tc.args...), " "), func(t *testing.T) {
			out := e.ok(append([]string{"lineage", "mid/b.csv"}, tc.args...)...)
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("no %q in:\n%s", w, out)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(out, n) {
					t.Errorf("%q in:\n%s", n, out)
				}
			}
		})
	}
	if out := e.ok("lineage", "raw/a.csv", "--up"); !strings.Contains(out, "upstream: none recorded") {
		t.Errorf("a version no run wrote, --up:\n%s", out)
	}
	_, errs, code := e.runIn(e.dir, "lineage", "mid/b.csv", "--depth", "-1")
	if code != 2 || !strings.Contains(errs, "--depth -1") {
		t.Fatalf("--depth -1: exit %d, %s", code, errs)
	}
}

// sidecarStatus returns the run status a version's sidecar shows.
func sidecarStatus(t *testing.T, meta string) string {
	var doc struct {
		Lineage *lineage.SidecarLineage `json:"lineage"`
	}
	if err := json.Unmarshal(mustRead(t, meta), &doc); err != nil || doc.Lineage == nil {
		t.Fatalf("%s: %v", meta, err)
	}
	return doc.Lineage.Status
}

// TestLineageAbandonedRuns: the mount daemon ends the runs whose process
// died unfinished — a lamina run killed with SIGKILL, a tracked shell that
// exited without track finish — as abandoned, without any CLI call.
func TestLineageAbandonedRuns(t *testing.T) {
	e := newMntEnv(t)
	mnt := filepath.Join(e.dir, "lab")
	e.mount(mnt)
	killed := filepath.Join(mnt, "killed.txt")
	cmd := exec.Command(e.bin, "run", "--transform", "killed", "--", "sh", "-c", "echo x > "+killed+"; exec sleep 60")
	cmd.Env = e.env
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	deadline := time.Now().Add(60 * time.Second)
	for _, err := os.Stat(killed + ".meta"); err != nil && time.Now().Before(deadline); _, err = os.Stat(killed + ".meta") {
		time.Sleep(50 * time.Millisecond)
	}
	if got := sidecarStatus(t, killed+".meta"); got != catalog.RunRunning {
		t.Fatalf("while it runs: %s", got)
	}
	sleep := exec.Command("pkill", "-KILL", "-P", strconv.Itoa(cmd.Process.Pid)) // its sleep
	cmd.Process.Kill()
	sleep.Run()

	shell := exec.Command("bash", "-c", `eval "$(`+e.bin+` track start --transform closed)" && echo y > `+filepath.Join(mnt, "shell.txt"))
	shell.Env = e.env
	if out, err := shell.CombinedOutput(); err != nil {
		t.Fatalf("tracked shell: %v\n%s", err, out)
	}
	for _, meta := range []string{killed + ".meta", filepath.Join(mnt, "shell.txt.meta")} {
		got := ""
		for end := time.Now().Add(60 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
			if got = sidecarStatus(t, meta); got == catalog.RunAbandoned {
				break
			}
		}
		if got != catalog.RunAbandoned {
			t.Fatalf("%s: run status %q, want %s", meta, got, catalog.RunAbandoned)
		}
	}
}

// TestRunOutlivesDaemon: the mount going away (or coming) while a
// command runs does not lose its exit code: lamina run exits with it
// and records it in whichever catalog answers at the end.
func TestRunOutlivesDaemon(t *testing.T) {
	e := newMntEnv(t)
	mnt := filepath.Join(e.dir, "lab")
	for _, tc := range []struct {
		name    string
		mounted bool
	}{{"umount", true}, {"mount", false}} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.mounted {
				e.mount(mnt)
			}
			cmd := exec.Command(e.bin, "run", "--transform", tc.name, "--", "sh", "-c", "echo ready; sleep 3; exit 4")
			cmd.Env = e.env
			var errb strings.Builder
			cmd.Stderr = &errb
			out, _ := cmd.StdoutPipe()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			b := make([]byte, 6)
			io.ReadFull(out, b)
			start := time.Now()
			if tc.mounted {
				e.ok("umount", mnt)
			} else {
				e.mount(mnt)
			}
			err := cmd.Wait()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 4 {
				t.Fatalf("lamina run: %v, want exit 4\n%s", err, errb.String())
			}
			if d := time.Since(start); d > time.Minute { // a bound on a hang, not a timing
				t.Fatalf("lamina run took %s to end", d)
			}
			r := e.runsByName()[tc.name]
			if r.Status != catalog.RunFailed || r.ExitCode == nil || *r.ExitCode != 4 {
				t.Fatalf("run %+v\n%s", r, errb.String())
			}
			if !tc.mounted {
				e.ok("umount", mnt)
			}
		})
	}
}

// TestRunCgroupsSwept: a run's cgroup that a process outlived stays while
// it is busy and is removed by the next lamina run once empty.
func TestRunCgroupsSwept(t *testing.T) {
	e := newMntEnv(t)
	mnt := filepath.Join(e.dir, "lab")
	e.mount(mnt)
	if _, errs, code := e.runIn(e.dir, "run", "--transform", "leaver", "--", "sh", "-c", "setsid sleep 2 </dev/null >/dev/null 2>&1 &"); code != 0 {
		t.Fatalf("lamina run: exit %d\n%s", code, errs)
	}
	r := e.runsByName()["leaver"]
	if r.Cgroup == "" {
		t.Fatal("the run has no cgroup (is the cgroup v2 tree writable?)")
	}
	dir := lineage.CgroupRoot() + r.Cgroup
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the busy cgroup is gone already: %v", err)
	}
	// The sleep ends: the cgroup is empty, its run over.
	waitCgroupEmpty(t, dir)
	e.ok("run", "--transform", "next", "--", "true")
	if _, err := os.Stat(dir); err == nil {
		t.Fatalf("%s is still there after the next lamina run", dir)
	}
	if c := e.runsByName()["next"].Cgroup; c != "" {
		if _, err := os.Stat(lineage.CgroupRoot() + c); err == nil {
			t.Fatalf("the next run's own cgroup %s stayed", c)
		}
	}
}

// TestRunResumedByDaemon: a run that a mount's daemon did not see begin
// (it began with no mount up, or before the daemon restarted) is tracked
// by the daemon that starts while it runs: what it reads and writes
// through the mount from then on is its input and output. The daemon
// stopping meanwhile marks nothing: the run stays running, then ends ok.
func TestRunResumedByDaemon(t *testing.T) {
	e := newMntEnv(t)
	mnt := filepath.Join(e.dir, "lab")
	e.mount(mnt)
	os.MkdirAll(filepath.Join(mnt, "raw"), 0o755)
	os.MkdirAll(filepath.Join(mnt, "out"), 0o755)
	os.WriteFile(filepath.Join(mnt, "raw/in.csv"), []byte("a,1\n"), 0o644)
	os.WriteFile(filepath.Join(mnt, "raw/in2.csv"), []byte("b,2\n"), 0o644)
	e.ok("umount", mnt)
	for _, tc := range []struct {
		name    string
		mounted bool // at the run's start: the daemon restarts mid-run
	}{{"mount", false}, {"restart", true}} {
		t.Run(tc.name, func(t *testing.T) {
			defer e.run("umount", mnt) // the next case starts unmounted
			if tc.mounted {
				e.mount(mnt)
			}
			goFile := filepath.Join(e.dir, "go-"+tc.name)
			early := ""
			if tc.mounted {
				early = "cat " + mnt + "/raw/in.csv > " + mnt + "/out/" + tc.name + "-early.csv; "
			}
			cmd := exec.Command(e.bin, "run", "--transform", "resumed-"+tc.name, "--", "sh", "-c",
				early+"echo ready; while [ ! -e "+goFile+" ]; do sleep 0.05; done; cat "+mnt+"/raw/in2.csv > "+mnt+"/out/"+tc.name+"-late.csv")
			cmd.Env = e.env
			var errb strings.Builder
			cmd.Stderr = &errb
			out, _ := cmd.StdoutPipe()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Wait()
			defer os.WriteFile(goFile, nil, 0o644)
			b := make([]byte, 6)
			io.ReadFull(out, b)
			if tc.mounted {
				e.ok("umount", mnt)
				if r := e.runsByName()["resumed-"+tc.name]; r.Status != catalog.RunRunning {
					t.Fatalf("the daemon stopped: run %+v, want still running", r)
				}
			}
			uid := e.runsByName()["resumed-"+tc.name].UID
			e.mount(mnt)
			// The daemon tracks it again once it says so.
			logs, _ := filepath.Glob(filepath.Join(e.dir, "run", "lamina", "*", "mount.log"))
			seen := func() bool {
				for _, p := range logs {
					if b, _ := os.ReadFile(p); strings.Contains(string(b), "tracked again") && strings.Contains(string(b), uid) {
						return true
					}
				}
				return false
			}
			for end := time.Now().Add(60 * time.Second); !seen() && time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
				logs, _ = filepath.Glob(filepath.Join(e.dir, "run", "lamina", "*", "mount.log"))
			}
			os.WriteFile(goFile, nil, 0o644)
			if err := cmd.Wait(); err != nil {
				t.Fatalf("lamina run: %v\n%s", err, errb.String())
			}
			rec := e.runRecord(uid)
			wantIn, wantOut := []string{"raw/in2.csv@v1"}, []string{"out/" + tc.name + "-late.csv@v1"}
			if tc.mounted {
				wantIn = []string{"raw/in.csv@v1", "raw/in2.csv@v1"}
				wantOut = []string{"out/" + tc.name + "-early.csv@v1", "out/" + tc.name + "-late.csv@v1"}
			}
			if rec.Run.Status != catalog.RunOK || strings.Join(e.refs(rec.Inputs), " ") != strings.Join(wantIn, " ") ||
				strings.Join(e.refs(rec.Outputs), " ") != strings.Join(wantOut, " ") {
				t.Fatalf("run %s: status %s, inputs %v (want %v), outputs %v (want %v)\n%s", uid, rec.Run.Status,
					e.refs(rec.Inputs), wantIn, e.refs(rec.Outputs), wantOut, errb.String())
			}
			if v := e.showVersion("out/" + tc.name + "-late.csv"); v.Run != uid {
				t.Fatalf("out/%s-late.csv: run %q, want %s", tc.name, v.Run, uid)
			}
		})
	}
}

// TestRunsShowGoneAndWrongUIDs: `runs show` marks the inputs and outputs
// in the trash and the inputs deleted for good (a purged input was a bare
// uid, a trashed one unmarked); a version's uid given to `runs show`, or a
// run's to `lineage` and `show`, says which it is and the command to use
// ("no run", "no version" alone); `lineage KEY` of a key whose versions
// are all in the trash points to its newest (it was refused as "in the
// trash").
func TestRunsShowGoneAndWrongUIDs(t *testing.T) {
	e := newMntEnv(t)
	a, b := e.file("a.txt", []byte("a\n")), e.file("b.txt", []byte("b\n"))
	e.ok("save", a, "--key", "in/a.txt")
	e.ok("save", b, "--key", "in/b.txt")
	dest := t.TempDir()
	_, errs, code := e.runIn(e.dir, "run", "-t", "use", "--", "sh", "-c",
		e.bin+" get in/a.txt -o "+dest+"/; "+e.bin+" get in/b.txt -o "+dest+"/; "+e.bin+" save "+a+" --key o/a.txt; "+e.bin+" save "+b+" --key o/b.txt")
	if code != 0 || !strings.Contains(errs, "2 inputs, 2 outputs") {
		t.Fatalf("lamina run: exit %d\n%s", code, errs)
	}
	run := e.lastRun("use")
	oa := e.showVersion("o/a.txt")
	e.ok("delete", "in/a.txt", "o/a.txt")
	e.ok("delete", "--permanent", "--force", "--yes", "in/b.txt")
	out := e.ok("runs", "show", run.Run.UID)
	for _, want := range []string{
		"in/a.txt@v1  " + run.Inputs[0] + "  (in the trash)\n",
		"in/b.txt@v1  " + run.Inputs[1] + "  (deleted for good)\n",
		"o/a.txt@v1  " + oa.UID + "  new  (in the trash)\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("runs show lacks %q:\n%s", want, out)
		}
	}
	var shown struct {
		Trashed, Purged []string
	}
	if err := json.Unmarshal([]byte(e.ok("runs", "show", run.Run.UID, "--format", "json")), &shown); err != nil {
		t.Fatal(err)
	}
	if len(shown.Trashed) != 2 || len(shown.Purged) != 1 || shown.Purged[0] != run.Inputs[1] {
		t.Errorf("runs show --format json: trashed %v, purged %v", shown.Trashed, shown.Purged)
	}
	e.fails("is the uid of version o/a.txt@v1, made by run "+run.Run.UID+": `lamina runs show "+run.Run.UID+"`", "runs", "show", oa.UID)
	for _, cmd := range []string{"lineage", "show"} {
		e.fails("is the uid of a run, not of a version: `lamina runs show "+run.Run.UID+"`", cmd, run.Run.UID)
	}
	e.fails("`lamina lineage o/a.txt@v1` shows the lineage of its newest version there", "lineage", "o/a.txt")
}

// TestRunsShowPurged: an output of a run deleted for good (delete
// --permanent of a live key, or of one in the trash) stays in `runs
// show`, marked, by its key and number, as an input does. On PostgreSQL
// the output vanished (its version's row was the only record of its
// run); bbolt left it out to agree, and both showed a purged input by
// its uid alone. A temporary the mount purged once it was renamed onto
// a key is no output (its content and run went to the name). Both
// catalogs.
func TestRunsShowPurged(t *testing.T) {
	for _, cat := range []string{"bolt", "postgres"} {
		t.Run(cat, func(t *testing.T) {
			e := workstationEnv(t, "ws")
			init := []string{"init", "--storage", filepath.Join(e.dir, "storage"), "--name", "runspurged"}
			if cat == "postgres" {
				init = append(init, "--db", pgtest.URL(t))
			}
			e.ok(init...)
			e.ok("save", e.file("in.csv", []byte("gene,count\nA,5\n")), "--key", "raw/in.csv")
			e.ok("save", e.file("y.csv", []byte("old\n")), "--key", "exp/y.csv")
			e.ok("save", e.file("z.csv", []byte("old\n")), "--key", "exp/z.csv")
			mnt := filepath.Join(e.dir, "mnt")
			e.mount(mnt)
			in := func(p string) string { return filepath.Join(mnt, p) }
			// x.csv new; y.csv and z.csv written as a temporary renamed
			// onto them (the mount purges the temporary).
			script := "cat " + in("raw/in.csv") + " > " + in("exp/x.csv") +
				" && cat " + in("raw/in.csv") + " > " + in("exp/.y.tmp") + " && mv " + in("exp/.y.tmp") + " " + in("exp/y.csv") +
				" && echo z > " + in("exp/.z.tmp") + " && mv " + in("exp/.z.tmp") + " " + in("exp/z.csv")
			if _, errs, code := e.runIn(e.dir, "run", "-t", "make", "--", "sh", "-c", script); code != 0 || !strings.Contains(errs, "1 input, 3 outputs") {
				t.Fatalf("lamina run: exit %d\n%s", code, errs)
			}
			run := e.lastRun("make")
			x, y, z, src := e.showVersion("exp/x.csv"), e.showVersion("exp/y.csv"), e.showVersion("exp/z.csv"), e.showVersion("raw/in.csv")
			if want := []string{x.UID, y.UID, z.UID}; !reflect.DeepEqual(run.Outputs, sortedCopy(want)) {
				t.Fatalf("outputs %v, want %v", run.Outputs, want)
			}
			e.ok("delete", "--permanent", "--force", "--yes", "exp/x.csv", "raw/in.csv")
			e.ok("delete", "exp/y.csv")
			e.ok("delete", "--permanent", "--force", "--yes", "exp/")
			out := e.ok("runs", "show", run.Run.UID)
			for _, want := range []string{
				"inputs (1):\n  raw/in.csv@v1  " + src.UID + "  (deleted for good)\n",
				"outputs (3):\n",
				"  exp/x.csv@v1  " + x.UID + "  new  (deleted for good)\n",
				"  exp/y.csv@v2  " + y.UID + "  new  (deleted for good)\n",
				"  exp/z.csv@v2  " + z.UID + "  new\n",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("runs show lacks %q:\n%s", want, out)
				}
			}
			if strings.Contains(out, ".tmp@") {
				t.Errorf("runs show lists a temporary:\n%s", out)
			}
			var shown struct {
				Outputs, Purged []string
				Run             catalog.Run
			}
			if err := json.Unmarshal([]byte(e.ok("runs", "show", run.Run.UID, "--format", "json")), &shown); err != nil {
				t.Fatal(err)
			}
			if want := sortedCopy([]string{x.UID, y.UID, src.UID}); !reflect.DeepEqual(sortedCopy(shown.Purged), want) || len(shown.Run.Purged) != 3 {
				t.Errorf("runs show --format json: purged %v (want %v), run.purged %+v", shown.Purged, want, shown.Run.Purged)
			}
		})
	}
}

func sortedCopy(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// TestGarbageMarkerWarns: a LAMINA_RUN that cannot be a run's uid was
// ignored silently by `lamina run`, `save` and `get`: each says once that
// it names no run. A well-formed uid of no run here is not said (it may
// be another instance's run).
func TestGarbageMarkerWarns(t *testing.T) {
	e := newMntEnv(t)
	src := e.file("a.txt", []byte("a\n"))
	base := e.env
	const warn = "LAMINA_RUN=garbage names no run"
	e.env = append(slices.Clone(base), "LAMINA_RUN=garbage")
	for _, args := range [][]string{
		{"save", src, "--key", "a.txt"},
		{"get", "a.txt", "-o", t.TempDir() + "/"},
		{"run", "--", "true"},
	} {
		_, errs, err := e.run(args...)
		if err != nil || strings.Count(errs, warn) != 1 {
			t.Errorf("lamina %v: %v; want the warning once:\n%s", args, err, errs)
		}
	}
	e.env = append(slices.Clone(base), "LAMINA_RUN=ABCDEFGH12345678")
	if _, errs, err := e.run("get", "a.txt", "-o", t.TempDir()+"/"); err != nil || strings.Contains(errs, "names no run") {
		t.Errorf("a well-formed marker of no run: %v\n%s", err, errs)
	}
}

// waitCgroupEmpty waits up to 60 s until no process is left in the cgroup
// folder dir (or one below it), failing the test otherwise.
func waitCgroupEmpty(t *testing.T, dir string) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		b, err := os.ReadFile(filepath.Join(dir, "cgroup.events"))
		if err != nil || strings.Contains(string(b), "populated 0") {
			return // gone, or empty
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes still in %s after 60 s:\n%s", dir, b)
		}
	}
}

// TestPurgedSaid: what was deleted for good is said, not silently
// skipped. `lamina lineage` of a run's output showed the run with the
// inputs left, nothing saying one was gone (and a purged output vanished
// downstream): it shows it marked, from the run's record. `restore` of a
// purged key said only "has nothing in the trash", as for a typo: it
// says which versions went for good and when (exit 4 as before). The
// prompt of `delete --permanent KEY` gave no count nor size. Both
// catalogs.
func TestPurgedSaid(t *testing.T) {
	if _, err := exec.LookPath("script"); err != nil {
		t.Fatal("util-linux `script` is needed to give delete a terminal")
	}
	for _, cat := range []string{"bolt", "postgres"} {
		t.Run(cat, func(t *testing.T) {
			e := workstationEnv(t, "ws")
			init := []string{"init", "--storage", filepath.Join(e.dir, "storage"), "--name", "purgedsaid"}
			if cat == "postgres" {
				init = append(init, "--db", pgtest.URL(t))
			}
			e.ok(init...)
			e.ok("save", e.file("in1", []byte("one\n")), "--key", "r/in1")
			e.ok("save", e.file("in2", []byte("two\n")), "--key", "r/in2")
			mnt := filepath.Join(e.dir, "mnt")
			e.mount(mnt)
			in := func(p string) string { return filepath.Join(mnt, p) }
			if _, errs, code := e.runIn(e.dir, "run", "-t", "cat", "--", "sh", "-c",
				"cat "+in("r/in1")+" "+in("r/in2")+" > "+in("r/out")+" && cat "+in("r/out")+" > "+in("r/down")); code != 0 {
				t.Fatalf("lamina run: exit %d\n%s", code, errs)
			}
			in1, out := e.showVersion("r/in1"), e.showVersion("r/out")
			e.ok("save", e.file("in1b", []byte("one again\n")), "--key", "r/in1") // v2: 10 B

			// The prompt, on a terminal, answered no.
			sh := exec.Command("script", "-qec", e.bin+" delete --permanent --force r/in1", "/dev/null")
			sh.Env, sh.Stdin = e.env, strings.NewReader("n\n")
			b, _ := sh.CombinedOutput()
			for _, want := range []string{"Delete r/in1 (2 versions, 14 B) and every version of it for good?",
				"`lamina gc` can then free up to 14 B", "nothing deleted"} {
				if !strings.Contains(string(b), want) {
					t.Errorf("the prompt lacks %q:\n%s", want, b)
				}
			}
			e.showVersion("r/in1") // still there

			e.ok("delete", "--permanent", "--yes", "--force", "r/in1")
			text := e.ok("lineage", "r/out")
			if want := "<- r/in1@v1  " + in1.UID + "  (deleted for good)\n"; !strings.Contains(text, want) {
				t.Errorf("lineage lacks %q:\n%s", want, text)
			}
			var g struct {
				Nodes map[string]struct {
					Purged  bool
					Version struct{ Key string }
				}
			}
			if err := json.Unmarshal([]byte(e.ok("lineage", "r/out", "--format", "json")), &g); err != nil {
				t.Fatal(err)
			}
			if n := g.Nodes[in1.UID]; !n.Purged || n.Version.Key != "r/in1" {
				t.Errorf("lineage --format json: %+v", g.Nodes)
			}
			// lineage UID and show UID of it said only "no version has uid".
			for _, cmd := range []string{"lineage", "show"} {
				_, errs, err := e.run(cmd, in1.UID)
				if code := codeOf(err); code != 4 || !strings.Contains(errs, "no version has uid "+in1.UID+": it was r/in1@v1, deleted for good (delete --permanent) at ") ||
					!strings.Contains(errs, "and cannot come back (`lamina runs show "+out.Run+"` records it)") {
					t.Errorf("%s of a purged version's uid: exit %d\n%s", cmd, code, errs)
				}
			}
			// A purged output, downstream.
			e.ok("delete", "--permanent", "--yes", "--force", "r/down")
			if text := e.ok("lineage", "r/in2", "--down"); !strings.Contains(text, "-> r/down@v1  ") || !strings.Contains(text, "(deleted for good)") {
				t.Errorf("lineage --down lacks the purged output:\n%s", text)
			}
			if dot := e.ok("lineage", "r/out", "--format", "dot"); !strings.Contains(dot, "(deleted for good)") {
				t.Errorf("dot:\n%s", dot)
			}

			// The lineage behind a purged version, through its runs'
			// records: it stopped there.
			if _, errs, code := e.runIn(e.dir, "run", "-t", "sort", "--", "sh", "-c", "sort "+in("r/out")+" > "+in("r/out2")); code != 0 {
				t.Fatalf("lamina run: exit %d\n%s", code, errs)
			}
			e.ok("delete", "--permanent", "--yes", "--force", "r/out")
			if text := e.ok("lineage", "r/out2"); !strings.Contains(text, "r/out@v1  "+out.UID+"  (deleted for good)") || !strings.Contains(text, "r/in2@v1") {
				t.Errorf("lineage r/out2 stops at the purged r/out:\n%s", text)
			}
			if text := e.ok("lineage", "r/in2", "--down"); !strings.Contains(text, "r/out2@v1") {
				t.Errorf("lineage r/in2 --down stops at the purged r/out:\n%s", text)
			}

			_, errs, err := e.run("restore", "r/in1")
			if code := codeOf(err); code != 4 || !strings.Contains(errs, `"r/in1" has nothing in the trash: it was deleted for good (delete --permanent) at `) ||
				!strings.Contains(errs, "and cannot come back (runs record r/in1@v1 of it); nothing restored") {
				t.Errorf("restore of a purged key: exit %d\n%s", code, errs)
			}
			// What no run recorded is said as before.
			if _, errs, err := e.run("restore", "r/nosuch"); codeOf(err) != 4 || !strings.Contains(errs, `"r/nosuch" has nothing in the trash; nothing restored`) {
				t.Errorf("restore of a key never saved: %v\n%s", err, errs)
			}
		})
	}
}
