package cache

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lamina-bio/lamina/ref"
	"github.com/lamina-bio/lamina/storage"
	"github.com/lamina-bio/lamina/storage/retry"
	"golang.org/x/sync/errgroup"
)

// Objects is the part of a storage backend the Store uses. Put must not
// keep data once it returns: the Store reuses pack buffers.
type Objects interface {
	Put(ctx context.Context, name string, data []byte) error
	Get(ctx context.Context, name string) ([]byte, error)
	GetRange(ctx context.Context, name string, off, n int64) ([]byte, error)
	Stat(ctx context.Context, name string) (storage.Info, error)
	Delete(ctx context.Context, name string) error
	List(ctx context.Context, prefix string, fn func(storage.Info) error) error
	Sync(ctx context.Context) error
}

// Store reads and writes chunked content. It is safe for concurrent use.
type Store struct {
	obj     Objects
	idx     *Index
	params  Params
	workers int
	uploads int // packs one Writer writes at once (SetPackUploads)
	// packWait is how long a read waits for a pack not in storage yet
	// (SetPackWait).
	packWait time.Duration
	gaveUpMu sync.Mutex
	gaveUp   map[string]time.Time // packs a read waited for in vain, and when (awaitPack)

	mu        sync.Mutex // guards manifests
	manifests map[Ref]*Manifest

	// unsynced is set by CommitNoSync and cleared by Sync.
	unsynced atomic.Bool
	syncMu   sync.Mutex // serialises Sync

	// idxPending holds the blobs that commits without sync stored, for the
	// index at the next Sync: opening the index file (open, flock, mmap) and
	// a bbolt transaction per close of a small file cost the mount more than
	// its chunking (docs/write-bench.md). Sessions of this Store find them
	// here meanwhile; other processes miss them until Sync, which costs a
	// second copy, never a wrong answer. gc's grace period keeps their packs.
	idxMu      sync.Mutex
	idxPending map[ref.Digest]Loc

	// packsSeen holds when a pack the index named was last found in
	// storage. The index is per machine: another workstation of a team
	// may have gc'd a pack it still names, and a save must not reuse
	// chunks that are gone (it stores them again).
	seenMu     sync.Mutex
	packsSeen  map[string]time.Time
	cond       map[string]bool // packs gc marked for deletion (condemned.go)
	condFailed time.Time       // when the last listing of the marks for a reuse failed
	condAt     time.Time       // when cond was listed; zero: list again
}

// packSeenFor is how long a pack found in storage is taken to be there.
const packSeenFor = time.Minute

// NewStore returns a Store over obj that chunks with p and deduplicates
// through the index file at indexPath.
func NewStore(obj Objects, indexPath string, p Params) (*Store, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	idx, err := OpenIndex(indexPath)
	if err != nil {
		return nil, err
	}
	return &Store{obj: obj, idx: idx, params: p, workers: max(2, runtime.GOMAXPROCS(0)), uploads: 8,
		manifests: map[Ref]*Manifest{}, idxPending: map[ref.Digest]Loc{}}, nil
}

// SetPackUploads sets how many finished packs one Writer writes at once
// (default 8). Each holds up to 16 MiB until written: a long-lived process
// writing to local storage, where a write is a copy into the page cache,
// keeps its memory down with 2. Call it before the first NewWriter.
func (s *Store) SetPackUploads(n int) {
	if n > 0 {
		s.uploads = n
	}
}

// SetPackWait makes a read of a pack that is not in storage wait for it, up
// to d, before it fails. On shared S3 storage a version another workstation
// saved reaches the catalog before its daemon's upload queue has put the
// packs (cache/upload.go), usually for well under a second. 0, the default
// (local storage, where a missing pack is lost; a catalog no other
// workstation writes to), fails at once.
//
// A wait is not repeated: once a read of a pack waited the whole of d in
// vain, later reads of it fail at once for PackGaveUpFor (a lost pack
// stalled every READ of its file for d, and the kernel retries failed
// READs: 6 minutes for a 200 MiB file). Nor is a pack of a version saved
// more than PackUploadWindow ago waited for (WithVersion): its upload
// would have been done long before (or it waits in a queue that will
// not empty within the wait either). Setting it forgets the packs waited
// for in vain.
func (s *Store) SetPackWait(d time.Duration) {
	s.packWait = d
	s.gaveUpMu.Lock()
	clear(s.gaveUp)
	s.gaveUpMu.Unlock()
}

// PackGaveUpFor is how long reads of a pack that a read waited for in vain
// fail at once: short, since the pack may still come (a long upload
// backlog on the saving workstation).
const PackGaveUpFor = 2 * time.Minute

// PackUploadWindow is how long after a version was saved a read of it
// waits for a pack not in storage. The saving workstation's clock says
// when: an hour leaves room for clocks that disagree (a reader that took
// a fresh version for an old one would fail instead of waiting the
// fraction of a second its upload takes).
const PackUploadWindow = time.Hour

// maxGaveUp bounds the packs remembered as waited for in vain.
const maxGaveUp = 1024

// Version is what a read is of, for the pack wait: WithVersion.
type Version interface {
	// SavedAt is when the version was saved, ok false if that is not
	// known. It is asked only when a pack is missing.
	SavedAt() (t time.Time, ok bool)
}

type versionKey struct{}

// VersionAt is a Version saved at t, for a reader that knows when (the
// zero time: not known).
func VersionAt(t time.Time) Version { return versionAt(t) }

type versionAt time.Time

func (t versionAt) SavedAt() (time.Time, bool) { return time.Time(t), !time.Time(t).IsZero() }

// WithVersion tells the reads made with ctx that they read content of v.
func WithVersion(ctx context.Context, v Version) context.Context {
	return context.WithValue(ctx, versionKey{}, v)
}

// ErrPackMissing is a read of a pack that storage does not hold: not
// uploaded yet by the workstation that saved it, or lost. The error names
// the pack, and still matches fs.ErrNotExist.
var ErrPackMissing = errors.New("pack not in storage")

