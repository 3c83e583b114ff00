package main

import (
	"fmt"
	"strings"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/catalog"
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
	cat, err := catalog.OpenBolt(s.Catalog, catalog.BoltOptions{})
	if err != nil {
		return nil, err
	}
	store, err := cache.NewStore(b, cache.DefaultParams)
	if err != nil {
		return nil, err
	}
	return instance.New(s, cat, b, store), nil
}
