package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/instance"
)

// `lamina restore FOLDER/` brings back every artifact trashed under it, as
// `rm -r` in a mount trashes them one by one, one whose key was written
// again since too (as restore of it by name does); a folder named without
// its slash says how to restore it.
func TestRestoreFolder(t *testing.T) {
	e := newEnv(t)
	e.init()
	for _, k := range []string{"tree/a.csv", "tree/sub/b.csv", "tree/sub/c.csv", "other/d.csv"} {
		e.ok("save", e.write("f.csv", []byte(k+"\n")), "--key", k)
	}
	e.ok("delete", "tree/a.csv", "tree/sub/b.csv", "tree/sub/c.csv", "other/d.csv")
	e.ok("save", e.write("f.csv", []byte("again\n")), "--key", "tree/sub/c.csv") // written again
	e.fails("lamina restore tree/", "restore", "tree")
	out, errs, err := e.run("restore", "tree/")
	if err != nil {
		t.Fatalf("restore tree/: %v\n%s%s", err, out, errs)
	}
	if !strings.Contains(out, "restored tree/a.csv (1 version)") || !strings.Contains(out, "restored tree/sub/b.csv") || !strings.Contains(out, "restored tree/sub/c.csv") {
		t.Fatalf("restore tree/ said:\n%s%s", out, errs)
	}
	ls := e.ok("ls", "tree/")
	if !strings.Contains(ls, "tree/a.csv") || !strings.Contains(ls, "tree/sub/b.csv") {
		t.Fatalf("ls after restore tree/:\n%s", ls)
	}
	// The key written again since gets its trashed version back beside the
	// new one, which stays the latest (rm -r out/, then a rerun).
	if got := e.ok("get", "tree/sub/c.csv", "-o", "-"); got != "again\n" {
		t.Fatalf("the key written again since = %q", got)
	}
	if got := e.ok("ls", "--versions", "tree/sub/c.csv"); strings.Count(got, "tree/sub/c.csv") != 2 {
		t.Fatalf("versions of the key written again after restore tree/:\n%s", got)
	}
	if trash := e.ok("ls", "--trash"); !strings.Contains(trash, "other/d.csv") || strings.Contains(trash, "tree/") {
		t.Fatalf("trash after restore tree/:\n%s", trash)
	}
	e.fails("the trash holds no artifact, folder or symbolic link under tree/", "restore", "tree/")
}

