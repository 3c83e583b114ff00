package instance_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
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

// remoteLike hides that a backend is a local folder, as S3 behind the
// disk cache is, so the instance keeps index copies in its local cache;
// it counts the objects read.
type remoteLike struct {
	storage.Backend
	mu   sync.Mutex
	gets map[string]int
}

func (r *remoteLike) Get(ctx context.Context, name string) ([]byte, error) {
	r.mu.Lock()
	r.gets[name]++
	r.mu.Unlock()
	return r.Backend.Get(ctx, name)
}

func (r *remoteLike) reads(suffix string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for name, c := range r.gets {
		if strings.HasSuffix(name, suffix) {
			n += c
		}
	}
	return n
}

// TestOntologyIndexFile checks where indexes come from: written at
// import; mapped from the storage folder, or for remote storage from the
// local cache, else fetched from storage; else rebuilt from the source. A
// damaged or stale file is logged once and replaced, and the answers are
// those of an index built from the original file.
func TestOntologyIndexFile(t *testing.T) {
	t.Run("local storage", func(t *testing.T) { testIndexFile(t, false) })
	t.Run("remote storage", func(t *testing.T) { testIndexFile(t, true) })
}

func testIndexFile(t *testing.T, remote bool) {
	ctx := context.Background()
	dir := t.TempDir()
	local, err := storage.CreateLocal(filepath.Join(dir, "storage"))
	if err != nil {
		t.Fatal(err)
	}
	counted := &remoteLike{Backend: local, gets: map[string]int{}}
	var b storage.Backend = local
	if remote {
		b = counted
	}
	cat, err := catalog.OpenBolt(filepath.Join(dir, "catalog.db"), catalog.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	in := instance.New(instance.Settings{Name: "t", Storage: "s3://bucket/t", DataDir: filepath.Join(dir, "data"), CacheDir: filepath.Join(dir, "cache")}, cat, b, nil)
	t.Cleanup(func() { in.Close() })
	var logs bytes.Buffer
	in.Log = slog.New(slog.NewTextHandler(&logs, nil))

	file := filepath.Join(ontologyData, "cl-basic.obo")
	res, err := in.ImportOntology(ctx, file, instance.OntologyImportOptions{Entity: "celltype"})
	if err != nil {
		t.Fatal(err)
	}
	digest := res.Source.Digest
	object := fmt.Sprintf("ontologies/celltype/%s.v%d.idx", digest, ontology.IndexFormat)
	cached := filepath.Join(dir, "cache", "ontologies", fmt.Sprintf("%s.v%d.idx", digest, ontology.IndexFormat))
	good, err := local.Get(ctx, object)
	if err != nil {
		t.Fatalf("import stored no index: %v", err)
	}
	if c, err := os.ReadFile(cached); remote && (err != nil || !bytes.Equal(c, good)) {
		t.Fatalf("import cached no index: %v", err)
	} else if !remote && err == nil {
		t.Fatal("a local storage folder needs no cached copy")
	}
	src, err := ontology.Import(ctx, file, ontology.ImportOptions{Entity: "celltype"})
	if err != nil {
		t.Fatal(err)
	}
	want, err := ontology.Build(src)
	if err != nil {
		t.Fatal(err)
	}

	// load reads as a new process: it must answer as the built index.
	load := func(t *testing.T) {
		t.Helper()
		instance.ForgetOntologyIndexes()
		x, _, err := in.LoadOntology(ctx, "celltype", "", "")
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range []string{"T cell", "T-cell", "dendritc cell", "CL:0000084", "T helper"} {
			sameJSON(t, q, []any{x.Validate(q), x.Standardize(q, ontology.StandardizeOptions{}), x.Search(q, ontology.SearchOptions{Limit: 5})},
				[]any{want.Validate(q), want.Standardize(q, ontology.StandardizeOptions{}), want.Search(q, ontology.SearchOptions{Limit: 5})})
		}
		got, err := x.Descendants("T cell", ontology.IsA)
		if err != nil || len(got) < 100 {
			t.Fatalf("%d descendants of T cell: %v", len(got), err)
		}
		w, _ := want.Descendants("T cell", ontology.IsA)
		sameJSON(t, "descendants", got, w)
	}
	// goodAgain checks that a file was replaced by a good one.
	goodAgain := func(t *testing.T, read func() ([]byte, error)) {
		t.Helper()
		b, err := read()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ontology.LoadIndex(b, digest); err != nil {
			t.Fatalf("not repaired: %v", err)
		}
	}

	t.Run("from the local file, not the source", func(t *testing.T) {
		srcObject := "ontologies/celltype/" + digest + ".src"
		srcBytes, err := local.Get(ctx, srcObject)
		if err != nil {
			t.Fatal(err)
		}
		if err := local.Put(ctx, srcObject, []byte("not a source")); err != nil {
			t.Fatal(err)
		}
		defer local.Put(ctx, srcObject, srcBytes)
		before := counted.reads(".idx")
		load(t)
		if n := counted.reads(".idx") - before; n != 0 {
			t.Fatalf("%d reads of the index from storage, not the cache", n)
		}
	})
	if remote {
		t.Run("damaged cache file", func(t *testing.T) { damagedCacheFile(t, cached, good, &logs, load, goodAgain) })
	}

	stale := func() []byte {

		hs, err := ontology.Import(ctx, filepath.Join(ontologyData, "hsapdv.obo"), ontology.ImportOptions{Entity: "developmental_stage"})
		if err != nil {
			t.Fatal(err)
		}
		x, err := ontology.Build(hs)
		if err != nil {
			t.Fatal(err)
		}
		return x.MarshalIndex()
	}()
	flip := func(off int) []byte {
		c := bytes.Clone(good)
		c[off] ^= 0x10
		return c
	}
	for _, tc := range []struct {
		name, log string
		data      []byte // nil: no index object (imported before index files)
	}{
		{"truncated", "unusable; rebuilding", good[:len(good)/3]},
		{"truncated header", "unusable; rebuilding", good[:50]},
		{"flipped byte in the header", "unusable; rebuilding", flip(20)},
		{"flipped byte in the strings", "unusable; rebuilding", flip(2000)},
		{"flipped byte at the end", "unusable; rebuilding", flip(len(good) - 10)},
		{"another source's index", "stale", stale},
		{"missing", "building the ontology index", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(cached)
			if tc.data == nil {
				err = local.Delete(ctx, object)
			} else {
				err = local.Put(ctx, object, tc.data)
			}
			if err != nil {
				t.Fatal(err)
			}
			logs.Reset()
			load(t)
			if n := strings.Count(logs.String(), tc.log); n != 1 {
				t.Fatalf("%q logged %d times:\n%s", tc.log, n, logs.String())
			}
			goodAgain(t, func() ([]byte, error) { return local.Get(ctx, object) })
			if remote {
				goodAgain(t, func() ([]byte, error) { return os.ReadFile(cached) })
			}
			// The next process finds good files and says nothing.
			logs.Reset()
			load(t)
			if logs.Len() != 0 {
				t.Fatalf("logged again:\n%s", logs.String())
			}
		})
	}
}

