package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/catalog/postgres/pgtest"
	"github.com/lamina-bio/lamina/instance"
)

// catalogOf opens the catalog of e's current instance (no daemon holds
// it) for fn: folders and links, which only a mount makes otherwise.
func catalogOf(t *testing.T, e *env, fn func(ctx context.Context, c catalog.Catalog) error) {
	t.Helper()
	dirs, err := instance.UserDirs()
	if err != nil {
		t.Fatal(err)
	}
	s, err := dirs.Current("")
	if err != nil {
		t.Fatal(err)
	}
	in, err := openSettings(context.Background(), s, false, false)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if err := fn(context.Background(), in.Catalog); err != nil {
		t.Fatal(err)
	}
}

// initOn makes e's instance with its catalog in bbolt or PostgreSQL.
func initOn(t *testing.T, e *env, cat string) {
	args := []string{"init", "--storage", e.path("storage"), "--name", "test"}
	if cat == "postgres" {
		args = append(args, "--db", pgtest.URL(t))
	}
	e.ok(args...)
}

// A trashed file restored at k, where a folder k was removed with what
// was under it (rm -r), takes the name: what was under the folder stays
// in the trash and cannot come back while k is a file. restore k says so,
// ls --trash marks it, restore PARENT/ restores the rest and reports it
// once (exit 1), never failing per name, and none of it is deleted; the
// commands it names resolve it. Before, restore PARENT/ failed on each
// name with "k is an artifact" every time, with no word of what to do.
func TestRestoreUnderFileReportsBlocked(t *testing.T) {
	for _, cat := range []string{"bolt", "postgres"} {
		t.Run(cat, func(t *testing.T) { restoreUnderFileReportsBlocked(t, cat) })
	}
}

