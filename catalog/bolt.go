package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lamina-bio/lamina/ref"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Bucket layout (docs/design.md has the why):
//
//	meta       "schema" → decimal schema version
//	artifacts  stem → artifact record (bolt_codec.go)
//	keys       key → stem (every artifact, live or trashed only)
//	versions   uid → Version record (bolt_codec.go); uid = stem + base62(n-1),
//	           so a stem's versions sort by number and a uid prefix is a
//	           cursor seek
//	outbox     uid → "" while the version's storage record is unwritten
//	listing    key → compact latest version (bolt_listing.go)
var (
	bMeta      = []byte("meta")
	bArtifacts = []byte("artifacts")
	bKeys      = []byte("keys")
	bVersions  = []byte("versions")
	bOutbox    = []byte("outbox")
)

// SchemaVersion is the bbolt layout this build reads and writes. 2: version
// and artifact records may be binary (bolt_codec.go); schema 1 catalogs
// (JSON records only) are upgraded in place when opened. 3: the listing
// bucket (bolt_listing.go), built when an older catalog is opened. 4: the
// trashtree bucket (removed folders and links) and version records that
// say what they revise (bolt_codec.go): a build of schema 3 read those as
// "malformed record" and failed a plain ls; it refuses the catalog with
// "upgrade lamina" instead. Opening a schema 3 catalog only records 4.
// 5: an int feature value's index key is exact (intKey): schema 4 keyed it
// by its nearest float64, so 2^53 and 2^53+1 shared a key, and a build of
// schema 4 would still write such keys. 6: a rename moves its versions'
// index entries (feature, label and term entries hold the key, and the
// key's words are searchable); a build of 5 left them on the old key.
// Opening an older catalog rebuilds the indexes (reindexAll). 7: the
// runs that wrote a version's bytes again (version_reruns, bolt_runs.go);
// a build of 6 would export the catalog without them, silently, and keep
// rerun entries of versions it purges: it refuses the catalog instead.
// Opening a schema 6 catalog only records 7. 8: the highest number of
// each deleted collection (collections_deleted, DeletedCollection); a
// build of 7 would make a deleted name again from v1, so that an old
// NAME@v1 named the new list, and export the catalog without them: it
// refuses the catalog instead. Opening a schema 7 catalog only records 8
// (collections deleted before keep no number).
const SchemaVersion = 8

type artifact struct {
	Stem      string     `json:"stem"`
	Key       string     `json:"key"`
	Kind      string     `json:"kind"`
	Versions  int        `json:"versions"` // highest number ever assigned
	Latest    int        `json:"latest"`   // highest live number; 0 when all are trashed
	TrashedAt *time.Time `json:"trashed_at,omitempty"`
}

// Bolt is the bbolt store. By default it opens the file for each call and
// closes it after, so that several lamina processes take turns (bbolt holds
// an exclusive file lock while open); Hold keeps it open for a daemon.
type Bolt struct {
	path      string
	timeout   time.Duration
	lazyAfter time.Duration // BoltOptions.LazyCommitAfter

	mu   sync.Mutex // guards held
	held *bolt.DB

	saves saveGroup // group commit of Saves to held (bolt_write.go)
	lazy  lazySaves // lazy Saves to held (bolt_write.go)

	// damage is the ErrDamaged a call on the held file met. bbolt may then
	// hold its write lock for good (a rollback that reads the freelist
	// faults too), so no call uses the file again: each returns damage.
	damage atomic.Pointer[error]
}

// damaged returns the damage the held file is known to have, or nil.
func (b *Bolt) damaged() error {
	if e := b.damage.Load(); e != nil {
		return *e
	}
	return nil
}

// noteDamage remembers err if it says the held file is damaged, and
// returns it.
func (b *Bolt) noteDamage(err error) error {
	if errors.Is(err, ErrDamaged) {
		b.damage.CompareAndSwap(nil, &err)
	}
	return err
}

// BoltOptions tune OpenBolt.
type BoltOptions struct {
	Hold    bool          // keep the file open (and locked) until Close
	Timeout time.Duration // how long to wait for another process's lock; default 60 s
	// Existing says the catalog was made before (an instance's settings
	// name it): a missing or empty file is then damaged (ErrDamaged), not
	// a new catalog to set up.
	Existing bool
	// LazyCommitAfter is how long lazy saves may wait in the open write
	// transaction (catalog.Lazy); default LazyCommitAfter. Tests that play
	// a kill -9 with saves still waiting set it long.
	LazyCommitAfter time.Duration
}

