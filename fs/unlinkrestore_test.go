package fs_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
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
