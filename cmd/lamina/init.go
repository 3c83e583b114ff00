package main

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/lamina-bio/lamina/catalog/postgres"
	"github.com/lamina-bio/lamina/instance"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
)

func cmdInit() *cli.Command {
	return &cli.Command{
		Name:  "init",
		Usage: "create an instance: a catalog plus a default storage root, and make it current",
		Description: examples(
			"lamina init --storage ~/lamina-data --name lab",
			"lamina init --storage s3://my-bucket/lamina --name lab --endpoint http://127.0.0.1:9000 --path-style",
			"lamina init --storage s3://my-bucket/lamina --name team --db postgresql://lamina@db.example.org:5432/lamina"),
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "storage", Usage: "storage root: a local folder (created if needed) or s3://bucket/prefix"},
			&cli.StringFlag{Name: "name", Usage: "instance name"},
			&cli.StringFlag{Name: "endpoint", Usage: "S3 endpoint URL of an S3-compatible server (default: AWS)"},
			&cli.StringFlag{Name: "region", Usage: "S3 region (default: from the AWS configuration, else us-east-1)"},
			&cli.BoolFlag{Name: "path-style", Usage: "S3 path-style addressing (bucket in the path; most S3-compatible servers)"},
			&cli.StringFlag{Name: "cache-size", Usage: "bound of the local cache of data fetched from S3, e.g. 20GB (default 10GiB)"},
			&cli.BoolFlag{Name: "take-over", Usage: "the storage holds another instance's data: make it this instance's (after lamina export-catalog there, to move that instance to a new catalog; the other may no longer use it)"},
			&cli.StringFlag{Name: "db", Usage: "a PostgreSQL catalog shared by workstations, postgresql://USER@HOST:PORT/DB (password from PGPASSWORD or ~/.pgpass); default: a bbolt file"},
		},
		Action: func(c *cli.Context) error {
			if f := missing(c, "storage", "name"); f != "" {
				return exitf(2, "%susage: lamina init --storage DIR|s3://BUCKET/PREFIX --name NAME", f)
			}
			dirs, err := instance.UserDirs()
			if err != nil {
				return err
			}
			storage, err := expandHome(c.String("storage"))
			if err != nil {
				return err
			}
			s, err := dirs.NewSettings(c.String("name"), storage)
			if err != nil {
				return err
			}
			// One init of a name at a time: a refused init removes the
			// folders it made (newFolders), in which a second init of the
			// name, run meanwhile, would have made its catalog.
			unlock, err := lockNewName(c, dirs, s.Name)
			if err != nil {
				return err
			}
			defer unlock()
			// Everything that can be checked without a side effect is
			// checked before a folder is created or a catalog opened: the
			// catalog of an existing instance may be held by its mount.
			if err := checkNewName(dirs, s.Name); err != nil {
				return err
			}
			if err := s3Flags(c, &s); err != nil {
				return err
			}
			if err := dbFlag(c, &s); err != nil { // connect.go
				return err
			}
			// Open next: a storage or catalog that cannot be created leaves
			// no settings behind, and a refused init no new storage folder
			// (undo removes those it made while empty).
			undo := newFolders(s)
			if !isS3(s) {
				// Only init makes a storage folder: every other command
				// refuses one that is gone (its disk not mounted) rather
				// than write into a new, empty one (storage.OpenLocal).
				if err := os.MkdirAll(s.Storage, 0o755); err != nil {
					undo()
					return fmt.Errorf("create the storage folder: %w", err)
				}
			}
			in, err := openSettings(c.Context, s, true, true)
			if err != nil {
				undo()
				return err
			}
			// A database that holds an instance refuses this init whatever
			// the storage says: ask it first (connect.go).
			if usesPostgres(s) {
				if err := sharedTaken(c.Context, in.Catalog, s); err != nil {
					in.Close()
					undo()
					return err
				}
			}
			var prev instance.Owner // the instance losing the storage, if one claimed it
			if c.Bool("take-over") {
				if o, found, oerr := in.StorageOwner(c.Context); oerr == nil && found && o.ID != s.ID {
					prev = o
				}
			}
			warns, err := in.CheckClaim(c.Context, c.Bool("take-over")) // owner.go: one instance per storage root
			var interrupted *instance.InterruptedInit
			if errors.As(err, &interrupted) {
				err = fmt.Errorf("%w: `%s`", err, takeOverCommand(c, s))
			}
			for _, w := range warns {
				fmt.Fprintf(c.App.ErrWriter, "lamina: warning: %s\n", w)
			}
			var unshare func() error
			if err == nil && usesPostgres(s) {
				unshare, err = initShared(c.Context, in.Catalog, s) // connect.go
			}
			if err == nil {
				// Left behind if the init stops before its settings are
				// written: what lets the next init take its claim.
				err = in.MarkInit()
			}
			if err == nil {
				err = in.WriteClaim(c.Context) // checked just now: the listing once
			}
			if err == nil {
				if err = dirs.Create(s); err == nil {
					in.UnmarkInit()
				}
			}
			if err != nil && unshare != nil {
				err = unshared(s, err, unshare())
			}
			in.Close()
			if err != nil {
				undo()
				return err
			}
			if prev.ID != "" {
				warnMountedLoser(c, dirs, prev, s.Name)
			}
			fmt.Fprintf(c.App.Writer, "created instance %q\n  storage: %s\n  catalog: %s\n", s.Name, s.Storage, s.Catalog)
			fmt.Fprintln(c.App.Writer, cmp.Or(overrideNote(c, s.Name), "It is now the current instance."))
			return nil
		},
	}
}

