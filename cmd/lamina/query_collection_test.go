package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/catalog/postgres/pgtest"
)

// onBothCatalogs runs fn on a fresh instance of each catalog: bbolt, and
// PostgreSQL (LAMINA_PG_URL).
func onBothCatalogs(t *testing.T, fn func(t *testing.T, e *env)) {
	for _, cat := range []string{"bolt", "postgres"} {
		t.Run(cat, func(t *testing.T) {
			e := newEnv(t)
			args := []string{"init", "--storage", e.path("storage"), "--name", "test"}
			if cat == "postgres" {
				args = append(args, "--db", pgtest.URL(t))
			}
			e.ok(args...)
			fn(t, e)
		})
	}
}

// keysOf returns the keys of ls --format json's rows, in order.
func keysOf(t *testing.T, out string) []string {
	t.Helper()
	var vs []catalog.Version
	if err := json.Unmarshal([]byte(out), &vs); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	var keys []string
	for _, v := range vs {
		keys = append(keys, v.Ref())
	}
	return keys
}

// TestLsFilterAfter: ls --after pages a filtered listing as it does a
// plain one: a script that follows the "more with --after" hint gets
// every match once and stops. --after was ignored with a filter, so the
// second page was the first again (a loop). With --all-versions a page
// never ends between two versions of a key; with another order than by
// key, --after is refused (exit 2).
func TestLsFilterAfter(t *testing.T) {
	onBothCatalogs(t, func(t *testing.T, e *env) {
		e.ok("feature", "create", "batch", "--dtype", "int")
		for i, k := range []string{"lim/k1.csv", "lim/k2.csv", "lim/k3.csv", "lim/k4.csv", "lim/k5.csv", "other/k6.csv"} {
			e.ok("save", e.write(k, []byte(k+"\n")), "--key", k)
			if k != "lim/k3.csv" {
				e.ok("annotate", k, "--feature", "batch=1")
			}
			if i == 1 { // k2 has two versions, both with batch=1
				e.ok("save", e.write(k, []byte(k+" again\n")), "--key", k)
				e.ok("annotate", k, "--feature", "batch=1")
			}
		}
		// page lists every page of ls args, following the hint.
		page := func(args ...string) []string {
			t.Helper()
			var all []string
			after := ""
			for range 10 {
				a := append([]string{"ls", "--format", "json", "--limit", "2"}, args...)
				if after != "" {
					a = append(a, "--after", after)
				}
				out, errs, err := e.run(a...)
				if err != nil {
					t.Fatalf("lamina %s: %v\n%s", strings.Join(a, " "), err, errs)
				}
				all = append(all, keysOf(t, out)...)
				_, hint, more := strings.Cut(errs, "more with --after ")
				if !more {
					return all
				}
				after = strings.Trim(strings.TrimSpace(hint), `")`)
			}
			t.Fatalf("ls %v: still more after 10 pages: %v", args, all)
			return nil
		}
		if got := strings.Join(page("--where", "batch=1", "lim/"), " "); got != "lim/k1.csv@v1 lim/k2.csv@v2 lim/k4.csv@v1 lim/k5.csv@v1" {
			t.Fatalf("pages of ls --where batch=1 lim/: %s", got)
		}
		if got := strings.Join(page("--where", "batch=1", "--all-versions"), " "); got != "lim/k1.csv@v1 lim/k2.csv@v1 lim/k2.csv@v2 lim/k4.csv@v1 lim/k5.csv@v1 other/k6.csv@v1" {
			t.Fatalf("pages of ls --where batch=1 --all-versions: %s", got)
		}
		// The audit's case: the page after k2 starts after it.
		out := e.ok("ls", "--where", "batch=1", "--limit", "2", "--after", "lim/k2.csv", "--format", "json", "lim/")
		if got := strings.Join(keysOf(t, out), " "); got != "lim/k4.csv@v1 lim/k5.csv@v1" {
			t.Fatalf("ls --where --after lim/k2.csv: %s", got)
		}
		err := e.fails("--after does not apply to ls --order created_at", "ls", "--where", "batch=1", "--order", "created_at", "--after", "lim/k2.csv")
		if codeOf(err) != 2 {
			t.Fatalf("--after with --order created_at: exit %d", codeOf(err))
		}
	})
}

