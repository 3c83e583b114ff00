package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// pipeTx is a write transaction (writeN) on one pooled connection that
// spends as few round trips as its statements allow: what is queued —
// its BEGIN and locks, and the batches fn sends (SendBatch: writes whose
// results nobody reads) — travels with the next statement, and the last
// of it with the notification and the COMMIT. A save of one key is two
// round trips: BEGIN, locks and the key's state; then the rows written,
// the notification and COMMIT.
type pipeTx struct {
	conn    *pgx.Conn
	pending pgx.Batch
	// committed is set once the COMMIT may have been sent: a failure after
	// it leaves the outcome unknown.
	committed bool
	// xidAt is the index in pending of the statement that reads the
	// transaction's id (xidSQL), -1 for none; xid is its answer once read
	// (0 before).
	xidAt int
	xid   int64
}

var errPipeTx = errors.New("catalog: not available in a write transaction")

// send sends what is pending followed by sql (if not empty) and returns
// the results, the pending ones read: the next result is sql's.
func (t *pipeTx) send(ctx context.Context, sql string, args ...any) (pgx.BatchResults, error) {
	b := t.pending
	t.pending = pgx.Batch{}
	queued := b.Len()
	if sql != "" {
		b.Queue(sql, args...)
	}
	xidAt := t.xidAt
	t.xidAt = -1
	br := t.conn.SendBatch(ctx, &b)
	for i := 0; i < queued; i++ {
		var err error
		if i == xidAt {
			err = br.QueryRow().Scan(&t.xid)
		} else {
			_, err = br.Exec()
		}
		if err != nil {
			br.Close()
			return nil, err
		}
	}
	return br, nil
}

// direct reports whether args start with an option of pgx (a
// QueryExecMode…), which a batch does not take: such a statement goes on
// its own, after what is pending.
func (t *pipeTx) direct(ctx context.Context, args []any) (bool, error) {
	if len(args) == 0 {
		return false, nil
	}
	switch args[0].(type) {
	case pgx.QueryExecMode, pgx.QueryResultFormats, pgx.QueryResultFormatsByOID:
	default:
		return false, nil
	}
	if t.pending.Len() == 0 {
		return true, nil
	}
	br, err := t.send(ctx, "")
	if err == nil {
		err = br.Close()
	}
	return true, err
}

func (t *pipeTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if direct, err := t.direct(ctx, args); direct || err != nil {
		if err != nil {
			return pgconn.CommandTag{}, err
		}
		return t.conn.Exec(ctx, sql, args...)
	}
	br, err := t.send(ctx, sql, args...)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return tag, err
}

func (t *pipeTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if direct, err := t.direct(ctx, args); direct || err != nil {
		if err != nil {
			return nil, err
		}
		return t.conn.Query(ctx, sql, args...)
	}
	br, err := t.send(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	rows, err := br.Query()
	if err != nil {
		br.Close()
		return nil, err
	}
	return &batchRows{Rows: rows, br: br}, nil
}

func (t *pipeTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	rows, err := t.Query(ctx, sql, args...)
	if err != nil {
		return errRow{err}
	}
	return firstRow{rows}
}

// SendBatch queues b's statements to go with the next statement or the
// COMMIT; their errors come from that. The results it returns are empty.
func (t *pipeTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	for _, q := range b.QueuedQueries {
		t.pending.Queue(q.SQL, q.Arguments...)
	}
	return queuedResults{}
}

// loadBatch is how many statements an import (deferTx) sends per round
// trip.
const loadBatch = 500

// deferTx is a pipeTx whose Execs go with later statements, loadBatch at a
// time: an import's writes, whose results nobody reads, were one round
// trip each, several per record. A Query sends what is pending first, so
// it sees it; the first failing statement's error comes from the Exec or
// Query that sent it. The arguments of an Exec must not change after it
// returns (the load functions build fresh ones).
type deferTx struct{ *pipeTx }

func (t deferTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if direct, err := t.direct(ctx, args); direct || err != nil {
		if err != nil {
			return pgconn.CommandTag{}, err
		}
		return t.conn.Exec(ctx, sql, args...)
	}
	t.pending.Queue(sql, args...)
	if t.pending.Len() < loadBatch {
		return pgconn.CommandTag{}, nil
	}
	br, err := t.send(ctx, "")
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	return pgconn.CommandTag{}, br.Close()
}

// commit sends what is pending, then notify (when not empty) and COMMIT.
func (t *pipeTx) commit(ctx context.Context, notify *pgx.QueuedQuery) error {
	if notify != nil {
		t.pending.Queue(notify.SQL, notify.Arguments...)
	}
	t.committed = true
	br, err := t.send(ctx, "COMMIT")
	if err != nil {
		return err
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err == nil && tag.String() != "COMMIT" {
		err = fmt.Errorf("catalog: the transaction was rolled back (%s)", tag)
	}
	return err
}

func (t *pipeTx) Begin(context.Context) (pgx.Tx, error) { return nil, errPipeTx }
func (t *pipeTx) Commit(context.Context) error          { return errPipeTx }
func (t *pipeTx) Rollback(context.Context) error        { return errPipeTx }
func (t *pipeTx) LargeObjects() pgx.LargeObjects        { return pgx.LargeObjects{} }
func (t *pipeTx) Conn() *pgx.Conn                       { return t.conn }

func (t *pipeTx) Prepare(ctx context.Context, name, sql string) (*pgconn.StatementDescription, error) {
	return nil, errPipeTx
}

func (t *pipeTx) CopyFrom(ctx context.Context, table pgx.Identifier, cols []string, src pgx.CopyFromSource) (int64, error) {
	return 0, errPipeTx
}

// batchRows are the rows of a pipelined query; closing them ends the batch.
type batchRows struct {
	pgx.Rows
	br pgx.BatchResults
}

func (r *batchRows) Close() {
	r.Rows.Close()
	r.br.Close()
}

// firstRow is QueryRow's answer: the first of rows.
type firstRow struct{ rows pgx.Rows }

func (r firstRow) Scan(dest ...any) error {
	defer r.rows.Close()
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	if err := r.rows.Scan(dest...); err != nil {
		return err
	}
	r.rows.Close()
	return r.rows.Err()
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// queuedResults are the results of a batch pipeTx queued.
type queuedResults struct{}

func (queuedResults) Exec() (pgconn.CommandTag, error) { return pgconn.CommandTag{}, nil }
func (queuedResults) Query() (pgx.Rows, error)         { return nil, errPipeTx }
func (queuedResults) QueryRow() pgx.Row                { return errRow{errPipeTx} }
func (queuedResults) Close() error                     { return nil }
func (queuedResults) Tx() pgx.Tx                       { return nil }

var _ pgx.Tx = (*pipeTx)(nil)
