package main

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/lamina-bio/lamina/catalog"
)

// Two versions of a small cell ontology: the second renames CL:0000136
// (fat cell → adipocyte) and makes CL:0000003 obsolete, replaced by
// CL:0000000.
const (
	cellsV1 = `format-version: 1.2
data-version: v1
ontology: cl

[Term]
id: CL:0000000
name: cell

[Term]
id: CL:0000499
name: connective tissue cell
is_a: CL:0000000 ! cell

[Term]
id: CL:0000136
name: fat cell
is_a: CL:0000499 ! connective tissue cell

[Term]
id: CL:0000003
name: native cell
is_a: CL:0000000 ! cell
`
	cellsV2 = `format-version: 1.2
data-version: v2
ontology: cl

[Term]
id: CL:0000000
name: cell

[Term]
id: CL:0000499
name: connective tissue cell
is_a: CL:0000000 ! cell

[Term]
id: CL:0000136
name: adipocyte
is_a: CL:0000499 ! connective tissue cell

[Term]
id: CL:0000003
name: obsolete native cell
is_obsolete: true
replaced_by: CL:0000000
`
)

// Stages are placed by part_of (HsapDv): the README's query for "adult
// stage" finds a version annotated with a stage inside it.
func TestStageQueriesFollowPartOf(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("ontology", "import", "developmental_stage", "--organism", "human", "--source", filepath.Join(ontologies, "hsapdv.obo"))
	e.ok("feature", "create", "stage", "--dtype", "cat[developmental_stage]")
	e.ok("save", e.write("x.csv", []byte("a\n")), "--key", "s/42.csv")
	e.ok("annotate", "s/42.csv", "--feature", "stage=42-year-old stage")
	for _, args := range [][]string{
		{"--term", "developmental_stage=adult stage", "--organism", "human"},
		{"--term", "developmental_stage=fifth decade stage"},
		{"--where", "stage=adult stage"},
	} {
		if got := lsKeys(t, e, args...); !reflect.DeepEqual(got, []string{"s/42.csv"}) {
			t.Errorf("ls %v = %v, want [s/42.csv]", args, got)
		}
	}
	if got := lsKeys(t, e, "--term", "developmental_stage=adult stage", "--exact"); len(got) != 0 {
		t.Errorf("ls --exact of adult stage = %v, want nothing", got)
	}
}

// Versions annotated under v1 are found after v2 became the default: by
// the renamed term's new name, its id or an ancestor (--where compares
// stored names, so it adds the names every imported version gives the
// ids), and by an obsolete id with --exact (which keeps that id beside
// its replacement, and says so on stderr).
func TestQueryAcrossOntologyVersions(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("ontology", "import", "celltype", "--source", e.write("cl1.obo", []byte(cellsV1)))
	e.ok("feature", "create", "cell_type", "--dtype", "cat[celltype]")
	x := e.write("x.csv", []byte("a\n"))
	e.ok("save", x, "--key", "v/fat.csv")
	e.ok("annotate", "v/fat.csv", "--feature", "cell_type=fat cell")
	e.ok("save", e.write("y.csv", []byte("b\n")), "--key", "v/native.csv")
	e.ok("annotate", "v/native.csv", "--feature", "cell_type=native cell")
	e.ok("ontology", "import", "celltype", "--source", e.write("cl2.obo", []byte(cellsV2)))

	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--where", "cell_type=CL:0000136"}, []string{"v/fat.csv"}},
		{[]string{"--where", "cell_type=adipocyte"}, []string{"v/fat.csv"}},
		{[]string{"--where", "cell_type=fat cell"}, []string{"v/fat.csv"}},
		{[]string{"--where", "cell_type=connective tissue cell"}, []string{"v/fat.csv"}},
		{[]string{"--cell-type", "adipocyte"}, []string{"v/fat.csv"}},
		{[]string{"--cell-type", "CL:0000003", "--exact"}, []string{"v/native.csv"}},
		{[]string{"--where", "cell_type=CL:0000003", "--exact"}, []string{"v/native.csv"}},
		// Without --exact, also the replacement and every term below it.
		{[]string{"--where", "cell_type=CL:0000003"}, []string{"v/fat.csv", "v/native.csv"}},
		// CL:0000003, obsolete in v2, is placed by its replacement, cell:
		// below cell, not below connective tissue cell.
		{[]string{"--cell-type", "cell"}, []string{"v/fat.csv", "v/native.csv"}},
		{[]string{"--where", "cell_type=cell"}, []string{"v/fat.csv", "v/native.csv"}},
		{[]string{"--cell-type", "connective tissue cell"}, []string{"v/fat.csv"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			if got := lsKeys(t, e, tc.args...); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ls %v = %v, want %v", tc.args, got, tc.want)
			}
		})
	}
	_, stderr, err := e.run("ls", "--cell-type", "CL:0000003", "--exact", "--format", "json")
	if err != nil || !strings.Contains(stderr, "CL:0000003 is obsolete in CL v2, replaced by CL:0000000 (cell): listing versions annotated with CL:0000003, or with CL:0000000\n") {
		t.Errorf("ls --cell-type of an obsolete id: %v, stderr %q; want a note naming the replacement", err, stderr)
	}
	// "!=" lists the versions without those terms, and its note says so.
	got, stderr, err := e.run("ls", "--where", "cell_type!=CL:0000003", "--exact", "--format", "json")
	if err != nil || !strings.Contains(stderr, "CL:0000003 is obsolete in CL v2, replaced by CL:0000000 (cell): listing versions not annotated with CL:0000003, nor with CL:0000000\n") {
		t.Errorf("ls --where != an obsolete id: %v, stderr %q; want a note saying not", err, stderr)
	}
	if strings.Contains(got, "v/native.csv") {
		t.Errorf("ls --where != an obsolete id listed v/native.csv: %s", got)
	}
}

