package instance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/storage"
)

// GCStats reports what gc found and removed.
type GCStats struct {
	Versions     int   `json:"versions"`          // versions whose data is kept
	Packs        int   `json:"packs"`             // packs seen
	DeadPacks    int   `json:"deleted_packs"`     // packs removed (or that would be)
	DeletedBytes int64 `json:"deleted_bytes"`     // their size
	YoungPacks   int   `json:"young_packs"`       // unreferenced but inside the grace period
	DeadInLive   int64 `json:"dead_bytes_kept"`   // unreferenced blobs inside packs still in use
	Pardoned     int   `json:"pardoned_packs"`    // marked for deletion, then found in use again: kept
	Records      int   `json:"deleted_records"`   // record objects removed
	Tombstones   int   `json:"merged_tombstones"` // tombstones merged into one (and removed)
	Unreadable   int   `json:"unreadable_packs"`  // packs whose trailer could not be read: kept
	DryRun       bool  `json:"dry_run"`           // nothing was deleted: the counts say what would be
}

// GCOptions say what gc may delete and how.
type GCOptions struct {
	// Grace keeps unreferenced packs younger than this.
	Grace time.Duration
	// Settle is how long packs stay marked for deletion before gc reads the
	// catalog again and deletes them (cache.MinSettle keeps saves running
	// meanwhile safe). 0 deletes at once: only when nothing else, on any
	// machine, is saving to this storage.
	Settle time.Duration
	DryRun bool
	// Held, if set, lists manifests (cache.Ref) whose content is in use
	// though no version may name it: what the mounts of this machine
	// still read of versions deleted for good meanwhile (stage.Heads: an
	// append to a big file holds only its end, and reads its first bytes
	// from the version it was opened on until it is committed). gc reads
	// it after each read of the catalog.
	Held func() ([]string, error)
	// Waiting, if set, is told before the settle period begins.
	Waiting func(packs int, bytes int64, settle time.Duration)
}

