package instance

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/ref"
	"github.com/lamina-bio/lamina/storage"
)

// GCStats reports what gc found and removed.
type GCStats struct {
	Versions     int   `json:"versions"`         // versions whose data is kept
	Packs        int   `json:"packs"`            // packs seen
	DeadPacks    int   `json:"deleted_packs"`    // packs removed (or that would be)
	DeletedBytes int64 `json:"deleted_bytes"`    // their size
	YoungPacks   int   `json:"young_packs"`      // unreferenced but inside the grace period
	DeadInLive   int64 `json:"dead_bytes_kept"`  // unreferenced blobs inside packs still in use
	Records      int   `json:"deleted_records"`  // record objects removed
	Unreadable   int   `json:"unreadable_packs"` // packs whose trailer could not be read: kept
}

// GC deletes packs in which no blob is referenced by any version in the
// catalog (trashed versions keep their data: only `delete --permanent` makes
// it collectable), once they are older than grace. Packs that still hold a
// referenced blob are kept whole; their dead bytes are reported. It holds the
// instance's gc lock exclusively, so no save can reuse a blob being deleted.
func (in *Instance) GC(ctx context.Context, grace time.Duration, dryRun bool) (GCStats, error) {
	var st GCStats
	unlock, err := in.lock(true)
	if err != nil {
		return st, err
	}
	defer unlock()
	if err := in.FlushRecords(ctx); err != nil {
		return st, err
	}
	live := map[ref.Digest]bool{}
	uids := map[string]bool{}
	err = in.Catalog.Each(ctx, func(v catalog.Version) error {
		st.Versions++
		uids[v.UID] = true
		_, md, err := cache.Ref(v.Manifest).Parse()
		if err != nil {
			return fmt.Errorf("gc stopped, nothing deleted: %s: %w", v.Ref(), err)
		}
		if live[md] {
			return nil
		}
		live[md] = true
		m, err := in.Store.LoadManifest(ctx, cache.Ref(v.Manifest))
		if err != nil {
			// Without the manifest we cannot know which chunks are in use:
			// deleting anything could destroy data. Stop.
			return fmt.Errorf("gc stopped, nothing deleted: %s: %w", v.Ref(), err)
		}
		for _, f := range m.Files {
			for _, c := range f.Chunks {
				live[c.Digest] = true
			}
		}
		return nil
	})
	if err != nil {
		return st, err
	}
	cutoff := time.Now().Add(-grace)
	var doomed []string
	err = in.Store.Packs(ctx, func(p cache.PackInfo, perr error) error {
		st.Packs++
		if perr != nil {
			st.Unreadable++
			return nil
		}
		var used bool
		var dead int64
		for _, b := range p.Blobs {
			if live[b.Digest] {
				used = true
			} else {
				dead += b.Loc.Len
			}
		}
		switch {
		case used:
			st.DeadInLive += dead
		case p.ModTime.After(cutoff):
			st.YoungPacks++
		default:
			doomed = append(doomed, p.ID)
			st.DeadPacks++
			st.DeletedBytes += p.Size
		}
		return nil
	})
	if err != nil {
		return st, err
	}
	if !dryRun {
		if err := in.Store.DeletePacks(ctx, doomed); err != nil {
			return st, err
		}
	}
	// Record batches whose versions are all gone.
	var records []storage.Info
	if err := in.Backend.List(ctx, "records/", func(i storage.Info) error { records = append(records, i); return nil }); err != nil {
		return st, err
	}
	for _, r := range records {
		if r.ModTime.After(cutoff) {
			continue
		}
		b, err := in.Backend.Get(ctx, r.Name)
		if err != nil {
			return st, err
		}
		var vs []struct {
			UID string `json:"uid"`
		}
		if json.Unmarshal(b, &vs) != nil {
			continue // not ours to judge: keep it
		}
		keep := false
		for _, v := range vs {
			keep = keep || uids[v.UID]
		}
		if !keep {
			st.Records++
			if !dryRun {
				if err := in.Backend.Delete(ctx, r.Name); err != nil {
					return st, err
				}
			}
		}
	}
	if l, ok := in.Backend.(interface {
		Clean(context.Context) (int, error)
	}); ok && !dryRun {
		_, _ = l.Clean(ctx)
	}
	return st, nil
}
