package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/ref"
)

var (
	errorf      = catalog.Errorf
	ErrNotFound = catalog.ErrNotFound
	ErrConflict = catalog.ErrConflict
)

// querier is what reads need: a transaction, or the pool for a read of
// one statement (its own snapshot, one round trip).
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// artifact is a row of artifacts: the same record as Bolt's.
type artifact struct {
	Stem      string
	Key       string
	Kind      string
	Versions  int // highest number ever assigned
	Latest    int // highest live number; 0 when all are trashed
	TrashedAt *time.Time
}

// upper bounds the keys that start with a prefix: no key of valid UTF-8
// sorts (byte order) at or above prefix+U+10FFFF.
func upper(prefix string) string { return prefix + "\U0010FFFF" }

const artifactCols = `stem, key, kind, versions, latest, trashed_at`

func scanArtifact(row pgx.Row) (*artifact, error) {
	var a artifact
	var trashed *int64
	err := row.Scan(&a.Stem, &a.Key, &a.Kind, &a.Versions, &a.Latest, &trashed)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if trashed != nil {
		t := fromNS(*trashed)
		a.TrashedAt = &t
	}
	return &a, nil
}

func artifactByKey(ctx context.Context, tx pgx.Tx, key string) (*artifact, error) {
	return scanArtifact(tx.QueryRow(ctx, `SELECT `+artifactCols+` FROM artifacts WHERE key = $1`, key))
}

const putArtifactSQL = `INSERT INTO artifacts (` + artifactCols + `) VALUES ($1, $2, $3, $4, $5, $6)
	ON CONFLICT (stem) DO UPDATE SET key = EXCLUDED.key, kind = EXCLUDED.kind, versions = EXCLUDED.versions,
	latest = EXCLUDED.latest, trashed_at = EXCLUDED.trashed_at`

func putArtifact(ctx context.Context, tx pgx.Tx, a *artifact) error {
	_, err := tx.Exec(ctx, putArtifactSQL, a.Stem, a.Key, a.Kind, a.Versions, a.Latest, nsPtr(a.TrashedAt))
	return err
}

// Times outside versions are unix nanoseconds: as exact as Bolt's JSON
// (timestamptz keeps microseconds), so an export survives a round trip.
func ns(t time.Time) int64 { return t.UnixNano() }

func fromNS(n int64) time.Time { return time.Unix(0, n).UTC() }

func nsPtr(t *time.Time) *int64 {
	if t == nil {
		return nil
	}
	n := t.UnixNano()
	return &n
}

func decode(raw []byte) (Version, error) {
	var v Version
	if err := json.Unmarshal(raw, &v); err != nil {
		return v, errorf(catalog.ErrSchema, "catalog: version record: %v", err)
	}
	return v, nil
}

// Version is catalog.Version; the alias keeps signatures short.
type Version = catalog.Version

func version(ctx context.Context, tx pgx.Tx, uid string) (Version, bool, error) {
	return scanVersion(tx.QueryRow(ctx, `SELECT rec FROM versions WHERE uid = $1`, uid))
}

func versionForUpdate(ctx context.Context, tx pgx.Tx, uid string) (Version, bool, error) {
	return scanVersion(tx.QueryRow(ctx, `SELECT rec FROM versions WHERE uid = $1 FOR UPDATE`, uid))
}

func scanVersion(row pgx.Row) (Version, bool, error) {
	var raw []byte
	err := row.Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return Version{}, false, nil
	}
	if err != nil {
		return Version{}, false, err
	}
	v, err := decode(raw)
	return v, err == nil, err
}

func collectVersions(rows pgx.Rows, err error) ([]Version, error) {
	if err != nil {
		return nil, err
	}
	var out []Version
	err = eachVersion(rows, func(v Version) bool { out = append(out, v); return true })
	return out, err
}

// eachVersion decodes the version record each row holds and passes it to
// fn until fn returns false; it closes rows (the rest is drained).
func eachVersion(rows pgx.Rows, fn func(Version) bool) error {
	defer rows.Close()
	for rows.Next() {
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			return err
		}
		v, err := decode(raw)
		if err != nil {
			return err
		}
		if !fn(v) {
			return nil
		}
	}
	return rows.Err()
}

// putVersion rewrites the record of an existing version.
func putVersion(ctx context.Context, tx pgx.Tx, v Version) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `UPDATE versions SET rec = $2, trashed = $3 WHERE uid = $1`, v.UID, raw, v.Trashed)
	return err
}

func stemVersions(ctx context.Context, tx querier, stem string) ([]Version, error) {
	return collectVersions(tx.Query(ctx, `SELECT rec FROM versions WHERE stem = $1 ORDER BY n`, stem))
}

// exists runs a query that yields a row or none.
func exists(ctx context.Context, tx querier, sql string, args ...any) (string, bool, error) {
	var s string
	err := tx.QueryRow(ctx, sql, args...).Scan(&s)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	return s, err == nil, err
}

func ancestors(key string) []string {
	var out []string
	for i := 0; i < len(key); i++ {
		if key[i] == '/' {
			out = append(out, key[:i])
		}
	}
	return out
}

