package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/catalog/catalogrpc"
	lfs "github.com/lamina-bio/lamina/fs"
	"github.com/lamina-bio/lamina/instance"
	"github.com/urfave/cli/v2"
)

func isS3(s instance.Settings) bool { return strings.HasPrefix(s.Storage, "s3://") }

func cmdCache() *cli.Command {
	current := func(c *cli.Context) (instance.Dirs, instance.Settings, error) {
		dirs, err := instance.UserDirs()
		if err != nil {
			return dirs, instance.Settings{}, err
		}
		s, err := dirs.Current(c.String("instance"))
		if err != nil {
			return dirs, s, err
		}
		moveFromCache(c.App.ErrWriter, dirs, s) // layout.go
		if !isS3(s) {
			return dirs, s, fmt.Errorf("instance %q: %w", s.Name, cache.ErrNoCache)
		}
		return dirs, s, nil
	}
	// openDisk opens the cache folder alone: no bucket, no catalog.
	openDisk := func(s instance.Settings) (*cache.DiskCache, error) {
		return cache.OpenDiskCache(nil, s.CacheDir, cache.DiskCacheOptions{Limit: s.CacheSize})
	}
	// inDaemon runs a cache operation in the instance's mount daemon, whose
	// cache holds block files open and keeps its own figures; ok is false
	// when no daemon answers.
	inDaemon := func(c *cli.Context, dirs instance.Dirs, s instance.Settings, a catalogrpc.CacheArgs) (r cacheReport, ok bool, err error) {
		ctx, cancel := context.WithTimeout(c.Context, 30*time.Second)
		defer cancel()
		cl, err := catalogrpc.Dial(ctx, dirs.DaemonSocket(s), s.ID)
		if err != nil {
			return r, false, nil
		}
		defer cl.Close()
		raw, err := cl.Cache(ctx, a)
		if err == nil {
			err = json.Unmarshal(raw, &r)
		}
		return r, true, err
	}
	// cacheInfo is the figures of the instance's cache: the mount
	// daemon's while one runs (its limit is the one in force, which mount
	// --cache-size or a `cache limit` sent to it may have set, and it
	// knows of blocks it fetched), else those of the folder under the
	// settings' limit. `cache info` and `cache limit` read the settings
	// alone, and contradicted `status` and prefetch while mounted.
	cacheInfo := func(c *cli.Context) (cache.CacheInfo, instance.Settings, error) {
		dirs, s, err := current(c)
		if err != nil {
			return cache.CacheInfo{}, s, err
		}
		if r, ok, err := inDaemon(c, dirs, s, catalogrpc.CacheArgs{Op: "info"}); ok {
			return r.After, s, err
		}
		d, err := openDisk(s)
		if err != nil {
			return cache.CacheInfo{}, s, err
		}
		return d.Info(), s, nil
	}
	return &cli.Command{
		Name:  "cache",
		Usage: "the local cache of data fetched from S3, and the queue of uploads to it",
		Description: "info, clear, prefetch and limit are about the cache; push uploads what waits in the upload queue.\n\n" + examples(
			"lamina cache info",
			"lamina cache limit 20GB",
			"lamina cache prefetch scrna/pbmc.zarr experiments/exp1/counts.csv@v2",
			"lamina cache push"),
		Subcommands: []*cli.Command{
			{
				Name:  "info",
				Usage: "show the cache's folder, use and limit, and the uploads waiting",
				Flags: []cli.Flag{formatFlag("table", "json")},
				Action: func(c *cli.Context) error {
					format, err := checkFormat(c, "table", "json")
					if err != nil {
						return err
					}
					info, s, err := cacheInfo(c)
					if errors.Is(err, cache.ErrNoCache) {
						// Nothing failed: say what there is instead.
						mem := int64(lfs.DefaultChunkCacheBytes)
						if format == "json" {
							return writeJSON(c.App.Writer, struct {
								Cache       *cache.CacheInfo `json:"cache"`
								MemoryBytes int64            `json:"memory_chunk_cache_max"`
							}{nil, mem})
						}
						fmt.Fprintf(c.App.Writer, "disk cache  none: instance %s's storage is a local folder, read in place\nmemory      a mount keeps up to %s of decoded chunks (the chunk cache in lamina status)\n", s.Name, humanBytes(mem))
						return nil
					}
					if err != nil {
						return err
					}
					up, err := cache.ScanUploads(s.UploadDir())
					if err != nil {
						return err
					}
					// The queue an older lamina still running keeps in the
					// cache folder (moved once it stops).
					var old *cache.Pending
					oldDir := oldUploadQueue(s)
					if oldDir != "" {
						if p, err := cache.ScanUploads(oldDir); err == nil && p.Objects > 0 {
							old = &p
						}
					}
					if format == "json" {
						return writeJSON(c.App.Writer, struct {
							Cache      cache.CacheInfo `json:"cache"`
							Uploads    cache.Pending   `json:"uploads"`
							OldUploads *cache.Pending  `json:"old_uploads,omitempty"` // in the cache folder, an older lamina's
						}{info, up, old})
					}
					w := c.App.Writer
					fmt.Fprintf(w, "folder    %s\n", info.Dir)
					fmt.Fprintf(w, "used      %s of %s (%d blocks of %s)%s\n", humanBytes(info.Used), humanBytes(info.Limit), info.Blocks, humanBytes(cache.DefaultBlockSize), describeCacheDisk(info))
					fmt.Fprintf(w, "uploads   %s (in %s; never evicted)\n", describePending(up), s.UploadDir())
					if old != nil {
						fmt.Fprintf(w, "uploads   %s (in %s, where an older lamina keeps its queue; moved to %s once nothing uses it)\n", describePending(*old), oldDir, s.UploadDir())
					}
					return nil
				},
			},
			{
				Name:  "clear",
				Usage: "empty the cache (uploads waiting are kept)",
				Action: func(c *cli.Context) error {
					dirs, s, err := current(c)
					if err != nil {
						return err
					}
					if r, ok, err := inDaemon(c, dirs, s, catalogrpc.CacheArgs{Op: "clear"}); ok {
						if err != nil {
							return err
						}
						fmt.Fprintf(c.App.Writer, "cleared %s from %s (through the mount daemon)\n", humanBytes(r.Before.Used-r.After.Used), r.After.Dir)
						return nil
					}
					d, err := openDisk(s)
					if err != nil {
						return err
					}
					before := d.Info().Used
					d.Clear()
					fmt.Fprintf(c.App.Writer, "cleared %s from %s\n", humanBytes(before-d.Info().Used), d.Info().Dir)
					return nil
				},
			},
			{
				Name:      "limit",
				Usage:     "show the cache's bound, or set it (e.g. 20GB) and evict down to it",
				ArgsUsage: "[SIZE]",
				Action: func(c *cli.Context) error {
					if c.NArg() == 0 {
						i, _, err := cacheInfo(c)
						if err != nil {
							return err
						}
						fmt.Fprintf(c.App.Writer, "cache limit %s (using %s)\n", humanBytes(i.Limit), humanBytes(i.Used))
						return nil
					}
					if c.NArg() != 1 {
						return exitf(2, "usage: lamina cache limit [SIZE] (e.g. 20GB)")
					}
					n, err := parseCacheSize(c.Args().First())
					if err != nil {
						return exitf(2, "%v", err)
					}
					dirs, s, err := current(c)
					if err != nil {
						return err
					}
					s.CacheSize = n
					if err := dirs.Update(s); err != nil {
						return err
					}
					if r, ok, err := inDaemon(c, dirs, s, catalogrpc.CacheArgs{Op: "limit", Limit: n}); ok {
						if err != nil {
							return err
						}
						fmt.Fprintf(c.App.Writer, "cache limit %s (using %s; the mount applies it now)\n", humanBytes(n), humanBytes(r.After.Used))
						return nil
					}
					d, err := openDisk(s)
					if err != nil {
						return err
					}
					fmt.Fprintf(c.App.Writer, "cache limit %s (using %s)\n", humanBytes(n), humanBytes(d.Info().Used))
					return nil
				},
			},
			{
				Name:  "push",
				Usage: "upload what waits in the upload queue now",
				Description: "After another instance took the storage over, it uploads the packs (the new owner may need them),\n" +
					"never the catalog's records.",
				Action: func(c *cli.Context) error {
					dirs, s, err := current(c)
					if err != nil {
						return err
					}
					return pushUploads(c, dirs, s)
				},
			},
			{
				Name:      "prefetch",
				Usage:     "fetch versions into the cache so that reading them later needs no network",
				ArgsUsage: "KEY[@vN]…",
				Action: func(c *cli.Context) error {
					if c.NArg() == 0 {
						return exitf(2, "usage: lamina cache prefetch KEY[@vN]…")
					}
					dirs, s, err := current(c)
					if err != nil {
						return err
					}
					// A path into the mount names its key (keypath.go).
					specs, err := keyArgs(newKeyPaths(s.Name), c.Args().Slice())
					if err != nil {
						return err
					}
					// A spec that fails is reported and the others fetched
					// all the same; the exit says how many failed. One spec
					// alone fails with its error as any command does.
					var failed []string
					total := len(specs)
					fail := func(spec string, err error) error {
						if total == 1 {
							return err
						}
						failed = append(failed, spec)
						fmt.Fprintln(c.App.ErrWriter, "lamina:", explain(err))
						return nil
					}
					done := func() error {
						if len(failed) == 0 {
							return nil
						}
						return exitf(1, "%d of the %d versions asked for were not fetched (%s): see above", len(failed), total, strings.Join(failed, ", "))
					}
					// A mount daemon holds the cache its reads use: fetch
					// into that one, or the daemon neither counts nor
					// reads what the CLI fetched.
					if _, up := liveMount(dirs, s); up {
						for len(specs) > 0 {
							spec := specs[0]
							r, ok, err := prefetchInDaemon(c.Context, dirs, s, spec, func(r prefetchReport) {
								fmt.Fprintf(c.App.ErrWriter, "%s@v%d: %s of %s fetched (through the mount daemon)\n", r.Key, r.Version, humanBytes(r.Done), humanBytes(r.Bytes))
							})
							if !ok {
								break // gone meanwhile: the rest below, in this process
							}
							specs = specs[1:]
							if err != nil {
								// The daemon's errors name the version
								// (Instance.Manifest, Prefetch) or the spec
								// (Resolve).
								if err := fail(spec, err); err != nil {
									return err
								}
								continue
							}
							msg := fmt.Sprintf("%s@v%d: %s in the cache (through the mount daemon)", r.Key, r.Version, humanBytes(r.Bytes))
							if r.Limit > 0 && r.Bytes > r.Limit {
								msg = fmt.Sprintf("%s@v%d: %s read and verified through the mount daemon, more than the cache's limit of %s: only its last part stays cached (lamina cache limit raises it)", r.Key, r.Version, humanBytes(r.Bytes), humanBytes(r.Limit))
							}
							fmt.Fprintln(c.App.Writer, msg)
						}
						if len(specs) == 0 {
							return done()
						}
					}
					in, err := openInstance(c)
					if err != nil {
						return err
					}
					defer in.Close()
					for _, spec := range specs {
						n, v, err := prefetchLocal(c.Context, in, spec)
						if err != nil {
							if err := fail(spec, err); err != nil {
								return err
							}
							continue
						}
						msg := fmt.Sprintf("%s@v%d: %s in the cache", v.Key, v.Version, humanBytes(n))
						if dc, ok := in.Backend.(*cache.DiskCache); ok {
							if lim := dc.Info().Limit; lim > 0 && n > lim {
								// LRU: the first parts went again to make room.
								msg = fmt.Sprintf("%s@v%d: %s read and verified, more than the cache's limit of %s: only its last part stays cached (lamina cache limit raises it)", v.Key, v.Version, humanBytes(n), humanBytes(lim))
							}
						}
						fmt.Fprintln(c.App.Writer, msg)
					}
					return done()
				},
			},
		},
	}
}