// TestCurateKeyCheckedFirst: curate --key refuses, before reading the
// table, a key that cannot be saved and one whose suffix names another
// format than the file's (a CSV was saved under .parquet, without the
// warning save gives); exit 2, nothing saved.
func TestCurateKeyCheckedFirst(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("feature", "create", "a", "--dtype", "int")
	e.ok("schema", "create", "meta", "--feature", "a")
	csv := e.write("sc.csv", []byte("a,b\n1,2\n"))
	for key, want := range map[string]string{
		"odd/x.parquet": "--key odd/x.parquet says parquet, but " + csv + " is csv: give a key ending in .csv",
		"odd/x.h5ad":    "says h5ad",
		"odd/x.zarr":    "says anndata_zarr",
		"odd/bad@v2":    "a name may not end in @v<digits>",
	} {
		out, errs, err := e.run("curate", csv, "--schema", "meta", "--key", key)
		if codeOf(err) != 2 || !strings.Contains(explain(err), want) {
			t.Fatalf("curate --key %s: exit %d, %v, want exit 2 saying %q", key, codeOf(err), err, want)
		}
		if out != "" || errs != "" {
			t.Fatalf("curate --key %s validated before refusing the key:\n%s%s", key, out, errs)
		}
	}
	if out := e.ok("ls"); strings.Contains(out, "odd/") {
		t.Fatalf("a refused key was saved:\n%s", out)
	}
	// A key of the file's format, of another case, or of none is saved.
	for _, key := range []string{"odd/ok.CSV", "odd/plain"} {
		if out := e.ok("curate", csv, "--schema", "meta", "--key", key); !strings.Contains(out, "saved "+key+"@v1") {
			t.Fatalf("curate --key %s:\n%s", key, out)
		}
	}
}

// TestCollectionNamesAndVersions: NAME@vN names version N of a
// collection, so no collection may be called so (one was, and show could
// not find it); @v0 and a number too large are refused (exit 2), not read
// as the latest or as another number.
func TestCollectionNamesAndVersions(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("save", e.write("a.csv", []byte("a\n")), "--key", "a.csv")
	e.ok("save", e.write("b.csv", []byte("b\n")), "--key", "b.csv")
	e.fails(`collection name "x@v2": a name may not end in @v<digits>`, "collection", "create", "x@v2", "a.csv")
	e.ok("collection", "create", "c1", "a.csv")
	e.ok("collection", "create", "c1", "b.csv")
	for _, spec := range []string{"c1@v0", "c1@v99999999999999999999"} {
		err := e.fails("a collection version is @v1, @v2", "collection", "show", spec)
		if codeOf(err) != 2 {
			t.Fatalf("collection show %s: exit %d", spec, codeOf(err))
		}
	}
	if out := e.ok("collection", "show", "c1@v1"); !strings.Contains(out, "a.csv") || strings.Contains(out, "b.csv") {
		t.Fatalf("collection show c1@v1:\n%s", out)
	}
	// A name with @v but no version is fine.
	e.ok("collection", "create", "me@vx", "a.csv")
	e.ok("collection", "show", "me@vx")
}

// TestCollectionShowMarksTrashed: a member in the trash is marked in the
// table (TRASHED) and CSV (trashed_at) as ls --versions marks it; only
// the JSON said so.
func TestCollectionShowMarksTrashed(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("save", e.write("a.csv", []byte("a\n")), "--key", "a.csv")
	e.ok("save", e.write("b.csv", []byte("b\n")), "--key", "b.csv")
	e.ok("collection", "create", "c", "a.csv", "b.csv")
	e.ok("delete", "b.csv")
	out, errs, err := e.run("collection", "show", "c")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasSuffix(lines[0], "TRASHED") || strings.Contains(lines[1], "20") && !strings.HasPrefix(lines[1], "a.csv") {
		t.Fatalf("collection show table:\n%s", out)
	}
	for _, l := range lines[1:] {
		fields := strings.Fields(l)
		trashed := len(fields) > 0 && strings.Contains(fields[len(fields)-1], ":") && strings.Count(l, "-") >= 4
		if strings.HasPrefix(l, "b.csv") != trashed {
			t.Fatalf("collection show marks the wrong row:\n%s", out)
		}
	}
	if !strings.Contains(errs, "(1 in the trash)") {
		t.Fatalf("collection show stderr: %q", errs)
	}
	csv := e.ok("collection", "show", "c", "--format", "csv")
	rows := strings.Split(strings.TrimSpace(csv), "\n")
	if !strings.HasSuffix(rows[0], ",trashed_at") || !strings.HasSuffix(rows[1], ",") || strings.HasSuffix(rows[2], ",") {
		t.Fatalf("collection show CSV:\n%s", csv)
	}
}

