package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/catalog/postgres"
	"github.com/lamina-bio/lamina/instance"
	"github.com/urfave/cli/v2"
)

// usesPostgres reports whether the instance's catalog is a PostgreSQL
// database (its settings hold the URL, without a password).
func usesPostgres(s instance.Settings) bool { return postgres.IsURL(s.Catalog) }

// openPostgres opens the instance's PostgreSQL catalog. The password, if
// the server asks for one, comes from PGPASSWORD or ~/.pgpass (PGPASSFILE).
func openPostgres(ctx context.Context, s instance.Settings, log *slog.Logger) (*postgres.Store, error) {
	return openPostgresWith(ctx, s, postgres.Options{Logger: log})
}

// openPostgresWith opens the catalog of instance s, which must be there:
// a database without the instance's shared settings (emptied, made again,
// the wrong one) is refused, as an empty bbolt file is (BoltOptions.Existing),
// and never gets a new schema: its gc would delete every pack the lost
// catalog named.
func openPostgresWith(ctx context.Context, s instance.Settings, o postgres.Options) (*postgres.Store, error) {
	o.Existing = true
	o.Instance = s.ID // every write checks the database still holds s's catalog (a daemon lives for weeks)
	st, err := dialPostgres(ctx, s.Catalog, o)
	if errors.Is(err, postgres.ErrNoCatalog) {
		return nil, noCatalog(s, "holds no lamina catalog")
	}
	if err != nil {
		return nil, err
	}
	if err := checkShared(ctx, st, s); err != nil {
		st.Close()
		return nil, err
	}
	return st, nil
}

// openPostgresImport opens the catalog of s for import-catalog, the way
// back for a catalog that was lost: a database without one gets the
// schema, and the shared settings once the records are in
// (restoreShared). One that holds another instance is refused.
func openPostgresImport(ctx context.Context, s instance.Settings) (*postgres.Store, error) {
	st, err := dialPostgres(ctx, s.Catalog, postgres.Options{})
	if err != nil {
		return nil, err
	}
	sh, err := readShared(ctx, st)
	if err == nil && s.ID != "" && sh.ID != s.ID {
		err = otherInstance(s, sh)
	}
	if err != nil && !errors.Is(err, catalog.ErrNotFound) {
		st.Close()
		return nil, err
	}
	return st, nil
}

// restoreShared records the shared settings of the current instance in
// its database after an import into one that had none.
func restoreShared(c *cli.Context, cat catalog.Catalog) error {
	st, ok := cat.(*postgres.Store)
	if !ok {
		return nil
	}
	if _, err := readShared(c.Context, st); !errors.Is(err, catalog.ErrNotFound) {
		return err
	}
	_, s, err := currentSettings(c)
	if err != nil {
		return err
	}
	return storeShared(c.Context, st, s)
}

// dialPostgres opens the database at url; without o.Existing it sets up
// the schema in an empty one (init, import-catalog). An upgrade of the
// schema is said on stderr unless o.OnMigrated tells it elsewhere (a
// mount daemon): stdout stays what scripts read.
func dialPostgres(ctx context.Context, url string, o postgres.Options) (*postgres.Store, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if o.OnMigrated == nil {
		o.OnMigrated = func(from, to int) { fmt.Fprintf(os.Stderr, "lamina: warning: %s\n", schemaMigratedNote(from, to)) }
	}
	st, err := postgres.Open(ctx, url, o)
	switch {
	case err == nil:
	case authFailed(err):
		return nil, hinted(err, "a password comes from PGPASSWORD or ~/.pgpass, never from the settings")
	case unreachable(err):
		return nil, hinted(err, "is the database server up, and does the URL name it?")
	case pgCode(err, "3D000"): // invalid_catalog_name
		return nil, hinted(err, "was the database dropped, or does the URL name the wrong one? Restore it from a backup, or give the right URL")
	}
	return st, err
}

// unreachable reports a server that could not be reached: refused,
// unknown host, no route, a dial that timed out.
func unreachable(err error) bool {
	var op *net.OpError
	var dns *net.DNSError
	return errors.As(err, &op) || errors.As(err, &dns)
}

// pgCode reports whether err is the server's error of SQLSTATE code.
func pgCode(err error, code string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == code
}

