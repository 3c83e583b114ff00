package fs_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/catalog"
	lfs "github.com/lamina-bio/lamina/fs"
	"golang.org/x/sys/unix"
)

// countingCatalog counts the per-version reads (ByKey, ByUID) of a real
// catalog.
type countingCatalog struct {
	*catalog.Bolt
	byKey atomic.Int64
}

func (c *countingCatalog) ByKey(ctx context.Context, key string, n int) (catalog.Version, error) {
	c.byKey.Add(1)
	return c.Bolt.ByKey(ctx, key, n)
}

func (c *countingCatalog) ByUID(ctx context.Context, uid string) (catalog.Version, error) {
	c.byKey.Add(1)
	return c.Bolt.ByUID(ctx, uid)
}

// A listing keeps a compact record per name, not the whole version: the
// heap it holds per listed and looked-up name stays small (issue 3: daemon
// memory with 100,000 artifacts), and what it does not keep is read from
// the catalog only when asked for (digest, sidecar).
func TestListingIsCompact(t *testing.T) {
	const n = 10_000
	w := newWorld(t)
	now := time.Now()
	var nvs []catalog.NewVersion
	for i := 0; i < n; i++ {
		nvs = append(nvs, catalog.NewVersion{Key: fmt.Sprintf("many/f%05d.csv", i), Kind: "file", Size: int64(i),
			CreatedBy: "tester", Description: "a description long enough to cost memory if it were kept",
			CreatedAt: now, Mtime: now.Add(time.Duration(i) * time.Second)})
	}
	if _, err := w.cat.Save(context.Background(), nvs); err != nil {
		t.Fatal(err)
	}
	cat := &countingCatalog{Bolt: w.cat}
	ctx := context.Background()

	before := liveHeap()
	ns := lfs.NewNamespace(cat, w.in.Store, lfs.Options{})
	dir, err := ns.Lookup(ctx, ns.Root(), "many")
	if err != nil {
		t.Fatal(err)
	}
	es, err := ns.ReadDir(ctx, dir)
	if err != nil || len(es) != n {
		t.Fatalf("listed %d, %v", len(es), err)
	}
	for _, e := range es {
		got, err := ns.Lookup(ctx, dir, e.Name)
		if err != nil || got.Ino != e.Ino || got.Size != e.Size || !got.Mtime.Equal(e.Mtime) {
			t.Fatalf("lookup %s = %+v, %v; listed %+v", e.Name, got, err, e)
		}
	}
	perName := float64(liveHeap()-before) / n
	runtime.KeepAlive(ns)
	// A whole catalog.Version per name (and a map entry) held ~630 bytes.
	if perName > 200 {
		t.Errorf("the listing holds %.0f bytes a name; want < 200", perName)
	}
	if c := cat.byKey.Load(); c != 0 {
		t.Errorf("listing and stat of %d names read %d versions one by one; want none", n, c)
	}
	t.Logf("%.0f bytes a name", perName)

	// What the listing does not keep comes from the catalog, right.
	want, err := w.cat.ByKey(ctx, "many/f04242.csv", 0)
	if err != nil {
		t.Fatal(err)
	}
	e, err := ns.Lookup(ctx, dir, "f04242.csv")
	if err != nil {
		t.Fatal(err)
	}
	full, err := ns.Full(ctx, e)
	if err != nil || full.UID != want.UID || full.Digest != want.Digest || full.Description != want.Description {
		t.Fatalf("Full = %+v, %v; want %+v", full, err, want)
	}
	for _, name := range []string{"f04242.csv.meta", "f04242.csv@v1.meta"} {
		me, err := ns.Lookup(ctx, dir, name)
		if err != nil || me.V == nil || me.V.UID != want.UID || me.V.Description != want.Description {
			t.Fatalf("%s: %+v, %v", name, me, err)
		}
	}
	if v1, err := ns.Lookup(ctx, dir, "f04242.csv@v1"); err != nil || v1.Ino == e.Ino || v1.Size != want.Size {
		t.Fatalf("@v1 = %+v, %v", v1, err)
	}
}

