package main

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/lamina-bio/lamina/instance"
	"github.com/urfave/cli/v2"
)

const (
	ontologies = "../../../shared/data/ontologies"
	genes      = "../../../shared/data/genes"
)

type importRow struct {
	instance.OntologySource
	Unchanged bool     `json:"unchanged"`
	Warnings  []string `json:"warnings"`
}

type standardRow struct {
	Value      string `json:"value"`
	Standard   string `json:"standard"`
	ID         string `json:"id"`
	Match      string `json:"match"`
	Changed    bool   `json:"changed"`
	Reason     string `json:"reason"`
	Candidates []struct {
		ID, Name string
	} `json:"candidates"`
}

type termRow struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// codeOf is the code lamina would exit with for err.
func codeOf(err error) int {
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		return ec.ExitCode()
	}
	if err != nil {
		return 1
	}
	return 0
}

// registryState returns the registry bytes and the names of every object
// under ontologies/, to show that a failed import wrote nothing.
func (e *env) registryState() string {
	e.t.Helper()
	root := filepath.Join(e.path("storage"), "ontologies")
	var b strings.Builder
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b.WriteString(p + "\n")
		}
		return nil
	})
	reg, _ := os.ReadFile(filepath.Join(root, "registry.json"))
	b.Write(reg)
	return b.String()
}

func (e *env) sources(args ...string) []instance.OntologySource {
	e.t.Helper()
	var ss []instance.OntologySource
	e.jsonOut(&ss, append([]string{"ontology", "sources", "--format", "json"}, args...)...)
	return ss
}

// sub returns e for use inside the subtest t.
func (e *env) sub(t *testing.T) *env {
	c := *e
	c.t = t
	return &c
}

func defaultOf(ss []instance.OntologySource, entity string) string {
	for _, s := range ss {
		if s.Entity == entity && s.Default {
			return s.Version
		}
	}
	return ""
}

func TestOntologyNoInstance(t *testing.T) {
	e := newEnv(t)
	e.fails("run `lamina init", "ontology", "sources")
	e.fails("run `lamina init", "ontology", "import", "celltype", "--source", filepath.Join(ontologies, "cl-basic.obo"))
	e.fails("run `lamina init", "ontology", "validate", "celltype", "T cell")
}

