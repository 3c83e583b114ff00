package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/ref"
)

// ErrReadOnly is returned for a write by a role that may only read. It
// matches fs.ErrPermission.
var ErrReadOnly error = &permError{}

type permError struct{}

func (*permError) Error() string {
	return "the catalog is read-only for this database role (ask its owner for write access: GRANT INSERT, UPDATE, DELETE)"
}
func (*permError) Is(target error) bool { return target == fs.ErrPermission }

// Options tune Open. Every field is optional.
type Options struct {
	// Logger receives what the store handles itself (listener reconnects,
	// retried transactions); nil discards it.
	Logger *slog.Logger
	// MaxConns bounds the connection pool; default 8.
	MaxConns int32
}

// Store is the PostgreSQL catalog. It is safe for concurrent use by many
// goroutines, processes and machines: each call is one transaction, the
// writing ones SERIALIZABLE and retried on a serialization failure.
type Store struct {
	pool    *pgxpool.Pool
	log     *slog.Logger
	id      string // tells this store's notifications from other writers'
	channel string // NOTIFY channel: lamina, or lamina_<schema>
}

// Redact returns the URL without its password, for settings and messages.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.User == nil {
		return rawURL
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.User(u.User.Username())
	}
	return u.String()
}

// HasPassword reports whether the URL carries a password.
func HasPassword(rawURL string) bool {
	u, err := url.Parse(rawURL)
	if err != nil || u.User == nil {
		return false
	}
	_, ok := u.User.Password()
	return ok
}

// IsURL reports whether s names a PostgreSQL database.
func IsURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// Open connects to the database at url (libpq syntax; a password comes
// from PGPASSWORD or the pgpass file), brings its schema up to date and
// refuses a schema newer than this build understands (catalog.ErrSchema).
func Open(ctx context.Context, rawURL string, o Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(rawURL)
	if err != nil {
		return nil, fmt.Errorf("catalog: database %s: %w", Redact(rawURL), err)
	}
	if o.MaxConns == 0 {
		o.MaxConns = 8
	}
	cfg.MaxConns = o.MaxConns
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("catalog: database %s: %w", Redact(rawURL), err)
	}
	s := &Store{pool: pool, log: o.Logger, id: ref.NewStem()}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("catalog: database %s: %w", Redact(rawURL), err)
	}
	var schema string
	if err := pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		pool.Close()
		return nil, fmt.Errorf("catalog: database %s: %w", Redact(rawURL), err)
	}
	s.channel = "lamina"
	if schema != "public" {
		s.channel = "lamina_" + schema
	}
	return s, nil
}

// Close releases the connections.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// Writable reports whether this role may write the catalog.
func (s *Store) Writable(ctx context.Context) (bool, error) {
	var ok bool
	err := s.pool.QueryRow(ctx, `SELECT has_table_privilege('versions', 'INSERT')
		AND has_table_privilege('artifacts', 'UPDATE')
		AND current_setting('transaction_read_only') = 'off'`).Scan(&ok)
	return ok, wrap(err)
}

// wrap turns database errors callers act on into this package's.
func wrap(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "42501", "25006": // insufficient_privilege, read_only_sql_transaction
			return fmt.Errorf("%w (%s)", ErrReadOnly, pe.Message)
		}
	}
	return err
}

// retryable reports a failure a transaction retried from the start may
// not meet again.
func retryable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "40001", "40P01", "23505": // serialization_failure, deadlock_detected, unique_violation (a racing insert)
			return true
		}
	}
	return false
}

// read runs fn in a read-only REPEATABLE READ transaction: one snapshot.
func (s *Store) read(ctx context.Context, fn func(tx pgx.Tx) error) error {
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, fn)
	return wrap(err)
}

// write runs fn in a SERIALIZABLE transaction, retried from the start on a
// serialization failure, and notifies the other stores of the keys fn
// reports changed (on commit: NOTIFY is transactional).
func (s *Store) write(ctx context.Context, fn func(tx pgx.Tx, changed func(keys ...string)) error) error {
	return s.writeN(ctx, 30, fn)
}

