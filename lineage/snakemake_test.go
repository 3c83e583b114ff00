package lineage_test

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/lineage"
)

// TestSnakemakeJobsTimes: a job's records (one per output, sharing its
// job_hash) make one job done, from the earliest start to the latest end;
// jobs of a rule with the same command stay apart; a record without times
// is done all the same.
func TestSnakemakeJobsTimes(t *testing.T) {
	wd := t.TempDir()
	meta := filepath.Join(wd, ".snakemake", "metadata")
	os.MkdirAll(meta, 0o755)
	put := func(out, rec string) {
		if err := os.WriteFile(filepath.Join(meta, base64.StdEncoding.EncodeToString([]byte(out))), []byte(rec), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	put("o/a1", `{"rule": "a", "shellcmd": "", "starttime": 100.5, "endtime": 101.25, "job_hash": 7}`)
	put("o/a2", `{"rule": "a", "shellcmd": "", "starttime": 100.5, "endtime": 102.0, "job_hash": 7}`)
	put("o/b", `{"rule": "a", "shellcmd": "", "starttime": 200, "endtime": 201, "job_hash": 8}`)
	put("o/c", `{"rule": "c", "shellcmd": "touch o/c"}`)
	jobs := lineage.SnakemakeJobs(wd, time.Now().Add(-time.Minute))
	if len(jobs) != 3 {
		t.Fatalf("jobs %+v", jobs)
	}
	byOut := map[string]lineage.SnakemakeJob{}
	for _, j := range jobs {
		for _, o := range j.Outputs {
			byOut[o] = j
		}
	}
	a, b, c := byOut["o/a1"], byOut["o/b"], byOut["o/c"]
	if len(a.Outputs) != 2 || !a.Done || !a.Started.Equal(time.Unix(100, 5e8)) || !a.Finished.Equal(time.Unix(102, 0)) {
		t.Fatalf("job a %+v", a)
	}
	if !b.Done || len(b.Outputs) != 1 || !b.Started.Equal(time.Unix(200, 0)) {
		t.Fatalf("job b %+v", b)
	}
	if !c.Done || !c.Started.IsZero() || !c.Finished.IsZero() {
		t.Fatalf("job c %+v", c)
	}
}

// TestSnakemakeJobsLongOutput: the record of an output whose path encodes
// to more than NAME_MAX-1 characters is in "@" folders (Snakemake 7's
// _record_path); its job is read all the same.
func TestSnakemakeJobsLongOutput(t *testing.T) {
	wd := t.TempDir()
	out := "o/" + strings.Repeat("a-long-folder-name/", 20) + "x.txt"
	b := base64.URLEncoding.EncodeToString([]byte(out))
	dir := filepath.Join(wd, ".snakemake", "metadata", "@"+b[:254], "@"+b[254:508])
	os.MkdirAll(dir, 0o755)
	if err := os.WriteFile(filepath.Join(dir, b[508:]), []byte(`{"rule": "x", "shellcmd": "sh step.sh", "job_hash": 1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	jobs := lineage.SnakemakeJobs(wd, time.Now().Add(-time.Minute))
	if len(jobs) != 1 || jobs[0].Rule != "x" || !jobs[0].Done || len(jobs[0].Outputs) != 1 || jobs[0].Outputs[0] != out {
		t.Fatalf("jobs %+v, want rule x's, done, of %s", jobs, out)
	}
}
