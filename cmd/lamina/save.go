package main

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/lamina-bio/lamina/instance"
	"github.com/urfave/cli/v2"
)

func cmdSave() *cli.Command {
	return &cli.Command{
		Name:      "save",
		Usage:     "save files or folders as new versions of artifacts",
		ArgsUsage: "PATH...",
		Description: "Each PATH becomes a version of one artifact. The key is --key (one PATH),\n" +
			"or --key-prefix followed by the file name, or else the file name alone.\n" +
			"Bytes identical to the key's latest version make no new version.\n\n" + examples(
			"lamina save counts.csv --key experiments/exp1/counts.csv -d \"raw counts\"",
			"lamina save batch1.csv batch2.csv --key-prefix experiments/exp1/",
			"lamina save pbmc.zarr --key scrna/pbmc.zarr --format json"),
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "key", Aliases: []string{"k"}, Usage: "key of the artifact (one PATH only)"},
			&cli.StringFlag{Name: "key-prefix", Usage: "folder of keys: each PATH is saved as PREFIX/NAME"},
			&cli.StringFlag{Name: "description", Aliases: []string{"d"}, Usage: "description of the new version(s); without it they keep the latest version's, -d '' gives them none"},
			&cli.StringFlag{Name: "revises", Usage: "uid of the version this one revises (same key)"},
			&cli.StringFlag{Name: "mode", Usage: "permission bits of the new file versions, in octal (0644), in place of the files' own"},
			&cli.StringFlag{Name: "mtime", Usage: "mtime of the new versions, RFC 3339 (2026-01-02T15:04:05Z), in place of the save's time"},
			formatFlag("table", "json"),
		},
		Action: func(c *cli.Context) error {
			format, err := checkFormat(c, "table", "json")
			if err != nil {
				return err
			}
			for _, f := range []string{"key", "key-prefix"} {
				if c.IsSet(f) && c.String(f) == "" {
					return exitf(2, "--%s is empty: name it, or leave it out to use the file names", f)
				}
			}
			if c.IsSet("revises") && c.String("revises") == "" {
				return exitf(2, "--revises is empty: give the uid of the version this one revises, or leave it out")
			}
			opts, err := saveAttrs(c)
			if err != nil {
				return err
			}
			items, err := saveItems(c.Args().Slice(), c.String("key"), c.String("key-prefix"))
			if err != nil {
				return err
			}
			in, err := openInstance(c)
			if err != nil {
				return err
			}
			defer in.Close()
			total, err := instance.Size(items)
			if err != nil {
				return fmt.Errorf("cannot save: %w", err)
			}
			in.RebuildDedupIndex(c.Context) // its progress line before the bar's
			bar := newProgress("saving", total, format == "json")
			opts.Description, opts.Revises, opts.Progress = c.String("description"), c.String("revises"), bar.Func()
			// -d '' clears it; without -d the latest version's is kept.
			opts.NoDescription = c.IsSet("description") && c.String("description") == ""
			res, err := in.Save(c.Context, items, opts)
			bar.Done()
			if err != nil {
				return err
			}
			if format == "json" {
				type out struct {
					Key         string `json:"key"`
					Version     int    `json:"version"`
					UID         string `json:"uid"`
					Path        string `json:"path"`
					Unchanged   bool   `json:"unchanged"`
					Size        int64  `json:"size"`
					NewChunks   int    `json:"new_chunks"`
					StoredBytes int64  `json:"stored_bytes"`
					Note        string `json:"note,omitempty"`
				}
				var o []out
				for _, r := range res {
					v := r.Saved.Version
					o = append(o, out{v.Key, v.Version, v.UID, r.Item.Path, r.Saved.Unchanged, v.Size, r.Stats.NewChunks, r.Stats.StoredBytes, r.Note})
				}
				return writeJSON(c.App.Writer, o)
			}
			w := c.App.Writer
			for _, r := range res {
				if r.Note != "" {
					fmt.Fprintf(c.App.ErrWriter, "lamina: %s: %s\n", r.Item.Path, r.Note)
				}
				v := r.Saved.Version
				if r.Saved.Unchanged {
					also := ""
					if in.Run != "" && in.Run != v.Run {
						also = fmt.Sprintf("; recorded as an output of run %s too", in.Run) // Runs.Reruns
					}
					fmt.Fprintf(w, "unchanged %s: same bytes as %s (uid %s); no new version%s\n", r.Item.Path, v.Ref(), v.UID, also)
					continue
				}
				extra := ""
				if v.Kind == "folder" {
					extra = fmt.Sprintf(", %d files", v.NFiles)
				}
				// What this save added to storage, compressed and with each
				// chunk's codec byte: "newly stored" read as a share of the
				// file and was more than all of a small one.
				fmt.Fprintf(w, "saved %s  uid %s  %s%s, %s written to storage\n", v.Ref(), v.UID, humanBytes(v.Size), extra, humanBytes(r.Stats.StoredBytes))
			}
			return nil
		},
	}
}

// saveAttrs reads --mode and --mtime (exit 2 when malformed): what the
// staged bytes of a taken-over mount keep when saved into the new owner
// (stagedTakenOver names them).
func saveAttrs(c *cli.Context) (instance.SaveOptions, error) {
	var o instance.SaveOptions
	if c.IsSet("mode") {
		m, err := strconv.ParseUint(c.String("mode"), 8, 32)
		if err != nil || m > 0o7777 {
			return o, exitf(2, "--mode %q: give permission bits in octal, as 0644 or 0755", c.String("mode"))
		}
		mode := uint32(m)
		o.Mode = &mode
	}
	if c.IsSet("mtime") {
		t, err := time.Parse(time.RFC3339Nano, c.String("mtime"))
		if err != nil {
			return o, exitf(2, "--mtime %q: give a time as RFC 3339, as 2026-01-02T15:04:05Z", c.String("mtime"))
		}
		o.Mtime = t
	}
	return o, nil
}

// saveItems maps paths to keys as the save flags say.
func saveItems(paths []string, key, prefix string) ([]instance.SaveItem, error) {
	if len(paths) == 0 {
		return nil, exitf(2, "usage: lamina save PATH... [--key KEY | --key-prefix PREFIX/]")
	}
	if key != "" && prefix != "" {
		return nil, exitf(2, "give --key or --key-prefix, not both")
	}
	if key != "" && len(paths) > 1 {
		return nil, exitf(2, "--key names one artifact but %d paths were given: use --key-prefix", len(paths))
	}
	if strings.HasSuffix(key, "/") {
		// As cp's DIR/: the folder of keys is --key-prefix.
		name := filepath.Base(filepath.Clean(paths[0]))
		return nil, exitf(2, "--key %q ends in '/': to save it as %s%s, use --key-prefix %s (or --key %s%s)", key, key, name, key, key, name)
	}
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	items := make([]instance.SaveItem, len(paths))
	for i, p := range paths {
		switch p {
		case "-", "/dev/stdin", "/dev/fd/0":
			return nil, exitf(2, "lamina save reads files and folders, not stdin: write it to a file first (… > data.csv; lamina save data.csv --key KEY); lamina get -o - writes to stdout")
		}
		k := key
		if k == "" {
			base := filepath.Base(filepath.Clean(p))
			if base == "." || base == ".." || base == "/" {
				return nil, exitf(2, "%q has no name to make a key of: give --key KEY (or save the folder by its name: lamina save ../NAME)", p)
			}
			k = prefix + base
		}
		items[i] = instance.SaveItem{Path: p, Key: k}
	}
	return items, nil
}
