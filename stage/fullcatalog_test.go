package stage_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/stage"
	"github.com/lamina-bio/lamina/storage"
)

// TestClosesKeptWhileLazyCommitFails (audit: 28 of 30 closed files gone):
// files closed while the catalog's lazy commit fails (its folder full)
// wait in memory; their staged bytes and journal records must stay until
// the catalog file holds them. Here the "done" record cannot be written
// (the journal's disk is full too), Sync and a retry run while failing,
// and the process stops giving the changes up (lamina umount --force):
// the next mount's Recover commits every closed file with its bytes.
func TestClosesKeptWhileLazyCommitFails(t *testing.T) {
	ctx := context.Background()
	cat, cpath, filler, store, dir, s := fullCatalogStage(t, nil, nil)

	closed := map[string]string{} // key → body, of closes that returned nil
	failingSeen := 0
	for i := 0; failingSeen < 5; i++ {
		if i == 5000 {
			t.Fatal("no catalog commit failed on a full tmpfs")
		}
		key := fmt.Sprintf("d/%s-%d.txt", strings.Repeat("n", 200), i) // fills pages fast
		body := fmt.Sprintf("body of %d\n", i)
		f, err := s.Create(ctx, key, 0o644)
		if err != nil {
			if n, _, _ := cat.CommitFailing(); n > 0 {
				failingSeen++
				continue
			}
			t.Fatal(err)
		}
		f.WriteAt(ctx, []byte(body), 0)
		ferr := f.Flush(ctx)
		restore := stage.FailJournal(s) // the journal's disk is full too
		f.Release(ctx)
		restore()
		if ferr == nil {
			closed[key] = body
		}
		if n, _, _ := cat.CommitFailing(); n > 0 {
			failingSeen++
			// While failing: a Sync and a retry change nothing.
			if err := s.Sync(ctx); err == nil {
				t.Fatal("Sync while the catalog commit fails returned nil")
			}
			s.RetryFailed(ctx)
		}
	}
	t.Logf("%d closes returned nil", len(closed))
	s.StopRetries()
	_ = cat.GiveUpLazy() // lamina umount --force
	cat.Close()
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}

	cat2, err := catalog.OpenBolt(cpath, catalog.BoltOptions{Hold: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat2.Close() })
	s2, err := stage.New(cat2, store, stage.Options{Dir: dir, User: "t", SyncEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	var gone []string
	for key, body := range closed {
		v, err := cat2.ByKey(ctx, key, 0)
		if err != nil {
			gone = append(gone, key)
			continue
		}
		m, err := store.LoadManifest(ctx, cache.Ref(v.Manifest))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(store.Open(m.Files[0]))
		if string(got) != body {
			t.Fatalf("%s after Recover: %q, want %q", key, got, body)
		}
	}
	if len(gone) > 0 {
		t.Fatalf("%d of %d closed files gone after --force and Recover, as %s", len(gone), len(closed), gone[0])
	}
}

// fullCatalogStage opens a held bbolt catalog on a 4 MiB tmpfs filled but
// 256 KiB (filler), and a Stage on it whose staging folder dir is
// elsewhere (lazy commits, SyncEvery an hour), logging to log (nil:
// nowhere), the catalog wrapped by wrap if not nil.
func fullCatalogStage(t *testing.T, log *slog.Logger, wrap func(*catalog.Bolt) stage.Catalog) (cat *catalog.Bolt, cpath, filler string, store *cache.Store, dir string, s *stage.Stage) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	cdir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", cdir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", cdir).Run() })
	cpath = filepath.Join(cdir, "c.db")
	var err error
	cat, err = catalog.OpenBolt(cpath, catalog.BoltOptions{Hold: true, LazyCommitAfter: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	b, _ := storage.CreateLocal(filepath.Join(tmp, "storage"))
	store, err = cache.NewStore(b, filepath.Join(tmp, "idx.db"), cache.DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	dir = filepath.Join(tmp, "staging")
	var sc stage.Catalog = cat
	if wrap != nil {
		sc = wrap(cat)
	}
	s, err = stage.New(sc, store, stage.Options{Dir: dir, User: "t", SyncEvery: time.Hour, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	// Fill the catalog's tmpfs but 256 KiB.
	var st syscall.Statfs_t
	if err := syscall.Statfs(cdir, &st); err != nil {
		t.Fatal(err)
	}
	filler = filepath.Join(cdir, "filler")
	ff, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Fallocate(int(ff.Fd()), 0, 0, int64(st.Bavail)*st.Bsize-256<<10); err != nil {
		t.Fatal(err)
	}
	ff.Close()
	return cat, cpath, filler, store, dir, s
}

// TestForcedStopKeepsUIDs (audit a7): a new file closed while the lazy
// commit fails shows a uid (getfattr user.lamina.uid, its .meta sidecar)
// at once; after a stop that gives the waiting changes up (umount --force,
// kill -9) the next mount's Recover commits its staged bytes again, and
// the version must have that uid, not one drawn anew. Also for a file
// closed twice (the second commit builds on the first, both lost).
func TestForcedStopKeepsUIDs(t *testing.T) {
	ctx := context.Background()
	cat, cpath, filler, store, dir, s := fullCatalogStage(t, nil, nil)

	uids := map[string]string{} // key → uid its last close returned
	failingSeen := 0
	for i := 0; failingSeen < 3; i++ {
		if i == 5000 {
			t.Fatal("no catalog commit failed on a full tmpfs")
		}
		key := fmt.Sprintf("d/%s-%d.txt", strings.Repeat("u", 200), i)
		f, err := s.Create(ctx, key, 0o644)
		if err != nil {
			if n, _, _ := cat.CommitFailing(); n > 0 {
				failingSeen++
				continue
			}
			t.Fatal(err)
		}
		f.WriteAt(ctx, []byte(fmt.Sprintf("body of %d\n", i)), 0)
		if f.Flush(ctx) == nil {
			if v, ok := f.Committed(); ok {
				uids[key] = v.UID
			}
			if i%3 == 0 { // written and closed again: v2 of the same artifact
				f.WriteAt(ctx, []byte("more\n"), int64(len(fmt.Sprintf("body of %d\n", i))))
				if f.Flush(ctx) == nil {
					if v, ok := f.Committed(); ok {
						uids[key] = v.UID
					}
				}
			}
		}
		f.Release(ctx)
		if n, _, _ := cat.CommitFailing(); n > 0 {
			failingSeen++
		}
	}
	s.StopRetries()
	_ = cat.GiveUpLazy() // lamina umount --force
	cat.Close()
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}

	cat2, err := catalog.OpenBolt(cpath, catalog.BoltOptions{Hold: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat2.Close() })
	s2, err := stage.New(cat2, store, stage.Options{Dir: dir, User: "t", SyncEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := s2.Recover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rec) == 0 {
		t.Fatal("nothing was redone: no close waited for the failing commit")
	}
	var changed []string
	for key, uid := range uids {
		v, err := cat2.ByKey(ctx, key, 0)
		if err != nil {
			t.Fatalf("%s gone after Recover: %v", key, err)
		}
		if v.UID[:16] != uid[:16] {
			changed = append(changed, fmt.Sprintf("%s: %s, was %s", key[len(key)-8:], v.UID, uid))
		}
	}
	t.Logf("%d closes, %d redone by Recover", len(uids), len(rec))
	if len(changed) > 0 {
		t.Fatalf("%d of %d files came back under another uid after --force: %s", len(changed), len(uids), strings.Join(changed, "; "))
	}
}

// TestReopenWhileCommitFailsIsQuiet: a File written again after its close,
// whose lazy commit waits for a catalog commit that fails (not lost: it is
// retried), logged "the catalog lost a commit of a file still open"
// (audit; quiet since fix-o5). Its writes go on, nothing says the commit
// was lost, and they do not try the commit: each did (LazyCommitted), its
// 1,000 changes made again, 83 ms a write, at every write.
func TestReopenWhileCommitFailsIsQuiet(t *testing.T) {
	ctx := context.Background()
	var logs lockedBuffer
	var asked atomic.Int64
	cat, _, _, _, _, s := fullCatalogStage(t, slog.New(slog.NewTextHandler(&logs, nil)), func(b *catalog.Bolt) stage.Catalog {
		return countingLazy{b, &asked}
	})
	var held []*stage.File // closed (a dup's close), not released
	start := time.Now()
	for i := 0; ; i++ {
		if i == 5000 {
			t.Fatal("no catalog commit failed on a full tmpfs")
		}
		if n, _, _ := cat.CommitFailing(); n > 0 {
			break
		}
		f, err := s.Create(ctx, fmt.Sprintf("d/%s-%d.txt", strings.Repeat("q", 200), i), 0o644)
		if err != nil {
			continue
		}
		f.WriteAt(ctx, []byte("first\n"), 0)
		if f.Flush(ctx) == nil {
			held = append(held, f)
		} else {
			f.Release(ctx)
		}
	}
	t.Logf("%d held, failing after %s", len(held), time.Since(start))
	asked.Store(0)
	for _, f := range held {
		if _, err := f.WriteAt(ctx, []byte("more\n"), 6); err != nil {
			t.Fatalf("write after a close while the commit fails: %v", err)
		}
	}
	t.Logf("written after %s", time.Since(start))
	if n := asked.Load(); n > 0 {
		// Each tries the failing commit, its 1,000 changes made again.
		t.Errorf("%d writes asked LazyCommitted %d times while the commit fails", len(held), n)
	}
	if n, _, _ := cat.CommitFailing(); n == 0 {
		t.Fatal("the commit stopped failing")
	}
	if l := logs.String(); strings.Contains(l, "lost a commit") {
		t.Fatalf("a commit that waits was called lost:\n%s", l)
	}
	s.StopRetries()
	_ = cat.GiveUpLazy()
}

// countingLazy counts the LazyCommitted calls of a Stage.
type countingLazy struct {
	*catalog.Bolt
	n *atomic.Int64
}

func (c countingLazy) LazyCommitted(ctx context.Context) (uint64, error) {
	c.n.Add(1)
	return c.Bolt.LazyCommitted(ctx)
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
