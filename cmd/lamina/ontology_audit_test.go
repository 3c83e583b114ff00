package main

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/curate"
)

// TestInspectTableChecks: inspect read a CSV more loosely than curate. Of
// two columns named cell_type it inspected the last; a short row counted
// as a missing value and a long row was read. Both are refused now, with
// curate's words, exit 2.
func TestInspectTableChecks(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("ontology", "import", "celltype", "--source", filepath.Join(ontologies, "cl-basic.obo"))
	for _, tc := range []struct{ name, text, want string }{
		{"duplicate column", "cell_type,cell_type\nT cell,B cell\n", "cell_type: more than one column has this name; rename or remove all but one"},
		{"short row", "cell_type,n\nT cell,1\nB cell\n", "cannot read the file's structure: line 3: wrong number of fields"},
		{"long row", "cell_type,n\nT cell,1\nB cell,2,3\n", "cannot read the file's structure: line 3: wrong number of fields"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := e.sub(t)
			path := e.write(strings.ReplaceAll(tc.name, " ", "_")+".csv", []byte(tc.text))
			err := e.fails(tc.want, "ontology", "inspect", "celltype", "--column", "cell_type", path)
			if codeOf(err) != 2 {
				t.Errorf("exit %d, want 2", codeOf(err))
			}
		})
	}
}

// TestInspectCapsSuggestions: inspect looked for suggestions for every
// value not found (20,000 took 7.6 s against CL, a barcode column
// minutes) and listed every one. As curate, only the curate.MaxListed
// most frequent get suggestions and are listed; the rest are counted, and
// the JSON has every value.
func TestInspectCapsSuggestions(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("ontology", "import", "celltype", "--source", filepath.Join(ontologies, "cl-basic.obo"))
	var b strings.Builder
	b.WriteString("cell_type\n")
	const unknown = 300
	for i := range unknown {
		fmt.Fprintf(&b, "ACGTACGT-%04d\n", i)
	}
	b.WriteString("T cell\nT cell\nhepatocyt\nhepatocyt\nhepatocyt\n") // the most frequent unknown value
	path := e.write("barcodes.csv", []byte(b.String()))

	out := e.ok("ontology", "inspect", "celltype", "--column", "cell_type", path)
	if n := strings.Count(out, "ACGTACGT-"); n != curate.MaxListed-1 {
		t.Errorf("%d barcodes listed, want %d (with hepatocyt, %d values not found)", n, curate.MaxListed-1, curate.MaxListed)
	}
	if !regexp.MustCompile(`\nhepatocyt +3 +unknown +did you mean hepatocyte`).MatchString(out) {
		t.Errorf("the most frequent unknown value is not listed with its suggestion:\n%s", out)
	}
	more := unknown + 1 - curate.MaxListed
	if want := fmt.Sprintf("… and %d more values not found (%d rows), not listed: --format json lists them all", more, more); !strings.Contains(out, want) {
		t.Errorf("no %q in:\n%s", want, out)
	}
	var ins inspectionJSON
	e.jsonOut(&ins, "ontology", "inspect", "celltype", "--column", "cell_type", path, "--format", "json")
	if len(ins.Values) != unknown+2 || ins.Failed != unknown+1 || ins.Unsuggested != more {
		t.Fatalf("json: %d values, %d failed, %d unsuggested", len(ins.Values), ins.Failed, ins.Unsuggested)
	}
	for _, v := range ins.Values {
		if v.Value == "hepatocyt" && (len(v.Suggestions) == 0 || v.Suggestions[0].Name != "hepatocyte") {
			t.Errorf("hepatocyt: suggestions %+v", v.Suggestions)
		}
	}
}

