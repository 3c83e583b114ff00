package catalog

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/lamina-bio/lamina/ref"
	bolt "go.etcd.io/bbolt"
)

// Buckets of catalog.Runs (made on first use, so older files need no
// migration):
//
//	transforms      uid → JSON Transform
//	transform_ids   name \x00 kind \x00 digest → uid
//	runs            uid → JSON Run
//	run_order       8-byte big-endian start nanoseconds + uid → "" (newest last)
//	run_children    parent uid + child uid → ""
//	run_inputs      run uid + version uid → ""
//	version_users   version uid + run uid → ""
//	run_outputs     run uid + version uid → "" (written by Save for NewVersion.Run)
//	version_reruns  version uid + run uid → "": a run that wrote the bytes of
//	                its key's latest version again (Save made no version);
//	                the run_outputs entry run + version is written with it
//
// Run uids are ref.NewStem() strings (16 characters), so "run + version"
// keys split at a fixed offset.
var (
	bTransforms   = []byte("transforms")
	bTransformIDs = []byte("transform_ids")
	bRuns         = []byte("runs")
	bRunOrder     = []byte("run_order")
	bRunChildren  = []byte("run_children")
	bRunInputs    = []byte("run_inputs")
	bVersionUsers = []byte("version_users")
	bRunOutputs   = []byte("run_outputs")
	bReruns       = []byte("version_reruns")
)

var _ Runs = (*Bolt)(nil)

func bucket(tx *bolt.Tx, name []byte) (*bolt.Bucket, error) {
	if !tx.Writable() {
		if b := tx.Bucket(name); b != nil {
			return b, nil
		}
		return nil, nil
	}
	return tx.CreateBucketIfNotExists(name)
}

// afterSaveRun indexes a new version under the run that wrote it.
func (t txn) afterSaveRun(v Version) error {
	if v.Run == "" {
		return nil
	}
	b, err := bucket(t.tx, bRunOutputs)
	if err != nil {
		return err
	}
	return b.Put([]byte(v.Run+v.UID), nil)
}

// rerun records that run wrote v's bytes again (Save found them
// unchanged): v is an output of run too. Nothing for no run or v's own.
func (t txn) rerun(run string, v Version) error {
	if run == "" || run == v.Run {
		return nil
	}
	rr, err := bucket(t.tx, bReruns)
	if err != nil {
		return err
	}
	if rr.Get([]byte(v.UID+run)) != nil {
		return nil // a repeat writes nothing
	}
	outs, err := bucket(t.tx, bRunOutputs)
	if err != nil {
		return err
	}
	if err := outs.Put([]byte(run+v.UID), nil); err != nil {
		return err
	}
	return rr.Put([]byte(v.UID+run), nil)
}

// purgeReruns drops the reruns of version uid, purged: its
// version_reruns entries and the run_outputs entries written with them,
// or an export would carry reruns of a version it no longer holds.
func (t txn) purgeReruns(uid string) error {
	rr := t.tx.Bucket(bReruns)
	if rr == nil {
		return nil
	}
	runs := suffixes(t.tx, bReruns, uid)
	outs := t.tx.Bucket(bRunOutputs)
	for _, r := range runs {
		if err := rr.Delete([]byte(uid + r)); err != nil {
			return err
		}
		if outs != nil {
			if err := outs.Delete([]byte(r + uid)); err != nil {
				return err
			}
		}
	}
	return nil
}

// keepPurged records, in the runs that used or made versions vs, which
// are being purged, what they were (Run.Purged, PurgedByRun). Before
// purgeReruns drops their reruns.
func (t txn) keepPurged(vs []Version) error {
	runs := t.tx.Bucket(bRuns)
	if runs == nil {
		return nil
	}
	byRun, err := PurgedByRun(vs, func(uid string) ([]string, error) {
		return suffixes(t.tx, bReruns, uid), nil
	}, func(uid string) ([]string, error) {
		return suffixes(t.tx, bVersionUsers, uid), nil
	}, time.Now())
	if err != nil {
		return err
	}
	for uid, ps := range byRun {
		var r Run
		if ok, err := getJSON(runs, []byte(uid), &r); err != nil {
			return err
		} else if !ok {
			continue // a run recorded elsewhere
		}
		r.Purged = append(r.Purged, ps...)
		if err := putJSON(runs, []byte(uid), r); err != nil {
			return err
		}
	}
	return nil
}

