package fs

import (
	"strings"
	"sync"
	"time"
)

// removalRuns remembers, per folder, the run of removals (unlink, rmdir,
// rename away) that one process made in it since the last name was made
// there, so that an rmdir can tell the catalog when the removal that
// emptied the folder began (catalog.WithRemovalFrom), and restore FOLDER/
// bring back what the removal took, not every lock file, journal or
// placeholder a tool unlinked there before: those were gone when rm -r
// came (audit b4: a restored SQLite journal rolled the database back, a
// restored .git/HEAD.lock stopped git commit). An rm -r removes a folder's
// contents, then the folder, from one process: a removal by another
// process, or a name made, starts a new run. A subfolder's removal counts
// from its own run's start, so a folder's run begins with the first
// removal anywhere beneath it.
type removalRuns struct {
	mu   sync.Mutex
	runs map[string]removalRun // by folder key, "" the root
}

type removalRun struct {
	from time.Time // the run's first removal
	last time.Time // its latest, for pruning
	tid  uint32    // the thread of the latest removal; 0 unknown
	tgid int       // its process; 0 unknown (then no process breaks the run)
}

// Runs left this long without a removal are forgotten once there are
// many: the folder's rmdir then counts from itself.
const (
	removalRunsMax  = 10000
	removalRunsIdle = time.Hour
)

// dirKey is the folder key of a node prefix ("a/b/" → "a/b").
func dirKey(prefix string) string { return strings.TrimSuffix(prefix, "/") }

// parentKey is the key of the folder key is in, "" the root.
func parentKey(key string) string {
	if i := strings.LastIndexByte(key, '/'); i >= 0 {
		return key[:i]
	}
	return ""
}

// sameRun reports whether a removal by thread tid continues run, reading
// /proc only for a thread other than the run's last one. tgid is tid's
// process when it was read.
func (r *removalRuns) sameRun(run removalRun, ok bool, tid uint32) (same bool, tgid int) {
	if !ok {
		return false, threadGroup0(tid)
	}
	if tid == run.tid {
		return true, run.tgid
	}
	tgid = threadGroup0(tid)
	return run.tgid == 0 || tgid == 0 || run.tgid == tgid, tgid
}

// threadGroup0 is threadGroup, 0 for an unknown thread (another pid
// namespace) without reading /proc.
func threadGroup0(tid uint32) int {
	if tid == 0 {
		return 0
	}
	return threadGroup(tid)
}

// removed notes a removal in the folder dir by thread tid that began at
// from (a subfolder's removal: when its own run began).
func (r *removalRuns) removed(dir string, tid uint32, from time.Time) {
	r.mu.Lock()
	run, ok := r.runs[dir]
	r.mu.Unlock()
	same, tgid := r.sameRun(run, ok, tid) // outside the lock: it may read /proc
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.runs == nil {
		r.runs = map[string]removalRun{}
	}
	if len(r.runs) >= removalRunsMax {
		for k, o := range r.runs {
			if now.Sub(o.last) > removalRunsIdle {
				delete(r.runs, k)
			}
		}
	}
	if cur, still := r.runs[dir]; same && still && cur == run {
		run.from = minTime(run.from, from)
	} else {
		run = removalRun{from: from}
	}
	run.last, run.tid, run.tgid = now, tid, tgid
	r.runs[dir] = run
}

// changed notes a name made in the folder dir (a create, mkdir, link or
// rename into it): a removal after it starts a new run.
func (r *removalRuns) changed(dir string) {
	r.mu.Lock()
	delete(r.runs, dir)
	r.mu.Unlock()
}

// from is when the removal of the folder key by thread tid, at now, began:
// its run's start if the run is that process's, else now (the folder was
// empty when the process came to it).
func (r *removalRuns) from(key string, tid uint32, now time.Time) time.Time {
	r.mu.Lock()
	run, ok := r.runs[key]
	r.mu.Unlock()
	if same, _ := r.sameRun(run, ok, tid); same {
		return minTime(run.from, now)
	}
	return now
}

// forget drops the run of the folder key, removed.
func (r *removalRuns) forget(key string) {
	r.mu.Lock()
	delete(r.runs, key)
	r.mu.Unlock()
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
