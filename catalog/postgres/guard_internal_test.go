package postgres

import (
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// A permission error on the settings table is told by its SQLSTATE and
// the table it names, whatever the language of the server's messages
// (lc_messages): it was matched by the English text, and a server set to
// German answered with the advice for a role that may not write. The
// messages are PostgreSQL 15's translations (postgres-15.mo).
func TestSettingsDeniedErr(t *testing.T) {
	for _, tc := range []struct {
		name string
		pe   pgconn.PgError
		want bool
	}{
		{"en", pgconn.PgError{Code: "42501", Message: "permission denied for table settings"}, true},
		{"en view", pgconn.PgError{Code: "42501", Message: "permission denied for view settings"}, true},
		{"de", pgconn.PgError{Code: "42501", Message: "keine Berechtigung für Tabelle settings"}, true},
		{"fr", pgconn.PgError{Code: "42501", Message: "droit refusé pour la table settings"}, true},
		{"ja", pgconn.PgError{Code: "42501", Message: "テーブル settings へのアクセスが拒否されました"}, true},
		{"table field", pgconn.PgError{Code: "42501", Message: "denied", TableName: "settings"}, true},
		{"another table", pgconn.PgError{Code: "42501", Message: "permission denied for table versions"}, false},
		{"another table, de", pgconn.PgError{Code: "42501", Message: "keine Berechtigung für Tabelle versions"}, false},
		{"a longer name", pgconn.PgError{Code: "42501", Message: "keine Berechtigung für Tabelle settings_old"}, false},
		{"table field, another", pgconn.PgError{Code: "42501", Message: "denied settings", TableName: "versions"}, false},
		{"another error", pgconn.PgError{Code: "42P01", Message: `relation "settings" does not exist`}, false},
	} {
		if got := settingsDeniedErr(&tc.pe); got != tc.want {
			t.Errorf("%s: %q → %v, want %v", tc.name, tc.pe.Message, got, tc.want)
		}
	}
}

// "relation settings does not exist" is told in any language too.
func TestSettingsUnseen(t *testing.T) {
	for _, tc := range []struct {
		msg  string
		want bool
	}{
		{`relation "settings" does not exist`, true},
		{`Relation »settings« existiert nicht`, true},
		{`la relation « settings » n'existe pas`, true},
		{`リレーション"settings"は存在しません`, true},
		{`relation "settings_old" does not exist`, false},
		{`Relation »versions« existiert nicht`, false},
	} {
		if got := settingsUnseen(&pgconn.PgError{Code: "42P01", Message: tc.msg}); got != tc.want {
			t.Errorf("%q → %v, want %v", tc.msg, got, tc.want)
		}
	}
}