func (b *Bolt) SaveTransform(ctx context.Context, tr Transform) (Transform, error) {
	if tr.Name == "" {
		return Transform{}, fmt.Errorf("catalog: a transform needs a name")
	}
	id := []byte(tr.Name + "\x00" + tr.Kind + "\x00" + tr.Digest.String())
	err := b.with(true, func(tx *bolt.Tx) error {
		ids, err := bucket(tx, bTransformIDs)
		if err != nil {
			return err
		}
		ts, err := bucket(tx, bTransforms)
		if err != nil {
			return err
		}
		if uid := ids.Get(id); uid != nil {
			_, err := getJSON(ts, uid, &tr)
			return err
		}
		tr.UID = ref.NewStem()
		if tr.CreatedAt.IsZero() {
			tr.CreatedAt = time.Now()
		}
		tr.CreatedAt = tr.CreatedAt.UTC()
		if err := ids.Put(id, []byte(tr.UID)); err != nil {
			return err
		}
		return putJSON(ts, []byte(tr.UID), tr)
	})
	if err != nil {
		return Transform{}, fmt.Errorf("catalog: save transform %s: %w", tr.Name, err)
	}
	return tr, nil
}

func orderKey(r Run) []byte {
	k := make([]byte, 8, 8+len(r.UID))
	binary.BigEndian.PutUint64(k, uint64(r.StartedAt.UnixNano()))
	return append(k, r.UID...)
}

func (b *Bolt) StartRun(ctx context.Context, r Run) (Run, error) {
	r.UID = ref.NewStem()
	if r.Parent != "" && r.Job != "" {
		r.UID = JobRunUID(r.Parent, r.Job)
	}
	r.Status = RunRunning
	r.FinishedAt, r.ExitCode, r.Purged = nil, nil, nil
	if r.StartedAt.IsZero() {
		r.StartedAt = time.Now()
	}
	r.StartedAt = r.StartedAt.UTC()
	err := b.with(true, func(tx *bolt.Tx) error {
		ts, err := bucket(tx, bTransforms)
		if err != nil {
			return err
		}
		if ts.Get([]byte(r.Transform)) == nil {
			return errorf(ErrNotFound, "no transform %q", r.Transform)
		}
		runs, err := bucket(tx, bRuns)
		if err != nil {
			return err
		}
		if r.Job != "" && runs.Get([]byte(r.UID)) != nil { // the job's run, started by another daemon
			_, err := getJSON(runs, []byte(r.UID), &r)
			return err
		}
		if r.Parent != "" {
			if runs.Get([]byte(r.Parent)) == nil {
				return errorf(ErrNotFound, "no parent run %q", r.Parent)
			}
			ch, err := bucket(tx, bRunChildren)
			if err != nil {
				return err
			}
			if err := ch.Put([]byte(r.Parent+r.UID), orderKey(r)[:8]); err != nil {
				return err
			}
		}
		ord, err := bucket(tx, bRunOrder)
		if err != nil {
			return err
		}
		if err := ord.Put(orderKey(r), nil); err != nil {
			return err
		}
		return putJSON(runs, []byte(r.UID), r)
	})
	if err != nil {
		return Run{}, fmt.Errorf("catalog: start run: %w", err)
	}
	return r, nil
}

func (b *Bolt) FinishRun(ctx context.Context, uid string, e RunEnd) (Run, error) {
	var r Run
	err := b.with(true, func(tx *bolt.Tx) error {
		runs, err := bucket(tx, bRuns)
		if err != nil {
			return err
		}
		if ok, err := getJSON(runs, []byte(uid), &r); err != nil {
			return err
		} else if !ok {
			return errorf(ErrNotFound, "no run %q", uid)
		}
		if e.Transform != "" {
			if ts := tx.Bucket(bTransforms); ts == nil || ts.Get([]byte(e.Transform)) == nil {
				return errorf(ErrNotFound, "no transform %q", e.Transform)
			}
		}
		old := r
		r.Apply(e)
		if !r.StartedAt.Equal(old.StartedAt) { // the order keys move with the start
			ord, err := bucket(tx, bRunOrder)
			if err != nil {
				return err
			}
			if err := ord.Delete(orderKey(old)); err != nil {
				return err
			}
			if err := ord.Put(orderKey(r), nil); err != nil {
				return err
			}
			if r.Parent != "" {
				ch, err := bucket(tx, bRunChildren)
				if err != nil {
					return err
				}
				if err := ch.Put([]byte(r.Parent+r.UID), orderKey(r)[:8]); err != nil {
					return err
				}
			}
		}
		return putJSON(runs, []byte(uid), r)
	})
	return r, err
}

