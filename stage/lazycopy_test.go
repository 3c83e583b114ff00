package stage_test

import (
	"bytes"
	"context"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/stage"
)

// stagedFiles returns the paths of the staging files in dir (not the
// journal, not spares).
func stagedFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if n := e.Name(); n != stage.JournalName && !strings.HasPrefix(n, stage.SparePrefix) && !strings.Contains(n, ".") {
			out = append(out, filepath.Join(dir, n))
		}
	}
	return out
}

// allocated is the disk space the file at p takes.
func allocated(t *testing.T, p string) int64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

// commitModel makes model the latest version of key through a File
// created anew, and returns that version.
func commitModel(t *testing.T, s *stage.Stage, key string, model []byte) catalog.Version {
	t.Helper()
	ctx := context.Background()
	f, err := s.Create(ctx, key, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(ctx, model, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	f.Release(ctx)
	v, ok := f.Committed()
	if !ok {
		t.Fatal("no commit")
	}
	return v
}

// readAll reads n bytes of f from its start.
func readAll(t *testing.T, f *stage.File, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if n == 0 {
		return b
	}
	k, err := f.ReadAt(context.Background(), b, 0)
	if k != n {
		t.Fatalf("read %d bytes of %d: %v", k, n, err)
	}
	return b
}

// An append to a big version writes only the version's last chunk into
// the staging file (the rest stays a hole, read from the version), and
// commits the version's bytes and the appended ones, stored as a full
// store would. Reads of the head, a write below the copied part (which
// completes the copy) and the commits after see the File's bytes.
func TestAppendCopiesOnlyTheLastChunk(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s := e.stage(t)
	const key = "d/big.bin"
	model := pseudoRandom(7, 8<<20+12345)
	v := commitModel(t, s, key, model)

	f, err := s.Open(ctx, key, v, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Append(ctx, []byte("x\n")); err != nil {
		t.Fatal(err)
	}
	model = append(model, "x\n"...)
	files := stagedFiles(t, e.dir)
	if len(files) != 1 {
		t.Fatalf("staging files: %v", files)
	}
	// A chunk is at most 256 KiB: the staging file holds that, not 8 MiB.
	if a := allocated(t, files[0]); a > 1<<20 {
		t.Fatalf("after an append the staging file takes %d bytes of disk; want the last chunk only", a)
	}
	if fi, _ := os.Stat(files[0]); fi.Size() != int64(len(model)) {
		t.Fatalf("staging file size %d, want %d", fi.Size(), len(model))
	}
	if got := readAll(t, f, len(model)); !bytes.Equal(got, model) {
		t.Fatal("a read through the File after the append differs from the version and the append")
	}
	b := make([]byte, 100)
	if _, err := f.ReadAt(ctx, b, 1000); err != nil || !bytes.Equal(b, model[1000:1100]) {
		t.Fatalf("read of the head: %v", err)
	}
	if err := f.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	checkStored(t, e, key, model, "append")

	// Appended again and committed: the hole stays.
	f.Append(ctx, []byte("y\n"))
	model = append(model, "y\n"...)
	if err := f.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	checkStored(t, e, key, model, "second append")
	if a := allocated(t, files[0]); a > 1<<20 {
		t.Fatalf("after two appends the staging file takes %d bytes of disk", a)
	}

	// A write at the start needs the staging file whole.
	if _, err := f.WriteAt(ctx, []byte("HEAD"), 10); err != nil {
		t.Fatal(err)
	}
	copy(model[10:], "HEAD")
	if got := readAll(t, f, len(model)); !bytes.Equal(got, model) {
		t.Fatal("a read after a write below the copied part differs")
	}
	raw, err := os.ReadFile(files[0])
	if err != nil || !bytes.Equal(raw, model) {
		t.Fatalf("the staging file after a write below the copied part does not hold the File's bytes: %v", err)
	}
	if err := f.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	checkStored(t, e, key, model, "write at the start")
	f.Release(ctx)

	// A new File over that version: a truncate below the copied part.
	v, _ = e.cat.ByKey(ctx, key, 0)
	f, err = s.Open(ctx, key, v, false)
	if err != nil {
		t.Fatal(err)
	}
	f.Append(ctx, []byte("z"))
	if err := f.Truncate(ctx, 3<<20); err != nil {
		t.Fatal(err)
	}
	model = model[:3<<20]
	if err := f.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	checkStored(t, e, key, model, "append, then truncate to 3 MiB")
	f.Release(ctx)
}

// A model of a File over a big version, with holes, written, appended
// to, truncated and read at random (most near its end), committed now and
// then and opened again over its last version: every read and every
// commit (bytes, digest, chunks) is the model's.
func TestLazyCopyModel(t *testing.T) {
	ctx := context.Background()
	for seed := uint64(1); seed <= 6; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			e := newEnv(t)
			s := e.stage(t)
			r := mrand.New(mrand.NewPCG(seed, 99))
			key := fmt.Sprintf("m/%d.bin", seed)
			// The base: data and holes (a sparse file's zeros).
			size := 1<<20 + r.IntN(5<<20)
			model := make([]byte, size)
			bf, err := s.Create(ctx, key, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			bf.Truncate(ctx, int64(size))
			for range 1 + r.IntN(6) {
				off := r.IntN(size)
				b := pseudoRandom(r.Uint64(), min(size-off, 1+r.IntN(1<<20)))
				bf.WriteAt(ctx, b, int64(off))
				copy(model[off:], b)
			}
			if err := bf.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			bf.Release(ctx)
			checkStored(t, e, key, model, "base")

			open := func() *stage.File {
				v, err := e.cat.ByKey(ctx, key, 0)
				if err != nil {
					t.Fatal(err)
				}
				f, err := s.Open(ctx, key, v, false)
				if err != nil {
					t.Fatal(err)
				}
				return f
			}
			f := open()
			// An offset near the end mostly (within the last chunk, or
			// past it), anywhere sometimes.
			near := func() int {
				if r.IntN(5) == 0 || len(model) == 0 {
					return r.IntN(len(model) + 1)
				}
				return max(0, len(model)-r.IntN(300<<10))
			}
			for step := range 60 {
				what := ""
				switch op := r.IntN(10); {
				case op < 3:
					b := pseudoRandom(r.Uint64(), 1+r.IntN(100<<10))
					if _, err := f.Append(ctx, b); err != nil {
						t.Fatal(err)
					}
					model = append(model, b...)
					what = fmt.Sprintf("append %d", len(b))
				case op < 5:
					off := near()
					b := pseudoRandom(r.Uint64(), 1+r.IntN(64<<10))
					if _, err := f.WriteAt(ctx, b, int64(off)); err != nil {
						t.Fatal(err)
					}
					if end := off + len(b); end > len(model) {
						model = append(model, make([]byte, end-len(model))...)
					}
					copy(model[off:], b)
					what = fmt.Sprintf("write %d at %d", len(b), off)
				case op < 6:
					n := near()
					if r.IntN(3) == 0 {
						n += r.IntN(1 << 20) // up: zeros
					}
					if err := f.Truncate(ctx, int64(n)); err != nil {
						t.Fatal(err)
					}
					if n > len(model) {
						model = append(model, make([]byte, n-len(model))...)
					}
					model = model[:n]
					what = fmt.Sprintf("truncate to %d", n)
				case op < 8:
					if len(model) == 0 {
						continue
					}
					off := r.IntN(len(model))
					b := make([]byte, 1+r.IntN(min(len(model)-off, 1<<20)))
					if n, err := f.ReadAt(ctx, b, int64(off)); n != len(b) || !bytes.Equal(b, model[off:off+len(b)]) {
						t.Fatalf("step %d: read %d at %d: %d bytes, %v, differ from the model", step, len(b), off, n, err)
					}
					continue
				case op < 9:
					if err := f.Flush(ctx); err != nil {
						t.Fatal(err)
					}
					checkStored(t, e, key, model, fmt.Sprintf("step %d: commit", step))
					continue
				default:
					if err := f.Flush(ctx); err != nil {
						t.Fatal(err)
					}
					f.Release(ctx)
					checkStored(t, e, key, model, fmt.Sprintf("step %d: close", step))
					f = open()
					continue
				}
				if sz, _, _ := f.Attr(); sz != int64(len(model)) {
					t.Fatalf("step %d (%s): size %d, want %d", step, what, sz, len(model))
				}
			}
			if got := readAll(t, f, len(model)); !bytes.Equal(got, model) {
				t.Fatal("the File's bytes differ from the model's")
			}
			if stage.LazyCopies(s) == 0 {
				t.Fatal("no lazy copy")
			}
			if err := f.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			f.Release(ctx)
			checkStored(t, e, key, model, "last close")
		})
	}
}

// A daemon killed after an append to a big version, the staging file
// holding the version's last chunk only: Recover never commits its hole
// as zeros. Never closed, its bytes go under lost+found/ whole (the
// version's and the append); killed in the commit (the journal says
// closed), they are the key's next version; a lazy commit the catalog
// lost is committed again whole.
func TestRecoverLazyCopiedAppend(t *testing.T) {
	ctx := context.Background()
	base := pseudoRandom(3, 6<<20+321)
	want := append(append([]byte(nil), base...), "appended\n"...)
	setup := func(t *testing.T, e *env, s *stage.Stage) *stage.File {
		t.Helper()
		v := commitModel(t, s, "k/big.log", base)
		f, err := s.Open(ctx, "k/big.log", v, false)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Append(ctx, []byte("appended\n")); err != nil {
			t.Fatal(err)
		}
		if files := stagedFiles(t, e.dir); len(files) != 1 || allocated(t, files[0]) > 1<<20 {
			t.Fatalf("the staging file after the append is not sparse: %v", files)
		}
		return f
	}
	t.Run("open", func(t *testing.T) {
		e := newEnv(t)
		s := e.stage(t)
		setup(t, e, s)
		cat, dir := crashImage(t, e)
		// What status lists says the staged file lacks its head.
		if sf, err := stage.Staged(dir); err != nil || len(sf) != 1 || sf[0].Hole <= 0 || sf[0].Hole >= int64(len(base)) || sf[0].Base != 1 {
			t.Fatalf("Staged = %+v, %v; want the file with its hole and base version 1", sf, err)
		}
		s2, err := stage.New(cat, e.store, stage.Options{Dir: dir, User: "t"})
		if err != nil {
			t.Fatal(err)
		}
		rec, err := s2.Recover(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if v, got := readKey(t, e, cat, "k/big.log", 0); v.Version != 1 || got != string(base) {
			t.Errorf("latest after the crash: v%d, %d bytes; want v1", v.Version, len(got))
		}
		if len(rec) != 1 || !strings.HasPrefix(rec[0].SavedAs, stage.LostAndFound+"/") {
			t.Fatalf("Recover = %+v; want the bytes under lost+found/", rec)
		}
		if _, got := readKey(t, e, cat, rec[0].SavedAs, 0); got != string(want) {
			t.Fatalf("lost+found holds %d bytes, not the version's and the append (%d): zeros where the staging file had its hole? %v",
				len(got), len(want), strings.HasPrefix(got, "\x00\x00\x00\x00"))
		}
	})
	t.Run("closed", func(t *testing.T) {
		e := newEnv(t)
		s := e.stage(t)
		f := setup(t, e, s)
		if err := stage.MarkClosed(f); err != nil { // killed in its commit
			t.Fatal(err)
		}
		cat, dir := crashImage(t, e)
		s2, err := stage.New(cat, e.store, stage.Options{Dir: dir, User: "t"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s2.Recover(ctx); err != nil {
			t.Fatal(err)
		}
		if v, got := readKey(t, e, cat, "k/big.log", 0); v.Version != 2 || got != string(want) {
			t.Fatalf("latest after the crash: v%d, %d bytes, head zeros %v; want v2, the version and the append (%d bytes)",
				v.Version, len(got), strings.HasPrefix(got, "\x00\x00\x00\x00"), len(want))
		}
	})
	t.Run("written below the copied part", func(t *testing.T) {
		e := newEnv(t)
		s := e.stage(t)
		f := setup(t, e, s)
		if _, err := f.WriteAt(ctx, []byte("HEAD"), 10); err != nil { // completes the copy
			t.Fatal(err)
		}
		cat, dir := crashImage(t, e) // never closed: no record after the write
		s2, err := stage.New(cat, e.store, stage.Options{Dir: dir, User: "t"})
		if err != nil {
			t.Fatal(err)
		}
		rec, err := s2.Recover(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(rec) != 1 || !strings.HasPrefix(rec[0].SavedAs, stage.LostAndFound+"/") {
			t.Fatalf("Recover = %+v; want the bytes under lost+found/", rec)
		}
		w := append([]byte(nil), want...)
		copy(w[10:], "HEAD")
		if _, got := readKey(t, e, cat, rec[0].SavedAs, 0); got != string(w) {
			t.Fatalf("lost+found holds %d bytes, the write below kept: %v; want the version, the write and the append",
				len(got), len(got) > 14 && got[10:14] == "HEAD")
		}
	})
	t.Run("lazy commit lost", func(t *testing.T) {
		e := newEnvWith(t, catalog.BoltOptions{Hold: true, LazyCommitAfter: time.Hour})
		s, _ := deferredStage(t, e)
		v := commitModel(t, s, "k/big.log", base)
		if err := s.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		f, err := s.Open(ctx, "k/big.log", v, false)
		if err != nil {
			t.Fatal(err)
		}
		f.Append(ctx, []byte("appended\n"))
		if err := f.Flush(ctx); err != nil { // lazily: v2 waits in the transaction
			t.Fatal(err)
		}
		if err := f.Release(ctx); err != nil { // its bytes wait for Sync
			t.Fatal(err)
		}
		cat, dir := crashImage(t, e)
		s2, err := stage.New(cat, e.store, stage.Options{Dir: dir, User: "t", SyncEvery: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s2.Recover(ctx); err != nil {
			t.Fatal(err)
		}
		if v, got := readKey(t, e, cat, "k/big.log", 0); v.Version != 2 || got != string(want) {
			t.Fatalf("latest after the crash: v%d, %d bytes, head zeros %v; want v2, the version and the append (%d bytes)",
				v.Version, len(got), strings.HasPrefix(got, "\x00\x00\x00\x00"), len(want))
		}
	})
	t.Run("failed close retried", func(t *testing.T) {
		e := newEnv(t)
		s, cat := e.failingStageRetrying(t, 10*time.Millisecond)
		v := commitModel(t, s, "k/big.log", base)
		f, err := s.Open(ctx, "k/big.log", v, false)
		if err != nil {
			t.Fatal(err)
		}
		f.Append(ctx, []byte("appended\n"))
		cat.down.Store(true)
		if err := f.Flush(ctx); err == nil {
			t.Fatal("flush with the catalog away succeeded")
		}
		if err := f.Release(ctx); err == nil {
			t.Fatal("release with the catalog away succeeded")
		}
		// What status names to save elsewhere holds all the bytes.
		if ff := s.FailedFiles(); len(ff) != 1 {
			t.Fatalf("FailedFiles = %+v", ff)
		} else if b, err := os.ReadFile(ff[0].Path); err != nil || !bytes.Equal(b, want) {
			t.Fatalf("the staged bytes of the failed close: %d bytes, %v; want the version and the append", len(b), err)
		}
		cat.down.Store(false)
		if !waitFor(func() bool { return s.FailedCommits() == 0 }) {
			t.Fatal("the failed close was not committed again")
		}
		if v, got := readKey(t, e, e.cat, "k/big.log", 0); v.Version != 2 || got != string(want) {
			t.Fatalf("latest after the retry: v%d, %d bytes; want v2", v.Version, len(got))
		}
	})
}

// A File whose key names a format the commit describes (CSV) is copied
// whole: describe reads the staged file.
func TestDescribedFormatCopiedWhole(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s := e.stage(t)
	var b strings.Builder
	b.WriteString("a,b\n")
	for i := 0; b.Len() < 3<<20; i++ {
		fmt.Fprintf(&b, "%d,%d\n", i, i*7)
	}
	model := []byte(b.String())
	v := commitModel(t, s, "t/rows.csv", model)
	f, err := s.Open(ctx, "t/rows.csv", v, false)
	if err != nil {
		t.Fatal(err)
	}
	f.Append(ctx, []byte("1,2\n"))
	model = append(model, "1,2\n"...)
	if err := f.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	f.Release(ctx)
	checkStored(t, e, "t/rows.csv", model, "append")
	v2, _ := e.cat.ByKey(ctx, "t/rows.csv", 0)
	if v.NObservations == 0 || v2.NObservations != v.NObservations+1 {
		t.Fatalf("n_observations %d after an append of a row to %d", v2.NObservations, v.NObservations)
	}

	// Appended to under a name of no format (copied lazily), then renamed
	// to one while open: the commit completes the copy and describes it.
	p := commitModel(t, s, "t/rows.part", model)
	f, err = s.Open(ctx, "t/rows.part", p, false)
	if err != nil {
		t.Fatal(err)
	}
	lazy := stage.LazyCopies(s)
	f.Append(ctx, []byte("3,4\n"))
	model = append(model, "3,4\n"...)
	if stage.LazyCopies(s) != lazy+1 {
		t.Fatal("the append to rows.part copied the whole version")
	}
	if _, err := s.Rename(ctx, "t/rows.part", "t/rows2.csv"); err != nil {
		t.Fatal(err)
	}
	if err := f.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	f.Release(ctx)
	checkStored(t, e, "t/rows2.csv", model, "append, rename")
	if v3, _ := e.cat.ByKey(ctx, "t/rows2.csv", 0); v3.NObservations != v2.NObservations+1 {
		t.Fatalf("n_observations %d after an append of a row to %d and a rename to .csv", v3.NObservations, v2.NObservations)
	}
}

// recoverLost recovers the staging folder of a crash image of e and
// returns what Recover kept under lost+found/ (the one File never closed).
func recoverLost(t *testing.T, e *env) string {
	t.Helper()
	cat, dir := crashImage(t, e)
	s2, err := stage.New(cat, e.store, stage.Options{Dir: dir, User: "t"})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := s2.Recover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(rec) != 1 || !strings.HasPrefix(rec[0].SavedAs, stage.LostAndFound+"/") {
		t.Fatalf("Recover = %+v; want the bytes under lost+found/", rec)
	}
	_, got := readKey(t, e, cat, rec[0].SavedAs, 0)
	return got
}

// A change at the end of a big version whose lazy copy fails (the staging
// disk full, the storage away, a signal) leaves no hole behind: a write
// below it after, which copies the version whole, is what reads, the
// commit and Recover see. The hole of the failed copy was kept and read
// from the version: the write vanished.
func TestFailedLazyCopyLeavesNoHole(t *testing.T) {
	ctx := context.Background()
	base := pseudoRandom(11, 3<<20+777)
	changes := map[string]func(f *stage.File) error{
		"truncate": func(f *stage.File) error { return f.Truncate(ctx, int64(len(base))+10) },
		"append":   func(f *stage.File) error { _, err := f.Append(ctx, []byte("tail")); return err },
		"pwrite":   func(f *stage.File) error { _, err := f.WriteAt(ctx, []byte("end"), int64(len(base))-3); return err },
	}
	for name, change := range changes {
		for _, fresh := range []bool{false, true} { // the last chunk read alone, or the version whole
			for _, end := range []string{"commit", "recover"} {
				t.Run(fmt.Sprintf("%s/fresh=%v/%s", name, fresh, end), func(t *testing.T) {
					e := newEnv(t)
					s := e.stage(t)
					v := commitModel(t, s, "k/ft.bin", base)
					if fresh { // a Stage with no digest state of v: it reads v whole
						cat, dir := crashImage(t, e)
						e.cat, e.dir = cat, dir
						var err error
						if s, err = stage.New(cat, e.store, stage.Options{Dir: dir, User: "t"}); err != nil {
							t.Fatal(err)
						}
					}
					f, err := s.Open(ctx, "k/ft.bin", v, false)
					if err != nil {
						t.Fatal(err)
					}
					restore := stage.FailStaging(f)
					if err := change(f); err == nil {
						t.Fatal("the change succeeded with the staging file failing")
					}
					restore()
					if _, err := f.WriteAt(ctx, []byte("HEADER"), 0); err != nil {
						t.Fatal(err)
					}
					want := append([]byte("HEADER"), base[6:]...)
					if got := readAll(t, f, len(want)); !bytes.Equal(got, want) {
						t.Fatalf("read back after the write at 0: %q; want HEADER", got[:6])
					}
					if end == "recover" {
						if got := recoverLost(t, e); got != string(want) {
							t.Fatalf("lost+found holds %d bytes starting %q; want %d starting HEADER", len(got), got[:min(6, len(got))], len(want))
						}
						return
					}
					if err := f.Flush(ctx); err != nil {
						t.Fatal(err)
					}
					f.Release(ctx)
					if v, got := readKey(t, e, e.cat, "k/ft.bin", 0); v.Version != 2 || got != string(want) {
						t.Fatalf("latest after the close: v%d, %d bytes starting %q; want v2 starting HEADER", v.Version, len(got), got[:min(6, len(got))])
					}
				})
			}
		}
	}
}

// A lazy copy completed for a write below it, whose journal record
// cannot be written (a full disk), keeps the hole: the write fails, and
// the next one below records the complete copy before it lands, so
// Recover does not read the bytes there from the version.
func TestCompleteCopyJournalFailing(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s := e.stage(t)
	base := pseudoRandom(12, 3<<20+5)
	v := commitModel(t, s, "k/big.bin", base)
	f, err := s.Open(ctx, "k/big.bin", v, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Append(ctx, []byte("x")); err != nil {
		t.Fatal(err)
	}
	restore := stage.FailJournal(s)
	if _, err := f.WriteAt(ctx, []byte("HEAD"), 0); err == nil {
		t.Fatal("a write below the hole succeeded with the journal failing")
	}
	restore()
	if _, err := f.WriteAt(ctx, []byte("HEAD"), 0); err != nil {
		t.Fatal(err)
	}
	want := append(append([]byte("HEAD"), base[4:]...), 'x')
	if got := recoverLost(t, e); got != string(want) {
		t.Fatalf("lost+found holds %d bytes starting %q; want %d starting HEAD", len(got), got[:min(4, len(got))], len(want))
	}
}

// A File with a lazy copy truncated to zero and written records that its
// staging file has no hole before the write lands: Recover kept the
// version's head instead of what was written.
func TestTruncateToZeroClearsHole(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s := e.stage(t)
	v := commitModel(t, s, "k/big.bin", pseudoRandom(13, 3<<20+9))
	f, err := s.Open(ctx, "k/big.bin", v, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Append(ctx, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(ctx, []byte("abc"), 0); err != nil {
		t.Fatal(err)
	}
	if got := recoverLost(t, e); got != "abc" {
		t.Fatalf("lost+found holds %d bytes; want abc", len(got))
	}
}

// A File with a lazy copy truncated to zero while the journal cannot be
// written (the disk full: the truncate is what frees it) is truncated; its
// next change records first that the staging file has no hole, or fails.
func TestTruncateToZeroJournalFailing(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s := e.stage(t)
	v := commitModel(t, s, "k/big.bin", pseudoRandom(14, 3<<20+9))
	f, err := s.Open(ctx, "k/big.bin", v, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Append(ctx, []byte("x")); err != nil {
		t.Fatal(err)
	}
	restore := stage.FailJournal(s)
	if err := f.Truncate(ctx, 0); err != nil {
		t.Fatalf("truncate to zero with the journal failing: %v", err)
	}
	if _, err := f.WriteAt(ctx, []byte("abc"), 0); err == nil {
		t.Fatal("a write after it succeeded with the journal still failing")
	}
	restore()
	if _, err := f.WriteAt(ctx, []byte("abc"), 0); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, f, 3); string(got) != "abc" {
		t.Fatalf("read back %q", got)
	}
	if got := recoverLost(t, e); got != "abc" {
		t.Fatalf("lost+found holds %d bytes; want abc", len(got))
	}
}

// A File open for appending holds the bytes below its hole by reference,
// in the version it was opened on. When gc marks that data (a gc on
// another machine, which cannot see this staging folder, after the
// version was deleted for good), the File copies it while it is still
// there, and its close stores it again: the close failed with "pack not
// in storage" once gc deleted the packs.
func TestHoleCopiedWhenGCMarksItsData(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	s, err := stage.New(e.cat, e.store, stage.Options{Dir: e.dir, User: "t", HoleCheck: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	base := randomBytes(6<<20 + 999)
	v := commitModel(t, s, "big.bin", base)
	f, err := s.Open(ctx, "big.bin", v, false)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Release(ctx)
	if _, err := f.Append(ctx, []byte("one\n")); err != nil {
		t.Fatal(err)
	}
	if heads, _ := stage.Heads(e.dir); len(heads) != 1 || stage.LazyCopies(s) != 1 {
		t.Fatalf("heads %v, %d lazy copies: want the append's lazy copy", heads, stage.LazyCopies(s))
	}
	var ids []string
	e.store.Packs(ctx, func(p cache.PackInfo, _ error) error { ids = append(ids, p.ID); return nil })
	if err := e.store.Condemn(ctx, ids, "test"); err != nil {
		t.Fatal(err)
	}
	if !waitFor(func() bool { heads, _ := stage.Heads(e.dir); return len(heads) == 0 }) {
		t.Fatal("the File kept its hole over data gc marked")
	}
	if err := e.store.DeletePacks(ctx, ids); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Append(ctx, []byte("two\n")); err != nil {
		t.Fatal(err)
	}
	if err := f.Flush(ctx); err != nil {
		t.Fatalf("close after gc deleted the version's packs: %v", err)
	}
	want := string(base) + "one\ntwo\n"
	if got := e.content(t, "big.bin"); got != want {
		t.Fatalf("committed %d bytes, want %d", len(got), len(want))
	}
}