// TestCollectionKeyPrefixMountPath: collection create --key-prefix takes
// a path into the mount, as the member arguments do (keypath.go): a
// folder's path is its keys, not those of its name's longer siblings.
func TestCollectionKeyPrefixMountPath(t *testing.T) {
	e := newMntEnv(t)
	for _, k := range []string{"raw/a.csv", "raw/b.csv", "raw2/c.csv"} {
		e.ok("save", e.file(filepath.Base(k), []byte(k+"\n")), "--key", k)
	}
	mnt := filepath.Join(e.dir, "mnt")
	e.mount(mnt)
	if out := e.ok("collection", "create", "c", "--key-prefix", filepath.Join(mnt, "raw")); !strings.Contains(out, `collection "c" v1: 2 versions`) {
		t.Fatalf("collection create --key-prefix MOUNT/raw: %q", out)
	}
	var col catalog.Collection
	if err := json.Unmarshal([]byte(e.ok("collection", "show", "c", "--format", "json")), &col); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, v := range col.Versions {
		keys = append(keys, v.Key)
	}
	if strings.Join(keys, " ") != "raw/a.csv raw/b.csv" {
		t.Fatalf("members %v", keys)
	}
	_, errs, code := e.runIn(e.dir, "collection", "create", "d", "--key-prefix", filepath.Join(e.dir, "elsewhere"))
	if code != 2 || !strings.Contains(errs, "is not in the mount") {
		t.Fatalf("--key-prefix outside the mount: exit %d\n%s", code, errs)
	}
}

// TestSearchNegativeLimit: search --limit -1 is refused (exit 2), as ls
// refuses it.
func TestSearchNegativeLimit(t *testing.T) {
	e := newEnv(t)
	e.init()
	err := e.fails("--limit -1: give a number of results", "search", "--limit", "-1", "anything")
	if codeOf(err) != 2 {
		t.Fatalf("exit %d", codeOf(err))
	}
}

// TestNotUTF8 (both catalogs): names, prefixes and values that are not
// UTF-8 are refused with one clear message, exit 2: bbolt stored such
// label, schema and collection names (an export turned them into U+FFFD,
// so names changed on import), and PostgreSQL answered its own `invalid
// byte sequence for encoding "UTF8"`.
func TestNotUTF8(t *testing.T) {
	onBothCatalogs(t, func(t *testing.T, e *env) {
		e.ok("save", e.write("a.csv", []byte("a\n")), "--key", "d/a.csv")
		e.ok("feature", "create", "tissue", "--dtype", "str")
		x := "\xff"
		for _, args := range [][]string{
			{"label", "create", x},
			{"feature", "create", "bad" + x, "--dtype", "int"},
			{"schema", "create", "s" + x, "--feature", "tissue"},
			{"collection", "create", x + "c", "d/a.csv"},
			{"ls", "d/" + x},
			{"ls", "--where", "key^=" + x},
			{"ls", "--where", "tissue=" + x},
			{"ls", "--label", x},
			{"label", "delete", x},
			{"schema", "delete", x},
			{"feature", "delete", x},
			{"collection", "show", x},
			{"collection", "ls", x},
			{"collection", "delete", x},
			{"label", "create", "ok", "--parent", x},
			{"annotate", "d/a.csv", "--label", x},
			{"annotate", "d/a.csv", "--feature", "tissue=" + x},
		} {
			_, errs, err := e.run(args...)
			msg := ""
			if err != nil {
				msg = explain(err)
			}
			if codeOf(err) != 2 || !strings.Contains(msg, "valid UTF-8") || strings.Contains(msg+errs, "SQLSTATE") {
				t.Errorf("lamina %q: exit %d, %q %q; want exit 2 saying it is not valid UTF-8", args, codeOf(err), msg, errs)
			}
		}
		for _, list := range []string{"label", "schema", "collection"} {
			if out := e.ok(list, "ls"); strings.Contains(out, "\ufffd") || strings.Contains(out, x) {
				t.Errorf("%s ls after the refusals:\n%s", list, out)
			}
		}
	})
}