func (b *Bolt) AddInputs(ctx context.Context, run string, uids []string) error {
	return b.with(true, func(tx *bolt.Tx) error {
		runs, err := bucket(tx, bRuns)
		if err != nil {
			return err
		}
		if runs.Get([]byte(run)) == nil {
			return errorf(ErrNotFound, "no run %q", run)
		}
		in, err := bucket(tx, bRunInputs)
		if err != nil {
			return err
		}
		users, err := bucket(tx, bVersionUsers)
		if err != nil {
			return err
		}
		for _, u := range uids {
			if err := in.Put([]byte(run+u), nil); err != nil {
				return err
			}
			if err := users.Put([]byte(u+run), nil); err != nil {
				return err
			}
		}
		return nil
	})
}

func (b *Bolt) CreditOutputs(ctx context.Context, run string, uids []string) ([]Version, error) {
	var out []Version
	err := b.with(true, func(tx *bolt.Tx) error {
		out = out[:0]
		runs, err := bucket(tx, bRuns)
		if err != nil {
			return err
		}
		if runs.Get([]byte(run)) == nil {
			return errorf(ErrNotFound, "no run %q", run)
		}
		outs, err := bucket(tx, bRunOutputs)
		if err != nil {
			return err
		}
		vs := tx.Bucket(bVersions)
		for _, u := range uids {
			v, ok, err := txn{tx}.version(u)
			if err != nil {
				return err
			} else if !ok {
				return errorf(ErrNotFound, "no version %q", u)
			}
			if v.Run != "" {
				if err := outs.Delete([]byte(v.Run + v.UID)); err != nil {
					return err
				}
			}
			v.Run = run
			if err := outs.Put([]byte(run+v.UID), nil); err != nil {
				return err
			}
			if err := putVersion(vs, v); err != nil {
				return err
			}
			out = append(out, v)
		}
		return nil
	})
	return out, err
}

// suffixes returns the rest of every key in bucket name that starts with
// prefix, in key order.
func suffixes(tx *bolt.Tx, name []byte, prefix string) []string {
	bk := tx.Bucket(name)
	if bk == nil {
		return []string{}
	}
	out := []string{}
	p := []byte(prefix)
	c := bk.Cursor()
	for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
		out = append(out, string(k[len(p):]))
	}
	return out
}

func (b *Bolt) RunRecord(ctx context.Context, uid string) (RunRecord, error) {
	var rec RunRecord
	if !ref.IsUIDPrefix(uid) {
		return rec, fmt.Errorf("%w: %q is not a run uid", ref.ErrBadUID, uid)
	}
	err := b.with(false, func(tx *bolt.Tx) error {
		runs := tx.Bucket(bRuns)
		if runs == nil {
			return errorf(ErrNotFound, "no run %q", uid)
		}
		c := runs.Cursor()
		p := []byte(uid)
		k, raw := c.Seek(p)
		if k == nil || !bytes.HasPrefix(k, p) {
			return errorf(ErrNotFound, "no run %q", uid)
		}
		if k2, _ := c.Next(); k2 != nil && bytes.HasPrefix(k2, p) {
			return errorf(ErrConflict, "run uid prefix %q is ambiguous", uid)
		}
		if err := json.Unmarshal(raw, &rec.Run); err != nil {
			return err
		}
		if ts := tx.Bucket(bTransforms); ts != nil {
			if _, err := getJSON(ts, []byte(rec.Run.Transform), &rec.Transform); err != nil {
				return err
			}
			rec.OwnSource()
		}
		id := rec.Run.UID
		var err error
		if rec.Inputs, err = byKeyThenVersion(tx, suffixes(tx, bRunInputs, id)); err != nil {
			return err
		}
		// Versions purged since are outputs as the run records them
		// (Run.Purged): a temporary file renamed onto a key is none.
		rec.Outputs = []string{}
		for _, u := range suffixes(tx, bRunOutputs, id) {
			if tx.Bucket(bVersions).Get([]byte(u)) != nil {
				rec.Outputs = append(rec.Outputs, u)
			}
		}
		rec.Outputs = rec.Run.PurgedOutputs(rec.Outputs)
		rec.Children = suffixes(tx, bRunChildren, id)
		if ch := tx.Bucket(bRunChildren); ch != nil && len(rec.Children) > 1 {
			at := func(c string) []byte { return ch.Get([]byte(id + c)) }
			sort.SliceStable(rec.Children, func(i, j int) bool {
				return bytes.Compare(at(rec.Children[i]), at(rec.Children[j])) < 0
			})
		}
		return nil
	})
	return rec, err
}

