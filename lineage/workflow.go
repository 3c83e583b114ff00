package lineage

import (
	"path"
	"strings"

	"github.com/lamina-bio/lamina/catalog"
)

// workflowCode reports whether key names a Snakemake workflow's code: a
// Snakefile (Snakefile, snakefile, *.smk, *.snakefile: `include:`d rule
// files, `module:`s) or a script in a language Snakemake's `script:` and
// `notebook:` take (script.py, get_language: .py, .ipynb, .R, .Rmd, .jl,
// .rs, .sh), Python modules the Snakefile imports among them.
func workflowCode(key string) bool {
	base := path.Base(key)
	if base == "Snakefile" || base == "snakefile" {
		return true
	}
	switch path.Ext(base) {
	case ".smk", ".snakefile", ".py", ".ipynb", ".R", ".Rmd", ".jl", ".rs", ".sh":
		return true
	}
	return false
}

// configLike reports whether key names a file Snakemake may load as a
// `configfile:` (YAML or JSON).
func configLike(key string) bool {
	switch path.Ext(key) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// workflowReadLocked reports whether run's read of v is Snakemake reading
// its workflow rather than data, and so no input of run (use); called
// with mu held. Only a Snakemake process reads so: the pipeline's own
// (its split run's process, not its jobs'), or a job's sub-Snakemake (a
// `run:` or shadow job: its command line names --allowed-rules), which
// parses the workflow again before it runs the job. Either one's reads of
// workflowCode are code (the transform has one source, the Snakefile:
// they are listed nowhere). A sub-Snakemake's read of a configLike version
// its pipeline read already is the `configfile:` read again: it stays
// the pipeline's input (a parameter file it read), not each job's.
func (t *Tracker) workflowReadLocked(run string, v catalog.Version) bool {
	if rt := t.byRun[run]; rt != nil {
		return rt.run.Split && workflowCode(v.Key)
	}
	split := t.parents[run]
	if rt := t.byRun[split]; rt == nil || !rt.run.Split || !t.subSnakemakeLocked(split, run) {
		return false
	}
	return workflowCode(v.Key) || configLike(v.Key) && t.recorded[split][v.UID]
}

// subSnakemakeLocked reports whether the job run of split is a job
// Snakemake runs as a sub-Snakemake (allowedRule); called with mu held.
func (t *Tracker) subSnakemakeLocked(split, run string) bool {
	for _, p := range t.jobs[split] {
		if p.run == run && allowedRule(strings.Join(p.argv, " ")) != "" {
			return true
		}
	}
	return false
}
