package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lamina-bio/lamina/catalog"
)

// TestCurationDelete: feature, label and schema delete remove what
// nothing uses, so that queries no longer know it, and refuse the rest
// (exit 1, going on with the other names), saying what uses it and what
// to run first; following that advice makes the delete go.
func TestCurationDelete(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("feature", "create", "tissue", "--dtype", "str")
	e.ok("feature", "create", "tissu", "--dtype", "str")
	e.ok("feature", "create", "batch", "--dtype", "int")
	e.ok("label", "create", "qc")
	e.ok("label", "create", "passed", "--parent", "qc")
	e.ok("label", "create", "spare")
	e.ok("label", "create", "spare2")
	e.ok("save", e.write("a.csv", []byte("x\n1\n")), "--key", "a.csv")
	e.ok("annotate", "a.csv", "--feature", "tissue=liver", "--label", "passed")
	e.ok("schema", "create", "s", "--feature", "batch")

	// refused runs args and checks that it exits 1 saying each of want:
	// 4 (not found) for a refusal of unknown names ("1 unknown label").
	refused := func(args []string, want ...string) (stdout, stderr string) {
		t.Helper()
		out, errs, err := e.run(args...)
		code := 1
		if slices.ContainsFunc(want, func(w string) bool { return strings.Contains(w, " unknown ") }) {
			code = exitNotFound
		}
		if codeOf(err) != code {
			t.Fatalf("lamina %s: exit %d (%v), want %d\n%s", strings.Join(args, " "), codeOf(err), err, code, errs)
		}
		for _, w := range want {
			if !strings.Contains(errs+explain(err), w) {
				t.Fatalf("lamina %s: %q does not say %q", strings.Join(args, " "), errs+explain(err), w)
			}
		}
		return out, errs
	}

	// Unused: deleted, and gone from ls and queries.
	if out := e.ok("feature", "delete", "tissu"); out != "deleted feature tissu (str)\n" {
		t.Fatalf("feature delete: %q", out)
	}
	if out := e.ok("feature", "ls"); strings.Contains(out, "tissu ") || !strings.Contains(out, "tissue") {
		t.Fatalf("feature ls after the delete:\n%s", out)
	}
	e.fails(`no feature or field "tissu"`, "ls", "--where", "tissu=liver")
	refused([]string{"feature", "delete", "tissu"}, `no feature "tissu"`, "1 unknown feature: nothing deleted")

	// In use: values on a version, a schema that lists it.
	refused([]string{"feature", "delete", "tissue"}, `feature "tissue" is in use`, "1 version has values of it (e.g. a.csv@v1)",
		"lamina annotate a.csv@v1 --remove --feature tissue")
	refused([]string{"feature", "delete", "batch"}, "1 schema lists it (e.g. s)", "lamina schema delete s")
	if out := e.ok("ls", "--where", "tissue=liver"); !strings.Contains(out, "a.csv") {
		t.Fatalf("a refused delete changed what ls finds:\n%s", out)
	}
	refused([]string{"label", "delete", "qc"}, `label "qc" is in use`, "the parent of 1 label (e.g. passed)", "lamina label delete passed")
	refused([]string{"label", "delete", "passed"}, "it is on 1 version (e.g. a.csv@v1)", "lamina annotate a.csv@v1 --remove --label passed")
	e.ok("label", "delete", "spare")
	e.fails(`no label "spare"`, "ls", "--label", "spare")
	if out := e.ok("search", "liver"); !strings.Contains(out, "a.csv") {
		t.Fatalf("search after the deletes:\n%s", out)
	}

	// Several names: the unused go, the others are kept and said, and
	// JSON lists what went, as ls shows it. An unknown name refuses the
	// command before anything goes, as lamina delete does: it deleted the
	// others, then exited 1.
	e.ok("feature", "create", "oops", "--dtype", "float")
	for _, args := range [][]string{{"nope", "oops"}, {"oops", "tissue", "nope"}} {
		out, errs := refused(append([]string{"feature", "delete", "--format", "json"}, args...), `no feature "nope"`, "1 unknown feature: nothing deleted")
		if strings.TrimSpace(out) != "[]" || strings.Contains(errs, "is in use") {
			t.Fatalf("feature delete %v: %q\n%s", args, out, errs)
		}
	}
	for _, args := range [][]string{{"label", "delete", "spare2", "nope"}, {"schema", "delete", "s", "nope"}} {
		refused(args, fmt.Sprintf("no %s \"nope\"", args[0]), "1 unknown "+args[0]+": nothing deleted")
	}
	out, errs := refused([]string{"feature", "delete", "--format", "json", "oops", "tissue"}, "1 feature not deleted")
	var got []catalog.Feature
	if err := json.Unmarshal([]byte(out), &got); err != nil || len(got) != 1 || got[0].Name != "oops" || got[0].Dtype != "float" {
		t.Fatalf("JSON %q: %+v, %v", out, got, err)
	}
	if !strings.Contains(errs, `feature "tissue" is in use`) {
		t.Fatalf("stderr:\n%s", errs)
	}
	if out := e.ok("label", "ls"); !strings.Contains(out, "spare2") {
		t.Fatalf("label delete spare2 nope deleted spare2:\n%s", out)
	}
	e.ok("label", "delete", "spare2")
	var ls []catalog.Feature
	e.jsonOut(&ls, "feature", "ls", "--format", "json")
	if len(ls) != 2 {
		t.Fatalf("feature ls: %+v", ls)
	}

	// What the messages say to run, run: the deletes go.
	e.ok("annotate", "a.csv@v1", "--remove", "--feature", "tissue")
	e.ok("annotate", "a.csv@v1", "--remove", "--label", "passed")
	e.ok("schema", "delete", "s")
	for _, args := range [][]string{{"feature", "delete", "tissue", "batch"}, {"label", "delete", "passed", "qc"}} {
		e.ok(args...)
	}
	var left []catalog.Label
	if e.jsonOut(&left, "label", "ls", "--format", "json"); len(left) != 0 {
		t.Fatalf("labels left: %+v", left)
	}
	// An export holds none of them.
	e.ok("export-catalog", e.path("dump.jsonl"))
	for _, line := range strings.Split(strings.TrimSpace(string(mustRead(t, e.path("dump.jsonl")))), "\n") {
		var r catalog.Record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("export line %q: %v", line, err)
		}
		if r.Feature != nil || r.Label != nil || r.Schema != nil {
			t.Fatalf("the export holds a deleted record: %s", line)
		}
	}
	if err := e.fails("usage: lamina schema delete NAME", "schema", "delete"); codeOf(err) != 2 {
		t.Fatalf("no name: exit %d", codeOf(err))
	}
}

