package lineage_test

import (
	"context"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/catalog/catalogtest"
	"github.com/lamina-bio/lamina/lineage"
)

// countingSource counts the UsedBy calls, the walk's cost per output.
type countingSource struct {
	lineage.Source
	usedBy int
}

func (c *countingSource) UsedBy(ctx context.Context, uid string) ([]string, error) {
	c.usedBy++
	return c.Source.UsedBy(ctx, uid)
}

// Cycles walks downstream of a run (a UsedBy per output) only for inputs
// made since the run began: what was made before cannot be downstream of
// it, and a run with thousands of outputs paid the walk at every flush.
func TestCyclesWalksOnlyForNewerInputs(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	// report is downstream of merge: recorded as merge's input it closes
	// a cycle, and the walk finds it.
	src := &countingSource{Source: f.c}
	if got := lineage.Cycles(ctx, src, f.merge.UID, []string{f.report.UID}, nil); !got[f.report.UID] {
		t.Fatalf("Cycles(merge, report) = %v; report is downstream of merge", got)
	}
	if src.usedBy == 0 {
		t.Fatal("the walk made no UsedBy call")
	}
	// A run that began after the versions were made (its clock an hour
	// on): none of them can be downstream of it, and nothing is walked.
	late, err := f.c.StartRun(ctx, catalog.Run{Transform: f.merge.Transform, Name: "late", StartedAt: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	nv := catalogtest.NV("late/out.csv", "late")
	nv.Run = late.UID
	if _, err := f.c.Save(ctx, []catalog.NewVersion{nv}); err != nil {
		t.Fatal(err)
	}
	src = &countingSource{Source: f.c}
	if got := lineage.Cycles(ctx, src, late.UID, []string{f.raw.UID, f.report.UID}, nil); len(got) != 0 || src.usedBy != 0 {
		t.Fatalf("inputs made before the run began: Cycles = %v with %d UsedBy calls; want none walked", got, src.usedBy)
	}
}
