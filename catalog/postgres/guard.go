package postgres

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/lamina-bio/lamina/catalog"
)

// InstanceSetting is the setting that names the instance whose catalog
// the database holds (its JSON has an "id"); Options.Instance checks it.
const InstanceSetting = "instance"

// ErrForeign is a write refused because the database no longer holds the
// catalog of Options.Instance: it was reset (the settings row is gone) or
// holds another instance's now. Nothing was written; the store refuses
// every later write and read too, until it is opened again. It matches
// catalog.ErrDamaged.
var ErrForeign = catalog.Errorf(catalog.ErrDamaged, "the database no longer holds this instance's catalog (reset, or another instance's now)")

// guardMark names the configuration parameter guardSQL asks for when the
// check fails: an unknown one, so the statement fails, the transaction
// with it, and no write of it commits.
const guardMark = "lamina.not_this_instance"

// guardSQL fails unless the settings row names instance $1, and unless
// the schema is at most $2 (schemaGuard). It rides in the pipeline of each
// write's BEGIN (no round trip of its own), so a daemon started before its
// database was reset and given to another instance never writes into that
// one's catalog. The parameter name is computed from the tables:
// PostgreSQL cannot fold it when it plans.
const guardSQL = `SELECT current_setting(CASE WHEN EXISTS (SELECT FROM settings WHERE name = '` + InstanceSetting + `' AND value->>'id' = $1)
	THEN ` + schemaGuard + `$2` + schemaGuardEnd + ` ELSE '` + guardMark + `' END)`

// schemaGuardSQL is guardSQL for a store without Options.Instance: the
// schema check alone ($1 is SchemaVersion).
const schemaGuardSQL = `SELECT current_setting(` + schemaGuard + `$1` + schemaGuardEnd + `)`

// schemaGuard, a parameter, schemaGuardEnd names server_version while
// schema_version is at most the parameter (SchemaVersion),
// else an unknown parameter that carries the version found
// (schemaMark<N>): a daemon of this build, started before a newer lamina
// migrated the shared database, refuses to write the old way
// (ErrUpgraded) instead of writing rows the new schema does not expect.
// Reading the one-row table in the write's pipeline costs no round trip
// (docs/postgres.md, "Schema upgrades under running mounts").
const (
	schemaGuard    = `COALESCE((SELECT '` + schemaMark + `' || max(version) FROM schema_version HAVING max(version) > `
	schemaGuardEnd = `), 'server_version')`
)

// schemaMark begins the parameter schemaGuard asks for when the schema is
// newer; the version follows it.
const schemaMark = "lamina.schema_upgraded_to_"

// guarded is begin followed by the instance and schema check (guardSQL),
// or the schema check alone for a store without Options.Instance.
func (s *Store) guarded(begin func(*pgx.Batch)) func(*pgx.Batch) {
	if s.instance == "" {
		return func(b *pgx.Batch) {
			begin(b)
			b.Queue(schemaGuardSQL, SchemaVersion)
		}
	}
	return func(b *pgx.Batch) {
		begin(b)
		b.Queue(guardSQL, s.instance, SchemaVersion)
	}
}

// upgradedErr reports whether err is schemaGuard's refusal, and the
// schema version it found.
func upgradedErr(err error) (int, bool) {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "42704" {
		return 0, false
	}
	m := schemaMarkRE.FindStringSubmatch(pe.Message)
	if m == nil {
		return 0, false
	}
	n, err := strconv.Atoi(m[1])
	return n, err == nil
}

var schemaMarkRE = regexp.MustCompile(regexp.QuoteMeta(schemaMark) + `([0-9]+)`)

// ErrUpgraded (catalog.ErrUpgraded) with the version found: the error
// every write of the store returns once one found the schema newer.
func upgraded(n int) error {
	return catalog.Errorf(catalog.ErrUpgraded, "the catalog was upgraded to schema %d by a newer lamina; upgrade lamina on this workstation (this one understands up to %d): nothing more is written the old way", n, SchemaVersion)
}

// refuseUpgraded latches the refusal of writes for schema n (a newer
// lamina migrated the database under this store) and tells
// Options.OnUpgraded once. Reads go on: what they read is what this
// build knows how to read, or fails as a record it cannot decode.
func (s *Store) refuseUpgraded(n int) error {
	e := upgraded(n)
	if s.upgraded.CompareAndSwap(nil, &e) {
		s.log.Error("catalog: " + e.Error())
		if s.onUpgraded != nil {
			s.onUpgraded(e)
		}
	}
	return *s.upgraded.Load()
}

