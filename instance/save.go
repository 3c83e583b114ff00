package instance

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"time"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/ref"
	"golang.org/x/sync/errgroup"
)

// SaveItem is one path to save under one key.
type SaveItem struct {
	Path string
	Key  string
}

// SaveOptions apply to every item of a save.
type SaveOptions struct {
	// Description of the new versions; "" carries the latest version's
	// forward unless NoDescription (catalog.NewVersion).
	Description   string
	NoDescription bool
	Revises       string         // uid the (single) new version revises
	Run           string         // run uid that produces these versions; "" means Instance.Run
	Progress      cache.Progress // told of bytes read; may be nil
	// Mode, when set, is the permission bits of the new file versions in
	// place of the files' own; Mtime, when not zero, their mtime in place
	// of the save's time: the bytes a mount staged, saved into the
	// instance that took its storage over, keep what their writer left.
	Mode  *uint32
	Mtime time.Time
}

// SaveResult is what happened to one item.
type SaveResult struct {
	Item    SaveItem
	Saved   catalog.Saved
	Stats   cache.PutStats
	Elapsed time.Duration
	Note    string // what the user should know (a file its suffix misnames)
}

// Size returns the byte count of everything under the paths, for progress.
func Size(items []SaveItem) (int64, error) {
	var n int64
	for _, it := range items {
		info, err := os.Stat(it.Path)
		if err != nil {
			return 0, err
		}
		if !info.IsDir() {
			n += info.Size()
			continue
		}
		err = fs.WalkDir(os.DirFS(it.Path), ".", func(_ string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			i, err := d.Info()
			if err == nil {
				n += i.Size()
			}
			return err
		})
		if err != nil {
			return 0, err
		}
	}
	return n, nil
}

// RebuildDedupIndex refills a dedup index made anew (index.db lost or
// damaged, or this machine new to the storage) from the packs in storage,
// telling IndexProgress: without it, content storage holds already would
// be stored again, each time. It tries once per Instance (Save calls it
// too): a failure only costs that, so it is a warning, and the next
// command tries again. A command with a progress bar calls it before the
// bar starts, whose line the rebuild's would be drawn over.
func (in *Instance) RebuildDedupIndex(ctx context.Context) {
	in.rebuildDedupIndex(ctx, in.IndexProgress)
}

func (in *Instance) rebuildDedupIndex(ctx context.Context, progress func(done, total int)) {
	if in.Store == nil || in.dedupTried.Load() {
		return
	}
	if err := in.Store.CheckOldIndex(ctx); err != nil && ctx.Err() == nil {
		in.log().Warn(fmt.Sprintf("could not check the dedup index (index.db) against the packs in storage: %v", err))
	}
	if !in.Store.IndexUnbuilt() || !in.dedupTried.CompareAndSwap(false, true) {
		return
	}
	if _, err := in.Store.RebuildIndex(ctx, progress); err != nil && ctx.Err() == nil {
		in.log().Warn(fmt.Sprintf("the dedup index (index.db) could not be rebuilt from the packs in storage, so content stored before is stored again (the next save tries again): %v", err))
	}
}