// TestInspectShowsValues: inspect printed a 1.2 MB value whole (padded
// into a 3.6 MB table); curate printed the long value whole too. Both cut
// it with its length; the JSON keeps the value whole. (Bytes that are not
// UTF-8 were shown raw, then escaped; a CSV of them is now refused, with
// where: TestLatin1CSV.)
func TestInspectShowsValues(t *testing.T) {
	e := annotEnv(t)
	e.ok("schema", "create", "ct", "--feature", "cell_type")
	long := strings.Repeat("A", 1200000)
	path := e.write("odd.csv", []byte("cell_type\n"+long+"\nT cell\n"))
	out := e.ok("ontology", "inspect", "celltype", "--column", "cell_type", path)
	if len(out) > 10000 || !strings.Contains(out, strings.Repeat("A", curate.MaxShown)+"… (1200000 bytes)") {
		t.Errorf("inspect printed %d bytes:\n%.2000s", len(out), out)
	}
	stdout, _, err := e.run("curate", path, "--schema", "ct")
	if codeOf(err) != 1 || len(stdout) > 10000 || !strings.Contains(stdout, `"`+strings.Repeat("A", curate.MaxShown)+`…" (1200000 bytes)`) {
		t.Errorf("curate: exit %d, %d bytes:\n%.2000s", codeOf(err), len(stdout), stdout)
	}
	var ins inspectionJSON
	e.jsonOut(&ins, "ontology", "inspect", "celltype", "--column", "cell_type", path, "--format", "json")
	if len(ins.Values) != 2 || ins.Values[0].Value != long {
		t.Errorf("json does not keep the value whole")
	}
}

// TestValuesFileBOM: a byte order mark stayed in the first value read
// from --file or stdin, which then failed as "\ufeffT cell".
func TestValuesFileBOM(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("ontology", "import", "celltype", "--source", filepath.Join(ontologies, "cl-basic.obo"))
	path := e.write("values.txt", []byte("\ufeffT cell\r\nB cell\r\n"))
	e.ok("ontology", "validate", "celltype", "--file", path)
	var rows []standardRow
	e.jsonOut(&rows, "ontology", "standardize", "celltype", "--file", path, "--format", "json")
	if len(rows) != 2 || rows[0].Value != "T cell" || rows[0].ID != "CL:0000084" {
		t.Errorf("standardize: %+v", rows)
	}
	cmd := e.child("ontology", "validate", "celltype")
	cmd.Stdin = strings.NewReader("\ufeffT cell\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("validate from stdin: %v\n%s", err, out)
	}
}

// TestTermWithoutName: OBO allows a term without a name. It showed as
// " (X:1) has no parents", "X:1 ()", "->" with nothing after it, and as a
// parent "(not in X)" though it is in X. The id stands alone now.
func TestTermWithoutName(t *testing.T) {
	e := newEnv(t)
	e.init()
	obo := e.write("noname.obo", []byte("format-version: 1.2\n\n[Term]\nid: X:1\n\n[Term]\nid: X:2\nname: two\nis_a: X:1\n"))
	e.ok("ontology", "import", "custom", "--source", obo)
	_, stderr, err := e.run("ontology", "show", "custom", "X:1", "--parents")
	if err != nil || !strings.HasPrefix(stderr, "X:1 has no parents") {
		t.Errorf("show --parents: %v %q", err, stderr)
	}
	if out := e.ok("ontology", "show", "custom", "X:2", "--parents"); strings.Contains(out, "not in") {
		t.Errorf("a parent without a name is said to be outside the source:\n%s", out)
	}
	if out := e.ok("ontology", "standardize", "custom", "x:1"); !strings.Contains(out, "-> X:1") {
		t.Errorf("standardize:\n%s", out)
	}
	if out := e.ok("ontology", "validate", "custom", "X:1"); strings.Contains(out, "()") {
		t.Errorf("validate:\n%s", out)
	}
	csv := e.write("x.csv", []byte("c\nx:1\n"))
	if out := e.ok("ontology", "inspect", "custom", "--column", "c", csv); !strings.Contains(out, "-> X:1: id X:1") {
		t.Errorf("inspect:\n%s", out)
	}
}

// TestNotTermArticle: "is not a organism term".
func TestNotTermArticle(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("ontology", "import", "organism", "--source", filepath.Join(ontologies, "ncbitaxon-taxslim.obo.gz"))
	e.ok("feature", "create", "organism", "--dtype", "cat[organism]")
	e.fails(`"martian" is not an organism term`, "ls", "--where", "organism=martian")
}

