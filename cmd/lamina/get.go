package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/instance"
	"github.com/urfave/cli/v2"
)

func cmdGet() *cli.Command {
	return &cli.Command{
		Name:      "get",
		Usage:     "write the bytes of a version to a file, a folder or stdout",
		ArgsUsage: "KEY[@vN] | UID",
		Description: examples(
			"lamina get experiments/exp1/counts.csv@v1 -o counts-v1.csv",
			"lamina get scrna/pbmc.zarr -o data/",
			"lamina get experiments/exp1/counts.csv -o - | head"),
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "where to write: a path, a folder to write into (existing, or ending in /), or - for stdout (default: the key's name in the current folder)"},
			&cli.BoolFlag{Name: "force", Usage: "replace an existing file (a folder, for a folder artifact)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return exitf(2, "usage: lamina get KEY[@vN] | UID [-o PATH|-]")
			}
			in, err := openInstance(c)
			if err != nil {
				return err
			}
			defer in.Close()
			v, err := resolveArg(c.Context, in, c.Args().First())
			if err != nil {
				return err
			}
			trashNote(c.App.ErrWriter, v)              // trashnote.go
			trackGet(c.Context, in.Catalog, in.Run, v) // run.go
			out := c.String("output")
			if out == "-" {
				w := bufio.NewWriterSize(c.App.Writer, 1<<20)
				if err := in.WriteTo(c.Context, v, w, nil); err != nil {
					return err
				}
				return w.Flush()
			}
			switch fi, err := os.Stat(out); {
			case out == "":
				out = path.Base(v.Key)
			case strings.HasSuffix(out, "/") || (err == nil && fi.IsDir()):
				// Into a folder, as cp does.
				if err := os.MkdirAll(out, 0o755); err != nil {
					return err
				}
				out = filepath.Join(out, path.Base(v.Key))
			}
			bar := newProgress("getting", v.Size, false)
			defer bar.Done()
			return in.Export(c.Context, v, out, c.Bool("force"), bar.Func())
		},
	}
}

// resolveArg resolves a version spec as in.Resolve does, a path into the
// instance's mount as the key it shows (keypath.go), and a folder
// artifact's key with a trailing '/' as shell completion types it
// (scrna/pbmc.zarr/) to that artifact.
func resolveArg(ctx context.Context, in *instance.Instance, arg string) (catalog.Version, error) {
	return resolveWith(ctx, in, newKeyPaths(in.Settings.Name).withUIDs(ctx, in.Catalog), arg)
}

// resolveWith is resolveArg with the paths of kp, for several arguments.
func resolveWith(ctx context.Context, in *instance.Instance, kp *keyPaths, arg string) (catalog.Version, error) {
	ka, err := kp.arg(arg, false)
	if err != nil {
		return catalog.Version{}, err
	}
	spec := ka.Spec
	v, err := in.Resolve(ctx, spec)
	if err != nil && strings.HasSuffix(spec, "/") {
		if fv, ferr := in.Resolve(ctx, strings.TrimSuffix(spec, "/")); ferr == nil && fv.Kind == cache.KindFolder {
			return fv, nil
		}
		if ferr := folderOfKeys(ctx, in.Catalog, spec); ferr != nil {
			return catalog.Version{}, ferr
		}
	}
	if errors.Is(err, catalog.ErrNotFound) && ka.Bare {
		err = fmt.Errorf("%w%s", err, ka.note())
	}
	return v, err
}
