package stage

import "testing"

// Only a backup's name takes a key's history back when the key is written
// again (takeBack): a move to another folder or another name keeps the
// history at the target, with its annotations.
func TestBackupName(t *testing.T) {
	for _, c := range []struct {
		from, to string
		want     bool
	}{
		{"q4/f.csv", "q4/f.csv.bak", true},
		{"q4/f.csv", "q4/f.csv.orig", true},
		{"q4/f.csv", "q4/f.csv.old", true},
		{"q4/f.csv", "q4/f.csv.2026-11-28", true},
		{"q4/f.csv", "q4/f.csv_old", true},
		{"q4/f.csv", "q4/f.csv.~1~", true},
		{"q4/f.csv", "q4/f.csv___jb_old___", true},
		{"q4/f.csv", "q4/.f.csv.bak", true},
		{"q4/f.csv", "q4/.f.csv~", true},
		{"f", "f.bak", true},
		{".env", ".env.bak", true},
		{"q4/f.csv", "q4/archive/f.csv", false}, // another folder
		{"q4/f.csv", "q4/archive/f.csv.bak", false},
		{"q4/f.csv", "f.csv.bak", false},
		{"q4/f.csv", "q4/g.csv", false}, // another name
		{"q4/f.csv", "q4/f.csv2", false},
		{"q4/f", "q4/fold", false},
		{"q4/f", "q4/f", false},
		{"q4/f", "q4/.f", false},
		{"q4/.env", "q4/..env.bak", false},
		{"q4/f", "q4/x.f.bak", false},
		{"q4/f.csv", "q4/f", false},
	} {
		if got := backupName(c.from, c.to); got != c.want {
			t.Errorf("backupName(%q, %q) = %v, want %v", c.from, c.to, got, c.want)
		}
	}
}