// TestWhereEmptyText: a text field a version lacks is empty, so
// "--where suffix=" lists the keys without a suffix and "suffix!=" those
// with one (as otype and description).
func TestWhereEmptyText(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("save", e.write("a.csv", []byte("x\n1\n")), "--key", "d/a.csv", "--description", "counts")
	e.ok("save", e.write("README", []byte("read me\n")), "--key", "d/README")
	for _, tc := range []struct {
		where string
		want  []string
	}{
		{"suffix=", []string{"d/README"}},
		{"suffix!=", []string{"d/a.csv"}},
		{"suffix!=.csv", []string{"d/README"}},
		{"description=", []string{"d/README"}},
		{"description!=", []string{"d/a.csv"}},
	} {
		var rows []struct {
			Key string `json:"key"`
		}
		e.jsonOut(&rows, "ls", "--where", tc.where, "--format", "json")
		var got []string
		for _, r := range rows {
			got = append(got, r.Key)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ls --where %s = %v, want %v", tc.where, got, tc.want)
		}
	}
}

// HsapDv and MmusDv share names ("adult stage", "young adult stage") and
// a stage feature stores names: a query for a mouse term must not list a
// version annotated with the human term of the same name (the terms
// record tells them apart), and without --organism a name is no term
// until an organism is picked, not a stored value to match as typed.
func TestWhereTermOfOneOrganism(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("ontology", "import", "developmental_stage", "--organism", "human", "--source", filepath.Join(ontologies, "hsapdv.obo"))
	e.ok("ontology", "import", "developmental_stage", "--organism", "mouse", "--source", filepath.Join(ontologies, "mmusdv.obo"))
	e.ok("feature", "create", "stage", "--dtype", "cat[developmental_stage]")
	for k, a := range [][]string{
		{"t/a.csv", "human", "adult stage"},       // HsapDv:0000258
		{"t/c.csv", "human", "young adult stage"}, // HsapDv:0000266
		{"t/m.csv", "mouse", "young adult stage"}, // MmusDv:0000153, part_of … mature stage
	} {
		e.ok("save", e.write(a[0], []byte(strings.Repeat("x", k+1)+"\n")), "--key", a[0])
		e.ok("annotate", a[0], "--organism", a[1], "--feature", "stage="+a[2])
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--where", "stage=MmusDv:0000153", "--organism", "mouse"}, []string{"t/m.csv"}},
		{[]string{"--where", "stage=young adult stage", "--organism", "mouse"}, []string{"t/m.csv"}},
		{[]string{"--where", "stage=adult stage", "--organism", "mouse"}, []string{"t/m.csv"}},
		{[]string{"--where", "stage=adult stage", "--organism", "human"}, []string{"t/a.csv", "t/c.csv"}},
		{[]string{"--where", "stage=young adult stage", "--organism", "human"}, []string{"t/c.csv"}},
	} {
		if got := lsKeys(t, e, tc.args...); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ls %v = %v, want %v", tc.args, got, tc.want)
		}
	}
	for _, where := range []string{"stage=adult stage", "stage=MmusDv:0000110"} {
		e.fails("pick one with --organism", "ls", "--where", where)
	}
}

