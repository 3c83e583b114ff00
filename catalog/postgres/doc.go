// Package postgres is the PostgreSQL catalog: one database shared by the
// mounts and CLIs of many workstations (DESIGN §7). It implements
// catalog.Catalog with the rules of the bbolt store and passes the same
// conformance suite (catalog/catalogtest).
//
// Concepts:
//
//   - Schema: tables created and migrated on Open (schema.go); a database
//     whose schema_version is newer than SchemaVersion is refused with
//     catalog.ErrSchema. Keys are COLLATE "C" so that order and prefix
//     ranges are byte order, as in bbolt.
//   - Transactions: every call is one transaction. Writes that change keys
//     run READ COMMITTED after taking advisory locks on their keys
//     (exclusive) and the folders above (shared), so writes of overlapping
//     keys take turns and others run side by side; other writes run
//     SERIALIZABLE. All are retried from the start on a serialization
//     failure or deadlock, so the database alone decides version numbers
//     and two workstations never assign the same one. A lost connection
//     is retried before COMMIT was sent (writes) or once (reads); a write
//     whose COMMIT answer was lost is looked up by transaction id, never
//     run again (lost.go).
//   - Changes: a write NOTIFYs the keys it changed when it commits and logs
//     them in the changes table; Listen passes other stores' changes on (a
//     mount drops its kernel caches) and, after a lost connection, catches
//     up from the log before it listens again.
//   - Reads: ByKey, ByUID, Children and List are single statements, one
//     round trip each, without an explicit transaction. While Listen runs
//     (a mount daemon), ByKey and Children are answered from a lookup
//     cache that changes invalidate by key (lookups.go); a read marked
//     catalog.Fresh bypasses it.
//   - Roles: PostgreSQL decides who writes. A role without write privileges
//     gets ErrReadOnly (matching fs.ErrPermission); Writable tells ahead.
//   - Passwords never appear in URLs this package returns (Redact): they
//     come from PGPASSWORD or the pgpass file, as for psql.
package postgres
