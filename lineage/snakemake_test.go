package lineage_test

import (
	"encoding/base64"
	"os"
	"path/filepath"
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
