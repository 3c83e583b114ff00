package stage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/dataset"
	"github.com/lamina-bio/lamina/ref"
)

// A File edited near the end of its base (an append, a page rewritten in
// the last chunk) writes only the base's last chunk into its staging
// file, at its offset: the staging file has a hole below copiedFrom,
// whose bytes are the base's (head). The commit keeps the base's chunks
// there (PutFileOver) and resumes the whole-file digest at copiedFrom
// (the mark the copy took), so an append to a big file no longer writes
// the whole version to the staging disk. Whatever needs the bytes below
// copiedFrom in the staging file completes the copy first (a write or
// truncate there, a commit that describes the file); reads take them from
// head. The journal names head's manifest and copiedFrom before the hole
// is made, and Recover and the retries of failed closes read the staged
// bytes with it (openStaged): a staging file with a hole is never
// committed as it is.

// lazyCopyMin is the smallest base a File copies lazily: below it the
// whole copy costs little, and a journal record more is not worth it.
const lazyCopyMin = 1 << 20

// copyFor copies the base into the staging file before a change at off
// (a write, or a truncate to off), or completes a lazy copy the change
// needs. Called with f.mu held.
func (f *File) copyFor(ctx context.Context, off int64) error {
	if f.holeLeft {
		if err := f.writeJournal(f.journalState()); err != nil {
			return err
		}
	}
	if f.copied {
		if f.copiedFrom > 0 && off < f.copiedFrom {
			return f.completeCopy(ctx)
		}
		return nil
	}
	return f.ensureCopyAt(ctx, off)
}

// lazyOK reports whether the File's base may be copied from from on only.
// Called with f.mu held.
func (f *File) lazyOK(from, off int64) bool {
	return !f.external && from >= lazyCopyMin && off >= from && !describes(f.Key(), f.size)
}

// describes reports whether the commit of key at size reads the staged
// file to describe it (Stage.describe), which needs all of its bytes.
func describes(key string, size int64) bool {
	format := dataset.FileFormat(key)
	return format != "" && size > 0 && !((format == dataset.CSV || format == dataset.TSV) && size > describeTextLimit)
}

// completeCopy writes the base's bytes below copiedFrom into the staging
// file, then records that it holds them all: a record naming the hole
// would make Recover read those bytes from the base, over a change made
// there after.
// Called with f.mu held.
func (f *File) completeCopy(ctx context.Context) error {
	if f.copiedFrom == 0 || !f.copied {
		return nil // no hole, or one a failed copy left recorded: nothing staged yet
	}
	from := f.copiedFrom
	w := &rangeWriter{f: f.data, to: from, stop: true}
	if _, err := f.s.content.Open(*f.head).WriteToContext(ctx, w, nil); err != nil && w.n < from {
		return fmt.Errorf("stage: copy %s: %w", f.Key(), err)
	}
	if w.n < from {
		return fmt.Errorf("stage: copy %s: %d bytes of %d: %w", f.Key(), w.n, from, io.ErrUnexpectedEOF)
	}
	// Recover takes the staging file's mtime for the version's: the
	// File's, not this copy's.
	_ = os.Chtimes(f.data.Name(), time.Time{}, f.mtime)
	return f.clearHole()
}

// The File's hole (copiedFrom, head, headRef) and the journal's record of
// it agree at all times: while the journal names a hole, Recover and the
// retries read the bytes below it from head, over whatever the staging
// file holds there, so a change below copiedFrom lands only once the
// record without the hole is written; and while the staging file has a
// hole, its record names it.

// journalState is the state the File's journal record has now.
// Called with f.mu held.
func (f *File) journalState() string {
	if f.closed {
		return stateClosed
	}
	return stateOpen
}

// recordHole records in the journal that the staging file holds the
// File's bytes from from on only, head's (the file of manifest headRef)
// below, before any byte of a lazy copy lands there. Called with f.mu
// held.
func (f *File) recordHole(from int64, head *cache.File, headRef string) error {
	if f.copiedFrom == from && f.headRef == headRef {
		f.head = head // recorded by a copy that failed: the same hole
		return nil
	}
	was, wasHead, wasRef := f.copiedFrom, f.head, f.headRef
	f.copiedFrom, f.head, f.headRef = from, head, headRef
	if err := f.writeJournal(f.journalState()); err != nil {
		f.copiedFrom, f.head, f.headRef = was, wasHead, wasRef
		return err
	}
	f.s.watchHoles()
	return nil
}

// DefaultHoleCheck is how often the Stage looks whether gc marked the data
// below a lazy copy's hole (Options.HoleCheck): well within gc's settle
// period (cache.MinSettle), with the marks' freshness (10 s) added.
const DefaultHoleCheck = 30 * time.Second

