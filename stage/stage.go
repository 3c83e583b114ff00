package stage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/dataset"
	"github.com/lamina-bio/lamina/instance"
	"github.com/lamina-bio/lamina/ref"
	"golang.org/x/sys/unix"
)

// Catalog is what the write side asks of the catalog.
type Catalog interface {
	ByKey(ctx context.Context, key string, n int) (catalog.Version, error)
	Versions(ctx context.Context, key string, trash bool) ([]catalog.Version, error)
	Save(ctx context.Context, vs []catalog.NewVersion) ([]catalog.Saved, error)
	Trash(ctx context.Context, key string) (catalog.TrashEntry, error)
	RestoreTrashedWith(ctx context.Context, uid string) (catalog.TrashEntry, error)
	PurgeTrashed(ctx context.Context, key, kind string) ([]catalog.Version, error)
	catalog.Writer
}

// lazyCatalog is a catalog that may commit a version after Save returned
// (catalog.Lazy; *catalog.Bolt when the daemon holds it).
type lazyCatalog interface {
	Flush(ctx context.Context) error                   // commit lazy saves; report lost ones
	LazyCommitted(ctx context.Context) (uint64, error) // the last LazySeq committed
}

// failingCatalog tells, without trying the commit, whether lazy changes
// wait for a catalog commit that fails (*catalog.Bolt).
type failingCatalog interface {
	CommitFailing() (n int, since time.Time, err error)
}

// Content is what the write side asks of the content store; *cache.Store
// provides it.
type Content interface {
	NewWriter() *cache.Writer
	NewWriterNoDedup() *cache.Writer // Recover, after content was lost
	LoadManifest(ctx context.Context, r cache.Ref) (*cache.Manifest, error)
	Open(f cache.File) *cache.Reader
	Sync(ctx context.Context) error // what Writer.CommitNoSync left to the page cache
}

// Tombstones keeps, durably, what the Stage is about to delete for good
// until storage records it (*instance.Tombstones).
type Tombstones interface {
	// Prepare records vs before their purge; no purge follows an error.
	Prepare(vs []catalog.Version) (id string, err error)
	// Done says the purge is over: purged is what it deleted (none if it
	// failed).
	Done(id string, purged []catalog.Version)
}

// Options configure a Stage.
type Options struct {
	Dir     string       // the staging folder (in the instance's data dir)
	User    string       // created_by of new versions
	Logger  *slog.Logger // nil discards
	Changed func(keys []string)
	// Tombstones, if set, records the versions the Stage deletes for good
	// (a temporary file renamed onto a key) so that storage learns of
	// them (instance.Tombstones).
	Tombstones Tombstones
	// SyncEvery > 0 defers making commits durable: a close commits
	// (CommitNoSync, then the catalog) and returns, and the storage is synced
	// at most this long later, at fsync, and at Stage.Sync (unmount). Until
	// then the staged bytes of committed files stay in Dir (journal ".done")
	// so that Recover can redo what a crash of the machine lost. 0 syncs at
	// every commit.
	SyncEvery time.Duration
	// StreamAfter is the size past which a File written sequentially from
	// empty is stored while it is written (stream.go); 0 means
	// DefaultStreamAfter, < 0 never.
	StreamAfter int64
	// RetryFailed is the first wait before a close whose commit failed is
	// committed again (retry.go); 0 means DefaultRetryFailed, < 0 leaves
	// it to the next Recover.
	RetryFailed time.Duration
	// MoveAwayWindow is how long after an unlink (or MoveAway) of a key
	// its next commit brings back what that unlink put in the trash; 0
	// means MoveAwayWindow (tests shorten it).
	MoveAwayWindow time.Duration
	// HoleCheck is how often, while Files hold lazy copies, the Stage
	// looks whether gc marked the data below their holes (lazycopy.go:
	// watchHoles); 0 means DefaultHoleCheck.
	HoleCheck time.Duration
}

// Stage stages and commits writes. It is safe for concurrent use.
type Stage struct {
	cat     Catalog
	content Content
	opts    Options
	log     *slog.Logger

	jlog *journalLog // the staged files' states (journal.go)

	mu    sync.Mutex // guards open, fresh, movedAway, unlinked and the key and deleted fields of Files
	open  map[string][]*File
	fresh map[string]freshKey // keys whose artifact this Stage created (temporary names, often)
	// movedAway holds when a key was renamed to a scratch name (MoveAway):
	// an editor's backup; or when a key with a scratch-like name was
	// unlinked (KeepName): the name stays the catalog's.
	movedAway   map[string]keptName
	movedPruned time.Time // when movedAway and unlinked were last rid of their old names
	// unlinked holds when a key was unlinked (or moved away) and when the
	// catalog trashed its versions then: its next commit within the
	// window brings those back first (restoreUnlinked).
	unlinked map[string]unlinkedKey
	// windowGen counts changes of movedAway and unlinked; windowSaved is
	// the count the window file holds (window.go; guarded by syncing).
	windowGen, windowSaved uint64

	streamed, reused atomic.Int64 // commits stored while written, or through a voided stream's session
	kept             atomic.Int64 // chunks commits took from the content a File was edited over
	lazyCopies       atomic.Int64 // copies of a version's last chunk only (lazycopy.go)
	failed           atomic.Int64 // files whose commit at their last close failed: staged for Recover

	syncing  sync.Mutex    // one Sync at a time; taken before smu
	smu      sync.Mutex    // guards unsynced and timer; never held with mu or File.mu
	unsynced []failedClose // released Files whose commits await Sync
	timer    *time.Timer

	spareMu sync.Mutex
	spares  []string        // emptied staging files kept for reuse (spare.go)
	shared  map[string]bool // ids of adopted files, which other descriptors may still read (Adopt): never spares

	shareMu sync.Mutex // OpenShared: join or start, one at a time

	keys keyLocks // orders the saves of a key (keylock.go)

	marksMu sync.Mutex
	marks   map[ref.Digest]cache.HashMark // digest states at last chunks (lazycopy.go)

	holesMu      sync.Mutex // guards the two below; never held while taking mu or File.mu
	holesWatched bool       // a watchHoles loop runs
	holesGen     uint64     // holes recorded (watchHoles)

	reproduced atomic.Pointer[func(run string, v catalog.Version)]    // OnReproduced
	runWithin  atomic.Pointer[func(run, unlinker string) bool]        // OnRunWithin
	committed  atomic.Pointer[func(v catalog.Version)]                // OnCommitted
	movedBack  atomic.Pointer[func(key, backup string, versions int)] // OnMovedBack

	rmu          sync.Mutex // guards the fields below (retry.go); never held with mu or File.mu
	failedCloses []failedClose
	retryTimer   *time.Timer
	retryWait    time.Duration
	retryBegan   time.Time // when RetryFailed last took the list
	retryStopped bool
	retriedAt    map[string]time.Time  // uid of a version a retry made → when its File was closed
	retried      func(keys []string)   // OnRetried
	failedFiles  map[string]StagedFile // staged id → the failed closes (FailedFiles)
	inRetry      []failedClose         // the failed closes RetryFailed took
	cancelled    map[string]bool       // ids of those whose key was unlinked since (dropFailedOf)
	retrying     sync.Mutex            // held by RetryFailed
}

// New returns a Stage keeping its files in o.Dir.
func New(cat Catalog, content Content, o Options) (*Stage, error) {
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("stage: %w", err)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Stage{cat: cat, content: content, opts: o, log: o.Logger, jlog: newJournalLog(o.Dir),
		open: map[string][]*File{}, fresh: map[string]freshKey{}, movedAway: map[string]keptName{},
		unlinked: map[string]unlinkedKey{}}
	s.loadWindow()
	return s, nil
}

// StreamStats count commits stored while the File was written, and
// commits through a voided stream's session (stream.go).
func (s *Stage) StreamStats() (streamed, reused int64) { return s.streamed.Load(), s.reused.Load() }

// KeptChunks counts the chunks commits of Files edited in place took as
// they were from the version they were edited over (cache.PutFileOver).
func (s *Stage) KeptChunks() int64 { return s.kept.Load() }

// FailedCommits counts the files whose commit at their last close failed
// (the catalog was away, say) and that are not committed yet: their bytes
// stay staged, RetryFailed tries again, and the next mount's Recover
// commits what is left.
func (s *Stage) FailedCommits() int64 { return s.failed.Load() }

// Dir is the staging folder.
func (s *Stage) Dir() string { return s.opts.Dir }

func (s *Stage) changed(keys ...string) {
	if s.opts.Changed != nil && len(keys) > 0 {
		s.opts.Changed(keys)
	}
}

// journal is a record of the journal (journal.go): the state of the staged
// file ID. The journal files of the layout before (one per staged file,
// named ID.STATE) hold the same without ID and State.
type journal struct {
	ID    string `json:"id,omitempty"`
	State string `json:"state,omitempty"`
	Key   string `json:"key"`
	Mode  uint32 `json:"mode"`
	// Manifest is the content a ".done" journal's commit points at.
	Manifest string `json:"manifest,omitempty"`
	// LazySeq is the commit's catalog.Saved.LazySeq: a catalog whose
	// LazyCommitted is lower lost the version, and Recover redoes it.
	LazySeq uint64 `json:"lazy_seq,omitempty"`
	// Base is the version of the key the staged bytes build on (an open
	// record: the version opened, followed or last committed; 0 if none,
	// or a journal of before), for what Recover says of them.
	Base int `json:"base,omitempty"`
	// Stem is the stem the File drew for its key's first version (a new
	// key): a redo after a stop that lost the lazy commit gives the
	// version the uid readers saw (catalog.NewVersion.Stem). "" in a
	// journal of before, and for a File opened on an existing version.
	Stem string `json:"stem,omitempty"`
	// Failed marks a closed record whose commit failed (at close, a retry,
	// Recover): a closed record without it may be a commit in flight or
	// landed when its daemon stopped, or one of a journal of before.
	Failed bool `json:"failed,omitempty"`
	// CopiedFrom > 0: the staged file holds its bytes from there on only
	// (a lazy copy, lazycopy.go); those before are the ones of the file
	// of manifest Head, which Recover fills in first.
	CopiedFrom int64  `json:"copied_from,omitempty"`
	Head       string `json:"head,omitempty"`

	pos int // Recover: the record's line in the journal (-1: a journal file)
}