func TestOntologyImport(t *testing.T) {
	e := newEnv(t)
	e.init()
	clOBO := filepath.Join(ontologies, "cl-basic.obo")
	clJSON := filepath.Join(ontologies, "cellxgene-json", "CL-ontology-v2026-03-26.json.gz")

	e.fails("no celltype ontology imported yet", "ontology", "search", "celltype", "T cell")
	if out := e.ok("ontology", "sources"); out != "" {
		t.Fatalf("sources of an empty instance printed %q", out)
	}

	var r importRow
	e.jsonOut(&r, "ontology", "import", "celltype", "--source", clOBO, "--format", "json")
	if r.Unchanged || !r.Default || r.Ontology != "CL" || r.Version != "2022-12-15" || r.Terms != 2804 || r.Obsolete == 0 ||
		r.Object != "ontologies/celltype/"+r.Digest+".src" || len(r.Digest) != 64 {
		t.Fatalf("first import: %+v", r)
	}
	if _, err := os.Stat(filepath.Join(e.path("storage"), r.Object)); err != nil {
		t.Fatalf("source object not in storage: %v", err)
	}

	t.Run("same bytes again change nothing", func(t *testing.T) {
		e := e.sub(t)
		before := e.registryState()
		out := e.ok("ontology", "import", "celltype", "--source", clOBO)
		if !strings.Contains(out, "unchanged") || !strings.Contains(out, "nothing written") {
			t.Fatalf("re-import said %q", out)
		}
		var again importRow
		e.jsonOut(&again, "ontology", "import", "celltype", "--source", clOBO, "--format", "json")
		if !again.Unchanged || again.Digest != r.Digest || !again.ImportedAt.Equal(r.ImportedAt) {
			t.Fatalf("re-import: %+v", again)
		}
		if after := e.registryState(); after != before {
			t.Fatalf("re-import changed the registry:\n%s\n---\n%s", before, after)
		}
	})

	t.Run("the same content gzipped is the same source", func(t *testing.T) {
		e := e.sub(t)
		plain, err := os.ReadFile(clOBO)
		if err != nil {
			t.Fatal(err)
		}
		var zb bytes.Buffer
		zw := gzip.NewWriter(&zb)
		zw.Write(plain)
		zw.Close()
		gz := e.write("cl-basic.obo.gz", zb.Bytes())
		before := e.registryState()
		var j importRow
		e.jsonOut(&j, "ontology", "import", "celltype", "--source", gz, "--format", "json")
		if !j.Unchanged || j.Digest != r.Digest {
			t.Fatalf("import of the gzip: %+v", j)
		}
		if e.registryState() != before {
			t.Fatal("the gzip's import changed the registry")
		}
		// A source imported from this gzip before digests were of the
		// content is named by the compressed bytes' digest: found too.
		regPath := filepath.Join(e.path("storage"), "ontologies", "registry.json")
		reg, _ := os.ReadFile(regPath)
		sum := sha256.Sum256(zb.Bytes())
		os.WriteFile(regPath, bytes.ReplaceAll(reg, []byte(r.Digest), []byte(hex.EncodeToString(sum[:]))), 0o644)
		defer os.WriteFile(regPath, reg, 0o644)
		e.jsonOut(&j, "ontology", "import", "celltype", "--source", gz, "--format", "json")
		if !j.Unchanged || j.Digest != hex.EncodeToString(sum[:]) {
			t.Fatalf("import of a gzip imported before: %+v", j)
		}
	})

	t.Run("a new version is kept and becomes default", func(t *testing.T) {
		e := e.sub(t)
		var v2 importRow
		e.jsonOut(&v2, "ontology", "import", "celltype", "--source", clJSON, "--format", "json")
		if v2.Unchanged || !v2.Default || v2.Version != "2026-03-26" || v2.Terms != 3596 {
			t.Fatalf("second version: %+v", v2)
		}
		ss := e.sources("celltype")
		if len(ss) != 2 || defaultOf(ss, "celltype") != "2026-03-26" {
			t.Fatalf("sources: %+v", ss)
		}
		out := e.ok("ontology", "default", "celltype", "2022-12-15")
		if !strings.Contains(out, "default is now 2022-12-15 (was 2026-03-26)") {
			t.Fatalf("default said %q", out)
		}
		if d := defaultOf(e.sources(), "celltype"); d != "2022-12-15" {
			t.Fatalf("default after switch: %s", d)
		}
		// Queries follow the default, and --version picks another.
		var ins struct{ Version string }
		e.jsonOut(&ins, "ontology", "inspect", "celltype", "--column", "cell_type", filepath.Join(samples, "pbmc_small_obs.csv"), "--format", "json")
		var ins2 struct{ Version string }
		e.jsonOut(&ins2, "ontology", "inspect", "celltype", "--column", "cell_type", filepath.Join(samples, "pbmc_small_obs.csv"), "--format", "json", "--version", "2026-03-26")
		if ins.Version != "2022-12-15" || ins2.Version != "2026-03-26" {
			t.Fatalf("inspect used %s and %s", ins.Version, ins2.Version)
		}
		// The cellxgene JSON does not tell is_a from part_of: show says so
		// rather than call every parent is_a; the OBO keeps is_a.
		if out := e.ok("ontology", "show", "celltype", "T cell", "--version", "2026-03-26"); !strings.Contains(out, "is_a/part_of") {
			t.Errorf("show of a cellxgene JSON term:\n%s", out)
		}
		if out := e.ok("ontology", "show", "celltype", "T cell"); !strings.Contains(out, "is_a ") || strings.Contains(out, "is_a/part_of") {
			t.Errorf("show of an OBO term:\n%s", out)
		}
		e.fails(`no version "1999" of celltype`, "ontology", "default", "celltype", "1999")
		if out := e.ok("ontology", "default", "celltype"); !strings.Contains(out, "default is 2022-12-15") {
			t.Fatalf("default shows %q", out)
		}
	})

	t.Run("no-default keeps the default", func(t *testing.T) {
		e := e.sub(t)
		e.ok("ontology", "import", "developmental_stage", "--source", filepath.Join(ontologies, "hsapdv.obo"))
		var j importRow
		e.jsonOut(&j, "ontology", "import", "developmental_stage", "--no-default", "--format", "json",
			"--source", filepath.Join(ontologies, "cellxgene-json", "HsapDv-ontology-v2025-01-23.json.gz"))
		if j.Default || j.Organism != "human" || j.Ontology != "HsapDv" {
			t.Fatalf("--no-default import: %+v", j)
		}
		ss := e.sources("developmental_stage")
		if len(ss) != 2 || defaultOf(ss, "developmental_stage") == j.Version {
			t.Fatalf("sources: %+v", ss)
		}
		// A mouse source is a separate default; queries then need --organism.
		var m importRow
		e.jsonOut(&m, "ontology", "import", "developmental_stage", "--organism", "mouse", "--no-default", "--format", "json",
			"--source", filepath.Join(ontologies, "mmusdv.obo"))
		if !m.Default || m.Organism != "mouse" || m.Ontology != "MmusDv" {
			t.Fatalf("first mouse source must be default: %+v", m)
		}
		e.fails("pick one with --organism", "ontology", "validate", "developmental_stage", "adult stage")
		e.ok("ontology", "validate", "developmental_stage", "--organism", "human", "42-year-old stage")
	})

	t.Run("a different file under an existing version name is refused", func(t *testing.T) {
		e := e.sub(t)
		b, err := os.ReadFile(clOBO)
		if err != nil {
			t.Fatal(err)
		}
		edited := e.write("cl-edited.obo", append(b, '\n'))
		before := e.registryState()
		e.fails("name this one with --version", "ontology", "import", "celltype", "--source", edited)
		if e.registryState() != before {
			t.Fatal("a refused import changed the registry")
		}
		var j importRow
		e.jsonOut(&j, "ontology", "import", "celltype", "--source", edited, "--version", "2022-12-15-local", "--no-default", "--format", "json")
		if j.Version != "2022-12-15-local" || j.Default {
			t.Fatalf("renamed import: %+v", j)
		}
	})

	t.Run("from a URL", func(t *testing.T) {
		e := e.sub(t)
		srv := httptest.NewServer(http.FileServer(http.Dir(ontologies)))
		defer srv.Close()
		var j importRow
		e.jsonOut(&j, "ontology", "import", "organism", "--source", srv.URL+"/ncbitaxon-taxslim.obo.gz", "--format", "json")
		if j.Ontology != "NCBITaxon" || j.Terms == 0 || j.Location != srv.URL+"/ncbitaxon-taxslim.obo.gz" {
			t.Fatalf("URL import: %+v", j)
		}
		e.fails("HTTP 404", "ontology", "import", "organism", "--source", srv.URL+"/missing.obo")
	})

	t.Run("fits the entity", func(t *testing.T) {
		e := e.sub(t)
		e.fails("has no CL terms", "ontology", "import", "celltype", "--source", filepath.Join(ontologies, "hsapdv.obo"))
		e.fails("not an entity name", "ontology", "import", "Cell-Type", "--source", clOBO)
		e.fails("no such file", "ontology", "import", "celltype", "--source", e.path("nope.obo"))
	})
}

