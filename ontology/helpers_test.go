package ontology_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"

	"github.com/lamina-bio/lamina/ontology"
)

// data is the shared test data, relative to this package.
const data = "../../shared/data"

func dataPath(parts ...string) string {
	return filepath.Join(append([]string{data}, parts...)...)
}

// Parsing Mondo or Uberon takes a while under -race; each source is read
// and indexed once per test binary.
var (
	cacheMu sync.Mutex
	cache   = map[string]*cached{}
)

type cached struct {
	once sync.Once
	src  *ontology.Source
	idx  *ontology.Index
	err  error
}

func load(t testing.TB, entity, organism string, path ...string) *ontology.Index {
	t.Helper()
	p := dataPath(path...)
	key := entity + "|" + organism + "|" + p
	cacheMu.Lock()
	c := cache[key]
	if c == nil {
		c = &cached{}
		cache[key] = c
	}
	cacheMu.Unlock()
	c.once.Do(func() {
		c.src, c.err = ontology.Import(context.Background(), p, ontology.ImportOptions{Entity: entity, Organism: organism})
		if c.err == nil {
			c.idx, c.err = ontology.Build(c.src)
		}
	})
	if c.err != nil {
		t.Fatalf("load %s: %v", p, c.err)
	}
	return c.idx
}

// The sources most tests use.
func clOBO(t testing.TB) *ontology.Index {
	return load(t, "celltype", "", "ontologies", "cl-basic.obo")
}

func clJSON(t testing.TB) *ontology.Index {
	return load(t, "celltype", "", "ontologies", "cellxgene-json", "CL-ontology-v2026-03-26.json.gz")
}

func humanGenes(t testing.TB) *ontology.Index {
	return load(t, "gene", "human", "genes", "human_genes_orgHsEgDb.tsv.gz")
}
