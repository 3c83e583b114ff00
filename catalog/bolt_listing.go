package catalog

import (
	"bytes"
	"fmt"

	"github.com/lamina-bio/lamina/ref"
	bolt "go.etcd.io/bbolt"
)

// The listing bucket (schema 3) holds, for every live key, what a folder
// listing shows of its latest version:
//
//	listing  key → format byte 0x01, str uid, int version, str kind,
//	         int size, time mtime, uvarint mode (bolt_codec.go's types)
//
// It is derived from keys, artifacts and versions: putVersion, putArtifact
// and the two places that drop a key (rekey, Purge) call relist, and it is
// rebuilt whole when a catalog is upgraded or loaded. A folder listing then
// reads its names in key order from a few neighbouring pages, where reading
// the records cost two random B+tree lookups per name: a cold walk of
// 100,000 names faulted in most of the catalog file (docs/design.md).
var bListing = []byte("listing")

const listingV1 = 0x01

func encodeEntry(v *Version) []byte {
	e := encoder{b: make([]byte, 0, 48)}
	e.b = append(e.b, listingV1)
	e.str(v.UID)
	e.int(int64(v.Version))
	e.str(v.Kind)
	e.int(v.Size)
	e.time(v.Mtime)
	e.uvarint(uint64(v.Mode))
	return e.b
}

// decodeEntry is the partial Version an entry holds: key, uid, number,
// kind, size, mtime and mode.
func decodeEntry(key, raw []byte) (Version, error) {
	if len(raw) == 0 || raw[0] != listingV1 {
		return Version{}, fmt.Errorf("catalog: listing entry %q: %w", key, errRecord)
	}
	d := newDecoder(raw)
	d.i = 1
	v := Version{Key: string(key)}
	v.UID = d.str()
	v.Version = int(d.int())
	v.Kind = d.str()
	v.Size = d.int()
	v.Mtime = d.time()
	v.Mode = uint32(d.uvarint())
	if err := d.end(); err != nil {
		return Version{}, fmt.Errorf("catalog: listing entry %q: %w", key, err)
	}
	return v, nil
}

// relist brings key's listing entry in line with its artifact: the latest
// live version's, or none.
func relist(tx *bolt.Tx, key string) error {
	lb := tx.Bucket(bListing)
	if lb == nil { // a catalog being upgraded: setUp rebuilds it
		return nil
	}
	k := []byte(key)
	want, err := listingOf(tx, tx.Bucket(bKeys).Get(k))
	if err != nil {
		return err
	}
	have := lb.Get(k)
	switch {
	case want == nil && have == nil, bytes.Equal(want, have):
		return nil
	case want == nil:
		return lb.Delete(k)
	}
	return lb.Put(k, want)
}

// listingOf is the entry of the artifact stem, nil when it has no live
// version (or no record yet: a save writes its version first).
func listingOf(tx *bolt.Tx, stem []byte) ([]byte, error) {
	if stem == nil {
		return nil, nil
	}
	a, ok, err := getArtifact(tx.Bucket(bArtifacts), stem)
	if err != nil || !ok || a.Latest == 0 {
		return nil, err
	}
	v, ok, err := getVersion(tx.Bucket(bVersions), []byte(ref.VersionUID(a.Stem, a.Latest)))
	if err != nil || !ok {
		return nil, err
	}
	return encodeEntry(&v), nil
}

// rebuildListing writes the listing bucket afresh from the keys bucket, in
// key order (appends: bbolt fills pages instead of splitting them).
func rebuildListing(tx *bolt.Tx) error {
	if tx.Bucket(bListing) != nil {
		if err := tx.DeleteBucket(bListing); err != nil {
			return err
		}
	}
	lb, err := tx.CreateBucket(bListing)
	if err != nil {
		return err
	}
	lb.FillPercent = 1
	c := tx.Bucket(bKeys).Cursor()
	for k, stem := c.First(); k != nil; k, stem = c.Next() {
		e, err := listingOf(tx, stem)
		if err != nil {
			return err
		}
		if e != nil {
			if err := lb.Put(k, e); err != nil {
				return err
			}
		}
	}
	return nil
}

// liveUnder returns the first live key under prefix p (which ends in "/"),
// or "".
func (t txn) liveUnder(p string) string {
	k, _ := t.tx.Bucket(bListing).Cursor().Seek([]byte(p))
	if k != nil && bytes.HasPrefix(k, []byte(p)) {
		return string(k)
	}
	return ""
}