// prefetchLocal fetches spec into the cache in this process; its errors
// name the version (or spec, when it does not resolve).
func prefetchLocal(ctx context.Context, in *instance.Instance, spec string) (int64, catalog.Version, error) {
	v, err := in.Resolve(ctx, spec)
	if err != nil {
		return 0, v, err
	}
	m, err := in.Manifest(ctx, v)
	if err != nil {
		return 0, v, err
	}
	n, err := prefetch(ctx, in, v, m)
	return n, v, err
}

// prefetch reads every chunk of m, v's content, through the store into
// the cache, verifying each (Instance.Prefetch).
func prefetch(ctx context.Context, in *instance.Instance, v catalog.Version, m *cache.Manifest) (int64, error) {
	var total int64
	var all []cache.Chunk
	for _, f := range m.Files {
		for _, ch := range f.Chunks {
			total += ch.Size
		}
		all = append(all, f.Chunks...)
	}
	return total, in.Prefetch(ctx, v, all)
}

// prefetchBatchBytes is about how much one prefetch call to a mount
// daemon fetches before it answers with its progress.
const prefetchBatchBytes = 64 << 20

// prefetchReport is a mount daemon's answer to a prefetch batch.
type prefetchReport struct {
	Key     string `json:"key"`
	Version int    `json:"version"`
	// UID is the version's: the CLI asks for the next batches by it, so
	// that a version saved meanwhile does not change what is fetched (each
	// batch looked up the latest again). A daemon before it says none.
	UID    string `json:"uid,omitempty"`
	Chunks int    `json:"chunks"` // of the whole version
	Bytes  int64  `json:"bytes"`  // of the whole version
	Next   int    `json:"next"`   // first chunk of the next batch; Chunks when done
	Done   int64  `json:"done"`   // bytes of the chunks before Next
	Limit  int64  `json:"limit"`  // the daemon's cache limit
	Used   int64  `json:"used"`
}

