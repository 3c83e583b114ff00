package fs_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Writers of one key without O_TRUNC share its bytes, as they would share
// one inode (Stage.Join): two handles opened O_RDWR and O_WRONLY, each
// writing at its own offsets, leave both writers' bytes in the version the
// last close makes. Each held a copy of its own, and the last close's
// version dropped the other's bytes.
func TestInPlaceWritersShareTheirBytes(t *testing.T) {
	w := newWorld(t)
	w.mountRW()
	if err := os.WriteFile(w.p("f"), bytes.Repeat([]byte("."), 100), 0o644); err != nil {
		t.Fatal(err)
	}
	h1 := openFile(t, w.p("f"), os.O_RDWR)
	h2 := openFile(t, w.p("f"), os.O_WRONLY)
	h1.WriteAt([]byte("11"), 0)
	h2.WriteAt([]byte("22"), 50)
	if err := h2.Close(); err != nil {
		t.Fatal(err)
	}
	h1.WriteAt([]byte("33"), 98)
	buf := make([]byte, 2)
	if _, err := h1.ReadAt(buf, 50); err != nil || string(buf) != "22" {
		t.Fatalf("the first writer reads %q, %v at the second's offset; want 22", buf, err)
	}
	if err := h1.Close(); err != nil {
		t.Fatal(err)
	}
	want := []byte(strings.Repeat(".", 100))
	copy(want[0:], "11")
	copy(want[50:], "22")
	copy(want[98:], "33")
	if got := w.read("f"); !bytes.Equal(got, want) {
		t.Fatalf("f = %q, want both writers' bytes %q", got, want)
	}
}

// A file mapped by its writer (open O_CREAT|O_RDWR, ftruncate, mmap
// MAP_SHARED) and opened O_RDWR by another descriptor meanwhile: the second
// open shows the writer's size and the mapping stays whole. It got a copy
// of the committed (empty) file, whose size the kernel took for the inode:
// it shrank the file under the mapping, and the writer's next store died
// of SIGBUS. The mapping is made by another process: a page fault on the
// mount from the test's own would stop its FUSE server with it.
func TestSecondOpenKeepsMappedWritersSize(t *testing.T) {
	needTool(t, "python3")
	w := newWorld(t)
	w.mountRW()
	w.sh(`mkdir mm && python3 - <<'PY'
import mmap, os
p = "mm/arr.bin"
fd = os.open(p, os.O_CREAT | os.O_RDWR, 0o644)
os.ftruncate(fd, 32768)
m = mmap.mmap(fd, 32768, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
m[0:1] = b"a"
m[32767:32768] = b"z"
fd2 = os.open(p, os.O_RDWR)
size = os.fstat(fd2).st_size
if size != 32768:
    raise SystemExit("the second open shows %d bytes, want 32768" % size)
m[20000:20001] = b"q"
os.pwrite(fd2, b"B", 1)
m.flush()
m.close()
os.close(fd2)
os.close(fd)
PY`)
	want := make([]byte, 32768)
	want[0], want[1], want[20000], want[32767] = 'a', 'B', 'q', 'z'
	if got := w.read("mm/arr.bin"); !bytes.Equal(got, want) {
		t.Fatalf("mm/arr.bin: %d bytes, want 32768 with both writers' bytes", len(got))
	}
}

// Two SQLite connections of two processes on one database in the mount
// (rollback journal): every row each committed stays. Each process's
// descriptor held a copy of its own, and the one closed last undid the
// other's transactions (B's 150 rows left 50).
func TestSQLiteTwoProcessesKeepEveryRow(t *testing.T) {
	needTool(t, "python3")
	w := newWorld(t)
	w.mountRW()
	w.sh(`mkdir db && python3 - db/big.db <<'PY'
import sqlite3, subprocess, sys
p = sys.argv[1]
a = sqlite3.connect(p)
a.execute("create table t(w, pad)")
a.commit()
B = "import sqlite3,sys;c=sqlite3.connect(sys.argv[1]);c.executemany('insert into t values(?,?)',[('B','x'*500)]*50);c.commit();c.close()"
for i in range(3):
    a.execute("insert into t values('A','')")
    a.commit()
    subprocess.run([sys.executable, "-c", B, p], check=True)
a.close()
c = sqlite3.connect(p)
got = c.execute("select w, count(*) from t group by w order by w").fetchall()
ok = c.execute("pragma integrity_check").fetchone()
if got != [("A", 3), ("B", 150)] or ok != ("ok",):
    raise SystemExit("rows %r, integrity %r; want A 3, B 150" % (got, ok))
PY`)
}

