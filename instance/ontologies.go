package instance

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/ontology"
	"github.com/lamina-bio/lamina/storage"
	"github.com/lamina-bio/lamina/storage/retry"
	"golang.org/x/sync/singleflight"
	"golang.org/x/sys/unix"
)

// Ontology sources live in the instance's storage, not in the catalog, so
// that everyone sharing a storage root shares them and so that they can be
// imported while a mount daemon owns the catalog file:
//
//	ontologies/<entity>/<digest>.src      ontology.Marshal of one source
//	ontologies/<entity>/<digest>.v3.idx   its index (ontology.MarshalIndex, format 3)
//	ontologies/registry.json              every source, which one is default
//
// The index is derived: built at import (written after the registry, not
// synced), or on first use for a source imported before index files
// existed, and rebuilt from the source when it is damaged. A process maps
// it from local disk: the storage folder, or with remote storage a copy in
// the local cache (<CacheDir>/ontologies/<digest>.v3.idx).
//
// An import writes the source object first and then replaces the registry
// (storage Put is atomic), so a reader never sees a registry entry without
// its object; a crash between the two leaves only an unlisted object.
// Registry updates on one machine are serialised by an exclusive flock on
// ontologies.lock in the instance's DataDir; across machines the registry
// is read from storage (never the block cache) and replaced by a
// conditional write, redone on a fresh read when another machine's came
// first (updateRegistry). See docs/ontology-cli.md.
const (
	ontologyPrefix   = "ontologies/"
	ontologyRegistry = ontologyPrefix + "registry.json"
	registryFormat   = 1
)

// OntologySource is one imported version of an ontology for an entity, as
// the registry records it.
type OntologySource struct {
	Entity     string    `json:"entity"`
	Ontology   string    `json:"ontology"`
	Version    string    `json:"version"`
	Organism   string    `json:"organism,omitempty"`
	Terms      int       `json:"terms"`
	Obsolete   int       `json:"obsolete"`
	Digest     string    `json:"digest"` // hex SHA-256 of the imported bytes
	Default    bool      `json:"default"`
	ImportedAt time.Time `json:"imported_at"`
	ImportedBy string    `json:"imported_by"`
	Location   string    `json:"location,omitempty"` // the path or URL imported
	Object     string    `json:"object"`             // storage name of the encoded source
}

// registry is the content of ontologies/registry.json.
type registry struct {
	Format  int              `json:"format"`
	Sources []OntologySource `json:"sources"`
}

// OntologyImportOptions say what to import.
type OntologyImportOptions struct {
	Entity    string // celltype, gene, ... or a custom lowercase name
	Organism  string // human or mouse, for per-organism entities
	Version   string // overrides the version the file names
	NoDefault bool   // keep the current default (the first source of an entity is default regardless)
	// AllowDangling imports a source that looks cut (parents in its own
	// prefix that it defines nowhere), with a warning.
	AllowDangling bool
	Client        *http.Client
	Progress      cache.Progress // told of bytes read; may be nil
	// Size, when not nil, is told the input's size in bytes once known
	// before the bytes are read: a URL's Content-Length (a path's size
	// the caller can stat).
	Size func(int64)
}

// OntologyImport is the outcome of ImportOntology.
type OntologyImport struct {
	Source OntologySource
	// Unchanged is set when the same bytes were imported for the entity
	// before: nothing was written.
	Unchanged bool
	// Warnings are the problems the parser tolerated, with file and line.
	Warnings []string
}

