package postgres

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/ref"
)

// ErrReadOnly is returned for a write by a role that may only read. It
// matches fs.ErrPermission. The errors the store returns name the role,
// the schema and the grant it lacks.
var ErrReadOnly error = &permError{}

// permError is a write the database role may not make: INSERT, UPDATE or
// DELETE denied (42501), or a read-only transaction (25006).
type permError struct {
	role, schema string // when known
	msg          string // what the server answered
}

func (e *permError) Error() string {
	if e.role == "" && e.msg == "" {
		return "the catalog is read-only for this database role (ask its owner for write access: GRANT INSERT, UPDATE, DELETE)"
	}
	return fmt.Sprintf("the catalog is read-only for the database role %s (ask its owner for write access: GRANT INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %s TO %s)%s",
		roleOr(e.role), schemaOr(e.schema), roleOr(e.role), said(e.msg))
}
func (e *permError) Is(target error) bool { return target == fs.ErrPermission || target == ErrReadOnly }

// ErrReadDenied is returned for a read the database role may not make (no
// SELECT on a catalog table). It matches fs.ErrPermission; its message
// names the grant (SELECT), not the write access ErrReadOnly asks for.
var ErrReadDenied error = &readDenied{}

type readDenied struct {
	role, schema string // when known
	msg          string // what the server answered
}

func (e *readDenied) Error() string {
	return fmt.Sprintf("the database role %s may not read the catalog (ask its owner: GRANT USAGE ON SCHEMA %s TO %s; GRANT SELECT ON ALL TABLES IN SCHEMA %s TO %s)%s",
		roleOr(e.role), schemaOr(e.schema), roleOr(e.role), schemaOr(e.schema), roleOr(e.role), said(e.msg))
}
func (e *readDenied) Is(target error) bool {
	return target == fs.ErrPermission || target == ErrReadDenied
}

// ErrCreateDenied is returned when the database role may not create the
// catalog's tables: `lamina init --db` in a schema where it lacks CREATE,
// or a migration by a role that does not own them. It matches
// fs.ErrPermission.
var ErrCreateDenied error = &createDenied{}

type createDenied struct {
	role, schema string // when known
	msg          string // what the server answered
}

func (e *createDenied) Error() string {
	return fmt.Sprintf("the database role %s may not create the catalog's tables in schema %s (ask its owner: GRANT USAGE, CREATE ON SCHEMA %s TO %s; or have the role that owns the schema run this lamina once, which creates or upgrades them)%s",
		roleOr(e.role), schemaOr(e.schema), schemaOr(e.schema), roleOr(e.role), said(e.msg))
}
func (e *createDenied) Is(target error) bool {
	return target == fs.ErrPermission || target == ErrCreateDenied
}

func roleOr(role string) string     { return cmp.Or(role, "ROLE") }
func schemaOr(schema string) string { return cmp.Or(schema, "SCHEMA") }

// said is the server's answer, as the end of a message.
func said(msg string) string {
	if msg == "" {
		return ""
	}
	return " (" + msg + ")"
}

// ErrSettingsDenied matches a role's permission error on the settings
// table, which the instance check reads: a write (guardSQL) or a read of
// it. Its advice is GRANT SELECT ON settings, not the write access
// ErrReadOnly asks for. It matches fs.ErrPermission too.
var ErrSettingsDenied error = &settingsDenied{}

type settingsDenied struct {
	role string // the role denied, when known
	msg  string // what the server answered
}

func (e *settingsDenied) Error() string {
	role := e.role
	if role == "" {
		role = "this role"
	}
	return fmt.Sprintf("the database role may not read the settings table, which names the instance whose catalog the database holds (ask its owner: GRANT SELECT ON settings TO %s) (%s)", role, e.msg)
}

func (e *settingsDenied) Is(target error) bool {
	return target == fs.ErrPermission || target == ErrSettingsDenied
}

// settingsDeniedErr reports whether pe is a permission error on settings
// (a table, or a view of it): insufficient_privilege naming the table.
// PostgreSQL leaves the error's table field empty for it (aclcheck_error),
// and translates its message (lc_messages) but not the name in it, so the
// name is looked for as a word of the message: "permission denied for
// table settings", "keine Berechtigung für Tabelle settings", "テーブル
// settings へのアクセスが拒否されました". It was matched by the English
// text, and a server set to another language answered ErrReadOnly's advice.
func settingsDeniedErr(pe *pgconn.PgError) bool {
	if pe.Code != "42501" {
		return false
	}
	if pe.TableName != "" {
		return pe.TableName == "settings"
	}
	return settingsWord.MatchString(pe.Message)
}

// settingsWord matches "settings" standing alone (not settings_old).
var settingsWord = regexp.MustCompile(`(^|[^\pL\pN_$])settings([^\pL\pN_$]|$)`)