func restoreUnderFileReportsBlocked(t *testing.T, cat string) {
	e := newEnv(t)
	initOn(t, e, cat)
	for _, k := range []string{"tree/k", "tree/k/x", "tree/other.csv"} {
		// tree/k/x after tree/k went to the trash: k is a folder now.
		e.ok("save", e.write("f", []byte(k+"\n")), "--key", k)
		e.ok("delete", k)
	}
	catalogOf(t, e, func(ctx context.Context, c catalog.Catalog) error {
		for _, k := range []string{"tree/k", "tree/k/sub"} {
			if err := c.MakeFolder(ctx, k); err != nil {
				return err
			}
		}
		if err := c.Symlink(ctx, "tree/k/ln", "x"); err != nil {
			return err
		}
		if err := c.RemoveLink(ctx, "tree/k/ln"); err != nil {
			return err
		}
		for _, k := range []string{"tree/k/sub", "tree/k"} { // rm -r tree/k
			if err := c.RemoveFolder(ctx, k); err != nil {
				return err
			}
		}
		return nil
	})
	const names = "3 names under tree/k/ (tree/k/ln, tree/k/sub/, tree/k/x) that cannot be restored while tree/k is a file"
	const fix = "`lamina delete --permanent tree/k/` deletes them for good; or move tree/k away (mv in a mount, or `lamina delete tree/k` to put it in the trash) and run `lamina restore tree/k/`"
	out, errs, err := e.run("restore", "tree/k")
	if err != nil || !strings.Contains(out, "restored tree/k (1 version)") || !strings.Contains(errs, names) || !strings.Contains(errs, fix) {
		t.Fatalf("restore tree/k: %v\n%s%s", err, out, errs)
	}

	out, errs, err = e.run("ls", "--trash")
	if err != nil || !strings.Contains(errs, "note: the trash holds "+names) {
		t.Fatalf("ls --trash: %v\n%s%s", err, out, errs)
	}
	var rows []struct {
		Key, Kind string
		BlockedBy string `json:"blocked_by"`
	}
	e.jsonOut(&rows, "ls", "--trash", "--format", "json")
	var got []string
	for _, r := range rows {
		got = append(got, r.Key+":"+r.Kind+":"+r.BlockedBy)
	}
	if want := "tree/k/ln:link:tree/k tree/k/sub:folder:tree/k tree/k/x::tree/k tree/other.csv::"; strings.Join(got, " ") != want {
		t.Fatalf("ls --trash --format json: %v; want %s", got, want)
	}

	// restore tree/ brings back what it can, and says once what a file
	// keeps out; again, it restores nothing and says the same.
	for i, restored := range []string{"restored tree/other.csv (1 version)\n", ""} {
		out, errs, err = e.run("restore", "tree/")
		if codeOf(err) != 1 || out != restored || strings.Count(errs, "lamina:") != 1 ||
			!strings.Contains(errs, "lamina: not restored: the trash holds "+names) ||
			!strings.Contains(explain(err), "3 names kept in the trash: a file holds the name of their folder") {
			t.Fatalf("restore tree/ (%d): exit %d %v\n%s%s", i, codeOf(err), err, out, errs)
		}
	}
	e.fails("tree/k/x cannot be restored while tree/k is a file, which holds its folder's name: `lamina delete --permanent tree/k/x` deletes it for good", "restore", "tree/k/x")

	// Every trashed version is still there; the file is moved out of the
	// way, and the folder comes back whole.
	e.ok("delete", "tree/k")
	out = e.ok("restore", "tree/k/")
	for _, w := range []string{"restored tree/k/x (1 version)", "restored tree/k/sub/ (folder)", "restored tree/k/ln (symbolic link)"} {
		if !strings.Contains(out, w) {
			t.Fatalf("restore tree/k/ after delete tree/k: %q lacks %q", out, w)
		}
	}
	if got := e.ok("get", "tree/k/x", "-o", "-"); got != "tree/k/x\n" {
		t.Fatalf("tree/k/x = %q", got)
	}
	if trash := e.ok("ls", "--trash"); !strings.Contains(trash, "tree/k ") || strings.Contains(trash, "tree/k/") {
		t.Fatalf("trash at the end:\n%s", trash)
	}
	// The other way round: the file, whose name the folder holds now.
	const other = "tree/k is a folder now (lamina ls tree/k/ lists it), which holds the trashed file's name: `lamina delete --permanent tree/k` deletes the file for good"
	e.fails(other, "restore", "tree/k")
	if _, errs, err := e.run("restore", "tree/"); codeOf(err) != 1 || !strings.Contains(errs, other) {
		t.Fatalf("restore tree/ with the file under the folder's name: exit %d\n%s", codeOf(err), errs)
	}
}

// restore C/ with nothing in the trash under C/, where a move took the
// trashed folders' names, says that it looked for folders and links too.
func TestRestoreFolderNothingTrashed(t *testing.T) {
	e := newEnv(t)
	e.init()
	catalogOf(t, e, func(ctx context.Context, c catalog.Catalog) error {
		for _, k := range []string{"dst/sub", "src/sub"} {
			if err := c.MakeFolder(ctx, k); err != nil {
				return err
			}
		}
		if err := c.RemoveFolder(ctx, "dst/sub"); err != nil {
			return err
		}
		return c.RenameFolder(ctx, "src", "dst") // mv src dst: dst/sub is live again
	})
	e.fails("the trash holds no artifact, folder or symbolic link under dst/", "restore", "dst/")
}

// ls --trash lists a file k before the folder k/ removed at its name, as
// both catalogs list them, and a page never ends between the two: --after
// names a key, and the next page skipped the other.
func TestLsTrashFileBeforeFolder(t *testing.T) {
	for _, cat := range []string{"bolt", "postgres"} {
		t.Run(cat, func(t *testing.T) {
			e := newEnv(t)
			initOn(t, e, cat)
			lsTrashFileBeforeFolder(t, e)
		})
	}
}