// TestCollectionDelete (both catalogs): collection delete removes every
// version of a collection and says what it held; its members stay, and
// delete --permanent of one is no longer refused for it. A name that is
// no collection is said and refuses the command before anything goes
// (exit 1): `collection delete nope pick` deleted pick, then exited 1.
func TestCollectionDelete(t *testing.T) {
	onBothCatalogs(t, func(t *testing.T, e *env) {
		e.ok("save", e.write("a.csv", []byte("a\n")), "--key", "a.csv")
		e.ok("save", e.write("b.csv", []byte("b\n")), "--key", "b.csv")
		e.ok("collection", "create", "pick", "a.csv")
		e.ok("collection", "create", "pick", "a.csv", "b.csv")
		e.ok("collection", "create", "keep", "b.csv")
		e.fails("a.csv@v1 is in collection pick@v1", "delete", "--permanent", "--yes", "a.csv")
		_, _, err := e.run("delete", "--permanent", "--yes", "a.csv")
		if !strings.Contains(explain(err), "lamina collection delete NAME") {
			t.Fatalf("delete --permanent does not name collection delete: %v", err)
		}
		for _, args := range [][]string{{"nope", "pick"}, {"pick", "nope"}} {
			out, errs, err := e.run(append([]string{"collection", "delete"}, args...)...)
			if codeOf(err) != exitNotFound || !strings.Contains(errs, `no collection "nope"`) || !strings.Contains(explain(err), "1 unknown collection: nothing deleted") || out != "" {
				t.Fatalf("collection delete %v: exit %d %v\n%s%s", args, codeOf(err), err, out, errs)
			}
			if out := e.ok("collection", "ls"); !strings.Contains(out, "pick") {
				t.Fatalf("collection delete %v deleted pick:\n%s", args, out)
			}
		}
		out := e.ok("collection", "delete", "pick")
		if want := `deleted collection "pick" (2 versions; v2 held 2 artifact versions: a.csv@v1, b.csv@v1; they stay as they are)` + "\n"; out != want {
			t.Fatalf("collection delete said %q, want %q", out, want)
		}
		if out := e.ok("collection", "ls"); strings.Contains(out, "pick") || !strings.Contains(out, "keep") {
			t.Fatalf("collection ls after the delete:\n%s", out)
		}
		e.fails(`no collection "pick"`, "collection", "show", "pick")
		if out := e.ok("ls"); !strings.Contains(out, "a.csv") || !strings.Contains(out, "b.csv") {
			t.Fatalf("members gone with the collection:\n%s", out)
		}
		e.ok("delete", "--permanent", "--yes", "a.csv") // nothing refers to it now
		// JSON: what went, every version.
		e.ok("collection", "create", "again", "b.csv")
		var got []struct {
			Name     string               `json:"name"`
			Versions []catalog.Collection `json:"versions"`
		}
		e.jsonOut(&got, "collection", "delete", "again", "--format", "json")
		if len(got) != 1 || got[0].Name != "again" || len(got[0].Versions) != 1 || got[0].Versions[0].Version != 1 {
			t.Fatalf("collection delete --format json: %+v", got)
		}
		// An export after the delete holds no collection "pick", only the
		// highest number it had (TestCollectionNumbersNotReused).
		exp := e.path("export.json")
		e.ok("export-catalog", exp)
		data, err := os.ReadFile(exp)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Count(string(data), `"pick"`) != 1 || !strings.Contains(string(data), `{"deleted_collection":{"name":"pick","version":2}}`) ||
			!strings.Contains(string(data), `"keep"`) {
			t.Fatalf("export after the delete:\n%.2000s", data)
		}
	})
}

// TestCollectionNumbersNotReused: a collection deleted and made again
// continues after the highest number it had, so that an old NAME@v1 (a
// run's input, a note, a script) names nothing rather than the new list;
// it started over at v1. An export and import keeps the number.
func TestCollectionNumbersNotReused(t *testing.T) {
	onBothCatalogs(t, func(t *testing.T, e *env) {
		e.ok("save", e.write("a.csv", []byte("a\n")), "--key", "a.csv")
		e.ok("save", e.write("b.csv", []byte("b\n")), "--key", "b.csv")
		e.ok("collection", "create", "pick", "a.csv")
		e.ok("collection", "create", "pick", "a.csv", "b.csv")
		e.ok("collection", "delete", "pick")
		if out := e.ok("collection", "create", "pick", "b.csv"); !strings.Contains(out, `collection "pick" v3: 1 version`) {
			t.Fatalf("pick made again: %q, want v3", out)
		}
		for _, n := range []string{"1", "2"} {
			e.fails(`collection "pick" has no version `+n, "collection", "show", "pick@v"+n)
		}
		if out := e.ok("collection", "show", "pick@v3"); !strings.Contains(out, "b.csv") || strings.Contains(out, "a.csv") {
			t.Fatalf("collection show pick@v3:\n%s", out)
		}
		// Deleted again, exported and imported: made again, it is v4.
		e.ok("collection", "delete", "pick")
		dump := e.path("export.jsonl")
		e.ok("export-catalog", dump)
		args := []string{"init", "--storage", e.path("storage"), "--name", "again", "--take-over"}
		if strings.HasSuffix(t.Name(), "postgres") {
			args = append(args, "--db", pgtest.URL(t))
		}
		e.ok(args...)
		e.ok("--instance", "again", "import-catalog", dump)
		if out := e.ok("--instance", "again", "collection", "create", "pick", "a.csv"); !strings.Contains(out, `collection "pick" v4: 1 version`) {
			t.Fatalf("pick made again after an import: %q, want v4", out)
		}
	})
}

