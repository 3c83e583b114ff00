package fs_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/catalog"
	lfs "github.com/lamina-bio/lamina/fs"
	"github.com/lamina-bio/lamina/stage"
)

// mountRWWindow is mountRW with the Stage's MoveAwayWindow set to d.
func (w *world) mountRWWindow(d time.Duration) *stage.Stage {
	w.t.Helper()
	st, err := stage.New(w.cat, w.in.Store, stage.Options{Dir: filepath.Join(w.tmp, "cache", "staging"), User: "tester",
		SyncEvery: 2 * time.Second, MoveAwayWindow: d})
	if err != nil {
		w.t.Fatal(err)
	}
	w.mount(lfs.MountOptions{Stage: st})
	return st
}

// liveAndTrashed lists the numbers of key's live and trashed versions.
func (w *world) liveAndTrashed(key string) (live, trashed []int) {
	w.t.Helper()
	vs, err := w.cat.Versions(context.Background(), key, true)
	if err != nil && !errors.Is(err, catalog.ErrNotFound) {
		w.t.Fatal(err)
	}
	for _, v := range vs {
		if v.Trashed {
			trashed = append(trashed, v.Version)
		} else {
			live = append(live, v.Version)
		}
	}
	return live, trashed
}

func (w *world) wantVersions(key string, live, trashed []int) {
	w.t.Helper()
	l, tr := w.liveAndTrashed(key)
	if !slices.Equal(l, live) || !slices.Equal(tr, trashed) {
		w.t.Fatalf("%s: live versions %v, trashed %v; want %v, %v", key, l, tr, live, trashed)
	}
}

// mv from another file system onto a key unlinks the key, then creates it:
// its versions went to the trash and the moved file was a new history
// (v1, v2 TRASHED, v3 live). Now the unlink's versions come back with the
// commit, as for an editor's save, and the moved file is the next version.
func TestMoveFromOtherFileSystemKeepsHistory(t *testing.T) {
	w := newWorld(t)
	w.mountRW()
	t.Setenv("T", t.TempDir())
	w.sh(`mkdir M && echo v1 > M/r.csv && echo v2 > M/r.csv && echo v3 > "$T/r.csv" && mv "$T/r.csv" M/r.csv`)
	w.wantVersions("M/r.csv", []int{1, 2, 3}, nil)
	if got := string(w.read("M/r.csv")); got != "v3\n" {
		t.Fatalf("M/r.csv = %q", got)
	}
	if got := string(w.read("M/r.csv@v1")); got != "v1\n" {
		t.Fatalf("M/r.csv@v1 = %q", got)
	}
	// The same bytes again: no version, nothing in the trash.
	w.sh(`echo v3 > "$T/r.csv" && mv "$T/r.csv" M/r.csv`)
	w.wantVersions("M/r.csv", []int{1, 2, 3}, nil)
	if tk := w.trashKeys(); len(tk) != 0 {
		t.Fatalf("the trash after mv: %v", tk)
	}
}

