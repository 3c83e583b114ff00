package main

import (
	"archive/tar"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/catalog/postgres/pgtest"
)

// Tests of `lamina restore FOLDER/` after `rm -r FOLDER` in a mount: it
// brings back what the removal took, the names live under the folder just
// before, never what tools unlinked there earlier (lock files, journals,
// placeholders), which stay in the trash, named once (audit b4).

// shIn runs a bash script with the mount env, in dir; it must succeed.
func (e *mntEnv) shIn(dir, script string) string {
	e.t.Helper()
	cmd := exec.Command("bash", "-ec", script)
	cmd.Dir, cmd.Env = dir, e.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		e.t.Fatalf("%s: %v\n%s", script, err, out)
	}
	return string(out)
}

// restoreOK runs `lamina restore args…`, which must exit 0, and returns
// its stdout and stderr.
func (e *mntEnv) restoreOK(args ...string) (string, string) {
	e.t.Helper()
	out, errs, err := e.run(append([]string{"restore"}, args...)...)
	if err != nil {
		e.t.Fatalf("lamina restore %s: %v\n%s%s", strings.Join(args, " "), err, out, errs)
	}
	return out, errs
}

// keptLine checks that restore's stderr names, in its one line, the names
// it left in the trash under folder.
func keptLine(t *testing.T, errs, folder string, names ...string) {
	t.Helper()
	var line string
	for _, l := range strings.Split(errs, "\n") {
		if strings.Contains(l, "under "+folder+", trashed before its removal began") {
			line = l
		}
	}
	if line == "" {
		t.Fatalf("restore %s did not say what it left in the trash:\n%s", folder, errs)
	}
	for _, n := range names {
		if !strings.Contains(line, n) {
			t.Errorf("restore %s's line does not name %s: %s", folder, n, line)
		}
	}
	if !strings.Contains(line, "`lamina restore KEY`") {
		t.Errorf("restore %s's line does not say how to get them: %s", folder, line)
	}
}

