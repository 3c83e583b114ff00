package fs_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/catalog"
	lfs "github.com/lamina-bio/lamina/fs"
	"github.com/lamina-bio/lamina/instance"
	"github.com/lamina-bio/lamina/ref"
	"github.com/lamina-bio/lamina/storage"
	"golang.org/x/sys/unix"
)

// world is an instance with a mount of it.
type world struct {
	t   testing.TB
	in  *instance.Instance
	cat *catalog.Bolt
	mnt *lfs.Mount
	dir string // the mountpoint
	tmp string

	mountCat     lfs.Catalog // what mount serves if not nil, else cat
	mountContent lfs.Content // what mount reads content from if not nil, else in.Store
}

// waitFor polls cond until it holds or 30 s have passed, and reports
// whether it held: what a RELEASE, the notifier or a retry does comes a
// moment after the call that caused it, longer on a loaded machine (CI
// runs every package at once on 2 cores, with -race).
func waitFor(cond func() bool) bool {
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			return cond()
		}
	}
	return true
}

func needFUSE(t testing.TB) {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		if os.Getenv("LAMINA_SKIP_FUSE") == "1" {
			t.Skip("no /dev/fuse and LAMINA_SKIP_FUSE=1")
		}
		t.Fatal("no /dev/fuse: these tests need FUSE (set LAMINA_SKIP_FUSE=1 to skip them where FUSE cannot run)")
	}
}