// TestImportUnsupportedFormat: an OWL file failed with the OBO parser's
// `expected "tag: value", got "<?xml…"`, an OBO Graphs JSON file with
// `invalid cellxgene JSON: json: cannot unmarshal array`. Both are named
// now, with the OBO file to import instead.
func TestImportUnsupportedFormat(t *testing.T) {
	e := newEnv(t)
	e.init()
	// The head of CL's cl-basic.owl release (RDF/XML).
	owl := e.write("cl-basic.owl", []byte(`<?xml version="1.0"?>
<rdf:RDF xmlns="http://purl.obolibrary.org/obo/cl/cl-basic.owl#"
     xml:base="http://purl.obolibrary.org/obo/cl/cl-basic.owl"
     xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
    <owl:Ontology rdf:about="http://purl.obolibrary.org/obo/cl/cl-basic.owl"/>
</rdf:RDF>
`))
	graphs := filepath.Join(ontologies, "obo-compliance", "is_a", "is_a.expected.json")
	for _, tc := range []struct{ source, want string }{
		{owl, "cl-basic.owl: this is OWL (XML), which lamina does not read: import the release's OBO file instead, cl-basic.obo beside cl-basic.owl"},
		{graphs, "is_a.expected.json: this is OBO Graphs JSON, which lamina does not read: import the release's OBO file instead, is_a.expected.obo beside"},
	} {
		err := e.fails(tc.want, "ontology", "import", "custom", "--source", tc.source)
		if !strings.Contains(err.Error(), "cl-basic.obo") {
			t.Errorf("%v: names no OBO file", err)
		}
	}
}

// TestWhereOrderOnText: --where compared a cat[…] feature's stored text
// by bytes, in both catalogs: cell_type>=lymphocyte found "monocyte".
// Ordering operators on categorical and str features are refused (exit 2);
// numbers still order, and != on a term still works.
func TestWhereOrderOnText(t *testing.T) {
	onBothCatalogs(t, func(t *testing.T, e *env) {
		e.ok("ontology", "import", "celltype", "--source", filepath.Join(ontologies, "cl-basic.obo"))
		e.ok("feature", "create", "cell_type", "--dtype", "cat[celltype]")
		e.ok("feature", "create", "condition", "--dtype", "cat[ULabel]")
		e.ok("feature", "create", "batch", "--dtype", "int")
		e.ok("feature", "create", "donor", "--dtype", "str")
		e.ok("label", "create", "treated")
		path := e.write("a.csv", []byte("x\n1\n"))
		e.ok("save", path, "--key", "t/a.csv")
		e.ok("annotate", "t/a.csv", "--feature", "cell_type=monocyte", "--feature", "batch=3", "--feature", "donor=d2", "--feature", "condition=treated")
		for _, w := range []string{"cell_type>=lymphocyte", "cell_type<z", "donor>d1", "condition<=treated"} {
			err := e.fails("whose values have no order: use = or !=", "ls", "--where", w)
			if codeOf(err) != 2 {
				t.Errorf("%s: exit %d, want 2", w, codeOf(err))
			}
		}
		if got := lsKeys(t, e, "--where", "batch>=2"); len(got) != 1 {
			t.Errorf("batch>=2: %v", got)
		}
		if got := lsKeys(t, e, "--where", "cell_type!=T cell"); len(got) != 1 {
			t.Errorf("cell_type!=T cell: %v", got)
		}
	})
}

// TestImportProgressTotal: the import bar counted bytes but never showed
// the total or a percentage, even when the server gave Content-Length.
func TestImportProgressTotal(t *testing.T) {
	var out lockedBuffer
	p := &progress{total: -1, desc: "importing", start: time.Now().Add(-time.Hour), w: &out}
	p.Add(0) // the bar made before the response's headers came
	p.SetTotal(1 << 20)
	p.Add(1 << 19)
	st := p.bar.State()
	p.Done()
	// The bar library renders a known total as "50% |…| (512 KiB/1.0 MiB)"
	// (its renders are throttled in time, so the text is not checked).
	if st.Max != 1<<20 || st.CurrentPercent != 0.5 {
		t.Errorf("bar state %+v: want a total of 1 MiB, half done", st)
	}
}
