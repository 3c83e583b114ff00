package stage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/ref"
)

// Recovered is what Recover did with one staged file left by a daemon that
// stopped without releasing it.
type Recovered struct {
	Key     string // the key its writer wrote
	SavedAs string // the key its bytes were saved under ("" if dropped)
	Message string

	retry failedClose // bytes that stay staged: what the retries do with them
}

// LostAndFound is the folder of the namespace where Recover keeps the bytes
// of files that were never closed (or whose commit failed).
const LostAndFound = "lost+found"

// Recover commits every file whose writer had closed it (its journal says
// closed) and saves every other staged file under lost+found/, then clears
// the staging folder. Run it before the mount serves.
func (s *Stage) Recover(ctx context.Context) ([]Recovered, error) {
	staged, err := s.readStaged()
	if err != nil {
		return nil, err
	}
	var lazyCommitted uint64
	if lc, ok := s.cat.(lazyCatalog); ok {
		if lazyCommitted, err = lc.LazyCommitted(ctx); err != nil {
			return nil, fmt.Errorf("stage: %w", err)
		}
	}
	// Heads of lazy copies saved elsewhere may wait for their upload
	// (cache.Store.SetPackWait): bounded in all, so that the mount gets
	// ready however many staged files read them.
	ctx = cache.WithPackWaitUntil(ctx, time.Now().Add(RecoverPackWait))
	var out []Recovered
	kept := map[string]journal{} // records of bytes that stay staged
	var retry []failedClose      // and what the running Stage does with them
	for _, j := range staged {
		data := filepath.Join(s.opts.Dir, j.ID)
		info, err := os.Stat(data)
		if err != nil {
			s.log.Warn("lamina mount: staging journal without its file dropped", "id", j.ID, "key", j.Key, "err", err)
			continue
		}
		if j.State == stateDone && j.LazySeq > lazyCommitted {
			// Its close returned, but the catalog's transaction holding the
			// version was never committed: commit it again.
			j.State = stateClosed
		}
		r, ok := s.recoverOne(ctx, j, data, info)
		if !ok {
			j.Failed = j.State == stateClosed // its commit failed again
			kept[j.ID] = j
			retry = append(retry, r.retry)
		}
		if r != nil {
			out = append(out, *r)
		}
		if ok {
			os.Remove(data)
		}
	}
	if len(out) > 0 {
		if err := s.content.Sync(ctx); err != nil {
			return out, fmt.Errorf("stage: %w", err)
		}
	}
	if err := s.jlog.reset(kept); err != nil {
		return out, err
	}
	s.removeLeftovers(kept)
	// Bytes that could not be kept now (the disk full at the mount) are
	// failed closes: counted in status and tried again while the Stage
	// runs, not left hidden until the next mount.
	for _, fc := range retry {
		s.addFailed(fc)
	}
	return out, nil
}

// RecoverPackWait bounds all the waits of Recover for packs not uploaded
// yet, well within the mount's readiness wait (60 s). A file whose bytes
// could not be read in time stays staged and is tried again.
const RecoverPackWait = 20 * time.Second

// readStaged returns the journal's records of staged files, with those of
// journal files of the layout before (ID.open, ID.closed, ID.done).
func (s *Stage) readStaged() ([]journal, error) {
	byID, err := readJournal(s.opts.Dir)
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(s.opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("stage: %w", err)
	}
	for _, e := range ents {
		id, state, ok := strings.Cut(e.Name(), ".")
		if !ok || (state != stateOpen && state != stateClosed && state != stateDone) {
			continue
		}
		if old, ok := byID[id]; ok && old.State == stateDone {
			continue // released after its commit: ".done" decides
		}
		var j journal
		b, err := os.ReadFile(filepath.Join(s.opts.Dir, e.Name()))
		if err == nil {
			err = json.Unmarshal(b, &j)
		}
		if err != nil {
			s.log.Warn("lamina mount: unreadable staging journal dropped", "file", e.Name(), "err", err)
			continue
		}
		j.ID, j.State, j.pos = id, state, -1
		byID[id] = j
	}
	out := make([]journal, 0, len(byID))
	for _, j := range byID {
		out = append(out, j)
	}
	// Commits redone in the order they were made, so that the last of a
	// key's stays its latest: by LazySeq, then as the journal has them.
	seq := func(j journal) uint64 {
		if j.LazySeq == 0 {
			return math.MaxUint64
		}
		return j.LazySeq
	}
	sort.Slice(out, func(a, b int) bool {
		if sa, sb := seq(out[a]), seq(out[b]); sa != sb {
			return sa < sb
		}
		return out[a].pos < out[b].pos
	})
	return out, nil
}