// File is one writable open of a key. Its methods are safe for concurrent
// use.
type File struct {
	s    *Stage
	id   string
	data *os.File

	// guarded by Stage.mu
	key     string
	deleted bool
	started time.Time // when start made it

	mu        sync.Mutex // guards the fields below
	base      *catalog.Version
	copied    bool // data holds the content (base copied, or truncated)
	rewritten bool // emptied since base was set (O_TRUNC, truncate to 0): its bytes do not build on base
	size      int64
	mtime     time.Time
	mode      uint32
	dirty     bool   // bytes changed since the last commit
	wrote     bool   // bytes written since the last commit (not only truncated)
	touched   bool   // mtime set since the last commit
	isNew     bool   // the key had no live version at open
	stem      string // drawn at open of a new key: its first version's (journal.Stem)
	committed bool
	closed    bool // journal says closed
	released  bool
	flushed   bool          // closed (FLUSH) at least once
	run       string        // lineage run credited with commits (run.go)
	emptied   uint64        // truncations to zero (run.go: Emptied)
	moved     uint64        // moves onto a newer version (share.go: follow, yieldTo; run.go: Moved)
	seq       bool          // every write since the File was empty was at its end
	lazySeq   uint64        // the last commit's catalog.Saved.LazySeq
	changes   uint64        // commits and attribute updates (Changes)
	commits   uint64        // commits of its bytes (Commits)
	mapped    bool          // bytes came back from a shared mapping since the last commit (WroteMapped)
	lastSaved bool          // the last change was a commit, of base
	stream    *stream       // its bytes being stored as they come (stream.go)
	reuse     *cache.Writer // a voided stream's session, for the commit
	// over is stored content whose bytes the staging file holds before
	// offset same (the base copied, or the last commit): the commit keeps
	// its chunks up to there and stores only the rest (cache.PutFileOver).
	// A write or truncate lowers same; nil when nothing is known.
	over *cache.File
	same int64
	mark cache.HashMark // over's digest state part way (ensureCopy), if any
	// copiedFrom > 0: data holds the File's bytes from there on only; those
	// before are head's, the manifest headRef's file (lazycopy.go).
	copiedFrom int64
	head       *cache.File
	headRef    string
	// holeLeft: the journal still names a hole the staging file no longer
	// has (dropHole could not write the record); written again before
	// the next change lands (copyFor).
	holeLeft bool
	// broken is the error of a write that failed (a full disk, say): the
	// bytes from brokenAt on are not what the writer meant, so the File
	// commits nothing until a truncate cuts them off (see WriteAt).
	broken   error
	brokenAt int64
	handles  int  // writable opens sharing the File (Join); Release of the last one releases it
	joined   bool // a writer joined it (Join): done with only once every handle closed
	unclosed int  // handles not closed yet (HandleClosed)
	// external: writers write data through descriptors of their own
	// (Adopt); observe reads what they changed, by the data's mtime and
	// mode last seen.
	external  bool
	seenMtime time.Time
	seenMode  uint32
	appender  *os.File                        // O_APPEND descriptor of data for appends through the mount (appendExternal)
	newer     atomic.Pointer[catalog.Version] // the latest version of its key this Stage committed (share.go)
	// emptyKey and emptyOver: the key the File was created or truncated
	// to empty on, and the version of it that emptying went over (0: none,
	// a new key). A close with nothing written since yields to a newer
	// version of that key (share.go: superseded).
	emptyKey  string
	emptyOver int
}

func newID() string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Create starts a File on key with no content: a new key, or an existing
// one truncated (O_TRUNC), with the permission bits mode (0 is none: a
// placeholder tar makes, say). The File is not committed until it is
// flushed or released.
func (s *Stage) Create(ctx context.Context, key string, mode uint32) (*File, error) {
	return s.start(ctx, key, nil, mode, true)
}

// Open starts a File on key copying base (the latest version) on write;
// trunc empties it at once. A handle opened with O_APPEND writes through
// Append.
func (s *Stage) Open(ctx context.Context, key string, base catalog.Version, trunc bool) (*File, error) {
	return s.start(ctx, key, &base, catalog.Perm(base.Mode), trunc)
}

func (s *Stage) start(ctx context.Context, key string, base *catalog.Version, mode uint32, trunc bool) (*File, error) {
	if err := ref.CheckKey(key); err != nil {
		return nil, err
	}
	id := newID()
	p := filepath.Join(s.opts.Dir, id)
	data, err := s.newStaging(p)
	if err != nil {
		return nil, fmt.Errorf("stage: %w", err)
	}
	now := time.Now()
	f := &File{s: s, id: id, data: data, key: key, mode: mode & 0o7777, mtime: now, started: now, handles: 1, unclosed: 1}
	if base != nil && base.UID != "" {
		f.base = base
		f.size = base.Size
		f.mtime = base.Mtime
	} else {
		f.isNew = true
		f.stem = ref.NewStem()
		f.copied = true
		f.dirty = true // a new key is content: committed at flush or release
	}
	if trunc && f.base != nil {
		f.copied, f.size, f.dirty, f.mtime = true, 0, true, time.Now()
		f.rewritten = true
	}
	if f.isNew || trunc {
		f.emptyKey = key
		if f.base != nil {
			f.emptyOver = f.base.Version
		}
	}
	f.seq = f.copied && f.size == 0
	if err := f.writeJournal(stateOpen); err != nil {
		data.Close()
		s.retire(p)
		return nil, err
	}
	s.mu.Lock()
	s.open[key] = append(s.open[key], f)
	s.claimUnlinkedLocked(key)
	s.mu.Unlock()
	return f, nil
}

// Join returns the File a writer of key holds open, with one more handle
// on it, for an open for writing without O_TRUNC (O_APPEND, O_RDWR,
// O_WRONLY); nil if there is none. Such writers then share the bytes, as
// they would share one inode: a log that a shell and its children append
// to keeps every line, and two processes writing pages of one SQLite
// database, or rows of one memory-mapped array, keep each other's (each
// with a File of its own, the last close's version held only that
// writer's bytes, and the kernel's one page cache per inode went back
// into several copies). An appender writes through Append, at the end.
func (s *Stage) Join(key string) *File {
	s.mu.Lock()
	open := slices.Clone(s.open[key])
	s.mu.Unlock()
	for _, f := range slices.Backward(open) {
		f.mu.Lock()
		f.s.mu.Lock()
		ok := !f.released && !f.deleted && f.broken == nil && f.key == key
		f.s.mu.Unlock()
		if ok {
			f.follow()
			f.handles++
			f.unclosed++
			f.joined = true
		}
		f.mu.Unlock()
		if ok {
			return f
		}
	}
	return nil
}

// Newest returns the newest open File of f's key, the one a writer without
// O_TRUNC would join (Join): f itself unless an O_TRUNC open came after.
// The kernel keeps one page cache per inode, which after an O_TRUNC open
// holds that File's bytes: a page a shared mapping writes back
// (WriteMapped) belongs there, not in the older File of the handle the
// kernel sent it through (a version mixed of both, and the write missing
// from the O_TRUNC writer's). A File unlinked is another inode's than
// the key's Files now: f.
func (f *File) Newest() *File {
	s := f.s
	s.mu.Lock()
	key := f.key
	open := slices.Clone(s.open[key])
	gone := f.deleted
	s.mu.Unlock()
	if gone {
		return f
	}
	for _, o := range slices.Backward(open) {
		if o == f {
			return f
		}
		o.mu.Lock()
		s.mu.Lock()
		ok := !o.released && !o.deleted && o.broken == nil && o.key == key
		s.mu.Unlock()
		o.mu.Unlock()
		if ok {
			return o
		}
	}
	return f
}

// Writing reports whether a writer may still change key's bytes: an open
// File of it that holds bytes not committed, or that was not closed yet
// (a log written and fsynced, never closed). A reader must then read past
// the pages the kernel keeps for key's path, which hold the writer's. A
// File closed with everything committed (close(2) returned, its RELEASE
// not come yet: a program mapping what it just wrote) is done with, as
// truncateOpen decides too. It waits for a commit in flight.
func (s *Stage) Writing(key string) bool {
	s.mu.Lock()
	open := slices.Clone(s.open[key])
	s.mu.Unlock()
	for _, f := range open {
		f.mu.Lock()
		f.s.mu.Lock()
		deleted := f.deleted
		f.s.mu.Unlock()
		done := deleted || f.doneWith()
		f.mu.Unlock()
		if !done {
			return true
		}
	}
	return false
}

// OpenKeys returns the keys open for writing (sorted): Files not
// released whose key was not unlinked or renamed over. Stopping the mount
// now would cut their writers off.
func (s *Stage) OpenKeys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var keys []string
	for k, l := range s.open {
		if slices.ContainsFunc(l, func(f *File) bool { return !f.deleted }) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

// OpenShared opens key for writing without O_TRUNC as one step: it joins
// the File another writer holds (Join), or else starts one on the latest
// version, read only after any close of key in flight has committed. Two
// writers opening at once then share a File, and one opening as another
// closes adds to what that one committed; looked up apart, each would copy
// the same version and the last close would drop the other's bytes. mode
// is a new key's.
func (s *Stage) OpenShared(ctx context.Context, key string, mode uint32) (*File, error) {
	s.shareMu.Lock()
	defer s.shareMu.Unlock()
	// Join waits for each of key's Files it finds releasing (it takes
	// their locks): their commits are in the catalog after it.
	if f := s.Join(key); f != nil {
		return f, nil
	}
	v, err := s.cat.ByKey(catalog.Fresh(ctx), key, 0) // never a cached answer
	switch {
	case err == nil && v.Kind != cache.KindFile:
		return nil, fmt.Errorf("stage: %s: %w", key, syscall.EISDIR)
	case err == nil:
		return s.start(ctx, key, &v, catalog.Perm(v.Mode), false)
	case errors.Is(err, catalog.ErrNotFound):
		return s.start(ctx, key, nil, mode, false)
	}
	return nil, err
}

// writeJournal records the File's state with its key, mode and base, and
// the hole of a lazy copy.
func (f *File) writeJournal(state string) error {
	j := f.record(state, f.base)
	f.lazyFields(&j)
	if err := f.s.jlog.put(j); err != nil {
		return err
	}
	f.holeLeft = false
	return nil
}

// journalOver records the File's state with base as the version its
// bytes build on, for a staging file emptied or new (no lazy copy).
func (f *File) journalOver(state string, base *catalog.Version) error {
	if err := f.s.jlog.put(f.record(state, base)); err != nil {
		return err
	}
	f.holeLeft = false
	return nil
}

func (f *File) record(state string, base *catalog.Version) journal {
	f.s.mu.Lock()
	j := journal{ID: f.id, State: state, Key: f.key, Mode: f.mode, Stem: f.stem}
	f.s.mu.Unlock()
	if base != nil {
		j.Base = base.Version
	}
	return j
}

// lazyFields puts the hole of a lazy copy in j, a record of the File's
// current staging file. Called with f.mu held.
func (f *File) lazyFields(j *journal) {
	if f.copiedFrom > 0 {
		j.CopiedFrom, j.Head = f.copiedFrom, f.headRef
	}
}

// reopen records the File open again before a change lands in its
// staging file while its journal says closed: after a commit (a sharer's
// close, an fsync) or a close whose commit failed. Recover commits a
// closed file whole, so bytes written after the last commit, never
// closed nor fsynced, became the key's next version after a kill, "its
// writer had closed it"; open, they go under lost+found/. One journal
// write per commit, not per write: the changes after find it open.
//
// A lazy commit (SyncEvery: the version may still wait in the catalog's
// open transaction) is made durable first, as any catalog call would:
// the closed record is what redoes it after a kill. If that transaction
// was lost, the File's bytes are not committed: its next close commits
// them again with what follows. Called with f.mu held.
func (f *File) reopen(ctx context.Context) error {
	if !f.closed {
		return nil
	}
	if lc, ok := f.s.cat.(lazyCatalog); ok && f.lazySeq != 0 && !f.dirty {
		// While the catalog's commit fails (a full data folder) the
		// version waits there, retried: neither lost nor durable. The
		// record stays closed, to redo it after a stop, and the File is
		// asked again at its next write. Asked first without a try: one
		// tries the commit, and makes its changes again (1,000 of them:
		// 83 ms), at every write.
		if fc, ok := f.s.cat.(failingCatalog); ok {
			if n, _, _ := fc.CommitFailing(); n > 0 {
				return nil
			}
		}
		n, err := lc.LazyCommitted(ctx)
		if errors.Is(err, catalog.ErrCommitFailing) {
			return nil
		}
		if err != nil {
			return err
		}
		if n < f.lazySeq {
			// Its transaction was given up (a fault in the catalog file,
			// a failing commit whose changes could not be made again).
			f.s.log.Warn("lamina mount: the catalog gave up the transaction holding a commit of a file still open (its log says why); its next close commits the file again", "key", f.Key())
			f.dirty = true
		}
	}
	if err := f.writeJournal(stateOpen); err != nil {
		return err
	}
	f.closed = false
	return nil
}

// Key is the key the File commits to (a rename while open changes it).
func (f *File) Key() string {
	f.s.mu.Lock()
	defer f.s.mu.Unlock()
	return f.key
}

// Attr is what a stat through the File shows.
func (f *File) Attr() (size int64, mtime time.Time, mode uint32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.observe()
	f.follow()
	return f.size, f.mtime, f.mode
}

// Unsaved is what a stat through the File shows (Attr), if it holds
// changes not committed yet; ok is false when it holds none (its bytes are
// its base version's, or a commit's).
func (f *File) Unsaved() (size int64, mtime time.Time, mode uint32, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.observe()
	return f.size, f.mtime, f.mode, f.dirty
}

// ensureCopyAt copies the base version into the staging file before a
// change at off: from its last chunk's start on only if off is there or
// after (lazycopy.go). Called with f.mu held.
func (f *File) ensureCopyAt(ctx context.Context, off int64) error {
	if f.copied {
		return nil
	}
	m, err := f.s.content.LoadManifest(ctx, cache.Ref(f.base.Manifest))
	if err != nil {
		return err
	}
	if len(m.Files) != 1 {
		return fmt.Errorf("stage: %s is a folder artifact: %w", f.base.Key, errIsFolder)
	}
	last := cache.LastChunkStart(m.Files[0])
	from := int64(0)
	mark, known := f.s.markOf(m.Files[0].Digest, last)
	if f.lazyOK(last, off) {
		from = last
		// Recorded before the hole is made: a staging file with one is
		// never taken for all of the File's bytes.
		if err := f.recordHole(from, &m.Files[0], f.base.Manifest); err != nil {
			return err
		}
		f.s.lazyCopies.Add(1)
	}
	if mark, err = f.copyBase(ctx, m.Files[0], from, last, mark, known); err != nil {
		f.copyFailed()
		return err
	}
	if from == 0 && f.copiedFrom > 0 {
		// A lazy copy that failed left its hole recorded (copyFailed
		// could not clear it): the staging file is whole now, and a
		// change below the hole must not be read from head.
		if err := f.clearHole(); err != nil {
			return err
		}
	}
	f.copied = true
	f.over, f.same, f.mark = &m.Files[0], m.Files[0].Size, mark
	return nil
}

// copyBase writes the bytes of the base's content file from from on into
// the staging file, and returns the digest state at last. Called with
// f.mu held.
func (f *File) copyBase(ctx context.Context, file cache.File, from, last int64, mark cache.HashMark, known bool) (cache.HashMark, error) {
	r := f.s.content.Open(file)
	if from > 0 && known {
		// A commit here or a copy before left the digest's state where
		// the last chunk starts: only that chunk is read.
		buf := make([]byte, file.Size-from)
		if n, err := r.ReadAtContext(ctx, buf, from); n < len(buf) {
			return mark, fmt.Errorf("stage: copy %s: %w", f.base.Key, err)
		}
		if _, err := f.data.WriteAt(buf, from); err != nil {
			return mark, err
		}
		return mark, nil
	}
	// The digest's state where the last chunk starts: an append's
	// commit goes on from there. The version is read whole (and
	// checked) for it; only the bytes from from on are written.
	w := &rangeWriter{f: f.data, from: from, to: file.Size}
	_, mark, err := r.WriteToMarked(ctx, w, nil, last)
	if err != nil {
		return mark, fmt.Errorf("stage: copy %s: %w", f.base.Key, err)
	}
	f.s.noteMark(file.Digest, mark)
	return mark, nil
}

var errIsFolder = errors.New("is a folder")

// reader reads the File's bytes: the staging file's, and below a lazy
// copy's hole its head's. Called with f.mu held.
func (f *File) reader(ctx context.Context) io.ReaderAt {
	if f.copiedFrom > 0 {
		return &lazyReader{ctx: ctx, head: f.s.content.Open(*f.head), from: f.copiedFrom, tail: f.data}
	}
	return f.data
}

// WriteAt writes p at off.
func (f *File) WriteAt(ctx context.Context, p []byte, off int64) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.writeLocked(ctx, p, off, false)
}