// ImportOntology reads the source at location (a path or an http(s) URL,
// gzip or not), stores it and records it in the registry. Malformed input
// fails with an *ontology.SyntaxError naming the file and line, and nothing
// is written. Importing the same bytes again for the same entity changes
// nothing and reports Unchanged. A new version is kept beside the others
// and becomes the default of its entity (and organism) unless NoDefault.
// Safe for concurrent use, also across processes and machines.
func (in *Instance) ImportOntology(ctx context.Context, location string, o OntologyImportOptions) (OntologyImport, error) {
	if !ontology.ValidEntityName(o.Entity) {
		return OntologyImport{}, catalog.Invalidf("%q is not an entity name: use lowercase letters, digits and _ (built in: %s)", o.Entity, entityNames())
	}
	// cell_type after celltype is a new version of celltype, not a second
	// entity whose default the first one's queries never see.
	reg, err := in.readRegistry(ctx)
	if err != nil {
		return OntologyImport{}, err
	}
	o.Entity = sameEntity(reg, o.Entity)
	rc, err := ontology.Open(ctx, location, o.Client)
	if err != nil {
		return OntologyImport{}, err
	}
	// The digest of the bytes as given: sources imported from gzip before
	// digests were of the decompressed content are named by it.
	if sz, ok := rc.(interface{ Size() int64 }); ok && o.Size != nil && sz.Size() >= 0 {
		o.Size(sz.Size())
	}
	given := sha256.New()
	var r io.Reader = io.TeeReader(rc, given)
	if o.Progress != nil {
		r = &progressReader{r: r, fn: o.Progress}
	}
	src, err := ontology.Read(r, location, ontology.ImportOptions{Entity: o.Entity, Organism: o.Organism, Version: o.Version, AllowDangling: o.AllowDangling})
	rc.Close()
	if err != nil {
		return OntologyImport{}, err
	}
	res := OntologyImport{Warnings: src.Warnings}
	legacy := hex.EncodeToString(given.Sum(nil))
	rec := OntologySource{
		Entity: src.Entity, Ontology: src.Ontology, Version: src.Version, Organism: src.Organism,
		Terms: len(src.Terms), Digest: src.Digest, ImportedBy: in.User, Location: location,
		Object: ontologyObject(src.Entity, src.Digest),
	}
	for i := range src.Terms {
		if src.Terms[i].Obsolete {
			rec.Obsolete++
		}
	}

	// A cheap look first, so a repeated import writes nothing at all.
	if reg, err = in.readRegistry(ctx); err != nil {
		return res, err
	}
	if old, done, err := findImported(reg, rec, legacy); done || err != nil {
		res.Source, res.Unchanged = old, done
		return res, err
	}
	x, err := ontology.Build(src)
	if err != nil {
		return res, err
	}
	// The object is content-addressed, so writing it before taking the lock
	// is harmless even when another import of the same bytes races us. The
	// index comes last, after the registry (storeIndex).
	// Stored, never staged: the registry must not name an object other
	// machines cannot read yet.
	if err := storage.PutStored(ctx, in.Backend, rec.Object, ontology.Marshal(src)); err != nil {
		return res, fmt.Errorf("store ontology source: %w", err)
	}
	if err := in.Backend.Sync(ctx); err != nil {
		return res, err
	}

	unlock, err := in.ontologyLock()
	if err != nil {
		return res, err
	}
	defer unlock()
	err = in.updateRegistry(ctx, func(reg *registry) error {
		old, done, err := findImported(*reg, rec, legacy)
		if done && err == nil && !rec.ImportedAt.IsZero() && old.ImportedAt.Equal(rec.ImportedAt) {
			// Our own write: it landed, but its answer was lost and the
			// retry was refused as a change.
			return errNoChange
		}
		if done || err != nil {
			res.Source, res.Unchanged = old, done
			if err == nil {
				err = errNoChange
			}
			return err
		}
		rec.ImportedAt = time.Now().UTC().Truncate(time.Millisecond)
		hasDefault := false
		for _, s := range reg.Sources {
			if s.Entity == rec.Entity && s.Organism == rec.Organism && s.Default {
				hasDefault = true
			}
		}
		rec.Default = !o.NoDefault || !hasDefault
		if rec.Default {
			for i := range reg.Sources {
				if s := &reg.Sources[i]; s.Entity == rec.Entity && s.Organism == rec.Organism {
					s.Default = false
				}
			}
		}
		reg.Sources = append(reg.Sources, rec)
		return nil
	})
	if err != nil || res.Unchanged {
		return res, err
	}
	res.Source = rec
	in.storeIndex(ctx, rec, x)
	return res, nil
}

// findImported reports whether rec's bytes were already imported for its
// entity, and refuses a second source under an existing version name.
// legacy is the digest of the bytes as given, which named a source imported
// from gzip before digests were of the decompressed content.
func findImported(reg registry, rec OntologySource, legacy string) (OntologySource, bool, error) {
	for _, s := range reg.Sources {
		if s.Entity != rec.Entity {
			continue
		}
		if s.Digest == rec.Digest || s.Digest == legacy {
			if s.Organism != rec.Organism {
				return s, false, fmt.Errorf("this file is already imported as %s for organism %q (version %s)", s.Entity, s.Organism, s.Version)
			}
			return s, true, nil
		}
		if s.Organism == rec.Organism && s.Version == rec.Version {
			return OntologySource{}, false, fmt.Errorf("%s already has a different source named version %s (digest %.12s): name this one with --version", s.Entity, s.Version, s.Digest)
		}
	}
	return OntologySource{}, false, nil
}

