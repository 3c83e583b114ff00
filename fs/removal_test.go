package fs

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

// removalRuns: a folder's removal counts from the first removal its
// process made beneath it since a name was made there; another process's
// removal or a name made starts a new run.
func TestRemovalRuns(t *testing.T) {
	other := exec.Command("sleep", "60")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { other.Process.Kill(); other.Wait() }()
	me, tool := uint32(os.Getpid()), uint32(other.Process.Pid)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	var r removalRuns

	r.removed("d", tool, at(1)) // a tool unlinks its lock
	r.removed("d", me, at(2))   // rm -r begins
	r.removed("d/sub", me, at(3))
	r.removed("d", me, r.from("d/sub", me, at(4))) // rmdir d/sub: from 3
	r.forget("d/sub")
	if got := r.from("d", me, at(5)); !got.Equal(at(2)) {
		t.Errorf("rm -r after another process's unlink: from %v; want %v", got, at(2))
	}
	if got := r.from("d", tool, at(5)); !got.Equal(at(5)) {
		t.Errorf("rmdir by a process that removed nothing there: from %v; want its own time %v", got, at(5))
	}

	r.removed("e/sub", me, at(1))
	r.removed("e", me, r.from("e/sub", me, at(2))) // a folder's run begins beneath it
	r.removed("e", me, at(3))
	if got := r.from("e", me, at(4)); !got.Equal(at(1)) {
		t.Errorf("from of a folder whose subfolder went first: %v; want %v", got, at(1))
	}

	r.removed("f", me, at(1))
	r.changed("f") // a name made: what went before is no part of a later removal
	r.removed("f", me, at(3))
	if got := r.from("f", me, at(4)); !got.Equal(at(3)) {
		t.Errorf("from after a name was made: %v; want %v", got, at(3))
	}
	if got := r.from("none", me, at(9)); !got.Equal(at(9)) {
		t.Errorf("from of a folder with no removals: %v; want %v", got, at(9))
	}
}
