package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
	// to write (its outbox, empty after umount).
	var kept []string
	for _, l := range strings.SplitAfter(mounted, "\n") {
		if !strings.HasPrefix(l, `{"outbox":`) {
			kept = append(kept, l)
		}
	}
	if got := string(mustRead(t, filepath.Join(e.dir, "unmounted.jsonl"))); got != strings.Join(kept, "") {
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
