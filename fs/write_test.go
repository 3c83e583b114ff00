package fs_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/catalog"
	lfs "github.com/lamina-bio/lamina/fs"
	"github.com/lamina-bio/lamina/stage"
)

// mountRW mounts w with the write side on, set up as the mount daemon sets
// it up: commits made durable within 2 s, so closes and the changes around
// them commit together (catalog.Lazy).
func (w *world) mountRW() *stage.Stage {
	w.t.Helper()
	return w.mountRWWith(lfs.MountOptions{})
}

// mountRWWith is mountRW with the options o (its Stage is set here).
func (w *world) mountRWWith(o lfs.MountOptions) *stage.Stage {
	w.t.Helper()
	st, err := stage.New(w.cat, w.in.Store, stage.Options{Dir: filepath.Join(w.tmp, "cache", "staging"), User: "tester",
		SyncEvery: 2 * time.Second})
	if err != nil {
		w.t.Fatal(err)
	}
	o.Stage = st
	w.mount(o)
	return st
}

func (w *world) versions(key string) []catalog.Version {
	w.t.Helper()
	vs, err := w.cat.Versions(context.Background(), key, false)
	if err != nil && !errors.Is(err, catalog.ErrNotFound) {
		w.t.Fatal(err)
	}
	return vs
}

// eventually waits (waitFor) for key to have n versions.
func (w *world) eventually(key string, n int) []catalog.Version {
	w.t.Helper()
	var vs []catalog.Version
	waitFor(func() bool { vs = w.versions(key); return len(vs) == n })
	return vs
}

func (w *world) p(name string) string { return filepath.Join(w.dir, name) }

func (w *world) sh(script string) {
	w.t.Helper()
	// cd after exec: a child that enters the mount between fork and exec
	// can deadlock with a FUSE server in the test's own process (the Go
	// runtime waits for the vfork'd thread, which waits for the server).
	cmd := exec.Command("sh", "-ec", `cd "$1"; shift; eval "$@"`, "sh", w.dir, script)
	if out, err := cmd.CombinedOutput(); err != nil {
		w.t.Fatalf("%s: %v\n%s", script, err, out)
	}
}

