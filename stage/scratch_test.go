package stage_test

import (
	"testing"

	"github.com/lamina-bio/lamina/stage"
)

func TestDefaultScratch(t *testing.T) {
	s := stage.Scratch(stage.DefaultScratch)
	for _, p := range []string{".snakemake/log/x.log", "out/d/.snakemake_timestamp", "a/.notes.txt.swp", "a/.notes.txt.swo", ".notes.txt.swx", ".w.swpx", ".w~.swpx",
		"notes.txt~", ".#notes.txt", "#notes.txt#", ".nfs000123", "db/lab.db-journal", "lab.db-wal",
		"lab.sqlite-shm", "lab.sqlite3-journal", "r/.x~.rNAdI7", "..#x.Ab12Cd",
		"roads.gpkg-wal", "roads.gpkg-shm", "roads.gpkg-journal", "tiles.mbtiles-wal", "m.sqlitedb-journal",
		"a.db3-wal", "a.s3db-shm", "a.sl3-journal"} {
		if !s.Match(p) {
			t.Errorf("%s is not scratch", p)
		}
	}
	for _, p := range []string{"notes.txt", "a/notes.swp", "lab.db", "lab.sqlite3", "poetry.lock", "lab-journal",
		"lab.db-journal.csv", "#notes.txt", "w.swpx", ".w.swpxy", "snakemake/out.txt", "snakemake_timestamp",
		".x.rNAdI7", ".x~.rNAd-7", ".x~.rNAdI", "x~.rNAdI7",
		"roads.gpkg", "roads.gpkg-old", "tiles.mbtiles", "a.s3db", "a.sl3-wal.csv"} {
		if s.Match(p) {
			t.Errorf("%s is scratch", p)
		}
	}
}
