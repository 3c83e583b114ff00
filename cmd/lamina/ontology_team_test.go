package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/lamina-bio/lamina/instance"
	s3b "github.com/lamina-bio/lamina/storage/s3"
	"github.com/lamina-bio/lamina/storage/s3/s3test"
)

// tinyOBO is a one-term ontology, different for every name.
func tinyOBO(name string) []byte {
	return fmt.Appendf(nil, "format-version: 1.2\nontology: %s\ndata-version: 1\n\n[Term]\nid: %s:0000001\nname: %s term\n", name, strings.ToUpper(name), name)
}

// entities lists the entities of `ontology sources` on a workstation.
func (e *mntEnv) entities() []string {
	e.t.Helper()
	var ss []instance.OntologySource
	if err := json.Unmarshal([]byte(e.ok("ontology", "sources", "--format", "json")), &ss); err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, s := range ss {
		out = append(out, s.Entity)
	}
	slices.Sort(out)
	return out
}

// Two workstations of a team (one S3 bucket, one PostgreSQL catalog) import
// ontologies. Each sees what the other imported, and no import is lost:
// before, the registry was read through the local block cache (which keeps
// objects as if they never changed) and written back whole, so B kept
// listing what it had read once and its next import wrote that old list
// back, dropping A's; two imports at once kept only the last write.
func TestTeamOntologyRegistry(t *testing.T) {
	_, _, _, a, b := team(t)
	imp := func(e *mntEnv, entity string) {
		e.ok("ontology", "import", entity, "--source", e.file(entity+".obo", tinyOBO(entity)))
	}

	imp(a, "aa")
	if got := strings.Join(b.entities(), " "); got != "aa" {
		t.Fatalf("B lists %q after A's import; want aa", got)
	}
	imp(a, "bb")
	if got := strings.Join(b.entities(), " "); got != "aa bb" {
		t.Fatalf("B lists %q after A's second import; want aa bb (a stale registry)", got)
	}
	imp(b, "cc")
	if got := strings.Join(a.entities(), " "); got != "aa bb cc" {
		t.Fatalf("A lists %q after B's import; want aa bb cc (B's import dropped A's)", got)
	}

	// Both at once, a few each.
	var wg sync.WaitGroup
	var want []string
	for _, w := range []struct {
		e      *mntEnv
		prefix string
	}{{a, "a"}, {b, "b"}} {
		var files []string
		for i := range 3 {
			ent := fmt.Sprintf("%sx%d", w.prefix, i)
			want = append(want, ent)
			files = append(files, w.e.file(ent+".obo", tinyOBO(ent)))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i, f := range files {
				ent := fmt.Sprintf("%sx%d", w.prefix, i)
				if _, errs, err := w.e.run("ontology", "import", ent, "--source", f); err != nil {
					t.Errorf("%s: import %s: %v\n%s", w.prefix, ent, err, errs)
				}
			}
		}()
	}
	wg.Wait()
	want = append(want, "aa", "bb", "cc")
	slices.Sort(want)
	for _, e := range []*mntEnv{a, b} {
		if got := e.entities(); !slices.Equal(got, want) {
			t.Fatalf("after imports at once, %s lists %v; want %v", e.dir, got, want)
		}
	}
}

// A registry write the server refuses fails the import; it is not staged
// in the upload queue. Before, it was, and a later process uploaded that
// registry over one another workstation had written since, dropping the
// other's source.
func TestS3OntologyRegistryNotStaged(t *testing.T) {
	e := newS3Env(t, "LAMINA_S3_RETRY=2,10ms,30s")
	e.ok("ontology", "import", "aa", "--source", e.file("aa.obo", tinyOBO("aa")))
	e.proxy.Only("PUT /" + e.bucket + "/lab/ontologies/registry.json")
	e.proxy.Always(s3test.Status503)
	_, errs, err := e.run("ontology", "import", "bb", "--source", e.file("bb.obo", tinyOBO("bb")))
	e.proxy.Always(s3test.None)
	e.proxy.Only("")
	t.Logf("import with the registry's PUT refused: %v\n%s", err, errs)
	if err == nil {
		t.Errorf("the import succeeded with the registry's PUT refused")
	}

	// Nor is the source object staged: the registry would name an object
	// other workstations cannot read.
	e.proxy.Only("PUT /" + e.bucket + "/lab/ontologies/cc/")
	e.proxy.Always(s3test.Status503)
	_, errs, err = e.run("ontology", "import", "cc", "--source", e.file("cc.obo", tinyOBO("cc")))
	e.proxy.Always(s3test.None)
	e.proxy.Only("")
	if err == nil {
		t.Errorf("the import succeeded with the source object's PUT refused\n%s", errs)
	}

	// Another workstation imports: its registry is in the bucket.
	cfg := e.srv.Config(e.bucket)
	cfg.Prefix = "lab"
	raw, err := s3b.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	b, err := raw.Get(ctx, "ontologies/registry.json")
	if err != nil {
		t.Fatal(err)
	}
	var reg map[string]any
	if err := json.Unmarshal(b, &reg); err != nil {
		t.Fatal(err)
	}
	ss := reg["sources"].([]any)
	zz := map[string]any{}
	for k, v := range ss[0].(map[string]any) {
		zz[k] = v
	}
	zz["entity"] = "zz"
	reg["sources"] = append(ss, zz)
	other, err := json.Marshal(reg)
	if err != nil {
		t.Fatal(err)
	}
	if err := raw.Put(ctx, "ontologies/registry.json", other); err != nil {
		t.Fatal(err)
	}
	want := "aa zz"
	if got := strings.Join(e.entities(), " "); got != want {
		t.Fatalf("sources %q after the other workstation's import; want %q\n%s", got, want, other)
	}
	// Processes that drain the upload queue run here; the registry must stay.
	e.ok("cache", "info")
	e.ok("ontology", "sources")
	if got := strings.Join(e.entities(), " "); got != want {
		t.Fatalf("sources %q later; want %q: a staged registry overwrote the other workstation's", got, want)
	}
}

// With the storage away, catalog-only commands that read the registry (ls
// --term) use the copy this machine read last, warning, as they did when it
// was read through the block cache; an import fails.
func TestS3OntologyRegistryOffline(t *testing.T) {
	e := newS3Env(t, "LAMINA_S3_RETRY=2,10ms,30s")
	e.ok("ontology", "import", "aa", "--source", e.file("aa.obo", tinyOBO("aa")))
	e.ok("ls", "--term", "aa=aa term") // its index is in the cache now
	e.proxy.Always(s3test.Reset)
	defer e.proxy.Always(s3test.None)
	if _, errs, err := e.run("ls", "--term", "aa=aa term"); err != nil {
		t.Fatalf("ls --term with the storage away: %v\n%s", err, errs)
	} else {
		t.Logf("ls --term with the storage away said: %s", errs)
	}
	if _, errs, err := e.run("ontology", "import", "bb", "--source", e.file("bb.obo", tinyOBO("bb"))); err == nil {
		t.Fatalf("an import with the storage away succeeded\n%s", errs)
	}
}
