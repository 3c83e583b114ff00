package fs_test

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/instance"
)

// A key renamed to a scratch name (an editor's or cp's backup) and back
// keeps its mode, as a rename in a local folder does: the scratch copy was
// made 0644, and `mv run.sh run.sh~; mv run.sh~ run.sh` left a script
// that could not run, and a 0444 file writable.
func TestRenameToScratchKeepsMode(t *testing.T) {
	w := newWorld(t)
	w.mountRW()
	perm := func(name string) fs.FileMode {
		t.Helper()
		fi, err := os.Stat(w.p(name))
		if err != nil {
			t.Fatal(err)
		}
		return fi.Mode().Perm()
	}
	w.sh(`mkdir m && printf '#!/bin/sh\necho ok\n' > m/run.sh && chmod 755 m/run.sh && mv m/run.sh m/run.sh~`)
	if got := perm("m/run.sh~"); got != 0o755 {
		t.Fatalf("m/run.sh~ after mv m/run.sh m/run.sh~: %v, want 0755", got)
	}
	w.sh(`mv m/run.sh~ m/run.sh`)
	if got := perm("m/run.sh"); got != 0o755 {
		t.Fatalf("m/run.sh after the rename back: %v, want 0755", got)
	}
	if out, err := exec.Command(w.p("m/run.sh")).CombinedOutput(); err != nil || string(out) != "ok\n" {
		t.Fatalf("m/run.sh after the rename back: %q, %v", out, err)
	}
	if vs := w.versions("m/run.sh"); len(vs) != 1 || vs[0].Mode != 0o755 {
		t.Fatalf("m/run.sh after the rename back: %+v; want v1 alone, mode 0755", vs)
	}

	// A read-only file comes back read-only (and its backup is replaced
	// by the next one, as rename(2) replaces it).
	w.sh(`printf 'ro\n' > m/ro.txt && chmod 444 m/ro.txt && mv m/ro.txt m/ro.txt~`)
	if got := perm("m/ro.txt~"); got != 0o444 {
		t.Fatalf("m/ro.txt~: %v, want 0444", got)
	}
	w.sh(`mv m/ro.txt~ m/ro.txt && mv m/ro.txt m/ro.txt~ && mv m/ro.txt~ m/ro.txt`)
	if got := perm("m/ro.txt"); got != 0o444 {
		t.Fatalf("m/ro.txt after the renames back: %v, want 0444", got)
	}
	if vs := w.versions("m/ro.txt"); len(vs) != 1 || vs[0].Mode != 0o444 {
		t.Fatalf("m/ro.txt after the renames back: %+v; want v1 alone, mode 0444", vs)
	}

	// cp --backup=simple renames the file it copies over to NAME~.
	w.sh(`printf 'one\n' > m/s.txt && chmod 750 m/s.txt && printf 'two\n' > m/src && cp --backup=simple m/src m/s.txt`)
	if got := perm("m/s.txt~"); got != 0o750 {
		t.Fatalf("m/s.txt~ of cp --backup=simple: %v, want 0750", got)
	}
	if got := string(w.read("m/s.txt~")); got != "one\n" {
		t.Fatalf("m/s.txt~ = %q", got)
	}

	// vim with backups on renames the file to NAME~ and writes it anew.
	if _, err := exec.LookPath("vim"); err != nil {
		t.Log("no vim: its backup is not tried")
		return
	}
	w.sh(`printf 'a\n' > m/v.txt && chmod 600 m/v.txt && vim -u NONE -i NONE -N -es -c 'set backup backupskip=' -c 's/a/b/' -c 'wq' m/v.txt`)
	if got := perm("m/v.txt~"); got != 0o600 {
		t.Fatalf("vim's backup m/v.txt~: %v, want 0600", got)
	}
	if got := string(w.read("m/v.txt")); got != "b\n" {
		t.Fatalf("m/v.txt after vim = %q", got)
	}
}

// readEventually waits (waitFor) for name to read want, and fails with
// what it read last.
func (w *world) readEventually(name, want string) {
	w.t.Helper()
	var got string
	var err error
	waitFor(func() bool {
		var b []byte
		b, err = os.ReadFile(w.p(name))
		got = string(b)
		return err == nil && got == want
	})
	if err != nil || got != want {
		w.t.Fatalf("%s = %q, %v; want %q", name, got, err, want)
	}
}

