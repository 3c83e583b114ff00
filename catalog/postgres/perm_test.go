package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"strings"
	"testing"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/catalog/catalogtest"
	"github.com/lamina-bio/lamina/catalog/postgres"
	"github.com/lamina-bio/lamina/catalog/postgres/pgtest"
)

// newRole makes a role named prefix_schema with the grants given (SQL
// with %s for the role and SCHEMA for the schema), dropped when t ends.
func newRole(t *testing.T, u, prefix, grants string) string {
	t.Helper()
	schema := schemaOf(t, u)
	role := prefix + "_" + schema
	pgtest.Exec(t, u, `CREATE ROLE `+role+` NOLOGIN`)
	t.Cleanup(func() { pgtest.Exec(t, pgtest.Base(t), `DROP OWNED BY `+role+`; DROP ROLE `+role) })
	if grants != "" {
		pgtest.Exec(t, u, strings.ReplaceAll(strings.ReplaceAll(grants, "%s", role), "SCHEMA_", schema))
	}
	return role
}

// Each permission error says what was denied and which grant is needed
// (audit c7): every 42501 was ErrReadOnly with "GRANT INSERT, UPDATE,
// DELETE", a denied write of settings said the role "may not read" it,
// and a role with no rights met the bare server error at Open.
func TestPermissionErrorsNameTheGrant(t *testing.T) {
	ctx := context.Background()
	u := pgtest.URL(t)
	owner := open2(t, u)
	if _, err := owner.Save(ctx, []catalog.NewVersion{catalogtest.NV("a/b", "1")}); err != nil {
		t.Fatal(err)
	}
	if err := owner.SetSetting(ctx, postgres.InstanceSetting, json.RawMessage(`{"id":"a"}`)); err != nil {
		t.Fatal(err)
	}
	schema := schemaOf(t, u)
	as := func(role string, o postgres.Options) (*postgres.Store, error) {
		s, err := postgres.Open(ctx, pgtest.WithParam(u, "role", role), o)
		if err == nil {
			t.Cleanup(func() { s.Close() })
		}
		return s, err
	}
	check := func(what string, err error, kind error, has ...string) {
		t.Helper()
		if !errors.Is(err, kind) || !errors.Is(err, fs.ErrPermission) {
			t.Errorf("%s: %v; want %v", what, err, kind)
			return
		}
		for _, h := range has {
			if !strings.Contains(err.Error(), h) {
				t.Errorf("%s: %v; want it to say %q", what, err, h)
			}
		}
		if kind != postgres.ErrReadOnly && strings.Contains(err.Error(), "GRANT INSERT") {
			t.Errorf("%s: %v; asks for write access", what, err)
		}
	}

	t.Run("no rights", func(t *testing.T) {
		role := newRole(t, u, "none", "")
		for _, existing := range []bool{true, false} {
			_, err := as(role, postgres.Options{Existing: existing})
			check("open", err, postgres.ErrReadDenied, "GRANT USAGE ON SCHEMA "+schema+" TO "+role, "GRANT SELECT ON ALL TABLES IN SCHEMA "+schema+" TO "+role)
			if errors.Is(err, postgres.ErrNoCatalog) {
				t.Errorf("open (existing %v): %v", existing, err)
			}
		}
	})
	t.Run("usage only", func(t *testing.T) {
		role := newRole(t, u, "usage", `GRANT USAGE ON SCHEMA SCHEMA_ TO %s`)
		_, err := as(role, postgres.Options{Existing: true})
		check("open", err, postgres.ErrReadDenied, "GRANT SELECT ON ALL TABLES IN SCHEMA "+schema+" TO "+role)
	})
	t.Run("a table not readable", func(t *testing.T) {
		role := newRole(t, u, "part", `GRANT USAGE ON SCHEMA SCHEMA_ TO %s; GRANT SELECT ON ALL TABLES IN SCHEMA SCHEMA_ TO %s; REVOKE SELECT ON versions, artifacts FROM %s`)
		s, err := as(role, postgres.Options{Existing: true})
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.ByKey(ctx, "a/b", 0)
		check("read", err, postgres.ErrReadDenied, "may not read", "GRANT SELECT ON ALL TABLES IN SCHEMA "+schema+" TO "+role)
	})
	t.Run("reader writes settings", func(t *testing.T) {
		role := newRole(t, u, "reader", `GRANT USAGE ON SCHEMA SCHEMA_ TO %s; GRANT SELECT ON ALL TABLES IN SCHEMA SCHEMA_ TO %s`)
		s, err := as(role, postgres.Options{Existing: true, Instance: "a"})
		if err != nil {
			t.Fatal(err)
		}
		err = s.SetSetting(ctx, "scratch", json.RawMessage(`["foo"]`))
		check("write of a setting", err, postgres.ErrReadOnly, "GRANT INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "+schema+" TO "+role)
		if errors.Is(err, postgres.ErrSettingsDenied) || strings.Contains(err.Error(), "may not read") {
			t.Errorf("write of a setting: %v; the role may read settings", err)
		}
		_, err = s.Save(ctx, []catalog.NewVersion{catalogtest.NV("a/b", "2")})
		check("save", err, postgres.ErrReadOnly, "GRANT INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "+schema+" TO "+role)
		check("CheckWritable", s.CheckWritable(ctx), postgres.ErrReadOnly, "database role "+role)
	})
	t.Run("may not create", func(t *testing.T) {
		empty := pgtest.URL(t) // init --db in a schema where the role may not create
		role := newRole(t, empty, "nocreate", `GRANT USAGE ON SCHEMA SCHEMA_ TO %s`)
		_, err := postgres.Open(ctx, pgtest.WithParam(empty, "role", role), postgres.Options{})
		check("create", err, postgres.ErrCreateDenied, "GRANT USAGE, CREATE ON SCHEMA "+schemaOf(t, empty)+" TO "+role)
	})
}
