package ontology_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/ontology"
)

func TestImportRealSources(t *testing.T) {
	tests := []struct {
		entity, organism string
		path             []string
		ontology         string
		version          string
		terms, obsolete  int
	}{
		{"celltype", "", []string{"ontologies", "cl-basic.obo"}, "CL", "2022-12-15", 2804, 160},
		{"celltype", "", []string{"ontologies", "cellxgene-json", "CL-ontology-v2026-03-26.json.gz"}, "CL", "2026-03-26", 3596, 272},
		{"phenotype", "", []string{"ontologies", "hp.obo.gz"}, "HP", "2014-11-14", 10829, 54},
		{"pathway", "", []string{"ontologies", "go-terms-GOdb-2022-07-01.tsv.gz"}, "GO", "2022-07-01", 47469, 3910},
		{"developmental_stage", "", []string{"ontologies", "mmusdv.obo"}, "MmusDv", "", 178, 44},
		{"developmental_stage", "human", []string{"ontologies", "hsapdv.obo"}, "HsapDv", "", 260, 21},
		{"organism", "", []string{"ontologies", "ncbitaxon-taxslim.obo.gz"}, "NCBITaxon", "", 14907, 0},
		{"gene", "", []string{"genes", "human_genes_orgHsEgDb.tsv.gz"}, "Ensembl", "", 39708, 0},
		{"gene", "mouse", []string{"genes", "gencode_genes_mus_musculus.csv.gz"}, "Ensembl", "", 78317, 0},
		{"life_stage", "", []string{"ontologies", "extra", "life-stages.obo"}, "", "2025-01-23", 1328, 75},
		// Custom entities take the ontology's name from the file: from the
		// header (ontology: cl/subsets/…), though most ids are GO; an import
		// module's from the ids it holds.
		{"blood_slim", "", []string{"ontologies", "extra", "cl-blood_and_immune_upper_slim.obo"}, "CL", "2026-06-08", 1078, 0},
		{"uberon_module", "", []string{"ontologies", "extra", "uberon-module-from-mondo.obo.gz"}, "UBERON", "2021-08-03", 7577, 0},
		{"tissue", "", []string{"ontologies", "uberon-efo-slim.obo"}, "UBERON", "", 613, 2},
		{"pathway", "", []string{"ontologies", "go-slim-generic.obo"}, "GO", "", 145, -1},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.path, "/"), func(t *testing.T) {
			src := load(t, tc.entity, tc.organism, tc.path...).Source()
			obs := 0
			for _, tm := range src.Terms {
				if tm.Obsolete {
					obs++
				}
			}
			if len(src.Terms) != tc.terms || (tc.obsolete >= 0 && obs != tc.obsolete) {
				t.Errorf("%d terms (%d obsolete), want %d (%d)", len(src.Terms), obs, tc.terms, tc.obsolete)
			}
			if tc.ontology != "" && src.Ontology != tc.ontology {
				t.Errorf("ontology %q, want %q", src.Ontology, tc.ontology)
			}
			if tc.version != "" && src.Version != tc.version {
				t.Errorf("version %q, want %q", src.Version, tc.version)
			}
			if src.Entity != tc.entity || len(src.Digest) != 64 || src.Version == "" {
				t.Errorf("entity %q digest %q version %q", src.Entity, src.Digest, src.Version)
			}
			// Slims and import modules included, every parent in the
			// file's own prefix is defined in it (checkDangling).
			for _, w := range src.Warnings {
				if strings.Contains(w, "defined nowhere") {
					t.Errorf("warning %q", w)
				}
			}
			// Only the cellxgene JSON mixes is_a and part_of in its
			// parents, and the source says so.
			if json := strings.HasSuffix(tc.path[len(tc.path)-1], ".json.gz"); src.MixedParents() != json {
				t.Errorf("MixedParents = %v for %s", src.MixedParents(), tc.path[len(tc.path)-1])
			}
		})
	}
}