// OntologySources lists every imported source, by entity, organism and
// import time.
func (in *Instance) OntologySources(ctx context.Context) ([]OntologySource, error) {
	reg, err := in.readRegistry(ctx)
	if err != nil {
		return nil, err
	}
	return reg.Sources, nil
}

// ResolveOntology finds the source of an entity that a query should use:
// the given version (or digest prefix), else the default. organism picks
// among the entity's per-organism sources (developmental_stage, gene); a
// source imported for any organism (CL, Uberon) serves every organism.
// organism may be empty when the entity's sources are for one organism
// (or none). Errors wrap ontology.ErrNotFound when there is no such source.
func (in *Instance) ResolveOntology(ctx context.Context, entity, organism, version string) (OntologySource, error) {
	reg, err := in.readRegistry(ctx)
	if err != nil {
		return OntologySource{}, err
	}
	return resolveSource(reg, entity, organism, version)
}

func resolveSource(reg registry, entity, organism, version string) (OntologySource, error) {
	entity = sameEntity(reg, entity)
	organism = ontology.NormalizeOrganism(organism)
	var all, cands []OntologySource
	orgs := map[string]bool{}
	for _, s := range reg.Sources {
		if s.Entity != entity {
			continue
		}
		all = append(all, s)
		if organism == "" || s.Organism == organism {
			cands = append(cands, s)
			orgs[s.Organism] = true
		}
	}
	// One --organism serves a whole command (a schema of cell types and
	// developmental stages): a source for any organism fits it.
	if len(cands) == 0 {
		for _, s := range all {
			if s.Organism == "" {
				cands = append(cands, s)
				orgs[s.Organism] = true
			}
		}
	}
	if len(all) == 0 {
		if near := nearEntities(reg, entity); len(near) > 0 {
			return OntologySource{}, notFoundf("no %s ontology imported: did you mean %s? (or import one with `lamina ontology import %s --source PATH|URL`)", entity, strings.Join(near, " or "), entity)
		}
		return OntologySource{}, notFoundf("no %s ontology imported yet: import one with `lamina ontology import %s --source PATH|URL`", entity, entity)
	}
	if len(cands) == 0 {
		return OntologySource{}, notFoundf("no %s source for organism %q (imported: %s): import one with `lamina ontology import %s --organism %s --source PATH|URL`",
			entity, organism, organismList(all), entity, organism)
	}
	if len(orgs) > 1 {
		return OntologySource{}, fmt.Errorf("%s has sources for several organisms (%s): pick one with --organism", entity, organismList(all))
	}
	if version == "" {
		for _, s := range cands {
			if s.Default {
				return s, nil
			}
		}
		return cands[len(cands)-1], nil // a registry edited by hand: the newest
	}
	for _, s := range cands {
		if s.Version == version {
			return s, nil
		}
	}
	if len(version) >= 6 {
		for _, s := range cands {
			if strings.HasPrefix(s.Digest, strings.ToLower(version)) {
				return s, nil
			}
		}
	}
	var vs []string
	for _, s := range cands {
		vs = append(vs, s.Version)
	}
	return OntologySource{}, notFoundf("no version %q of %s; imported: %s", version, entity, strings.Join(vs, ", "))
}

// notFound is a message for a person that errors.Is matches to
// ontology.ErrNotFound, without that sentinel's text (its "file does not
// exist" means nothing to whoever asked for a version or an organism).
type notFound struct{ msg string }

func (e *notFound) Error() string { return e.msg }
func (e *notFound) Unwrap() error { return ontology.ErrNotFound }

func notFoundf(format string, a ...any) error {
	return &notFound{fmt.Sprintf(format, a...)}
}

func organismList(ss []OntologySource) string {
	var out []string
	for _, s := range ss {
		o := s.Organism
		if o == "" {
			o = "any organism"
		}
		if !slices.Contains(out, o) {
			out = append(out, o)
		}
	}
	return strings.Join(out, ", ")
}

