package instance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/catalog/postgres"
	"github.com/lamina-bio/lamina/storage"
	"github.com/lamina-bio/lamina/storage/s3"
)

// A storage root belongs to one instance (the workstations of a team share
// it: one instance id). Another instance on the same root would count the
// first one's packs as unreferenced, and its gc would delete them; so init
// refuses a root another instance owns unless told to take it over (moving
// an instance to another catalog: export-catalog, init --take-over,
// import-catalog), and the instance that lost it may no longer write to it
// or collect it.
const ownerObject = "instance.json"

// Owner is what a storage root says about the instance that owns it.
type Owner struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Catalog string    `json:"catalog"` // without a password
	Since   time.Time `json:"since"`
	// Host is the machine whose init claimed the root (empty in claims of
	// older versions): what tells this machine's own interrupted init
	// (InterruptedInit) from another workstation's instance.
	Host string `json:"host,omitempty"`
}

// InterruptedInit is the refusal of a root claimed for an instance of the
// same name by an init that did not finish (it claims the storage before
// it writes the settings; one killed in between leaves the claim), when
// CheckClaim cannot prove the claim was this machine's own (see
// ownInterruptedInit): it might be another workstation's instance of that
// name. init --take-over takes it.
type InterruptedInit struct {
	Storage string
	Owner   Owner
	Why     string // why the claim was not taken for this init
}

func (e *InterruptedInit) Error() string {
	host := ""
	if e.Owner.Host != "" {
		host = " on host " + e.Owner.Host
	}
	return fmt.Sprintf("%v: %s holds instance %q, claimed by an init%s at %s (catalog %s), and no instance of that name is set up here: an init of %q interrupted before it wrote its settings leaves this. It was not taken for this init because %s. If that init was yours and no other workstation uses %q on this storage, take the storage over",
		ErrStorageTaken, e.Storage, e.Owner.Name, host, e.Owner.Since.Format(time.DateTime+" MST"), e.Owner.Catalog, e.Owner.Name, e.Why, e.Owner.Name)
}

func (e *InterruptedInit) Unwrap() error { return ErrStorageTaken }

// ErrStorageTaken is returned for storage another instance owns.
var ErrStorageTaken = errors.New("the storage belongs to another instance")

// StorageOwner reads the owner of the instance's storage; found is false
// when no instance has claimed it (a root made before claims, or a new one).
func (in *Instance) StorageOwner(ctx context.Context) (o Owner, found bool, err error) {
	// The storage's copy, never a staged or cached one: another machine
	// may have taken the storage over since.
	b, err := storage.GetStored(ctx, in.Backend, ownerObject)
	if storage.IsNotFound(err) {
		return Owner{}, false, nil
	}
	if err != nil {
		return Owner{}, false, fmt.Errorf("read the owner of the storage: %w", err)
	}
	if err := json.Unmarshal(b, &o); err != nil || o.ID == "" {
		return Owner{}, false, fmt.Errorf("%s in the storage is damaged: %v", ownerObject, err)
	}
	return o, true, nil
}

// ClaimStorage makes the instance the owner of its storage. Without
// takeOver it refuses a root that another instance owns, or that holds
// packs of one made before claims (CheckClaim). What could not be checked
// is returned as warnings.
func (in *Instance) ClaimStorage(ctx context.Context, takeOver bool) ([]string, error) {
	warns, err := in.CheckClaim(ctx, takeOver)
	if err != nil {
		return warns, err
	}
	return warns, in.WriteClaim(ctx)
}

// WriteClaim makes the instance the owner of its storage without checking
// (the caller ran CheckClaim: its listing is not worth doing twice).
func (in *Instance) WriteClaim(ctx context.Context) error { return in.writeOwner(ctx) }

