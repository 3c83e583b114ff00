package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"path/filepath"
	"strings"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/catalog/catalogrpc"
	"github.com/lamina-bio/lamina/instance"
	"github.com/lamina-bio/lamina/storage"
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
		if forExport {
			return openPostgres(c.Context, s, nil)
		}
		return openPostgresImport(c.Context, s)
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
	cl, err := catalogrpc.Dial(ctx, dirs.DaemonSocket(s), s.ID)
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
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "force", Usage: "import even when the storage lacks the data of versions the file names (they will not read)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return exitf(2, "usage: lamina import-catalog FILE")
			}
			f, err := os.Open(c.Args().First())
			if err != nil {
				return err
			}
			defer f.Close()
			if err := checkImportStorage(c, f); err != nil {
				return err
			}
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				return err
			}
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
			if err := restoreShared(c, cat); err != nil {
				return err
			}
			cnt, err := cat.Counts(c.Context)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "imported %s: %s, %s (+%d in the trash)\n", plural(n-1, "record"), plural(cnt.Artifacts, "artifact"), plural(cnt.Versions, "version"), cnt.Trashed)
			return nil
		},
	}
}

// importSample is how many versions from each end of an export
// import-catalog looks for in storage.
const importSample = 20

// checkImportStorage refuses an import whose versions the instance's
// storage does not hold (an instance made on a new --storage rather than
// on the exported instance's one): every get would fail. It reads the
// manifests of the first and last importSample versions of the file. A
// storage that another instance owns is refused too, as every command
// that uses it refuses it. --force imports anyway.
func checkImportStorage(c *cli.Context, f *os.File) error {
	dirs, err := instance.UserDirs()
	if err != nil {
		return err
	}
	s, err := dirs.Current(c.String("instance"))
	if err != nil {
		return err
	}
	var first, last []catalog.Version
	n := 0
	dec := json.NewDecoder(bufio.NewReaderSize(f, 1<<20))
	for {
		var r catalog.Record
		if err := dec.Decode(&r); err == io.EOF {
			break
		} else if err != nil {
			return nil // Load reports a damaged file, with its line
		}
		if v := r.Version; v != nil && v.Manifest != "" {
			n++
			if len(first) < importSample {
				first = append(first, *v)
			} else {
				last = append(last, *v)
				if len(last) > importSample {
					last = last[1:]
				}
			}
		}
	}
	b, rem, err := openBackend(c.Context, s, backendOptions{syncUpload: true})
	if err != nil {
		return err
	}
	defer rem.close()
	if err := instance.New(s, nil, b, nil).CheckStorage(c.Context, false); err != nil { // owner.go
		return err
	}
	if n == 0 {
		return nil
	}
	store, err := cache.NewStore(b, filepath.Join(s.DataDir, "index.db"), cache.DefaultParams)
	if err != nil {
		return err
	}
	var missing []string
	sample := append(first, last...)
	for _, v := range sample {
		if _, err := store.LoadManifest(c.Context, cache.Ref(v.Manifest)); err != nil {
			if !storage.IsNotFound(err) && !errors.Is(err, cache.ErrCorrupt) {
				return fmt.Errorf("read the data of %s in %s: %w", v.Ref(), s.Storage, err)
			}
			missing = append(missing, v.Ref())
		}
	}
	if len(missing) == 0 {
		return nil
	}
	ex := missing
	if len(ex) > 3 {
		ex = append(ex[:3:3], "…")
	}
	msg := fmt.Sprintf("the storage of instance %q (%s) does not hold the data of %d of the %d versions checked (%s): import the export into an instance made on the storage the exported instance used (`lamina init --storage SAME --take-over`)",
		s.Name, s.Storage, len(missing), len(sample), strings.Join(ex, ", "))
	if !c.Bool("force") {
		return exitf(1, "%s; --force imports anyway (those versions will not read)", msg)
	}
	fmt.Fprintf(c.App.ErrWriter, "lamina: warning: %s; importing anyway (--force)\n", msg)
	return nil
}