// A version annotated under CL 2022-12-15 with "barrier epithelial cell"
// (CL:0000073, is_a epithelial cell), obsolete in CL 2026-03-26 (its
// replacement, CL:0000215, obsolete too), is still below epithelial cell
// once 2026 is the default: placed as 2022 places it, and stderr says so.
func TestQueryPlacesTermsObsoleteInDefault(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("ontology", "import", "celltype", "--source", filepath.Join(ontologies, "cl-basic.obo"))
	e.ok("feature", "create", "cell_type", "--dtype", "cat[celltype]")
	e.ok("save", e.write("b.csv", []byte("b\n")), "--key", "t/b.csv")
	e.ok("annotate", "t/b.csv", "--feature", "cell_type=barrier epithelial cell")
	e.ok("ontology", "import", "celltype", "--source", filepath.Join(ontologies, "cellxgene-json", "CL-ontology-v2026-03-26.json.gz"))
	for _, args := range [][]string{
		{"--cell-type", "epithelial cell"},
		{"--term", "celltype=CL:0000066"},
		{"--where", "cell_type=epithelial cell"},
	} {
		if got := lsKeys(t, e, args...); !reflect.DeepEqual(got, []string{"t/b.csv"}) {
			t.Errorf("ls %v = %v, want [t/b.csv]", args, got)
		}
	}
	if got := lsKeys(t, e, "--cell-type", "epithelial cell", "--exact"); len(got) != 0 {
		t.Errorf("ls --exact of epithelial cell = %v, want nothing", got)
	}
	_, stderr, err := e.run("ls", "--cell-type", "epithelial cell", "--format", "json")
	if err != nil || !strings.Contains(stderr, "note: 1 version listed through another ontology version than the default") ||
		!strings.Contains(stderr, "as CL 2022-12-15 places it") {
		t.Errorf("ls --cell-type epithelial cell: %v, stderr %q; want a note naming CL 2022-12-15", err, stderr)
	}
}

// `--where gene=SYMBOL` finds a version annotated under another imported
// gene table, where the symbol names another Ensembl id: MICOS10-NBL1 is
// ENSG00000270136 in GENCODE v48, ENSG00000158747 in org.Hs.eg.db.
func TestWhereGeneOfAnotherTable(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("ontology", "import", "gene", "--organism", "human", "--source", filepath.Join(genes, "human_genes_orgHsEgDb.tsv.gz"))
	var srcs []struct{ Version string }
	e.jsonOut(&srcs, "ontology", "sources", "--format", "json")
	e.ok("ontology", "import", "gene", "--organism", "human", "--source", filepath.Join(genes, "gencode_genes_homo_sapiens.csv.gz"))
	e.ok("feature", "create", "gene", "--dtype", "cat[gene]")
	e.ok("save", e.write("t2.csv", []byte("a\n")), "--key", "t/t2.csv")
	e.ok("annotate", "t/t2.csv", "--organism", "human", "--feature", "gene=MICOS10-NBL1")
	e.ok("save", e.write("t3.csv", []byte("b\n")), "--key", "t/t3.csv")
	e.ok("annotate", "t/t3.csv", "--organism", "human", "--feature", "gene=TP53")
	e.ok("ontology", "default", "gene", srcs[0].Version, "--organism", "human")
	for _, tc := range []struct {
		where string
		want  []string
	}{
		{"gene=MICOS10-NBL1", []string{"t/t2.csv"}},
		{"gene!=MICOS10-NBL1", []string{"t/t3.csv"}},
		{"gene=TP53", []string{"t/t3.csv"}},
	} {
		if got := lsKeys(t, e, "--where", tc.where, "--organism", "human"); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ls --where %s = %v, want %v", tc.where, got, tc.want)
		}
	}
}