// awaitPack runs read, and again after growing pauses while it fails
// because pack is not in storage yet, up to the pack wait.
func (s *Store) awaitPack(ctx context.Context, pack string, read func() error) error {
	err := read()
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	// Absent and marked: gc deleted it (it marks only packs in storage,
	// and no upload brings a deleted pack back), nothing to wait for. Asked
	// only before a wait (or a failure, with none): the reads that fail at
	// once below cost no request more.
	deleted := func() error {
		if note, ok := s.deletedByGC(ctx, pack); ok {
			return fmt.Errorf("%w: %s: %w (%s); the version it belonged to was deleted for good: %w", ErrPackMissing, pack, ErrPackDeleted, note, err)
		}
		return nil
	}
	if s.packWait <= 0 {
		if err := deleted(); err != nil {
			return err
		}
		return fmt.Errorf("%w: %s: %w", ErrPackMissing, pack, err)
	}
	if at, ok := s.gaveUpOn(pack); ok {
		return fmt.Errorf("%w: %s: %w (a read at %s waited %s for its upload in vain: not waiting again until %s; %s)", ErrPackMissing, pack, err, at.Format(time.TimeOnly), s.packWait, at.Add(PackGaveUpFor).Format(time.TimeOnly), stillQueued)
	}
	if v, ok := ctx.Value(versionKey{}).(Version); ok {
		if at, ok := v.SavedAt(); ok && time.Since(at) > PackUploadWindow {
			return fmt.Errorf("%w: %s: %w (its version was saved at %s, so not waited for; %s)", ErrPackMissing, pack, err, at.Local().Format("2006-01-02 15:04:05 MST"), stillQueued)
		}
	}
	if err := deleted(); err != nil {
		return err
	}
	start := time.Now()
	deadline := start.Add(s.packWait)
	if until, ok := ctx.Value(packWaitUntilKey{}).(time.Time); ok && until.Before(deadline) {
		if !time.Now().Before(until) {
			return fmt.Errorf("%w: %s: %w (not waited for: the waits for uploads of this task, bounded in all, are spent; %s)", ErrPackMissing, pack, err, stillQueued)
		}
		deadline = until
	}
	for pause := 20 * time.Millisecond; errors.Is(err, fs.ErrNotExist) && time.Now().Before(deadline); pause = min(2*pause, time.Second) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
		}
		err = read()
	}
	if errors.Is(err, fs.ErrNotExist) {
		s.giveUp(pack)
		return fmt.Errorf("%w: %s: %w (waited %s for its upload by the workstation that saved it; %s)", ErrPackMissing, pack, err, time.Since(start).Round(time.Second), stillQueued)
	}
	return err
}

// ErrPackDeleted is a read of a pack that gc deleted (its mark says so).
// It comes wrapped with ErrPackMissing.
var ErrPackDeleted = errors.New("deleted by gc")

// MarkNote is what a gc mark says (what: "marked", then "deleted"): who
// wrote it, when, and a nonce, so that each mark written differs from any
// other (MarkNotes). deletedByGC reads it back.
func MarkNote(what, user string) string {
	host, _ := os.Hostname()
	var nonce [8]byte
	rand.Read(nonce[:])
	return fmt.Sprintf("%s by lamina gc on %s (%s) at %s (%x)\n", what, host, user, time.Now().UTC().Format(time.RFC3339Nano), nonce)
}

// deletedByGC reads the gc mark (MarkNote) of pack, absent from storage:
// what it says (who and when), if there is one. A mark outlives its pack
// KeepDeletedMarks, until the next gc; after that (or after a gc with no
// settle period, which writes none) a deleted pack is only missing.
func (s *Store) deletedByGC(ctx context.Context, pack string) (string, bool) {
	if !isPackID(pack) {
		return "", false
	}
	b, err := s.getStored(ctx, condemnedName(pack))
	if err != nil {
		return "", false
	}
	note := strings.TrimSpace(string(b))
	if i := strings.LastIndex(note, " ("); i > 0 && strings.HasSuffix(note, ")") {
		note = note[:i] // the nonce
	}
	// "marked by": deleted before its mark was rewritten as deleted.
	for _, p := range []string{"deleted by ", "marked by "} {
		note = strings.TrimPrefix(note, p)
	}
	return note, true
}

type packWaitUntilKey struct{}

// WithPackWaitUntil bounds all the waits for packs not uploaded yet
// (SetPackWait) of the reads made with ctx to end by until: a task that
// reads many such packs (Recover at a mount, which must get ready in time)
// waits for them in all no longer than that, not the pack wait each.
func WithPackWaitUntil(ctx context.Context, until time.Time) context.Context {
	return context.WithValue(ctx, packWaitUntilKey{}, until)
}

// stillQueued is what a missing pack may mean, for the errors of awaitPack.
const stillQueued = "if that workstation still holds it in its upload queue (offline, or a long backlog: `lamina status` there shows it, `lamina cache push` sends it), it reads once uploaded; otherwise it is lost from storage"

// gaveUpOn says whether a read waited the whole pack wait for pack in vain
// less than PackGaveUpFor ago, and when.
func (s *Store) gaveUpOn(pack string) (time.Time, bool) {
	s.gaveUpMu.Lock()
	defer s.gaveUpMu.Unlock()
	at, ok := s.gaveUp[pack]
	if ok && time.Since(at) > PackGaveUpFor {
		delete(s.gaveUp, pack)
		return time.Time{}, false
	}
	return at, ok
}

// giveUp notes that a read waited for pack in vain.
func (s *Store) giveUp(pack string) {
	s.gaveUpMu.Lock()
	defer s.gaveUpMu.Unlock()
	if s.gaveUp == nil {
		s.gaveUp = map[string]time.Time{}
	}
	if len(s.gaveUp) >= maxGaveUp {
		for p, at := range s.gaveUp {
			if time.Since(at) > PackGaveUpFor {
				delete(s.gaveUp, p)
			}
		}
		if len(s.gaveUp) >= maxGaveUp {
			clear(s.gaveUp)
		}
	}
	s.gaveUp[pack] = time.Now()
}

// PutStats counts what a write did.
type PutStats struct {
	Chunks      int   // chunks in the content
	Kept        int   // of those, taken as they were from the base of PutFileOver
	NewChunks   int   // chunks that were not stored before
	Bytes       int64 // bytes of content
	StoredBytes int64 // bytes added to storage (after compression)
	// Mark is the whole-file digest's state where the file's last chunk
	// starts, when that chunk was hashed (PutFile, PutFileOver): the mark
	// a PutFileOver of an append to the file takes. Not summed by add.
	Mark HashMark
}

func (s *PutStats) add(o PutStats) {
	s.Chunks += o.Chunks
	s.Kept += o.Kept
	s.NewChunks += o.NewChunks
	s.Bytes += o.Bytes
	s.StoredBytes += o.StoredBytes
}

// Progress is told how many more bytes have been read; it may be nil.
type Progress func(n int64)

// Writer is one write session: content put through it is packed, and becomes
// durable and known to the index at Commit. Its methods are safe for
// concurrent use. A Writer that is not committed leaves only unreferenced
// packs, which gc removes.
type Writer struct {
	s *Store

	mu      sync.Mutex // guards cur, known, added
	cur     *packBuilder
	known   map[ref.Digest]Loc // blobs this session wrote or found in the index
	added   map[ref.Digest]Loc // blobs this session wrote: for the index at Commit
	uploads errgroup.Group     // packs being written
	upErr   error              // first upload error (guarded by mu)
	noDedup bool               // NewWriterNoDedup

	reused   map[string]bool // packs of blobs found in the index (guarded by mu)
	reusedAt time.Time       // when the marks that allowed the oldest reuse were listed
}

