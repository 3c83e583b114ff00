package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/lamina-bio/lamina/storage/s3/s3test"
)

// TestS3OntologyReadsOffline: with the S3 server stopped after an index was
// used (so this machine cached it and the registry), the commands that only
// read ontologies answer from those copies, as ls --term does, and curate
// without --key (which saves nothing) validates. Before, they asked the
// bucket first and failed with `s3: open bucket …: connection refused`.
// Commands that write the registry (import, default) or save (curate --key)
// still check the bucket and fail.
func TestS3OntologyReadsOffline(t *testing.T) {
	e := newS3Env(t, "LAMINA_S3_RETRY=2,10ms,30s")
	e.ok("ontology", "import", "celltype", "--source", filepath.Join(ontologies, "cl-basic.obo"))
	e.ok("feature", "create", "cell_type", "--dtype", "cat[celltype]")
	e.ok("schema", "create", "s1", "--feature", "cell_type")
	table := e.file("t.csv", []byte("cell_type\nT cell\nT-cell\n"))
	e.ok("ontology", "validate", "celltype", "T cell") // caches the index and the registry
	e.proxy.Down()
	defer e.proxy.Up()

	for _, tc := range []struct {
		args []string
		want string // on stdout
	}{
		{[]string{"ontology", "sources"}, "celltype"},
		{[]string{"ontology", "validate", "celltype", "T cell"}, "CL:0000084"},
		{[]string{"ontology", "search", "celltype", "T helper", "--limit", "3"}, "T-helper"},
		{[]string{"ontology", "standardize", "celltype", "T-cell"}, "-> T cell"},
		{[]string{"ontology", "show", "celltype", "T cell", "--parents"}, "lymphocyte"},
		{[]string{"ontology", "inspect", "celltype", "--column", "cell_type", table}, "T-cell"},
		{[]string{"curate", table, "--schema", "s1", "--standardize"}, "T-cell"},
	} {
		name := tc.args[0]
		if name == "ontology" {
			name += " " + tc.args[1]
		}
		t.Run(name, func(t *testing.T) {
			out, errs, err := e.run(tc.args...)
			if err != nil || !strings.Contains(out, tc.want) {
				t.Fatalf("lamina %s with the S3 server stopped: %v\nstdout: %s\nstderr: %s", strings.Join(tc.args, " "), err, out, errs)
			}
			if strings.Contains(errs, "open bucket") {
				t.Errorf("lamina %s asked the bucket: %s", strings.Join(tc.args, " "), errs)
			}
		})
	}
	// Writers still check the bucket first.
	e.fails("open bucket", "ontology", "default", "celltype", "2022-12-15")
	e.fails("open bucket", "curate", table, "--schema", "s1", "--standardize", "--key", "t.csv")
}

// TestS3OntologyRegistryAwayFailsFast: with the storage unreachable, the
// commands that read the ontology registry spent the whole retry budget
// on it (seconds each) before using this machine's copy, and warned in a
// raw log line ("2026/11/28 01:56:03 WARN could not read …"). They try
// once now, and warn as every other warning does.
func TestS3OntologyRegistryAwayFailsFast(t *testing.T) {
	e := newS3Env(t) // the default retry budget
	e.ok("ontology", "import", "aa", "--source", e.file("aa.obo", tinyOBO("aa")))
	e.ok("ls", "--term", "aa=aa term") // caches the index and the registry
	e.proxy.Always(s3test.Reset)
	defer e.proxy.Always(s3test.None)
	// One attempt per read of the registry, not the budget's 8: sources
	// reads it once, ls --term twice.
	for _, tc := range []struct {
		args  []string
		reads int
	}{{[]string{"ontology", "sources"}, 1}, {[]string{"ls", "--term", "aa=aa term"}, 2}} {
		args := tc.args
		n0 := e.proxy.Requests()
		out, errs, err := e.run(args...)
		if err != nil {
			t.Fatalf("lamina %s with the storage away: %v\n%s%s", strings.Join(args, " "), err, out, errs)
		}
		if n := e.proxy.Requests() - n0; n != tc.reads {
			t.Errorf("lamina %s asked the unreachable storage %d times, want %d:\n%s", strings.Join(args, " "), n, tc.reads, errs)
		}
		if !strings.Contains(errs, "lamina: warning: could not read the ontology registry from storage; using the copy this machine read last") || strings.Contains(errs, " WARN ") {
			t.Errorf("lamina %s warned:\n%s", strings.Join(args, " "), errs)
		}
	}
}
