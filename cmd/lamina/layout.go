package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/lamina-bio/lamina/catalog/catalogrpc"
	"github.com/lamina-bio/lamina/instance"
)

// moveFromCache moves what an older lamina kept in the instance's cache
// folder and is the only copy of user data (the upload queue, the staging
// folder, the tombstone queue, the scratch folder) to its data folder,
// before the command opens any of them (instance.MoveFromCache), and says
// on w what it moved or had to leave. It runs for every command that
// selects an instance: the first command of a new lamina moves them.
func moveFromCache(w io.Writer, dirs instance.Dirs, s instance.Settings) {
	// A command that selects the instance twice says it once.
	movedMu.Lock()
	defer movedMu.Unlock()
	if movedFor[s.DataDir] {
		w = io.Discard
	}
	if movedFor == nil {
		movedFor = map[string]bool{}
	}
	movedFor[s.DataDir] = true
	who := "a running mount of the instance"
	r, err := instance.MoveFromCache(s, func() bool {
		runs, build := daemonRuns(dirs, s)
		switch {
		case runs && build != "" && build == buildID():
			// This build's daemon moved them before it opened them: what
			// is left there is no daemon's.
			return false
		case runs && build != "":
			who = "the running mount daemon of an older lamina"
		}
		return runs
	})
	for _, d := range r.Moved {
		fmt.Fprintf(w, "lamina: moved %s to %s (what is not yet committed or uploaded no longer lives in the cache folder)\n", d, filepath.Join(s.DataDir, filepath.Base(d)))
	}
	if len(r.Busy) > 0 {
		var names []string
		for _, d := range r.Busy {
			names = append(names, filepath.Base(d))
		}
		if len(r.Busy) == 1 && filepath.Base(r.Busy[0]) == "uploads" {
			who = "a running lamina (its upload queue)"
		}
		fmt.Fprintf(w, "lamina: %s still uses %s in %s: moved to %s at a start after it stops (meanwhile it keeps using what is there)\n",
			who, strings.Join(names, ", "), filepath.Dir(r.Busy[0]), s.DataDir)
	}
	for _, p := range r.Kept {
		fmt.Fprintf(w, "lamina: left %s in place: the data folder has another file of that name; nothing was lost: look at both and keep what you need\n", p)
	}
	for _, p := range r.Dropped {
		fmt.Fprintf(w, "lamina: removed the socket %s: it meant nothing without the process that had made it\n", p)
	}
	for _, p := range r.Unsupported {
		fmt.Fprintf(w, "lamina: left %s in place: an entry of that kind (a device node) cannot move to the data folder on another file system; remove it or move it yourself (said once)\n", p)
	}
	if err != nil {
		fmt.Fprintf(w, "lamina: moving the cache folder's queues to the data folder: %v; what did not move stays where it is and is moved at the next start\n", err)
	}
}

var (
	movedMu  sync.Mutex
	movedFor map[string]bool // the data folders moveFromCache reported on
)

// daemonRuns says whether a mount daemon of s runs (its socket answers, or
// its state file names a live process that is verifiably it: readState),
// and its build when its socket says so ("" otherwise).
func daemonRuns(dirs instance.Dirs, s instance.Settings) (bool, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if cl, err := catalogrpc.Dial(ctx, dirs.DaemonSocket(s), s.ID); err == nil {
		build := cl.Hello().Build
		cl.Close()
		return true, cmp.Or(build, "older")
	}
	st, err := readState(dirs, s.Name)
	return err == nil && st.PID != os.Getpid() && processAlive(st.PID), ""
}

// leftInCache is the folder of staged files, or of tombstones, that an
// older lamina kept in the cache folder and that could not be moved: a
// mount would not see what it holds (and its Recover would drop staged
// files whose journal stayed behind), so the mount refuses while it is
// there. "" when none.
func leftInCache(s instance.Settings) string {
	if s.CacheDir == "" || filepath.Clean(s.CacheDir) == filepath.Clean(s.DataDir) {
		return ""
	}
	for _, name := range []string{"staging", "tombstones"} {
		p := filepath.Join(s.CacheDir, name)
		if ents, err := os.ReadDir(p); err == nil && len(ents) > 0 {
			return p
		}
	}
	return ""
}

// oldUploadQueue is the upload queue an older lamina kept in the cache
// folder, while it is still there (its process still runs and holds it:
// MoveFromCache moves it at a start after that): "" when there is none.
func oldUploadQueue(s instance.Settings) string {
	if s.CacheDir == "" || filepath.Clean(s.CacheDir) == filepath.Clean(s.DataDir) {
		return ""
	}
	p := filepath.Join(s.CacheDir, "uploads")
	if fi, err := os.Stat(p); err != nil || !fi.IsDir() {
		return ""
	}
	return p
}