// NewWriter starts a write session.
func (s *Store) NewWriter() *Writer {
	w := &Writer{s: s, known: map[ref.Digest]Loc{}, added: map[ref.Digest]Loc{}}
	w.uploads.SetLimit(s.uploads)
	keepFullBufs(s.uploads + 1) // those being written and the one being filled
	return w
}

// NewWriterNoDedup starts a write session that stores every blob again
// rather than trusting the index, and whose Commit points the index at the
// new copies: for recovery after a crash of the machine lost packs that the
// index (or the catalog) already knew (stage.Recover).
func (s *Store) NewWriterNoDedup() *Writer {
	w := s.NewWriter()
	w.noDedup = true
	return w
}

// lookupBatch is how many chunks share one index lookup.
const lookupBatch = 64

type pending struct {
	idx  int
	d    ref.Digest
	data []byte
	buf  *[]byte
	refs *atomic.Int32 // the whole-file hasher and the batch: the last one returns buf
}

func (p pending) release() {
	if p.refs.Add(-1) == 0 {
		*p.buf = p.data[:0]
		bufPool.Put(p.buf)
	}
}

// PutFile chunks r and stores the chunks nothing stored yet. The reading
// goroutine only finds chunk boundaries and copies the chunks: the
// whole-file digest is computed by a goroutine of its own, and each batch
// of chunks (their digests, the index lookup, compression, packing) by one
// of the Store's workers, so that a save is not bound to one core
// (docs/s3-bench.md).
func (w *Writer) PutFile(ctx context.Context, r io.Reader, progress Progress) (File, PutStats, error) {
	return w.putFile(ctx, r, progress, reusePrefix{})
}

// reusePrefix is the head of a file that putFile takes as it is: chunks, the
// first of the file's chunks, whose bytes r (n bytes) holds, for the
// whole-file digest only.
type reusePrefix struct {
	chunks []Chunk
	n      int64
	r      io.ReaderAt
	mark   HashMark // the digest's state after mark.N ≤ n of those bytes, if any
}

// PutFileOver is PutFile of the size bytes of r, of which the first same
// bytes are those of base, content a Writer of this Store's chunk params
// stored (a version being edited in place: appended to, written in the
// middle, truncated). base's chunks that end at or before same are taken
// as they are, except its last one, which its end of file may have cut;
// only the rest is chunked, hashed, looked up and stored. A chunk's cut
// depends only on the bytes from its start to the cut, so the result is
// what PutFile of all the bytes gives: the same size, digest and chunk
// digests and sizes (TestPutFileOverSameAsPutFile). The bytes before the
// first chunk chunked are still read once, for the whole-file digest.
// When base's packs may not be reused (gc marked them, the storage cannot
// tell), it is PutFile.
//
// mark, if not zero, is base's digest state after its first mark.N bytes
// (Reader.WriteToMarked); with mark.N ≤ same those bytes are not read again.
func (w *Writer) PutFileOver(ctx context.Context, r io.ReaderAt, size int64, base File, same int64, mark HashMark, progress Progress) (File, PutStats, error) {
	k, n := reusableChunks(base, min(same, size), w.s.params)
	if k > 0 && !w.noDedup && w.mayReuse(base.Chunks[:k]) {
		pre := reusePrefix{chunks: base.Chunks[:k], n: n, r: r}
		if mark.h != nil && mark.N <= n {
			pre.mark = mark
		}
		return w.putFile(ctx, io.NewSectionReader(r, n, size-n), progress, pre)
	}
	return w.putFile(ctx, io.NewSectionReader(r, 0, size), progress, reusePrefix{})
}

// reusableChunks returns how many of base's first chunks end at or before
// same, leaving out its last chunk (cut by its end of file, not by its
// bytes) and stopping at any chunk a Chunker of p could not have cut before
// the end of a file; and the bytes they hold.
func reusableChunks(base File, same int64, p Params) (k int, n int64) {
	for k < len(base.Chunks)-1 {
		c := base.Chunks[k]
		if c.Size <= int64(p.Min) || c.Size > int64(p.Max) || c.Pack == "" || n+c.Size > same {
			break
		}
		n += c.Size
		k++
	}
	return k, n
}

// mayReuse tells whether chunks, content of a version, may be reused as
// the index's blobs are (dedup): their packs in storage and not marked for
// deletion on a list of marks fresh enough; it records the reuse for
// Commit's recheck.
func (w *Writer) mayReuse(chunks []Chunk) bool {
	found := map[ref.Digest]Loc{}
	for _, c := range chunks {
		found[c.Digest] = c.Loc
	}
	want := len(found)
	at := w.s.dropCondemned(found, w.s.dropGone(found))
	if len(found) != want || at.IsZero() {
		return false
	}
	w.mu.Lock()
	w.noteReuse(found, at)
	w.mu.Unlock()
	return true
}