// SetDefaultOntology makes a version (or digest prefix) the default source
// of its entity and organism and returns it.
func (in *Instance) SetDefaultOntology(ctx context.Context, entity, organism, version string) (OntologySource, error) {
	if version == "" {
		return OntologySource{}, errors.New("name the version to make default")
	}
	unlock, err := in.ontologyLock()
	if err != nil {
		return OntologySource{}, err
	}
	defer unlock()
	var rec OntologySource
	err = in.updateRegistry(ctx, func(reg *registry) error {
		var err error
		if rec, err = resolveSource(*reg, entity, organism, version); err != nil {
			return err
		}
		if rec.Default {
			return errNoChange
		}
		for i := range reg.Sources {
			s := &reg.Sources[i]
			if s.Entity == rec.Entity && s.Organism == rec.Organism {
				s.Default = s.Digest == rec.Digest
			}
		}
		rec.Default = true
		return nil
	})
	if err != nil {
		return OntologySource{}, err
	}
	return rec, nil
}

// LoadOntology returns the index of the source ResolveOntology picks, and
// that source. Indexes are cached in the process (keyed by storage location
// and content digest, so a new default is seen at once), and concurrent
// loads of one source are collapsed into one.
func (in *Instance) LoadOntology(ctx context.Context, entity, organism, version string) (*ontology.Index, OntologySource, error) {
	rec, err := in.ResolveOntology(ctx, entity, organism, version)
	if err != nil {
		return nil, rec, err
	}
	x, err := in.LoadSource(ctx, rec)
	return x, rec, err
}

// LoadSource returns the index of rec, a source of OntologySources, as
// LoadOntology does, without reading the registry again.
func (in *Instance) LoadSource(ctx context.Context, rec OntologySource) (*ontology.Index, error) {
	key := in.Backend.String() + "\x00" + rec.Object + "\x00" + rec.Digest
	if x := indexes.get(key); x != nil {
		return x, nil
	}
	v, err, _ := indexes.group.Do(key, func() (any, error) {
		x, err := in.loadIndex(ctx, rec)
		if err != nil {
			return nil, err
		}
		indexes.put(key, x)
		return x, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*ontology.Index), nil
}

// loadIndex maps rec's index file from local disk (the storage folder, or
// the local cache of remote storage), else fetches it from storage, else
// builds it from the stored source and stores it. A damaged or stale file
// is logged and replaced, so the next process finds it good.
func (in *Instance) loadIndex(ctx context.Context, rec OntologySource) (*ontology.Index, error) {
	if path, inStorage := in.indexFile(rec); path != "" {
		x, err := mapIndex(path, rec.Digest)
		switch {
		case err == nil:
			return x, nil
		case errors.Is(err, ontology.ErrIndex) && inStorage:
			in.log().Warn("ontology index is unusable; rebuilding it from the source", "file", path, "err", err)
			return in.rebuildIndex(ctx, rec)
		case errors.Is(err, ontology.ErrIndex):
			in.log().Warn("ontology index in the local cache is unusable; reading it from storage", "file", path, "err", err)
			os.Remove(path)
		}
		// Not there, or not mappable: storage decides.
	}
	obj := indexObject(rec)
	b, err := in.Backend.Get(ctx, obj)
	switch {
	case err == nil:
		x, err := ontology.LoadIndex(b, rec.Digest)
		if err == nil {
			in.cacheIndex(rec, b)
			return x, nil
		}
		in.log().Warn("ontology index is unusable; rebuilding it from the source", "object", obj, "err", err)
	case storage.IsNotFound(err):
		in.log().Info("building the ontology index (once per source)", "entity", rec.Entity, "version", rec.Version)
	default:
		return nil, fmt.Errorf("ontology index %s %s: %w", rec.Entity, rec.Version, err)
	}
	return in.rebuildIndex(ctx, rec)
}

// mapIndex maps an index file read-only and loads it: no copy, and only
// the page cache behind it (Mondo's is 33 MB; reading it cost ~20 ms of
// system time per process, mapping it a few ms). A loaded index is never
// unmapped, since it and the strings it hands out point into the mapping;
// that is safe because index files are replaced by rename, never changed
// in place (storage.Local.Put, cacheIndex). A file that fails to load is
// unmapped at once.
func mapIndex(path, digest string) (*ontology.Index, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() == 0 || st.Size() != int64(int(st.Size())) {
		return ontology.LoadIndex(nil, digest) // an ErrIndex
	}
	b, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, err
	}
	x, err := ontology.LoadIndex(b, digest)
	if err != nil {
		unix.Munmap(b)
		return nil, err
	}
	return x, nil
}