// placeSQL finds, in one statement, why key ($1) may not become a file:
// a folder or link at key, a link above it ($2: its ancestors) or a live
// file above it (the shortest first), a folder, link or live key below it
// ($3, $4 bound key/). The reason with the smallest number wins, as the
// checks of Bolt's checkPlace come one after another.
var placeSQL = fmt.Sprintf(placeReasons, "$1", "$2", "$3", "$4", "true")

// placeReasons is placeSQL with its parameters (%[1]s to %[4]s) and a
// condition (%[5]s) to fill in.
const placeReasons = `SELECT reason, key FROM (
	(SELECT 1 AS reason, key FROM folders WHERE key = %[1]s)
	UNION ALL (SELECT 2, key FROM links WHERE key = %[1]s)
	UNION ALL (SELECT 3, key FROM links WHERE key = ANY(%[2]s) ORDER BY length(key) LIMIT 1)
	UNION ALL (SELECT 4, key FROM folders WHERE key >= %[3]s AND key < %[4]s ORDER BY key LIMIT 1)
	UNION ALL (SELECT 5, key FROM links WHERE key >= %[3]s AND key < %[4]s ORDER BY key LIMIT 1)
	UNION ALL (SELECT 6, key FROM artifacts WHERE key = ANY(%[2]s) AND latest > 0 ORDER BY length(key) LIMIT 1)
	UNION ALL (SELECT 7, key FROM artifacts WHERE key >= %[3]s AND key < %[4]s AND latest > 0 ORDER BY key LIMIT 1)
) c WHERE %[5]s ORDER BY reason LIMIT 1`

// checkPlace refuses a key that would sit under a live file or a link,
// over live keys, folders or links, or where a folder or link is.
func checkPlace(ctx context.Context, tx pgx.Tx, key string) error {
	var reason *int
	var k *string
	err := tx.QueryRow(ctx, placeSQL, placeArgs(key)...).Scan(&reason, &k)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	return placeError(key, reason, k)
}

// placeArgs are placeSQL's parameters for key.
func placeArgs(key string) []any {
	as := ancestors(key)
	if as == nil {
		as = []string{}
	}
	p := key + "/"
	return []any{key, as, p, upper(p)}
}

// placeError is the refusal that placeSQL's reason (nil: none) and key
// stand for.
func placeError(key string, reason *int, k *string) error {
	if reason == nil {
		return nil
	}
	switch *reason {
	case 1:
		return errorf(ErrConflict, "%q cannot be saved: it is a folder", key)
	case 2:
		return errorf(ErrConflict, "%q cannot be saved: it is a symbolic link", key)
	case 3:
		return errorf(ErrConflict, "%q cannot be saved: %q is a symbolic link, not a folder", key, *k)
	case 6:
		return errorf(ErrConflict, "%q cannot be saved: %q is an artifact (a file or a folder artifact), not a folder of keys", key, *k)
	}
	return errorf(ErrConflict, "%q cannot be saved: it is a folder holding %q", key, *k)
}

func (s *Store) Save(ctx context.Context, nvs []catalog.NewVersion) ([]catalog.Saved, error) {
	for _, nv := range nvs {
		if err := ref.CheckKey(nv.Key); err != nil {
			return nil, err
		}
	}
	// Durable at COMMIT, so the content it names must be first.
	if err := catalog.RunSyncFirst(ctx); err != nil {
		return nil, err
	}
	var out []catalog.Saved
	var learned []Version // for the lookup cache, when it serves
	_, caching := s.look.begin()
	err := s.writeN(ctx, 30, s.lockKeys(keysOf(nvs)), func(tx pgx.Tx, changed func(...string)) error {
		out = out[:0]
		for _, nv := range nvs {
			sv, err := save(ctx, tx, nv)
			if err != nil {
				return err
			}
			if !sv.Unchanged {
				changed(sv.Version.Key)
			}
			out = append(out, sv)
			if caching {
				v, err := asRead(sv.Version)
				if err != nil {
					return err
				}
				learned = append(learned, v)
			}
		}
		return nil
	}, &learned)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// asRead returns v as a read from the database returns it: through its
// JSON record, so that a cached answer equals an uncached one.
func asRead(v Version) (Version, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return Version{}, err
	}
	return decode(raw)
}

// saveStateSQL reads what a save decides on in one statement: the key's
// artifact (none: a row of NULLs) and, if its latest live version has the
// digest saved ($2), that version; and, when the key has no live version,
// why it may not become a file (placeSQL, with $3 to $5).
var saveStateSQL = `WITH s AS (SELECT a.stem, a.key, a.kind, a.versions, a.latest, a.trashed_at,
		CASE WHEN v.rec->>'digest' = $2 THEN v.rec END AS same, v.rec->>'description' AS description
	FROM artifacts a LEFT JOIN versions v ON v.stem = a.stem AND v.n = a.latest
	WHERE a.key = $1)
SELECT s.stem, s.key, s.kind, s.versions, s.latest, s.trashed_at, s.same, s.description, p.reason, p.key
	FROM (SELECT) one LEFT JOIN s ON true
	LEFT JOIN LATERAL (` + fmt.Sprintf(placeReasons, "$1", "$3", "$4", "$5", "COALESCE(s.latest, 0) = 0") + `) p ON true`

// keyState is what a save of a key decides on.
type keyState struct {
	a       *artifact // nil: none
	same    []byte    // the latest live version when it has the digest saved
	refusal error     // why the key, with no live version, may not become a file
	// description is the latest live version's (NewVersion.Description).
	description string
}

