package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestInitExistingName checks that init refuses the name of an existing
// instance at once, mounted or not, and creates nothing: the catalog of a
// mounted instance is held by its daemon, so init must not open it.
func TestInitExistingName(t *testing.T) {
	for _, tc := range []struct {
		name string
		// setup makes an instance and returns the test's folder, the
		// instance's name and how to run lamina (stdout, stderr, error).
		setup func(t *testing.T) (dir, name string, run func(args ...string) (string, string, error))
	}{
		{"Unmounted", func(t *testing.T) (string, string, func(...string) (string, string, error)) {
			e := newEnv(t)
			e.init()
			return e.dir, "test", e.run
		}},
		{"Mounted", func(t *testing.T) (string, string, func(...string) (string, string, error)) {
			e := newMntEnv(t)
			e.mount(filepath.Join(e.dir, "mnt"))
			return e.dir, "m", e.run
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, name, run := tc.setup(t)
			before, _, err := run("instances", "--format", "json")
			if err != nil {
				t.Fatal(err)
			}
			other := filepath.Join(dir, "other")
			_, stderr, err := run("init", "--storage", other, "--name", name)
			if err == nil {
				t.Fatalf("init --name %s succeeded over the existing instance", name)
			}
			if msg := stderr + explain(err); !strings.Contains(msg, `an instance named "`+name+`" already exists`) || !strings.Contains(msg, "pick another --name") {
				t.Fatalf("init --name %s: %v %q; want: already exists, pick another --name", name, err, stderr)
			}
			if _, err := os.Stat(other); !os.IsNotExist(err) {
				t.Fatalf("a failed init left %s behind (%v)", other, err)
			}
			after, _, err := run("instances", "--format", "json")
			if err != nil || after != before {
				t.Fatalf("the instances changed: %v\n%s\n%s", err, before, after)
			}
		})
	}
}

// A password in --db is refused wherever it sits, and never echoed.
func TestDBPasswordRefused(t *testing.T) {
	e := newEnv(t)
	for _, db := range []string{
		"postgresql://lamina:s3cret@127.0.0.1:1/lab",
		"postgresql://lamina@127.0.0.1:1/lab?sslmode=disable&password=s3cret",
		"host=127.0.0.1 password=s3cret dbname=lab",
	} {
		out, errs, err := e.run("init", "--storage", e.path("st"), "--name", "pw", "--db", db)
		said := out + errs
		if err != nil {
			said += err.Error()
		}
		if err == nil || strings.Contains(said, "s3cret") || !strings.Contains(said, "password") && !strings.Contains(said, "PostgreSQL URL") {
			t.Errorf("init --db %s: %v\n%s", db, err, said)
		}
	}
	if _, err := os.Stat(e.path("config/lamina/instances/pw.json")); err == nil {
		t.Error("settings written for a refused --db")
	}
}

// TestInitRefusesSecretInEndpoint checks that an endpoint URL with user
// info (a key and secret) is refused: it would be stored in the settings
// and printed by `lamina info`.
func TestInitRefusesSecretInEndpoint(t *testing.T) {
	e := newEnv(t)
	_, _, err := e.run("init", "--storage", "s3://b/lab", "--name", "s", "--endpoint", "http://AK:SECRET@127.0.0.1:7081", "--path-style")
	if err == nil {
		t.Fatal("init accepted an endpoint holding a secret")
	}
	msg := explain(err)
	if !strings.Contains(msg, "AWS_SECRET_ACCESS_KEY") || !strings.Contains(msg, "~/.aws/credentials") || strings.Contains(msg, "SECRET@") {
		t.Errorf("message %q: want a pointer to the credential chain, without the secret", msg)
	}
	if code := exitCode(err); code != 2 {
		t.Errorf("exit code %d, want 2", code)
	}
	filepath.WalkDir(e.dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if b, _ := os.ReadFile(p); strings.Contains(string(b), "SECRET") {
				t.Errorf("the secret landed in %s", p)
			}
		}
		return nil
	})
}

// TestCacheLimitZeroRefused checks that a cache bound of 0 is refused
// everywhere with one message: the CLI used to say "cache limit 0 B" and
// the daemon cached nothing, while the saved 0 read back as the default.
func TestCacheLimitZeroRefused(t *testing.T) {
	e := newEnv(t)
	e.init()
	for _, args := range [][]string{
		{"cache", "limit", "0"},
		{"cache", "limit", "0GB"},
		{"init", "--storage", "s3://b/lab", "--name", "s", "--endpoint", "http://127.0.0.1:1", "--cache-size", "0"},
		{"mount", "--cache-size", "0", e.path("mnt")},
	} {
		_, _, err := e.run(args...)
		if err == nil {
			t.Errorf("lamina %s succeeded", strings.Join(args, " "))
			continue
		}
		if msg := explain(err); !strings.Contains(msg, "give a size, e.g. 1GB; a cache is needed for reads") || exitCode(err) != 2 {
			t.Errorf("lamina %s: exit %d, %q", strings.Join(args, " "), exitCode(err), msg)
		}
	}
}

// TestUseSaysWhichIsCurrent: `lamina use NAME` printed nothing; it says
// which instance is now current (a JSON object with --format json), and
// that an override still selects another.
func TestUseSaysWhichIsCurrent(t *testing.T) {
	e := newEnv(t)
	e.init()
	e.ok("init", "--storage", e.path("storage2"), "--name", "other")
	t.Setenv("LAMINA_INSTANCE", "")
	if out := e.ok("use", "test"); strings.Count(out, "\n") != 1 || !strings.HasPrefix(out, "current instance: test (storage "+e.path("storage")+", catalog ") {
		t.Errorf("lamina use test printed %q", out)
	}
	var got struct {
		Current, Storage, Catalog, Selected string
		SelectedBy                          string `json:"selected_by"`
	}
	e.jsonOut(&got, "use", "other", "--format", "json")
	if got.Current != "other" || got.Storage != e.path("storage2") || got.Catalog == "" || got.Selected != "" {
		t.Errorf("lamina use other --format json: %+v", got)
	}
	if out := e.ok("instances", "--format", "csv"); !strings.Contains(out, "*,other,") {
		t.Errorf("after use other, instances:\n%s", out)
	}
	t.Setenv("LAMINA_INSTANCE", "other")
	out := e.ok("use", "test")
	if !strings.Contains(out, "current instance: test") || !strings.Contains(out, `but LAMINA_INSTANCE selects "other" while it is set`) {
		t.Errorf("lamina use test with LAMINA_INSTANCE=other printed %q", out)
	}
	// --instance applies to its command only: it said "--instance
	// selects "other" while it is set".
	t.Setenv("LAMINA_INSTANCE", "")
	out = e.ok("--instance", "other", "use", "test")
	if strings.Contains(out, "while it is set") || !strings.Contains(out, "It is now the current instance (--instance other applied to this command only).") {
		t.Errorf("lamina --instance other use test printed %q", out)
	}
	out = e.ok("--instance", "other", "init", "--storage", e.path("storage3"), "--name", "third")
	if strings.Contains(out, "while it is set") || !strings.Contains(out, "It is now the current instance (--instance other applied to this command only).") {
		t.Errorf("lamina --instance other init printed %q", out)
	}
	if out := e.ok("use", "test"); strings.Count(out, "\n") != 1 {
		t.Errorf("lamina use test with no override printed %q", out)
	}
}
