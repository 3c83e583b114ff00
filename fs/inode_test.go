package fs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	lfs "github.com/lamina-bio/lamina/fs"
	"golang.org/x/sys/unix"
)

// TestTarExtractsSymlinks: GNU tar extracts a symlink with an absolute or
// ".." target as a placeholder file first, notes its st_ino by fstat, and
// at the end replaces it with the link only if lstat still shows that
// inode. A file's inode changed when its first version was committed at
// close, so tar left every such link an empty file (exit 0).
func TestTarExtractsSymlinks(t *testing.T) {
	needTool(t, "tar")
	w := newWorld(t)
	w.mountRW()
	src := filepath.Join(w.tmp, "src")
	os.MkdirAll(src, 0o755)
	os.Symlink("/etc/hostname", filepath.Join(src, "abs"))
	os.Symlink("../up", filepath.Join(src, "up"))
	os.WriteFile(filepath.Join(src, "zz"), []byte("hi\n"), 0o644)
	w.sh("tar -C " + src + " -cf " + w.tmp + "/t.tar abs up zz && mkdir tx && tar -xf " + w.tmp + "/t.tar -C tx")
	for name, target := range map[string]string{"tx/abs": "/etc/hostname", "tx/up": "../up"} {
		got, err := os.Readlink(w.p(name))
		if err != nil || got != target {
			fi, _ := os.Lstat(w.p(name))
			t.Errorf("%s: readlink = %q, %v (mode %v); want a link to %s", name, got, err, fi.Mode(), target)
		}
	}
	if got := string(w.read("tx/zz")); got != "hi\n" {
		t.Errorf("tx/zz = %q", got)
	}
}

