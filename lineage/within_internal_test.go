package lineage

import (
	"testing"
	"time"
)

// Within: a job is within its pipeline's run, and the run within itself,
// while the pipeline's root run is tracked and not ended; another run,
// or the pipeline within its job, is not.
func TestWithin(t *testing.T) {
	tr := &Tracker{byRun: map[string]*root{"p": {}, "q": {}}, parents: map[string]string{"j": "p", "k": "j"},
		gone: map[string]time.Time{}}
	for _, c := range []struct {
		run, ancestor string
		want          bool
	}{
		{"p", "p", true}, {"j", "p", true}, {"k", "p", true}, {"k", "j", true}, {"j", "j", true},
		{"q", "p", false}, {"p", "j", false}, {"", "p", false}, {"j", "", false}, {"x", "x", false},
	} {
		if got := tr.Within(c.run, c.ancestor); got != c.want {
			t.Errorf("Within(%q, %q) = %v, want %v", c.run, c.ancestor, got, c.want)
		}
	}
	tr.gone["p"] = time.Now() // ended (lingering: still in byRun)
	if tr.Within("j", "p") || tr.Within("k", "j") {
		t.Error("Within after the pipeline's run ended")
	}
}