// saveState reads key's state for a save of content d (saveStateSQL).
func saveState(ctx context.Context, tx pgx.Tx, key string, d ref.Digest) (keyState, error) {
	var stem, akey, kind *string
	var versions, latest *int
	var trashed *int64
	var same []byte
	var reason *int
	var k, description *string
	args := append([]any{key, d.String()}, placeArgs(key)[1:]...)
	err := tx.QueryRow(ctx, saveStateSQL, args...).Scan(&stem, &akey, &kind, &versions, &latest, &trashed, &same, &description, &reason, &k)
	if err != nil {
		return keyState{}, err
	}
	st := keyState{same: same, refusal: placeError(key, reason, k)}
	if description != nil {
		st.description = *description
	}
	if stem != nil {
		st.a = &artifact{Stem: *stem, Key: *akey, Kind: *kind, Versions: *versions, Latest: *latest}
		if trashed != nil {
			t := fromNS(*trashed)
			st.a.TrashedAt = &t
		}
	}
	return st, nil
}

func keysOf(nvs []catalog.NewVersion) []string {
	keys := make([]string, len(nvs))
	for i, nv := range nvs {
		keys[i] = nv.Key
	}
	return keys
}

func save(ctx context.Context, tx pgx.Tx, nv catalog.NewVersion) (catalog.Saved, error) {
	st, err := saveState(ctx, tx, nv.Key, nv.Digest)
	if err != nil {
		return catalog.Saved{}, err
	}
	a, same := st.a, st.same
	if nv.Revises != "" {
		rv, err := byUID(ctx, tx, nv.Revises)
		if err != nil {
			return catalog.Saved{}, fmt.Errorf("--revises: %w", err)
		}
		if rv.Key != nv.Key {
			return catalog.Saved{}, errorf(ErrConflict, "--revises %s names a version of %q, not of %q", nv.Revises, rv.Key, nv.Key)
		}
		nv.Revises = rv.UID // a prefix would name another version later
	}
	if a == nil {
		a = &artifact{Stem: ref.NewStem(), Key: nv.Key, Kind: nv.Kind}
	} else if a.Kind != nv.Kind {
		return catalog.Saved{}, errorf(catalog.ErrKind, "%q holds a %s artifact; a %s cannot be saved as a new version of it", nv.Key, a.Kind, nv.Kind)
	}
	if same != nil {
		latest, err := decode(same)
		if err == nil && nv.Run != "" && nv.Run != latest.Run {
			// A run that wrote the same bytes again produced the version
			// too (runs.go, Reruns).
			_, err = tx.Exec(ctx, `INSERT INTO run_reruns (uid, run) VALUES ($1, $2) ON CONFLICT DO NOTHING`, latest.UID, nv.Run)
		}
		return catalog.Saved{Version: latest, Unchanged: true}, err
	}
	if st.refusal != nil {
		return catalog.Saved{}, st.refusal
	}
	taken := a.Latest == 0 // the key becomes a file
	if nv.Description == "" && !nv.NoDescription {
		nv.Description = st.description // NewVersion.Description
	}
	a.Versions++
	a.Latest = a.Versions
	a.TrashedAt = nil
	v := Version{
		UID: ref.VersionUID(a.Stem, a.Versions), Key: nv.Key, Version: a.Versions,
		Kind: nv.Kind, Suffix: nv.Suffix, OType: nv.OType, NObservations: nv.NObservations,
		NFiles: nv.NFiles, Size: nv.Size, Digest: nv.Digest, Manifest: nv.Manifest,
		Description: nv.Description, CreatedBy: nv.CreatedBy, CreatedAt: nv.CreatedAt.UTC(),
		Mtime: nv.Mtime.UTC(), Run: nv.Run, Mode: nv.Mode, Revises: nv.Revises,
	}
	v.Shape, v.Columns = nv.Shape, nv.Columns
	return catalog.Saved{Version: v}, addVersion(ctx, tx, a, v, taken)
}

// addVersion records a new version v of artifact a (updated) in one
// round trip: the artifact, the version, its outbox entry and its search
// words; when v makes its key a file (taken), it drops the folder or link
// trashed there, as mkdir or ln -s there drops it.
func addVersion(ctx context.Context, tx pgx.Tx, a *artifact, v Version, taken bool) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var b pgx.Batch
	b.Queue(putArtifactSQL, a.Stem, a.Key, a.Kind, a.Versions, a.Latest, nsPtr(a.TrashedAt))
	b.Queue(insertVersionSQL, v.UID, v.Stem(), v.Version, v.Trashed, raw)
	b.Queue(insertOutboxSQL, v.UID)
	if taken {
		b.Queue(`DELETE FROM trashed_tree WHERE key = $1`, v.Key)
	}
	if words, weights, fields := wordRows(v, catalog.Annotations{}); len(words) > 0 { // annotate.go
		b.Queue(insertWordsSQL, words, weights, fields, v.UID)
	}
	return tx.SendBatch(ctx, &b).Close()
}

const (
	insertVersionSQL = `INSERT INTO versions (uid, stem, n, trashed, rec) VALUES ($1, $2, $3, $4, $5)`
	insertOutboxSQL  = `INSERT INTO outbox (uid) VALUES ($1) ON CONFLICT DO NOTHING`
)

