package fs_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Appenders of one key add to the same bytes, as to one inode: a log that a
// shell and the commands it starts append to keeps every line, whoever
// closes last. Writers without O_APPEND keep a File of their own (each
// close its own version, TestWriteBasics).
func TestAppendersShareTheirBytes(t *testing.T) {
	w := newWorld(t)
	w.mountRW()
	os.MkdirAll(w.p("logs"), 0o755)

	// A new key: the shell's descriptor, a child's own open, the shell again.
	w.sh(`exec 3>>logs/run.log; echo A >&3; sh -c 'echo B >> logs/run.log'; echo C >&3; exec 3>&-`)
	if got := string(w.read("logs/run.log")); got != "A\nB\nC\n" {
		t.Fatalf("a log appended to by a shell and its child = %q, want every line", got)
	}
	// A key with a version, appended to by two handles at once; the first
	// to open closes last.
	f1, err := os.OpenFile(w.p("logs/run.log"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f1.Write([]byte("D\n"))
	f2, err := os.OpenFile(w.p("logs/run.log"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f2.Write([]byte("E\n"))
	f1.Write([]byte("F\n"))
	if err := f2.Close(); err != nil {
		t.Fatal(err)
	}
	if got := string(w.read("logs/run.log")); got != "A\nB\nC\nD\nE\nF\n" {
		t.Fatalf("after the second appender's close = %q", got)
	}
	f1.Write([]byte("G\n"))
	if err := f1.Close(); err != nil {
		t.Fatal(err)
	}
	if got := string(w.read("logs/run.log")); got != "A\nB\nC\nD\nE\nF\nG\n" {
		t.Fatalf("two appenders = %q, want every line", got)
	}
	vs := w.eventually("logs/run.log", len(w.versions("logs/run.log")))
	if last := vs[len(vs)-1]; last.Size != 14 {
		t.Fatalf("latest version %d has %d bytes, want 14", last.Version, last.Size)
	}
	// An appender joins a writer that writes at offsets: its line lands at
	// the end, the writer's bytes where it put them.
	w.save("logs/table.txt", []byte("0123456789\n"))
	g, err := os.OpenFile(w.p("logs/table.txt"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	g.WriteAt([]byte("ab"), 2)
	w.sh(`echo tail >> logs/table.txt`)
	g.WriteAt([]byte("X"), 0)
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if got := string(w.read("logs/table.txt")); got != "X1ab456789\ntail\n" {
		t.Fatalf("a writer at offsets and an appender = %q", got)
	}
}

// Appenders that each open, write a line and close, at once (four shell
// loops on one log): every line stays, as in a plain folder. Looked up apart
// from the join, two opens copied the same version, or one copied the
// version just before another's close committed, and a close dropped lines.
func TestConcurrentAppendersKeepEveryLine(t *testing.T) {
	w := newWorld(t)
	w.mountRW()
	os.MkdirAll(w.p("app"), 0o755)
	w.sh(`echo start > app/log.txt`)
	const writers, lines = 4, 150
	w.sh(`for w in 1 2 3 4; do ( i=0; while [ $i -lt ` + strconv.Itoa(lines) + ` ]; do i=$((i+1)); echo "w$w $i" >> app/log.txt; done ) & done; wait`)
	got := strings.Split(strings.TrimSuffix(string(w.read("app/log.txt")), "\n"), "\n")
	if len(got) != writers*lines+1 {
		seen := map[string]bool{}
		for _, l := range got {
			seen[l] = true
		}
		var lost []string
		for wr := 1; wr <= writers; wr++ {
			for i := 1; i <= lines; i++ {
				if l := fmt.Sprintf("w%d %d", wr, i); !seen[l] {
					lost = append(lost, l)
				}
			}
		}
		t.Fatalf("%d lines, want %d; lost %d: %v", len(got), writers*lines+1, len(lost), lost[:min(len(lost), 10)])
	}
	// An append keeps the file's mode: the default 0644 (a record's Mode 0)
	// became 000, and a user's next `>>` (git's third commit) was refused.
	if fi, err := os.Stat(w.p("app/log.txt")); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("app/log.txt after appends: %v, %v; want 0644", fi.Mode(), err)
	}
}

// An editor's save that renames the file to a backup name (scratch), writes
// the file anew and removes the backup — vim's default — makes the edit the
// file's next version: version 1 stays reachable as name@v1, nothing is left
// in the trash, and vim's write test (4913) leaves no trace.
func TestEditorSaveByRenameKeepsHistory(t *testing.T) {
	w := newWorld(t)
	w.mountRW()
	os.MkdirAll(w.p("ed"), 0o755)
	if err := os.WriteFile(w.p("ed/notes.txt"), []byte("original\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w.sh(`touch ed/4913 && rm ed/4913 && mv ed/notes.txt ed/notes.txt~ && printf 'edited\n' > ed/notes.txt && rm ed/notes.txt~`)
	vs := w.eventually("ed/notes.txt", 2)
	if len(vs) != 2 || vs[0].Version != 1 || vs[1].Version != 2 {
		t.Fatalf("versions after an editor's save: %+v", vs)
	}
	if got := string(w.read("ed/notes.txt@v1")); got != "original\n" {
		t.Fatalf("notes.txt@v1 = %q", got)
	}
	if got := string(w.read("ed/notes.txt")); got != "edited\n" {
		t.Fatalf("notes.txt = %q", got)
	}
	if tl, _ := w.cat.TrashList(context.Background()); len(tl) != 0 {
		t.Fatalf("the trash after an editor's save: %+v", tl)
	}
}

// An editor's save of a key whose name looks like scratch (k~ saved with
// lamina save --key) makes its next version too: vim with backupcopy=no
// renames k~ to k~~ and writes k~ anew (or renames its temporary file onto
// it). Once the rename had moved k~ to the trash its name was scratch, and
// the edit a scratch file beside its versions in the trash.
func TestEditorSaveOfScratchLikeKeyKeepsHistory(t *testing.T) {
	w := newWorld(t)
	w.mountRW()
	for _, c := range []struct{ key, script string }{
		{"ed/k~", `mv ed/k~ ed/k~~ && printf 'edited\n' > ed/k~ && rm ed/k~~`},
		{"ed/.#x", `mv ed/.#x ed/.#x~ && printf 'edited\n' > ed/.tmp~ && mv ed/.tmp~ ed/.#x && rm ed/.#x~`},
	} {
		w.save(c.key, []byte("original\n"))
		w.sh(c.script)
		if got := string(w.read(c.key)); got != "edited\n" {
			t.Fatalf("%s = %q", c.key, got)
		}
		vs := w.eventually(c.key, 2)
		if len(vs) != 2 || vs[1].Version != 2 {
			t.Fatalf("versions of %s after an editor's save: %+v", c.key, vs)
		}
		if got := string(w.read(c.key + "@v1")); got != "original\n" {
			t.Fatalf("%s@v1 = %q", c.key, got)
		}
		if _, err := os.Stat(w.p(c.key + "@v1.meta")); err != nil {
			t.Fatalf("the sidecar of %s@v1: %v", c.key, err)
		}
		if tl, _ := w.cat.TrashList(context.Background()); len(tl) != 0 {
			t.Fatalf("the trash after an editor's save: %+v", tl)
		}
	}
}

// vim's swap file and the probe it makes beside it on the first try
// (.NAME.swpx for a NAME without a dot, .NAME.swx for one with: it tests
// whether the file system folds names to 8.3) are scratch for any NAME:
// the .swpx probe, created, closed empty and removed, was a key committed
// empty and left in the trash (vim w~ left .w~.swpx there). The syscalls
// are vim 9's, traced.
func TestVimSwapFilesLeaveNoTrace(t *testing.T) {
	w := newWorld(t)
	w.mountRW()
	names := []string{"w", "w~", "abcdefghijkl", "notes.md", "x.y~"}
	for _, n := range names {
		os.WriteFile(w.p(n), []byte("one\n"), 0o644)
		swp, probe := w.p("."+n+".swp"), w.p("."+n+".swpx")
		if strings.Contains(n, ".") {
			probe = w.p("." + n + ".swx")
		}
		create := func(p string) *os.File {
			t.Helper()
			f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				t.Fatalf("vim's create of %s: %v", filepath.Base(p), err)
			}
			return f
		}
		s, p := create(swp), create(probe)
		p.Close()
		if err := os.Remove(probe); err != nil {
			t.Fatal(err)
		}
		s.Close()
		os.Remove(swp)
		s = create(swp)
		s.Write(make([]byte, 4096))
		if err := os.WriteFile(w.p(n), []byte("one\nhello\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		s.Close()
		if err := os.Remove(swp); err != nil {
			t.Fatal(err)
		}
	}
	if tl, _ := w.cat.TrashList(context.Background()); len(tl) != 0 {
		t.Errorf("the trash after vim's edits: %+v", tl)
	}
	want := slices.Clone(names)
	slices.Sort(want)
	if got := w.ls(""); !slices.Equal(got, want) {
		t.Errorf("ls after vim's edits: %v, want %v", got, want)
	}
}

// A data file written through the mount is described as lamina save
// describes it (otype, n_observations, shape, columns), so a pipeline's
// outputs are as queryable as saved files; one its suffix misnames gets no
// otype.
func TestWrittenDataFilesAreDescribed(t *testing.T) {
	w := newWorld(t)
	w.mountRW()
	os.MkdirAll(w.p("out"), 0o755)
	for name, src := range map[string]string{"obs.csv": "pbmc_small_obs.csv", "pbmc.h5ad": "pbmc_small.h5ad", "obs.parquet": "pbmc_small_obs.parquet"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "shared", "data", "samples", src))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(w.p("out/"+name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(w.p("out/bad.h5ad"), []byte("not an HDF5 file"), 0o644)
	for key, want := range map[string]string{"out/obs.csv": "DataFrame", "out/pbmc.h5ad": "AnnData", "out/obs.parquet": "DataFrame", "out/bad.h5ad": ""} {
		vs := w.eventually(key, 1)
		if len(vs) != 1 {
			t.Fatalf("%s: %d versions", key, len(vs))
		}
		v := vs[0]
		if v.OType != want {
			t.Errorf("%s: otype %q, want %q", key, v.OType, want)
		}
		if want != "" && (v.NObservations != 315 || len(v.Columns) == 0) {
			t.Errorf("%s: n_observations %d, %d columns; want 315 and the columns", key, v.NObservations, len(v.Columns))
		}
	}
}

// cp of a Parquet file whose footer is damaged (the library panics on
// it) into the mount succeeds: the close saves it as a plain file, and it
// reads back as written. It used to fail with EIO and save nothing.
func TestDamagedParquetCopiedIn(t *testing.T) {
	w := newWorld(t)
	w.mountRW()
	b, err := os.ReadFile(filepath.Join("..", "..", "shared", "data", "samples", "pbmc_small_obs.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	b[5557] = 0x7f
	src := filepath.Join(t.TempDir(), "one.parquet")
	os.WriteFile(src, b, 0o644)
	os.MkdirAll(w.p("crash"), 0o755)
	w.sh(`cp "` + src + `" crash/c.parquet`)
	vs := w.eventually("crash/c.parquet", 1)
	if len(vs) != 1 || vs[0].OType != "" {
		t.Fatalf("crash/c.parquet: %+v; want one version without an otype", vs)
	}
	if got := w.read("crash/c.parquet"); !bytes.Equal(got, b) {
		t.Fatalf("read back %d bytes, want the %d copied", len(got), len(b))
	}
}

// `(cmd1; cmd2) > out` — a rule's usual shell — opens out once, in the
// subshell; each command it starts closes an inherited copy of the
// descriptor, and each such close (a FLUSH) made a version of the partial
// file. Only the opener's close, or the last one, commits. A Python
// writer handing its file to a child and closing its own first still gets
// the child's whole output.
func TestInheritedDescriptorClosesMakeNoVersions(t *testing.T) {
	w := newWorld(t)
	w.mountRW()
	w.sh(`(for i in 1 2 3; do /bin/echo line$i; sleep 0.2; done) > grp.txt`)
	if vs := w.versions("grp.txt"); len(vs) != 1 || vs[0].Size != 18 {
		t.Errorf("grp.txt: %d versions, want one of 18 bytes: %+v", len(vs), vs)
	}
	w.sh(`python3 -c '
import subprocess
f = open("child.txt", "w")
p = subprocess.Popen(["sh", "-c", "sleep 0.3; echo from the child"], stdout=f)
f.close()
p.wait()'`)
	waitFor(func() bool { return len(w.versions("child.txt")) > 0 }) // RELEASE follows the child's exit
	if got := string(w.read("child.txt")); got != "from the child\n" {
		t.Errorf("child.txt = %q after the child's close", got)
	}
}

// An editor's save of a key some of whose versions the user had removed
// (rm, then the file written again after the window that would bring them
// back): the save continues the live history and the removed version
// stays in the trash. The restore that continues an editor's history took
// every trashed version back (audit 25); then it took none, and the
// save started after a trashed history (v2 in the trash). It brings back
// what the rename trashed (its trash entry) alone.
func TestEditorSaveLeavesRemovedVersionsInTrash(t *testing.T) {
	const window = 2 * time.Second
	w := newWorld(t)
	w.mountRWWindow(window)
	w.sh(`mkdir u && echo a > u/f && rm u/f`)
	time.Sleep(window + window/4)
	w.sh(`echo b > u/f && mv u/f u/f~ && echo c > u/f && rm u/f~`)
	if got := string(w.read("u/f")); got != "c\n" {
		t.Fatalf("u/f = %q", got)
	}
	w.wantVersions("u/f", []int{2, 3}, []int{1})
}