// hinted is a failure to connect in one line, then hint. pgx lists each
// address it tried on a line of its own, and with sslmode=prefer (the
// default) each twice: with TLS, then without.
func hinted(err error, hint string) error {
	lines := tries(err.Error())
	msg := lines[0]
	if len(lines) > 1 {
		msg += " " + strings.Join(lines[1:], "; ")
	}
	return wrapped{msg: msg + "\n(" + hint + ")", err: err}
}

// tries are the lines of msg, a failure to connect, each once: pgx lists
// each address it tried on a line of its own, and with sslmode=prefer (the
// default) each twice, with TLS, then without; a line that ends an earlier
// one is dropped too. sslmode=prefer's first try, refused by a server
// without TLS, is dropped when another try says why it failed. A msg of
// one line is that line.
func tries(msg string) []string {
	var lines []string
	for _, l := range strings.Split(msg, "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !slices.ContainsFunc(lines, func(k string) bool { return strings.HasSuffix(k, l) }) {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		return []string{msg}
	}
	refusedTLS := func(l string) bool { return strings.HasSuffix(l, "tls error: server refused TLS connection") }
	says := func(l string) bool { return !strings.HasSuffix(l, ":") } // not pgx's "failed to connect to `…`:"
	if kept := slices.DeleteFunc(slices.Clone(lines), refusedTLS); slices.ContainsFunc(kept, says) {
		lines = kept
	}
	return lines
}

// catalogCause is the one line status shows of a catalog read that
// failed: its root cause, after the database's host:port (from its URL,
// which holds no password) when the cause does not name it, as "context
// deadline exceeded" of a server that hangs does not.
func catalogCause(s instance.Settings, err error) string {
	cause := rootCause(err)
	if !usesPostgres(s) {
		return cause
	}
	if u, perr := url.Parse(s.Catalog); perr == nil && u.Host != "" && !strings.Contains(cause, u.Host) {
		return "database " + u.Host + ": " + cause
	}
	return cause
}

// wrapped is err with another message.
type wrapped struct {
	msg string
	err error
}

func (w wrapped) Error() string { return w.msg }
func (w wrapped) Unwrap() error { return w.err }

// checkShared refuses a database whose shared settings are missing or
// name another instance than s.
func checkShared(ctx context.Context, st *postgres.Store, s instance.Settings) error {
	sh, err := readShared(ctx, st)
	switch {
	case errors.Is(err, catalog.ErrNotFound):
		return noCatalog(s, "holds no lamina catalog")
	case errors.Is(err, postgres.ErrSettingsDenied), errors.Is(err, postgres.ErrReadOnly), errors.Is(err, postgres.ErrReadDenied):
		return unreadableShared(ctx, st, s, err)
	case err != nil:
		return err
	case s.ID != "" && sh.ID != s.ID:
		return otherInstance(s, sh)
	}
	return nil
}

// unreadableShared is checkShared for a role that may not read the
// settings table. One that may only read is let in with a warning, as
// before the check: it can neither write nor gc (both refuse a role that
// may not write), so a lost catalog costs it nothing but wrong listings.
// One that may write is refused: its gc would be unprotected.
func unreadableShared(ctx context.Context, st *postgres.Store, s instance.Settings, readErr error) error {
	role, err := st.Role(ctx)
	if err != nil {
		return err
	}
	grant := fmt.Sprintf("GRANT SELECT ON settings TO %s", role)
	writable, err := st.Writable(ctx)
	if err != nil {
		return err
	}
	if !writable {
		fmt.Fprintf(os.Stderr, "lamina: warning: the database role %s may not read the settings table, so whether the database at %s still holds the catalog of instance %q is not checked (it may only read; ask its owner: %s)\n",
			role, postgres.Redact(s.Catalog), s.Name, grant)
		return nil
	}
	return wrapped{fmt.Sprintf("the database role %s may not read the settings table, which names the instance whose catalog the database holds: nothing is done without that check (a gc in a database that was reset would delete the data); ask its owner: %s",
		role, grant), readErr}
}

func otherInstance(s instance.Settings, sh sharedSettings) error {
	return noCatalog(s, fmt.Sprintf("holds the catalog of instance %q (id %s), not the one", sh.Name, sh.ID))
}

