package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lamina-bio/lamina/catalog/postgres/pgtest"
)

// TestDeletePermanentReferenced: a permanent delete of versions that a
// collection or a run refers to is refused, naming the references, and
// nothing of the call is deleted; --force deletes anyway.
func TestDeletePermanentReferenced(t *testing.T) {
	e := newEnv(t)
	e.init()
	for _, k := range []string{"a.csv", "b.csv", "d.csv"} {
		e.ok("save", e.write(k, []byte(k+"\n")), "--key", k)
	}
	e.ok("collection", "create", "col", "a.csv")
	// The commands of a run are this test binary as lamina (TestMain).
	t.Setenv("LAMINA_TEST_AS_CLI", "1")
	e.ok("run", "--", os.Args[0], "get", "b.csv", "-o", os.DevNull)
	e.ok("run", "--", os.Args[0], "save", e.write("c.csv", []byte("c\n")), "--key", "c.csv")
	// d2.csv saved by no run, then its bytes again by a run: the run
	// reproduced it (Runs.Reruns).
	e.ok("save", e.write("d2.csv", []byte("d2\n")), "--key", "d2.csv")
	e.ok("run", "--", os.Args[0], "save", e.write("d2.csv", []byte("d2\n")), "--key", "d2.csv")

	for _, tc := range []struct{ key, want string }{
		{"a.csv", "a.csv@v1 is in collection col@v1"},
		{"b.csv", "b.csv@v1 is an input of run "},
		{"c.csv", "c.csv@v1 is an output of run "},
		{"d2.csv", "d2.csv@v1 is an output of run "},
	} {
		err := e.fails(tc.want, "delete", "--permanent", "--yes", "d.csv", tc.key)
		if codeOf(err) != 1 || !strings.Contains(err.Error(), "--force") {
			t.Errorf("%s: %v (exit %d)", tc.key, err, codeOf(err))
		}
		e.ok("show", tc.key)
	}
	e.ok("show", "d.csv") // nothing of a refused call is deleted
	e.ok("delete", "--permanent", "--yes", "d.csv")
	e.ok("delete", "--permanent", "--yes", "--force", "a.csv", "b.csv")
	e.fails("no artifact has key", "show", "a.csv")
}

// TestVersionSpecErrors: @v0 says versions are numbered from 1, and delete of
// KEY@vN says delete takes the whole artifact, rather than "bad key".
func TestVersionSpecErrors(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("save", e.write("b.csv", []byte("b\n")), "--key", "exp/b.csv")
	e.fails(`"exp/b.csv@v0": versions are numbered from 1`, "show", "exp/b.csv@v0")
	for _, spec := range []string{"exp/b.csv@v2", "exp/b.csv@v0"} {
		err := e.fails(`"`+spec+`" names one version; delete removes a whole artifact, every version of it: lamina delete exp/b.csv`, "delete", spec)
		if codeOf(err) != 2 {
			t.Errorf("delete %s: exit %d", spec, codeOf(err))
		}
	}
	e.ok("show", "exp/b.csv")
}

// TestDeleteResolvesAllKeysFirst: a missing key refuses the whole call,
// naming every missing key, and nothing is trashed; one version says
// "1 version".
func TestDeleteResolvesAllKeysFirst(t *testing.T) {
	e := newEnv(t)
	e.init()
	for _, k := range []string{"a.csv", "b.csv"} {
		e.ok("save", e.write(k, []byte(k+"\n")), "--key", k)
	}
	for _, perm := range [][]string{nil, {"--permanent", "--yes"}} {
		args := append(append([]string{"delete"}, perm...), "a.csv", "nosuch", "b.csv", "other")
		err := e.fails(`no artifact has key "nosuch", "other": nothing deleted`, args...)
		if codeOf(err) != exitNotFound {
			t.Errorf("%v: exit %d", args, codeOf(err))
		}
		e.ok("show", "a.csv")
		e.ok("show", "b.csv")
	}
	if out := e.ok("delete", "a.csv"); !strings.Contains(out, "moved a.csv (1 version) to the trash") {
		t.Errorf("delete: %q", out)
	}
	e.fails(`"a.csv" already in the trash`, "delete", "a.csv", "b.csv")
	e.ok("show", "b.csv")
}