func (w *Writer) putFile(ctx context.Context, r io.Reader, progress Progress, pre reusePrefix) (File, PutStats, error) {
	ch, err := NewChunker(r, w.s.params)
	if err != nil {
		return File{}, PutStats{}, err
	}
	defer ch.Release()
	var (
		f     File
		st    PutStats
		batch []pending
	)
	// The reused head, as it is; the chunks read below come after it.
	f.Size = pre.n
	f.Chunks = append([]Chunk(nil), pre.chunks...)
	st.Chunks, st.Kept, st.Bytes = len(pre.chunks), len(pre.chunks), pre.n
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(w.s.workers)
	var mu sync.Mutex // guards f.Chunks and st while workers run

	// The whole-file digest, in file order, off the reading goroutine:
	// the reused head's bytes first.
	toHash := make(chan []pending, 8)
	type digestErr struct {
		d   ref.Digest
		err error
	}
	whole := make(chan digestErr, 1)
	var mark HashMark // the state before the last chunk hashed; read after whole
	go func() {
		h, from := ref.NewHasher(), int64(0)
		if pre.mark.h != nil {
			h, from = pre.mark.h.Clone(), pre.mark.N
		}
		var err error
		if pre.n > from {
			var n int64
			n, err = io.CopyBuffer(h, io.NewSectionReader(pre.r, from, pre.n-from), make([]byte, 1<<20))
			if err == nil && n != pre.n-from {
				err = fmt.Errorf("cache: read %d bytes of %d: %w", from+n, pre.n, io.ErrUnexpectedEOF)
			}
		}
		// Each chunk is hashed once the next one comes: the last, with
		// the state before it kept (one Clone per file).
		pos := pre.n
		var held *pending
		for b := range toHash {
			for k := range b {
				if held != nil {
					h.Write(held.data)
					pos += int64(len(held.data))
					held.release()
				}
				held = &b[k]
			}
		}
		if held != nil {
			mark = HashMark{N: pos, h: h.Clone()}
			h.Write(held.data)
			held.release()
		}
		whole <- digestErr{h.Digest(), err}
	}()
	hashing := true
	stopHashing := func() (ref.Digest, error) {
		if !hashing {
			return ref.Digest{}, nil
		}
		hashing = false
		close(toHash)
		de := <-whole
		return de.d, de.err
	}
	defer stopHashing()

	process := func(b []pending) error {
		for k := range b {
			b[k].d = sumChunk(b[k].data)
		}
		mu.Lock()
		for _, p := range b {
			f.Chunks[p.idx].Digest = p.d
		}
		mu.Unlock()
		todo, err := w.dedup(b, &f, &mu)
		if err != nil {
			for _, p := range b {
				p.release()
			}
			return err
		}
		for k, p := range todo {
			loc, stored, err := w.putBlob(gctx, BlobChunk, p.d, p.data)
			p.release()
			if err != nil {
				for _, q := range todo[k+1:] {
					q.release()
				}
				return err
			}
			mu.Lock()
			f.Chunks[p.idx].Loc = loc
			if stored > 0 {
				st.NewChunks++
				st.StoredBytes += stored
			}
			mu.Unlock()
		}
		return nil
	}
	flush := func() {
		if len(batch) == 0 {
			return
		}
		b := batch
		batch = nil
		toHash <- append([]pending(nil), b...) // process writes b's digests
		g.Go(func() error { return process(b) })
	}
	fail := func(err error) (File, PutStats, error) {
		for _, p := range batch {
			p.release() // not handed to the hasher
			p.release()
		}
		batch = nil
		// gctx ends when a worker fails (putBlob: no space left on the
		// device): its error is the cause, not "context canceled".
		if werr := g.Wait(); werr != nil && ctx.Err() == nil && gctx.Err() != nil && errors.Is(err, gctx.Err()) {
			err = werr
		}
		return File{}, PutStats{}, err
	}
	for i := len(f.Chunks); ; i++ {
		data, err := ch.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err == nil && gctx.Err() != nil {
			err = gctx.Err()
		}
		if err != nil {
			return fail(err)
		}
		f.Size += int64(len(data))
		if progress != nil {
			progress(int64(len(data)))
		}
		bp := bufPool.Get().(*[]byte)
		buf := append((*bp)[:0], data...)
		refs := new(atomic.Int32)
		refs.Store(2)
		mu.Lock()
		f.Chunks = append(f.Chunks, Chunk{Size: int64(len(buf))})
		st.Chunks++
		st.Bytes += int64(len(data))
		mu.Unlock()
		batch = append(batch, pending{idx: i, data: buf, buf: bp, refs: refs})
		if len(batch) == lookupBatch {
			flush()
		}
	}
	flush()
	if err := g.Wait(); err != nil {
		return File{}, PutStats{}, err
	}
	if f.Digest, err = stopHashing(); err != nil {
		return File{}, PutStats{}, err
	}
	if f.Chunks == nil {
		f.Chunks = []Chunk{}
	}
	if mark.h != nil && mark.N == LastChunkStart(f) {
		st.Mark = mark
	}
	return f, st, nil
}

// zeroSums holds the digests of chunks of zeros by length (a few: a
// sparse file's holes are thousands of chunks of one length).
var zeroSums struct {
	sync.Mutex
	m map[int]ref.Digest
}

// sumChunk is ref.Sum, remembered for chunks of zeros.
func sumChunk(b []byte) ref.Digest {
	if len(b) == 0 || !isZero(b) {
		return ref.Sum(b)
	}
	zeroSums.Lock()
	d, ok := zeroSums.m[len(b)]
	zeroSums.Unlock()
	if ok {
		return d
	}
	d = ref.Sum(b)
	zeroSums.Lock()
	if len(zeroSums.m) >= 64 || zeroSums.m == nil {
		zeroSums.m = map[int]ref.Digest{}
	}
	zeroSums.m[len(b)] = d
	zeroSums.Unlock()
	return d
}

// dedup fills in the locations of chunks already stored (by this session or
// before, per the index) and returns the ones that must still be written.
// Two copies of one new chunk may both be returned; putBlob keeps one.
func (w *Writer) dedup(batch []pending, f *File, mu *sync.Mutex) ([]pending, error) {
	var ask []ref.Digest
	w.mu.Lock()
	for _, p := range batch {
		if _, ok := w.known[p.d]; !ok {
			ask = append(ask, p.d)
		}
	}
	w.mu.Unlock()
	var found map[ref.Digest]Loc
	var at time.Time
	if len(ask) > 0 && !w.noDedup {
		var err error
		if found, at, err = w.s.lookup(ask); err != nil {
			return nil, err
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.noteReuse(found, at)
	for d, l := range found {
		w.known[d] = l
	}
	mu.Lock()
	defer mu.Unlock()
	var todo []pending
	for _, p := range batch {
		if l, ok := w.known[p.d]; ok {
			f.Chunks[p.idx].Loc = l
			p.release()
			continue
		}
		todo = append(todo, p)
	}
	return todo, nil
}

// smallManifest is the size up to which a manifest is stored raw: the one of
// a small file (~300 bytes) saves ~110 bytes with zstd, for 15-40 µs of CPU
// per close of the mount (docs/write-bench.md). Readers take either codec.
const smallManifest = 1 << 10

// putBlob encodes data and adds it to the current pack, unless the session
// already holds it. It returns the location and the bytes newly stored.
func (w *Writer) putBlob(ctx context.Context, typ byte, d ref.Digest, data []byte) (Loc, int64, error) {
	var enc []byte // nil: stored raw, copied straight into the pack
	switch {
	case typ == BlobChunk && compressible(data):
		bp := bufPool.Get().(*[]byte)
		enc = encodeChunk(*bp, data)
		defer func() { *bp = enc[:0]; bufPool.Put(bp) }()
	case typ != BlobChunk && len(data) > smallManifest:
		enc = append([]byte{codecZstd}, encoder.EncodeAll(data, nil)...)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.upErr != nil {
		return Loc{}, 0, w.upErr
	}
	if l, ok := w.known[d]; ok {
		return l, 0, nil
	}
	if w.cur == nil {
		w.cur = newPackBuilder()
	}
	var l Loc
	if enc == nil {
		l = w.cur.addRaw(typ, d, data)
	} else {
		l = w.cur.add(typ, d, int64(len(data)), enc)
	}
	w.known[d] = l
	w.added[d] = l
	if w.cur.buf.Len() >= PackTarget {
		// Detach the pack before startUpload lets go of w.mu: no other
		// blob may be added to a pack being written.
		full := w.cur
		w.cur = nil
		w.startUpload(ctx, full)
	}
	return l, l.Len, nil
}

// startUpload writes a finished pack in the background. Called with w.mu
// held; releases it while waiting for an upload slot.
func (w *Writer) startUpload(ctx context.Context, p *packBuilder) {
	// The pack holds blobs of other files too: it must not die with the
	// context of the PutFile that happened to fill it. Commit waits for it.
	ctx = context.WithoutCancel(ctx)
	w.mu.Unlock()
	defer w.mu.Lock()
	w.uploads.Go(func() error {
		data, err := p.finish()
		if err == nil {
			err = w.s.obj.Put(ctx, packName(p.id), data)
		}
		// Put keeps no reference to data once it returns (the Objects
		// contract), so the buffer can serve the next pack.
		p.release()
		if err != nil {
			w.mu.Lock()
			if w.upErr == nil {
				w.upErr = err
			}
			w.mu.Unlock()
		}
		return err
	})
}

// PutFolder stores every regular file under dir and returns the folder's
// manifest (not yet stored). Symbolic links and special files are refused:
// a folder artifact holds data, not pointers to elsewhere.
func (w *Writer) PutFolder(ctx context.Context, dir string, progress Progress) (*Manifest, PutStats, error) {
	m := &Manifest{Kind: KindFolder, Files: []File{}}
	var st PutStats
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s: not a regular file (folder artifacts hold only files and folders)", p)
		}
		rel, _ := filepath.Rel(dir, p)
		fh, err := os.Open(p)
		if err != nil {
			return err
		}
		defer fh.Close()
		info, err := fh.Stat()
		if err != nil {
			return err
		}
		f, one, err := w.PutFile(ctx, fh, progress)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		f.Path = filepath.ToSlash(rel)
		f.Mode = uint32(info.Mode().Perm())
		m.Files = append(m.Files, f)
		st.add(one)
		return nil
	})
	if err != nil {
		return nil, PutStats{}, err
	}
	sort.Slice(m.Files, func(i, j int) bool { return m.Files[i].Path < m.Files[j].Path })
	return m, st, nil
}

