package postgres_test

import (
	"context"
	"encoding/json"
	"testing"
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