func TestOntologyMalformed(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("ontology", "import", "celltype", "--source", filepath.Join(ontologies, "cl-basic.obo"))
	hp, err := os.ReadFile(filepath.Join(ontologies, "hp.obo.gz"))
	if err != nil {
		t.Fatal(err)
	}
	truncated := e.write("hp-truncated.obo.gz", hp[:len(hp)/2])
	noID := e.write("noid.obo", []byte("format-version: 1.2\n\n[Term]\nid: X:1\nname: one\n\n[Term]\nname: two\nis_a: X:1\n"))
	var bad bytes.Buffer
	zw := gzip.NewWriter(&bad)
	zw.Write([]byte("format-version: 1.2\n\n[Term]\nid: X:1\nname: one \\q escape\n"))
	zw.Close()
	escape := e.write("escape.obo.gz", bad.Bytes())
	cl, err := os.ReadFile(filepath.Join(ontologies, "cl-basic.obo"))
	if err != nil {
		t.Fatal(err)
	}
	cl = cl[:600000]
	cut := e.write("cut.obo", cl[:bytes.LastIndexByte(cl, '\n')+1]) // cut at a line boundary: parses cleanly

	before := e.registryState()
	srv := httptest.NewServer(http.NotFoundHandler())
	closed := srv.URL + "/cl.obo"
	srv.Close()
	for _, tc := range []struct {
		name, entity, source string
		want                 []string
	}{
		{"truncated gzip", "phenotype", truncated, []string{truncated + ":", "truncated"}},
		{"stanza without id", "custom", noID, []string{noID + ":7"}},
		{"unknown escape", "custom", escape, []string{escape + ":5"}},
		{"cut at a line boundary", "cut", cut, []string{cut + ": 104 of the 573 parents in CL are defined nowhere in the file (CL:0002251", "truncated?", "--allow-dangling"}},
		{"compliance: two names in 1.4", "custom", filepath.Join(ontologies, "obo-compliance", "invalid-name-duplicate", "invalid-name-duplicate.obo"),
			[]string{"invalid-name-duplicate.obo:7", "OBO 1.4 allows one"}},
		{"unreachable URL", "celltype", closed, []string{closed, "connection refused"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := e.sub(t)
			err := e.fails(tc.want[0], "ontology", "import", tc.entity, "--source", tc.source)
			for _, w := range tc.want[1:] {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if after := e.registryState(); after != before {
				t.Fatalf("a failed import changed storage:\n%s\n---\n%s", before, after)
			}
		})
	}
	if ss := e.sources(); len(ss) != 1 {
		t.Fatalf("sources after failed imports: %+v", ss)
	}
	// --allow-dangling imports the cut file, with the warning on stderr.
	out, stderr, err := e.run("ontology", "import", "cut", "--source", cut, "--allow-dangling")
	if err != nil || !strings.Contains(out, "1303 terms") || !strings.Contains(stderr, "warning: "+cut+": 104 of the 573 parents in CL") {
		t.Errorf("--allow-dangling: %v\nstdout: %s\nstderr: %s", err, out, stderr)
	}
}

// queryEnv is an instance with CL (cl-basic.obo), HP and the human gene
// table imported.
func queryEnv(t *testing.T) *env {
	e := newEnv(t)
	e.init()
	e.ok("ontology", "import", "celltype", "--source", filepath.Join(ontologies, "cl-basic.obo"))
	e.ok("ontology", "import", "phenotype", "--source", filepath.Join(ontologies, "hp.obo.gz"))
	e.ok("ontology", "import", "gene", "--organism", "human", "--source", filepath.Join(genes, "human_genes_orgHsEgDb.tsv.gz"))
	return e
}

func TestOntologyQueries(t *testing.T) {
	e := queryEnv(t)

	t.Run("sources", func(t *testing.T) {
		e := e.sub(t)
		out := e.ok("ontology", "sources")
		for _, w := range []string{"ENTITY", "celltype", "2022-12-15", "2804", "phenotype", "HP", "gene", "human", "Ensembl"} {
			if !strings.Contains(out, w) {
				t.Fatalf("sources table lacks %q:\n%s", w, out)
			}
		}
		rows, err := csv.NewReader(strings.NewReader(e.ok("ontology", "sources", "--format", "csv"))).ReadAll()
		if err != nil || len(rows) != 4 || rows[0][0] != "entity" || len(rows[1][6]) != 64 {
			t.Fatalf("sources csv: %v %q", err, rows)
		}
	})

	t.Run("search", func(t *testing.T) {
		e := e.sub(t)
		var hits []struct{ ID, Name, Rank string }
		e.jsonOut(&hits, "ontology", "search", "celltype", "T helper", "--limit", "3", "--format", "json")
		if len(hits) != 3 || hits[0].Name != "helper T cell" && !strings.HasPrefix(hits[0].Name, "T-helper") {
			t.Fatalf("search T helper: %+v", hits)
		}
		e.jsonOut(&hits, "ontology", "search", "celltype", "t cell", "--format", "json")
		if hits[0].ID != "CL:0000084" || hits[0].Rank != "exact_name" || len(hits) != 20 {
			t.Fatalf("search t cell: %+v", hits[:1])
		}
		e.jsonOut(&hits, "ontology", "search", "celltype", "passage cell", "--limit", "5", "--format", "json")
		if slices.ContainsFunc(hits, func(h struct{ ID, Name, Rank string }) bool { return h.ID == "CL:0000245" }) {
			t.Fatalf("obsolete term without --obsolete: %+v", hits)
		}
		e.jsonOut(&hits, "ontology", "search", "celltype", "passage cell", "--limit", "5", "--obsolete", "--format", "json")
		if len(hits) == 0 || hits[0].ID != "CL:0000245" {
			t.Fatalf("search --obsolete: %+v", hits)
		}
		if out := e.ok("ontology", "search", "celltype", "dendritc", "cell", "--limit", "1"); !strings.Contains(out, "dendritic cell") {
			t.Fatalf("fuzzy search: %s", out)
		}
		e.fails("--limit must be at least 1", "ontology", "search", "celltype", "x", "--limit", "0")
	})

	t.Run("validate", func(t *testing.T) {
		e := e.sub(t)
		out, _, err := e.run("ontology", "validate", "celltype", "T cell", "B cell", "Unknown_type")
		if codeOf(err) != 1 || !strings.Contains(err.Error(), "1 of 3 values") {
			t.Fatalf("exit %d, %v", codeOf(err), err)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 3 || !strings.Contains(lines[0], "CL:0000084") || !strings.HasPrefix(lines[2], "✗") || !strings.Contains(lines[2], "Unknown_type") {
			t.Fatalf("validate output:\n%s", out)
		}
		// Case-sensitive, as Bionty: "t cell" is not valid; ids are.
		if _, _, err := e.run("ontology", "validate", "celltype", "t cell"); codeOf(err) != 1 {
			t.Fatalf("t cell validated: %v", err)
		}
		e.ok("ontology", "validate", "celltype", "CL:0000084", "T cell")
		// An obsolete term does not validate and names its replacement.
		var vs []struct {
			Valid, Obsolete bool
			Message         string
		}
		out, _, err = e.run("ontology", "validate", "phenotype", "obsolete Small vertebral bodies", "--format", "json")
		if codeOf(err) != 1 {
			t.Fatalf("obsolete validated: %v", err)
		}
		// The closing hint names the replacement, not standardize's
		// spellings.
		if msg := err.Error(); !strings.Contains(msg, "replaced by HP:0008479 (Hypoplastic vertebral bodies)") || strings.Contains(msg, "white space") {
			t.Errorf("obsolete hint: %s", msg)
		}
		if jerr := json.Unmarshal([]byte(out), &vs); jerr != nil || len(vs) != 1 || vs[0].Valid || !vs[0].Obsolete ||
			!strings.Contains(vs[0].Message, "HP:0008479 (Hypoplastic vertebral bodies)") {
			t.Fatalf("obsolete: %v %+v", jerr, vs)
		}
	})

	t.Run("validate from a file and stdin", func(t *testing.T) {
		e := e.sub(t)
		f := e.write("values.txt", []byte("T cell\r\nB cell\n\nmonocyte\n"))
		out := e.ok("ontology", "validate", "celltype", "--file", f)
		if strings.Count(out, "✓") != 3 {
			t.Fatalf("--file: %s", out)
		}
		stdin, err := os.Open(e.write("stdin.txt", []byte("T cell\nnot a cell\n")))
		if err != nil {
			t.Fatal(err)
		}
		defer stdin.Close()
		old := os.Stdin
		os.Stdin = stdin
		defer func() { os.Stdin = old }()
		out, _, err = e.run("ontology", "validate", "celltype", "--format", "csv")
		if codeOf(err) != 1 || !strings.Contains(out, "not a cell,false") {
			t.Fatalf("stdin: %v\n%s", err, out)
		}
	})

	t.Run("standardize", func(t *testing.T) {
		e := e.sub(t)
		var rs []standardRow
		e.jsonOut(&rs, "ontology", "standardize", "celltype", "T-cell", "b lymphocyte", "Monocyte ", "CL:0000084", "doublet", " CL:0000084", "--format", "json")
		want := []struct{ standard, match string }{
			{"T cell", "synonym"}, {"B cell", "synonym"}, {"monocyte", "case_or_whitespace"}, {"T cell", "id"}, {"doublet", "no_match"},
			{"T cell", "id"}, // white space around an id, as around a name
		}
		for i, w := range want {
			if rs[i].Standard != w.standard || rs[i].Match != w.match {
				t.Errorf("%q -> %+v, want %s by %s", rs[i].Value, rs[i], w.standard, w.match)
			}
		}
		if rs[4].Changed || rs[4].Reason == "" {
			t.Errorf("doublet: %+v", rs[4])
		}
		out := e.ok("ontology", "standardize", "celltype", "T-cell", "Monocyte ")
		if !strings.Contains(out, "-> T cell") || !strings.Contains(out, `"Monocyte "`) {
			t.Fatalf("standardize table:\n%s", out)
		}
		// An alias of several genes is ambiguous and never guessed.
		e.jsonOut(&rs, "ontology", "standardize", "gene", "CD20", "p53", "--format", "json")
		names := map[string]bool{}
		for _, c := range rs[0].Candidates {
			names[c.Name] = true
		}
		if rs[0].Match != "ambiguous" || rs[0].Standard != "CD20" || !names["MS4A1"] || !names["KRT20"] {
			t.Fatalf("CD20: %+v", rs[0])
		}
		if rs[1].Standard != "TP53" || rs[1].ID != "ENSG00000141510" {
			t.Fatalf("p53: %+v", rs[1])
		}
		if out := e.ok("ontology", "standardize", "gene", "CD20"); !strings.Contains(out, "ambiguous: could be MS4A1") {
			t.Fatalf("CD20 table:\n%s", out)
		}
		// An obsolete term maps to its replacement.
		e.jsonOut(&rs, "ontology", "standardize", "phenotype", "obsolete Small vertebral bodies", "--format", "json")
		if rs[0].Match != "replaced" || rs[0].Standard != "Hypoplastic vertebral bodies" || rs[0].ID != "HP:0008479" {
			t.Fatalf("obsolete: %+v", rs[0])
		}
		// RELATED synonyms only with --related.
		e.jsonOut(&rs, "ontology", "standardize", "celltype", "oogonium", "--format", "json")
		if rs[0].Changed || !strings.Contains(rs[0].Reason, `RELATED synonym "oogonium" of CL:0000023 (oocyte), used only with --related`) {
			t.Fatalf("RELATED synonym used without --related, or not hinted at: %+v", rs[0])
		}
		// ls has no --related: its error names the term instead.
		if err := e.fails(`"oogonium" is not a celltype term: only a RELATED synonym of "oocyte" (CL:0000023)`, "ls", "--cell-type", "oogonium"); strings.Contains(err.Error(), "--related") {
			t.Fatalf("ls: %v", err)
		}
		e.jsonOut(&rs, "ontology", "standardize", "celltype", "oogonium", "--related", "--format", "json")
		if rs[0].Standard != "oocyte" || rs[0].Match != "related_synonym" {
			t.Fatalf("--related: %+v", rs[0])
		}
		// BROAD and NARROW synonyms are never mapped, not even with
		// --related, but named (TestBroadNarrowSynonymsNamed).
		e.jsonOut(&rs, "ontology", "standardize", "phenotype", "Round, full face", "--related", "--format", "json")
		if rs[0].Changed || rs[0].Match != "no_match" || !strings.Contains(rs[0].Reason, `BROAD synonym "Round, full face" of HP:0000311 (Round face): not an equivalent, so never mapped`) {
			t.Fatalf("BROAD synonym: %+v", rs[0])
		}
		e.fails(`"Round, full face" is not a phenotype term: BROAD synonym "Round, full face" of HP:0000311 (Round face)`, "ls", "--term", "phenotype=Round, full face")
	})

	t.Run("inspect pbmc cell_type", func(t *testing.T) {
		e := e.sub(t)
		var ins struct {
			Ontology, Column                string
			Rows, Validated, Mapped, Failed int
			Values                          []struct {
				Value, Status string
				Count         int
				Standard      *standardRow
				Suggestions   []termRow
			}
		}
		e.jsonOut(&ins, "ontology", "inspect", "celltype", "--column", "cell_type", filepath.Join(samples, "pbmc_small_obs.csv"), "--format", "json")
		expected := readTSV(t, filepath.Join(samples, "pbmc_small.expected.tsv"))
		n := 0
		for _, row := range expected {
			if row["field"] != "cell_type" {
				continue
			}
			n++
			i := slices.IndexFunc(ins.Values, func(v struct {
				Value, Status string
				Count         int
				Standard      *standardRow
				Suggestions   []termRow
			}) bool {
				return v.Value == row["value"]
			})
			if i < 0 {
				t.Errorf("inspect lacks %q", row["value"])
				continue
			}
			v := ins.Values[i]
			if row["n_cells"] != strconv.Itoa(v.Count) {
				t.Errorf("%q: count %d, want %s", v.Value, v.Count, row["n_cells"])
			}
			switch row["match_type"] {
			case "exact_label":
				if v.Status != "valid" {
					t.Errorf("%q: %s, want valid", v.Value, v.Status)
				}
			case "synonym_exact", "label_case_or_whitespace":
				if v.Status != "mapped" || v.Standard.ID != row["term_id"] || v.Standard.Standard != row["term_label"] {
					t.Errorf("%q: %+v %+v, want %s %s", v.Value, v, v.Standard, row["term_id"], row["term_label"])
				}
			case "no_match":
				if v.Status != "unknown" {
					t.Errorf("%q: %s, want unknown", v.Value, v.Status)
				}
				if want, ok := strings.CutPrefix(row["note"], "closest label: "); ok {
					if len(v.Suggestions) == 0 || len(v.Suggestions) > 3 || v.Suggestions[0].Name+" ("+v.Suggestions[0].ID+")" != want {
						t.Errorf("%q: suggestions %+v, want %s first", v.Value, v.Suggestions, want)
					}
				}
			default:
				t.Errorf("unexpected match type %q", row["match_type"])
			}
		}
		if n != len(ins.Values) || ins.Validated+ins.Mapped+ins.Failed != n || ins.Rows != 315 {
			t.Fatalf("inspect: %d expected values, got %+v", n, ins)
		}
		out := e.ok("ontology", "inspect", "celltype", "--column", "cell_type", filepath.Join(samples, "pbmc_small_obs.csv"))
		for _, w := range []string{"did you mean dendritic cell (CL:0000451)", "-> T cell (CL:0000084)", "8 valid, 5 map to a standard term, 2 not found"} {
			if !strings.Contains(out, w) {
				t.Errorf("inspect table lacks %q:\n%s", w, out)
			}
		}
		tsv := e.write("obs.tsv", []byte("cell\tcell_type\nc1\tT cell\nc2\t\nc3\tT-cell\n"))
		var small struct{ Rows, Empty, Validated, Mapped int }
		e.jsonOut(&small, "ontology", "inspect", "celltype", "--column", "cell_type", tsv, "--format", "json")
		if small.Rows != 3 || small.Empty != 1 || small.Validated != 1 || small.Mapped != 1 {
			t.Fatalf("tsv inspect: %+v", small)
		}
		e.fails(`has no column "celltype"`, "ontology", "inspect", "celltype", "--column", "celltype", tsv)
	})

	t.Run("show", func(t *testing.T) {
		e := e.sub(t)
		var term struct {
			ID, Name string
			Parents  []termRow
			Children int
		}
		e.jsonOut(&term, "ontology", "show", "celltype", "CL:0000084", "--format", "json")
		if term.Name != "T cell" || len(term.Parents) == 0 || term.Parents[0].Name != "lymphocyte" || term.Children == 0 {
			t.Fatalf("show by id: %+v", term)
		}
		out := e.ok("ontology", "show", "celltype", "T cell")
		if !strings.Contains(out, "T-cell (EXACT)") || !strings.Contains(out, "lymphocyte (CL:0000542)") {
			t.Fatalf("show:\n%s", out)
		}
		var ts []termRow
		e.jsonOut(&ts, "ontology", "show", "celltype", "T cell", "--children", "--format", "json")
		if !slices.Contains(ts, termRow{"CL:0000789", "alpha-beta T cell"}) {
			t.Fatalf("children: %+v", ts)
		}
		e.jsonOut(&ts, "ontology", "show", "celltype", "T cell", "--ancestors", "--format", "json")
		if ts[0].ID != "CL:0000542" || !slices.Contains(ts, termRow{"CL:0000000", "cell"}) {
			t.Fatalf("ancestors: %+v", ts)
		}
		e.jsonOut(&ts, "ontology", "show", "celltype", "T cell", "--descendants", "--format", "json")
		if !slices.Contains(ts, termRow{"CL:0000624", "CD4-positive, alpha-beta T cell"}) {
			t.Fatalf("descendants: %d terms", len(ts))
		}
		e.jsonOut(&ts, "ontology", "show", "celltype", "CL:0000084", "--parents", "--part-of", "--format", "json")
		if len(ts) == 0 {
			t.Fatal("parents --part-of: none")
		}
		err := e.fails(`did you mean "dendritic cell" (CL:0000451)`, "ontology", "show", "celltype", "dendritc cell")
		if codeOf(err) != 1 {
			t.Fatalf("unknown term exit %d", codeOf(err))
		}
		e.fails("pick one of", "ontology", "show", "celltype", "T cell", "--parents", "--children")
	})

	t.Run("usage errors exit 2", func(t *testing.T) {
		e := e.sub(t)
		for _, args := range [][]string{
			{"ontology", "search", "celltype"},
			{"ontology", "validate"},
			{"ontology", "sources", "--format", "yaml"},
			{"ontology", "inspect", "celltype", "--column", "x"},
		} {
			if _, _, err := e.run(args...); codeOf(err) != 2 {
				t.Errorf("lamina %s: exit %d (%v), want 2", strings.Join(args, " "), codeOf(err), err)
			}
		}
	})
}

// TestOntologyPartOf checks --part-of against Uberon, which has part_of edges.
func TestOntologyPartOf(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("ontology", "import", "tissue", "--source", filepath.Join(ontologies, "uberon-efo-slim.obo"))
	var isA, both []termRow
	e.jsonOut(&isA, "ontology", "show", "tissue", "nose", "--parents", "--format", "json")
	e.jsonOut(&both, "ontology", "show", "tissue", "nose", "--parents", "--part-of", "--format", "json")
	if slices.Contains(isA, termRow{"UBERON:0000033", "head"}) || !slices.Contains(both, termRow{"UBERON:0000033", "head"}) {
		t.Fatalf("is_a parents %+v; with part_of %+v", isA, both)
	}
	// A term with ancestors only by part_of, which queries follow, says
	// so rather than that it has none.
	out, stderr, err := e.run("ontology", "show", "tissue", "bone marrow", "--ancestors")
	if err != nil || out != "" || !strings.Contains(stderr, "has no ancestors by is_a") || !strings.Contains(stderr, "part_of") || !strings.Contains(stderr, "--part-of") {
		t.Errorf("bone marrow --ancestors: %v\n%s%s", err, out, stderr)
	}
}

func readTSV(t *testing.T, path string) []map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.Comma, r.LazyQuotes = '\t', true
	rows, err := r.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]string
	for _, row := range rows[1:] {
		m := map[string]string{}
		for i, h := range rows[0] {
			m[h] = row[i]
		}
		out = append(out, m)
	}
	return out
}