// damagedCacheFile replaces the cached copy (by rename, as lamina writes
// files) with one whose bytes are flipped: it is fetched again.
func damagedCacheFile(t *testing.T, cached string, good []byte, logs *bytes.Buffer, load func(*testing.T), goodAgain func(*testing.T, func() ([]byte, error))) {
	flipped := bytes.Clone(good)
	flipped[len(flipped)/2] ^= 1
	if err := os.WriteFile(cached+".tmp", flipped, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(cached+".tmp", cached); err != nil {
		t.Fatal(err)
	}
	logs.Reset()
	load(t)
	if n := strings.Count(logs.String(), "local cache is unusable"); n != 1 {
		t.Fatalf("logged %d times:\n%s", n, logs.String())
	}
	goodAgain(t, func() ([]byte, error) { return os.ReadFile(cached) })
}

func sameJSON(t *testing.T, what string, got, want any) {
	t.Helper()
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if string(g) != string(w) {
		t.Fatalf("%s:\nloaded %s\nbuilt  %s", what, g, w)
	}
}

// TestOntologyIndexFromOlderFormat: an instance whose ontology was
// imported by a version that wrote index format 1 (names folded without
// Unicode dashes, synonyms with their language tag) gets today's answers:
// the format-1 file is not used, the index is rebuilt from the stored
// source once and stored beside it, and the old file stays for older
// binaries sharing the storage. The fixture was written by format-1 code.
func TestOntologyIndexFromOlderFormat(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	in := openOntologyInstance(t, dir)
	fixture := filepath.Join("testdata", "ontology-format1")
	res, err := in.ImportOntology(ctx, filepath.Join(fixture, "cells.obo"), instance.OntologyImportOptions{Entity: "celltype"})
	if err != nil {
		t.Fatal(err)
	}
	digest := res.Source.Digest
	idx := func(format int) string { return fmt.Sprintf("ontologies/celltype/%s.v%d.idx", digest, format) }
	// Make the storage what the old version left: its source and index.
	if err := in.Backend.Delete(ctx, idx(ontology.IndexFormat)); err != nil {
		t.Fatal(err)
	}
	for name, object := range map[string]string{"cells.src": res.Source.Object, "cells.v1.idx": idx(1)} {
		b, err := os.ReadFile(filepath.Join(fixture, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := in.Backend.Put(ctx, object, b); err != nil {
			t.Fatal(err)
		}
	}
	old, _ := in.Backend.Get(ctx, idx(1))
	if _, err := ontology.LoadIndex(old, digest); !errors.Is(err, ontology.ErrIndex) {
		t.Fatalf("LoadIndex of a format-1 file: %v, want ErrIndex", err)
	}

	instance.ForgetOntologyIndexes()
	x, _, err := in.LoadOntology(ctx, "celltype", "", "")
	if err != nil {
		t.Fatal(err)
	}
	if st := x.Standardize("T\u2010cell", ontology.StandardizeOptions{}); st.ID != "CL:0000084" {
		t.Errorf("T\u2010cell: %v %s (%s)", st.Match, st.ID, st.Reason())
	}
	if st := x.Standardize("T-Zelle", ontology.StandardizeOptions{Related: true}); st.ID != "CL:0000084" || st.Via != "T-Zelle" {
		t.Errorf("T-Zelle: %v %s via %q", st.Match, st.ID, st.Via)
	}
	if b, err := in.Backend.Get(ctx, idx(ontology.IndexFormat)); err != nil {
		t.Fatalf("the rebuilt index was not stored: %v", err)
	} else if _, err := ontology.LoadIndex(b, digest); err != nil {
		t.Fatal(err)
	}
	if _, err := in.Backend.Get(ctx, idx(1)); err != nil {
		t.Errorf("the format-1 file is gone: %v", err)
	}
}
