package lineage

import (
	"bytes"
	"encoding/base64"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/catalog"
	"golang.org/x/sys/unix"
)

// putRecord writes the record of output out in wd/.snakemake/metadata as
// Snakemake 7 does (persistence.py: _record_path, _record): its url-safe
// base64 cut into pieces of NAME_MAX-1 characters, each piece but the last
// an "@" folder; a temporary file in the last folder renamed into place.
func putRecord(t *testing.T, wd, out string) {
	t.Helper()
	b := base64.URLEncoding.EncodeToString([]byte(out))
	var parts []string
	for len(b) > 254 {
		parts = append(parts, "@"+b[:254])
		b = b[254:]
	}
	dir := filepath.Join(append([]string{wd, ".snakemake", "metadata"}, parts...)...)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "tmpab_cd123."+b[:min(8, len(b))])
	if err := os.WriteFile(tmp, []byte(`{"rule": "r"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, b)); err != nil {
		t.Fatal(err)
	}
}

// longOut is an output in dir whose record is about depth folders deep;
// those of one dir share their first folders.
func longOut(dir string, depth int, name string) string {
	return dir + "/" + strings.Repeat("a-long-folder-name-for-outputs/", depth*254*3/4/31) + name
}

func drained(w *recordWatch, log *slog.Logger) []string {
	outs := w.drain("/elsewhere", log)
	slices.Sort(outs)
	return slices.Compact(outs)
}

// The watch of records outside the mount follows the "@" subfolders
// Snakemake keeps long outputs' records in: those there at its start, and
// each made since, read when it appears (its records may be renamed in
// before it is watched), nested ones too. Records written before the run
// started are an earlier run's.
func TestRecordWatchSubfolders(t *testing.T) {
	wd := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	putRecord(t, wd, longOut(wd+"/a", 1, "old.txt")) // an earlier run's, in an "@" folder
	old := time.Now().Add(-time.Hour)
	filepath.WalkDir(filepath.Join(wd, ".snakemake", "metadata"), func(p string, _ os.DirEntry, _ error) error {
		return os.Chtimes(p, old, old)
	})
	w := newRecordWatch(wd, time.Now().Add(-time.Minute))
	if w == nil || w.fd < 0 {
		t.Fatalf("no watch: %+v", w)
	}
	defer w.close()
	if got := drained(w, log); len(got) != 0 {
		t.Fatalf("records before any was written: %q", got)
	}
	for _, c := range []struct {
		name string
		outs []string
	}{
		{"short", []string{wd + "/out/x.txt"}},
		{"in a folder there at the start", []string{longOut(wd+"/a", 1, "x.txt")}},
		{"in a new folder", []string{longOut(wd+"/b", 1, "x.txt")}},
		{"in the new folder, watched now", []string{longOut(wd+"/b", 1, "y.txt")}},
		{"in new nested folders", []string{longOut(wd+"/c", 3, "x.txt"), longOut(wd+"/c", 3, "y.txt"), wd + "/out/y.txt"}},
	} {
		for _, o := range c.outs {
			putRecord(t, wd, o)
		}
		want := slices.Sorted(slices.Values(c.outs))
		if got := drained(w, log); !slices.Equal(got, want) {
			t.Errorf("%s: drained %q, want %q", c.name, got, want)
		}
	}
}

// When the kernel's queue of events overflowed, the records whose events
// were lost are read all the same (all the folders again, new ones
// watched), an earlier run's are not, and the overflow is logged once.
func TestRecordWatchOverflow(t *testing.T) {
	b, err := os.ReadFile("/proc/sys/fs/inotify/max_queued_events")
	if err != nil {
		t.Fatal(err)
	}
	limit, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || limit <= 0 || limit > 1<<22 {
		t.Fatalf("fs.inotify.max_queued_events %q: too many events to overflow here", b)
	}
	wd := t.TempDir()
	meta := filepath.Join(wd, ".snakemake", "metadata")
	putRecord(t, wd, wd+"/out/old.txt")
	old := time.Now().Add(-time.Hour)
	os.Chtimes(filepath.Join(meta, base64.URLEncoding.EncodeToString([]byte(wd+"/out/old.txt"))), old, old)
	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	w := newRecordWatch(wd, time.Now().Add(-time.Minute))
	if w == nil || w.fd < 0 {
		t.Fatalf("no watch: %+v", w)
	}
	defer w.close()
	// More events than the queue holds, none of them a record: a name
	// renamed into the folder and back (IN_MOVED_FROM is not watched),
	// two names in turn (the kernel merges an event with the one before
	// it when they are the same but for the cookie).
	junk := filepath.Join(wd, ".snakemake", "junk.tmp")
	os.WriteFile(junk, nil, 0o644)
	overflow := func() {
		for i := range limit + 1 {
			in := filepath.Join(meta, "junk.tmp"+strconv.Itoa(i%2))
			if err := os.Rename(junk, in); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(in, junk); err != nil {
				t.Fatal(err)
			}
		}
	}
	for round, c := range []struct {
		outs  []string
		after string // a record in a folder made during the overflow
	}{
		{[]string{wd + "/out/lost.txt", longOut(wd+"/b", 2, "lost.txt")}, longOut(wd+"/b", 2, "after.txt")},
		{[]string{wd + "/out/lost2.txt", longOut(wd+"/c", 2, "lost.txt"), longOut(wd+"/d", 3, "lost.txt")}, longOut(wd+"/d", 3, "after.txt")},
	} {
		outs := c.outs
		overflow()
		for _, o := range outs { // their events are dropped
			putRecord(t, wd, o)
		}
		got := drained(w, log) // one drain reads the whole queue
		for _, o := range outs {
			if !slices.Contains(got, o) {
				t.Errorf("round %d: drained %q, want %s among them", round, got, o)
			}
		}
		if slices.Contains(got, wd+"/out/old.txt") {
			t.Errorf("round %d: drained an earlier run's record: %q", round, got)
		}
		// The folders made during the overflow are watched now.
		putRecord(t, wd, c.after)
		if got := drained(w, log); !slices.Equal(got, []string{c.after}) {
			t.Errorf("round %d: after the overflow, drained %q", round, got)
		}
	}
	if n := strings.Count(logged.String(), "overflowed"); n != 1 {
		t.Errorf("logged %d overflows, want 1:\n%s", n, logged.String())
	}
}

// One drain reads every event queued, however many a job's end left
// (two a record: the temporary file's creation and its rename), and the
// record written last: a job finishing with thousands of outputs, then a
// job of the same shell text, were taken for passes of one job when the
// drain stopped after a fixed number of reads. With more records than
// the queue holds (an overflow, its marker last) and with fewer, of short
// names and of long ones (~248 characters, just short of an "@" folder).
func TestRecordWatchManyRecords(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	for _, c := range []struct {
		name string
		n    int
		dir  string
	}{
		{"short", 9000, "/data/off/" + strings.Repeat("p", 40)},
		{"long", 9000, "/data/off/" + strings.Repeat("p", 165)},
		{"long, no overflow", 5000, "/data/off/" + strings.Repeat("p", 165)},
	} {
		t.Run(c.name, func(t *testing.T) {
			wd := t.TempDir()
			if err := os.MkdirAll(filepath.Join(wd, ".snakemake", "metadata"), 0o755); err != nil {
				t.Fatal(err)
			}
			w := newRecordWatch(wd, time.Now().Add(-time.Second))
			if w == nil || w.fd < 0 {
				t.Fatalf("no watch: %+v", w)
			}
			defer w.close()
			for i := range c.n {
				putRecord(t, wd, c.dir+"/out_"+strconv.Itoa(i)+".txt")
			}
			if n := len(base64.URLEncoding.EncodeToString([]byte(c.dir + "/out_0.txt"))); n > 254 {
				t.Fatalf("a record name of %d characters: in an \"@\" folder", n)
			}
			putRecord(t, wd, "/data/mnt/x.txt")
			outs := w.drain("/data/mnt", log)
			if !slices.Contains(outs, "x.txt") {
				t.Errorf("drained %d outputs, x.txt not among them", len(outs))
			}
			if !slices.Contains(outs, c.dir+"/out_0.txt") {
				t.Errorf("drained %d outputs, %s/out_0.txt not among them", len(outs), c.dir)
			}
		})
	}
}

// A drain runs outside the Tracker's mu (a scan after an overflow lists
// every record), so a Snakemake run's end, or the Tracker's, may close the
// watch while a job's start drains it: the watch's own mutex keeps the
// drain off a closed descriptor (its number may be another file's by
// then). Run with -race.
func TestRecordWatchDrainWhileFinishing(t *testing.T) {
	c, err := catalog.OpenBolt(filepath.Join(t.TempDir(), "catalog.db"), catalog.BoltOptions{Hold: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	log := slog.New(slog.DiscardHandler)
	for _, overflow := range []bool{false, true} {
		for _, byClose := range []bool{false, true} {
			tr := NewTracker(c, TrackerOptions{Mountpoint: "/data/mnt", Logger: log})
			wd := t.TempDir()
			meta := filepath.Join(wd, ".snakemake", "metadata")
			for i := range 200 {
				putRecord(t, wd, "/data/mnt/out_"+strconv.Itoa(i)+".txt")
			}
			w := newRecordWatch(wd, time.Now().Add(-time.Minute))
			if w == nil || w.fd < 0 {
				t.Fatalf("no watch: %+v", w)
			}
			for i := range 200 {
				putRecord(t, wd, "/data/mnt/new_"+strconv.Itoa(i)+".txt")
			}
			if overflow { // more events than the queue holds: the drain scans
				junk := filepath.Join(wd, "junk.tmp")
				os.WriteFile(junk, nil, 0o644)
				for i := range maxQueued() + 1 {
					in := filepath.Join(meta, "junk.tmp"+strconv.Itoa(i%2))
					if err := os.Rename(junk, in); err != nil {
						t.Fatal(err)
					}
					if err := os.Rename(in, junk); err != nil {
						t.Fatal(err)
					}
				}
			}
			const split = "split"
			tr.mu.Lock()
			tr.records[split] = w
			tr.byRun[split] = &root{fd: -1, run: catalog.Run{UID: split}}
			tr.mu.Unlock()
			var wg sync.WaitGroup
			for range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range 20 {
						tr.jobMu.Lock()
						tr.readRecords(split, 0, time.Time{}) // pid 0: no new watch is made
						tr.jobMu.Unlock()
					}
				}()
			}
			if byClose {
				tr.Close()
			} else {
				tr.unregister(split, false)
			}
			wg.Wait()
			if !byClose {
				tr.Close()
			}
			w.mu.Lock()
			fd := w.fd
			w.mu.Unlock()
			if fd != -1 {
				t.Errorf("overflow %v, by Close %v: the watch is open after the run's end (fd %d)", overflow, byClose, fd)
			}
			if outs := w.drain("/data/mnt", log); outs != nil {
				t.Errorf("overflow %v, by Close %v: a closed watch drained %q", overflow, byClose, outs)
			}
		}
	}
}

// An absolute output path names the key it ends with, after a "/", the
// longest one if several.
func TestBySuffix(t *testing.T) {
	outs := map[string]string{"res/a.txt": "r1", "a.txt": "r2", "b.txt": "r3", "x/c.txt": "r4"}
	for abs, want := range map[string]string{
		"/data/mnt/res/a.txt": "r1",
		"/data/mnt/a.txt":     "r2",
		"/b.txt":              "r3",
		"/data/mnt/ab.txt":    "",
		"/data/mnt/c.txt":     "",
		"/data/mnt/x/c.txt/":  "",
		"/":                   "",
	} {
		if got, ok := bySuffix(outs, abs); got != want || ok != (want != "") {
			t.Errorf("bySuffix(%q) = %q, %v, want %q", abs, got, ok, want)
		}
	}
}

// Snakemake's working directory on another mount nested in the mount (a
// tmpfs at MNT/scratch) is watched, reached through /proc/PID/cwd (its
// path walk would ask the mount); one on the mount is not.
func TestWatchRecordsNestedMount(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount")
	}
	mnt := filepath.Join(t.TempDir(), "lab")
	os.MkdirAll(mnt, 0o755)
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
	log := slog.New(slog.DiscardHandler)
	for _, c := range []struct {
		wd    string
		watch bool
	}{{nested + "/wf", true}, {mnt + "/wf", false}} {
		os.MkdirAll(filepath.Join(c.wd, ".snakemake", "metadata"), 0o755)
		cmd := exec.Command("sleep", "60")
		cmd.Dir = c.wd
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		w := watchRecords(cmd.Process.Pid, mnt, time.Now().Add(-time.Minute))
		cmd.Process.Kill()
		cmd.Wait()
		if w == nil || (w.fd >= 0) != c.watch {
			t.Fatalf("%s: watch %+v, want a watch: %v", c.wd, w, c.watch)
		}
		if !c.watch {
			continue
		}
		if !strings.HasPrefix(w.via, "/proc/self/fd/") {
			t.Errorf("%s: reached by %q, want /proc/self/fd/N", c.wd, w.via)
		}
		putRecord(t, c.wd, c.wd+"/out/x.txt") // after Snakemake's pid is gone
		if got, want := drained(w, log), []string{c.wd + "/out/x.txt"}; !slices.Equal(got, want) {
			t.Errorf("drained %q, want %q", got, want)
		}
		w.close()
	}
}
