package instance_test

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/instance"
	"github.com/lamina-bio/lamina/stage"
	"golang.org/x/sys/unix"
)

// layoutSettings are settings whose cache folder is under cacheBase and
// data folder under dataBase.
func layoutSettings(cacheBase, dataBase string) instance.Settings {
	return instance.Settings{Name: "m", CacheDir: filepath.Join(cacheBase, "m"), DataDir: filepath.Join(dataBase, "m")}
}

func write(t *testing.T, p string, b []byte, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, mode); err != nil {
		t.Fatal(err)
	}
}

func wantFile(t *testing.T, p string, b []byte) {
	t.Helper()
	got, err := os.ReadFile(p)
	if err != nil || !bytes.Equal(got, b) {
		t.Errorf("%s: %q %v, want %q", p, got, err, b)
	}
}

func gone(t *testing.T, p string) {
	t.Helper()
	if _, err := os.Lstat(p); err == nil {
		t.Errorf("%s is still there", p)
	}
}

// oldLayout fills the cache folder of s as an older lamina left it: two
// queued uploads, a staged closed file with its journal, a tombstone log
// and a scratch tree (a subfolder, an executable, a symlink).
func oldLayout(t *testing.T, s instance.Settings) time.Time {
	c := s.CacheDir
	write(t, filepath.Join(c, "uploads", "packs%2Faa%2Fone"), []byte("pack one"), 0o600)
	write(t, filepath.Join(c, "uploads", "records%2Fr1.json"), []byte("record"), 0o600)
	write(t, filepath.Join(c, "uploads", ".lock"), nil, 0o600)
	write(t, filepath.Join(c, "staging", "aaaa"), []byte("staged bytes"), 0o600)
	write(t, filepath.Join(c, "staging", "journal"), []byte(`{"id":"aaaa","state":"closed","key":"k/a.bin","mode":420}`+"\n"), 0o600)
	write(t, filepath.Join(c, "tombstones", "log"), []byte(`{"id":"x","purged":["u1"]}`+"\n"), 0o600)
	write(t, filepath.Join(c, "scratch", ".snakemake", "log", "run.log"), []byte("scratch"), 0o644)
	write(t, filepath.Join(c, "scratch", ".snakemake", "run.sh"), []byte("#!/bin/sh\n"), 0o755)
	if err := os.Symlink("log/run.log", filepath.Join(c, "scratch", ".snakemake", "last")); err != nil {
		t.Fatal(err)
	}
	mt := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	os.Chtimes(filepath.Join(c, "scratch", ".snakemake", "log", "run.log"), mt, mt)
	return mt
}

// checkNewLayout checks that everything oldLayout made is in the data
// folder, and nothing in the cache folder.
func checkNewLayout(t *testing.T, s instance.Settings, mt time.Time) {
	t.Helper()
	p, err := cache.ScanUploads(s.UploadDir())
	if err != nil || p.Objects != 2 || p.Items[0].Name != "packs/aa/one" || p.Items[1].Name != "records/r1.json" {
		t.Errorf("uploads in the data folder: %+v %v", p.Items, err)
	}
	wantFile(t, filepath.Join(s.UploadDir(), "packs%2Faa%2Fone"), []byte("pack one"))
	files, err := stage.Staged(s.StagingDir())
	if err != nil || len(files) != 1 || files[0].Key != "k/a.bin" || !files[0].Closed {
		t.Errorf("staged files in the data folder: %+v %v", files, err)
	} else {
		wantFile(t, files[0].Path, []byte("staged bytes"))
	}
	wantFile(t, filepath.Join(s.TombstoneDir(), "log"), []byte(`{"id":"x","purged":["u1"]}`+"\n"))
	sc := s.ScratchDir()
	wantFile(t, filepath.Join(sc, ".snakemake", "log", "run.log"), []byte("scratch"))
	if info, err := os.Stat(filepath.Join(sc, ".snakemake", "log", "run.log")); err != nil || !info.ModTime().Equal(mt) {
		t.Errorf("scratch file's mtime: %v %v, want %v", info.ModTime(), err, mt)
	}
	if info, err := os.Stat(filepath.Join(sc, ".snakemake", "run.sh")); err != nil || info.Mode().Perm() != 0o755 {
		t.Errorf("scratch file's mode: %v %v", info, err)
	}
	if l, err := os.Readlink(filepath.Join(sc, ".snakemake", "last")); err != nil || l != "log/run.log" {
		t.Errorf("scratch symlink: %q %v", l, err)
	}
	for _, name := range []string{"uploads", "staging", "tombstones", "scratch"} {
		gone(t, filepath.Join(s.CacheDir, name))
	}
}