// TestInspectFormats checks that inspect reads a column of every table
// format curate reads, and that a file it cannot read gets a message
// naming the formats, never the file's bytes.
func TestInspectFormats(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("ontology", "import", "celltype", "--source", filepath.Join(ontologies, "cl-basic.obo"))
	inspect := func(e *env, file string, args ...string) inspectionJSON {
		e.t.Helper()
		var ins inspectionJSON
		e.jsonOut(&ins, append([]string{"ontology", "inspect", "celltype", "--column", "cell_type", file, "--format", "json"}, args...)...)
		if ins.File != file {
			e.t.Fatalf("inspect says file %s, not %s", ins.File, file)
		}
		ins.File = ""
		return ins
	}
	want := inspect(e, filepath.Join(samples, "pbmc_small_obs.csv"))
	if want.Rows != 315 || len(want.Values) != 15 {
		t.Fatalf("csv: %d rows, %d values", want.Rows, len(want.Values))
	}
	t.Run("read", func(t *testing.T) {
		for _, file := range []string{"pbmc_small.h5ad", "pbmc_small.zarr", "pbmc_small.zarr/", "pbmc_small_obs.parquet"} {
			t.Run(file, func(t *testing.T) {
				e := e.sub(t)
				if got := inspect(e, filepath.Join(samples, file)); !reflect.DeepEqual(got, want) {
					t.Fatalf("%s: %+v\nwant as the CSV: %+v", file, got, want)
				}
			})
		}
	})
	t.Run("gzip TSV with a byte order mark", func(t *testing.T) {
		e := e.sub(t)
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		zw.Write([]byte("\ufeffcell_type\tn\nT cell\t1\nT-cell\t2\n"))
		zw.Close()
		var ins inspectionJSON
		e.jsonOut(&ins, "ontology", "inspect", "celltype", "--column", "cell_type", e.write("bom.tsv.gz", gz.Bytes()), "--format", "json")
		if ins.Rows != 2 || ins.Validated != 1 || ins.Mapped != 1 {
			t.Fatalf("inspect: %+v", ins)
		}
	})
	// R's NA and pandas' other missing spellings are missing, as curate
	// and pandas read them, not values that fail (TestPandasMissingValues).
	t.Run("NA is missing", func(t *testing.T) {
		e := e.sub(t)
		var ins inspectionJSON
		e.jsonOut(&ins, "ontology", "inspect", "celltype", "--column", "cell_type",
			e.write("na.csv", []byte("cell_type,n\nT cell,1\nNA,2\nNaN,3\n<NA>,4\n,5\n")), "--format", "json")
		if ins.Rows != 5 || ins.Empty != 4 || ins.Validated != 1 || ins.Failed != 0 || len(ins.Values) != 1 {
			t.Fatalf("inspect: %+v", ins)
		}
	})
	t.Run("var column", func(t *testing.T) {
		e := e.sub(t)
		var ins inspectionJSON
		e.jsonOut(&ins, "ontology", "inspect", "celltype", "--column", "var.feature_type", filepath.Join(samples, "pbmc_small.h5ad"), "--format", "json")
		if ins.Rows != 50 || ins.Failed != 1 {
			t.Fatalf("var.feature_type: %+v", ins)
		}
	})
	binary := e.write("binary.csv", mustRead(t, filepath.Join(samples, "pbmc_small.h5ad")))
	if err := os.Mkdir(e.path("plain.zarr"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, file, column, want string
	}{
		{"h5ad without the column", filepath.Join(samples, "pbmc_small.h5ad"), "celltype", `has no column "celltype"; its columns: obs: _index, cell_type,`},
		{"parquet without the column", filepath.Join(samples, "pbmc_small_obs.parquet"), "celltype", `has no column "celltype"; its columns: `},
		{"fcs", filepath.Join(samples, "fcsparser_cyflow_cube_8.fcs"), "cell_type", "is an FCS file"},
		{"binary named .csv", binary, "cell_type", "does not look like a CSV or TSV table"},
		{"folder", e.path("plain.zarr"), "cell_type", "is a folder but not an AnnData zarr"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := e.sub(t)
			err := e.fails(tc.want, "ontology", "inspect", "celltype", "--column", tc.column, tc.file)
			if codeOf(err) != 2 {
				t.Errorf("exit %d, want 2", codeOf(err))
			}
			msg := err.Error()
			if strings.ContainsFunc(msg, func(r rune) bool { return r == utf8.RuneError || !unicode.IsPrint(r) }) {
				t.Errorf("the message has bytes no one can read: %q", msg)
			}
			if tc.column == "cell_type" && !strings.Contains(msg, "inspect reads CSV or TSV (gzip too), Parquet, h5ad or AnnData zarr") {
				t.Errorf("the message does not name the formats: %s", msg)
			}
		})
	}
}

