// Package instance is a Lamina instance at work: its settings (where the
// catalog and storage are, which instance is current), and the operations on
// artifacts that combine the catalog with the content store — save, get,
// delete, restore, gc. Both the CLI and the mount call it; it builds no
// concrete catalog or backend itself (cmd wires those).
package instance

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/lamina-bio/lamina/catalog"
)

// ErrNoInstance is returned when no instance is set up or selected.
var ErrNoInstance = errors.New("no lamina instance yet: run `lamina init --storage DIR --name NAME` first")

// Settings describe one instance. They live in the user's config dir.
type Settings struct {
	Name     string `json:"name"`
	ID       string `json:"id"`
	Storage  string `json:"storage"`   // absolute local path, or s3://bucket/prefix
	Catalog  string `json:"catalog"`   // bbolt file
	CacheDir string `json:"cache_dir"` // what can be fetched or derived again: blocks read from S3, indexes
	DataDir  string `json:"data_dir"`  // catalog, index, locks, and what has no other copy yet (layout.go)
	// Scratch are the name patterns a mount keeps as a plain folder with no
	// versions (Snakemake's .snakemake/, editor files); nil means the
	// defaults (stage.DefaultScratch).
	Scratch []string  `json:"scratch,omitempty"`
	Created time.Time `json:"created"`

	S3        *S3Settings `json:"s3,omitempty"`         // how to reach s3:// storage (never credentials)
	CacheSize int64       `json:"cache_size,omitempty"` // bound of the local cache of fetched data; 0: the default
}

// Dirs are the per-user base folders (XDG base directory spec).
type Dirs struct {
	Config, Data, Cache, Runtime string
}

// UserDirs reads the XDG variables with their documented fallbacks.
func UserDirs() (Dirs, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return Dirs{}, err
	}
	env := func(name, fallback string) string {
		if v := os.Getenv(name); v != "" && filepath.IsAbs(v) {
			return filepath.Join(v, "lamina")
		}
		return filepath.Join(home, fallback, "lamina")
	}
	d := Dirs{
		Config: env("XDG_CONFIG_HOME", ".config"),
		Data:   env("XDG_DATA_HOME", ".local/share"),
		Cache:  env("XDG_CACHE_HOME", ".cache"),
	}
	if v := os.Getenv("XDG_RUNTIME_DIR"); v != "" && filepath.IsAbs(v) {
		d.Runtime = filepath.Join(v, "lamina")
	} else {
		d.Runtime = filepath.Join(d.Data, fallbackRuntime)
	}
	return d, nil
}

// fallbackRuntime is the runtime folder's name in the data folder
// without XDG_RUNTIME_DIR. It starts with a dot, which no instance name
// may (validName): it was "run", the data folder of an instance named
// run. A daemon an older lamina started there is still found through the
// link to its socket in its data folder (Dirs.DaemonSocket, LinkedRuntime).
const fallbackRuntime = ".run"

