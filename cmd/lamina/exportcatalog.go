package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"maps"
	"os"
	"path/filepath"
	"slices"
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
	moveFromCache(c.App.ErrWriter, dirs, s) // layout.go
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
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "force", Usage: "replace an existing FILE (once the new export is complete)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return exitf(2, "usage: lamina export-catalog FILE")
			}
			p := c.Args().First()
			if err := checkExportTarget(p, c.Bool("force")); err != nil {
				return err
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
			var replace func() error // --force of a file: the new export goes over it
			done, made := false, false
			if p != "-" {
				if f, made, replace, err = createExport(p, c.Bool("force")); err != nil {
					return err
				}
				defer func() {
					f.Close()
					if made && !done { // a part of an export, or of the one replacing it
						os.Remove(f.Name())
					}
				}()
				w = f
			}
			bw := bufio.NewWriterSize(w, 1<<20)
			enc := json.NewEncoder(bw)
			n := 0
			count := map[string]int{}
			err = d.Dump(c.Context, func(r catalog.Record) error {
				if n++; r.Format != 0 {
					r.Counted = true // the Count line below ends the file
				} else {
					count[r.Kind()]++
				}
				return enc.Encode(r)
			})
			if err != nil {
				return err
			}
			if err := enc.Encode(catalog.Record{Count: &catalog.DumpCount{Records: count}}); err != nil {
				return err
			}
			if err := bw.Flush(); err != nil {
				return err
			}
			if f != nil {
				if err := f.Sync(); err != nil && made { // a device may not sync
					return err
				}
				if replace != nil {
					if err := replace(); err != nil {
						return err
					}
				}
				done = true
				fmt.Fprintf(c.App.ErrWriter, "exported %d records to %s\n", n-1, p)
			}
			warnQueuedPacks(c)
			return nil
		},
	}
}

// checkExportTarget refuses, before anything is read, an export-catalog
// FILE that exists (without force: an export is never overwritten by
// mistake), a folder, or one in a folder that does not exist.
func checkExportTarget(p string, force bool) error {
	if p == "-" {
		return nil
	}
	fi, err := os.Lstat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if d := filepath.Dir(p); d != "." {
			if _, err := os.Stat(d); errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("cannot write %s: folder %s does not exist", p, d)
			}
		}
		return nil
	case err != nil:
		return err
	case fi.IsDir():
		return fmt.Errorf("%s is a folder: give the export a file name (e.g. %s)", p, filepath.Join(p, "catalog.jsonl"))
	case !force && !fi.Mode().IsRegular() && fi.Mode()&fs.ModeSymlink == 0:
		return fmt.Errorf("%s exists and is no regular file: --force writes the export into it", p)
	case !force:
		return fmt.Errorf("%s exists: choose another name or remove it (--force replaces it)", p)
	}
	return nil
}

// createExport opens the file an export is written to; made says it
// created it (to remove should the export fail). A file that exists
// (force) is replaced only once the new export is complete (replace
// renames it over), so a failed export leaves the old one; a device or a
// pipe (force) is written into.
func createExport(p string, force bool) (f *os.File, made bool, replace func() error, err error) {
	fi, err := os.Stat(p)
	switch {
	case err == nil && force && !fi.Mode().IsRegular():
		f, err = os.OpenFile(p, os.O_WRONLY, 0)
		return f, false, nil, err
	case err == nil && force:
		tmp, err := os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".lamina-partial-*")
		if err != nil {
			return nil, false, nil, err
		}
		return tmp, true, func() error {
			if err := os.Rename(tmp.Name(), p); err != nil {
				return fmt.Errorf("cannot replace %s: %w", p, err)
			}
			return nil
		}, nil
	}
	f, err = os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if errors.Is(err, fs.ErrExist) { // made meanwhile
		return nil, false, nil, checkExportTarget(p, false)
	}
	return f, err == nil, nil, err
}

func cmdImportCatalog() *cli.Command {
	return &cli.Command{
		Name:        "import-catalog",
		Usage:       "load an export-catalog FILE into the current instance, whose catalog must be empty",
		Description: "Uids, versions, the trash and annotations are kept as the FILE has them.",
		ArgsUsage:   "FILE",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "force", Usage: "import even when the storage lacks the data of versions the file names (they will not read)"},
			&cli.BoolFlag{Name: "partial", Usage: "import even when the storage records versions the file lacks (the next gc deletes their data)"},
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
			cat, err := openStore(c, false)
			if err != nil {
				return err
			}
			defer cat.Close()
			l, ok := cat.(loader)
			if !ok {
				return fmt.Errorf("this catalog cannot be imported into")
			}
			// A catalog that is not empty is refused before the file is
			// judged against the storage: that is the first thing to fix.
			if err := checkEmpty(c.Context, l); err != nil {
				return err
			}
			if err := checkImportStorage(c, f); err != nil {
				return err
			}
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				return err
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
					} else if k := r.Kind(); k != "format" && k != "count" {
						n++ // as export-catalog counts: the first and last lines aside
					}
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
			fmt.Fprintf(c.App.Writer, "imported %s: %s, %s (+%d in the trash)\n", plural(n, "record"), plural(cnt.Artifacts, "artifact"), plural(cnt.Versions, "version"), cnt.Trashed)
			return nil
		},
	}
}