// writeN is write with at most attempts attempts (1 for fn that cannot
// run twice).
func (s *Store) writeN(ctx context.Context, attempts int, fn func(tx pgx.Tx, changed func(keys ...string)) error) error {
	var err error
	for i := 0; i < attempts; i++ {
		var keys []string
		err = pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.Serializable}, func(tx pgx.Tx) error {
			keys = keys[:0]
			if err := fn(tx, func(k ...string) { keys = append(keys, k...) }); err != nil {
				return err
			}
			return s.notify(ctx, tx, keys)
		})
		if !retryable(err) {
			return wrap(err)
		}
		s.log.Debug("catalog: transaction retried", "attempt", i+1, "err", err)
		d := time.Duration(1<<min(i, 6)) * time.Millisecond
		select {
		case <-time.After(d + rand.N(d)):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return fmt.Errorf("catalog: gave up after %d conflicting attempts: %w", attempts, err)
}

// change is the payload of a notification.
type change struct {
	From string   `json:"from"`
	Keys []string `json:"keys"`
}

// maxPayload keeps a notification under PostgreSQL's 8000-byte limit.
const maxPayload = 7000

func (s *Store) notify(ctx context.Context, tx pgx.Tx, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	send := func(batch []string) error {
		b, _ := json.Marshal(change{From: s.id, Keys: batch})
		_, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, s.channel, string(b))
		return err
	}
	var batch []string
	size := 0
	for _, k := range keys {
		if size+len(k)+4 > maxPayload && len(batch) > 0 {
			if err := send(batch); err != nil {
				return err
			}
			batch, size = nil, 0
		}
		batch = append(batch, k)
		size += len(k) + 4
	}
	return send(batch)
}

// Listen calls fn with the keys other stores change (on any machine), as
// they commit, until ctx ends. It reconnects after a lost connection;
// changes made meanwhile are reported as lost (fn(nil)), after which a
// caller should drop what it caches. fn runs on one goroutine.
func (s *Store) Listen(ctx context.Context, fn func(keys []string)) error {
	first := true
	for ctx.Err() == nil {
		conn, err := s.pool.Acquire(ctx)
		if err != nil {
			s.log.Warn("catalog: change listener cannot connect; retrying", "err", err)
			sleep(ctx, time.Second)
			continue
		}
		if _, err := conn.Exec(ctx, `LISTEN `+pgx.Identifier{s.channel}.Sanitize()); err != nil {
			conn.Release()
			s.log.Warn("catalog: LISTEN failed; retrying", "err", err)
			sleep(ctx, time.Second)
			continue
		}
		if !first {
			fn(nil)
		}
		first = false
		for {
			n, err := conn.Conn().WaitForNotification(ctx)
			if err != nil {
				if ctx.Err() == nil {
					s.log.Warn("catalog: change listener lost its connection; reconnecting", "err", err)
				}
				conn.Hijack().Close(context.Background())
				break
			}
			var c change
			if json.Unmarshal([]byte(n.Payload), &c) != nil || c.From == s.id {
				continue
			}
			fn(c.Keys)
		}
	}
	return ctx.Err()
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
}

// Setting returns the JSON stored under name in the database, or
// catalog.ErrNotFound.
func (s *Store) Setting(ctx context.Context, name string) (json.RawMessage, error) {
	var raw []byte
	err := s.pool.QueryRow(ctx, `SELECT value FROM settings WHERE name = $1`, name).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, catalog.Errorf(catalog.ErrNotFound, "no setting %q in the database", name)
	}
	return raw, wrap(err)
}

// SetSetting stores JSON under name.
func (s *Store) SetSetting(ctx context.Context, name string, value json.RawMessage) error {
	return s.write(ctx, func(tx pgx.Tx, _ func(...string)) error {
		_, err := tx.Exec(ctx, `INSERT INTO settings (name, value) VALUES ($1, $2)
			ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value`, name, []byte(value))
		return err
	})
}

// SettingNames lists the names of the settings stored.
func (s *Store) SettingNames(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT name FROM settings ORDER BY name`)
	if err != nil {
		return nil, wrap(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return out, wrap(err)
}

var _ catalog.Catalog = (*Store)(nil)
