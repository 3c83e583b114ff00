package instance_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/instance"
	"github.com/lamina-bio/lamina/ontology"
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
		l, err := storage.CreateLocal(filepath.Join(dir, "storage"))
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

// lostAnswer stores the first registry write but answers it as refused:
// what a retry of a PUT that landed, its answer lost, gets from S3.
type lostAnswer struct {
	*storage.Local
	once sync.Once
}

func (l *lostAnswer) Unwrap() storage.Backend { return l.Local }

func (l *lostAnswer) PutIf(ctx context.Context, name string, data []byte, tag string) error {
	err := l.Local.PutIf(ctx, name, data, tag)
	if err == nil && name == "ontologies/registry.json" {
		l.once.Do(func() { err = fmt.Errorf("a retry: %w", storage.ErrChanged) })
	}
	return err
}

// An import whose registry write landed but was answered as refused finds
// its own entry when it reads again: it is not "unchanged", and its index
// is stored.
func TestImportOntologyOwnWriteRefused(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	l, err := storage.CreateLocal(filepath.Join(dir, "storage"))
	if err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.OpenBolt(filepath.Join(dir, "catalog.db"), catalog.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	in := instance.New(instance.Settings{Name: "t", Storage: filepath.Join(dir, "storage"), DataDir: filepath.Join(dir, "data")}, cat, &lostAnswer{Local: l}, nil)
	t.Cleanup(func() { in.Close() })
	res, err := in.ImportOntology(ctx, filepath.Join(ontologyData, "hsapdv.obo"), instance.OntologyImportOptions{Entity: "developmental_stage", Organism: "human"})
	if err != nil || res.Unchanged || !res.Source.Default {
		t.Fatalf("import: %+v %v; want a new default source", res, err)
	}
	if ss, err := in.OntologySources(ctx); err != nil || len(ss) != 1 {
		t.Fatalf("sources: %+v %v", ss, err)
	}
	if _, err := l.Stat(ctx, fmt.Sprintf("ontologies/developmental_stage/%s.v%d.idx", res.Source.Digest, ontology.IndexFormat)); err != nil {
		t.Fatalf("no index stored: %v", err)
	}
}
