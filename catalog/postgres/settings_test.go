package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/catalog/catalogtest"
	"github.com/lamina-bio/lamina/catalog/postgres"
	"github.com/lamina-bio/lamina/catalog/postgres/pgtest"
)

// AddSetting does not overwrite another writer's setting, and
// DeleteSettingIf removes only the value the caller stored: an init that
// fails undoes its own registration, never one another workstation's init
// made meanwhile.
func TestAddAndDeleteSettingIf(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	mine, theirs := json.RawMessage(`{"id": "a", "name": "x"}`), json.RawMessage(`{"id":"b","name":"x"}`)
	if added, err := s.AddSetting(ctx, "instance", mine); err != nil || !added {
		t.Fatalf("add: %v, %v", added, err)
	}
	if added, err := s.AddSetting(ctx, "instance", theirs); err != nil || added {
		t.Fatalf("add over another's: %v, %v", added, err)
	}
	if deleted, err := s.DeleteSettingIf(ctx, "instance", theirs); err != nil || deleted {
		t.Fatalf("delete of a value not stored: %v, %v", deleted, err)
	}
	if deleted, err := s.DeleteSettingIf(ctx, "instance", json.RawMessage(`{"name":"x","id":"a"}`)); err != nil || !deleted {
		t.Fatalf("delete of the value stored: %v, %v", deleted, err)
	}
	if _, err := s.Setting(ctx, "instance"); err == nil {
		t.Fatal("still there")
	}
}