// goneEventually waits (waitFor) for name not to resolve.
func (w *world) goneEventually(name string) {
	w.t.Helper()
	var err error
	waitFor(func() bool { _, err = os.Stat(w.p(name)); return errors.Is(err, fs.ErrNotExist) })
	if !errors.Is(err, fs.ErrNotExist) {
		w.t.Fatalf("stat %s: %v; want ENOENT", name, err)
	}
}

// A key renamed to a free name that is not scratch (a backup: perl -i.bak,
// sed -i.bak, mv f f.bak, Python's os.replace) and written again at once
// keeps its history: the edit is its next version and name@vN reads what
// it read, while the backup is a new artifact of one version with the old
// content. The artifact moved to the backup with its versions, and the
// name started again at v1: cfg.txt@v1 read the edit.
func TestRenameAwayThenWriteKeepsHistory(t *testing.T) {
	w := newWorld(t)
	w.mountRW()
	t.Setenv("T", t.TempDir())
	type tc struct {
		name, tool, script string
	}
	cases := []tc{
		{"sed", "sed", `sed -i.bak 's/2/3/' "$K"`},
		{"mv", "", `mv "$K" "$K.bak" && printf 'x=3\n' > "$K"`},
		{"mv-onto", "", `printf 'x=3\n' > "$T/new" && mv "$K" "$K.bak" && mv "$T/new" "$K"`},
		{"python-write", "python3", `python3 -c 'import os, sys; k = sys.argv[1]; os.replace(k, k + ".bak"); open(k, "w").write("x=3\n")' "$K"`},
		{"python-replace", "python3", `python3 -c 'import os, sys; k = sys.argv[1]; open(k + ".tmp", "w").write("x=3\n"); os.replace(k, k + ".bak"); os.replace(k + ".tmp", k)' "$K"`},
		{"perl", "perl", `perl -pi.bak -e 's/2/3/' "$K"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pt := w.t
			w.t = t
			defer func() { w.t = pt }()
			if c.tool != "" {
				if _, err := exec.LookPath(c.tool); err != nil {
					t.Logf("no %s: not tried", c.tool)
					return
				}
			}
			k := c.name + "/cfg.txt"
			t.Setenv("K", k)
			w.sh(`mkdir "$(dirname "$K")" && printf 'x=1\n' > "$K" && printf 'x=2\n' > "$K" && chmod 640 "$K" && cat "$K@v1" > /dev/null`)
			w.sh(c.script)
			w.wantVersions(k, []int{1, 2, 3}, nil)
			w.readEventually(k+"@v1", "x=1\n")
			w.readEventually(k+"@v2", "x=2\n")
			w.readEventually(k+"@v3", "x=3\n")
			w.readEventually(k, "x=3\n")
			w.wantVersions(k+".bak", []int{1}, nil)
			w.readEventually(k+".bak", "x=2\n")
			w.readEventually(k+".bak@v1", "x=2\n")
			w.goneEventually(k + ".bak@v2")
			vs, bak := w.versions(k), w.versions(k+".bak")
			if bak[0].Manifest != vs[1].Manifest || bak[0].Mode != vs[1].Mode || !bak[0].Mtime.Equal(vs[1].Mtime) {
				t.Fatalf("%s.bak@v1 %+v; want the manifest, mode and mtime of %s@v2 %+v", k, bak[0], k, vs[1])
			}
			if bak[0].UID[:16] == vs[0].UID[:16] {
				t.Fatalf("%s.bak is of %s's artifact", k, k)
			}
			if tk := w.trashKeys(); len(tk) != 0 {
				t.Fatalf("the trash: %v", tk)
			}
		})
	}
}

// What the kernel cached of the backup's names while it held the history
// (backup@vN, its sidecar) goes when the history goes back; the second
// backup of a key (sed -i.bak again: the key renamed onto the first
// backup) keeps the key's history too; a rename away with no new file at
// the name, or back, moves the history as before; and a temporary renamed
// onto a free key and written again stays a temporary.
func TestRenameAwayCases(t *testing.T) {
	w := newWorld(t)
	w.mountRW()
	w.sh(`mkdir a && printf 'x=1\n' > a/f && printf 'x=2\n' > a/f && mv a/f a/f.bak && cat a/f.bak@v1 a/f.bak@v2 a/f.bak.meta > /dev/null`)
	w.sh(`printf 'x=3\n' > a/f`)
	w.readEventually("a/f.bak@v1", "x=2\n")
	w.goneEventually("a/f.bak@v2")
	w.readEventually("a/f@v1", "x=1\n")
	w.wantVersions("a/f", []int{1, 2, 3}, nil)
	bak := w.versions("a/f.bak")
	if len(bak) != 1 {
		t.Fatalf("a/f.bak: %+v", bak)
	}
	var uid string
	waitFor(func() bool {
		var side struct {
			UID string `json:"uid"`
		}
		b, err := os.ReadFile(w.p("a/f.bak.meta"))
		uid = ""
		if err == nil && json.Unmarshal(b, &side) == nil {
			uid = side.UID
		}
		return uid == bak[0].UID
	})
	if uid != bak[0].UID {
		t.Fatalf("a/f.bak.meta shows uid %q after the history went back; want %q", uid, bak[0].UID)
	}

	// sed -i.bak again: f is renamed onto f.bak (its versions to the
	// trash, by the rename), then f is written: they come back.
	w.sh(`printf 'x=4\n' > a/new && mv a/f a/f.bak && mv a/new a/f`)
	w.wantVersions("a/f", []int{1, 2, 3, 4}, nil)
	w.wantVersions("a/f.bak", []int{1, 2}, nil)
	w.readEventually("a/f@v1", "x=1\n")
	w.readEventually("a/f.bak", "x=3\n")
	if tk := w.trashKeys(); len(tk) != 0 {
		t.Fatalf("the trash: %v", tk)
	}

	// mv f g alone: g has the history; mv g f back: f has it.
	w.sh(`mkdir b && printf '1\n' > b/f && printf '2\n' > b/f && mv b/f b/g`)
	w.wantVersions("b/g", []int{1, 2}, nil)
	w.wantVersions("b/f", nil, nil)
	w.sh(`mv b/g b/f`)
	w.wantVersions("b/f", []int{1, 2}, nil)
	w.wantVersions("b/g", nil, nil)
	// g written then is a file of its own: f keeps the history.
	w.sh(`printf 'g\n' > b/g`)
	w.wantVersions("b/f", []int{1, 2}, nil)
	w.wantVersions("b/g", []int{1}, nil)

	// The target written since (an append) or renamed on keeps the
	// history: the name written again starts a new one, as before.
	w.sh(`mkdir d && printf '1\n' > d/f && mv d/f d/g && printf 'more\n' >> d/g && printf 'new\n' > d/f`)
	w.wantVersions("d/g", []int{1, 2}, nil)
	w.wantVersions("d/f", []int{1}, nil)
	w.readEventually("d/f@v1", "new\n")
	w.sh(`printf '1\n' > d/a && mv d/a d/b && mv d/b d/c && printf 'new\n' > d/a`)
	w.wantVersions("d/c", []int{1}, nil)
	w.readEventually("d/c", "1\n")
	w.readEventually("d/a", "new\n")

	// A file this mount made, backed up onto a backup that exists (sed
	// -i.bak with an old j.bak; audit c5): it is no temporary, so its
	// history comes back with the edit, not purged as a temporary's.
	w.sh(`mkdir e && printf 'y1\n' > e/j && printf 'y0\n' > e/j.bak && printf 'Q1\n' > e/new && mv e/j e/j.bak && mv e/new e/j`)
	w.wantVersions("e/j", []int{1, 2}, nil)
	w.readEventually("e/j@v1", "y1\n")
	w.readEventually("e/j", "Q1\n")
	w.wantVersions("e/j.bak", []int{1, 2}, nil)
	w.readEventually("e/j.bak", "y1\n")
	w.sh(`printf 'r1\n' > e/r && printf 'r2\n' > e/r && printf 'r0\n' > e/r.bak && python3 -c "import os; os.replace('e/r', 'e/r.bak'); open('e/r', 'w').write('r3\\n')"`)
	w.wantVersions("e/r", []int{1, 2, 3}, nil)
	w.readEventually("e/r@v1", "r1\n")
	w.readEventually("e/r", "r3\n")

	// A temporary renamed onto a free key, then written and renamed
	// again: out keeps its artifact, out.tmp leaves nothing.
	w.sh(`mkdir c && printf 'a\n' > c/out.tmp && mv c/out.tmp c/out && printf 'b\n' > c/out.tmp && mv c/out.tmp c/out`)
	w.wantVersions("c/out", []int{1, 2}, nil)
	w.wantVersions("c/out.tmp", nil, nil)
	if tk := w.trashKeys(); len(tk) != 0 {
		t.Fatalf("the trash: %v", tk)
	}
}

// A name written again after the window starts a new history: the
// rename's target keeps the one it was given, as before.
func TestRenameAwayAfterWindowMovesHistory(t *testing.T) {
	w := newWorld(t)
	const window = 300 * time.Millisecond
	w.mountRWWindow(window)
	w.sh(`mkdir u && printf '1\n' > u/f && printf '2\n' > u/f && mv u/f u/f.bak`)
	time.Sleep(window + window/4)
	w.sh(`printf '3\n' > u/f`)
	w.wantVersions("u/f.bak", []int{1, 2}, nil)
	w.wantVersions("u/f", []int{1}, nil)
	w.readEventually("u/f.bak@v1", "1\n")
}

// A rename to another folder or to an unrelated name is a move, whatever
// the file's past: the name written again at once starts a new history and
// the target keeps the old one, with its annotations. Only a backup's name
// (backupName: f.bak, .f.bak in f's folder) takes the history back. `mv
// q4/data.csv q4/archive/data.csv`, then a new q4/data.csv, made
// archive/data.csv a new v1 and left the label on q4/data.csv@v2, so
// searching for it no longer found the archived data (audit c1); a file
// the mount had written once kept its history at archive/.
func TestRenameAwayMoveKeepsHistoryAtTarget(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	src := filepath.Join(w.tmp, "src", "data.csv")
	os.MkdirAll(filepath.Dir(src), 0o755)
	save := func(data string) catalog.Version {
		t.Helper()
		if err := os.WriteFile(src, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		res, err := w.in.Save(ctx, []instance.SaveItem{{Path: src, Key: "q4/data.csv"}}, instance.SaveOptions{Description: "batch 1 counts"})
		if err != nil {
			t.Fatal(err)
		}
		return res[0].Saved.Version
	}
	save("a,b\n1,1\n")
	v2 := save("a,b\n2,2\n")
	if _, err := w.cat.CreateLabel(ctx, catalog.Label{Name: "final-2025"}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.cat.Annotate(ctx, v2.UID, catalog.Annotations{Labels: []string{"final-2025"}}); err != nil {
		t.Fatal(err)
	}
	w.mountRW()
	w.sh(`mkdir q4/archive && mv q4/data.csv q4/archive/data.csv && printf 'a,b\n9,9\n' > q4/data.csv`)
	w.wantVersions("q4/archive/data.csv", []int{1, 2}, nil)
	w.wantVersions("q4/data.csv", []int{1}, nil)
	w.readEventually("q4/archive/data.csv@v1", "a,b\n1,1\n")
	w.readEventually("q4/archive/data.csv", "a,b\n2,2\n")
	w.readEventually("q4/data.csv@v1", "a,b\n9,9\n")
	found, err := w.cat.Find(ctx, catalog.Filter{Labels: []string{"final-2025"}, AllVersions: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 1 || found[0].UID != v2.UID || found[0].Key != "q4/archive/data.csv" {
		t.Fatalf("versions labelled final-2025: %+v; want %s at q4/archive/data.csv", found, v2.UID)
	}

	// Files the mount wrote, of one version or more: a move to another
	// folder (a backup's name there too) or to another name in the folder
	// keeps the history at the target; a hidden backup in the folder
	// takes it back.
	w.sh(`mkdir m m/old && for f in a b c e h; do printf '1\n' > m/$f; done && for f in a c e h; do printf '2\n' > m/$f; done`)
	w.sh(`mv m/a m/old/a && mv m/b m/old/b && mv m/c m/d && mv m/e m/old/e.bak && mv m/h m/.h.bak && for f in a b c e h; do printf 'new\n' > m/$f; done`)
	for _, c := range []struct {
		key        string
		live       []int
		latest, v1 string
	}{
		{"m/old/a", []int{1, 2}, "2\n", "1\n"},
		{"m/old/b", []int{1}, "1\n", "1\n"},
		{"m/d", []int{1, 2}, "2\n", "1\n"},
		{"m/old/e.bak", []int{1, 2}, "2\n", "1\n"},
		{"m/a", []int{1}, "new\n", "new\n"},
		{"m/b", []int{1}, "new\n", "new\n"},
		{"m/c", []int{1}, "new\n", "new\n"},
		{"m/e", []int{1}, "new\n", "new\n"},
		{"m/h", []int{1, 2, 3}, "new\n", "1\n"},
		{"m/.h.bak", []int{1}, "2\n", "2\n"},
	} {
		w.wantVersions(c.key, c.live, nil)
		w.readEventually(c.key, c.latest)
		w.readEventually(c.key+"@v1", c.v1)
	}
	if tk := w.trashKeys(); len(tk) != 0 {
		t.Fatalf("the trash: %v", tk)
	}
}