// PutManifest stores m in the session and returns its reference.
func (w *Writer) PutManifest(ctx context.Context, m *Manifest) (Ref, error) {
	if err := m.validate(); err != nil {
		return "", err
	}
	b, d, err := encodeManifest(m)
	if err != nil {
		return "", err
	}
	l, _, err := w.putBlob(ctx, BlobManifest, d, b)
	if err != nil {
		return "", err
	}
	r := makeRef(l, d)
	w.s.remember(r, m)
	return r, nil
}

// Commit writes the last pack, makes every pack durable, and records the new
// blobs in the index. Only after Commit may a catalog point at the content.
func (w *Writer) Commit(ctx context.Context) error {
	return w.commit(ctx, true)
}

// CommitNoSync is Commit without the durability: the packs are written, so a
// catalog may point at the content at once and every reader of this machine
// sees it, and a killed process loses nothing (the kernel holds what was
// written). The index learns the new blobs at the next Store.Sync (this
// Store's sessions find them at once). A crash of the machine before the
// next Sync may lose the packs; the caller keeps what it needs to redo the
// write until Sync returns (the mount's staging folder does,
// stage.Options.SyncEvery).
func (w *Writer) CommitNoSync(ctx context.Context) error {
	return w.commit(ctx, false)
}

// Sync makes durable everything committed with CommitNoSync before it was
// called: the storage (one syncfs for local storage) and the index file. It
// is safe for concurrent use; concurrent calls share one sync when they can.
func (s *Store) Sync(ctx context.Context) error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	if !s.unsynced.Swap(false) {
		return nil
	}
	err := s.obj.Sync(ctx)
	if err == nil {
		err = s.flushIndex()
	}
	if err != nil {
		s.unsynced.Store(true)
		return fmt.Errorf("cache: sync: %w", err)
	}
	return nil
}

// flushIndex writes the pending index entries in one synced transaction,
// which also makes earlier adds without sync durable; with none pending it
// syncs the index file. Called once the packs are durable, so the index
// never points at a pack a crash could lose.
func (s *Store) flushIndex() error {
	s.idxMu.Lock()
	todo := maps.Clone(s.idxPending)
	s.idxMu.Unlock()
	if len(todo) == 0 {
		return s.idx.sync()
	}
	if err := s.idx.add(todo, false, false); err != nil {
		return err
	}
	s.idxMu.Lock()
	for d := range todo {
		delete(s.idxPending, d) // a session finds them in the index now
	}
	s.idxMu.Unlock()
	return nil
}

// lookup is Index.Lookup that first asks the entries waiting for Sync. It
// leaves out blobs of packs gone from storage or marked for deletion, and
// returns when the marks were listed. The entries waiting for Sync go
// through the marks too: gc may mark a pack this process wrote (a short
// --grace, a Sync that keeps failing), and a reuse of it must be stored
// again, or checked again at Commit (noteReuse), as any other.
func (s *Store) lookup(ds []ref.Digest) (map[ref.Digest]Loc, time.Time, error) {
	found := map[ref.Digest]Loc{}
	var ask []ref.Digest
	s.idxMu.Lock()
	for _, d := range ds {
		if l, ok := s.idxPending[d]; ok {
			found[d] = l
		} else {
			ask = append(ask, d)
		}
	}
	s.idxMu.Unlock()
	var protected map[string]bool
	if len(ask) > 0 {
		more, err := s.idx.Lookup(ask)
		if err != nil {
			return nil, time.Time{}, err
		}
		protected = s.dropGone(more)
		maps.Copy(found, more)
	}
	// Packs this process wrote are in storage unless gc deleted them,
	// which it marks first: no Stat, the marks only.
	before := len(found)
	at := s.dropCondemned(found, protected)
	if len(found) < before {
		s.idxMu.Lock()
		for _, d := range ds {
			if _, kept := found[d]; !kept {
				delete(s.idxPending, d) // the copy stored now is the one to name
			}
		}
		s.idxMu.Unlock()
	}
	return found, at, nil
}

// packStatWait bounds the Stats of the packs a reuse decision checks, and
// packStats is how many it makes at once: a close called Stat with no
// bound but the retry budget, one pack after another, and with the
// storage away each spent the whole budget (3–5 s a close, a minute on a
// hung server).
var packStatWait = 5 * time.Second

const packStats = 4