// rebuildIndex builds rec's index from the stored source and stores it,
// in storage and the local cache. Failing to store it is logged, not
// returned: the index is still good for this process.
func (in *Instance) rebuildIndex(ctx context.Context, rec OntologySource) (*ontology.Index, error) {
	b, err := in.Backend.Get(ctx, rec.Object)
	if err != nil {
		return nil, fmt.Errorf("ontology source %s %s: %w", rec.Entity, rec.Version, err)
	}
	src, err := ontology.Unmarshal(b)
	if err != nil {
		return nil, fmt.Errorf("ontology source %s %s (%s): %w", rec.Entity, rec.Version, rec.Object, err)
	}
	if src.Digest != rec.Digest {
		return nil, fmt.Errorf("ontology source %s holds digest %.12s, the registry says %.12s", rec.Object, src.Digest, rec.Digest)
	}
	// The registry is authoritative for names a user may have set.
	src.Version = rec.Version
	x, err := ontology.Build(src)
	if err != nil {
		return nil, err
	}
	in.storeIndex(ctx, rec, x)
	return x, nil
}

// storeIndex writes x as rec's index file, in storage and the local cache.
// It is not synced: the file is derived and checksummed, so one lost or
// torn by a crash is rebuilt, and syncing the file system for it cost
// imports seconds. A failure is logged: the index is rebuilt next time.
func (in *Instance) storeIndex(ctx context.Context, rec OntologySource, x *ontology.Index) {
	b := x.MarshalIndex()
	if err := in.Backend.Put(ctx, indexObject(rec), b); err != nil {
		in.log().Warn("could not store the ontology index; it is built again next time", "object", indexObject(rec), "err", err)
	}
	in.cacheIndex(rec, b)
}

func indexObject(rec OntologySource) string {
	return fmt.Sprintf("%s%s/%s.v%d.idx", ontologyPrefix, rec.Entity, rec.Digest, ontology.IndexFormat)
}

// indexFile is the local file of rec's index: in the storage folder when
// storage is local (inStorage), else in the local cache ("" without one).
func (in *Instance) indexFile(rec OntologySource) (path string, inStorage bool) {
	if l, ok := localBackend(in.Backend); ok {
		return filepath.Join(l.Root(), filepath.FromSlash(indexObject(rec))), true
	}
	return in.indexCachePath(rec), false
}

// indexCachePath is where the local cache keeps rec's index, or "" when
// there is no cache or the storage is a local folder already.
func (in *Instance) indexCachePath(rec OntologySource) string {
	if _, local := localBackend(in.Backend); local || in.Settings.CacheDir == "" {
		return ""
	}
	return filepath.Join(in.Settings.CacheDir, "ontologies", fmt.Sprintf("%s.v%d.idx", rec.Digest, ontology.IndexFormat))
}

// cacheIndex writes an index file to the local cache, through a temporary
// file and a rename so that a reader never sees part of one. A failure
// only costs a fetch from storage next time.
func (in *Instance) cacheIndex(rec OntologySource, b []byte) {
	path := in.indexCachePath(rec)
	if path == "" {
		return
	}
	err := os.MkdirAll(filepath.Dir(path), 0o700)
	var f *os.File
	if err == nil {
		f, err = os.CreateTemp(filepath.Dir(path), ".idx-*")
	}
	if err == nil {
		_, err = f.Write(b)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(f.Name(), path)
		}
		if err != nil {
			os.Remove(f.Name())
		}
	}
	if err != nil {
		in.log().Warn("could not cache the ontology index", "file", path, "err", err)
	}
}

func (in *Instance) log() *slog.Logger {
	if in.Log != nil {
		return in.Log
	}
	return slog.Default()
}

// indexCache keeps the most recently used indexes of this process. A CLI
// command uses one; a long-running mount keeps a few hot.
type indexCache struct {
	group singleflight.Group
	mu    sync.Mutex // guards m and order
	m     map[string]*ontology.Index
	order []string // least recently used first
}

const maxCachedIndexes = 8

var indexes = &indexCache{m: map[string]*ontology.Index{}}

func (c *indexCache) get(key string) *ontology.Index {
	c.mu.Lock()
	defer c.mu.Unlock()
	x := c.m[key]
	if x != nil {
		c.touch(key)
	}
	return x
}

