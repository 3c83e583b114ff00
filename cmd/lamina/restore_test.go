package main

import (
	"encoding/json"
	"fmt"
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
		start, _ := processStart(pid) // as a daemon records it: readState trusts the PID by it
		b, _ := json.Marshal(mountState{Instance: "lab", PID: pid, StartTicks: start})
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

// restore checks every argument before anything comes back: one that
// names nothing in the trash, or what cannot come back, refuses them all,
// and the error names each. Before, restore a nosuch restored a, then
// failed on nosuch (exit 1, the catalog changed). delete of one key twice
// trashes it once: it trashed it, then failed on "already in the trash".
func TestRestoreChecksEveryArgFirst(t *testing.T) {
	for _, cat := range []string{"bolt", "postgres"} {
		t.Run(cat, func(t *testing.T) { restoreChecksEveryArgFirst(t, cat) })
	}
}

func restoreChecksEveryArgFirst(t *testing.T, cat string) {
	e := newEnv(t)
	initOn(t, e, cat)
	for _, k := range []string{"a", "b", "x/y"} {
		e.ok("save", e.write("f", []byte(k+"\n")), "--key", k)
	}
	e.ok("delete", "a", "b", "x/y")
	e.ok("save", e.write("f", []byte("live\n")), "--key", "x") // holds x/y's folder
	live := e.ok("ls", "--versions", "x", "--format", "json")
	var lv []struct{ UID string }
	if err := json.Unmarshal([]byte(live), &lv); err != nil || len(lv) != 1 {
		t.Fatalf("ls --versions x: %v\n%s", err, live)
	}
	inTrash := func(when string, keys ...string) {
		t.Helper()
		trash := e.ok("ls", "--trash")
		for _, k := range keys {
			if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(k) + `\s`).MatchString(trash) {
				t.Errorf("%s: %s is not in the trash:\n%s", when, k, trash)
			}
		}
		if _, _, err := e.run("show", "a"); err == nil {
			t.Errorf("%s: a came back", when)
		}
	}
	_, _, err := e.run("restore", "a", "nosuch")
	inTrash("restore a nosuch", "a", "b")
	if err == nil || !strings.Contains(explain(err), `"nosuch" has nothing in the trash; nothing restored`) {
		t.Errorf("restore a nosuch: %v", err)
	}
	err = e.fails("nothing restored: 5 arguments cannot be", "restore", "a", "nosuch", "b", "nope", "c/", "x/y", lv[0].UID)
	for _, want := range []string{`"nosuch" has nothing in the trash`, `"nope" has nothing in the trash`,
		"under c/", "x/y cannot be restored while x is a file", lv[0].UID + " is x@v1, which is not in the trash"} {
		if !strings.Contains(explain(err), want) {
			t.Errorf("restore of several bad arguments does not say %q:\n%s", want, explain(err))
		}
	}
	inTrash("restore of several bad arguments", "a", "b", "x/y")
	e.fails(`"b" has no version 2 (latest is 1)`, "restore", "a", "b@v2")
	inTrash("restore a b@v2", "a", "b")
	// One argument twice is no error.
	if out := e.ok("restore", "a", "a", "b"); strings.Count(out, "restored a ") != 1 || !strings.Contains(out, "restored b (1 version)") {
		t.Errorf("restore a a b: %q", out)
	}
}

// delete of one key twice (or as a key and its path in a mount) deletes
// it once. Before, delete a a trashed a, then failed on "already in the
// trash" (exit 1, the catalog changed); --permanent purged it, then failed.
func TestDeleteKeyTwice(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("save", e.write("f", []byte("a\n")), "--key", "a")
	if out := e.ok("delete", "a", "a"); strings.Count(out, "moved a ") != 1 {
		t.Errorf("delete a a: %q", out)
	}
	if out := e.ok("delete", "--permanent", "--yes", "a", "a"); strings.Count(out, "deleted a ") != 1 {
		t.Errorf("delete --permanent a a: %q", out)
	}
}

// restore UID of a key trashed at several times (rm, written again, rm)
// brings back the trash entry of that version, the versions one delete
// trashed with it, and leaves the others in the trash; restore KEY@vN does
// when vN was trashed alone. Before, a uid brought back every trashed
// version of its key.
func TestRestoreUIDOneTrashEntry(t *testing.T) {
	for _, cat := range []string{"bolt", "postgres"} {
		t.Run(cat, func(t *testing.T) { restoreUIDOneTrashEntry(t, cat) })
	}
}

