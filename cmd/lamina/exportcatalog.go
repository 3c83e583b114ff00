package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"os"
	"path/filepath"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/catalog/catalogrpc"
	"github.com/lamina-bio/lamina/instance"
	"github.com/urfave/cli/v2"
)

// dumper and loader are what export-catalog and import-catalog need of a
// store (catalog.Bolt and postgres.Store have both).
type dumper interface {
	Dump(ctx context.Context, fn func(catalog.Record) error) error
}

type loader interface {
	Load(ctx context.Context, recs iter.Seq2[catalog.Record, error]) error
}

// openStore opens the instance's own store, never the daemon's socket:
// export and import work on the records themselves. While a daemon holds a
// bbolt file, export reads a snapshot the daemon writes (forExport).
func openStore(c *cli.Context, forExport bool) (catalog.Catalog, error) {
	dirs, err := instance.UserDirs()
	if err != nil {
		return nil, err
	}
	s, err := dirs.Current(c.String("instance"))
	if err != nil {
		return nil, err
	}
	if usesPostgres(s) {
		return openPostgres(c.Context, s, nil)
	}
	if st, ok := liveMount(dirs, s); ok {
		if forExport {
			return daemonSnapshot(c.Context, dirs, s)
		}
		return nil, fmt.Errorf("instance %q is mounted at %s: its daemon holds the catalog file; `lamina umount %s` first", s.Name, st.Mountpoint, st.Mountpoint)
	}
	return catalog.OpenBolt(s.Catalog, catalog.BoltOptions{Existing: true})
}

// daemonSnapshot asks the mount daemon of s for a copy of its catalog file
// and opens that; closing it removes the copy.
func daemonSnapshot(ctx context.Context, dirs instance.Dirs, s instance.Settings) (catalog.Catalog, error) {
	cl, err := catalogrpc.Dial(ctx, dirs.SocketPath(s.Name), s.ID)
	if err != nil {
		return nil, fmt.Errorf("instance %q is mounted, and its daemon does not answer: %w", s.Name, err)
	}
	defer cl.Close()
	tmp, err := os.MkdirTemp("", "lamina-export-")
	if err != nil {
		return nil, err
	}
	p := filepath.Join(tmp, "catalog.db")
	if err := cl.Snapshot(ctx, p); err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("a copy of the mounted catalog: %w", err)
	}
	b, err := catalog.OpenBolt(p, catalog.BoltOptions{})
	if err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	return snapshotStore{b, tmp}, nil
}

// snapshotStore is a catalog copy that goes with its Close.
type snapshotStore struct {
	*catalog.Bolt
	dir string
}

func (s snapshotStore) Close() error {
	err := s.Bolt.Close()
	os.RemoveAll(s.dir)
	return err
}

func cmdExportCatalog() *cli.Command {
	return &cli.Command{
		Name:      "export-catalog",
		Usage:     "write every record of the catalog to FILE (JSON lines; - for stdout), to import into another instance",
		ArgsUsage: "FILE",
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return exitf(2, "usage: lamina export-catalog FILE")
			}
			cat, err := openStore(c, true)
			if err != nil {
				return err
			}
			defer cat.Close()
			d, ok := cat.(dumper)
			if !ok {
				return fmt.Errorf("this catalog cannot be exported")
			}
			var w io.Writer = c.App.Writer
			var f *os.File
			if p := c.Args().First(); p != "-" {
				if f, err = os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600); err != nil {
					return err
				}
				defer f.Close()
				w = f
			}
			bw := bufio.NewWriterSize(w, 1<<20)
			enc := json.NewEncoder(bw)
			n := 0
			if err := d.Dump(c.Context, func(r catalog.Record) error { n++; return enc.Encode(r) }); err != nil {
				return err
			}
			if err := bw.Flush(); err != nil {
				return err
			}
			if f != nil {
				if err := f.Sync(); err != nil {
					return err
				}
				fmt.Fprintf(c.App.ErrWriter, "exported %d records to %s\n", n-1, f.Name())
			}
			return nil
		},
	}
}

func cmdImportCatalog() *cli.Command {
	return &cli.Command{
		Name:      "import-catalog",
		Usage:     "load an export-catalog FILE into the current instance, whose catalog must be empty (uids, versions, trash and annotations are kept)",
		ArgsUsage: "FILE",
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return exitf(2, "usage: lamina import-catalog FILE")
			}
			f, err := os.Open(c.Args().First())
			if err != nil {
				return err
			}
			defer f.Close()
			cat, err := openStore(c, false)
			if err != nil {
				return err
			}
			defer cat.Close()
			l, ok := cat.(loader)
			if !ok {
				return fmt.Errorf("this catalog cannot be imported into")
			}
			n := 0
			dec := json.NewDecoder(bufio.NewReaderSize(f, 1<<20))
			recs := func(yield func(catalog.Record, error) bool) {
				for line := 1; ; line++ {
					var r catalog.Record
					err := dec.Decode(&r)
					if err == io.EOF {
						return
					}
					if err != nil {
						err = fmt.Errorf("%s: record %d: %w", f.Name(), line, err)
					} else if line == 1 && r.Format == 0 {
						err = fmt.Errorf("%s is not a lamina export-catalog file", f.Name())
					}
					n++
					if !yield(r, err) || err != nil {
						return
					}
				}
			}
			if err := l.Load(c.Context, recs); err != nil {
				return err
			}
			cnt, err := cat.Counts(c.Context)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "imported %d records: %d artifacts, %d versions (+%d in the trash)\n", n-1, cnt.Artifacts, cnt.Versions, cnt.Trashed)
			return nil
		},
	}
}
