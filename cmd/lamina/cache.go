package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/catalog/catalogrpc"
	"github.com/lamina-bio/lamina/instance"
	"github.com/urfave/cli/v2"
	"golang.org/x/sync/errgroup"
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
		if !isS3(s) {
			return dirs, s, fmt.Errorf("instance %q: %w", s.Name, cache.ErrNoCache)
		}
		return dirs, s, nil
	}
	// openDisk opens the cache folder alone: no bucket, no catalog.
	openDisk := func(s instance.Settings) (*cache.DiskCache, error) {
		return cache.OpenDiskCache(nil, s.CacheDir, cache.DiskCacheOptions{Limit: s.CacheSize})
	}
	currentDisk := func(c *cli.Context) (instance.Settings, *cache.DiskCache, error) {
		_, s, err := current(c)
		if err != nil {
			return s, nil, err
		}
		d, err := openDisk(s)
		return s, d, err
	}
	// inDaemon runs a cache operation in the instance's mount daemon, whose
	// cache holds block files open and keeps its own figures; ok is false
	// when no daemon answers.
	inDaemon := func(c *cli.Context, dirs instance.Dirs, s instance.Settings, a catalogrpc.CacheArgs) (r cacheReport, ok bool, err error) {
		ctx, cancel := context.WithTimeout(c.Context, 30*time.Second)
		defer cancel()
		cl, err := catalogrpc.Dial(ctx, dirs.SocketPath(s.Name), s.ID)
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
	return &cli.Command{
		Name:  "cache",
		Usage: "the local cache of data fetched from S3: info, clear, prefetch, limit",
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
					s, d, err := currentDisk(c)
					if err != nil {
						return err
					}
					info := d.Info()
					up, err := cache.ScanUploads(s.UploadDir())
					if err != nil {
						return err
					}
					if format == "json" {
						return writeJSON(c.App.Writer, struct {
							Cache   cache.CacheInfo `json:"cache"`
							Uploads cache.Pending   `json:"uploads"`
						}{info, up})
					}
					w := c.App.Writer
					fmt.Fprintf(w, "folder    %s\n", info.Dir)
					fmt.Fprintf(w, "used      %s of %s (%d blocks of %s)\n", humanBytes(info.Used), humanBytes(info.Limit), info.Blocks, humanBytes(cache.DefaultBlockSize))
					fmt.Fprintf(w, "uploads   %s (in %s; never evicted)\n", describePending(up), s.UploadDir())
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
						_, d, err := currentDisk(c)
						if err != nil {
							return err
						}
						i := d.Info()
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
				Name:      "prefetch",
				Usage:     "fetch versions into the cache so that reading them later needs no network",
				ArgsUsage: "KEY[@vN]…",
				Action: func(c *cli.Context) error {
					if c.NArg() == 0 {
						return exitf(2, "usage: lamina cache prefetch KEY[@vN]…")
					}
					if _, _, err := current(c); err != nil {
						return err
					}
					in, err := openInstance(c)
					if err != nil {
						return err
					}
					defer in.Close()
					for _, spec := range c.Args().Slice() {
						v, err := in.Resolve(c.Context, spec)
						if err != nil {
							return err
						}
						m, err := in.Manifest(c.Context, v)
						if err != nil {
							return err
						}
						n, err := prefetch(c.Context, in, m)
						if err != nil {
							return fmt.Errorf("%s: %w", spec, err)
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
					return nil
				},
			},
		},
	}
}

// prefetch reads every chunk of m through the store (and so the cache),
// verifying each, a few at a time.
func prefetch(ctx context.Context, in *instance.Instance, m *cache.Manifest) (int64, error) {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	var total int64
	files := m.Files
	for _, f := range files {
		// The cache fetches the packs in large ranges, in parallel; the
		// reads below then verify every chunk.
		in.Store.Warm(f.Chunks)
		for _, ch := range f.Chunks {
			total += ch.Size
			g.Go(func() error {
				_, err := in.Store.ReadChunk(gctx, ch, nil)
				return err
			})
		}
	}
	return total, g.Wait()
}

// cacheReport is a mount daemon's answer to a cache operation.
type cacheReport struct {
	Before cache.CacheInfo `json:"before"`
	After  cache.CacheInfo `json:"after"`
}