// Upgraded is the ErrUpgraded that made the store refuse writes, or nil.
func (s *Store) Upgraded() error {
	if p := s.upgraded.Load(); p != nil {
		return *p
	}
	return nil
}

// CheckSchema reads the schema version on conn and latches ErrUpgraded
// when a newer lamina migrated the database: the listener asks after each
// reconnect, so that a mount says so before its next write fails. A
// failure to ask is returned as it is.
func (s *Store) CheckSchema(ctx context.Context, conn *pgx.Conn) error {
	n, err := schemaVersion(ctx, conn)
	if err != nil {
		return err
	}
	if n > SchemaVersion {
		return s.refuseUpgraded(n)
	}
	return nil
}

// foreignErr reports whether err is guardSQL's refusal: the row names
// another instance or none. Only that latches the store.
func foreignErr(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "42704" && strings.Contains(pe.Message, guardMark)
}

// settingsUnseen reports whether err is "relation settings does not
// exist": a database reset to nothing, or one the connection does not
// see (a role's search_path changed, a schema renamed). The write fails
// and nothing is written, but the store is not latched: latching would
// leave a mount unreadable until remounted when the table came back into
// view (audit 44); a reset given to another instance is latched by the
// row that instance writes.
func settingsUnseen(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "42P01" && settingsWord.MatchString(pe.Message) // any lc_messages: "»settings«"
}

// unseen is err as the store answers it when settingsUnseen: ErrForeign,
// not latched.
func unseen(err error) error {
	return fmt.Errorf("%w: %v", ErrForeign, err)
}

// refuse latches err (ErrForeign, with what the database answered) and
// tells Options.OnForeign once.
func (s *Store) refuse(err error) error {
	e := fmt.Errorf("%w: %v", ErrForeign, err)
	if s.foreign.CompareAndSwap(nil, &e) {
		// What the cache holds may be the other instance's already; a
		// read in flight keeps nothing (the generation moves on).
		s.look.mu.Lock()
		s.look.flush()
		s.look.mu.Unlock()
		if s.onForeign != nil {
			s.onForeign(e)
		}
	}
	return *s.foreign.Load()
}

// prepareConn is the pool's PrepareConn: once the store is latched
// foreign, every statement on a pooled connection (every read, and the
// writes writeN refuses before) fails with ErrForeign, so that a mount
// answers EIO rather than list another instance's catalog as this one's.
// The connection goes back to the pool unused. It costs an atomic load.
func (s *Store) prepareConn(context.Context, *pgx.Conn) (bool, error) {
	if err := s.Foreign(); err != nil {
		return true, fmt.Errorf("catalog: not read: %w", err)
	}
	return true, nil
}

// Foreign is the ErrForeign that made the store refuse writes, or nil.
func (s *Store) Foreign() error {
	if p := s.foreign.Load(); p != nil {
		return *p
	}
	return nil
}

// CheckInstance reads the settings row on conn (nil: a pooled one) and
// latches ErrForeign when it names another instance or none: the
// listener asks after each reconnect, so that a mount learns of a reset
// before its next write would. A failure to ask is returned as it is.
func (s *Store) CheckInstance(ctx context.Context, conn *pgx.Conn) error {
	if s.instance == "" {
		return nil
	}
	var id *string
	read := func(q querier) error {
		return q.QueryRow(ctx, `SELECT value->>'id' FROM settings WHERE name = $1`, InstanceSetting).Scan(&id)
	}
	var err error
	if conn != nil {
		err = read(conn)
	} else {
		err = s.reread(ctx, read)
	}
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return s.refuse(errors.New("no instance settings row"))
	case foreignErr(err):
		return s.refuse(err)
	case settingsUnseen(err):
		return unseen(err)
	case err != nil:
		return s.named(err)
	case id == nil || *id != s.instance:
		return s.refuse(fmt.Errorf("the settings row names instance id %s, not %s", deref(id), s.instance))
	}
	return nil
}

func deref(p *string) string {
	if p == nil {
		return "none"
	}
	return *p
}
