package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLineageSnakemakeWorkflowCode: the workflow's code that Snakemake
// reads (an `include:`d rule file, a `script:`) is no data input of the
// pipeline's run nor of its jobs' (a `run:` job's sub-Snakemake parses
// the workflow again); its `configfile:` is an input of the pipeline's run
// only. They were all inputs of both.
func TestLineageSnakemakeWorkflowCode(t *testing.T) {
	e, wf := snakemakeMount(t)
	os.MkdirAll(filepath.Join(wf, "rules"), 0o755)
	os.MkdirAll(filepath.Join(wf, "scripts"), 0o755)
	os.WriteFile(filepath.Join(wf, "in.txt"), []byte("in\n"), 0o644)
	os.WriteFile(filepath.Join(wf, "config.yaml"), []byte("factor: 3\n"), 0o644)
	os.WriteFile(filepath.Join(wf, "scripts/s.py"), []byte(`with open(snakemake.input[0]) as f, open(snakemake.output[0], "w") as g:
    g.write(f.read().upper())
`), 0o644)
	os.WriteFile(filepath.Join(wf, "Snakefile"), []byte(`configfile: "config.yaml"
include: "rules/extra.smk"

rule all:
    input: "out.txt", "up.txt"
`), 0o644)
	os.WriteFile(filepath.Join(wf, "rules/extra.smk"), []byte(`rule r:
    input: "in.txt"
    output: "out.txt"
    params: f=config["factor"]
    run:
        with open(input[0]) as f, open(output[0], "w") as g:
            g.write(f.read() * params.f)

rule s:
    input: "in.txt"
    output: "up.txt"
    script: "../scripts/s.py"
`), 0o644)
	if _, errs, code := e.runIn(wf, "run", "--", "snakemake", "-j1"); code != 0 {
		t.Fatalf("lamina run -- snakemake: exit %d\n%s", code, errs)
	}
	sm := e.runRecord(e.runsByName()["snakemake"].UID)
	if got, want := strings.Join(e.refs(sm.Inputs), " "), "wf/config.yaml@v1 wf/in.txt@v1"; got != want {
		t.Errorf("the pipeline's inputs %s, want %s", got, want)
	}
	if got, want := strings.Join(e.refs(e.ruleRun(t, "r").Inputs), " "), "wf/in.txt@v1"; got != want {
		t.Errorf("rule r's inputs %s, want %s", got, want)
	}
	if got, want := strings.Join(e.refs(e.ruleRun(t, "s").Inputs), " "), "wf/in.txt@v1"; got != want {
		t.Errorf("rule s's inputs %s, want %s", got, want)
	}
}