// GC deletes packs in which no blob is referenced by any version in the
// catalog (trashed versions keep their data: only `delete --permanent` makes
// it collectable), once they are older than the grace period. Packs that
// still hold a referenced blob are kept whole; their dead bytes are reported.
//
// Deleting is safe against saves running meanwhile on any machine (whose
// dedup index may name the packs): the packs are marked first, and deleted
// only if the catalog, read again after the settle period, still references
// none of their blobs (cache/condemned.go).
func (in *Instance) GC(ctx context.Context, o GCOptions) (GCStats, error) {
	var st GCStats
	// A role that may not write the catalog may not delete its data either.
	if c, ok := in.Catalog.(interface{ CheckWritable(context.Context) error }); ok && !o.DryRun {
		if err := c.CheckWritable(ctx); err != nil {
			return st, fmt.Errorf("cannot gc: %w", err)
		}
	}
	// Only the owner of the storage may collect it (owner.go); one made
	// before owners is claimed now.
	if err := in.CheckStorage(ctx, !o.DryRun); err != nil {
		return st, err
	}
	if !o.DryRun { // a dry run only reads: a read-only role may make one
		if err := in.FlushRecords(ctx); err != nil {
			return st, err
		}
	}
	live := liveSet{held: o.Held}
	if err := live.scan(ctx, in, &st.Versions); err != nil {
		return st, err
	}
	marks, err := in.Store.MarkTimes(ctx)
	if err != nil {
		return st, err
	}
	cutoff := time.Now().Add(-o.Grace)
	var doomed []cache.PackInfo
	inUse := map[string]bool{} // packs a version uses
	listed := map[string]bool{}
	err = in.Store.Packs(ctx, func(p cache.PackInfo, perr error) error {
		st.Packs++
		listed[p.ID] = true
		if perr != nil {
			st.Unreadable++
			return nil
		}
		used, dead := live.uses(p)
		switch {
		case used:
			st.DeadInLive += dead
			inUse[p.ID] = true
		case p.ModTime.After(cutoff):
			st.YoungPacks++
		default:
			doomed = append(doomed, p)
		}
		return nil
	})
	if err != nil {
		return st, err
	}
	// Marks of packs in use again are removed, and those of packs deleted
	// long ago.
	dying := map[string]bool{}
	for _, p := range doomed {
		dying[p.ID] = true
	}
	var pardon []string
	for id, at := range marks {
		switch {
		case dying[id]:
		case inUse[id]:
			pardon = append(pardon, id)
			st.Pardoned++
		case !listed[id] && time.Since(at) >= cache.KeepDeletedMarks:
			pardon = append(pardon, id) // deleted long ago
		}
		// The others keep their marks: a pack in its grace period for
		// this run, or one deleted lately (saves elsewhere still need its
		// mark), may be another gc's, marked with a shorter grace and in
		// its settle period; without the mark a save could reuse it and
		// commit after that gc's second read of the catalog.
	}
	if o.DryRun {
		st.DryRun = true
		for _, p := range doomed {
			st.DeadPacks++
			st.DeletedBytes += p.Size
		}
		return st, in.gcRecords(ctx, cutoff, live.uids, true, &st)
	}
	if err := in.Store.Pardon(ctx, pardon); err != nil {
		return st, err
	}
	var notes map[string]string // what the marks of doomed said once written
	if len(doomed) > 0 && o.Settle > 0 {
		var before []string // marked before this run
		var size int64
		for _, p := range doomed {
			if _, marked := marks[p.ID]; marked {
				before = append(before, p.ID)
			}
			size += p.Size
		}
		var err error
		if notes, err = in.Store.MarkNotes(ctx, before); err != nil {
			return st, err
		}
		// A mark listed but not in storage (a copy staged here by an
		// older lamina; removed since) is written again.
		var ids []string
		for _, p := range doomed {
			if _, ok := notes[p.ID]; !ok {
				ids = append(ids, p.ID)
			}
		}
		note := cache.MarkNote("marked", in.User)
		if err := in.Store.Condemn(ctx, ids, note); err != nil {
			return st, fmt.Errorf("%w: nothing was deleted (with nothing else saving to this storage, `lamina gc --settle 0s` deletes without marks)", err)
		}
		for _, id := range ids {
			notes[id] = note
		}
		if o.Waiting != nil {
			o.Waiting(len(doomed), size, o.Settle)
		}
		select {
		case <-ctx.Done():
			return st, ctx.Err() // the marks stay: the next gc settles them
		case <-time.After(o.Settle):
		}
		// Saves that reused these packs before the marks have committed
		// by now: their versions keep the packs.
		if err := live.scan(ctx, in, nil); err != nil {
			return st, err
		}
		var still []cache.PackInfo
		var back []string
		for _, p := range doomed {
			if used, _ := live.uses(p); used {
				back = append(back, p.ID)
			} else {
				still = append(still, p)
			}
		}
		if err := in.Store.Pardon(ctx, back); err != nil {
			return st, err
		}
		st.Pardoned += len(back)
		// Only packs whose mark stayed as it was all the settle period:
		// one removed meanwhile (another gc found the pack in use) may
		// have been reused since, and one rewritten was deleted by
		// another gc already (it counts them).
		now, err := in.Store.MarkNotes(ctx, packIDs(still))
		if err != nil {
			return st, err
		}
		doomed = slices.DeleteFunc(still, func(p cache.PackInfo) bool {
			n, ok := now[p.ID]
			return !ok || n != notes[p.ID]
		})
	}
	ids := make([]string, len(doomed))
	for i, p := range doomed {
		ids[i] = p.ID
		st.DeadPacks++
		st.DeletedBytes += p.Size
	}
	if err := in.Store.DeletePacks(ctx, ids); err != nil {
		return st, err
	}
	if o.Settle > 0 && len(ids) > 0 {
		// Their marks stay KeepDeletedMarks from now (a later gc removes
		// them): a save on another machine may have seen these packs in
		// storage within the last minute and reuse their chunks unless
		// marked, even one that starts after this gc has ended.
		if err := in.Store.Condemn(ctx, ids, cache.MarkNote("deleted", in.User)); err != nil {
			return st, fmt.Errorf("%d packs deleted, but their marks could not be rewritten as deleted (the marks written before stay in storage): %w", len(ids), err)
		}
	}
	if err := in.gcRecords(ctx, cutoff, live.uids, false, &st); err != nil {
		return st, err
	}
	if l, ok := in.Backend.(interface {
		Clean(context.Context, time.Time) (int, error)
	}); ok {
		_, _ = l.Clean(ctx, cutoff)
	}
	return st, nil
}

func packIDs(ps []cache.PackInfo) []string {
	ids := make([]string, len(ps))
	for i, p := range ps {
		ids[i] = p.ID
	}
	return ids
}