func insertVersion(ctx context.Context, tx pgx.Tx, v Version) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, insertVersionSQL, v.UID, v.Stem(), v.Version, v.Trashed, raw)
	return err
}

func byUID(ctx context.Context, tx querier, prefix string) (Version, error) {
	if !ref.IsUIDPrefix(prefix) {
		return Version{}, fmt.Errorf("%w: %q is not a uid (%d to %d base62 characters)", ref.ErrBadUID, prefix, ref.MinUIDPrefix, ref.UIDLen)
	}
	// Up to 11 matches tell one artifact's versions from an ambiguous
	// prefix, as Bolt's cursor walk does; the stem's own versions come
	// whole when the prefix names one stem.
	found, err := collectVersions(tx.Query(ctx, `SELECT rec FROM versions WHERE uid >= $1 AND uid < $2 ORDER BY uid LIMIT 11`, prefix, upper(prefix)))
	if err != nil {
		return Version{}, err
	}
	oneStem := true
	for _, v := range found {
		oneStem = oneStem && v.Stem() == found[0].Stem()
	}
	if oneStem && len(found) == 11 {
		if found, err = stemVersions(ctx, tx, found[0].Stem()); err != nil {
			return Version{}, err
		}
		var more bool
		if _, more, err = exists(ctx, tx, `SELECT uid FROM versions WHERE uid > $1 AND uid < $2 LIMIT 1`,
			ref.VersionUID(found[0].Stem(), 62*62*62*62), upper(prefix)); err != nil {
			return Version{}, err
		}
		oneStem = !more
	}
	return catalog.PickByPrefix(prefix, found, oneStem)
}

// ByUID needs no transaction: its one statement answers all but a prefix
// shared by 11+ versions of one artifact, whose further reads see changes
// committed meanwhile as if the call had come a moment later.
// ByUID of a whole uid is answered by the lookup cache while Listen runs
// (the mount opens a listed file by uid), unless ctx is catalog.Fresh.
func (s *Store) ByUID(ctx context.Context, prefix string) (_ Version, err error) {
	whole := len(prefix) == ref.UIDLen && !catalog.IsFresh(ctx)
	if whole {
		if v, ok := s.look.uid(prefix); ok {
			return cloneVersion(v), nil
		}
	}
	gen, caching := s.look.begin()
	ctx, end := s.bound(ctx)
	defer func() { err = end(err) }()
	var v Version
	err = s.reread(ctx, func(q querier) (err error) {
		v, err = byUID(ctx, q, prefix)
		return err
	})
	if err == nil && whole && caching && v.UID == prefix {
		s.look.putUID(gen, cloneVersion(v))
	}
	return v, wrap(err)
}

// byKeySQL reads a key's artifact and the version asked for ($2, 0 for
// the latest) in one statement: a lookup is one round trip.
const byKeySQL = `SELECT a.versions, a.latest, v.rec FROM artifacts a
	LEFT JOIN versions v ON v.stem = a.stem AND v.n = (CASE WHEN $2 = 0 THEN a.latest ELSE $2 END)
	WHERE a.key = $1`

// ByKey is answered by the lookup cache while Listen runs (lookups.go),
// unless ctx is catalog.Fresh.
func (s *Store) ByKey(ctx context.Context, key string, n int) (_ Version, err error) {
	if !catalog.IsFresh(ctx) {
		if a, ok := s.look.key(key, n); ok {
			return cloneVersion(a.v), a.err
		}
	}
	gen, caching := s.look.begin()
	ctx, end := s.bound(ctx)
	defer func() { err = end(err) }()
	v, err := s.byKey(ctx, key, n)
	if caching && (err == nil || errors.Is(err, ErrNotFound)) {
		s.look.putKey(gen, key, n, keyAnswer{cloneVersion(v), err})
	}
	return v, err
}

func (s *Store) byKey(ctx context.Context, key string, n int) (Version, error) {
	var versions, latest int
	var raw []byte
	err := s.reread(ctx, func(q querier) error {
		return q.QueryRow(ctx, byKeySQL, key, n).Scan(&versions, &latest, &raw)
	})
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return Version{}, errorf(ErrNotFound, "no artifact has key %q", key)
	case err != nil:
		return Version{}, wrap(err)
	case latest == 0:
		return Version{}, errorf(ErrNotFound, "%q is in the trash (lamina restore %s)", key, key)
	}
	if n == 0 {
		n = latest
	}
	if n > versions || raw == nil {
		return Version{}, errorf(ErrNotFound, "%q has no version %d (latest is %d)", key, n, latest)
	}
	v, err := decode(raw)
	if err == nil && v.Trashed {
		err = errorf(ErrNotFound, "%s@v%d is in the trash", key, n)
	}
	return v, err
}

func (s *Store) Versions(ctx context.Context, key string, trash bool) ([]Version, error) {
	var out []Version
	err := s.read(ctx, func(tx pgx.Tx) error {
		out = nil
		a, err := artifactByKey(ctx, tx, key)
		if err != nil {
			return err
		}
		if a == nil || (a.Latest == 0 && !trash) {
			return errorf(ErrNotFound, "no artifact has key %q", key)
		}
		all, err := stemVersions(ctx, tx, a.Stem)
		for _, v := range all {
			if trash || !v.Trashed {
				out = append(out, v)
			}
		}
		return err
	})
	return out, err
}