// TestLatestPathKeepsInode: a path's inode is its key's, the same before
// and after each commit of it (a new key's too, from its create on), while
// name@vN has an inode per version.
func TestLatestPathKeepsInode(t *testing.T) {
	w := newWorld(t)
	w.save("ki/old.txt", []byte("saved"))
	w.mountRW()
	for _, name := range []string{"ki/new.txt", "ki/old.txt"} {
		f, err := os.OpenFile(w.p(name), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := f.Stat()
		fdIno := fi.Sys().(*syscall.Stat_t).Ino
		f.WriteString("one")
		f.Close()
		if got := inoOf(t, w.p(name)); got != fdIno {
			t.Fatalf("%s after its commit shows inode %d; its open file had %d", name, got, fdIno)
		}
		w.sh("echo two > " + name)
		if got := inoOf(t, w.p(name)); got != fdIno {
			t.Fatalf("%s after another version shows inode %d, want %d", name, got, fdIno)
		}
		if got := string(w.read(name)); got != "two\n" {
			t.Fatalf("%s = %q", name, got)
		}
		vs := w.versions(name)
		if got, want := inoOf(t, w.p(name)), lfs.Ino("l", name); got != want {
			t.Fatalf("%s has inode %d, want its key's %d", name, got, want)
		}
		v1 := inoOf(t, w.p(name+"@v1"))
		if v1 == fdIno || v1 != lfs.Ino("v", vs[0].UID) {
			t.Fatalf("%s@v1 has inode %d (the path's: %d), want its version's", name, v1, fdIno)
		}
	}
}

// TestLatestInodeFollowsVersions: the kernel's cached pages of a latest
// path, one inode for every version, never show an older version once a
// newer one landed, to a new open or to a reader open before (it reads the
// new version, as a reader of a plain file reads what was written to it;
// name@vN is the snapshot).
func TestLatestInodeFollowsVersions(t *testing.T) {
	w := newWorld(t)
	one, two := bytes.Repeat([]byte("1"), 1<<20), bytes.Repeat([]byte("2"), 1<<20)
	w.save("fv/a.bin", one)
	w.mountRW()
	if got := w.read("fv/a.bin"); !bytes.Equal(got, one) {
		t.Fatal("first read")
	}
	old, err := os.Open(w.p("fv/a.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	buf := make([]byte, 4096)
	old.ReadAt(buf, 0)
	ino := inoOf(t, w.p("fv/a.bin"))
	w.save("fv/a.bin", two) // another writer: lamina save, another workstation
	w.mnt.Changed([]string{"fv/a.bin"})
	if got := inoOf(t, w.p("fv/a.bin")); got != ino {
		t.Fatalf("the path's inode moved from %d to %d", ino, got)
	}
	for i := range 3 {
		if _, err := old.ReadAt(buf, int64(i)*256<<10); err != nil || !bytes.Equal(buf, two[:len(buf)]) {
			t.Fatalf("the reader open before reads %q, %v; want version 2's", buf[:1], err)
		}
		if got := w.read("fv/a.bin"); !bytes.Equal(got, two) {
			t.Fatalf("read %d after version 2 landed: %d bytes, %d of them version 1's", i, len(got), bytes.Count(got, []byte("1")))
		}
	}
	old.Close()
	if got := w.read("fv/a.bin"); !bytes.Equal(got, two) {
		t.Fatal("read after the old reader closed")
	}
}

// TestRenamedAwayKeyNewFile: a file renamed away while open keeps its
// node, which has its old key's inode number; a file that comes to the old
// key is another inode in the kernel (with the key's st_ino), not a second
// name of the renamed one sharing its page cache and its path.
func TestRenamedAwayKeyNewFile(t *testing.T) {
	w := newWorld(t)
	w.mountRW()
	os.MkdirAll(w.p("ra"), 0o755)
	old, err := os.Create(w.p("ra/a.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	old.WriteString("old")
	old.Sync()
	buf := make([]byte, 3)
	old.ReadAt(buf, 0) // its pages in the kernel's cache
	if err := os.Rename(w.p("ra/a.txt"), w.p("ra/b.txt")); err != nil {
		t.Fatal(err)
	}
	// Another file renamed onto the old name: the kernel looks it up.
	if err := os.WriteFile(w.p("ra/c.txt"), []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(w.p("ra/c.txt"), w.p("ra/a.txt")); err != nil {
		t.Fatal(err)
	}
	w.mnt.Changed([]string{"ra/a.txt"}) // the lookup comes after the rename's notifications
	for name, want := range map[string]string{"ra/a.txt": "new", "ra/b.txt": "old"} {
		if got := string(w.read(name)); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if _, err := old.ReadAt(buf, 0); err != nil || string(buf) != "old" {
		t.Errorf("the renamed file, open, reads %q, %v; want \"old\"", buf, err)
	}
	old.WriteString("er")
	if err := old.Sync(); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"ra/a.txt": "new", "ra/b.txt": "older"} {
		if got := string(w.read(name)); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
}

// sidecar reads p as a sidecar, through the page cache or past it.
func sidecar(t *testing.T, p string, direct bool) map[string]any {
	t.Helper()
	var b []byte
	var err error
	if direct {
		var fd int
		if fd, err = unix.Open(p, unix.O_RDONLY|unix.O_DIRECT, 0); err == nil {
			// O_DIRECT wants an aligned buffer.
			buf := make([]byte, 1<<20)
			off := 4096 - int(uintptr(unsafe.Pointer(&buf[0]))%4096)
			var k int
			k, err = unix.Read(fd, buf[off:off+64<<10])
			b = buf[off : off+max(k, 0)]
			unix.Close(fd)
		}
	} else {
		b, err = os.ReadFile(p)
	}
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v\n%s", p, err, b)
	}
	return m
}

// TestSidecarFollowsAttrs: touch and chmod change a version's mtime and
// mode in place, and its sidecar with them, at once: both the bytes the
// mount renders (they came from the version the sidecar's inode was made
// with) and what the kernel caches of them. A new version shows in
// name.meta at once too (the kernel kept name.meta's entry an hour).
func TestSidecarFollowsAttrs(t *testing.T) {
	w := newWorld(t)
	w.mountRW()
	w.sh("echo z > fresh")
	if m := sidecar(t, w.p("fresh.meta"), false); m["mode"] != nil && m["mode"] != float64(0o644) {
		t.Fatalf("sidecar before: %v", m)
	}
	mt := time.Unix(1500000000, 0).UTC()
	w.sh("touch -d @1500000000 fresh && chmod 640 fresh")
	if fi, err := os.Stat(w.p("fresh.meta")); err != nil || !fi.ModTime().Equal(mt) {
		t.Errorf("stat fresh.meta: %v, %v; want mtime %v", fi.ModTime(), err, mt)
	}
	for _, direct := range []bool{false, true} {
		m := sidecar(t, w.p("fresh.meta"), direct)
		if m["mtime"] != mt.Format(time.RFC3339Nano) || m["mode"] != float64(0o640) {
			t.Errorf("direct=%v: sidecar after touch and chmod: mtime %v, mode %v; want %s, %o", direct, m["mtime"], m["mode"], mt.Format(time.RFC3339Nano), 0o640)
		}
	}
	// chmod 000: the record keeps catalog.ModeNone; the sidecar shows the
	// permission bits, 0, not that encoding (32768).
	w.sh("echo n > none && chmod 000 none")
	if m := sidecar(t, w.p("none.meta"), false); m["mode"] != float64(0) {
		t.Errorf("sidecar of a chmod 000 file: mode %v, want 0", m["mode"])
	}
	// Each round makes versions 2i+1 and 2i+2.
	cmd := exec.Command("sh", "-c", `cd "$1" && for i in 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15; do
		echo v1-$i > f; cat f.meta > /dev/null; echo v2-$i > f; grep '"version"' f.meta; done`, "sh", w.dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for i, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if want := fmt.Sprintf(`"version": %d,`, 2*i+2); strings.TrimSpace(line) != want {
			t.Errorf("round %d: f.meta shows %s, want %s", i, strings.TrimSpace(line), want)
		}
	}
}

// futimens is utimensat(fd, NULL, …): the kernel sends it as a SETATTR
// without the file handle.
func futimens(t *testing.T, f *os.File, mt time.Time) {
	t.Helper()
	ts := [2]unix.Timespec{unix.NsecToTimespec(mt.UnixNano()), unix.NsecToTimespec(mt.UnixNano())}
	if _, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, f.Fd(), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0); e != 0 {
		t.Fatal(e)
	}
}

// TestFutimensOfWriterKept: an mtime set through a writable descriptor
// after its last write (cp -p, tar, rsync onto an existing file) is the
// mtime of the version its close commits; it was set on the version
// before, and the commit took the time of the close.
func TestFutimensOfWriterKept(t *testing.T) {
	w := newWorld(t)
	w.save("ft/trunc.txt", []byte("saved"))
	w.save("ft/append.txt", []byte("saved"))
	w.mountRW()
	mt := time.Date(2020, 1, 2, 3, 4, 5, 123456789, time.UTC)
	for name, flags := range map[string]int{
		"ft/trunc.txt":  os.O_WRONLY | os.O_TRUNC,
		"ft/append.txt": os.O_WRONLY | os.O_APPEND,
		"ft/new.txt":    os.O_WRONLY | os.O_CREATE | os.O_EXCL,
	} {
		f, err := os.OpenFile(w.p(name), flags, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString("written")
		futimens(t, f, mt)
		if fi, err := f.Stat(); err != nil || !fi.ModTime().Equal(mt) {
			t.Errorf("%s: fstat before close: %v, %v", name, fi.ModTime(), err)
		}
		time.Sleep(20 * time.Millisecond)
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		vs := w.versions(name)
		if v := vs[len(vs)-1]; !v.Mtime.Equal(mt) || v.Size < 7 {
			t.Errorf("%s: the latest version (%d, %d bytes) has mtime %v, want %v", name, v.Version, v.Size, v.Mtime, mt)
		}
		if fi, err := os.Stat(w.p(name)); err != nil || !fi.ModTime().Equal(mt) {
			t.Errorf("%s: stat after close: %v, %v", name, fi.ModTime(), err)
		}
	}
	// cp -p onto an existing file.
	needTool(t, "cp")
	src := filepath.Join(w.tmp, "src.txt")
	os.WriteFile(src, []byte("from cp"), 0o644)
	os.Chtimes(src, mt, mt)
	w.sh("cp -p " + src + " ft/trunc.txt")
	v, err := w.cat.ByKey(context.Background(), "ft/trunc.txt", 0)
	if err != nil || !v.Mtime.Equal(mt) || v.Size != 7 {
		t.Errorf("cp -p: %+v, %v; want mtime %v", v, err, mt)
	}
}
