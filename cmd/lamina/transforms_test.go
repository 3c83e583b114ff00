package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lamina-bio/lamina/catalog/postgres/pgtest"
)

// `lamina runs transforms` lists what runs recorded as their transform:
// a script once per source digest, a name given with --transform, with
// the number of runs and the newest; the same through a mount's daemon
// and from the catalog file.
func TestRunsTransforms(t *testing.T) {
	t.Run("bbolt", func(t *testing.T) { testRunsTransforms(t, newMntEnv(t)) })
	t.Run("postgres", func(t *testing.T) {
		e := workstationEnv(t, "ana")
		e.ok("init", "--storage", filepath.Join(e.dir, "store"), "--name", "m", "--db", pgtest.URL(t))
		testRunsTransforms(t, e)
	})
}

func testRunsTransforms(t *testing.T, e *mntEnv) {
	mnt := filepath.Join(e.dir, "lab")
	e.mount(mnt)
	script := filepath.Join(e.dir, "qc.sh")
	write := func(body string) {
		if err := os.WriteFile(script, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write(`echo one > "$1/a.txt"`)
	e.ok("run", "--", script, mnt)
	e.ok("run", "--", script, mnt)
	write(`echo two > "$1/a.txt"`)
	e.ok("run", "--", script, mnt)
	e.ok("run", "--transform", "cluster", "--", "true")

	type row struct {
		UID, Name, Kind, Digest, Path string
		Runs                          int
		LatestRun                     struct{ UID, Status string } `json:"latest_run"`
	}
	check := func(when string) {
		var rows []row
		out := e.ok("runs", "transforms", "--format", "json")
		if err := json.Unmarshal([]byte(out), &rows); err != nil {
			t.Fatalf("%s: %v\n%s", when, err, out)
		}
		if len(rows) != 3 {
			t.Fatalf("%s: %d transforms, want 3 (cluster, qc.sh twice): %s", when, len(rows), out)
		}
		if r := rows[0]; r.Name != "cluster" || r.Kind != "named" || r.Runs != 1 || r.LatestRun.Status != "ok" {
			t.Errorf("%s: cluster: %+v", when, r)
		}
		first, second := rows[1], rows[2] // oldest first within a name
		if first.Name != "qc.sh" || second.Name != "qc.sh" || first.Kind != "script" || first.Path != script ||
			first.Runs != 2 || second.Runs != 1 || first.Digest == second.Digest || first.UID == second.UID {
			t.Errorf("%s: qc.sh: %+v, %+v", when, first, second)
		}
		// The newest run of each is the one runs ls shows for it.
		var runs []struct{ UID, Transform string }
		json.Unmarshal([]byte(e.ok("runs", "ls", "--format", "json")), &runs)
		for _, r := range rows {
			for _, run := range runs { // newest first
				if run.Transform == r.UID {
					if run.UID != r.LatestRun.UID {
						t.Errorf("%s: %s's latest run is %s, runs ls says %s", when, r.Name, r.LatestRun.UID, run.UID)
					}
					break
				}
			}
		}
		table := e.ok("runs", "transforms")
		if !strings.HasPrefix(table, "NAME") || !strings.Contains(table, second.Digest[:12]) || !strings.Contains(table, second.LatestRun.UID) {
			t.Errorf("%s: table:\n%s", when, table)
		}
		if out := e.ok("runs", "transforms", "--name", "qc.sh", "--format", "csv"); strings.Count(out, "\n") != 3 || strings.Contains(out, "cluster") {
			t.Errorf("%s: --name qc.sh as csv:\n%s", when, out)
		}
	}
	check("mounted")
	e.ok("umount", mnt)
	check("unmounted")
}
