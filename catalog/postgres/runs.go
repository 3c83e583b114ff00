package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/ref"
)

// Lineage (catalog.Runs), as Bolt keeps it (catalog/bolt_runs.go): runs
// ordered by start time, children by theirs, inputs in run_inputs, and
// outputs read from the versions whose Run names the run (versions_run)
// and from run_reruns (a run that wrote a version's bytes again).

var _ catalog.Runs = (*Store)(nil)

func (s *Store) SaveTransform(ctx context.Context, tr catalog.Transform) (catalog.Transform, error) {
	if tr.Name == "" {
		return catalog.Transform{}, fmt.Errorf("catalog: a transform needs a name")
	}
	in := tr
	err := s.write(ctx, func(tx pgx.Tx, _ func(...string)) error {
		tr = in
		if ok, err := getJSON(ctx, tx, `SELECT rec FROM transforms WHERE name = $1 AND kind = $2 AND digest = $3`,
			&tr, tr.Name, tr.Kind, tr.Digest.String()); err != nil || ok {
			return err
		}
		tr.UID = ref.NewStem()
		if tr.CreatedAt.IsZero() {
			tr.CreatedAt = time.Now()
		}
		tr.CreatedAt = tr.CreatedAt.UTC()
		return putTransform(ctx, tx, tr)
	})
	if err != nil {
		return catalog.Transform{}, fmt.Errorf("catalog: save transform %s: %w", in.Name, err)
	}
	return tr, nil
}

func putTransform(ctx context.Context, tx pgx.Tx, tr catalog.Transform) error {
	return putJSON(ctx, tx, `INSERT INTO transforms (uid, name, kind, digest, rec) VALUES ($1, $2, $3, $4, $5)`,
		tr, tr.UID, tr.Name, tr.Kind, tr.Digest.String())
}

func putRun(ctx context.Context, tx pgx.Tx, r catalog.Run) error {
	var parent *string
	if r.Parent != "" {
		parent = &r.Parent
	}
	return putJSON(ctx, tx, `INSERT INTO runs (uid, transform, parent, started_ns, rec) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (uid) DO UPDATE SET rec = EXCLUDED.rec, transform = EXCLUDED.transform, started_ns = EXCLUDED.started_ns`, r, r.UID, r.Transform, parent, ns(r.StartedAt))
}

// keepPurged records, in the runs that used or made versions vs (uids
// theirs), which are being purged, what they were (Run.Purged,
// catalog.PurgedByRun): one statement adds to each run's rec, so that a
// FinishRun (SERIALIZABLE) that read it before is retried.
func keepPurged(ctx context.Context, tx pgx.Tx, vs []Version, uids []string) error {
	type ref struct {
		uid, run string
		rerun    bool
	}
	// The versions' rows first (FOR UPDATE): an AddInputs that holds one
	// (FOR SHARE) commits before the reads below (READ COMMITTED), whose
	// input is then kept too.
	if _, err := tx.Exec(ctx, `SELECT uid FROM versions WHERE uid = ANY($1) FOR UPDATE`, uids); err != nil {
		return err
	}
	rows, err := tx.Query(ctx, `SELECT uid, run, true FROM run_reruns WHERE uid = ANY($1)
		UNION ALL SELECT uid, run, false FROM run_inputs WHERE uid = ANY($1)`, uids)
	if err != nil {
		return err
	}
	refs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ref, error) {
		var x ref
		err := r.Scan(&x.uid, &x.run, &x.rerun)
		return x, err
	})
	if err != nil {
		return err
	}
	reruns, users := map[string][]string{}, map[string][]string{}
	for _, x := range refs {
		if x.rerun {
			reruns[x.uid] = append(reruns[x.uid], x.run)
		} else {
			users[x.uid] = append(users[x.uid], x.run)
		}
	}
	byRun, err := catalog.PurgedByRun(vs, func(uid string) ([]string, error) { return reruns[uid], nil },
		func(uid string) ([]string, error) { return users[uid], nil }, time.Now())
	if err != nil || len(byRun) == 0 {
		return err
	}
	runs := make([]string, 0, len(byRun))
	for r := range byRun {
		runs = append(runs, r)
	}
	slices.Sort(runs)
	adds := make([]string, len(runs))
	for i, r := range runs {
		b, err := json.Marshal(byRun[r])
		if err != nil {
			return err
		}
		adds[i] = string(b)
	}
	// Runs recorded elsewhere (no row) have nothing to keep here.
	_, err = tx.Exec(ctx, `UPDATE runs r SET rec = jsonb_set(r.rec, '{purged}', COALESCE(r.rec->'purged', '[]'::jsonb) || x.add::jsonb)
		FROM unnest($1::text[], $2::text[]) AS x(uid, add) WHERE r.uid = x.uid`, runs, adds)
	return err
}

