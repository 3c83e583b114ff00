package fs_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	lfs "github.com/lamina-bio/lamina/fs"
	"golang.org/x/sys/unix"
)

// What POSIX tools expect of a rename, an xattr, a time or a mode, found
// by an audit of the binary (ln -sfn, rsync, mv, cp -a, touch -d @0, tar).

// readlink is the target of the link at name, failing the test if it is
// none.
func (w *world) readlink(name string) string {
	w.t.Helper()
	s, err := os.Readlink(w.p(name))
	if err != nil {
		w.t.Fatal(err)
	}
	return s
}

// lsLong is ls of dir with each name's type: "name" for a file, "name->x"
// for a link to x, "name/" for a folder.
func (w *world) lsLong(dir string) []string {
	w.t.Helper()
	var out []string
	for _, n := range w.ls(dir) {
		p := filepath.Join(dir, n)
		if fi, err := os.Lstat(w.p(p)); err == nil && fi.Mode()&os.ModeSymlink != 0 {
			n += "->" + w.readlink(p)
		}
		out = append(out, n)
	}
	return out
}

// A rename onto a symbolic link, or of one onto a name, replaces the name
// as rename(2) does: ln -sf, ln -sfn and rsync rename a new link onto the
// old one (the catalog refused it: EIO), and mv of a file onto a link left
// the link in the mount's listing beside the file.
func TestRenameReplacesLink(t *testing.T) {
	w := newWorld(t)
	w.mountRW()
	ctx := context.Background()
	if err := os.Mkdir(w.p("sl"), 0o755); err != nil {
		t.Fatal(err)
	}

	// ln -sfn: a link made under a temporary name, renamed onto the old.
	w.sh("ln -s t sl/l && ln -sfn t2 sl/l && ln -sfn t3 sl/l")
	if got := w.readlink("sl/l"); got != "t3" {
		t.Fatalf("readlink after ln -sfn: %q", got)
	}
	// rename(2) of a link onto a link: an atomic replace.
	os.Symlink("x", w.p("sl/s1"))
	os.Symlink("y", w.p("sl/s2"))
	// An open of the old link keeps its inode in the kernel, and so its
	// number, which is the name's, in the mount.
	old, err := unix.Open(w.p("sl/s1"), unix.O_PATH|unix.O_NOFOLLOW, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(old)
	if err := os.Rename(w.p("sl/s2"), w.p("sl/s1")); err != nil {
		t.Fatalf("a link renamed onto a link: %v", err)
	}
	var oldSt unix.Stat_t
	unix.Fstat(old, &oldSt)
	waitFor(func() bool { // until the name is looked up again
		var st unix.Stat_t
		err := unix.Lstat(w.p("sl/s1"), &st)
		return err != nil || st.Ino == oldSt.Ino
	})
	if got := w.readlink("sl/s1"); got != "y" {
		t.Fatalf("readlink of a link renamed onto another: %q", got)
	}
	if got := w.lsLong("sl"); !slices.Equal(got, []string{"l->t3", "s1->y"}) {
		t.Fatalf("ls sl = %v", got)
	}
	d, err := w.cat.Children(ctx, "sl/")
	if err != nil || len(d.Links) != 2 || d.Links[0].Key != "sl/l" || d.Links[0].Target != "t3" || d.Links[1].Target != "y" {
		t.Fatalf("catalog links %+v, %v", d.Links, err)
	}

	// A link renamed onto a file: the name is the link's; the file's
	// artifact goes to the trash, as an unlink puts it there.
	os.WriteFile(w.p("sl/f"), []byte("f1"), 0o644)
	os.Symlink("zz", w.p("sl/lk"))
	if err := os.Rename(w.p("sl/lk"), w.p("sl/f")); err != nil {
		t.Fatalf("a link renamed onto a file: %v", err)
	}
	if got := w.lsLong("sl"); !slices.Equal(got, []string{"f->zz", "l->t3", "s1->y"}) {
		t.Fatalf("ls sl after a link replaced a file = %v", got)
	}
	if vs, err := w.cat.Versions(ctx, "sl/f", true); err != nil || len(vs) != 1 || !vs[0].Trashed {
		t.Fatalf("the replaced file's versions: %+v, %v", vs, err)
	}

	// A file renamed onto a link (mv F L): one name, the file's.
	os.Symlink("a", w.p("sl/L"))
	os.WriteFile(w.p("sl/F"), []byte("data"), 0o644)
	if err := os.Rename(w.p("sl/F"), w.p("sl/L")); err != nil {
		t.Fatalf("a file renamed onto a link: %v", err)
	}
	if got := w.lsLong("sl"); !slices.Equal(got, []string{"L", "f->zz", "l->t3", "s1->y"}) {
		t.Fatalf("ls sl after a file replaced a link = %v", got)
	}
	if fi, err := os.Lstat(w.p("sl/L")); err != nil || !fi.Mode().IsRegular() || string(w.read("sl/L")) != "data" {
		t.Fatalf("sl/L: %v, %v", fi, err)
	}
	if err := os.Remove(w.p("sl/L")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(w.p("sl/L")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("sl/L after rm: %v", err)
	}
	if got := w.lsLong("sl"); !slices.Equal(got, []string{"f->zz", "l->t3", "s1->y"}) {
		t.Fatalf("ls sl after rm L = %v", got)
	}

	// A file still being written renamed onto a link: its commit takes
	// the name.
	f, err := os.Create(w.p("sl/P"))
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("open"))
	os.Symlink("b", w.p("sl/Q"))
	if err := os.Rename(w.p("sl/P"), w.p("sl/Q")); err != nil {
		t.Fatalf("an open file renamed onto a link: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close of the file renamed onto a link: %v", err)
	}
	if fi, err := os.Lstat(w.p("sl/Q")); err != nil || !fi.Mode().IsRegular() || string(w.read("sl/Q")) != "open" {
		t.Fatalf("sl/Q: %v, %v", fi, err)
	}

	// rsync replaces a changed link the same way.
	needTool(t, "rsync")
	src := filepath.Join(w.tmp, "rsrc")
	os.MkdirAll(src, 0o755)
	os.Symlink("one", filepath.Join(src, "link"))
	rsync := func() {
		t.Helper()
		if out, err := exec.Command("rsync", "-a", src+"/", w.p("r")+"/").CombinedOutput(); err != nil {
			t.Fatalf("rsync: %v\n%s", err, out)
		}
	}
	rsync()
	os.Remove(filepath.Join(src, "link"))
	os.Symlink("two", filepath.Join(src, "link"))
	rsync()
	if got := w.lsLong("r"); !slices.Equal(got, []string{"link->two"}) {
		t.Fatalf("ls r after rsync = %v", got)
	}
}

// posixACL is a system.posix_acl_access value for mode 0644, as cp -a
// sets it.
func posixACL() []byte {
	b := binary.LittleEndian.AppendUint32(nil, 2) // version
	for _, e := range []struct{ tag, perm uint16 }{{0x01, 6}, {0x04, 4}, {0x20, 4}} {
		b = binary.LittleEndian.AppendUint16(b, e.tag)
		b = binary.LittleEndian.AppendUint16(b, e.perm)
		b = binary.LittleEndian.AppendUint32(b, 0xffffffff)
	}
	return b
}

// Setting an extended attribute where the mount stores none is EOPNOTSUPP,
// which cp -a ignores, on folders as on files; EROFS stays for versions.
func TestXattrWritesUnsupported(t *testing.T) {
	w := newWorld(t)
	w.save("v.txt", []byte("v"))
	w.mountRW()
	os.MkdirAll(w.p("d/e"), 0o755)
	os.WriteFile(w.p("d/f"), []byte("f"), 0o644)
	for _, name := range []string{"", "d", "d/e", "d/f", "v.txt"} {
		p := w.p(name)
		if err := unix.Setxattr(p, "user.foo", []byte("bar"), 0); !errors.Is(err, unix.EOPNOTSUPP) {
			t.Errorf("setxattr user.foo %q: %v, want EOPNOTSUPP", name, err)
		}
		if err := unix.Setxattr(p, "system.posix_acl_access", posixACL(), 0); !errors.Is(err, unix.EOPNOTSUPP) {
			t.Errorf("setxattr system.posix_acl_access %q: %v, want EOPNOTSUPP", name, err)
		}
		if err := unix.Removexattr(p, "user.foo"); !errors.Is(err, unix.EOPNOTSUPP) {
			t.Errorf("removexattr %q: %v, want EOPNOTSUPP", name, err)
		}
	}
	if err := unix.Setxattr(w.p("v.txt@v1"), "user.foo", []byte("bar"), 0); !errors.Is(err, unix.EROFS) {
		t.Errorf("setxattr of a version: %v, want EROFS", err)
	}

	src := filepath.Join(w.tmp, "tree")
	os.MkdirAll(filepath.Join(src, "a", "b"), 0o750)
	os.WriteFile(filepath.Join(src, "a", "b", "x.txt"), []byte("x"), 0o640)
	os.WriteFile(filepath.Join(src, "top.txt"), []byte("t"), 0o644)
	for _, args := range [][]string{{"-a", src, w.p("ca")}, {"-rp", src, w.p("crp")}} {
		if out, err := exec.Command("cp", args...).CombinedOutput(); err != nil {
			t.Errorf("cp %v: %v\n%s", args[0], err, out)
		}
	}
	if got := string(w.read("ca/a/b/x.txt")) + string(w.read("crp/top.txt")); got != "xt" {
		t.Fatalf("copied: %q", got)
	}
}

// Epoch 0 is a time like any other (touch -d @0, tar of a file from a
// reproducible build): not "no time".
func TestMtimeEpochZero(t *testing.T) {
	w := newWorld(t)
	w.mountRW()
	epoch := time.Unix(0, 0)
	os.WriteFile(w.p("z0"), []byte("a"), 0o644)
	if err := os.Chtimes(w.p("z0"), epoch, epoch); err != nil {
		t.Fatal(err)
	}
	w.sh("echo b > z1 && touch -d @0 z1 && touch -d @0 new0")
	check := func(when string) {
		t.Helper()
		for _, name := range []string{"z0", "z1", "new0"} {
			fi, err := os.Stat(w.p(name))
			if err != nil || fi.ModTime().Unix() != 0 {
				t.Errorf("%s: mtime of %s %v (%d), %v; want 0", when, name, fi.ModTime(), fi.ModTime().Unix(), err)
			}
			var meta struct{ Mtime time.Time }
			if err := json.Unmarshal(w.read(name+".meta"), &meta); err != nil || !meta.Mtime.Equal(epoch) {
				t.Errorf("%s: %s.meta mtime %v, %v", when, name, meta.Mtime, err)
			}
		}
		if fi, err := os.Stat(w.p("z0@v1")); err != nil || fi.ModTime().Unix() != 0 {
			t.Errorf("%s: mtime of z0@v1 %v, %v", when, fi.ModTime(), err)
		}
	}
	check("mounted")
	w.mount(lfs.MountOptions{}) // a fresh mount of the catalog
	check("remounted")
}

// A file's mode bits are metadata, 000 as any other (tar makes its
// placeholders so; root reads them still).
func TestModeZeroKept(t *testing.T) {
	w := newWorld(t)
	w.mountRW()
	old := unix.Umask(0)
	defer unix.Umask(old)
	modes := []uint32{0o000, 0o600, 0o755, 0o444, 0o644}
	for _, mode := range modes {
		p := w.p("m" + itoa(mode))
		fd, err := unix.Open(p, unix.O_CREAT|unix.O_WRONLY|unix.O_EXCL, mode)
		if err != nil {
			t.Fatalf("create mode %o: %v", mode, err)
		}
		unix.Write(fd, []byte("x"))
		if err := unix.Close(fd); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(w.p("c"), []byte("c"), 0o644)
	if err := os.Chmod(w.p("c"), 0); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		for _, mode := range modes {
			name := "m" + itoa(mode)
			if fi, err := os.Stat(w.p(name)); err != nil || uint32(fi.Mode().Perm()) != mode {
				t.Errorf("%s: %s: %v, %v; want %o", when, name, fi.Mode(), err, mode)
			}
		}
		if fi, err := os.Stat(w.p("c")); err != nil || fi.Mode().Perm() != 0 {
			t.Errorf("%s: c after chmod 0: %v, %v", when, fi.Mode(), err)
		}
		if got := string(w.read("m000")); got != "y" {
			t.Errorf("%s: m000 reads %q", when, got)
		}
	}
	// A new version of a 000 file keeps its mode.
	if err := os.WriteFile(w.p("m000"), []byte("y"), 0o644); err != nil {
		t.Fatal(err)
	}
	if vs := w.versions("m000"); len(vs) != 2 {
		t.Fatalf("m000 has %d versions, want 2", len(vs))
	}
	check("mounted")
	w.mount(lfs.MountOptions{}) // a fresh mount of the catalog
	check("remounted")
}

func itoa(mode uint32) string { return fmt.Sprintf("%03o", mode) }

// A program that maps a file it has just written (numpy's memmap after a
// save): an open between close(2) and the RELEASE that follows it found
// the writer's hold and was served past the page cache, where mmap fails
// with ENODEV. The mapping is made by another process: a page fault on
// the mount from the test's own would stop its FUSE server with it.
func TestMapRightAfterWrite(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("no python3")
	}
	w := newWorld(t)
	w.mountRW()
	w.sh(`mkdir mm && python3 -c '
import mmap
for i in range(60):
    want = bytes([i]) * 100000
    with open("mm/arr.npy", "wb") as f:
        f.write(want)
    with open("mm/arr.npy", "rb") as f:
        m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
        if m[:] != want:
            raise SystemExit("round %d: the mapping holds other bytes" % i)
        m.close()
'`)
}

