package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/lamina-bio/lamina/catalog"
)

// SchemaVersion is the newest schema this build reads and writes.
const SchemaVersion = 9

// migrations[i] brings a schema at version i to version i+1. Keys are
// COLLATE "C": byte order, as bbolt sorts, so listings and prefix ranges
// agree between the stores. A Version is kept whole as JSON (rec) beside
// the columns queries use.
var migrations = []string{
	`CREATE TABLE settings (name text PRIMARY KEY, value jsonb NOT NULL);
	CREATE TABLE artifacts (
		stem       text COLLATE "C" PRIMARY KEY,
		key        text COLLATE "C" NOT NULL UNIQUE,
		kind       text NOT NULL,
		versions   int NOT NULL,
		latest     int NOT NULL,
		trashed_at bigint); -- unix ns, as exact as bbolt's JSON
	CREATE TABLE versions (
		uid     text COLLATE "C" PRIMARY KEY,
		stem    text COLLATE "C" NOT NULL REFERENCES artifacts ON DELETE CASCADE,
		n       int NOT NULL,
		trashed bool NOT NULL DEFAULT false,
		rec     jsonb NOT NULL,
		UNIQUE (stem, n));
	CREATE TABLE outbox (uid text COLLATE "C" PRIMARY KEY REFERENCES versions ON DELETE CASCADE);
	CREATE TABLE folders (key text COLLATE "C" PRIMARY KEY, mtime bigint NOT NULL);
	CREATE TABLE links (key text COLLATE "C" PRIMARY KEY, target text NOT NULL, mtime bigint NOT NULL);
	CREATE TABLE features (name text COLLATE "C" PRIMARY KEY, rec jsonb NOT NULL);
	CREATE TABLE labels (name text COLLATE "C" PRIMARY KEY, parent text COLLATE "C", rec jsonb NOT NULL);
	CREATE TABLE schemas (name text COLLATE "C" PRIMARY KEY, rec jsonb NOT NULL);
	CREATE TABLE annotations (uid text COLLATE "C" PRIMARY KEY REFERENCES versions ON DELETE CASCADE, rec jsonb NOT NULL);
	CREATE TABLE idx_features (
		feature text COLLATE "C" NOT NULL, vkey bytea NOT NULL,
		uid text COLLATE "C" NOT NULL REFERENCES versions ON DELETE CASCADE,
		PRIMARY KEY (feature, vkey, uid));
	CREATE INDEX idx_features_uid ON idx_features (uid);
	CREATE TABLE idx_labels (label text COLLATE "C" NOT NULL,
		uid text COLLATE "C" NOT NULL REFERENCES versions ON DELETE CASCADE, PRIMARY KEY (label, uid));
	CREATE INDEX idx_labels_uid ON idx_labels (uid);
	CREATE TABLE idx_terms (term text COLLATE "C" NOT NULL,
		uid text COLLATE "C" NOT NULL REFERENCES versions ON DELETE CASCADE, PRIMARY KEY (term, uid));
	CREATE INDEX idx_terms_uid ON idx_terms (uid);
	CREATE TABLE words (word text COLLATE "C" NOT NULL,
		uid text COLLATE "C" NOT NULL REFERENCES versions ON DELETE CASCADE,
		weight smallint NOT NULL, fields smallint NOT NULL, PRIMARY KEY (word, uid));
	CREATE INDEX words_uid ON words (uid);
	CREATE TABLE collections (name text COLLATE "C" NOT NULL, version int NOT NULL, rec jsonb NOT NULL,
		PRIMARY KEY (name, version));`,
	// 1→2: lineage (catalog.Runs).
	`CREATE TABLE transforms (uid text COLLATE "C" PRIMARY KEY, name text NOT NULL, kind text NOT NULL,
		digest text NOT NULL, rec jsonb NOT NULL, UNIQUE (name, kind, digest));
	CREATE TABLE runs (uid text COLLATE "C" PRIMARY KEY, transform text COLLATE "C" NOT NULL REFERENCES transforms DEFERRABLE INITIALLY DEFERRED,
		parent text COLLATE "C" REFERENCES runs DEFERRABLE INITIALLY DEFERRED, started_ns bigint NOT NULL, rec jsonb NOT NULL);
	CREATE INDEX runs_order ON runs (started_ns, uid);
	CREATE INDEX runs_parent ON runs (parent, started_ns, uid);
	CREATE TABLE run_inputs (run text COLLATE "C" NOT NULL REFERENCES runs DEFERRABLE INITIALLY DEFERRED, uid text COLLATE "C" NOT NULL,
		PRIMARY KEY (run, uid));
	CREATE INDEX run_inputs_uid ON run_inputs (uid, run);
	CREATE INDEX versions_run ON versions ((rec->>'run')) WHERE rec ? 'run';`,
	// 2→3: the change log a listener catches up from after a reconnect
	// (postgres.go, Listen). xid is the writing transaction's id; keys is
	// a JSON array kept as text (a change marker may hold NUL, which
	// text[] and jsonb refuse).
	`CREATE TABLE changes (xid bigint NOT NULL, at timestamptz NOT NULL DEFAULT now(),
		origin text NOT NULL, keys text NOT NULL);
	CREATE INDEX changes_xid ON changes (xid);
	CREATE INDEX changes_at ON changes (at);`,
	// 3→4: Search reads weight and fields from the words index itself
	// (an index-only scan) instead of visiting a heap page per row.
	`ALTER TABLE words DROP CONSTRAINT words_pkey;
	ALTER TABLE words ADD PRIMARY KEY (word, uid) INCLUDE (weight, fields);`,
	// 4→5: a folder's mode and a time set by touch (catalog.FolderRecord).
	`ALTER TABLE folders ADD COLUMN mode bigint NOT NULL DEFAULT 0,
		ADD COLUMN touched bool NOT NULL DEFAULT false;`,
	// 5→6: folders and links removed, in the trash (catalog.TrashedNode).
	`CREATE TABLE trashed_tree (key text COLLATE "C" PRIMARY KEY, rec jsonb NOT NULL);`,
	// 6→7: an int feature value's key (idx_features.vkey) is exact; it
	// was its nearest float64's, shared by 2^53 and 2^53+1. The keys are
	// Go's (catalog.Normalize): rekeyInts rewrites those that changed. A
	// build of schema 6 would write the old keys: it refuses the database.
	`SELECT 1`,
	// 7→8: runs that wrote a version's bytes again (catalog.Runs.Reruns):
	// no foreign keys, as versions_run has none (a version may be purged,
	// reads join versions).
	`CREATE TABLE run_reruns (uid text COLLATE "C" NOT NULL, run text COLLATE "C" NOT NULL, PRIMARY KEY (uid, run));
	CREATE INDEX run_reruns_run ON run_reruns (run, uid);`,
	// 8→9: the highest number of each deleted collection, until the name
	// is made again (catalog.DeletedCollection). A build of 8 would make
	// the name again from v1, so that an old NAME@v1 named the new list:
	// it refuses the database.
	`CREATE TABLE collections_deleted (name text COLLATE "C" PRIMARY KEY, version int NOT NULL);`,
}