// TestSchemaDeleteCurated: a schema curate recorded on a version is in
// use until annotate --remove --schema takes it off.
func TestSchemaDeleteCurated(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("feature", "create", "donor", "--dtype", "str")
	e.ok("schema", "create", "donors", "--feature", "donor")
	e.ok("curate", e.write("t.csv", []byte("donor\nd1\nd2\n")), "--schema", "donors", "--key", "cur/t.csv")
	_, errs, err := e.run("schema", "delete", "donors")
	if codeOf(err) != 1 || !strings.Contains(errs, "1 version was curated with it (e.g. cur/t.csv@v1)") ||
		!strings.Contains(errs, "lamina annotate cur/t.csv@v1 --remove --schema donors") {
		t.Fatalf("schema delete of a curated schema: %v\n%s", err, errs)
	}
	if err := e.fails("--schema goes with --remove", "annotate", "cur/t.csv", "--schema", "donors"); codeOf(err) != 2 {
		t.Fatalf("annotate --schema without --remove: exit %d", codeOf(err))
	}
	e.ok("annotate", "cur/t.csv@v1", "--remove", "--schema", "donors")
	var s []catalog.Schema
	if e.jsonOut(&s, "schema", "delete", "donors", "--format", "json"); len(s) != 1 || s[0].Name != "donors" || len(s[0].Features) != 1 {
		t.Fatalf("schema delete --format json: %+v", s)
	}
	e.fails(`no schema "donors"`, "curate", filepath.Join(e.dir, "t.csv"), "--schema", "donors")
}