// TestCollectionDeleteMounted: a collection deleted while mounted leaves
// /.lamina/collections at once (NAME and NAME@vN), and one made again
// under its name shows its own version (v2: numbers are never reused),
// not the deleted v1's tree the mount had cached.
func TestCollectionDeleteMounted(t *testing.T) {
	e := newMntEnv(t)
	e.ok("save", e.file("a.csv", []byte("a\n")), "--key", "d/a.csv")
	e.ok("save", e.file("b.csv", []byte("b\n")), "--key", "d/b.csv")
	mnt := filepath.Join(e.dir, "mnt")
	e.mount(mnt)
	colls := filepath.Join(mnt, ".lamina/collections")
	e.ok("collection", "create", "c", "d/a.csv")
	if got := strings.Join(lsNames(t, filepath.Join(colls, "c@v1", "d")), ","); got != "a.csv" {
		t.Fatalf("c@v1 before the delete: %s", got)
	}
	e.ok("collection", "delete", "c")
	if got := lsNames(t, colls); len(got) != 0 {
		t.Fatalf("collections after the delete: %v", got)
	}
	for _, p := range []string{"c", "c@v1"} {
		if _, err := os.Stat(filepath.Join(colls, p)); !os.IsNotExist(err) {
			t.Fatalf("stat %s after the delete: %v, want ENOENT", p, err)
		}
	}
	// Made again, it continues after the deleted v1: c@v1 names nothing,
	// never the new list.
	e.ok("collection", "create", "c", "d/b.csv")
	for _, p := range []string{"c", "c@v2"} {
		if got := strings.Join(lsNames(t, filepath.Join(colls, p, "d")), ","); got != "b.csv" {
			t.Fatalf("%s made again: %s, want b.csv", p, got)
		}
	}
	if _, err := os.Stat(filepath.Join(colls, "c@v1")); !os.IsNotExist(err) {
		t.Fatalf("stat c@v1 after c was made again: %v, want ENOENT", err)
	}
}

// TestLsAllVersionsLimitOtherOrder: ls --all-versions --limit N in an
// order other than by key lists the first N rows of that order. The rule
// that a page never ends between two versions of a key (for --after) ran
// in any order and replaced the page with the versions of its last key:
// y's version went missing, and a key of 3 versions gave 3 rows for
// --limit 2.
func TestLsAllVersionsLimitOtherOrder(t *testing.T) {
	onBothCatalogs(t, func(t *testing.T, e *env) {
		e.ok("save", e.write("x.txt", []byte("x1\n")), "--key", "r/x.txt")
		e.ok("save", e.write("y.txt", []byte("y1\n")), "--key", "r/y.txt")
		e.ok("save", e.write("x.txt", []byte("x2\n")), "--key", "r/x.txt")
		e.ok("save", e.write("x.txt", []byte("x3\n")), "--key", "r/x.txt")
		for _, c := range []struct {
			order string
			limit string
			want  string
		}{
			{"created_at", "3", "r/x.txt@v1 r/y.txt@v1 r/x.txt@v2"},
			{"-created_at", "3", "r/x.txt@v3 r/x.txt@v2 r/y.txt@v1"},
			{"created_at", "2", "r/x.txt@v1 r/y.txt@v1"},
			{"-created_at", "2", "r/x.txt@v3 r/x.txt@v2"},
			{"-created_at", "1", "r/x.txt@v3"},
		} {
			out, errs, err := e.run("ls", "--order", c.order, "--all-versions", "--limit", c.limit, "--format", "json", "r/")
			if err != nil {
				t.Fatalf("ls --order %s --limit %s: %v\n%s", c.order, c.limit, err, errs)
			}
			if got := strings.Join(keysOf(t, out), " "); got != c.want {
				t.Fatalf("ls --order %s --all-versions --limit %s: %s, want %s", c.order, c.limit, got, c.want)
			}
			if !strings.Contains(errs, "(showing the first "+c.limit+"; raise --limit for more)") {
				t.Fatalf("ls --order %s --limit %s: stderr %q", c.order, c.limit, errs)
			}
		}
	})
}