// Append writes p at the end, whatever offset the kernel named: a handle
// opened with O_APPEND. The kernel takes an append's offset from the size
// it caches for the inode, which a reader's stat of the committed version
// may have lowered meanwhile.
func (f *File) Append(ctx context.Context, p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.writeLocked(ctx, p, 0, true)
}

func (f *File) writeLocked(ctx context.Context, p []byte, off int64, atEnd bool) (int, error) {
	f.follow()
	if err := f.reopen(ctx); err != nil {
		return 0, err
	}
	if atEnd && !f.external {
		off = f.size
	}
	if err := f.copyFor(ctx, off); err != nil {
		return 0, err
	}
	if atEnd && f.external {
		return f.appendExternal(p)
	}
	f.same = min(f.same, off)
	if off != f.size && f.seq {
		f.seq = false
		if f.stream != nil {
			f.reuse, f.stream = f.stream.cancel(), nil
		}
	}
	n, err := f.data.WriteAt(p, off)
	if err != nil && (f.broken == nil || off+int64(n) < f.brokenAt) {
		f.broken, f.brokenAt = err, off+int64(n)
	}
	if end := off + int64(n); end > f.size {
		f.size = end
	}
	if n > 0 {
		f.dirty, f.wrote = true, true
		f.mtime = time.Now()
		f.feedStream()
	}
	return n, err
}

// feedStream tells the stream that the File grew, or starts one once a
// sequential File is large enough. Called with f.mu held.
func (f *File) feedStream() {
	after := f.s.opts.StreamAfter
	if after == 0 {
		after = DefaultStreamAfter
	}
	if f.stream != nil {
		f.stream.grow(f.size)
	} else if f.seq && after > 0 && f.size >= after {
		f.stream = startStream(f.s.content, f.data, f.size)
	}
}

// dropStream ends the File's stream and drops what it stored (left for gc):
// the bytes are replaced or not wanted. Called with f.mu held.
func (f *File) dropStream() {
	if f.stream != nil {
		f.reuse, f.stream = f.stream.cancel(), nil
	}
	if f.reuse != nil {
		f.reuse.Abort()
		f.reuse = nil
	}
}

// ReadAt reads what the File holds now.
func (f *File) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.observe()
	f.follow()
	if off >= f.size {
		return 0, io.EOF
	}
	if len(p) > int(f.size-off) {
		p = p[:f.size-off]
	}
	if f.released && (f.base == nil || f.dirty) {
		return 0, fmt.Errorf("stage: %s: %w", f.key, os.ErrClosed) // deleted, or its commit failed
	}
	// A reader that opened the File before its release reads its commit.
	if !f.copied || f.released {
		m, err := f.s.content.LoadManifest(ctx, cache.Ref(f.base.Manifest))
		if err != nil {
			return 0, err
		}
		return f.s.content.Open(m.Files[0]).ReadAtContext(ctx, p, off)
	}
	return f.reader(ctx).ReadAt(p, off)
}

// Truncate sets the File's size.
func (f *File) Truncate(ctx context.Context, size int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.truncateLocked(ctx, size)
}

func (f *File) truncateLocked(ctx context.Context, size int64) error {
	f.observe()
	f.follow()
	if size == f.size && f.copied {
		return nil
	}
	if err := f.reopen(ctx); err != nil {
		return err
	}
	if size == 0 {
		if err := f.dropHole(); err != nil {
			return err
		}
		f.copied = true
		f.emptied++
		f.rewritten = true
		// Over the newest version it knows of: one published since (a
		// dirty File does not follow) came before this truncation.
		f.emptyKey, f.emptyOver = f.Key(), 0
		if f.base != nil && f.base.Key == f.emptyKey {
			f.emptyOver = f.base.Version
		}
		if v := f.newer.Load(); v != nil && v.Key == f.emptyKey {
			f.emptyOver = max(f.emptyOver, v.Version)
		}
		f.over = nil
	} else if err := f.copyFor(ctx, size); err != nil {
		return err
	}
	f.same = min(f.same, size)
	f.dropStream()
	if err := f.data.Truncate(size); err != nil {
		return err
	}
	f.size, f.dirty, f.mtime = size, true, time.Now()
	f.seq = size == 0
	if f.broken != nil && size <= f.brokenAt {
		f.broken = nil // what the failed write left out is cut off
	}
	return nil
}

// Allocate is fallocate(2) of mode 0 (keepSize false) or
// FALLOC_FL_KEEP_SIZE: the staging file reserves the space, so a full disk
// answers now rather than at a later write, and without keepSize a range
// past the end extends the File with zeros, as ftruncate would.
func (f *File) Allocate(ctx context.Context, off, n int64, keepSize bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.follow()
	if err := f.copyFor(ctx, off); err != nil {
		return err
	}
	mode := uint32(0)
	if keepSize {
		mode = unix.FALLOC_FL_KEEP_SIZE
	}
	// The staging folder's file system may not support it: reserving is
	// then left to the writes.
	if err := unix.Fallocate(int(f.data.Fd()), mode, off, n); err != nil && !errors.Is(err, unix.EOPNOTSUPP) {
		return err
	}
	if end := off + n; !keepSize && end > f.size {
		return f.truncateLocked(ctx, end)
	}
	return nil
}

// truncateOpen truncates f unless its writer seems done with it (taken is
// false): released, or closed with everything committed — then only its
// RELEASE, which the kernel sends asynchronously, is still to come, and the
// truncate is another process's change, a version of its own credited to
// that process's run. A File opened and not yet closed takes it: the
// kernel sends open(O_TRUNC) as OPEN then a SETATTR without the handle.
func (f *File) truncateOpen(ctx context.Context, size int64) (taken bool, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.doneWith() {
		return false, nil
	}
	return true, f.truncateLocked(ctx, size)
}

// doneWith reports whether the File's writer seems done with it: released,
// or closed with everything committed (only its RELEASE, which the kernel
// sends after close(2) returned, is still to come). A File writers share
// (Join) is closed once each of their handles is (HandleClosed): one
// appender's close left the others' File to a truncate(2) by path, which
// then made a version of its own that their next commit undid. Called with
// f.mu.
func (f *File) doneWith() bool {
	f.observe()
	return f.released || (f.flushed && !f.dirty && (!f.joined || f.unclosed <= 0))
}

// Done reports whether the File's writer is done with it (doneWith) and
// it holds no times or mode to commit: what it shows is a commit's, which
// a later commit of its key may have replaced.
func (f *File) Done() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.doneWith() && !f.touched
}

// HandleClosed counts a writable handle of the File closed by its writer:
// a FLUSH, or its RELEASE if it had none. Once each handle sharing it
// (Join) is, its writers are done with it (doneWith).
func (f *File) HandleClosed() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unclosed--
}

// HandleReopened counts a handle told closed (HandleClosed) open again: a
// FLUSH comes at the close of each copy of a descriptor, so a shell's
// redirect (open, dup2, close) or dd closed it before the command wrote
// through the copy, and a sharer's idle close then committed half a file.
func (f *File) HandleReopened() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unclosed++
}

// Commits counts the File's commits of its bytes: a handle that wrote
// before the last one wrote nothing the File holds uncommitted.
func (f *File) Commits() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.commits
}

// WriteMapped is WriteAt for bytes that came back from the kernel's page
// cache, a shared mapping's (FUSE_WRITE_CACHE): the kernel writes them
// through whichever writable handle of the inode it picks, not the
// mapper's, so they are no handle's. The next close of any handle commits
// them (FlushIdle too): the kernel writes a file's dirty pages back before
// it sends the close's FLUSH.
func (f *File) WriteMapped(ctx context.Context, p []byte, off int64) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.writeLocked(ctx, p, off, false)
	if n > 0 {
		f.mapped = true
	}
	return n, err
}

// SetMtime sets the mtime the File's next version gets (or, if its bytes do
// not change, the latest version's).
func (f *File) SetMtime(t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mtime, f.touched = t, true
	f.mirror()
}

// SetMode sets the File's permission bits.
func (f *File) SetMode(mode uint32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mode, f.touched = mode&0o7777, true
	f.mirror()
}

