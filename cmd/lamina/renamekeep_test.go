package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/catalog/postgres/pgtest"
)

// A file a mount wrote and then renamed onto an existing name is purged as
// a temporary (an editor's write-then-rename leaves nothing in the trash)
// only when nothing refers to it. Annotated, in a collection or read by a
// run, its version stays in the trash, restorable: the rename deleted it
// for good, and with it the annotations, the collection's member and the
// run's input (`lamina show UID`: no such uid). Both catalogs.
func TestMountRenameKeepsReferencedSource(t *testing.T) {
	t.Run("bbolt", func(t *testing.T) { renameKeepsReferenced(t, newMntEnv(t)) })
	t.Run("postgres", func(t *testing.T) {
		db := pgtest.URL(t)
		e := workstationEnv(t, "ana")
		e.ok("init", "--storage", filepath.Join(e.dir, "storage"), "--db", db, "--name", "lab")
		renameKeepsReferenced(t, e)
	})
}

func renameKeepsReferenced(t *testing.T, e *mntEnv) {
	mnt := filepath.Join(e.dir, "lab")
	e.mount(mnt)
	write := func(key, data string) {
		t.Helper()
		p := filepath.Join(mnt, key)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	uidOf := func(key string) string {
		t.Helper()
		var v catalog.Version
		if err := json.Unmarshal([]byte(e.ok("show", key, "--format", "json")), &v); err != nil || v.UID == "" {
			t.Fatalf("show %s: %v", key, err)
		}
		return v.UID
	}
	mv := func(from, to string) {
		t.Helper()
		if err := os.Rename(filepath.Join(mnt, from), filepath.Join(mnt, to)); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{"s/u.csv", "s/a.csv", "s/c.csv", "s6/in.csv", "s/tmp.csv"} {
		write(k, "a\n"+k+"\n")
	}
	for _, k := range []string{"s/v.csv", "s/b.csv", "s/d.csv", "s6/final.csv", "s/w.csv"} {
		write(k, "a\n"+k+"\n")
	}
	e.ok("feature", "create", "cell_type", "--dtype", "str")
	e.ok("annotate", "s/u.csv", "--feature", "cell_type=monocyte")
	e.ok("collection", "create", "keep", "s/u.csv")
	e.ok("annotate", "s/a.csv", "--feature", "cell_type=T cell")
	e.ok("collection", "create", "only", "s/c.csv")
	in := filepath.Join(mnt, "s6/in.csv")
	if _, errs, code := e.runIn(e.dir, "run", "--", "sh", "-c", "cat "+in+" >/dev/null; printf o > "+filepath.Join(mnt, "s6/out.csv")); code != 0 {
		t.Fatalf("lamina run: exit %d\n%s", code, errs)
	}
	uids := map[string]string{}
	for _, k := range []string{"s/u.csv", "s/a.csv", "s/c.csv", "s6/in.csv", "s/tmp.csv"} {
		uids[k] = uidOf(k)
	}
	run := e.showVersion("s6/out.csv").Run
	if got := e.refs(e.runRecord(run).Inputs); !slices.Equal(got, []string{"s6/in.csv@v1"}) {
		t.Fatalf("the run's inputs before the rename: %v", got)
	}

	mv("s/u.csv", "s/v.csv")
	mv("s/a.csv", "s/b.csv")
	mv("s/c.csv", "s/d.csv")
	mv("s6/in.csv", "s6/final.csv")
	mv("s/tmp.csv", "s/w.csv") // nothing refers to it: a temporary

	for _, k := range []string{"s/u.csv", "s/a.csv", "s/c.csv", "s6/in.csv"} {
		if out, errs, err := e.run("show", uids[k]); err != nil || !strings.Contains(out, k) {
			t.Fatalf("show %s (%s) after the rename: %v %s%s", uids[k], k, err, out, errs)
		}
	}
	if _, _, err := e.run("show", uids["s/tmp.csv"]); err == nil {
		t.Fatalf("the renamed temporary s/tmp.csv was kept")
	}
	trash := e.ok("ls", "--trash")
	for _, k := range []string{"s/u.csv", "s/a.csv", "s/c.csv", "s6/in.csv"} {
		if !strings.Contains(trash, k) {
			t.Fatalf("%s is not in the trash:\n%s", k, trash)
		}
	}
	if strings.Contains(trash, "tmp.csv") {
		t.Fatalf("the temporary is in the trash:\n%s", trash)
	}
	for _, c := range []string{"keep", "only"} {
		if out, errs, err := e.run("collection", "show", c); err != nil || strings.Contains(out+errs, "deleted permanently") {
			t.Fatalf("collection show %s: %v\n%s%s", c, err, out, errs)
		}
	}
	if got := e.refs(e.runRecord(run).Inputs); !slices.Equal(got, []string{"s6/in.csv@v1"}) {
		t.Fatalf("the run's inputs after the rename: %v", got)
	}
	// Restored, it has its annotations.
	e.ok("restore", "s/u.csv")
	if out := e.ok("show", "s/u.csv"); !strings.Contains(out, "monocyte") {
		t.Fatalf("restored s/u.csv lost its annotation:\n%s", out)
	}
}

// The collection view of the mount that renames a member, a file or the
// folder above it, shows the new name at once. It kept the old one until a
// remount: only other mounts' changes dropped the trees it had read.
// Both catalogs.
func TestCollectionViewFollowsOwnRename(t *testing.T) {
	t.Run("bbolt", func(t *testing.T) { viewFollowsRename(t, newMntEnv(t)) })
	t.Run("postgres", func(t *testing.T) {
		db := pgtest.URL(t)
		e := workstationEnv(t, "ana")
		e.ok("init", "--storage", filepath.Join(e.dir, "storage"), "--db", db, "--name", "lab")
		viewFollowsRename(t, e)
	})
}

func viewFollowsRename(t *testing.T, e *mntEnv) {
	e.ok("save", e.file("x.csv", []byte("a\n1\n")), "--key", "s/x.csv")
	e.ok("save", e.file("o.csv", []byte("a\n2\n")), "--key", "s/o.csv")
	e.ok("collection", "create", "keep", "s/x.csv", "s/o.csv")
	mnt := filepath.Join(e.dir, "lab")
	e.mount(mnt)
	view := filepath.Join(mnt, ".lamina/collections/keep")
	if got := lsNames(t, filepath.Join(view, "s")); !slices.Equal(got, []string{"o.csv", "x.csv"}) {
		t.Fatalf("the view before the renames: %v", got)
	}
	mustRead(t, filepath.Join(view, "s/x.csv"))

	if err := os.Rename(filepath.Join(mnt, "s/x.csv"), filepath.Join(mnt, "s/y.csv")); err != nil {
		t.Fatal(err)
	}
	if got := lsNames(t, filepath.Join(view, "s")); !slices.Equal(got, []string{"o.csv", "y.csv"}) {
		t.Fatalf("the view after mv s/x.csv s/y.csv: %v", got)
	}
	if got := string(mustRead(t, filepath.Join(view, "s/y.csv"))); got != "a\n1\n" {
		t.Fatalf("s/y.csv in the view: %q", got)
	}

	if err := os.Rename(filepath.Join(mnt, "s"), filepath.Join(mnt, "t")); err != nil {
		t.Fatal(err)
	}
	if got := lsNames(t, view); !slices.Equal(got, []string{"t"}) {
		t.Fatalf("the view after mv s t: %v", got)
	}
	if got := lsNames(t, filepath.Join(view, "t")); !slices.Equal(got, []string{"o.csv", "y.csv"}) {
		t.Fatalf("t/ in the view after mv s t: %v", got)
	}
}