// marker tells which packs gc marked for deletion (*cache.Store).
type marker interface {
	Marked(ctx context.Context, packs []string) (map[string]bool, error)
}

// watchHoles makes sure that, while Files hold lazy copies, the Stage
// looks every HoleCheck whether gc marked the data below a hole, and
// completes the copy of such a File while that data is still there (gc's
// settle period). gc on this machine counts that data as in use
// (Heads); one elsewhere cannot see the staging folder, and the version
// the File was opened on may be deleted for good meanwhile. Its commit
// then stores again what it kept of the version (the marks refuse the
// reuse). Called with File.mu held.
func (s *Stage) watchHoles() {
	if _, ok := s.content.(marker); !ok {
		return
	}
	s.holesMu.Lock()
	defer s.holesMu.Unlock()
	s.holesGen++
	if s.holesWatched {
		return
	}
	s.holesWatched = true
	go s.holeLoop()
}

func (s *Stage) holeLoop() {
	every := s.opts.HoleCheck
	if every <= 0 {
		every = DefaultHoleCheck
	}
	for {
		s.holesMu.Lock()
		gen := s.holesGen
		s.holesMu.Unlock()
		time.Sleep(every)
		if s.checkHoles(context.Background()) {
			continue
		}
		s.holesMu.Lock()
		if s.holesGen == gen { // no hole recorded since the check began
			s.holesWatched = false
			s.holesMu.Unlock()
			return
		}
		s.holesMu.Unlock()
	}
}

// checkHoles completes the lazy copies whose data below the hole gc
// marked, and reports whether any File still holds a lazy copy.
func (s *Stage) checkHoles(ctx context.Context) (any bool) {
	s.mu.Lock()
	var files []*File
	for _, l := range s.open {
		files = append(files, l...)
	}
	s.mu.Unlock()
	below := map[*File][]string{} // the packs of the bytes below each hole
	var packs []string
	for _, f := range files {
		f.mu.Lock()
		if f.copiedFrom > 0 && f.head != nil && !f.released {
			var off int64
			for _, c := range f.head.Chunks {
				if off >= f.copiedFrom {
					break
				}
				below[f] = append(below[f], c.Pack)
				packs = append(packs, c.Pack)
				off += c.Size
			}
		}
		f.mu.Unlock()
	}
	if len(below) == 0 {
		return false
	}
	marked, err := s.content.(marker).Marked(ctx, packs)
	if err != nil {
		s.log.Warn("lamina mount: cannot list gc's marks for the files being appended to", "err", err)
		return true
	}
	for f, ps := range below {
		if !slices.ContainsFunc(ps, func(p string) bool { return marked[p] }) {
			continue
		}
		f.mu.Lock()
		if f.copiedFrom > 0 && !f.released {
			if err := f.completeCopy(ctx); err != nil {
				f.s.log.Warn("lamina mount: gc is deleting the data of the version a file open for writing was opened on, and its copy failed", "key", f.Key(), "err", err)
			} else {
				f.s.log.Info("lamina mount: gc is deleting the data of the version a file open for writing was opened on: copied", "key", f.Key())
			}
		}
		f.mu.Unlock()
	}
	return true
}

// clearHole records in the journal that the staging file holds all of the
// File's bytes, once it does (the copy completed, or whole). If the
// record cannot be written the hole stays, as the journal still has it:
// its bytes are head's in the staging file too, so both read the same,
// and the next change below copiedFrom tries again. Called with f.mu held.
func (f *File) clearHole() error {
	if f.copiedFrom == 0 {
		return nil
	}
	was, wasHead, wasRef := f.copiedFrom, f.head, f.headRef
	f.copiedFrom, f.head, f.headRef = 0, nil, ""
	if err := f.writeJournal(f.journalState()); err != nil {
		f.copiedFrom, f.head, f.headRef = was, wasHead, wasRef
		return err
	}
	return nil
}

// dropHole empties the staging file of a File truncated to zero, and
// records that it has no hole. Emptied first: a record naming the hole
// over an empty staging file is a file with nothing of its own to Recover
// (its size is 0), while one without it over the hole would be zeros. A
// full disk must not fail the truncate that frees it, so a record that
// cannot be written is written again before the next change (holeLeft).
// Called with f.mu held.
func (f *File) dropHole() error {
	if f.copiedFrom == 0 {
		return nil
	}
	if err := f.data.Truncate(0); err != nil {
		return err
	}
	f.copiedFrom, f.head, f.headRef = 0, nil, ""
	if err := f.writeJournal(f.journalState()); err != nil {
		f.holeLeft = true
		f.s.log.Warn("lamina mount: journal", "key", f.Key(), "err", err)
	}
	return nil
}