// gcRecords deletes record batches older than cutoff whose versions are all
// gone from the catalog. It keeps tombstones (RecordPurged): a batch of a
// purged version may outlive this gc. But it merges those older than
// cutoff into one, as every purge writes one and an import reads every
// record object: the merged one is written and synced first, then the
// others deleted, so a crash or another gc at work meanwhile leaves at
// worst the same uids twice.
func (in *Instance) gcRecords(ctx context.Context, cutoff time.Time, uids map[string]bool, dryRun bool, st *GCStats) error {
	records, err := in.recordBatches(ctx)
	if err != nil {
		return err
	}
	var tombs []string // names of the tombstones to merge
	purged := map[string]bool{}
	for _, r := range records {
		if r.ModTime.After(cutoff) {
			continue
		}
		b, err := in.Backend.Get(ctx, r.Name)
		if storage.IsNotFound(err) {
			continue // another gc at work deleted it since the listing (and counts it)
		}
		if err != nil {
			return err
		}
		var vs []struct {
			UID string `json:"uid"`
		}
		if json.Unmarshal(b, &vs) != nil {
			var t tombstone
			if json.Unmarshal(b, &t) == nil && t.Purged != nil {
				tombs = append(tombs, r.Name)
				for _, uid := range t.Purged {
					purged[uid] = true
				}
			}
			continue // a tombstone, or not ours to judge: keep it
		}
		keep := false
		for _, v := range vs {
			keep = keep || uids[v.UID]
		}
		if !keep {
			st.Records++
			if !dryRun {
				if err := in.Backend.Delete(ctx, r.Name); err != nil {
					return err
				}
			}
		}
	}
	if len(tombs) > 1 {
		return in.mergeTombstones(ctx, tombs, purged, dryRun, st)
	}
	return nil
}