// migrationCode[i], when set, runs after migrations[i] in its transaction:
// the part of a migration SQL alone does not do.
var migrationCode = map[int]func(context.Context, pgx.Tx) error{6: rekeyInts}

// rekeyInts rewrites the index rows of the int feature values whose key
// changed with schema 7 (catalog.RekeyInts).
func rekeyInts(ctx context.Context, tx pgx.Tx) error {
	rows, _ := tx.Query(ctx, `SELECT name FROM features WHERE rec->>'dtype' = 'int'`)
	ints, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(ints) == 0 {
		return err
	}
	isInt := func(f string) bool { return slices.Contains(ints, f) }
	rows, _ = tx.Query(ctx, `SELECT uid, rec FROM annotations WHERE rec->'features' ?| $1`, ints)
	type annotated struct {
		uid string
		rec []byte
	}
	all, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (annotated, error) {
		var a annotated
		err := r.Scan(&a.uid, &a.rec)
		return a, err
	})
	if err != nil {
		return err
	}
	for _, x := range all {
		var a catalog.Annotations
		if err := json.Unmarshal(x.rec, &a); err != nil {
			return fmt.Errorf("annotations of %s: %w", x.uid, err)
		}
		drop, add := catalog.RekeyInts(a, isInt)
		for _, k := range drop {
			if _, err := tx.Exec(ctx, `DELETE FROM idx_features WHERE feature = $1 AND vkey = $2 AND uid = $3`, k.Feature, k.Key, x.uid); err != nil {
				return err
			}
		}
		for _, k := range add {
			if _, err := tx.Exec(ctx, `INSERT INTO idx_features (feature, vkey, uid) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, k.Feature, k.Key, x.uid); err != nil {
				return err
			}
		}
	}
	return nil
}

// migrate creates or upgrades the schema, one migration per transaction,
// under an advisory lock so that workstations starting together take
// turns. existing refuses to create it (Options.Existing).
func (s *Store) migrate(ctx context.Context, existing bool) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	// A role that may only read cannot create anything: check first.
	have, err := schemaVersion(ctx, conn.Conn())
	if err != nil {
		return denied(ctx, conn.Conn(), err, false)
	}
	if have == 0 {
		// No schema_version the role sees: a new database, or one whose
		// schema the role may not use (USAGE), which hides its tables.
		if err := hiddenCatalog(ctx, conn.Conn()); err != nil {
			return err
		}
	}
	if have > SchemaVersion {
		return catalog.Errorf(catalog.ErrSchema, "the catalog database has schema version %d; this lamina understands up to %d: upgrade lamina", have, SchemaVersion)
	}
	if have == SchemaVersion {
		return nil
	}
	if have == 0 && existing {
		return ErrNoCatalog
	}
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(7244516)`); err != nil {
		return err
	}
	defer conn.Exec(context.Background(), `SELECT pg_advisory_unlock(7244516)`)
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version int NOT NULL)`); err != nil {
		return fmt.Errorf("create the catalog schema: %w", denied(ctx, conn.Conn(), err, true))
	}
	from, to := 0, 0 // the versions this Open migrated from and to
	defer func() {
		// A new catalog (from 0) is no upgrade of anyone's.
		if from > 0 && to > from && s.onMigrated != nil {
			s.onMigrated(from, to)
		}
	}()
	for {
		n, done, err := s.step(ctx, conn.Conn())
		if err != nil || done {
			return denied(ctx, conn.Conn(), err, true)
		}
		if to == 0 {
			from = n
		}
		to = n + 1
	}
}

// denied is err, a failure at Open, with a permission error (42501) made
// one that names the role, the schema and the grant it needs: CREATE for
// creating or upgrading the tables (create), SELECT for reading them.
// Before, a role with no rights got the server's bare "permission denied
// for table schema_version", and one that may not create got the advice
// for one that may not write (GRANT INSERT, UPDATE, DELETE).
func denied(ctx context.Context, c *pgx.Conn, err error, create bool) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "42501" {
		return wrap(err)
	}
	role, schema := who(ctx, c)
	if create {
		return &createDenied{role: role, schema: schema, msg: err.Error()} // which migration, if one
	}
	return &readDenied{role: role, schema: schema, msg: pe.Message}
}

// who is the role the connection acts as and the schema its catalog is
// (or would be) in: the first of the search path, whether or not the role
// may use it (current_schema() skips those it may not).
func who(ctx context.Context, c *pgx.Conn) (role, schema string) {
	c.QueryRow(ctx, `SELECT current_user, COALESCE(current_schema(), (`+searchPathSQL+` LIMIT 1), '')`).Scan(&role, &schema)
	return role, schema
}

// searchPathSQL lists the schemas of the search path ("$user" as the role).
const searchPathSQL = `SELECT CASE WHEN p = '$user' THEN current_user::text ELSE p END
	FROM unnest(string_to_array(replace(replace(current_setting('search_path'), ' ', ''), '"', ''), ',')) WITH ORDINALITY AS t(p, i) ORDER BY i`

// hiddenCatalog is ErrReadDenied when a schema of the search path that the
// role may not use (no USAGE) holds a lamina catalog: to the role it looks
// like an empty database, which init would set up anew and the others call
// "holds no lamina catalog".
func hiddenCatalog(ctx context.Context, c *pgx.Conn) error {
	var schema string
	err := c.QueryRow(ctx, `SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relname = 'schema_version' AND NOT has_schema_privilege(n.oid, 'USAGE') AND n.nspname IN (`+searchPathSQL+`) LIMIT 1`).Scan(&schema)
	if err != nil { // none (ErrNoRows), or the question failed: as before
		return nil
	}
	role, _ := who(ctx, c)
	return &readDenied{role: role, schema: schema, msg: fmt.Sprintf("no USAGE on schema %s, which holds the catalog", schema)}
}

func schemaVersion(ctx context.Context, c *pgx.Conn) (int, error) {
	var n int
	err := c.QueryRow(ctx, `SELECT COALESCE(max(version), 0) FROM schema_version`).Scan(&n)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "42P01" { // undefined_table: a new database
		return 0, nil
	}
	return n, err
}

// step applies the next migration, from version n; done once the schema
// is current.
func (s *Store) step(ctx context.Context, c *pgx.Conn) (n int, done bool, err error) {
	err = pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT COALESCE(max(version), 0) FROM schema_version`).Scan(&n); err != nil {
			return err
		}
		if n > SchemaVersion {
			return catalog.Errorf(catalog.ErrSchema, "the catalog database has schema version %d; this lamina understands up to %d: upgrade lamina", n, SchemaVersion)
		}
		if n == SchemaVersion {
			done = true
			return nil
		}
		// Errors unwrapped: a permission error is told by migrate (denied),
		// once the transaction is over.
		if _, err := tx.Exec(ctx, migrations[n]); err != nil {
			return fmt.Errorf("schema migration %d→%d: %w", n, n+1, err)
		}
		if code := migrationCode[n]; code != nil {
			if err := code(ctx, tx); err != nil {
				return fmt.Errorf("schema migration %d→%d: %w", n, n+1, err)
			}
		}
		if _, err := tx.Exec(ctx, `DELETE FROM schema_version`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO schema_version (version) VALUES ($1)`, n+1)
		if err == nil {
			s.log.Info("catalog: schema migrated", "from", n, "to", n+1)
		}
		return err
	})
	return n, done, err
}