// Flush is close(2): it commits the File if its bytes changed and returns
// the commit's error. See the package doc for a new key flushed empty.
func (f *File) Flush(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.flushed = true
	return f.flush(ctx, false)
}

// FlushLast is Flush for the close of the writer's last descriptor of the
// File: one created or truncated and closed without a write commits too (an
// empty file, or the key's empty version), so that its version is there
// when close(2) returns and close(2) reports a failed commit. The caller
// knows no other descriptor is left (a shell's redirect closes the one it
// opened after dup2, before the command writes through the copy).
func (f *File) FlushLast(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.flushed = true
	return f.flush(ctx, true)
}

// FlushIdle is Flush for the close of a handle that wrote nothing through
// itself (touch, `: >> f`, a reader connection opened O_RDWR): while
// another handle sharing the File (Join) is open, it commits none of the
// bytes staged, which that handle's writer's close (or any fsync) commits.
// touch of a file being copied committed the half copy as the latest
// version, and idle opens next to an appender made a version of each
// partial log. Times or mode set on a File with no bytes to commit are
// committed as at any close; the close of the File's last open handle
// commits what is pending, as Flush, and so does any close after bytes
// came back from a shared mapping (WroteMapped).
func (f *File) FlushIdle(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.flushed = true
	f.observe()
	if f.unclosed > 0 && f.dirty && f.broken == nil && !f.mapped {
		return nil
	}
	return f.flush(ctx, false)
}

// AwaitsWrite reports whether a Flush would leave the File for its Release
// though no handle is left to write to it: created or truncated, nothing
// written since, and each handle sharing it (Join) closed. While another is
// open, its writer may still write and its close makes the version (a
// joiner's close that wrote nothing made an empty version first).
func (f *File) AwaitsWrite() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.observe()
	return f.dirty && !f.wrote && f.size == 0 && f.broken == nil && f.unclosed <= 0
}

// flush with f.mu held; final is Release's last chance, or the last
// descriptor's close (FlushLast).
func (f *File) flush(ctx context.Context, final bool) error {
	f.observe()
	f.s.mu.Lock()
	deleted := f.deleted
	f.s.mu.Unlock()
	if deleted {
		return nil
	}
	if f.dirty && f.broken != nil {
		return f.brokenError()
	}
	if f.dirty && !f.wrote && f.size == 0 {
		if !final {
			// Created or truncated, nothing written yet: a shell closes its
			// first descriptor before the command writes. Committed at
			// Release unless bytes come first.
			return nil
		}
		if v, ok := f.superseded(ctx); ok {
			// Another writer's version came after the emptying: the
			// File commits no empty version over it (share.go).
			f.yieldTo(v)
		}
	}
	if f.dirty {
		return f.commit(ctx)
	}
	if f.touched {
		key := f.Key()
		mt, mode := f.mtime, catalog.ModeOf(f.mode)
		if _, err := f.s.cat.SetAttrs(ctx, key, catalog.Attrs{Mtime: &mt, Mode: &mode}); err != nil {
			return err
		}
		f.touched = false
		f.changes++
		f.lastSaved = false
		f.s.changed(key)
	}
	return nil
}

// brokenError is what a close or fsync of a broken File returns: the
// failed write's error, so that close(2) says why (ENOSPC, EIO).
func (f *File) brokenError() error {
	return fmt.Errorf("stage: %s not committed: a write to it failed: %w", f.Key(), f.broken)
}

// Broken tells whether a write to the File failed and nothing after it
// made it whole: it commits nothing, and Release drops its bytes.
func (f *File) Broken() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.broken != nil && f.dirty
}

// Changes counts the File's changes to the catalog (commits and attribute
// updates), so that a caller can tell whether a Flush or Release made one.
func (f *File) Changes() uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changes
}

// Committed returns the version the File's last change committed, unless
// that change was an attribute update or the File was deleted since.
func (f *File) Committed() (catalog.Version, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.s.mu.Lock()
	deleted := f.deleted
	f.s.mu.Unlock()
	if !f.lastSaved || deleted || f.base == nil {
		return catalog.Version{}, false
	}
	return *f.base, true
}

// commit stores the staged bytes and records a version. Called with f.mu.
func (f *File) commit(ctx context.Context) error {
	// A signal to the closing process interrupts its FUSE request, which
	// cancels ctx; a commit once begun finishes anyway, so close(2) never
	// leaves the caller unsure whether its version exists (PostgreSQL
	// aborts a cancelled transaction; bbolt ignored the cancel).
	ctx = context.WithoutCancel(ctx)
	if !f.closed {
		if err := f.writeJournal(stateClosed); err != nil {
			return err
		}
		f.closed = true
	}
	key := f.Key()
	if f.copiedFrom > 0 && describes(key, f.size) {
		// describe reads the staged file (a rename gave it a format's name).
		if err := f.completeCopy(ctx); err != nil {
			return err
		}
	}
	var v catalog.Version
	var seq uint64
	var err error
	// The staged bytes stay until Sync (SyncEvery): the catalog may commit
	// the version lazily, and Recover redoes it if it did not.
	lazy := f.s.opts.SyncEvery > 0
	if f.base != nil && f.base.UID != "" && f.copied && !f.rewritten && f.base.Key == key {
		// Its bytes build on base: the close warns if another writer's
		// version became the latest meanwhile (record, staleBase).
		ctx = context.WithValue(ctx, basedOnKey{}, f.base.Version)
	}
	if f.base == nil {
		ctx = withStem(ctx, f.stem) // the uid the journal's record redoes
	}
	over, built := f.builtOn() // before the commit makes the new version f's base
	var file cache.File
	var mark cache.HashMark // the new content's, for the next append (lazycopy.go)
	if st := f.stream; st != nil {
		f.stream = nil
		w, stored, serr := st.finish(f.size)
		if serr == nil {
			f.s.streamed.Add(1)
			file, mark = stored, st.mark
			v, seq, err = f.s.record(WithRun(ctx, f.runFor(ctx)), key, w, file, f.data.Name(), f.mtime, f.mode, "", lazy)
			if errors.Is(err, cache.ErrReusedPackCondemned) {
				// gc marked data the stream reused while it was written:
				// the staged file is stored again below, in a session
				// whose lookups see the marks, so that close(2) reports
				// the version that lands, not this attempt.
				f.s.log.Warn("lamina mount: data this file reused is being deleted by gc; storing the staged file again", "key", key)
				err = nil
			}
		} else {
			f.s.log.Warn("lamina mount: storing while writing failed; storing the staged file", "key", key, "err", serr)
		}
	}
	for try := 0; v.UID == "" && err == nil; try++ {
		w := f.reuse
		f.reuse = nil
		if w == nil {
			w = f.s.content.NewWriter()
		} else {
			f.s.reused.Add(1)
		}
		var perr error
		var pst cache.PutStats
		var data io.ReaderAt = f.data
		if !f.external { // its writers may write it meanwhile
			data = newHoleReader(f.data, f.size)
		}
		src := f.data.Name()
		if f.copiedFrom > 0 {
			data = &lazyReader{ctx: ctx, head: f.s.content.Open(*f.head), from: f.copiedFrom, tail: data}
			src = "" // not whole: nothing to describe (describes)
		}
		if f.over != nil && f.copied && !f.rewritten && !f.external {
			// Edited in place: the chunks before the first change are kept.
			file, pst, perr = w.PutFileOver(ctx, data, f.size, *f.over, f.same, f.mark, nil)
			f.s.kept.Add(int64(pst.Kept))
		} else {
			file, pst, perr = w.PutFile(ctx, io.NewSectionReader(data, 0, f.size), nil)
		}
		mark = pst.Mark
		if perr != nil {
			w.Abort()
			return fmt.Errorf("cannot store %s: %w", key, perr)
		}
		v, seq, err = f.s.record(WithRun(ctx, f.runFor(ctx)), key, w, file, src, f.mtime, f.mode, "", lazy)
		if try == 0 && errors.Is(err, cache.ErrReusedPackCondemned) {
			// As above: once more in a fresh session, which stores again
			// what gc marked since this one reused it.
			f.s.log.Warn("lamina mount: data this file reused is being deleted by gc; storing it again", "key", key)
			err = nil
		}
	}
	if err != nil {
		return err
	}
	if fn, ok := ctx.Value(builtOnKey{}).(func(catalog.Version)); ok && built {
		fn(over)
	}
	f.over, f.same, f.mark = &file, file.Size, mark
	f.s.noteMark(file.Digest, mark)
	f.dirty, f.wrote, f.touched, f.committed = false, false, false, true
	f.mapped = false
	f.commits++
	f.base, f.isNew, f.lazySeq = &v, false, seq
	f.rewritten = false
	f.changes++
	f.lastSaved = true
	if f.external {
		// Its writers change its bytes through descriptors of their own,
		// unseen until they did (observe): open again at once.
		if err := f.reopen(ctx); err != nil {
			f.s.log.Warn("lamina mount: journal", "key", key, "err", err)
		}
	}
	return nil
}

// commitFile stores r as the next version of key with the given mtime;
// noDedup stores every chunk again (content known to the index was lost).
func (s *Stage) commitFile(ctx context.Context, key string, r io.Reader, mtime time.Time, mode uint32, desc string, noDedup bool) (catalog.Version, error) {
	w := s.content.NewWriter()
	if noDedup {
		w = s.content.NewWriterNoDedup()
	}
	src := "" // a file's bytes can be described (record)
	if f, ok := r.(*os.File); ok {
		src = f.Name()
	}
	v, _, err := s.commitWith(ctx, w, key, r, src, mtime, mode, desc, false)
	return v, err
}

// commitWith is commitFile in the session w; src is the file r reads, if
// any.
func (s *Stage) commitWith(ctx context.Context, w *cache.Writer, key string, r io.Reader, src string, mtime time.Time, mode uint32, desc string, lazy bool) (catalog.Version, uint64, error) {
	file, _, err := w.PutFile(ctx, r, nil)
	if err != nil {
		w.Abort()
		return catalog.Version{}, 0, fmt.Errorf("cannot store %s: %w", key, err)
	}
	return s.record(ctx, key, w, file, src, mtime, mode, desc, lazy)
}