func newWorld(t testing.TB) *world {
	t.Helper()
	needFUSE(t)
	tmp := t.TempDir()
	cat, err := catalog.OpenBolt(filepath.Join(tmp, "catalog.db"), catalog.BoltOptions{Hold: true})
	if err != nil {
		t.Fatal(err)
	}
	b, err := storage.CreateLocal(filepath.Join(tmp, "storage"))
	if err != nil {
		t.Fatal(err)
	}
	store, err := cache.NewStore(b, filepath.Join(tmp, "index.db"), cache.DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	s := instance.Settings{Name: "t", Storage: b.Root(), DataDir: filepath.Join(tmp, "data")}
	w := &world{t: t, in: instance.New(s, cat, b, store), cat: cat, tmp: tmp}
	t.Cleanup(func() { cat.Close() })
	return w
}

func (w *world) mount(o lfs.MountOptions) {
	w.t.Helper()
	w.dir = filepath.Join(w.tmp, fmt.Sprintf("mnt%d", time.Now().UnixNano()))
	os.Mkdir(w.dir, 0o755)
	var cat lfs.Catalog = w.cat
	if w.mountCat != nil {
		cat = w.mountCat
	}
	var content lfs.Content = w.in.Store
	if w.mountContent != nil {
		content = w.mountContent
	}
	m, err := lfs.New(w.dir, cat, content, o)
	if err != nil {
		w.t.Fatal(err)
	}
	w.mnt = m
	dir := w.dir
	var st unix.Stat_t
	unix.Stat(dir, &st) // the mount's device: its connection's name
	w.t.Cleanup(func() {
		// A test that failed may leave files of the mount open; their last
		// close at exit would then send a FLUSH to this very process, which
		// no longer serves it, and the process would hang instead of
		// reporting the failure. Aborting the connection makes such
		// closes fail at once.
		if w.t.Failed() {
			abortFUSE(st.Dev)
			lfs.ForceUnmount(dir)
			return
		}
		for i := 0; i < 50; i++ {
			if err := m.Unmount(); err == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		abortFUSE(st.Dev)
		lfs.ForceUnmount(dir)
	})
}

// abortFUSE aborts the FUSE connection of the file system on dev (root only).
func abortFUSE(dev uint64) {
	if dev == 0 {
		return
	}
	p := fmt.Sprintf("/sys/fs/fuse/connections/%d/abort", unix.Minor(dev))
	os.WriteFile(p, []byte("1"), 0)
}

// save stores data under key (through the instance, then tells the mount,
// as the catalog server does).
func (w *world) save(key string, data []byte) catalog.Version {
	w.t.Helper()
	p := filepath.Join(w.tmp, "src", key)
	os.MkdirAll(filepath.Dir(p), 0o755)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		w.t.Fatal(err)
	}
	return w.saveItem(key, p)
}

func (w *world) saveItem(key, path string) catalog.Version {
	w.t.Helper()
	res, err := w.in.Save(context.Background(), []instance.SaveItem{{Path: path, Key: key}}, instance.SaveOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	if w.mnt != nil {
		w.mnt.Changed([]string{key})
	}
	return res[0].Saved.Version
}

func (w *world) read(name string) []byte {
	w.t.Helper()
	b, err := os.ReadFile(filepath.Join(w.dir, name))
	if err != nil {
		w.t.Fatal(err)
	}
	return b
}

func (w *world) ls(name string) []string {
	w.t.Helper()
	es, err := os.ReadDir(filepath.Join(w.dir, name))
	if err != nil {
		w.t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		n := e.Name()
		if e.IsDir() {
			n += "/"
		}
		out = append(out, n)
	}
	return out
}

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func TestNamespace(t *testing.T) {
	w := newWorld(t)
	v1 := w.save("exp/batch1.csv", []byte("a,b\n1,2\n"))
	v2 := w.save("exp/batch1.csv", []byte("a,b\n1,2\n3,4\n"))
	w.save("exp/deep/x.txt", []byte("x"))
	w.save("top.txt", []byte("top"))
	w.mount(lfs.MountOptions{})

	if got := w.ls(""); !slices.Equal(got, []string{"exp/", "top.txt"}) {
		t.Fatalf("ls / = %v", got)
	}
	if got := w.ls("exp"); !slices.Equal(got, []string{"batch1.csv", "deep/"}) {
		t.Fatalf("ls exp = %v (versions and sidecars must be hidden)", got)
	}
	if got := string(w.read("exp/batch1.csv")); got != "a,b\n1,2\n3,4\n" {
		t.Fatalf("latest = %q", got)
	}
	if got := string(w.read("exp/batch1.csv@v1")); got != "a,b\n1,2\n" {
		t.Fatalf("@v1 = %q", got)
	}
	var side map[string]any
	if err := json.Unmarshal(w.read("exp/batch1.csv.meta"), &side); err != nil {
		t.Fatal(err)
	}
	if side["uid"] != v2.UID || side["version"] != 2.0 || side["key"] != "exp/batch1.csv" || side["digest"] != v2.Digest.String() {
		t.Fatalf("sidecar %v", side)
	}
	if v, ok := side["lineage"]; !ok || v != nil {
		t.Fatalf("sidecar lineage = %v, %v; want null", v, ok)
	}
	json.Unmarshal(w.read("exp/batch1.csv@v1.meta"), &side)
	if side["uid"] != v1.UID {
		t.Fatalf("@v1 sidecar %v", side)
	}
	for _, bad := range []string{"exp/batch1.csv@v3", "exp/batch1.csv@v01", "exp/nope", "exp/nope.meta", "exp/deep@v1"} {
		if _, err := os.Stat(filepath.Join(w.dir, bad)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("stat %s: %v, want ENOENT", bad, err)
		}
	}
	// Attributes.
	cases := []struct {
		name string
		mode os.FileMode
		size int64
		mt   time.Time
	}{
		{"exp/batch1.csv", 0o644, v2.Size, v2.Mtime},
		{"exp/batch1.csv@v1", 0o444, v1.Size, v1.Mtime},
		{"exp/batch1.csv@v1.meta", 0o444, int64(len(lfs.Sidecar(v1))), v1.Mtime},
		{"exp", os.ModeDir | 0o755, -1, time.Time{}},
	}
	for _, c := range cases {
		fi, err := os.Stat(filepath.Join(w.dir, c.name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != c.mode || (c.size >= 0 && fi.Size() != c.size) || (!c.mt.IsZero() && !fi.ModTime().Equal(c.mt)) {
			t.Errorf("%s: mode %v size %d mtime %v; want %v %d %v", c.name, fi.Mode(), fi.Size(), fi.ModTime(), c.mode, c.size, c.mt)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != uint32(os.Getuid()) {
			t.Errorf("%s: owner %d", c.name, st.Uid)
		}
	}
	// Inode numbers depend on the version only.
	ino := func(name string) uint64 {
		fi, err := os.Stat(filepath.Join(w.dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return fi.Sys().(*syscall.Stat_t).Ino
	}
	if a, b := ino("exp/batch1.csv@v1"), lfs.Ino("v", v1.UID); a != b {
		t.Fatalf("ino %d, want %d", a, b)
	}
	// Writes are refused.
	if err := os.WriteFile(filepath.Join(w.dir, "exp/batch1.csv"), []byte("x"), 0o644); !errors.Is(err, syscall.EROFS) {
		t.Errorf("write: %v", err)
	}
	if err := os.WriteFile(filepath.Join(w.dir, "exp/new"), []byte("x"), 0o644); !errors.Is(err, syscall.EROFS) {
		t.Errorf("create: %v", err)
	}
	if err := os.Remove(filepath.Join(w.dir, "top.txt")); !errors.Is(err, syscall.EROFS) {
		t.Errorf("unlink: %v", err)
	}
	if err := os.Mkdir(filepath.Join(w.dir, "d"), 0o755); !errors.Is(err, syscall.EROFS) {
		t.Errorf("mkdir: %v", err)
	}
	// Xattrs.
	buf := make([]byte, 256)
	n, err := unix.Getxattr(filepath.Join(w.dir, "exp/batch1.csv"), "user.lamina.uid", buf)
	if err != nil || string(buf[:n]) != v2.UID {
		t.Fatalf("xattr uid = %q, %v", buf[:n], err)
	}
	for attr, want := range map[string]string{"user.lamina.version": "1", "user.lamina.digest": v1.Digest.String(), "user.lamina.key": "exp/batch1.csv"} {
		n, err := unix.Getxattr(filepath.Join(w.dir, "exp/batch1.csv@v1"), attr, buf)
		if err != nil || string(buf[:n]) != want {
			t.Errorf("%s = %q, %v", attr, buf[:n], err)
		}
	}
	n, _ = unix.Listxattr(filepath.Join(w.dir, "exp/batch1.csv"), buf)
	if names := strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00"); len(names) != 4 {
		t.Fatalf("listxattr = %q", names)
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(w.dir, &sfs); err != nil || sfs.Bsize == 0 {
		t.Fatalf("statfs %+v %v", sfs, err)
	}
}

func TestShownNames(t *testing.T) {
	w := newWorld(t)
	w.save("a.csv", []byte("1"))
	w.save("a.csv", []byte("2"))
	w.mount(lfs.MountOptions{Options: lfs.Options{ShowVersions: true, ShowMeta: true}})
	want := []string{"a.csv", "a.csv.meta", "a.csv@v1", "a.csv@v1.meta", "a.csv@v2", "a.csv@v2.meta"}
	if got := w.ls(""); !slices.Equal(got, want) {
		t.Fatalf("ls = %v, want %v", got, want)
	}
}

func TestFolderArtifact(t *testing.T) {
	w := newWorld(t)
	src := filepath.Join(w.tmp, "pbmc.zarr")
	os.MkdirAll(filepath.Join(src, "X", "0"), 0o755)
	os.WriteFile(filepath.Join(src, ".zattrs"), []byte("{}"), 0o644)
	os.WriteFile(filepath.Join(src, "X", "0", "0"), []byte("chunk00"), 0o644)
	os.WriteFile(filepath.Join(src, "X", ".zarray"), []byte(`{"shape":[1]}`), 0o644)
	w.saveItem("data/pbmc.zarr", src)
	os.WriteFile(filepath.Join(src, "X", "0", "0"), []byte("chunk00-v2"), 0o644)
	v2 := w.saveItem("data/pbmc.zarr", src)
	w.mount(lfs.MountOptions{})
	// A member's digest is its own bytes' (what a save of it records), not
	// the folder's; its uid, version and key are the folder version's.
	for name, want := range map[string]map[string]string{
		"data/pbmc.zarr/X/0/0":   {"digest": digestOf("chunk00-v2"), "uid": v2.UID, "version": "2", "key": "data/pbmc.zarr"},
		"data/pbmc.zarr/.zattrs": {"digest": digestOf("{}"), "uid": v2.UID},
		"data/pbmc.zarr":         {"digest": v2.Digest.String(), "uid": v2.UID},
	} {
		for attr, val := range want {
			buf := make([]byte, 256)
			n, err := unix.Getxattr(filepath.Join(w.dir, name), "user.lamina."+attr, buf)
			if err != nil || string(buf[:n]) != val {
				t.Errorf("%s: user.lamina.%s = %q, %v; want %q", name, attr, buf[:max(n, 0)], err, val)
			}
		}
	}
	if got := w.ls("data/pbmc.zarr"); !slices.Equal(got, []string{".zattrs", "X/"}) {
		t.Fatalf("ls pbmc.zarr = %v", got)
	}
	if got := w.ls("data/pbmc.zarr/X"); !slices.Equal(got, []string{".zarray", "0/"}) {
		t.Fatalf("ls X = %v", got)
	}
	if got := string(w.read("data/pbmc.zarr/X/0/0")); got != "chunk00-v2" {
		t.Fatalf("latest = %q", got)
	}
	if got := string(w.read("data/pbmc.zarr@v1/X/0/0")); got != "chunk00" {
		t.Fatalf("@v1 = %q", got)
	}
	fi, err := os.Stat(filepath.Join(w.dir, "data/pbmc.zarr@v1/X"))
	if err != nil || fi.Mode() != os.ModeDir|0o555 {
		t.Fatalf("folder dir mode %v, %v", fi.Mode(), err)
	}
	if err := os.WriteFile(filepath.Join(w.dir, "data/pbmc.zarr/X/new"), nil, 0o644); !errors.Is(err, syscall.EROFS) {
		t.Fatalf("create in folder: %v", err)
	}
	var side map[string]any
	json.Unmarshal(w.read("data/pbmc.zarr.meta"), &side)
	if side["kind"] != "folder" || side["n_files"] != 3.0 {
		t.Fatalf("folder sidecar %v", side)
	}
}

func TestInvalidation(t *testing.T) {
	w := newWorld(t)
	w.save("k/a.txt", []byte("one"))
	w.save("k/b.txt", []byte("b"))
	w.mount(lfs.MountOptions{})
	if got := string(w.read("k/a.txt")); got != "one" {
		t.Fatal(got)
	}
	w.ls("k")
	os.Stat(filepath.Join(w.dir, "k/new/c.txt")) // a negative entry
	w.read("k/a.txt.meta")
	w.save("k/a.txt", []byte("two, longer"))
	if got := string(w.read("k/a.txt")); got != "two, longer" {
		t.Fatalf("after a new version: %q", got)
	}
	var side map[string]any
	json.Unmarshal(w.read("k/a.txt.meta"), &side)
	if side["version"] != 2.0 {
		t.Fatalf("sidecar after a new version: %v", side["version"])
	}
	w.save("k/new/c.txt", []byte("c"))
	if got := w.ls("k"); !slices.Equal(got, []string{"a.txt", "b.txt", "new/"}) {
		t.Fatalf("ls after save = %v", got)
	}
	if got := string(w.read("k/new/c.txt")); got != "c" {
		t.Fatal(got)
	}
	w.read("k/a.txt@v1")
	if _, err := w.cat.Trash(context.Background(), "k/a.txt"); err != nil {
		t.Fatal(err)
	}
	w.mnt.Changed([]string{"k/a.txt"})
	for _, n := range []string{"k/a.txt", "k/a.txt@v1", "k/a.txt.meta"} {
		if _, err := os.Stat(filepath.Join(w.dir, n)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s after trash: %v", n, err)
		}
	}
	w.cat.Trash(context.Background(), "k/new/c.txt")
	w.mnt.Changed([]string{"k/new/c.txt"})
	if got := w.ls("k"); !slices.Equal(got, []string{"b.txt"}) {
		t.Fatalf("ls after trash = %v", got)
	}
	if _, err := os.Stat(filepath.Join(w.dir, "k/new")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("emptied folder: %v", err)
	}
}

func TestBigDirectory(t *testing.T) {
	w := newWorld(t)
	var nvs []catalog.NewVersion
	now := time.Now()
	for i := 0; i < 10_000; i++ {
		nvs = append(nvs, catalog.NewVersion{Key: fmt.Sprintf("big/f%05d", i), Kind: "file", Size: 0, CreatedAt: now, Mtime: now})
	}
	if _, err := w.cat.Save(context.Background(), nvs); err != nil {
		t.Fatal(err)
	}
	w.mount(lfs.MountOptions{})
	got := w.ls("big")
	if len(got) != 10_000 || got[0] != "f00000" || got[9999] != "f09999" {
		t.Fatalf("listed %d", len(got))
	}
	fi, err := os.Stat(filepath.Join(w.dir, "big/f04242"))
	if err != nil || fi.Size() != 0 {
		t.Fatal(fi, err)
	}
}

func TestReads(t *testing.T) {
	w := newWorld(t)
	size := 256 << 20
	if testing.Short() {
		size = 16 << 20
	}
	data := random(size)
	w.save("big.bin", data)
	w.mount(lfs.MountOptions{ChunkCacheBytes: 8 << 20})
	f, err := os.Open(filepath.Join(w.dir, "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Random reads, serially and from many readers at once.
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			r := mrand.New(mrand.NewPCG(seed, 1))
			buf := make([]byte, 1<<17)
			for i := 0; i < 200; i++ {
				off := r.Int64N(int64(size))
				n := 1 + r.IntN(len(buf))
				k, err := f.ReadAt(buf[:n], off)
				if err != nil && off+int64(n) <= int64(size) {
					errs <- err
					return
				}
				if !bytes.Equal(buf[:k], data[off:off+int64(k)]) {
					errs <- fmt.Errorf("bytes at %d+%d differ", off, k)
					return
				}
			}
		}(uint64(g))
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// The end of the file, and past it.
	buf := make([]byte, 10)
	if k, _ := f.ReadAt(buf, int64(size-4)); k != 4 || !bytes.Equal(buf[:4], data[size-4:]) {
		t.Fatalf("tail read %d", k)
	}
	// mmap, in another process: a page fault on the mount from the process
	// that serves it can stall Go's stop-the-world (the faulting thread is
	// neither running Go code nor in a syscall) while the FUSE handler that
	// would answer the fault waits for the world to restart: a deadlock.
	script := "import mmap,sys\nf=open(sys.argv[1],'rb')\nm=mmap.mmap(f.fileno(),0,prot=mmap.PROT_READ)\nfor o in map(int,sys.argv[2:]): sys.stdout.write('%d ' % m[o])"
	offs := []int{0, size / 3, size - 1}
	out, err := exec.Command("python3", "-c", script, f.Name(), fmt.Sprint(offs[0]), fmt.Sprint(offs[1]), fmt.Sprint(offs[2])).CombinedOutput()
	if err != nil {
		t.Fatalf("mmap in python3: %v\n%s", err, out)
	}
	if want := fmt.Sprintf("%d %d %d ", data[offs[0]], data[offs[1]], data[offs[2]]); string(out) != want {
		t.Fatalf("mmap bytes %q, want %q", out, want)
	}
	if !bytes.Equal(w.read("big.bin"), data) {
		t.Fatal("whole read differs")
	}
}

// A mount detached lazily while in use is Detached though another file
// system was mounted at its folder since, and its Unmount leaves that one
// alone. Both went by the folder's path: the tmpfs was taken for the
// lamina mount, and Unmount (go-fuse unmounts by path) unmounted it.
func TestDetachedWithAnotherMountAtItsFolder(t *testing.T) {
	w := newWorld(t)
	w.mountRW()
	d, err := os.Open(w.dir) // keeps the mount in use once detached
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if w.mnt.Detached() {
		t.Fatal("detached before the lazy unmount")
	}
	if err := syscall.Unmount(w.dir, syscall.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	if !w.mnt.Detached() {
		t.Fatal("not detached after a lazy unmount")
	}
	if err := syscall.Mount("tmpfs", w.dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Unmount(w.dir, syscall.MNT_DETACH) })
	if !w.mnt.Detached() {
		// Unmount would unmount the tmpfs, then wait for good for the
		// server's end, which d holds off.
		t.Fatal("a tmpfs mounted at the folder since was taken for the lamina mount")
	}
	if err := w.mnt.Unmount(); err == nil {
		t.Error("Unmount of the detached mount still in use succeeded")
	}
	if mi, ok := lfs.MountInfo(w.dir); !ok || mi.Type != "tmpfs" {
		t.Errorf("what is mounted at the folder after Unmount: %+v %v, want the tmpfs", mi, ok)
	}
	d.Close() // the last user: the kernel lets the detached mount go
	for i := 0; w.mnt.Unmount() != nil; i++ {
		if i == 300 {
			t.Fatal("Unmount still fails 30 s after the detached mount's last user closed")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if mi, ok := lfs.MountInfo(w.dir); !ok || mi.Type != "tmpfs" {
		t.Errorf("what is mounted at the folder after the lamina mount ended: %+v %v, want the tmpfs", mi, ok)
	}
}

// Stats.FilesOpened (lamina status: "opens to read") counts each open to
// read of a committed version, not the files open, and no create or open
// to write.
func TestStatsCountOpensToRead(t *testing.T) {
	w := newWorld(t)
	w.save("so/a", []byte("a\n"))
	w.mountRW()
	before := w.mnt.Stats().FilesOpened
	w.read("so/a")
	w.read("so/a")
	w.read("so/a@v1")
	if err := os.WriteFile(w.p("so/new"), []byte("n\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(w.p("so/a"), []byte("b\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := w.mnt.Stats().FilesOpened - before; got != 3 {
		t.Fatalf("opens to read counted: %d, want 3 (two of so/a, one of so/a@v1)", got)
	}
}

// digestOf is the BLAKE3 digest of s, as a save of a file holding it records.
func digestOf(s string) string {
	h := ref.NewHasher()
	h.Write([]byte(s))
	return h.Digest().String()
}
