package catalog

import (
	"bytes"
	"context"
	"sort"
	"strings"

	"github.com/lamina-bio/lamina/ref"
	bolt "go.etcd.io/bbolt"
)

// Children walks the sorted keys bucket once: a file directly under prefix
// costs one artifact and one version read; a sub-prefix costs reads only
// until its first live key, after which the cursor seeks past the whole
// subtree (every key of "p/name/…" sorts before "p/name0", as '0' follows
// '/'). A listing of 1,000 folders of 100 files each touches ~1,000 keys.
func (b *Bolt) Children(ctx context.Context, prefix string) (Dir, error) {
	if err := ref.CheckPrefix(prefix); err != nil {
		return Dir{}, err
	}
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	var d Dir
	err := b.with(false, func(tx *bolt.Tx) error {
		d = Dir{}
		t := txn{tx}
		arts := tx.Bucket(bArtifacts)
		p := []byte(prefix)
		c := tx.Bucket(bKeys).Cursor()
		k, stem := c.Seek(p)
		for k != nil && bytes.HasPrefix(k, p) {
			rest := k[len(p):]
			i := bytes.IndexByte(rest, '/')
			if i < 0 {
				a, err := latestOf(arts, stem)
				if err != nil {
					return err
				}
				if a.Latest > 0 {
					v, _, err := t.version(ref.VersionUID(a.Stem, a.Latest))
					if err != nil {
						return err
					}
					d.Files = append(d.Files, v)
				}
				k, stem = c.Next()
				continue
			}
			name := string(rest[:i])
			sub := []byte(prefix + name + "/")
			for ; k != nil && bytes.HasPrefix(k, sub); k, stem = c.Next() {
				a, err := latestOf(arts, stem)
				if err != nil {
					return err
				}
				if a.Latest > 0 {
					d.Subdirs = append(d.Subdirs, name)
					break
				}
			}
			k, stem = c.Seek([]byte(prefix + name + "0"))
		}
		return t.childEntries(prefix, &d) // folders and links (bolt_write.go)
	})
	if err != nil {
		return Dir{}, err
	}
	// Keys sort "a-b/…" before "a/…": the names come out nearly, not fully,
	// sorted.
	sort.Strings(d.Subdirs)
	return d, nil
}

// latestOf reads an artifact record; a missing one is the zero artifact.
func latestOf(arts *bolt.Bucket, stem []byte) (artifact, error) {
	a, _, err := getArtifact(arts, stem)
	return a, err
}