// record finishes w's session, which stored file, and records the next
// version of key; src is a file holding the same bytes, to describe a data
// file by ("" for none). lazy lets the catalog commit the version later
// (catalog.Lazy); it returns the save's LazySeq.
func (s *Stage) record(ctx context.Context, key string, w *cache.Writer, file cache.File, src string, mtime time.Time, mode uint32, desc string, lazy bool) (catalog.Version, uint64, error) {
	mref, err := w.PutManifest(ctx, &cache.Manifest{Kind: cache.KindFile, Files: []cache.File{file}})
	if err != nil {
		w.Abort()
		return catalog.Version{}, 0, err
	}
	commit := w.Commit
	if s.opts.SyncEvery > 0 {
		commit = w.CommitNoSync
	}
	if err := commit(ctx); err != nil {
		return catalog.Version{}, 0, fmt.Errorf("cannot store %s: %w", key, err)
	}
	s.restoreUnlinked(ctx, key)
	suffix := ref.Suffix(key)
	now := createdAt(ctx)       // the close's time, for a retry's commit (recover.go)
	mode = catalog.ModeOf(mode) // 0 for the default
	saveCtx := ctx
	if lazy {
		saveCtx = catalog.Lazy(ctx)
	}
	if s.opts.SyncEvery > 0 {
		// The packs are in the page cache only: a catalog that commits the
		// save durably (PostgreSQL, or bbolt when it cannot wait) syncs them
		// first, or a power cut could leave a team's catalog naming packs
		// that never reached the disk (or the bucket).
		saveCtx = catalog.SyncFirst(saveCtx, s.content.Sync)
	}
	nv := catalog.NewVersion{
		Key: key, Kind: cache.KindFile, Suffix: suffix, OType: ref.OType(suffix),
		Size: file.Size, Digest: file.Digest, Manifest: string(mref), Description: desc,
		CreatedBy: s.opts.User, CreatedAt: now, Mtime: mtime, Mode: mode, Run: runOf(ctx),
		Stem: stemOf(ctx),
	}
	s.describe(&nv, src)
	unlock := s.keys.lockSave(ctx, key)
	saved, err := s.cat.Save(saveCtx, []catalog.NewVersion{nv})
	unlock()
	if err != nil {
		return catalog.Version{}, 0, err
	}
	v := saved[0].Version
	if saved[0].Unchanged && (!v.Mtime.Equal(mtime) || v.Mode != mode) {
		// Same bytes: no version, but the mtime the writer saw stays.
		if v, err = s.cat.SetAttrs(ctx, key, catalog.Attrs{Mtime: &mtime, Mode: &mode}); err != nil {
			return catalog.Version{}, 0, err
		}
	}
	if saved[0].Unchanged && nv.Run != "" && nv.Run != v.Run {
		if fn := s.reproduced.Load(); fn != nil {
			(*fn)(nv.Run, v) // before the close returns: a read back after is the run's own output
		}
	}
	if !saved[0].Unchanged {
		if fn := s.committed.Load(); fn != nil {
			(*fn)(v)
		}
		s.staleBase(ctx, v)
	}
	if !saved[0].Unchanged && v.Version == 1 {
		s.mu.Lock()
		s.fresh[key] = freshKey{stem: v.UID[:ref.StemLen], started: s.startedLocked(key, time.Now())}
		s.mu.Unlock()
	}
	s.published(v)
	s.changed(key)
	return v, saved[0].LazySeq, nil
}

type basedOnKey struct{}

// staleBase warns when v, committed by a File whose bytes build on an
// earlier version of its key (an append or in-place edit), is not that
// version's successor: another writer (another workstation, or an O_TRUNC
// writer of this mount) committed since the File was opened, and v
// replaced that version as the latest without its changes. Nothing is
// lost (each close is its own version), but the latest holds one side
// only (docs/postgres.md, "Workstations do not share open files"). The
// numbers come from the save: no catalog round trip.
func (s *Stage) staleBase(ctx context.Context, v catalog.Version) {
	base, ok := ctx.Value(basedOnKey{}).(int)
	if !ok || v.Version <= base+1 {
		return
	}
	prev := v.Version - 1
	s.log.Warn(fmt.Sprintf("lamina mount: %s: this close (v%d) was based on v%d but replaced v%d, which another writer committed since, as the latest; v%d stays readable as %s@v%d",
		v.Key, v.Version, base, prev, prev, v.Key, prev),
		"key", v.Key, "version", v.Version, "base", base, "replaced", prev)
}

// describeTextLimit bounds the CSV and TSV files a close describes: they
// are read whole (h5ad, Parquet and FCS by their headers, at any size).
const describeTextLimit = 64 << 20

// describe fills the fields reading the content gives (otype,
// n_observations, shape, columns) for a file whose key names a format
// lamina reads, as lamina save does: a pipeline's outputs are then as
// queryable as saved files, and a file its suffix misnames gets no otype.
func (s *Stage) describe(nv *catalog.NewVersion, src string) {
	format := dataset.FileFormat(nv.Key)
	if src == "" || format == "" || ((format == dataset.CSV || format == dataset.TSV) && nv.Size > describeTextLimit) {
		return
	}
	if nv.Size == 0 {
		// No format's file is empty (lamina save warns of it); in the mount
		// an empty file is common (touch), so without a warning.
		nv.OType = ""
		return
	}
	if note := instance.Describe(nv, src, format); note != "" {
		s.log.Warn("lamina mount: "+note, "key", nv.Key)
	}
}