// A SQLite database in a folder removed with rm -r: its journal, trashed
// at the end of the last transaction, stayed in the trash, but restore
// jr3/ brought it back as a hot journal, and the next open rolled the last
// transaction back (count 2, not 3), silently.
func TestRestoreFolderLeavesSQLiteJournal(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	if exec.Command(py, "-c", "import sqlite3").Run() != nil {
		t.Skip("python3 has no sqlite3")
	}
	e := newMntEnv(t)
	mnt := filepath.Join(e.dir, "mnt")
	e.mount(mnt)
	db := filepath.Join(mnt, "jr3", "catalog.lite")
	if err := os.Mkdir(filepath.Dir(db), 0o755); err != nil {
		t.Fatal(err)
	}
	count := func() string {
		t.Helper()
		out, err := exec.Command(py, "-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print(c.execute('select count(*) from t').fetchone()[0])", db).CombinedOutput()
		if err != nil {
			t.Fatalf("count: %v\n%s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	for _, k := range []string{"1", "2", "3"} { // a process each, as sqlite3 in a loop
		script := "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('create table if not exists t(x)'); c.execute('insert into t values(" + k + ")'); c.commit(); c.close()"
		if out, err := exec.Command(py, "-c", script, db).CombinedOutput(); err != nil {
			t.Fatalf("insert %s: %v\n%s", k, err, out)
		}
	}
	if trash := e.ok("ls", "--trash"); !strings.Contains(trash, "jr3/catalog.lite-journal") {
		t.Fatalf("the journal is not in the trash (nothing to test):\n%s", trash)
	}
	if out, err := exec.Command("rm", "-r", filepath.Dir(db)).CombinedOutput(); err != nil {
		t.Fatalf("rm -r: %v\n%s", err, out)
	}
	out, errs := e.restoreOK("jr3/")
	if strings.Contains(out, "journal") {
		t.Errorf("restore jr3/ brought the journal back:\n%s", out)
	}
	if _, err := os.Lstat(db + "-journal"); !os.IsNotExist(err) {
		t.Errorf("the journal after restore jr3/: %v", err)
	}
	if got := count(); got != "3" {
		t.Errorf("rows after restore jr3/: %s; want 3 (a restored hot journal rolls the last transaction back)", got)
	}
	keptLine(t, errs, "jr3/", "jr3/catalog.lite-journal")
	if trash := e.ok("ls", "--trash"); !strings.Contains(trash, "jr3/catalog.lite-journal") {
		t.Errorf("the journal left the trash:\n%s", trash)
	}
}

// A git repository removed with rm -rf: restore g3/ brought back
// .git/HEAD.lock (trashed when git renamed it onto HEAD) and git's
// symlink-test temp file, so the next commit failed ("Unable to create
// HEAD.lock: File exists"), and restore exited 1 on the temp file.
func TestRestoreFolderLeavesGitLocks(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git (TestRestoreFolderLeavesEarlierRemovals scripts the pattern)")
	}
	e := newMntEnv(t)
	mnt := filepath.Join(e.dir, "mnt")
	e.mount(mnt)
	os.MkdirAll(filepath.Join(e.dir, "home"), 0o755)
	git := "git -c user.name=t -c user.email=t@example.org -c init.defaultBranch=main"
	e.shIn(mnt, git+" init -q g3; cd g3; echo a > a; "+git+" add a; "+git+" commit -qm one; echo b > b; "+git+" add b; "+git+" commit -qm two")
	if trash := e.ok("ls", "--trash"); !strings.Contains(trash, "g3/.git/HEAD.lock") {
		t.Fatalf("HEAD.lock is not in the trash (nothing to test):\n%s", trash)
	}
	e.shIn(mnt, "rm -rf g3")
	_, errs := e.restoreOK("g3/")
	keptLine(t, errs, "g3/", "g3/.git/HEAD.lock")
	if _, err := os.Lstat(filepath.Join(mnt, "g3", ".git", "HEAD.lock")); !os.IsNotExist(err) {
		t.Errorf("HEAD.lock after restore g3/: %v", err)
	}
	out := e.shIn(filepath.Join(mnt, "g3"), "echo c > c; "+git+" add c; "+git+" commit -qm three; git log --format=%s")
	if strings.Fields(out)[0] != "three" || !strings.Contains(out, "two") {
		t.Errorf("git log after a commit in the restored repository:\n%s", out)
	}
}

// tar -x of a symbolic link whose target has "..": tar makes an empty
// placeholder file at its name first and replaces it with the link at the
// end. restore DIR/ after rm -r met the trashed placeholder and the link at
// one name and exited 1 ("not restored"), though everything the user saw
// came back.
func TestRestoreFolderLeavesTarPlaceholder(t *testing.T) {
	if _, err := exec.LookPath("tar"); err != nil {
		t.Skip("no tar")
	}
	e := newMntEnv(t)
	mnt := filepath.Join(e.dir, "mnt")
	e.mount(mnt)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range []*tar.Header{
		{Name: "t/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "t/f", Typeflag: tar.TypeReg, Mode: 0o644, Size: 2},
		{Name: "t/sub/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "t/sub/l", Typeflag: tar.TypeSymlink, Linkname: "../f", Mode: 0o777},
	} {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write([]byte("x\n"))
		}
	}
	tw.Close()
	archive := e.file("t.tar", buf.Bytes())
	if err := os.Mkdir(filepath.Join(mnt, "tx"), 0o755); err != nil {
		t.Fatal(err)
	}
	e.shIn(filepath.Join(mnt, "tx"), "tar -xf "+archive)
	if target, err := os.Readlink(filepath.Join(mnt, "tx", "t", "sub", "l")); err != nil || target != "../f" {
		t.Fatalf("the extracted link: %q, %v", target, err)
	}
	trash := e.ok("ls", "--trash")
	if !strings.Contains(trash, "tx/t/sub/l") {
		t.Skipf("this tar made no placeholder (nothing to test):\n%s", trash)
	}
	e.shIn(mnt, "rm -r tx")
	out, errs := e.restoreOK("tx/")
	for _, want := range []string{"restored tx/t/f", "restored tx/t/sub/l (symbolic link)", "restored tx/ (folder)"} {
		if !strings.Contains(out, want) {
			t.Errorf("restore tx/ did not say %q:\n%s%s", want, out, errs)
		}
	}
	keptLine(t, errs, "tx/", "tx/t/sub/l")
	if target, err := os.Readlink(filepath.Join(mnt, "tx", "t", "sub", "l")); err != nil || target != "../f" {
		t.Errorf("the restored link: %q, %v", target, err)
	}
}

// The pattern without git or sqlite: a file renamed onto another, locks
// made and unlinked (as git does), by processes other than the rm -r;
// then a folder removed, made again and removed again: restore FOLDER/
// brings back the last removal's names only. What it leaves comes back by
// KEY. A second restore FOLDER/, the folder live again, takes the rest.
// Both catalogs: bbolt, and PostgreSQL (LAMINA_PG_URL).
func TestRestoreFolderLeavesEarlierRemovals(t *testing.T) {
	t.Run("bbolt", func(t *testing.T) { earlierRemovals(t, newMntEnv(t)) })
	t.Run("postgres", func(t *testing.T) {
		db := pgtest.URL(t)
		e := workstationEnv(t, "ana")
		e.ok("init", "--storage", filepath.Join(e.dir, "storage"), "--db", db, "--name", "lab")
		earlierRemovals(t, e)
	})
}

func earlierRemovals(t *testing.T, e *mntEnv) {
	mnt := filepath.Join(e.dir, "mnt")
	e.mount(mnt)
	e.shIn(mnt, `mkdir -p rr/sub; echo 1 > rr/first; echo 1 > rr/sub/first
		rm -r rr
		mkdir -p rr/sub; echo old > rr/sub/HEAD; echo ref > rr/sub/HEAD.new; mv rr/sub/HEAD.new rr/sub/HEAD
		: > rr/sub/HEAD.lock; rm rr/sub/HEAD.lock
		echo x > rr/x.lock; rm rr/x.lock; echo y > rr/sub/y.tmp; rm rr/sub/y.tmp
		echo 2 > rr/second`)
	e.shIn(mnt, "rm -r rr")
	out, errs := e.restoreOK("rr/")
	for _, want := range []string{"restored rr/second", "restored rr/sub/HEAD (", "restored rr/ (folder)", "restored rr/sub/ (folder)"} {
		if !strings.Contains(out, want) {
			t.Errorf("restore rr/ did not say %q:\n%s", want, out)
		}
	}
	for _, not := range []string{"first", "lock", "y.tmp"} {
		if strings.Contains(out, not) {
			t.Errorf("restore rr/ brought back %s, trashed before the removal:\n%s", not, out)
		}
	}
	keptLine(t, errs, "rr/", "rr/first", "rr/sub/first", "rr/sub/HEAD.lock", "rr/x.lock", "rr/sub/y.tmp")
	if !strings.Contains(errs, "5 names under rr/") {
		t.Errorf("restore rr/ did not count the 5 names it left:\n%s", errs)
	}
	// A PostgreSQL mount learns of a restore from the CLI a moment later.
	waitFor(t, "rr/sub/HEAD in the mount", 30*time.Second, readString(filepath.Join(mnt, "rr", "sub", "HEAD")), "ref\n")
	e.restoreOK("rr/first")
	waitFor(t, "rr/first restored by its key, in the mount", 30*time.Second, readString(filepath.Join(mnt, "rr", "first")), "1\n")
	out, _ = e.restoreOK("rr/")
	if !strings.Contains(out, "restored rr/x.lock") || !strings.Contains(out, "restored rr/sub/first") {
		t.Errorf("a second restore rr/, the folder live, did not take the rest:\n%s", out)
	}
}
