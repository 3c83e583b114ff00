package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// A connection can die under any statement: its backend terminated
// (pg_terminate_backend, 57P01 admin_shutdown), the server restarted, the
// socket failed. What that means for the call depends on what it did:
//   - A read (Store.read, Store.reread) runs once more, on a connection
//     pinged first: it changes nothing, so running it again is safe, and a
//     restart ends every pooled connection, which the pool would hand out
//     one after another (it pings only those idle for over a second).
//   - A write cut before its COMMIT was sent is retried from the start
//     (connLost, writeN): nothing of it committed.
//   - A write cut after its COMMIT was sent may have committed. Its
//     transaction id, read in the round trip of its BEGIN, is looked up on
//     another connection (pg_xact_status): committed is success, aborted
//     the error; it is never run again, which could save a version twice.

// lostConn reports whether err, the failure of a statement on c, is the
// connection's death rather than the statement's own (a syntax error, a
// permission, a conflict: the connection lives on) or the caller's (ctx
// done: cancelled, or the store's bound).
func lostConn(ctx context.Context, c *pgx.Conn, err error) bool {
	return err != nil && ctx.Err() == nil && c.PgConn().IsClosed()
}

// pingFirst marks a context whose pool acquisition pings the connection
// before handing it out (Store.shouldPing).
type pingFirst struct{}

// fresh is ctx for a second try after a lost connection: the connection it
// gets answered a ping.
func fresh(ctx context.Context) context.Context {
	return context.WithValue(ctx, pingFirst{}, true)
}

// shouldPing is the pool's ShouldPing: pgxpool's own rule (idle for over a
// second), and every connection acquired for a second try (fresh).
func shouldPing(ctx context.Context, p pgxpool.ShouldPingParams) bool {
	return p.IdleDuration > time.Second || ctx.Value(pingFirst{}) != nil
}

// reread runs fn, a read of one or a few statements outside a
// transaction, on a pooled connection; when that connection died under it
// (lostConn), once more on another (fresh). fn must be safe to run twice:
// it sets what it returns afresh.
func (s *Store) reread(ctx context.Context, fn func(q querier) error) error {
	for try := 0; ; try++ {
		c, err := s.pool.Acquire(ctx)
		if err != nil {
			return err
		}
		err = fn(c)
		lost := lostConn(ctx, c.Conn(), err)
		c.Release()
		if !lost || try > 0 {
			return s.named(err) // a permission error names the role
		}
		s.log.Debug("catalog: read retried on another connection", "err", err)
		ctx = fresh(ctx)
	}
}

// commitLost is a write whose connection died after its COMMIT was sent:
// whether it committed is unknown until xid (0: not known) is looked up.
type commitLost struct {
	err error
	xid int64
}

func (e *commitLost) Error() string { return e.err.Error() }
func (e *commitLost) Unwrap() error { return e.err }

// xidSQL reads the transaction's id; it assigns one, which every write
// has anyway. It rides in the round trip of the write's BEGIN (pipeTx).
const xidSQL = `SELECT pg_current_xact_id()::text::bigint`

// settleCommit finds out on another connection whether the write that
// failed with e committed: nil if it did, the write's error if it did
// not, that error saying so when that cannot be found out (no xid, the
// database does not answer). A transaction still in progress (a backend
// that has not yet seen its client gone) is asked after a few times.
func (s *Store) settleCommit(ctx context.Context, e *commitLost) error {
	unknown := func(why error) error {
		return fmt.Errorf("catalog: the connection to the database was lost after COMMIT was sent; whether the write committed is unknown (%v): %w", why, e.err)
	}
	if e.xid == 0 {
		return unknown(errors.New("its transaction id was not read"))
	}
	ctx = fresh(ctx)
	var status *string
	for i := 0; i < 20; i++ {
		err := s.reread(ctx, func(q querier) error {
			return q.QueryRow(ctx, `SELECT pg_xact_status($1::bigint::text::xid8)`, e.xid).Scan(&status)
		})
		switch {
		case err != nil:
			return unknown(err)
		case status == nil:
			return unknown(errors.New("its transaction id is too old"))
		case *status == "committed":
			s.log.Debug("catalog: a write whose connection was lost after COMMIT committed", "xid", e.xid, "err", e.err)
			return nil
		case *status == "aborted":
			return fmt.Errorf("catalog: the connection to the database was lost in COMMIT, which did not commit: %w", e.err)
		}
		d := time.Duration(10<<min(i, 5)) * time.Millisecond
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return unknown(ctx.Err())
		}
	}
	return unknown(fmt.Errorf("its transaction is still %s", *status))
}