func TestOBODetails(t *testing.T) {
	cl := clOBO(t)
	// Escapes, qualifiers, comments and a '!' inside quotes.
	src := mustOBO(t, `format-version: 1.2
data-version: releases/2014-02-15
default-namespace: test_ns

[Term]
id: T:1
name: Müller cell   
def: "a \"quoted\" def with ! bang, {braces} and a \: colon" [PMID:1 "x, y", https://doi.org/10.1/x]
synonym: "\"T4-like viruses\"" EXACT equivalent_name []
synonym: "Herz@de" RELATED LATIN [PMID:1, PMID:2]
synonym: "no scope in 1.2" []
exact_synonym: "old style"
is_a: T:2 {is_inferred="true"} ! parent
relationship: part_of T:2 {notes="debatable"} ! parent
relationship: BFO:0000050 T:3
relationship: part_of T:9 {gci_filler="NCBITaxon:7776", gci_relation="BFO:0000050"}
relationship: dc-contributor https://orcid.org/0000-0002-2825-0621
property_value: IAO:0000116 "consider FBbt:00005541 ! cardiogenic mesoderm" xsd:string
property_value: end_dpf "3.5\"" xsd:float

[Typedef]
id: part_of
xref: BFO:0000050

[Instance]
id: I:1
whatever: ignored
`)
	if src.Version != "2014-02-15" {
		t.Errorf("version %q", src.Version)
	}
	tm := src.Terms[0]
	want := ontology.Term{
		ID: "T:1", Name: "Müller cell",
		Definition: `a "quoted" def with ! bang, {braces} and a : colon`,
		Synonyms: []ontology.Synonym{{Text: `"T4-like viruses"`, Scope: ontology.Exact}, {Text: "Herz", Scope: ontology.Related},
			{Text: "no scope in 1.2", Scope: ontology.Related}, {Text: "old style", Scope: ontology.Exact}},
		Parents: []string{"T:2"}, PartOf: []string{"T:2", "T:3"}, Namespace: "test_ns",
	}
	if fmt.Sprint(tm) != fmt.Sprint(want) {
		t.Errorf("got  %+v\nwant %+v", tm, want)
	}
	// cl-basic has no part_of at all (its part_of-like edges are
	// develops_from and taxon constraints).
	for _, id := range []string{"CL:0000084", "CL:0000236"} {
		if tm, _ := cl.Term(id); len(tm.PartOf) != 0 {
			t.Errorf("%s part_of %v", id, tm.PartOf)
		}
	}
}

func TestMalformed(t *testing.T) {
	obo := "format-version: 1.2\n\n[Term]\nid: X:1\nname: one\n\n[Term]\nid: X:2\nname: two\ndef: \"a definition\" []\n"
	gz := gzipBytes(t, []byte(obo))
	tests := []struct {
		name  string
		input []byte
		line  int
		msg   string
	}{
		{"stanza without id", []byte("format-version: 1.2\n\n[Term]\nname: nameless\n\n[Term]\nid: X:2\n"), 3, "stanza without id"},
		{"unknown escape", []byte("[Term]\nid: X:1\nname: bad \\q escape\n"), 3, `unknown escape \q`},
		{"unknown escape in quotes", []byte("[Term]\nid: X:1\ndef: \"bad \\x\" []\n"), 3, `unknown escape \x`},
		{"truncated quote", []byte(obo[:len(obo)-6]), 10, "unterminated quoted string"},
		{"truncated stanza header", []byte("[Term]\nid: X:1\n\n[Ter"), 4, "no closing ']'"},
		{"truncated gzip", gz[:len(gz)/2], 0, "ends early"},
		{"gzip bad checksum", corruptTrailer(gz), 0, "checksum"},
		{"line without tag", []byte("[Term]\nid: X:1\njust words\n"), 3, `expected "tag: value"`},
		{"duplicate id", []byte("[Term]\nid: X:1\n\n[Term]\nid: X:1\n"), 4, "duplicate term id X:1 (first defined at line 1)"},
		{"unterminated qualifiers", []byte("[Term]\nid: X:1\nis_a: X:2 {a=\"b\"\n"), 3, "unterminated qualifier"},
		{"json truncated", []byte("{\"CL:1\": {\"label\": \"a\",\n \"ancestors\": {}"), 2, "truncated"},
		{"json wrong type", []byte("{\"CL:1\": {\"label\": 5}}"), 1, "invalid cellxgene JSON"},
		{"go table short row", []byte("go_id\tname\tnamespace\tdefinition\tsynonyms\talt_ids\tis_a\tpart_of\tregulates\tnegatively_regulates\tpositively_regulates\tis_obsolete\nGO:1\tx\n"), 2, "expected 12"},
		{"gene table short row", []byte("ensembl_gene_id\tsymbol\tncbi_gene_id\tname\tgene_type\tchromosome\tsynonyms\nENSG1\tA\n"), 2, "expected 7"},
		{"empty", nil, 1, "empty input"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src, err := ontology.Read(bytes.NewReader(tc.input), "bad.obo", ontology.ImportOptions{Entity: "custom"})
			if err == nil {
				t.Fatalf("accepted: %d terms", len(src.Terms))
			}
			var se *ontology.SyntaxError
			if !errors.As(err, &se) || se.File != "bad.obo" || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %v, want a SyntaxError for bad.obo containing %q", err, tc.msg)
			}
			if tc.line > 0 && se.Line != tc.line {
				t.Errorf("line %d, want %d (%v)", se.Line, tc.line, err)
			}
			if tc.line == 0 && se.Line <= 0 {
				t.Errorf("no line in %v", err)
			}
		})
	}
	// The gzip whole is fine, and read the same as the plain text: one
	// content, one digest (a source imported plain and gzipped was two).
	a, err1 := ontology.ReadOBO(bytes.NewReader(gz), "ok.obo.gz")
	b, err2 := ontology.ReadOBO(strings.NewReader(obo), "ok.obo")
	if err1 != nil || err2 != nil || fmt.Sprint(a.Terms) != fmt.Sprint(b.Terms) || a.Digest != b.Digest {
		t.Errorf("gzip and plain: %v %v, same terms %v, digests %s %s", err1, err2, fmt.Sprint(a.Terms) == fmt.Sprint(b.Terms), a.Digest, b.Digest)
	}
}

