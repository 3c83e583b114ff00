package fs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"testing"

	lfs "github.com/lamina-bio/lamina/fs"
	"golang.org/x/sys/unix"
)

// inoOf is the inode number stat(2) gives for p.
func inoOf(t *testing.T, p string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// TestFsyncKeepsInode: each fsync of an open file commits a version, and
// the path keeps the inode of the open file, its key's, also after its
// last close. Before, each version moved the path to another inode under
// the writer, which programs that compare stat(path) with fstat(fd) take
// for a replaced file (SQLite: "attempt to write a readonly database" from
// the second transaction on).
func TestFsyncKeepsInode(t *testing.T) {
	w := newWorld(t)
	w.save("ex/old.txt", []byte("v1"))
	w.mountRW()
	for _, name := range []string{"ex/new.txt", "ex/old.txt"} {
		f, err := os.OpenFile(w.p(name), os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := f.Stat()
		fdIno := fi.Sys().(*syscall.Stat_t).Ino
		for i, text := range []string{"first", "second commit", "third"} {
			if _, err := f.WriteAt([]byte(text), 0); err != nil {
				t.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
			if got := inoOf(t, w.p(name)); got != fdIno {
				t.Fatalf("%s after fsync %d: the path's inode %d, the open file's %d", name, i+1, got, fdIno)
			}
			// Readers of the path see what was committed.
			if b, err := os.ReadFile(w.p(name)); err != nil || !bytes.HasPrefix(b, []byte(text)) {
				t.Fatalf("%s after fsync %d reads %q, %v", name, i+1, b, err)
			}
		}
		f.Close()
		vs := w.versions(name)
		if want := map[string]int{"ex/new.txt": 3, "ex/old.txt": 4}[name]; len(vs) != want {
			t.Fatalf("%s has %d versions, want %d (one per fsync)", name, len(vs), want)
		}
		// RELEASE is asynchronous: give it a moment.
		latest := lfs.Ino("l", name)
		var got uint64
		if !waitFor(func() bool { got = inoOf(t, w.p(name)); return got == latest }) {
			t.Fatalf("%s after the last close shows inode %d, want its key's %d", name, got, latest)
		}
	}
}

// TestFsyncKeepsInodeRenamed: a file renamed while open (log rotation)
// leaves its old name free: a new file opened there keeps its own inode at
// that path, and each name reads its own bytes.
func TestFsyncKeepsInodeRenamed(t *testing.T) {
	w := newWorld(t)
	w.save("logs/app.log", []byte("saved\n"))
	w.mountRW()
	open := func(name string) *os.File {
		f, err := os.OpenFile(w.p(name), os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	fdIno := func(f *os.File) uint64 {
		fi, err := f.Stat()
		if err != nil {
			t.Fatal(err)
		}
		return fi.Sys().(*syscall.Stat_t).Ino
	}
	old := open("logs/app.log")
	old.WriteString("old\n")
	if err := old.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(w.p("logs/app.log"), w.p("logs/app.log.1")); err != nil {
		t.Fatal(err)
	}
	cur := open("logs/app.log")
	cur.WriteString("new\n")
	if err := cur.Sync(); err != nil {
		t.Fatal(err)
	}
	if got, want := inoOf(t, w.p("logs/app.log")), fdIno(cur); got != want {
		t.Fatalf("app.log shows inode %d, its open file has %d (the renamed file's: %d)", got, want, fdIno(old))
	}
	for name, want := range map[string]string{"logs/app.log": "new\n", "logs/app.log.1": "saved\nold\n"} {
		if b, err := os.ReadFile(w.p(name)); err != nil || string(b) != want {
			t.Fatalf("%s = %q, %v; want %q", name, b, err, want)
		}
	}
}

// TestSQLite: a database in the mount takes many transactions per
// connection, a new database and an existing one; each commit makes a
// version, and SQLite's journals are scratch files, not artifacts.
func TestSQLite(t *testing.T) {
	needTool(t, "python3")
	w := newWorld(t)
	w.mountRW()
	w.sh(`python3 - <<'PY'
import os, sqlite3
os.makedirs("db", exist_ok=True)
for round in range(2):
    c = sqlite3.connect("db/lab.db")
    c.execute("create table if not exists samples (name text)")
    for i in range(4):
        c.execute("insert into samples values (?)", (f"s{round}{i}",))
        c.commit()
    c.close()
n = sqlite3.connect("db/lab.db").execute("select count(*) from samples").fetchone()[0]
assert n == 8, n
PY`)
	if vs := w.versions("db/lab.db"); len(vs) < 8 {
		t.Fatalf("db/lab.db has %d versions, want one per transaction (≥ 8)", len(vs))
	}
	if vs := w.versions("db/lab.db-journal"); len(vs) != 0 {
		t.Fatalf("the journal became an artifact: %d versions", len(vs))
	}
	if tl, _ := w.cat.TrashList(context.Background()); len(tl) != 0 {
		t.Fatalf("the trash holds %+v", tl)
	}
}

// TestFsyncFolder: fsync of a folder (tools do it after renaming a file
// into place) succeeds; it answered EOPNOTSUPP.
func TestFsyncFolder(t *testing.T) {
	w := newWorld(t)
	w.mountRW()
	os.MkdirAll(w.p("out"), 0o755)
	os.WriteFile(w.p("out/.a.tmp"), []byte("A"), 0o644)
	if err := os.Rename(w.p("out/.a.tmp"), w.p("out/a.txt")); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"out", "."} {
		d, err := os.Open(w.p(dir))
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Sync(); err != nil {
			t.Errorf("fsync of folder %q: %v", dir, err)
		}
		d.Close()
	}
}

// TestFallocate: fallocate(2) of mode 0 extends a file with zeros as
// ftruncate would, FALLOC_FL_KEEP_SIZE only reserves, and punching holes
// is refused without touching the file.
func TestFallocate(t *testing.T) {
	w := newWorld(t)
	w.save("fa/old.bin", []byte("keep"))
	w.mountRW()
	alloc := func(name string, mode uint32, off, n int64) error {
		f, err := os.OpenFile(w.p(name), os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		return unix.Fallocate(int(f.Fd()), mode, off, n)
	}
	read := func(name string) []byte {
		b, err := os.ReadFile(w.p(name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if err := alloc("fa/new.bin", 0, 0, 1<<20); err != nil {
		t.Fatalf("fallocate of a new file: %v", err)
	}
	if b := read("fa/new.bin"); !bytes.Equal(b, make([]byte, 1<<20)) {
		t.Fatalf("fa/new.bin: %d bytes, want 1 MiB of zeros", len(b))
	}
	if err := alloc("fa/old.bin", 0, 2, 6); err != nil {
		t.Fatal(err)
	}
	if b := read("fa/old.bin"); string(b) != "keep\x00\x00\x00\x00" {
		t.Fatalf("fa/old.bin = %q, want its bytes then zeros to 8", b)
	}
	if err := alloc("fa/old.bin", unix.FALLOC_FL_KEEP_SIZE, 0, 1<<20); err != nil {
		t.Fatal(err)
	}
	err := alloc("fa/old.bin", unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 0, 4)
	if !errors.Is(err, unix.EOPNOTSUPP) {
		t.Fatalf("punching a hole: %v, want EOPNOTSUPP", err)
	}
	if b := read("fa/old.bin"); string(b) != "keep\x00\x00\x00\x00" {
		t.Fatalf("fa/old.bin = %q after the refused punch", b)
	}
	if n := len(w.versions("fa/old.bin")); n != 2 {
		t.Fatalf("fa/old.bin has %d versions, want 2 (KEEP_SIZE and the refused punch change nothing)", n)
	}
}

// TestFsyncManyWriters: writers of one key fsync in turn while readers
// stat and read its path; every fsync that changed the bytes is a version,
// readers only ever see committed bytes, and once all are closed the path
// shows its key's inode.
func TestFsyncManyWriters(t *testing.T) {
	w := newWorld(t)
	w.mountRW()
	os.MkdirAll(w.p("many"), 0o755)
	const writers, rounds = 4, 10
	var wg sync.WaitGroup
	errs := make(chan error, writers+2)
	stop := make(chan struct{})
	for k := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, err := os.OpenFile(w.p("many/log.txt"), os.O_RDWR|os.O_CREATE, 0o644)
			if err != nil {
				errs <- err
				return
			}
			defer f.Close()
			for r := range rounds {
				// Each writer's own bytes at each round: every fsync commits
				// something new.
				if _, err := f.WriteAt([]byte(fmt.Sprintf("writer %d round %02d\n", k, r)), 0); err != nil {
					errs <- err
					return
				}
				if err := f.Sync(); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	var readers sync.WaitGroup
	for range 2 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				b, err := os.ReadFile(w.p("many/log.txt"))
				if err != nil && !errors.Is(err, os.ErrNotExist) {
					errs <- err
					return
				}
				if len(b) > 0 && !bytes.HasPrefix(b, []byte("writer ")) {
					errs <- fmt.Errorf("a reader saw %q", b)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	vs := w.versions("many/log.txt")
	if len(vs) < rounds || len(vs) > writers*rounds {
		t.Fatalf("%d versions from %d fsyncs", len(vs), writers*rounds)
	}
	latest := lfs.Ino("l", "many/log.txt")
	var got uint64
	if !waitFor(func() bool { got = inoOf(t, w.p("many/log.txt")); return got == latest }) { // the RELEASE
		t.Fatalf("after the last close the path shows inode %d, want its key's %d", got, latest)
	}
}

// TestAppendWithReader: a log written with O_APPEND, fsynced now and then,
// while others stat its path and read it. Every line lands after the last:
// what they were told of the committed version (a lookup's attributes, a
// short read) set the size the kernel keeps for the inode lower than the
// writer's, and the kernel placed the next append there, overwriting the
// lines before. The open reader reads each version the writer commits.
func TestAppendWithReader(t *testing.T) {
	w := newWorld(t)
	w.mountRW()
	os.MkdirAll(w.p("logs"), 0o755)
	name := "logs/run.log"
	wf, err := os.OpenFile(w.p(name), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer wf.Close()
	var want []byte
	appendLine := func(i int, sync bool) {
		line := fmt.Sprintf("line%d\n", i)
		want = append(want, line...)
		if _, err := wf.WriteString(line); err != nil {
			t.Fatal(err)
		}
		if sync {
			if err := wf.Sync(); err != nil {
				t.Fatal(err)
			}
		}
	}
	appendLine(0, true)
	rf, err := os.Open(w.p(name))
	if err != nil {
		t.Fatal(err)
	}
	defer rf.Close()
	for i := 1; i <= 6; i++ {
		if _, err := rf.Stat(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(w.p(name)); err != nil { // a LOOKUP after each commit
			t.Fatal(err)
		}
		if _, err := rf.ReadAt(make([]byte, 64), 0); err != nil && !errors.Is(err, io.EOF) {
			t.Fatal(err)
		}
		appendLine(i, i%2 == 0) // every other line stays staged, uncommitted
		// The reader follows what the writer commits (tail -f).
		buf := make([]byte, 256)
		k, err := rf.ReadAt(buf, 0)
		if err != nil && !errors.Is(err, io.EOF) {
			t.Fatal(err)
		}
		if committed := w.read(name + "@v" + fmt.Sprint(len(w.versions(name)))); !bytes.Equal(buf[:k], committed) {
			t.Fatalf("after line%d the open reader reads %q, want the latest version's %q", i, buf[:k], committed)
		}
	}
	wf.Close()
	if got := w.read(name); !bytes.Equal(got, want) {
		t.Fatalf("%s = %q, want %q", name, got, want)
	}
}

// TestReaderSkipsWritersPages: a reader that opens a path while a writer
// holds its inode reads the committed version, not the pages the writer
// has written since into the inode's page cache.
func TestReaderSkipsWritersPages(t *testing.T) {
	w := newWorld(t)
	w.mountRW()
	os.MkdirAll(w.p("pg"), 0o755)
	page := func(c byte) []byte { return bytes.Repeat([]byte{c}, 8192) }
	wf, err := os.OpenFile(w.p("pg/data.bin"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer wf.Close()
	write := func(c byte) {
		if _, err := wf.WriteAt(page(c), 0); err != nil {
			t.Fatal(err)
		}
	}
	write('A')
	if err := wf.Sync(); err != nil { // version 1
		t.Fatal(err)
	}
	write('B')
	rf, err := os.Open(w.p("pg/data.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer rf.Close()
	got := make([]byte, 8192)
	for _, c := range []byte{'B', 'C'} {
		write(c)
		if _, err := rf.ReadAt(got, 0); err != nil && !errors.Is(err, io.EOF) {
			t.Fatal(err)
		}
		if !bytes.Equal(got, page('A')) {
			t.Fatalf("the reader saw %q… while the writer wrote %c; want version 1 (A…)", got[:8], c)
		}
	}
}
