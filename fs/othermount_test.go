package fs_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	lfs "github.com/lamina-bio/lamina/fs"
)

// A lamina inode's number is a hash of its key: the same key has the same
// number on another mount (another workstation's, a second mount of the
// catalog). The /proc scanners of write.go and node.go matched the number
// alone, so a descriptor of the key on the other mount counted as one of
// this mount's: these tests hold one open in the test process, as the
// caller of every scan.

// twoMounts mounts two worlds, writes name with "one\n" on each and
// returns them and a writable descriptor of name on the second, after
// checking that name has the same inode number on both.
func twoMounts(t *testing.T, name string) (a, b *world, other *os.File) {
	t.Helper()
	a, b = newWorld(t), newWorld(t)
	a.mountRW()
	b.mountRW()
	for _, w := range []*world{a, b} {
		if err := os.WriteFile(w.p(name), []byte("one\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sameIno(t, a.p(name), b.p(name))
	other, err := os.OpenFile(b.p(name), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	return a, b, other
}

func sameIno(t *testing.T, p, q string) {
	t.Helper()
	var sp, sq syscall.Stat_t
	if err := syscall.Stat(p, &sp); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Stat(q, &sq); err != nil {
		t.Fatal(err)
	}
	if sp.Ino != sq.Ino {
		t.Fatalf("inode %d at %s and %d at %s: the test needs them equal", sp.Ino, p, sq.Ino, q)
	}
}

// holdElsewhere has a process hold a copy of f until the test ends: f's
// handle gets no RELEASE. Not a child of the test's: a close while a child
// holds a copy commits nothing (childHolds).
func holdElsewhere(t *testing.T, f *os.File) {
	t.Helper()
	holder := exec.Command("sh", "-c", `sleep 600 >/dev/null 2>&1 & echo $!`)
	holder.ExtraFiles = []*os.File{f}
	out, err := holder.Output()
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("holder's pid %q: %v", out, err)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
}

// holdsInode at a close of a truncated file with nothing written: the
// empty version comes at the close unless the closing process holds
// another writable descriptor of the inode on this mount. The other
// mount's deferred it to RELEASE, after close(2) returned (here never: a
// process holds the handle).
func TestOtherMountsDescriptorDefersNoEmptyVersion(t *testing.T) {
	a, _, _ := twoMounts(t, "x.txt")
	f, err := os.OpenFile(a.p("x.txt"), os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	holdElsewhere(t, f)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if vs := a.versions("x.txt"); len(vs) != 2 || vs[1].Size != 0 {
		t.Errorf("x.txt: versions of %v bytes when `: > x.txt` closed, want [4 0]: the other mount's descriptor was taken for this one's", sizes(vs))
	}
}

// holdsInode in reopenHeld: a handle closed, not released, counts open
// again only while its opener holds a writable descriptor of the inode
// on this mount. The other mount's counted it open, and a truncate's
// close then committed nothing.
func TestOtherMountsDescriptorReopensNoHandle(t *testing.T) {
	a, _, _ := twoMounts(t, "x.txt")
	f, err := os.OpenFile(a.p("x.txt"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	holdElsewhere(t, f)
	if _, err := f.WriteString("two\n"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil { // commits; RELEASE waits for the child
		t.Fatal(err)
	}
	g, err := os.OpenFile(a.p("x.txt"), os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if vs := a.versions("x.txt"); len(vs) != 3 || vs[2].Size != 0 {
		t.Errorf("x.txt: versions of %v bytes when the truncate closed, want [4 4 0]: the other mount's descriptor kept the first handle open", sizes(vs))
	}
}

// keptOpen (holdsInode, then heldByAnyProcess): a key whose closed
// handle no descriptor holds any longer (a shared mapping keeps it from
// its RELEASE) is renamed to a scratch name. The other mount's descriptor
// of the key, in the opener's process or another, made it EBUSY.
func TestOtherMountsDescriptorHoldsNoKey(t *testing.T) {
	for _, inChild := range []bool{false, true} {
		a, _, other := twoMounts(t, "x.txt")
		if inChild {
			holdElsewhere(t, other)
			other.Close()
		}
		f, err := os.OpenFile(a.p("x.txt"), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString("two\n"); err != nil {
			t.Fatal(err)
		}
		mem, err := syscall.Mmap(int(f.Fd()), 0, 4, syscall.PROT_READ, syscall.MAP_SHARED)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil { // a FLUSH; the mapping keeps the RELEASE back
			t.Fatal(err)
		}
		if err := os.Rename(a.p("x.txt"), a.p("x.txt~")); err != nil {
			t.Errorf("rename of a key no descriptor of this mount holds to a scratch name (the other mount's held by a child: %v): %v", inChild, err)
		} else if got := string(a.read("x.txt~")); got != "two\n" {
			t.Errorf("x.txt~ = %q", got)
		}
		syscall.Munmap(mem)
	}
}

// opensInode: a stat of a removed key's version is answered only for a
// caller holding a descriptor of it on this mount. One on another mount of
// the catalog (whose versions have the same inode numbers) gave the
// attributes of what rm removed.
func TestOtherMountsDescriptorKeepsNoRemovedVersion(t *testing.T) {
	a := newWorld(t)
	const keys = 4
	for i := range keys {
		k := fmt.Sprintf("d/k%d.txt", i)
		a.save(k, []byte("one"))
		a.save(k, []byte("two"))
	}
	a.mountRW()
	b := &world{t: t, in: a.in, cat: a.cat, tmp: t.TempDir()} // a second mount of a's catalog
	b.mount(lfs.MountOptions{})
	for i := range keys {
		base := fmt.Sprintf("d/k%d.txt", i)
		held := []string{base + "@v1.meta", base + "@v1"}
		var others []*os.File
		for _, n := range held {
			sameIno(t, a.p(n), b.p(n))
			o, err := os.Open(b.p(n))
			if err != nil {
				t.Fatal(err)
			}
			others = append(others, o)
		}
		h := a.holdOpen(held...) // go-fuse passes its handle with every GETATTR
		if err := os.Remove(a.p(base)); err != nil {
			t.Fatal(err)
		}
		for _, n := range held {
			if _, err := os.Stat(a.p(n)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("stat %s right after rm, held open on another mount: %v; want ENOENT", n, err)
			}
		}
		h.finish()
		for _, o := range others {
			o.Close()
		}
	}
}