// On one file system the folders are renamed whole; a second run has
// nothing to do.
func TestMoveFromCache(t *testing.T) {
	base := t.TempDir()
	s := layoutSettings(filepath.Join(base, "cache"), filepath.Join(base, "data"))
	mt := oldLayout(t, s)
	r, err := instance.MoveFromCache(s, nil)
	if err != nil || len(r.Moved) != 4 || len(r.Busy)+len(r.Kept) != 0 {
		t.Fatalf("move: %+v %v", r, err)
	}
	checkNewLayout(t, s, mt)
	if r, err := instance.MoveFromCache(s, nil); err != nil || len(r.Moved)+len(r.Busy)+len(r.Kept) != 0 {
		t.Fatalf("second move: %+v %v", r, err)
	}
}

// The cache folder on another file system (tmpfs): entries are copied,
// synced, renamed into place, and only then removed.
func TestMoveFromCacheAcrossFileSystems(t *testing.T) {
	shm, err := os.MkdirTemp("/dev/shm", "lamina-layout-")
	if err != nil {
		t.Fatalf("a tmpfs for the cache folder: %v", err)
	}
	defer os.RemoveAll(shm)
	var a, b syscall.Stat_t
	data := t.TempDir()
	if syscall.Stat(shm, &a) != nil || syscall.Stat(data, &b) != nil || a.Dev == b.Dev {
		t.Fatalf("/dev/shm and %s are one file system", data)
	}
	s := layoutSettings(shm, data)
	mt := oldLayout(t, s)
	r, err := instance.MoveFromCache(s, nil)
	if err != nil || len(r.Moved) != 4 || len(r.Busy)+len(r.Kept) != 0 {
		t.Fatalf("move: %+v %v", r, err)
	}
	checkNewLayout(t, s, mt)
}