// CheckClaim says whether ClaimStorage would succeed, writing nothing. A
// root inside another instance's root, or one that holds another's, is
// refused (checkNesting), except with takeOver of a root that holds an
// instance.json already: roots nested before init refused them must keep
// their way to a new catalog (export-catalog, init --take-over), and gc
// touches only its own layout names (gc.go), so nesting no longer costs
// them data. Warnings say what could not be checked, or was let pass.
func (in *Instance) CheckClaim(ctx context.Context, takeOver bool) (warnings []string, err error) {
	o, found, err := in.StorageOwner(ctx)
	if err != nil {
		return nil, err
	}
	warnings, err = in.checkNesting(ctx)
	if err != nil {
		if !takeOver || !found || !errors.Is(err, ErrStorageTaken) {
			return warnings, err
		}
		what := strings.TrimPrefix(err.Error(), ErrStorageTaken.Error()+": ")
		what, _, _ = strings.Cut(what, "; give ") // the advice for a new root
		warnings = append(warnings, what+"; taken over anyway, as it held an instance already (each gc touches only its own packs, records and marks; give new instances roots that do not nest)")
	}
	if found && o.ID == in.Settings.ID {
		return warnings, nil
	}
	if !takeOver {
		if found && o.Name == in.Settings.Name {
			// init refuses a name set up here before it gets here: the
			// claim is an interrupted init's, or another workstation's.
			why, err := in.ownInterruptedInit(ctx, o)
			if err != nil {
				return warnings, err
			}
			if why != "" {
				return warnings, &InterruptedInit{Storage: in.Settings.Storage, Owner: o, Why: why}
			}
			return append(warnings, fmt.Sprintf("%s held the claim of an init of %q on this machine at %s that did not finish (no settings, no data): taken for this one",
				in.Settings.Storage, o.Name, o.Since.Format(time.DateTime+" MST"))), nil
		}
		if found {
			join := ""
			if postgres.IsURL(o.Catalog) {
				join = fmt.Sprintf("join it with `lamina connect %s --db %s`, ", o.Name, o.Catalog)
			}
			return warnings, fmt.Errorf("%w: %s holds instance %q (catalog %s); %sgive another --storage, or move that instance here with --take-over after `lamina export-catalog` (the other instance may then no longer use this storage)",
				ErrStorageTaken, in.Settings.Storage, o.Name, o.Catalog, join)
		}
		used := false
		err := in.Backend.List(ctx, "packs/", func(storage.Info) error { used = true; return errStop })
		if err != nil && !errors.Is(err, errStop) {
			return warnings, err
		}
		if used {
			return warnings, fmt.Errorf("%w: %s already holds the data of an instance; give another --storage, or --take-over to move that instance here after `lamina export-catalog` (it may then no longer use this storage)",
				ErrStorageTaken, in.Settings.Storage)
		}
	}
	return warnings, nil
}

var errStop = errors.New("stop")

// initMarker is the file in an instance's data folder that init writes
// before it claims the storage, naming the id it claims, and removes once
// its settings are written (MarkInit, UnmarkInit): an init interrupted in
// between leaves it beside its claim.
const initMarker = ".init-claim"

// MarkInit records in the instance's data folder that an init is about to
// claim the storage for its id: what proves the claim this user's own
// should the init be interrupted before it writes its settings
// (ownInterruptedInit).
func (in *Instance) MarkInit() error {
	p := filepath.Join(in.Settings.DataDir, initMarker)
	if err := os.MkdirAll(in.Settings.DataDir, 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("record the init: %w", err)
	}
	_, err = f.WriteString(in.Settings.ID + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("record the init: %w", err)
	}
	return nil
}

// UnmarkInit removes the record of MarkInit once the init's settings are
// written.
func (in *Instance) UnmarkInit() { os.Remove(filepath.Join(in.Settings.DataDir, initMarker)) }

// ownInterruptedInit says why the claim o, of an instance of this name
// that is not set up here, cannot be proven the leftover of this user's
// own interrupted init, or "" when it can: the claim names this host and
// this instance's catalog (for a bbolt catalog, a path in this user's
// data folder; for PostgreSQL, the database, which refuses a second
// registration anyway), the instance's data folder holds the record such
// an init leaves (MarkInit) naming the claim's id, and the root holds
// none of an instance's data (packs, records, ontologies). Such a claim
// is taken without --take-over: nothing of anyone's is lost. Anything
// else may be a workstation's real instance (S3 roots are shared), so it
// is refused: host names and home folders repeat across machines (two
// VMs named ubuntu with HOME=/home/ubuntu made the same claim).
func (in *Instance) ownInterruptedInit(ctx context.Context, o Owner) (why string, err error) {
	host, _ := os.Hostname()
	mark, _ := os.ReadFile(filepath.Join(in.Settings.DataDir, initMarker))
	switch {
	case o.Host == "":
		return "the claim does not say from which host (an older lamina wrote it)", nil
	case o.Host != host:
		return fmt.Sprintf("it was made on another host (%s, this is %s)", o.Host, host), nil
	case o.Catalog != in.catalogName():
		return fmt.Sprintf("it names another catalog (%s, this init's is %s)", o.Catalog, in.catalogName()), nil
	case strings.TrimSpace(string(mark)) != o.ID:
		return fmt.Sprintf("no init of this user here left it (%s names no id %s): another machine of the same host name, or another user, may use it", filepath.Join(in.Settings.DataDir, initMarker), o.ID), nil
	}
	for _, prefix := range []string{"packs/", "records/", "ontologies/"} {
		used := false
		err := in.Backend.List(ctx, prefix, func(storage.Info) error { used = true; return errStop })
		if err != nil && !errors.Is(err, errStop) {
			return "", fmt.Errorf("look for data in %s: %w", in.Settings.Storage, err)
		}
		if used {
			return fmt.Sprintf("the storage holds data of it (%s)", strings.TrimSuffix(prefix, "/")), nil
		}
	}
	return "", nil
}