// dropGone removes from found the blobs whose pack may not be reused:
// gone from storage (NotFound: those packs are forgotten in the index
// too), or not known to be there (the storage away, a Stat that failed)
// unless this machine can put the pack back if it is gone (protect). It
// returns the packs reused on that strength, which the marks of gc could
// not be checked for either. While the storage is known not to answer
// (retry.Backend.Away) nothing is asked: writes queue, and a close must
// not wait for the storage. An error other than NotFound never removes a
// pack from the index: the pack is most likely there, and the index
// would then name the second copy a close stores, for good.
func (s *Store) dropGone(found map[ref.Digest]Loc) (protected map[string]bool) {
	now := time.Now()
	check := map[string]bool{}
	s.seenMu.Lock()
	for _, l := range found {
		if t, ok := s.packsSeen[l.Pack]; !ok || now.Sub(t) > packSeenFor {
			check[l.Pack] = true
		}
	}
	s.seenMu.Unlock()
	if len(check) == 0 {
		return nil
	}
	gone, unsure := map[string]bool{}, map[string]bool{}
	if s.storageAway() {
		maps.Copy(unsure, check)
	} else {
		// One attempt when the storage cannot be reached (a refused
		// connection): a close has a safe answer without it.
		ctx, cancel := context.WithTimeout(retry.FailFast(context.Background()), packStatWait)
		defer cancel()
		var mu sync.Mutex
		var g errgroup.Group
		g.SetLimit(packStats)
		for p := range check {
			g.Go(func() error {
				_, err := s.obj.Stat(ctx, packName(p))
				mu.Lock()
				defer mu.Unlock()
				if storage.IsNotFound(err) {
					gone[p] = true
				} else if err != nil {
					unsure[p] = true
				}
				return nil
			})
		}
		g.Wait()
	}
	s.seenMu.Lock()
	if s.packsSeen == nil {
		s.packsSeen = map[string]time.Time{}
	}
	for p := range check {
		if !gone[p] && !unsure[p] {
			s.packsSeen[p] = now
		}
	}
	s.seenMu.Unlock()
	for p := range unsure {
		if s.protect(p) {
			if protected == nil {
				protected = map[string]bool{}
			}
			protected[p] = true
		}
	}
	for d, l := range found {
		if gone[l.Pack] || (unsure[l.Pack] && !protected[l.Pack]) {
			delete(found, d)
		}
	}
	if len(gone) > 0 {
		_ = s.idx.RemovePacks(gone) // best effort: the next lookup checks again
	}
	return protected
}

// restorer is the upload queue (Uploads) below the Store, if any.
type restorer interface {
	StageRestore(name string, data []byte) error
	Restoring(name string) bool
	Staged(name string) bool
}

// storageAway reports whether the storage is known not to answer now.
func (s *Store) storageAway() bool {
	a, ok := unwrapTo[interface{ Away() bool }](s.obj)
	return ok && a.Away()
}

// protect reports whether pack p may be reused without asking the storage
// whether it is there (or marked by gc): this machine's upload queue holds
// it still (no one else can have seen it, let alone deleted it), or holds
// a copy to put back should it be gone (Uploads.StageRestore), made now
// from the block cache if every block of the pack is there. Anything else
// is stored again: a second copy costs space, a reused pack that is gone
// costs the version.
func (s *Store) protect(p string) bool {
	r, ok := unwrapTo[restorer](s.obj)
	if !ok {
		return false
	}
	name := packName(p)
	if r.Staged(name) || r.Restoring(name) {
		return true
	}
	c, ok := unwrapTo[interface {
		CachedObject(name string) ([]byte, bool)
	}](s.obj)
	if !ok {
		return false
	}
	data, ok := c.CachedObject(name)
	if !ok || !bytes.HasSuffix(data, packMagic) {
		return false
	}
	return r.StageRestore(name, data) == nil
}

// protected reports whether pack p is protected (protect) without making a
// copy.
func (s *Store) protected(p string) bool {
	r, ok := unwrapTo[restorer](s.obj)
	return ok && (r.Staged(packName(p)) || r.Restoring(packName(p)))
}

// unwrapTo returns the first of b and the backends it decorates (Unwrap)
// that is a T.
func unwrapTo[T any](b any) (T, bool) {
	for b != nil {
		if t, ok := b.(T); ok {
			return t, true
		}
		u, ok := b.(interface{ Unwrap() storage.Backend })
		if !ok {
			break
		}
		next := u.Unwrap()
		if next == nil {
			break
		}
		b = next
	}
	var zero T
	return zero, false
}

func (w *Writer) commit(ctx context.Context, durable bool) error {
	w.mu.Lock()
	if w.cur != nil {
		last := w.cur
		w.cur = nil
		w.startUpload(ctx, last)
	}
	w.mu.Unlock()
	if err := w.uploads.Wait(); err != nil {
		return err
	}
	if err := w.recheckReuse(ctx); err != nil {
		return err
	}
	if durable {
		if err := w.s.obj.Sync(ctx); err != nil {
			return err
		}
	} else {
		w.s.unsynced.Store(true)
	}
	w.mu.Lock()
	added := w.added
	w.added = map[ref.Digest]Loc{}
	w.mu.Unlock()
	if durable || w.noDedup {
		// Recovery's copies (noDedup) replace what the index says at once.
		return w.s.idx.add(added, !durable, w.noDedup)
	}
	w.s.idxMu.Lock()
	for d, l := range added {
		if _, ok := w.s.idxPending[d]; !ok { // the first copy wins, as in the index
			w.s.idxPending[d] = l
		}
	}
	w.s.idxMu.Unlock()
	return nil
}

// Abort waits for uploads in flight; what they wrote is left for gc.
func (w *Writer) Abort() { _ = w.uploads.Wait() }

// LoadManifest fetches, verifies and decodes a manifest.
func (s *Store) LoadManifest(ctx context.Context, r Ref) (*Manifest, error) {
	s.mu.Lock()
	m := s.manifests[r]
	s.mu.Unlock()
	if m != nil {
		return m, nil
	}
	l, d, err := r.Parse()
	if err != nil {
		return nil, err
	}
	// Read as a chunk is: verified, and a damaged cached copy fetched again.
	b, err := s.ReadChunk(ctx, Chunk{Digest: d, Loc: l}, nil)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if m, err = DecodeManifest(b); err != nil {
		return nil, err
	}
	s.remember(r, m)
	return m, nil
}

func (s *Store) remember(r Ref, m *Manifest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.manifests) > 1024 {
		clear(s.manifests)
	}
	s.manifests[r] = m
}

// invalidator is a caching backend that can drop bytes that turned out bad.
type invalidator interface {
	Invalidate(name string, off, n int64)
}

