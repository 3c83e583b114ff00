package fs_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/lamina-bio/lamina/catalog"
)

func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("LAMINA_SKIP_TOOLS") == "1" {
			t.Skipf("%s is not installed and LAMINA_SKIP_TOOLS=1", name)
		}
		t.Fatalf("%s is not installed (apt-get install %s); set LAMINA_SKIP_TOOLS=1 to skip", name, name)
	}
}

// TestClients runs real tools against a mount; each must leave exactly the
// versions a user expects.
func TestClients(t *testing.T) {
	for _, tool := range []string{"cp", "rsync", "tar", "sed", "python3"} {
		needTool(t, tool)
	}
	w := newWorld(t)
	w.save("ed/notes.txt", []byte("line one\n"))
	w.mountRW()
	ctx := context.Background()
	src := filepath.Join(w.tmp, "srcdir")
	os.MkdirAll(filepath.Join(src, "sub"), 0o755)
	os.WriteFile(filepath.Join(src, "a.txt"), []byte("A"), 0o644)
	os.WriteFile(filepath.Join(src, "sub", "b.txt"), []byte("B"), 0o644)
	nvers := func(key string) int {
		vs, err := w.cat.Versions(ctx, key, false)
		if err != nil && !errors.Is(err, catalog.ErrNotFound) {
			t.Fatal(err)
		}
		return len(vs)
	}
	trashEmpty := func(what string) {
		t.Helper()
		if tl, _ := w.cat.TrashList(ctx); len(tl) != 0 {
			t.Fatalf("%s left temporaries in the trash: %+v", what, tl)
		}
	}
	cases := []struct {
		name   string
		script string
		want   map[string]int // key → live versions
		read   map[string]string
	}{
		{"cp", "cp " + src + "/a.txt cp/a.txt || { mkdir cp && cp " + src + "/a.txt cp/a.txt; }",
			map[string]int{"cp/a.txt": 1}, map[string]string{"cp/a.txt": "A"}},
		{"cp again same bytes", "cp " + src + "/a.txt cp/a.txt", map[string]int{"cp/a.txt": 1}, nil},
		{"cp -r", "cp -r " + src + " cpr", map[string]int{"cpr/a.txt": 1, "cpr/sub/b.txt": 1}, map[string]string{"cpr/sub/b.txt": "B"}},
		{"rsync -a", "rsync -a " + src + "/ rs/", map[string]int{"rs/a.txt": 1, "rs/sub/b.txt": 1}, map[string]string{"rs/a.txt": "A"}},
		{"rsync -a changed", "echo A2 > " + src + "/a.txt && rsync -a " + src + "/ rs/", map[string]int{"rs/a.txt": 2, "rs/sub/b.txt": 1}, map[string]string{"rs/a.txt": "A2\n"}},
		{"tar -x", "tar -C " + src + " -cf " + w.tmp + "/x.tar . && mkdir -p tx && tar -C tx -xf " + w.tmp + "/x.tar",
			map[string]int{"tx/a.txt": 1, "tx/sub/b.txt": 1}, map[string]string{"tx/sub/b.txt": "B"}},
		{"sed -i", "sed -i 's/one/ONE/' ed/notes.txt", map[string]int{"ed/notes.txt": 2}, map[string]string{"ed/notes.txt": "line ONE\n"}},
		{"python temp+rename", `python3 - <<'PY'
import os, tempfile
d = "py"
os.makedirs(d, exist_ok=True)
for text in ("one", "two"):
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".out.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, os.path.join(d, "out.txt"))
PY`, map[string]int{"py/out.txt": 2}, map[string]string{"py/out.txt": "two"}},
		{"editor save with backup", "cp ed/notes.txt ed/notes.txt~ && printf 'edited\\n' > ed/.notes.txt.new && mv ed/.notes.txt.new ed/notes.txt",
			map[string]int{"ed/notes.txt": 3, "ed/notes.txt~": 0}, map[string]string{"ed/notes.txt": "edited\n", "ed/notes.txt~": "line ONE\n"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w.sh(c.script)
			for k, n := range c.want {
				if got := nvers(k); got != n {
					t.Errorf("%s: %d versions, want %d", k, got, n)
				}
			}
			for k, s := range c.read {
				if got := string(w.read(k)); got != s {
					t.Errorf("%s reads %q, want %q", k, got, s)
				}
			}
			trashEmpty(c.name)
		})
	}
}
