package main

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/curate"
	"github.com/lamina-bio/lamina/dataset"
	"github.com/lamina-bio/lamina/instance"
	"github.com/lamina-bio/lamina/ontology"
	"github.com/lamina-bio/lamina/ref"
	"github.com/urfave/cli/v2"
)

func cmdCurate() *cli.Command {
	return &cli.Command{
		Name:      "curate",
		Usage:     "validate a table (CSV, TSV, Parquet, the obs/var of an AnnData) against a schema; exit 1 when something fails",
		ArgsUsage: "PATH --schema NAME",
		Description: examples(
			"lamina curate obs.csv --schema pbmc",
			"lamina curate obs.csv --schema pbmc --standardize --mapping mapping.tsv --key curated/obs.csv"),
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "schema", Usage: "the schema to validate against"},
			&cli.BoolFlag{Name: "standardize", Usage: "map values to standard terms (case, white space, synonyms); CSV, TSV and Parquet are saved standardized, h5ad and zarr as they are (their annotations have the standard terms)"},
			&cli.StringFlag{Name: "key", Usage: "save the curated table under this key when it validates, annotated with the schema and the terms it holds"},
			descriptionFlag("the saved version (with --key)"),
			&cli.StringFlag{Name: "mapping", Usage: "write the value mapping (TSV: column, value, standard, reason) to this file"},
			&cli.BoolFlag{Name: "related", Usage: "also map through RELATED synonyms"},
			organismFlag(), formatFlag("table", "json"),
		},
		Action: func(c *cli.Context) error {
			format, err := checkFormat(c, "table", "json")
			if err != nil {
				return err
			}
			if f := missing(c, "schema"); c.NArg() != 1 || f != "" {
				return exitf(2, "%susage: lamina curate PATH --schema NAME [--standardize] [--key KEY]", f)
			}
			path := c.Args().First()
			if _, err := os.Stat(path); err != nil {
				return fmt.Errorf("cannot curate: %w", err) // exit 1, as a schema that is not there
			}
			kind := dataset.DetectFormat(path)
			// A gzipped CSV or TSV (x.csv.gz), which ontology inspect
			// reads, is curated from a plain copy (read is the copy, path
			// stays the file given); curate refused it.
			read, gz := path, ""
			if k := gzTableFormat(path); k != "" {
				dir, err := os.MkdirTemp("", "lamina-curate-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(dir)
				if read, err = gunzipTo(path, dir); err != nil {
					return unreadable(fmt.Errorf("%s: %w", path, err))
				}
				kind, gz = k, path
			}
			if err := dataset.CheckZarr(path); kind == "" && err != nil {
				return exitf(2, "%v: curate reads AnnData zarr stores whose .zattrs it can read", err)
			}
			if kind == "" || kind == dataset.FCS {
				return exitf(2, "%s: curate reads CSV, TSV (also gzipped: .csv.gz, .tsv.gz), Parquet, h5ad and AnnData zarr tables", path)
			}
			// --key is checked before the table is read: a key that cannot
			// be saved, or whose suffix names another format than the
			// file's (a CSV under .parquet, which no reader would read as
			// what it says), would only fail or mislead after the whole
			// validation.
			if key := c.String("key"); c.IsSet("key") {
				if err := ref.CheckKey(key); err != nil {
					return exitf(2, "--key: %v", err)
				}
				kk := dataset.FileFormat(key)
				if kk == "" && strings.HasSuffix(strings.ToLower(key), ".zarr") {
					kk = dataset.AnnDataZarr
				}
				if kk == "" {
					kk = gzTableFormat(key) // saved gzipped (saveCurated)
				}
				if kk != "" && kk != kind {
					return exitf(2, "--key %s says %s, but %s is %s: give a key ending in %s", key, kk, path, kind, suffixOf(kind))
				}
			}
			in, err := openInstance(c)
			if err != nil {
				return err
			}
			defer in.Close()
			s, err := findSchema(c, in.Catalog, c.String("schema"))
			if err != nil {
				return err
			}
			fs, err := in.Catalog.Features(c.Context)
			if err != nil {
				return err
			}
			dtypes := map[string]string{}
			for _, f := range fs {
				dtypes[f.Name] = f.Dtype
			}
			cs := curate.Schema{Name: s.Name, NoExtra: s.NoExtra}
			for _, sf := range s.Features {
				cs.Fields = append(cs.Fields, curate.Field{Name: sf.Feature, Dtype: dtypes[sf.Feature], Optional: sf.Optional})
			}
			labels, err := in.Catalog.Labels(c.Context)
			if err != nil {
				return err
			}
			opts := curate.Options{Related: c.Bool("related"), Ontology: func(e string) (*ontology.Index, error) {
				return loadEntity(c.Context, in, entityName(e), c.String("organism"))
			}}
			for _, l := range labels {
				opts.Labels = append(opts.Labels, l.Name)
			}
			tables, err := dataset.Tables(read)
			if err != nil {
				if gz != "" { // name the file given, not the copy
					err = renamedErr{err, read, gz}
				}
				return unreadable(err)
			}
			var named []string
			for _, f := range cs.Fields {
				named = append(named, f.Name)
			}
			tableWarnings(c.App.ErrWriter, path, tables, named...)
			r, err := curate.Validate(tables, kind, cs, opts)
			if errors.Is(err, dataset.ErrCorrupt) { // a column the schema names cannot be read
				return unreadable(fmt.Errorf("%s: %w", path, err))
			}
			if err != nil {
				return err
			}
			std := c.Bool("standardize")
			ok := r.OK() || (std && r.OKAfterStandardize())
			if format != "json" {
				curate.WriteReport(c.App.Writer, r, std)
			}
			if m := c.String("mapping"); m != "" {
				f, err := os.Create(m)
				if err != nil {
					return err
				}
				err = r.WriteMapping(f)
				if cerr := f.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					return err
				}
			}
			// With --format json, stdout is one JSON document: the report
			// and what was saved, written once the save is done.
			var saved *savedCurated
			if ok && c.IsSet("key") {
				saved, err = saveCurated(c, in, read, gz, kind, r, s, fs)
			}
			if format == "json" {
				if jerr := writeJSON(c.App.Writer, curateJSON{r, r.OK(), r.OKAfterStandardize(), saved}); err == nil {
					err = jerr
				}
			} else if saved != nil && err == nil {
				verb := "saved"
				if saved.Unchanged {
					verb = "unchanged"
				}
				how := ""
				if saved.AsIs {
					how = " as it is (not standardized)"
				}
				fmt.Fprintf(c.App.Writer, "%s %s (%s)%s, annotated with schema %s, %d terms\n", verb, saved.ref(), saved.UID, how, saved.Schema, saved.Terms)
			}
			if err != nil {
				return err
			}
			if !ok {
				if c.IsSet("key") {
					return exitf(1, "not saved: the table does not validate")
				}
				return exitf(1, "")
			}
			return nil
		},
	}
}