// With Options.Instance every write checks the settings row in its
// BEGIN's pipeline: one that names another instance, or none, fails the
// write (nothing commits) and every later one, and OnForeign is told once.
func TestInstanceGuard(t *testing.T) {
	ctx := context.Background()
	u := pgtest.URL(t)
	admin := open0(t, u, postgres.Options{})
	if err := admin.SetSetting(ctx, postgres.InstanceSetting, json.RawMessage(`{"id":"a"}`)); err != nil {
		t.Fatal(err)
	}
	told := 0
	s := open0(t, u, postgres.Options{Instance: "a", OnForeign: func(error) { told++ }})
	if err := s.SetSetting(ctx, "x", json.RawMessage(`1`)); err != nil {
		t.Fatalf("write with the row naming the instance: %v", err)
	}
	if err := admin.SetSetting(ctx, postgres.InstanceSetting, json.RawMessage(`{"id":"b"}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.SetSetting(ctx, "x", json.RawMessage(`2`)); !errors.Is(err, postgres.ErrForeign) || !errors.Is(err, catalog.ErrDamaged) {
		t.Fatalf("write with the row naming another instance: %v", err)
	}
	if raw, _ := admin.Setting(ctx, "x"); string(raw) != "1" {
		t.Fatalf("the refused write committed: %s", raw)
	}
	admin.SetSetting(ctx, postgres.InstanceSetting, json.RawMessage(`{"id":"a"}`))
	if err := s.SetSetting(ctx, "x", json.RawMessage(`3`)); !errors.Is(err, postgres.ErrForeign) || told != 1 || s.Foreign() == nil {
		t.Fatalf("write after a refusal: %v (told %d)", err, told)
	}
}

// Once latched foreign the store's reads fail too (ErrForeign): a mount
// answers EIO rather than list another instance's catalog as its own,
// even after the database names this instance again.
func TestInstanceGuardReads(t *testing.T) {
	ctx := context.Background()
	u := pgtest.URL(t)
	admin := open0(t, u, postgres.Options{})
	if err := admin.SetSetting(ctx, postgres.InstanceSetting, json.RawMessage(`{"id":"a"}`)); err != nil {
		t.Fatal(err)
	}
	s := open0(t, u, postgres.Options{Instance: "a"})
	if _, err := s.Children(ctx, ""); err != nil {
		t.Fatalf("read with the row naming the instance: %v", err)
	}
	admin.SetSetting(ctx, postgres.InstanceSetting, json.RawMessage(`{"id":"b"}`))
	if err := s.CheckInstance(ctx, nil); !errors.Is(err, postgres.ErrForeign) {
		t.Fatalf("check: %v", err)
	}
	admin.SetSetting(ctx, postgres.InstanceSetting, json.RawMessage(`{"id":"a"}`))
	reads := map[string]func() error{
		"Children": func() error { _, err := s.Children(ctx, ""); return err },
		"ByKey":    func() error { _, err := s.ByKey(ctx, "a.txt", 0); return err },
		"List":     func() error { _, err := s.List(ctx, catalog.Query{}); return err },
		"Versions": func() error { _, err := s.Versions(ctx, "a.txt", false); return err },
		"Setting":  func() error { _, err := s.Setting(ctx, "x"); return err },
	}
	for name, read := range reads {
		if err := read(); !errors.Is(err, postgres.ErrForeign) || !errors.Is(err, catalog.ErrDamaged) {
			t.Errorf("%s after the latch: %v", name, err)
		}
	}
}

func open0(t *testing.T, u string, o postgres.Options) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), u, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// A role that may write but not read the settings table cannot have its
// writes checked: they fail with the grant it lacks (SELECT ON settings),
// not with the advice for a role that may not write.
func TestInstanceGuardSettingsDenied(t *testing.T) {
	ctx := context.Background()
	u := pgtest.URL(t)
	schema := u[strings.Index(u, "search_path=")+len("search_path="):]
	admin := open0(t, u, postgres.Options{})
	if err := admin.SetSetting(ctx, postgres.InstanceSetting, json.RawMessage(`{"id":"a"}`)); err != nil {
		t.Fatal(err)
	}
	rw := "rw_" + schema
	pgtest.Exec(t, u, `CREATE ROLE `+rw+` NOLOGIN; GRANT USAGE ON SCHEMA `+schema+` TO `+rw+
		`; GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA `+schema+` TO `+rw+
		`; GRANT USAGE ON ALL SEQUENCES IN SCHEMA `+schema+` TO `+rw+
		`; REVOKE SELECT ON settings FROM `+rw)
	t.Cleanup(func() { pgtest.Exec(t, pgtest.Base(t), `DROP OWNED BY `+rw+`; DROP ROLE `+rw) })
	s := open0(t, pgtest.WithParam(u, "role", rw), postgres.Options{Instance: "a"})
	grant := "GRANT SELECT ON settings TO " + rw
	err := s.SetSetting(ctx, "x", json.RawMessage(`1`))
	if !errors.Is(err, postgres.ErrSettingsDenied) || !strings.Contains(err.Error(), grant) || strings.Contains(err.Error(), "GRANT INSERT") {
		t.Errorf("write: %v", err)
	}
	if err := s.CheckInstance(ctx, nil); !errors.Is(err, postgres.ErrSettingsDenied) || !strings.Contains(err.Error(), grant) {
		t.Errorf("check: %v", err)
	}
	if _, err := s.Setting(ctx, "x"); !errors.Is(err, postgres.ErrSettingsDenied) || !strings.Contains(err.Error(), grant) {
		t.Errorf("read: %v", err)
	}
	if s.Foreign() != nil {
		t.Errorf("latched foreign: %v", s.Foreign())
	}
}

// A settings table the connection does not see (renamed here; a role's
// search_path changed, audit 44) refuses the write, but does not latch
// the store: once the table is back in view, reads and writes work. It
// latched, and a mount stayed unreadable (EIO) until remounted.
func TestInstanceGuardSettingsUnseen(t *testing.T) {
	ctx := context.Background()
	u := pgtest.URL(t)
	admin := open0(t, u, postgres.Options{})
	if err := admin.SetSetting(ctx, postgres.InstanceSetting, json.RawMessage(`{"id":"a"}`)); err != nil {
		t.Fatal(err)
	}
	s := open0(t, u, postgres.Options{Instance: "a"})
	pgtest.Exec(t, u, `ALTER TABLE settings RENAME TO settings_away`)
	if err := s.SetSetting(ctx, "x", json.RawMessage(`1`)); !errors.Is(err, postgres.ErrForeign) {
		t.Fatalf("write without a settings table: %v", err)
	}
	if err := s.CheckInstance(ctx, nil); !errors.Is(err, postgres.ErrForeign) {
		t.Fatalf("check without a settings table: %v", err)
	}
	pgtest.Exec(t, u, `ALTER TABLE settings_away RENAME TO settings`)
	if s.Foreign() != nil {
		t.Fatalf("latched: %v", s.Foreign())
	}
	if err := s.SetSetting(ctx, "x", json.RawMessage(`2`)); err != nil {
		t.Fatalf("write with the table back: %v", err)
	}
	if _, err := s.Children(ctx, ""); err != nil {
		t.Fatalf("read with the table back: %v", err)
	}
}

// A newer lamina migrates the shared database while this store has it
// open (an old daemon on another workstation): every write checks the
// schema version in its BEGIN's pipeline, and from the first that finds
// it newer the store refuses writes (catalog.ErrUpgraded, which is
// ErrSchema) with what to do, tells OnUpgraded once, and commits nothing;
// reads go on. Before, the check was made at Open only, and the old
// daemon wrote the old way for as long as it ran. Both with and without
// Options.Instance (the CLI's store has none).
func TestSchemaUpgradedUnderStore(t *testing.T) {
	for _, instance := range []string{"a", ""} {
		t.Run("instance="+instance, func(t *testing.T) {
			ctx := context.Background()
			u := pgtest.URL(t)
			admin := open0(t, u, postgres.Options{})
			if err := admin.SetSetting(ctx, postgres.InstanceSetting, json.RawMessage(`{"id":"a"}`)); err != nil {
				t.Fatal(err)
			}
			told := 0
			s := open0(t, u, postgres.Options{Instance: instance, OnUpgraded: func(error) { told++ }})
			if _, err := s.Save(ctx, []catalog.NewVersion{catalogtest.NV("r1.txt", "1")}); err != nil {
				t.Fatalf("write at the schema it knows: %v", err)
			}
			pgtest.Exec(t, u, `UPDATE schema_version SET version = $1`, postgres.SchemaVersion+1)
			want := fmt.Sprintf("upgraded to schema %d by a newer lamina; upgrade lamina on this workstation", postgres.SchemaVersion+1)
			for i, write := range []func() error{
				func() error { _, err := s.Save(ctx, []catalog.NewVersion{catalogtest.NV("r2.txt", "2")}); return err },
				func() error { return s.SetSetting(ctx, "x", json.RawMessage(`1`)) },
			} {
				err := write()
				if !errors.Is(err, catalog.ErrUpgraded) || !errors.Is(err, catalog.ErrSchema) || !strings.Contains(err.Error(), want) {
					t.Fatalf("write %d after the upgrade: %v", i, err)
				}
			}
			if told != 1 || s.Upgraded() == nil {
				t.Fatalf("OnUpgraded told %d times, Upgraded %v", told, s.Upgraded())
			}
			if _, err := admin.ByKey(ctx, "r2.txt", 0); !errors.Is(err, catalog.ErrNotFound) {
				t.Fatalf("the refused save committed: %v", err)
			}
			if v, err := s.ByKey(ctx, "r1.txt", 0); err != nil || v.Version != 1 {
				t.Fatalf("read after the upgrade: %+v, %v", v, err)
			}
		})
	}
}