// noCatalog is the refusal of a database that does not hold s's catalog.
// There is no command that rebuilds a catalog from the storage's records
// yet: a backup or an export brings it back.
func noCatalog(s instance.Settings, what string) error {
	return catalog.Errorf(catalog.ErrDamaged, "the database at %s %s for instance %q (id %s): was it reset, or is the URL wrong? "+
		"Nothing was changed, and the stored data is untouched. Restore the database from a backup, "+
		"or load an export of the catalog (lamina export-catalog FILE) into it with `lamina --instance %s import-catalog FILE`",
		postgres.Redact(s.Catalog), what, s.Name, s.ID, s.Name)
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

const sharedSettingsName = postgres.InstanceSetting

func storeShared(ctx context.Context, st *postgres.Store, s instance.Settings) error {
	b, err := json.Marshal(sharedSettings{Name: s.Name, ID: s.ID, Storage: s.Storage, S3: s.S3, Scratch: s.Scratch, Created: s.Created})
	if err != nil {
		return err
	}
	return st.SetSetting(ctx, sharedSettingsName, b)
}

func loadShared(ctx context.Context, st *postgres.Store) (sharedSettings, error) {
	sh, err := readShared(ctx, st)
	if errors.Is(err, postgres.ErrSettingsDenied) || errors.Is(err, postgres.ErrReadDenied) {
		return sh, err // it may hold one: the role may not read which
	}
	if err != nil {
		return sh, fmt.Errorf("the database holds no lamina instance (create one with `lamina init --db URL`): %w", err)
	}
	return sh, nil
}

// readShared reads the shared settings; catalog.ErrNotFound if there are
// none.
func readShared(ctx context.Context, st *postgres.Store) (sharedSettings, error) {
	var sh sharedSettings
	raw, err := st.Setting(ctx, sharedSettingsName)
	if err != nil {
		return sh, err
	}
	return sh, json.Unmarshal(raw, &sh)
}

var _ catalog.Catalog = (*postgres.Store)(nil)

// schemaMigratedNote says that this lamina upgraded the shared catalog's
// schema and what that does to the team: every mount by an older lamina
// turns read-only at its next write (postgres schemaGuard), and an older
// lamina refuses the database.
func schemaMigratedNote(from, to int) string {
	return fmt.Sprintf("upgraded the shared catalog database from schema %d to %d (this lamina's): "+
		"mounts of an older lamina on other workstations are read-only from now on (writes get EROFS) and an older lamina refuses the database, "+
		"until each is upgraded and remounted (`lamina umount M && lamina mount M`)", from, to)
}

// openDaemonCatalog opens the catalog a mount daemon serves: the bbolt file
// held open, or the PostgreSQL store (pg, non-nil) that the daemon also
// listens on. writable is false for a database role that may only read.
// A database reset under the daemon and given to another instance is
// never written into: the store refuses every write from then on
// (postgres.ErrForeign) and foreign is called once. A database whose
// schema a newer lamina upgraded meanwhile is not written the old way:
// the store refuses every write from then on (catalog.ErrUpgraded) and
// upgraded is called once. migrated is told an upgrade the daemon made.
func openDaemonCatalog(ctx context.Context, s instance.Settings, log *slog.Logger, foreign, upgraded func(error), migrated func(from, to int)) (cat catalog.Catalog, pg *postgres.Store, writable bool, err error) {
	if !usesPostgres(s) {
		b, err := catalog.OpenBolt(s.Catalog, catalog.BoltOptions{Hold: true, Timeout: 20 * time.Second, Existing: true})
		return b, nil, err == nil, err
	}
	pg, err = openPostgresWith(ctx, s, postgres.Options{Logger: log, CallTimeout: catalogTimeout(), OnForeign: foreign, OnUpgraded: upgraded, OnMigrated: migrated})
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

// listenChanges passes the keys other stores change to m, and to runs
// (the lineage tracker, when there is one) the runs they start
// (catalog.RunStartChange), until the returned stop is called.
func listenChanges(pg *postgres.Store, m, runs changeSink, log *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		pg.Listen(ctx, func(keys []string) {
			if runs != nil {
				runs.Changed(keys) // does not block; nil: it looks at every run
			}
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
