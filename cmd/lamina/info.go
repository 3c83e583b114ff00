package main

import (
	"cmp"
	"fmt"
	"strings"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/catalog/postgres"
	lfs "github.com/lamina-bio/lamina/fs"
	"github.com/urfave/cli/v2"
)

func cmdInfo() *cli.Command {
	return &cli.Command{
		Name:  "info",
		Usage: "show the current instance: storage, catalog, cache and counts",
		Flags: []cli.Flag{formatFlag("table", "json")},
		Action: func(c *cli.Context) error {
			format, err := checkFormat(c, "table", "json")
			if err != nil {
				return err
			}
			_, s, err := currentSettings(c)
			if err != nil {
				return err
			}
			// A catalog that cannot be opened (a database reset, dropped,
			// away) still leaves the instance's own settings to show: its
			// URL and storage are what the way back needs.
			var n catalog.Counts
			in, err := openInstance(c)
			if err == nil {
				defer in.Close()
				n, err = in.Catalog.Counts(c.Context)
			}
			unavailable := ""
			if err != nil {
				unavailable = err.Error()
			}
			if format == "json" {
				var counts *catalog.Counts
				if unavailable == "" {
					counts = &n
				}
				jerr := writeJSON(c.App.Writer, struct {
					Name         string          `json:"name"`
					ID           string          `json:"id"`
					Storage      string          `json:"storage"`
					Catalog      string          `json:"catalog"`
					CatalogError string          `json:"catalog_error,omitempty"`
					CacheDir     string          `json:"cache_dir"`
					DataDir      string          `json:"data_dir"`
					Scratch      []string        `json:"scratch"`
					Counts       *catalog.Counts `json:"counts"`
					Version      string          `json:"lamina_version"`
				}{s.Name, s.ID, s.Storage, postgres.Redact(s.Catalog), unavailable, s.CacheDir, s.DataDir, scratchPatterns(s), counts, version})
				return cmp.Or(err, jerr)
			}
			w := c.App.Writer
			fmt.Fprintf(w, "instance   %s\n", s.Name)
			fmt.Fprintf(w, "storage    %s\n", s.Storage)
			if isS3(s) && in != nil {
				fmt.Fprintf(w, "s3         %s\n", describeS3(s, in))
			}
			kind := "bbolt"
			if usesPostgres(s) {
				kind = "PostgreSQL"
			}
			fmt.Fprintf(w, "catalog    %s (%s)\n", postgres.Redact(s.Catalog), kind)
			if unavailable != "" {
				fmt.Fprintf(w, "           unavailable (the error below says why)\n")
			}
			if isS3(s) {
				fmt.Fprintf(w, "cache      %s\n", s.CacheDir)
			} else {
				// lamina cache says it keeps no cache: say what the folder is.
				fmt.Fprintf(w, "cache      %s (unused: local storage is read in place, no disk cache; a mount keeps up to %s of decoded chunks in memory, its chunk cache in lamina status)\n", s.CacheDir, humanBytes(lfs.DefaultChunkCacheBytes))
			}
			// Not a cache: what is written and not yet committed or
			// uploaded has its only copy there.
			fmt.Fprintf(w, "local data %s (index, the mount's staged writes and scratch files%s: not a cache, never delete it)\n", s.DataDir, map[bool]string{true: ", uploads waiting for S3"}[isS3(s)])
			fmt.Fprintf(w, "scratch    %s (mount: plain folder, no versions)\n", strings.Join(scratchPatterns(s), " "))
			if err != nil {
				return err // the settings above, then why the catalog is not there
			}
			fmt.Fprintf(w, "artifacts  %d\n", n.Artifacts)
			fmt.Fprintf(w, "versions   %d (+%d in the trash)\n", n.Versions, n.Trashed)
			fmt.Fprintf(w, "data       %s recorded\n", humanBytes(n.Bytes))
			return nil
		},
	}
}
