package stage

import (
	"context"
	"path/filepath"
	"time"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/catalog"
)

// Writers of a key without O_TRUNC share one File (Join); an O_TRUNC writer
// keeps its own (each close its version, DESIGN §3). A File with nothing
// to commit (clean: its bytes are a version's) follows a newer version of
// its key that another File of this Stage commits, as a descriptor of a
// plain file reads what another writer wrote: its next read or write, its
// next join, and a stat through it see that version, not the one it was
// opened on. A SQLite reader connection (always O_RDWR) held open read
// the database as it was at its open, after another process's `>`
// replaced it; a write after that would have made the older bytes the
// latest again. A File with changes not committed keeps them, on the
// version it copied. Versions committed elsewhere (another mount, lamina
// save) are seen at the next open, which reads the catalog afresh
// (close-to-open, as NFS gives).

// published tells the open Files of v's key that v is committed (record).
func (s *Stage) published(v catalog.Version) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.open[v.Key] {
		f.newer.Store(&v)
	}
}

// follow makes a clean File hold the newest version published to it, if
// newer than its own. Called with f.mu held.
func (f *File) follow() {
	v := f.newer.Load()
	if v == nil || f.base == nil || v.Key != f.base.Key || v.Version <= f.base.Version ||
		f.dirty || f.touched || f.broken != nil || f.released || f.external {
		return
	}
	f.s.mu.Lock()
	ok := !f.deleted && f.key == v.Key
	f.s.mu.Unlock()
	if !ok {
		return
	}
	f.dropStream()
	if f.committed && f.s.opts.SyncEvery > 0 {
		// Its last commit may not be durable yet, and Recover needs its
		// bytes if the catalog loses it: they stay staged until Sync, as
		// at Release, and the File goes on in a staging file of its own.
		if !f.handOff(v) {
			return // it keeps what it holds
		}
	} else {
		// The journal says open, over v, before the bytes go: closed (it
		// committed), Recover committed the emptied file as the key's
		// next version after a kill.
		if err := f.journalOver(stateOpen, v); err != nil {
			return
		}
		f.closed = false
		if err := f.data.Truncate(0); err != nil {
			return
		}
	}
	f.base, f.copied, f.size, f.mtime, f.mode = v, false, v.Size, v.Mtime, catalog.Perm(v.Mode)
	f.moved++
	f.over, f.mark = nil, cache.HashMark{}
	f.copiedFrom, f.head, f.headRef = 0, nil, "" // emptied, or a new staging file
	f.rewritten = false
	f.seq, f.lastSaved = false, false
}

// superseded returns a version of the File's key newer than the one its
// creation or truncation to empty went over, if one landed since: another
// File's, of this Stage (published) or committed elsewhere (the catalog,
// asked afresh). A File renamed since, adopted, or made by a lookup that
// fails commits as before. Called with f.mu held, for a File created or
// truncated and not written since.
func (f *File) superseded(ctx context.Context) (catalog.Version, bool) {
	key := f.Key()
	if f.emptyKey == "" || f.emptyKey != key || f.external {
		return catalog.Version{}, false
	}
	if v := f.newer.Load(); v != nil && v.Key == key && v.Version > f.emptyOver {
		return *v, true
	}
	v, err := f.s.cat.ByKey(catalog.Fresh(ctx), key, 0)
	if err != nil || v.Kind != cache.KindFile || v.Version <= f.emptyOver {
		return catalog.Version{}, false
	}
	return v, true
}

// yieldTo drops the emptiness of a File created or truncated and never
// written since, which another writer's version v came after: as on one
// inode, that writer's bytes are the file's now. The File holds v, clean;
// times or mode set through it go on to the catalog as at any close
// (flush). Called with f.mu held.
func (f *File) yieldTo(v catalog.Version) {
	mtime, mode, touched := f.mtime, f.mode, f.touched
	if err := f.journalOver(stateOpen, &v); err != nil {
		f.s.log.Warn("lamina mount: journal", "key", v.Key, "err", err)
	}
	f.closed = false
	f.dropStream()
	f.base, f.copied, f.size, f.mtime, f.mode = &v, false, v.Size, v.Mtime, catalog.Perm(v.Mode)
	f.moved++
	f.dirty, f.wrote, f.rewritten, f.isNew = false, false, false, false
	f.over, f.mark = nil, cache.HashMark{}
	f.copiedFrom, f.head, f.headRef = 0, nil, ""
	f.seq, f.lastSaved = false, false
	f.emptyKey, f.emptyOver = "", 0
	// Its own commits before the emptying left the staging file with it:
	// nothing staged is a commit's (Release drops it, not for Sync).
	f.committed, f.lazySeq = false, 0
	if touched {
		f.mtime, f.mode = mtime, mode
	}
	f.s.log.Info("lamina mount: a file created or emptied and closed unwritten left another writer's later version the latest", "key", v.Key, "version", v.Version)
}

// handOff leaves the File's staged bytes, which its last commit holds, to
// Sync (Release's stateDone) and gives the File a new, empty staging file,
// whose bytes will build on base. Called with f.mu held.
func (f *File) handOff(base *catalog.Version) bool {
	id := newID()
	p := filepath.Join(f.s.opts.Dir, id)
	data, err := f.s.newStaging(p)
	if err != nil {
		return false
	}
	key := f.Key()
	j := journal{ID: f.id, State: stateDone, Key: key, Mode: f.mode, Manifest: f.base.Manifest, LazySeq: f.lazySeq, Stem: f.stem}
	f.lazyFields(&j)
	if err := f.s.jlog.put(j); err != nil {
		data.Close()
		f.s.retire(p)
		return false
	}
	f.s.deferSync(failedClose{j: j, mtime: f.mtime, run: f.run, closed: time.Now()})
	f.closeData()
	f.id, f.data, f.committed, f.closed = id, data, false, false
	if err := f.journalOver(stateOpen, base); err != nil {
		f.s.log.Warn("lamina mount: journal", "key", key, "err", err)
	}
	return true
}