func (s *Store) StartRun(ctx context.Context, r catalog.Run) (catalog.Run, error) {
	r.UID = ref.NewStem()
	if r.Parent != "" && r.Job != "" {
		r.UID = catalog.JobRunUID(r.Parent, r.Job)
	}
	r.Status = catalog.RunRunning
	r.FinishedAt, r.ExitCode, r.Purged = nil, nil, nil
	if r.StartedAt.IsZero() {
		r.StartedAt = time.Now()
	}
	r.StartedAt = r.StartedAt.UTC()
	start := r
	err := s.write(ctx, func(tx pgx.Tx, changed func(...string)) error {
		r = start
		if r.Job != "" {
			// The job's run, started by another daemon: SERIALIZABLE makes
			// two that start it at once take turns (the second is retried
			// and finds the first's).
			if ok, err := getJSON(ctx, tx, `SELECT rec FROM runs WHERE uid = $1`, &r, r.UID); err != nil || ok {
				return err
			}
		}
		if _, ok, err := exists(ctx, tx, `SELECT uid FROM transforms WHERE uid = $1`, r.Transform); err != nil {
			return err
		} else if !ok {
			return errorf(ErrNotFound, "no transform %q", r.Transform)
		}
		if r.Parent != "" {
			if _, ok, err := exists(ctx, tx, `SELECT uid FROM runs WHERE uid = $1`, r.Parent); err != nil {
				return err
			} else if !ok {
				return errorf(ErrNotFound, "no parent run %q", r.Parent)
			}
		}
		if r.RootPID > 0 {
			// Logged and notified at commit (Listen): the other mount
			// daemons of the catalog track it from then on, however late
			// the commit is after r.StartedAt (lineage.Tracker.Changed).
			changed(catalog.RunStartChange(r.UID))
		}
		return putRun(ctx, tx, r)
	})
	if err != nil {
		return catalog.Run{}, fmt.Errorf("catalog: start run: %w", err)
	}
	return r, nil
}

func (s *Store) FinishRun(ctx context.Context, uid string, e catalog.RunEnd) (catalog.Run, error) {
	var r catalog.Run
	err := s.write(ctx, func(tx pgx.Tx, _ func(...string)) error {
		r = catalog.Run{}
		if ok, err := getJSON(ctx, tx, `SELECT rec FROM runs WHERE uid = $1`, &r, uid); err != nil {
			return err
		} else if !ok {
			return errorf(ErrNotFound, "no run %q", uid)
		}
		if e.Transform != "" {
			if _, ok, err := exists(ctx, tx, `SELECT uid FROM transforms WHERE uid = $1`, e.Transform); err != nil {
				return err
			} else if !ok {
				return errorf(ErrNotFound, "no transform %q", e.Transform)
			}
		}
		r.Apply(e)
		return putRun(ctx, tx, r)
	})
	return r, err
}