// takeOverCommand is the init command the user ran, with --take-over.
func takeOverCommand(c *cli.Context, s instance.Settings) string {
	q := func(v string) string {
		if strings.ContainsFunc(v, func(r rune) bool {
			return !strings.ContainsRune("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-:@=,+", r)
		}) {
			return shellQuote(v) // track.go
		}
		return v
	}
	cmd := "lamina init --storage " + q(s.Storage) + " --name " + q(s.Name)
	for _, f := range []string{"endpoint", "region", "cache-size", "db"} {
		if v := c.String(f); v != "" {
			cmd += " --" + f + " " + q(v)
		}
	}
	if c.Bool("path-style") {
		cmd += " --path-style"
	}
	return cmd + " --take-over"
}

// unshared is the error of an init --db that failed after it registered
// the instance in the database, once it tried to undo that (undoErr): the
// database as it was, or else a message that says it is not, with the
// way out (not "the catalog was not changed", which explain adds to a
// full disk's error).
func unshared(s instance.Settings, err, undoErr error) error {
	if undoErr == nil {
		return err
	}
	return fmt.Errorf("%v\nThe database %s still holds instance %q, which this init registered (removing it failed: %v). Once the storage works, `lamina connect %s --db %s` joins it; or remove it with psql: DELETE FROM settings WHERE name = '%s'",
		err, postgres.Redact(s.Catalog), s.Name, undoErr, s.Name, s.Catalog, sharedSettingsName)
}

// newFolders notes which of the storage folders init makes for s do not
// exist yet, and returns what removes them again after a refused init,
// each only while empty (so never a byte of anyone's data). The catalog's
// and cache's folders of the name stay: another command may have made
// them theirs meanwhile (a lamina connect of the name; an older lamina's
// runtime folder was DATA/run without XDG_RUNTIME_DIR), and the next init of the name
// reuses them (audit 33: removing them deleted a connected instance's
// staged uploads, and the daemons' sockets).
func newFolders(s instance.Settings) (undo func()) {
	missing := func(p string) bool { _, err := os.Lstat(p); return errors.Is(err, fs.ErrNotExist) }
	var empty []string
	if !strings.HasPrefix(s.Storage, "s3://") {
		if abs, err := filepath.Abs(s.Storage); err == nil {
			for d := abs; missing(d) && d != filepath.Dir(d); d = filepath.Dir(d) {
				empty = append(empty, d) // deepest first
			}
		}
	}
	return func() {
		for _, d := range empty {
			if os.Remove(d) != nil { // not empty: something else put data there
				break
			}
		}
	}
}