func lsTrashFileBeforeFolder(t *testing.T, e *env) {
	for _, k := range []string{"a", "k", "z"} {
		e.ok("save", e.write("f", []byte(k+"\n")), "--key", k)
		e.ok("delete", k)
	}
	catalogOf(t, e, func(ctx context.Context, c catalog.Catalog) error {
		if err := c.MakeFolder(ctx, "k"); err != nil {
			return err
		}
		return c.RemoveFolder(ctx, "k")
	})
	keys := func(out string) string {
		var ks []string
		for _, l := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
			ks = append(ks, strings.Fields(l)[0])
		}
		return strings.Join(ks, " ")
	}
	if got := keys(e.ok("ls", "--trash")); got != "a k k/ z" {
		t.Fatalf("ls --trash: %s; want a k k/ z", got)
	}
	_, errs, _ := e.run("ls", "--trash", "--limit", "2")
	if out := e.ok("ls", "--trash", "--limit", "2"); keys(out) != "a k k/" || !strings.Contains(errs, `--after "k"`) {
		t.Fatalf("ls --trash --limit 2: %s\n%s", out, errs)
	}
	if got := keys(e.ok("ls", "--trash", "--after", "k")); got != "z" {
		t.Fatalf("ls --trash --after k: %s; want z", got)
	}
}

// restore KEY, where KEY is a live file saved after what was under the
// folder KEY/ went to the trash (or a file above it holds the name), says
// that the file holds the name and what resolves it. Before, it said "KEY
// is a folder; … restore them with `lamina restore KEY/`", which refused.
func TestRestoreKeyOfFileOverTrashedFolder(t *testing.T) {
	for _, cat := range []string{"bolt", "postgres"} {
		t.Run(cat, func(t *testing.T) {
			e := newEnv(t)
			initOn(t, e, cat)
			e.ok("save", e.write("f", []byte("x\n")), "--key", "c5/f/x")
			e.ok("delete", "c5/f/x")
			e.ok("save", e.write("f", []byte("f\n")), "--key", "c5/f")
			const help = "the trash holds 1 name under c5/f/ (c5/f/x) that cannot be restored while c5/f is a file, which holds the folder's name: " +
				"`lamina delete --permanent c5/f/` deletes it for good; or move c5/f away (mv in a mount, or `lamina delete c5/f` to put it in the trash) and run `lamina restore c5/f/`"
			for _, k := range []string{"c5/f", "c5/f/"} {
				_, errs, err := e.run("restore", k)
				if codeOf(err) != 1 || strings.Contains(errs+explain(err), "is a folder") || !strings.Contains(errs+explain(err), help) {
					t.Fatalf("restore %s: exit %d %v\n%s", k, codeOf(err), err, errs)
				}
			}
			e.fails("c5/f is a file now, with no version in the trash; "+help, "restore", "c5/f")
			// A file above the name: c6 holds it, c6/f is no file.
			e.ok("save", e.write("f", []byte("x\n")), "--key", "c6/f/x")
			e.ok("delete", "c6/f/x")
			e.ok("save", e.write("f", []byte("6\n")), "--key", "c6")
			e.fails("c6/f has no version in the trash; the trash holds 1 name under c6/ (c6/f/x) that cannot be restored while c6 is a file", "restore", "c6/f")
			// Nothing was deleted: moved away, the file lets them back.
			e.ok("delete", "c5/f")
			if out := e.ok("restore", "c5/f/"); !strings.Contains(out, "restored c5/f/x (1 version)") {
				t.Fatalf("restore c5/f/ after delete c5/f: %s", out)
			}
		})
	}
}

