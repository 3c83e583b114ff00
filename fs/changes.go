package fs

import (
	"context"

	"github.com/lamina-bio/lamina/catalog"
)

// followElsewhere passes the renames and trashes another workstation made
// (the markers among a notification's changes) to the write side: files
// held open here on a version that moved commit to its new key, and those
// on a version trashed commit nothing, as after this mount's own rename or
// unlink (stage.Stage.Moved, Deleted); the clean ones of a key committed
// there follow its new version (stage.Stage.CommittedElsewhere). It runs on the invalidator, not in
// a FUSE request; each affected open file costs a catalog lookup.
func (m *Mount) followElsewhere(changes []string) {
	st := m.ns.st
	if st == nil {
		return
	}
	ctx := context.Background()
	for _, c := range changes {
		if from, to, ok := catalog.ChangedRename(c); ok {
			st.Moved(ctx, from, to)
		} else if key, ok := catalog.ChangedDelete(c); ok {
			st.Deleted(ctx, key)
		} else if _, ok := catalog.ChangedCollection(c); !ok && !catalog.IsMarker(c) {
			st.CommittedElsewhere(ctx, c) // a lookup only when a clean File of c is open here
		}
	}
}