// TestCurationDeleteMounted: while a mount's daemon holds the catalog,
// the deletes go through its socket, refusals included.
func TestCurationDeleteMounted(t *testing.T) {
	e := newMntEnv(t)
	mnt := filepath.Join(e.dir, "mnt")
	e.mount(mnt)
	e.ok("save", e.file("a.csv", []byte("x\n1\n")), "--key", "a.csv")
	e.ok("feature", "create", "tissu", "--dtype", "str")
	e.ok("feature", "create", "tissue", "--dtype", "str")
	e.ok("label", "create", "oops")
	e.ok("annotate", "a.csv", "--feature", "tissue=liver")
	e.fails("1 version has values of it (e.g. a.csv@v1)", "feature", "delete", "tissue")
	if out := e.ok("feature", "delete", "tissu"); out != "deleted feature tissu (str)\n" {
		t.Fatalf("feature delete: %q", out)
	}
	e.ok("label", "delete", "oops")
	if out := e.ok("feature", "ls"); strings.Contains(out, "tissu ") {
		t.Fatalf("feature ls:\n%s", out)
	}
	if out := e.ok("label", "ls", "--format", "json"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("label ls: %s", out)
	}
	e.fails(`no feature or field "tissu"`, "ls", "--where", "tissu=x")
}

// label delete of a parent and its children in one command deletes them
// all, whatever their order: the parent was refused ("the parent of
// kid") although kid went in the same command. A label still in use
// stays, and says why once.
func TestLabelDeleteParentWithChildren(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("label", "create", "gp")
	e.ok("label", "create", "par", "--parent", "gp")
	e.ok("label", "create", "kid", "--parent", "par")
	e.ok("label", "create", "other", "--parent", "gp")
	out, errs, err := e.run("label", "delete", "gp", "par", "kid")
	if codeOf(err) != 1 || !strings.Contains(out, "deleted label kid") || !strings.Contains(out, "deleted label par") || strings.Contains(out, "deleted label gp") ||
		strings.Count(errs, "is in use") != 1 || !strings.Contains(errs, `label "gp" is in use, not deleted: it is the parent of 1 label (e.g. other)`) {
		t.Fatalf("label delete gp par kid (other under gp): exit %d\n%s%s", codeOf(err), out, errs)
	}
	e.ok("label", "create", "par", "--parent", "gp")
	e.ok("label", "create", "kid", "--parent", "par")
	var got []catalog.Label
	e.jsonOut(&got, "label", "delete", "--format", "json", "gp", "par", "other", "kid")
	if len(got) != 4 {
		t.Fatalf("label delete --format json gp par other kid: %+v", got)
	}
	if out := e.ok("label", "ls", "--format", "json"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("labels left: %s", out)
	}
}

// TestCurationDeleteNameTwice: a name given twice to feature, label,
// schema or collection delete is one, as lamina delete takes a key given
// twice: label delete a a deleted a, then said no label "a" (what it had
// itself deleted) and exited 1. It is deleted and said once.
func TestCurationDeleteNameTwice(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("save", e.write("a.csv", []byte("x\n1\n")), "--key", "a.csv")
	e.ok("feature", "create", "f", "--dtype", "str")
	e.ok("feature", "create", "g", "--dtype", "str")
	e.ok("label", "create", "l")
	e.ok("label", "create", "m")
	e.ok("schema", "create", "s", "--feature", "g")
	e.ok("collection", "create", "c", "a.csv")
	for _, kind := range []string{"feature", "label", "schema", "collection"} {
		name := kind[:1]
		args, distinct := []string{kind, "delete", name, name}, 1
		if kind == "label" {
			args, distinct = append(args, "m", name), 2 // and not only side by side
		}
		out, errs, err := e.run(args...)
		if err != nil || strings.Count(out, "deleted "+kind) != distinct || errs != "" {
			t.Errorf("lamina %s: exit %d %v\n%s%s", strings.Join(args, " "), codeOf(err), err, out, errs)
			continue
		}
		if out := e.ok(kind, "ls"); strings.Contains(out, "\n"+name+" ") {
			t.Fatalf("%s ls after the delete:\n%s", kind, out)
		}
	}
	// Unknown twice: said once.
	_, errs, err := e.run("label", "delete", "nope", "nope")
	if codeOf(err) != exitNotFound || strings.Count(errs, `no label "nope"`) != 1 || !strings.Contains(explain(err), "1 unknown label") {
		t.Fatalf("label delete nope nope: exit %d %v\n%s", codeOf(err), err, errs)
	}
}