func (s *Store) AddInputs(ctx context.Context, run string, uids []string) error {
	return s.write(ctx, func(tx pgx.Tx, _ func(...string)) error {
		if _, ok, err := exists(ctx, tx, `SELECT uid FROM runs WHERE uid = $1`, run); err != nil {
			return err
		} else if !ok {
			return errorf(ErrNotFound, "no run %q", run)
		}
		// FOR SHARE: a purge of a temporary (PurgeTrashed,
		// PurgeUnreferenced) waits for this commit and then sees the input.
		if _, err := tx.Exec(ctx, `SELECT uid FROM versions WHERE uid = ANY($1) FOR SHARE`, uids); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO run_inputs (run, uid) SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING`, run, uids)
		return err
	})
}

func (s *Store) CreditOutputs(ctx context.Context, run string, uids []string) ([]catalog.Version, error) {
	var out []catalog.Version
	err := s.write(ctx, func(tx pgx.Tx, changed func(...string)) error {
		out = out[:0]
		if _, ok, err := exists(ctx, tx, `SELECT uid FROM runs WHERE uid = $1`, run); err != nil {
			return err
		} else if !ok {
			return errorf(ErrNotFound, "no run %q", run)
		}
		for _, u := range uids {
			v, ok, err := version(ctx, tx, u)
			if err != nil {
				return err
			} else if !ok {
				return errorf(ErrNotFound, "no version %q", u)
			}
			v.Run = run
			if err := putVersion(ctx, tx, v); err != nil {
				return err
			}
			changed(v.Key)
			out = append(out, v)
		}
		return nil
	})
	return out, err
}

func (s *Store) RunRecord(ctx context.Context, uid string) (catalog.RunRecord, error) {
	var rec catalog.RunRecord
	if !ref.IsUIDPrefix(uid) {
		return rec, fmt.Errorf("%w: %q is not a run uid", ref.ErrBadUID, uid)
	}
	err := s.read(ctx, func(tx pgx.Tx) error {
		rec = catalog.RunRecord{}
		rows, err := tx.Query(ctx, `SELECT rec FROM runs WHERE uid >= $1 AND uid < $2 ORDER BY uid LIMIT 2`, uid, upper(uid))
		if err != nil {
			return err
		}
		raws, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
		if err != nil {
			return err
		}
		switch len(raws) {
		case 0:
			return errorf(ErrNotFound, "no run %q", uid)
		case 2:
			return errorf(ErrConflict, "run uid prefix %q is ambiguous", uid)
		}
		if _, err := getJSON(ctx, tx, `SELECT $1::jsonb`, &rec.Run, raws[0]); err != nil {
			return err
		}
		if _, err := getJSON(ctx, tx, `SELECT rec FROM transforms WHERE uid = $1`, &rec.Transform, rec.Run.Transform); err != nil {
			return err
		}
		rec.OwnSource()
		id := rec.Run.UID
		if rec.Inputs, err = strings_(ctx, tx, `SELECT i.uid FROM run_inputs i LEFT JOIN versions v ON v.uid = i.uid
			WHERE i.run = $1 ORDER BY (v.rec->>'key') COLLATE "C", v.n, i.uid`, id); err != nil {
			return err
		}
		if rec.Outputs, err = strings_(ctx, tx, `SELECT uid FROM versions WHERE rec ? 'run' AND rec->>'run' = $1
			UNION SELECT r.uid FROM run_reruns r JOIN versions v ON v.uid = r.uid WHERE r.run = $1 ORDER BY uid`, id); err != nil {
			return err
		}
		// Those purged since, as the run records them (Run.Purged).
		rec.Outputs = rec.Run.PurgedOutputs(rec.Outputs)
		rec.Children, err = strings_(ctx, tx, `SELECT uid FROM runs WHERE parent = $1 ORDER BY started_ns, uid`, id)
		return err
	})
	for _, l := range []*[]string{&rec.Inputs, &rec.Outputs, &rec.Children} {
		if *l == nil {
			*l = []string{}
		}
	}
	return rec, err
}

func (s *Store) ListRuns(ctx context.Context, q catalog.RunQuery) ([]catalog.Run, error) {
	sql := `SELECT r.rec FROM runs r JOIN transforms t ON t.uid = r.transform WHERE true`
	var args sqlArgs
	if q.Transform != "" {
		sql += ` AND t.name = ` + args.add(q.Transform)
	}
	if q.Parent != "" {
		sql += ` AND r.parent = ` + args.add(q.Parent)
	}
	if q.Status != "" {
		sql += ` AND r.rec->>'status' = ` + args.add(q.Status)
	}
	if q.RootPID != 0 {
		sql += ` AND r.rec->>'root_pid' = ` + args.add(strconv.Itoa(q.RootPID))
	}
	if q.PurgedKey != "" {
		sql += ` AND r.rec->'purged' @> jsonb_build_array(jsonb_build_object('key', ` + args.add(q.PurgedKey) + `::text))`
	}
	sql += ` ORDER BY r.started_ns DESC, r.uid DESC`
	if q.Limit > 0 {
		sql += fmt.Sprintf(` LIMIT %d`, q.Limit)
	}
	out := []catalog.Run{}
	var raws [][]byte
	err := s.reread(ctx, func(q querier) error {
		rows, err := q.Query(ctx, sql, args...)
		raws, err = collect(rows, err, pgx.RowTo[[]byte])
		return err
	})
	if err != nil {
		return nil, wrap(err)
	}
	for _, raw := range raws {
		var r catalog.Run
		if err := jsonUnmarshal(raw, &r); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func (s *Store) UsedBy(ctx context.Context, uid string) ([]string, error) {
	var out []string
	err := s.reread(ctx, func(q querier) error {
		rows, err := q.Query(ctx, `SELECT run FROM run_inputs WHERE uid = $1 ORDER BY run`, uid)
		out, err = collect(rows, err, pgx.RowTo[string])
		return err
	})
	if out == nil {
		out = []string{}
	}
	return out, wrap(err)
}

func (s *Store) Reruns(ctx context.Context, uid string) ([]string, error) {
	// Not the version's own run: CreditOutputs may have made it a rerun's.
	// Oldest first (runs not recorded here last), as bbolt orders them.
	var out []string
	err := s.reread(ctx, func(q querier) error {
		rows, err := q.Query(ctx, `SELECT r.run FROM run_reruns r JOIN versions v ON v.uid = r.uid
			LEFT JOIN runs u ON u.uid = r.run
			WHERE r.uid = $1 AND r.run IS DISTINCT FROM v.rec->>'run' ORDER BY u.started_ns, r.run`, uid)
		out, err = collect(rows, err, pgx.RowTo[string])
		return err
	})
	if out == nil {
		out = []string{}
	}
	return out, wrap(err)
}