// Extracting an archive again over its own files (tar -x and unzip -o
// unlink each file and create it anew) makes no version and leaves
// nothing in the trash: every file got a new version of the same bytes,
// the old one trashed. The files keep the archive's mtime, which tar and
// unzip set after the close (on the version the bytes matched).
func TestReextractIdenticalMakesNoVersion(t *testing.T) {
	w := newWorld(t)
	w.mountRW()
	t.Setenv("T", t.TempDir())
	w.sh(`mkdir -p "$T/src/x" && printf 'a,b\n1,2\n' > "$T/src/x/t.csv" && printf 'notes\n' > "$T/src/x/n.txt" &&
		touch -d '2020-01-02 03:04:05' "$T/src/x/t.csv" "$T/src/x/n.txt" &&
		tar -C "$T/src" -czf "$T/a.tgz" x && cd "$T/src" && zip -qr "$T/a.zip" x`)
	mt := time.Date(2020, 1, 2, 3, 4, 5, 0, time.Local)
	keys := []string{"x/t.csv", "x/n.txt"}
	check := func(what string) {
		t.Helper()
		for _, k := range keys {
			l, tr := w.liveAndTrashed(k)
			if !slices.Equal(l, []int{1}) || len(tr) != 0 {
				t.Fatalf("%s: %s has live versions %v, trashed %v; want v1 alone", what, k, l, tr)
			}
			fi, err := os.Stat(w.p(k))
			if err != nil || !fi.ModTime().Equal(mt) {
				t.Fatalf("%s: stat %s: %v, %v; want mtime %v", what, k, fi, err, mt)
			}
			if v := w.versions(k)[0]; !v.Mtime.Equal(mt) {
				t.Fatalf("%s: %s@v1 has mtime %v, want %v", what, k, v.Mtime, mt)
			}
		}
		if tk := w.trashKeys(); len(tk) != 0 {
			t.Fatalf("%s: the trash: %v", what, tk)
		}
	}
	w.sh(`tar -xzf "$T/a.tgz"`)
	check("tar -x")
	w.sh(`tar -xzf "$T/a.tgz"`)
	check("tar -x again")
	w.sh(`unzip -qo "$T/a.zip"`)
	check("unzip -o")

	// unlink, create, the same bytes, close: the kernel and a stat after
	// see the new file's mtime, which the version takes.
	if err := os.Remove(w.p("x/n.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(w.p("x/n.txt"), []byte("notes\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	w.wantVersions("x/n.txt", []int{1}, nil)
	fi, err := os.Stat(w.p("x/n.txt"))
	if err != nil {
		t.Fatal(err)
	}
	v := w.versions("x/n.txt")[0]
	if fi.ModTime().Equal(mt) || !v.Mtime.Equal(fi.ModTime()) || fi.Size() != 6 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("x/n.txt written anew with its bytes: stat %v %v %d, version mtime %v", fi.ModTime(), fi.Mode(), fi.Size(), v.Mtime)
	}
	if tk := w.trashKeys(); len(tk) != 0 {
		t.Fatalf("the trash: %v", tk)
	}
}

// The window: a key unlinked and created again within it gets its
// versions back; one unlinked alone stays in the trash, and so does one
// created again after the window (a new version after a trashed
// history, as before). A key with versions an older rm trashed gets back
// those of its last unlink only.
func TestUnlinkThenCreateWithinWindow(t *testing.T) {
	const window = 3 * time.Second
	w := newWorld(t)
	w.mountRWWindow(window)
	w.sh(`mkdir u && echo a > u/f && echo a > u/g && echo a > u/h && rm u/f u/g u/h && echo b > u/g`)
	w.wantVersions("u/g", []int{1, 2}, nil)
	w.wantVersions("u/f", nil, []int{1})
	time.Sleep(window + window/4)
	w.wantVersions("u/f", nil, []int{1}) // unlinked alone: in the trash
	w.sh(`echo c > u/f && echo b > u/h && rm u/h && echo c > u/h`)
	w.wantVersions("u/f", []int{2}, []int{1})
	w.wantVersions("u/h", []int{2, 3}, []int{1})
	if got := string(w.read("u/h@v2")); got != "b\n" {
		t.Fatalf("u/h@v2 = %q", got)
	}
}

// A file renamed onto a key unlinked within the window: the unlink's
// versions come back first, then the rename's usual rules (the same bytes
// make no version). A tool's temporary renamed over its removed output
// (tr > res.tmp && mv res.tmp res.txt; rm res.txt; again), rm B; mv C B,
// and rsync again after rm -r left the history in the trash and a new
// history of the same bytes.
func TestRenameOntoUnlinkedKeyRestores(t *testing.T) {
	w := newWorld(t)
	w.mountRW()
	t.Setenv("T", t.TempDir())
	run := `tr a-z A-Z < r/in.txt > r/res.tmp && mv r/res.tmp r/res.txt`
	w.sh(`mkdir r && echo hello > r/in.txt && ` + run + ` && rm r/res.txt && ` + run)
	w.wantVersions("r/res.txt", []int{1}, nil)
	w.wantVersions("r/res.tmp", nil, nil)
	if got := string(w.read("r/res.txt")); got != "HELLO\n" {
		t.Fatalf("r/res.txt = %q", got)
	}

	w.sh(`echo b1 > r/B && echo b2 > r/B && echo c > r/C && rm r/B && mv r/C r/B`)
	w.wantVersions("r/B", []int{1, 2, 3}, nil)
	if got := string(w.read("r/B")); got != "c\n" {
		t.Fatalf("r/B = %q", got)
	}

	w.sh(`mkdir -p "$T/src/d" && echo one > "$T/src/a.txt" && echo two > "$T/src/d/b.txt" &&
		rsync -a "$T/src/" rs/ && rm -r rs && rsync -a "$T/src/" rs/`)
	w.wantVersions("rs/a.txt", []int{1}, nil)
	w.wantVersions("rs/d/b.txt", []int{1}, nil)
	if tk := w.trashKeys(); len(tk) != 0 {
		t.Fatalf("the trash: %v", tk)
	}
}

// The window runs from the unlink to the file's creation, not to its
// close: a file created again at once and written for longer than the
// window gets the unlink's versions back.
func TestUnlinkThenLongWriteRestores(t *testing.T) {
	const window = 2 * time.Second
	w := newWorld(t)
	w.mountRWWindow(window)
	w.sh(`echo same > big.txt && echo other > late.txt`)
	if err := os.Remove(w.p("big.txt")); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(w.p("big.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("same\n"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(window + window/2)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	w.wantVersions("big.txt", []int{1}, nil)
	// Created after the window: a new history, the old one in the trash.
	if err := os.Remove(w.p("late.txt")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(window + window/2)
	w.sh(`echo other > late.txt`)
	w.wantVersions("late.txt", []int{2}, []int{1})
}

// rm of a key whose last close failed (the storage away: EIO, the bytes
// staged for a retry) drops those bytes, as for a file still open: the
// retry committed them once the storage was back, and the removed file
// came back (with the versions the rm trashed). A rename of such a key
// takes its retry along: the bytes commit at the new name.
func TestUnlinkDropsFailedClose(t *testing.T) {
	w := newWorld(t)
	st, err := stage.New(w.cat, w.in.Store, stage.Options{Dir: filepath.Join(w.tmp, "cache", "staging"), User: "tester",
		SyncEvery: 2 * time.Second, RetryFailed: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	w.mount(lfs.MountOptions{Stage: st})
	st.OnRetried(w.mnt.Changed)
	w.sh(`echo z1 > Z && echo z2 > Z && echo y1 > Y && echo y2 > Y`)
	storage := filepath.Join(w.tmp, "storage")
	if err := os.Rename(storage, storage+".away"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ name, data string }{{"Z", "z3\n"}, {"Y", "y3\n"}} {
		f, err := os.OpenFile(w.p(c.name), os.O_WRONLY|os.O_TRUNC, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(c.data)
		if err := f.Close(); err == nil {
			t.Fatalf("close of %s with the storage away: no error", c.name)
		}
	}
	waitFor(func() bool { return st.FailedCommits() >= 2 }) // the RELEASE follows the close
	if n := st.FailedCommits(); n != 2 {
		t.Fatalf("%d failed closes, want 2", n)
	}
	if err := os.Remove(w.p("Z")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(w.p("Y"), w.p("Y2")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(storage+".away", storage); err != nil {
		t.Fatal(err)
	}
	if left := st.RetryFailed(context.Background()); left != 0 {
		t.Fatalf("%d failed closes left", left)
	}
	w.wantVersions("Z", nil, []int{1, 2})
	if _, err := os.Stat(w.p("Z")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stat Z after rm and the retry: %v", err)
	}
	w.wantVersions("Y", nil, nil)
	w.wantVersions("Y2", []int{1, 2, 3}, nil)
	if got := string(w.read("Y2")); got != "y3\n" {
		t.Fatalf("Y2 = %q", got)
	}
	if n := st.FailedCommits(); n != 0 {
		t.Fatalf("%d failed closes", n)
	}
}

// nestTracker is a Tracker whose every caller is in run cur; run "j" is
// under run "p", which runs while running is set.
type nestTracker struct {
	commTracker
	cur     atomic.Value
	running atomic.Bool
}

func (n *nestTracker) Caller(uint32) string { s, _ := n.cur.Load().(string); return s }

func (n *nestTracker) Within(run, ancestor string) bool {
	return n.running.Load() && ancestor == "p" && (run == "p" || run == "j")
}

// Snakemake removes a job's outputs before it runs the job, which may
// write them long after the window: a key a run unlinked that the run or
// a job under it writes again gets the unlink's versions back while the
// run runs. Another run's write after the window, or the job's once the
// run ended, starts after a trashed history, as before.
func TestRunUnlinkThenJobWritesLate(t *testing.T) {
	const window = time.Second
	w := newWorld(t)
	tr := &nestTracker{}
	tr.cur.Store("")
	tr.running.Store(true)
	st, err := stage.New(w.cat, w.in.Store, stage.Options{Dir: filepath.Join(w.tmp, "cache", "staging"), User: "tester",
		SyncEvery: 2 * time.Second, MoveAwayWindow: window})
	if err != nil {
		t.Fatal(err)
	}
	w.mount(lfs.MountOptions{Stage: st, Tracker: tr})
	w.sh(`echo slow > slow.txt && echo other > other.txt`)
	late := func(unlinker, writer, name, data string) {
		t.Helper()
		tr.cur.Store(unlinker)
		if err := os.Remove(w.p(name)); err != nil {
			t.Fatal(err)
		}
		tr.cur.Store("")
		time.Sleep(window + window/2)
		tr.cur.Store(writer)
		if err := os.WriteFile(w.p(name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		tr.cur.Store("")
	}
	late("p", "j", "slow.txt", "slow\n")
	w.wantVersions("slow.txt", []int{1}, nil)
	late("p", "x", "other.txt", "other\n")
	w.wantVersions("other.txt", []int{2}, []int{1})
	tr.running.Store(false)
	late("p", "j", "slow.txt", "slow\n")
	w.wantVersions("slow.txt", []int{2}, []int{1})
}

// A rename onto an unlinked key measures the window to the source file's
// creation, as a write of the key does: a tool writing its temporary for
// longer than the window (rm out; long_tool > out.tmp && mv out.tmp out)
// gets the unlink's versions back; one created after the window does not.
func TestUnlinkThenLongTemporaryRenamedRestores(t *testing.T) {
	const window = 2 * time.Second
	w := newWorld(t)
	w.mountRWWindow(window)
	w.sh(`echo one > out && echo two > late`)
	if err := os.Remove(w.p("out")); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(w.p("out.tmp"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("three\n"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(window + window/2)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(w.p("out.tmp"), w.p("out")); err != nil {
		t.Fatal(err)
	}
	w.wantVersions("out", []int{1, 2}, nil)
	if got := string(w.read("out")); got != "three\n" {
		t.Fatalf("out = %q", got)
	}
	// Created after the window: a new history, the old one in the trash.
	if err := os.Remove(w.p("late")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(window + window/2)
	w.sh(`echo three > late.tmp && mv late.tmp late`)
	w.wantVersions("late", []int{2}, []int{1})
}