// checkNesting refuses a root inside another instance's root, or one that
// holds another instance's root, on local or S3 storage alike: the outer
// one's gc lists its own folders (packs/, records/, gc/) to the bottom, so
// a root inside one of those would be read as its own, and a tree of roots
// inside roots invites exactly that. The check reads the instance.json of
// each enclosing folder (or prefix of the bucket) and lists the root for
// one below it: a listing of everything under the root, once, at init.
// What it cannot read (a prefix the credentials may not read, a folder
// this user may not open) it skips with a warning.
func (in *Instance) checkNesting(ctx context.Context) (warnings []string, err error) {
	root := in.Settings.Storage
	var inner string
	if strings.HasPrefix(root, "s3://") {
		if warnings, err = in.checkS3Parents(ctx); err != nil {
			return warnings, err
		}
		err = in.Backend.List(ctx, "", func(i storage.Info) error {
			if strings.HasSuffix(i.Name, "/"+ownerObject) {
				if b, err := in.Backend.Get(ctx, i.Name); err == nil && isOwnerRecord(b) {
					inner = strings.TrimSuffix(i.Name, "/"+ownerObject)
					return errStop
				}
			}
			return nil
		})
		if err != nil && !errors.Is(err, errStop) {
			return warnings, fmt.Errorf("look for other instances under %s: %w", root, err)
		}
	} else {
		root = filepath.Clean(root)
		for dir := filepath.Dir(root); ; dir = filepath.Dir(dir) {
			if b, err := readSmall(os.DirFS(dir), ownerObject); err == nil && isOwnerRecord(b) {
				return nil, fmt.Errorf("%w: %s is inside %s, the storage root of another instance; give a folder outside it", ErrStorageTaken, root, dir)
			}
			if dir == filepath.Dir(dir) {
				break
			}
		}
		inner, warnings, err = findInnerOwner(ctx, os.DirFS(root))
		if err != nil {
			return warnings, fmt.Errorf("look for other instances under %s: %w", root, err)
		}
		for i, w := range warnings {
			warnings[i] = fmt.Sprintf("cannot check whether %s holds an instance: %s; make sure no instance's root lies inside this one", filepath.Join(root, filepath.FromSlash(w)), warnPermission)
		}
	}
	if inner != "" {
		kind, at := "prefix", strings.TrimSuffix(root, "/")+"/"+inner
		if !strings.HasPrefix(root, "s3://") {
			kind, at = "folder", filepath.Join(root, filepath.FromSlash(inner))
		}
		return warnings, fmt.Errorf("%w: %s holds %s, the storage root of another instance; give a %s that holds none", ErrStorageTaken, root, at, kind)
	}
	return warnings, nil
}

const warnPermission = "permission denied"

// isOwnerRecord reports whether b is an instance's instance.json (an Owner
// with an id and a name), not a file of the user's that has its name.
func isOwnerRecord(b []byte) bool {
	var o Owner
	return json.Unmarshal(b, &o) == nil && o.ID != "" && o.Name != ""
}

// readSmall reads name from fsys, up to 64 KiB (an owner record is tiny).
func readSmall(fsys fs.FS, name string) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, 64<<10))
}

// findInnerOwner walks a local root for an instance.json below its top and
// returns the folder holding the first one found (slash-separated), or "".
// Folders it may not read are skipped and returned as skipped: the user's
// own data may lie in the root next to the instance (a folder of another
// user's), and refusing the root for it helped no one.
func findInnerOwner(ctx context.Context, fsys fs.FS) (inner string, skipped []string, err error) {
	err = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) { // went meanwhile
				return nil
			}
			if errors.Is(err, fs.ErrPermission) && p != "." {
				skipped = append(skipped, p)
				if d != nil && d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !d.IsDir() && p != ownerObject && path.Base(p) == ownerObject {
			if b, err := readSmall(fsys, p); err == nil && isOwnerRecord(b) {
				inner = path.Dir(p)
				return fs.SkipAll
			}
		}
		return nil
	})
	return inner, skipped, err
}