// chmod and touch of a latest file change its version's mode and mtime in
// place; the version's own name shows them at once (it was cached for an
// hour: ./script@v1 stayed without its x bits after chmod +x).
func TestVersionNameFollowsAttrs(t *testing.T) {
	w := newWorld(t)
	w.mountRW()
	if err := os.WriteFile(w.p("sx"), []byte("#!/bin/sh\necho ran\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w.eventually("sx", 1)
	st := func() (os.FileMode, int64) {
		fi, err := os.Stat(w.p("sx@v1"))
		if err != nil {
			t.Fatal(err)
		}
		return fi.Mode().Perm(), fi.ModTime().Unix()
	}
	if mode, _ := st(); mode != 0o444 {
		t.Fatalf("sx@v1 before chmod: %v", mode)
	}
	if err := os.Chmod(w.p("sx"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(w.p("sx"), time.Unix(777, 0), time.Unix(777, 0)); err != nil {
		t.Fatal(err)
	}
	var mode os.FileMode
	var mtime int64
	if !waitFor(func() bool { mode, mtime = st(); return mode == 0o555 && mtime == 777 }) {
		t.Fatalf("sx@v1 after chmod 755 and touch -d @777: %v, mtime %d", mode, mtime)
	}
}

// A reader open on a latest path reads what is committed to it next, as a
// reader of a plain file does: tail -f of a log that commands append to
// shows their lines (it saw the size grow and read nothing), and a mapping
// shows the new version whole, not pages of both. name@vN is the
// snapshot.
func TestReaderFollowsNewVersions(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("no python3")
	}
	w := newWorld(t)
	w.mountRW()
	w.sh(`mkdir tf && echo start > tf/log && python3 -c '
import mmap, os, time
def wait(cond, what):
    for _ in range(100):
        if cond():
            return
        time.sleep(0.02)
    raise SystemExit(what)
r = open("tf/log", "rb")
assert r.read() == b"start\n"
for i in range(5):
    with open("tf/log", "ab") as a:
        a.write(b"line %d\n" % i)
def grew():
    os.fstat(r.fileno())
    return r.read() != b""
wait(lambda: os.fstat(r.fileno()).st_size > 6, "the size of the log did not grow")
got = r.read()
if got != b"".join(b"line %d\n" % i for i in range(5)):
    raise SystemExit("tail read %r after the appends" % got)
N = 100000
open("tf/m", "wb").write(b"A" * N)
time.sleep(0.2)
f = open("tf/m", "rb")
m = mmap.mmap(f.fileno(), N, prot=mmap.PROT_READ)
assert m[:] == b"A" * N
open("tf/m", "wb").write(b"B" * N)
wait(lambda: m[:] == b"B" * N, "the mapping shows %d B and %d A" % (m[:].count(b"B"), m[:].count(b"A")))
if open("tf/m@v1", "rb").read() != b"A" * N:
    raise SystemExit("m@v1 is not version 1")
'`)
}

// A file held open keeps its bytes once its name goes to another file, as
// an inode does: removed and made anew, or replaced by a rename (a save by
// temporary file). Only new versions of the file itself reach its readers.
func TestHeldFileOutlivesItsName(t *testing.T) {
	w := newWorld(t)
	w.mountRW()
	w.sh(`mkdir hf && seq 1 100000 > hf/v.txt && exec 9<hf/v.txt && rm hf/v.txt && echo hello > hf/v.txt &&
n=$(wc -c <&9) && [ "$n" = 588895 ] || { echo "removed and made anew: the open file reads $n bytes, want 588895"; exit 1; }`)
	w.sh(`seq 1 100000 > hf/m.txt && echo new > hf/tmp && exec 9<hf/m.txt && head -c 1000 <&9 >/dev/null && mv hf/tmp hf/m.txt &&
n=$(wc -c <&9) && [ "$n" = 587895 ] || { echo "replaced by a rename: the open file reads $n more bytes, want 587895"; exit 1; }
[ "$(cat hf/m.txt)" = new ] || { echo "the path does not show the new file"; exit 1; }`)
}

// A folder's mtime comes from what is stored, never the mount's start, so
// it is the same after a remount; chmod and touch of a folder are kept (its
// catalog record), so rsync -a finds nothing to do at its second run and
// cp -a keeps folder modes.
func TestFolderTimesAndModesKept(t *testing.T) {
	w := newWorld(t)
	src := filepath.Join(w.tmp, "src", "x.txt")
	os.MkdirAll(filepath.Dir(src), 0o755)
	os.WriteFile(src, []byte("x"), 0o644)
	old := w.saveItem("deep/sub/x.txt", src).Mtime // deep/ holds only a folder, and has no record
	w.mountRW()
	w.sh("mkdir made made/empty kept && touch -d 2001-01-01T00:00:00Z kept && chmod 700 kept && chmod 750 deep")

	tree := filepath.Join(w.tmp, "tree")
	os.MkdirAll(filepath.Join(tree, "a", "b"), 0o755)
	os.WriteFile(filepath.Join(tree, "a", "b", "f.txt"), []byte("f"), 0o644)
	os.Chmod(filepath.Join(tree, "a"), 0o710)
	for _, d := range []string{"a/b", "a", ""} {
		at := time.Date(2005, 1, 1, 0, 0, 0, 0, time.UTC)
		os.Chtimes(filepath.Join(tree, d), at, at)
	}
	rsync := func() string {
		t.Helper()
		out, err := exec.Command("rsync", "-ai", tree+"/", w.p("r")+"/").CombinedOutput()
		if err != nil {
			t.Fatalf("rsync: %v\n%s", err, out)
		}
		return string(out)
	}
	rsync()
	if out := rsync(); out != "" {
		t.Errorf("the second rsync -a itemized:\n%s", out)
	}

	type want struct {
		name  string
		mtime time.Time // zero: any, but the same after a remount
		mode  os.FileMode
	}
	wants := []want{
		{"deep", old, 0o750},
		{"deep/sub", old, 0o755},
		{"kept", time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC), 0o700},
		{"made", time.Time{}, 0o755},
		{"made/empty", time.Time{}, 0o755},
		{"r", time.Date(2005, 1, 1, 0, 0, 0, 0, time.UTC), 0o755},
		{"r/a", time.Date(2005, 1, 1, 0, 0, 0, 0, time.UTC), 0o710},
		{"r/a/b", time.Date(2005, 1, 1, 0, 0, 0, 0, time.UTC), 0o755},
	}
	seen := map[string]time.Time{}
	check := func(when string) {
		t.Helper()
		for _, c := range wants {
			fi, err := os.Stat(w.p(c.name))
			if err != nil {
				t.Errorf("%s: %v", when, err)
				continue
			}
			if fi.Mode().Perm() != c.mode {
				t.Errorf("%s: %s has mode %v, want %v", when, c.name, fi.Mode().Perm(), c.mode)
			}
			if !c.mtime.IsZero() && !fi.ModTime().Equal(c.mtime) {
				t.Errorf("%s: %s has mtime %v, want %v", when, c.name, fi.ModTime().UTC(), c.mtime)
			}
			if s, ok := seen[c.name]; ok && !s.Equal(fi.ModTime()) {
				t.Errorf("%s: %s has mtime %v, was %v before", when, c.name, fi.ModTime().UTC(), s.UTC())
			}
			seen[c.name] = fi.ModTime()
		}
	}
	check("mounted")
	time.Sleep(20 * time.Millisecond) // a remount's start differs from the first's
	w.mount(lfs.MountOptions{})       // a fresh mount of the catalog
	check("remounted")
}

// user.lamina.* are derived, never stored: cp -a out of the mount copies
// them onto local files, and rsync -aX of those (or of files without
// them, onto mount files that have them) back into the mount exits 0;
// setting one changes nothing a read shows.
func TestLaminaXattrsFromCopies(t *testing.T) {
	w := newWorld(t)
	w.save("d/a.txt", []byte("a"))
	w.mountRW()
	local := filepath.Join(w.tmp, "local")
	if out, err := exec.Command("cp", "-a", w.p("d"), local).CombinedOutput(); err != nil {
		t.Fatalf("cp -a out: %v\n%s", err, out)
	}
	if v, err := unix.Getxattr(filepath.Join(local, "a.txt"), "user.lamina.uid", make([]byte, 64)); err != nil || v != 20 {
		t.Fatalf("the copy has no user.lamina.uid (%d, %v): the test needs cp -a to copy it", v, err)
	}
	os.WriteFile(filepath.Join(local, "a.txt"), []byte("a2"), 0o644) // keeps its xattrs
	os.WriteFile(filepath.Join(local, "b.txt"), []byte("b"), 0o644)
	for run := 1; run <= 2; run++ {
		if out, err := exec.Command("rsync", "-aX", local+"/", w.p("d")+"/").CombinedOutput(); err != nil {
			t.Fatalf("rsync -aX run %d: %v\n%s", run, err, out)
		}
	}
	vs := w.versions("d/a.txt")
	if len(vs) != 2 || string(w.read("d/a.txt")) != "a2" {
		t.Fatalf("d/a.txt: %d versions, %q", len(vs), w.read("d/a.txt"))
	}
	get := func(name, attr string) string {
		t.Helper()
		b := make([]byte, 256)
		n, err := unix.Getxattr(w.p(name), attr, b)
		if err != nil {
			t.Fatalf("getxattr %s %s: %v", name, attr, err)
		}
		return string(b[:n])
	}
	if got := get("d/a.txt", "user.lamina.uid"); got != vs[1].UID {
		t.Errorf("user.lamina.uid = %q, want the new version's %q", got, vs[1].UID)
	}
	if err := unix.Setxattr(w.p("d/a.txt"), "user.lamina.uid", []byte("a lie"), 0); err != nil {
		t.Errorf("setxattr user.lamina.uid: %v, want it accepted", err)
	}
	if err := unix.Removexattr(w.p("d/a.txt"), "user.lamina.key"); err != nil {
		t.Errorf("removexattr user.lamina.key: %v, want it accepted", err)
	}
	if got := get("d/a.txt", "user.lamina.uid"); got != vs[1].UID {
		t.Errorf("user.lamina.uid after a set = %q, want %q still", got, vs[1].UID)
	}
	if got := get("d/a.txt", "user.lamina.key"); got != "d/a.txt" {
		t.Errorf("user.lamina.key after a remove = %q", got)
	}
	if err := unix.Setxattr(w.p("d/a.txt@v1"), "user.lamina.uid", []byte(vs[0].UID), 0); !errors.Is(err, unix.EROFS) {
		t.Errorf("setxattr of a version: %v, want EROFS", err)
	}
}

// With NoXAttrs a listing of extended attributes is empty, not an error
// (getfattr -d exited 1, tar --xattrs warned per file); reading one is
// EOPNOTSUPP.
func TestNoXattrsListsNone(t *testing.T) {
	w := newWorld(t)
	w.save("d/a.txt", []byte("a"))
	w.mount(lfs.MountOptions{NoXAttrs: true})
	for _, name := range []string{"d/a.txt", "d", ""} {
		if n, err := unix.Listxattr(w.p(name), make([]byte, 256)); err != nil || n != 0 {
			t.Errorf("listxattr %q: %d, %v; want 0, nil", name, n, err)
		}
	}
	if out, err := exec.Command("getfattr", "-d", w.p("d/a.txt")).CombinedOutput(); err != nil {
		t.Errorf("getfattr -d: %v\n%s", err, out)
	}
	if _, err := unix.Getxattr(w.p("d/a.txt"), "user.lamina.uid", make([]byte, 64)); !errors.Is(err, unix.EOPNOTSUPP) {
		t.Errorf("getxattr with NoXAttrs: %v, want EOPNOTSUPP", err)
	}
}

// Listings with ShowVersions and ShowMeta leave out generated names over
// 255 bytes (statfs says 255; cp -a out failed "File name too long").
func TestShownNamesFitNameMax(t *testing.T) {
	w := newWorld(t)
	long := strings.Repeat("n", 250) + ".csv" // 254 bytes: @v1 makes 257
	w.save("d/"+long, []byte("a"))
	w.save("d/short.csv", []byte("b"))
	w.mount(lfs.MountOptions{Options: lfs.Options{ShowVersions: true, ShowMeta: true}})
	got := w.ls("d")
	for _, name := range got {
		if len(name) > 255 {
			t.Errorf("listed a %d-byte name %.20q…", len(name), name)
		}
	}
	want := []string{long, "short.csv", "short.csv.meta", "short.csv@v1", "short.csv@v1.meta"}
	if !slices.Equal(got, want) {
		t.Errorf("ls d = %d names, want %d", len(got), len(want))
	}
	if out, err := exec.Command("cp", "-a", w.p("d"), filepath.Join(w.tmp, "out")).CombinedOutput(); err != nil {
		t.Errorf("cp -a out: %v\n%s", err, out)
	}
}

// TestMkdirThenChdir: a process that makes a folder and goes into it at
// once (git init NEW) has a working directory: the mount's notification
// about the new folder unhashed its entry, and getcwd() failed with
// ENOENT for that process for good (git: "unable to get current working
// directory", 4 runs in 5).
func TestMkdirThenChdir(t *testing.T) {
	w := newWorld(t)
	w.mountRW()
	script := filepath.Join(w.tmp, "getcwd.py")
	os.WriteFile(script, []byte(`
import os, sys
fails = 0
for i in range(60):
    d = os.path.join(sys.argv[1], 'w%d' % i)
    os.mkdir(d); os.chdir(d)
    try: os.getcwd()
    except OSError: fails += 1
    os.chdir('/')
if fails:
    sys.exit('getcwd failed %d of 60 times right after mkdir and chdir' % fails)
`), 0o644)
	os.MkdirAll(w.p("g"), 0o755)
	w.sh("python3 " + script + " " + w.p("g"))
}

// TestRenameKeyToScratchOpens: after `mv f f~` (vim's backup, mv -b) f~
// opens at once and keeps opening. The kernel kept the renamed entry on
// the key's retired inode, and f~ answered ENOENT until its folder was
// listed again (about half the runs).
func TestRenameKeyToScratchOpens(t *testing.T) {
	w := newWorld(t)
	w.mountRW()
	os.MkdirAll(w.p("bk"), 0o755)
	script := filepath.Join(w.tmp, "backup.py")
	os.WriteFile(script, []byte(`
import os, sys, time
os.chdir(sys.argv[1])
bad = []
for i in range(8):
    open('m%d' % i, 'wb').write(b'M%d' % i)
    os.rename('m%d' % i, 'm%d~' % i)
    try:
        if open('m%d~' % i, 'rb').read() != b'M%d' % i: bad.append((i, 'other bytes'))
    except OSError as e:
        bad.append((i, e.strerror))
if bad:
    sys.exit('m~ after rename(m, m~): %s' % bad)
`), 0o644)
	w.sh("python3 " + script + " " + w.p("bk"))
}

// `cat f~` right after `mv f f~`, f written anew each time, reads f's bytes:
// the kernel kept the renamed entry on the key's retired inode until the
// rename's notification dropped it, a moment later, and the open failed
// with ENOENT (a few % of the runs) or read an older save.
func TestRenameKeyToScratchReadsAtOnce(t *testing.T) {
	w := newWorld(t)
	w.mountRW()
	os.MkdirAll(w.p("r"), 0o755)
	f, bak := w.p("r/f"), w.p("r/f~")
	for i := range 200 {
		want := fmt.Sprintf("content %d\n", i)
		if err := os.WriteFile(f, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(f, bak); err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(bak); err != nil || fi.Size() != int64(len(want)) {
			t.Fatalf("run %d: stat f~ right after mv f f~: %v, %v; want size %d", i, fi, err, len(want))
		}
		if b, err := os.ReadFile(bak); err != nil || string(b) != want {
			t.Fatalf("run %d: f~ right after mv f f~: %q, %v; want %q", i, b, err, want)
		}
		if err := os.Remove(bak); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRenameKeyToScratchSetattrAtOnce: truncate(2), chmod(2) and
// utimes(2) of f~ right after `mv f f~` change the scratch file. They
// reached the key's inode the kernel moved to f~ (as open and stat did:
// TestRenameKeyToScratchReadsAtOnce), gone, and failed with ENOENT.
func TestRenameKeyToScratchSetattrAtOnce(t *testing.T) {
	w := newWorld(t)
	w.mountRW()
	os.MkdirAll(w.p("r"), 0o755)
	f, bak := w.p("r/f"), w.p("r/f~")
	when := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := range 50 {
		if err := os.WriteFile(f, []byte(fmt.Sprintf("content %d\n", i)), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(f, bak); err != nil {
			t.Fatal(err)
		}
		var err error
		switch i % 3 {
		case 0:
			err = os.Truncate(bak, 3)
		case 1:
			err = os.Chmod(bak, 0o600)
		case 2:
			err = os.Chtimes(bak, when, when)
		}
		if err != nil {
			t.Fatalf("run %d: right after mv f f~: %v", i, err)
		}
		fi, err := os.Stat(bak)
		switch {
		case err != nil:
			t.Fatal(err)
		case i%3 == 0 && fi.Size() != 3:
			t.Fatalf("run %d: f~ truncated to 3 has size %d", i, fi.Size())
		case i%3 == 1 && fi.Mode().Perm() != 0o600:
			t.Fatalf("run %d: f~ chmod 600 has mode %v", i, fi.Mode())
		case i%3 == 2 && !fi.ModTime().Equal(when):
			t.Fatalf("run %d: f~ touched to %v has mtime %v", i, when, fi.ModTime())
		}
		if err := os.Remove(bak); err != nil {
			t.Fatal(err)
		}
	}
}

// A reader that opened f before `mv f f~` reads f's bytes through it: its
// inode, whose name shows nothing since, showed the size of the node's
// first entry (0, from the create of f), and the reader read nothing.
func TestReaderOfKeyRenamedToScratchReads(t *testing.T) {
	w := newWorld(t)
	w.mountRW()
	os.MkdirAll(w.p("r"), 0o755)
	for i := range 10 {
		want := fmt.Sprintf("held bytes %d\n", i)
		if err := os.WriteFile(w.p("r/h"), []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		h, err := os.Open(w.p("r/h"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(w.p("r/h"), w.p("r/h~")); err != nil {
			t.Fatal(err)
		}
		fi, err := h.Stat()
		b, rerr := io.ReadAll(h)
		h.Close()
		if err != nil || fi.Size() != int64(len(want)) || string(b) != want {
			t.Fatalf("run %d: the reader after mv h h~: fstat %v, %v; read %q, %v; want %q", i, fi, err, b, rerr, want)
		}
		if err := os.Remove(w.p("r/h~")); err != nil {
			t.Fatal(err)
		}
	}
}

// A key renamed to a scratch name right after its writer's close (`mv f
// f~` after a save) was refused with EBUSY while the kernel had not sent the
// close's RELEASE yet: the File, closed with its bytes committed, still
// counted as a writer's.
func TestRenameToScratchRightAfterClose(t *testing.T) {
	w := newWorld(t)
	w.mountRW()
	for i := 0; i < 30; i++ {
		name := fmt.Sprintf("c%d", i)
		if err := os.WriteFile(w.p(name), []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(w.p(name), w.p(name+"~")); err != nil {
			t.Fatalf("rename right after the close: %v", err)
		}
	}
	for i := 0; i < 30; i++ {
		name := fmt.Sprintf("c%d", i)
		if b, err := os.ReadFile(w.p(name + "~")); string(b) != name {
			t.Fatalf("%s~ = %q, %v", name, b, err)
		}
	}
}

// TestRenameHeldKeyToScratchRefused: a key a writer holds is not renamed
// to a scratch name (EBUSY): the scratch copy had the committed bytes only
// and the writer's were dropped, then and after. The writer's close then
// commits them to the key.
func TestRenameHeldKeyToScratchRefused(t *testing.T) {
	w := newWorld(t)
	w.mountRW()
	os.MkdirAll(w.p("hk"), 0o755)
	if err := os.WriteFile(w.p("hk/m"), []byte("M0"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(w.p("hk/m"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("+1")
	if err := os.Rename(w.p("hk/m"), w.p("hk/m~")); !errors.Is(err, syscall.EBUSY) {
		t.Errorf("rename of a held key to a scratch name: %v, want EBUSY", err)
	}
	f.WriteString("+2")
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got := string(w.read("hk/m")); got != "M0+1+2" {
		t.Fatalf("hk/m after its writer closed: %q", got)
	}
}

// TestMkdirKeepsItsMode: mkdir(2)'s mode is the folder's (audit c5: every
// folder was 0755, so mkdtemp's 0700 folder was readable by all and tar
// -xp, which relies on mkdir's mode, lost a folder's 0700).
func TestMkdirKeepsItsMode(t *testing.T) {
	w := newWorld(t)
	w.mountRW()
	w.sh(`python3 -c 'import os; os.umask(0); os.mkdir("p700", 0o700); os.mkdir("p775", 0o775); os.mkdir("p755", 0o755)'`)
	for name, want := range map[string]os.FileMode{"p700": 0o700, "p775": 0o775, "p755": 0o755} {
		st, err := os.Stat(w.p(name))
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode().Perm(); got != want || !st.IsDir() {
			t.Errorf("%s: mode %v, want a folder of %v", name, st.Mode(), want)
		}
	}
}