func (b *Bolt) ListRuns(ctx context.Context, q RunQuery) ([]Run, error) {
	out := []Run{}
	err := b.with(false, func(tx *bolt.Tx) error {
		ord, runs := tx.Bucket(bRunOrder), tx.Bucket(bRuns)
		if ord == nil || runs == nil {
			return nil
		}
		var names map[string]bool // transform uid → name matches
		if q.Transform != "" {
			names = map[string]bool{}
			if ts := tx.Bucket(bTransforms); ts != nil {
				err := ts.ForEach(func(k, v []byte) error {
					var t Transform
					if err := json.Unmarshal(v, &t); err != nil {
						return err
					}
					names[string(k)] = t.Name == q.Transform
					return nil
				})
				if err != nil {
					return err
				}
			}
		}
		c := ord.Cursor()
		for k, _ := c.Last(); k != nil; k, _ = c.Prev() {
			var r Run
			if ok, err := getJSON(runs, k[8:], &r); err != nil || !ok {
				return err
			}
			if names != nil && !names[r.Transform] {
				continue
			}
			if q.Parent != "" && r.Parent != q.Parent ||
				q.Status != "" && r.Status != q.Status || q.RootPID != 0 && r.RootPID != q.RootPID ||
				q.PurgedKey != "" && len(r.PurgedOf(q.PurgedKey)) == 0 {
				continue
			}
			out = append(out, r)
			if q.Limit > 0 && len(out) >= q.Limit {
				break
			}
		}
		return nil
	})
	return out, err
}

// byKeyThenVersion orders version uids by their key, then number (as
// RunRecord gives inputs); uids of versions purged since come last, in
// uid order.
func byKeyThenVersion(tx *bolt.Tx, uids []string) ([]string, error) {
	type ref struct {
		uid, key string
		n        int
		gone     bool
	}
	refs := make([]ref, len(uids))
	for i, u := range uids {
		v, ok, err := txn{tx}.version(u)
		if err != nil {
			return nil, err
		}
		refs[i] = ref{uid: u, key: v.Key, n: v.Version, gone: !ok}
	}
	sort.SliceStable(refs, func(i, j int) bool {
		a, b := refs[i], refs[j]
		switch {
		case a.gone != b.gone:
			return b.gone
		case a.key != b.key:
			return a.key < b.key
		case a.n != b.n:
			return a.n < b.n
		}
		return a.uid < b.uid
	})
	out := make([]string, len(refs))
	for i, r := range refs {
		out[i] = r.uid
	}
	return out, nil
}

func (b *Bolt) Reruns(ctx context.Context, uid string) ([]string, error) {
	out := []string{}
	err := b.with(false, func(tx *bolt.Tx) error {
		out = out[:0]
		v, ok, err := txn{tx}.version(uid)
		if err != nil || !ok {
			return err
		}
		type rerun struct {
			uid   string
			start time.Time
			gone  bool
		}
		var rs []rerun
		runs := tx.Bucket(bRuns)
		for _, r := range suffixes(tx, bReruns, uid) {
			if r == v.Run { // credited to it since (CreditOutputs)
				continue
			}
			var run struct {
				StartedAt time.Time `json:"started_at"`
			}
			found := false
			if runs != nil {
				if found, err = getJSON(runs, []byte(r), &run); err != nil {
					return err
				}
			}
			rs = append(rs, rerun{r, run.StartedAt, !found})
		}
		// Oldest first, runs not recorded here last, as the PostgreSQL
		// store orders them.
		sort.SliceStable(rs, func(i, j int) bool {
			a, b := rs[i], rs[j]
			switch {
			case a.gone != b.gone:
				return b.gone
			case !a.start.Equal(b.start):
				return a.start.Before(b.start)
			}
			return a.uid < b.uid
		})
		for _, r := range rs {
			out = append(out, r.uid)
		}
		return nil
	})
	return out, err
}

func (b *Bolt) UsedBy(ctx context.Context, uid string) ([]string, error) {
	var out []string
	err := b.with(false, func(tx *bolt.Tx) error {
		out = suffixes(tx, bVersionUsers, uid)
		return nil
	})
	return out, err
}