// OpenBolt opens or creates the catalog file at path. A file already set
// up is only read (a shared lock, no write transaction, no fsync), so
// that opening costs a reader little and readers do not wait for each
// other; a new or older file is set up in a write transaction, which
// checks again, so processes racing to set one up agree.
func OpenBolt(path string, o BoltOptions) (*Bolt, error) {
	if o.Timeout == 0 {
		o.Timeout = 60 * time.Second
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	b := &Bolt{path: path, timeout: o.Timeout, lazyAfter: o.LazyCommitAfter}
	if b.lazyAfter == 0 {
		b.lazyAfter = LazyCommitAfter
	}
	ready, err := b.ready()
	if err != nil {
		return nil, err
	}
	if ready && !o.Hold {
		return b, nil
	}
	db, err := b.open(false, o.Existing)
	if err != nil {
		return nil, err
	}
	if !ready {
		if err := guard(path, func() error { return db.Update(func(tx *bolt.Tx) error { return setUp(tx, path) }) }); err != nil {
			db.Close()
			if errors.Is(err, ErrDamaged) {
				return nil, err
			}
			return nil, fmt.Errorf("catalog: %w", err)
		}
	}
	if o.Hold {
		b.held = db
	} else {
		db.Close()
	}
	return b, nil
}

// ready reports whether the file exists and is set up for this build. It
// leaves any other error (a corrupt file) to the write path to report,
// except ErrSchema and a lock held too long.
func (b *Bolt) ready() (bool, error) {
	if st, err := os.Stat(b.path); err != nil || st.Size() == 0 {
		return false, nil
	}
	db, err := b.open(true, true)
	if errors.Is(err, errLocked) || errors.Is(err, ErrDamaged) {
		return false, err
	}
	if err != nil {
		return false, nil
	}
	defer db.Close()
	ready := false
	err = guard(b.path, func() error {
		return db.View(func(tx *bolt.Tx) error {
			n, err := schemaOf(tx, b.path)
			if err != nil || n < SchemaVersion {
				return err
			}
			for _, name := range allBuckets() {
				if tx.Bucket(name) == nil {
					return nil
				}
			}
			ready = annotateReady(tx) // bolt_annotate.go
			return nil
		})
	})
	return ready, err
}

// coreBuckets are created by setUp; initAnnotate creates annotateBuckets.
var coreBuckets = [][]byte{bMeta, bArtifacts, bKeys, bVersions, bOutbox, bFolders, bLinks, bListing, bTrashTree}

func allBuckets() [][]byte { return append(slices.Clip(coreBuckets), annotateBuckets...) }

// schemaOf returns the schema version the file records (0 for none) and
// ErrSchema when it is newer than this build's.
func schemaOf(tx *bolt.Tx, path string) (int, error) {
	m := tx.Bucket(bMeta)
	if m == nil {
		return 0, nil
	}
	v := m.Get([]byte("schema"))
	if v == nil {
		return 0, nil
	}
	var n int
	fmt.Sscan(string(v), &n)
	if n > SchemaVersion {
		return n, errorf(ErrSchema, "catalog %s has schema version %d; this lamina understands up to %d: upgrade lamina", path, n, SchemaVersion)
	}
	return n, nil
}

// setUp creates what is missing and records this build's schema version.
func setUp(tx *bolt.Tx, path string) error {
	for _, name := range coreBuckets {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	if err := initAnnotate(tx); err != nil { // bolt_annotate.go
		return err
	}
	n, err := schemaOf(tx, path)
	if err != nil || n == SchemaVersion {
		return err
	}
	if n < 3 { // the listing came with schema 3
		if err := rebuildListing(tx); err != nil {
			return err
		}
	}
	if n < 6 { // exact int keys came with 5, entries that follow renames with 6
		if err := reindexAll(tx); err != nil { // bolt_annotate.go
			return err
		}
	}
	return tx.Bucket(bMeta).Put([]byte("schema"), []byte(fmt.Sprint(SchemaVersion)))
}

// errLocked is returned when another process holds the file too long.
var errLocked = errors.New("catalog locked")

// open opens the file; bbolt maps it at once and reads its freelist, so it
// is checked first (checkFile). existing is false only while OpenBolt may
// create it.
func (b *Bolt) open(readOnly, existing bool) (*bolt.DB, error) {
	if err := checkFile(b.path, existing); err != nil {
		return nil, err
	}
	var (
		db   *bolt.DB
		file *os.File
	)
	openFile := func(name string, flag int, perm os.FileMode) (f *os.File, err error) {
		f, err = os.OpenFile(name, flag, perm)
		file = f
		return f, err
	}
	start := time.Now()
	err := guard(b.path, func() (err error) {
		db, err = bolt.Open(b.path, 0o600, &bolt.Options{Timeout: b.timeout, ReadOnly: readOnly, OpenFile: openFile})
		return err
	})
	if errors.Is(err, ErrDamaged) {
		// bbolt panicked reading the file (its freelist, say) with it open
		// and locked: closing it lets go of the lock. The mapping stays.
		if file != nil {
			file.Close()
		}
		return nil, err
	}
	if errors.Is(err, bolterrors.ErrTimeout) {
		// The time waited, not the timeout: the two differ when the wait
		// was cut short or ran long.
		return nil, fmt.Errorf("catalog: %s is locked by another lamina process (waited %s; a mount daemon of the instance holds it while it runs): %w",
			b.path, time.Since(start).Round(100*time.Millisecond), errLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("catalog: open %s: %w", b.path, err)
	}
	return db, nil
}

func (b *Bolt) with(write bool, fn func(tx *bolt.Tx) error) error {
	if write {
		b.lazy.writers.Add(1)
		defer b.lazy.writers.Add(-1)
	}
	// Lazy saves first (bolt_write.go); Flush reports a loss. While their
	// commit fails (a full disk), a write fails as it does, rather than
	// act on a catalog without them, and a read sees them.
	if err := b.commitLazy(); err != nil && b.lazyFailing() {
		if write {
			return err
		}
		if done, err := b.readPending(fn); done {
			return err
		}
	}
	b.mu.Lock()
	db := b.held
	b.mu.Unlock()
	if db == nil {
		var err error
		if db, err = b.open(!write, true); err != nil {
			return err
		}
		defer db.Close()
	} else if err := b.damaged(); err != nil {
		return err
	}
	if write {
		return b.noteDamage(guard(b.path, func() error { return db.Update(fn) }))
	}
	return b.noteDamage(guard(b.path, func() error { return db.View(fn) }))
}

// Close releases a held file.
func (b *Bolt) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.held == nil {
		return nil
	}
	if err := b.damaged(); err != nil {
		b.held = nil // closing would wait for a write lock a fault may hold
		return err
	}
	lerr := b.commitLazy()
	if lerr != nil && b.lazyFailing() {
		// Its transaction stays open and Close would wait for it.
		lerr = b.GiveUpLazy()
	}
	err := b.held.Close()
	b.held = nil
	return errors.Join(lerr, err)
}

// Path is the catalog file.
func (b *Bolt) Path() string { return b.path }

func getJSON(bk *bolt.Bucket, k []byte, v any) (bool, error) {
	raw := bk.Get(k)
	if raw == nil {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return true, fmt.Errorf("catalog: record %q: %w", k, err)
	}
	return true, nil
}

func putJSON(bk *bolt.Bucket, k []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return bk.Put(k, raw)
}

type txn struct{ tx *bolt.Tx }

func (t txn) artifactByKey(key string) (*artifact, error) {
	stem := t.tx.Bucket(bKeys).Get([]byte(key))
	if stem == nil {
		return nil, nil
	}
	a, ok, err := getArtifact(t.tx.Bucket(bArtifacts), stem)
	if err != nil || !ok {
		return nil, err
	}
	return &a, nil
}

func (t txn) version(uid string) (Version, bool, error) {
	return getVersion(t.tx.Bucket(bVersions), []byte(uid))
}

// stemFree reports whether stem may be a new artifact's: well formed and
// no artifact's (NewVersion.Stem).
func (t txn) stemFree(stem string) bool {
	return len(stem) == ref.StemLen && ref.IsUIDPrefix(stem) && t.tx.Bucket(bArtifacts).Get([]byte(stem)) == nil
}

// stemVersions returns every version of the artifact, oldest first.
func (t txn) stemVersions(stem string) ([]Version, error) {
	var out []Version
	c := t.tx.Bucket(bVersions).Cursor()
	p := []byte(stem)
	for k, raw := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, raw = c.Next() {
		v, err := decodeVersion(raw)
		if err != nil {
			return nil, fmt.Errorf("catalog: version %s: %w", k, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// checkPlace refuses a key that would sit under a live file or over live keys.
func (t txn) checkPlace(key string) error {
	if err := t.checkEntries(key); err != nil {
		return err
	}
	for i := 0; i < len(key); i++ {
		if key[i] != '/' {
			continue
		}
		a, err := t.artifactByKey(key[:i])
		if err != nil {
			return err
		}
		if a != nil && a.Latest > 0 {
			return errorf(ErrConflict, "%q cannot be saved: %q is an artifact (a file or a folder artifact), not a folder of keys", key, key[:i])
		}
	}
	if k := t.liveUnder(key + "/"); k != "" {
		return errorf(ErrConflict, "%q cannot be saved: it is a folder holding %q", key, k)
	}
	return nil
}

func (b *Bolt) Save(ctx context.Context, nvs []NewVersion) ([]Saved, error) {
	for _, nv := range nvs {
		if err := ref.CheckKey(nv.Key); err != nil {
			return nil, err
		}
	}
	b.mu.Lock()
	held := b.held
	b.mu.Unlock()
	if held != nil {
		if err := b.damaged(); err != nil {
			return nil, err
		}
	}
	if held != nil && isLazy(ctx) && len(nvs) == 1 {
		if out, ok, err := b.saveLazy(held, nvs[0]); ok { // bolt_write.go
			return out, err
		}
	}
	if err := RunSyncFirst(ctx); err != nil {
		return nil, err
	}
	if held != nil {
		return b.saveGrouped(held, nvs) // bolt_write.go
	}
	var out []Saved
	err := b.with(true, func(tx *bolt.Tx) error {
		var err error
		out, err = txn{tx}.saveAll(nvs)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// saveAll records nvs in order. bbolt splits a node only at commit, so
// within one transaction every insert into the middle of a node moves the
// rest of it, and a batch of random keys grows nodes without bound: one
// Save of 40,000 new keys took 42 s of CPU, of 100,000 several minutes.
// A batch therefore hands new artifacts stems drawn in ascending order
// (their versions, artifact records and outbox entries then land one after
// another) and writes the word index sorted, once, at the end.
func (t txn) saveAll(nvs []NewVersion) ([]Saved, error) {
	if len(nvs) == 1 {
		s, err := t.save(nvs[0])
		return []Saved{s}, err
	}
	b := &saveBatch{stems: make([]string, len(nvs))}
	for i := range b.stems {
		b.stems[i] = ref.NewStem()
	}
	slices.Sort(b.stems)
	out := make([]Saved, 0, len(nvs))
	for _, nv := range nvs {
		s, err := t.saveIn(nv, b)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, b.flush(t)
}

// kindCheck refuses a version of another kind than its artifact's.
func kindCheck(a *artifact, nv NewVersion) error {
	if a.Kind != nv.Kind {
		return errorf(ErrKind, "%q holds a %s artifact; a %s cannot be saved as a new version of it", nv.Key, a.Kind, nv.Kind)
	}
	return nil
}

// saveBatch is what saveAll (and Load) draw in order or defer.
type saveBatch struct {
	stems []string                 // ascending; each new artifact takes the next
	puts  map[string][]deferredPut // by bucket: index entries, written sorted by flush
	n     int
}

type deferredPut struct {
	k, v []byte
	seq  int // order of the put: of two puts of one key the later wins
}

func (b *saveBatch) stem() string {
	s := b.stems[0]
	b.stems = b.stems[1:]
	return s
}

func (b *saveBatch) put(bucket, k, v []byte) {
	if b.puts == nil {
		b.puts = map[string][]deferredPut{}
	}
	b.n++
	b.puts[string(bucket)] = append(b.puts[string(bucket)], deferredPut{k, v, b.n})
}

// flush writes the deferred entries of each bucket in key order, so that
// each lands at the end of what the batch wrote before it.
func (b *saveBatch) flush(t txn) error {
	for name, ps := range b.puts {
		slices.SortFunc(ps, func(x, y deferredPut) int {
			if c := bytes.Compare(x.k, y.k); c != 0 {
				return c
			}
			return x.seq - y.seq
		})
		bk := t.tx.Bucket([]byte(name))
		for _, p := range ps {
			if err := bk.Put(p.k, p.v); err != nil {
				return err
			}
		}
	}
	b.puts = nil
	return nil
}

func (t txn) save(nv NewVersion) (Saved, error) { return t.saveIn(nv, nil) }

// saveIn records nv, within batch b if not nil.
func (t txn) saveIn(nv NewVersion, b *saveBatch) (Saved, error) {
	a, err := t.artifactByKey(nv.Key)
	if err != nil {
		return Saved{}, err
	}
	if nv.Revises != "" {
		rv, err := t.byUID(nv.Revises)
		if err != nil {
			return Saved{}, fmt.Errorf("--revises: %w", err)
		}
		if rv.Key != nv.Key {
			return Saved{}, errorf(ErrConflict, "--revises %s names a version of %q, not of %q", nv.Revises, rv.Key, nv.Key)
		}
		nv.Revises = rv.UID // a prefix would name another version later
	}
	if a == nil {
		stem := ""
		if t.stemFree(nv.Stem) {
			stem = nv.Stem
		} else if b != nil {
			stem = b.stem()
		} else {
			stem = ref.NewStem()
		}
		a = &artifact{Stem: stem, Key: nv.Key, Kind: nv.Kind}
		if err := t.tx.Bucket(bKeys).Put([]byte(nv.Key), []byte(a.Stem)); err != nil {
			return Saved{}, err
		}
	} else if err := kindCheck(a, nv); err != nil {
		return Saved{}, err
	}
	if a.Latest > 0 {
		latest, _, err := t.version(ref.VersionUID(a.Stem, a.Latest))
		if err != nil {
			return Saved{}, err
		}
		if latest.Digest == nv.Digest {
			// A run that wrote the same bytes again produced the version
			// too (bolt_runs.go).
			if err := t.rerun(nv.Run, latest); err != nil {
				return Saved{}, err
			}
			return Saved{Version: latest, Unchanged: true}, nil
		}
		if nv.Description == "" && !nv.NoDescription {
			nv.Description = latest.Description // NewVersion.Description
		}
	} else if err := t.checkPlace(nv.Key); err != nil {
		return Saved{}, err
	} else if err := t.dropTrashed(nv.Key); err != nil {
		// A file takes the name, as mkdir or ln -s takes it: the folder
		// or link trashed there is gone.
		return Saved{}, err
	}
	a.Versions++
	a.Latest = a.Versions
	a.TrashedAt = nil
	v := Version{
		UID: ref.VersionUID(a.Stem, a.Versions), Key: nv.Key, Version: a.Versions,
		Kind: nv.Kind, Suffix: nv.Suffix, OType: nv.OType, NObservations: nv.NObservations,
		NFiles: nv.NFiles, Size: nv.Size, Digest: nv.Digest, Manifest: nv.Manifest,
		Description: nv.Description, CreatedBy: nv.CreatedBy, CreatedAt: nv.CreatedAt.UTC(),
		Mtime: nv.Mtime.UTC(), Run: nv.Run, Mode: nv.Mode, Revises: nv.Revises,
	}
	v.Shape, v.Columns = nv.Shape, nv.Columns
	if err := putVersion(t.tx.Bucket(bVersions), v); err != nil {
		return Saved{}, err
	}
	if b != nil {
		t.deferWords(b, v, Annotations{})
	} else if err := t.afterSave(v); err != nil { // word index (bolt_annotate.go)
		return Saved{}, err
	}
	if err := t.afterSaveRun(v); err != nil { // run outputs (bolt_runs.go)
		return Saved{}, err
	}
	if err := putArtifact(t.tx.Bucket(bArtifacts), a); err != nil {
		return Saved{}, err
	}
	if err := t.tx.Bucket(bOutbox).Put([]byte(v.UID), nil); err != nil {
		return Saved{}, err
	}
	return Saved{Version: v}, nil
}

func (t txn) byUID(prefix string) (Version, error) {
	if !ref.IsUIDPrefix(prefix) {
		return Version{}, fmt.Errorf("%w: %q is not a uid (%d to %d base62 characters)", ref.ErrBadUID, prefix, ref.MinUIDPrefix, ref.UIDLen)
	}
	c := t.tx.Bucket(bVersions).Cursor()
	p := []byte(prefix)
	var found []Version
	oneStem := true // all matches are versions of one artifact
	for k, raw := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, raw = c.Next() {
		v, err := decodeVersion(raw)
		if err != nil {
			return Version{}, fmt.Errorf("catalog: version %s: %w", k, err)
		}
		found = append(found, v)
		oneStem = oneStem && v.Stem() == found[0].Stem()
		if !oneStem && len(found) > 10 {
			break
		}
	}
	return PickByPrefix(prefix, found, oneStem)
}

func (b *Bolt) ByUID(ctx context.Context, prefix string) (Version, error) {
	var v Version
	err := b.with(false, func(tx *bolt.Tx) error {
		var err error
		v, err = txn{tx}.byUID(prefix)
		return err
	})
	return v, err
}

func (b *Bolt) ByKey(ctx context.Context, key string, n int) (Version, error) {
	var v Version
	err := b.with(false, func(tx *bolt.Tx) error {
		t := txn{tx}
		a, err := t.artifactByKey(key)
		if err != nil {
			return err
		}
		if a == nil || a.Latest == 0 {
			if a != nil {
				return errorf(ErrNotFound, "%q is in the trash (lamina restore %s)", key, key)
			}
			return errorf(ErrNotFound, "no artifact has key %q", key)
		}
		if n == 0 {
			n = a.Latest
		}
		if n > a.Versions {
			return errorf(ErrNotFound, "%q has no version %d (latest is %d)", key, n, a.Latest)
		}
		v, _, err = t.version(ref.VersionUID(a.Stem, n))
		if err == nil && v.Trashed {
			err = errorf(ErrNotFound, "%s@v%d is in the trash", key, n)
		}
		return err
	})
	return v, err
}

func (b *Bolt) Versions(ctx context.Context, key string, trash bool) ([]Version, error) {
	var out []Version
	err := b.with(false, func(tx *bolt.Tx) error {
		t := txn{tx}
		a, err := t.artifactByKey(key)
		if err != nil {
			return err
		}
		if a == nil || (a.Latest == 0 && !trash) {
			return errorf(ErrNotFound, "no artifact has key %q", key)
		}
		all, err := t.stemVersions(a.Stem)
		for _, v := range all {
			if trash || !v.Trashed {
				out = append(out, v)
			}
		}
		return err
	})
	return out, err
}

func (b *Bolt) List(ctx context.Context, q Query) ([]Version, error) {
	var out []Version
	err := b.with(false, func(tx *bolt.Tx) error {
		t := txn{tx}
		c := tx.Bucket(bKeys).Cursor()
		arts := tx.Bucket(bArtifacts)
		p := []byte(q.Prefix)
		k, stem := c.Seek(p)
		if q.After != "" && q.After >= q.Prefix {
			k, stem = c.Seek([]byte(q.After))
			if k != nil && string(k) == q.After {
				k, stem = c.Next()
			}
		}
		for ; k != nil && bytes.HasPrefix(k, p); k, stem = c.Next() {
			a, _, err := getArtifact(arts, stem)
			if err != nil {
				return err
			}
			if a.Latest == 0 {
				continue
			}
			v, _, err := t.version(ref.VersionUID(a.Stem, a.Latest))
			if err != nil {
				return err
			}
			out = append(out, v)
			if q.Limit > 0 && len(out) >= q.Limit {
				break
			}
		}
		return nil
	})
	return out, err
}

// setTrashed marks every version of key trashed or not and returns the
// artifact afterwards plus the versions it changed.
func (t txn) setTrashed(key string, trashed bool, now time.Time) (*artifact, []Version, error) {
	return t.setTrashedOnly(key, trashed, nil, now)
}

// setTrashedOnly is setTrashed of the versions of key only takes (all of
// them when only is nil).
func (t txn) setTrashedOnly(key string, trashed bool, only func(Version) bool, now time.Time) (*artifact, []Version, error) {
	a, err := t.artifactByKey(key)
	if err != nil {
		return nil, nil, err
	}
	if a == nil {
		return nil, nil, errorf(ErrNotFound, "no artifact has key %q", key)
	}
	vs, err := t.stemVersions(a.Stem)
	if err != nil {
		return nil, nil, err
	}
	if only != nil {
		vs = slices.DeleteFunc(vs, func(v Version) bool { return !only(v) })
	}
	changed, latest := MarkTrashed(vs, trashed, now)
	for _, v := range changed {
		if err := putVersion(t.tx.Bucket(bVersions), v); err != nil {
			return nil, nil, err
		}
	}
	a.Latest = max(a.Latest, latest)
	if trashed {
		a.Latest = 0
		a.TrashedAt = &now
	} else {
		a.TrashedAt = nil
	}
	return a, changed, putArtifact(t.tx.Bucket(bArtifacts), a)
}

func entry(a *artifact, vs []Version) TrashEntry {
	e := TrashEntry{Key: a.Key, Stem: a.Stem, Versions: len(vs), Live: a.Latest > 0}
	for _, v := range vs {
		e.Size += v.Size
		if v.TrashedAt != nil && v.TrashedAt.After(e.TrashedAt) {
			e.TrashedAt = *v.TrashedAt
		}
	}
	return e
}

func (b *Bolt) Trash(ctx context.Context, key string) (TrashEntry, error) {
	now := time.Now().UTC()
	op := func(t txn) (TrashEntry, bool, error) { return t.trash(key, now) }
	if e, ok, err := lazyDo(b, ctx, "removal of "+key, op); ok { // bolt_write.go
		return e, err
	}
	var e TrashEntry
	err := b.with(true, func(tx *bolt.Tx) error {
		var err error
		e, _, err = op(txn{tx})
		return err
	})
	return e, err
}

// trash moves the live artifact key to the trash. The errors a caller can
// cause come before it writes (wrote).
func (t txn) trash(key string, now time.Time) (e TrashEntry, wrote bool, err error) {
	if a, err := t.liveFile(key); err != nil || a == nil {
		if err == nil {
			err = errorf(ErrNotFound, "no artifact has key %q", key)
			if a, _ := t.artifactByKey(key); a != nil {
				err = errorf(ErrNotFound, "%q is already in the trash", key)
			}
		}
		return e, false, err
	}
	a, changed, err := t.setTrashed(key, true, now)
	if err != nil {
		return e, true, err
	}
	return entry(a, changed), true, nil
}

func (b *Bolt) Restore(ctx context.Context, key string) (TrashEntry, error) {
	var e TrashEntry
	err := b.with(true, func(tx *bolt.Tx) error {
		var err error
		e, err = txn{tx}.restore(key, nil)
		return err
	})
	return e, err
}

func (b *Bolt) RestoreTrashedWith(ctx context.Context, uid string) (TrashEntry, error) {
	var e TrashEntry
	err := b.with(true, func(tx *bolt.Tx) error {
		t := txn{tx}
		v, ok, err := t.version(uid)
		if err != nil {
			return err
		}
		if !ok || !v.Trashed {
			return errorf(ErrNotFound, "no version in the trash has uid %q", uid)
		}
		e, err = t.restore(v.Key, func(o Version) bool { return TrashedWith(o, v) })
		return err
	})
	return e, err
}

// restore is Restore of the versions of key only takes (all when nil): a
// key with none of them brings back the folder or link at key when only
// is nil, and is ErrNotFound otherwise.
func (t txn) restore(key string, only func(Version) bool) (TrashEntry, error) {
	if a, err := t.artifactByKey(key); err != nil {
		return TrashEntry{}, err
	} else if a != nil && a.Latest == 0 {
		if err := t.checkPlace(key); err != nil {
			return TrashEntry{}, fmt.Errorf("cannot restore: %w", err)
		}
	}
	a, changed, err := t.setTrashedOnly(key, false, only, time.Now().UTC())
	if only != nil && err == nil && len(changed) == 0 {
		return TrashEntry{}, errorf(ErrNotFound, "%q has no such version in the trash", key)
	}
	if errors.Is(err, ErrNotFound) || (err == nil && len(changed) == 0) {
		// No versions to bring back: a removed folder or link.
		return t.restoreNode(key)
	}
	if err != nil {
		return TrashEntry{}, err
	}
	// The file takes its name back: a folder removed there since
	// leaves the trash (else ls --trash listed a live name and its
	// restore met the file; what was under it stays). A link stays,
	// listed as held by the file and restorable once the name is
	// free: a restore never deletes a trashed link unasked.
	if n, err := t.trashedNode(key); err != nil {
		return TrashEntry{}, err
	} else if n != nil && n.Folder != nil {
		if err := t.dropTrashed(key); err != nil {
			return TrashEntry{}, err
		}
	}
	return entry(a, changed), nil
}

func (b *Bolt) RestoreNode(ctx context.Context, key string) (TrashEntry, error) {
	var e TrashEntry
	err := b.with(true, func(tx *bolt.Tx) error {
		var err error
		e, err = txn{tx}.restoreNode(key)
		return err
	})
	return e, err
}

func (b *Bolt) TrashList(ctx context.Context) ([]TrashEntry, error) {
	var out []TrashEntry
	err := b.with(false, func(tx *bolt.Tx) error {
		t := txn{tx}
		out = nil
		err := tx.Bucket(bArtifacts).ForEach(func(stem, raw []byte) error {
			a, err := decodeArtifact(raw)
			if err != nil {
				return fmt.Errorf("catalog: artifact %s: %w", stem, err)
			}
			if a.TrashedAt == nil && a.Versions == 1 && a.Latest == 1 {
				return nil // its one version is live: nothing to read
			}
			vs, err := t.stemVersions(a.Stem)
			if err != nil {
				return err
			}
			var trashed []Version
			for _, v := range vs {
				if v.Trashed {
					trashed = append(trashed, v)
				}
			}
			if len(trashed) > 0 {
				out = append(out, entry(&a, trashed))
			}
			return nil
		})
		if err != nil {
			return err
		}
		nodes, err := t.trashedNodes() // bolt_write.go
		out = append(out, nodes...)
		return err
	})
	SortTrash(out)
	return out, err
}

// Snapshot writes a consistent copy of the catalog file to path (one read
// transaction): export-catalog reads it while a daemon holds the file.
func (b *Bolt) Snapshot(ctx context.Context, path string) error {
	return b.with(false, func(tx *bolt.Tx) error { return tx.CopyFile(path, 0o600) })
}

func (b *Bolt) Purge(ctx context.Context, key string) ([]Version, error) {
	var out []Version
	err := b.with(true, func(tx *bolt.Tx) error {
		t := txn{tx}
		a, err := t.artifactByKey(key)
		if err != nil {
			return err
		}
		if a == nil {
			// A folder or link in the trash (bolt_write.go).
			if err := t.purgeNode(key); !errors.Is(err, ErrNotFound) {
				return err
			}
			return errorf(ErrNotFound, "no artifact has key %q", key)
		}
		out, err = t.purgeArtifact(a, true)
		return err
	})
	if err != nil {
		return nil, err // rolled back: nothing was purged (a tombstone must not name them)
	}
	return out, nil
}

func (b *Bolt) PurgeTrashed(ctx context.Context, key, kind string) ([]Version, error) {
	var out []Version
	err := b.with(true, func(tx *bolt.Tx) error {
		t := txn{tx}
		if kind != "" && kind != PurgeUnreferenced {
			return t.purgeNode(key)
		}
		a, err := t.artifactByKey(key)
		if err != nil {
			return err
		}
		if a == nil {
			return errorf(ErrNotFound, "no artifact has key %q", key)
		}
		vs, err := t.stemVersions(a.Stem)
		if err != nil {
			return err
		}
		if slices.ContainsFunc(vs, func(v Version) bool { return !v.Trashed }) {
			return errorf(ErrWrittenAgain, "%q was written again since it was trashed: kept", key)
		}
		if kind == PurgeUnreferenced {
			refs, err := References(vs, t.annotations, func(uid string) ([]string, error) {
				return suffixes(tx, bVersionUsers, uid), nil
			}, t.collectionsHolding)
			if err != nil {
				return err
			}
			if len(refs) > 0 {
				return ReferencedError(key, refs)
			}
		}
		// A temporary renamed onto a key leaves its runs no record: its
		// content, and its run, went to the name (Run.Purged).
		out, err = t.purgeArtifact(a, kind != PurgeUnreferenced)
		return err
	})
	if err != nil {
		return nil, err // rolled back: nothing was purged (a tombstone must not name them)
	}
	return out, nil
}

// purgeNode drops the folder or link in the trash at key.
func (t txn) purgeNode(key string) error {
	if n, err := t.trashedNode(key); err != nil || n != nil {
		if err != nil {
			return err
		}
		return t.dropTrashed(key)
	}
	return errorf(ErrNotFound, "the trash holds no folder or link at %q", key)
}

// purgeArtifact removes a and all its versions and returns them; with
// keep, the runs that used or made one record what it was (Run.Purged).
func (t txn) purgeArtifact(a *artifact, keep bool) ([]Version, error) {
	out, err := t.stemVersions(a.Stem)
	if err != nil {
		return nil, err
	}
	if keep {
		if err := t.keepPurged(out); err != nil { // bolt_runs.go
			return nil, err
		}
	}
	for _, v := range out {
		if err := t.afterPurge(v); err != nil { // bolt_annotate.go
			return nil, err
		}
		if err := t.tx.Bucket(bVersions).Delete([]byte(v.UID)); err != nil {
			return nil, err
		}
		if err := t.tx.Bucket(bOutbox).Delete([]byte(v.UID)); err != nil {
			return nil, err
		}
		if err := t.purgeReruns(v.UID); err != nil { // bolt_runs.go
			return nil, err
		}
	}
	if err := t.tx.Bucket(bArtifacts).Delete([]byte(a.Stem)); err != nil {
		return nil, err
	}
	if err := t.tx.Bucket(bKeys).Delete([]byte(a.Key)); err != nil {
		return nil, err
	}
	return out, relist(t.tx, a.Key)
}

func (b *Bolt) Each(ctx context.Context, fn func(Version) error) error {
	return b.with(false, func(tx *bolt.Tx) error {
		return tx.Bucket(bVersions).ForEach(func(k, raw []byte) error {
			v, err := decodeVersion(raw)
			if err != nil {
				return fmt.Errorf("catalog: version %s: %w", k, err)
			}
			return fn(v)
		})
	})
}

func (b *Bolt) Counts(ctx context.Context) (Counts, error) {
	var c Counts
	err := b.with(false, func(tx *bolt.Tx) error {
		err := tx.Bucket(bArtifacts).ForEach(func(stem, raw []byte) error {
			a, err := decodeArtifact(raw)
			if err != nil {
				return fmt.Errorf("catalog: artifact %s: %w", stem, err)
			}
			if a.Latest > 0 {
				c.Artifacts++
			}
			return nil
		})
		if err != nil {
			return err
		}
		return tx.Bucket(bVersions).ForEach(func(k, raw []byte) error {
			v, err := decodeVersion(raw)
			if err != nil {
				return fmt.Errorf("catalog: version %s: %w", k, err)
			}
			if v.Trashed {
				c.Trashed++
			} else {
				c.Versions++
			}
			c.Bytes += v.Size
			return nil
		})
	})
	return c, err
}

func (b *Bolt) Outbox(ctx context.Context) ([]Version, error) {
	var out []Version
	err := b.with(false, func(tx *bolt.Tx) error {
		t := txn{tx}
		return tx.Bucket(bOutbox).ForEach(func(uid, _ []byte) error {
			v, ok, err := t.version(string(uid))
			if ok {
				out = append(out, v)
			}
			return err
		})
	})
	return out, err
}

func (b *Bolt) OutboxDone(ctx context.Context, uids []string) error {
	if len(uids) == 0 {
		return nil
	}
	return b.with(true, func(tx *bolt.Tx) error {
		for _, u := range uids {
			if err := tx.Bucket(bOutbox).Delete([]byte(u)); err != nil {
				return err
			}
		}
		return nil
	})
}

var _ Catalog = (*Bolt)(nil)