// recoverOne commits or keeps the staged file data that journal record j
// describes. ok is false when its bytes must stay staged (they could not
// be saved anywhere); r is nil when nothing was to be done.
func (s *Stage) recoverOne(ctx context.Context, j journal, data string, info os.FileInfo) (r *Recovered, ok bool) {
	mtime := info.ModTime()
	r = &Recovered{Key: j.Key}
	gone := false // content the catalog and index know did not reach the disk
	commit := func(key, desc string) error {
		fh, err := s.openStaged(ctx, j, data)
		if err != nil {
			return err
		}
		defer fh.Close()
		cctx := ctx
		if key == j.Key { // its close, committed now, under the uid its writer was told
			cctx = withStem(withClosedAt(ctx, closedAt(data)), j.Stem)
		}
		_, err = s.commitFile(cctx, key, fh, mtime, j.Mode, desc, gone)
		return err
	}
	state := j.State
	if state == stateOpen && s.nothingOwn(ctx, j, data, info.Size()) {
		// Opened for writing and never changed (an idle O_RDWR or
		// O_APPEND, a SQLite reader), changed back, or created or
		// truncated and never written: no bytes were lost. Such files
		// were kept as empty lost+found/ entries that looked like lost
		// data.
		s.log.Debug("lamina mount: a file open for writing when the daemon stopped held no bytes of its own; nothing to keep", "key", j.Key, "size", info.Size())
		return nil, true
	}
	if state == stateDone {
		// Committed (the catalog points at it) but maybe never synced:
		// if the machine crashed, its content may not have reached the
		// disk. Intact content needs nothing; else keep the bytes.
		err := s.intact(ctx, j.Manifest)
		if err == nil {
			return nil, true
		}
		if errors.Is(err, cache.ErrPackDeleted) {
			// gc deletes only what no version holds: its version was
			// deleted for good since, as its owner asked.
			s.log.Info("lamina mount: a staged file's version was deleted for good since its commit; its bytes are not kept", "key", j.Key, "err", err)
			return nil, true
		}
		state, gone = stateOpen, true
		r.Message = fmt.Sprintf("committed before the machine stopped, but its content did not reach the disk (%v)", err)
	}
	if state == stateClosed {
		if newer, same := s.savedSince(ctx, j, data); same || (!newer && s.latestHolds(ctx, j, 0, data)) {
			// Its commit reached the catalog before the stop (a File
			// writers share, committed at a close and written no more
			// since): nothing to redo, nothing to say. Committed again,
			// it made no version but logged that it had.
			return nil, true
		} else if newer {
			// The close failed (the catalog away) and the key was saved
			// again since: committing these bytes now would make the older
			// content its latest version.
			state = stateOpen
			r.Message = "its commit failed at close, and the key was saved again since"
		}
	}
	if state == stateClosed {
		if err := commit(j.Key, ""); err == nil {
			r.SavedAs, r.Message = j.Key, "committed at restart: its writer had closed it"
		} else {
			state = stateOpen
			r.Message = fmt.Sprintf("the commit failed again (%v)", err)
		}
	}
	if state == stateOpen {
		lost := lostKey(j)
		why := r.Message
		if why == "" {
			// Never closed, or written since its last commit (its
			// journal says open again from the first change after one).
			why = "its writer had not closed it when the daemon stopped"
			if j.Base > 0 {
				why += fmt.Sprintf(" (its bytes were staged over version %d)", j.Base)
			}
		}
		desc := fmt.Sprintf("recovered bytes of %s: %s", j.Key, why)
		err := commit(lost, desc)
		if errors.Is(err, cache.ErrPackDeleted) && j.CopiedFrom > 0 {
			// Its head, read lazily from the version it was staged over,
			// was deleted for good: keep the bytes it wrote, never a
			// version with the head as zeros.
			desc = fmt.Sprintf("recovered bytes of %s from offset %d to %d: %s; its first %d bytes (offsets 0 to %d), those of the version it was staged over, were deleted for good (%v)", j.Key, j.CopiedFrom, info.Size(), why, j.CopiedFrom, j.CopiedFrom, err)
			err = s.commitTail(ctx, j, data, lost, mtime, desc)
		}
		if err != nil {
			s.log.Error("lamina mount: cannot keep staged bytes; they stay in the staging folder and are tried again", "key", j.Key, "file", data, "err", err)
			r.Message = fmt.Sprintf("kept in %s: %v", data, err)
			r.retry = failedClose{j: j, mtime: mtime, gone: gone}
			if j.State != stateClosed { // never closed, or its content gone
				r.retry.lostWhy = why
			}
			return r, false
		}
		r.SavedAs, r.Message = lost, desc
	}
	s.log.Warn("lamina mount: recovered a staged file", "key", r.Key, "saved_as", r.SavedAs, "why", r.Message)
	return r, true
}

