package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/lamina-bio/lamina/catalog"
)

// TestTrashedVersionsOfKeyWrittenAgain: a key written again after its rm
// (every Snakemake rerun deletes its outputs first) keeps v1..vN-1 in the
// trash. ls --versions lists them marked, show, get and lineage take
// KEY@vN of one and say it is in the trash and how it comes back.
func TestTrashedVersionsOfKeyWrittenAgain(t *testing.T) {
	e := newEnv(t)
	e.init()
	for _, s := range []string{"1\n", "2\n", "3\n"} {
		e.ok("save", e.write("count.txt", []byte(s)), "--key", "results/count.txt")
	}
	e.ok("delete", "results/count.txt")
	e.ok("save", e.write("count.txt", []byte("4\n")), "--key", "results/count.txt")

	out, errs, err := e.run("ls", "--versions", "results/count.txt")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 || !regexp.MustCompile(`TRASHED\s+ENTRY$`).MatchString(strings.TrimSpace(lines[0])) {
		t.Fatalf("ls --versions:\n%s", out)
	}
	for i, l := range lines[1:] {
		f := strings.Fields(l)
		if f[1] != string(rune('1'+i)) {
			t.Errorf("row %d is version %s; want version order:\n%s", i+1, f[1], out)
		}
		// A trashed row ends with its trash time (date and time) and
		// its trash entry.
		if trashed := len(f) == 12; trashed != (i < 3) {
			t.Errorf("row of v%d marked trashed: %v\n%s", i+1, trashed, out)
		}
	}
	if !strings.Contains(errs, "3 versions of results/count.txt are in the trash; `lamina restore results/count.txt` brings them back") {
		t.Errorf("ls --versions stderr: %q", errs)
	}
	var vs []catalog.Version
	e.jsonOut(&vs, "ls", "--versions", "results/count.txt", "--format", "json")
	if len(vs) != 4 || !vs[0].Trashed || !vs[1].Trashed || !vs[2].Trashed || vs[3].Trashed || vs[1].Version != 2 {
		t.Fatalf("ls --versions --format json: %+v", vs)
	}
	if out := e.ok("ls", "--versions", "results/count.txt", "--format", "csv"); !strings.HasPrefix(out, "key,version,uid,size,kind,created_at,created_by,description,trashed_at,trash_entry\n") ||
		strings.Count(out, "Z,1\n") != 3 {
		t.Errorf("ls --versions --format csv:\n%s", out)
	}

	const note = "results/count.txt@v2 is in the trash since "
	const how = "`lamina restore results/count.txt` brings back the versions of results/count.txt in the trash"
	for _, args := range [][]string{
		{"show", "results/count.txt@v2"},
		{"show", "results/count.txt@v2", "--format", "json"},
		{"lineage", "results/count.txt@v2"},
		{"get", "results/count.txt@v2", "-o", "-"},
	} {
		out, errs, err := e.run(args...)
		if err != nil {
			t.Errorf("lamina %v: %v", args, explain(err))
			continue
		}
		if !strings.Contains(errs, note) || !strings.Contains(errs, how) {
			t.Errorf("lamina %v: stderr %q; want the trash note", args, errs)
		}
		if args[0] == "get" && out != "2\n" {
			t.Errorf("get of the trashed v2 = %q", out)
		}
		if args[0] == "show" && !strings.Contains(out, vs[1].UID) {
			t.Errorf("show of the trashed v2:\n%s", out)
		}
	}
	// The live latest says nothing; a number that never was is refused.
	if _, errs, _ := e.run("show", "results/count.txt"); strings.Contains(errs, "trash") {
		t.Errorf("show of the live latest: %q", errs)
	}
	e.fails("has no version 9", "show", "results/count.txt@v9")

	// Wholly in the trash: the latest is refused, numbers still resolve,
	// and ls --versions lists them all.
	e.ok("delete", "results/count.txt")
	e.fails("in the trash", "get", "results/count.txt", "-o", "-")
	if out := e.ok("get", "results/count.txt@v4", "-o", "-"); out != "4\n" {
		t.Errorf("get @v4 of a trashed key = %q", out)
	}
	e.jsonOut(&vs, "ls", "--versions", "results/count.txt", "--format", "json")
	if len(vs) != 4 || !vs[3].Trashed {
		t.Errorf("ls --versions of a trashed key: %+v", vs)
	}
}

// TestRestoreKeyVersion: the catalog restores per key, so restore KEY@vN
// brings KEY back only when vN is its only version in the trash; else it
// refuses (exit 2) with the command that does, and changes nothing.
// Before, restore k@v1 of a key wholly in the trash brought back v1..v3
// (v3 the latest), and restore k@v9 said `"k@v9" has nothing in the trash`.
func TestRestoreKeyVersion(t *testing.T) {
	for _, cat := range []string{"bolt", "postgres"} {
		t.Run(cat, func(t *testing.T) { restoreKeyVersion(t, cat) })
	}
}

func restoreKeyVersion(t *testing.T, cat string) {
	e := newEnv(t)
	initOn(t, e, cat)
	for _, s := range []string{"1\n", "2\n", "3\n"} {
		e.ok("save", e.write("n.txt", []byte(s)), "--key", "k")
	}
	e.ok("delete", "k")
	_, _, err := e.run("restore", "k@v1")
	if codeOf(err) != 2 || !strings.Contains(explain(err), "restore works per key: k@v1 is one of 3 versions of k in the trash (v1..v3), and one alone cannot come back; `lamina restore k` brings back all 3") {
		t.Fatalf("restore k@v1: exit %d, %v", codeOf(err), err)
	}
	if _, _, err := e.run("show", "k"); err == nil {
		t.Fatal("restore k@v1 that refused brought k back")
	}
	e.fails("\"k\" has no version 9 (latest is 3) (the trash holds v1..v3 of it: `lamina restore k` brings them back)", "restore", "k@v9")
	e.fails(`"nokey" has no versions`, "restore", "nokey@v1")
	// Refused before anything comes back: not the arguments before it.
	e.ok("save", e.write("n.txt", []byte("o\n")), "--key", "other")
	e.ok("delete", "other")
	e.fails("restore works per key", "restore", "other", "k@v1")
	if _, _, err := e.run("show", "other"); err == nil {
		t.Error("restore other k@v1, refused, brought other back")
	}
	if out := e.ok("restore", "k"); !strings.Contains(out, "restored k (3 versions)") {
		t.Errorf("restore k: %q", out)
	}
	e.fails("k@v2 is not in the trash", "restore", "k@v2")

	// A key written again after its rm: v1 alone in the trash comes back
	// by its KEY@vN.
	e.ok("save", e.write("n.txt", []byte("a\n")), "--key", "j")
	e.ok("delete", "j")
	e.ok("save", e.write("n.txt", []byte("b\n")), "--key", "j")
	e.fails("j@v2 is not in the trash (the trash holds v1 of it: `lamina restore j` brings it back)", "restore", "j@v2")
	if out := e.ok("restore", "j@v1"); !strings.Contains(out, "restored j (1 version)") {
		t.Errorf("restore j@v1: %q", out)
	}
}