// Options tune Open. Every field is optional.
type Options struct {
	// Logger receives what the store handles itself (listener reconnects,
	// retried transactions); nil discards it.
	Logger *slog.Logger
	// MaxConns bounds the connection pool; default 8.
	MaxConns int32
	// ReconnectDelay is how long Listen waits before it connects again
	// after losing its connection or failing to connect; default 500 ms.
	ReconnectDelay time.Duration
	// CallTimeout bounds the database work of each lookup, listing and
	// write whose ctx has no earlier deadline: past it the call fails with
	// ErrNoAnswer. A hung server (stopped, or a network that drops packets
	// without a reset) otherwise holds a call until it answers again. A
	// mount daemon sets it: the kernel cannot interrupt a FLUSH, so a
	// close(2) would hang, unkillable, for as long as the server does.
	// 0 leaves calls unbounded (the CLI: an import may take minutes).
	CallTimeout time.Duration
	// Existing says the database holds a catalog already (an instance's
	// settings name it): one without the schema is then ErrNoCatalog, not
	// a new catalog to set up. A database that was dropped and made again
	// would otherwise be an empty catalog, whose gc deletes every pack.
	Existing bool
	// Instance is the id the settings row InstanceSetting must name for
	// a write to commit (guardSQL): a database reset under a running
	// daemon and given to another instance is refused (ErrForeign), not
	// written into. Empty: no check.
	Instance string
	// OnForeign is called once, when the store first refuses writes with
	// ErrForeign.
	OnForeign func(error)
	// OnUpgraded is called once, when the store first refuses writes
	// because a newer lamina upgraded the schema (catalog.ErrUpgraded).
	OnUpgraded func(error)
	// OnMigrated is called once Open has upgraded an existing catalog's
	// schema from version from to to (not when it creates one): the
	// daemons of older builds on other workstations turn read-only then,
	// which the user must be told of.
	OnMigrated func(from, to int)
}

// ErrNoCatalog is Open's refusal, with Options.Existing, of a database
// that holds no lamina schema. Nothing was written.
var ErrNoCatalog = errors.New("the database holds no lamina catalog")

// ErrNoAnswer is the failure of a call the database did not answer within
// Options.CallTimeout. Whether a write it cut short was committed is not
// known; the caller finds out by reading once the database answers.
var ErrNoAnswer = errors.New("the database did not answer")

// Store is the PostgreSQL catalog. It is safe for concurrent use by many
// goroutines, processes and machines: each call is one transaction, the
// writing ones locked or SERIALIZABLE (writeKeys, write) and retried on a
// serialization failure.
type Store struct {
	pool      *pgxpool.Pool
	url       string // as given to Open (rereadPassword)
	log       *slog.Logger
	id        string // tells this store's notifications from other writers'
	channel   string // NOTIFY channel: lamina, or lamina_<schema>
	reconnect time.Duration
	timeout   time.Duration // Options.CallTimeout
	look      lookups       // ByKey and Children answers, while Listen runs (lookups.go)
	// opened is the change-log horizon when the store was opened: Listen's
	// first connection catches up from it, so a change committed between
	// Open and that connection (a mount caches listings meanwhile) is not
	// missed.
	opened int64
	// instance and onForeign are Options.Instance and OnForeign; foreign
	// the ErrForeign latched (guard.go).
	instance  string
	onForeign func(error)
	foreign   atomic.Pointer[error]
	// onUpgraded is Options.OnUpgraded; upgraded the catalog.ErrUpgraded
	// latched (guard.go).
	onUpgraded func(error)
	upgraded   atomic.Pointer[error]
	onMigrated func(from, to int) // Options.OnMigrated
	// role and schema are the database role (current_user) and the
	// catalog's schema (current_schema) when opened: the ones permission
	// errors name.
	role, schema string
}

