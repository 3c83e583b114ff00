package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The test binary doubles as the lamina binary for tests that need a real
// child process (to kill it, or to run two at once).
func TestMain(m *testing.M) {
	if os.Getenv("LAMINA_TEST_AS_CLI") == "1" {
		main()
		os.Exit(0)
	}
	code := m.Run()
	if mntBin != "" {
		os.RemoveAll(filepath.Dir(mntBin)) // the binary mntBinary built (45 MB a run)
	}
	os.Exit(code)
}

// env is an isolated user: its own HOME and XDG folders.
type env struct {
	t    testing.TB
	dir  string
	vars []string
}

func newEnv(t testing.TB) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{t: t, dir: dir}
	for k, v := range map[string]string{
		"HOME": filepath.Join(dir, "home"), "XDG_CONFIG_HOME": filepath.Join(dir, "config"),
		"XDG_DATA_HOME": filepath.Join(dir, "data"), "XDG_CACHE_HOME": filepath.Join(dir, "cache"),
		"XDG_RUNTIME_DIR": filepath.Join(dir, "run"), "LAMINA_INSTANCE": "",
	} {
		t.Setenv(k, v)
		e.vars = append(e.vars, k+"="+v)
	}
	return e
}

// path returns a path inside the test's folder.
func (e *env) path(name string) string { return filepath.Join(e.dir, name) }

// write creates a file under the test folder and returns its path.
func (e *env) write(name string, data []byte) string {
	e.t.Helper()
	p := e.path(name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		e.t.Fatal(err)
	}
	return p
}

// run runs lamina in-process and returns stdout, stderr and the error.
func (e *env) run(args ...string) (string, string, error) {
	var out, errb bytes.Buffer
	err := Main(append([]string{"lamina"}, args...), &out, &errb)
	return out.String(), errb.String(), err
}

// ok runs lamina and fails the test on error.
func (e *env) ok(args ...string) string {
	e.t.Helper()
	out, stderr, err := e.run(args...)
	if err != nil {
		e.t.Fatalf("lamina %s: %v\nstderr: %s", strings.Join(args, " "), err, stderr)
	}
	return out
}

// fails runs lamina, expects an error containing want, and returns it.
func (e *env) fails(want string, args ...string) error {
	e.t.Helper()
	_, _, err := e.run(args...)
	if err == nil {
		e.t.Fatalf("lamina %s succeeded, want error %q", strings.Join(args, " "), want)
	}
	if msg := explain(err); !strings.Contains(msg, want) {
		e.t.Fatalf("lamina %s: error %q does not contain %q", strings.Join(args, " "), msg, want)
	}
	return err
}

// child returns a command running lamina as a separate process.
func (e *env) child(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(append(os.Environ(), e.vars...), "LAMINA_TEST_AS_CLI=1")
	cmd.Args[0] = "lamina"
	cmd.Path = os.Args[0]
	return cmd
}

func (e *env) init() {
	e.t.Helper()
	e.ok("init", "--storage", e.path("storage"), "--name", "test")
}

func (e *env) jsonOut(v any, args ...string) {
	e.t.Helper()
	out := e.ok(args...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		e.t.Fatalf("lamina %s: not JSON: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestUsageErrorsExit2: a missing required flag or a flag the parser
// refuses is a usage error, exit 2, with nothing (no help) on stdout.
func TestUsageErrorsExit2(t *testing.T) {
	e := newEnv(t)
	e.init()
	f := e.write("t.csv", []byte("cell_type\nT cell\n"))
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"ontology", "import", "foo"}, "--source is required; usage: lamina ontology import"},
		{[]string{"ontology", "inspect", "celltype", f}, "--column is required"},
		{[]string{"curate", f}, "--schema is required"},
		{[]string{"feature", "create", "batch"}, "--dtype is required"},
		{[]string{"init", "--name", "x"}, "--storage is required"},
		{[]string{"ls", "--bogus"}, "flag provided but not defined: --bogus (lamina ls --help lists the flags)"},
		{[]string{"ontology", "search", "--limit", "many", "celltype", "T"}, `invalid value "many" for --limit: want a number (lamina ontology search --help lists the flags)`},
		// A subcommand's flag error names its whole path (it said "lamina search", "lamina create").
		{[]string{"ontology", "search", "celltype", "x", "--bogus"}, "--bogus (lamina ontology search --help lists the flags)"},
		{[]string{"feature", "create", "x", "--bogus"}, "--bogus (lamina feature create --help lists the flags)"},
		{[]string{"ontology", "--bogus"}, "--bogus (lamina ontology --help lists the flags)"},
		{[]string{"--bogus", "ls"}, "flag provided but not defined"},
		{[]string{"nosuch"}, `lamina has no command "nosuch" (lamina --help lists them)`},
		{[]string{"ontology", "nosuch"}, `lamina ontology has no command "nosuch"`},
		// Nothing to search for is bad usage (search exited 1, ontology search 0).
		{[]string{"search", ""}, "usage: lamina search WORDS..."},
		{[]string{"search", "T", "-"}, "usage: lamina search WORDS..."},
		{[]string{"ontology", "search", "celltype", ""}, "usage: lamina ontology search ENTITY QUERY"},
		{[]string{"ontology", "search", "celltype", " ", " "}, "usage: lamina ontology search ENTITY QUERY"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, _, err := e.run(tc.args...)
			if err == nil || codeOf(err) != 2 || !strings.Contains(err.Error(), tc.want) || out != "" {
				t.Fatalf("error %v (exit %d), want %q, exit 2; stdout %q", err, codeOf(err), tc.want, out)
			}
		})
	}
	// A command alone, or one that groups others, shows its help.
	for _, args := range [][]string{{}, {"ontology"}} {
		if out, _, err := e.run(args...); err != nil || !strings.Contains(out, "COMMANDS:") {
			t.Errorf("lamina %v: %v\n%s", args, err, out)
		}
	}
}