// checkS3Parents refuses an S3 root whose bucket holds an instance.json at
// an enclosing prefix (s3://b/lab for s3://b/lab/sub, and s3://b). A prefix
// the credentials may not read (a policy limited to the root's prefix: AWS
// answers 403 to a HEAD there, for a missing key too) cannot be checked:
// it is a warning, not a refusal.
func (in *Instance) checkS3Parents(ctx context.Context) ([]string, error) {
	bucket, prefix, err := s3.ParseURL(in.Settings.Storage)
	if err != nil || prefix == "" {
		return nil, err
	}
	cfg := s3.Config{Bucket: bucket, NoBucketCheck: true}
	if in.Settings.S3 != nil {
		cfg.Endpoint, cfg.Region, cfg.PathStyle = in.Settings.S3.Endpoint, in.Settings.S3.Region, in.Settings.S3.PathStyle
	}
	top, err := s3.Open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	var warnings []string
	for p := path.Dir(prefix); ; p = path.Dir(p) {
		name, at := ownerObject, "s3://"+bucket
		if p != "." {
			name, at = p+"/"+ownerObject, at+"/"+p
		}
		b, err := top.Get(ctx, name)
		switch {
		case err == nil && !isOwnerRecord(b):
			// A file of that name that is not an instance's (user data).
		case err == nil:
			return warnings, fmt.Errorf("%w: %s is inside %s, the storage root of another instance; give a prefix outside it", ErrStorageTaken, in.Settings.Storage, at)
		case storage.IsNotFound(err):
		case s3.Denied(err):
			warnings = append(warnings, fmt.Sprintf("cannot check whether %s holds an instance: access denied; make sure no instance's root encloses this one", at))
		default:
			return warnings, fmt.Errorf("look for an instance at %s: %w", at, err)
		}
		if p == "." {
			return warnings, nil
		}
	}
}

func (in *Instance) writeOwner(ctx context.Context) error {
	host, _ := os.Hostname()
	b, _ := json.MarshalIndent(Owner{ID: in.Settings.ID, Name: in.Settings.Name, Catalog: in.catalogName(),
		Since: time.Now().UTC().Truncate(time.Second), Host: host}, "", "  ")
	// Never staged to upload later: the claim is what stops the instance
	// it takes over from writing and deleting (a gc there would delete
	// this one's packs).
	if err := storage.PutStored(ctx, in.Backend, ownerObject, append(b, '\n')); err != nil {
		return fmt.Errorf("claim the storage: %w", err)
	}
	return in.Backend.Sync(ctx)
}

func (in *Instance) catalogName() string {
	return postgres.Redact(in.Settings.Catalog) // a bbolt file's path, or a URL
}

// CheckStorage refuses storage another instance has taken over, and
// storage that is not there (CheckLost). A root that no instance claimed
// yet is claimed for this one when claim is set (gc: the instance about
// to delete from it).
func (in *Instance) CheckStorage(ctx context.Context, claim bool) error {
	if err := in.checkRoot(); err != nil {
		return err
	}
	o, found, err := in.StorageOwner(ctx)
	if err != nil {
		return err
	}
	if !found {
		if err := in.checkUnclaimed(ctx); err != nil {
			return err
		}
		if claim {
			return in.writeOwner(ctx)
		}
		return nil
	}
	if o.ID != in.Settings.ID {
		return fmt.Errorf("%w: instance %q (catalog %s) took %s over on %s; this instance (%q) may no longer use it (save, get, mount, gc; its catalog still reads): use %q (`lamina use %s`)",
			ErrStorageTaken, o.Name, o.Catalog, in.Settings.Storage, o.Since.Format(time.DateOnly), in.Settings.Name, o.Name, o.Name)
	}
	return nil
}

// CheckLost refuses storage that is not the instance's any more, which
// no write may go to: a local folder that is gone (its disk not mounted,
// the folder moved: storage.ErrRootGone), or a root with no owner record
// (instance.json) that holds none of the data of the versions the
// catalog has (an empty folder where that disk is mounted, a bucket
// emptied or another server's: ErrStorageLost). A root with no owner
// record and no versions in the catalog passes, as it did: an instance
// made before roots were claimed that saved nothing yet has just that,
// and none of its data can be elsewhere. Without a catalog (in.Catalog
// nil) only the folder is checked. CheckStorage checks this first.
func (in *Instance) CheckLost(ctx context.Context) error {
	if err := in.checkRoot(); err != nil {
		return err
	}
	_, found, err := in.StorageOwner(ctx)
	if err != nil || found {
		return err
	}
	return in.checkUnclaimed(ctx)
}