// A writer's handle that has written nothing reads what another writer
// commits to the key meanwhile (`printf new > f`), as a descriptor of a
// plain file does, and its write lands on that: a SQLite reader
// connection (always O_RDWR) held open read the database as it was at
// its open, and a write through it made those older bytes the latest.
func TestIdleWriterFollowsNewVersion(t *testing.T) {
	w := newWorld(t)
	w.mountRW()
	if err := os.WriteFile(w.p("f"), []byte("old content\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := openFile(t, w.p("f"), os.O_RDWR)
	defer h.Close()
	buf := make([]byte, 64)
	if n, _ := h.ReadAt(buf, 0); string(buf[:n]) != "old content\n" {
		t.Fatalf("read %q at the open", buf[:n])
	}
	w.sh(`printf 'new\n' > f`)
	if fi, err := h.Stat(); err != nil || fi.Size() != 4 {
		t.Fatalf("fstat after the other writer's version: %v, %v; want 4 bytes", fi.Size(), err)
	}
	if n, _ := h.ReadAt(buf, 0); string(buf[:n]) != "new\n" {
		t.Fatalf("read %q after the other writer's version, want %q", buf[:n], "new\n")
	}
	h.WriteAt([]byte("N"), 0)
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if got := string(w.read("f")); got != "New\n" {
		t.Fatalf("f = %q, want the write on the newest version: %q", got, "New\n")
	}
}

// Workers of a pool each map one shared array file (numpy's memmap 'r+')
// and write a row of their own: every row is in the file after them. Each
// worker's open had a copy of its own, the kernel wrote the one page cache
// of the inode back through any of them, and the last close's version
// held rows of some workers and zeros for the others.
func TestMappedRowWritersKeepEveryRow(t *testing.T) {
	needTool(t, "python3")
	w := newWorld(t)
	w.mountRW()
	w.sh(`mkdir arr && python3 - <<'PY'
import mmap, multiprocessing, os
p, rows, row = "arr/a.bin", 8, 8192
with open(p, "wb") as f:
    f.truncate(rows * row)

def work(i):
    fd = os.open(p, os.O_RDWR)
    m = mmap.mmap(fd, rows * row, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
    m[i * row:(i + 1) * row] = bytes([65 + i]) * row
    m.flush()
    m.close()
    os.close(fd)

with multiprocessing.get_context("fork").Pool(4) as pool:
    pool.map(work, range(rows), chunksize=1)
PY`)
	got := w.read("arr/a.bin")
	if len(got) != 8*8192 {
		t.Fatalf("arr/a.bin has %d bytes, want %d", len(got), 8*8192)
	}
	for i := 0; i < 8; i++ {
		if row := got[i*8192 : (i+1)*8192]; !bytes.Equal(row, bytes.Repeat([]byte{byte('A' + i)}, 8192)) {
			t.Fatalf("row %d holds %q…, want its worker's %c", i, row[:16], 'A'+i)
		}
	}
}

// A writer that joins a File created or truncated and not written yet, and
// closes without writing (another process's `1<>f`), commits nothing: the
// File's writer, still to write, makes the one version. The joiner's close,
// as the last descriptor of its process, made an empty version first.
func TestJoinerClosingUnwrittenFileMakesNoVersion(t *testing.T) {
	w := newWorld(t)
	w.mountRW()
	if err := os.WriteFile(w.p("f"), []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := openFile(t, w.p("f"), os.O_WRONLY|os.O_TRUNC)
	w.sh(`: 1<>f`)
	h.Write([]byte("new\n"))
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if got := string(w.read("f")); got != "new\n" {
		t.Fatalf("f = %q, want %q", got, "new\n")
	}
	if vs := w.versions("f"); len(vs) != 2 {
		t.Fatalf("f has %d versions, want 2 (old, new)", len(vs))
	}
}

// touch (or `: >> f`) of a file another process is writing joins its File
// and closes having written nothing: no version, and the writer goes on.
// Its close committed what the File held so far: `cp`'s half copy became
// the latest version until cp closed. The writer's own close makes the one
// version, with the whole content. The same for an O_RDWR writer holding
// changes not committed.
func TestTouchOfFileBeingWrittenMakesNoVersion(t *testing.T) {
	w := newWorld(t)
	w.mountRW()
	c, err := os.OpenFile(w.p("copy.bin"), os.O_WRONLY|os.O_TRUNC|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("first half of a copy|")); err != nil {
		t.Fatal(err)
	}
	w.sh(`touch copy.bin; : >> copy.bin`)
	if vs := w.versions("copy.bin"); len(vs) != 0 {
		t.Fatalf("touch of a file being written made %d versions (%d bytes), want none", len(vs), vs[len(vs)-1].Size)
	}
	if _, err := c.Write([]byte("second half")); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if vs := w.versions("copy.bin"); len(vs) != 1 {
		t.Fatalf("copy.bin has %d versions after its writer's close, want 1", len(vs))
	}
	if got := string(w.read("copy.bin")); got != "first half of a copy|second half" {
		t.Fatalf("copy.bin = %q, want the whole copy", got)
	}

	if err := os.WriteFile(w.p("f"), []byte("old content\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := openFile(t, w.p("f"), os.O_RDWR)
	h.WriteAt([]byte("NEW"), 0)
	w.sh(`touch f`)
	if vs := w.versions("f"); len(vs) != 1 {
		t.Fatalf("touch of a file an O_RDWR writer changed made %d versions, want 1 (old)", len(vs))
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if vs := w.versions("f"); len(vs) != 2 {
		t.Fatalf("f has %d versions after its writer's close, want 2", len(vs))
	}
	if got := string(w.read("f")); got != "NEW content\n" {
		t.Fatalf("f = %q, want the writer's %q", got, "NEW content\n")
	}
}

// Opens for writing that write nothing (a reader connection opened O_RDWR),
// opened and closed next to an appender, make no version: the appender's
// close makes one with every line. Each idle close committed the log as it
// was then (28 versions of a busy log for 200 opens). A sharer's fsync
// still commits, as fsync of any descriptor flushes the inode, and a
// sharer that wrote commits at its close.
func TestIdleOpensNextToAppenderMakeNoVersions(t *testing.T) {
	w := newWorld(t)
	w.mountRW()
	app, err := os.OpenFile(w.p("log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	for i := 0; i < 40; i++ {
		line := strings.Repeat(string(rune('a'+i%26)), 10) + "\n"
		if _, err := app.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
		want.WriteString(line)
		if err := openFile(t, w.p("log"), os.O_RDWR).Close(); err != nil {
			t.Fatal(err)
		}
	}
	if vs := w.versions("log"); len(vs) != 0 {
		t.Fatalf("idle opens next to the appender made %d versions, want none", len(vs))
	}
	idle := openFile(t, w.p("log"), os.O_RDWR)
	if err := idle.Sync(); err != nil {
		t.Fatal(err)
	}
	if vs := w.versions("log"); len(vs) != 1 || vs[0].Size != int64(want.Len()) {
		t.Fatalf("after a sharer's fsync: %d versions, want 1 of %d bytes", len(vs), want.Len())
	}
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	sharer := openFile(t, w.p("log"), os.O_WRONLY|os.O_APPEND)
	sharer.Write([]byte("sharer\n"))
	want.WriteString("sharer\n")
	if err := sharer.Close(); err != nil {
		t.Fatal(err)
	}
	if vs := w.versions("log"); len(vs) != 2 {
		t.Fatalf("a sharer that wrote and closed: %d versions, want 2", len(vs))
	}
	app.Write([]byte("last\n"))
	want.WriteString("last\n")
	if err := app.Close(); err != nil {
		t.Fatal(err)
	}
	if vs := w.versions("log"); len(vs) != 3 {
		t.Fatalf("after the appender's close: %d versions, want 3", len(vs))
	}
	if got := string(w.read("log")); got != want.String() {
		t.Fatalf("log = %q, want every line %q", got, want.String())
	}
}

// A SQLite database named as a GeoPackage (x.gpkg) in WAL mode, and one in
// rollback mode (y.mbtiles): the database has its versions, its -wal,
// -shm and -journal files are scratch (DefaultScratch) and have none, in
// the listing or the trash. Only *.db-* and *.sqlite*-* were: a GeoPackage
// made a version of its -wal at each transaction. A session of 20
// transactions on the WAL database makes one version, at its close (the
// checkpoint's fsync).
func TestSQLiteSidecarsOfOtherSuffixesAreScratch(t *testing.T) {
	needTool(t, "python3")
	w := newWorld(t)
	w.mountRW()
	script := filepath.Join(t.TempDir(), "session.py")
	if err := os.WriteFile(script, []byte(`import sqlite3, sys
p, mode = sys.argv[1], sys.argv[2]
c = sqlite3.connect(p)
c.execute("pragma journal_mode=" + mode)
c.execute("create table if not exists t(i)")
c.commit()
for i in range(int(sys.argv[3])):
    c.execute("insert into t values(?)", (i,))
    c.commit()
c.close()
`), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("S", script)
	w.sh(`mkdir geo && python3 "$S" geo/x.gpkg wal 0`)
	before := len(w.versions("geo/x.gpkg"))
	w.sh(`python3 "$S" geo/x.gpkg wal 20 && python3 "$S" geo/y.mbtiles delete 20`)
	if vs := w.versions("geo/x.gpkg"); len(vs) != before+1 {
		t.Fatalf("geo/x.gpkg has %d versions after a session of 20 transactions, want %d+1: its close", len(vs), before)
	}
	if vs := w.versions("geo/y.mbtiles"); len(vs) == 0 {
		t.Fatalf("geo/y.mbtiles has no version")
	}
	for _, k := range []string{"geo/x.gpkg-wal", "geo/x.gpkg-shm", "geo/y.mbtiles-journal"} {
		if vs := w.versions(k); len(vs) != 0 {
			t.Errorf("%s has %d versions, want none (scratch)", k, len(vs))
		}
	}
	if trashed := w.trashKeys(); len(trashed) != 0 {
		t.Errorf("the trash holds %v, want nothing", trashed)
	}
	w.sh(`test "$(python3 -c 'import sqlite3; print(sqlite3.connect("geo/x.gpkg").execute("select count(*) from t").fetchone()[0])')" = 20`)
}