func restoreUIDOneTrashEntry(t *testing.T, cat string) {
	e := newEnv(t)
	initOn(t, e, cat)
	save := func(s string) {
		e.ok("save", e.write("n.txt", []byte(s+"\n")), "--key", "k")
	}
	save("1")
	save("2")
	e.ok("delete", "k") // v1, v2
	save("3")
	e.ok("delete", "k") // v3
	trashed := func() (map[int]bool, map[int]string) {
		t.Helper()
		var vs []struct {
			Version int
			UID     string
			Trashed bool
		}
		e.jsonOut(&vs, "ls", "--versions", "k", "--format", "json")
		tr, uid := map[int]bool{}, map[int]string{}
		for _, v := range vs {
			tr[v.Version], uid[v.Version] = v.Trashed, v.UID
		}
		return tr, uid
	}
	_, uid := trashed()
	if out := e.ok("restore", uid[3]); !strings.Contains(out, "restored k (1 version)") {
		t.Errorf("restore UID of v3: %q", out)
	}
	if tr, _ := trashed(); !tr[1] || !tr[2] || tr[3] {
		t.Fatalf("after restore UID of v3, trashed: %v; want v1 and v2", tr)
	}
	if got := e.ok("get", "k", "-o", "-"); got != "3\n" {
		t.Errorf("k after restore UID of v3 = %q", got)
	}
	if out := e.ok("restore", uid[1]); !strings.Contains(out, "restored k (2 versions)") {
		t.Errorf("restore UID of v1: %q", out)
	}
	if tr, _ := trashed(); tr[1] || tr[2] || tr[3] {
		t.Fatalf("after restore UID of v1, trashed: %v", tr)
	}
	// The earlier entry alone: its latest is k's.
	e.ok("delete", "k") // v1..v3
	save("4")
	e.ok("delete", "k") // v4
	if out := e.ok("restore", uid[2]); !strings.Contains(out, "restored k (3 versions)") {
		t.Errorf("restore UID of v2: %q", out)
	}
	if got := e.ok("get", "k", "-o", "-"); got != "3\n" {
		t.Errorf("k after restoring the earlier entry = %q", got)
	}
	if tr, _ := trashed(); !tr[4] || tr[3] {
		t.Fatalf("after restore UID of v2, trashed: %v", tr)
	}
	e.ok("restore", "k")
	// KEY@vN: vN trashed alone comes back alone; one of an entry is
	// refused, naming the uid that brings the entry back.
	e.ok("delete", "k") // v1..v4
	save("5")
	e.ok("delete", "k") // v5
	if out := e.ok("restore", "k@v5"); !strings.Contains(out, "restored k (1 version)") {
		t.Errorf("restore k@v5: %q", out)
	}
	_, uid = trashed()
	e.ok("delete", "k") // v5, apart from v1..v4
	err := e.fails("restore works per trash entry: k@v2 was trashed together with 3 other versions (v1..v4 of k)", "restore", "k@v2")
	if codeOf(err) != 2 || !strings.Contains(explain(err), "`lamina restore "+uid[2]+"` (its uid) brings back those 4") {
		t.Errorf("restore k@v2: exit %d, %v", codeOf(err), err)
	}
	// Two uids of one entry restore it once; of two entries, both.
	if out := e.ok("restore", uid[1], uid[5], uid[2]); !strings.Contains(out, "restored k (4 versions)") || !strings.Contains(out, "restored k (1 version)") || strings.Count(out, "restored") != 2 {
		t.Errorf("restore of uids of two entries: %q", out)
	}
	if tr, _ := trashed(); tr[1] || tr[5] {
		t.Errorf("after restore of uids of two entries, trashed: %v", tr)
	}
	// A uid and its key: the key brings back what the uid left, if any.
	e.ok("delete", "k")
	if out := e.ok("restore", uid[1], "k"); strings.Count(out, "restored k (5 versions)") != 1 || strings.Count(out, "restored") != 1 {
		t.Errorf("restore UID k of a key with one trash entry: %q", out)
	}
}

