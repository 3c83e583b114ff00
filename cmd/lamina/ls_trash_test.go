package main

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// TestLsTrashHonoursPrefixAndPages: ls --trash lists under PREFIX, a page
// of --limit after --after, and refuses flags that mean nothing there.
func TestLsTrashHonoursPrefixAndPages(t *testing.T) {
	e := newEnv(t)
	e.init()
	for _, k := range []string{"a/1.csv", "a/2.csv", "a/3.csv", "b/1.csv"} {
		e.ok("save", e.write(k, []byte(k+"\n")), "--key", k)
		e.ok("delete", k)
	}
	keys := func(out string) []string {
		var ks []string
		for _, l := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
			ks = append(ks, strings.Fields(l)[0])
		}
		return ks
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"a/"}, "a/1.csv a/2.csv a/3.csv"},
		{[]string{"b/"}, "b/1.csv"},
		{[]string{"--limit", "2"}, "a/1.csv a/2.csv"},
		{[]string{"--limit", "2", "--after", "a/2.csv"}, "a/3.csv b/1.csv"},
		{[]string{"--after", "a/1.csv", "a/"}, "a/2.csv a/3.csv"},
	} {
		out := e.ok(append([]string{"ls", "--trash"}, tc.args...)...)
		if got := strings.Join(keys(out), " "); got != tc.want {
			t.Errorf("ls --trash %v: %q; want %q", tc.args, got, tc.want)
		}
	}
	for _, args := range [][]string{
		{"--where", "size>0"}, {"--order", "created_at"}, {"--label", "x"}, {"--versions", "a/1.csv"},
	} {
		if err := e.fails("does not", append([]string{"ls", "--trash"}, args...)...); codeOf(err) != 2 {
			t.Errorf("ls --trash %v: exit %d", args, codeOf(err))
		}
	}
	if err := e.fails("--limit does not apply to ls --versions", "ls", "--versions", "--limit", "3", "a/1.csv"); codeOf(err) != 2 {
		t.Errorf("ls --versions --limit: exit %d", codeOf(err))
	}
	// -n 0 is "no limit", as on ls, ls --trash and runs ls: what ls
	// --versions does anyway. It exited 2.
	for _, n := range []string{"-n", "--limit"} {
		if out := e.ok("ls", "--versions", n, "0", "a/1.csv"); !strings.Contains(out, "a/1.csv") {
			t.Errorf("ls --versions %s 0 a/1.csv: %q, want its version", n, out)
		}
	}
}

// TestLsVersionsOfTrashedKey lists a trashed key's versions, marked, and
// says how they come back (it refused them once, TestTrashedVersionsOfKeyWrittenAgain).
func TestLsVersionsOfTrashedKey(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("save", e.write("x.csv", []byte("x\n")), "--key", "x.csv")
	e.ok("delete", "x.csv")
	out, errs, err := e.run("ls", "--versions", "x.csv")
	if err != nil || !strings.Contains(out, "TRASHED") || !strings.Contains(errs, "1 version of x.csv is in the trash; `lamina restore x.csv` brings it back") {
		t.Errorf("ls --versions of a trashed key: %v\n%s%s", err, out, errs)
	}
	e.fails(`no artifact has key "nosuch.csv"`, "ls", "--versions", "nosuch.csv")
}

// The paging hint says "more" only when there is more: a page exactly full
// gives none (ls, ls --trash, and a filtered ls), one short of the whole
// gives it; --limit below 0 is refused.
func TestLsPagingHint(t *testing.T) {
	e := newEnv(t)
	e.init()
	f := e.write("a.csv", []byte("gene,count\nA,1\n"))
	for _, k := range []string{"p/a.csv", "p/b.csv", "t/a.csv", "t/b.csv"} {
		e.ok("save", f, "--key", k)
	}
	e.ok("delete", "t/a.csv", "t/b.csv")
	for _, c := range []struct {
		args []string
		hint bool
	}{
		{[]string{"ls", "p/", "--limit", "2"}, false},
		{[]string{"ls", "p/", "--limit", "1"}, true},
		{[]string{"ls", "--trash", "--limit", "2"}, false},
		{[]string{"ls", "--trash", "--limit", "1"}, true},
		{[]string{"ls", "p/", "--where", "otype=DataFrame", "--limit", "2"}, false},
		{[]string{"ls", "p/", "--where", "otype=DataFrame", "--limit", "1"}, true},
	} {
		out, errs, err := e.run(c.args...)
		if err != nil {
			t.Fatalf("%v: %v", c.args, err)
		}
		if strings.Contains(errs, "more") != c.hint {
			t.Errorf("%v: hint %q, want one: %v\nstdout: %s", c.args, errs, c.hint, out)
		}
	}
	if err := e.fails("--limit -1", "ls", "--limit", "-1"); codeOf(err) != 2 {
		t.Errorf("exit %d", codeOf(err))
	}
}

// ls --versions tells trash entries apart (Snakemake's rm-and-rerun
// trashes a key several times a minute, and the table showed minutes):
// the time to the second and the entry's number, in the table and CSV,
// and the note says a UID restores one entry.
func TestLsVersionsTrashEntries(t *testing.T) {
	e := newEnv(t)
	e.init()
	for i := range 4 {
		e.ok("save", e.write("x.csv", []byte(fmt.Sprintf("x\n%d\n", i))), "--key", "x.csv")
		if i != 1 {
			e.ok("delete", "x.csv") // v1 | v2, v3 | v4
		}
	}
	out, errs, err := e.run("ls", "--versions", "x.csv")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(errs, "4 versions of x.csv are in the trash, in 3 entries (ENTRY: what one delete or rm trashed together); `lamina restore x.csv` brings them back, `lamina restore UID` the entry of that version") {
		t.Errorf("ls --versions note:\n%s", errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 || !regexp.MustCompile(`TRASHED\s+ENTRY$`).MatchString(lines[0]) {
		t.Fatalf("ls --versions:\n%s", out)
	}
	for i, want := range []string{"1", "2", "2", "3"} {
		if !regexp.MustCompile(`\d\d:\d\d:\d\d\s+` + want + `$`).MatchString(lines[i+1]) {
			t.Errorf("ls --versions row of v%d, want seconds and entry %s:\n%s", i+1, want, out)
		}
	}
	csv := e.ok("ls", "--versions", "x.csv", "--format", "csv")
	rows := strings.Split(strings.TrimSpace(csv), "\n")
	if len(rows) != 5 || !strings.HasSuffix(rows[0], ",trashed_at,trash_entry") || !strings.HasSuffix(rows[2], ",2") || !strings.HasSuffix(rows[4], ",3") {
		t.Errorf("ls --versions --format csv:\n%s", csv)
	}
}