// A crash in the middle of a move (across file systems: a copy whose
// source was not removed yet, a temporary copy half written; staged files
// moved without their journal; a journal half appended) loses nothing: the
// next run finishes the move.
func TestMoveFromCacheAfterCrash(t *testing.T) {
	shm, err := os.MkdirTemp("/dev/shm", "lamina-layout-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(shm)
	s := layoutSettings(shm, t.TempDir())
	mt := oldLayout(t, s)
	// The state a crash left: pack one copied and renamed into place but
	// not removed from the cache; the record half copied.
	write(t, filepath.Join(s.UploadDir(), "packs%2Faa%2Fone"), []byte("pack one"), 0o600)
	write(t, filepath.Join(s.UploadDir(), ".records%2Fr1.json.tmp-move"), []byte("rec"), 0o600)
	// The staged file moved, the journal not yet.
	write(t, filepath.Join(s.StagingDir(), "aaaa"), []byte("staged bytes"), 0o600)
	os.Remove(filepath.Join(s.CacheDir, "staging", "aaaa"))
	r, err := instance.MoveFromCache(s, nil)
	if err != nil || len(r.Kept) != 0 {
		t.Fatalf("move after the crash: %+v %v", r, err)
	}
	checkNewLayout(t, s, mt)

	// A journal in the data folder already (a mount of this build), and
	// an older lamina's staging folder with another staged file whose
	// journal was half appended when the crash came.
	s2 := layoutSettings(filepath.Join(t.TempDir(), "cache"), filepath.Join(t.TempDir(), "data"))
	write(t, filepath.Join(s2.StagingDir(), "bbbb"), []byte("new bytes"), 0o600)
	write(t, filepath.Join(s2.StagingDir(), "journal"), []byte(`{"id":"bbbb","state":"closed","key":"k/b.bin","mode":420}`+"\n"+`{"id":"cccc","sta`), 0o600)
	write(t, filepath.Join(s2.CacheDir, "staging", "cccc"), []byte("old bytes"), 0o600)
	write(t, filepath.Join(s2.CacheDir, "staging", "journal"), []byte(`{"id":"cccc","state":"closed","key":"k/c.bin","mode":420}`+"\n"), 0o600)
	if r, err := instance.MoveFromCache(s2, nil); err != nil || len(r.Moved) != 1 || len(r.Kept) != 0 {
		t.Fatalf("merge of staging folders: %+v %v", r, err)
	}
	files, err := stage.Staged(s2.StagingDir())
	if err != nil || len(files) != 2 || files[0].Key != "k/b.bin" || files[1].Key != "k/c.bin" {
		t.Fatalf("staged after the merge: %+v %v", files, err)
	}
	wantFile(t, files[1].Path, []byte("old bytes"))
	gone(t, filepath.Join(s2.CacheDir, "staging"))
}

// An upload queue an older lamina's process still owns (its lock) stays,
// and so do the mount's folders while a daemon runs; an entry of the same
// name and other bytes in the data folder is left in place, never
// overwritten (each run says so). Concurrent movers each move an entry
// once.
func TestMoveFromCacheLeavesWhatIsInUse(t *testing.T) {
	base := t.TempDir()
	s := layoutSettings(filepath.Join(base, "cache"), filepath.Join(base, "data"))
	oldLayout(t, s)
	held, err := os.OpenFile(filepath.Join(s.CacheDir, "uploads", ".lock"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(held.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	r, err := instance.MoveFromCache(s, func() bool { return true })
	if err != nil || len(r.Busy) != 4 || len(r.Moved) != 0 {
		t.Fatalf("move while in use: %+v %v", r, err)
	}
	wantFile(t, filepath.Join(s.CacheDir, "uploads", "packs%2Faa%2Fone"), []byte("pack one"))
	wantFile(t, filepath.Join(s.CacheDir, "staging", "aaaa"), []byte("staged bytes"))
	held.Close()

	// Another file of one name in the data folder.
	write(t, filepath.Join(s.UploadDir(), "records%2Fr1.json"), []byte("another record"), 0o600)
	var wg sync.WaitGroup
	reports := make([]instance.MoveReport, 4)
	errs := make([]error, 4)
	for i := range reports {
		wg.Add(1)
		go func() {
			defer wg.Done()
			reports[i], errs[i] = instance.MoveFromCache(s, nil)
		}()
	}
	wg.Wait()
	var kept []string
	moved := 0
	for i := range reports {
		if errs[i] != nil {
			t.Errorf("mover %d: %v", i, errs[i])
		}
		kept = append(kept, reports[i].Kept...)
		moved += len(reports[i].Moved)
	}
	if moved != 3 || len(kept) != len(reports) || kept[0] != filepath.Join(s.CacheDir, "uploads", "records%2Fr1.json") {
		t.Fatalf("concurrent moves: %d moved, kept %v", moved, kept)
	}
	wantFile(t, filepath.Join(s.CacheDir, "uploads", "records%2Fr1.json"), []byte("record"))
	wantFile(t, filepath.Join(s.UploadDir(), "records%2Fr1.json"), []byte("another record"))
	wantFile(t, filepath.Join(s.UploadDir(), "packs%2Faa%2Fone"), []byte("pack one"))
	files, err := stage.Staged(s.StagingDir())
	if err != nil || len(files) != 1 {
		t.Fatalf("staged: %+v %v", files, err)
	}
}

// A scratch folder with a FIFO, a socket and a device node, across file
// systems: the FIFO is made anew, the socket dropped (it meant nothing
// without the process that bound it), the device node left and reported
// once. They were all reported as "the data folder has another file of
// that name", at every start, and the scratch folder never moved.
func TestMoveFromCacheScratchSpecialFiles(t *testing.T) {
	shm, err := os.MkdirTemp("/dev/shm", "lamina-layout-")
	if err != nil {
		t.Fatalf("a tmpfs for the cache folder: %v", err)
	}
	defer os.RemoveAll(shm)
	s := layoutSettings(shm, t.TempDir())
	scratch := filepath.Join(s.CacheDir, "scratch")
	write(t, filepath.Join(scratch, "sub", "log"), []byte("log"), 0o644)
	if err := syscall.Mkfifo(filepath.Join(scratch, "sub", "pipe"), 0o640); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", filepath.Join(scratch, "sock"))
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	r, err := instance.MoveFromCache(s, nil)
	if err != nil || len(r.Kept)+len(r.Unsupported) != 0 || len(r.Dropped) != 1 || !slices.Contains(r.Moved, scratch) {
		t.Fatalf("move: %+v %v", r, err)
	}
	fi, err := os.Lstat(filepath.Join(s.ScratchDir(), "sub", "pipe"))
	if err != nil || fi.Mode()&os.ModeNamedPipe == 0 || fi.Mode().Perm() != 0o640 {
		t.Fatalf("the FIFO in the new scratch folder: %v %v", fi, err)
	}
	if b, err := os.ReadFile(filepath.Join(s.ScratchDir(), "sub", "log")); err != nil || string(b) != "log" {
		t.Fatalf("the file in the new scratch folder: %q %v", b, err)
	}
	if _, err := os.Lstat(scratch); !os.IsNotExist(err) {
		t.Fatalf("the old scratch folder is still there: %v", err)
	}

	// A device node (root only) cannot be made on every file system:
	// left in place, reported once.
	write(t, filepath.Join(scratch, "ok"), []byte("ok"), 0o644)
	if err := syscall.Mknod(filepath.Join(scratch, "null"), syscall.S_IFCHR|0o600, int(unix.Mkdev(1, 3))); err != nil {
		t.Skipf("mknod: %v", err)
	}
	r, err = instance.MoveFromCache(s, nil)
	if err != nil || len(r.Kept) != 0 || len(r.Unsupported) != 1 || len(r.Moved) != 0 {
		t.Fatalf("move with a device node: %+v %v", r, err)
	}
	r, err = instance.MoveFromCache(s, nil)
	if err != nil || len(r.Kept)+len(r.Unsupported) != 0 {
		t.Fatalf("the device node reported again: %+v %v", r, err)
	}
}