// Overlapping arguments to restore (one twice, c4/ and c4/f/, a key and
// its folder) take each name once: what a file keeps out is counted and
// reported once, what comes back is restored once, and a folder an
// earlier argument emptied is no error. Before, restore c4/f/ c4/f/
// reported "4 names (c4/f/x, c4/f/x, c4/f/y, c4/f/y)", and restore g/
// g/sub/ failed after restoring all of it ("the trash holds no artifact …
// under g/sub/").
func TestRestoreOverlappingArgs(t *testing.T) {
	for _, cat := range []string{"bolt", "postgres"} {
		t.Run(cat, func(t *testing.T) {
			e := newEnv(t)
			initOn(t, e, cat)
			for _, k := range []string{"c4/f/x", "c4/f/y", "c4/z", "g/sub/x", "g/y"} {
				e.ok("save", e.write("f", []byte(k+"\n")), "--key", k)
				e.ok("delete", k)
			}
			e.ok("save", e.write("f", []byte("f\n")), "--key", "c4/f")
			const names = "lamina: not restored: the trash holds 2 names under c4/f/ (c4/f/x, c4/f/y) that cannot be restored"
			for i, args := range [][]string{{"c4/f/", "c4/f/"}, {"c4/", "c4/f/"}, {"c4/f/", "c4/"}, {"c4/f", "c4/", "c4/f/", "c4/", "c4/f"}} {
				if i == 3 {
					// restore c4/f (the file, from the trash) notes what
					// it keeps out; c4/ reports it: once, not both.
					e.ok("delete", "c4/f")
				}
				out, errs, err := e.run(append([]string{"restore"}, args...)...)
				if codeOf(err) != 1 || strings.Count(errs, "lamina:") != 1 || !strings.Contains(errs, names) ||
					!strings.Contains(explain(err), "2 names kept in the trash") || strings.Count(out, "restored c4/z") > 1 ||
					(i == 3) != (out == "restored c4/f (1 version)\n") {
					t.Fatalf("restore %v: exit %d %v\n%s%s", args, codeOf(err), err, out, errs)
				}
			}
			out, errs, err := e.run("restore", "g/", "g/sub/", "g/sub/x", "g/y", "g/")
			if err != nil || out != "restored g/sub/x (1 version)\nrestored g/y (1 version)\n" || errs != "" {
				t.Fatalf("restore g/ g/sub/ g/sub/x g/y g/: %v\n%s%s", err, out, errs)
			}
			// A folder with nothing trashed under it, that no argument
			// took from, is still refused.
			e.ok("delete", "g/y")
			e.fails("the trash holds no artifact, folder or symbolic link under g/sub/", "restore", "g/", "g/sub/")
		})
	}
}

// restore PARENT/ brings back what was at each name last: a file d/kf
// trashed before a folder d/kf/ made at its name (and removed with what
// was under it) stays in the trash, reported, and the folder comes back
// whole, its own record too. Before, artifacts came first: the older file
// came back and the newer folder's contents stayed in the trash. The
// file is still listed and comes back by its uid once the name is free;
// a file trashed after the folder under its name still wins.
func TestRestoreFolderLatestAtName(t *testing.T) {
	for _, cat := range []string{"bolt", "postgres"} {
		t.Run(cat, func(t *testing.T) { restoreFolderLatestAtName(t, cat) })
	}
}

func restoreFolderLatestAtName(t *testing.T, cat string) {
	e := newEnv(t)
	initOn(t, e, cat)
	uids := map[string]string{}
	// d/g/x, then d/g: the file is newer than the folder under its name.
	for _, k := range []string{"d/kf", "d/kf/x", "d/g/x", "d/g"} {
		uids[k] = strings.Fields(e.ok("save", e.write("f", []byte(k+"\n")), "--key", k))[3]
		e.ok("delete", k)
	}
	catalogOf(t, e, func(ctx context.Context, c catalog.Catalog) error {
		for _, k := range []string{"d/kf", "d/kf/sub"} {
			if err := c.MakeFolder(ctx, k); err != nil {
				return err
			}
		}
		for _, k := range []string{"d/kf/sub", "d/kf"} { // rm -r d/kf: its record too
			if err := c.RemoveFolder(ctx, k); err != nil {
				return err
			}
		}
		return nil
	})
	const kept = "lamina: not restored: d/kf stays in the trash: the folder d/kf/ was trashed after it, at its name, and came back instead"
	out, errs, err := e.run("restore", "d/")
	for _, w := range []string{"restored d/g (1 version)", "restored d/kf/x (1 version)", "restored d/kf/sub/ (folder)", "restored d/kf/ (folder)"} {
		if !strings.Contains(out, w) {
			t.Fatalf("restore d/: %q lacks %q\n%s", out, w, errs)
		}
	}
	if codeOf(err) != 1 || strings.Contains(out, "restored d/kf (") || !strings.Contains(errs, kept) ||
		!strings.Contains(errs, "lamina: not restored: the trash holds 1 name under d/g/ (d/g/x)") {
		t.Fatalf("restore d/: exit %d\n%s%s", codeOf(err), out, errs)
	}
	if got := e.ok("get", "d/kf/x", "-o", "-"); got != "d/kf/x\n" {
		t.Fatalf("d/kf/x = %q", got)
	}
	var rows []struct{ Key, Kind string }
	e.jsonOut(&rows, "ls", "--trash", "--format", "json")
	var got []string
	for _, r := range rows {
		got = append(got, r.Key+":"+r.Kind)
	}
	if want := "d/g/x: d/kf:"; strings.Join(got, " ") != want {
		t.Fatalf("ls --trash: %v; want %s", got, want)
	}
	// The older file comes back by its uid once the folder is moved away.
	e.fails("d/kf is a folder now", "restore", uids["d/kf"])
	catalogOf(t, e, func(ctx context.Context, c catalog.Catalog) error {
		return c.RenameFolder(ctx, "d/kf", "d/kf2") // mv d/kf d/kf2
	})
	if out := e.ok("restore", uids["d/kf"]); !strings.Contains(out, "restored d/kf (1 version)") {
		t.Fatalf("restore %s: %s", uids["d/kf"], out)
	}
	if got := e.ok("get", "d/kf", "-o", "-"); got != "d/kf\n" {
		t.Fatalf("d/kf = %q", got)
	}
}

