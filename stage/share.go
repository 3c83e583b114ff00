package stage

import (
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
	f.over, f.mark = nil, cache.HashMark{}
	f.rewritten = false
	f.seq, f.lastSaved = false, false
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