// Through the mount's daemon (catalogrpc, which holds the bbolt catalog):
// rm of a file, saved again, rm again, and restore by the uid of the
// second version brings that one back into the mount, the first staying
// in the trash; a restore with a bad argument brings back nothing. (Saved
// again, not written in the mount, whose write within a minute of the rm
// brings the rm's version back: stage.Unlink.)
func TestRestoreUIDOneTrashEntryMounted(t *testing.T) {
	e := newMntEnv(t)
	mnt := filepath.Join(e.dir, "mnt")
	e.mount(mnt)
	f := filepath.Join(mnt, "k.txt")
	for i, s := range []string{"one\n", "two\n"} {
		if i == 0 {
			if err := os.WriteFile(f, []byte(s), 0o644); err != nil {
				t.Fatal(err)
			}
		} else {
			e.ok("save", e.file("k.txt", []byte(s)), "--key", "k.txt")
		}
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	var vs []struct {
		Version int
		UID     string
		Trashed bool
	}
	if err := json.Unmarshal([]byte(e.ok("ls", "--versions", "k.txt", "--format", "json")), &vs); err != nil || len(vs) != 2 || !vs[0].Trashed || !vs[1].Trashed {
		t.Fatalf("versions of k.txt: %+v, %v", vs, err)
	}
	_, errs, err := e.run("restore", vs[1].UID, "nosuch")
	if _, err := os.Stat(f); !os.IsNotExist(err) {
		t.Fatalf("k.txt after a refused restore: %v", err)
	}
	if err == nil || !strings.Contains(errs, `"nosuch" has nothing in the trash; nothing restored`) {
		t.Errorf("restore UID nosuch: %v %q", err, errs)
	}
	if out := e.ok("restore", vs[1].UID); !strings.Contains(out, "restored k.txt (1 version)") {
		t.Fatalf("restore UID of v2: %q", out)
	}
	if got, err := os.ReadFile(f); err != nil || string(got) != "two\n" {
		t.Fatalf("k.txt in the mount after restore UID of v2: %q, %v", got, err)
	}
	if trash := e.ok("ls", "--trash"); !regexp.MustCompile(`(?m)^k\.txt\s+1\s`).MatchString(trash) {
		t.Fatalf("ls --trash after restore UID of v2, want k.txt with 1 version:\n%s", trash)
	}
}

// Trashed versions without trashed_at (an edited or foreign export,
// which import-catalog takes) are one trash entry of their own: restore
// KEY@vN of one of several is refused, and a uid brings back those
// versions, not the key's others. Before, trashedTogether skipped them,
// found no entries, and restore a.txt@v1 brought back every trashed
// version of a.txt.
func TestRestoreVersionsWithoutTrashedAt(t *testing.T) {
	e := newEnv(t)
	e.ok("init", "--storage", e.path("store"), "--name", "src")
	save := func(k, s string) {
		e.ok("save", e.write("n.txt", []byte(s+"\n")), "--key", k)
	}
	for i := range 3 {
		save("a.txt", fmt.Sprint(i))
	}
	e.ok("delete", "a.txt") // a v1..v3
	save("a.txt", "3")
	e.ok("delete", "a.txt") // a v4
	save("b.txt", "1")
	save("b.txt", "2")
	e.ok("delete", "b.txt") // b v1, v2: stripped below
	save("b.txt", "3")
	e.ok("delete", "b.txt") // b v3 keeps its time
	dump := e.path("dump.jsonl")
	e.ok("export-catalog", dump)
	var lines []string
	strip := regexp.MustCompile(`,"trashed_at":"[^"]*"`)
	for _, l := range strings.SplitAfter(string(mustRead(t, dump)), "\n") {
		if strings.HasPrefix(l, `{"version":`) && (strings.Contains(l, `"key":"a.txt"`) ||
			strings.Contains(l, `"key":"b.txt","version":1,`) || strings.Contains(l, `"key":"b.txt","version":2,`)) {
			l = strip.ReplaceAllString(l, "")
		}
		lines = append(lines, l)
	}
	edited := e.path("edited.jsonl")
	if err := os.WriteFile(edited, []byte(strings.Join(lines, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(lines, ""), `"key":"b.txt","version":3,`) {
		t.Fatalf("the export's version records are not as the test reads them:\n%s", strings.Join(lines, ""))
	}
	e.ok("init", "--storage", e.path("store"), "--name", "dst", "--take-over")
	e.ok("--instance", "dst", "import-catalog", "--partial", edited)
	e.ok("use", "dst")
	// a.txt: all four without a time, one entry.
	e.fails("restore works per key: a.txt@v1 is one of 4 versions of a.txt in the trash (v1..v4)", "restore", "a.txt@v1")
	if ls := e.ok("ls", "--trash"); !regexp.MustCompile(`(?m)^a\.txt\s+4\s`).MatchString(ls) {
		t.Fatalf("a refused restore a.txt@v1 restored:\n%s", ls)
	}
	// b.txt: v1, v2 without a time are one entry, v3 another.
	var vs []struct {
		Version int
		UID     string
		Trashed bool
	}
	e.jsonOut(&vs, "ls", "--versions", "b.txt", "--format", "json")
	if len(vs) != 3 {
		t.Fatalf("versions of b.txt: %+v", vs)
	}
	e.fails("restore works per trash entry: b.txt@v1 was trashed together with 1 other version (v1..v2 of b.txt)", "restore", "b.txt@v1")
	if out := e.ok("restore", "b.txt@v3"); !strings.Contains(out, "restored b.txt (1 version)") {
		t.Errorf("restore b.txt@v3: %q", out)
	}
	if out := e.ok("restore", vs[0].UID); !strings.Contains(out, "restored b.txt (2 versions)") {
		t.Errorf("restore UID of b.txt v1: %q", out)
	}
	// a.txt's uid brings back its one entry.
	e.jsonOut(&vs, "ls", "--versions", "a.txt", "--format", "json")
	if out := e.ok("restore", vs[1].UID); !strings.Contains(out, "restored a.txt (4 versions)") {
		t.Errorf("restore UID of a.txt v2: %q", out)
	}
}