func (c *indexCache) put(key string, x *ontology.Index) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[key] = x
	c.touch(key)
	for len(c.order) > maxCachedIndexes {
		delete(c.m, c.order[0])
		c.order = c.order[1:]
	}
}

func (c *indexCache) touch(key string) {
	if i := slices.Index(c.order, key); i >= 0 {
		c.order = slices.Delete(c.order, i, i+1)
	}
	c.order = append(c.order, key)
}

// readRegistry reads the registry from the storage itself, never from the
// local block cache nor a staged copy: another workstation may have
// changed it since this machine last read it. When the storage cannot be
// read (away), it falls back, warning, to the copy of the registry this
// machine last read (registryCopy), so that queries and curation work
// offline as they did when the registry was read through the cache.
func (in *Instance) readRegistry(ctx context.Context) (registry, error) {
	p := in.registryCopy()
	fctx := ctx
	if p != "" {
		if _, err := os.Stat(p); err == nil {
			// A copy to fall back on: an unreachable storage is not worth
			// the retry budget (seconds for each command).
			fctx = retry.FailFast(ctx)
		}
	}
	b, _, err := in.fetchRegistry(fctx)
	if err != nil && !storage.IsNotFound(err) && ctx.Err() == nil {
		if p != "" {
			if cb, cerr := os.ReadFile(p); cerr == nil {
				if reg, perr := in.parseRegistry(cb); perr == nil {
					if !registryAwayTold.Swap(true) { // once per process, not per lookup
						in.log().Warn("could not read the ontology registry from storage; using the copy this machine read last", "err", err)
					}
					return reg, nil
				}
			}
		}
	}
	return in.parsedRegistry(b, err)
}

// registryAwayTold is set once readRegistry has warned of its fallback.
var registryAwayTold atomic.Bool

// loadRegistry reads the registry from the storage itself, with the tag of
// what it read, for updateRegistry's conditional write ("" when there is no
// registry yet).
func (in *Instance) loadRegistry(ctx context.Context) (registry, string, error) {
	b, tag, err := in.fetchRegistry(ctx)
	reg, err := in.parsedRegistry(b, err)
	if err != nil {
		return registry{}, "", err
	}
	return reg, tag, nil
}

func (in *Instance) fetchRegistry(ctx context.Context) ([]byte, string, error) {
	var b []byte
	var tag string
	err := errors.ErrUnsupported
	if s, ok := storage.FindSwapper(in.Backend); ok {
		b, tag, err = s.GetTag(ctx, ontologyRegistry)
	}
	if errors.Is(err, errors.ErrUnsupported) {
		b, err = storage.GetStored(ctx, in.Backend, ontologyRegistry)
	}
	if err != nil {
		return nil, "", err
	}
	return b, tag, nil
}

// parsedRegistry parses what fetchRegistry returned, and keeps a copy of a
// good one for readRegistry's fallback.
func (in *Instance) parsedRegistry(b []byte, err error) (registry, error) {
	if storage.IsNotFound(err) {
		return registry{Format: registryFormat}, nil
	}
	if err != nil {
		return registry{}, fmt.Errorf("read ontology registry: %w", err)
	}
	reg, err := in.parseRegistry(b)
	if err != nil {
		return registry{}, err
	}
	in.keepRegistryCopy(b)
	return reg, nil
}

func (in *Instance) parseRegistry(b []byte) (registry, error) {
	var reg registry
	if err := json.Unmarshal(b, &reg); err != nil {
		return registry{}, fmt.Errorf("ontology registry %s in %s is damaged: %w", ontologyRegistry, in.Backend, err)
	}
	if reg.Format > registryFormat {
		return registry{}, fmt.Errorf("ontology registry %s has format %d; this lamina reads up to %d: upgrade lamina", ontologyRegistry, reg.Format, registryFormat)
	}
	return reg, nil
}

// registryCopy is where the local cache keeps the registry as last read,
// or "" when there is no cache or the storage is a local folder.
func (in *Instance) registryCopy() string {
	if _, local := localBackend(in.Backend); local || in.Settings.CacheDir == "" {
		return ""
	}
	return filepath.Join(in.Settings.CacheDir, "ontologies", "registry.json")
}

// keepRegistryCopy writes b to registryCopy when it differs, through a
// temporary file and a rename. It is only read when the storage is away,
// never written back: a failure costs nothing else.
func (in *Instance) keepRegistryCopy(b []byte) {
	p := in.registryCopy()
	if p == "" {
		return
	}
	if old, err := os.ReadFile(p); err == nil && bytes.Equal(old, b) {
		return
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".registry-*")
	if err != nil {
		return
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), p)
	}
	if err != nil {
		os.Remove(f.Name())
	}
}

