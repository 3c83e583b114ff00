package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

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
	e.fails("no artifact under", "restore", "tree/")
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