// commitTail commits the bytes of the staged file data of lazy copy j
// from its hole's end (j.CopiedFrom) under key.
func (s *Stage) commitTail(ctx context.Context, j journal, data, key string, mtime time.Time, desc string) error {
	fh, err := os.Open(data)
	if err != nil {
		return err
	}
	defer fh.Close()
	_, err = s.commitFile(ctx, key, io.NewSectionReader(fh, j.CopiedFrom, 1<<62), mtime, j.Mode, desc, true)
	return err
}

// nothingOwn reports whether the staged file data of open record j holds
// no change of its own: empty (never copied or written: created, or
// truncated, and left so), or the bytes of the key's latest version or of
// the version they were staged over (copied and not changed, or changed
// back).
func (s *Stage) nothingOwn(ctx context.Context, j journal, data string, size int64) bool {
	if size == 0 {
		return true
	}
	if s.cat == nil {
		return false // Staged, with no catalog to ask: maybe its own
	}
	return s.latestHolds(ctx, j, j.Base, data)
}

// latestHolds reports whether j.Key's latest version, or its version base
// (if not 0), holds the bytes of the staged file data of record j.
func (s *Stage) latestHolds(ctx context.Context, j journal, base int, data string) bool {
	key := j.Key
	var digests []ref.Digest
	for _, n := range []int{0, base} {
		if v, err := s.cat.ByKey(ctx, key, n); err == nil && (n == 0 || v.Version == n) {
			digests = append(digests, v.Digest)
		}
		if base == 0 {
			break
		}
	}
	if len(digests) == 0 {
		return false
	}
	f, err := s.openStaged(ctx, j, data)
	if err != nil {
		return false
	}
	defer f.Close()
	h := ref.NewHasher()
	if _, err := io.Copy(h, f); err != nil {
		return false
	}
	return slices.Contains(digests, h.Digest())
}

// lostKey is where the bytes of staged file j are kept under lost+found/.
func lostKey(j journal) string {
	lost := LostAndFound + "/" + time.Now().UTC().Format("20060102T150405") + "-" + j.ID[:min(8, len(j.ID))] + "/" + j.Key
	if ref.CheckKey(lost) != nil {
		lost = LostAndFound + "/" + j.ID
	}
	return lost
}

// removeLeftovers removes what no kept record needs: journal files of the
// layout before, staging files without a record (a crash between creating
// one and its record), a compaction's temporary file. Spares are kept for
// reuse: removing them would make their inodes "recently deleted".
func (s *Stage) removeLeftovers(kept map[string]journal) {
	ents, _ := os.ReadDir(s.opts.Dir)
	for _, e := range ents {
		name := e.Name()
		id, _, _ := strings.Cut(name, ".")
		if name == journalName || name == windowName {
			continue
		}
		if _, ok := kept[id]; ok && id != journalName {
			if name != id {
				os.Remove(filepath.Join(s.opts.Dir, name)) // its record is in the journal now
			}
			continue
		}
		if strings.HasPrefix(name, sparePrefix) && s.adoptSpare(filepath.Join(s.opts.Dir, name)) {
			continue
		}
		os.Remove(filepath.Join(s.opts.Dir, name))
	}
}