// ReadChunk fetches one chunk and verifies it against its digest. Bytes
// that fail verification are dropped from a caching backend (one with an
// Invalidate method, such as DiskCache) and fetched once more.
func (s *Store) ReadChunk(ctx context.Context, c Chunk, dst []byte) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		var obj []byte
		err := s.awaitPack(ctx, c.Pack, func() (err error) { obj, err = s.obj.GetRange(ctx, packName(c.Pack), c.Off, c.Len); return err })
		if err != nil {
			return nil, fmt.Errorf("chunk %s: %w", c.Digest, storage.NotEOF(err))
		}
		out, err := decodeChunk(dst, obj, c.Digest)
		inv, ok := s.obj.(invalidator)
		if err == nil || attempt > 0 || !ok || !errors.Is(err, ErrCorrupt) {
			return out, storageCorrupt(c, err)
		}
		inv.Invalidate(packName(c.Pack), c.Off, c.Len)
	}
}

// rangeReader is a backend that reads stored bytes into the caller's
// buffers (storage.Local, DiskCache), so a chunk can be read without an
// allocation or a copy.
type rangeReader interface {
	ReadRange(ctx context.Context, name string, off int64, bufs ...[]byte) error
}

// ReadChunkInto reads chunk c into dst, which must be c.Size bytes long,
// and verifies it against its digest; on an error dst holds garbage. Over a
// backend that reads into buffers (storage.Local, DiskCache), a chunk
// stored raw is read straight into dst and a compressed one is decoded
// into it: no allocation and no copy, which is most of what a cold read
// through the mount cost besides the hash (docs/mount-bench.md). Bytes
// that fail verification are dropped from a caching backend and read once
// more, as in ReadChunk.
func (s *Store) ReadChunkInto(ctx context.Context, c Chunk, dst []byte) error {
	if int64(len(dst)) != c.Size {
		return fmt.Errorf("cache: chunk %s is %d bytes, not %d", c.Digest, c.Size, len(dst))
	}
	rr, ok := s.obj.(rangeReader)
	if !ok {
		data, err := s.ReadChunk(ctx, c, nil)
		if err == nil {
			copy(dst, data)
		}
		return err
	}
	for attempt := 0; ; attempt++ {
		err := storage.NotEOF(s.awaitPack(ctx, c.Pack, func() error { return readChunkInto(ctx, rr, c, dst) }))
		inv, ok := s.obj.(invalidator)
		if err == nil || attempt > 0 || !ok || !errors.Is(err, ErrCorrupt) {
			return storageCorrupt(c, err)
		}
		inv.Invalidate(packName(c.Pack), c.Off, c.Len)
	}
}

func readChunkInto(ctx context.Context, rr rangeReader, c Chunk, dst []byte) error {
	if c.Len < 1 {
		return fmt.Errorf("%w: chunk %s is empty", ErrCorrupt, c.Digest)
	}
	var codec [1]byte
	body := c.Len - 1
	// encodeChunk keeps the compressed form only when it is shorter: a
	// body as long as the data is the data.
	if body == c.Size {
		if err := rr.ReadRange(ctx, packName(c.Pack), c.Off, codec[:], dst); err != nil {
			return fmt.Errorf("chunk %s: %w", c.Digest, err)
		}
		if codec[0] != codecRaw {
			return fmt.Errorf("%w: chunk %s: codec %d for a body as long as the data", ErrCorrupt, c.Digest, codec[0])
		}
	} else {
		bp := bufPool.Get().(*[]byte)
		defer bufPool.Put(bp)
		if int64(cap(*bp)) < body {
			*bp = make([]byte, body)
		}
		src := (*bp)[:body]
		if err := rr.ReadRange(ctx, packName(c.Pack), c.Off, codec[:], src); err != nil {
			return fmt.Errorf("chunk %s: %w", c.Digest, err)
		}
		if codec[0] != codecZstd {
			return fmt.Errorf("%w: chunk %s: codec %d for a body shorter than the data", ErrCorrupt, c.Digest, codec[0])
		}
		// The cap keeps a damaged frame from writing past dst.
		out, err := decoder.DecodeAll(src, dst[:0:len(dst)])
		if err != nil {
			return fmt.Errorf("%w: chunk %s: %v", ErrCorrupt, c.Digest, err)
		}
		if len(out) != len(dst) {
			return fmt.Errorf("%w: chunk %s decodes to %d bytes, not %d", ErrCorrupt, c.Digest, len(out), len(dst))
		}
		if len(out) > 0 && &out[0] != &dst[0] { // the decoder chose a buffer of its own
			copy(dst, out)
		}
	}
	if got := ref.Sum(dst); got != c.Digest {
		return fmt.Errorf("%w: chunk %s has digest %s", ErrCorrupt, c.Digest, got)
	}
	return nil
}

// warmer is a caching backend that can fetch bytes in the background
// (DiskCache).
type warmer interface {
	Warm(name string, off, n int64)
}

// Warm asks a caching backend to fetch the stored bytes of chunks in the
// background, so that reading them later does not wait for the network; it
// does nothing over a backend without a cache. Sequential readers of a file
// call it for the chunks ahead of them: a file spans many packs, and the
// cache's own read-ahead sees one pack at a time. It does not block.
func (s *Store) Warm(chunks []Chunk) {
	w, ok := s.obj.(warmer)
	if !ok || len(chunks) == 0 {
		return
	}
	// A file's chunks lie in its packs in the order parallel workers
	// finished them, not in file order: sort them by place, and merge
	// places less than warmGap apart into one range.
	locs := make([]Loc, len(chunks))
	for i, c := range chunks {
		locs[i] = c.Loc
	}
	sort.Slice(locs, func(i, j int) bool {
		if locs[i].Pack != locs[j].Pack {
			return locs[i].Pack < locs[j].Pack
		}
		return locs[i].Off < locs[j].Off
	})
	run := locs[0]
	for _, l := range locs[1:] {
		if l.Pack == run.Pack && l.Off <= run.Off+run.Len+warmGap {
			run.Len = max(run.Len, l.Off+l.Len-run.Off)
			continue
		}
		w.Warm(packName(run.Pack), run.Off, run.Len)
		run = l
	}
	w.Warm(packName(run.Pack), run.Off, run.Len)
}

// settler is a caching backend whose reads return before the blocks they
// fetched are written to its folder (DiskCache).
type settler interface {
	Settle(ctx context.Context, name string, off, n int64) error
}

