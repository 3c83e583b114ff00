package main

import (
	"strings"
	"testing"
)

// Every command that takes no arguments refuses them with a usage error
// (exit 2) and does nothing: `lamina gc dry-run` ran a full gc.
func TestNoArguments(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("save", e.write("a.csv", []byte("a\n")), "--key", "a.csv")
	e.ok("delete", "a.csv")
	for _, args := range [][]string{
		{"gc", "--grace", "0", "--settle", "0s", "dry-run"},
		{"info", "extra"}, {"status", "extra"}, {"instances", "extra"},
		{"runs", "ls", "extra"}, {"feature", "ls", "x"}, {"cache", "info", "x"},
		{"init", "--storage", e.path("s2"), "--name", "x", "extra"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			if err := e.fails("takes no arguments", args...); codeOf(err) != 2 {
				t.Errorf("exit %d: %v", codeOf(err), err)
			}
		})
	}
	for _, args := range [][]string{{"scratch", "extra"}, {"runs", "extra"}} {
		if err := e.fails("has no command", args...); codeOf(err) != 2 {
			t.Errorf("%v: exit %d: %v", args, codeOf(err), err)
		}
	}
	// nothing ran: the trashed version is still there to restore
	e.ok("restore", "a.csv")
}

// `lamina help [COMMAND]` works as every command group's help does, and
// the global --instance may follow the command.
func TestHelpAndInstanceAnywhere(t *testing.T) {
	e := newEnv(t)
	e.init()
	if out := e.ok("help"); !strings.Contains(out, "COMMANDS:") {
		t.Errorf("lamina help: %s", out)
	}
	if out := e.ok("help", "gc"); !strings.Contains(out, "lamina gc") {
		t.Errorf("lamina help gc: %s", out)
	}
	if err := e.fails(`no command "nope"`, "help", "nope"); codeOf(err) != 2 {
		t.Errorf("exit %d", codeOf(err))
	}
	e.ok("init", "--storage", e.path("s2"), "--name", "second")
	e.ok("use", "test")
	if out := e.ok("info", "--instance", "second"); !strings.Contains(out, "second") {
		t.Errorf("info --instance second: %s", out)
	}
	if out := e.ok("info", "--instance=second", "--format", "json"); !strings.Contains(out, `"second"`) {
		t.Errorf("info --instance=second: %s", out)
	}
	e.fails("--bogus", "info", "--bogus")
}
