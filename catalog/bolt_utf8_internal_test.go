package catalog

import (
	"context"
	"errors"
	"testing"

	"github.com/lamina-bio/lamina/ref"
	bolt "go.etcd.io/bbolt"
)

// TestBoltLegacyNotUTF8Names: a label, schema or collection whose name is
// not UTF-8, stored before names were checked, can still be deleted; a
// name that is not UTF-8 and not stored is refused as PostgreSQL refuses
// it (ref.ErrNotUTF8), not "not found".
func TestBoltLegacyNotUTF8Names(t *testing.T) {
	ctx := context.Background()
	b := heldBolt(t)
	s, err := b.Save(ctx, []NewVersion{testNV("a.csv", "a")})
	if err != nil {
		t.Fatal(err)
	}
	name := "old\xff"
	err = b.with(true, func(tx *bolt.Tx) error {
		if err := putJSON(tx.Bucket(bLabels), []byte(name), Label{Name: name}); err != nil {
			return err
		}
		if err := putJSON(tx.Bucket(bSchemas), []byte(name), Schema{Name: name}); err != nil {
			return err
		}
		return putJSON(tx.Bucket(bCollections), collectionKey(name, 1), Collection{Name: name, Version: 1, Members: []string{s[0].Version.UID}})
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.DeleteLabel(ctx, name); err != nil {
		t.Fatalf("DeleteLabel of a stored name not UTF-8: %v", err)
	}
	if _, err := b.DeleteSchema(ctx, name); err != nil {
		t.Fatalf("DeleteSchema of a stored name not UTF-8: %v", err)
	}
	if cs, err := b.DeleteCollection(ctx, name); err != nil || len(cs) != 1 {
		t.Fatalf("DeleteCollection of a stored name not UTF-8: %v, %v", cs, err)
	}
	for what, err := range map[string]error{
		"DeleteLabel":      second(b.DeleteLabel(ctx, name)),
		"DeleteSchema":     second(b.DeleteSchema(ctx, name)),
		"DeleteCollection": second(b.DeleteCollection(ctx, name)),
		"Collection":       second(b.Collection(ctx, name, 0)),
	} {
		if !errors.Is(err, ref.ErrNotUTF8) {
			t.Errorf("%s once gone: %v, want ref.ErrNotUTF8", what, err)
		}
	}
}

func second[T any](_ T, err error) error { return err }
