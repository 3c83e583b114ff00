package cache

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/lamina-bio/lamina/ref"
	"github.com/lamina-bio/lamina/storage"
)

// PackInfo describes a stored pack and the blobs in it.
type PackInfo struct {
	ID      string
	Size    int64
	ModTime time.Time
	Blobs   []BlobInfo
}

// BlobInfo is one blob of a pack.
type BlobInfo struct {
	Type   byte
	Digest ref.Digest
	Loc    Loc
}

// Packs calls fn for every pack in storage with its trailer read. A pack
// whose trailer cannot be read is reported with no blobs and err set in the
// second argument, so gc can skip it rather than guess.
func (s *Store) Packs(ctx context.Context, fn func(PackInfo, error) error) error {
	var infos []storage.Info
	if err := s.obj.List(ctx, "packs/", func(i storage.Info) error { infos = append(infos, i); return nil }); err != nil {
		return err
	}
	infos = slices.DeleteFunc(infos, func(i storage.Info) bool { _, ok := packID(i.Name); return !ok })
	// Trailers are read bulkRequests at a time (two small reads each: one
	// after another, 2,000 packs cost 4,000 round trips), a batch at a
	// time, and fn sees the packs in listing order.
	const batch = 256
	for len(infos) > 0 {
		n := min(batch, len(infos))
		packs, errs := make([]PackInfo, n), make([]error, n)
		idx := make([]int, n)
		for k := range idx {
			idx[k] = k
		}
		err := eachID(ctx, idx, func(ctx context.Context, k int) error {
			i := infos[k]
			id, _ := packID(i.Name)
			p := PackInfo{ID: id, Size: i.Size, ModTime: i.ModTime}
			es, err := s.readTrailer(ctx, i.Name, i.Size)
			for _, e := range es {
				p.Blobs = append(p.Blobs, BlobInfo{Type: e.Type, Digest: e.Digest, Loc: Loc{Pack: id, Off: e.Off, Len: e.Len}})
			}
			packs[k], errs[k] = p, err
			return nil
		})
		if err != nil {
			return err // the caller's context ended
		}
		for k := range n {
			if err := fn(packs[k], errs[k]); err != nil {
				return err
			}
		}
		infos = infos[n:]
	}
	return nil
}

func (s *Store) readTrailer(ctx context.Context, name string, size int64) ([]blobEntry, error) {
	if size < 8 {
		return nil, fmt.Errorf("%w: pack %s is %d bytes", ErrCorrupt, name, size)
	}
	foot, err := s.obj.GetRange(ctx, name, size-8, 8)
	if err != nil {
		return nil, err
	}
	n := int64(binary.BigEndian.Uint32(foot[:4]))
	if n+8 > size {
		return nil, fmt.Errorf("%w: pack %s: trailer of %d bytes in a %d-byte pack", ErrCorrupt, name, n, size)
	}
	tail, err := s.obj.GetRange(ctx, name, size-8-n, n+8)
	if err != nil {
		return nil, err
	}
	es, _, err := parseTrailer(tail)
	if err != nil {
		return nil, fmt.Errorf("pack %s: %w", name, err)
	}
	return es, nil
}

// DeletePacks removes packs from the index and then from storage.
func (s *Store) DeletePacks(ctx context.Context, ids []string) error {
	set := map[string]bool{}
	for _, id := range ids {
		set[id] = true
	}
	if err := s.idx.RemovePacks(set); err != nil {
		return err
	}
	return eachID(ctx, ids, func(ctx context.Context, id string) error {
		return s.obj.Delete(ctx, packName(id))
	})
}

// RebuildIndex recreates the dedup index from the pack trailers in storage.
func (s *Store) RebuildIndex(ctx context.Context) (int, error) {
	all := map[ref.Digest]Loc{}
	err := s.Packs(ctx, func(p PackInfo, err error) error {
		if err != nil {
			return nil // an unreadable pack just isn't used for dedup
		}
		for _, b := range p.Blobs {
			all[b.Digest] = b.Loc
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if err := s.idx.Reset(); err != nil {
		return 0, err
	}
	return len(all), s.idx.Add(all)
}