// prefetchBatch runs in a mount daemon: it fetches, into the daemon's own
// cache, the chunks of a.Spec from chunk a.From on, about
// prefetchBatchBytes of them.
func prefetchBatch(in *instance.Instance, disk *cache.DiskCache, a catalogrpc.CacheArgs) (prefetchReport, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var r prefetchReport
	v, err := in.Resolve(ctx, a.Spec)
	if err != nil {
		return r, err
	}
	m, err := in.Manifest(ctx, v)
	if err != nil {
		return r, err
	}
	var all []cache.Chunk
	for _, f := range m.Files {
		all = append(all, f.Chunks...)
	}
	r.Key, r.Version, r.UID, r.Chunks = v.Key, v.Version, v.UID, len(all)
	for i, ch := range all {
		r.Bytes += ch.Size
		if i < a.From {
			r.Done += ch.Size
		}
	}
	end, n := max(a.From, 0), int64(0)
	for end < len(all) && n < prefetchBatchBytes {
		n += all[end].Size
		end++
	}
	if a.From < end {
		// Returns once the batch is written to the cache folder, so that
		// the report below counts it.
		if err := in.Prefetch(ctx, v, all[a.From:end]); err != nil {
			return r, err
		}
	}
	r.Next, r.Done = end, r.Done+n
	i := disk.Info()
	r.Limit, r.Used = i.Limit, i.Used
	return r, nil
}