// errNoChange, from an updateRegistry edit, says there is nothing to write.
var errNoChange = errors.New("registry unchanged")

// registryAttempts bounds how often updateRegistry reads again after
// another machine changed the registry under it.
const registryAttempts = 20

// updateRegistry reads the registry, lets edit change it and writes it
// back only if no one replaced it in between (storage.Swapper: S3
// If-Match, or a lock beside the file in a shared folder); if someone did,
// it reads again and edits that. Two workstations importing at once thus
// both land, where a plain write-back kept only the last. The write goes
// to the storage itself, never staged for a later upload that could
// overwrite a newer registry. edit returns errNoChange to write nothing.
// The caller holds ontologyLock, so only other machines race it.
func (in *Instance) updateRegistry(ctx context.Context, edit func(*registry) error) error {
	s, ok := storage.FindSwapper(in.Backend)
	for i := 0; ; i++ {
		reg, tag, err := in.loadRegistry(ctx)
		if err != nil {
			return err
		}
		if err := edit(&reg); err != nil {
			if errors.Is(err, errNoChange) {
				return nil
			}
			return err
		}
		b, err := marshalRegistry(reg)
		if err != nil {
			return err
		}
		err = errors.ErrUnsupported
		if ok {
			err = s.PutIf(ctx, ontologyRegistry, b, tag)
		}
		if errors.Is(err, errors.ErrUnsupported) {
			// A backend that cannot compare (a test's): one machine only.
			err = storage.PutStored(ctx, in.Backend, ontologyRegistry, b)
		}
		if errors.Is(err, storage.ErrChanged) && i+1 < registryAttempts {
			in.log().Info("the ontology registry changed while this import updated it; reading it again", "attempt", i+1)
			continue
		}
		if err != nil {
			return fmt.Errorf("write ontology registry: %w", err)
		}
		return in.Backend.Sync(ctx)
	}
}

func marshalRegistry(reg registry) ([]byte, error) {
	reg.Format = registryFormat
	slices.SortStableFunc(reg.Sources, func(a, b OntologySource) int {
		if c := strings.Compare(a.Entity, b.Entity); c != 0 {
			return c
		}
		if c := strings.Compare(a.Organism, b.Organism); c != 0 {
			return c
		}
		return a.ImportedAt.Compare(b.ImportedAt)
	})
	b, err := json.MarshalIndent(reg, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// ontologyLock takes the exclusive lock that serialises registry updates.
func (in *Instance) ontologyLock() (func(), error) {
	if err := os.MkdirAll(in.Settings.DataDir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(in.Settings.DataDir, "ontologies.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return func() { f.Close() }, nil
}

func ontologyObject(entity, digest string) string {
	return ontologyPrefix + entity + "/" + digest + ".src"
}

func entityNames() string {
	var names []string
	for _, e := range ontology.Entities() {
		names = append(names, e.Name)
	}
	return strings.Join(names, ", ")
}

type progressReader struct {
	r  io.Reader
	fn cache.Progress
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.fn(int64(n))
	}
	return n, err
}

// normEntity is an entity name compared loosely: case, '_' and a bionty.
// or bt. prefix do not matter (CellType, cell_type, bionty.CellType).
func normEntity(e string) string {
	e = strings.TrimPrefix(strings.TrimPrefix(e, "bionty."), "bt.")
	return strings.ToLower(strings.ReplaceAll(e, "_", ""))
}

// sameEntity is the imported entity that entity names loosely (normEntity),
// else entity.
func sameEntity(reg registry, entity string) string {
	for _, s := range reg.Sources {
		if s.Entity == entity {
			return entity
		}
	}
	for _, s := range reg.Sources {
		if normEntity(s.Entity) == normEntity(entity) {
			return s.Entity
		}
	}
	return entity
}

// nearEntities are the imported entities within two edits of entity (a
// typo: celltyp for celltype).
func nearEntities(reg registry, entity string) []string {
	var out []string
	for _, s := range reg.Sources {
		if !slices.Contains(out, s.Entity) && ontology.EditDistance(normEntity(s.Entity), normEntity(entity)) <= 2 {
			out = append(out, s.Entity)
		}
	}
	return out
}