func TestWriteBasics(t *testing.T) {
	w := newWorld(t)
	w.save("d/old.txt", []byte("old"))
	w.mountRW()

	// Create, write, close: version 1, visible at once.
	if err := os.WriteFile(w.p("d/new.txt"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	if vs := w.versions("d/new.txt"); len(vs) != 1 || vs[0].Size != 5 {
		t.Fatalf("after create: %+v", vs)
	}
	if got := string(w.read("d/new.txt")); got != "hello" {
		t.Fatalf("read back %q", got)
	}
	// Same bytes: no new version. Other bytes: version 2.
	os.WriteFile(w.p("d/new.txt"), []byte("hello"), 0o644)
	if vs := w.versions("d/new.txt"); len(vs) != 1 {
		t.Fatalf("same bytes made a version: %d", len(vs))
	}
	w.sh("echo more > d/new.txt")
	if vs := w.versions("d/new.txt"); len(vs) != 2 || string(w.read("d/new.txt")) != "more\n" {
		t.Fatalf("> made %d versions, reads %q", len(vs), w.read("d/new.txt"))
	}
	// Append copies on write.
	w.sh("echo tail >> d/old.txt")
	if got := string(w.read("d/old.txt")); got != "oldtail\n" {
		t.Fatalf("append: %q", got)
	}
	if got := string(w.read("d/old.txt@v1")); got != "old" {
		t.Fatalf("@v1 after append: %q", got)
	}
	// touch on an existing file: mtime, no version.
	n := len(w.versions("d/old.txt"))
	w.sh("touch d/old.txt")
	mt := time.Date(2021, 5, 6, 7, 8, 9, 123456789, time.UTC)
	if err := os.Chtimes(w.p("d/old.txt"), mt, mt); err != nil {
		t.Fatal(err)
	}
	vs := w.versions("d/old.txt")
	if len(vs) != n || !vs[len(vs)-1].Mtime.Equal(mt) {
		t.Fatalf("touch: %d versions (want %d), mtime %v", len(vs), n, vs[len(vs)-1].Mtime)
	}
	if fi, _ := os.Stat(w.p("d/old.txt")); !fi.ModTime().Equal(mt) {
		t.Fatalf("stat mtime %v want %v", fi.ModTime(), mt)
	}
	// touch of a new name: one empty version.
	w.sh("touch d/empty")
	if fi, err := os.Stat(w.p("d/empty")); err != nil || fi.Size() != 0 {
		t.Fatalf("stat after touch: %v", err)
	}
	// RELEASE, which commits an empty new file, arrives after close returned.
	if vs := w.eventually("d/empty", 1); len(vs) != 1 || vs[0].Size != 0 {
		t.Fatalf("touch new: %+v", vs)
	}
	// The mtime the writer saw is the version's.
	f, _ := os.Create(w.p("d/m.txt"))
	f.Write([]byte("x"))
	fi, _ := f.Stat()
	f.Close()
	if v := w.versions("d/m.txt"); len(v) != 1 || !v[0].Mtime.Equal(fi.ModTime()) {
		t.Fatalf("mtime moved: writer saw %v, version has %v", fi.ModTime(), v)
	}
	if fi2, _ := os.Stat(w.p("d/m.txt")); !fi2.ModTime().Equal(fi.ModTime()) {
		t.Fatalf("mtime after commit %v, writer saw %v", fi2.ModTime(), fi.ModTime())
	}
	// chmod: mode stored, no version.
	if err := os.Chmod(w.p("d/m.txt"), 0o444); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(w.p("d/m.txt")); fi.Mode().Perm() != 0o444 || len(w.versions("d/m.txt")) != 1 {
		t.Fatalf("chmod: %v", fi.Mode())
	}
	// An executable version runs by its version path too (read-only still).
	if err := os.Chmod(w.p("d/m.txt"), 0o755); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(w.p("d/m.txt@v1")); err != nil || fi.Mode().Perm() != 0o555 {
		t.Fatalf("@v1 of a 0755 file: %v %v, want 0555", fi.Mode(), err)
	}
	if err := os.Chown(w.p("d/m.txt"), 1234, 1234); !errors.Is(err, syscall.EPERM) {
		t.Fatalf("chown: %v", err)
	}
	if err := os.Link(w.p("d/m.txt"), w.p("d/hard")); !errors.Is(err, syscall.EPERM) {
		t.Fatalf("link: %v", err)
	}
	// Versions and sidecars are read-only; bad names refused.
	for _, name := range []string{"d/old.txt@v1", "d/old.txt.meta"} {
		if err := os.WriteFile(w.p(name), []byte("x"), 0o644); !errors.Is(err, syscall.EROFS) {
			t.Errorf("write %s: %v", name, err)
		}
		if err := os.Remove(w.p(name)); !errors.Is(err, syscall.EROFS) {
			t.Errorf("unlink %s: %v", name, err)
		}
	}
	if err := os.WriteFile(w.p("d/x.meta"), nil, 0o644); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("create x.meta: %v", err)
	}
	if err := os.WriteFile(w.p("d/"+strings.Repeat("n", 256)), nil, 0o644); !errors.Is(err, syscall.ENAMETOOLONG) {
		t.Errorf("long name: %v", err)
	}
}

func TestWriteNamespaceOps(t *testing.T) {
	w := newWorld(t)
	w.save("k/a", []byte("a1"))
	w.mountRW()
	ctx := context.Background()

	// unlink → trash; writing again continues numbers (and, within
	// stage.MoveAwayWindow, brings back what the unlink trashed).
	if err := os.Remove(w.p("k/a")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(w.p("k/a")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("after unlink: %v", err)
	}
	if _, err := os.Stat(w.p("k")); err != nil {
		t.Fatalf("the folder must persist after its last file went: %v", err)
	}
	os.WriteFile(w.p("k/a"), []byte("a2"), 0o644)
	if v, err := w.cat.ByKey(ctx, "k/a", 0); err != nil || v.Version != 2 {
		t.Fatalf("rewrite after unlink: %+v %v", v, err)
	}
	// mkdir persists; rmdir only empty.
	if err := os.Mkdir(w.p("e"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(w.p("e"), 0o755); !errors.Is(err, os.ErrExist) {
		t.Fatalf("mkdir twice: %v", err)
	}
	if got := w.ls(""); !slices.Equal(got, []string{"e/", "k/"}) {
		t.Fatalf("ls = %v", got)
	}
	if err := syscall.Rmdir(w.p("k")); !errors.Is(err, syscall.ENOTEMPTY) {
		t.Fatalf("rmdir non-empty: %v", err)
	}
	if err := syscall.Rmdir(w.p("k/a")); !errors.Is(err, syscall.ENOTDIR) {
		t.Fatalf("rmdir file: %v", err)
	}
	if err := os.Remove(w.p("e")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(w.p("k/a"), 0o755); !errors.Is(err, os.ErrExist) {
		t.Fatalf("mkdir over a file: %v", err)
	}
	if err := os.WriteFile(w.p("k/a/x"), nil, 0o644); !errors.Is(err, syscall.ENOTDIR) {
		t.Fatalf("create under a file: %v", err)
	}
	// rename: temp onto key = new version, temp leaves no trace.
	os.WriteFile(w.p("k/.tmp123"), []byte("a3"), 0o644)
	if err := os.Rename(w.p("k/.tmp123"), w.p("k/a")); err != nil {
		t.Fatal(err)
	}
	if v, _ := w.cat.ByKey(ctx, "k/a", 0); v.Version != 3 || string(w.read("k/a")) != "a3" {
		t.Fatalf("rename onto: v%d %q", v.Version, w.read("k/a"))
	}
	// The trash holds the removed folder e (for restore), nothing of k/a
	// (its unlinked version 1 came back when it was written again) nor of
	// the temporary.
	if tl, _ := w.cat.TrashList(ctx); len(tl) != 1 || tl[0].Key != "e" || tl[0].Kind != "folder" {
		t.Fatalf("trash after a temporary renamed onto k/a: %+v", tl)
	}
	w.wantVersions("k/a", []int{1, 2, 3}, nil)
	// rename to a free key moves every version.
	if err := os.Rename(w.p("k/a"), w.p("k/b")); err != nil {
		t.Fatal(err)
	}
	if vs := w.versions("k/b"); len(vs) != 3 || string(w.read("k/b@v3")) != "a3" {
		t.Fatalf("moved versions: %d", len(vs))
	}
	// directory rename moves every key.
	os.WriteFile(w.p("k/sub/c"), nil, 0o644)
	os.MkdirAll(w.p("k/sub"), 0o755)
	os.WriteFile(w.p("k/sub/c"), []byte("c"), 0o644)
	if err := os.Rename(w.p("k"), w.p("m")); err != nil {
		t.Fatal(err)
	}
	if got := string(w.read("m/sub/c")) + string(w.read("m/b")); got != "ca3" {
		t.Fatalf("after dir rename: %q", got)
	}
	// symlinks.
	if err := os.Symlink("b", w.p("m/ln")); err != nil {
		t.Fatal(err)
	}
	if tgt, err := os.Readlink(w.p("m/ln")); err != nil || tgt != "b" {
		t.Fatalf("readlink %q %v", tgt, err)
	}
	if got := string(w.read("m/ln")); got != "a3" {
		t.Fatalf("through link %q", got)
	}
	if fi, err := os.Lstat(w.p("m/ln")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("lstat %v %v", fi, err)
	}
	// created then deleted before close: nothing.
	f, _ := os.Create(w.p("m/ghost"))
	f.Write([]byte("boo"))
	os.Remove(w.p("m/ghost"))
	f.Close()
	if _, err := w.cat.Versions(ctx, "m/ghost", true); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("ghost left %v", err)
	}
	// readers see the committed version while a writer has the file open.
	f, _ = os.OpenFile(w.p("m/b"), os.O_WRONLY|os.O_TRUNC, 0)
	f.Write([]byte("writing"))
	if got := string(w.read("m/b")); got != "a3" {
		t.Fatalf("reader during write: %q", got)
	}
	g, _ := os.OpenFile(w.p("m/b"), os.O_WRONLY|os.O_TRUNC, 0)
	g.Write([]byte("second"))
	f.Close()
	g.Close()
	if vs := w.versions("m/b"); len(vs) != 5 || string(w.read("m/b")) != "second" {
		t.Fatalf("two writers: %d versions, %q", len(vs), w.read("m/b"))
	}
	// scratch paths: a plain folder.
	w.sh("mkdir -p m/.snakemake/meta && echo x > m/.snakemake/meta/y && mv m/.snakemake/meta/y m/.snakemake/meta/z && echo s > m/.b.swp && echo b > m/b~")
	if got := string(w.read("m/.snakemake/meta/z")); got != "x\n" {
		t.Fatalf("scratch read %q", got)
	}
	if _, err := w.cat.Versions(ctx, "m/.b.swp", true); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("scratch made a version: %v", err)
	}
	if got := w.ls("m"); !slices.Contains(got, ".b.swp") || !slices.Contains(got, ".snakemake/") || !slices.Contains(got, "b~") {
		t.Fatalf("ls with scratch = %v", got)
	}
	// a scratch file renamed onto a key commits.
	if err := os.Rename(w.p("m/.b.swp"), w.p("m/b")); err != nil {
		t.Fatal(err)
	}
	if got := string(w.read("m/b")); got != "s\n" {
		t.Fatalf("scratch renamed onto key: %q", got)
	}
}

// Changing the files of a folder one by one — touch, chmod, rename,
// remove — keeps the folder's listing and edits it in place: each change
// used to list the folder again (n² names decoded for n files).
func TestFolderOpsKeepListing(t *testing.T) {
	w := newWorld(t)
	now := time.Now()
	var nvs []catalog.NewVersion
	for i := range 200 {
		nvs = append(nvs, catalog.NewVersion{Key: fmt.Sprintf("rm/f%03d.csv", i), Kind: "file", CreatedAt: now,
			Mtime: now.Add(time.Duration(i) * time.Second)})
	}
	if _, err := w.cat.Save(context.Background(), nvs); err != nil {
		t.Fatal(err)
	}
	cat := &childrenCounting{Bolt: w.cat, reads: map[string]int{}}
	w.mountCat = cat
	w.mountRW()
	if got := len(w.ls("rm")); got != 200 {
		t.Fatalf("ls rm: %d names", got)
	}
	name := func(i int) string { return w.p(fmt.Sprintf("rm/f%03d.csv", i)) }
	old := time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC)
	ops := []struct {
		what string
		do   func(i int) error
	}{
		{"touch", func(i int) error { return os.Chtimes(name(i), old, old) }},
		{"chmod", func(i int) error { return os.Chmod(name(i), 0o444) }},
		{"rename", func(i int) error { return os.Rename(name(i), w.p(fmt.Sprintf("rm/g%03d.csv", i))) }},
		// the newest first: the folder's mtime follows
		{"remove", func(i int) error { return os.Remove(w.p(fmt.Sprintf("rm/g%03d.csv", 200-i))) }},
	}
	for _, op := range ops {
		before := cat.read("rm/")
		for i := 1; i < 200; i++ {
			if err := op.do(i); err != nil {
				t.Fatalf("%s %d: %v", op.what, i, err)
			}
		}
		if n := cat.read("rm/") - before; n > 2 {
			t.Fatalf("%s of 199 files listed the folder %d times", op.what, n)
		}
		switch op.what {
		case "chmod":
			fi, err := os.Stat(name(100))
			if err != nil || fi.Mode().Perm() != 0o444 || !fi.ModTime().Equal(old) {
				t.Fatalf("after touch and chmod: %v, %v", fi, err)
			}
		case "rename":
			if got := len(w.ls("rm")); got != 200 {
				t.Fatalf("after renames: %d names", got)
			}
			if _, err := os.Stat(name(100)); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("stat of a renamed file's old name: %v", err)
			}
			if fi, err := os.Stat(w.p("rm/g100.csv")); err != nil || fi.Mode().Perm() != 0o444 {
				t.Fatalf("renamed file: %v, %v", fi, err)
			}
		}
	}
	if got := w.ls("rm"); !slices.Equal(got, []string{"f000.csv"}) {
		t.Fatalf("ls rm = %v", got)
	}
	fi, err := os.Stat(w.p("rm"))
	if err != nil || !fi.ModTime().Equal(now) {
		t.Fatalf("rm/ mtime %v, %v; want the remaining file's %v", fi.ModTime(), err, now)
	}
	if tl, _ := w.cat.TrashList(context.Background()); len(tl) != 199 {
		t.Fatalf("trash holds %d artifacts, want 199", len(tl))
	}
}

// Making and removing folders one by one keeps their parent's listing
// (each listed the parent again), and the listing shows them right.
func TestMkdirKeepsListing(t *testing.T) {
	w := newWorld(t)
	w.save("samples/readme.txt", []byte("r"))
	cat := &childrenCounting{Bolt: w.cat, reads: map[string]int{}}
	w.mountCat = cat
	w.mountRW()
	if got := w.ls("samples"); len(got) != 1 {
		t.Fatalf("ls samples = %v", got)
	}
	before := cat.read("samples/")
	for i := range 100 {
		if err := os.Mkdir(w.p(fmt.Sprintf("samples/s%03d", i)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 100; i += 2 {
		if err := os.Remove(w.p(fmt.Sprintf("samples/s%03d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if n := cat.read("samples/") - before; n > 2 {
		t.Fatalf("making 100 folders and removing 50 listed their parent %d times", n)
	}
	got := w.ls("samples")
	if len(got) != 51 || got[0] != "readme.txt" || !slices.Contains(got, "s001/") || slices.Contains(got, "s000/") {
		t.Fatalf("ls samples = %v", got)
	}
	if err := os.Mkdir(w.p("samples/s001"), 0o755); !errors.Is(err, os.ErrExist) {
		t.Fatalf("mkdir of a made folder: %v", err)
	}
	if err := os.WriteFile(w.p("samples/s001/out.txt"), []byte("o"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := w.ls("samples/s001"); !slices.Equal(got, []string{"out.txt"}) {
		t.Fatalf("ls samples/s001 = %v", got)
	}
	if err := os.Remove(w.p("samples/s001")); err == nil {
		t.Fatal("rmdir of a folder holding a file")
	}
}

// A commit of a file that keeps its inode (another version of the key)
// drops the inode's attributes, not the name's entry: an entry
// invalidation takes the folder's lock in the kernel, behind any LOOKUP in
// the folder waiting for the mount, and a daemon killed then stays stuck
// in the kernel with the LOOKUP's process waiting (TestSQLiteKilled, a
// commit per transaction). Each commit used to cost the next stat a
// LOOKUP; now a GETATTR shows the new version.
// A listing of a mount that shows versions, right after close(2) returned,
// shows the version the close committed: the kernel's cached listing of
// the folder is dropped before close returns, not by the notifier a moment
// later (ls missed name@vN for up to 30 ms).
func TestCloseShowsVersionInListing(t *testing.T) {
	w := newWorld(t)
	w.mountRWWith(lfs.MountOptions{Options: lfs.Options{ShowVersions: true}})
	if err := os.Mkdir(w.p("d"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 40; i++ {
		w.ls("d") // the kernel caches the listing
		if err := os.WriteFile(w.p("d/f"), []byte(fmt.Sprint(i)), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := w.ls("d"); !slices.Contains(got, fmt.Sprintf("f@v%d", i)) {
			t.Fatalf("ls d after close %d = %v, want f@v%d in it", i, got, i)
		}
	}
}

func TestCommitKeepsNameEntry(t *testing.T) {
	w := newWorld(t)
	w.mountRW()
	if err := os.WriteFile(w.p("log.txt"), []byte("0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(w.p("log.txt")); err != nil {
		t.Fatal(err)
	}
	before := w.mnt.Stats().Lookups
	for i := 1; i <= 30; i++ {
		f, err := os.OpenFile(w.p("log.txt"), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(f, "%d\n", i)
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		want := int64(len(fmt.Sprint(i)) + 1)
		for j := 0; j < i; j++ {
			want += int64(len(fmt.Sprint(j)) + 1)
		}
		if fi, err := os.Stat(w.p("log.txt")); err != nil || fi.Size() != want {
			t.Fatalf("stat after commit %d: %v, %v; want size %d", i, fi, err, want)
		}
	}
	if n := w.mnt.Stats().Lookups - before; n != 0 {
		t.Errorf("30 commits of log.txt sent %d LOOKUPs, want none (its entry was invalidated)", n)
	}
	if vs := w.versions("log.txt"); len(vs) != 31 {
		t.Errorf("%d versions, want 31", len(vs))
	}
	if got := string(w.read("log.txt")); !strings.HasSuffix(got, "29\n30\n") {
		t.Errorf("read %q", got)
	}
}