// TestRestoreLinkLatestAtName: a link trashed after the file at its name
// and the names under it comes back from restore FOLDER/ and restore KEY,
// and a restore of the older file (by uid) keeps the link in the trash,
// purgeable alone. Before, restore r/ brought back r/k/a, the link failed
// on the folder it made and was reported as come back; restore r/k
// brought the file back and deleted the link for good.
func TestRestoreLinkLatestAtName(t *testing.T) {
	for _, cat := range []string{"bolt", "postgres"} {
		t.Run(cat, func(t *testing.T) { restoreLinkLatestAtName(t, cat) })
	}
}

func restoreLinkLatestAtName(t *testing.T, cat string) {
	e := newEnv(t)
	initOn(t, e, cat)
	uid := strings.Fields(e.ok("save", e.write("f", []byte("v1\n")), "--key", "r/k"))[3]
	e.ok("delete", "r/k")
	time.Sleep(1100 * time.Millisecond)
	e.ok("save", e.write("f", []byte("a\n")), "--key", "r/k/a")
	e.ok("delete", "r/k/a")
	time.Sleep(1100 * time.Millisecond)
	link := func(remove bool) {
		catalogOf(t, e, func(ctx context.Context, c catalog.Catalog) error {
			if !remove {
				return c.Symlink(ctx, "r/k", "../somewhere")
			}
			return c.RemoveLink(ctx, "r/k")
		})
	}
	link(false)
	link(true)
	out, errs, err := e.run("restore", "r/")
	if codeOf(err) != 1 || !strings.Contains(out, "restored r/k (symbolic link)") || strings.Contains(out, "r/k/a") ||
		!strings.Contains(errs, "r/k stays in the trash: the symbolic link r/k was trashed after it") ||
		!strings.Contains(errs, "what the trash holds under r/k/ (r/k/a) stays in the trash: the symbolic link r/k was trashed after it") {
		t.Fatalf("restore r/: exit %d\n%s%s", codeOf(err), out, errs)
	}
	// The link trashed again, last: restore r/k brings it back, not the file.
	link(true)
	out, errs, err = e.run("restore", "r/k")
	if codeOf(err) != 1 || !strings.Contains(out, "restored r/k (symbolic link)") ||
		!strings.Contains(errs, "r/k stays in the trash: the symbolic link r/k was trashed after it") {
		t.Fatalf("restore r/k: exit %d\n%s%s", codeOf(err), out, errs)
	}
	// The file's uid names it: it comes back, the link stays in the trash.
	link(true)
	out, errs, _ = e.run("restore", uid)
	if !strings.Contains(out, "restored r/k (1 version)") || !strings.Contains(errs, "the symbolic link r/k stays in the trash: the file r/k holds its name") {
		t.Fatalf("restore %s:\n%s%s", uid, out, errs)
	}
	var rows []struct{ Key, Kind string }
	e.jsonOut(&rows, "ls", "--trash", "--format", "json")
	if len(rows) != 2 || rows[0].Key != "r/k" || rows[0].Kind != "link" || rows[1].Key != "r/k/a" {
		t.Fatalf("ls --trash: %+v; want the link r/k and r/k/a", rows)
	}
	e.ok("delete", "--permanent", "--link", "--yes", "r/k")
	if got := e.ok("get", "r/k", "-o", "-"); got != "v1\n" {
		t.Fatalf("r/k after the link's purge = %q", got)
	}
	e.jsonOut(&rows, "ls", "--trash", "--format", "json")
	if len(rows) != 1 || rows[0].Key != "r/k/a" {
		t.Fatalf("ls --trash after the link's purge: %+v", rows)
	}
}