// A daemon that stops after a new mount of its instance started (it was
// draining uploads) leaves the new daemon's state file, which status and
// umount find the mount by.
func TestStoppingDaemonKeepsNewState(t *testing.T) {
	dirs := instance.Dirs{Runtime: t.TempDir()}
	os.MkdirAll(dirs.RuntimeDir("lab"), 0o700)
	write := func(pid int) {
		b, _ := json.Marshal(mountState{Instance: "lab", PID: pid})
		if err := os.WriteFile(statePath(dirs, "lab"), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(os.Getppid()) // the new daemon: another live process
	removeOwnState(dirs, "lab")
	if st, err := readState(dirs, "lab"); err != nil || st.PID != os.Getppid() {
		t.Fatalf("the new daemon's state after the old one stopped: %+v, %v", st, err)
	}
	write(os.Getpid())
	removeOwnState(dirs, "lab")
	if _, err := os.Stat(statePath(dirs, "lab")); !os.IsNotExist(err) {
		t.Fatalf("its own state file is left: %v", err)
	}
}

// `rm -r` of a folder in a mount, then `lamina restore FOLDER/`, brings the
// tree back whole: its files, the folder's mode and time, an empty
// subfolder and a symbolic link. Only the files came back; the folder had
// the default mode and the rest was gone for good.
func TestRestoreFolderTree(t *testing.T) {
	e := newMntEnv(t)
	mnt := filepath.Join(e.dir, "mnt")
	e.mount(mnt)
	tree := filepath.Join(mnt, "tree")
	for _, d := range []string{"tree", "tree/empty", "tree/sub"} {
		if err := os.Mkdir(filepath.Join(mnt, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for k, v := range map[string]string{"tree/a.csv": "a\n", "tree/sub/b.csv": "b\n"} {
		if err := os.WriteFile(filepath.Join(mnt, k), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("a.csv", filepath.Join(tree, "l")); err != nil {
		t.Fatal(err)
	}
	mt := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	if err := os.Chmod(tree, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(tree, mt, mt); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(tree); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(tree); !os.IsNotExist(err) {
		t.Fatalf("after rm -r: %v", err)
	}
	// Named without its slash, the folder alone would come back, its
	// contents left in the trash: refused, saying how.
	e.fails("lamina restore tree/", "restore", "tree")
	out := e.ok("restore", "tree/")
	for _, want := range []string{"restored tree/a.csv (1 version)", "restored tree/sub/b.csv", "restored tree/ (folder)", "restored tree/empty/ (folder)", "restored tree/l (symbolic link)"} {
		if !strings.Contains(out, want) {
			t.Errorf("restore tree/ did not say %q:\n%s", want, out)
		}
	}
	check := func(when string) {
		t.Helper()
		if fi, err := os.Stat(tree); err != nil || fi.Mode().Perm() != 0o750 || !fi.ModTime().Equal(mt) {
			t.Errorf("%s: tree: %v %v, %v; want 0750 %v", when, fi.Mode(), fi.ModTime(), err, mt)
		}
		if fi, err := os.Stat(filepath.Join(tree, "empty")); err != nil || !fi.IsDir() {
			t.Errorf("%s: the empty subfolder: %v, %v", when, fi, err)
		}
		if target, err := os.Readlink(filepath.Join(tree, "l")); err != nil || target != "a.csv" {
			t.Errorf("%s: the link: %q, %v", when, target, err)
		}
		if got, err := os.ReadFile(filepath.Join(tree, "sub", "b.csv")); err != nil || string(got) != "b\n" {
			t.Errorf("%s: tree/sub/b.csv: %q, %v", when, got, err)
		}
	}
	check("in the mount")
	e.ok("umount", mnt)
	e.mount(mnt)
	check("after a remount")
	if trash := e.ok("ls", "--trash"); strings.Contains(trash, "tree") {
		t.Errorf("trash after restore tree/:\n%s", trash)
	}
	// A removed folder in the trash is deleted for good as ls --trash
	// shows it (FOLDER/), and a link by its key.
	if err := os.Remove(filepath.Join(tree, "empty")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(tree, "l")); err != nil {
		t.Fatal(err)
	}
	trash := e.ok("ls", "--trash")
	if !regexp.MustCompile(`(?m)^tree/empty/\s+folder\s+-\s`).MatchString(trash) || !regexp.MustCompile(`(?m)^tree/l\s+link\s+-\s`).MatchString(trash) {
		t.Fatalf("ls --trash after rmdir and rm of a link, want each shown as what it is:\n%s", trash)
	}
	out = e.ok("delete", "--permanent", "--yes", "tree/empty/", "tree/l")
	if !strings.Contains(out, "deleted from the trash for good under tree/empty/: 1 folder") || !strings.Contains(out, "deleted the link tree/l") {
		t.Errorf("delete --permanent of a folder and a link in the trash said:\n%s", out)
	}
	if trash := e.ok("ls", "--trash"); strings.Contains(trash, "tree/") {
		t.Errorf("trash after delete --permanent:\n%s", trash)
	}
	e.fails("no artifact", "delete", "--permanent", "--yes", "tree/empty/")
	// KEY/ names a folder, never the artifact KEY: a file is not deleted by it.
	e.fails("tree/a.csv is an artifact, not a folder", "delete", "--permanent", "--yes", "tree/a.csv/")
	if got, err := os.ReadFile(filepath.Join(tree, "a.csv")); err != nil || len(got) == 0 {
		t.Fatalf("tree/a.csv after delete --permanent tree/a.csv/: %q, %v", got, err)
	}
}

// `rm -r` in a mount removes a tree whose keys were all saved from the CLI,
// saved before the mount came up or while it was up: its folders are only
// prefixes of keys (no folder records), and emptying one kept no record of
// the folder above it, which vanished before rm's rmdir reached it (rc 1,
// "cannot remove 'c1/c2': No such file or directory").
func TestRmTreeOfSavedKeys(t *testing.T) {
	e := newMntEnv(t)
	mnt := filepath.Join(e.dir, "mnt")
	save := func(top string) {
		for _, k := range []string{top + "/c2/c3/f.txt", top + "/g.txt"} {
			e.ok("save", e.file(k, []byte(k+"\n")), "--key", k)
		}
	}
	save("before")
	e.mount(mnt)
	save("during")
	for _, top := range []string{"before", "during"} {
		if out, err := exec.Command("rm", "-r", filepath.Join(mnt, top)).CombinedOutput(); err != nil {
			t.Errorf("rm -r %s: %v\n%s", top, err, out)
		}
		if _, err := os.Lstat(filepath.Join(mnt, top)); !os.IsNotExist(err) {
			t.Errorf("%s after rm -r: %v", top, err)
		}
		trash := e.ok("ls", "--trash")
		for _, k := range []string{top + "/c2/c3/f.txt", top + "/g.txt"} {
			if !strings.Contains(trash, k) {
				t.Errorf("%s is not in the trash:\n%s", k, trash)
			}
		}
	}
	if got := lsNames(t, mnt); len(got) != 0 {
		t.Errorf("mount after rm -r: %v", got)
	}
}
