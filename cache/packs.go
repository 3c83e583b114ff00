package cache

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/lamina-bio/lamina/ref"
	"github.com/lamina-bio/lamina/storage"
	bolt "go.etcd.io/bbolt"
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
	return s.packs(ctx, s.obj, nil, fn)
}

// packs is Packs reading the trailers from obj; listed, if not nil, is
// told how many packs there are before the first is read.
func (s *Store) packs(ctx context.Context, obj Objects, listed func(int), fn func(PackInfo, error) error) error {
	var infos []storage.Info
	if err := obj.List(ctx, "packs/", func(i storage.Info) error { infos = append(infos, i); return nil }); err != nil {
		return err
	}
	infos = slices.DeleteFunc(infos, func(i storage.Info) bool { _, ok := packID(i.Name); return !ok })
	if listed != nil {
		listed(len(infos))
	}
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
			es, err := readTrailer(ctx, obj, i.Name, i.Size)
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

func readTrailer(ctx context.Context, obj Objects, name string, size int64) ([]blobEntry, error) {
	if size < 8 {
		return nil, fmt.Errorf("%w: pack %s is %d bytes", ErrCorrupt, name, size)
	}
	foot, err := obj.GetRange(ctx, name, size-8, 8)
	if err != nil {
		return nil, err
	}
	n := int64(binary.BigEndian.Uint32(foot[:4]))
	if n+8 > size {
		return nil, fmt.Errorf("%w: pack %s: trailer of %d bytes in a %d-byte pack", ErrCorrupt, name, n, size)
	}
	tail, err := obj.GetRange(ctx, name, size-8-n, n+8)
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

// IndexUnbuilt reports whether the dedup index was made anew (its file
// missing: lost, or a workstation new to the storage) and RebuildIndex has
// not yet completed: it then knows nothing stored before, and a save of
// content storage already holds stores it all again.
func (s *Store) IndexUnbuilt() bool { return s.idx.unbuilt.Load() }

// CheckOldIndex settles whether an index file a lamina from before the
// unbuilt mark made (it has no meta bucket) is complete: one such a lamina
// made anew after index.db was lost knows only the packs written since,
// and was taken as complete, dedup off for good for the rest. It is
// unbuilt if it points into fewer of the packs in storage than there are
// (each pack written through it has an entry): a rebuild then costs two
// small reads a pack, once. Either way the meta bucket is written, so the
// check (a listing and a scan of the index) runs once. A new index file
// makes it a no-op.
func (s *Store) CheckOldIndex(ctx context.Context) error {
	ix := s.idx
	if !ix.old.Load() {
		return nil
	}
	packs := map[string]bool{}
	err := s.obj.List(ctx, "packs/", func(i storage.Info) error {
		if id, ok := packID(i.Name); ok {
			packs[id] = true
		}
		return nil
	})
	if err != nil {
		return err
	}
	return ix.with(true, func(tx *bolt.Tx) error {
		seen := map[string]bool{}
		if b := tx.Bucket(bBlobs); b != nil {
			c := b.Cursor()
			for k, v := c.First(); k != nil && len(seen) < len(packs); k, v = c.Next() {
				if l, ok := decodeLoc(v); ok && packs[l.Pack] {
					seen[l.Pack] = true
				}
			}
		}
		m, err := tx.CreateBucketIfNotExists(bMeta)
		if err != nil {
			return err
		}
		if len(seen) < len(packs) {
			if err := m.Put(kUnbuilt, []byte{1}); err != nil {
				return err
			}
		}
		ix.unbuilt.Store(unbuilt(tx))
		ix.old.Store(false)
		return nil
	})
}

// RebuildIndex adds to the dedup index every blob of the packs in storage,
// from their trailers, and clears IndexUnbuilt; it returns how many blobs
// the packs hold. It reads two small ranges per pack (bulkRequests at a
// time) below the block cache, which would fetch a whole block of each
// pack and evict what reads use, and adds them 256 packs at a time, so
// memory stays bounded by a batch. Entries there already are kept (a save
// meanwhile), as are those of packs since deleted: a lookup drops them
// (dropGone). progress, if not nil, is told how many packs are done of
// how many. A pack whose trailer is damaged (ErrCorrupt) is left out,
// and named in a warning: it is kept, and its chunks are stored again
// when saved. Any other error (storage away) ends it with the index left
// unbuilt: the next call starts over, rather than dedup being off for
// good for the packs it could not read.
func (s *Store) RebuildIndex(ctx context.Context, progress func(done, total int)) (int, error) {
	obj := s.obj
	if c, ok := unwrapTo[*DiskCache](s.obj); ok {
		obj = c.Unwrap()
	}
	gen := s.idx.gen.Load()
	var total, done, blobs int
	var damaged []string
	batch := map[ref.Digest]Loc{}
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := s.idx.add(batch, true, false)
		clear(batch)
		return err
	}
	err := s.packs(ctx, obj, func(n int) {
		total = n
		if progress != nil {
			progress(0, total)
		}
	}, func(p PackInfo, err error) error {
		done++
		switch {
		case errors.Is(err, ErrCorrupt):
			damaged = append(damaged, p.ID)
		case errors.Is(err, storage.ErrNotFound): // deleted since listed
		case err != nil:
			return fmt.Errorf("pack %s: %w", p.ID, err)
		default:
			for _, b := range p.Blobs {
				batch[b.Digest] = b.Loc
			}
			blobs += len(p.Blobs)
		}
		if done%256 == 0 || done == total {
			if err := flush(); err != nil {
				return err
			}
			if progress != nil {
				progress(done, total)
			}
		}
		return nil
	})
	if err != nil {
		return blobs, err
	}
	if err := flush(); err != nil {
		return blobs, err
	}
	if len(damaged) > 0 {
		const show = 10
		names := strings.Join(damaged[:min(show, len(damaged))], ", ")
		if len(damaged) > show {
			names += fmt.Sprintf(" and %d more", len(damaged)-show)
		}
		s.idx.warn(fmt.Sprintf("the dedup index leaves out %d pack(s) whose trailer is damaged (%s): they are kept, and content they hold is stored again when saved", len(damaged), names))
	}
	return blobs, s.idx.built(gen) // synced: the adds before it too
}

// SetLogger sets where the Store's warnings go: a damaged index file set
// aside, packs a rebuild of the index left out. Warnings from before
// (NewStore) are said then.
func (s *Store) SetLogger(l *slog.Logger) { s.idx.setLogger(l) }