// TestRestoreLinkHeldByFile: restore of a trashed link whose name a live
// file holds says what to do (delete the link for good, or move the file),
// where restore r/k said only `"r/k" is a file` and restore r/ that a file
// held the name of the link's folder.
func TestRestoreLinkHeldByFile(t *testing.T) {
	for _, cat := range []string{"bolt", "postgres"} {
		t.Run(cat, func(t *testing.T) {
			e := newEnv(t)
			initOn(t, e, cat)
			uid := strings.Fields(e.ok("save", e.write("f", []byte("v1\n")), "--key", "r/k"))[3]
			e.ok("delete", "r/k")
			time.Sleep(1100 * time.Millisecond)
			catalogOf(t, e, func(ctx context.Context, c catalog.Catalog) error {
				if err := c.Symlink(ctx, "r/k", "../somewhere"); err != nil {
					return err
				}
				return c.RemoveLink(ctx, "r/k")
			})
			e.ok("restore", uid) // the file, trashed before the link: the link stays
			err := e.fails(`"r/k" is a file`, "restore", "r/k")
			if !strings.Contains(explain(err), "`lamina delete --permanent --link r/k`") || !strings.Contains(explain(err), "move r/k away") {
				t.Errorf("restore r/k: %v", explain(err))
			}
			err = e.fails("1 name kept in the trash", "restore", "r/")
			if !strings.Contains(explain(err), "the symbolic link's own name") {
				t.Errorf("restore r/: %v", explain(err))
			}
		})
	}
}

// TestRestoreKeyVersionNotTheLink: restore r/k@v1 names the file version,
// but a symbolic link trashed at r/k after it came back instead (the key's
// latest state), and v1 stayed in the trash (audit 55). It restores the
// file, as its uid does, and the link stays in the trash.
func TestRestoreKeyVersionNotTheLink(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("save", e.write("f", []byte("p1\n")), "--key", "r/k")
	e.ok("delete", "r/k")
	time.Sleep(1100 * time.Millisecond) // trash times are whole seconds in listings
	catalogOf(t, e, func(ctx context.Context, c catalog.Catalog) error {
		if err := c.Symlink(ctx, "r/k", "../somewhere"); err != nil {
			return err
		}
		return c.RemoveLink(ctx, "r/k")
	})
	out, errs, _ := e.run("restore", "r/k@v1")
	if !strings.Contains(out, "restored r/k (1 version)") || strings.Contains(out, "symbolic link") {
		t.Fatalf("restore r/k@v1:\n%s%s", out, errs)
	}
	if got := e.ok("get", "r/k", "-o", "-"); got != "p1\n" {
		t.Fatalf("r/k = %q", got)
	}
	var rows []struct{ Key, Kind string }
	e.jsonOut(&rows, "ls", "--trash", "--format", "json")
	if len(rows) != 1 || rows[0].Key != "r/k" || rows[0].Kind != "link" {
		t.Fatalf("ls --trash: %+v; want the link r/k", rows)
	}
}
