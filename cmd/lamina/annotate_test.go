package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/catalog"
	bolt "go.etcd.io/bbolt"
)

// annotEnv is an instance with cell type and tissue ontologies, features,
// labels and a schema, as the walkthrough makes them.
func annotEnv(t *testing.T) *env {
	e := newEnv(t)
	e.init()
	e.ok("ontology", "import", "celltype", "--source", filepath.Join(ontologies, "cl-basic.obo"))
	e.ok("ontology", "import", "tissue", "--source", filepath.Join(ontologies, "uberon-efo-slim.obo"))
	e.ok("feature", "create", "cell_type", "--dtype", "cat[celltype]")
	e.ok("feature", "create", "tissue", "--dtype", "cat[tissue]")
	e.ok("feature", "create", "condition", "--dtype", "cat[ULabel]")
	e.ok("feature", "create", "batch", "--dtype", "int")
	e.ok("label", "create", "quality")
	e.ok("label", "create", "high_quality", "--parent", "quality")
	e.ok("label", "create", "treated")
	e.ok("label", "create", "control")
	return e
}

func lsKeys(t *testing.T, e *env, args ...string) []string {
	t.Helper()
	var vs []catalog.Version
	e.jsonOut(&vs, append(append([]string{"ls"}, args...), "--format", "json")...)
	out := []string{}
	for _, v := range vs {
		out = append(out, v.Key)
	}
	return out
}

func TestAnnotateAndQuery(t *testing.T) {
	e := annotEnv(t)
	e.ok("save", filepath.Join(samples, "pbmc_small.h5ad"), "--key", "scrna/batch1.h5ad", "--description", "PBMC gene expression, batch 1")
	e.ok("save", filepath.Join(samples, "pbmc_small.zarr"), "--key", "scrna/batch2.zarr")
	e.ok("save", filepath.Join(samples, "pbmc_small_obs.parquet"), "--key", "tables/obs.parquet")
	e.ok("save", filepath.Join(samples, "fcsparser_cyflow_cube_8.fcs"), "--key", "flow/cube.fcs")
	e.ok("save", filepath.Join(samples, "npm-fcs_AriaFile1.TRUNCATED.fcs"), "--key", "flow/truncated.fcs")

	t.Run("DerivedFields", func(t *testing.T) {
		cases := []struct {
			key   string
			otype string
			n     int64
			shape []int64
			col   string
		}{
			{"scrna/batch1.h5ad", "AnnData", 315, []int64{315, 50}, "cell_type"},
			{"scrna/batch2.zarr", "AnnData", 315, []int64{315, 50}, "cell_type"},
			{"tables/obs.parquet", "DataFrame", 315, []int64{315, 11}, "cell_id"},
			{"flow/cube.fcs", "", 725, []int64{725, 10}, "FSC"},
			{"flow/truncated.fcs", "", 0, nil, ""}, // saved as a plain file
		}
		for _, tc := range cases {
			var v catalog.Version
			e.jsonOut(&v, "show", tc.key, "--format", "json")
			if v.OType != tc.otype || v.NObservations != tc.n || !reflect.DeepEqual(v.Shape, tc.shape) {
				t.Fatalf("%s: otype %q n %d shape %v", tc.key, v.OType, v.NObservations, v.Shape)
			}
			if tc.col != "" && (len(v.Columns) == 0 || v.Columns[0].Name != tc.col) {
				t.Fatalf("%s: columns %+v", tc.key, v.Columns)
			}
		}
		out := e.ok("show", "scrna/batch1.h5ad")
		for _, s := range []string{"otype           AnnData", "n_observations  315", "shape           315 × 50", "obs.cell_type (cat)", "var.ensembl_gene_id (str)"} {
			if !strings.Contains(out, s) {
				t.Fatalf("show lacks %q:\n%s", s, out)
			}
		}
	})

	e.ok("annotate", "scrna/batch1.h5ad", "--feature", "tissue=Bone Marrow", "--feature", "condition=treated", "--feature", "batch=1", "--label", "high_quality")
	e.ok("annotate", "scrna/batch2.zarr", "--feature", "tissue=blood", "--feature", "condition=control", "--feature", "batch=5",
		"--term", "celltype=CD4-positive, alpha-beta T cell")
	e.ok("annotate", "tables/obs.parquet", "--feature", "batch=7", "--label", "quality")

	t.Run("Annotate", func(t *testing.T) {
		var got struct {
			catalog.Version
			Annotations catalog.Annotations `json:"annotations"`
		}
		e.jsonOut(&got, "show", "scrna/batch1.h5ad", "--format", "json")
		a := got.Annotations
		if !reflect.DeepEqual(a.Features["tissue"], []string{"bone marrow"}) || !reflect.DeepEqual(a.Labels, []string{"high_quality"}) ||
			len(a.Terms) != 1 || a.Terms[0].ID != "UBERON:0002371" {
			t.Fatalf("annotations (the tissue standardized to its term): %+v", a)
		}
		if out := e.ok("show", "scrna/batch1.h5ad"); !strings.Contains(out, "feature         tissue = bone marrow") || !strings.Contains(out, "labels          high_quality") {
			t.Fatalf("show:\n%s", out)
		}
		// A value that is no term exits 1, as a value curate finds no
		// term for; one the feature's dtype cannot read is malformed
		// input, exit 2, as ls --where batch=one is.
		if err := e.fails(`did you mean "blood"`, "annotate", "scrna/batch1.h5ad", "--feature", "tissue=blod"); exitCode(err) != 1 {
			t.Errorf("a value that is no term exits %d, want 1", exitCode(err))
		}
		if err := e.fails("is not a number", "annotate", "scrna/batch1.h5ad", "--feature", "batch=one"); exitCode(err) != 2 {
			t.Errorf("a value that is no number exits %d, want 2", exitCode(err))
		}
		e.fails(`no label "nope"`, "annotate", "scrna/batch1.h5ad", "--label", "nope")
		e.fails(`did you mean "tissue"`, "annotate", "scrna/batch1.h5ad", "--feature", "tisue=blood")
		e.fails("exists with dtype int", "feature", "create", "batch", "--dtype", "str")
	})

	t.Run("Where", func(t *testing.T) {
		cases := []struct {
			args []string
			want []string
		}{
			{[]string{"--where", "tissue=bone marrow"}, []string{"scrna/batch1.h5ad"}},
			{[]string{"--where", "tissue=bone marrow", "--where", "condition=treated", "--where", "batch>0", "--where", "size>1KB", "--where", "created_at>=2026-01-01", "--label", "high_quality"}, []string{"scrna/batch1.h5ad"}},
			{[]string{"--where", "batch>3"}, []string{"scrna/batch2.zarr", "tables/obs.parquet"}},
			{[]string{"--where", "batch<=5", "--where", "batch!=1"}, []string{"scrna/batch2.zarr"}},
			{[]string{"--where", "key^=scrna/", "--where", "batch>0"}, []string{"scrna/batch1.h5ad", "scrna/batch2.zarr"}},
			{[]string{"--label", "quality"}, []string{"scrna/batch1.h5ad", "tables/obs.parquet"}},
			{[]string{"--label", "quality", "--exact"}, []string{"tables/obs.parquet"}},
			{[]string{"scrna/", "--where", "batch>0"}, []string{"scrna/batch1.h5ad", "scrna/batch2.zarr"}},
			{[]string{"--where", "otype=AnnData"}, []string{"scrna/batch1.h5ad", "scrna/batch2.zarr"}},
			{[]string{"--where", "n_observations>500"}, []string{"flow/cube.fcs"}},
			{[]string{"--cell-type", "T cell"}, []string{"scrna/batch2.zarr"}},
			{[]string{"--cell-type", "T-cell"}, []string{"scrna/batch2.zarr"}}, // a synonym names the term
			{[]string{"--cell-type", "T cell", "--exact"}, []string{}},
			{[]string{"--cell-type", "CD4-positive, alpha-beta T cell", "--exact"}, []string{"scrna/batch2.zarr"}},
			{[]string{"--cell-type", "B cell"}, []string{}},
			{[]string{"--tissue", "bone marrow"}, []string{"scrna/batch1.h5ad"}},
			{[]string{"--where", "batch>0", "--limit", "1"}, []string{"scrna/batch1.h5ad"}},
		}
		for _, tc := range cases {
			if got := lsKeys(t, e, tc.args...); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ls %q = %v, want %v", tc.args, got, tc.want)
			}
		}
		var vs []catalog.Version
		e.jsonOut(&vs, "ls", "--where", "batch>0", "--order", "-created_at", "--format", "json")
		if len(vs) != 3 || vs[0].Key != "tables/obs.parquet" {
			t.Fatalf("-created_at: %v", vs)
		}
		if out := e.ok("ls", "--where", "batch>3", "--format", "csv"); !strings.HasPrefix(out, "key,version,uid") || strings.Count(out, "\n") != 3 {
			t.Fatalf("csv:\n%s", out)
		}
		e.fails(`no feature or field "tisue"; did you mean "tissue"?`, "ls", "--where", "tisue=blood")
		e.fails(`did you mean "T cell"`, "ls", "--cell-type", "T cel")
		e.fails("use NAME=VALUE", "ls", "--where", "batch")
	})

	t.Run("Search", func(t *testing.T) {
		var hits []catalog.Hit
		e.jsonOut(&hits, "search", "PBMC gene expression", "--format", "json")
		if len(hits) == 0 || hits[0].Version.Key != "scrna/batch1.h5ad" {
			t.Fatalf("search: %+v", hits)
		}
		e.jsonOut(&hits, "search", "alpha-beta", "--format", "json")
		if len(hits) != 1 || hits[0].Version.Key != "scrna/batch2.zarr" {
			t.Fatalf("term name: %+v", hits)
		}
		e.jsonOut(&hits, "search", "cube", "--format", "json")
		if len(hits) != 1 || hits[0].Version.Key != "flow/cube.fcs" {
			t.Fatalf("key: %+v", hits)
		}
		if out := e.ok("search", "marrow"); !strings.Contains(out, "scrna/batch1.h5ad") || !strings.Contains(out, "feature") {
			t.Fatalf("feature value:\n%s", out)
		}
	})

	t.Run("Collections", func(t *testing.T) {
		e.ok("collection", "create", "scRNA-seq batches Q1", "scrna/batch1.h5ad", "scrna/batch2.zarr")
		if out := e.ok("collection", "create", "scRNA-seq batches Q1", "--key-prefix", "scrna/"); !strings.Contains(out, "already has these 2 versions") {
			t.Fatalf("same members: %s", out)
		}
		e.ok("collection", "create", "tables", "--key-prefix", "tables/")
		e.ok("save", filepath.Join(samples, "pbmc_small_obs.csv"), "--key", "scrna/batch3.csv")
		if out := e.ok("collection", "create", "scRNA-seq batches Q1", "--key-prefix", "scrna/"); !strings.Contains(out, "v2: 3 versions") {
			t.Fatalf("v2: %s", out)
		}
		var cs []catalog.Collection
		e.jsonOut(&cs, "collection", "ls", "--format", "json")
		if len(cs) != 2 || cs[0].Name != "scRNA-seq batches Q1" || cs[0].Version != 2 {
			t.Fatalf("collection ls: %+v", cs)
		}
		var c1 catalog.Collection
		e.jsonOut(&c1, "collection", "show", "scRNA-seq batches Q1@v1", "--format", "json")
		if len(c1.Versions) != 2 || c1.Versions[0].Key != "scrna/batch1.h5ad" {
			t.Fatalf("v1: %+v", c1)
		}
		if out := e.ok("collection", "show", "scRNA-seq batches Q1"); strings.Count(out, "scrna/") != 3 {
			t.Fatalf("show latest:\n%s", out)
		}
		e.fails(`no collection "scRNA batches"`, "collection", "show", "scRNA batches")

		// Every version of one collection, as ls --versions KEY lists a key's.
		var hist []catalog.Collection
		e.jsonOut(&hist, "collection", "ls", "--versions", "scRNA-seq batches Q1", "--format", "json")
		if len(hist) != 2 || hist[0].Version != 1 || len(hist[0].Members) != 2 || hist[1].Version != 2 || len(hist[1].Members) != 3 {
			t.Fatalf("collection ls --versions: %+v", hist)
		}
		out := e.ok("collection", "ls", "scRNA-seq batches Q1", "--versions")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME") || !strings.Contains(lines[1], " 1 ") || !strings.Contains(lines[2], " 2 ") || strings.Contains(out, "tables") {
			t.Fatalf("collection ls --versions (text):\n%s", out)
		}
		e.fails(`no collection "scRNA-seq batches"; did you mean "scRNA-seq batches Q1"?`, "collection", "ls", "--versions", "scRNA-seq batches")
		// NAME alone is the same, as the help says (it was a usage error).
		var hist2 []catalog.Collection
		e.jsonOut(&hist2, "collection", "ls", "scRNA-seq batches Q1", "--format", "json")
		if !reflect.DeepEqual(hist2, hist) {
			t.Fatalf("collection ls NAME: %+v, want %+v", hist2, hist)
		}
		for _, args := range [][]string{{"--versions"}, {"--versions", "tables", "x"}, {"tables", "x"}} {
			if err := e.fails("usage: lamina collection ls [[--versions] NAME]", append([]string{"collection", "ls"}, args...)...); exitCode(err) != 2 {
				t.Fatalf("collection ls %v: exit %d, want 2", args, exitCode(err))
			}
		}
	})
}