// checkRoot refuses a local storage folder that is missing or no folder.
func (in *Instance) checkRoot() error {
	if strings.HasPrefix(in.Settings.Storage, "s3://") {
		return nil
	}
	return storage.CheckRoot(in.Settings.Storage)
}

// checkUnclaimed is CheckLost for a root with no owner record.
func (in *Instance) checkUnclaimed(ctx context.Context) error {
	if in.Catalog == nil {
		return nil
	}
	n, err := in.Catalog.Counts(ctx)
	if err != nil {
		return err
	}
	versions := n.Versions + n.Trashed
	if versions == 0 {
		return nil
	}
	for _, prefix := range []string{"packs/", "records/"} {
		used := false
		err := in.Backend.List(ctx, prefix, func(storage.Info) error { used = true; return errStop })
		if err != nil && !errors.Is(err, errStop) {
			return fmt.Errorf("look for the data of instance %q in %s: %w", in.Settings.Name, in.Settings.Storage, err)
		}
		if used {
			return nil // a root made before claims
		}
	}
	what := fmt.Sprintf("%d versions", versions)
	if versions == 1 {
		what = "1 version"
	}
	what = fmt.Sprintf("holds no %s and none of the data of the %s in the catalog of instance %q", ownerObject, what, in.Settings.Name)
	if strings.HasPrefix(in.Settings.Storage, "s3://") {
		return fmt.Errorf("%w: %s %s: is it the bucket, prefix and endpoint the instance was made with? Nothing is written there while it holds none of the instance's data", ErrStorageLost, in.Settings.Storage, what)
	}
	return fmt.Errorf("%w: folder %s %s: is its disk mounted (an empty mount point looks like this), or was the folder moved? Nothing is written there while it holds none of the instance's data", ErrStorageLost, in.Settings.Storage, what)
}

// ErrStorageLost is returned for a storage root that does not hold the
// instance's data (CheckLost).
var ErrStorageLost = errors.New("the storage does not hold this instance's data")

// AddableAfterTakeOver reports whether the object name may still be
// uploaded to a storage root by the instance that lost it: a pack
// (packs/<id[:2]>/<id>) or an ontology source or index named by its
// digest, immutable and written once. Adding one changes nothing the new
// owner's catalog reads unless it names the object (a version imported
// from the old catalog, whose pack was still in the old machine's upload
// queue at the take-over); one no version uses is garbage the new owner's
// gc deletes after its grace. Records, marks, the ontology registry and
// the claim are the old catalog's writes: never after a take-over.
func AddableAfterTakeOver(name string) bool {
	if cache.IsPackName(name) {
		return true
	}
	rest, ok := strings.CutPrefix(name, ontologyPrefix)
	if !ok {
		return false
	}
	entity, file, ok := strings.Cut(rest, "/")
	if !ok || entity == "" || strings.Contains(file, "/") {
		return false
	}
	digest, ext, _ := strings.Cut(file, ".") // <digest>.src, <digest>.v<format>.idx
	index := strings.HasPrefix(ext, "v") && strings.HasSuffix(ext, ".idx")
	return (ext == "src" || index) && len(digest) == 64 && strings.Trim(digest, "0123456789abcdef") == ""
}

