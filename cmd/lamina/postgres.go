package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/catalog/postgres"
	"github.com/lamina-bio/lamina/instance"
)

// usesPostgres reports whether the instance's catalog is a PostgreSQL
// database (its settings hold the URL, without a password).
func usesPostgres(s instance.Settings) bool { return postgres.IsURL(s.Catalog) }

// openPostgres opens the instance's PostgreSQL catalog. The password, if
// the server asks for one, comes from PGPASSWORD or ~/.pgpass (PGPASSFILE).
func openPostgres(ctx context.Context, s instance.Settings, log *slog.Logger) (*postgres.Store, error) {
	return openPostgresWith(ctx, s, postgres.Options{Logger: log})
}

func openPostgresWith(ctx context.Context, s instance.Settings, o postgres.Options) (*postgres.Store, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	st, err := postgres.Open(ctx, s.Catalog, o)
	if err != nil && authFailed(err) {
		return nil, fmt.Errorf("%w\n(a password comes from PGPASSWORD or ~/.pgpass, never from the settings)", err)
	}
	return st, err
}

// openRunsCatalog is openCatalog for the lineage commands. With
// PostgreSQL too, they talk to the mount daemon when one is up: a run
// registered there is one its tracker attributes the mount's reads and
// writes to (the database itself would not tell the daemon).
func openRunsCatalog(s instance.Settings) (catalog.Catalog, error) {
	if usesPostgres(s) {
		if dirs, err := instance.UserDirs(); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if c, err := dialDaemon(ctx, dirs, s); err == nil { // build.go
				return c, nil
			}
		}
	}
	return openCatalog(s, false)
}

// sharedSettings are what every workstation of an instance shares; the
// database keeps them for `lamina connect` under "instance".
type sharedSettings struct {
	Name    string               `json:"name"`
	ID      string               `json:"id"`
	Storage string               `json:"storage"`
	S3      *instance.S3Settings `json:"s3,omitempty"`
	Scratch []string             `json:"scratch,omitempty"`
	Created time.Time            `json:"created"`
}

const sharedSettingsName = "instance"

func storeShared(ctx context.Context, st *postgres.Store, s instance.Settings) error {
	b, err := json.Marshal(sharedSettings{Name: s.Name, ID: s.ID, Storage: s.Storage, S3: s.S3, Scratch: s.Scratch, Created: s.Created})
	if err != nil {
		return err
	}
	return st.SetSetting(ctx, sharedSettingsName, b)
}

func loadShared(ctx context.Context, st *postgres.Store) (sharedSettings, error) {
	var sh sharedSettings
	raw, err := st.Setting(ctx, sharedSettingsName)
	if err != nil {
		return sh, fmt.Errorf("the database holds no lamina instance (create one with `lamina init --db URL`): %w", err)
	}
	return sh, json.Unmarshal(raw, &sh)
}

var _ catalog.Catalog = (*postgres.Store)(nil)

// openDaemonCatalog opens the catalog a mount daemon serves: the bbolt file
// held open, or the PostgreSQL store (pg, non-nil) that the daemon also
// listens on. writable is false for a database role that may only read.
func openDaemonCatalog(ctx context.Context, s instance.Settings, log *slog.Logger) (cat catalog.Catalog, pg *postgres.Store, writable bool, err error) {
	if !usesPostgres(s) {
		b, err := catalog.OpenBolt(s.Catalog, catalog.BoltOptions{Hold: true, Timeout: 20 * time.Second, Existing: true})
		return b, nil, err == nil, err
	}
	pg, err = openPostgresWith(ctx, s, postgres.Options{Logger: log, CallTimeout: catalogTimeout()})
	if err != nil {
		return nil, nil, false, err
	}
	if writable, err = pg.Writable(ctx); err != nil {
		pg.Close()
		return nil, nil, false, err
	}
	if !writable {
		log.Warn("the database role may only read: the mount is read-only (writes fail with EROFS)")
	}
	return pg, pg, writable, nil
}

// defaultCatalogTimeout bounds each catalog call of a mount daemon
// (postgres.Options.CallTimeout): a FLUSH the kernel cannot interrupt
// waits at most this long for a hung server, then fails with EIO and its
// bytes stay staged for the retry (stage/retry.go), as when the server is
// refused outright. Longer than any answer a working server gives (a
// listing of 100,000 files takes a second or two), short enough that a
// program closing a file is not stuck for minutes.
const defaultCatalogTimeout = 20 * time.Second

// catalogTimeout is defaultCatalogTimeout, or LAMINA_CATALOG_TIMEOUT
// (tests).
func catalogTimeout() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("LAMINA_CATALOG_TIMEOUT")); err == nil && d > 0 {
		return d
	}
	return defaultCatalogTimeout
}

// changeSink is what listenChanges tells of other workstations' changes
// (*fs.Mount).
type changeSink interface {
	Changed(keys []string)
}

// listenChanges passes the keys other stores change to m until the
// returned stop is called.
func listenChanges(pg *postgres.Store, m changeSink, log *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		pg.Listen(ctx, func(keys []string) {
			if keys == nil {
				log.Warn("catalog change notifications were interrupted for longer than the database keeps its change log; names cached meanwhile may be stale for up to their timeout")
				return
			}
			m.Changed(keys)
		})
	}()
	return func() { cancel(); <-done }
}

// authFailed reports whether err is the server refusing the login
// (SQLSTATE class 28, or a password it asked for and was not given).
func authFailed(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "SQLSTATE 28") || strings.Contains(msg, "password")
}
