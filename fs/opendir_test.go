package fs_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/catalog"
	lfs "github.com/lamina-bio/lamina/fs"
)

// saveMany records n empty files under dir/ in one batch.
func (w *world) saveMany(dir string, n int) {
	w.t.Helper()
	var nvs []catalog.NewVersion
	now := time.Now()
	for i := 0; i < n; i++ {
		nvs = append(nvs, catalog.NewVersion{Key: fmt.Sprintf("%s/f%05d", dir, i), Kind: "file", CreatedAt: now, Mtime: now})
	}
	if _, err := w.cat.Save(context.Background(), nvs); err != nil {
		w.t.Fatal(err)
	}
}

// walk lists every folder under the mount and returns the files seen.
func (w *world) walk() int {
	w.t.Helper()
	files := 0
	err := filepath.WalkDir(w.dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files++
		}
		return err
	})
	if err != nil {
		w.t.Fatal(err)
	}
	return files
}

// The kernel keeps listings: a second walk of the tree, and a stat of a
// folder in between, send the daemon no directory request at all (no
// OPENDIR, READDIR or RELEASEDIR), until a change to a folder invalidates
// its listing.
func TestListingsCached(t *testing.T) {
	w := newWorld(t)
	w.saveMany("a", 300)
	for i := 0; i < 20; i++ {
		w.saveMany(fmt.Sprintf("b/c%02d", i), 5)
	}
	w.mount(lfs.MountOptions{})
	listed := func() int64 { return w.mnt.Stats().DirsListed }
	requests := func() int64 { return w.mnt.Stats().DirRequests }

	if n := w.walk(); n != 400 {
		t.Fatalf("walked %d files", n)
	}
	first, reqs := listed(), requests()
	if _, err := os.Stat(filepath.Join(w.dir, "a")); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if n := w.walk(); n != 400 {
			t.Fatalf("walked %d files", n)
		}
		if got := w.ls("a"); len(got) != 300 || got[299] != "f00299" {
			t.Fatalf("relisted %d", len(got))
		}
	}
	if n := listed(); n != first {
		t.Errorf("warm listings reached the daemon: %d listings, want %d", n, first)
	}
	if n := requests(); n != reqs {
		t.Errorf("warm walks sent %d directory requests", n-reqs)
	}

	w.save("a/new.csv", []byte("x\n"))
	got := w.ls("a")
	if len(got) != 301 || got[300] != "new.csv" {
		t.Fatalf("after a save: %d entries, last %q", len(got), got[len(got)-1])
	}
	if listed() == first {
		t.Error("a changed folder was not listed again")
	}
}

// Several processes listing one cold folder at once share the daemon's
// handle for it; each gets every entry exactly once.
func TestConcurrentColdListings(t *testing.T) {
	w := newWorld(t)
	const n = 5000 // several READDIRPLUS replies each
	w.saveMany("d", n)
	w.mount(lfs.MountOptions{})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			es, err := os.ReadDir(filepath.Join(w.dir, "d"))
			if err != nil {
				errs <- err
				return
			}
			seen := map[string]bool{}
			for _, e := range es {
				if seen[e.Name()] {
					errs <- fmt.Errorf("%s listed twice", e.Name())
					return
				}
				seen[e.Name()] = true
			}
			if len(seen) != n {
				errs <- fmt.Errorf("listed %d of %d", len(seen), n)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// A folder's mtime is the newest of its files whether or not it was
// listed, and it stays put, so the kernel's cached listing stays valid.
func TestFolderMtimeStable(t *testing.T) {
	w := newWorld(t)
	old := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	nv := catalog.NewVersion{Key: "p/q/old.csv", Kind: "file", CreatedAt: old, Mtime: old}
	if _, err := w.cat.Save(context.Background(), []catalog.NewVersion{nv}); err != nil {
		t.Fatal(err)
	}
	w.mount(lfs.MountOptions{})
	w.ls("p") // q's entry comes from p's listing, before q is listed
	fi, err := os.Stat(filepath.Join(w.dir, "p/q"))
	if err != nil {
		t.Fatal(err)
	}
	if !fi.ModTime().Equal(old) {
		t.Errorf("mtime of p/q before listing it = %v, want %v", fi.ModTime(), old)
	}
	w.ls("p/q")
	if fi, _ := os.Stat(filepath.Join(w.dir, "p/q")); !fi.ModTime().Equal(old) {
		t.Errorf("mtime of p/q after listing it = %v, want %v", fi.ModTime(), old)
	}
}

// With --no-cache-dirs every listing goes to the daemon, through OPENDIR.
func TestListingsUncached(t *testing.T) {
	w := newWorld(t)
	w.saveMany("a", 300)
	w.mount(lfs.MountOptions{NoCacheDirs: true})
	for i := 0; i < 2; i++ {
		if got := w.ls("a"); len(got) != 300 {
			t.Fatalf("listed %d", len(got))
		}
	}
	if n := w.mnt.Stats().DirsListed; n < 2 {
		t.Errorf("%d listings, want one per ls", n)
	}
}