// OwnerWatch keeps a long-running writer (the mount daemon) from writing
// to storage another instance has taken over since it started: Check reads
// the owner object (one small read), Run checks every interval, and the
// backend Guard returns refuses Put and Delete once the storage is taken,
// checking first when the last check is older than the interval, and a Put
// after it landed (wrote: a read per write, shared by concurrent writes),
// so that no write that succeeds lands after a take-over.
//
// A write never waits long on a storage that does not answer: a check
// reads with a deadline of ownerCheckTimeout, runs by itself (writers do
// not queue behind a lock held across the read), counts as done when it
// fails (the next is at the next interval, by Run or a write), and after a
// check that got no answer a write does not wait for the next one at all.
// Such writes are queued locally anyway; a take-over is seen at the next
// check that answers (docs/design.md, "Take-over"). Safe for concurrent
// use.
type OwnerWatch struct {
	read    storage.Backend // where the owner object is read: not a cache
	id      string
	every   time.Duration
	onTaken func(Owner)

	// afterWrites: a Put waits for a check that began after it landed
	// (wrote). Set for storage a close writes to itself (a local folder,
	// where the read is a file read); not for S3, where a close only
	// stages its packs for the upload queue and a GET per close cost a
	// third of small-file creates (docs/write-bench.md).
	afterWrites bool

	mu       sync.Mutex
	running  chan struct{}          // closed when the check under way ends; nil when none
	began    int64                  // unix nanoseconds the check under way began
	err      error                  // what the last check that ended said
	checked  atomic.Int64           // unix nanoseconds of the last check begun
	answered atomic.Bool            // the last check that ended got an answer
	taken    atomic.Pointer[Owner]  // the first other owner a check found: the take-over that stopped this instance's writes
	owner    atomic.Pointer[Owner]  // the last other owner a check found: who owns the storage now
	ours     atomic.Int64           // unix nanoseconds the last check that still found this instance the owner began
	oursRaw  atomic.Pointer[[]byte] // the owner object's bytes when a check last found this instance in it
}

// ownerCheckTimeout bounds one read of the owner object: a small object,
// so a server that takes longer is as good as away for this purpose.
var ownerCheckTimeout = 3 * time.Second

// WatchOwner returns an OwnerWatch for the instance's storage; read is
// the backend to read the owner object from (an uncached one), onTaken is
// called once, when a check first finds another owner.
func (in *Instance) WatchOwner(read storage.Backend, every time.Duration, onTaken func(Owner)) *OwnerWatch {
	w := &OwnerWatch{read: read, id: in.Settings.ID, every: every, onTaken: onTaken}
	w.checked.Store(time.Now().UnixNano()) // the caller checked at the start (CheckStorage)
	w.ours.Store(w.checked.Load())
	w.answered.Store(true)
	return w
}

// Taken returns the instance that owns the storage now, if another took
// it over: after a second take-over (by a third instance, from the one
// that took it from this one) the second. Run goes on reading the owner
// after a take-over to follow it; a mount's status named the first
// owner, which may no longer use the storage either.
func (w *OwnerWatch) Taken() (Owner, bool) {
	if o := w.owner.Load(); o != nil {
		return *o, true
	}
	return Owner{}, false
}

// TakenFirst returns the instance whose take-over stopped this one's
// writes, the one onTaken was told of: its claim's Since is when what
// this instance commits no longer reached the owner's catalog.
func (w *OwnerWatch) TakenFirst() (Owner, bool) {
	if o := w.taken.Load(); o != nil {
		return *o, true
	}
	return Owner{}, false
}

// LastSeenOurs returns when the last check that still found this
// instance the owner began: a take-over seen later happened after it.
func (w *OwnerWatch) LastSeenOurs() time.Time { return time.Unix(0, w.ours.Load()) }

// Check reads the owner of the storage now (or waits for the check under
// way). It returns ErrStorageTaken once another instance owns it; a
// storage that does not answer is not taken (the error is returned).
func (w *OwnerWatch) Check(ctx context.Context) error {
	if o := w.owner.Load(); o != nil {
		return w.refusal(*o)
	}
	return w.check(ctx)
}

// check reads the owner of the storage now (or waits for the check under
// way), taken over or not.
func (w *OwnerWatch) check(ctx context.Context) error {
	done, _ := w.start()
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if o := w.owner.Load(); o != nil {
		return w.refusal(*o)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// start begins a check unless one is under way, and returns the channel
// closed when the check ends and when it began. The check has its own
// deadline, not the caller's context: a caller that gives up leaves it to
// finish for the next one.
func (w *OwnerWatch) start() (done <-chan struct{}, began int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.running != nil {
		return w.running, w.began
	}
	running := make(chan struct{})
	w.running, w.began = running, time.Now().UnixNano()
	w.checked.Store(w.began) // an attempt counts, answered or not
	began = w.began
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), ownerCheckTimeout)
		err := w.readOwner(ctx)
		cancel()
		if err == nil && w.answered.Load() {
			w.ours.Store(began)
		}
		w.mu.Lock()
		w.err, w.running = err, nil
		w.mu.Unlock()
		close(running)
	}()
	return running, began
}

