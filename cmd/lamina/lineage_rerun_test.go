package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/catalog/catalogrpc"
	"github.com/lamina-bio/lamina/catalog/postgres/pgtest"
	"github.com/lamina-bio/lamina/instance"
	"github.com/lamina-bio/lamina/lineage"
)

// TestLineageRerunIdentical: a tracked run that writes an output's bytes
// again makes no new version (DESIGN §3), and the version it reproduced is
// its output: `runs show` lists it, `lamina lineage` shows the run beside
// the one that made it, and the sidecar names it. The version's run stays
// the first. Before, the rerun recorded no output at all. The same for
// `lamina save` of identical bytes by a tracked process, and a rerun that
// removes its output first (as Snakemake does): the removed versions come
// back with its write (stage.Unlink), so the one it reproduced is its
// output, where it made a new version of the same bytes.
// Both catalogs: bbolt, and PostgreSQL (LAMINA_PG_URL).
func TestLineageRerunIdentical(t *testing.T) {
	t.Run("bbolt", func(t *testing.T) { rerunIdentical(t, newMntEnv(t)) })
	t.Run("postgres", func(t *testing.T) {
		db := pgtest.URL(t)
		e := workstationEnv(t, "ana")
		e.ok("init", "--storage", filepath.Join(e.dir, "storage"), "--db", db, "--name", "lab")
		rerunIdentical(t, e)
	})
}

