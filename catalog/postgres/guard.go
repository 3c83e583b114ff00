package postgres

import (
	"context"
	"errors"
	"fmt"
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

// guardSQL fails unless the settings row names instance $1. It rides in
// the pipeline of each write's BEGIN (no round trip of its own), so a
// daemon started before its database was reset and given to another
// instance never writes into that one's catalog. The parameter name is
// computed from the table: PostgreSQL cannot fold it when it plans.
const guardSQL = `SELECT current_setting(CASE WHEN EXISTS (SELECT FROM settings WHERE name = '` + InstanceSetting + `' AND value->>'id' = $1)
	THEN 'server_version' ELSE '` + guardMark + `' END)`

// guarded is begin followed by the instance check (guardSQL), or begin
// itself for a store without Options.Instance.
func (s *Store) guarded(begin func(*pgx.Batch)) func(*pgx.Batch) {
	if s.instance == "" {
		return begin
	}
	return func(b *pgx.Batch) {
		begin(b)
		b.Queue(guardSQL, s.instance)
	}
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
