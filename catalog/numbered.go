package catalog

import (
	"context"
	"errors"
)

// KeyVersions reads the versions of a key; every Catalog is one.
type KeyVersions interface {
	ByKey(ctx context.Context, key string, n int) (Version, error)
	Versions(ctx context.Context, key string, trash bool) ([]Version, error)
}

// ByKeyWithTrash is c.ByKey(ctx, key, n), except that version n ≥ 1 is
// found in the trash too (its Trashed set): a number names one immutable
// version for good, and a key written again after an rm (every Snakemake
// rerun deletes its outputs first) keeps its earlier versions there. The
// latest (n = 0) is a live version only. Where no version n exists, ByKey's
// error is returned. It reads the key's versions only when ByKey finds
// none, so a store needs no call of its own for it.
func ByKeyWithTrash(ctx context.Context, c KeyVersions, key string, n int) (Version, error) {
	v, err := c.ByKey(ctx, key, n)
	if n <= 0 || !errors.Is(err, ErrNotFound) {
		return v, err
	}
	all, verr := c.Versions(ctx, key, true)
	if verr != nil {
		return v, err // ByKey's answer says it better
	}
	for _, tv := range all {
		if tv.Version == n && tv.Trashed {
			return tv, nil
		}
	}
	return v, err
}
