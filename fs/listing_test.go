package fs_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/catalog"
	lfs "github.com/lamina-bio/lamina/fs"
	"golang.org/x/sys/unix"
)

// countingCatalog counts the per-version reads (ByKey) of a real catalog.
type countingCatalog struct {
	*catalog.Bolt
	byKey atomic.Int64
}

func (c *countingCatalog) ByKey(ctx context.Context, key string, n int) (catalog.Version, error) {
	c.byKey.Add(1)
	return c.Bolt.ByKey(ctx, key, n)
}

// A listing keeps a compact record per name, not the whole version: the
// heap it holds per listed and looked-up name stays small (issue 3: daemon
// memory with 100,000 artifacts), and what it does not keep is read from
// the catalog only when asked for (digest, sidecar).
func TestListingIsCompact(t *testing.T) {
	const n = 10_000
	w := newWorld(t)
	now := time.Now()
	var nvs []catalog.NewVersion
	for i := 0; i < n; i++ {
		nvs = append(nvs, catalog.NewVersion{Key: fmt.Sprintf("many/f%05d.csv", i), Kind: "file", Size: int64(i),
			CreatedBy: "tester", Description: "a description long enough to cost memory if it were kept",
			CreatedAt: now, Mtime: now.Add(time.Duration(i) * time.Second)})
	}
	if _, err := w.cat.Save(context.Background(), nvs); err != nil {
		t.Fatal(err)
	}
	cat := &countingCatalog{Bolt: w.cat}
	ctx := context.Background()

	before := liveHeap()
	ns := lfs.NewNamespace(cat, w.in.Store, lfs.Options{})
	dir, err := ns.Lookup(ctx, ns.Root(), "many")
	if err != nil {
		t.Fatal(err)
	}
	es, err := ns.ReadDir(ctx, dir)
	if err != nil || len(es) != n {
		t.Fatalf("listed %d, %v", len(es), err)
	}
	for _, e := range es {
		got, err := ns.Lookup(ctx, dir, e.Name)
		if err != nil || got.Ino != e.Ino || got.Size != e.Size || !got.Mtime.Equal(e.Mtime) {
			t.Fatalf("lookup %s = %+v, %v; listed %+v", e.Name, got, err, e)
		}
	}
	perName := float64(liveHeap()-before) / n
	runtime.KeepAlive(ns)
	// A whole catalog.Version per name (and a map entry) held ~630 bytes.
	if perName > 200 {
		t.Errorf("the listing holds %.0f bytes a name; want < 200", perName)
	}
	if c := cat.byKey.Load(); c != 0 {
		t.Errorf("listing and stat of %d names read %d versions one by one; want none", n, c)
	}
	t.Logf("%.0f bytes a name", perName)

	// What the listing does not keep comes from the catalog, right.
	want, err := w.cat.ByKey(ctx, "many/f04242.csv", 0)
	if err != nil {
		t.Fatal(err)
	}
	e, err := ns.Lookup(ctx, dir, "f04242.csv")
	if err != nil {
		t.Fatal(err)
	}
	full, err := ns.Full(ctx, e)
	if err != nil || full.UID != want.UID || full.Digest != want.Digest || full.Description != want.Description {
		t.Fatalf("Full = %+v, %v; want %+v", full, err, want)
	}
	for _, name := range []string{"f04242.csv.meta", "f04242.csv@v1.meta"} {
		me, err := ns.Lookup(ctx, dir, name)
		if err != nil || me.V == nil || me.V.UID != want.UID || me.V.Description != want.Description {
			t.Fatalf("%s: %+v, %v", name, me, err)
		}
	}
	if v1, err := ns.Lookup(ctx, dir, "f04242.csv@v1"); err != nil || v1.Ino == e.Ino || v1.Size != want.Size {
		t.Fatalf("@v1 = %+v, %v", v1, err)
	}
}

// liveHeap is the heap in use after a collection.
func liveHeap() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// Through a mount, a name stat'ed from a listing still shows its whole
// version where asked: xattrs (the digest), the sidecar, the content.
func TestListedNamesShowWholeVersions(t *testing.T) {
	w := newWorld(t)
	w.save("exp/a.csv", []byte("a,b\n1,2\n"))
	v2 := w.save("exp/a.csv", []byte("a,b\n3,4\n"))
	w.save("exp/b.csv", []byte("keeps exp/ there"))
	w.mount(lfs.MountOptions{})
	if got := w.ls("exp"); len(got) != 2 || got[0] != "a.csv" {
		t.Fatalf("ls = %q", got)
	}
	p := filepath.Join(w.dir, "exp/a.csv")
	buf := make([]byte, 256)
	for attr, want := range map[string]string{"user.lamina.digest": v2.Digest.String(), "user.lamina.version": "2",
		"user.lamina.uid": v2.UID, "user.lamina.key": "exp/a.csv"} {
		n, err := unix.Getxattr(p, attr, buf)
		if err != nil || string(buf[:n]) != want {
			t.Errorf("%s = %q, %v; want %q", attr, buf[:n], err, want)
		}
	}
	// ls -l asks every file for these; they are not ours.
	if _, err := unix.Getxattr(p, "system.posix_acl_access", buf); err != unix.ENODATA {
		t.Errorf("posix_acl_access: %v, want ENODATA", err)
	}
	var side struct {
		UID, Digest string
		Version     int
	}
	if err := json.Unmarshal(w.read("exp/a.csv.meta"), &side); err != nil || side.UID != v2.UID || side.Version != 2 ||
		side.Digest != v2.Digest.String() {
		t.Fatalf("sidecar %+v, %v", side, err)
	}
	if got := string(w.read("exp/a.csv")); got != "a,b\n3,4\n" {
		t.Fatalf("content %q", got)
	}
	if fi, err := os.Stat(p); err != nil || !fi.ModTime().Equal(v2.Mtime) || fi.Size() != v2.Size {
		t.Fatalf("stat %v, %v; want mtime %v size %d", fi, err, v2.Mtime, v2.Size)
	}
}