// expandHome expands a leading ~ or ~/ of a local storage path, as the
// shell does in `--storage ~/data` but not in `--storage=~/data` (which
// made a folder named ~ in the current folder). ~user is refused.
func expandHome(p string) (string, error) {
	if !strings.HasPrefix(p, "~") {
		return p, nil
	}
	if p != "~" && !strings.HasPrefix(p, "~/") {
		return "", exitf(2, "--storage %q: give the path without ~user (the shell expands it in --storage ~user/…, not after =)", p)
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, strings.TrimPrefix(p, "~")), nil
}

// checkNewName refuses the name of an existing instance. dirs.Create
// checks again, for an init that races this one.
// lockNewName holds the lock of an init of name until unlock (or the
// process's end), waiting, and saying so, while another init holds it.
func lockNewName(c *cli.Context, dirs instance.Dirs, name string) (unlock func(), err error) {
	dir := filepath.Join(dirs.Config, "instances")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, "."+name+".init-lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		fmt.Fprintf(c.App.ErrWriter, "lamina: waiting for another lamina init of %q\n", name)
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock the init of %q: %w", name, err)
	}
	return func() { f.Close() }, nil
}

func checkNewName(dirs instance.Dirs, name string) error {
	names, err := dirs.List()
	if err != nil {
		return err
	}
	if !slices.Contains(names, name) {
		return nil
	}
	if s, err := dirs.Load(name); err == nil {
		return fmt.Errorf("an instance named %q already exists (storage %s); pick another --name", name, s.Storage)
	}
	return fmt.Errorf("an instance named %q already exists; pick another --name", name)
}

func cmdInstances() *cli.Command {
	return &cli.Command{
		Name:        "instances",
		Usage:       "list instances (* marks the current one)",
		Description: "The current instance is the one --instance or LAMINA_INSTANCE names, else the one `lamina use` remembers.",
		Flags:       []cli.Flag{formatFlag()},
		Action: func(c *cli.Context) error {
			format, err := checkFormat(c)
			if err != nil {
				return err
			}
			dirs, err := instance.UserDirs()
			if err != nil {
				return err
			}
			names, err := dirs.List()
			if err != nil {
				return err
			}
			// The one commands use: --instance or LAMINA_INSTANCE first.
			curName := c.String("instance")
			if curName == "" {
				cur, _ := dirs.Current("")
				curName = cur.Name
			}
			// A settings file that cannot be read is listed, flagged "!",
			// with what is wrong (its "error" in JSON): one broken file
			// made the whole command fail.
			type broken struct {
				Name  string `json:"name"`
				File  string `json:"settings_file"`
				Error string `json:"error"`
			}
			var rows [][]string
			all := []any{}
			var bad []string
			for _, n := range names {
				mark := ""
				if n == curName {
					mark = "*"
				}
				s, err := dirs.Load(n)
				if nerr := instance.CheckName(n); nerr != nil {
					err = fmt.Errorf("settings file %s: %v; rename the file NAME.json", dirs.SettingsPath(n), nerr)
				}
				if err != nil {
					all = append(all, broken{Name: n, File: dirs.SettingsPath(n), Error: err.Error()})
					rows = append(rows, []string{mark + "!", n, "(broken settings file: see below)", ""})
					bad = append(bad, err.Error())
					continue
				}
				all = append(all, s)
				rows = append(rows, []string{mark, s.Name, s.Storage, postgres.Redact(s.Catalog)})
			}
			if format != "json" { // its "error" says it
				defer func() {
					for _, b := range bad {
						fmt.Fprintf(c.App.ErrWriter, "lamina: %s\n", b)
					}
				}()
			}
			switch format {
			case "json":
				return writeJSON(c.App.Writer, all)
			case "csv":
				return writeCSV(c.App.Writer, []string{"current", "name", "storage", "catalog"}, rows)
			}
			return table(c.App.Writer, []string{"", "NAME", "STORAGE", "CATALOG"}, rows)
		},
	}
}

