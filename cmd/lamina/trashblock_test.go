package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/catalog/catalogrpc"
	"github.com/lamina-bio/lamina/catalog/catalogtest"
	"github.com/lamina-bio/lamina/catalog/postgres"
	"github.com/lamina-bio/lamina/catalog/postgres/pgtest"
)

// countingCatalog counts the ByKey lookups made through it.
type countingCatalog struct {
	catalog.Catalog
	byKey int
}

func (c *countingCatalog) ByKey(ctx context.Context, key string, n int) (catalog.Version, error) {
	c.byKey++
	return c.Catalog.ByKey(ctx, key, n)
}

// trashCatalog opens a catalog: bbolt as the CLI opens it, bbolt held
// and served on a socket as the daemon does (the client), or PostgreSQL.
func trashCatalog(tb testing.TB, via string) catalog.Catalog {
	tb.Helper()
	if via == "postgres" {
		c, err := postgres.Open(context.Background(), pgtest.URL(tb), postgres.Options{})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { c.Close() })
		return c
	}
	rpc := via == "rpc"
	dir := tb.TempDir()
	// The CLI opens the file for each call (open.go); the daemon holds it.
	b, err := catalog.OpenBolt(filepath.Join(dir, "c.db"), catalog.BoltOptions{Hold: rpc})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { b.Close() })
	if !rpc {
		return b
	}
	sock := filepath.Join(dir, "c.sock")
	l, err := catalogrpc.Listen(sock)
	if err != nil {
		tb.Fatal(err)
	}
	srv := catalogrpc.NewServer(b, catalogrpc.ServerOptions{ID: "i"})
	go srv.Serve(l)
	c, err := catalogrpc.Dial(context.Background(), sock, "i")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close(); srv.Close() })
	return c
}

// trickyTrash fills c with a trash of nested folders, links, a file and a
// folder at one name, and names a live file keeps there at three depths.
func trickyTrash(t *testing.T, c catalog.Catalog) {
	ctx := context.Background()
	do := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	save := func(k string) {
		t.Helper()
		_, err := c.Save(ctx, []catalog.NewVersion{catalogtest.NV(k, k)})
		do(err)
	}
	trash := func(k string) {
		t.Helper()
		save(k)
		_, err := c.Trash(ctx, k)
		do(err)
	}
	// t/k: a file, then a folder (x, sub/, ln) removed with rm -r; the
	// file restored takes the name and keeps the rest in the trash.
	trash("t/k")
	trash("t/k/x")
	do(c.MakeFolder(ctx, "t/k"))
	do(c.MakeFolder(ctx, "t/k/sub"))
	do(c.Symlink(ctx, "t/k/ln", "x"))
	do(c.RemoveLink(ctx, "t/k/ln"))
	do(c.RemoveFolder(ctx, "t/k/sub"))
	do(c.RemoveFolder(ctx, "t/k"))
	_, err := c.Restore(ctx, "t/k")
	do(err)
	// t/m: a trashed file and a trashed folder at one name, nothing live.
	trash("t/m")
	do(c.MakeFolder(ctx, "t/m"))
	do(c.RemoveFolder(ctx, "t/m"))
	// Siblings t/d0…t/d9 (enough for a listing of t/), t/d3 a file now.
	for i := range 10 {
		trash(fmt.Sprintf("t/d%d/y", i))
	}
	save("t/d3")
	// Deep: n/a/b a file over a trashed n/a/b/c/z; top a file over top/q.
	trash("n/a/b/c/z")
	save("n/a/b")
	trash("top/q")
	save("top")
	save("t/live.csv") // live, beside the trash
}

// trickyRows is trickyTrash's listing: key, kind and what blocks it.
const trickyRows = `n/a/b/c/z::n/a/b
t/d0/y::
t/d1/y::
t/d2/y::
t/d3/y::t/d3
t/d4/y::
t/d5/y::
t/d6/y::
t/d7/y::
t/d8/y::
t/d9/y::
t/k/ln:link:t/k
t/k/sub:folder:t/k
t/k/x::t/k
t/m::
t/m:folder:
top/q::top`

// TestTrashBlockersListOnce: ls --trash found what blocks each trashed
// name with a ByKey per folder above it (2,000 round trips for 2,000
// folders); the folders of one parent are now answered by one listing of
// it, and the rows stay the same whichever way they are found, on bbolt
// through the daemon's socket and on PostgreSQL.
func TestTrashBlockersListOnce(t *testing.T) {
	for _, via := range []string{"bolt", "rpc", "postgres"} {
		t.Run(via, func(t *testing.T) {
			ctx := context.Background()
			c := trashCatalog(t, via)
			trickyTrash(t, c)
			es, err := c.TrashList(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer func(n int) { listedFrom = n }(listedFrom)
			for _, from := range []int{1, 8, 1 << 30} { // all listed, as shipped, all looked up
				listedFrom = from
				cc := &countingCatalog{Catalog: c}
				by, bl, err := blockedBy(ctx, cc, es)
				if err != nil {
					t.Fatal(err)
				}
				var rows []string
				for i, e := range es {
					rows = append(rows, e.Key+":"+e.Kind+":"+by[i])
				}
				if got := strings.Join(rows, "\n"); got != trickyRows {
					t.Errorf("listedFrom %d: rows\n%s\nwant\n%s", from, got, trickyRows)
				}
				if bl.count() != 6 || len(bl["t/k"]) != 3 {
					t.Errorf("listedFrom %d: blocked %v", from, bl)
				}
				// The 11 folders of t/ are listed; n, t, top, n/a and
				// n/a/b (the file that blocks, so n/a/b/c is not asked)
				// are looked up.
				if want := map[int]int{1: 0, 8: 5, 1 << 30: 16}[from]; cc.byKey != want {
					t.Errorf("listedFrom %d: %d ByKey lookups; want %d", from, cc.byKey, want)
				}
			}
		})
	}
}

// BenchmarkLsTrashBlockers: what ls --trash spends finding what blocks
// 2,000 trashed keys in 2,000 folders, by a lookup per folder (as
// before) and by one listing of their parent.
func BenchmarkLsTrashBlockers(b *testing.B) {
	vias := []string{"bolt", "rpc"}
	if os.Getenv("LAMINA_PG_URL") != "" {
		vias = append(vias, "postgres")
	}
	for _, via := range vias {
		ctx := context.Background()
		c := trashCatalog(b, via)
		var nvs []catalog.NewVersion
		for i := range 2000 {
			nvs = append(nvs, catalogtest.NV(fmt.Sprintf("data/d%04d/x.csv", i), fmt.Sprint(i)))
		}
		if _, err := c.Save(ctx, nvs); err != nil {
			b.Fatal(err)
		}
		for _, nv := range nvs {
			if _, err := c.Trash(ctx, nv.Key); err != nil {
				b.Fatal(err)
			}
		}
		es, err := c.TrashList(ctx)
		if err != nil || len(es) != 2000 {
			b.Fatal(len(es), err)
		}
		for _, way := range []struct {
			name string
			from int
		}{{"lookups", 1 << 30}, {"listing", 8}} {
			b.Run(via+"/"+way.name, func(b *testing.B) {
				defer func(n int) { listedFrom = n }(listedFrom)
				listedFrom = way.from
				for b.Loop() {
					if _, _, err := blockedBy(ctx, c, es); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
