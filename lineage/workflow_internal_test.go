package lineage

import "testing"

// TestWorkflowCode: Snakefiles and the scripts `script:` takes are code;
// data and configs are not; configs are YAML or JSON.
func TestWorkflowCode(t *testing.T) {
	for key, want := range map[string]bool{
		"wf/Snakefile": true, "snakefile": true, "wf/rules/extra.smk": true, "a.snakefile": true,
		"scripts/s.py": true, "n.ipynb": true, "s.R": true, "s.Rmd": true, "s.jl": true, "s.rs": true, "s.sh": true,
		"in.txt": false, "config.yaml": false, "Snakefile.bak": false, "data.r": false, "wf/smk": false,
	} {
		if got := workflowCode(key); got != want {
			t.Errorf("workflowCode(%q) = %v, want %v", key, got, want)
		}
	}
	for key, want := range map[string]bool{"config.yaml": true, "c.yml": true, "c.json": true, "c.toml": false, "in.txt": false} {
		if got := configLike(key); got != want {
			t.Errorf("configLike(%q) = %v, want %v", key, got, want)
		}
	}
}
