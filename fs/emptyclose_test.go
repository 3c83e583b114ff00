package fs_test

import (
	"os"
	"os/exec"
	"testing"
)

// An open that created or truncated a file and wrote nothing commits no
// empty version at its close over a version another writer committed
// since (audit c4): `flock -x out sh -c 'echo hello > out'` left out@v2
// empty after the child's "hello", where a local disk holds "hello".
// flock opens out O_RDONLY|O_CREAT and closes it last. Alone, such an open
// still makes its empty version (touch, `: > f`).
func TestEmptyCreateCloseKeepsLaterWritersVersion(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("no python3")
	}
	w := newWorld(t)
	w.mountRW()
	if err := os.WriteFile(w.p("t"), []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("flock"); err == nil {
		w.sh(`flock -x out sh -c 'echo hello > out'`)
	} else {
		w.sh(`python3 -c 'import fcntl, os
a = os.open("out", os.O_RDONLY | os.O_CREAT, 0o644)
fcntl.flock(a, fcntl.LOCK_EX)
os.system("echo hello > out")
os.close(a)'`)
	}
	// The three ways to create, then O_TRUNC of an existing file (t).
	w.sh(`python3 -c 'import os
for name, flags in (("r", os.O_RDONLY), ("w", os.O_WRONLY), ("rw", os.O_RDWR)):
    a = os.open(name, flags | os.O_CREAT, 0o644)
    os.system("echo hello > " + name)
    os.close(a)
a = os.open("t", os.O_WRONLY | os.O_TRUNC)
os.system("echo hello > t")
os.close(a)'`)
	for name, want := range map[string]int{"out": 1, "r": 1, "w": 1, "rw": 1, "t": 2} {
		vs := w.versions(name)
		if len(vs) != want || string(w.read(name)) != "hello\n" {
			t.Errorf("%s: %d versions (want %d), latest %q", name, len(vs), want, w.read(name))
		}
	}

	// Alone: an empty version each, as before.
	w.sh(`touch new; python3 -c 'import os; os.close(os.open("ro", os.O_RDONLY | os.O_CREAT, 0o644))'; : > t`)
	for name, want := range map[string]int{"new": 1, "ro": 1, "t": 3} {
		vs := w.versions(name)
		if len(vs) != want || vs[len(vs)-1].Size != 0 {
			t.Errorf("%s: %d versions (want %d, the last empty)", name, len(vs), want)
		}
	}
}
