package instance_test

import (
	"context"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/instance"
	"github.com/lamina-bio/lamina/storage"
)

// racer is a shared storage root seen from one machine that, the first
// time this machine writes the ontology registry, lets another machine
// change it first: the moment between the read and the write of a
// read-modify-write.
type racer struct {
	*storage.Local
	once  sync.Once
	other func()
}

func (r *racer) Unwrap() storage.Backend { return r.Local }

func (r *racer) before(name string) {
	if name == "ontologies/registry.json" {
		r.once.Do(r.other)
	}
}

func (r *racer) Put(ctx context.Context, name string, data []byte) error {
	r.before(name)
	return r.Local.Put(ctx, name, data)
}

func (r *racer) PutIf(ctx context.Context, name string, data []byte, tag string) error {
	r.before(name)
	return r.Local.PutIf(ctx, name, data, tag)
}

// Two machines (own DataDir, so own ontologies.lock) on one storage root
// import at once, B's registry write falling between A's read and write.
// Before, A wrote back the registry it had read and B's source was gone.
func TestImportOntologyRaceAcrossMachines(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	open := func(machine string, b storage.Backend) *instance.Instance {
		cat, err := catalog.OpenBolt(filepath.Join(t.TempDir(), "catalog.db"), catalog.BoltOptions{})
		if err != nil {
			t.Fatal(err)
		}
		in := instance.New(instance.Settings{Name: "t", Storage: filepath.Join(dir, "storage"), DataDir: filepath.Join(dir, machine)}, cat, b, nil)
		t.Cleanup(func() { in.Close() })
		return in
	}
	local := func() *storage.Local {
		l, err := storage.OpenLocal(filepath.Join(dir, "storage"))
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	b := open("ben", local())
	var otherErr error
	ra := &racer{Local: local(), other: func() {
		_, otherErr = b.ImportOntology(ctx, filepath.Join(ontologyData, "mmusdv.obo"), instance.OntologyImportOptions{Entity: "developmental_stage", Organism: "mouse"})
	}}
	a := open("ana", ra)
	if _, err := a.ImportOntology(ctx, filepath.Join(ontologyData, "hsapdv.obo"), instance.OntologyImportOptions{Entity: "developmental_stage", Organism: "human"}); err != nil {
		t.Fatal(err)
	}
	if otherErr != nil {
		t.Fatal(otherErr)
	}
	for _, in := range []*instance.Instance{a, b} {
		ss, err := in.OntologySources(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, s := range ss {
			got = append(got, s.Organism)
		}
		if !slices.Equal(got, []string{"human", "mouse"}) {
			t.Fatalf("sources for %v; want human and mouse (an import was lost)", got)
		}
	}
}
