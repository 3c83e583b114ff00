package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/lineage"
	"github.com/urfave/cli/v2"
)

// walkCommands calls f with every command of lamina and its path.
func walkCommands(f func(path []string, c *cli.Command)) {
	var walk func(path []string, cmds []*cli.Command)
	walk = func(path []string, cmds []*cli.Command) {
		for _, c := range cmds {
			p := append(path[:len(path):len(path)], c.Name)
			f(p, c)
			walk(p, c.Subcommands)
		}
	}
	walk(nil, commands())
}

// withExamples are the commands whose --help ends with examples.
var withExamples = []string{"init", "save", "get", "ls", "show", "mount", "umount", "status", "run",
	"runs ls", "runs show", "lineage", "delete", "restore", "curate", "annotate", "ontology search", "search", "cache"}

// TestHelpTexts: a command's summary is one short line (restore's was 660
// characters in lamina --help), the detail in its description; every flag
// says what it is for; a default is given once ("(default: a daemon keeps
// the mount) (default: false)"); no line ends in spaces; every --limit is
// also -n; the main commands show examples.
func TestHelpTexts(t *testing.T) {
	e := newEnv(t) // help needs no instance
	walkCommands(func(path []string, c *cli.Command) {
		name := strings.Join(path, " ")
		if strings.Contains(c.Usage, "\n") || len(c.Usage) > 110 {
			t.Errorf("lamina %s: summary of %d characters (at most 110, one line): %q", name, len(c.Usage), c.Usage)
		}
		for _, f := range c.Flags {
			df, ok := f.(cli.DocGenerationFlag)
			if ok && strings.TrimSpace(df.GetUsage()) == "" {
				t.Errorf("lamina %s: --%s has no help", name, f.Names()[0])
			}
			if f.Names()[0] == "limit" && !slices.Contains(f.Names(), "n") {
				t.Errorf("lamina %s: --limit is not -n", name)
			}
		}
		help := e.ok(append(path, "--help")...)
		for _, l := range strings.Split(help, "\n") {
			if strings.TrimRight(l, " ") != l {
				t.Errorf("lamina %s --help: trailing spaces in %q", name, l)
			}
			if strings.Count(l, "(default") > 1 {
				t.Errorf("lamina %s --help: two defaults in %q", name, l)
			}
		}
		if slices.Contains(withExamples, name) && (!strings.Contains(help, "Examples:\n") || !strings.Contains(help, "\n     lamina "+name)) {
			t.Errorf("lamina %s --help has no examples:\n%s", name, help)
		}
	})
}

// TestHelpExamples: each example of a command's help runs that command and
// gives it only flags it has.
func TestHelpExamples(t *testing.T) {
	n := 0
	walkCommands(func(path []string, c *cli.Command) {
		_, ex, ok := strings.Cut(c.Description, "Examples:\n")
		if !ok {
			return
		}
		flags := map[string]bool{"--instance": true}
		for _, f := range c.Flags {
			for _, n := range f.Names() {
				flags["-"+strings.Repeat("-", min(len(n)-1, 1))+n] = true
			}
		}
		for _, line := range strings.Split(ex, "\n") {
			n++
			words := strings.Fields(strings.TrimSpace(line))
			want := append([]string{"lamina"}, path...)
			if len(c.Subcommands) > 0 && len(words) > len(want) {
				// A group's example runs one of its commands.
				sub := words[len(want)]
				for _, s := range c.Subcommands {
					if s.Name == sub {
						want, flags = append(want, s.Name), map[string]bool{"--instance": true}
						for _, f := range s.Flags {
							for _, n := range f.Names() {
								flags["-"+strings.Repeat("-", min(len(n)-1, 1))+n] = true
							}
						}
					}
				}
			}
			if len(words) < len(want) || !slices.Equal(words[:len(want)], want) {
				t.Errorf("%s: example %q does not run %s", strings.Join(path, " "), line, strings.Join(want, " "))
				continue
			}
			for _, w := range words[len(want):] {
				if w == "--" || w == "|" || w == ">" {
					break // the command's own, or the shell's
				}
				if flag, _, _ := strings.Cut(w, "="); strings.HasPrefix(w, "-") && w != "-" && !flags[flag] {
					t.Errorf("%s: example %q: no flag %s", strings.Join(want, " "), line, flag)
				}
			}
		}
	})
	if n < 2*len(withExamples) {
		t.Errorf("%d examples", n)
	}
}

// TestTrackStartDefaultTransform: track start without --transform names the
// run as its help says (it said "the script the command runs").
func TestTrackStartDefaultTransform(t *testing.T) {
	e := newEnv(t)
	e.init()
	t.Setenv(lineage.EnvRun, "")
	t.Setenv(envTrack, "")
	t.Setenv(envTrackCgroup, "")
	if help := e.ok("track", "start", "--help"); !strings.Contains(help, "name of the transform (default: interactive)") {
		t.Fatalf("track start --help:\n%s", help)
	}
	e.ok("track", "start") // printed into a buffer: not eval'd
	var rs []catalog.Run
	e.jsonOut(&rs, "runs", "ls", "--format", "json")
	if len(rs) != 1 || rs[0].Name != "interactive" {
		t.Fatalf("runs: %+v", rs)
	}
	e.ok("track", "finish")
}

// TestLimitShortFlag: -n is --limit wherever --limit is (ls -n 3 was refused).
func TestLimitShortFlag(t *testing.T) {
	e := newEnv(t)
	e.init()
	for _, k := range []string{"exp/a.csv", "exp/b.csv", "exp/c.csv"} {
		e.ok("save", e.write(k, []byte("gene\nCD4\n")), "--key", k, "-d", "counts of "+k)
	}
	var vs []catalog.ShownVersion
	e.jsonOut(&vs, "ls", "exp/", "-n", "2", "--format", "json")
	if len(vs) != 2 {
		t.Errorf("ls -n 2: %d rows", len(vs))
	}
	var hits []any
	e.jsonOut(&hits, "search", "counts", "-n", "1", "--format", "json")
	if len(hits) != 1 {
		t.Errorf("search -n 1: %d hits", len(hits))
	}
}

// TestLsTermFiltersSayAND: repeated ontology filters of ls AND (a version
// with both terms), which users read as OR ("T cell" or "B cell"); the
// help says so, and how to get either (audit d2).
func TestLsTermFiltersSayAND(t *testing.T) {
	help := newEnv(t).ok("ls", "--help")
	for _, flag := range []string{"cell-type", "tissue", "disease", "term"} {
		for _, l := range strings.Split(help, "\n") {
			if strings.Contains(l, "--"+flag+" ") && !strings.Contains(l, "repeat to AND") {
				t.Errorf("ls --help: --%s does not say that repeating it ANDs: %q", flag, l)
			}
		}
	}
	if !strings.Contains(help, "common ancestor") {
		t.Errorf("ls --help does not say how to ask for either cell type:\n%s", help)
	}
}