// readOwner reads the owner object once.
func (w *OwnerWatch) readOwner(ctx context.Context) error {
	b, err := w.read.Get(ctx, ownerObject)
	if storage.IsNotFound(err) {
		w.answered.Store(true)
		return nil
	}
	if err != nil {
		w.answered.Store(false)
		return err
	}
	w.answered.Store(true)
	if raw := w.oursRaw.Load(); raw != nil && bytes.Equal(*raw, b) {
		// Unchanged since it named this instance: a local folder's close
		// reads it once per pack written, and the decode was half of that.
		return nil
	}
	var o Owner
	if err := json.Unmarshal(b, &o); err != nil || o.ID == "" {
		return fmt.Errorf("%s in the storage is damaged: %v", ownerObject, err)
	}
	if o.ID == w.id {
		w.oursRaw.Store(&b)
		return nil // (given back after a take-over, writes stay refused: the mount turned read-only)
	}
	w.owner.Store(&o)
	if w.taken.CompareAndSwap(nil, &o) && w.onTaken != nil {
		w.onTaken(o)
	}
	return w.refusal(o)
}

func (w *OwnerWatch) refusal(o Owner) error {
	return fmt.Errorf("%w: instance %q took it over on %s; this one may only read it", ErrStorageTaken, o.Name, o.Since.Format(time.DateOnly))
}

// Run checks every interval until ctx is done, after a take-over too:
// Taken follows the storage to a later owner.
func (w *OwnerWatch) Run(ctx context.Context) {
	t := time.NewTicker(w.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.check(ctx)
		}
	}
}

// MayWrite is mayWrite, for writers outside Guard (the upload queue's
// write-through puts): ErrStorageTaken once another instance owns the
// storage; nil otherwise, also when the owner cannot be read now.
func (w *OwnerWatch) MayWrite(ctx context.Context) error { return w.mayWrite(ctx) }

// mayWrite is the check before a write: free while the last check is
// fresh; when it is stale, a check begins, and the write waits for it
// (at most ownerCheckTimeout) only if the last one got an answer.
func (w *OwnerWatch) mayWrite(ctx context.Context) error {
	if o := w.owner.Load(); o != nil {
		return w.refusal(*o)
	}
	if time.Since(time.Unix(0, w.checked.Load())) < w.every {
		return nil
	}
	answered := w.answered.Load()
	done, _ := w.start()
	if !answered {
		return nil // away at the last check: the write is queued; the check goes on by itself
	}
	select {
	case <-done:
	case <-ctx.Done():
	}
	if o := w.owner.Load(); o != nil {
		return w.refusal(*o)
	}
	return nil // a storage that does not answer fails the write itself (or the queue retries it)
}