// curateJSON is the output of curate --format json.
type curateJSON struct {
	*curate.Report
	Valid                 bool          `json:"valid"`
	ValidAfterStandardize bool          `json:"valid_after_standardize"`
	Saved                 *savedCurated `json:"saved,omitempty"` // with --key, once saved
}

// savedCurated is the version curate --key saved and how it was annotated.
type savedCurated struct {
	Key       string `json:"key"`
	Version   int    `json:"version"`
	UID       string `json:"uid"`
	Unchanged bool   `json:"unchanged"` // same bytes as the latest version: no new version
	// Rewritten: the saved bytes are the table with --standardize's
	// mapping applied (CSV, TSV, Parquet). AsIs: there was a mapping, but
	// the file (h5ad, zarr) was saved unchanged; only the annotations
	// have the standard terms.
	Rewritten bool   `json:"rewritten"`
	AsIs      bool   `json:"-"`
	Schema    string `json:"schema"`
	Terms     int    `json:"terms"`
}

// ref names the saved version as KEY@vN.
func (s *savedCurated) ref() string { return catalog.Version{Key: s.Key, Version: s.Version}.Ref() }

// saveCurated saves the (standardized) table under --key and annotates it
// with the schema, the terms of its columns and its categorical values. It
// writes nothing: the caller reports what was saved. When the annotation
// fails after the save, it returns the saved version with the error. gz
// is the gzipped file path is a plain copy of, or "": a key ending in .gz
// is saved gzipped (gz itself when nothing is rewritten), another plain.
func saveCurated(c *cli.Context, in *instance.Instance, path, gz, kind string, r *curate.Report, s catalog.Schema, fs []catalog.Feature) (*savedCurated, error) {
	src, asIs := path, false
	rewrite := c.Bool("standardize") && len(r.Mapping()) > 0
	if rewrite && !curate.Rewrites(kind) {
		rewrite, asIs = false, true // an AnnData: annotated with the terms, saved as it is
	}
	zip := gzTableFormat(c.String("key")) != ""
	if rewrite || zip && gz == "" {
		dir, err := os.MkdirTemp("", "lamina-curate-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		src = filepath.Join(dir, filepath.Base(path))
		if zip {
			src += ".gz"
		}
		f, err := os.Create(src)
		if err != nil {
			return nil, err
		}
		var w io.Writer = f
		var zw *gzip.Writer
		if zip {
			zw = gzip.NewWriter(f)
			w = zw
		}
		if rewrite {
			err = curate.WriteStandardized(path, kind, r, w)
		} else {
			err = copyFile(w, path)
		}
		if zw != nil {
			if cerr := zw.Close(); err == nil {
				err = cerr
			}
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("writing the standardized table: %w", err)
		}
	} else if zip {
		src = gz // saved as given
	}
	res, err := in.Save(c.Context, []instance.SaveItem{{Path: src, Key: c.String("key")}}, instance.SaveOptions{Description: c.String("description"),
		NoDescription: c.IsSet("description") && c.String("description") == ""})
	if err != nil {
		return nil, err
	}
	v := res[0].Saved.Version
	saved := &savedCurated{Key: v.Key, Version: v.Version, UID: v.UID, Unchanged: res[0].Saved.Unchanged, Rewritten: rewrite, AsIs: asIs}
	cat := map[string]bool{}
	for _, f := range fs {
		cat[f.Name] = f.Entity() != ""
	}
	add := catalog.Annotations{Schema: s.Name, Features: map[string][]string{}}
	for _, col := range r.Columns {
		for _, t := range col.Terms {
			add.Terms = append(add.Terms, catalog.Term{Entity: entityName(t.Entity), ID: t.ID, Name: t.Name})
		}
		// Every value, as the terms are: a column of more than 1,000 was
		// annotated with its terms only, which ls --cell-type found and
		// --where cell_type= did not. A valid categorical value is a label
		// or a term (name or id), so the vocabulary bounds them.
		if cat[col.Feature] {
			add.Features[col.Feature] = col.Standard
		}
	}
	a, err := in.Catalog.Annotate(c.Context, v.UID, add)
	if err != nil {
		return saved, fmt.Errorf("saved %s but could not annotate it: %w", v.Ref(), err)
	}
	saved.Schema, saved.Terms = a.Schema, len(a.Terms)
	return saved, nil
}

// suffixOf is the key suffix of a format curate reads.
func suffixOf(kind string) string {
	switch kind {
	case dataset.CSV:
		return ".csv"
	case dataset.TSV:
		return ".tsv"
	case dataset.Parquet:
		return ".parquet"
	case dataset.H5AD:
		return ".h5ad"
	case dataset.AnnDataZarr:
		return ".zarr"
	}
	return "its format's suffix"
}

// gzTableFormat is CSV or TSV for a name ending in .csv.gz, .tsv.gz or
// .tab.gz, else "".
func gzTableFormat(name string) string {
	base, ok := strings.CutSuffix(strings.ToLower(strings.TrimSuffix(name, "/")), ".gz")
	if k := dataset.FileFormat(base); ok && (k == dataset.CSV || k == dataset.TSV) {
		return k
	}
	return ""
}

// gunzipTo writes the content of the gzipped file path into dir, under its
// name without .gz, and returns that copy's path.
func gunzipTo(path, dir string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return "", fmt.Errorf("%w: not gzip, as its name says: %v", dataset.ErrCorrupt, err)
	}
	name := filepath.Base(path)
	plain := filepath.Join(dir, name[:len(name)-len(".gz")])
	out, err := os.Create(plain)
	if err != nil {
		return "", err
	}
	_, err = io.Copy(out, zr)
	if err != nil {
		err = fmt.Errorf("%w: gzip: %v", dataset.ErrCorrupt, err)
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return plain, err
}

// copyFile copies the file at path to w.
func copyFile(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}

// renamedErr is err with the path from in its text given as to.
type renamedErr struct {
	err      error
	from, to string
}

func (e renamedErr) Error() string { return strings.ReplaceAll(e.err.Error(), e.from, e.to) }
func (e renamedErr) Unwrap() error { return e.err }
