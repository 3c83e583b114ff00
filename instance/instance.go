package instance

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os/user"
	"sync/atomic"
	"time"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/ref"
	"github.com/lamina-bio/lamina/storage"
)

// Instance is an opened instance: settings, catalog and content store.
type Instance struct {
	Settings Settings
	Catalog  catalog.Catalog
	Backend  storage.Backend
	Store    *cache.Store
	User     string
	Log      *slog.Logger // repairs worth knowing about (a rebuilt ontology index); nil: slog.Default()
	// Run is the run the caller works for (the live run its LAMINA_RUN
	// names, DESIGN §5); "" when none. Versions Save makes are its outputs
	// unless SaveOptions.Run names another. The caller sets it.
	Run string
	// IndexProgress, if not nil, is told how many packs a rebuild of the
	// dedup index read of how many (Save).
	IndexProgress func(done, total int)

	dedupTried atomic.Bool    // RebuildDedupIndex ran: once per Instance
	closers    []func() error // run by Close []func() error // run by Close
}

// New assembles an Instance from parts the caller built.
func New(s Settings, cat catalog.Catalog, b storage.Backend, store *cache.Store) *Instance {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	return &Instance{Settings: s, Catalog: cat, Backend: b, Store: store, User: name}
}

// Close runs what OnClose registered (last first), then releases the
// catalog.
func (in *Instance) Close() error {
	for i := len(in.closers) - 1; i >= 0; i-- {
		in.closers[i]()
	}
	in.closers = nil
	return in.Catalog.Close()
}

// OnClose has Close call fn before it releases the catalog: the caller that
// wired a backend with background work (an upload queue) finishes it there.
func (in *Instance) OnClose(fn func() error) { in.closers = append(in.closers, fn) }

// Resolve finds the version a user names: "KEY", "KEY@vN" or a uid prefix.
// KEY@vN and a uid find a version in the trash too (Trashed set).
func (in *Instance) Resolve(ctx context.Context, spec string) (catalog.Version, error) {
	s, err := ref.ParseSpec(spec)
	if err != nil {
		return catalog.Version{}, err
	}
	if s.UID != "" {
		v, err := in.Catalog.ByUID(ctx, s.UID)
		if errors.Is(err, catalog.ErrNotFound) && ref.CheckExistingKey(spec) == nil {
			// Text like "README" could be a key as well as a uid prefix.
			if kv, kerr := in.Catalog.ByKey(ctx, spec, 0); kerr == nil {
				return kv, nil
			}
		}
		return v, err
	}
	v, err := catalog.ByKeyWithTrash(ctx, in.Catalog, s.Key, s.Version)
	if errors.Is(err, catalog.ErrNotFound) && s.Version == 0 && len(spec) < ref.MinUIDPrefix && ref.IsUIDPrefix(spec+"00000000"[:ref.MinUIDPrefix-len(spec)]) {
		// Too short to be taken as a uid prefix: say so, not only
		// that no key matches.
		err = fmt.Errorf("%w; a uid prefix needs at least %d characters", err, ref.MinUIDPrefix)
	}
	return v, err
}

// recordName names a new object in records/: a batch or a tombstone.
func recordName() string {
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	return fmt.Sprintf("records/%d-%x.json", time.Now().UnixNano(), rnd)
}

// FlushRecords writes the storage records of every version the catalog says
// is still unwritten (after a crash, say), as one object, so that the storage
// root alone can rebuild the catalog's artifact records.
func (in *Instance) FlushRecords(ctx context.Context) error {
	pending, err := in.Catalog.Outbox(ctx)
	if err != nil || len(pending) == 0 {
		return err
	}
	b, err := json.Marshal(pending)
	if err != nil {
		return err
	}
	if err := in.Backend.Put(ctx, recordName(), b); err != nil {
		return err
	}
	if err := in.Backend.Sync(ctx); err != nil {
		return err
	}
	done := make([]string, len(pending))
	for i, v := range pending {
		done[i] = v.UID
	}
	return in.Catalog.OutboxDone(ctx, done)
}
