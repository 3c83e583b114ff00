package instance

import (
	"context"
	"fmt"
	"time"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/storage"
)

// GCStats reports what gc found and removed.
type GCStats struct {
	Versions       int   `json:"versions"`        // versions whose data is kept
	Kept           int   `json:"kept_objects"`    // objects still referenced
	Young          int   `json:"young_objects"`   // unreferenced but inside the grace period
	Deleted        int   `json:"deleted_objects"` // removed (or that would be, with DryRun)
	DeletedBytes   int64 `json:"deleted_bytes"`
	TempFilesFound int   `json:"temp_files_removed,omitempty"`
}

// GC deletes stored objects that no version in the catalog references and
// that are older than grace. Trashed versions keep their data: only
// `delete --permanent` makes it collectable. It holds the instance's gc lock
// exclusively, so no save can reuse a chunk while it is being deleted.
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
	live := map[string]struct{}{}
	err = in.Catalog.Each(ctx, func(v catalog.Version) error {
		st.Versions++
		live[cache.RecordName(v.UID)] = struct{}{}
		mn := cache.ManifestName(v.Manifest)
		if _, ok := live[mn]; ok {
			return nil
		}
		live[mn] = struct{}{}
		m, err := in.Store.LoadManifest(ctx, v.Manifest)
		if err != nil {
			// Without the manifest we cannot know which chunks are in use:
			// deleting anything could destroy data. Stop.
			return fmt.Errorf("gc stopped, nothing deleted: %s: %w", v.Ref(), err)
		}
		cache.ChunkNames(m, live)
		return nil
	})
	if err != nil {
		return st, err
	}
	cutoff := time.Now().Add(-grace)
	for _, prefix := range []string{"chunks/", "manifests/", "records/"} {
		var doomed []storage.Info
		err := in.Backend.List(ctx, prefix, func(i storage.Info) error {
			switch _, ok := live[i.Name]; {
			case ok:
				st.Kept++
			case i.ModTime.After(cutoff):
				st.Young++
			default:
				doomed = append(doomed, i)
			}
			return nil
		})
		if err != nil {
			return st, err
		}
		for _, i := range doomed {
			if !dryRun {
				if err := in.Backend.Delete(ctx, i.Name); err != nil {
					return st, err
				}
			}
			st.Deleted++
			st.DeletedBytes += i.Size
		}
	}
	if l, ok := in.Backend.(interface {
		Clean(context.Context) (int, error)
	}); ok && !dryRun {
		st.TempFilesFound, _ = l.Clean(ctx)
	}
	return st, nil
}

