package catalogtest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/ref"
)

// runRuns checks catalog.Runs: transforms, runs, inputs, outputs, children.
func runRuns(t *testing.T, open func(t *testing.T) catalog.Catalog) {
	ctx := context.Background()
	t.Run("TransformsDedupByDigest", func(t *testing.T) {
		c := open(t)
		a, err := c.SaveTransform(ctx, catalog.Transform{Name: "qc.py", Kind: "script", Digest: ref.Sum([]byte("v1")), Source: "print(1)"})
		if err != nil || a.UID == "" {
			t.Fatalf("SaveTransform = %+v, %v", a, err)
		}
		b, _ := c.SaveTransform(ctx, catalog.Transform{Name: "qc.py", Kind: "script", Digest: ref.Sum([]byte("v1"))})
		d, _ := c.SaveTransform(ctx, catalog.Transform{Name: "qc.py", Kind: "script", Digest: ref.Sum([]byte("v2"))})
		if b.UID != a.UID || b.Source != "print(1)" || d.UID == a.UID {
			t.Fatalf("same digest %s vs %s (source %q); new digest %s", b.UID, a.UID, b.Source, d.UID)
		}
	})
	// The same script run from two paths is one transform, with the first
	// run's Path; each run's record names the path it ran (Run.Source).
	t.Run("RunRecordOwnSource", func(t *testing.T) {
		c := open(t)
		sum := ref.Sum([]byte("same bytes"))
		var uids []string
		for _, p := range []string{"/lab/a/s.py", "/lab/b/s.py"} {
			tr, err := c.SaveTransform(ctx, catalog.Transform{Name: "s.py", Kind: "script", Path: p, Digest: sum})
			if err != nil {
				t.Fatal(err)
			}
			r, err := c.StartRun(ctx, catalog.Run{Transform: tr.UID, Name: "s.py", Source: p})
			if err != nil {
				t.Fatal(err)
			}
			uids = append(uids, r.UID)
		}
		for i, want := range []string{"/lab/a/s.py", "/lab/b/s.py"} {
			rec, err := c.RunRecord(ctx, uids[i])
			if err != nil {
				t.Fatal(err)
			}
			if rec.Transform.Path != want || rec.Run.Source != want {
				t.Errorf("run %d: transform path %q, run source %q; want %q", i, rec.Transform.Path, rec.Run.Source, want)
			}
		}
	})
	// A Snakemake job seen by two mount daemons got a run from each: a
	// run started with Parent and Job is one run, whoever starts it, and
	// whatever they start at once.
	t.Run("JobRunStartedOnce", func(t *testing.T) {
		c := open(t)
		tr, err := c.SaveTransform(ctx, catalog.Transform{Name: "snakemake", Kind: "pipeline"})
		if err != nil {
			t.Fatal(err)
		}
		p, _ := c.StartRun(ctx, catalog.Run{Transform: tr.UID, Split: true})
		p2, _ := c.StartRun(ctx, catalog.Run{Transform: tr.UID, Split: true})
		uids := make([]string, 4)
		errs := make([]error, 4)
		var wg sync.WaitGroup
		for i := range uids {
			wg.Go(func() {
				r, err := c.StartRun(ctx, catalog.Run{Transform: tr.UID, Parent: p.UID, Name: "job", Job: "42 abc", Daemon: fmt.Sprint("d", i)})
				uids[i], errs[i] = r.UID, err
			})
		}
		wg.Wait()
		for i := range uids {
			if errs[i] != nil || uids[i] != uids[0] || uids[i] != catalog.JobRunUID(p.UID, "42 abc") {
				t.Fatalf("the job's runs: %v, %v; want one, %s", uids, errs, catalog.JobRunUID(p.UID, "42 abc"))
			}
		}
		other, _ := c.StartRun(ctx, catalog.Run{Transform: tr.UID, Parent: p.UID, Name: "job", Job: "43 abc"})
		elsewhere, _ := c.StartRun(ctx, catalog.Run{Transform: tr.UID, Parent: p2.UID, Name: "job", Job: "42 abc"})
		if other.UID == uids[0] || elsewhere.UID == uids[0] || other.UID == "" || elsewhere.UID == "" {
			t.Fatalf("another job %q, the same job of another run %q: want runs of their own, not %s", other.UID, elsewhere.UID, uids[0])
		}
		rec, err := c.RunRecord(ctx, p.UID)
		if err != nil || len(rec.Children) != 2 {
			t.Fatalf("children %v, %v; want 2", rec.Children, err)
		}
		if rec, err := c.RunRecord(ctx, uids[0]); err != nil || rec.Run.Job != "42 abc" || rec.Run.Parent != p.UID || rec.Run.Status != catalog.RunRunning {
			t.Fatalf("the job's run %+v, %v", rec.Run, err)
		}
		// Ended, it is returned as it is: never started again.
		zero := 0
		c.FinishRun(ctx, uids[0], catalog.RunEnd{FinishedAt: time.Now(), ExitCode: &zero})
		if r, err := c.StartRun(ctx, catalog.Run{Transform: tr.UID, Parent: p.UID, Name: "job", Job: "42 abc"}); err != nil || r.UID != uids[0] || r.Status != catalog.RunOK {
			t.Fatalf("started again after its end: %+v, %v", r, err)
		}
	})
	t.Run("RunEndSignalAbandonedTransform", func(t *testing.T) {
		c := open(t)
		tr, err := c.SaveTransform(ctx, catalog.Transform{Name: "snakemake", Kind: "pipeline"})
		if err != nil {
			t.Fatal(err)
		}
		rule, err := c.SaveTransform(ctx, catalog.Transform{Name: "norm", Kind: "rule", Digest: ref.Sum([]byte("Snakefile"))})
		if err != nil {
			t.Fatal(err)
		}
		killed, _ := c.StartRun(ctx, catalog.Run{Transform: tr.UID, Name: "k"})
		code := 130
		if f, err := c.FinishRun(ctx, killed.UID, catalog.RunEnd{FinishedAt: time.Now(), ExitCode: &code, Signal: "SIGINT"}); err != nil ||
			f.Status != catalog.RunFailed || f.Signal != "SIGINT" || *f.ExitCode != 130 {
			t.Fatalf("killed: %+v, %v", f, err)
		}
		gone, _ := c.StartRun(ctx, catalog.Run{Transform: tr.UID, Name: "g"})
		if f, err := c.FinishRun(ctx, gone.UID, catalog.RunEnd{FinishedAt: time.Now(), Abandoned: true}); err != nil ||
			f.Status != catalog.RunAbandoned || f.ExitCode != nil || f.FinishedAt == nil {
			t.Fatalf("abandoned: %+v, %v", f, err)
		}
		if f, err := c.FinishRun(ctx, gone.UID, catalog.RunEnd{Name: "g2"}); err != nil || f.Status != catalog.RunAbandoned || f.Name != "g2" {
			t.Fatalf("an amended abandoned run: %+v, %v", f, err)
		}
		// A run that left processes says so, and an amend keeps it.
		left, _ := c.StartRun(ctx, catalog.Run{Transform: tr.UID, Name: "l"})
		if f, err := c.FinishRun(ctx, left.UID, catalog.RunEnd{FinishedAt: time.Now(), ExitCode: &code, ProcsLeft: true}); err != nil || !f.ProcsLeft {
			t.Fatalf("processes left: %+v, %v", f, err)
		}
		c.FinishRun(ctx, left.UID, catalog.RunEnd{Name: "l2"})
		if rec, err := c.RunRecord(ctx, left.UID); err != nil || !rec.Run.ProcsLeft || rec.Run.Name != "l2" {
			t.Fatalf("processes left, amended: %+v, %v", rec.Run, err)
		}
		job, _ := c.StartRun(ctx, catalog.Run{Transform: tr.UID, Name: "job"})
		if _, err := c.FinishRun(ctx, job.UID, catalog.RunEnd{Transform: "nosuchtransform"}); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("unknown transform: %v", err)
		}
		zero := 0
		if f, err := c.FinishRun(ctx, job.UID, catalog.RunEnd{ExitCode: &zero, Name: "norm", Transform: rule.UID}); err != nil || f.Transform != rule.UID {
			t.Fatalf("new transform: %+v, %v", f, err)
		}
		if rec, err := c.RunRecord(ctx, job.UID); err != nil || rec.Transform.UID != rule.UID || rec.Transform.Kind != "rule" {
			t.Fatalf("RunRecord after a new transform: %+v, %v", rec.Transform, err)
		}
		if rs, err := c.ListRuns(ctx, catalog.RunQuery{Transform: "norm"}); err != nil || len(rs) != 1 || rs[0].UID != job.UID {
			t.Fatalf("ListRuns norm = %+v, %v", rs, err)
		}
		if rs, err := c.ListRuns(ctx, catalog.RunQuery{Transform: "snakemake"}); err != nil || len(rs) != 3 {
			t.Fatalf("ListRuns snakemake = %+v, %v", rs, err)
		}
	})
	t.Run("RunEndFirstEndWins", func(t *testing.T) {
		// A second daemon that saw the root process exit abandons the run
		// after `lamina run` finished it: the first end stays.
		c := open(t)
		tr, err := c.SaveTransform(ctx, catalog.Transform{Name: "bash", Kind: "program"})
		if err != nil {
			t.Fatal(err)
		}
		for _, code := range []int{0, 3} {
			r, _ := c.StartRun(ctx, catalog.Run{Transform: tr.UID})
			at := time.Now().Add(-time.Minute).UTC().Truncate(time.Millisecond)
			ended, err := c.FinishRun(ctx, r.UID, catalog.RunEnd{FinishedAt: at, ExitCode: &code})
			if err != nil {
				t.Fatal(err)
			}
			f, err := c.FinishRun(ctx, r.UID, catalog.RunEnd{FinishedAt: time.Now(), Abandoned: true, ProcsLeft: true, Note: "gone"})
			if err != nil || f.Status != ended.Status || f.ExitCode == nil || *f.ExitCode != code || !f.FinishedAt.Equal(at) || f.Note != "" || !f.ProcsLeft {
				t.Fatalf("exit %d, then abandoned: %+v, %v", code, f, err)
			}
			if rec, err := c.RunRecord(ctx, r.UID); err != nil || rec.Run.Status != ended.Status || rec.Run.ExitCode == nil || *rec.Run.ExitCode != code {
				t.Fatalf("exit %d, then abandoned, stored: %+v, %v", code, rec.Run, err)
			}
		}
		// An abandoned run stays as first abandoned, and an amend from
		// records (a Snakemake job's exit) still makes it ok.
		r, _ := c.StartRun(ctx, catalog.Run{Transform: tr.UID})
		at := time.Now().Add(-time.Minute).UTC().Truncate(time.Millisecond)
		c.FinishRun(ctx, r.UID, catalog.RunEnd{FinishedAt: at, Abandoned: true, Note: "first"})
		if f, err := c.FinishRun(ctx, r.UID, catalog.RunEnd{FinishedAt: time.Now(), Abandoned: true, Note: "second"}); err != nil ||
			f.Status != catalog.RunAbandoned || !f.FinishedAt.Equal(at) || f.Note != "first" {
			t.Fatalf("abandoned twice: %+v, %v", f, err)
		}
		zero := 0
		if f, err := c.FinishRun(ctx, r.UID, catalog.RunEnd{ExitCode: &zero, Name: "job"}); err != nil || f.Status != catalog.RunOK || f.Note != "" {
			t.Fatalf("abandoned, amended ok: %+v, %v", f, err)
		}
		// A daemon that saw the root exit abandoned the run a moment
		// before `lamina run` recorded its exit: the exit wins, and no
		// later abandon undoes it.
		r2, _ := c.StartRun(ctx, catalog.Run{Transform: tr.UID})
		c.FinishRun(ctx, r2.UID, catalog.RunEnd{FinishedAt: time.Now().Add(-time.Second), Abandoned: true})
		five, exited := 5, time.Now().UTC().Truncate(time.Millisecond)
		if f, err := c.FinishRun(ctx, r2.UID, catalog.RunEnd{FinishedAt: exited, ExitCode: &five, Signal: "SIGTERM"}); err != nil ||
			f.Status != catalog.RunFailed || f.ExitCode == nil || *f.ExitCode != 5 || !f.FinishedAt.Equal(exited) || f.Signal != "SIGTERM" {
			t.Fatalf("abandoned, then the client's exit: %+v, %v", f, err)
		}
		c.FinishRun(ctx, r2.UID, catalog.RunEnd{FinishedAt: time.Now(), Abandoned: true})
		if rec, err := c.RunRecord(ctx, r2.UID); err != nil || rec.Run.Status != catalog.RunFailed || rec.Run.ExitCode == nil || !rec.Run.FinishedAt.Equal(exited) {
			t.Fatalf("abandoned, exit, abandoned, stored: %+v, %v", rec.Run, err)
		}
		// A daemon that adopts a running run claims it; an ended run
		// keeps the daemon it had.
		live, _ := c.StartRun(ctx, catalog.Run{Transform: tr.UID, Daemon: "d1"})
		if f, err := c.FinishRun(ctx, live.UID, catalog.RunEnd{Daemon: "d2"}); err != nil || f.Daemon != "d2" || f.Status != catalog.RunRunning || f.FinishedAt != nil {
			t.Fatalf("claimed: %+v, %v", f, err)
		}
		if f, err := c.FinishRun(ctx, r.UID, catalog.RunEnd{Daemon: "d2"}); err != nil || f.Daemon != "" || f.Status != catalog.RunOK {
			t.Fatalf("an ended run claimed: %+v, %v", f, err)
		}
	})
	t.Run("RunEndMovesStart", func(t *testing.T) {
		// A Snakemake job's run takes the start and end Snakemake recorded:
		// its place among its siblings and in ListRuns moves with it.
		c := open(t)
		tr, err := c.SaveTransform(ctx, catalog.Transform{Name: "snakemake", Kind: "pipeline"})
		if err != nil {
			t.Fatal(err)
		}
		t0 := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
		p, _ := c.StartRun(ctx, catalog.Run{Transform: tr.UID, Name: "p", StartedAt: t0})
		a, _ := c.StartRun(ctx, catalog.Run{Transform: tr.UID, Name: "a", Parent: p.UID, StartedAt: t0.Add(time.Second)})
		b, _ := c.StartRun(ctx, catalog.Run{Transform: tr.UID, Name: "b", Parent: p.UID, StartedAt: t0.Add(2 * time.Second)})
		zero := 0
		start, end := t0.Add(3*time.Second), t0.Add(4*time.Second)
		f, err := c.FinishRun(ctx, a.UID, catalog.RunEnd{StartedAt: start, FinishedAt: end, ExitCode: &zero})
		if err != nil || !f.StartedAt.Equal(start) || f.FinishedAt == nil || !f.FinishedAt.Equal(end) || f.Status != catalog.RunOK {
			t.Fatalf("FinishRun = %+v, %v", f, err)
		}
		rec, err := c.RunRecord(ctx, p.UID)
		if err != nil || !reflect.DeepEqual(rec.Children, []string{b.UID, a.UID}) {
			t.Fatalf("children %v (%v), want %s then %s", rec.Children, err, b.UID, a.UID)
		}
		ls, err := c.ListRuns(ctx, catalog.RunQuery{Parent: p.UID})
		if err != nil || len(ls) != 2 || ls[0].UID != a.UID || !ls[0].StartedAt.Equal(start) {
			t.Fatalf("ListRuns = %+v, %v", ls, err)
		}
		if ar, err := c.RunRecord(ctx, a.UID); err != nil || !ar.Run.StartedAt.Equal(start) {
			t.Fatalf("RunRecord = %+v, %v", ar.Run, err)
		}
	})
	t.Run("CreditOutputs", func(t *testing.T) {
		// Snakemake's touch() output, written by the pipeline's process,
		// becomes an output of the job whose output it is.
		c := open(t)
		tr, err := c.SaveTransform(ctx, catalog.Transform{Name: "snakemake", Kind: "pipeline"})
		if err != nil {
			t.Fatal(err)
		}
		p, _ := c.StartRun(ctx, catalog.Run{Transform: tr.UID, Name: "p"})
		job, _ := c.StartRun(ctx, catalog.Run{Transform: tr.UID, Name: "flag", Parent: p.UID})
		nv := NV("out/a.done", "")
		nv.Run = p.UID
		done := save1(t, c, nv)
		other := NV("out/log.txt", "log")
		other.Run = p.UID
		kept := save1(t, c, other)
		vs, err := c.CreditOutputs(ctx, job.UID, []string{done.UID})
		if err != nil || len(vs) != 1 || vs[0].UID != done.UID || vs[0].Run != job.UID || vs[0].Key != "out/a.done" {
			t.Fatalf("CreditOutputs = %+v, %v", vs, err)
		}
		if v, err := c.ByUID(ctx, done.UID); err != nil || v.Run != job.UID {
			t.Fatalf("ByUID = %+v, %v", v, err)
		}
		if pr, err := c.RunRecord(ctx, p.UID); err != nil || !reflect.DeepEqual(pr.Outputs, []string{kept.UID}) {
			t.Fatalf("the pipeline's outputs %v (%v), want %s", pr.Outputs, err, kept.UID)
		}
		if jr, err := c.RunRecord(ctx, job.UID); err != nil || !reflect.DeepEqual(jr.Outputs, []string{done.UID}) {
			t.Fatalf("the job's outputs %v (%v), want %s", jr.Outputs, err, done.UID)
		}
		if _, err := c.CreditOutputs(ctx, "nosuchrun0000000", []string{done.UID}); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("unknown run: %v", err)
		}
		if _, err := c.CreditOutputs(ctx, job.UID, []string{"nosuchversion0000000"}); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("unknown version: %v", err)
		}
	})
	// A run's inputs and outputs deleted for good (Purge, PurgeTrashed)
	// stay in its record, and the run says what they were (Run.Purged):
	// the versions it made, those it wrote again (Reruns), those it read.
	// PostgreSQL's record of an output was its version's row, so its
	// RunRecord forgot a purged output; bbolt left it out to agree.
	t.Run("RunKeepsPurged", func(t *testing.T) {
		c := open(t)
		tr, err := c.SaveTransform(ctx, catalog.Transform{Name: "qc", Kind: "named"})
		if err != nil {
			t.Fatal(err)
		}
		// What a caller gives StartRun as Purged is not kept.
		made, err := c.StartRun(ctx, catalog.Run{Transform: tr.UID, Name: "made", Purged: []catalog.PurgedVersion{{UID: "made-up", Output: true}}})
		if err != nil || len(made.Purged) != 0 {
			t.Fatalf("StartRun kept Purged: %+v, %v", made.Purged, err)
		}
		again, _ := c.StartRun(ctx, catalog.Run{Transform: tr.UID, Name: "again"})
		in1 := save1(t, c, NV("raw/in.csv", "in 1"))
		in2 := save1(t, c, NV("raw/in.csv", "in 2"))
		keep := save1(t, c, NV("raw/keep.csv", "keep"))
		if err := c.AddInputs(ctx, made.UID, []string{in1.UID, in2.UID, keep.UID}); err != nil {
			t.Fatal(err)
		}
		out := func(key, content, run string) catalog.Version {
			nv := NV(key, content)
			nv.Run = run
			return save1(t, c, nv)
		}
		x1, x2 := out("exp/x.csv", "x 1", made.UID), out("exp/x.csv", "x 2", made.UID)
		y := out("exp/y.csv", "y", made.UID)
		if s, err := c.Save(ctx, []catalog.NewVersion{func() catalog.NewVersion { nv := NV("exp/y.csv", "y"); nv.Run = again.UID; return nv }()}); err != nil || !s[0].Unchanged {
			t.Fatalf("the rerun's save: %+v, %v", s, err)
		}
		live := out("exp/live.csv", "live", made.UID)
		// A permanent delete of a live key, a purge of a key in the trash.
		if _, err := c.Purge(ctx, "exp/x.csv"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Trash(ctx, "exp/y.csv"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.PurgeTrashed(ctx, "exp/y.csv", ""); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Purge(ctx, "raw/in.csv"); err != nil {
			t.Fatal(err)
		}
		// An end recorded afterwards keeps what the run says of them.
		zero := 0
		if f, err := c.FinishRun(ctx, made.UID, catalog.RunEnd{FinishedAt: time.Now(), ExitCode: &zero}); err != nil || len(f.Purged) != 5 {
			t.Fatalf("FinishRun after the purges: purged %+v, %v", f.Purged, err)
		}
		sorted := func(uids ...string) []string { sort.Strings(uids); return uids }
		rec, err := c.RunRecord(ctx, made.UID)
		if err != nil {
			t.Fatal(err)
		}
		if want := sorted(x1.UID, x2.UID, y.UID, live.UID); !reflect.DeepEqual(rec.Outputs, want) {
			t.Errorf("outputs %v, want %v (the purged ones too)", rec.Outputs, want)
		}
		// Inputs: by key and version, those purged last, by uid.
		if want := append([]string{keep.UID}, sorted(in1.UID, in2.UID)...); !reflect.DeepEqual(rec.Inputs, want) {
			t.Errorf("inputs %v, want %v", rec.Inputs, want)
		}
		what := map[string]catalog.PurgedVersion{}
		for _, pv := range rec.Run.Purged {
			if pv.PurgedAt.IsZero() {
				t.Errorf("%s: no purged_at", pv.UID)
			}
			pv.PurgedAt = time.Time{}
			what[pv.UID] = pv
		}
		wantWhat := map[string]catalog.PurgedVersion{
			x1.UID:  {UID: x1.UID, Key: "exp/x.csv", Version: 1, Output: true, Run: made.UID},
			x2.UID:  {UID: x2.UID, Key: "exp/x.csv", Version: 2, Output: true, Run: made.UID},
			y.UID:   {UID: y.UID, Key: "exp/y.csv", Version: 1, Output: true, Run: made.UID},
			in1.UID: {UID: in1.UID, Key: "raw/in.csv", Version: 1, Input: true},
			in2.UID: {UID: in2.UID, Key: "raw/in.csv", Version: 2, Input: true},
		}
		if !reflect.DeepEqual(what, wantWhat) || len(rec.Run.Purged) != len(wantWhat) {
			t.Errorf("Run.Purged %+v,\nwant %+v", rec.Run.Purged, wantWhat)
		}
		if ref := what[x2.UID].Ref(); ref != "exp/x.csv@v2" {
			t.Errorf("Ref %q", ref)
		}
		// The run that wrote y's bytes again keeps it as its output.
		arec, err := c.RunRecord(ctx, again.UID)
		if err != nil || !reflect.DeepEqual(arec.Outputs, []string{y.UID}) || len(arec.Run.Purged) != 1 ||
			arec.Run.Purged[0].Key != "exp/y.csv" || !arec.Run.Purged[0].Output || arec.Run.Purged[0].Run != made.UID {
			t.Errorf("the rerun's record: outputs %v, purged %+v, %v", arec.Outputs, arec.Run.Purged, err)
		}
		// ListRuns gives the runs as stored, Purged too.
		all, err := c.ListRuns(ctx, catalog.RunQuery{})
		if err != nil || len(all) != 2 {
			t.Fatalf("ListRuns = %v, %v", all, err)
		}
		for _, r := range all {
			if r.UID == made.UID && len(r.Purged) != 5 {
				t.Errorf("ListRuns: purged %+v", r.Purged)
			}
		}
		// PurgedKey: the runs that keep a version of the key as purged.
		for key, want := range map[string][]string{
			"exp/y.csv": {made.UID, again.UID}, "raw/in.csv": {made.UID}, "raw/keep.csv": nil, "exp/x": nil,
		} {
			rs, err := c.ListRuns(ctx, catalog.RunQuery{PurgedKey: key})
			var got []string
			for _, r := range rs {
				got = append(got, r.UID)
			}
			if err != nil || !reflect.DeepEqual(sorted(got...), sorted(want...)) {
				t.Errorf("ListRuns PurgedKey %q = %v, %v; want %v", key, got, err, want)
			}
		}
	})
	t.Run("Reruns", func(t *testing.T) {
		// A run that writes the bytes of its key's latest version again
		// makes no version; the version is its output too, and its Run
		// stays the run that made it.
		c := open(t)
		tr, err := c.SaveTransform(ctx, catalog.Transform{Name: "qc", Kind: "named"})
		if err != nil {
			t.Fatal(err)
		}
		first, _ := c.StartRun(ctx, catalog.Run{Transform: tr.UID, Name: "first"})
		again, _ := c.StartRun(ctx, catalog.Run{Transform: tr.UID, Name: "again"})
		nv := NV("res/out.csv", "same")
		nv.Run = first.UID
		v := save1(t, c, nv)
		for range 2 { // a repeat records nothing more
			nv.Run = again.UID
			s, err := c.Save(ctx, []catalog.NewVersion{nv})
			if err != nil || !s[0].Unchanged || s[0].Version.UID != v.UID || s[0].Version.Run != first.UID {
				t.Fatalf("Save of the same bytes by another run = %+v, %v", s, err)
			}
		}
		nv.Run = first.UID
		save1(t, c, nv) // its own run again: nothing
		untracked := NV("res/out.csv", "same")
		save1(t, c, untracked)
		if got, err := c.Reruns(ctx, v.UID); err != nil || !reflect.DeepEqual(got, []string{again.UID}) {
			t.Fatalf("Reruns = %v, %v; want [%s]", got, err, again.UID)
		}
		for _, r := range []string{first.UID, again.UID} {
			if rec, err := c.RunRecord(ctx, r); err != nil || !reflect.DeepEqual(rec.Outputs, []string{v.UID}) {
				t.Fatalf("outputs of %s: %v, %v", r, rec.Outputs, err)
			}
		}
		if got, err := c.ByUID(ctx, v.UID); err != nil || got.Run != first.UID || got.Version != 1 {
			t.Fatalf("the version after a rerun: %+v, %v", got, err)
		}
		if got, err := c.Reruns(ctx, "nosuchversion0000000"); err != nil || len(got) != 0 {
			t.Fatalf("Reruns of nothing = %v, %v", got, err)
		}
		// AddInputs records what it is given, a version a run wrote again
		// too: a read before the rewrite was an input, and only the caller
		// knows the order (lineage.Tracker.Reproduced).
		pipe, _ := c.StartRun(ctx, catalog.Run{Transform: tr.UID, Name: "pipe"})
		job, _ := c.StartRun(ctx, catalog.Run{Transform: tr.UID, Name: "job", Parent: pipe.UID})
		nv.Run = job.UID
		save1(t, c, nv)
		for _, r := range []string{pipe.UID, job.UID} {
			if err := c.AddInputs(ctx, r, []string{v.UID}); err != nil {
				t.Fatal(err)
			}
			if rec, err := c.RunRecord(ctx, r); err != nil || !reflect.DeepEqual(rec.Inputs, []string{v.UID}) {
				t.Fatalf("inputs of %s: %v, %v; want %v", rec.Run.Name, rec.Inputs, err, v.UID)
			}
		}
		// Credited to the rerun (Snakemake's touch()): no more a rerun.
		if _, err := c.CreditOutputs(ctx, again.UID, []string{v.UID}); err != nil {
			t.Fatal(err)
		}
		if got, err := c.Reruns(ctx, v.UID); err != nil || !reflect.DeepEqual(got, []string{job.UID}) {
			t.Fatalf("Reruns after CreditOutputs = %v, %v; want [%s]", got, err, job.UID)
		}
		// Other bytes: a new version, the run's own.
		nv = NV("res/out.csv", "other")
		nv.Run = again.UID
		if v2 := save1(t, c, nv); v2.Version != 2 || v2.Run != again.UID {
			t.Fatalf("new bytes: %+v", v2)
		}
	})
	t.Run("RerunsOldestFirst", func(t *testing.T) {
		// Reruns come oldest run first, not by uid (random): the sidecar
		// shows the newest few of them (lineage.SidecarOf). The starts
		// run against the uids' order, so a uid order fails.
		c := open(t)
		tr, err := c.SaveTransform(ctx, catalog.Transform{Name: "qc", Kind: "named"})
		if err != nil {
			t.Fatal(err)
		}
		first, _ := c.StartRun(ctx, catalog.Run{Transform: tr.UID, Name: "first"})
		nv := NV("res/out.csv", "same")
		nv.Run = first.UID
		v := save1(t, c, nv)
		var uids []string
		for range 4 {
			r, err := c.StartRun(ctx, catalog.Run{Transform: tr.UID, Name: "again"})
			if err != nil {
				t.Fatal(err)
			}
			nv.Run = r.UID
			save1(t, c, nv)
			uids = append(uids, r.UID)
		}
		sort.Sort(sort.Reverse(sort.StringSlice(uids))) // the greatest uid starts first
		t0 := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
		zero := 0
		for i, u := range uids {
			if _, err := c.FinishRun(ctx, u, catalog.RunEnd{StartedAt: t0.Add(time.Duration(i) * time.Second), FinishedAt: t0.Add(time.Minute), ExitCode: &zero}); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := c.Reruns(ctx, v.UID); err != nil || !reflect.DeepEqual(got, uids) {
			t.Fatalf("Reruns = %v, %v; want oldest first %v", got, err, uids)
		}
	})
	t.Run("InputsByKeyThenVersion", func(t *testing.T) {
		// A run's inputs come by key, then version number (uids are
		// random: their order means nothing to a person), bytewise as Go
		// compares keys (not by a PostgreSQL collation: "Z" before "a").
		c := open(t)
		tr, err := c.SaveTransform(ctx, catalog.Transform{Name: "qc", Kind: "named"})
		if err != nil {
			t.Fatal(err)
		}
		r, _ := c.StartRun(ctx, catalog.Run{Transform: tr.UID, Name: "reader"})
		var want, uids []string
		for _, k := range []string{"Z.csv", "a/x.csv", "a/y.csv", "b.csv", "b.csv.gz", "b_c.csv"} {
			for n := range 3 {
				v := save1(t, c, NV(k, fmt.Sprint(k, n)))
				want = append(want, v.UID)
				uids = append(uids, v.UID)
			}
		}
		// Given in uid order, with repeats: the stores sort themselves.
		sort.Strings(uids)
		if err := c.AddInputs(ctx, r.UID, append(uids, uids[0])); err != nil {
			t.Fatal(err)
		}
		if rec, err := c.RunRecord(ctx, r.UID); err != nil || !reflect.DeepEqual(rec.Inputs, want) {
			t.Fatalf("inputs %v, %v; want by key then version %v", rec.Inputs, err, want)
		}
	})
	t.Run("RunLifecycle", func(t *testing.T) {
		c := open(t)
		tr, err := c.SaveTransform(ctx, catalog.Transform{Name: "qc", Kind: "named"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.StartRun(ctx, catalog.Run{Transform: "nosuchtransform"}); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("unknown transform: %v", err)
		}
		p, err := c.StartRun(ctx, catalog.Run{Transform: tr.UID, Name: "qc", Params: map[string]any{"min_genes": 200.0, "strict": true},
			Argv: []string{"python3", "qc.py"}, StartedAt: time.Now().Add(-time.Second)})
		if err != nil || p.UID == "" || p.Status != catalog.RunRunning {
			t.Fatalf("StartRun = %+v, %v", p, err)
		}
		ch, err := c.StartRun(ctx, catalog.Run{Transform: tr.UID, Parent: p.UID, Name: "child"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.StartRun(ctx, catalog.Run{Transform: tr.UID, Parent: "nosuchparent0000"}); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("unknown parent: %v", err)
		}
		in := save1(t, c, NV("raw/a.csv", "a"))
		out := NV("res/b.csv", "b")
		out.Run = p.UID
		o := save1(t, c, out)
		if o.Run != p.UID {
			t.Fatalf("version run %q", o.Run)
		}
		if err := c.AddInputs(ctx, p.UID, []string{in.UID, in.UID}); err != nil {
			t.Fatal(err)
		}
		if err := c.AddInputs(ctx, "nosuchrun0000000", []string{in.UID}); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("unknown run: %v", err)
		}
		one := 1
		f, err := c.FinishRun(ctx, p.UID, catalog.RunEnd{FinishedAt: time.Now(), ExitCode: &one})
		if err != nil || f.Status != catalog.RunFailed || f.FinishedAt == nil || *f.ExitCode != 1 {
			t.Fatalf("FinishRun = %+v, %v", f, err)
		}
		zero := 0
		if f, err := c.FinishRun(ctx, ch.UID, catalog.RunEnd{ExitCode: &zero, Name: "rule_a"}); err != nil || f.Status != catalog.RunOK || f.Name != "rule_a" {
			t.Fatalf("FinishRun child = %+v, %v", f, err)
		}
		if _, err := c.FinishRun(ctx, "nosuchrun0000000", catalog.RunEnd{}); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("finish unknown: %v", err)
		}
		rec, err := c.RunRecord(ctx, p.UID[:10])
		if err != nil {
			t.Fatal(err)
		}
		if rec.Run.UID != p.UID || rec.Transform.UID != tr.UID || rec.Run.Params["min_genes"] != 200.0 || rec.Run.Params["strict"] != true {
			t.Fatalf("RunRecord = %+v", rec)
		}
		if !reflect.DeepEqual(rec.Inputs, []string{in.UID}) || !reflect.DeepEqual(rec.Outputs, []string{o.UID}) || !reflect.DeepEqual(rec.Children, []string{ch.UID}) {
			t.Fatalf("inputs %v outputs %v children %v", rec.Inputs, rec.Outputs, rec.Children)
		}
		users, err := c.UsedBy(ctx, in.UID)
		if err != nil || !reflect.DeepEqual(users, []string{p.UID}) {
			t.Fatalf("UsedBy = %v, %v", users, err)
		}
		// A temporary file renamed onto a key, purged by the mount
		// (PurgeUnreferenced), is no output any more: its content, and the
		// run, went to the name (RunKeepsPurged: other purges).
		tmp := NV("res/b.csv.tmp1", "t")
		tmp.Run = p.UID
		save1(t, c, tmp)
		if _, err := c.Trash(ctx, "res/b.csv.tmp1"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.PurgeTrashed(ctx, "res/b.csv.tmp1", catalog.PurgeUnreferenced); err != nil {
			t.Fatal(err)
		}
		if rec, err := c.RunRecord(ctx, p.UID); err != nil || !reflect.DeepEqual(rec.Outputs, []string{o.UID}) || len(rec.Run.Purged) != 0 {
			t.Fatalf("outputs after a temporary's purge %v, purged %+v, %v", rec.Outputs, rec.Run.Purged, err)
		}
		if _, err := c.RunRecord(ctx, "nosuchrun0000000"); !errors.Is(err, catalog.ErrNotFound) {
			t.Fatalf("unknown run record: %v", err)
		}
		all, err := c.ListRuns(ctx, catalog.RunQuery{})
		if err != nil || len(all) != 2 || all[0].UID != ch.UID {
			t.Fatalf("ListRuns = %v, %v (want newest first)", all, err)
		}
		kids, err := c.ListRuns(ctx, catalog.RunQuery{Parent: p.UID})
		if err != nil || len(kids) != 1 || kids[0].UID != ch.UID {
			t.Fatalf("ListRuns parent = %v, %v", kids, err)
		}
		other, _ := c.SaveTransform(ctx, catalog.Transform{Name: "other", Kind: "named"})
		c.StartRun(ctx, catalog.Run{Transform: other.UID})
		byT, err := c.ListRuns(ctx, catalog.RunQuery{Transform: "qc", Limit: 1})
		if err != nil || len(byT) != 1 || byT[0].Transform != tr.UID {
			t.Fatalf("ListRuns transform = %v, %v", byT, err)
		}
		// By root process and status, over every run, not the newest only
		// (track finish finds the shell's run so).
		live, _ := c.StartRun(ctx, catalog.Run{Transform: other.UID, RootPID: 4242})
		over, _ := c.StartRun(ctx, catalog.Run{Transform: other.UID, RootPID: 4242})
		zero = 0
		c.FinishRun(ctx, over.UID, catalog.RunEnd{FinishedAt: time.Now(), ExitCode: &zero})
		c.StartRun(ctx, catalog.Run{Transform: other.UID, RootPID: 4243})
		byPid, err := c.ListRuns(ctx, catalog.RunQuery{RootPID: 4242, Status: catalog.RunRunning})
		if err != nil || len(byPid) != 1 || byPid[0].UID != live.UID {
			t.Fatalf("ListRuns root pid, running = %v, %v", byPid, err)
		}
		if all, err := c.ListRuns(ctx, catalog.RunQuery{RootPID: 4242}); err != nil || len(all) != 2 {
			t.Fatalf("ListRuns root pid = %v, %v", all, err)
		}
	})
}

func save1(t *testing.T, c catalog.Catalog, nv catalog.NewVersion) catalog.Version {
	t.Helper()
	s, err := c.Save(context.Background(), []catalog.NewVersion{nv})
	if err != nil {
		t.Fatalf("Save: %v", err)
	}
	return s[0].Version
}
