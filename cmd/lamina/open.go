package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/catalog/catalogrpc"
	"github.com/lamina-bio/lamina/instance"
	"github.com/lamina-bio/lamina/storage"
	"github.com/urfave/cli/v2"
)

// openInstance opens the instance the flags and environment select.
func openInstance(c *cli.Context) (*instance.Instance, error) {
	dirs, err := instance.UserDirs()
	if err != nil {
		return nil, err
	}
	s, err := dirs.Current(c.String("instance"))
	if err != nil {
		return nil, err
	}
	return openSettings(s)
}

// openSettings wires the concrete catalog and backend for s.
func openSettings(s instance.Settings) (*instance.Instance, error) {
	if strings.HasPrefix(s.Storage, "s3://") {
		return nil, fmt.Errorf("instance %q uses S3 storage, which this build does not support yet", s.Name)
	}
	b, err := storage.OpenLocal(s.Storage)
	if err != nil {
		return nil, err
	}
	cat, err := openCatalog(s)
	if err != nil {
		return nil, err
	}
	store, err := cache.NewStore(b, filepath.Join(s.DataDir, "index.db"), cache.DefaultParams)
	if err != nil {
		return nil, err
	}
	return instance.New(s, cat, b, store), nil
}

// openCatalog talks to the instance's mount daemon when one is up (it holds
// the catalog file) and opens the catalog file itself otherwise.
func openCatalog(s instance.Settings) (catalog.Catalog, error) {
	if dirs, err := instance.UserDirs(); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if c, err := catalogrpc.Dial(ctx, dirs.SocketPath(s.Name), s.ID); err == nil {
			return c, nil
		}
	}
	return catalog.OpenBolt(s.Catalog, catalog.BoltOptions{})
}
