package fs_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	lfs "github.com/lamina-bio/lamina/fs"
	"github.com/lamina-bio/lamina/stage"
)

// failedCloseWorld mounts w with retries of failed closes left to the
// test (RetryFailed by hand) and returns the Stage and a func that moves
// the storage away (true) or back (false), which makes commits fail.
func failedCloseWorld(t *testing.T, w *world) (*stage.Stage, func(away bool)) {
	t.Helper()
	st, err := stage.New(w.cat, w.in.Store, stage.Options{Dir: filepath.Join(w.tmp, "cache", "staging"), User: "tester",
		SyncEvery: 2 * time.Second, RetryFailed: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	w.mount(lfs.MountOptions{Stage: st})
	st.OnRetried(w.mnt.Changed)
	storage := filepath.Join(w.tmp, "storage")
	return st, func(away bool) {
		t.Helper()
		from, to := storage, storage+".away"
		if !away {
			from, to = to, from
		}
		if err := os.Rename(from, to); err != nil {
			t.Fatal(err)
		}
	}
}

// failClose writes data to name, opened with flag, and closes it, which
// must fail; it waits for the RELEASE that queues the retry.
func failClose(t *testing.T, w *world, st *stage.Stage, name string, flag int, data string) {
	t.Helper()
	before := st.FailedCommits()
	f, err := os.OpenFile(w.p(name), os.O_WRONLY|flag, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(data)
	if err := f.Close(); err == nil {
		t.Fatalf("close of %s with the storage away: no error", name)
	}
	if !waitFor(func() bool { return st.FailedCommits() > before }) { // the RELEASE follows the close
		t.Fatalf("the close of %s is not among the failed ones", name)
	}
}

// mv of a folder takes along the failed closes of the keys under it, as
// mv of one key does: their retry commits at the new name, not at the old
// one (which came back with the bytes while the new name held the older
// version). The journal of a File still open under it names its new key
// (what Recover keeps under lost+found/ after a crash).
func TestRenameFolderMovesFailedClose(t *testing.T) {
	w := newWorld(t)
	st, away := failedCloseWorld(t, w)
	w.sh(`mkdir fo1 && echo p1 > fo1/a.txt && echo q1 > fo1/b.txt`)
	away(true)
	failClose(t, w, st, "fo1/a.txt", os.O_TRUNC, "a-new\n")
	away(false)
	open, err := os.OpenFile(w.p("fo1/b.txt"), os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	if _, err := open.WriteString("b-open\n"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(w.p("fo1"), w.p("fo2")); err != nil {
		t.Fatal(err)
	}
	staged, err := stage.Staged(filepath.Join(w.tmp, "cache", "staging"))
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, f := range staged {
		keys = append(keys, f.Key)
	}
	if !slices.Equal(keys, []string{"fo2/a.txt", "fo2/b.txt"}) {
		t.Fatalf("the staged files' journals name %v, want fo2/a.txt fo2/b.txt", keys)
	}
	if left := st.RetryFailed(context.Background()); left != 0 {
		t.Fatalf("%d failed closes left", left)
	}
	w.wantVersions("fo1/a.txt", nil, nil)
	w.wantVersions("fo2/a.txt", []int{1, 2}, nil)
	if got := string(w.read("fo2/a.txt")); got != "a-new\n" {
		t.Fatalf("fo2/a.txt = %q", got)
	}
	if _, err := os.Stat(w.p("fo1")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stat fo1 after the retry: %v", err)
	}
}

// A new key whose first close failed (the storage away) is a file being
// written until its retry commits it: ls lists it, a read gets its bytes,
// rm drops them (the retry committed them later, and the file rm had
// answered ENOENT of came back), mv moves them (it could not stat it).
func TestFailedCloseOfNewKeyShows(t *testing.T) {
	w := newWorld(t)
	st, away := failedCloseWorld(t, w)
	w.sh(`mkdir d && echo old > d/keep.txt`)
	away(true)
	failClose(t, w, st, "d/nk.txt", os.O_CREATE, "nk\n")
	failClose(t, w, st, "d/mv.txt", os.O_CREATE, "mv\n")
	failClose(t, w, st, "d/stay.txt", os.O_CREATE, "stay\n")
	away(false)
	ents, err := os.ReadDir(w.p("d"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if want := []string{"keep.txt", "mv.txt", "nk.txt", "stay.txt"}; !slices.Equal(names, want) {
		t.Fatalf("ls d = %v, want %v", names, want)
	}
	if got := string(w.read("d/stay.txt")); got != "stay\n" {
		t.Fatalf("d/stay.txt before its retry = %q", got)
	}
	if err := os.Remove(w.p("d/nk.txt")); err != nil {
		t.Fatalf("rm of a new key whose close failed: %v", err)
	}
	if _, err := os.Stat(w.p("d/nk.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stat d/nk.txt after rm: %v", err)
	}
	if err := os.Rename(w.p("d/mv.txt"), w.p("d/moved.txt")); err != nil {
		t.Fatalf("mv of a new key whose close failed: %v", err)
	}
	if left := st.RetryFailed(context.Background()); left != 0 {
		t.Fatalf("%d failed closes left", left)
	}
	w.wantVersions("d/nk.txt", nil, nil)
	w.wantVersions("d/mv.txt", nil, nil)
	w.wantVersions("d/moved.txt", []int{1}, nil)
	w.wantVersions("d/stay.txt", []int{1}, nil)
	for name, want := range map[string]string{"d/moved.txt": "mv\n", "d/stay.txt": "stay\n"} {
		if got := string(w.read(name)); got != want {
			t.Fatalf("%s = %q, want %q", name, got, want)
		}
	}
	if _, err := os.Stat(w.p("d/nk.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stat d/nk.txt after the retry: %v", err)
	}
}

// `exec 3>>f; echo a >&3; : > f`: the truncating descriptor's close, its
// process holding another handle of f (not a copy of this one), waited
// for the RELEASE to commit the empty version, as a shell's redirect
// must (its copy writes yet). close(2) returned before the commit, so it
// reported no failure (the storage away), and a stat or read right after
// it saw the truncation or not by the RELEASE's timing. Now it commits at
// the close: a reader reads the empty version at once, and stat shows
// the appender's File, whose close makes the next version (each O_TRUNC
// writer stages its own copy).
func TestTruncateNextToOwnWriterCommitsAtClose(t *testing.T) {
	w := newWorld(t)
	w.save("f", []byte("0123456789\n"))
	st, away := failedCloseWorld(t, w)
	a := openFile(t, w.p("f"), os.O_WRONLY|os.O_APPEND)
	defer a.Close()
	if _, err := a.Write([]byte("a\n")); err != nil {
		t.Fatal(err)
	}
	if err := openFile(t, w.p("f"), os.O_WRONLY|os.O_TRUNC).Close(); err != nil {
		t.Fatal(err)
	}
	if vs := w.versions("f"); len(vs) != 2 || vs[1].Size != 0 {
		t.Fatalf("versions right after the truncating close: %+v, want the empty v2", vs)
	}
	if got := w.read("f"); len(got) != 0 {
		t.Fatalf("read right after the truncating close: %q", got)
	}
	statSize(t, w.p("f"), "with the appender's bytes to commit", 13)

	away(true)
	before := st.FailedCommits()
	if err := openFile(t, w.p("f"), os.O_WRONLY|os.O_TRUNC).Close(); err == nil {
		t.Fatal("close of a truncating descriptor with the storage away: no error")
	}
	if !waitFor(func() bool { return st.FailedCommits() > before }) { // the RELEASE queues the retry
		t.Fatal("the failed truncating close is not among the failed ones")
	}
	away(false)
	if left := st.RetryFailed(context.Background()); left != 0 {
		t.Fatalf("%d failed closes left", left)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if got := string(w.read("f")); got != "0123456789\na\n" {
		t.Fatalf("after the appender's close: %q", got)
	}
}