func TestCurate(t *testing.T) {
	e := annotEnv(t)
	e.fails(`no feature "development_stage_x"`, "schema", "create", "bad", "--feature", "development_stage_x")
	e.ok("feature", "create", "development_stage_x", "--dtype", "str")
	e.ok("schema", "create", "pbmc_obs", "--feature", "cell_type", "--feature", "tissue", "--optional", "development_stage_x")
	e.ok("schema", "create", "ct", "--feature", "cell_type")

	t.Run("Report", func(t *testing.T) {
		for _, file := range []string{"pbmc_small.h5ad", "pbmc_small_obs.csv"} {
			out, _, err := e.run("curate", filepath.Join(samples, file), "--schema", "pbmc_obs")
			if exitCode(err) != 1 {
				t.Fatalf("%s: exit %d (%v), want 1", file, exitCode(err), err)
			}
			for _, s := range []string{
				`failed "dendritc cell" (6): no term with this name, id or synonym; did you mean "dendritic cell (CL:0000451)"`,
				`--standardize would map "T-cell" (10) → "T cell"`,
				`--standardize would map "Bone Marrow" (51) → "bone marrow"`,
				`failed "blod" (55)`, `did you mean "blood (UBERON:0000178)"`,
				"not valid",
			} {
				if !strings.Contains(out, s) {
					t.Fatalf("%s: report lacks %q:\n%s", file, s, out)
				}
			}
		}
		var r struct {
			Valid   bool `json:"valid"`
			Columns []struct {
				Feature string `json:"feature"`
				Failed  []struct {
					Value string `json:"value"`
					Count int    `json:"count"`
				} `json:"failed"`
			} `json:"columns"`
		}
		out, _, _ := e.run("curate", filepath.Join(samples, "pbmc_small_obs.parquet"), "--schema", "pbmc_obs", "--format", "json")
		if err := json.Unmarshal([]byte(out), &r); err != nil || r.Valid || len(r.Columns) != 2 || len(r.Columns[0].Failed) != 2 {
			t.Fatalf("json report: %v %+v\n%s", err, r, out)
		}
		e.fails("not saved: the table does not validate", "curate", filepath.Join(samples, "pbmc_small_obs.csv"), "--schema", "pbmc_obs", "--standardize", "--key", "curated/x.csv")
		e.fails(`no schema "pbmc"`, "curate", filepath.Join(samples, "pbmc_small_obs.csv"), "--schema", "pbmc")
	})

	t.Run("StandardizeAndSave", func(t *testing.T) {
		in := e.write("pbmc_obs.csv", fixableObs(t))
		_, _, err := e.run("curate", in, "--schema", "ct")
		if exitCode(err) != 1 {
			t.Fatalf("before standardizing: %v", err)
		}
		mapping := e.path("mapping.tsv")
		out := e.ok("curate", in, "--schema", "ct", "--standardize", "--key", "curated/pbmc_obs.csv", "--mapping", mapping, "--description", "curated PBMC obs")
		if !strings.Contains(out, "valid after standardizing") || !strings.Contains(out, "saved curated/pbmc_obs.csv@v1") {
			t.Fatalf("curate --standardize:\n%s", out)
		}
		m, _ := os.ReadFile(mapping)
		if !strings.Contains(string(m), "cell_type\tT-cell\tT cell\t") {
			t.Fatalf("mapping:\n%s", m)
		}
		// The saved bytes are standardized: they validate as they are.
		got := e.path("got.csv")
		e.ok("get", "curated/pbmc_obs.csv", "--output", got)
		e.ok("curate", got, "--schema", "ct")
		var v struct {
			catalog.Version
			Annotations catalog.Annotations `json:"annotations"`
		}
		e.jsonOut(&v, "show", "curated/pbmc_obs.csv", "--format", "json")
		if v.Annotations.Schema != "ct" || len(v.Annotations.Terms) < 8 || !contains(v.Annotations.Features["cell_type"], "T cell") || contains(v.Annotations.Features["cell_type"], "T-cell") {
			t.Fatalf("annotations: %+v", v.Annotations)
		}
		// Queries by cell type find it, through descendants.
		if got := lsKeys(t, e, "--cell-type", "T cell"); !reflect.DeepEqual(got, []string{"curated/pbmc_obs.csv"}) {
			t.Fatalf("--cell-type T cell: %v", got)
		}
		if got := lsKeys(t, e, "--cell-type", "lymphocyte"); !reflect.DeepEqual(got, []string{"curated/pbmc_obs.csv"}) {
			t.Fatalf("--cell-type lymphocyte: %v", got)
		}
		if got := lsKeys(t, e, "--where", "cell_type=lymphocyte"); !reflect.DeepEqual(got, []string{"curated/pbmc_obs.csv"}) {
			t.Fatalf("--where cell_type=lymphocyte (descendant values): %v", got)
		}
		if got := lsKeys(t, e, "--where", "cell_type=lymphocyte", "--exact"); len(got) != 0 {
			t.Fatalf("--exact: %v", got)
		}
		if got := lsKeys(t, e, "--cell-type", "neuron"); len(got) != 0 {
			t.Fatalf("neuron: %v", got)
		}
		// An h5ad is not rewritten: it is saved as it is, annotated with
		// the standardized terms, and its mapping written.
		e.ok("schema", "create", "tissue_only", "--feature", "tissue")
		_, _, err = e.run("curate", filepath.Join(samples, "pbmc_small.h5ad"), "--schema", "tissue_only", "--standardize", "--key", "scrna/x.h5ad")
		if exitCode(err) != 1 {
			t.Fatalf("h5ad with unfixable tissues: %v", err)
		}
	})
}