// liveHeap is the heap in use after a collection.
func liveHeap() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// Through a mount, a name stat'ed from a listing still shows its whole
// version where asked: xattrs (the digest), the sidecar, the content.
func TestListedNamesShowWholeVersions(t *testing.T) {
	w := newWorld(t)
	w.save("exp/a.csv", []byte("a,b\n1,2\n"))
	v2 := w.save("exp/a.csv", []byte("a,b\n3,4\n"))
	w.save("exp/b.csv", []byte("keeps exp/ there"))
	w.mount(lfs.MountOptions{})
	if got := w.ls("exp"); len(got) != 2 || got[0] != "a.csv" {
		t.Fatalf("ls = %q", got)
	}
	p := filepath.Join(w.dir, "exp/a.csv")
	buf := make([]byte, 256)
	for attr, want := range map[string]string{"user.lamina.digest": v2.Digest.String(), "user.lamina.version": "2",
		"user.lamina.uid": v2.UID, "user.lamina.key": "exp/a.csv"} {
		n, err := unix.Getxattr(p, attr, buf)
		if err != nil || string(buf[:n]) != want {
			t.Errorf("%s = %q, %v; want %q", attr, buf[:n], err, want)
		}
	}
	// ls -l asks every file for these; EOPNOTSUPP makes GNU ls stop asking.
	for _, path := range []string{p, filepath.Join(w.dir, "exp"), filepath.Join(w.dir, "exp/a.csv.meta")} {
		for _, attr := range []string{"system.posix_acl_access", "security.selinux"} {
			if _, err := unix.Getxattr(path, attr, buf); err != unix.EOPNOTSUPP {
				t.Errorf("%s of %s: %v, want EOPNOTSUPP", attr, path, err)
			}
		}
	}
	if _, err := unix.Getxattr(p, "user.other", buf); err != unix.ENODATA {
		t.Errorf("user.other: %v, want ENODATA", err)
	}
	var side struct {
		UID, Digest string
		Version     int
	}
	if err := json.Unmarshal(w.read("exp/a.csv.meta"), &side); err != nil || side.UID != v2.UID || side.Version != 2 ||
		side.Digest != v2.Digest.String() {
		t.Fatalf("sidecar %+v, %v", side, err)
	}
	if got := string(w.read("exp/a.csv")); got != "a,b\n3,4\n" {
		t.Fatalf("content %q", got)
	}
	if fi, err := os.Stat(p); err != nil || !fi.ModTime().Equal(v2.Mtime) || fi.Size() != v2.Size {
		t.Fatalf("stat %v, %v; want mtime %v size %d", fi, err, v2.Mtime, v2.Size)
	}
}

// heldCatalog holds its first listing of one folder after reading it from
// the catalog and before answering, until release is closed.
type heldCatalog struct {
	*catalog.Bolt
	prefix  string
	read    chan struct{} // closed once the held listing is read
	release chan struct{}
	once    sync.Once
}

func (c *heldCatalog) Children(ctx context.Context, prefix string) (catalog.Dir, error) {
	d, err := c.Bolt.Children(ctx, prefix)
	if prefix == c.prefix {
		c.once.Do(func() {
			close(c.read)
			<-c.release
		})
	}
	return d, err
}