func rerunIdentical(t *testing.T, e *mntEnv) {
	e.ok("save", e.file("in.csv", []byte("gene,count\nA,5\n")), "--key", "raw/in.csv")
	mnt := filepath.Join(e.dir, "lab")
	e.mount(mnt)
	os.MkdirAll(filepath.Join(mnt, "results"), 0o755)
	in, out := filepath.Join(mnt, "raw/in.csv"), filepath.Join(mnt, "results/out.csv")

	// The shell's > truncates the existing file and writes the same bytes;
	// reading it back afterwards makes it no input (DESIGN §5: a version
	// the same run wrote is not also its input).
	for _, name := range []string{"first", "second"} {
		if _, errs, code := e.runIn(e.dir, "run", "--transform", name, "--", "sh", "-c", "cat "+in+" > "+out+" && cat "+out+" >/dev/null"); code != 0 || !strings.Contains(errs, "1 input, 1 output") {
			t.Fatalf("lamina run %s: exit %d\n%s", name, code, errs)
		}
	}
	runs := e.runsByName()
	first, second := e.runRecord(runs["first"].UID), e.runRecord(runs["second"].UID)
	for _, r := range []catalog.RunRecord{first, second} {
		if got := e.refs(r.Outputs); strings.Join(got, " ") != "results/out.csv@v1" {
			t.Fatalf("%s's outputs %v, want the version it wrote (again)", r.Run.Name, got)
		}
		if got := e.refs(r.Inputs); strings.Join(got, " ") != "raw/in.csv@v1" {
			t.Fatalf("%s's inputs %v", r.Run.Name, got)
		}
	}
	var v catalog.Version
	if err := json.Unmarshal([]byte(e.ok("show", "results/out.csv", "--format", "json")), &v); err != nil {
		t.Fatal(err)
	}
	if v.Version != 1 || v.Run != first.Run.UID {
		t.Fatalf("results/out.csv is %s of run %s; want v1 of the first run %s", v.Ref(), v.Run, first.Run.UID)
	}
	if !strings.Contains(e.ok("runs", "show", second.Run.UID), "results/out.csv@v1") {
		t.Fatalf("runs show of the rerun does not list its output:\n%s", e.ok("runs", "show", second.Run.UID))
	}
	up := e.ok("lineage", "results/out.csv")
	for _, want := range []string{"<- run " + first.Run.UID, "<- run " + second.Run.UID, "(also produced it: identical bytes)"} {
		if !strings.Contains(up, want) {
			t.Fatalf("lineage lacks %q:\n%s", want, up)
		}
	}
	for _, l := range strings.Split(up, "\n") {
		if strings.Contains(l, "run "+first.Run.UID) && strings.Contains(l, "also produced") {
			t.Fatalf("the run that made it is marked as a rerun:\n%s", up)
		}
	}
	down := e.ok("lineage", "raw/in.csv", "--down")
	if !strings.Contains(down, "-> run "+second.Run.UID) || !strings.Contains(down, "(reproduced: identical bytes)") {
		t.Fatalf("downstream of the input lacks the rerun:\n%s", down)
	}
	var side struct {
		Lineage lineage.SidecarLineage `json:"lineage"`
	}
	if err := json.Unmarshal(mustRead(t, out+".meta"), &side); err != nil {
		t.Fatal(err)
	}
	if side.Lineage.Run != first.Run.UID || len(side.Lineage.AlsoBy) != 1 || !strings.HasPrefix(side.Lineage.AlsoBy[0], second.Run.UID+" ") {
		t.Fatalf("sidecar lineage %+v", side.Lineage)
	}

	// lamina save of the same bytes by a tracked process.
	same := e.file("same.csv", []byte("gene,count\nA,5\n"))
	said, errs, code := e.runIn(e.dir, "run", "--transform", "saver", "--", e.bin, "save", same, "--key", "results/out.csv")
	if code != 0 {
		t.Fatalf("saver: exit %d\n%s", code, errs)
	}
	saver := e.runRecord(e.runsByName()["saver"].UID)
	if !strings.Contains(said, "no new version; recorded as an output of run "+saver.Run.UID) {
		t.Fatalf("lamina save says %q", said)
	}
	if got := e.refs(saver.Outputs); strings.Join(got, " ") != "results/out.csv@v1" {
		t.Fatalf("lamina save of identical bytes in a run: outputs %v", got)
	}

	// Written to a temporary file renamed onto the key (an atomic write).
	replace := e.file("w.py", []byte("import os, sys\ndata = open(sys.argv[1]).read()\ntmp = sys.argv[2] + '.tmp42'\nopen(tmp, 'w').write(data)\nos.replace(tmp, sys.argv[2])\n"))
	if _, errs, code := e.runIn(e.dir, "run", "--transform", "replacer", "--", "python3", replace, in, out); code != 0 {
		t.Fatalf("replacer: exit %d\n%s", code, errs)
	}
	replacer := e.runRecord(e.runsByName()["replacer"].UID)
	if got := e.refs(replacer.Outputs); strings.Join(got, " ") != "results/out.csv@v1" {
		t.Fatalf("a rename of identical bytes onto the key: outputs %v", got)
	}

	// A run that reads a file, then writes it again with the same bytes:
	// the read came first, so the version is its input as well as its
	// output (the input used to be dropped: the rerun reached the catalog
	// before the queued read).
	sorted := filepath.Join(mnt, "results/sorted.txt")
	if err := os.WriteFile(sorted, []byte("a\nb\nc\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(e.dir, "sorted.tmp")
	for name, argv := range map[string][]string{
		"sorter":  {"sort", "-o", sorted, sorted},
		"catback": {"sh", "-c", "cat " + sorted + " > " + tmp + "; cat " + tmp + " > " + sorted},
	} {
		if _, errs, code := e.runIn(e.dir, append([]string{"run", "--transform", name, "--"}, argv...)...); code != 0 || !strings.Contains(errs, "1 input, 1 output") {
			t.Fatalf("lamina run %s: exit %d\n%s", name, code, errs)
		}
		rec := e.runRecord(e.runsByName()[name].UID)
		if in, out := e.refs(rec.Inputs), e.refs(rec.Outputs); strings.Join(in, " ") != "results/sorted.txt@v1" || strings.Join(out, " ") != "results/sorted.txt@v1" {
			t.Fatalf("%s: inputs %v, outputs %v; want results/sorted.txt@v1 as both", name, in, out)
		}
	}

	// Removed first, then written again: the write brings the removed
	// versions back, and its bytes are v1's: v1 is the run's output, and
	// nothing is left in the trash.
	if _, errs, code := e.runIn(e.dir, "run", "--transform", "third", "--", "sh", "-c", "rm "+out+" && cat "+in+" > "+out); code != 0 {
		t.Fatalf("third: exit %d\n%s", code, errs)
	}
	third := e.runRecord(e.runsByName()["third"].UID)
	if got := e.refs(third.Outputs); strings.Join(got, " ") != "results/out.csv@v1" {
		t.Fatalf("rm then write: outputs %v", got)
	}
	if tr := e.ok("ls", "--trash"); strings.Contains(tr, "out.csv") {
		t.Fatalf("rm then write left the output in the trash:\n%s", tr)
	}
}

// TestLineageSnakemakeRerunIdentical: Snakemake removes a job's outputs
// before it runs the job again (-F); the job's write of the same bytes
// brings the removed version back (stage.Unlink) and makes none: that
// version, which keeps its first run, is the new job's output too. It was
// a new version of the same bytes, the first in the trash.
func TestLineageSnakemakeRerunIdentical(t *testing.T) {
	e, wf := snakemakeMount(t)
	os.WriteFile(filepath.Join(wf, "raw/a.csv"), []byte("a,1\n"), 0o644)
	os.WriteFile(filepath.Join(wf, "Snakefile"), []byte(`rule copy:
    input: "raw/a.csv"
    output: "results/a.csv"
    shell: "cat {input} > {output}"
`), 0o644)
	var jobs []catalog.RunRecord
	for i, args := range [][]string{{"-j1"}, {"-j1", "-F"}} {
		if _, errs, code := e.runIn(wf, append([]string{"run", "--", "snakemake"}, args...)...); code != 0 {
			t.Fatalf("snakemake pass %d: exit %d\n%s", i+1, code, errs)
		}
		jobs = append(jobs, e.runRecord(e.runsByName()["copy"].UID))
	}
	if jobs[0].Run.UID == jobs[1].Run.UID {
		t.Fatal("one job run for two passes")
	}
	for i, want := range []string{"wf/results/a.csv@v1", "wf/results/a.csv@v1"} {
		if got := e.refs(jobs[i].Outputs); strings.Join(got, " ") != want {
			t.Fatalf("pass %d: the job's outputs %v, want %s", i+1, got, want)
		}
	}
}

// TestLineageSnakemakeFailedThenRerun: a job that wrote its output and
// failed (Snakemake trashed the output), then a pass whose job wrote the
// same bytes: the write brought the trashed version back, and show and
// the sidecar said "failed", the good job only in also_produced_by. They
// name the job that ended ok now, the failed one in also_produced_by.
func TestLineageSnakemakeFailedThenRerun(t *testing.T) {
	e, wf := snakemakeMount(t)
	flag := filepath.Join(t.TempDir(), "ok")
	os.WriteFile(filepath.Join(wf, "raw/a.csv"), []byte("a,1\n"), 0o644)
	os.WriteFile(filepath.Join(wf, "Snakefile"), []byte(`rule copy:
    input: "raw/a.csv"
    output: "results/a.csv"
    shell: "cat {input} > {output}; test -e `+flag+`"
`), 0o644)
	var jobs []string
	for i, want := range []int{1, 0} {
		if i == 1 {
			os.WriteFile(flag, nil, 0o644)
		}
		if _, errs, code := e.runIn(wf, "run", "--", "snakemake", "-j1"); (code != 0) != (want != 0) {
			t.Fatalf("snakemake pass %d: exit %d\n%s", i+1, code, errs)
		}
		jobs = append(jobs, e.runsByName()["copy"].UID)
	}
	if jobs[0] == jobs[1] {
		t.Fatal("one job run for two passes")
	}
	var shown struct {
		Run     string
		Lineage lineage.SidecarLineage
	}
	if err := json.Unmarshal([]byte(e.ok("show", "wf/results/a.csv", "--format", "json")), &shown); err != nil {
		t.Fatal(err)
	}
	l := shown.Lineage
	if l.Run != jobs[1] || l.Status != catalog.RunOK || len(l.AlsoBy) != 1 || !strings.HasPrefix(l.AlsoBy[0], jobs[0]+" ") {
		t.Fatalf("lineage %+v (the version's run %s): want run %s ok, also produced by %s", l, shown.Run, jobs[1], jobs[0])
	}
	var side struct{ Lineage lineage.SidecarLineage }
	meta := mustRead(t, filepath.Join(wf, "results/a.csv.meta"))
	if err := json.Unmarshal(meta, &side); err != nil || side.Lineage.Run != jobs[1] || side.Lineage.Status != catalog.RunOK {
		t.Fatalf("sidecar: %s, %v", meta, err)
	}
	if out := e.ok("show", "wf/results/a.csv"); !strings.Contains(out, "run             "+jobs[1]+"\nrun_status      ok\n") {
		t.Fatalf("show:\n%s", out)
	}
}

// protocol5 answers Reruns as a daemon of protocol 5 does: it lacks the
// call.
type protocol5 struct{ catalog.Catalog }

func (protocol5) Reruns(context.Context, string) ([]string, error) {
	return nil, fmt.Errorf("catalogrpc: unknown call %q (is the daemon an older lamina?)", "reruns")
}

// TestLineageThroughOlderDaemon: `lamina lineage` and `lamina show`
// through a daemon of an older lamina (protocol 5: no "reruns" call) show
// the lineage, without reruns and saying so once on stderr; lineage
// failed with `catalogrpc: unknown call "reruns"`.
func TestLineageThroughOlderDaemon(t *testing.T) {
	e := newMntEnv(t)
	data := e.file("in.csv", []byte("gene,count\nA,5\n"))
	if _, errs, code := e.runIn(e.dir, "run", "--transform", "saver", "--", e.bin, "save", data, "--key", "res/out.csv"); code != 0 {
		t.Fatalf("saver: exit %d\n%s", code, errs)
	}
	for _, kv := range e.env { // the instance as the CLI sees it
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "XDG_") {
			t.Setenv(k, v)
		}
	}
	dirs, err := instance.UserDirs()
	if err != nil {
		t.Fatal(err)
	}
	s, err := dirs.Current("m")
	if err != nil {
		t.Fatal(err)
	}
	b, err := catalog.OpenBolt(s.Catalog, catalog.BoltOptions{Hold: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	sock := dirs.SocketPath(s.Name)
	os.MkdirAll(filepath.Dir(sock), 0o700)
	l, err := catalogrpc.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := catalogrpc.NewServer(protocol5{b}, catalogrpc.ServerOptions{ID: s.ID})
	go srv.Serve(l)
	defer srv.Close()
	for _, args := range [][]string{{"lineage", "res/out.csv"}, {"show", "res/out.csv"}} {
		out, errs, err := e.run(args...)
		if err != nil || !strings.Contains(out, "saver") {
			t.Fatalf("lamina %s through an older daemon: %v\n%s%s", strings.Join(args, " "), err, out, errs)
		}
		if n := strings.Count(errs, "does not record reruns"); n != 1 {
			t.Fatalf("lamina %s: %d notes on stderr, want 1:\n%s", strings.Join(args, " "), n, errs)
		}
	}
}