// A symbol several Ensembl ids have (GENCODE's A2MP1; PTPRC, CD45, in
// org.Hs.eg.db) is a standard name: standardize says which terms it
// names, annotate and curate take it and record every id, so a query by
// the name or by either id finds the version.
func TestDuplicatedGeneSymbol(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("ontology", "import", "gene", "--organism", "human", "--source", filepath.Join(genes, "gencode_genes_homo_sapiens.csv.gz"))
	out := e.ok("ontology", "standardize", "gene", "A2MP1", "--organism", "human")
	if !strings.Contains(out, "A2MP1 is the name of 2 terms: ENSG00000256069, ENSG00000291190") {
		t.Errorf("standardize A2MP1:\n%s", out)
	}
	e.ok("ontology", "validate", "gene", "A2MP1", "--organism", "human")
	e.ok("feature", "create", "gene", "--dtype", "cat[gene]")
	e.ok("save", e.write("a.csv", []byte("a\n")), "--key", "t/a.csv")
	e.ok("save", e.write("b.csv", []byte("b\n")), "--key", "t/b.csv")
	e.ok("annotate", "t/a.csv", "--organism", "human", "--feature", "gene=A2MP1")
	e.ok("annotate", "t/b.csv", "--organism", "human", "--feature", "gene=TP53")
	want := []string{"ENSG00000256069", "ENSG00000291190"}
	if got := termsOf(t, e, "t/a.csv"); !reflect.DeepEqual(got, want) {
		t.Errorf("annotate gene=A2MP1 recorded terms %v, want %v", got, want)
	}
	for _, q := range [][]string{{"--where", "gene=A2MP1"}, {"--term", "gene=ENSG00000256069"}, {"--term", "gene=ENSG00000291190"}} {
		if got := lsKeys(t, e, append(q, "--organism", "human")...); !reflect.DeepEqual(got, []string{"t/a.csv"}) {
			t.Errorf("ls %v = %v, want [t/a.csv]", q, got)
		}
	}

	// org.Hs.eg.db (the default once imported) gives PTPRC two Ensembl
	// ids: a column of it curates, as both.
	e.ok("ontology", "import", "gene", "--organism", "human", "--source", filepath.Join(genes, "human_genes_orgHsEgDb.tsv.gz"))
	e.ok("schema", "create", "g", "--feature", "gene")
	out, stderr, err := e.run("curate", e.write("g.csv", []byte("gene\nPTPRC\nTP53\nPTPRC\n")), "--schema", "g", "--organism", "human", "--key", "t/g.csv")
	if err != nil {
		t.Fatalf("curate PTPRC: %v\n%s%s", err, out, stderr)
	}
	if got := termsOf(t, e, "t/g.csv"); !reflect.DeepEqual(got, []string{"ENSG00000081237", "ENSG00000141510", "ENSG00000262418"}) {
		t.Errorf("curate PTPRC, TP53 recorded terms %v, want both PTPRC ids and TP53's", got)
	}
	if got := lsKeys(t, e, "--term", "gene=ENSG00000262418", "--organism", "human"); !reflect.DeepEqual(got, []string{"t/g.csv"}) {
		t.Errorf("ls --term gene=ENSG00000262418 = %v, want [t/g.csv]", got)
	}
}

// termsOf returns the ids of the terms record of key.
func termsOf(t *testing.T, e *env, key string) []string {
	t.Helper()
	var v struct {
		Annotations catalog.Annotations `json:"annotations"`
	}
	e.jsonOut(&v, "show", key, "--format", "json")
	var ids []string
	for _, tm := range v.Annotations.Terms {
		ids = append(ids, tm.ID)
	}
	slices.Sort(ids)
	return ids
}