// A listing read before a change and cached after it would hide what the
// change made until the next change (rsync -a renames .a.txt.XXXXXX onto
// a.txt while its other process looks up names in the same folder). The
// listing read across the change answers its lookup, but is not kept.
func TestListingReadAcrossChangeIsNotCached(t *testing.T) {
	w := newWorld(t)
	w.save("rs/.a.txt.Xy12Zw", []byte("A"))
	w.save("rs/sub/b.txt", []byte("B"))
	ctx := context.Background()
	cat := &heldCatalog{Bolt: w.cat, prefix: "rs/", read: make(chan struct{}), release: make(chan struct{})}
	ns := lfs.NewNamespace(cat, w.in.Store, lfs.Options{})
	rs, err := ns.Lookup(ctx, ns.Root(), "rs")
	if err != nil {
		t.Fatal(err)
	}
	looked := make(chan error, 1)
	go func() {
		_, err := ns.Lookup(ctx, rs, "sub")
		looked <- err
	}()
	<-cat.read
	if _, err := w.cat.Rename(ctx, "rs/.a.txt.Xy12Zw", "rs/a.txt"); err != nil {
		t.Fatal(err)
	}
	ns.Changed(ctx, []string{"rs/.a.txt.Xy12Zw", "rs/a.txt"})
	close(cat.release)
	if err := <-looked; err != nil {
		t.Fatalf("lookup across the change: %v", err)
	}
	if _, err := ns.Lookup(ctx, rs, "a.txt"); err != nil {
		t.Errorf("a.txt after the rename: %v (a listing read before it was cached)", err)
	}
	if e, err := ns.Lookup(ctx, rs, ".a.txt.Xy12Zw"); err == nil {
		t.Errorf("the renamed name still resolves: %+v", e)
	}
	es, err := ns.ReadDir(ctx, rs)
	if err != nil || len(es) != 2 || es[0].Name != "a.txt" || es[1].Name != "sub" {
		t.Errorf("ls rs = %+v, %v; want a.txt, sub", es, err)
	}
}

// A rename keeps an artifact's uid, and the kernel keeps the inode (and its
// Entry, made from a listing under the old name) at the new name until it
// looks the name up again (then it gets the new key's inode): what the
// listing did not keep is read by uid, not by the old key. rsync -a renames
// its .a.txt.XXXXXX onto a.txt and a read of a.txt failed with ENOENT
// (TestClients, under load: when the kernel had looked the temporary name
// up again after its commit).
func TestListedEntryAfterRename(t *testing.T) {
	w := newWorld(t)
	v := w.save("rs/.a.txt.Xy12Zw", []byte("A"))
	ctx := context.Background()
	ns := lfs.NewNamespace(w.cat, w.in.Store, lfs.Options{})
	rs, err := ns.Lookup(ctx, ns.Root(), "rs")
	if err != nil {
		t.Fatal(err)
	}
	tmp, err := ns.Lookup(ctx, rs, ".a.txt.Xy12Zw")
	if err != nil || tmp.V != nil {
		t.Fatalf("lookup = %+v, %v; want an entry from the listing", tmp, err)
	}
	if _, err := w.cat.Rename(ctx, "rs/.a.txt.Xy12Zw", "rs/a.txt"); err != nil {
		t.Fatal(err)
	}
	ns.Changed(ctx, []string{"rs/.a.txt.Xy12Zw", "rs/a.txt"})
	if a, err := ns.Lookup(ctx, rs, "a.txt"); err != nil || a.Ino != lfs.Ino("l", "rs/a.txt") || a.Size != 1 {
		t.Fatalf("a.txt = %+v, %v; want the renamed file at the key's inode", a, err)
	}
	full, err := ns.Full(ctx, tmp)
	if err != nil || full.UID != v.UID || full.Key != "rs/a.txt" {
		t.Fatalf("Full of the renamed entry = %+v, %v; want %s at rs/a.txt", full, err, v.UID)
	}
	if f, err := ns.FileOf(ctx, tmp); err != nil || f.Size != 1 {
		t.Fatalf("FileOf = %+v, %v", f, err)
	}
}

