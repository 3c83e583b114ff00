package fs_test

import (
	"bufio"
	"context"
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
)

// TestTrashedVersionsOfLiveKeyReadable: a key written again after an rm
// (Snakemake deletes its outputs before a rerun), later than the window
// in which the write would bring them back (stage.MoveAwayWindow, here
// none), keeps its earlier versions in the trash; KEY@vN reads them,
// read-only and unlisted, while the key is live. Once purged (with the
// key) or when the key is trashed again, the names are gone.
func TestTrashedVersionsOfLiveKeyReadable(t *testing.T) {
	w := newWorld(t)
	w.mountRWWindow(time.Nanosecond)
	p := func(name string) string { return filepath.Join(w.dir, name) }
	os.MkdirAll(p("res"), 0o755)
	for _, s := range []string{"one\n", "two\n"} {
		if err := os.WriteFile(p("res/count.txt"), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	w.eventually("res/count.txt", 2)
	if err := os.Remove(p("res/count.txt")); err != nil { // the rerun's rm
		t.Fatal(err)
	}
	if _, err := os.Stat(p("res/count.txt@v1")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a version of a key wholly in the trash: %v", err)
	}
	if err := os.WriteFile(p("res/count.txt"), []byte("three\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w.eventually("res/count.txt", 1) // live: v3 only
	if got := string(w.read("res/count.txt")); got != "three\n" {
		t.Fatalf("latest = %q", got)
	}
	if got := string(w.read("res/count.txt@v2")); got != "two\n" {
		t.Fatalf("trashed @v2 = %q", got)
	}
	if got := string(w.read("res/count.txt@v1")); got != "one\n" {
		t.Fatalf("trashed @v1 = %q", got)
	}
	var side map[string]any
	if err := json.Unmarshal(w.read("res/count.txt@v1.meta"), &side); err != nil || side["version"] != 1.0 || side["trashed"] != true {
		t.Fatalf("sidecar of trashed @v1: %v, %v", side, err)
	}
	if err := os.WriteFile(p("res/count.txt@v2"), []byte("x"), 0o644); !errors.Is(err, syscall.EROFS) {
		t.Errorf("write to a trashed @v2: %v; want EROFS", err)
	}
	if err := os.Remove(p("res/count.txt@v2")); !errors.Is(err, syscall.EROFS) {
		t.Errorf("rm of a trashed @v2: %v; want EROFS", err)
	}
	if _, err := os.Stat(p("res/count.txt@v4")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("@v4 (none): %v", err)
	}
	// A mount that lists versions lists the live ones only.
	w.mount(lfs.MountOptions{Options: lfs.Options{ShowVersions: true}})
	if got := w.ls("res"); !slices.Equal(got, []string{"count.txt", "count.txt@v3"}) {
		t.Errorf("listing shows %v; want the live versions only", got)
	}
	if got := string(w.read("res/count.txt@v2")); got != "two\n" {
		t.Fatalf("trashed @v2 in the second mount = %q", got)
	}
	// Purged with the key (as delete --permanent does): the names go.
	if _, err := w.cat.Purge(context.Background(), "res/count.txt"); err != nil {
		t.Fatal(err)
	}
	w.mnt.Changed([]string{"res/count.txt"})
	for _, n := range []string{"res/count.txt", "res/count.txt@v1", "res/count.txt@v2"} {
		if _, err := os.Stat(p(n)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s after purge: %v", n, err)
		}
	}
}

// statElsewhere stats name from another process: "" if it exists, else
// stat's message.
func (w *world) statElsewhere(name string) string {
	w.t.Helper()
	out, err := exec.Command("stat", "-c", "%F %h %a", w.p(name)).CombinedOutput()
	if err != nil {
		return strings.TrimSpace(string(out))
	}
	return ""
}

// TestRemovedKeyVersionsGone: in a mount that lists versions, once `rm
// KEY` puts the key in the trash, KEY@vN and the sidecars do not resolve
// for any other process (they did: a ghost with a zeroed stat, mode 0 and
// no links); the process that unlinked it may still unlink them, as
// `rm -r` of the folder does, and sees a sane stat. The same after a
// rename away, and for a folder artifact's KEY@vN/… after its trash.
func TestRemovedKeyVersionsGone(t *testing.T) {
	w := newWorld(t)
	w.save("d/k.txt", []byte("one"))
	w.save("d/k.txt", []byte("two"))
	w.save("d/m.txt", []byte("one"))
	w.save("d/m.txt", []byte("two"))
	art := filepath.Join(w.tmp, "src", "art")
	os.MkdirAll(art, 0o755)
	os.WriteFile(filepath.Join(art, "a.txt"), []byte("a"), 0o644)
	w.saveItem("d/art", art)
	w.mountRWWith(lfs.MountOptions{Options: lfs.Options{ShowVersions: true, ShowMeta: true}})
	derived := []string{"k.txt@v1", "k.txt@v2", "k.txt.meta", "k.txt@v1.meta"}
	// The kernel caches the names first (a listing, then a stat of each).
	w.ls("d")
	for _, n := range append(derived, "art@v1/a.txt", "m.txt@v1") {
		if msg := w.statElsewhere("d/" + n); msg != "" {
			t.Fatalf("before: %s", msg)
		}
	}
	if err := os.Remove(w.p("d/k.txt")); err != nil {
		t.Fatal(err)
	}
	w.mnt.Changed([]string{"d/k.txt"}) // the kernel's entries dropped (the notifier's come a moment later)
	for _, n := range derived {
		if msg := w.statElsewhere("d/" + n); !strings.Contains(msg, "No such file") {
			t.Errorf("%s after rm of the key, from another process: %q; want ENOENT", n, msg)
		}
	}
	// The unlinking process: what rm -r does next.
	var st syscall.Stat_t
	if err := syscall.Lstat(w.p("d/k.txt@v1"), &st); err != nil {
		t.Fatalf("unlinker's stat of k.txt@v1: %v", err)
	} else if st.Nlink != 1 || st.Mode != syscall.S_IFREG|0o444 {
		t.Errorf("unlinker's stat of k.txt@v1: mode %o, %d links; want 100444, 1", st.Mode, st.Nlink)
	}
	if err := os.Remove(w.p("d/k.txt@v1")); err != nil {
		t.Errorf("unlinker's rm of k.txt@v1: %v", err)
	}
	if msg := w.statElsewhere("d/k.txt@v1"); !strings.Contains(msg, "No such file") {
		t.Errorf("k.txt@v1 after the unlinker's rm: %q", msg)
	}

	if err := os.Rename(w.p("d/m.txt"), w.p("d/n.txt")); err != nil {
		t.Fatal(err)
	}
	w.mnt.Changed([]string{"d/m.txt", "d/n.txt"})
	for _, n := range []string{"m.txt@v1", "m.txt@v2", "m.txt.meta", "m.txt@v1.meta"} {
		if msg := w.statElsewhere("d/" + n); !strings.Contains(msg, "No such file") {
			t.Errorf("%s after mv of the key: %q; want ENOENT", n, msg)
		}
	}
	if got := string(w.read("d/n.txt@v1")); got != "one" {
		t.Errorf("n.txt@v1 after the mv = %q", got)
	}

	if _, err := w.cat.Trash(context.Background(), "d/art"); err != nil {
		t.Fatal(err)
	}
	w.mnt.Changed([]string{"d/art"})
	for _, n := range []string{"art@v1/a.txt", "art@v1", "art.meta", "art@v1.meta"} {
		if msg := w.statElsewhere("d/" + n); !strings.Contains(msg, "No such file") {
			t.Errorf("%s after the artifact's trash: %q; want ENOENT", n, msg)
		}
	}
}

// TestRemovedKeyVersionsGoneAtOnce: the kernel holds KEY@vN and sidecar
// names for hours, and the entry invalidations of an rm or mv come from
// the notifier a moment after the call returns; a stat or open right
// after it found them (the version of a key in the trash, or of a key
// renamed away). The unlink or rename drops their attributes before it
// returns, and the names answer ENOENT at once; the same for a folder
// artifact's KEY@vN/… after a mv of the artifact, and for a mv of a key
// to a scratch name.
func TestRemovedKeyVersionsGoneAtOnce(t *testing.T) {
	w := newWorld(t)
	for _, k := range []string{"d/k.txt", "d/m.txt", "d/s.txt"} {
		w.save(k, []byte("one"))
		w.save(k, []byte("two"))
	}
	art := filepath.Join(w.tmp, "src", "art")
	os.MkdirAll(filepath.Join(art, "sub"), 0o755)
	os.WriteFile(filepath.Join(art, "sub", "a.txt"), []byte("a"), 0o644)
	w.saveItem("d/art", art)
	w.mountRW()
	derived := func(base string) []string {
		return []string{base + "@v1", base + "@v2", base + ".meta", base + "@v1.meta"}
	}
	cached := append(append(derived("d/k.txt"), derived("d/m.txt")...), derived("d/s.txt")...)
	cached = append(cached, "d/art@v1/sub/a.txt", "d/art.meta")
	for _, n := range cached {
		if _, err := os.ReadFile(w.p(n)); err != nil {
			t.Fatal(err)
		}
	}
	gone := func(what string, names ...string) {
		t.Helper()
		for _, n := range names {
			if _, err := os.Stat(w.p(n)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("stat %s right after %s: %v; want ENOENT", n, what, err)
			}
		}
	}

	if err := os.Remove(w.p("d/k.txt")); err != nil {
		t.Fatal(err)
	}
	gone("rm", derived("d/k.txt")...)
	if _, err := os.ReadFile(w.p("d/k.txt@v2")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("read of k.txt@v2 after rm: %v; want ENOENT", err)
	}

	if err := os.Rename(w.p("d/m.txt"), w.p("d/n.txt")); err != nil {
		t.Fatal(err)
	}
	gone("mv", derived("d/m.txt")...)
	if got := string(w.read("d/n.txt@v1")); got != "one" {
		t.Errorf("n.txt@v1 after mv = %q", got)
	}

	if err := os.Rename(w.p("d/s.txt"), w.p("d/s.txt~")); err != nil { // to a scratch name
		t.Fatal(err)
	}
	gone("mv to a scratch name", derived("d/s.txt")...)

	if err := os.Rename(w.p("d/art"), w.p("d/art2")); err != nil {
		t.Fatal(err)
	}
	gone("mv of a folder artifact", "d/art@v1/sub/a.txt", "d/art@v1", "d/art.meta")
	if got := string(w.read("d/art2@v1/sub/a.txt")); got != "a" {
		t.Errorf("art2@v1/sub/a.txt after mv = %q", got)
	}
}

// TestRemovedKeyVersionsGoneWhileOpen: as TestRemovedKeyVersionsGoneAtOnce
// while another process holds KEY@v1 and sidecars open, or closed them a
// moment ago (the kernel sends the RELEASE after close returned: CI saw
// KEY@v1.meta resolve right after rm in that test). go-fuse hands such a
// handle to every GETATTR of the inode, a stat by path too, since the
// kernel sends none with an fstat; the stat found the names until the
// notifier's entry invalidations came. The holder still stats and reads
// them through its descriptors. Several keys: the first stat after each
// rm races the notifier.
func TestRemovedKeyVersionsGoneWhileOpen(t *testing.T) {
	w := newWorld(t)
	const keys = 4
	for i := range keys {
		k := fmt.Sprintf("d/k%d.txt", i)
		w.save(k, []byte("one"))
		w.save(k, []byte("two"))
	}
	w.mountRW()
	for i := range keys {
		base := fmt.Sprintf("d/k%d.txt", i)
		held := []string{base + "@v1.meta", base + "@v1", base + ".meta", base + "@v2"}
		h := w.holdOpen(held...)
		if err := os.Remove(w.p(base)); err != nil {
			t.Fatal(err)
		}
		for _, n := range held {
			if _, err := os.Stat(w.p(n)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("stat %s right after rm, held open elsewhere: %v; want ENOENT", n, err)
			}
		}
		if out, err := h.finish(); err != nil || !strings.HasSuffix(out, "\none") {
			t.Errorf("the holder's fstat and read of %s after rm: %q, %v", base+"@v1", out, err)
		}
	}
}

// holder is a process holding names of the mount open on descriptors 3….
type holder struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

// holdOpen starts a process that opens names (at most 6) and holds them
// until finish, which has it fstat each (stat -L /dev/fd/N: the inode it
// holds, no lookup) and read the second through its descriptor.
func (w *world) holdOpen(names ...string) *holder {
	w.t.Helper()
	script, fds := "", ""
	for i := range names {
		script += fmt.Sprintf(" %d<\"$%d\"", i+3, i+1)
		fds += fmt.Sprintf(" /dev/fd/%d", i+3)
	}
	script = "exec" + script + " || exit 1; echo ready; read x; stat -L -c %F" + fds + " && cat <&4"
	args := []string{"-c", script, "sh"}
	for _, n := range names {
		args = append(args, w.p(n))
	}
	cmd := exec.Command("sh", args...)
	in, err := cmd.StdinPipe()
	if err != nil {
		w.t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		w.t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	h := &holder{cmd: cmd, in: in, out: bufio.NewReader(stdout)}
	w.t.Cleanup(func() { in.Close(); cmd.Process.Kill(); cmd.Wait() })
	if line, err := h.out.ReadString('\n'); line != "ready\n" {
		w.t.Fatalf("holder of %v: %q, %v", names, line, err)
	}
	return h
}

// finish has the holder stat and read through its descriptors, and
// returns what it printed.
func (h *holder) finish() (string, error) {
	h.in.Write([]byte("\n"))
	h.in.Close()
	b, _ := io.ReadAll(h.out)
	return strings.TrimSpace(string(b)), h.cmd.Wait()
}