// copyFailed undoes a copy of the base into the staging file that failed
// part way (a full disk, the storage away, an interrupted read): the
// staging file holds none of the File's bytes yet (not copied), so it is
// emptied, not left to Recover as a partial copy, and the hole recorded
// for a lazy copy is cleared: the next change may copy the base whole and
// write below where this copy began, and the File, its commit and Recover
// must not read those bytes from head then. If the staging file cannot
// be emptied, the record of the hole stays, true of what the copy wrote.
// Called with f.mu held.
func (f *File) copyFailed() {
	if err := f.data.Truncate(0); err != nil {
		return
	}
	if err := f.clearHole(); err != nil {
		f.s.log.Warn("lamina mount: journal", "key", f.Key(), "err", err)
	}
}

// rangeWriter writes the bytes of a stream that fall in [from, to) to f at
// their offsets, and drops the rest: a version read whole (with its
// readahead) copied in part.
type rangeWriter struct {
	f        *os.File
	from, to int64
	stop     bool  // fail the stream once past to (errRangeDone): the rest is not wanted
	pos      int64 // offset of the next byte
	n        int64 // bytes written
}

func (w *rangeWriter) Write(p []byte) (int, error) {
	start, end := max(w.pos, w.from), min(w.pos+int64(len(p)), w.to)
	if start < end {
		k, err := w.f.WriteAt(p[start-w.pos:end-w.pos], start)
		w.n += int64(k)
		if err != nil {
			return 0, err
		}
	}
	w.pos += int64(len(p))
	if w.stop && w.pos >= w.to {
		return len(p), errRangeDone // the rest is not wanted: stop reading
	}
	return len(p), nil
}

var errRangeDone = errors.New("range written")

// lazyReader reads a File whose staging file holds its bytes from from on
// only: below, head's.
type lazyReader struct {
	ctx  context.Context
	head *cache.Reader
	from int64
	tail io.ReaderAt
}

func (r *lazyReader) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	if off < r.from {
		k := int(min(int64(len(p)), r.from-off))
		m, err := r.head.ReadAtContext(r.ctx, p[:k], off)
		n += m
		if m < k {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF // the head is shorter than it was
			}
			return n, err
		}
		if n == len(p) {
			return n, nil
		}
	}
	m, err := r.tail.ReadAt(p[n:], off+int64(n))
	return n + m, err
}

// openStaged opens the staged file data of record j for reading: its
// bytes, with those below the hole of a lazy copy read from the content
// the record names (journal.Head). Recover and the retries of failed
// closes read it so, never the staging file alone. A file with no hole is
// returned as the *os.File it is (commitFile describes it).
func (s *Stage) openStaged(ctx context.Context, j journal, data string) (io.ReadCloser, error) {
	fh, err := os.Open(data)
	if err != nil || j.CopiedFrom == 0 {
		return fh, err
	}
	head, err := s.headOf(ctx, j)
	if err != nil {
		fh.Close()
		return nil, err
	}
	r := &lazyReader{ctx: ctx, head: head, from: j.CopiedFrom, tail: fh}
	return struct {
		io.Reader
		io.Closer
	}{io.NewSectionReader(r, 0, 1<<62), fh}, nil
}

// headOf reads the content below the hole of record j's lazy copy.
func (s *Stage) headOf(ctx context.Context, j journal) (*cache.Reader, error) {
	if j.Head == "" {
		return nil, fmt.Errorf("stage: staged %s: a lazy copy without its content recorded", j.ID)
	}
	m, err := s.content.LoadManifest(ctx, cache.Ref(j.Head))
	if err != nil {
		return nil, fmt.Errorf("stage: staged %s: its first %d bytes: %w", j.Key, j.CopiedFrom, err)
	}
	if len(m.Files) != 1 || m.Files[0].Size < j.CopiedFrom {
		return nil, fmt.Errorf("stage: staged %s: its first %d bytes are not in %s", j.Key, j.CopiedFrom, j.Head)
	}
	return s.content.Open(m.Files[0]), nil
}

// maxMarks bounds the digest states a Stage remembers (each about 10 KiB).
const maxMarks = 256

// noteMark remembers m, the digest state where the last chunk of the
// content of digest d starts: a File copying that content lazily then
// reads only its last chunk (an `echo x >> big` after another).
func (s *Stage) noteMark(d ref.Digest, m cache.HashMark) {
	if !m.Valid() {
		return
	}
	s.marksMu.Lock()
	defer s.marksMu.Unlock()
	if s.marks == nil || len(s.marks) >= maxMarks {
		s.marks = map[ref.Digest]cache.HashMark{}
	}
	s.marks[d] = m
}

// markOf returns the digest state at offset at of the content of digest
// d, if the Stage remembers it.
func (s *Stage) markOf(d ref.Digest, at int64) (cache.HashMark, bool) {
	s.marksMu.Lock()
	defer s.marksMu.Unlock()
	m, ok := s.marks[d]
	return m, ok && m.N == at
}
