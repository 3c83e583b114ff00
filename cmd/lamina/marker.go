package main

import (
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/lineage"
	"github.com/lamina-bio/lamina/ref"
)

// errNotRunUID is markedRun's error for a LAMINA_RUN that cannot be a
// run's uid (16 letters and digits): a typo, a value set by hand. Not
// found, as a run of another catalog is; unlike that one, said (badMarker).
var errNotRunUID = catalog.Errorf(catalog.ErrNotFound, "%s is not a run's uid", lineage.EnvRun)

// isRunUID reports whether uid can name a run.
func isRunUID(uid string) bool { return len(uid) == ref.StemLen && ref.IsUIDPrefix(uid) }

var badMarkerOnce sync.Once

// badMarker warns on w, once per process, that LAMINA_RUN names no run
// when it cannot be a run's uid (errNotRunUID): `lamina run`, `save` and
// `get` ignored such a marker silently, and the user believed the work
// credited to a run. One that can be is not said: it may be a run of
// another instance's catalog.
func badMarker(w io.Writer) {
	uid := os.Getenv(lineage.EnvRun)
	if uid == "" || isRunUID(uid) {
		return
	}
	badMarkerOnce.Do(func() {
		fmt.Fprintf(w, "lamina: warning: %s=%s names no run (a run's uid is %d letters and digits): ignored; clear it with: unset %s\n",
			lineage.EnvRun, uid, ref.StemLen, lineage.EnvRun)
	})
}