// TestDeletePermanentOfTrashedReferenced: refusing a permanent delete of
// a trashed key that a collection refers to does not suggest the trash.
func TestDeletePermanentOfTrashedReferenced(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("save", e.write("a.csv", []byte("a\n")), "--key", "a.csv")
	e.ok("collection", "create", "col", "a.csv")
	e.ok("delete", "a.csv")
	err := e.fails("a.csv@v1 is in collection col@v1", "delete", "--permanent", "--yes", "a.csv")
	if strings.Contains(err.Error(), "(to the trash)") {
		t.Errorf("a trashed key's refusal suggests the trash: %v", err)
	}
}

// TestGCRefusesNegativeDurations: --grace -5h would delete data younger
// than now, that is all of it; refused with exit 2.
func TestGCRefusesNegativeDurations(t *testing.T) {
	e := newEnv(t)
	e.init()
	for _, args := range [][]string{{"--grace", "-5h"}, {"--settle", "-1s"}} {
		err := e.fails("may not be negative", append([]string{"gc"}, args...)...)
		if codeOf(err) != 2 {
			t.Errorf("gc %v: exit %d", args, codeOf(err))
		}
	}
}

// `lamina delete --permanent FOLDER/` deletes for good what the trash
// holds under the folder, as `restore FOLDER/` brings it back: artifacts
// trashed there, removed folders (the folder's own record too) and links;
// never a live artifact, nor the trashed versions of a key written again
// since. It took only the folder's own record and left the rest in the
// trash. Both catalogs.
func TestDeletePermanentFolder(t *testing.T) {
	for _, cat := range []string{"bolt", "postgres"} {
		t.Run(cat, func(t *testing.T) {
			e := workstationEnv(t, "ws")
			init := []string{"init", "--storage", filepath.Join(e.dir, "storage"), "--name", "m"}
			if cat == "postgres" {
				init = append(init, "--db", pgtest.URL(t))
			}
			e.ok(init...)
			mnt := filepath.Join(e.dir, "mnt")
			e.mount(mnt)
			in := func(p string) string { return filepath.Join(mnt, p) }
			for _, d := range []string{"tree", "tree/sub", "tree/empty", "other"} {
				if err := os.Mkdir(in(d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			for _, k := range []string{"tree/a.csv", "tree/sub/b.csv", "tree/sub/c.csv", "tree/keep.csv", "other/d.csv"} {
				if err := os.WriteFile(in(k), []byte(k+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Symlink("a.csv", in("tree/l")); err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{"tree/sub", "tree/empty", "tree/l", "tree/a.csv", "other/d.csv"} {
				if err := os.RemoveAll(in(p)); err != nil {
					t.Fatal(err)
				}
			}
			// Written again since: live, with a trashed version. Saved, not
			// written in the mount, whose write within a minute of the rm
			// would bring the rm's version back (stage.Unlink).
			if err := os.MkdirAll(in("tree/sub"), 0o755); err != nil {
				t.Fatal(err)
			}
			e.ok("save", e.file("again.csv", []byte("again\n")), "--key", "tree/sub/c.csv")
			e.fails("add --yes", "delete", "--permanent", "tree/")
			out := e.ok("delete", "--permanent", "--yes", "tree/")
			for _, want := range []string{
				"deleted from the trash for good under tree/: 2 artifacts (2 versions), 1 folder, 1 symbolic link",
				"kept 1 key written again since, live now, with their trashed versions: tree/sub/c.csv",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("delete --permanent tree/ did not say %q:\n%s", want, out)
				}
			}
			trash := e.ok("ls", "--trash")
			for _, gone := range []string{"tree/a.csv", "tree/sub/b.csv", "tree/empty/", "tree/l"} {
				if strings.Contains(trash, gone) {
					t.Errorf("%s still in the trash:\n%s", gone, trash)
				}
			}
			if !strings.Contains(trash, "other/d.csv") || !strings.Contains(trash, "tree/sub/c.csv") {
				t.Errorf("the trash lost what was not under tree/ or was written again:\n%s", trash)
			}
			for k, want := range map[string]string{"tree/keep.csv": "tree/keep.csv\n", "tree/sub/c.csv": "again\n"} {
				if got, err := os.ReadFile(in(k)); err != nil || string(got) != want {
					t.Errorf("live %s after delete --permanent tree/: %q, %v", k, got, err)
				}
			}
			e.fails("written again since", "delete", "--permanent", "--yes", "tree/")
			// The whole tree removed: the folder without its slash would
			// leave what was under it, so it is refused; with it, all goes.
			if err := os.RemoveAll(in("tree")); err != nil {
				t.Fatal(err)
			}
			e.fails("is a folder in the trash with", "delete", "--permanent", "--yes", "tree")
			out = e.ok("delete", "--permanent", "--yes", "tree/")
			if !strings.Contains(out, "under tree/: 2 artifacts (3 versions), 2 folders;") {
				t.Errorf("delete --permanent tree/ of the whole tree said:\n%s", out)
			}
			if trash := e.ok("ls", "--trash"); strings.Contains(trash, "tree") {
				t.Errorf("trash after deleting the whole tree:\n%s", trash)
			}
			e.ok("umount", mnt)
		})
	}
}

// TestDeletePermanentFolderKeepsFilesAtTrashedNames: a file written where
// a link or a folder was removed is live, and delete --permanent of the
// folder above deleted it with all its versions (the purge of the trashed
// link or folder at its key took the artifact). Now the file drops the
// trashed link or folder, as ln -s or mkdir there does, and the purge of a
// link or folder in the trash never takes an artifact. Both catalogs,
// through the mount daemon.
func TestDeletePermanentFolderKeepsFilesAtTrashedNames(t *testing.T) {
	for _, cat := range []string{"bolt", "postgres"} {
		t.Run(cat, func(t *testing.T) {
			e := workstationEnv(t, "ws")
			init := []string{"init", "--storage", filepath.Join(e.dir, "storage"), "--name", "m"}
			if cat == "postgres" {
				init = append(init, "--db", pgtest.URL(t))
			}
			e.ok(init...)
			mnt := filepath.Join(e.dir, "mnt")
			e.mount(mnt)
			in := func(p string) string { return filepath.Join(mnt, p) }
			if err := os.Mkdir(in("L"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(in("L/f"), []byte("keep\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("f", in("L/ln")); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(in("L/ln")); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(in("L/ln"), []byte("live data\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(in("L/d"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(in("L/d/x"), []byte("x\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.RemoveAll(in("L/d")); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(in("L/d"), []byte("live d\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			trash := e.ok("ls", "--trash")
			if strings.Contains(trash, "L/ln") || strings.Contains(trash, "L/d/\n") || !strings.Contains(trash, "L/d/x") {
				t.Errorf("ls --trash after files took the names of a removed link and folder:\n%s", trash)
			}
			out := e.ok("delete", "--permanent", "--yes", "L/")
			if !strings.Contains(out, "under L/: 1 artifact (1 version);") {
				t.Errorf("delete --permanent L/ said:\n%s", out)
			}
			for k, want := range map[string]string{"L/ln": "live data\n", "L/d": "live d\n", "L/f": "keep\n"} {
				if got, err := os.ReadFile(in(k)); err != nil || string(got) != want {
					t.Errorf("live %s after delete --permanent L/: %q, %v", k, got, err)
				}
				e.ok("show", k)
			}
			e.ok("umount", mnt)
		})
	}
}

// TestDeletePermanentFolderBesideFile: delete --permanent t/ takes what
// the trash holds under t/ when a file t exists, live or trashed (it was
// refused as "a folder of keys"); t itself stays. delete --permanent z,
// with nothing at z and things under z/ in the trash, points to z/.
func TestDeletePermanentFolderBesideFile(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("save", e.write("x", []byte("x\n")), "--key", "t/x")
	e.ok("delete", "t/x")
	e.ok("save", e.write("t", []byte("t\n")), "--key", "t")
	for _, trashed := range []bool{false, true} {
		if trashed {
			e.ok("delete", "t")
			e.ok("save", e.write("y", []byte("y\n")), "--key", "t/y")
			e.ok("delete", "t/y")
		}
		out := e.ok("delete", "--permanent", "--yes", "t/")
		if !strings.Contains(out, "under t/: 1 artifact (1 version)") {
			t.Errorf("delete --permanent t/ beside a file t (trashed %v) said:\n%s", trashed, out)
		}
	}
	e.fails("t is an artifact, not a folder", "delete", "--permanent", "--yes", "t/")
	e.ok("restore", "t") // the trashed file t did not go with t/
	e.ok("show", "t")

	e.ok("save", e.write("z", []byte("z\n")), "--key", "z/a")
	e.ok("delete", "z/a")
	e.fails(`no artifact has key "z" (the trash holds 1 name under z/: lamina delete --permanent z/ deletes them)`, "delete", "--permanent", "--yes", "z")
}