// TestCurateReport checks what the report says: values valid as saved
// after --standardize, the rows of the table each feature was checked in,
// and exit 1 for a file or schema that is not there (2 is for usage).
func TestCurateReport(t *testing.T) {
	e := annotEnv(t)
	e.ok("feature", "create", "ensembl_gene_id", "--dtype", "str")
	e.ok("schema", "create", "ct", "--feature", "cell_type")
	e.ok("schema", "create", "genes", "--feature", "ensembl_gene_id")
	e.ok("schema", "create", "both", "--feature", "cell_type", "--feature", "ensembl_gene_id")
	fixable := e.write("pbmc_obs.csv", fixableObs(t))
	h5ad := filepath.Join(samples, "pbmc_small.h5ad")
	bom := e.write("bom.csv", []byte("\ufeffcell_type,n\r\nT cell,1\r\nB cell,2\r\n")) // as Excel saves UTF-8
	near := e.write("near.csv", []byte("Cell_Type,n\nT cell,1\n"))
	twice := e.write("twice.csv", []byte("cell_type,cell_type\nT cell,blod\n"))
	for _, tc := range []struct {
		name string
		args []string
		exit int
		want []string
	}{
		{"AsItIs", []string{fixable, "--schema", "ct"}, 1, []string{
			"schema ct: 304 rows\n", "✗ cell_type (cat[celltype]): 264 of 304 values valid\n"}},
		{"Standardized", []string{fixable, "--schema", "ct", "--standardize"}, 0, []string{
			"schema ct: 304 rows\n", "✓ cell_type (cat[celltype]): 304 of 304 values valid (40 standardized)\n", "valid after standardizing"}},
		{"StandardizedWithFailures", []string{h5ad, "--schema", "ct", "--standardize"}, 1, []string{
			"schema ct: obs 315 rows\n", "✗ obs.cell_type (cat[celltype]): 304 of 315 values valid (40 mapped to standard terms, annotation only)\n"}},
		{"VarFeature", []string{h5ad, "--schema", "genes"}, 0, []string{
			"schema genes: var 50 rows\n", "✓ var.ensembl_gene_id (str): 50 of 50 values valid\n"}},
		{"ObsAndVar", []string{h5ad, "--schema", "both"}, 1, []string{"schema both: obs 315 rows, var 50 rows\n"}},
		{"ExcelBOM", []string{bom, "--schema", "ct"}, 0, []string{"✓ cell_type (cat[celltype]): 2 of 2 values valid\n"}},
		{"NearColumn", []string{near, "--schema", "ct"}, 1, []string{`✗ cell_type: required column is missing; did you mean "Cell_Type"?`}},
		{"RepeatedColumn", []string{twice, "--schema", "ct"}, 1, []string{"✗ cell_type: more than one column has this name"}},
		{"MissingFile", []string{e.path("nosuch.csv"), "--schema", "ct"}, 1, []string{"no such file"}},
		{"MissingFileNoSuffix", []string{e.path("nosuch"), "--schema", "ct"}, 1, []string{"no such file"}},
		{"UnknownSchema", []string{fixable, "--schema", "cell"}, exitNotFound, []string{`no schema "cell"`}},
		{"NotATable", []string{filepath.Join(samples, "fcsparser_cyflow_cube_8.fcs"), "--schema", "ct"}, 2, []string{"curate reads CSV"}},
		{"TwoFiles", []string{fixable, fixable, "--schema", "ct"}, 2, []string{"usage: lamina curate"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := e.run(append([]string{"curate"}, tc.args...)...)
			if got := exitCode(err); (err == nil) != (tc.exit == 0) || err != nil && got != tc.exit {
				t.Fatalf("exit %d (%v), want %d\n%s", got, err, tc.exit, out)
			}
			if err != nil {
				out += explain(err)
			}
			for _, s := range tc.want {
				if !strings.Contains(out, s) {
					t.Fatalf("lacks %q:\n%s", s, out)
				}
			}
		})
	}
	var r struct {
		Rows    int `json:"rows"`
		Columns []struct {
			Slot string `json:"slot"`
			Rows int    `json:"rows"`
		} `json:"columns"`
	}
	out, _, _ := e.run("curate", h5ad, "--schema", "both", "--format", "json")
	if err := json.Unmarshal([]byte(out), &r); err != nil || len(r.Columns) != 2 || r.Columns[0].Rows != 315 || r.Columns[1].Slot != "var" || r.Columns[1].Rows != 50 {
		t.Fatalf("json rows: %v %+v\n%s", err, r, out)
	}
}

// fixableObs is the sample obs table without the rows nothing can fix:
// its cell types all validate once standardized.
func fixableObs(t *testing.T) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(samples, "pbmc_small_obs.csv"))
	if err != nil {
		t.Fatal(err)
	}
	var keep []string
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		if !strings.Contains(line, ",dendritc cell,") && !strings.Contains(line, ",doublet,") {
			keep = append(keep, line)
		}
	}
	return []byte(strings.Join(keep, "\n") + "\n")
}