var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// CheckName validates an instance name.
func CheckName(name string) error {
	if !validName.MatchString(name) {
		return catalog.Invalidf("bad instance name %q: use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

// SettingsPath is the settings file of the instance named name.
func (d Dirs) SettingsPath(name string) string { return d.settingsPath(name) }

func (d Dirs) settingsPath(name string) string {
	return filepath.Join(d.Config, "instances", name+".json")
}

// NewSettings fills in the default locations for a new instance.
func (d Dirs) NewSettings(name, storage string) (Settings, error) {
	if err := CheckName(name); err != nil {
		return Settings{}, err
	}
	if !strings.HasPrefix(storage, "s3://") {
		abs, err := filepath.Abs(storage)
		if err != nil {
			return Settings{}, err
		}
		storage = abs
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	data := filepath.Join(d.Data, name)
	return Settings{
		Name: name, ID: hex.EncodeToString(id[:]), Storage: storage,
		Catalog: filepath.Join(data, "catalog.db"), CacheDir: filepath.Join(d.Cache, name),
		DataDir: data, Created: time.Now().UTC().Truncate(time.Second),
	}, nil
}

// Create writes new settings and makes the instance current. It refuses an
// existing name.
func (d Dirs) Create(s Settings) error {
	p := d.settingsPath(s.Name)
	if _, err := os.Stat(p); err == nil {
		return fmt.Errorf("an instance named %q already exists (%s); pick another --name", s.Name, p)
	}
	if err := writeJSON(p, s); err != nil {
		return err
	}
	return d.SetCurrent(s.Name)
}

// Has reports whether an instance named name has settings here.
func (d Dirs) Has(name string) bool {
	_, err := os.Stat(d.settingsPath(name))
	return err == nil
}

// Save replaces the settings of an existing instance.
func (d Dirs) Save(s Settings) error {
	if _, err := os.Stat(d.settingsPath(s.Name)); err != nil {
		return fmt.Errorf("no instance named %q: %w", s.Name, err)
	}
	return writeJSON(d.settingsPath(s.Name), s)
}

// Load reads the settings of the named instance.
func (d Dirs) Load(name string) (Settings, error) {
	if err := CheckName(name); err != nil {
		return Settings{}, err
	}
	var s Settings
	p := d.settingsPath(name)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return s, catalog.Errorf(catalog.ErrNotFound, "no instance named %q (see `lamina instances`; create one with `lamina init`)", name)
	}
	if err != nil {
		if fi, serr := os.Stat(p); serr == nil && fi.IsDir() {
			return s, fmt.Errorf("settings file %s is a folder, not a file: move it out of %s", p, filepath.Dir(p))
		}
		return s, fmt.Errorf("read the settings file of instance %q: %w", name, err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return Settings{}, fmt.Errorf("settings file %s %s: fix it, or restore it from a backup", p, jsonProblem(b, err))
	}
	for _, f := range []struct{ field, value, what string }{
		{"name", s.Name, "the instance's name"},
		{"id", s.ID, "the instance's id, which its storage's instance.json names"},
		{"storage", s.Storage, "the storage root: a folder or s3://bucket/prefix"},
		{"catalog", s.Catalog, "the catalog: a catalog file or a postgresql:// URL"},
	} {
		if f.value == "" {
			return Settings{}, fmt.Errorf("settings file %s has no %q (%s): restore the file from a backup, or add it", p, f.field, f.what)
		}
	}
	return s, nil
}

// jsonProblem says in words what json.Unmarshal found wrong with b, a
// settings file: what follows "settings file PATH".
func jsonProblem(b []byte, err error) string {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var when *time.ParseError
	switch {
	case len(strings.TrimSpace(string(b))) == 0:
		return "is empty"
	case errors.As(err, &syntax):
		line := 1 + strings.Count(string(b[:min(int(syntax.Offset), len(b))]), "\n")
		return fmt.Sprintf("is not valid JSON (line %d: %s)", line, strings.TrimPrefix(syntax.Error(), "json: "))
	case errors.As(err, &typ) && typ.Field != "":
		want := map[string]string{"string": "text in quotes", "int64": "a number", "bool": "true or false", "[]string": "a list of texts", "time.Time": "a date and time", "Settings": "an object"}[typ.Type.String()]
		if want == "" {
			want = "another kind of value"
		}
		return fmt.Sprintf("has %s for %q where it should have %s", article(typ.Value), typ.Field, want)
	case errors.As(err, &typ):
		return fmt.Sprintf("holds %s where it should hold a JSON object", article(typ.Value))
	case errors.As(err, &when):
		return fmt.Sprintf("has %q where it should have a date and time such as %q", when.Value, "2026-01-02T15:04:05Z")
	}
	return "cannot be read: " + strings.TrimPrefix(err.Error(), "json: ")
}

// article puts "a" or "an" before a JSON kind ("number", "array").
func article(kind string) string {
	if kind == "" {
		return "a value"
	}
	if strings.ContainsRune("aeiou", rune(kind[0])) {
		return "an " + kind
	}
	return "a " + kind
}

// Current resolves the instance to use: explicit (flag or LAMINA_INSTANCE,
// passed in by the caller), else the remembered current one.
func (d Dirs) Current(explicit string) (Settings, error) {
	if explicit != "" {
		return d.Load(explicit)
	}
	p := filepath.Join(d.Config, "current")
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return Settings{}, ErrNoInstance
	}
	if err != nil {
		return Settings{}, fmt.Errorf("read %s, which names the current instance: %w", p, err)
	}
	name := strings.TrimSpace(string(b))
	use := "choose one with `lamina use NAME` (`lamina instances` lists them), or select one with --instance NAME"
	if names, _ := d.List(); len(names) == 0 {
		use = "create one with `lamina init --storage DIR --name NAME`"
	}
	switch {
	case name == "":
		return Settings{}, fmt.Errorf("%s, which names the current instance, is empty: %s", p, use)
	case CheckName(name) != nil:
		return Settings{}, fmt.Errorf("%s, which names the current instance, holds %q, which is no instance name: %s", p, name, use)
	case !d.Has(name):
		return Settings{}, fmt.Errorf("%s names %q as the current instance, and no instance has that name here: %s", p, name, use)
	}
	return d.Load(name)
}

// SetCurrent remembers name as the current instance.
func (d Dirs) SetCurrent(name string) error {
	return writeFile(filepath.Join(d.Config, "current"), []byte(name+"\n"))
}

// List returns the names of every instance.
func (d Dirs) List() ([]string, error) {
	m, err := filepath.Glob(filepath.Join(d.Config, "instances", "*.json"))
	if err != nil {
		return nil, err
	}
	var names []string
	for _, p := range m {
		names = append(names, strings.TrimSuffix(filepath.Base(p), ".json"))
	}
	return names, nil
}

func writeJSON(p string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return writeFile(p, append(b, '\n'))
}

// writeFile replaces p atomically.
func writeFile(p string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return err
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}
