package main

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// statGone reads "ENOENT" while p does not resolve, else its bytes.
func statGone(p string) func() (string, error) {
	return func() (string, error) {
		b, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			return "ENOENT", nil
		}
		return string(b), err
	}
}

// A key renamed to a backup name and written again on one workstation
// keeps its history there (stage.Stage's takeBack); the other mount,
// whose kernel held the backup's version names, sees the names as they
// are now. The window is the renaming daemon's: a key renamed away on one
// workstation and written on the other starts a new history, which the
// first daemon leaves alone when it writes the key later.
func TestRenameAwayTwoWorkstations(t *testing.T) {
	_, _, _, a, b := team(t)
	ma, mb := filepath.Join(a.dir, "mnt"), filepath.Join(b.dir, "mnt")
	a.mount(ma)
	b.mount(mb)
	const limit = 30 * time.Second
	write := func(p, s string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rename := func(from, to string) {
		t.Helper()
		if err := os.Rename(from, to); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(ma, "r"), 0o755)
	write(filepath.Join(ma, "r/cfg.txt"), "x=1\n")
	write(filepath.Join(ma, "r/cfg.txt"), "x=2\n")
	waitFor(t, "ben sees cfg.txt@v2", limit, readString(filepath.Join(mb, "r/cfg.txt@v2")), "x=2\n")
	rename(filepath.Join(ma, "r/cfg.txt"), filepath.Join(ma, "r/cfg.txt.bak"))
	waitFor(t, "ben sees the history under cfg.txt.bak", limit, readString(filepath.Join(mb, "r/cfg.txt.bak@v2")), "x=2\n")
	waitFor(t, "ben reads cfg.txt.bak@v1", limit, readString(filepath.Join(mb, "r/cfg.txt.bak@v1")), "x=1\n")
	write(filepath.Join(ma, "r/cfg.txt"), "x=3\n")
	for _, c := range []struct{ name, want string }{
		{"r/cfg.txt@v1", "x=1\n"}, {"r/cfg.txt@v2", "x=2\n"}, {"r/cfg.txt@v3", "x=3\n"}, {"r/cfg.txt", "x=3\n"},
		{"r/cfg.txt.bak@v1", "x=2\n"}, {"r/cfg.txt.bak@v2", "ENOENT"}, {"r/cfg.txt.bak", "x=2\n"},
	} {
		for _, m := range []string{ma, mb} {
			waitFor(t, c.name, limit, statGone(filepath.Join(m, c.name)), c.want)
		}
	}

	// Renamed away on ben's mount, written on ana's: a new history at g,
	// which ben's next write continues; g.bak keeps its own.
	write(filepath.Join(mb, "r/g"), "1\n")
	rename(filepath.Join(mb, "r/g"), filepath.Join(mb, "r/g.bak"))
	waitFor(t, "ana sees g.bak", limit, readString(filepath.Join(ma, "r/g.bak@v1")), "1\n")
	waitFor(t, "ana sees g gone", limit, statGone(filepath.Join(ma, "r/g")), "ENOENT")
	write(filepath.Join(ma, "r/g"), "2\n")
	waitFor(t, "ben sees ana's g", limit, readString(filepath.Join(mb, "r/g@v1")), "2\n")
	write(filepath.Join(mb, "r/g"), "3\n")
	for _, c := range []struct{ name, want string }{
		{"r/g@v1", "2\n"}, {"r/g@v2", "3\n"}, {"r/g.bak@v1", "1\n"}, {"r/g.bak", "1\n"},
	} {
		for _, m := range []string{ma, mb} {
			waitFor(t, c.name, limit, statGone(filepath.Join(m, c.name)), c.want)
		}
	}
}
