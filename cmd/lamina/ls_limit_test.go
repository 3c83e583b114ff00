package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/instance"
)

// ls's default --limit 1000 is for a terminal: JSON and CSV, which scripts
// read from stdout alone, were cut to 1,000 rows with exit 0 (the "more
// with --after" note went to stderr). They list everything unless
// --limit is given.
func TestLsMachineFormatsNotCut(t *testing.T) {
	e := newEnv(t)
	e.init()
	cat := currentBolt(t)
	now := time.Now()
	var nvs []catalog.NewVersion
	for i := range 1005 {
		nvs = append(nvs, catalog.NewVersion{Key: fmt.Sprintf("f/k%04d.csv", i), Kind: "file", Size: 1, CreatedBy: "t", CreatedAt: now, Mtime: now})
	}
	if _, err := cat.Save(context.Background(), nvs); err != nil {
		t.Fatal(err)
	}
	cat.Close()

	var rows []map[string]any
	if err := json.Unmarshal([]byte(e.ok("ls", "--format", "json", "f/")), &rows); err != nil || len(rows) != 1005 {
		t.Fatalf("ls --format json: %d rows (%v), want 1005", len(rows), err)
	}
	if n := strings.Count(strings.TrimSpace(e.ok("ls", "--format", "csv", "f/")), "\n"); n != 1005 { // and the header
		t.Fatalf("ls --format csv: %d rows, want 1005", n)
	}
	if err := json.Unmarshal([]byte(e.ok("ls", "--format", "json", "--limit", "10", "f/")), &rows); err != nil || len(rows) != 10 {
		t.Fatalf("ls --format json --limit 10: %d rows (%v)", len(rows), err)
	}
	out, errs, err := e.run("ls", "f/")
	if err != nil || strings.Count(strings.TrimSpace(out), "\n") != 1000 || !strings.Contains(errs, "more with --after") {
		t.Fatalf("ls as a table: %d lines, %v\n%s", strings.Count(out, "\n"), err, errs)
	}
}

// runs ls stopped at 100 runs with nothing said, in every format: each
// Snakemake job is a run, so a pipeline or two reach it (audit a1). JSON and
// CSV list every run unless --limit is given; a table that leaves runs out
// says so on stderr.
func TestRunsLsMachineFormatsNotCut(t *testing.T) {
	e := newEnv(t)
	e.init()
	cat := currentBolt(t)
	ctx := context.Background()
	tr, err := cat.SaveTransform(ctx, catalog.Transform{Name: "step", Kind: "script"})
	if err != nil {
		t.Fatal(err)
	}
	for range 105 {
		r, err := cat.StartRun(ctx, catalog.Run{Transform: tr.UID, Name: "step", StartedAt: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		zero := 0
		if _, err := cat.FinishRun(ctx, r.UID, catalog.RunEnd{ExitCode: &zero}); err != nil {
			t.Fatal(err)
		}
	}
	cat.Close()

	var rows []map[string]any
	if err := json.Unmarshal([]byte(e.ok("runs", "ls", "--format", "json")), &rows); err != nil || len(rows) != 105 {
		t.Fatalf("runs ls --format json: %d rows (%v), want 105", len(rows), err)
	}
	if n := strings.Count(strings.TrimSpace(e.ok("runs", "ls", "--format", "csv")), "\n"); n != 105 {
		t.Fatalf("runs ls --format csv: %d rows, want 105", n)
	}
	out, errs, err := e.run("runs", "ls")
	if err != nil || strings.Count(strings.TrimSpace(out), "\n") != 100 || !strings.Contains(errs, "--limit 0") {
		t.Fatalf("runs ls as a table: %d lines, %v\n%s", strings.Count(out, "\n"), err, errs)
	}
	if out, errs, err := e.run("runs", "ls", "-n", "105"); err != nil || strings.Count(strings.TrimSpace(out), "\n") != 105 || errs != "" {
		t.Fatalf("runs ls -n 105: %d lines, %v\n%s", strings.Count(out, "\n"), err, errs)
	}
}

// currentBolt opens the current instance's bbolt catalog itself, to fill
// it faster than the CLI would.
func currentBolt(t *testing.T) *catalog.Bolt {
	t.Helper()
	dirs, err := instance.UserDirs()
	if err != nil {
		t.Fatal(err)
	}
	s, err := dirs.Current("")
	if err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.OpenBolt(s.Catalog, catalog.BoltOptions{Hold: true})
	if err != nil {
		t.Fatal(err)
	}
	return cat
}