func (s *Store) List(ctx context.Context, q catalog.Query) ([]Version, error) {
	sql := `SELECT v.rec FROM artifacts a JOIN versions v ON v.stem = a.stem AND v.n = a.latest
		WHERE a.latest > 0 AND a.key >= $1 AND a.key < $2`
	args := []any{q.Prefix, upper(q.Prefix)}
	if q.After != "" && q.After >= q.Prefix {
		sql += ` AND a.key > $3`
		args = append(args, q.After)
	}
	sql += ` ORDER BY a.key`
	if q.Limit > 0 {
		sql += fmt.Sprintf(` LIMIT %d`, q.Limit)
	}
	var out []Version
	err := s.reread(ctx, func(q querier) (err error) {
		out, err = collectVersions(q.Query(ctx, sql, args...))
		return err
	})
	return out, wrap(err)
}

// setTrashed marks every version of key trashed or not and returns the
// artifact afterwards plus the versions it changed.
func setTrashed(ctx context.Context, tx pgx.Tx, key string, trashed bool) (*artifact, []Version, error) {
	return setTrashedOnly(ctx, tx, key, trashed, nil)
}

// setTrashedOnly is setTrashed of the versions of key only takes (all of
// them when only is nil).
func setTrashedOnly(ctx context.Context, tx pgx.Tx, key string, trashed bool, only func(Version) bool) (*artifact, []Version, error) {
	a, err := artifactByKey(ctx, tx, key)
	if err != nil {
		return nil, nil, err
	}
	if a == nil {
		return nil, nil, errorf(ErrNotFound, "no artifact has key %q", key)
	}
	vs, err := stemVersions(ctx, tx, a.Stem)
	if err != nil {
		return nil, nil, err
	}
	if only != nil {
		vs = slices.DeleteFunc(vs, func(v Version) bool { return !only(v) })
	}
	now := time.Now().UTC()
	changed, latest := catalog.MarkTrashed(vs, trashed, now)
	for _, v := range changed {
		if err := putVersion(ctx, tx, v); err != nil {
			return nil, nil, err
		}
	}
	a.Latest = max(a.Latest, latest)
	if trashed {
		a.Latest = 0
		a.TrashedAt = &now
	} else {
		a.TrashedAt = nil
	}
	return a, changed, putArtifact(ctx, tx, a)
}

func entry(a *artifact, vs []Version) catalog.TrashEntry {
	e := catalog.TrashEntry{Key: a.Key, Stem: a.Stem, Versions: len(vs), Live: a.Latest > 0}
	for _, v := range vs {
		e.Size += v.Size
		if v.TrashedAt != nil && v.TrashedAt.After(e.TrashedAt) {
			e.TrashedAt = *v.TrashedAt
		}
	}
	return e
}

func (s *Store) Trash(ctx context.Context, key string) (catalog.TrashEntry, error) {
	var e catalog.TrashEntry
	err := s.writeKeys(ctx, []string{key}, func(tx pgx.Tx, changed func(...string)) error {
		a, vs, err := setTrashed(ctx, tx, key, true)
		if err != nil {
			return err
		}
		if len(vs) == 0 {
			return errorf(ErrNotFound, "%q is already in the trash", key)
		}
		e = entry(a, vs)
		changed(key, catalog.DeleteChange(key))
		return nil
	})
	return e, err
}

func (s *Store) Restore(ctx context.Context, key string) (catalog.TrashEntry, error) {
	var e catalog.TrashEntry
	// The folders above key too, exclusively: restoring a folder or link
	// may make their records (restoreNode).
	err := s.writeKeys(ctx, append([]string{key}, ancestors(key)...), func(tx pgx.Tx, changed func(...string)) error {
		var err error
		e, err = restore(ctx, tx, key, nil, changed)
		return err
	})
	return e, err
}

func (s *Store) RestoreTrashedWith(ctx context.Context, uid string) (catalog.TrashEntry, error) {
	var e catalog.TrashEntry
	notFound := errorf(ErrNotFound, "no version in the trash has uid %q", uid)
	var v Version
	err := s.read(ctx, func(tx pgx.Tx) error {
		var ok bool
		var err error
		if v, ok, err = version(ctx, tx, uid); err == nil && (!ok || !v.Trashed) {
			err = notFound
		}
		return err
	})
	if err != nil {
		return e, err
	}
	err = s.writeKeys(ctx, append([]string{v.Key}, ancestors(v.Key)...), func(tx pgx.Tx, changed func(...string)) error {
		// Read again under the key's lock: restored or purged meanwhile.
		v, ok, err := version(ctx, tx, uid)
		if err != nil {
			return err
		}
		if !ok || !v.Trashed {
			return notFound
		}
		e, err = restore(ctx, tx, v.Key, func(o Version) bool { return catalog.TrashedWith(o, v) }, changed)
		return err
	})
	return e, err
}