// wrote is the check after a write that adds data (a pack, a manifest):
// the write stands only if a check that began after it still found the
// storage this instance's. mayWrite alone left a window of up to the
// interval after a take-over in which a close committed versions whose
// packs the new owner's catalog never names, and its gc with a short
// grace deleted them (a new-user audit: "window write" returned 0, then
// gone). The catalog commits a version after its packs are written, so a
// close that returns 0 wrote its packs before the take-over, or its
// commit fails (the writer gets EIO; the mount turns read-only). One read
// per write, shared by the writes that end while it runs; after a check
// that got no answer a write does not wait (mayWrite: the window is then
// the outage, covered by gc's grace).
func (w *OwnerWatch) wrote(ctx context.Context) error {
	if !w.afterWrites {
		return nil
	}
	after := time.Now().UnixNano()
	for range 2 { // the check under way, if it began before the write, then one of our own
		if o := w.owner.Load(); o != nil {
			return w.refusal(*o)
		}
		if !w.answered.Load() {
			w.start()
			return nil
		}
		done, began := w.start()
		select {
		case <-done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if began >= after {
			break
		}
	}
	if o := w.owner.Load(); o != nil {
		return w.refusal(*o)
	}
	return nil
}

// CheckAfterWrites makes each Put through Guard wait for a check of the
// owner that began after it landed, so that no write that succeeds landed
// after a take-over (wrote). Use it where writes go to storage at once.
func (w *OwnerWatch) CheckAfterWrites() { w.afterWrites = true }

// Guard wraps b: its Put and Delete are refused once the storage is taken.
func (w *OwnerWatch) Guard(b storage.Backend) storage.Backend { return &guarded{Backend: b, w: w} }

type guarded struct {
	storage.Backend
	w *OwnerWatch
}

// Unwrap returns the backend g guards.
func (g *guarded) Unwrap() storage.Backend { return g.Backend }

// localBackend finds a local folder under decorators that Unwrap.
func localBackend(b storage.Backend) (*storage.Local, bool) {
	for {
		if l, ok := b.(*storage.Local); ok {
			return l, true
		}
		u, ok := b.(interface{ Unwrap() storage.Backend })
		if !ok {
			return nil, false
		}
		b = u.Unwrap()
	}
}

func (g *guarded) Put(ctx context.Context, name string, data []byte) error {
	if err := g.w.mayWrite(ctx); err != nil {
		return err
	}
	if err := g.Backend.Put(ctx, name, data); err != nil {
		return err
	}
	return g.w.wrote(ctx)
}

// PutStored writes through to the storage (storage.Storer), refused as
// Put is once the storage is taken.
func (g *guarded) PutStored(ctx context.Context, name string, data []byte) error {
	if err := g.w.mayWrite(ctx); err != nil {
		return err
	}
	if err := storage.PutStored(ctx, g.Backend, name, data); err != nil {
		return err
	}
	return g.w.wrote(ctx)
}

// GetStored reads the storage's copy, never a staged or cached one.
func (g *guarded) GetStored(ctx context.Context, name string) ([]byte, error) {
	return storage.GetStored(ctx, g.Backend, name)
}

// GetTag and PutIf pass a storage.Swapper under g through (the ontology
// registry), PutIf refused as Put is once the storage is taken.
func (g *guarded) GetTag(ctx context.Context, name string) ([]byte, string, error) {
	s, ok := storage.FindSwapper(g.Backend)
	if !ok {
		return nil, "", errors.ErrUnsupported
	}
	return s.GetTag(ctx, name)
}

func (g *guarded) PutIf(ctx context.Context, name string, data []byte, tag string) error {
	if err := g.w.mayWrite(ctx); err != nil {
		return err
	}
	s, ok := storage.FindSwapper(g.Backend)
	if !ok {
		return errors.ErrUnsupported
	}
	if err := s.PutIf(ctx, name, data, tag); err != nil {
		return err
	}
	return g.w.wrote(ctx)
}

func (g *guarded) Delete(ctx context.Context, name string) error {
	if err := g.w.mayWrite(ctx); err != nil {
		return err
	}
	return g.Backend.Delete(ctx, name)
}

// The cache's Store looks for optional methods on the backend it is given
// (cache/store.go: Invalidate, ReadRange, Warm, Settle; cache/disk.go and
// storage.GetRangeInto: GetRangeInto). The guard sits on top of the
// daemon's disk cache, so it passes each of them through: hidden, a chunk
// whose fetched bytes were damaged could not be dropped from the cache and
// stayed unreadable for good, and reads lost their copy-free path and
// read-ahead.

// Invalidate drops cached bytes, when the guarded backend caches.
func (g *guarded) Invalidate(name string, off, n int64) {
	if inv, ok := g.Backend.(interface{ Invalidate(string, int64, int64) }); ok {
		inv.Invalidate(name, off, n)
	}
}

// Warm asks a caching backend to fetch a range ahead of its reader.
func (g *guarded) Warm(name string, off, n int64) {
	if w, ok := g.Backend.(interface{ Warm(string, int64, int64) }); ok {
		w.Warm(name, off, n)
	}
}

// Settle waits for a caching backend to write what it fetched of a range.
func (g *guarded) Settle(ctx context.Context, name string, off, n int64) error {
	if st, ok := g.Backend.(interface {
		Settle(context.Context, string, int64, int64) error
	}); ok {
		return st.Settle(ctx, name, off, n)
	}
	return nil
}

// ReadRange reads the bytes at off into bufs, one after another.
func (g *guarded) ReadRange(ctx context.Context, name string, off int64, bufs ...[]byte) error {
	if rr, ok := g.Backend.(interface {
		ReadRange(context.Context, string, int64, ...[]byte) error
	}); ok {
		return rr.ReadRange(ctx, name, off, bufs...)
	}
	var n int64
	for _, b := range bufs {
		n += int64(len(b))
	}
	data, err := g.Backend.GetRange(ctx, name, off, n)
	if err != nil {
		return err
	}
	if int64(len(data)) != n {
		return fmt.Errorf("storage: read %s: %d bytes at %d, want %d", name, len(data), off, n)
	}
	for _, b := range bufs {
		data = data[copy(b, data):]
	}
	return nil
}

// GetRangeInto reads len(buf) bytes at off into buf.
func (g *guarded) GetRangeInto(ctx context.Context, name string, off int64, buf []byte) error {
	return storage.GetRangeInto(ctx, g.Backend, name, off, buf)
}