// Through a mount: a file stat'ed before a rename, of itself or of its
// folder, still opens and shows its xattrs at the new name.
func TestMountRenameOfListedName(t *testing.T) {
	w := newWorld(t)
	v := w.save("d/x.txt", []byte("x1"))
	w.save("keep.txt", []byte("k"))
	w.mountRW()
	for _, c := range []struct{ stat, from, to, read string }{
		{"d/x.txt", "d/x.txt", "d/y.txt", "d/y.txt"},
		{"d/y.txt", "d", "e", "e/y.txt"},
	} {
		if _, err := os.Stat(filepath.Join(w.dir, c.stat)); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(w.dir, c.from), filepath.Join(w.dir, c.to)); err != nil {
			t.Fatal(err)
		}
		if got := string(w.read(c.read)); got != "x1" {
			t.Errorf("after mv %s %s: %s reads %q", c.from, c.to, c.read, got)
		}
		buf := make([]byte, 64)
		n, err := unix.Getxattr(filepath.Join(w.dir, c.read), "user.lamina.uid", buf)
		if err != nil || string(buf[:n]) != v.UID {
			t.Errorf("after mv %s %s: uid xattr %q, %v; want %s", c.from, c.to, buf[:n], err, v.UID)
		}
	}
}

// childrenCounting counts the folder listings read from a real catalog.
type childrenCounting struct {
	*catalog.Bolt
	mu    sync.Mutex
	reads map[string]int
}

func (c *childrenCounting) Children(ctx context.Context, prefix string) (catalog.Dir, error) {
	c.mu.Lock()
	c.reads[prefix]++
	c.mu.Unlock()
	return c.Bolt.Children(ctx, prefix)
}

func (c *childrenCounting) read(prefix string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reads[prefix]
}

// Listing a folder reads the next few folders beside it in the background,
// and using one of those moves the window on: a walk finds its folders
// read. No folder is read twice.
func TestListingReadsAhead(t *testing.T) {
	w := newWorld(t)
	now := time.Now()
	var nvs []catalog.NewVersion
	for d := range 12 {
		nvs = append(nvs, catalog.NewVersion{Key: fmt.Sprintf("top/d%02d/f.csv", d), Kind: "file", CreatedAt: now, Mtime: now})
	}
	if _, err := w.cat.Save(context.Background(), nvs); err != nil {
		t.Fatal(err)
	}
	cat := &childrenCounting{Bolt: w.cat, reads: map[string]int{}}
	ns := lfs.NewNamespace(cat, w.in.Store, lfs.Options{})
	ctx := context.Background()
	top, err := ns.Lookup(ctx, ns.Root(), "top")
	if err != nil {
		t.Fatal(err)
	}
	folder := func(d int) lfs.Entry {
		e, err := ns.Lookup(ctx, top, fmt.Sprintf("d%02d", d))
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	waitRead := func(d int) {
		t.Helper()
		p := fmt.Sprintf("top/d%02d/", d)
		for deadline := time.Now().Add(10 * time.Second); cat.read(p) == 0; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s was not read ahead", p)
			}
		}
	}
	if _, err := ns.Lookup(ctx, folder(0), "f.csv"); err != nil { // lists top/d00/
		t.Fatal(err)
	}
	for d := 1; d <= 4; d++ {
		waitRead(d)
	}
	if n := cat.read("top/d05/"); n != 0 {
		t.Fatalf("top/d05/ read %d times; the window is 4 folders", n)
	}
	for d := 1; d < 12; d++ { // the walk: each folder is there, the window moves
		if _, err := ns.Lookup(ctx, folder(d), "f.csv"); err != nil {
			t.Fatal(err)
		}
	}
	for d := range 12 {
		if n := cat.read(fmt.Sprintf("top/d%02d/", d)); n != 1 {
			t.Errorf("top/d%02d/ read %d times, want once", d, n)
		}
	}
}