// != is the complement of = among the versions with the feature: o1,
// annotated under CL 2022-12-15 with CL:0000054 (obsolete in CL 2026,
// replaced by osteoblast), is found by cell_type=osteoblast, so not by
// cell_type!=osteoblast.
func TestWhereNotTermComplementsEquals(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("ontology", "import", "celltype", "--source", filepath.Join(ontologies, "cl-basic.obo"))
	e.ok("feature", "create", "cell_type", "--dtype", "cat[celltype]")
	for k, a := range [][]string{{"t/o1.csv", "CL:0000054"}, {"t/o2.csv", "T cell"}} {
		e.ok("save", e.write(a[0], []byte(strings.Repeat("x", k+1)+"\n")), "--key", a[0])
		e.ok("annotate", a[0], "--feature", "cell_type="+a[1])
	}
	e.ok("ontology", "import", "celltype", "--source", filepath.Join(ontologies, "cellxgene-json", "CL-ontology-v2026-03-26.json.gz"))
	for _, tc := range []struct {
		where string
		want  []string
	}{
		{"cell_type=osteoblast", []string{"t/o1.csv"}},
		{"cell_type!=osteoblast", []string{"t/o2.csv"}},
		{"cell_type=T cell", []string{"t/o2.csv"}},
		{"cell_type!=T cell", []string{"t/o1.csv"}},
		{"cell_type!=lymphocyte", []string{"t/o1.csv"}}, // = lymphocyte finds T cells
	} {
		if got := lsKeys(t, e, "--where", tc.where); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ls --where %s = %v, want %v", tc.where, got, tc.want)
		}
	}
	// Placed by the default's own replacement: no other version to name.
	_, stderr, err := e.run("ls", "--where", "cell_type=osteoblast", "--format", "json")
	if err != nil || !strings.Contains(stderr, "note: 1 version listed through a term obsolete in the default version, placed by its replacement") {
		t.Errorf("ls --where cell_type=osteoblast: %v, stderr %q; want a note", err, stderr)
	}
}

// A term live in the default version (CL 2022-12-15) is itself alone,
// whatever another imported version (CL 2026-03-26, not the default)
// makes of it: 2026 made "somatic cell" (CL:0002371) and "animal cell"
// (CL:0000548) obsolete, replaced by "cell" (CL:0000000), and a query for
// somatic cells listed every cell (the oocyte, a germ cell, too), one for
// animal cells with --exact the versions annotated with "cell". The note
// on stderr names the version that placed a version listed through it
// (it said "an older ontology version" of the newer one).
func TestQueryTermLiveInDefaultNotReplaced(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("ontology", "import", "celltype", "--source", filepath.Join(ontologies, "cl-basic.obo"))
	e.ok("ontology", "import", "celltype", "--no-default", "--source", filepath.Join(ontologies, "cellxgene-json", "CL-ontology-v2026-03-26.json.gz"))
	e.ok("feature", "create", "cell_type", "--dtype", "cat[celltype]")
	for k, a := range [][]string{{"t/oocyte.csv", "oocyte"}, {"t/cell.csv", "CL:0000000"}} {
		e.ok("save", e.write(a[0], []byte(strings.Repeat("x", k+1)+"\n")), "--key", a[0])
		e.ok("annotate", a[0], "--feature", "cell_type="+a[1])
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--cell-type", "CL:0002371"}, nil},
		{[]string{"--cell-type", "somatic cell"}, nil},
		{[]string{"--term", "celltype=CL:0002371"}, nil},
		{[]string{"--where", "cell_type=CL:0002371"}, nil},
		{[]string{"--where", "cell_type!=CL:0002371"}, []string{"t/cell.csv", "t/oocyte.csv"}},
		{[]string{"--cell-type", "CL:0000548", "--exact"}, nil},
		{[]string{"--term", "celltype=CL:0000548", "--exact"}, nil},
		{[]string{"--where", "cell_type=CL:0000548", "--exact"}, nil},
		{[]string{"--cell-type", "CL:0000000"}, []string{"t/cell.csv", "t/oocyte.csv"}},
		{[]string{"--cell-type", "germ cell"}, []string{"t/oocyte.csv"}},
	} {
		out, stderr, err := e.run(append([]string{"ls", "--format", "json"}, tc.args...)...)
		if err != nil {
			t.Fatalf("ls %v: %v\n%s", tc.args, err, stderr)
		}
		var vs []struct{ Key string }
		if err := json.Unmarshal([]byte(out), &vs); err != nil {
			t.Fatalf("ls %v: %v\n%s", tc.args, err, out)
		}
		var got []string
		for _, v := range vs {
			got = append(got, v.Key)
		}
		if !reflect.DeepEqual(got, tc.want) || strings.Contains(stderr, "note:") {
			t.Errorf("ls %v = %v, stderr %q; want %v and no note", tc.args, got, stderr, tc.want)
		}
	}

	// A version annotated under CL 2026 with a term CL 2022 lacks
	// (CL:0020001, a gamma-delta T cell) is placed as 2026 places it.
	e.ok("ontology", "default", "celltype", "2026-03-26")
	e.ok("save", e.write("n.csv", []byte("n\n")), "--key", "t/new.csv")
	e.ok("annotate", "t/new.csv", "--feature", "cell_type=CL:0020001")
	e.ok("ontology", "default", "celltype", "2022-12-15")
	if got := lsKeys(t, e, "--cell-type", "T cell"); !reflect.DeepEqual(got, []string{"t/new.csv"}) {
		t.Errorf("ls --cell-type T cell = %v, want [t/new.csv]", got)
	}
	_, stderr, err := e.run("ls", "--cell-type", "T cell", "--format", "json")
	if err != nil || !strings.Contains(stderr, "note: 1 version listed through another ontology version than the default") ||
		!strings.Contains(stderr, "as CL 2026-03-26 places it") {
		t.Errorf("ls --cell-type T cell: %v, stderr %q; want a note naming CL 2026-03-26", err, stderr)
	}
}

