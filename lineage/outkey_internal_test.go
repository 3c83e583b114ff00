package lineage

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/lamina-bio/lamina/mountinfo"
)

// An output a record names maps to a key when it is in the mount (by its
// path, a symlink into it, or a relative key), is dropped when its folder
// is outside the mount whatever its tail (DIR/x/wf/out/a.txt is not the
// key wf/out/a.txt), and stays absolute, matched by its tail, only when
// its folder cannot be resolved. The mountpoint here does not exist: a
// path resolved into it was never lstat'ed (that would be the FUSE mount
// looked at from its own handler).
func TestOutputKeys(t *testing.T) {
	d := t.TempDir()
	mnt := filepath.Join(d, "lab") // never made
	os.MkdirAll(filepath.Join(d, "x/wf/out"), 0o755)
	os.Symlink(mnt, filepath.Join(d, "to-lab"))
	os.Symlink("../lab/wf", filepath.Join(d, "x", "to-wf"))
	os.Symlink("x/wf", filepath.Join(d, "to-x-wf"))
	os.Symlink("loop", filepath.Join(d, "loop"))
	keyOf := KeyResolver(mnt, nil)
	for _, c := range []struct{ out, want string }{
		{"wf/out/a.txt", "wf/out/a.txt"},
		{mnt + "/wf/out/a.txt", "wf/out/a.txt"},
		{mnt + "/wf/../a.txt", "a.txt"},
		{mnt + "/../lab/wf/a.txt", "wf/a.txt"}, // out of the mount and back
		{d + "/to-lab/../lab/wf/a.txt", "wf/a.txt"},
		{mnt + "/../x/wf/out/a.txt", ""}, // out of the mount to a folder outside
		{d + "/to-lab/wf/out/a.txt", "wf/out/a.txt"},
		{d + "/x/to-wf/out/a.txt", "wf/out/a.txt"},
		{d + "/x/to-wf/../b.txt", "b.txt"},
		{d + "/x/wf/out/a.txt", ""},    // outside: dropped
		{d + "/to-x-wf/out/a.txt", ""}, // a symlink outside
		{d + "/x/wf/../wf/out/a.txt", ""},
		{d + "/gone/wf/out/a.txt", d + "/gone/wf/out/a.txt"}, // unknown
		{d + "/loop/a.txt", d + "/loop/a.txt"},
	} {
		got := outputKeys([]string{c.out}, mnt, nil)
		if want := []string{c.want}; c.want == "" && len(got) != 0 || c.want != "" && !slices.Equal(got, want) {
			t.Errorf("outputKeys(%q) = %q, want %q", c.out, got, c.want)
		}
		// The same when the mount's links are looked up, and it has none.
		if got2 := outputKeys([]string{c.out}, mnt, noLinks); !slices.Equal(got2, got) {
			t.Errorf("outputKeys(%q) with links = %q, without %q", c.out, got2, got)
		}
		// lamina run names jobs by the same keys.
		want, wantOK := c.want, c.want != "" && !filepath.IsAbs(c.want)
		if !wantOK {
			want = ""
		}
		if key, ok := keyOf(c.out); filepath.IsAbs(c.out) && (key != want || ok != wantOK) {
			t.Errorf("KeyResolver(%q) = %q, %v, want %q", c.out, key, ok, want)
		}
	}
}

// Another mount of the mount's filesystem (a bind mount of it or of one of
// its folders) maps to the mount's keys, never lstat'ed.
func TestOutputKeysBindMount(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount")
	}
	d := t.TempDir()
	mnt, alias, sub := filepath.Join(d, "lab"), filepath.Join(d, "alias"), filepath.Join(d, "sub")
	for _, p := range []string{mnt, alias, sub} {
		os.MkdirAll(p, 0o755)
	}
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, ""); err != nil {
		t.Skip("cannot mount tmpfs:", err)
	}
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
	os.MkdirAll(filepath.Join(mnt, "wf/out"), 0o755)
	for _, m := range [][2]string{{mnt, alias}, {mnt + "/wf", sub}} {
		if out, err := exec.Command("mount", "--bind", m[0], m[1]).CombinedOutput(); err != nil {
			t.Fatalf("mount --bind: %v %s", err, out)
		}
		t.Cleanup(func() { unix.Unmount(m[1], unix.MNT_DETACH) })
	}
	for out, want := range map[string]string{
		alias + "/wf/out/a.txt": "wf/out/a.txt",
		sub + "/out/a.txt":      "wf/out/a.txt",
		alias + "/a.txt":        "a.txt",
	} {
		if got := outputKeys([]string{out}, mnt, nil); !slices.Equal(got, []string{want}) {
			t.Errorf("outputKeys(%q) = %q, want %q", out, got, want)
		}
	}
}

