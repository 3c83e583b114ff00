package catalog_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/catalog/catalogtest"
	bolt "go.etcd.io/bbolt"
)

func TestBoltConformance(t *testing.T) {
	for _, hold := range []bool{false, true} {
		name := "PerCall"
		if hold {
			name = "Held"
		}
		t.Run(name, func(t *testing.T) {
			catalogtest.Run(t, func(t *testing.T) catalog.Catalog {
				c, err := catalog.OpenBolt(filepath.Join(t.TempDir(), "catalog.db"), catalog.BoltOptions{Hold: hold})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				return c
			})
		})
	}
}

func TestBoltRefusesNewerSchema(t *testing.T) {
	p := filepath.Join(t.TempDir(), "catalog.db")
	c, err := catalog.OpenBolt(p, catalog.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	db, err := bolt.Open(p, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("meta")).Put([]byte("schema"), []byte("99")) })
	db.Close()
	if _, err := catalog.OpenBolt(p, catalog.BoltOptions{}); !errors.Is(err, catalog.ErrSchema) {
		t.Fatalf("newer schema: %v", err)
	}
}

func TestBoltCorruptFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "catalog.db")
	os.WriteFile(p, []byte("this is not a bbolt file, just some text that is long enough"), 0o600)
	_, err := catalog.OpenBolt(p, catalog.BoltOptions{})
	if err == nil {
		t.Fatal("opened a corrupt catalog")
	}
	_ = context.Background()
}