// Redact returns the URL without its password, for settings and messages:
// the one in its user part and a password= parameter, or in a libpq
// keyword string the password= value.
func Redact(rawURL string) string {
	if !IsURL(rawURL) {
		return keywordPassword.ReplaceAllString(rawURL, "${1}xxxxx")
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return keywordPassword.ReplaceAllString(rawURL, "${1}xxxxx")
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.User(u.User.Username())
		}
	}
	if q := u.Query(); q.Has("password") {
		q.Del("password")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// keywordPassword finds a password in a libpq keyword string or a URL that
// does not parse.
var keywordPassword = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&]+)`)

// HasPassword reports whether the URL (or keyword string) carries a
// password.
func HasPassword(rawURL string) bool {
	u, err := url.Parse(rawURL)
	if err != nil || !IsURL(rawURL) {
		return keywordPassword.MatchString(rawURL)
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			return true
		}
	}
	return u.Query().Has("password")
}

// IsURL reports whether s names a PostgreSQL database.
func IsURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// Open connects to the database at url (libpq syntax; a password comes
// from PGPASSWORD or the pgpass file), brings its schema up to date and
// refuses a schema newer than this build understands (catalog.ErrSchema).
// It creates the schema in a database without one unless o.Existing.
func Open(ctx context.Context, rawURL string, o Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(rawURL)
	if err != nil {
		return nil, fmt.Errorf("catalog: database %s: %w", Redact(rawURL), err)
	}
	if o.MaxConns == 0 {
		o.MaxConns = 8
	}
	cfg.MaxConns = o.MaxConns
	cfg.BeforeConnect = func(_ context.Context, c *pgx.ConnConfig) error {
		rereadPassword(rawURL, &c.Config)
		return nil
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.ReconnectDelay == 0 {
		o.ReconnectDelay = 500 * time.Millisecond
	}
	s := &Store{url: rawURL, log: o.Logger, id: ref.NewStem(), reconnect: o.ReconnectDelay, timeout: o.CallTimeout,
		instance: o.Instance, onForeign: o.OnForeign, onUpgraded: o.OnUpgraded, onMigrated: o.OnMigrated}
	cfg.PrepareConn = s.prepareConn
	cfg.ShouldPing = shouldPing
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("catalog: database %s: %w", Redact(rawURL), err)
	}
	s.pool = pool
	s.look.flush()
	if err := s.migrate(ctx, o.Existing); err != nil {
		pool.Close()
		return nil, fmt.Errorf("catalog: database %s: %w", Redact(rawURL), err)
	}
	if err := pool.QueryRow(ctx, `SELECT current_schema(), current_user, `+horizonSQL).Scan(&s.schema, &s.role, &s.opened); err != nil {
		pool.Close()
		return nil, fmt.Errorf("catalog: database %s: %w", Redact(rawURL), err)
	}
	s.channel = "lamina"
	if s.schema != "public" {
		s.channel = "lamina_" + s.schema
	}
	return s, nil
}

// rereadPassword sets c's password as the URL, PGPASSWORD or the pgpass
// file give it now: pgx reads the file once, when it parses the URL, and a
// mount daemon lives for weeks. A password changed in ~/.pgpass (rotated)
// then holds for the next new connection, with no remount. Parsing again
// costs a few reads of small files, once per connection the pool makes.
func rereadPassword(rawURL string, c *pgconn.Config) {
	if p, err := pgconn.ParseConfig(rawURL); err == nil {
		c.Password = p.Password
	}
}

// Close releases the connections.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// Writable reports whether this role may write the catalog.
func (s *Store) Writable(ctx context.Context) (bool, error) {
	var ok bool
	err := s.reread(ctx, func(q querier) error {
		return q.QueryRow(ctx, `SELECT has_table_privilege('versions', 'INSERT')
			AND has_table_privilege('artifacts', 'UPDATE')
			AND current_setting('transaction_read_only') = 'off'`).Scan(&ok)
	})
	return ok, wrap(err)
}

// Role is the database role the store acts as (current_user: the URL's
// user, or the role a role= parameter sets).
func (s *Store) Role(ctx context.Context) (string, error) {
	var role string
	err := s.reread(ctx, func(q querier) error { return q.QueryRow(ctx, `SELECT current_user`).Scan(&role) })
	return role, err
}

// CheckWritable is ErrReadOnly for a role that may only read: a command
// asks before it stores data the catalog would then refuse to record.
func (s *Store) CheckWritable(ctx context.Context) error {
	ok, err := s.Writable(ctx)
	if err == nil && !ok {
		return &permError{role: s.role, schema: s.schema}
	}
	return s.named(err)
}

// bound gives ctx the store's CallTimeout, unless it ends sooner anyway.
// end turns a failure the bound caused into ErrNoAnswer; the caller
// returns end(err) and must call it once the call is done.
func (s *Store) bound(ctx context.Context) (context.Context, func(error) error) {
	if s.timeout <= 0 {
		return ctx, func(err error) error { return err }
	}
	if d, ok := ctx.Deadline(); ok && time.Until(d) <= s.timeout {
		return ctx, func(err error) error { return err }
	}
	bctx, cancel := context.WithTimeout(ctx, s.timeout)
	return bctx, func(err error) error {
		cancel()
		if err != nil && ctx.Err() == nil && errors.Is(bctx.Err(), context.DeadlineExceeded) {
			// Not context.DeadlineExceeded: the caller's own context is
			// fine, and callers that retry a call whose caller was
			// interrupted must not take this for that.
			return fmt.Errorf("catalog: %w within %s (the server hangs, or the network to it drops packets): %v", ErrNoAnswer, s.timeout, err)
		}
		return err
	}
}

// wrap turns database errors callers act on into this package's. It is
// for reads: a permission error is a SELECT denied (ErrReadDenied, or
// ErrSettingsDenied on settings); writes go through writeDenied.
func wrap(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case settingsDeniedErr(pe):
			return &settingsDenied{msg: pe.Message}
		case pe.Code == "42501": // insufficient_privilege
			return &readDenied{msg: pe.Message}
		case pe.Code == "25006": // read_only_sql_transaction
			return &permError{msg: pe.Message}
		case pe.Code == "22021": // character_not_in_repertoire: text not UTF-8 a check missed
			return catalog.Invalidf("a name, key or value is %w: the catalog holds UTF-8 text only", ref.ErrNotUTF8)
		}
	}
	return err
}

// writeDenied is wrap for a write: a permission error is the write access
// denied (ErrReadOnly), unless it names settings and the role may not read
// that table, which the instance check (guardSQL) reads: then it is
// ErrSettingsDenied. A role that may read settings but not write them
// (`lamina scratch add` as a reader) was told it "may not read" them. The
// role's rights are asked on another connection, on this failure only.
func (s *Store) writeDenied(ctx context.Context, err error) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "42501" {
		return s.named(err)
	}
	if settingsDeniedErr(pe) {
		var readable bool
		if rerr := s.reread(fresh(ctx), func(q querier) error {
			return q.QueryRow(ctx, `SELECT has_table_privilege('settings', 'SELECT')`).Scan(&readable)
		}); rerr != nil || !readable {
			return s.named(err)
		}
	}
	return &permError{role: s.role, schema: s.schema, msg: pe.Message}
}

// retryable reports a failure a transaction retried from the start may
// not meet again: a conflict, or a connection lost before the COMMIT was
// sent (connLost).
func retryable(err error) bool {
	var lost *connLost
	if errors.As(err, &lost) {
		return true
	}
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
// Its BEGIN goes with fn's first statement (pipeTx). When the connection
// died under it (its backend terminated, the server restarted), fn runs
// once more in a new transaction on another connection (lost.go): fn must
// be safe to run twice, setting what it returns afresh. readOnce is for
// fn that cannot (it passes on what it reads as it goes).
func (s *Store) read(ctx context.Context, fn func(tx pgx.Tx) error) error {
	ctx, end := s.bound(ctx)
	err := s.runTx(ctx, readOnly, false, func(tx *pipeTx) (*pgx.QueuedQuery, error) { return nil, fn(tx) })
	var lost *connLost
	if errors.As(err, &lost) {
		s.log.Debug("catalog: read retried on another connection", "err", err)
		err = s.runTx(fresh(ctx), readOnly, false, func(tx *pipeTx) (*pgx.QueuedQuery, error) { return nil, fn(tx) })
	}
	return end(s.named(unlost(err)))
}

// readOnce is read without the second try.
func (s *Store) readOnce(ctx context.Context, fn func(tx pgx.Tx) error) error {
	ctx, end := s.bound(ctx)
	err := s.runTx(ctx, readOnly, false, func(tx *pipeTx) (*pgx.QueuedQuery, error) { return nil, fn(tx) })
	return end(s.named(unlost(err)))
}

// unlost is err without connLost's wrapping, which is for retrying.
func unlost(err error) error {
	var lost *connLost
	if errors.As(err, &lost) {
		return lost.err
	}
	return err
}

func readOnly(b *pgx.Batch) { b.Queue(`BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY`) }

// runTx runs fn in a pipeTx on a pooled connection, begun by what begin
// queues, and ends it: COMMIT, with the statement fn returns (nil: none),
// when fn succeeds; ROLLBACK otherwise. A connection lost under it is
// connLost before the COMMIT was sent, and for a read-only transaction
// (!write) at any point; commitLost after, for a write.
func (s *Store) runTx(ctx context.Context, begin func(*pgx.Batch), write bool, fn func(tx *pipeTx) (*pgx.QueuedQuery, error)) error {
	conn, err := s.acquire(ctx)
	if err != nil {
		return err
	}
	// A connection still in a transaction (a failed ROLLBACK) is closed
	// by the pool, not reused.
	defer conn.Release()
	// fn's statements use the ctx their caller captured, which lacks the
	// store's bound (Store.bound) that ctx may carry: the connection itself
	// obeys ctx, as pgx's own context watcher would, by a deadline on the
	// socket. Cut in the middle of the transaction, the connection is not
	// idle and the pool drops it; cut once it was over, it serves again.
	nc := conn.Conn().PgConn().Conn()
	cut := make(chan struct{})
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Now()); close(cut) })
	defer func() {
		if !stop() {
			<-cut
			nc.SetDeadline(time.Time{})
		}
	}()
	tx := &pipeTx{conn: conn.Conn(), xidAt: -1}
	begin(&tx.pending)
	if write {
		// Its id, read in the first round trip, tells whether a COMMIT
		// whose answer was lost committed (settleCommit).
		tx.xidAt = tx.pending.Len()
		tx.pending.Queue(xidSQL)
	}
	last, err := fn(tx)
	if err == nil {
		err = tx.commit(ctx, last)
	}
	if err != nil && tx.conn.PgConn().TxStatus() != 'I' {
		tx.conn.Exec(ctx, `ROLLBACK`)
	}
	if lostConn(ctx, tx.conn, err) {
		switch {
		case !tx.committed || !write || pgconn.SafeToRetry(err):
			// The connection died (its backend terminated: 57P01
			// admin_shutdown, a server restart; the socket failed) before
			// the COMMIT was sent: nothing of the transaction committed,
			// and the pool drops the connection. A read-only one changed
			// nothing, wherever it was cut.
			err = &connLost{err}
		default:
			// Once the COMMIT was sent, whether it committed is unknown,
			// and running fn again could save a version twice: writeN
			// asks (settleCommit).
			err = &commitLost{err: err, xid: tx.xid}
		}
	}
	return err
}

// acquire is pool.Acquire that waits out a server starting up: after a
// restart or a crash PostgreSQL refuses connections with 57P03
// (cannot_connect_now) for a second or so, and a mount's close then failed
// and waited for the next retry of failed closes (30 s). At most
// startingWait, within ctx.
func (s *Store) acquire(ctx context.Context) (*pgxpool.Conn, error) {
	deadline := time.Now().Add(startingWait)
	for {
		conn, err := s.pool.Acquire(ctx)
		var pe *pgconn.PgError
		if err == nil || !errors.As(err, &pe) || pe.Code != "57P03" || time.Now().After(deadline) {
			return conn, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// startingWait bounds acquire's wait for a server that is starting up.
const startingWait = 10 * time.Second

// connLost is a transaction whose connection died before its COMMIT was
// sent: retried at once, on another connection (retryable).
type connLost struct{ err error }

func (e *connLost) Error() string {
	return "catalog: the connection to the database was lost: " + e.err.Error()
}
func (e *connLost) Unwrap() error { return e.err }

// write runs fn in a SERIALIZABLE transaction, retried from the start on a
// serialization failure, and notifies the other stores of the keys fn
// reports changed (on commit: NOTIFY is transactional). It is for writes
// outside the key namespace (features, labels, runs…); writeKeys is for
// those that change keys.
func (s *Store) write(ctx context.Context, fn func(tx pgx.Tx, changed func(keys ...string)) error) error {
	return s.writeN(ctx, 30, serializable, fn, nil)
}

// serializable begins a SERIALIZABLE transaction.
func serializable(b *pgx.Batch) { b.Queue(`BEGIN ISOLATION LEVEL SERIALIZABLE`) }

// writeKeys runs fn, which changes keys (files, folders, links) and what
// is beneath them, in a READ COMMITTED transaction that first locks the
// keys: exclusively each key, shared its ancestor folders (lockKeys). Two
// writes whose keys overlap — the same key, or one a folder of the other's
// — thus take turns, and each statement of the later one sees what the
// earlier committed; writes of unrelated keys run side by side. That is
// what SERIALIZABLE gave, without its predicate locks on index pages,
// which made writers of neighbouring keys abort each other (18% of saves
// from 8 writers were retried).
func (s *Store) writeKeys(ctx context.Context, keys []string, fn func(tx pgx.Tx, changed func(keys ...string)) error) error {
	return s.writeN(ctx, 30, s.lockKeys(keys), fn, nil)
}

// lockSQL takes advisory locks in ascending order of id ($1, sorted),
// exclusive where $2 says so and shared elsewhere, so that two writers
// never wait for each other in a cycle.
const lockSQL = `SELECT CASE WHEN x THEN pg_advisory_xact_lock(id) ELSE pg_advisory_xact_lock_shared(id) END
	FROM (SELECT id, x FROM unnest($1::bigint[], $2::bool[]) AS t(id, x) ORDER BY id OFFSET 0) l`

// lockKeys begins a READ COMMITTED transaction and takes the advisory
// locks of keys (lockSQL): an exclusive one per key, a shared one per
// ancestor folder. Lock ids are 64-bit hashes of the channel (one per
// catalog) and the key; a collision only makes two writes take turns.
func (s *Store) lockKeys(keys []string) func(b *pgx.Batch) {
	exclusive := map[int64]bool{}
	for _, k := range keys {
		exclusive[s.lockID(k)] = true
		for _, a := range ancestors(k) {
			if id := s.lockID(a); !exclusive[id] {
				exclusive[id] = false
			}
		}
	}
	ids := make([]int64, 0, len(exclusive))
	for id := range exclusive {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	modes := make([]bool, len(ids))
	for i, id := range ids {
		modes[i] = exclusive[id]
	}
	return func(b *pgx.Batch) {
		b.Queue(`BEGIN ISOLATION LEVEL READ COMMITTED`)
		b.Queue(lockSQL, ids, modes)
	}
}

func (s *Store) lockID(key string) int64 {
	h := fnv.New64a()
	h.Write([]byte(s.channel))
	h.Write([]byte{0})
	h.Write([]byte(strings.TrimSuffix(key, "/")))
	return int64(h.Sum64())
}

// writeN runs fn in a transaction that begin queues, at most attempts
// times (1 for fn that cannot run twice), retried from the start on a
// serialization failure or a connection lost before the COMMIT (runTx);
// one lost after the COMMIT was sent succeeds if it committed
// (settleCommit), and is not run again. The versions fn leaves in *learned (nil: none)
// are the latest of their keys once it commits: the lookup cache keeps
// them (lookups.settle), so that looking up what was just saved costs no
// round trip.
func (s *Store) writeN(ctx context.Context, attempts int, begin func(*pgx.Batch), fn func(tx pgx.Tx, changed func(keys ...string)) error, learned *[]Version) (err error) {
	var keys []string
	var gen uint64
	if err := s.Foreign(); err != nil {
		return err
	}
	if err := s.Upgraded(); err != nil {
		return err
	}
	begin = s.guarded(begin)
	ctx, end := s.bound(ctx)
	// The keys of the last attempt: forgotten once it committed (or
	// failed), before the caller can look them up again.
	defer func() {
		err = end(err)
		if err != nil || learned == nil {
			s.look.forget(keys)
		} else {
			s.look.settle(gen, keys, *learned)
		}
	}()
	for i := 0; i < attempts; i++ {
		keys = keys[:0]
		if learned != nil {
			*learned = (*learned)[:0]
		}
		err = s.attempt(ctx, begin, fn, &keys, &gen)
		if lost := (*commitLost)(nil); errors.As(err, &lost) {
			// Committed, or not: never run again (lost.go).
			err = s.writeDenied(ctx, s.settleCommit(ctx, lost))
			return err
		}
		if foreignErr(err) {
			err = s.refuse(err)
			return err
		}
		if n, ok := upgradedErr(err); ok {
			err = s.refuseUpgraded(n)
			return err
		}
		if settingsUnseen(err) {
			err = unseen(err)
			return err
		}
		if !retryable(err) {
			err = s.writeDenied(ctx, err)
			return err
		}
		s.log.Debug("catalog: transaction retried", "attempt", i+1, "err", err)
		d := time.Duration(1<<min(i, 6)) * time.Millisecond
		select {
		case <-time.After(d + rand.N(d)):
		case <-ctx.Done():
			err = ctx.Err()
			return err
		}
	}
	err = fmt.Errorf("catalog: gave up after %d attempts: %w", attempts, err)
	return err
}

// attempt runs fn once in a pipeTx begun by begin and commits it with the
// notification of the keys fn reports; it leaves in *gen the lookup
// cache's generation before the COMMIT.
func (s *Store) attempt(ctx context.Context, begin func(*pgx.Batch), fn func(tx pgx.Tx, changed func(keys ...string)) error, keys *[]string, gen *uint64) error {
	return s.runTx(ctx, begin, true, func(tx *pipeTx) (*pgx.QueuedQuery, error) {
		if err := fn(tx, func(k ...string) { *keys = append(*keys, k...) }); err != nil {
			return nil, err
		}
		// Taken before COMMIT: a later commit of these keys (by any
		// store) comes after ours and bumps the generation when its
		// notification arrives, which makes settle keep nothing.
		*gen = s.look.generation()
		return s.notification(*keys), nil
	})
}

// change is the payload of a notification.
type change struct {
	From string   `json:"from"`
	Keys []string `json:"keys"`
}

// maxPayload keeps a notification under PostgreSQL's 8000-byte limit.
const maxPayload = 7000

// notifySQL logs a transaction's changes for listeners that catch up
// after a reconnect (Listen) and notifies the connected ones, in one
// round trip. Both take effect when the transaction commits.
const notifySQL = `WITH logged AS (
	INSERT INTO changes (xid, origin, keys) VALUES (pg_current_xact_id()::text::bigint, $2, $3))
	SELECT pg_notify($1, p) FROM unnest($4::text[]) AS p`

// notification is the statement that logs and notifies the change of
// keys (notifySQL), nil for none.
func (s *Store) notification(keys []string) *pgx.QueuedQuery {
	if len(keys) == 0 {
		return nil
	}
	all, err := json.Marshal(keys)
	if err != nil { // strings always marshal
		panic(err)
	}
	return &pgx.QueuedQuery{SQL: notifySQL, Arguments: []any{s.channel, s.id, string(all), s.payloads(keys)}}
}

// payloads splits keys into notifications of at most maxPayload bytes.
func (s *Store) payloads(keys []string) []string {
	var out []string
	var batch []string
	size := 0
	flush := func() {
		b, _ := json.Marshal(change{From: s.id, Keys: batch})
		out = append(out, string(b))
		batch, size = nil, 0
	}
	for _, k := range keys {
		if size+len(k)+4 > maxPayload && len(batch) > 0 {
			flush()
		}
		batch = append(batch, k)
		size += len(k) + 4
	}
	flush()
	return out
}

// changeRetention is how long the change log keeps a change. A listener
// that was away for more than half of it may have missed changes.
const changeRetention = 24 * time.Hour

// ListenerName is the application_name of the connection Listen holds
// on channel (see pg_stat_activity).
func ListenerName(channel string) string { return "lamina listener " + channel }

// Channel is the NOTIFY channel of this store's catalog.
func (s *Store) Channel() string { return s.channel }

// Listen calls fn with the keys other stores change (on any machine), as
// they commit, until ctx ends. fn runs on one goroutine. Listen holds a
// connection of its own; when it is lost, Listen connects again (after
// ReconnectDelay) and first passes on what was committed meanwhile, read
// from the change log (catchUp); its first connection, what was committed
// since the store was opened. Only after a gap longer than half the
// log's retention does fn get nil: changes may be lost, so a caller
// should drop what it caches.
func (s *Store) Listen(ctx context.Context, fn func(keys []string)) error {
	pruned := make(chan struct{})
	go func() { s.pruneChanges(ctx); close(pruned) }()
	defer func() { <-pruned }()
	horizon := s.opened
	var lost time.Time
	delay, failed := s.reconnect, 0
	for ctx.Err() == nil {
		h, err := s.listenOnce(ctx, horizon, lost, fn)
		if h >= 0 {
			horizon = h
			delay, failed = s.reconnect, 0
		}
		if ctx.Err() != nil {
			break
		}
		// A server that is away: attempts back off to 10 s, and the log
		// says so once and then every 20th attempt, not twice a second.
		if failed++; failed == 1 || failed%20 == 0 {
			s.log.Warn("catalog: change listener disconnected; reconnecting", "err", err, "after", delay, "attempts", failed)
		}
		if h >= 0 || lost.IsZero() {
			lost = time.Now()
		}
		sleep(ctx, delay)
		if h < 0 {
			delay = min(2*delay, max(s.reconnect, 10*time.Second))
		}
	}
	return ctx.Err()
}

// listenOnce connects, LISTENs, catches up on the changes committed since
// the horizon from, and passes notifications on until the connection
// fails. It returns its own horizon (-1 when it got none).
func (s *Store) listenOnce(ctx context.Context, from int64, lost time.Time, fn func([]string)) (int64, error) {
	cfg := s.pool.Config().ConnConfig.Copy()
	cfg.RuntimeParams["application_name"] = ListenerName(s.channel)
	rereadPassword(s.url, &cfg.Config)
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return -1, err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, `LISTEN `+pgx.Identifier{s.channel}.Sanitize()); err != nil {
		return -1, err
	}
	// From here until this connection is lost every commit of another
	// store reaches the loop below: the lookup cache may serve, starting
	// empty once caught up, and stops (emptied) when the connection ends.
	defer s.look.down()
	if !lost.IsZero() && time.Since(lost) > changeRetention/2 {
		fn(nil)
	}
	// The database may have been reset while no connection listened.
	if err := s.CheckInstance(ctx, conn); err != nil && !errors.Is(err, ErrForeign) {
		s.log.Warn("catalog: the instance settings row was not read", "err", err)
	}
	// A newer lamina may have migrated it meanwhile too.
	if err := s.CheckSchema(ctx, conn); err != nil && !errors.Is(err, catalog.ErrUpgraded) {
		s.log.Warn("catalog: the schema version was not read", "err", err)
	}
	horizon, err := s.catchUp(ctx, conn, from, fn)
	if err != nil {
		return -1, err
	}
	s.look.up()
	for {
		n, err := s.waitNotification(ctx, conn)
		if err != nil {
			return horizon, err
		}
		s.look.heard()
		if n == nil {
			continue // a heartbeat
		}
		var c change
		if json.Unmarshal([]byte(n.Payload), &c) != nil {
			s.look.up() // not ours to read: forget everything
			continue
		}
		if c.From == s.id {
			continue
		}
		s.look.forget(c.Keys)
		fn(c.Keys)
	}
}

// waitNotification waits for a notification on conn; after heartbeat
// without one it pings the server and returns nil, so that the lookup
// cache's lease is renewed only while the connection works.
func (s *Store) waitNotification(ctx context.Context, conn *pgx.Conn) (*pgconn.Notification, error) {
	wctx, cancel := context.WithTimeout(ctx, heartbeat)
	n, err := conn.WaitForNotification(wctx)
	cancel()
	if err == nil || ctx.Err() != nil || !pgconn.Timeout(err) {
		return n, err
	}
	pctx, cancel := context.WithTimeout(ctx, leaseTime)
	defer cancel()
	return nil, conn.Ping(pctx)
}

// horizonSQL is the oldest transaction still running: every one below it
// has ended, every one that commits later is at or above it.
const horizonSQL = `pg_snapshot_xmin(pg_current_snapshot())::text::bigint`

// catchUp passes on the logged changes of transactions whose id is at
// least from (from < 0: none), and returns the horizon of a snapshot taken
// after LISTEN: the oldest transaction then still running. Every
// transaction below it had ended; every one that commits later is
// notified on this connection or, if that is lost, has an id at or above
// the horizon and is caught up on by the next connection. So nothing
// committed while no connection listened is missed, at the price of
// passing some changes on twice.
func (s *Store) catchUp(ctx context.Context, conn *pgx.Conn, from int64, fn func([]string)) (int64, error) {
	var horizon int64
	if from < 0 {
		return horizon, conn.QueryRow(ctx, `SELECT `+horizonSQL).Scan(&horizon)
	}
	var logged []string
	err := pgx.BeginTxFunc(ctx, conn, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT `+horizonSQL).Scan(&horizon); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT keys FROM changes WHERE xid >= $1 AND origin <> $2 ORDER BY xid`, from, s.id)
		if err != nil {
			return err
		}
		logged, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if errors.Is(wrap(err), ErrReadDenied) {
		s.log.Warn("catalog: this database role may not read the change log (GRANT SELECT ON changes): changes made while the listener was disconnected are not caught up", "err", err)
		return horizon, conn.QueryRow(ctx, `SELECT `+horizonSQL).Scan(&horizon)
	}
	if err != nil {
		return 0, err
	}
	if len(logged) > 0 {
		s.log.Info("catalog: change listener caught up", "changes", len(logged))
	}
	for _, raw := range logged {
		var keys []string
		if json.Unmarshal([]byte(raw), &keys) == nil {
			fn(keys)
		}
	}
	return horizon, nil
}

// pruneChanges drops logged changes older than changeRetention, now and
// hourly, until ctx ends. A role that may only read cannot; that is fine.
func (s *Store) pruneChanges(ctx context.Context) {
	for {
		if _, err := s.pool.Exec(ctx, `DELETE FROM changes WHERE at < now() - make_interval(secs => $1)`, changeRetention.Seconds()); err != nil && ctx.Err() == nil {
			s.log.Debug("catalog: change log not pruned", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Hour):
		}
	}
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
	err := s.reread(ctx, func(q querier) error {
		return q.QueryRow(ctx, `SELECT value FROM settings WHERE name = $1`, name).Scan(&raw)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, catalog.Errorf(catalog.ErrNotFound, "no setting %q in the database", name)
	}
	return raw, s.named(err)
}

// SetSetting stores JSON under name.
func (s *Store) SetSetting(ctx context.Context, name string, value json.RawMessage) error {
	return s.write(ctx, func(tx pgx.Tx, _ func(...string)) error {
		_, err := tx.Exec(ctx, `INSERT INTO settings (name, value) VALUES ($1, $2)
			ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value`, name, []byte(value))
		return err
	})
}

// AddSetting stores JSON under name unless the database holds a setting
// of that name already; added says whether it stored it. Two writers of
// the same name (two workstations' inits of one database) do not overwrite
// each other.
func (s *Store) AddSetting(ctx context.Context, name string, value json.RawMessage) (added bool, err error) {
	err = s.write(ctx, func(tx pgx.Tx, _ func(...string)) error {
		tag, err := tx.Exec(ctx, `INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`, name, []byte(value))
		added = tag.RowsAffected() == 1
		return err
	})
	return added, err
}

// DeleteSettingIf removes the setting name while it still holds value (as
// JSON: what the caller stored), and says whether it did; a value someone
// stored since stays.
func (s *Store) DeleteSettingIf(ctx context.Context, name string, value json.RawMessage) (deleted bool, err error) {
	err = s.write(ctx, func(tx pgx.Tx, _ func(...string)) error {
		tag, err := tx.Exec(ctx, `DELETE FROM settings WHERE name = $1 AND value = $2::jsonb`, name, []byte(value))
		deleted = tag.RowsAffected() == 1
		return err
	})
	return deleted, err
}

// SettingNames lists the names of the settings stored.
func (s *Store) SettingNames(ctx context.Context) ([]string, error) {
	var out []string
	err := s.reread(ctx, func(q querier) error {
		rows, err := q.Query(ctx, `SELECT name FROM settings ORDER BY name`)
		out, err = collect(rows, err, pgx.RowTo[string])
		return err
	})
	return out, wrap(err)
}

var _ catalog.Catalog = (*Store)(nil)

// named is wrap(err) naming the store's role (and schema) in the advice
// of a permission error.
func (s *Store) named(err error) error {
	err = wrap(err)
	var d *settingsDenied
	if errors.As(err, &d) && d.role == "" && d != ErrSettingsDenied {
		d.role = s.role
	}
	var r *readDenied
	if errors.As(err, &r) && r.role == "" && r != ErrReadDenied {
		r.role, r.schema = s.role, s.schema
	}
	var p *permError
	if errors.As(err, &p) && p.role == "" && p != ErrReadOnly {
		p.role, p.schema = s.role, s.schema
	}
	return err
}
