package catalog_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/catalog/catalogtest"
)

// damagedCatalog makes a catalog file of some 100 pages with 2,000 keys.
func damagedCatalog(t *testing.T, hold bool) (*catalog.Bolt, string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "catalog.db")
	c, err := catalog.OpenBolt(p, catalog.BoltOptions{Hold: hold})
	if err != nil {
		t.Fatal(err)
	}
	var nvs []catalog.NewVersion
	for i := range 2000 {
		nvs = append(nvs, catalogtest.NV(fmt.Sprintf("folder/key-%04d.csv", i), fmt.Sprint(i)))
	}
	if _, err := c.Save(context.Background(), nvs); err != nil {
		t.Fatal(err)
	}
	return c, p
}

// TestBoltDamagedFile: a damaged catalog file is an ErrDamaged error that
// says what is wrong, never a panic of bbolt's or a SIGBUS.
func TestBoltDamagedFile(t *testing.T) {
	ctx := context.Background()
	isDamaged := func(t *testing.T, err error, want string) {
		t.Helper()
		if !errors.Is(err, catalog.ErrDamaged) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "restore it from a backup") {
			t.Fatalf("got %v, want ErrDamaged saying %q", err, want)
		}
	}
	t.Run("Truncated", func(t *testing.T) {
		c, p := damagedCatalog(t, false)
		c.Close()
		st, _ := os.Stat(p)
		if err := os.Truncate(p, 20000); err != nil {
			t.Fatal(err)
		}
		_, err := catalog.OpenBolt(p, catalog.BoltOptions{Existing: true})
		isDamaged(t, err, "is truncated (20000 bytes; its header says ")
		if st.Size() <= 20000 {
			t.Fatalf("the catalog has only %d bytes", st.Size())
		}
	})
	t.Run("TruncatedAfterOpen", func(t *testing.T) {
		c, p := damagedCatalog(t, false)
		os.Truncate(p, 20000)
		_, err := c.List(ctx, catalog.Query{Prefix: "folder/"})
		isDamaged(t, err, "is truncated")
	})
	t.Run("TruncatedWhileHeld", func(t *testing.T) {
		// The mapping of a held file now reaches past its end: reading
		// there is a SIGBUS, which guard turns into a panic and an error.
		c, p := damagedCatalog(t, true)
		defer c.Close()
		if err := os.Truncate(p, 8192); err != nil {
			t.Fatal(err)
		}
		_, err := c.List(ctx, catalog.Query{Prefix: "folder/"})
		isDamaged(t, err, "cannot be read")
		_, err = c.ByKey(ctx, "folder/key-1999.csv", 0)
		isDamaged(t, err, "cannot be read")
		// The mount daemon's saves go through the open transaction of lazy
		// saves, which faulted outside guard and killed the daemon.
		for i := range 2 {
			_, err = c.Save(catalog.Lazy(ctx), []catalog.NewVersion{catalogtest.NV(fmt.Sprintf("lazy-%d.csv", i), "x")})
			isDamaged(t, err, "cannot be read")
		}
		isDamaged(t, c.Flush(ctx), "cannot be read")
	})
	// garble overwrites every page but the two metas, and the freelist
	// unless all.
	garble := func(t *testing.T, p string, all bool) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		freelist := false
		for pg := 2 * 4096; pg < len(b); pg += 4096 {
			if b[pg+8] == 0x10 && b[pg] == byte(pg/4096) { // a freelist page header
				freelist = true
				if !all {
					continue
				}
			}
			for i := pg; i < pg+4096; i++ {
				b[i] = 0xff
			}
		}
		if !freelist {
			t.Fatal("no freelist page found")
		}
		os.WriteFile(p, b, 0o600)
	}
	t.Run("GarbledPages", func(t *testing.T) {
		c, p := damagedCatalog(t, false)
		c.Close()
		garble(t, p, false)
		_, err := catalog.OpenBolt(p, catalog.BoltOptions{Existing: true})
		isDamaged(t, err, "cannot be read: assertion failed")
	})
	t.Run("GarbledPagesAfterOpen", func(t *testing.T) {
		c, p := damagedCatalog(t, false)
		garble(t, p, false)
		_, err := c.Save(ctx, []catalog.NewVersion{catalogtest.NV("other.csv", "x")})
		isDamaged(t, err, "cannot be read")
		_, err = c.ByKey(ctx, "folder/key-0001.csv", 0)
		isDamaged(t, err, "cannot be read")
		_, err = c.List(ctx, catalog.Query{Prefix: "folder/"})
		isDamaged(t, err, "cannot be read")
	})
	t.Run("GarbledFreelist", func(t *testing.T) {
		// bbolt reads the freelist when it opens the file for writing; a
		// panic there would leave the file locked (its mapping holds it).
		c, p := damagedCatalog(t, false)
		garble(t, p, true)
		_, err := c.Save(ctx, []catalog.NewVersion{catalogtest.NV("other.csv", "x")})
		isDamaged(t, err, "has a damaged freelist")
		_, err = c.ByKey(ctx, "folder/key-0001.csv", 0)
		isDamaged(t, err, "has a damaged freelist")
	})
	t.Run("Empty", func(t *testing.T) {
		c, p := damagedCatalog(t, false)
		c.Close()
		os.Truncate(p, 0)
		_, err := catalog.OpenBolt(p, catalog.BoltOptions{Existing: true})
		isDamaged(t, err, "is empty (0 bytes)")
		// A new catalog (an init stopped after it made the file) is set up.
		c, err = catalog.OpenBolt(p, catalog.BoltOptions{})
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	})
	t.Run("Missing", func(t *testing.T) {
		p := filepath.Join(t.TempDir(), "catalog.db")
		_, err := catalog.OpenBolt(p, catalog.BoltOptions{Existing: true})
		isDamaged(t, err, "is missing")
	})
}