// TestShowNameOfSeveralTerms: show and its walks refuse a name several
// terms have, listing them, instead of showing or walking from the first
// in the file: the Uberon module has "anatomical entity" on CARO:0000000
// and UBERON:0001062, whose children differ; org.Hs.eg.db PTPRC on two
// Ensembl ids. By id each is shown.
func TestShowNameOfSeveralTerms(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("ontology", "import", "tissue", "--source", filepath.Join(ontologies, "extra", "uberon-module-from-mondo.obo.gz"))
	e.ok("ontology", "import", "gene", "--organism", "human", "--source", filepath.Join(genes, "human_genes_orgHsEgDb.tsv.gz"))
	for _, walk := range []string{"", "--children", "--parents", "--ancestors", "--descendants"} {
		args := []string{"ontology", "show", "tissue", "anatomical entity"}
		if walk != "" {
			args = append(args, walk)
		}
		err := e.fails(`"anatomical entity" names several tissue terms in UBERON`, args...)
		if code := exitCode(err); code != 1 || !strings.Contains(explain(err), "anatomical entity (CARO:0000000), anatomical entity (UBERON:0001062); show one by its id") {
			t.Errorf("show %s: exit %d, %s", walk, code, explain(err))
		}
	}
	var kids []relatedJSON
	e.jsonOut(&kids, "ontology", "show", "tissue", "UBERON:0001062", "--children", "--format", "json")
	if len(kids) == 0 {
		t.Error("UBERON:0001062 has no children")
	}
	err := e.fails(`"PTPRC" names several gene terms`, "ontology", "show", "gene", "--organism", "human", "PTPRC")
	if !strings.Contains(explain(err), "PTPRC (ENSG00000081237), PTPRC (ENSG00000262418)") || exitCode(err) != 1 {
		t.Errorf("show PTPRC: %s", explain(err))
	}
	e.ok("ontology", "show", "gene", "--organism", "human", "ENSG00000081237")
}
