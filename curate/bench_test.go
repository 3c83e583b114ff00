package curate_test

import (
	"testing"

	"github.com/lamina-bio/lamina/curate"
	"github.com/lamina-bio/lamina/dataset"
)

// BenchmarkCuratePBMC reads pbmc_small.h5ad and validates its cell types
// against the Cell Ontology (loaded once, as the CLI's cache does within a
// process): the work `lamina curate` adds to opening the instance.
func BenchmarkCuratePBMC(b *testing.B) {
	t := &testing.T{}
	onto := celltypes(t)
	s := curate.Schema{Name: "ct", Fields: []curate.Field{{Name: "cell_type", Dtype: "cat[celltype]"}, {Name: "n_genes", Dtype: "int"}}}
	for b.Loop() {
		ts, err := dataset.Tables(sample)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := curate.Validate(ts, dataset.H5AD, s, curate.Options{Ontology: onto}); err != nil {
			b.Fatal(err)
		}
	}
}

var sample = data + "/samples/pbmc_small.h5ad"