// Each entry a resolver's walks pass is lstat'ed once, whatever path led
// to it (a symlink to a folder walked already): outputs in many folders
// walked every parent again from "/" for each folder.
func TestOutputKeysLstatOnce(t *testing.T) {
	d := t.TempDir()
	mnt := filepath.Join(d, "lab") // never made
	const n = 200
	var outs []string
	for i := range n {
		dir := filepath.Join(d, "a", "b", strconv.Itoa(i))
		os.MkdirAll(dir, 0o755)
		outs = append(outs, dir+"/out.txt", d+"/ln/b/"+strconv.Itoa(i)+"/out.txt")
	}
	os.Symlink("a", filepath.Join(d, "ln"))
	os.Symlink(mnt, filepath.Join(d, "a", "b", "to-lab"))
	outs = append(outs, d+"/ln/b/to-lab/wf/x.txt", d+"/a/b/to-lab/wf/y.txt")
	r := resolver{mnt: mnt}
	for _, out := range outs {
		key, where := r.file(out)
		if want := strings.Contains(out, "to-lab"); want != (where == inMount) {
			t.Fatalf("%s: %q %d", out, key, where)
		}
	}
	// The entries: each folder of d from "/", then a, b, ln, to-lab and
	// the n folders.
	want := strings.Count(d, "/") + 4 + n
	if r.lstats != want {
		t.Errorf("%d lstats for %d outputs, want %d (each entry once)", r.lstats, len(outs), want)
	}
}

// BenchmarkOutputKeys: 20,000 outputs, each in a folder of its own, three
// deep below a temporary folder, as a drain's records may name them.
func BenchmarkOutputKeys(b *testing.B) {
	d := b.TempDir()
	var outs []string
	for i := range 20000 {
		dir := filepath.Join(d, "w", strconv.Itoa(i%100), strconv.Itoa(i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		outs = append(outs, dir+"/out.txt")
	}
	b.ResetTimer()
	for range b.N {
		if got := outputKeys(slices.Clone(outs), filepath.Join(d, "lab"), nil); len(got) != 0 {
			b.Fatal(got[:1])
		}
	}
}

// A folder is on the mount when its longest mount point is the mount's or
// a bind mount of it; one on another mount nested in it is not, though
// its path is under the mountpoint.
func TestOnMount(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount")
	}
	d := t.TempDir()
	mnt, alias := filepath.Join(d, "lab"), filepath.Join(d, "alias")
	for _, p := range []string{mnt, alias} {
		os.MkdirAll(p, 0o755)
	}
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, ""); err != nil {
		t.Skip("cannot mount tmpfs:", err)
	}
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
	nested := filepath.Join(mnt, "scratch")
	os.MkdirAll(nested, 0o755)
	if err := unix.Mount("tmpfs", nested, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(nested, unix.MNT_DETACH) })
	if out, err := exec.Command("mount", "--bind", mnt, alias).CombinedOutput(); err != nil {
		t.Fatalf("mount --bind: %v %s", err, out)
	}
	t.Cleanup(func() { unix.Unmount(alias, unix.MNT_DETACH) })
	for dir, want := range map[string]bool{
		mnt:                      true,
		mnt + "/wf":              true,
		mnt + "/scratchy/wf":     true,
		alias + "/wf":            true,
		nested:                   false,
		nested + "/wf":           false,
		alias + "/scratch/wf":    true, // the bind mount is not recursive
		d:                        false,
		filepath.Join(d, "lab2"): false,
	} {
		if got := onMount(dir, mnt); got != want {
			t.Errorf("onMount(%q) = %v, want %v", dir, got, want)
		}
	}
}

// A lamina mount covered by another file system mounted over it is still
// the mount at its folder: its bind mounts stay aliases (never looked at
// from its handlers), not those of the cover.
func TestMountDevOfCoveredMount(t *testing.T) {
	ents := []mountinfo.Mount{
		{Dev: "8:1", Root: "/", Dir: "/", Type: "ext4"},
		{Dev: "0:50", Root: "/", Dir: "/tmp/lab", Type: "fuse.lamina"},
		{Dev: "0:50", Root: "/wf", Dir: "/tmp/alias", Type: "fuse.lamina"},
		{Dev: "0:60", Root: "/", Dir: "/tmp/lab", Type: "tmpfs"},
	}
	if dev, root, _ := mountDev(ents, "/tmp/lab"); dev != "0:50" || root != "/" {
		t.Errorf("mountDev of a covered lamina mount = %q %q, want 0:50 /", dev, root)
	}
	if dev, _, _ := mountDev(ents[:1:1], "/"); dev != "8:1" {
		t.Errorf("mountDev of a plain mount = %q", dev)
	}
}

