package storage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// ErrChanged is returned by Swapper.PutIf when the object is no longer the
// one the caller read: another process or machine replaced it.
var ErrChanged = errors.New("storage: object changed since it was read")

// Swapper is a backend that replaces an object only if it is still the one
// the caller read, so that a read-modify-write of a small shared object
// (the ontology registry) is safe against other machines doing the same:
// the loser gets ErrChanged and reads again, instead of overwriting.
type Swapper interface {
	// GetTag reads name from the storage itself (never a cache or a staged
	// copy) with a tag that names this content; a missing object is an
	// error wrapping ErrNotFound.
	GetTag(ctx context.Context, name string) (data []byte, tag string, err error)
	// PutIf stores data under name in the storage itself, never staged,
	// only if the object there is the one tag names ("": only if there is
	// none). Otherwise nothing is written and the error wraps ErrChanged.
	PutIf(ctx context.Context, name string, data []byte, tag string) error
}

// FindSwapper returns b, or the first backend under it (through Unwrap),
// that is a Swapper: the decorators in between (a block cache, an upload
// queue) are bypassed, which is what a shared, changing object needs.
func FindSwapper(b Backend) (Swapper, bool) {
	for b != nil {
		if s, ok := b.(Swapper); ok {
			return s, true
		}
		u, ok := b.(interface{ Unwrap() Backend })
		if !ok {
			return nil, false
		}
		b = u.Unwrap()
	}
	return nil, false
}

// GetTag reads the object; its tag is the SHA-256 of its bytes.
func (l *Local) GetTag(ctx context.Context, name string) ([]byte, string, error) {
	b, err := l.Get(ctx, name)
	if err != nil {
		return nil, "", err
	}
	return b, localTag(b), nil
}

// PutIf compares and replaces under an exclusive flock of name+".lock",
// beside the object, so that every process on every machine that shares
// the folder (NFS locks flock too) is serialised. The object is synced
// before the lock is released.
func (l *Local) PutIf(ctx context.Context, name string, data []byte, tag string) error {
	p, err := l.path(name)
	if err != nil {
		return err
	}
	if err := l.mkdir(filepath.Dir(p)); err != nil {
		return fmt.Errorf("storage: put %s: %w", name, err)
	}
	f, err := os.OpenFile(p+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("storage: lock %s: %w", name, l.goneIfRootIs(err, topOf(name)))
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("storage: lock %s: %w", name, err)
	}
	cur, err := os.ReadFile(p)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if tag != "" {
			return fmt.Errorf("storage: put %s: %w (it is gone)", name, ErrChanged)
		}
	case err != nil:
		return fmt.Errorf("storage: put %s: %w", name, err)
	case localTag(cur) != tag:
		return fmt.Errorf("storage: put %s: %w", name, ErrChanged)
	}
	if err := l.Put(ctx, name, data); err != nil {
		return err
	}
	return l.Sync(ctx)
}

func localTag(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