// prefetchInDaemon fetches spec into the cache of the instance's mount
// daemon, a batch at a time, calling progress after each but the last;
// ok is false when no daemon answers. The version is resolved once, by
// the first batch: the next ones name it by its uid.
func prefetchInDaemon(ctx context.Context, dirs instance.Dirs, s instance.Settings, spec string, progress func(prefetchReport)) (r prefetchReport, ok bool, err error) {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	cl, err := catalogrpc.Dial(dctx, dirs.DaemonSocket(s), s.ID)
	cancel()
	if err != nil {
		return r, false, nil
	}
	defer cl.Close()
	for {
		if r.UID != "" {
			spec = r.UID
		}
		bctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		raw, err := cl.Cache(bctx, catalogrpc.CacheArgs{Op: "prefetch", Spec: spec, From: r.Next})
		cancel()
		if err == nil {
			err = json.Unmarshal(raw, &r)
		}
		if err != nil {
			return r, true, err
		}
		if r.Next >= r.Chunks {
			return r, true, nil
		}
		progress(r)
	}
}

// cacheReport is a mount daemon's answer to a cache operation.
type cacheReport struct {
	Before cache.CacheInfo `json:"before"`
	After  cache.CacheInfo `json:"after"`
}

// pushUploads is `lamina cache push`: it uploads the staged objects of s
// and waits for them (until nothing moves for a minute, or Ctrl-C). Once
// another instance owns the storage, the queue uploads only packs (and
// ontology objects named by their digest: queueAllow) and keeps the rest,
// which this says; no other command of s works then.
func pushUploads(c *cli.Context, dirs instance.Dirs, s instance.Settings) error {
	w := c.App.Writer
	scan, err := cache.ScanUploads(s.UploadDir())
	if err != nil {
		return err
	} else if scan.Objects == 0 {
		fmt.Fprintln(w, "uploads: none pending")
		return nil
	}
	if cache.QueueOwned(s.UploadDir()) {
		at := ""
		if st, ok := liveMount(dirs, s); ok {
			at = " (mounted at " + st.Mountpoint + ")"
		}
		fmt.Fprintf(w, "the mount daemon of %s%s has the upload queue and uploads it; lamina status shows how far\n", s.Name, at)
		return nil
	}
	b, rem, err := openBackend(c.Context, s, backendOptions{syncUpload: true, check: true})
	if err != nil {
		return err
	}
	defer rem.close()
	o, found, err := instance.New(s, nil, b, nil).StorageOwner(c.Context)
	if err != nil {
		return err
	}
	taken := found && o.ID != s.ID
	start := rem.up.Pending()
	if taken {
		// The old catalog's records stay: say what goes (the packs), or
		// nothing when only records wait.
		start = scan
		holdAfterTakeOver(&start, o)
	}
	if start.Objects > 0 {
		fmt.Fprintf(c.App.ErrWriter, "lamina: uploading %s\n", describePending(start))
	}
	werr := rem.drain(c.Context, time.Minute, nil)
	p := rem.up.Pending()
	what := plural(int(p.Uploaded), "object")
	if taken {
		n := int(p.Uploaded)
		what = fmt.Sprintf("%s (instance %s took the storage over; packs still go: its catalog may name %s)", plural(n, "pack"), o.Name, them(n))
	}
	fmt.Fprintf(w, "uploaded %s to %s\n", what, s.Storage)
	if len(p.Held) > 0 {
		fmt.Fprintln(w, keptAfterTakeOver(s, o.Name, p.Held))
	}
	if p.Objects > 0 {
		why := "nothing moved for a minute"
		if werr != nil && c.Context.Err() != nil {
			why = "interrupted"
		}
		return fmt.Errorf("%s (%s); `lamina cache push` tries again", describePending(p), why)
	}
	return nil
}