// Save stores every item's content, then records all new versions in one
// catalog transaction: either every item lands or none is recorded. Content
// is made durable before the catalog points at it.
func (in *Instance) Save(ctx context.Context, items []SaveItem, o SaveOptions) ([]SaveResult, error) {
	if o.Revises != "" && len(items) != 1 {
		return nil, fmt.Errorf("--revises names one version: save one file with it")
	}
	seen := map[string]string{}
	for _, it := range items {
		if err := ref.CheckKey(it.Key); err != nil {
			return nil, err
		}
		if p, dup := seen[it.Key]; dup {
			return nil, fmt.Errorf("%s and %s would both be saved as key %q", p, it.Path, it.Key)
		}
		seen[it.Key] = it.Path
		if _, err := os.Stat(it.Path); err != nil {
			return nil, fmt.Errorf("cannot save %s: %w", it.Path, unwrapPath(err))
		}
	}
	run := o.Run
	if run == "" {
		run = in.Run
	}
	// A catalog that would refuse the records (a read-only database role)
	// says so before any byte is stored.
	if c, ok := in.Catalog.(interface{ CheckWritable(context.Context) error }); ok {
		if err := c.CheckWritable(ctx); err != nil {
			return nil, fmt.Errorf("cannot save: %w", err)
		}
	}
	results := make([]SaveResult, len(items))
	nvs := make([]catalog.NewVersion, len(items))
	var progressMu sync.Mutex
	progress := o.Progress
	if progress != nil {
		progress = func(n int64) { progressMu.Lock(); o.Progress(n); progressMu.Unlock() }
	}
	// Quiet under a caller's progress bar: it would draw over the line.
	if o.Progress == nil {
		in.rebuildDedupIndex(ctx, in.IndexProgress)
	} else {
		in.rebuildDedupIndex(ctx, nil)
	}
	w := in.Store.NewWriter()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4) // files in flight; each also fans out over its chunks
	for i, it := range items {
		g.Go(func() error {
			start := time.Now()
			m, st, err := in.storeContent(gctx, w, it.Path, progress)
			if err != nil {
				return fmt.Errorf("cannot save %s: %w", it.Path, unwrapPath(err))
			}
			md, err := w.PutManifest(gctx, m)
			if err != nil {
				return fmt.Errorf("cannot save %s: %w", it.Path, err)
			}
			now := time.Now().UTC()
			// The key's suffix, as the mount gives its files (a key
			// without one has none, whatever the file's name).
			suffix := ref.Suffix(it.Key)
			nvs[i] = catalog.NewVersion{
				Key: it.Key, Revises: o.Revises, Kind: m.Kind, Suffix: suffix, OType: ref.OType(suffix),
				Size: m.Size(), Digest: m.Digest(), Manifest: string(md), Description: o.Description, NoDescription: o.NoDescription,
				CreatedBy: in.User, CreatedAt: now, Mtime: now, Run: run,
			}
			if !o.Mtime.IsZero() {
				nvs[i].Mtime = o.Mtime.UTC()
			}
			if m.Kind == cache.KindFolder {
				if o.Mode != nil {
					return fmt.Errorf("cannot save %s with a mode: it is a folder, and --mode applies to files", it.Path)
				}
				nvs[i].NFiles = len(m.Files)
			} else if o.Mode != nil {
				nvs[i].Mode = catalog.ModeOf(*o.Mode & 0o7777)
			} else if fi, err := os.Stat(it.Path); err == nil {
				// The file's permission bits, as cp -p keeps them: a saved
				// script stays executable in the mount and after get.
				nvs[i].Mode = catalog.ModeOf(uint32(fi.Mode().Perm()))
			}
			note := describe(&nvs[i], it.Path) // otype, n_observations, shape, columns (describe.go)
			results[i] = SaveResult{Item: it, Stats: st, Elapsed: time.Since(start), Note: note}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		w.Abort()
		return nil, err
	}
	if err := w.Commit(ctx); err != nil {
		return nil, fmt.Errorf("cannot store the data: %w", err)
	}
	saved, err := in.Catalog.Save(ctx, nvs)
	if err != nil {
		return nil, err
	}
	for i := range saved {
		results[i].Saved = saved[i]
	}
	// The records are a backup of the catalog; a failure here loses nothing
	// (the outbox retries at the next save), so it does not fail the save.
	_ = in.FlushRecords(ctx)
	return results, nil
}

func (in *Instance) storeContent(ctx context.Context, w *cache.Writer, path string, progress cache.Progress) (*cache.Manifest, cache.PutStats, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, cache.PutStats{}, err
	}
	if info.IsDir() {
		return w.PutFolder(ctx, path, progress)
	}
	if !info.Mode().IsRegular() {
		return nil, cache.PutStats{}, fmt.Errorf("not a regular file or folder")
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, cache.PutStats{}, err
	}
	defer f.Close()
	file, st, err := w.PutFile(ctx, f, progress)
	if err != nil {
		return nil, st, err
	}
	return &cache.Manifest{Kind: cache.KindFile, Files: []cache.File{file}}, st, nil
}

// unwrapPath drops the *PathError wrapper whose path the caller already names.
func unwrapPath(err error) error {
	if pe, ok := err.(*fs.PathError); ok {
		return pe.Err
	}
	return err
}
