package main

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
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
