package lineage

import (
	"context"
	"slices"
)

// maxCycleRuns bounds the runs Cycles visits downstream of a run: a run
// still running has little downstream of its own; past the bound the
// inputs are recorded as they come.
const maxCycleRuns = 4096

// Cycles returns those of uids that, recorded as inputs of run, would
// close a cycle in the graph: versions downstream of run (an output of a
// run that used an output of run, and so on). Inputs are recorded
// by run, not by the moment they were read, so a run that read back what
// a run under it (or beside it) made of the run's own output would be
// upstream of itself: `lamina run -- sh -c 'echo x > a; lamina run -- cp
// a b; cat b > c'` showed a@v1 <- outer <- b@v1 <- inner <- a@v1. The
// edge that would close the cycle is left out; the walk goes on through
// the others. pending are inputs queued, not yet in src (run → uids); they
// count as recorded. A catalog that cannot answer leaves uids as they are.
func Cycles(ctx context.Context, src Source, run string, uids []string, pending map[string][]string) map[string]bool {
	if run == "" || len(uids) == 0 {
		return nil
	}
	users := map[string][]string{} // version → runs its pending inputs name
	for r, vs := range pending {
		for _, v := range vs {
			users[v] = append(users[v], r)
		}
	}
	seenRun := map[string]bool{run: true}
	seenVer := map[string]bool{}
	var out map[string]bool
	queue := []string{run}
	for len(queue) > 0 && len(seenRun) <= maxCycleRuns {
		r := queue[0]
		queue = queue[1:]
		rec, err := src.RunRecord(ctx, r)
		if err != nil {
			continue
		}
		for _, v := range rec.Outputs {
			if seenVer[v] {
				continue
			}
			seenVer[v] = true
			// Not run's own: a version it wrote again after reading it
			// (`sort -o f f`, Reruns) stays its input, as it was.
			if r != run && slices.Contains(uids, v) {
				if out == nil {
					out = map[string]bool{}
				}
				out[v] = true
			}
			by, _ := src.UsedBy(ctx, v)
			for _, u := range append(by, users[v]...) {
				if !seenRun[u] {
					seenRun[u] = true
					queue = append(queue, u)
				}
			}
		}
	}
	return out
}