// A name resolved in another version than the default is asked as its id
// is: CL 2026-03-26 (the default) made "somatic cell" (CL:0002371) and
// "animal cell" (CL:0000548) obsolete, replaced by "cell" (CL:0000000).
// The ids listed every cell; the names, found only in CL 2022-12-15,
// listed the 2022 subtree and missed the versions annotated with "cell"
// or with a term 2022 lacks. Both catalogs.
func TestQueryNameOfTermObsoleInDefault(t *testing.T) {
	onBothCatalogs(t, func(t *testing.T, e *env) {
		e.ok("ontology", "import", "celltype", "--source", filepath.Join(ontologies, "cl-basic.obo"))
		e.ok("ontology", "import", "celltype", "--source", filepath.Join(ontologies, "cellxgene-json", "CL-ontology-v2026-03-26.json.gz"))
		e.ok("feature", "create", "cell_type", "--dtype", "cat[celltype]")
		for k, a := range [][]string{{"t/cell.csv", "CL:0000000"}, {"t/oocyte.csv", "oocyte"}, {"t/new.csv", "CL:0020001"}} {
			e.ok("save", e.write(a[0], []byte(strings.Repeat("x", k+1)+"\n")), "--key", a[0])
			e.ok("annotate", a[0], "--feature", "cell_type="+a[1])
		}
		every := []string{"t/cell.csv", "t/new.csv", "t/oocyte.csv"}
		for _, tc := range []struct {
			args []string
			want []string
		}{
			{[]string{"--cell-type", "CL:0002371"}, every},
			{[]string{"--cell-type", "somatic cell"}, every},
			{[]string{"--where", "cell_type=somatic cell"}, every},
			{[]string{"--term", "celltype=animal cell"}, every},
			{[]string{"--where", "cell_type=animal cell"}, every},
			{[]string{"--cell-type", "animal cell", "--exact"}, []string{"t/cell.csv"}},
			{[]string{"--where", "cell_type!=somatic cell"}, []string{}},
		} {
			if got := lsKeys(t, e, tc.args...); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ls %v = %v, want %v", tc.args, got, tc.want)
			}
		}
		// The default knows the name as CL:0002371's before it was made
		// obsolete ("obsolete somatic cell"): no other version is asked.
		_, stderr, err := e.run("ls", "--cell-type", "somatic cell", "--format", "json")
		if want := "CL:0002371 is obsolete in CL 2026-03-26, replaced by CL:0000000 (cell)"; err != nil || !strings.Contains(stderr, want) ||
			strings.Contains(stderr, "no celltype term of the default version") {
			t.Errorf("ls --cell-type somatic cell: %v, stderr %q; want %q alone", err, stderr, want)
		}
	})
}