// Sync is fsync: it commits what is staged, then makes the staging file
// and the committed content durable.
func (f *File) Sync(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.observe()
	if f.dirty && f.broken != nil {
		return f.brokenError()
	}
	if err := f.data.Sync(); err != nil {
		return err
	}
	f.s.mu.Lock()
	deleted := f.deleted
	f.s.mu.Unlock()
	if f.dirty && (f.wrote || f.size > 0) && !deleted {
		if err := f.commit(ctx); err != nil {
			return err
		}
	}
	if err := f.s.content.Sync(ctx); err != nil {
		return err
	}
	if lc, ok := f.s.cat.(lazyCatalog); ok {
		if err := lc.Flush(ctx); err != nil {
			return err
		}
	}
	// One syncfs covers the staging folder, and the storage root and the
	// catalog when they share its file system.
	d, err := os.Open(f.s.opts.Dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return unix.Syncfs(int(d.Fd()))
}

// Release is the last close of the File: it commits a new key that was
// never committed (an empty file, say) and removes the staging files. The
// error can reach no one; the caller logs it.
func (f *File) Release(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.released {
		return nil
	}
	if f.handles > 1 {
		f.handles-- // another appender still writes: the last Release commits
		return nil
	}
	f.observe() // flush does not once released
	f.released = true
	err := f.flush(ctx, true)
	f.dropStream() // deleted, or nothing to commit
	f.s.mu.Lock()
	if f.deleted && f.dirty && (f.wrote || !f.isNew) {
		// Its key was unlinked, or renamed over, while it was open: as on
		// a POSIX file system, what it wrote went to a file no name shows,
		// and goes with it.
		f.s.log.Info("lamina mount: a file was closed after its name was removed or replaced; its unsaved changes are dropped",
			"key", f.key, "size", f.size)
	}
	list := f.s.open[f.key]
	for i, o := range list {
		if o == f {
			list = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(f.s.open, f.key)
	} else {
		f.s.open[f.key] = list
	}
	f.s.mu.Unlock()
	if err != nil && f.broken != nil && f.dirty {
		// Half a file is not a version, and the writer was told, at the
		// write and at close(2); the bytes go, freeing what a full disk
		// needs most.
		f.s.log.Warn("lamina mount: a write failed, so the file was not committed; its staged bytes are dropped",
			"key", f.Key(), "size", f.size, "err", f.broken)
		f.closeData()
		f.s.dropStaged(f.id)
		return nil
	}
	if err != nil {
		// Keep the staged bytes for Recover (lost+found) rather than drop them.
		if errors.Is(err, instance.ErrStorageTaken) {
			// No mount of this instance may commit them any more: the
			// mount says where they are and how to save them elsewhere.
			f.s.log.Error("lamina mount: commit at close failed: another instance took the storage over; the bytes stay staged (lamina status names them)", "key", f.Key(), "file", filepath.Join(f.s.opts.Dir, f.id), "err", err)
		} else {
			f.s.log.Error("lamina mount: commit at close failed; the bytes stay staged and the commit is tried again (at the latest by the next mount)", "key", f.Key(), "err", err)
		}
		// The staged file whole, for whoever looks at it (lamina status
		// names it); else the retries read its head from the version
		// (openStaged).
		if cerr := f.completeCopy(ctx); cerr != nil {
			f.s.log.Warn("lamina mount: the staged bytes of a failed close are filled in when committed", "key", f.Key(), "err", cerr)
		}
		j := journal{ID: f.id, State: stateClosed, Key: f.Key(), Mode: f.mode, Stem: f.stem, Failed: true}
		if f.base != nil {
			j.Base = f.base.Version
		}
		f.lazyFields(&j)
		f.closeData()
		if f.closed {
			_ = f.s.jlog.put(j) // for status with the daemon dead; the closed record stands if the disk is full
		}
		f.s.addFailed(failedClose{j: j, mtime: f.mtime, run: f.run})
		return err
	}
	f.closeData()
	if f.s.opts.SyncEvery > 0 && f.committed && f.base != nil {
		// Committed but maybe not durable yet: keep the bytes until Sync.
		j := journal{ID: f.id, State: stateDone, Key: f.Key(), Mode: f.mode, Manifest: f.base.Manifest, LazySeq: f.lazySeq, Stem: f.stem}
		f.lazyFields(&j)
		perr := f.s.jlog.put(j)
		if perr == nil || f.lazySeq != 0 {
			// A lazy commit is durable only once LazyCommitted reaches it:
			// the bytes stay (the journal's earlier record redoes them at
			// the next mount) until Sync sees that.
			if perr != nil {
				f.s.log.Warn("lamina mount: journal", "err", perr)
			}
			f.s.deferSync(failedClose{j: j, mtime: f.mtime, run: f.run, closed: time.Now()})
			return nil
		}
	}
	f.s.dropStaged(f.id)
	if f.committed && f.s.opts.SyncEvery == 0 {
		f.s.retrySoon() // the commit is durable: the catalog and disk work
	}
	return nil
}

// dropStaged forgets the staged file id: its journal record first, so that
// a crash in between leaves a staging file without a record, which Recover
// removes.
func (s *Stage) dropStaged(id string) {
	if err := s.jlog.put(journal{ID: id, State: stateGone}); err != nil {
		s.log.Warn("lamina mount: journal", "err", err)
	}
	s.retire(filepath.Join(s.opts.Dir, id))
	if s.opts.SyncEvery == 0 {
		_ = s.jlog.compact() // no Sync does it
	}
}

// deferSync notes a released File whose staged bytes wait for Sync and
// makes sure a Sync comes within SyncEvery.
func (s *Stage) deferSync(fc failedClose) {
	s.smu.Lock()
	defer s.smu.Unlock()
	s.unsynced = append(s.unsynced, fc)
	s.syncLaterLocked(s.opts.SyncEvery)
}

// syncLaterLocked makes sure a Sync comes within wait. A Sync that fails
// (a full disk) comes back, waiting twice as long each time up to a
// minute, while closes wait for it: a later close, fsync or unmount may be
// long in coming. Called with smu.
func (s *Stage) syncLaterLocked(wait time.Duration) {
	if s.timer != nil {
		return
	}
	s.timer = time.AfterFunc(wait, func() {
		s.smu.Lock()
		s.timer = nil
		s.smu.Unlock()
		if err := s.Sync(context.Background()); err != nil {
			s.log.Error("lamina mount: sync of committed files failed; their bytes stay staged and the sync is tried again", "err", err)
			s.smu.Lock()
			if len(s.unsynced) > 0 {
				s.syncLaterLocked(min(2*wait, time.Minute))
			}
			s.smu.Unlock()
		}
	})
}

// Sync makes every commit so far durable and drops the staged bytes kept
// for them (Options.SyncEvery), and writes the window's unlinks for the
// next mount (saveWindow). The mount calls it at unmount; fsync of a
// File calls it too.
func (s *Stage) Sync(ctx context.Context) error {
	// One at a time: a Sync that found nothing to do while the timer's
	// was still retiring staged files returned early, and the daemon
	// exited with hundreds of them left (a clean umount under writes).
	s.syncing.Lock()
	defer s.syncing.Unlock()
	// Whatever the catalog says: an unmount keeps the window's unlinks.
	if werr := s.saveWindow(); werr != nil {
		s.log.Warn("lamina mount: unlinks of the last window not kept for the next mount", "err", werr)
	}
	s.smu.Lock()
	waiting := s.unsynced
	s.unsynced = nil
	s.smu.Unlock()
	err := s.content.Sync(ctx)
	var lost []failedClose
	if lc, ok := s.cat.(lazyCatalog); ok && err == nil {
		// A catalog that lost a transaction of lazy saves (a full disk)
		// says so once, to whichever Flush comes first: the closes it held
		// may wait in a later Sync. So each Sync asks what was committed.
		// The versions above it are not in the catalog, though their
		// close(2) returned; their bytes are still staged: they are
		// committed again, as failed closes, rather than dropped.
		err = lc.Flush(ctx)
		// Versions whose commit fails (a full disk) are not lost: the
		// catalog holds them and retries; they wait as they are, neither
		// lost nor landed, until LazyCommitted says (from the committed
		// file) which are.
		if !errors.Is(err, catalog.ErrCommitFailing) {
			committed, cerr := lc.LazyCommitted(ctx)
			if cerr != nil {
				err = errors.Join(err, cerr)
			} else {
				var synced []failedClose
				for _, fc := range waiting {
					if fc.j.LazySeq > committed {
						lost = append(lost, fc)
					} else {
						synced = append(synced, fc)
					}
				}
				waiting = synced
			}
		}
	}
	if len(lost) > 0 {
		s.log.Error("lamina mount: the catalog lost the versions of closed files; their bytes stay staged and are committed again",
			"files", len(lost))
		for _, fc := range lost {
			s.addFailed(fc)
		}
		go s.RetryFailed(context.Background()) // now: the catalog may take them at once
	}
	if err != nil {
		s.smu.Lock()
		s.unsynced = append(waiting, s.unsynced...)
		s.smu.Unlock()
		return err
	}
	// One journal write for all, then the staged files: a record never
	// names a removed file.
	gone := make([]journal, len(waiting))
	for i, fc := range waiting {
		gone[i] = journal{ID: fc.j.ID, State: stateGone}
	}
	if perr := s.jlog.put(gone...); perr != nil {
		s.log.Warn("lamina mount: journal", "err", perr)
	}
	for _, fc := range waiting {
		s.retire(filepath.Join(s.opts.Dir, fc.j.ID))
	}
	if len(waiting) > 0 {
		s.retrySoon() // commits reached the disk: the catalog works again
	}
	return s.jlog.compact()
}

// Pending returns the newest open File of key, or nil. A File whose key
// was unlinked or renamed over while it was open, here or on another
// workstation (deleted), is not key's any more: its name must not resolve
// to it (an open of the name would write the removed file back).
func (s *Stage) Pending(key string) *File {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range slices.Backward(s.open[key]) {
		if !f.deleted {
			return f
		}
	}
	return nil
}

// Unsaved is File.Unsaved of the newest of key's open Files that holds
// changes not committed yet, and how many Files hold such changes. A File
// closed with everything committed (its RELEASE still to come) holds none:
// it shows its commit's version, which another writer's close replaces.
func (s *Stage) Unsaved(key string) (size int64, mtime time.Time, mode uint32, writers int) {
	s.mu.Lock()
	var open []*File
	for _, f := range s.open[key] {
		if !f.deleted {
			open = append(open, f)
		}
	}
	s.mu.Unlock()
	for _, f := range slices.Backward(open) {
		sz, mt, md, ok := f.Unsaved()
		if !ok {
			continue
		}
		if writers == 0 {
			size, mtime, mode = sz, mt, md
		}
		writers++
	}
	return size, mtime, mode, writers
}

// PendingUnder lists the keys directly under prefix ("" or ending in "/")
// that have open Files or failed closes waiting for a retry
// (FailedPending), and the next segments of deeper ones.
func (s *Stage) PendingUnder(prefix string) (keys, dirs []string) {
	failed := s.failedUnder(prefix)
	s.mu.Lock()
	defer s.mu.Unlock()
	seen, listed := map[string]bool{}, map[string]bool{}
	for _, k := range failed {
		if rest := k[len(prefix):]; !strings.Contains(rest, "/") && !listed[k] {
			listed[k] = true
			keys = append(keys, k)
		} else if i := strings.IndexByte(rest, '/'); i >= 0 && !seen[rest[:i]] {
			seen[rest[:i]] = true
			dirs = append(dirs, rest[:i])
		}
	}
	for k, l := range s.open {
		if len(l) == 0 || !strings.HasPrefix(k, prefix) {
			continue
		}
		alive := false
		for _, f := range l {
			alive = alive || !f.deleted
		}
		if !alive {
			continue
		}
		rest := k[len(prefix):]
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			if !seen[rest[:i]] {
				seen[rest[:i]] = true
				dirs = append(dirs, rest[:i])
			}
			continue
		}
		if !listed[k] {
			keys = append(keys, k)
		}
	}
	return keys, dirs
}

// Unlink removes key: open Files of it make no version (their bytes are
// dropped at Release, as a POSIX file system drops an unlinked inode's), no
// name resolves to them (Pending), and its artifact goes to the trash. The
// folder it was in persists. A commit of key within the window (an
// editor's save, mv from another file system, tar -x, unzip -o and
// Snakemake unlink a file and create it anew) brings back what the unlink
// put in the trash first (restoreUnlinked): the new bytes are the key's
// next version, or none when they equal its latest.
func (s *Stage) Unlink(ctx context.Context, key string) error {
	s.mu.Lock()
	hadOpen := false
	for _, f := range s.open[key] {
		hadOpen = hadOpen || !f.deleted
		f.deleted = true
	}
	s.mu.Unlock()
	// Committed with the closes and removals that follow (rm -rf), durable
	// within catalog.LazyCommitAfter or at the next Sync.
	ctx = s.lazy(ctx)
	e, err := s.cat.Trash(ctx, key)
	if err == nil {
		s.noteUnlinked(key, e.TrashedAt, runOf(ctx))
	}
	if errors.Is(err, catalog.ErrNotFound) {
		if l, lerr := s.cat.ByKey(ctx, key, 0); lerr == nil && l.UID != "" {
			return err
		}
		if rerr := s.cat.RemoveLink(ctx, key); rerr == nil {
			err = nil
		} else if hadOpen {
			err = nil // created and deleted before it was closed: no trace
		} else if s.dropFailedOf(key) > 0 {
			err = nil // a new key whose close failed (FailedPending): its bytes go
		}
	}
	if err != nil {
		return err
	}
	s.dropFailedOf(key) // as its open Files' bytes, its failed closes' go
	s.keepFolder(ctx, key)
	s.changed(key)
	return nil
}

// MoveAway is Unlink for a key renamed to a scratch name: an editor's save
// (vim: rename f to f~, write a new f, remove f~). As after any Unlink, a
// commit of key within the window brings the versions the rename trashed
// back first, so the edit is the next version of the file rather than a
// new history with the old one in the trash; and the name stays the
// catalog's for everyone meanwhile (NameKept), for a key whose name
// looks like scratch (k~ renamed to k~~).
func (s *Stage) MoveAway(ctx context.Context, key string) error {
	if err := s.Unlink(ctx, key); err != nil {
		return err
	}
	s.keepName(key, true, "")
	return nil
}

// unlinkedKey is what restoreUnlinked needs of a key's last unlink: when
// it was, and the TrashedAt the catalog gave the versions it trashed (one
// trash entry: versions an older rm trashed have another and stay).
type unlinkedKey struct {
	at, trashedAt time.Time
	// claimed: a File of the key was started within the window (the
	// file created anew): its commit restores however much later it
	// comes (a long write, a slow job), as the window is measured from
	// the unlink to the file's creation, not to its close.
	claimed bool
	run     string // the unlinking lineage run, if any (OnRunWithin)
	// movedTo: the key was renamed to the free key movedTo, which its
	// artifact holds since, uid its latest version then (noteRenamedAway):
	// its history comes back (takeBack) rather than a trash entry.
	movedTo, uid string
}

// claimUnlinkedLocked notes that a File of key was started: an unlink of
// key within the window is claimed (unlinkedKey.claimed). Called with s.mu
// held.
func (s *Stage) claimUnlinkedLocked(key string) {
	if u, ok := s.unlinked[key]; ok && !u.claimed && time.Since(u.at) <= s.window() {
		u.claimed = true
		s.unlinked[key] = u
	}
}

// maxUnlinked bounds the unlinks remembered within a window: rm -rf of a
// large tree is not followed by commits of its keys, and each holds its
// entry until the window's end (tar -x and mv consume theirs at once).
const maxUnlinked = 1 << 16

// noteUnlinked remembers that key was unlinked now by run (if any), its
// versions trashed at trashedAt.
func (s *Stage) noteUnlinked(key string, trashedAt time.Time, run string) {
	if trashedAt.IsZero() {
		return // a catalog that does not say: the trash keeps them
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	s.pruneKeptLocked(now)
	if len(s.unlinked) >= maxUnlinked {
		return
	}
	s.unlinked[key] = unlinkedKey{at: now, trashedAt: trashedAt, run: run}
	s.windowChangedLocked()
}

// OnRunWithin sets what tells whether the lineage run run is unlinker or
// a run under it (a job of a pipeline) while unlinker runs: the mount's
// tracker. A key unlinked by a run and written again by it or a job
// under it gets the unlink's versions back however much later, while
// that run runs (Snakemake removes a job's outputs before the job, which
// may write them an hour later). It is called with the Stage's lock held
// and must not block.
func (s *Stage) OnRunWithin(fn func(run, unlinker string) bool) { s.runWithin.Store(&fn) }

// runHolds reports whether u, unlinked longer ago than the window, is
// still to be restored by a commit of run: its unlinker's run, or one
// under it, while that one runs. run "" asks whether the unlinker's run
// still runs.
func (s *Stage) runHolds(u unlinkedKey, run string) bool {
	fn := s.runWithin.Load()
	if u.run == "" || fn == nil {
		return false
	}
	if run == "" {
		run = u.run
	}
	return (*fn)(run, u.run)
}

// window is Options.MoveAwayWindow, or MoveAwayWindow.
func (s *Stage) window() time.Duration {
	if s.opts.MoveAwayWindow > 0 {
		return s.opts.MoveAwayWindow
	}
	return MoveAwayWindow
}

// keptName is a key's name kept the catalog's for MoveAwayWindow after
// the key left: restore says it was MoveAway, for everyone (its versions
// come back with the next commit, as after any Unlink: restoreUnlinked),
// else KeepName, for the process by names.
type keptName struct {
	at      time.Time
	restore bool
	by      string
}

// KeepName keeps the name of key, unlinked a moment ago, the catalog's for
// MoveAwayWindow although it matches a scratch pattern (k~, .#x: keys
// saved under such names): tar -x unlinks a file it extracts over and
// creates it anew, which was then a scratch file, with the key's versions
// in the trash. Its next commit is the key's next version, as for any key
// unlinked and written again: the removed ones come back first.
// by names the process that unlinked it ("" if unknown); NameKept returns
// it, for the name is kept for that process only: tar unlinks and creates
// alike, while an editor's backup (notes~ copied by vim) made after an rm
// of a key notes~ is a scratch file.
func (s *Stage) KeepName(key, by string) { s.keepName(key, false, by) }

func (s *Stage) keepName(key string, restore bool, by string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	s.pruneKeptLocked(now)
	s.movedAway[key] = keptName{at: now, restore: restore, by: by}
	s.windowChangedLocked()
}

// pruneKeptLocked drops the names and unlinks older than the window, once
// a window: rm -r of many keys went over the whole map for each. An
// unlink claimed by a File still open stays, and so does a run's while
// the run runs (runHolds). Called with s.mu held.
func (s *Stage) pruneKeptLocked(now time.Time) {
	w := s.window()
	if now.Sub(s.movedPruned) <= w {
		return
	}
	s.movedPruned = now
	s.windowChangedLocked() // the file drops them too
	for k, kn := range s.movedAway {
		if now.Sub(kn.at) > w {
			delete(s.movedAway, k)
		}
	}
	for k, u := range s.unlinked {
		if now.Sub(u.at) > w && (!u.claimed || len(s.open[k]) == 0) && !s.runHolds(u, "") {
			delete(s.unlinked, k)
		}
	}
}

// NameKept reports whether key was renamed to a scratch name (MoveAway)
// or unlinked (KeepName) within MoveAwayWindow and not committed since:
// its name is the catalog's still, for the editor (or tar) writes the
// file anew there. movedAway says it was MoveAway; by is KeepName's.
func (s *Stage) NameKept(key string) (kept, movedAway bool, by string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	kn, ok := s.movedAway[key]
	if !ok || time.Since(kn.at) > s.window() {
		return false, false, ""
	}
	return true, kn.restore, kn.by
}

// ForgetName drops the name of key kept by KeepName (not MoveAway's): a
// scratch file is renamed onto it.
func (s *Stage) ForgetName(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if kn, ok := s.movedAway[key]; ok && !kn.restore {
		delete(s.movedAway, key)
		s.windowChangedLocked()
	}
}

// MoveAwayWindow is how soon after an Unlink or MoveAway a new commit of
// the key still continues its history (Options.MoveAwayWindow): an editor,
// mv, tar -x write the new file at once.
const MoveAwayWindow = time.Minute

// restoreUnlinked brings back the versions of key that its last Unlink
// (or MoveAway) put in the trash, if that was within the window (before
// now, or before a File of key was started: claimed), and drops the name
// MoveAway kept: key is committed, or renamed onto (Rename). Only that unlink's
// trash entry comes back (the versions with its TrashedAt): an older rm's
// stay in the trash. Nothing comes back once key was written again since
// (it has live versions), nor a folder artifact (rm -r of one, then a
// file written at its key).
func (s *Stage) restoreUnlinked(ctx context.Context, key string) {
	s.restoreUnlinkedFor(ctx, key, time.Time{}, "")
}

// restoreUnlinkedFor is restoreUnlinked for a file renamed onto key that
// was started at started (zero: unknown): an unlink of key before it and
// within the window of it counts as claimed, as for a File of key started
// then (long_tool > out.tmp for longer than the window, then mv out.tmp
// out, after rm out, restores as writing out directly does). from is the
// key renamed onto key ("" for a commit): when key was renamed away to
// from, the rename back moves its history, nothing is taken back, and
// back is true.
func (s *Stage) restoreUnlinkedFor(ctx context.Context, key string, started time.Time, from string) (back bool) {
	s.mu.Lock()
	_, kept := s.movedAway[key]
	delete(s.movedAway, key)
	u, ok := s.unlinked[key]
	delete(s.unlinked, key)
	if ok || kept {
		s.windowChangedLocked()
	}
	s.mu.Unlock()
	if ok && !started.IsZero() && !started.Before(u.at) && started.Sub(u.at) <= s.window() {
		u.claimed = true
	}
	if !ok || !u.claimed && time.Since(u.at) > s.window() && (runOf(ctx) == "" || !s.runHolds(u, runOf(ctx))) {
		return
	}
	if u.movedTo != "" {
		if u.movedTo == from {
			return true
		}
		s.takeBack(ctx, key, u)
		return false
	}
	vs, err := s.cat.Versions(ctx, key, true)
	if err != nil {
		if !errors.Is(err, catalog.ErrNotFound) {
			s.log.Warn("lamina mount: the versions of a file written anew stay in the trash", "key", key, "err", err)
		}
		return
	}
	uid := ""
	for _, v := range vs {
		if !v.Trashed {
			return
		}
		if v.Kind == cache.KindFile && v.TrashedAt != nil && v.TrashedAt.Equal(u.trashedAt) {
			uid = v.UID
		}
	}
	if uid == "" {
		return
	}
	if _, err := s.cat.RestoreTrashedWith(ctx, uid); err != nil && !errors.Is(err, catalog.ErrNotFound) {
		s.log.Warn("lamina mount: the versions of a file written anew stay in the trash", "key", key, "err", err)
	}
	return false
}

// takeBack gives key, renamed away to u.movedTo within the window (a
// backup: mv f f.bak, perl -i.bak, sed -i.bak) and now written again, its
// history back: the artifact returns to key, whose commit is then its next
// version, and u.movedTo gets a new artifact whose v1 has the moved
// latest's content (its manifest: no bytes are copied), mtime, mode,
// description and run, as a rename onto a key copies them. So key@vN shows
// what it showed before the rename. Annotations, collections and lineage
// are the versions': they stay with the history. Nothing is taken back
// when key holds something again (another workstation wrote it, or the
// CLI), or u.movedTo shows another version than the rename left there
// (written, renamed or removed since), or is being written here.
func (s *Stage) takeBack(ctx context.Context, key string, u unlinkedKey) {
	// Another File of key committing meanwhile would make key a new
	// artifact between the check and the rename back: it waits.
	unlock := s.keys.lockSave(ctx, key)
	defer unlock()
	if _, err := s.cat.Versions(ctx, key, true); !errors.Is(err, catalog.ErrNotFound) {
		return
	}
	if s.Writing(u.movedTo) {
		return
	}
	l, err := s.cat.ByKey(ctx, u.movedTo, 0)
	if err != nil || l.UID != u.uid || l.Kind != cache.KindFile {
		return
	}
	lctx := s.lazy(ctx)
	if _, err := s.cat.Rename(lctx, u.movedTo, key); err != nil {
		s.log.Warn("lamina mount: a file written anew after a rename away starts a new history", "key", key, "renamed_to", u.movedTo, "err", err)
		return
	}
	suffix, otype := l.Suffix, l.OType
	if sx := ref.Suffix(u.movedTo); sx != suffix {
		suffix, otype = sx, ref.RenamedOType(otype, suffix, sx, l.Kind == cache.KindFolder)
	}
	// Two transactions: a failure (or a crash) between them leaves the
	// backup name empty, its bytes key@vN.
	saved, err := s.cat.Save(lctx, []catalog.NewVersion{{Key: u.movedTo, Kind: l.Kind, Suffix: suffix, OType: otype,
		NObservations: l.NObservations, NFiles: l.NFiles, Size: l.Size, Digest: l.Digest, Manifest: l.Manifest,
		Description: l.Description, CreatedBy: l.CreatedBy, CreatedAt: time.Now().UTC(), Mtime: l.Mtime,
		Run: l.Run, Mode: l.Mode}})
	if err != nil {
		s.log.Warn("lamina mount: a renamed file's history went back to its name; the new name is empty", "key", key, "renamed_to", u.movedTo, "err", err)
	}
	if err == nil && !saved[0].Unchanged {
		if fn := s.committed.Load(); fn != nil {
			(*fn)(saved[0].Version)
		}
	}
	if fn := s.movedBack.Load(); fn != nil {
		(*fn)(key, u.movedTo, l.Version)
	}
	s.changed(key, u.movedTo)
}

// OnMovedBack sets what is told that the history of key, renamed to
// backup, came back to key (takeBack): backup's names (backup@v1 …
// backup@vN, its sidecars) show another artifact now, of one version. It
// is called from the call that committed or renamed onto key, before the
// key's new version is saved, and must not block.
func (s *Stage) OnMovedBack(fn func(key, backup string, versions int)) { s.movedBack.Store(&fn) }

// freshKey is a key whose first version this Stage committed: the stem
// of its artifact, and when the File that wrote it was started.
type freshKey struct {
	stem    string
	started time.Time
}

// startedLocked returns when the earliest open File of key not unlinked
// was started, or def if none is earlier. Called with s.mu held.
func (s *Stage) startedLocked(key string, def time.Time) time.Time {
	t := def
	for _, f := range s.open[key] {
		if !f.deleted && (t.IsZero() || f.started.Before(t)) {
			t = f.started
		}
	}
	return t
}

// keepFolder makes the folder of key persist once it is emptied.
func (s *Stage) keepFolder(ctx context.Context, key string) {
	if dir := path.Dir(key); dir != "." {
		if err := s.cat.MakeFolder(ctx, dir); err != nil {
			s.log.Debug("lamina mount: keep folder", "dir", dir, "err", err)
		}
	}
}

// Rename moves key from to key to: open Files of from commit to to, open
// Files of to make no version (as Unlink's: the file they write was
// replaced), and the catalog renames (a new version of to when it exists,
// DESIGN §3). A source this mount created (a temporary file) leaves no
// trace in the trash, unless something refers to it (annotations, a
// collection, a run's input: catalog.PurgeUnreferenced). It returns the version to shows after, if the
// catalog answered one.
func (s *Stage) Rename(ctx context.Context, from, to string) (catalog.Version, error) {
	return s.RenameFile(ctx, from, to, "")
}

// RenameFile is Rename for a caller that knows the stem of the artifact
// it saw at from ("" if none): when the rename moves that artifact to a
// free key that is a backup's name (backupName: mv f f.bak, perl -i.bak,
// sed -i.bak), or puts it in the trash under a new version of to, a
// commit of from within the window takes its history back
// (restoreUnlinkedFor), so that from@vN keeps showing what it showed.
func (s *Stage) RenameFile(ctx context.Context, from, to, stem string) (catalog.Version, error) {
	if err := ref.CheckKey(to); err != nil {
		return catalog.Version{}, err
	}
	s.mu.Lock()
	moved := s.open[from]
	fk := s.fresh[from]
	fresh := fk.stem
	started := s.startedLocked(from, fk.started)
	s.mu.Unlock()
	if stem == "" {
		stem = fresh
	}
	back := false
	if from != to {
		// Onto a key unlinked within the window (a temporary renamed over
		// a removed output, rm B; mv C B, rsync again after rm -r): its
		// versions come back first, as for a commit of the key; then the
		// rename makes a version of to, or none for the same bytes. The
		// window runs to the source's creation when this Stage made it.
		// A key renamed away to from a moment ago (mv f g; mv g f) is
		// only renamed back: the catalog's rename moves its history, and
		// from is no key renamed away then.
		back = s.restoreUnlinkedFor(ctx, to, started, from)
	}
	v, err := s.cat.Rename(s.lazy(ctx), from, to)
	if errors.Is(err, catalog.ErrNotFound) && (len(moved) > 0 || s.hasFailed(from)) {
		// Only staged so far (open, or a failed close of a new key:
		// FailedPending): its commit goes to the new name, which a
		// link there no longer holds (as the catalog's Rename replaces it).
		err = s.cat.RemoveLink(s.lazy(ctx), to)
		if errors.Is(err, catalog.ErrNotFound) {
			err = nil
		}
	}
	if err != nil {
		return catalog.Version{}, err
	}
	s.mu.Lock()
	replaced := false
	if from != to {
		// Writers of the file the rename replaced hold a file no name
		// shows now (POSIX: the replaced inode): their closes must not
		// make a version of to over what the rename put there.
		for _, f := range s.open[to] {
			replaced = replaced || !f.deleted
			f.deleted = true
		}
	}
	if len(moved) > 0 {
		for _, f := range moved {
			f.key = to
		}
		s.open[to] = append(s.open[to], moved...)
		delete(s.open, from)
	}
	delete(s.fresh, from)
	s.mu.Unlock()
	if replaced {
		s.log.Debug("lamina mount: a file renamed over one being written; its writers' later changes will be dropped", "key", to)
	}
	if from != to {
		s.dropFailedOf(to) // as its writers': the file was replaced
		s.renameFailed(from, to)
	}
	for _, f := range moved {
		f.mu.Lock()
		if f.closed {
			_ = f.writeJournal(stateClosed)
		} else {
			_ = f.writeJournal(stateOpen)
		}
		f.mu.Unlock()
	}
	// A backup's name (f → f.bak) is never a temporary's target: the
	// file keeps its history for the take-back, fresh or not.
	backup := from != to && backupName(from, to)
	if fresh != "" && v.UID != "" && !strings.HasPrefix(v.UID, fresh) && !backup {
		// Renamed onto an existing key (a fresh file moved to a free key
		// keeps its artifact), a fresh source went to the trash: a
		// temporary name leaves nothing behind, whether the target took
		// a new version or already held the same bytes (no version).
		// PurgeTrashed checks again, in its own transaction, that nothing
		// there is live: a version another writer saved at the name since
		// the check here was purged with it (Purge deletes every version).
		if vs, verr := s.cat.Versions(ctx, from, true); verr == nil && len(vs) == 1 && vs[0].Trashed {
			s.purgeTemporary(ctx, from, vs)
		}
	}
	if from != to && stem != "" && v.UID != "" && !back {
		s.noteRenamedAway(ctx, from, to, stem, fresh, v)
	}
	s.keepFolder(s.lazy(ctx), from)
	s.changed(from, to)
	return v, nil
}

// backupName reports whether to names a backup of from, whose history a
// commit of from within the window takes back (takeBack): to is in from's
// folder, and its name is from's name, or a dot and from's name (a hidden
// backup, for a name that has no dot first), then a suffix that starts
// with neither a letter nor a digit: f.bak, f.orig, f.old, f.2026-11-28,
// f_old, f.~1~, JetBrains' f___jb_old___, .f.bak. Any other rename is a
// move (mv f archive/f, mv f g, mv f f2): the history stays at to, with
// its annotations (lamina search finds it there).
func backupName(from, to string) bool {
	dir, name := path.Split(from)
	tdir, tname := path.Split(to)
	if dir != tdir {
		return false
	}
	rest, ok := strings.CutPrefix(tname, name)
	if !ok && !strings.HasPrefix(name, ".") {
		rest, ok = strings.CutPrefix(tname, "."+name)
	}
	if !ok || rest == "" {
		return false
	}
	r, _ := utf8.DecodeRuneInString(rest)
	return !unicode.IsLetter(r) && !unicode.IsDigit(r)
}

// noteRenamedAway remembers a rename of from, whose artifact has the stem
// stem, to to, which shows v now, for a commit of from within the window
// (restoreUnlinkedFor). When v is of that artifact, it moved to to, a free
// key, and when to is a backup's name (backupName) the commit takes the
// history back (takeBack); a move elsewhere is not noted. Else to got a
// new version and from went to the trash, as by an unlink: the commit
// restores it (a second sed -i.bak renames f onto the f.bak of the first).
// A temporary this Stage wrote (fresh: tool > out.tmp; mv out.tmp out)
// renamed onto a key was purged (Rename), and is not noted.
func (s *Stage) noteRenamedAway(ctx context.Context, from, to, stem, fresh string, v catalog.Version) {
	run := runOf(ctx)
	if !strings.HasPrefix(v.UID, stem) {
		if fresh == stem && !backupName(from, to) {
			return // a temporary renamed into place
		}
		vs, err := s.cat.Versions(ctx, from, true)
		if err != nil {
			return
		}
		var at time.Time
		for _, v := range vs {
			if !v.Trashed {
				return // written again already
			}
			if v.TrashedAt != nil && v.TrashedAt.After(at) {
				at = *v.TrashedAt // the rename's entry: the latest
			}
		}
		s.noteUnlinked(from, at, run)
		return
	}
	if !backupName(from, to) {
		return // a move: the history stays at to
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pruneKeptLocked(now)
	if len(s.unlinked) >= maxUnlinked {
		return
	}
	s.unlinked[from] = unlinkedKey{at: now, run: run, movedTo: to, uid: v.UID}
	s.windowChangedLocked()
}

// purgeTemporary deletes for good the trashed versions vs of key. Their
// tombstone is queued first: a purge storage could not learn of would
// leave records there that import-catalog takes for versions an export
// lacks. Without it the temporary stays in the trash.
func (s *Stage) purgeTemporary(ctx context.Context, key string, vs []catalog.Version) {
	var id string
	if t := s.opts.Tombstones; t != nil {
		var err error
		if id, err = t.Prepare(vs); err != nil {
			s.log.Warn("lamina mount: temporary left in the trash: its purge could not be recorded", "key", key, "err", err)
			return
		}
	}
	// Unreferenced: a file this mount created is a temporary only while
	// nothing refers to it; one annotated, put in a collection or read by
	// a run stays in the trash as any renamed-over file's source would.
	pvs, err := s.cat.PurgeTrashed(ctx, key, catalog.PurgeUnreferenced)
	if errors.Is(err, catalog.ErrWrittenAgain) {
		s.log.Info("lamina mount: temporary written again since it was renamed: kept", "key", key)
	} else if errors.Is(err, catalog.ErrReferenced) {
		s.log.Info("lamina mount: renamed file kept in the trash: other records refer to it", "key", key, "why", err)
	} else if err != nil {
		s.log.Warn("lamina mount: purge temporary", "key", key, "err", err)
	}
	if t := s.opts.Tombstones; t != nil {
		t.Done(id, pvs) // checks against the catalog what an error left unsure
	}
}

// RenameFolder moves a folder and everything under it.
func (s *Stage) RenameFolder(ctx context.Context, from, to string) error {
	if err := s.cat.RenameFolder(ctx, from, to); err != nil {
		return err
	}
	s.mu.Lock()
	var keys []string
	var moved []*File
	for k, l := range s.open {
		if strings.HasPrefix(k, from+"/") {
			nk := to + k[len(from):]
			for _, f := range l {
				f.key = nk
			}
			s.open[nk] = append(s.open[nk], l...)
			delete(s.open, k)
			keys = append(keys, k, nk)
			moved = append(moved, l...)
		}
	}
	s.mu.Unlock()
	// As Rename's for one key: failed closes under the folder commit
	// under its new name, and the journals of its open Files name their
	// new keys (Recover, lost+found/).
	s.renameFailedUnder(from, to)
	for _, f := range moved {
		f.mu.Lock()
		if f.closed {
			_ = f.writeJournal(stateClosed)
		} else {
			_ = f.writeJournal(stateOpen)
		}
		f.mu.Unlock()
	}
	s.keepFolder(ctx, from)
	s.changed(append(keys, from, to)...)
	return nil
}

// TakeAttrs gives the mtime or mode to the newest open File of key whose
// bytes are not committed yet, and returns it; nil if there is none. Its
// commit makes the version with them: the kernel sends futimens(2) of a
// writable descriptor, as `cp -p` and tar set the mtime after the last
// write, as a SETATTR without the handle, and set on the latest version
// (SetAttrs) that mtime would give way to the commit's at close.
func (s *Stage) TakeAttrs(key string, a catalog.Attrs) *File {
	s.mu.Lock()
	open := slices.Clone(s.open[key])
	s.mu.Unlock()
	for _, f := range slices.Backward(open) {
		if f.takeAttrs(a) {
			return f
		}
	}
	return nil
}

// takeAttrs sets a on f if f holds bytes to commit.
func (f *File) takeAttrs(a catalog.Attrs) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.s.mu.Lock()
	deleted := f.deleted
	f.s.mu.Unlock()
	if f.released || deleted || !f.dirty || f.broken != nil {
		return false
	}
	if a.Mtime != nil {
		f.mtime = *a.Mtime
	}
	if a.Mode != nil {
		f.mode = *a.Mode & 0o7777
	}
	f.touched = true
	f.mirror()
	return true
}

// SetAttrs sets the mtime or mode (permission bits, as chmod(2) takes
// them) of key without a new version; open Files of a key never committed
// take them instead.
func (s *Stage) SetAttrs(ctx context.Context, key string, a catalog.Attrs) (catalog.Version, error) {
	ca := a
	if a.Mode != nil {
		m := catalog.ModeOf(*a.Mode)
		ca.Mode = &m
	}
	v, err := s.cat.SetAttrs(s.lazy(ctx), key, ca) // touch * commits once, as rm -rf
	if errors.Is(err, catalog.ErrNotFound) {
		if f := s.Pending(key); f != nil {
			if a.Mtime != nil {
				f.SetMtime(*a.Mtime)
			}
			if a.Mode != nil {
				f.SetMode(*a.Mode)
			}
			return catalog.Version{}, nil
		}
	}
	if err == nil {
		s.followAttrs(key, a)
		s.changed(key)
	}
	return v, err
}

// followAttrs gives a, set on key's latest version, to the open Files of
// key that hold nothing to commit (TakeAttrs gives it to one that does):
// they show that version, to their writer's fstat and to a stat of the
// path that the kernel answers through an open handle, and a write
// through them later keeps the chmod. Before, such a File showed the mode
// it was opened with.
func (s *Stage) followAttrs(key string, a catalog.Attrs) {
	s.mu.Lock()
	open := slices.Clone(s.open[key])
	s.mu.Unlock()
	for _, f := range open {
		f.mu.Lock()
		if !f.dirty && !f.released {
			if a.Mtime != nil {
				f.mtime = *a.Mtime
			}
			if a.Mode != nil {
				f.mode = *a.Mode & 0o7777
			}
		}
		f.mu.Unlock()
	}
}

// Truncate is truncate(2) on a path: the newest open File of key takes it;
// otherwise it makes a new version at once.
func (s *Stage) Truncate(ctx context.Context, key string, size int64) (catalog.Version, error) {
	if f := s.Pending(key); f != nil {
		if taken, err := f.truncateOpen(ctx, size); taken {
			return catalog.Version{}, err
		}
	}
	base, err := s.cat.ByKey(catalog.Fresh(ctx), key, 0) // copied on write: never a cached answer
	if err != nil {
		return catalog.Version{}, err
	}
	if base.Size == size {
		return base, nil
	}
	f, err := s.Open(ctx, key, base, false)
	if err != nil {
		return catalog.Version{}, err
	}
	f.SetRun(runOf(ctx)) // truncate(2) by a tracked process: its output
	if err := f.Truncate(ctx, size); err != nil {
		f.Release(ctx)
		return catalog.Version{}, err
	}
	// Release commits, whatever the size: a Flush leaves a File cut to 0
	// for its Release (a shell's redirect), and the version read back then
	// was the one before the truncate, which the mount showed until a
	// remount. The version is the commit's own, not the catalog's answer.
	if err := f.Release(ctx); err != nil {
		return catalog.Version{}, err
	}
	if v, ok := f.Committed(); ok {
		return v, nil
	}
	return s.cat.ByKey(catalog.Fresh(ctx), key, 0)
}

// Symlink records a symbolic link.
func (s *Stage) Symlink(ctx context.Context, key, target string) error {
	if err := s.cat.Symlink(ctx, key, target); err != nil {
		return err
	}
	s.changed(key)
	return nil
}

// Mkdir records a folder that persists while empty.
// lazy marks ctx for a change the catalog may commit with the closes
// around it (catalog.Lazy), when commits are deferred (SyncEvery).
func (s *Stage) lazy(ctx context.Context) context.Context {
	if s.opts.SyncEvery > 0 {
		return catalog.Lazy(ctx)
	}
	return ctx
}

func (s *Stage) Mkdir(ctx context.Context, key string) error {
	if err := s.cat.MakeFolder(s.lazy(ctx), key); err != nil {
		return err
	}
	s.changed(key)
	return nil
}

// Rmdir removes an empty folder. The folder it was in persists, as at
// Unlink: a folder that is only a prefix of keys saved from the CLI has no
// record, and would vanish with its last subfolder (rm -r then fails on it).
func (s *Stage) Rmdir(ctx context.Context, key string) error {
	ctx = s.lazy(ctx)
	if err := s.cat.RemoveFolder(ctx, key); err != nil {
		return err
	}
	s.keepFolder(ctx, key)
	s.changed(key)
	return nil
}

// CommitPath commits the file at p (a scratch file renamed onto a key) as
// the next version of key, with p's mtime and mode.
func (s *Stage) CommitPath(ctx context.Context, key, p string) (catalog.Version, error) {
	if err := ref.CheckKey(key); err != nil {
		return catalog.Version{}, err
	}
	fh, err := os.Open(p)
	if err != nil {
		return catalog.Version{}, err
	}
	defer fh.Close()
	info, err := fh.Stat()
	if err != nil {
		return catalog.Version{}, err
	}
	return s.commitFile(ctx, key, fh, info.ModTime(), uint32(info.Mode().Perm()), "", false)
}
