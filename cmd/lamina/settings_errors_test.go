package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// One settings file that cannot be read (not JSON, a folder of that name,
// a name that is no instance's) no longer fails `lamina instances`: the
// others are listed, and the broken one is flagged "!" with what is wrong
// (on stderr; in JSON, its "error").
func TestInstancesListsBrokenSettings(t *testing.T) {
	e := newEnv(t)
	e.init()
	dir := filepath.Join(e.dir, "config", "lamina", "instances")
	e.write("config/lamina/instances/zz.json", []byte("{bad"))
	if err := os.Mkdir(filepath.Join(dir, "dir.json"), 0o755); err != nil {
		t.Fatal(err)
	}
	e.write("config/lamina/instances/b n.json", []byte(`{"name": "b n"}`))
	why := map[string]string{
		"zz":  "settings file " + filepath.Join(dir, "zz.json") + " is not valid JSON (line 1: ",
		"dir": "settings file " + filepath.Join(dir, "dir.json") + " is a folder, not a file",
		"b n": "settings file " + filepath.Join(dir, "b n.json") + `: bad instance name "b n"`,
	}
	out, stderr, err := e.run("instances")
	if err != nil {
		t.Fatalf("instances: %v\n%s", err, stderr)
	}
	lines := strings.Split(out, "\n")
	for name, msg := range why {
		found := false
		for _, l := range lines {
			found = found || strings.HasPrefix(l, "!") && strings.Fields(l)[1] == strings.Fields(name)[0]
		}
		if !found || !strings.Contains(stderr, msg) {
			t.Errorf("instances does not flag %s (%q):\n%s%s", name, msg, out, stderr)
		}
	}
	if !strings.Contains(out, "*  test") || !strings.Contains(out, e.path("storage")) {
		t.Errorf("instances does not list the good one:\n%s", out)
	}
	var list []map[string]any
	e.jsonOut(&list, "instances", "--format", "json")
	if len(list) != 4 {
		t.Fatalf("instances --format json: %v", list)
	}
	for _, r := range list {
		name, _ := r["name"].(string)
		msg, _ := r["error"].(string)
		if want, ok := why[name]; ok && (!strings.Contains(msg, want) || r["settings_file"] != filepath.Join(dir, name+".json")) {
			t.Errorf("json of %s: %v; want an error saying %q", name, r, want)
		}
		if name == "test" && (r["storage"] != e.path("storage") || r["error"] != nil) {
			t.Errorf("json of the good one: %v", r)
		}
	}
	if csv := e.ok("instances", "--format", "csv"); !strings.Contains(csv, "!,zz,") || !strings.Contains(csv, "*,test,") {
		t.Errorf("csv:\n%s", csv)
	}
	e.fails(why["zz"], "--instance", "zz", "ls")
}

// A settings file that is wrong says which file and what is wrong with it
// in the user's terms; so does the file naming the current instance.
func TestSettingsFileErrors(t *testing.T) {
	e := newEnv(t)
	e.init()
	dir := filepath.Join(e.dir, "config", "lamina", "instances")
	b, err := os.ReadFile(filepath.Join(dir, "test.json"))
	if err != nil {
		t.Fatal(err)
	}
	variant := func(name string, edit func(map[string]any)) string {
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		m["name"] = name
		edit(m)
		nb, _ := json.Marshal(m)
		e.write("config/lamina/instances/"+name+".json", nb)
		return filepath.Join(dir, name+".json")
	}
	for _, c := range []struct {
		name string
		edit func(map[string]any)
		want string
	}{
		{"nocatalog", func(m map[string]any) { delete(m, "catalog") }, `has no "catalog" (the catalog: a catalog file or a postgresql:// URL): restore the file from a backup, or add it`},
		{"nostorage", func(m map[string]any) { m["storage"] = "" }, `has no "storage"`},
		{"typed", func(m map[string]any) { m["name"] = 3 }, `has a number for "name" where it should have text in quotes: fix it`},
		{"sized", func(m map[string]any) { m["cache_size"] = "10GB" }, `has a string for "cache_size" where it should have a number`},
		{"dated", func(m map[string]any) { m["created"] = "yesterday" }, `has "yesterday" where it should have a date and time`},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := variant(c.name, c.edit)
			e := &env{t: t, dir: e.dir, vars: e.vars}
			err := e.fails("settings file "+p+" "+c.want, "--instance", c.name, "ls")
			if msg := err.Error(); strings.Contains(msg, "json:") || strings.Contains(msg, "Go struct") || strings.Contains(msg, "catalog file  is") {
				t.Errorf("the message speaks Go: %s", msg)
			}
		})
	}
	e.write("config/lamina/instances/empty.json", nil)
	e.fails("settings file "+filepath.Join(dir, "empty.json")+" is empty", "--instance", "empty", "ls")

	current := filepath.Join(e.dir, "config", "lamina", "current")
	use := "choose one with `lamina use NAME`"
	for content, want := range map[string]string{
		"":            current + ", which names the current instance, is empty: " + use,
		"\n":          current + ", which names the current instance, is empty: " + use,
		"garb age!\n": current + `, which names the current instance, holds "garb age!", which is no instance name: ` + use,
		"nope\n":      current + ` names "nope" as the current instance, and no instance has that name here: ` + use,
	} {
		if err := os.WriteFile(current, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		e.fails(want, "ls")
	}
	e.ok("use", "test")
	e.ok("ls")
}