// Prefetch reads every chunk of chunks, verifying each, a few at a time,
// and, over a caching backend, returns once their bytes are written to the
// cache folder, so that reading them next needs no network. The cache's
// limit may evict them again after.
func (s *Store) Prefetch(ctx context.Context, chunks []Chunk) error {
	// The cache fetches the packs in large ranges, in parallel; the reads
	// below then verify every chunk.
	s.Warm(chunks)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, c := range chunks {
		g.Go(func() error {
			_, err := s.ReadChunk(gctx, c, nil)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	st, ok := s.obj.(settler)
	if !ok {
		return nil
	}
	for _, c := range chunks {
		if err := st.Settle(ctx, packName(c.Pack), c.Off, c.Len); err != nil {
			return fmt.Errorf("chunk %s: %w", c.Digest, err)
		}
	}
	return nil
}

// warmGap is the most bytes between two chunks of one pack that Warm
// fetches rather than asking for two ranges.
const warmGap = 1 << 20

// WarmWindow is how far ahead of a sequential reader Warm is asked to
// fetch at most: 16 blocks of the disk cache in flight.
const WarmWindow = 64 << 20

// WarmWindow is how far ahead of a sequential reader s is worth warming:
// WarmWindow, and at most a quarter of a bounded cache beneath it, so that
// blocks fetched ahead are read before the cache evicts them (a 200 MiB
// file read through a small cache was fetched five times over).
func (s *Store) WarmWindow() int64 {
	if c, ok := s.obj.(interface{ Info() CacheInfo }); ok {
		if lim := c.Info().InForce(); lim > 0 {
			if lim/4 < DefaultBlockSize {
				return 0 // the disk cache's own read-ahead, of one block, is all it keeps
			}
			return min(WarmWindow, lim/4)
		}
	}
	return WarmWindow
}

// Reader reads one file's content through its chunk list.
type Reader struct {
	s       *Store
	f       File
	offsets []int64 // offsets[i] is where chunk i starts
	pos     int64

	readahead int
	mu        sync.Mutex // guards last
	last      struct {
		i    int
		data []byte
	}
}

// Open returns a Reader over f.
func (s *Store) Open(f File) *Reader {
	r := &Reader{s: s, f: f, offsets: make([]int64, len(f.Chunks)), readahead: 16}
	var off int64
	for i, c := range f.Chunks {
		r.offsets[i] = off
		off += c.Size
	}
	r.last.i = -1
	return r
}

// Size is the file's length.
func (r *Reader) Size() int64 { return r.f.Size }

func (r *Reader) chunk(ctx context.Context, i int) ([]byte, error) {
	r.mu.Lock()
	if r.last.i == i {
		d := r.last.data
		r.mu.Unlock()
		return d, nil
	}
	r.mu.Unlock()
	d, err := r.s.ReadChunk(ctx, r.f.Chunks[i], nil)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.last.i, r.last.data = i, d
	r.mu.Unlock()
	return d, nil
}

// ReadAtContext reads len(p) bytes at off, fetching only the chunks it needs.
func (r *Reader) ReadAtContext(ctx context.Context, p []byte, off int64) (int, error) {
	if off >= r.f.Size {
		return 0, io.EOF
	}
	i := sort.Search(len(r.offsets), func(i int) bool { return r.offsets[i] > off }) - 1
	n := 0
	for n < len(p) && i < len(r.offsets) {
		d, err := r.chunk(ctx, i)
		if err != nil {
			return n, err
		}
		n += copy(p[n:], d[off+int64(n)-r.offsets[i]:])
		i++
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// ReadAt implements io.ReaderAt.
func (r *Reader) ReadAt(p []byte, off int64) (int, error) {
	return r.ReadAtContext(context.Background(), p, off)
}

// Read implements io.Reader.
func (r *Reader) Read(p []byte) (int, error) {
	n, err := r.ReadAt(p, r.pos)
	r.pos += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// WriteToContext copies the whole file to w, fetching chunks ahead in
// parallel and writing them in order.
func (r *Reader) WriteToContext(ctx context.Context, w io.Writer, progress Progress) (int64, error) {
	n, _, err := r.WriteToMarked(ctx, w, progress, -1)
	return n, err
}

// HashMark is the state of a file's whole-file digest after its first N
// bytes: PutFileOver goes on from it rather than reading those bytes again.
// The zero HashMark is none.
type HashMark struct {
	N int64
	h *ref.Hasher
}

// Valid reports whether m holds a digest state.
func (m HashMark) Valid() bool { return m.h != nil }

// LastChunkStart is where f's last chunk starts (0 for none): the mark an
// append needs (PutFileOver keeps every chunk but the last).
func LastChunkStart(f File) int64 {
	if len(f.Chunks) == 0 {
		return 0
	}
	return f.Size - f.Chunks[len(f.Chunks)-1].Size
}

// WriteToMarked is WriteToContext that also returns the digest's state at
// offset at, a chunk boundary (none if at is not one), once the whole
// file's digest was checked.
func (r *Reader) WriteToMarked(ctx context.Context, w io.Writer, progress Progress, at int64) (int64, HashMark, error) {
	var mark HashMark
	type result struct {
		data []byte
		err  error
	}
	g, gctx := errgroup.WithContext(ctx)
	queue := make(chan chan result, r.readahead)
	g.Go(func() error {
		defer close(queue)
		sem := make(chan struct{}, r.readahead)
		warmed := 0 // chunks handed to Warm
		var pos, warmedTo int64
		for i, c := range r.f.Chunks {
			// Keep the cache fetching WarmWindow ahead of the reader, in
			// steps of a quarter window.
			if pos+WarmWindow/4*3 >= warmedTo && warmed < len(r.f.Chunks) {
				j := warmed
				for ; j < len(r.f.Chunks) && r.offsets[j] < pos+WarmWindow; j++ {
				}
				r.s.Warm(r.f.Chunks[max(warmed, i):j])
				warmed, warmedTo = j, pos+WarmWindow
			}
			pos += c.Size
			res := make(chan result, 1)
			select {
			case queue <- res:
			case <-gctx.Done():
				return gctx.Err()
			}
			sem <- struct{}{}
			go func(c Chunk) {
				d, err := r.s.ReadChunk(gctx, c, nil)
				<-sem
				res <- result{d, err}
			}(c)
		}
		return nil
	})
	var written int64
	var hash = ref.NewHasher()
	g.Go(func() error {
		for res := range queue {
			out := <-res
			if out.err != nil {
				return out.err
			}
			if written == at && mark.h == nil {
				mark = HashMark{N: at, h: hash.Clone()}
			}
			hash.Write(out.data)
			n, err := w.Write(out.data)
			written += int64(n)
			if err != nil {
				return err
			}
			if progress != nil {
				progress(int64(n))
			}
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return written, HashMark{}, err
	}
	if got := hash.Digest(); got != r.f.Digest {
		return written, HashMark{}, fmt.Errorf("%w: content has digest %s, want %s", ErrCorrupt, got, r.f.Digest)
	}
	return written, mark, nil
}