// errProbe ends the Load of checkEmpty.
var errProbe = errors.New("probe")

// checkEmpty refuses a catalog that is not empty as Load does: it starts
// a Load whose first record is an error, which rolls it back.
func checkEmpty(ctx context.Context, l loader) error {
	err := l.Load(ctx, func(yield func(catalog.Record, error) bool) { yield(catalog.Record{}, errProbe) })
	if errors.Is(err, errProbe) {
		return nil
	}
	return err
}

// importSample is how many versions from each end of an export
// import-catalog looks for in storage.
const importSample = 20

// exportScan is what import-catalog reads of a file before loading it.
type exportScan struct {
	uids   map[string]bool   // of the versions it holds
	sample []catalog.Version // the first and last importSample with a manifest
}

// scanExport reads f through. A file that says it is Counted must end
// with its Count line, whose counts match: a file cut at a line boundary
// would otherwise import as a smaller catalog. A record that does not
// decode (a gzipped file, a JSON array, a line cut short) is reported
// first, with its number: the checks of the storage's records that
// follow would take such a file for a partial export.
func scanExport(f *os.File) (exportScan, error) {
	sc := exportScan{uids: map[string]bool{}}
	var first, last []catalog.Version
	var head catalog.Record
	var count *catalog.DumpCount
	seen := map[string]int{}
	dec := json.NewDecoder(bufio.NewReaderSize(f, 1<<20))
	for line := 1; ; line++ {
		var r catalog.Record
		if err := dec.Decode(&r); err == io.EOF && line == 1 {
			// Every export has its format line: an empty file is one
			// cut before it (a copy that failed), not an empty catalog.
			return sc, fmt.Errorf("%s is empty: an export holds at least its format and count lines, so the file was cut (copied or written only in part) or is not an export; import a whole export", f.Name())
		} else if err == io.EOF {
			break
		} else if err != nil {
			return sc, fmt.Errorf("%s: record %d: %w", f.Name(), line, err)
		}
		switch {
		case line == 1:
			if r.Format == 0 {
				return sc, fmt.Errorf("%s is not a lamina export-catalog file", f.Name())
			}
			if r.Format > catalog.DumpFormat {
				// Refused before any count is compared: a newer format's
				// records of kinds this build does not know would be
				// counted as none and taken for a cut file.
				return sc, fmt.Errorf("%s: export format %d is newer than this lamina reads (up to %d): upgrade lamina", f.Name(), r.Format, catalog.DumpFormat)
			}
			head = r
			continue
		case count != nil:
			return sc, fmt.Errorf("%s: record %d follows the count line, which ends an export: the file is damaged", f.Name(), line)
		case r.Count != nil:
			count = r.Count
			continue
		}
		seen[r.Kind()]++
		if v := r.Version; v != nil {
			sc.uids[v.UID] = true
			if v.Manifest == "" {
				continue
			}
			if len(first) < importSample {
				first = append(first, *v)
			} else if last = append(last, *v); len(last) > importSample {
				last = last[1:]
			}
		}
	}
	sc.sample = append(first, last...)
	if !head.Counted {
		return sc, nil // an older export: checkImportRecords guards it
	}
	if count == nil {
		return sc, fmt.Errorf("%s ends without its count line: the file was cut (copied or written only in part); import a whole export", f.Name())
	}
	for k := range count.Records {
		seen[k] += 0 // a kind the file lacks is compared too
	}
	for _, k := range slices.Sorted(maps.Keys(seen)) {
		if seen[k] != count.Records[k] {
			return sc, fmt.Errorf("%s holds %d %s records where its count line says %d: the file was cut or edited; import a whole export", f.Name(), seen[k], k, count.Records[k])
		}
	}
	return sc, nil
}