// An output written through a link in the mount is the key the job wrote:
// the link is the mount's record of it (LinkReader), never read through
// the mount (it does not exist here), relative or absolute, to a folder
// deeper whose ".." is not the link's, out of the mount and back, a loop
// bounded. By name these were wf/out/a.txt, wf/b.txt…: other keys.
func noLinks(string) (string, bool) { return "", false }

func TestOutputKeysMountLinks(t *testing.T) {
	d := t.TempDir()
	mnt := filepath.Join(d, "lab") // never made
	os.MkdirAll(filepath.Join(d, "x/wf/out"), 0o755)
	os.Symlink(mnt, filepath.Join(d, "to-lab"))
	links := map[string]string{
		"wf/out":   "data",               // relative, beside it
		"wf/abs":   mnt + "/store/x",     // absolute, into the mount
		"wf/deep":  "../store/y/z",       // "deep/.." is store/y
		"wf/ext":   d + "/x/wf",          // out of the mount
		"wf/up":    "../..",              // the mount's parent
		"wf/loop":  "loop",               // itself
		"wf/chain": "out",                // a link to a link
		"wf/back":  d + "/to-lab/wf/out", // out, through a symlink outside, and in again
	}
	asked := map[string]int{}
	read := func(key string) (string, bool) {
		asked[key]++
		t, ok := links[key]
		return t, ok
	}
	for _, c := range []struct{ out, want string }{
		{"wf/out/a.txt", "wf/data/a.txt"},
		{mnt + "/wf/out/a.txt", "wf/data/a.txt"},
		{d + "/to-lab/wf/out/a.txt", "wf/data/a.txt"},
		{mnt + "/wf/abs/a.txt", "store/x/a.txt"},
		{"wf/deep/../b.txt", "store/y/b.txt"},
		{mnt + "/wf/deep/../b.txt", "store/y/b.txt"},
		{mnt + "/wf/out/../b.txt", "wf/b.txt"},
		{"wf/chain/a.txt", "wf/data/a.txt"},
		{"wf/back/a.txt", "wf/data/a.txt"},
		{mnt + "/wf/ext/out/a.txt", ""}, // outside: dropped
		{"wf/ext/out/a.txt", ""},
		{mnt + "/wf/up/x/wf/out/a.txt", ""},
		{mnt + "/wf/up/lab/wf/a.txt", "wf/a.txt"},
		{mnt + "/../lab/wf/out/a.txt", "wf/data/a.txt"},
		{"wf/plain/a.txt", "wf/plain/a.txt"},
		{mnt + "/wf/plain/../a.txt", "wf/a.txt"},
		{mnt + "/wf/loop/a.txt", mnt + "/wf/loop/a.txt"}, // unknown: by its tail
		{"wf/loop/a.txt", "wf/loop/a.txt"},
	} {
		got := outputKeys([]string{c.out}, mnt, read)
		if want := []string{c.want}; c.want == "" && len(got) != 0 || c.want != "" && !slices.Equal(got, want) {
			t.Errorf("outputKeys(%q) = %q, want %q", c.out, got, c.want)
		}
	}
	keyOf := KeyResolver(mnt, read)
	if key, ok := keyOf(mnt + "/wf/out/a.txt"); key != "wf/data/a.txt" || !ok {
		t.Errorf("KeyResolver: %q, %v, want wf/data/a.txt", key, ok)
	}
	if _, ok := keyOf(mnt + "/wf/loop/a.txt"); ok {
		t.Error("KeyResolver resolved a loop")
	}
	// One resolver looks each key up once.
	asked = map[string]int{}
	outputKeys([]string{"wf/out/a.txt", "wf/out/b.txt", mnt + "/wf/out/c/d.txt", "wf/chain/e.txt"}, mnt, read)
	for k, n := range asked {
		if n > 1 {
			t.Errorf("%s looked up %d times", k, n)
		}
	}
}

// BenchmarkOutputKeysInMount: 100,000 keys in 100,000 folders, the mount's
// links looked up (none): each folder's parts once per resolver.
func BenchmarkOutputKeysInMount(b *testing.B) {
	var outs []string
	for i := range 100000 {
		outs = append(outs, "wf/out/"+strconv.Itoa(i%100)+"/"+strconv.Itoa(i)+"/out.txt")
	}
	b.ResetTimer()
	for range b.N {
		if got := outputKeys(slices.Clone(outs), "/nonexistent/lab", noLinks); len(got) != len(outs) {
			b.Fatal(len(got))
		}
	}
}
