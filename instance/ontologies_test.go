package instance_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/instance"
	"github.com/lamina-bio/lamina/ontology"
	"github.com/lamina-bio/lamina/storage"
)

const ontologyData = "../../shared/data/ontologies"

// openOntologyInstance opens an instance on a local storage root; two
// calls with the same dir share storage and DataDir, as two processes do.
func openOntologyInstance(t *testing.T, dir string) *instance.Instance {
	t.Helper()
	b, err := storage.CreateLocal(filepath.Join(dir, "storage"))
	if err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.OpenBolt(filepath.Join(t.TempDir(), "catalog.db"), catalog.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Ontologies use only the backend: no content store is needed.
	in := instance.New(instance.Settings{Name: "t", Storage: filepath.Join(dir, "storage"), DataDir: filepath.Join(dir, "data")}, cat, b, nil)
	t.Cleanup(func() { in.Close() })
	return in
}

// TestImportOntologyConcurrent imports different sources from several
// instances sharing one storage root at once: the lock and the re-read of
// the registry under it must keep every one.
func TestImportOntologyConcurrent(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	imports := []struct{ entity, organism, file string }{
		{"developmental_stage", "human", "hsapdv.obo"},
		{"developmental_stage", "mouse", "mmusdv.obo"},
		{"pathway", "", "go-slim-generic.obo"},
		{"developmental_stage", "human", "cellxgene-json/HsapDv-ontology-v2025-01-23.json.gz"},
		{"custom_go", "", "go-slim-generic.obo"},
	}
	var wg sync.WaitGroup
	errs := make([]error, len(imports))
	for i, im := range imports {
		in := openOntologyInstance(t, dir)
		wg.Go(func() {
			_, errs[i] = in.ImportOntology(ctx, filepath.Join(ontologyData, im.file), instance.OntologyImportOptions{Entity: im.entity, Organism: im.organism})
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	in := openOntologyInstance(t, dir)
	ss, err := in.OntologySources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ss) != len(imports) {
		t.Fatalf("registry holds %d sources, want %d: %+v", len(ss), len(imports), ss)
	}
	defaults := map[string]int{}
	for _, s := range ss {
		if s.Default {
			defaults[s.Entity+"/"+s.Organism]++
		}
	}
	for _, k := range []string{"developmental_stage/human", "developmental_stage/mouse", "pathway/", "custom_go/"} {
		if defaults[k] != 1 {
			t.Errorf("%s has %d defaults", k, defaults[k])
		}
	}
}

func TestLoadOntology(t *testing.T) {
	ctx := context.Background()
	in := openOntologyInstance(t, t.TempDir())
	if _, _, err := in.LoadOntology(ctx, "celltype", "", ""); !errors.Is(err, ontology.ErrNotFound) {
		t.Fatalf("load before import: %v", err)
	}
	res, err := in.ImportOntology(ctx, filepath.Join(ontologyData, "cl-basic.obo"), instance.OntologyImportOptions{Entity: "celltype"})
	if err != nil {
		t.Fatal(err)
	}
	x, s, err := in.LoadOntology(ctx, "celltype", "", "")
	if err != nil {
		t.Fatal(err)
	}
	if s.Digest != res.Source.Digest || x.Len() != 2804 || !x.Validate("T cell").Valid {
		t.Fatalf("loaded %+v, %d terms", s, x.Len())
	}
	// The same source again comes from the process cache.
	x2, _, err := in.LoadOntology(ctx, "celltype", "", res.Source.Digest[:12])
	if err != nil || x2 != x {
		t.Fatalf("second load: %v, same index %v", err, x2 == x)
	}
	// A source for any organism serves every organism: one --organism is
	// given for a whole schema.
	if _, s, err := in.LoadOntology(ctx, "celltype", "mouse", ""); err != nil || s.Digest != res.Source.Digest {
		t.Fatalf("celltype for mouse: %v, %+v", err, s)
	}
	if _, err := in.ImportOntology(ctx, filepath.Join(ontologyData, "hsapdv.obo"), instance.OntologyImportOptions{Entity: "developmental_stage", Organism: "human"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ entity, organism, version, msg string }{
		{"tissue", "", "", "no tissue ontology imported yet: import one with `lamina ontology import tissue"},
		{"celltype", "", "1999-01-01", `no version "1999-01-01" of celltype; imported: 2022-12-15`},
		{"developmental_stage", "mouse", "", "lamina ontology import developmental_stage --organism mouse"},
	} {
		t.Run(fmt.Sprintf("%s/%s/%s", tc.entity, tc.organism, tc.version), func(t *testing.T) {
			_, _, err := in.LoadOntology(ctx, tc.entity, tc.organism, tc.version)
			if !errors.Is(err, ontology.ErrNotFound) {
				t.Fatalf("got %v, want ErrNotFound", err)
			}
			// A message for a person: no sentinel text stacked on it.
			if !strings.Contains(err.Error(), tc.msg) || strings.Contains(err.Error(), "does not exist") {
				t.Fatalf("message %q, want %q and nothing internal", err, tc.msg)
			}
		})
	}
	// A damaged object fails as a whole, naming the object.
	other := openOntologyInstance(t, t.TempDir())
	r2, err := other.ImportOntology(ctx, filepath.Join(ontologyData, "hsapdv.obo"), instance.OntologyImportOptions{Entity: "developmental_stage"})
	if err != nil {
		t.Fatal(err)
	}
	// The index is read, not the source; without an index the source is.
	if err := other.Backend.Put(ctx, r2.Source.Object, []byte("not a source")); err != nil {
		t.Fatal(err)
	}
	if err := other.Backend.Delete(ctx, fmt.Sprintf("%s.v%d.idx", strings.TrimSuffix(r2.Source.Object, ".src"), ontology.IndexFormat)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := other.LoadOntology(ctx, "developmental_stage", "human", ""); !errors.Is(err, ontology.ErrCodec) || !strings.Contains(err.Error(), r2.Source.Object) {
		t.Fatalf("damaged object: %v", err)
	}
	if err := other.Backend.Put(ctx, "ontologies/registry.json", []byte("{")); err != nil {
		t.Fatal(err)
	}
	if _, err := other.OntologySources(ctx); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("damaged registry: %v", err)
	}
}

// TestImportOntologySize: an import from a URL tells its Content-Length,
// which the progress bar shows as a total and a percentage.
func TestImportOntologySize(t *testing.T) {
	body, err := os.ReadFile(filepath.Join(ontologyData, "hsapdv.obo"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.Write(body)
	}))
	defer srv.Close()
	in := openOntologyInstance(t, t.TempDir())
	var size int64 = -1
	_, err = in.ImportOntology(context.Background(), srv.URL+"/hsapdv.obo", instance.OntologyImportOptions{
		Entity: "developmental_stage", Organism: "human", Size: func(n int64) { size = n }})
	if err != nil || size != int64(len(body)) {
		t.Fatalf("import: %v; size told %d, want %d", err, size, len(body))
	}
}