func cmdUse() *cli.Command {
	return &cli.Command{
		Name:      "use",
		Usage:     "make an instance current",
		ArgsUsage: "NAME",
		Flags:     []cli.Flag{formatFlag("table", "json")},
		Action: func(c *cli.Context) error {
			format, err := checkFormat(c, "table", "json")
			if err != nil {
				return err
			}
			if c.NArg() != 1 {
				return exitf(2, "usage: lamina use NAME")
			}
			dirs, err := instance.UserDirs()
			if err != nil {
				return err
			}
			s, err := dirs.Load(c.Args().First())
			if err != nil {
				return err
			}
			if err := dirs.SetCurrent(s.Name); err != nil {
				return err
			}
			// The remembered one changed, but an override still wins.
			o, from := c.String("instance"), "--instance"
			if o == s.Name {
				o = ""
			}
			if os.Getenv("LAMINA_INSTANCE") == o {
				from = "LAMINA_INSTANCE"
			}
			if format == "json" {
				type out struct {
					Current    string `json:"current"`
					Storage    string `json:"storage"`
					Catalog    string `json:"catalog"`
					SelectedBy string `json:"selected_by,omitempty"` // --instance or LAMINA_INSTANCE, naming another: it wins while set
					Selected   string `json:"selected,omitempty"`
				}
				r := out{Current: s.Name, Storage: s.Storage, Catalog: postgres.Redact(s.Catalog)}
				if o != "" {
					r.SelectedBy, r.Selected = from, o
				}
				return writeJSON(c.App.Writer, r)
			}
			fmt.Fprintf(c.App.Writer, "current instance: %s (storage %s, catalog %s)\n", s.Name, s.Storage, postgres.Redact(s.Catalog))
			if note := overrideNote(c, s.Name); note != "" {
				fmt.Fprintln(c.App.Writer, note)
			}
			return nil
		},
	}
}

// overrideNote says what init or use made current, name, means for the
// commands that follow, "" when nothing selects another: LAMINA_INSTANCE
// naming another still selects it while it is set; --instance applied to
// this command only (it said "--instance selects p1 while it is set", as
// if it stayed set).
func overrideNote(c *cli.Context, name string) string {
	env, o := os.Getenv("LAMINA_INSTANCE"), c.String("instance")
	flag := ""
	if o != "" && o != env && o != name {
		flag = fmt.Sprintf(" (--instance %s applied to this command only)", o)
	}
	if env != "" && env != name {
		return fmt.Sprintf("It is now the remembered current instance, but LAMINA_INSTANCE selects %q while it is set%s.", env, flag)
	}
	if flag != "" {
		return fmt.Sprintf("It is now the current instance%s.", flag)
	}
	return ""
}

// warnMountedLoser warns when the instance that just lost the storage to
// a take-over has a mount on this machine: on a local folder its daemon
// finds out at its next write (which fails: its packs are checked after
// they land) or within ownerCheckEvery; on S3 only within ownerCheckEvery
// (writes in that window succeed, and the mount names the versions they
// committed: afterTakeOverNote). It refuses writes from then on.
func warnMountedLoser(c *cli.Context, dirs instance.Dirs, o instance.Owner, taker string) {
	names, err := dirs.List()
	if err != nil {
		return
	}
	for _, n := range names {
		s, err := dirs.Load(n)
		if err != nil || s.ID != o.ID {
			continue
		}
		if st, ok := liveMount(dirs, s); ok && isS3(s) {
			fmt.Fprintf(c.App.ErrWriter, "lamina: warning: instance %q, which owned this storage, is mounted at %s (daemon pid %d): it notices within %s and turns read-only; "+
				"what it writes until then is committed in its catalog only (not in %q's), and `lamina --instance %s status` names those versions to save into %q; unmount it now (`lamina --instance %s umount %s`)\n",
				s.Name, st.Mountpoint, st.PID, ownerCheckEvery(), taker, s.Name, taker, s.Name, st.Mountpoint)
		} else if ok {
			fmt.Fprintf(c.App.ErrWriter, "lamina: warning: instance %q, which owned this storage, is mounted at %s (daemon pid %d): its next write fails and it turns read-only (within %s without one); unmount it (`lamina --instance %s umount %s`)\n",
				s.Name, st.Mountpoint, st.PID, ownerCheckEvery(), s.Name, st.Mountpoint)
		}
	}
}