// checkImportRecords refuses a file that lacks versions the storage's
// records (records/, the storage root's copy of the catalog) hold: a
// partial, cut or stale export. Imported, the catalog would not know them,
// and the next gc would delete their data and their records. --partial
// imports anyway.
func checkImportRecords(c *cli.Context, in *instance.Instance, sc exportScan) error {
	recorded, err := in.Recorded(c.Context)
	if err != nil {
		return fmt.Errorf("read the records of %s: %w", in.Settings.Storage, err)
	}
	var missing []catalog.Version
	for uid, v := range recorded {
		if !sc.uids[uid] {
			missing = append(missing, v)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	slices.SortFunc(missing, func(a, b catalog.Version) int {
		return cmp.Or(strings.Compare(a.Key, b.Key), cmp.Compare(a.Version, b.Version))
	})
	var ex []string
	for _, v := range missing[:min(len(missing), 3)] {
		ex = append(ex, v.Ref())
	}
	if len(missing) > 3 {
		ex = append(ex, "…")
	}
	msg := fmt.Sprintf("the storage of instance %q (%s) records %s that the file does not hold (%s): the file is not the whole catalog (an export cut short, edited, or older than the last saves); imported, the next `lamina gc` would delete their data and their records",
		in.Settings.Name, in.Settings.Storage, plural(len(missing), "version"), strings.Join(ex, ", "))
	if !c.Bool("partial") {
		return exitf(1, "%s; import a whole, newer export; --partial imports this one anyway, which is right when you know these versions were deleted for good: `lamina delete --permanent` now records in storage what it deletes, but the records of versions an older lamina deleted for good stay and appear here", msg)
	}
	fmt.Fprintf(c.App.ErrWriter, "lamina: warning: %s; importing anyway (--partial)\n", msg)
	return nil
}

// checkImportStorage refuses an import whose versions the instance's
// storage does not hold (an instance made on a new --storage rather than
// on the exported instance's one): every get would fail. It reads the
// manifests of the first and last importSample versions of the file. A
// storage that another instance owns is refused too, as every command
// that uses it refuses it. --force imports anyway. It then checks the
// file against the storage's records (checkImportRecords).
func checkImportStorage(c *cli.Context, f *os.File) error {
	_, s, err := currentSettings(c)
	if err != nil {
		return err
	}
	sc, err := scanExport(f)
	if err != nil {
		return exitf(1, "%v", err)
	}
	b, rem, err := openBackend(c.Context, s, backendOptions{syncUpload: true})
	if err != nil {
		return err
	}
	defer rem.close()
	in := instance.New(s, nil, b, nil)
	if err := in.CheckStorage(c.Context, false); err != nil { // owner.go
		return err
	}
	if err := checkImportRecords(c, in, sc); err != nil {
		return err
	}
	if len(sc.sample) == 0 {
		return nil
	}
	store, err := cache.NewStore(b, filepath.Join(s.DataDir, "index.db"), cache.DefaultParams)
	if err != nil {
		return err
	}
	var missing []string
	for _, v := range sc.sample {
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
	msg := fmt.Sprintf("the storage of instance %q (%s) does not hold the data of %d of the %d versions checked (%s): import the export into an instance made on the storage the exported instance used (`lamina init --storage SAME --take-over`); if it is that storage, their data may still wait in the upload queue of the machine that saved them (S3: a save whose upload failed): there, `lamina status` shows it and `lamina cache push` uploads its packs, even after a take-over; import again once they are in",
		s.Name, s.Storage, len(missing), len(sc.sample), strings.Join(ex, ", "))
	if !c.Bool("force") {
		return exitf(1, "%s; --force imports anyway (those versions will not read)", msg)
	}
	fmt.Fprintf(c.App.ErrWriter, "lamina: warning: %s; importing anyway (--force)\n", msg)
	return nil
}

// warnQueuedPacks warns, after an export, of packs that still wait in
// this machine's upload queue: versions of the export may name them, and
// an import elsewhere (the move of a take-over) cannot read those until
// they are in the storage.
func warnQueuedPacks(c *cli.Context) {
	_, s, err := currentSettings(c)
	if err != nil || !isS3(s) {
		return
	}
	// The queue, and the one an older lamina still running keeps in
	// the cache folder (moved once it stops).
	for _, dir := range []string{s.UploadDir(), oldUploadQueue(s)} {
		if dir == "" {
			continue
		}
		p, err := cache.ScanUploads(dir)
		if err != nil {
			continue
		}
		n, size := 0, int64(0)
		for _, it := range p.Items {
			if cache.IsPackName(it.Name) {
				n++
				size += it.Size
			}
		}
		if n == 0 {
			continue
		}
		how := "`lamina --instance " + shellArg(s.Name) + " cache push` uploads " + them(n) + " (after a take-over too)"
		if dir != s.UploadDir() {
			how = "this is where an older lamina keeps its queue: it uploads " + them(n) + " while it runs, or a command of this lamina moves " + them(n) + " to " + s.UploadDir() + " once nothing uses it, and `lamina cache push` uploads " + them(n) + " then"
		}
		fmt.Fprintf(c.App.ErrWriter, "lamina: warning: %s (%s) of this machine still %s in its upload queue (%s): versions of the export may name %s, and an import reads them only once they are in %s; %s\n",
			plural(n, "pack"), humanBytes(size), verb(n, "waits", "wait"), dir, them(n), s.Storage, how)
	}
}
