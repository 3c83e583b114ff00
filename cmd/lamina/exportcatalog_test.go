package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/lamina-bio/lamina/catalog"
)

// TestExportWhileMounted: export-catalog works while a daemon holds the
// bbolt file (it reads a copy the daemon writes), sees what was just
// written through the mount, and leaves no copy behind; import still asks
// for the mount to go.
func TestExportWhileMounted(t *testing.T) {
	e := newMntEnv(t)
	e.ok("save", e.file("a.txt", []byte("one\n")), "--key", "x/a.txt")
	mnt := filepath.Join(e.dir, "mnt")
	e.mount(mnt)
	if err := os.WriteFile(filepath.Join(mnt, "x", "b.txt"), []byte("two\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before, _ := filepath.Glob(filepath.Join(os.TempDir(), "lamina-export-*"))
	e.ok("export-catalog", filepath.Join(e.dir, "mounted.jsonl"))
	after, _ := filepath.Glob(filepath.Join(os.TempDir(), "lamina-export-*"))
	if len(after) > len(before) {
		t.Errorf("export left its copy of the catalog: %v", after)
	}
	mounted := string(mustRead(t, filepath.Join(e.dir, "mounted.jsonl")))
	if !strings.Contains(mounted, `"x/a.txt"`) || !strings.Contains(mounted, `"x/b.txt"`) {
		t.Fatalf("the export while mounted misses a version:\n%s", mounted)
	}
	e.fails("umount", "import-catalog", filepath.Join(e.dir, "mounted.jsonl"))
	e.ok("umount", mnt)
	e.ok("export-catalog", filepath.Join(e.dir, "unmounted.jsonl"))
	// The same records, but for the storage records the daemon had still
	// to write (its outbox, empty after umount) and so their count.
	kept := func(export string) string {
		var kept []string
		for _, l := range strings.SplitAfter(export, "\n") {
			if !strings.HasPrefix(l, `{"outbox":`) && !strings.HasPrefix(l, `{"count":`) {
				kept = append(kept, l)
			}
		}
		return strings.Join(kept, "")
	}
	if got := string(mustRead(t, filepath.Join(e.dir, "unmounted.jsonl"))); kept(got) != kept(mounted) {
		t.Errorf("the export while mounted differs from the one after umount:\n%s\n---\n%s", mounted, got)
	}
}

// TestImportCatalogChecksStorage: an export imported into an instance
// whose storage does not hold its data is refused (every get would fail),
// unless --force; one on the exported instance's storage imports.
func TestImportCatalogChecksStorage(t *testing.T) {
	e := newEnv(t)
	e.ok("init", "--storage", e.path("store"), "--name", "src")
	for i := range 3 {
		e.ok("save", e.write("a.csv", []byte(fmt.Sprintf("a,b\n1,%d\n", i))), "--key", fmt.Sprintf("k%d.csv", i))
	}
	e.ok("export-catalog", e.path("dump.jsonl"))

	e.ok("init", "--storage", e.path("elsewhere"), "--name", "wrong")
	err := e.fails(`the storage of instance "wrong"`, "--instance", "wrong", "import-catalog", e.path("dump.jsonl"))
	if codeOf(err) != 1 || !strings.Contains(err.Error(), "3 of the 3 versions checked") || !strings.Contains(err.Error(), "--force") {
		t.Errorf("import into the wrong storage: %v (exit %d)", err, codeOf(err))
	}
	if out := e.ok("--instance", "wrong", "ls"); strings.Contains(out, "k0.csv") {
		t.Errorf("a refused import imported:\n%s", out)
	}
	e.ok("--instance", "wrong", "import-catalog", "--force", e.path("dump.jsonl"))

	e.ok("init", "--storage", e.path("store"), "--name", "right", "--take-over")
	e.ok("--instance", "right", "import-catalog", e.path("dump.jsonl"))
	e.ok("--instance", "right", "get", "k2.csv", "-o", e.path("k2.out"))
	// The instance that lost the storage may not import into it either.
	e.ok("init", "--storage", e.path("store2"), "--name", "lost")
	e.ok("init", "--storage", e.path("store2"), "--name", "taker", "--take-over")
	e.fails("took", "--instance", "lost", "import-catalog", e.path("dump.jsonl"))
}

// partialExports writes, from the whole export dump, the files an
// import must refuse: one without its big.txt records, one cut before its
// count line, one holding its first line only; and the same partial one
// and first line as an export from before count lines (no "counted").
func partialExports(t *testing.T, dump string) map[string]string {
	t.Helper()
	lines := strings.SplitAfter(string(mustRead(t, dump)), "\n")
	lines = lines[:len(lines)-1] // after the last "\n"
	if !strings.Contains(lines[0], `"counted":true`) || !strings.HasPrefix(lines[len(lines)-1], `{"count":`) {
		t.Errorf("the export has no count line:\n%s", strings.Join(lines, ""))
	}
	var part []string
	for _, l := range lines {
		if !strings.Contains(l, "big") {
			part = append(part, l)
		}
	}
	old := func(ls []string) string {
		out := strings.Replace(ls[0], `,"counted":true`, "", 1)
		for _, l := range ls[1:] {
			if !strings.HasPrefix(l, `{"count":`) {
				out += l
			}
		}
		return out
	}
	files := map[string]string{
		"count line says 2":       strings.Join(part, ""),
		"without its count line":  strings.Join(lines[:len(lines)-1], ""),
		"without its count line ": lines[0],
		`records 1 version that the file does not hold (a/big.txt@v1)`:   old(part),
		`records 2 versions that the file does not hold (a/big.txt@v1, `: old(lines[:1]),
	}
	out := map[string]string{}
	i := 0
	for want, text := range files {
		i++
		p := filepath.Join(filepath.Dir(dump), fmt.Sprintf("part%d.jsonl", i))
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		out[p] = strings.TrimSpace(want)
	}
	return out
}

// TestImportCatalogPartial: an export that lacks versions the storage's
// records hold (cut at a line, edited, stale) is refused, nothing
// imported: imported, the next gc would delete their data and records.
// --partial imports it anyway.
func TestImportCatalogPartial(t *testing.T) {
	e := newEnv(t)
	e.ok("init", "--storage", e.path("store"), "--name", "src")
	e.ok("save", e.write("big.txt", []byte("big\n")), "--key", "a/big.txt")
	e.ok("save", e.write("f1.txt", []byte("f1\n")), "--key", "a/f1.txt")
	dump := e.path("g1.jsonl")
	e.ok("export-catalog", dump)
	e.ok("init", "--storage", e.path("store"), "--name", "again", "--take-over")
	for p, want := range partialExports(t, dump) {
		e.fails(want, "--instance", "again", "import-catalog", p)
		if out := e.ok("--instance", "again", "ls", "a/"); strings.Contains(out, "f1.txt") {
			t.Fatalf("a refused import of %s imported:\n%s", p, out)
		}
	}
	e.ok("--instance", "again", "import-catalog", dump)
	if out := e.ok("--instance", "again", "gc", "--grace", "0s", "--settle", "0s", "--dry-run"); strings.Contains(out, "would delete") && !strings.Contains(out, "would delete 0") {
		t.Errorf("gc after a whole import: %s", out)
	}
	e.ok("--instance", "again", "get", "a/big.txt", "-o", e.path("big.out"))
}

// TestImportCatalogAfterPurge: a version deleted for good stays in the
// record batch it shares with live versions, even after a gc; its
// tombstone says it was purged, so the export (which lacks it) imports
// without --partial. An export that lacks a live version is still refused.
func TestImportCatalogAfterPurge(t *testing.T) {
	e := newEnv(t)
	e.ok("init", "--storage", e.path("store"), "--name", "src")
	e.ok("save", "--key-prefix", "t", e.write("a.txt", []byte("a\n")), e.write("b.txt", []byte("b\n")), e.write("d.txt", []byte("d\n"))) // one batch
	e.ok("delete", "--permanent", "--yes", "t/d.txt")
	e.ok("gc", "--grace", "0s", "--settle", "0s")
	dump := e.path("e.jsonl")
	e.ok("export-catalog", dump)
	e.ok("init", "--storage", e.path("store"), "--name", "B", "--take-over")
	var part []string
	for _, l := range strings.SplitAfter(string(mustRead(t, dump)), "\n") {
		if !strings.Contains(l, "b.txt") && !strings.HasPrefix(l, `{"count":`) {
			part = append(part, strings.Replace(l, `,"counted":true`, "", 1))
		}
	}
	stale := e.path("stale.jsonl")
	if err := os.WriteFile(stale, []byte(strings.Join(part, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	e.fails("records 1 version that the file does not hold (t/b.txt@v1)", "--instance", "B", "import-catalog", stale)
	e.ok("--instance", "B", "import-catalog", dump)
	e.ok("--instance", "B", "get", "t/a.txt", "-o", e.path("a.out"))
	// The tombstone outlives the gcs that keep the shared batch.
	e.ok("--instance", "B", "gc", "--grace", "0s", "--settle", "0s")
	e.ok("--instance", "B", "export-catalog", e.path("e2.jsonl"))
	e.ok("init", "--storage", e.path("store"), "--name", "C", "--take-over")
	e.ok("--instance", "C", "import-catalog", e.path("e2.jsonl"))
}

// TestImportCatalogDamaged: a file that is not a line-per-record export
// (gzipped, a JSON array, cut inside a line) is reported as such, with
// the record that does not decode, before it is judged against the
// storage's records (which it would seem to lack).
func TestImportCatalogDamaged(t *testing.T) {
	e := newEnv(t)
	e.ok("init", "--storage", e.path("store"), "--name", "src")
	e.ok("save", e.write("a.txt", []byte("a\n")), "--key", "a.txt")
	e.ok("save", e.write("b.txt", []byte("b\n")), "--key", "b.txt")
	dump := e.path("e.jsonl")
	e.ok("export-catalog", dump)
	whole := string(mustRead(t, dump))
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(whole))
	zw.Close()
	lines := strings.SplitAfter(whole, "\n")
	files := map[string]string{
		"e.jsonl.gz: record 1: invalid character":            gz.String(),
		"array.json: record 1: json: cannot unmarshal array": "[" + strings.Join(strings.Split(strings.TrimSpace(whole), "\n"), ",") + "]\n",
		"cut.jsonl: record 3: unexpected EOF":                lines[0] + lines[1] + lines[2][:len(lines[2])/2],
	}
	e.ok("init", "--storage", e.path("store"), "--name", "B", "--take-over")
	for want, text := range files {
		name := strings.SplitN(want, ":", 2)[0]
		if err := os.WriteFile(e.path(name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		err := e.fails(want, "--instance", "B", "import-catalog", e.path(name))
		if strings.Contains(explain(err), "does not hold") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestImportCatalogNotEmpty: an import into a catalog that holds anything
// says so first, whatever the file; a whole import says as many records
// as the export did.
func TestImportCatalogNotEmpty(t *testing.T) {
	e := newEnv(t)
	e.ok("init", "--storage", e.path("store"), "--name", "src")
	e.ok("save", e.write("a.txt", []byte("a\n")), "--key", "a.txt")
	e.ok("save", e.write("b.txt", []byte("b\n")), "--key", "b.txt")
	dump := e.path("e.jsonl")
	_, stderr, err := e.run("export-catalog", dump)
	if err != nil {
		t.Fatal(err)
	}
	e.ok("delete", "--permanent", "--yes", "b.txt")
	e.ok("init", "--storage", e.path("store"), "--name", "B", "--take-over")
	e.ok("--instance", "B", "save", e.write("c.txt", []byte("c\n")), "--key", "c.txt")
	e.fails("not empty", "--instance", "B", "import-catalog", dump)
	e.ok("init", "--storage", e.path("store"), "--name", "C", "--take-over")
	out := e.ok("--instance", "C", "import-catalog", "--partial", dump) // c.txt is recorded, not exported
	var n int
	if _, err := fmt.Sscanf(stderr, "exported %d records", &n); err != nil || !strings.Contains(out, fmt.Sprintf("imported %d records:", n)) {
		t.Errorf("export said %q, import %q", stderr, out)
	}
}

// TestImportCatalogNewerFormat: an export of a newer format (here with a
// record kind this build does not know, counted in its count line) is
// refused as newer, "upgrade lamina", not taken for a cut or edited file.
func TestImportCatalogNewerFormat(t *testing.T) {
	e := newEnv(t)
	e.ok("init", "--storage", e.path("store"), "--name", "src")
	e.ok("save", e.write("a.txt", []byte("a\n")), "--key", "a.txt")
	dump := e.path("e.jsonl")
	e.ok("export-catalog", dump)
	lines := strings.SplitAfter(string(mustRead(t, dump)), "\n")
	lines = lines[:len(lines)-1]
	head := regexp.MustCompile(`"format":\d+`).ReplaceAllString(lines[0], fmt.Sprintf(`"format":%d`, catalog.DumpFormat+1))
	if head == lines[0] {
		t.Fatalf("no format in the first line: %s", head)
	}
	count := strings.Replace(lines[len(lines)-1], `"records":{`, `"records":{"gadget":1,`, 1)
	newer := head + strings.Join(lines[1:len(lines)-1], "") + `{"gadget":{"name":"x"}}` + "\n" + count
	if err := os.WriteFile(e.path("newer.jsonl"), []byte(newer), 0o644); err != nil {
		t.Fatal(err)
	}
	e.ok("init", "--storage", e.path("store"), "--name", "B", "--take-over")
	want := fmt.Sprintf("export format %d is newer than this lamina reads (up to %d): upgrade lamina", catalog.DumpFormat+1, catalog.DumpFormat)
	e.fails(want, "--instance", "B", "import-catalog", e.path("newer.jsonl"))
}

// TestImportCatalogEmptyFile: an empty file (or one of blank lines) is
// refused as a file cut short, as a file that lacks its count line is; it
// imported as "imported 0 records", rc 0.
func TestImportCatalogEmptyFile(t *testing.T) {
	e := newEnv(t)
	e.ok("init", "--storage", e.path("store"), "--name", "B")
	for name, text := range map[string]string{"empty.jsonl": "", "blank.jsonl": "\n  \n"} {
		p := e.write(name, []byte(text))
		e.fails(p+" is empty: an export holds at least its format and count lines, so the file was cut", "import-catalog", p)
	}
	if out := e.ok("info"); !strings.Contains(out, "artifacts  0") {
		t.Errorf("info after the refused imports:\n%s", out)
	}
}

// TestExportCatalogExistingFile: export-catalog to a file that exists
// says so with what to do ("open e.jsonl: file exists" said neither),
// --force replaces it (as get --force does) once the new export is whole,
// and a folder is refused as a folder.
func TestExportCatalogExistingFile(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("save", e.write("a.txt", []byte("a\n")), "--key", "a.txt")
	dump := e.path("out/e.jsonl")
	e.write("out/keep", nil)
	e.ok("export-catalog", dump)
	first := string(mustRead(t, dump))
	e.fails(dump+" exists: choose another name or remove it (--force replaces it)", "export-catalog", dump)
	if string(mustRead(t, dump)) != first {
		t.Fatal("the refused export changed the file")
	}
	dir := e.path("out")
	for _, args := range [][]string{{"export-catalog", dir}, {"export-catalog", "--force", dir}} {
		e.fails(dir+" is a folder: give the export a file name (e.g. "+filepath.Join(dir, "catalog.jsonl")+")", args...)
	}
	e.fails("cannot write "+e.path("none/e.jsonl")+": folder "+e.path("none")+" does not exist", "export-catalog", e.path("none/e.jsonl"))
	e.ok("save", e.write("b.txt", []byte("b\n")), "--key", "b.txt")
	e.ok("export-catalog", "--force", dump)
	if now := string(mustRead(t, dump)); now == first || !strings.Contains(now, `"b.txt"`) {
		t.Errorf("--force did not replace the export:\n%s", now)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("the folder holds more than the export and keep: %v", ents)
	}
}