// intact reports whether the content at manifest is all there and verifies.
func (s *Stage) intact(ctx context.Context, manifest string) error {
	if manifest == "" {
		return errors.New("no manifest recorded")
	}
	m, err := s.content.LoadManifest(ctx, cache.Ref(manifest))
	if err != nil {
		return err
	}
	for _, f := range m.Files {
		if _, err := s.content.Open(f).WriteToContext(ctx, io.Discard, nil); err != nil {
			return err
		}
	}
	return nil
}

// ctimeLag is how far a file's ctime may trail time.Now(): the kernel
// stamps it from its coarse clock, a tick (4 ms here) or a little more
// behind. Without it, the version a close committed was taken for one
// saved after the next close's bytes when both came within a tick (five
// quick closes, then kill -9: the last went to lost+found/ in 3 runs of
// 4). A save by another writer within this lag of a failed close's last
// write is taken for older: its bytes stay the previous version.
const ctimeLag = 20 * time.Millisecond

// A key's versions are ordered by when their writers closed them, not by
// when their commits reached the catalog. A version's CreatedAt is that
// close: the commit's time when the close committed it, the staged
// bytes' last change (closedAt) when a retry or Recover committed them
// after the close failed. The staged bytes of a failed close are compared
// by the same time, so that two workstations whose closes both failed
// while the catalog was away keep the later close on top whichever retries
// first (docs/postgres.md, "Closes while the database is away").

// closedAt is when the staged file data was closed, as far as anyone can
// tell later: its ctime, which no tool sets (touch sets the mtime), and
// which survives a restart. It is the bytes' last write or attribute
// change: a file held open long after its last write counts from that
// write. Zero if data cannot be read.
func closedAt(data string) time.Time {
	var st syscall.Stat_t
	if syscall.Stat(data, &st) != nil {
		return time.Time{}
	}
	return time.Unix(st.Ctim.Sec, st.Ctim.Nsec)
}

type closedAtKey struct{}

// withClosedAt returns ctx saying that a commit made with it is of bytes
// closed at t (the version's CreatedAt), not at the commit.
func withClosedAt(ctx context.Context, t time.Time) context.Context {
	if t.IsZero() {
		return ctx
	}
	return context.WithValue(ctx, closedAtKey{}, t)
}

// createdAt is the CreatedAt of a version committed now with ctx.
func createdAt(ctx context.Context) time.Time {
	if t, ok := ctx.Value(closedAtKey{}).(time.Time); ok {
		return t.UTC()
	}
	return time.Now().UTC()
}

type stemKey struct{}

// withStem returns ctx saying that a commit made with it gives a new
// artifact stem, if free (catalog.NewVersion.Stem): the File drew it at
// open, and its journal records keep it for a redo after a stop.
func withStem(ctx context.Context, stem string) context.Context {
	if stem == "" {
		return ctx
	}
	return context.WithValue(ctx, stemKey{}, stem)
}

func stemOf(ctx context.Context) string {
	s, _ := ctx.Value(stemKey{}).(string)
	return s
}

// savedSince compares key's latest version with the staged file data: same
// when it holds these bytes, newer when it was closed (its CreatedAt)
// after the staged file was (closedAt). Neither the version's mtime
// (touch, cp -p and rsync -t set it to anything, and a touch of the
// latest path changes it after the fact) nor the time its commit reached
// the catalog (a retry's, long after its close) says that.
func (s *Stage) savedSince(ctx context.Context, j journal, data string) (newer, same bool) {
	v, err := s.cat.ByKey(ctx, j.Key, 0)
	if err != nil {
		return false, false
	}
	closed := closedAt(data)
	if closed.IsZero() || !v.CreatedAt.After(closed.Add(ctimeLag)) {
		return false, false
	}
	f, err := s.openStaged(ctx, j, data)
	if err != nil {
		return true, false
	}
	defer f.Close()
	h := ref.NewHasher()
	if _, err := io.Copy(h, f); err != nil {
		return true, false
	}
	if h.Digest() == v.Digest {
		return false, true
	}
	return true, false
}