// mergeTombstones replaces the tombstones names with one naming purged.
func (in *Instance) mergeTombstones(ctx context.Context, names []string, purged map[string]bool, dryRun bool, st *GCStats) error {
	st.Tombstones += len(names)
	if dryRun {
		return nil
	}
	t := tombstone{Purged: make([]string, 0, len(purged))}
	for uid := range purged {
		t.Purged = append(t.Purged, uid)
	}
	slices.Sort(t.Purged)
	data, err := json.Marshal(t)
	if err != nil {
		return err
	}
	// In storage before the others go, never staged here: an import on
	// another machine would find no tombstone and take the purged
	// versions for live ones.
	if err := storage.PutStored(ctx, in.Backend, recordName(), data); err != nil {
		return fmt.Errorf("merge tombstones: %w", err)
	}
	if err := in.Backend.Sync(ctx); err != nil {
		return err
	}
	for _, n := range names {
		if err := in.Backend.Delete(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

// recordBatches lists the storage's record batches (FlushRecords).
func (in *Instance) recordBatches(ctx context.Context) ([]storage.Info, error) {
	var records []storage.Info
	err := in.Backend.List(ctx, "records/", func(i storage.Info) error {
		// records/<time>-<rand>.json only: another instance's root may
		// lie below records/ (made before init refused nested roots).
		if n := strings.TrimPrefix(i.Name, "records/"); !strings.Contains(n, "/") && strings.HasSuffix(n, ".json") {
			records = append(records, i)
		}
		return nil
	})
	return records, err
}

// Recorded reads the versions the storage's record batches hold (the
// storage root's copy of the catalog), by uid: their uid, key and number.
// Versions a tombstone (RecordPurged) names are left out: they were
// deleted for good, and their batch stays while it holds others.
func (in *Instance) Recorded(ctx context.Context) (map[string]catalog.Version, error) {
	out := map[string]catalog.Version{}
	purged := map[string]bool{}
	read := map[string]bool{}
	// An object gone since the listing may be a tombstone a gc merged
	// into one written before (gcRecords): list again for that one.
	for again, round := true, 0; again && round < 3; round++ {
		records, err := in.recordBatches(ctx)
		if err != nil {
			return nil, err
		}
		again = false
		for _, r := range records {
			if read[r.Name] {
				continue
			}
			read[r.Name] = true
			b, err := in.Backend.Get(ctx, r.Name)
			if storage.IsNotFound(err) {
				again = true // a gc deleted it since the listing
				continue
			}
			if err != nil {
				return nil, err
			}
			readRecord(b, out, purged)
		}
	}
	for uid := range purged {
		delete(out, uid)
	}
	return out, nil
}

// readRecord adds what the record object b holds to out, or, a tombstone,
// to purged.
func readRecord(b []byte, out map[string]catalog.Version, purged map[string]bool) {
	var vs []struct {
		UID     string `json:"uid"`
		Key     string `json:"key"`
		Version int    `json:"version"`
	}
	if json.Unmarshal(b, &vs) != nil {
		var t tombstone
		if json.Unmarshal(b, &t) == nil {
			for _, uid := range t.Purged {
				purged[uid] = true
			}
		}
		return // a tombstone, or not ours (gcRecords keeps both)
	}
	for _, v := range vs {
		if v.UID != "" {
			out[v.UID] = catalog.Version{UID: v.UID, Key: v.Key, Version: v.Version}
		}
	}
}

// tombstone is the record that versions were deleted for good. It is a
// JSON object where a batch is an array, so that gcRecords (this lamina's
// and older ones) keeps it rather than read it as a batch of no live
// version; it is small.
type tombstone struct {
	Purged []string `json:"purged"` // uids
}

// RecordPurged writes a tombstone in b's records/ for versions the catalog
// has deleted for good, so that import-catalog does not take their
// records, which stay in a batch shared with live versions, for versions
// an export lacks. It is written after the purge commits: a tombstone
// then never names a live version, and a crash in between only leaves
// the purge unrecorded (import-catalog asks for --partial, as before).
func RecordPurged(ctx context.Context, b storage.Backend, vs []catalog.Version) error {
	if len(vs) == 0 {
		return nil
	}
	t := tombstone{Purged: make([]string, len(vs))}
	for i, v := range vs {
		t.Purged[i] = v.UID
	}
	data, err := json.Marshal(t)
	if err != nil {
		return err
	}
	if err := b.Put(ctx, recordName(), data); err != nil {
		return err
	}
	return b.Sync(ctx)
}

// GCBlockedError is a gc that stopped, nothing deleted, because the
// manifest of Version (live or trashed) could not be read: without it gc
// cannot know which data is in use. It stays stopped until the manifest
// reads, or the version is gone from the catalog.
type GCBlockedError struct {
	Version catalog.Version
	Err     error
}

func (e *GCBlockedError) Error() string {
	return fmt.Sprintf("gc stopped, nothing deleted: %s: %v", e.Version.Ref(), e.Err)
}

func (e *GCBlockedError) Unwrap() error { return e.Err }

// liveSet holds where every blob a version references is stored. Reads go
// by location, so a copy of a chunk in another pack (a save that stored it
// again rather than reuse a marked pack) does not keep this one.
type liveSet struct {
	blobs     map[cache.Loc]bool
	manifests map[string]bool // read already: manifests never change
	uids      map[string]bool
	held      func() ([]string, error) // GCOptions.Held
}

// scan reads the manifests held (GCOptions.Held), then the catalog, and the
// manifests it has not read before. Held first: a File that commits and
// goes in between is in the catalog then, by a version that keeps what
// it held.
func (l *liveSet) scan(ctx context.Context, in *Instance, versions *int) error {
	if l.blobs == nil {
		l.blobs, l.manifests = map[cache.Loc]bool{}, map[string]bool{}
	}
	l.uids = map[string]bool{}
	if l.held != nil {
		held, err := l.held()
		if err != nil {
			return fmt.Errorf("gc stopped, nothing deleted: what the mounts of this machine are writing: %w", err)
		}
		for _, ref := range held {
			err := l.add(ctx, in, ref)
			if errors.Is(err, cache.ErrPackMissing) || storage.IsNotFound(err) {
				continue // gone already: nothing left to keep
			}
			if err != nil {
				return fmt.Errorf("gc stopped, nothing deleted: a file being written through a mount of this machine reads data of %s: %w", ref, err)
			}
		}
	}
	return in.Catalog.Each(ctx, func(v catalog.Version) error {
		if versions != nil {
			*versions++
		}
		l.uids[v.UID] = true
		if err := l.add(reading(ctx, v), in, v.Manifest); err != nil {
			// Without the manifest we cannot know which chunks are in use:
			// deleting anything could destroy data. Stop.
			return &GCBlockedError{Version: v, Err: err}
		}
		return nil
	})
}

// add marks the blobs of manifest ref, and the manifest's own, in use.
func (l *liveSet) add(ctx context.Context, in *Instance, ref string) error {
	if l.manifests[ref] {
		return nil
	}
	ml, _, err := cache.Ref(ref).Parse()
	if err != nil {
		return err
	}
	m, err := in.Store.LoadManifest(ctx, cache.Ref(ref))
	if err != nil {
		return err
	}
	l.manifests[ref] = true
	l.blobs[ml] = true
	for _, f := range m.Files {
		for _, c := range f.Chunks {
			l.blobs[c.Loc] = true
		}
	}
	return nil
}

// uses reports whether a version references a blob of p, and the bytes of
// its blobs none does.
func (l *liveSet) uses(p cache.PackInfo) (used bool, dead int64) {
	for _, b := range p.Blobs {
		if l.blobs[b.Loc] {
			used = true
		} else {
			dead += b.Loc.Len
		}
	}
	return used, dead
}
