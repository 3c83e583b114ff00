package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
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
	r, err := instance.MoveFromCache(s, func() bool { return daemonRuns(dirs, s) })
	for _, d := range r.Moved {
		fmt.Fprintf(w, "lamina: moved %s to %s (what is not yet committed or uploaded no longer lives in the cache folder)\n", d, filepath.Join(s.DataDir, filepath.Base(d)))
	}
	for _, d := range r.Busy {
		fmt.Fprintf(w, "lamina: %s is still in use by a running older lamina (its mount or upload queue); it moves to %s at a start after that one stops, and meanwhile the older lamina keeps using it\n", d, filepath.Join(s.DataDir, filepath.Base(d)))
	}
	for _, p := range r.Kept {
		fmt.Fprintf(w, "lamina: left %s in place: the data folder has another file of that name; nothing was lost: look at both and keep what you need\n", p)
	}
	if err != nil {
		fmt.Fprintf(w, "lamina: moving the cache folder's queues to the data folder: %v; what did not move stays where it is and is moved at the next start\n", err)
	}
}

// daemonRuns says whether a mount daemon of s runs (its socket answers, or
// its state file names a live process other than this one).
func daemonRuns(dirs instance.Dirs, s instance.Settings) bool {
	if st, err := readState(dirs, s.Name); err == nil && st.PID != os.Getpid() && processAlive(st.PID) {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	cl, err := catalogrpc.Dial(ctx, dirs.DaemonSocket(s), s.ID)
	if err != nil {
		return false
	}
	cl.Close()
	return true
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