// Listings leave files' attributes out until a walk is seen to stat what it
// lists (dirHandle.Lookup): `find -type f` of 100,000 artifacts made an
// inode on both sides of FUSE per file, most of its cold time. Types stay
// right, and a stat after a bare listing is one LOOKUP, after which
// listings carry attributes again (no LOOKUP per file for `ls -l`), until
// the window passes. The window is long here, then ended at once: with
// 1 s, a stat and the listing after it that must come within it did not
// on a loaded machine.
func TestListingsLeaveAttributesOutUntilStatted(t *testing.T) {
	t.Cleanup(lfs.SetAttrsWindow(time.Hour)) // first: restored after the unmount
	w := newWorld(t)
	now := time.Now()
	var nvs []catalog.NewVersion
	for _, d := range []string{"a", "b", "c"} {
		for i := 0; i < 20; i++ {
			nvs = append(nvs, catalog.NewVersion{Key: fmt.Sprintf("%s/f%02d.csv", d, i), Kind: "file", Size: int64(i), CreatedAt: now, Mtime: now})
		}
		nvs = append(nvs, catalog.NewVersion{Key: d + "/sub/x.csv", Kind: "file", CreatedAt: now, Mtime: now})
	}
	if _, err := w.cat.Save(context.Background(), nvs); err != nil {
		t.Fatal(err)
	}
	w.mount(lfs.MountOptions{})
	lookups := func() int64 { return w.mnt.Stats().Lookups }
	list := func(d string) {
		t.Helper()
		es, err := os.ReadDir(filepath.Join(w.dir, d))
		if err != nil || len(es) != 21 {
			t.Fatalf("ReadDir %s: %d entries, %v", d, len(es), err)
		}
		for _, e := range es {
			if want := e.Name() == "sub"; e.IsDir() != want || (!want && !e.Type().IsRegular()) {
				t.Fatalf("%s/%s: type %v", d, e.Name(), e.Type())
			}
		}
	}
	// stat reports how many LOOKUPs a stat of d/f05.csv sent, and checks
	// what it shows.
	stat := func(d string) int64 {
		t.Helper()
		n := lookups()
		fi, err := os.Stat(filepath.Join(w.dir, d, "f05.csv"))
		if err != nil || fi.Size() != 5 || !fi.Mode().IsRegular() {
			t.Fatalf("stat %s/f05.csv: %v %v", d, fi, err)
		}
		return lookups() - n
	}

	list("a")
	if n := stat("a"); n != 1 {
		t.Fatalf("a stat after a bare listing sent %d LOOKUPs, want 1", n)
	}
	// The stat showed a walk that stats: the next listing carries attributes.
	list("b")
	if n := stat("b"); n != 0 {
		t.Fatalf("a stat after a listing with attributes sent %d LOOKUPs, want 0", n)
	}
	// Entering a listed folder needs no LOOKUP either way.
	n := lookups()
	if _, err := os.ReadDir(filepath.Join(w.dir, "a", "sub")); err != nil {
		t.Fatal(err)
	}
	if d := lookups() - n; d != 0 {
		t.Fatalf("entering a listed folder sent %d LOOKUPs", d)
	}
	// Once the window passes, listings leave attributes out again.
	w.mnt.EndAttrsWindow()
	list("c")
	if n := stat("c"); n != 1 {
		t.Fatalf("a stat after the window sent %d LOOKUPs, want 1", n)
	}
}

// Listings hold "." and ".." as POSIX readdir does (`ls -a`), at the top
// and in folders, and nothing else changes for them.
func TestListingsHaveDots(t *testing.T) {
	w := newWorld(t)
	w.save("d/f.txt", []byte("x"))
	w.mount(lfs.MountOptions{})
	for _, dir := range []string{w.dir, filepath.Join(w.dir, "d")} {
		out, err := exec.Command("ls", "-a1", dir).Output()
		if err != nil {
			t.Fatal(err)
		}
		names := strings.Fields(string(out))
		if len(names) < 3 || names[0] != "." || names[1] != ".." {
			t.Errorf("ls -a %s = %q, want . and .. first", dir, names)
		}
	}
	if got := w.ls("d"); len(got) != 1 || got[0] != "f.txt" {
		t.Errorf("ls d = %q", got)
	}
}