func gzipBytes(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func corruptTrailer(gz []byte) []byte {
	c := bytes.Clone(gz)
	c[len(c)-8] ^= 0xff // CRC-32 of the content
	return c
}

func TestEntities(t *testing.T) {
	want := map[string]string{"celltype": "CL", "tissue": "UBERON", "disease": "MONDO", "phenotype": "HP", "pathway": "GO",
		"experimental_factor": "EFO", "organism": "NCBITaxon", "gene": "Ensembl"}
	for name, ont := range want {
		e, ok := ontology.LookupEntity(name)
		if !ok || e.OntologyFor("") != ont {
			t.Errorf("%s -> %q, want %s", name, e.OntologyFor(""), ont)
		}
	}
	ds, _ := ontology.LookupEntity("developmental_stage")
	if ds.OntologyFor("human") != "HsapDv" || ds.OntologyFor("Mus musculus") != "MmusDv" {
		t.Errorf("developmental_stage: %q %q", ds.OntologyFor("human"), ds.OntologyFor("Mus musculus"))
	}
	if len(ontology.Entities()) != 9 {
		t.Errorf("%d entities", len(ontology.Entities()))
	}
	ctx := context.Background()
	// The wrong file for an entity is refused.
	_, err := ontology.Import(ctx, dataPath("ontologies", "hp.obo.gz"), ontology.ImportOptions{Entity: "celltype"})
	if err == nil || !strings.Contains(err.Error(), "no CL terms") {
		t.Errorf("hp.obo as celltype: %v", err)
	}
	_, err = ontology.Import(ctx, dataPath("ontologies", "hsapdv.obo"), ontology.ImportOptions{Entity: "developmental_stage", Organism: "mouse"})
	if err == nil || !strings.Contains(err.Error(), "no MmusDv terms") {
		t.Errorf("hsapdv as mouse: %v", err)
	}
	_, err = ontology.Import(ctx, dataPath("genes", "gencode_genes_mus_musculus.csv.gz"), ontology.ImportOptions{Entity: "gene", Organism: "human"})
	if err == nil || !strings.Contains(err.Error(), "mouse genes") {
		t.Errorf("mouse genes as human: %v", err)
	}
	_, err = ontology.Import(ctx, dataPath("ontologies", "no-such.obo"), ontology.ImportOptions{Entity: "celltype"})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	_, err = ontology.Import(ctx, dataPath("ontologies", "hsapdv.obo"), ontology.ImportOptions{Entity: "Bad Name"})
	if err == nil {
		t.Error("bad entity name accepted")
	}
}

func TestImportURL(t *testing.T) {
	body, err := os.ReadFile(dataPath("ontologies", "hp.obo.gz"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/hp.obo.gz", "/renamed": // gzip is found by its magic bytes, not the name
			w.Write(body)
		case "/truncated.obo.gz":
			w.Write(body[:len(body)/3])
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	local := hpo(t).Source()
	for _, p := range []string{"/hp.obo.gz", "/renamed"} {
		src, err := ontology.Import(ctx, srv.URL+p, ontology.ImportOptions{Entity: "phenotype"})
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if src.Digest != local.Digest || len(src.Terms) != len(local.Terms) || src.Version != "2014-11-14" {
			t.Errorf("%s: digest %s terms %d version %s; local %s %d", p, src.Digest, len(src.Terms), src.Version, local.Digest, len(local.Terms))
		}
	}
	_, err = ontology.Import(ctx, srv.URL+"/truncated.obo.gz", ontology.ImportOptions{Entity: "phenotype"})
	var se *ontology.SyntaxError
	if !errors.As(err, &se) || se.File != srv.URL+"/truncated.obo.gz" || se.Line <= 0 || !strings.Contains(err.Error(), "truncated gzip") {
		t.Errorf("truncated download: %v", err)
	}
	_, err = ontology.Import(ctx, srv.URL+"/missing.obo", ontology.ImportOptions{Entity: "phenotype"})
	if !errors.Is(err, ontology.ErrNotFound) || !strings.Contains(err.Error(), "404") {
		t.Errorf("404: %v", err)
	}

	// A port nothing listens on: take a free one and close it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String() + "/hp.obo"
	l.Close()
	client := &http.Client{Timeout: 5 * time.Second}
	_, err = ontology.Import(ctx, dead, ontology.ImportOptions{Entity: "phenotype", Client: client})
	if err == nil || !strings.Contains(err.Error(), "cannot fetch "+dead) {
		t.Errorf("unreachable URL: %v", err)
	}
}

// A source that is not UTF-8 is refused with the file and line; a plain
// source whose last line has no newline (cut short, or written so) is read
// with a warning naming that line.
func TestEncodingAndCutLastLine(t *testing.T) {
	latin := "format-version: 1.2\nontology: x\n\n[Term]\nid: X:1\nname: caf\xe9 cell\n"
	_, err := ontology.ReadOBO(strings.NewReader(latin), "latin.obo")
	var se *ontology.SyntaxError
	if !errors.As(err, &se) || se.Line != 6 || !strings.Contains(err.Error(), "latin.obo:6: not UTF-8 (byte 0xe9 at column 10)") {
		t.Errorf("Latin-1 OBO: %v; want a syntax error at line 6", err)
	}
	tsv := "ensembl_gene_id\tsymbol\tncbi_gene_id\tname\tgene_type\tchromosome\tsynonyms\nENSG1\tCAF\xc9\t1\tx\tprotein-coding\t1\t\n"
	if _, err := ontology.ReadGeneTable(strings.NewReader(tsv), "latin.tsv"); err == nil || !strings.Contains(err.Error(), "latin.tsv:2: not UTF-8") {
		t.Errorf("Latin-1 gene table: %v", err)
	}
	utf16 := "\xff\xfee\x00n\x00s\x00\n\x00"
	if _, err := ontology.ReadGeneTable(strings.NewReader(utf16), "u16.tsv"); err == nil || !strings.Contains(err.Error(), "u16.tsv:1: the file is UTF-16 (byte-order mark 0xff 0xfe), not UTF-8: convert it to UTF-8 first (iconv -f utf-16 -t utf-8, say)") {
		t.Errorf("UTF-16 gene table: %v", err)
	}

	hsapdv, err := os.ReadFile(dataPath("ontologies", "hsapdv.obo"))
	if err != nil {
		t.Fatal(err)
	}
	genes := []byte("ensembl_gene_id\tsymbol\tncbi_gene_id\tname\tgene_type\tchromosome\tsynonyms\n" +
		"ENSG00000067596\tDHX8\t1659\tDEAH-box helicase 8\tprotein-coding\t17\tDDX8|Dhr2|HRH1|PRP22\n")
	for _, tc := range []struct {
		name string
		read func(io.Reader, string) (*ontology.Source, error)
		data []byte
		line string
	}{
		{"trunc.obo", ontology.ReadOBO, hsapdv[:50000], fmt.Sprintf("trunc.obo:%d:", bytes.Count(hsapdv[:50000], []byte("\n"))+1)},
		{"trunc.tsv", ontology.ReadGeneTable, genes[:len(genes)-3], "trunc.tsv:2:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, err := tc.read(bytes.NewReader(tc.data), tc.name)
			if err != nil {
				t.Fatal(err)
			}
			if w := strings.Join(src.Warnings, "\n"); !strings.Contains(w, tc.line+" the last line ends without a newline") {
				t.Errorf("warnings %q; want one naming %s", w, tc.line)
			}
			whole, err := tc.read(bytes.NewReader(append(tc.data, '\n')), tc.name)
			if err != nil || slices.ContainsFunc(whole.Warnings, func(w string) bool { return strings.Contains(w, "newline") }) {
				t.Errorf("with its newline: %v %q", err, whole.Warnings)
			}
		})
	}
}

// A plain (not gzip) download cut short is not called a truncated gzip.
func TestImportURLCutShort(t *testing.T) {
	body, err := os.ReadFile(dataPath("ontologies", "cl-basic.obo"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Promise the whole file, send a third: the client sees the
		// connection end early (io.ErrUnexpectedEOF).
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.Write(body[:len(body)/3])
	}))
	defer srv.Close()
	_, err = ontology.Import(context.Background(), srv.URL+"/cl-basic.obo", ontology.ImportOptions{Entity: "celltype"})
	var se *ontology.SyntaxError
	if !errors.As(err, &se) || se.Line <= 0 || !errors.Is(err, io.ErrUnexpectedEOF) ||
		!strings.Contains(err.Error(), "input ends early") || strings.Contains(err.Error(), "gzip") {
		t.Errorf("plain download cut short: %v; want a SyntaxError with a line, saying it ends early, not gzip", err)
	}
}

// An OBO file cut at a line boundary parses cleanly; its parents in its
// own prefix that no stanza defines give it away, and the import is
// refused unless AllowDangling, which imports it with a warning.
func TestImportRefusesCutFile(t *testing.T) {
	body, err := os.ReadFile(dataPath("ontologies", "cl-basic.obo"))
	if err != nil {
		t.Fatal(err)
	}
	cut := body[:600000]
	cut = cut[:bytes.LastIndexByte(cut, '\n')+1] // head -c 600000 | sed '$d'
	p := filepath.Join(t.TempDir(), "t.obo")
	if err := os.WriteFile(p, cut, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	src, err := ontology.Import(ctx, p, ontology.ImportOptions{Entity: "celltype"})
	var se *ontology.SyntaxError
	want := "104 of the 573 parents in CL are defined nowhere in the file (CL:0002251, CL:0002252, CL:0002253, …): is it truncated?"
	if !errors.As(err, &se) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "--allow-dangling") {
		t.Fatalf("cut CL: %v (%d terms); want %q", err, len(src.Terms), want)
	}
	src, err = ontology.Import(ctx, p, ontology.ImportOptions{Entity: "celltype", AllowDangling: true})
	if err != nil || len(src.Terms) != 1303 || !slices.ContainsFunc(src.Warnings, func(w string) bool { return strings.Contains(w, want) }) {
		t.Fatalf("cut CL with AllowDangling: %v, warnings %q", err, src.Warnings)
	}
	// Reading without an entity only warns.
	if src, err := ontology.ReadOBO(bytes.NewReader(cut), "t.obo"); err != nil || !slices.ContainsFunc(src.Warnings, func(w string) bool { return strings.Contains(w, want) }) {
		t.Errorf("ReadOBO of cut CL: %v", err)
	}
}

// A line over the cap is refused with its file and line, in an OBO file
// and a table, before it is all in memory.
func TestLongLineRefused(t *testing.T) {
	long := strings.Repeat("a", 2<<20)
	for _, tc := range []struct{ name, text, want string }{
		{"long.obo", "format-version: 1.2\n\n[Term]\nid: X:1\nname: " + long + "\n", "long.obo:5: line longer than 1 MiB"},
		{"long.obo", "format-version: 1.2\n\n[Term]\nid: X:1\nname: a\\\n" + long + "\n", "long.obo:6: line longer than 1 MiB"},
		{"long.tsv", strings.Join(goColumnsForTest, "\t") + "\nGO:1\t" + long + "\n", "long.tsv:2: line longer than 1 MiB"},
	} {
		_, err := ontology.Read(strings.NewReader(tc.text), tc.name, ontology.ImportOptions{Entity: "custom"})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want %q", tc.name, err, tc.want)
		}
	}
	// A line just under the cap is fine.
	ok := "format-version: 1.2\n\n[Term]\nid: X:1\nname: " + long[:1<<20-100] + "\n"
	if _, err := ontology.Read(strings.NewReader(ok), "ok.obo", ontology.ImportOptions{Entity: "custom"}); err != nil {
		t.Errorf("line under the cap: %v", err)
	}
}

var goColumnsForTest = []string{"go_id", "name", "namespace", "definition", "synonyms", "alt_ids", "is_a", "part_of", "regulates", "negatively_regulates", "positively_regulates", "is_obsolete"}