// restore is Restore of the versions of key only takes (all when nil): a
// key with none of them brings back the folder or link at key when only
// is nil, and is ErrNotFound otherwise.
func restore(ctx context.Context, tx pgx.Tx, key string, only func(Version) bool, changed func(...string)) (catalog.TrashEntry, error) {
	if a, err := artifactByKey(ctx, tx, key); err != nil {
		return catalog.TrashEntry{}, err
	} else if a != nil && a.Latest == 0 {
		if err := checkPlace(ctx, tx, key); err != nil {
			return catalog.TrashEntry{}, fmt.Errorf("cannot restore: %w", err)
		}
	}
	a, vs, err := setTrashedOnly(ctx, tx, key, false, only)
	if only != nil && err == nil && len(vs) == 0 {
		return catalog.TrashEntry{}, errorf(ErrNotFound, "%q has no such version in the trash", key)
	}
	if errors.Is(err, ErrNotFound) || (err == nil && len(vs) == 0) {
		// No versions to bring back: a removed folder or link.
		e, err := restoreNode(ctx, tx, key) // write.go
		if err == nil {
			changed(key)
			changed(ancestors(key)...) // folders it may have made
		}
		return e, err
	}
	if err != nil {
		return catalog.TrashEntry{}, err
	}
	// The file takes its name back: a folder removed there since
	// leaves the trash; a link stays, held by the file (bolt.go).
	if n, err := trashedNode(ctx, tx, key); err != nil { // write.go
		return catalog.TrashEntry{}, err
	} else if n != nil && n.Folder != nil {
		if err := dropTrashed(ctx, tx, key); err != nil {
			return catalog.TrashEntry{}, err
		}
	}
	changed(key)
	return entry(a, vs), nil
}

func (s *Store) RestoreNode(ctx context.Context, key string) (catalog.TrashEntry, error) {
	var e catalog.TrashEntry
	err := s.writeKeys(ctx, append([]string{key}, ancestors(key)...), func(tx pgx.Tx, changed func(...string)) error {
		var err error
		if e, err = restoreNode(ctx, tx, key); err == nil { // write.go
			changed(key)
			changed(ancestors(key)...) // folders it may have made
		}
		return err
	})
	return e, err
}

