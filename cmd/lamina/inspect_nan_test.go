package main

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/parquet-go/parquet-go"
)

// TestInspectFloatNaNMissing: ontology inspect of a Parquet (or h5ad)
// float column counted its NaN as the value "NaN", where curate counts it
// missing (pandas' missing value): it is missing here too.
func TestInspectFloatNaNMissing(t *testing.T) {
	e := annotEnv(t)
	path := filepath.Join(t.TempDir(), "scores.parquet")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		Score float64 `parquet:"score"`
	}
	w := parquet.NewGenericWriter[row](f)
	if _, err := w.Write([]row{{math.NaN()}, {2.5}, {math.NaN()}}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	var ins inspectionJSON
	e.jsonOut(&ins, "ontology", "inspect", "celltype", "--column", "score", path, "--format", "json")
	if ins.Rows != 3 || ins.Empty != 2 || len(ins.Values) != 1 || ins.Values[0].Value != "2.5" || ins.Failed != 1 {
		t.Errorf("inspect: %d rows, %d missing, %d failed, values %+v; want 3 rows, 2 missing, the value 2.5", ins.Rows, ins.Empty, ins.Failed, ins.Values)
	}
}