// TestCurateJSONSaved checks that curate --key --format json writes one
// JSON document, with what it saved inside, and nothing else on stdout.
func TestCurateJSONSaved(t *testing.T) {
	e := annotEnv(t)
	e.ok("schema", "create", "ct", "--feature", "cell_type")
	in := e.write("pbmc_obs.csv", fixableObs(t))
	type saved struct {
		Key       string `json:"key"`
		Version   int    `json:"version"`
		UID       string `json:"uid"`
		Unchanged bool   `json:"unchanged"`
		Schema    string `json:"schema"`
		Terms     int    `json:"terms"`
	}
	var first saved
	for _, tc := range []struct {
		name string
		args []string
		want func(*saved) string // what is wrong with saved, or ""
	}{
		{"NoKey", nil, func(s *saved) string {
			if s != nil {
				return "a save without --key"
			}
			return ""
		}},
		{"Saved", []string{"--key", "curated/g.csv"}, func(s *saved) string {
			if s == nil || s.Key != "curated/g.csv" || s.Version != 1 || len(s.UID) != 20 || s.Unchanged || s.Schema != "ct" || s.Terms == 0 {
				return "not the new version, annotated"
			}
			first = *s
			return ""
		}},
		{"Unchanged", []string{"--key", "curated/g.csv"}, func(s *saved) string {
			if s == nil || !s.Unchanged || s.UID != first.UID || s.Version != 1 {
				return "not the unchanged first version"
			}
			return ""
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"curate", in, "--schema", "ct", "--standardize", "--format", "json"}, tc.args...)
			out, _, err := e.run(args...)
			if err != nil {
				t.Fatalf("lamina %s: %v", strings.Join(args, " "), err)
			}
			var r struct {
				ValidAfterStandardize bool   `json:"valid_after_standardize"`
				Saved                 *saved `json:"saved"`
			}
			if err := json.Unmarshal([]byte(out), &r); err != nil {
				t.Fatalf("stdout is not one JSON document: %v\n%s", err, out)
			}
			if msg := tc.want(r.Saved); msg != "" || !r.ValidAfterStandardize {
				t.Fatalf("saved: %s: %+v\n%s", msg, r.Saved, out)
			}
		})
	}
	var v catalog.Version
	e.jsonOut(&v, "show", "curated/g.csv", "--format", "json")
	if v.UID != first.UID {
		t.Fatalf("show says %s, curate said %s", v.UID, first.UID)
	}
	// Text keeps its line.
	if out := e.ok("curate", in, "--schema", "ct", "--standardize", "--key", "curated/g.csv"); !strings.Contains(out, "unchanged curated/g.csv@v1 ("+first.UID+"), annotated with schema ct") {
		t.Fatalf("text output:\n%s", out)
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// curate and ontology inspect exit 2 for an input they cannot read
// (damaged Parquet, on which the library panics; a truncated h5ad; an
// empty CSV), as for a damaged zarr store: 1 says the data does not
// validate.
func TestUnreadableInputExits2(t *testing.T) {
	e := annotEnv(t)
	e.ok("schema", "create", "ct", "--feature", "cell_type")
	pq, err := os.ReadFile(filepath.Join(samples, "pbmc_small_obs.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	pq[5557] = 0x7f
	h5, err := os.ReadFile(filepath.Join(samples, "pbmc_small.h5ad"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct{ name, want string }{
		{e.write("one.parquet", pq), "cannot read the file's structure"},
		{e.write("trunc.h5ad", h5[:len(h5)/2]), "truncated"},
		{e.write("empty.csv", nil), "empty"},
	} {
		t.Run(filepath.Base(f.name), func(t *testing.T) {
			for _, args := range [][]string{
				{"curate", f.name, "--schema", "ct"},
				{"ontology", "inspect", "celltype", "--column", "cell_type", f.name},
			} {
				if err := e.fails(f.want, args...); exitCode(err) != 2 {
					t.Errorf("%s: exit %d (%v), want 2", strings.Join(args[:2], " "), exitCode(err), err)
				}
			}
		})
	}
}

// A curated column of more than 1,000 distinct values is annotated with
// all of them, as with its terms: ls --cell-type, --term and --where
// cell_type= find it alike (--where did not past 1,000 values).
func TestCurateManyValues(t *testing.T) {
	e := annotEnv(t)
	e.ok("schema", "create", "ct", "--feature", "cell_type")
	obo, err := os.ReadFile(filepath.Join(ontologies, "cl-basic.obo"))
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"T cell"}
	seen := map[string]bool{"T cell": true}
	for _, stanza := range strings.Split(string(obo), "\n[Term]\n")[1:] {
		var name string
		for _, line := range strings.Split(stanza, "\n") {
			if n, ok := strings.CutPrefix(line, "name: "); ok {
				name = n
			}
			if line == "is_obsolete: true" || strings.HasPrefix(line, "[") {
				name = ""
				break
			}
		}
		if name != "" && !seen[name] && strings.HasPrefix(stanza, "id: CL:") {
			seen[name] = true
			names = append(names, name)
		}
		if len(names) == 1500 {
			break
		}
	}
	var b strings.Builder
	w := csv.NewWriter(&b)
	w.Write([]string{"cell_type"})
	for _, n := range names {
		w.Write([]string{n})
	}
	w.Flush()
	in := e.write("many.csv", []byte(b.String()))
	e.ok("curate", in, "--schema", "ct", "--standardize", "--key", "cur/many.csv")
	want := []string{"cur/many.csv"}
	for _, q := range [][]string{{"--cell-type", "T cell"}, {"--term", "celltype=T cell"}, {"--where", "cell_type=T cell"}, {"--where", "cell_type=" + names[1400]}} {
		if got := lsKeys(t, e, q...); !reflect.DeepEqual(got, want) {
			t.Errorf("ls %q = %v, want %v", q, got, want)
		}
	}
	var v struct {
		Annotations catalog.Annotations `json:"annotations"`
	}
	e.jsonOut(&v, "show", "cur/many.csv", "--format", "json")
	if got := len(v.Annotations.Features["cell_type"]); got != len(names) {
		t.Errorf("cell_type has %d values, want %d", got, len(names))
	}
}

// A float -0 is 0 (show prints 0, score=0 finds it), and a table of 0
// rows has n_observations 0.
func TestNegativeZeroAndEmptyTable(t *testing.T) {
	e := annotEnv(t)
	e.ok("feature", "create", "score", "--dtype", "float")
	e.ok("save", e.write("empty.csv", []byte("a,b\n")), "--key", "t/empty.csv")
	e.ok("save", e.write("one.csv", []byte("a,b\n1,2\n")), "--key", "t/one.csv")
	e.ok("save", e.write("notes.txt", []byte("notes\n")), "--key", "t/notes.txt")
	e.ok("annotate", "t/one.csv", "--feature", "score=-0.0")
	if out := e.ok("show", "t/one.csv"); !strings.Contains(out, "score = 0\n") && !regexp.MustCompile(`score\s+0\n`).MatchString(out) {
		t.Errorf("show:\n%s", out)
	}
	for _, tc := range []struct {
		where string
		want  []string
	}{
		{"score=0", []string{"t/one.csv"}},
		{"score<0", []string{}},
		{"score>=0", []string{"t/one.csv"}},
		{"n_observations=0", []string{"t/empty.csv"}},
		{"n_observations<1", []string{"t/empty.csv"}},
	} {
		if got := lsKeys(t, e, "--where", tc.where); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ls --where %s = %v, want %v", tc.where, got, tc.want)
		}
	}
	if out := e.ok("show", "t/empty.csv"); !regexp.MustCompile(`n_observations\s+0\n`).MatchString(out) {
		t.Errorf("show of a table of 0 rows:\n%s", out)
	}
}

// TestShowOldNegativeZero: a float -0 stored before the catalog made it 0
// (older catalogs keep it) is shown 0, and once beside a 0; a str
// feature's text -0 stays as written. show --format json and annotate
// --format json printed the stored -0.
func TestShowOldNegativeZero(t *testing.T) {
	e := annotEnv(t)
	e.ok("feature", "create", "score", "--dtype", "float")
	e.ok("feature", "create", "other", "--dtype", "float")
	e.ok("feature", "create", "note", "--dtype", "str")
	e.ok("save", e.write("one.csv", []byte("a,b\n1,2\n")), "--key", "t/one.csv")
	e.ok("annotate", "t/one.csv", "--feature", "score=1.5", "--feature", "other=2", "--feature", "note=x")
	var v struct {
		UID string `json:"uid"`
	}
	e.jsonOut(&v, "show", "t/one.csv", "--format", "json")
	writeOldNegZero(t, e.path("data/lamina/test/catalog.db"), v.UID)
	out := e.ok("show", "t/one.csv")
	for _, want := range []string{"score = 0\n", "other = 0; 2\n", "note = -0\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}
	var shown struct {
		Annotations catalog.Annotations `json:"annotations"`
	}
	e.jsonOut(&shown, "show", "t/one.csv", "--format", "json")
	checkOldNegZero(t, "show --format json", shown.Annotations)
	var annotated catalog.Annotations
	e.jsonOut(&annotated, "annotate", "t/one.csv", "--label", "control", "--format", "json")
	checkOldNegZero(t, "annotate --format json", annotated)
}

// TestSidecarOldNegativeZero: the mount's .meta sidecar of a version
// with a float -0 stored by an older build printed -0 where show prints 0.
func TestSidecarOldNegativeZero(t *testing.T) {
	e := newMntEnv(t)
	for _, f := range []string{"score", "other"} {
		e.ok("feature", "create", f, "--dtype", "float")
	}
	e.ok("feature", "create", "note", "--dtype", "str")
	e.ok("save", e.file("one.csv", []byte("a,b\n1,2\n")), "--key", "t/one.csv")
	e.ok("annotate", "t/one.csv", "--feature", "score=1.5", "--feature", "other=2", "--feature", "note=x")
	uid := e.showVersion("t/one.csv").UID
	writeOldNegZero(t, filepath.Join(e.dir, "data/lamina/m/catalog.db"), uid)
	mnt := filepath.Join(e.dir, "lab")
	e.mount(mnt)
	_, a := sidecarAnnotations(t, filepath.Join(mnt, "t/one.csv.meta"))
	if a == nil {
		t.Fatal("t/one.csv.meta has no annotations")
	}
	checkOldNegZero(t, "t/one.csv.meta", *a)
}

// writeOldNegZero writes the annotations of uid in the bbolt catalog at
// path as an older build did: a float -0 kept as the text -0 (score, and
// other beside a 0), and a str feature's text -0 (note).
func writeOldNegZero(t *testing.T, path, uid string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 30 * time.Second}) // a daemon holding it: fail, not hang
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket([]byte("annotations"))
		var a catalog.Annotations
		if err := json.Unmarshal(bk.Get([]byte(uid)), &a); err != nil {
			return err
		}
		a.Features["score"] = []string{"-0"}
		a.Features["other"] = []string{"-0", "0", "2"}
		a.Features["note"] = []string{"-0"}
		raw, err := json.Marshal(a)
		if err != nil {
			return err
		}
		return bk.Put([]byte(uid), raw)
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
}

// checkOldNegZero checks that a, the annotations writeOldNegZero wrote as
// what printed them returned them, have the float -0 as 0 and the str -0.
func checkOldNegZero(t *testing.T, what string, a catalog.Annotations) {
	t.Helper()
	for name, want := range map[string][]string{"score": {"0"}, "other": {"0", "2"}, "note": {"-0"}} {
		if got := a.Features[name]; !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %s = %q, want %q", what, name, got, want)
		}
	}
}

// TestAnnotatePrintsFirstValues: annotate (and show) print the first 20
// values of a feature and of the labels, then how many more: a curated
// gene column's 60,000 values were printed on one line.
func TestAnnotatePrintsFirstValues(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("feature", "create", "note", "--dtype", "str")
	e.ok("save", e.write("a.txt", []byte("a")), "--key", "a.txt")
	args := []string{"annotate", "a.txt"}
	for i := range 30 {
		e.ok("label", "create", fmt.Sprintf("l%02d", i))
		args = append(args, "--feature", fmt.Sprintf("note=v%02d", i))
	}
	e.ok(append(args[:8:8], "--label", "l00")...)
	out := e.ok(append(args, "--label", "l29")...)
	for _, want := range []string{"note = v00; v01;", "v19; … and 10 more\n", "l00; l29\n"} {
		if !strings.Contains(out, want) {
			t.Fatalf("annotate printed no %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "v20") {
		t.Fatalf("annotate printed past the 20th value:\n%s", out)
	}
	labels := []string{"annotate", "a.txt"}
	for i := range 30 {
		labels = append(labels, "--label", fmt.Sprintf("l%02d", i))
	}
	if out := e.ok(labels...); !strings.Contains(out, "l19; … and 10 more\n") {
		t.Fatalf("labels:\n%s", out)
	}
	if out := e.ok("show", "a.txt"); !strings.Contains(out, "v19; … and 10 more\n") {
		t.Fatalf("show:\n%s", out)
	}
	// Values with commas (term names have them) stay apart; one with a
	// semicolon is quoted. JSON has the values as they are.
	e.ok("save", e.write("b.txt", []byte("b")), "--key", "b.txt")
	vals := []string{"B cell", "CD4-positive, alpha-beta T cell", "x; y"} // as stored: sorted
	e.ok("annotate", "b.txt", "--feature", "note="+vals[0], "--feature", "note="+vals[1], "--feature", "note="+vals[2])
	if out := e.ok("show", "b.txt"); !strings.Contains(out, `note = B cell; CD4-positive, alpha-beta T cell; "x; y"`+"\n") {
		t.Errorf("show of values with commas:\n%s", out)
	}
	var v struct{ Annotations catalog.Annotations }
	e.jsonOut(&v, "show", "b.txt", "--format", "json")
	if got := v.Annotations.Features["note"]; !reflect.DeepEqual(got, vals) {
		t.Errorf("show --format json: %q, want %q", got, vals)
	}
}

// TestCurateCSVFromR: a table R wrote, with NA for missing values (and
// pandas' NaN), curates: NA in the int column is missing, not "not an
// integer", and in the gene column it is not XK (whose alias is NA) nor
// NaN SCN11A: the saved version records neither. As in pandas.
func TestCurateCSVFromR(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("ontology", "import", "gene", "--organism", "human", "--source", filepath.Join(genes, "human_genes_orgHsEgDb.tsv.gz"))
	e.ok("feature", "create", "gene", "--dtype", "cat[gene]")
	e.ok("feature", "create", "count", "--dtype", "int")
	e.ok("schema", "create", "r", "--feature", "gene", "--feature", "count")
	in := e.write("from_r.csv", []byte("\"gene\",\"count\"\n\"PTPRC\",3\nNA,NA\n\"CD4\",NA\nNaN,7\n"))
	out := e.ok("curate", in, "--schema", "r", "--standardize", "--key", "r/from_r.csv", "--organism", "human")
	for _, want := range []string{"gene (cat[gene]): 2 of 2 values valid, 2 missing", "count (int): 2 of 2 values valid, 2 missing"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	var v struct {
		Annotations catalog.Annotations `json:"annotations"`
	}
	e.jsonOut(&v, "show", "r/from_r.csv", "--format", "json")
	for _, tm := range v.Annotations.Terms {
		if tm.Name == "XK" || tm.Name == "SCN11A" {
			t.Errorf("a missing value recorded as %+v", tm)
		}
	}
	if got := v.Annotations.Features["gene"]; !reflect.DeepEqual(got, []string{"CD4", "PTPRC"}) {
		t.Errorf("gene values %q", got)
	}
}

// TestAnnotateRemove: annotate --remove takes a wrong value, a label or a
// term off a version and out of every query; with a cat[ENTITY] value go
// the terms annotate recorded beside it; a feature without a value loses
// all its values; something the version does not have is exit 1 naming
// what it has, and nothing is removed.
func TestAnnotateRemove(t *testing.T) {
	e := annotEnv(t)
	e.ok("save", e.write("a.csv", []byte("x\n1\n")), "--key", "t/a.csv")
	e.ok("annotate", "t/a.csv", "--feature", "batch=1", "--feature", "cell_type=T cell", "--feature", "tissue=blood",
		"--label", "treated", "--term", "celltype=B cell")
	e.ok("annotate", "t/a.csv", "--feature", "batch=2")
	annotated := func() catalog.Annotations {
		var got struct {
			Annotations catalog.Annotations `json:"annotations"`
		}
		e.jsonOut(&got, "show", "t/a.csv", "--format", "json")
		return got.Annotations
	}
	found := func(args ...string) bool {
		t.Helper()
		return reflect.DeepEqual(lsKeys(t, e, args...), []string{"t/a.csv"})
	}
	if !found("--where", "batch=1") || !found("--cell-type", "T cell") || !found("--where", "cell_type=T cell") || !found("--term", "celltype=B cell") {
		t.Fatal("not found by its annotations before the removal")
	}

	out := e.ok("annotate", "t/a.csv", "--remove", "--feature", "batch=1")
	if !strings.Contains(out, "removed from t/a.csv@v1") || !strings.Contains(out, "feature         batch = 2\n") {
		t.Fatalf("annotate --remove printed:\n%s", out)
	}
	if found("--where", "batch=1") || !found("--where", "batch=2") {
		t.Fatal("batch=1 removed: ls --where batch=1 still finds it, or batch=2 no longer")
	}

	// Not there: exit 4 (not found), what the version has, nothing
	// removed (the label named with it stays).
	before := annotated()
	for _, tc := range []struct {
		want string
		args []string
	}{
		{`t/a.csv@v1 has no batch = "1" (its batch values: "2")`, []string{"--feature", "batch=1"}},
		{`has no label "control" (its labels: "treated")`, []string{"--label", "treated", "--label", "control"}},
		{`has no celltype term "neuron" (its celltype terms: "T cell" (CL:0000084), "B cell" (CL:0000236))`, []string{"--term", "celltype=neuron"}},
		{`has no value of feature condition (it has values of batch, cell_type, tissue)`, []string{"--feature", "condition"}},
	} {
		if err := e.fails(tc.want, append([]string{"annotate", "t/a.csv", "--remove"}, tc.args...)...); exitCode(err) != exitNotFound {
			t.Errorf("%v exits %d, want %d", tc.args, exitCode(err), exitNotFound)
		}
		if got := annotated(); !reflect.DeepEqual(got, before) {
			t.Fatalf("after the failed removal of %v: %+v, want %+v", tc.args, got, before)
		}
	}
	for _, args := range [][]string{{"--remove"}, {"--feature", "batch"}} {
		if err := e.fails("", append([]string{"annotate", "t/a.csv"}, args...)...); exitCode(err) != 2 {
			t.Errorf("annotate %v exits %d, want 2", args, exitCode(err))
		}
	}

	// A cell type by a synonym: the value and its term go, ls --cell-type
	// and --where no longer find it; the other term stays.
	_, stderr, err := e.run("annotate", "t/a.csv", "--remove", "--feature", "cell_type=T-cell", "--label", "treated")
	if err != nil || !strings.Contains(stderr, "removed term celltype T cell (CL:0000084)") {
		t.Fatalf("remove cell_type=T-cell: %v\n%s", err, stderr)
	}
	if found("--cell-type", "T cell") || found("--where", "cell_type=T cell") || found("--label", "treated") {
		t.Fatal("still found by the cell type or the label removed")
	}
	if a := annotated(); len(a.Terms) != 2 || a.Terms[0].ID != "CL:0000236" || a.Terms[1].Name != "blood" || a.Features["cell_type"] != nil || a.Labels != nil {
		t.Fatalf("after removing cell_type and the label: %+v", a)
	}
	// A term by id; a feature without a value: every value.
	e.ok("annotate", "t/a.csv", "--remove", "--term", "celltype=CL:0000236", "--feature", "tissue")
	if found("--term", "celltype=B cell") || found("--where", "tissue=blood") || found("--tissue", "blood") {
		t.Fatal("still found by the term or the tissue removed")
	}
	if a := annotated(); a.Terms != nil || !reflect.DeepEqual(a.Features, map[string][]string{"batch": {"2"}}) {
		t.Fatalf("after removing the B cell term and tissue: %+v", a)
	}
	if out := e.ok("annotate", "t/a.csv", "--remove", "--feature", "batch"); !strings.Contains(out, "no annotations left") {
		t.Fatalf("the last removal printed:\n%s", out)
	}
	if out := e.ok("show", "t/a.csv", "--format", "json"); strings.Contains(out, `"annotations"`) {
		t.Fatalf("show after every annotation was removed:\n%s", out)
	}

	// A term another value still names stays.
	e.ok("feature", "create", "sorted_as", "--dtype", "cat[celltype]")
	e.ok("annotate", "t/a.csv", "--feature", "cell_type=T cell", "--feature", "sorted_as=CL:0000084")
	e.ok("annotate", "t/a.csv", "--remove", "--feature", "cell_type")
	if a := annotated(); len(a.Terms) != 1 || a.Terms[0].ID != "CL:0000084" || !found("--cell-type", "T cell") || found("--where", "cell_type=T cell") {
		t.Fatalf("the term of a value left was removed: %+v", a)
	}
}

// TestAnnotateRemoveTermOfValue: --remove --term of a term a cat[ENTITY]
// value left on the version names is refused, exit 1 naming the value,
// nothing removed: ls --where by the value requires the term, so taking
// it left cell_type = T cell in show while --where cell_type="T cell"
// missed the version and cell_type!="T cell" listed it.
func TestAnnotateRemoveTermOfValue(t *testing.T) {
	e := annotEnv(t)
	e.ok("save", e.write("t.txt", []byte("x\n")), "--key", "tr/t.txt")
	e.ok("annotate", "tr/t.txt", "--feature", "cell_type=T cell", "--label", "treated")
	var before struct {
		Annotations catalog.Annotations `json:"annotations"`
	}
	e.jsonOut(&before, "show", "tr/t.txt", "--format", "json")
	err := e.fails(`tr/t.txt@v1 keeps term CL:0000084 "T cell": its value cell_type = "T cell" names it (remove that value, and the term goes with it)`,
		"annotate", "tr/t.txt", "--remove", "--term", "celltype=T cell", "--label", "treated")
	if exitCode(err) != 1 {
		t.Fatalf("exit %d, want 1", exitCode(err))
	}
	var after struct {
		Annotations catalog.Annotations `json:"annotations"`
	}
	e.jsonOut(&after, "show", "tr/t.txt", "--format", "json")
	if !reflect.DeepEqual(after, before) {
		t.Fatalf("after the refused removal: %+v, want %+v", after.Annotations, before.Annotations)
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--where", "cell_type=T cell"}, []string{"tr/t.txt"}},
		{[]string{"--where", "cell_type!=T cell"}, nil},
		{[]string{"--term", "celltype=T cell"}, []string{"tr/t.txt"}},
	} {
		if got := lsKeys(t, e, tc.args...); len(got) != len(tc.want) || len(got) > 0 && !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ls %v = %v, want %v", tc.args, got, tc.want)
		}
	}
	// With the value, the term goes.
	_, stderr, err := e.run("annotate", "tr/t.txt", "--remove", "--feature", "cell_type=T cell", "--term", "celltype=T cell")
	if err != nil || strings.Contains(stderr, "removed term") {
		t.Fatalf("remove the value and its term: %v\n%s", err, stderr)
	}
	if got := lsKeys(t, e, "--term", "celltype=T cell"); len(got) != 0 {
		t.Fatalf("ls --term celltype=T cell after removing it = %v", got)
	}
}

// annotateAltIDAsTyped gives the version key the value CL:0000739, an alt
// id of CL:0000043 "mature basophil", of feature as typed, with that
// term, as annotate and curate did before they mapped alt ids to their
// primary id: catalogs hold such values. It goes to the catalog
// directly, as annotate now stores CL:0000043.
func annotateAltIDAsTyped(t *testing.T, e *env, key, feature string) {
	t.Helper()
	var v catalog.Version
	e.jsonOut(&v, "show", key, "--format", "json")
	cat := currentBolt(t)
	defer cat.Close()
	add := catalog.Annotations{
		Features: map[string][]string{feature: {"CL:0000739"}},
		Terms:    []catalog.Term{{Entity: "celltype", ID: "CL:0000043", Name: "mature basophil"}},
	}
	if _, err := cat.Annotate(context.Background(), v.UID, add); err != nil {
		t.Fatal(err)
	}
}

// TestAnnotateRemoveAltIDValue: annotate kept a value that validates as
// an alt_id (CL:0000739) as typed, as curate did before it mapped alt ids
// to their primary id, and records the primary term (CL:0000043 "mature
// basophil"). Removing the value "mature basophil" took that term, and
// ls --where by the alt id, which needs the term, found nothing while
// show still listed the value.
func TestAnnotateRemoveAltIDValue(t *testing.T) {
	e := annotEnv(t)
	e.ok("feature", "create", "cell_type_ontology_term_id", "--dtype", "cat[celltype]")
	in := e.write("t.csv", []byte("cell_type,cell_type_ontology_term_id\nmature basophil,CL:0000739\n"))
	e.ok("save", in, "--key", "t/c.csv")
	e.ok("annotate", "t/c.csv", "--feature", "cell_type=mature basophil")
	annotateAltIDAsTyped(t, e, "t/c.csv", "cell_type_ontology_term_id")
	var v struct {
		Annotations catalog.Annotations `json:"annotations"`
	}
	e.jsonOut(&v, "show", "t/c.csv", "--format", "json")
	if !contains(v.Annotations.Features["cell_type_ontology_term_id"], "CL:0000739") || len(v.Annotations.Terms) != 1 || v.Annotations.Terms[0].ID != "CL:0000043" {
		t.Fatalf("curated annotations: %+v", v.Annotations)
	}
	byAltID := func(t *testing.T, want bool) {
		t.Helper()
		got := lsKeys(t, e, "--where", "cell_type_ontology_term_id=CL:0000739")
		not := lsKeys(t, e, "--where", "cell_type_ontology_term_id!=CL:0000739")
		if want && (!reflect.DeepEqual(got, []string{"t/c.csv"}) || len(not) != 0) || !want && (len(got) != 0 || !reflect.DeepEqual(not, []string{"t/c.csv"})) {
			t.Fatalf("ls --where cell_type_ontology_term_id=CL:0000739 = %v, != = %v; want the version found by = %v", got, not, want)
		}
	}
	_, stderr, err := e.run("annotate", "t/c.csv", "--remove", "--feature", "cell_type=mature basophil")
	if err != nil || strings.Contains(stderr, "removed term") {
		t.Fatalf("remove cell_type: %v\n%s", err, stderr)
	}
	byAltID(t, true)
	err = e.fails(`t/c.csv@v1 keeps term CL:0000043 "mature basophil": its value cell_type_ontology_term_id = "CL:0000739" names it`,
		"annotate", "t/c.csv", "--remove", "--term", "celltype=CL:0000043")
	if exitCode(err) != 1 {
		t.Fatalf("exit %d, want 1", exitCode(err))
	}
	byAltID(t, true)
	// With the value, the term goes.
	e.ok("annotate", "t/c.csv", "--remove", "--feature", "cell_type_ontology_term_id=CL:0000739", "--term", "celltype=CL:0000043")
	if got := lsKeys(t, e, "--term", "celltype=CL:0000043"); len(got) != 0 {
		t.Fatalf("ls --term celltype=CL:0000043 after removing it = %v", got)
	}
}

// TestAnnotateRemoveResolvedValue: a value left that names its term by an
// alt id (CL:0000739 for CL:0000043) kept every cell type term: with B
// cell's values removed, ls --term celltype=CL:0000236 still found the
// version, and removing that term was refused as one the alt id "may
// name". annotate resolves the values through the ontology: the alt id
// keeps its own term only.
func TestAnnotateRemoveResolvedValue(t *testing.T) {
	e := annotEnv(t)
	e.ok("feature", "create", "cell_type_ontology_term_id", "--dtype", "cat[celltype]")
	in := e.write("t.csv", []byte("cell_type,cell_type_ontology_term_id\nmature basophil,CL:0000739\nB cell,CL:0000236\n"))
	// Annotated as curate did before it mapped alt ids: the alt id as typed.
	e.ok("save", in, "--key", "t/c.csv")
	e.ok("annotate", "t/c.csv", "--feature", "cell_type=mature basophil", "--feature", "cell_type=B cell",
		"--feature", "cell_type_ontology_term_id=CL:0000236")
	annotateAltIDAsTyped(t, e, "t/c.csv", "cell_type_ontology_term_id")
	e.ok("annotate", "t/c.csv", "--remove", "--feature", "cell_type=B cell")
	if got := lsKeys(t, e, "--term", "celltype=CL:0000236"); !reflect.DeepEqual(got, []string{"t/c.csv"}) {
		t.Fatalf("ls --term celltype=CL:0000236 while CL:0000236 is left = %v", got)
	}
	_, stderr, err := e.run("annotate", "t/c.csv", "--remove", "--feature", "cell_type_ontology_term_id=CL:0000236")
	if err != nil || !strings.Contains(stderr, "removed term celltype B cell (CL:0000236)") {
		t.Fatalf("remove CL:0000236: %v\n%s", err, stderr)
	}
	if got := lsKeys(t, e, "--term", "celltype=CL:0000236"); len(got) != 0 {
		t.Fatalf("ls --term celltype=CL:0000236 with no value naming B cell = %v", got)
	}
	if got := lsKeys(t, e, "--where", "cell_type_ontology_term_id=CL:0000739"); !reflect.DeepEqual(got, []string{"t/c.csv"}) {
		t.Fatalf("ls --where cell_type_ontology_term_id=CL:0000739 = %v", got)
	}
	// The alt id names mature basophil: that term is refused.
	e.fails(`t/c.csv@v1 keeps term CL:0000043 "mature basophil": its value cell_type = "mature basophil" names it`,
		"annotate", "t/c.csv", "--remove", "--term", "celltype=CL:0000043")
	e.ok("annotate", "t/c.csv", "--remove", "--feature", "cell_type")
	e.fails(`t/c.csv@v1 keeps term CL:0000043 "mature basophil": its value cell_type_ontology_term_id = "CL:0000739" names it`,
		"annotate", "t/c.csv", "--remove", "--term", "celltype=CL:0000043")
	// Removing the alt id takes its term.
	_, stderr, err = e.run("annotate", "t/c.csv", "--remove", "--feature", "cell_type_ontology_term_id=CL:0000739")
	if err != nil || !strings.Contains(stderr, "removed term celltype mature basophil (CL:0000043)") {
		t.Fatalf("remove CL:0000739: %v\n%s", err, stderr)
	}
	if got := lsKeys(t, e, "--term", "celltype=CL:0000043"); len(got) != 0 {
		t.Fatalf("ls --term celltype=CL:0000043 after removing its value = %v", got)
	}
}

// TestAnnotateIDValueStaysID: annotate stored the name of the term a
// value given as an id names ("B cell" for CL:0000236, "mature basophil"
// for the alt id CL:0000739), where curate keeps ids as ids: a
// *_ontology_term_id feature held names. An id stays an id (an alt id
// and one with stray blanks as the term's id, as curate --standardize
// writes them), a name stays the standard name, and the terms keep their
// names.
func TestAnnotateIDValueStaysID(t *testing.T) {
	e := annotEnv(t)
	e.ok("feature", "create", "cell_type_ontology_term_id", "--dtype", "cat[celltype]")
	for _, k := range []string{"a", "b", "c"} {
		e.ok("save", e.write(k+".csv", []byte("a,b\n1,2\n")), "--key", "t/"+k+".csv")
	}
	e.ok("annotate", "t/a.csv", "--feature", "cell_type_ontology_term_id=CL:0000236", "--feature", "cell_type=B cell")
	e.ok("annotate", "t/b.csv", "--feature", "cell_type_ontology_term_id=CL:0000739")
	e.ok("annotate", "t/c.csv", "--feature", "cell_type_ontology_term_id= CL:0000084")
	for _, tc := range []struct {
		key, value, id, name string
	}{
		{"t/a.csv", "CL:0000236", "CL:0000236", "B cell"},
		{"t/b.csv", "CL:0000043", "CL:0000043", "mature basophil"},
		{"t/c.csv", "CL:0000084", "CL:0000084", "T cell"},
	} {
		var v struct {
			Annotations catalog.Annotations `json:"annotations"`
		}
		e.jsonOut(&v, "show", tc.key, "--format", "json")
		a := v.Annotations
		if got := a.Features["cell_type_ontology_term_id"]; !reflect.DeepEqual(got, []string{tc.value}) || len(a.Terms) != 1 || a.Terms[0].ID != tc.id || a.Terms[0].Name != tc.name {
			t.Errorf("%s: cell_type_ontology_term_id = %q, terms %+v; want %q and term %s %q", tc.key, got, a.Terms, tc.value, tc.id, tc.name)
		}
		if got := lsKeys(t, e, "--where", "cell_type_ontology_term_id="+tc.value); !reflect.DeepEqual(got, []string{tc.key}) {
			t.Errorf("ls --where cell_type_ontology_term_id=%s = %v, want [%s]", tc.value, got, tc.key)
		}
	}
	var v struct {
		Annotations catalog.Annotations `json:"annotations"`
	}
	e.jsonOut(&v, "show", "t/a.csv", "--format", "json")
	if got := v.Annotations.Features["cell_type"]; !reflect.DeepEqual(got, []string{"B cell"}) {
		t.Errorf("cell_type = %q, want the name B cell", got)
	}
	// The id as typed the first time removes the value stored.
	e.ok("annotate", "t/c.csv", "--remove", "--feature", "cell_type_ontology_term_id= CL:0000084")
	if got := lsKeys(t, e, "--where", "cell_type_ontology_term_id=CL:0000084"); len(got) != 0 {
		t.Errorf("ls --where cell_type_ontology_term_id=CL:0000084 after removing it = %v", got)
	}
}

// TestAnnotateRemoveOtherSpelling: annotate stores an id as typed and a
// name as the standard name, and ls finds either by the other, but
// --remove took only the stored spelling ("has no ct = "CL:0000236" (its
// ct values: "B cell")"). A cat[ENTITY] value now removes every stored
// value naming its term; an unknown value is still refused, and str
// features stay exact.
func TestAnnotateRemoveOtherSpelling(t *testing.T) {
	e := annotEnv(t)
	e.ok("feature", "create", "ct", "--dtype", "cat[celltype]")
	e.ok("feature", "create", "note", "--dtype", "str")
	for _, k := range []string{"a", "b", "d", "f"} {
		e.ok("save", e.write(k+".csv", []byte("a,b\n1,2\n")), "--key", "t/"+k+".csv")
	}
	e.ok("annotate", "t/b.csv", "--feature", "ct=B cell")
	e.ok("annotate", "t/d.csv", "--feature", "ct=CL:0000739") // an alt id of CL:0000043
	e.ok("annotate", "t/a.csv", "--feature", "ct=CL:0000236")
	e.ok("annotate", "t/f.csv", "--feature", "ct=CL:0000236", "--feature", "ct=B cell", "--feature", "ct=T cell", "--feature", "note=B cell")
	e.fails(`has no ct = "neuron" (its ct values: "B cell")`, "annotate", "t/b.csv", "--remove", "--feature", "ct=neuron")
	e.fails(`has no note = "b cell"`, "annotate", "t/f.csv", "--remove", "--feature", "note=b cell")
	for _, tc := range []struct{ key, value, term string }{
		{"t/b.csv", "CL:0000236", "CL:0000236"},
		{"t/d.csv", "CL:0000043", "CL:0000043"},
		{"t/a.csv", "B cell", "CL:0000236"},
	} {
		e.ok("annotate", tc.key, "--remove", "--feature", "ct="+tc.value)
		var v struct {
			Annotations catalog.Annotations `json:"annotations"`
		}
		e.jsonOut(&v, "show", tc.key, "--format", "json")
		if got := v.Annotations.Features["ct"]; len(got) != 0 || len(v.Annotations.Terms) != 0 {
			t.Errorf("%s after --remove ct=%s: ct = %q, terms %+v; want none", tc.key, tc.value, got, v.Annotations.Terms)
		}
		if got := lsKeys(t, e, "--term", "celltype="+tc.term); contains(got, tc.key) {
			t.Errorf("ls --term celltype=%s after removing it from %s = %v", tc.term, tc.key, got)
		}
	}
	// Both spellings of B cell go, and stderr says so; T cell stays.
	_, stderr, err := e.run("annotate", "t/f.csv", "--remove", "--feature", "ct=b cell")
	if err != nil || !strings.Contains(stderr, `removing "B cell", "CL:0000236"`) {
		t.Fatalf("remove ct=b cell from t/f.csv: %v\n%s", err, stderr)
	}
	var v struct {
		Annotations catalog.Annotations `json:"annotations"`
	}
	e.jsonOut(&v, "show", "t/f.csv", "--format", "json")
	if got := v.Annotations.Features["ct"]; !reflect.DeepEqual(got, []string{"T cell"}) {
		t.Errorf("t/f.csv ct = %q, want [T cell]", got)
	}
}

// TestAnnotateTermObsoleteNote: --term with an obsolete term's id records
// its replacement and says so on stderr, as --feature does; so do a
// synonym and a secondary id (alt_id), which said nothing. Before, --term
// celltype=CL:0000375 printed `term celltype preosteoblast
// (CL:0007010)`, exit 0, nothing on stderr: the term recorded was not the
// one named, silently.
func TestAnnotateTermObsoleteNote(t *testing.T) {
	e := annotEnv(t)
	e.ok("save", e.write("a.txt", []byte("a\n")), "--key", "t/a.txt")
	const note = `"CL:0000375" standardized to "preosteoblast" (CL:0007010): CL:0000375 is obsolete, replaced by CL:0007010`
	for _, tc := range []struct {
		name, flag, want string
	}{
		{"term", "--term=celltype=CL:0000375", "term celltype: " + note},
		{"feature", "--feature=cell_type=CL:0000375", `cell_type: "CL:0000375" standardized to "CL:0007010" (preosteoblast): CL:0000375 is obsolete, replaced by CL:0007010`},
		{"synonym", "--term=celltype=T-cell", `term celltype: "T-cell" standardized to "T cell" (CL:0000084): EXACT synonym "T-cell" of CL:0000084`},
		// An alt_id of CL:0000084 validates, but another id is recorded.
		{"alt_id", "--term=celltype=CL:0000804", `term celltype: "CL:0000804" standardized to "T cell" (CL:0000084): CL:0000804 is a secondary id of CL:0000084`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, stderr, err := e.run("annotate", "t/a.txt", tc.flag)
			if err != nil || !strings.Contains(stderr, tc.want) {
				t.Fatalf("annotate %s: %v\nstdout: %s\nstderr: %s\nwant on stderr: %s", tc.flag, err, out, stderr, tc.want)
			}
		})
	}
	// A term named by its name or id says nothing.
	if _, stderr, err := e.run("annotate", "t/a.txt", "--term", "celltype=CL:0000084", "--term", "celltype=B cell"); err != nil || stderr != "" {
		t.Fatalf("annotate by id and name: %v, stderr %q; want nothing", err, stderr)
	}
	var v struct {
		Annotations catalog.Annotations `json:"annotations"`
	}
	e.jsonOut(&v, "show", "t/a.txt", "--format", "json")
	for _, tm := range v.Annotations.Terms {
		if tm.ID == "CL:0000375" {
			t.Fatalf("the obsolete term was recorded: %+v", v.Annotations.Terms)
		}
	}
}