func (s *Store) TrashList(ctx context.Context) ([]catalog.TrashEntry, error) {
	var out []catalog.TrashEntry
	err := s.read(ctx, func(tx pgx.Tx) error {
		out = nil
		rows, err := tx.Query(ctx, `SELECT `+artifactCols+` FROM artifacts a
			WHERE EXISTS (SELECT 1 FROM versions v WHERE v.stem = a.stem AND v.trashed) ORDER BY key`)
		if err != nil {
			return err
		}
		var arts []*artifact
		for rows.Next() {
			a, err := scanArtifact(rows)
			if err != nil {
				rows.Close()
				return err
			}
			arts = append(arts, a)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, a := range arts {
			vs, err := collectVersions(tx.Query(ctx, `SELECT rec FROM versions WHERE stem = $1 AND trashed ORDER BY n`, a.Stem))
			if err != nil {
				return err
			}
			out = append(out, entry(a, vs))
		}
		rows, err = tx.Query(ctx, `SELECT rec FROM trashed_tree ORDER BY key`)
		if err != nil {
			return err
		}
		nodes, err := pgx.CollectRows(rows, pgx.RowTo[catalog.TrashedNode])
		for _, n := range nodes {
			if n.Folder != nil || n.Link != nil {
				out = append(out, n.Entry())
			}
		}
		return err
	})
	catalog.SortTrash(out)
	return out, err
}

func (s *Store) Purge(ctx context.Context, key string) ([]Version, error) {
	var out []Version
	err := s.writeKeys(ctx, []string{key}, func(tx pgx.Tx, changed func(...string)) error {
		a, err := artifactByKey(ctx, tx, key)
		if err != nil {
			return err
		}
		if a == nil {
			// A folder or link in the trash (write.go).
			if err := purgeNode(ctx, tx, key); !errors.Is(err, ErrNotFound) {
				return err
			}
			return errorf(ErrNotFound, "no artifact has key %q", key)
		}
		if out, err = purgeArtifact(ctx, tx, a, true); err != nil {
			return err
		}
		changed(key)
		return nil
	})
	if err != nil {
		return nil, err // rolled back: nothing was purged (a tombstone must not name them)
	}
	return out, nil
}

// PurgeTrashed checks and removes under the key's lock (writeKeys), which
// every write of the key takes: a save cannot land between the two.
func (s *Store) PurgeTrashed(ctx context.Context, key, kind string) ([]Version, error) {
	var out []Version
	err := s.writeKeys(ctx, []string{key}, func(tx pgx.Tx, changed func(...string)) error {
		if kind != "" && kind != catalog.PurgeUnreferenced {
			return purgeNode(ctx, tx, key)
		}
		a, err := artifactByKey(ctx, tx, key)
		if err != nil {
			return err
		}
		if a == nil {
			return errorf(ErrNotFound, "no artifact has key %q", key)
		}
		if _, live, err := exists(ctx, tx, `SELECT uid FROM versions WHERE stem = $1 AND NOT trashed LIMIT 1`, a.Stem); err != nil {
			return err
		} else if live {
			return errorf(catalog.ErrWrittenAgain, "%q was written again since it was trashed: kept", key)
		}
		if kind == catalog.PurgeUnreferenced {
			if err := unreferenced(ctx, tx, key, a.Stem); err != nil {
				return err
			}
		}
		// A temporary renamed onto a key leaves its runs no record: its
		// content, and its run, went to the name (Run.Purged).
		if out, err = purgeArtifact(ctx, tx, a, kind != catalog.PurgeUnreferenced); err != nil {
			return err
		}
		changed(key)
		return nil
	})
	if err != nil {
		return nil, err // rolled back: nothing was purged (a tombstone must not name them)
	}
	return out, nil
}

// unreferenced fails with catalog.ErrReferenced if anything refers to a
// version of stem. The versions' rows are locked first (FOR UPDATE): an
// annotate (FOR UPDATE), a collection's save and a run's AddInputs (FOR
// SHARE) that holds one commits before the checks below read (READ
// COMMITTED: each statement sees what committed before it), and one that
// comes after waits for the purge and then finds no version.
func unreferenced(ctx context.Context, tx pgx.Tx, key, stem string) error {
	vs, err := collectVersions(tx.Query(ctx, `SELECT rec FROM versions WHERE stem = $1 ORDER BY n FOR UPDATE`, stem))
	if err != nil {
		return err
	}
	refs, err := catalog.References(vs, func(uid string) (catalog.Annotations, error) {
		return annotations(ctx, tx, uid)
	}, func(uid string) ([]string, error) {
		return strings_(ctx, tx, `SELECT run FROM run_inputs WHERE uid = $1 ORDER BY run`, uid)
	}, func(uids []string) ([]catalog.Collection, error) {
		rows, err := tx.Query(ctx, `SELECT rec FROM collections WHERE rec->'members' ?| $1 ORDER BY name, version`, uids)
		if err != nil {
			return nil, err
		}
		defer rows.Close() // a write transaction's rows end its batch (pipeTx)
		var out []catalog.Collection
		for rows.Next() {
			var raw []byte
			var c catalog.Collection
			if err := rows.Scan(&raw); err != nil {
				return nil, err
			}
			if err := json.Unmarshal(raw, &c); err != nil {
				return nil, errorf(catalog.ErrSchema, "catalog: collection record: %v", err)
			}
			out = append(out, c)
		}
		return out, rows.Err()
	})
	if err != nil {
		return err
	}
	if len(refs) > 0 {
		return catalog.ReferencedError(key, refs)
	}
	return nil
}

// purgeNode drops the folder or link in the trash at key.
func purgeNode(ctx context.Context, tx pgx.Tx, key string) error {
	tag, err := tx.Exec(ctx, `DELETE FROM trashed_tree WHERE key = $1`, key)
	if err != nil || tag.RowsAffected() > 0 {
		return err
	}
	return errorf(ErrNotFound, "the trash holds no folder or link at %q", key)
}

// purgeArtifact removes a and all its versions and returns them; with
// keep, the runs that used or made one record what it was (Run.Purged).
func purgeArtifact(ctx context.Context, tx pgx.Tx, a *artifact, keep bool) ([]Version, error) {
	out, err := stemVersions(ctx, tx, a.Stem)
	if err != nil {
		return nil, err
	}
	// Versions, their annotations, index rows and outbox entries go
	// with the artifact (ON DELETE CASCADE); their reruns (run_reruns, no
	// foreign key) are deleted here.
	uids := make([]string, len(out))
	for i, v := range out {
		uids[i] = v.UID
	}
	if keep {
		if err := keepPurged(ctx, tx, out, uids); err != nil { // runs.go
			return nil, err
		}
	}
	if _, err := tx.Exec(ctx, `DELETE FROM run_reruns WHERE uid = ANY($1)`, uids); err != nil {
		return nil, err
	}
	_, err = tx.Exec(ctx, `DELETE FROM artifacts WHERE stem = $1`, a.Stem)
	return out, err
}

func (s *Store) Each(ctx context.Context, fn func(Version) error) error {
	// Pages of uids, so that fn may call the store and a long walk holds
	// no transaction open.
	after := ""
	for {
		var vs []Version
		err := s.reread(ctx, func(q querier) (err error) {
			vs, err = collectVersions(q.Query(ctx, `SELECT rec FROM versions WHERE uid > $1 ORDER BY uid LIMIT 1000`, after))
			return err
		})
		if err != nil {
			return wrap(err)
		}
		for _, v := range vs {
			if err := fn(v); err != nil {
				return err
			}
		}
		if len(vs) < 1000 {
			return nil
		}
		after = vs[len(vs)-1].UID
	}
}

func (s *Store) Counts(ctx context.Context) (catalog.Counts, error) {
	var c catalog.Counts
	err := s.reread(ctx, func(q querier) error {
		return q.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM artifacts WHERE latest > 0),
		count(*) FILTER (WHERE NOT trashed), count(*) FILTER (WHERE trashed),
		COALESCE(sum((rec->>'size')::bigint), 0)
		FROM versions`).Scan(&c.Artifacts, &c.Versions, &c.Trashed, &c.Bytes)
	})
	return c, wrap(err)
}

func (s *Store) Outbox(ctx context.Context) ([]Version, error) {
	var out []Version
	err := s.reread(ctx, func(q querier) (err error) {
		out, err = collectVersions(q.Query(ctx, `SELECT v.rec FROM outbox o JOIN versions v USING (uid) ORDER BY o.uid`))
		return err
	})
	return out, wrap(err)
}

func (s *Store) OutboxDone(ctx context.Context, uids []string) error {
	if len(uids) == 0 {
		return nil
	}
	return s.write(ctx, func(tx pgx.Tx, _ func(...string)) error {
		_, err := tx.Exec(ctx, `DELETE FROM outbox WHERE uid = ANY($1)`, uids)
		return err
	})
}

// childrenSQL answers Children in one statement. walk visits the live
// keys below the prefix ($1; $2 bounds it, $3 is its length in characters
// plus one) by skip scan, as Bolt's cursor does: after a file the next
// probe starts just past it (no key holds NUL, so key||chr(1) is the next
// possible one), after a key in a sub-folder past the whole sub-folder
// ("p/name0": '0' follows '/'); "a.key > w.key" makes sure each step
// moves on whatever the keys hold. A folder of 1,000 sub-folders costs 1,000
// index probes, not a walk of every key below. Folder markers and links
// come in the same statement.
const childrenSQL = `WITH RECURSIVE walk(key, stem, latest) AS (
	(SELECT key, stem, latest FROM artifacts WHERE key >= $1 AND key < $2 AND latest > 0 ORDER BY key LIMIT 1)
	UNION ALL
	SELECT n.key, n.stem, n.latest FROM walk w, LATERAL (SELECT a.key, a.stem, a.latest FROM artifacts a
		WHERE a.latest > 0 AND a.key > w.key AND a.key < $2 AND a.key >= CASE WHEN strpos(substr(w.key, $3), '/') > 0
			THEN $1 || split_part(substr(w.key, $3), '/', 1) || '0' ELSE w.key || chr(1) END
		ORDER BY a.key LIMIT 1) n)
SELECT 'f', w.key, v.rec, NULL::text, NULL::bigint, NULL::bigint FROM walk w JOIN versions v ON v.stem = w.stem AND v.n = w.latest
	WHERE strpos(substr(w.key, $3), '/') = 0
UNION ALL SELECT 'd', split_part(substr(w.key, $3), '/', 1), NULL, v.rec->>'mtime', NULL, NULL
	FROM walk w JOIN versions v ON v.stem = w.stem AND v.n = w.latest WHERE strpos(substr(w.key, $3), '/') > 0
UNION ALL SELECT 'm', key, NULL, NULL, NULL, NULL FROM folders WHERE key >= $1 AND key < $2
UNION ALL SELECT 'l', key, NULL, target, mtime, NULL FROM links WHERE key >= $1 AND key < $2
UNION ALL SELECT 's', key, NULL, CASE WHEN touched THEN 't' END, mtime, mode FROM folders WHERE key = rtrim($1, '/') AND $1 <> ''
ORDER BY 1, 2`

// Children is one statement (childrenSQL), so one round trip and one
// snapshot without a transaction; the lookup cache answers it while Listen
// runs (lookups.go), unless ctx is catalog.Fresh.
func (s *Store) Children(ctx context.Context, prefix string) (_ catalog.Dir, err error) {
	if err := ref.CheckPrefix(prefix); err != nil {
		return catalog.Dir{}, err
	}
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	if !catalog.IsFresh(ctx) {
		if d, ok := s.look.dir(prefix); ok {
			return cloneDir(d), nil
		}
	}
	gen, caching := s.look.begin()
	ctx, end := s.bound(ctx)
	defer func() { err = end(err) }()
	d, err := s.children(ctx, prefix)
	if caching && err == nil {
		s.look.putDir(gen, prefix, cloneDir(d))
	}
	return d, err
}

func (s *Store) children(ctx context.Context, prefix string) (d catalog.Dir, err error) {
	err = s.reread(ctx, func(q querier) (err error) {
		rows, err := q.Query(ctx, childrenSQL, prefix, upper(prefix), utf8.RuneCountInString(prefix)+1)
		d, err = dirRows(prefix, rows, err)
		return err
	})
	return d, err
}

// dirRows is the catalog.Dir of prefix that the rows of childrenSQL make.
func dirRows(prefix string, rows pgx.Rows, err error) (catalog.Dir, error) {
	if err != nil {
		return catalog.Dir{}, wrap(err)
	}
	defer rows.Close()
	var d catalog.Dir
	seen := map[string]bool{}
	for rows.Next() {
		var kind, key string
		var raw []byte
		var target *string
		var mtime, mode *int64
		if err := rows.Scan(&kind, &key, &raw, &target, &mtime, &mode); err != nil {
			return catalog.Dir{}, err
		}
		switch kind {
		case "s": // the prefix's own record; target says touched
			d.Folder = &catalog.FolderRecord{Key: key, Mtime: fromNS(*mtime), Mode: uint32(*mode), Touched: target != nil}
			continue
		case "d": // target: the mtime of the sub-folder's first key (Dir.Beneath)
			if target != nil {
				if t, err := time.Parse(time.RFC3339Nano, *target); err == nil && t.After(d.Beneath) {
					d.Beneath = t
				}
			}
		}
		switch kind {
		case "f":
			v, err := decode(raw)
			if err != nil {
				return catalog.Dir{}, err
			}
			d.Files = append(d.Files, v)
		case "d":
			addSubdir(&d, seen, key)
		default:
			addEntry(&d, seen, prefix, key, target, mtime) // write.go
		}
	}
	if err := rows.Err(); err != nil {
		return catalog.Dir{}, wrap(err)
	}
	sort.Strings(d.Subdirs)
	return d, nil
}
