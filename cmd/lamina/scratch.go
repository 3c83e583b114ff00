package main

import (
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/instance"
	"github.com/lamina-bio/lamina/stage"
	"github.com/urfave/cli/v2"
)

// cmdScratch shows and sets the instance's scratch patterns: names a mount
// keeps as a plain folder with no versions and no lineage.
func cmdScratch() *cli.Command {
	return &cli.Command{
		Name:  "scratch",
		Usage: "show or set the names a mount keeps as plain scratch files (no versions, no lineage)",
		Description: "A path is scratch when one of its segments matches a pattern (path.Match syntax, one\n" +
			"segment each: \".snakemake\", \"*.tmp\", \".#*\"). Changes apply to the next mount.\n" +
			"Scratch files live in a folder of this workstation's data folder (DATA/scratch), and a mount shows one only while a\n" +
			"pattern matches it: rm and reset refuse to drop a pattern while scratch files here match only it\n" +
			"(they name them: save each as a version with a `mv` to a name no pattern matches, copy it out, or\n" +
			"delete it, with the mount up). A mount warns of scratch files no pattern matches (patterns changed\n" +
			"on another workstation of a team).",
		Flags: []cli.Flag{formatFlag("table", "json")},
		Action: func(c *cli.Context) error {
			format, err := checkFormat(c, "table", "json")
			if err != nil {
				return err
			}
			_, s, err := scratchSettings(c)
			if err != nil {
				return err
			}
			if format == "json" {
				return writeJSON(c.App.Writer, scratchPatterns(s))
			}
			for _, p := range scratchPatterns(s) {
				fmt.Fprintln(c.App.Writer, p)
			}
			return nil
		},
		Subcommands: []*cli.Command{
			{
				Name: "add", Usage: "add scratch patterns", ArgsUsage: "PATTERN…", Flags: []cli.Flag{formatFlag("table", "json")},
				Action: func(c *cli.Context) error {
					return editScratch(c, func(cur []string, ps []string) []string {
						for _, p := range ps {
							if !slices.Contains(cur, p) {
								cur = append(cur, p)
							}
						}
						return cur
					})
				},
			},
			{
				Name: "rm", Usage: "remove scratch patterns (refused while scratch files here match only them: it names them)", ArgsUsage: "PATTERN…",
				Flags: []cli.Flag{formatFlag("table", "json")},
				Action: func(c *cli.Context) error {
					return editScratch(c, func(cur []string, ps []string) []string {
						return slices.DeleteFunc(cur, func(p string) bool { return slices.Contains(ps, p) })
					})
				},
			},
			{
				Name: "reset", Usage: "go back to the default patterns (refused as rm is)", Flags: []cli.Flag{formatFlag("table", "json")},
				Action: func(c *cli.Context) error {
					return editScratch(c, func([]string, []string) []string { return nil })
				},
			},
		},
	}
}

func scratchSettings(c *cli.Context) (instance.Dirs, instance.Settings, error) {
	dirs, err := instance.UserDirs()
	if err != nil {
		return dirs, instance.Settings{}, err
	}
	s, err := dirs.Current(c.String("instance"))
	if err == nil {
		moveFromCache(c.App.ErrWriter, dirs, s) // layout.go
	}
	return dirs, s, err
}

// editScratch applies edit to the instance's patterns and saves them.
// With --format json (given to scratch or to the subcommand) it prints
// the patterns then, as scratch --format json does.
func editScratch(c *cli.Context, edit func(cur, args []string) []string) error {
	format, err := scratchFormat(c)
	if err != nil {
		return err
	}
	args := c.Args().Slice()
	for _, p := range args {
		if err := checkScratchPattern(p); err != nil {
			return err
		}
	}
	if c.Command.Name != "reset" && len(args) == 0 {
		return exitf(2, "give one or more patterns, e.g. `lamina scratch %s '*.tmp'`", c.Command.Name)
	}
	dirs, s, err := scratchSettings(c)
	if err != nil {
		return err
	}
	cur := slices.Clone(scratchPatterns(s))
	if c.Command.Name == "rm" {
		for _, p := range args {
			if !slices.Contains(cur, p) {
				return fmt.Errorf("%q is not a scratch pattern (they are: %s)", p, strings.Join(cur, " "))
			}
		}
	}
	was := slices.Clone(cur) // edit may change cur's elements
	s.Scratch = edit(cur, args)
	if s.Scratch != nil && len(s.Scratch) == 0 {
		s.Scratch = []string{} // none at all, not the defaults
	}
	if hidden := hiddenScratch(scratchDir(s), was, scratchPatterns(s)); len(hidden) > 0 {
		return refuseHiding(c, dirs, s, was, hidden)
	}
	if usesPostgres(s) {
		// Other workstations get the patterns with `lamina connect`. The
		// database first: a role that may only read is refused there, and
		// this workstation then keeps the patterns every other one has.
		st, err := openPostgres(c.Context, s, slog.New(slog.DiscardHandler))
		if err != nil {
			return err
		}
		defer st.Close()
		if err := storeShared(c.Context, st, s); err != nil {
			return err
		}
	}
	if err := dirs.Save(s); err != nil {
		return err
	}
	if format == "json" {
		if err := writeJSON(c.App.Writer, scratchPatterns(s)); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(c.App.ErrWriter, "scratch: %s\n", strings.Join(scratchPatterns(s), " "))
	}
	if c.Command.Name == "add" {
		noteScratchKeys(c, stage.Scratch(args))
	}
	if _, live := liveMount(dirs, s); live {
		fmt.Fprintln(c.App.ErrWriter, "the running mount keeps its patterns until it is mounted again (lamina umount, lamina mount)")
	}
	return nil
}

// scratchFormat is the --format of a scratch subcommand: its own, else
// scratch's (lamina scratch -f json add X).
func scratchFormat(c *cli.Context) (string, error) {
	for _, cc := range c.Lineage() {
		if cc.Command != nil && cc.IsSet("format") {
			return checkFormat(cc, "table", "json")
		}
	}
	return "table", nil
}

// scratchDir is the folder where the instance's mounts on this
// workstation keep scratch files (fs.MountOptions.ScratchDir's default
// beside mount_write.go's staging folder).
func scratchDir(s instance.Settings) string { return s.ScratchDir() }

// hiddenScratch lists the files of the scratch folder dir (slash paths
// relative to it, sorted) that the patterns was match and now do not: a
// mount with now does not show them (fs: a path is scratch only while a
// pattern matches it; the folder keeps them), but FIFOs and sockets,
// shown at any name. With was nil, every file that now does not match.
// Folders now matches are not walked: all under them stays scratch.
func hiddenScratch(dir string, was, now stage.Scratch) []string {
	var hidden []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return nil // a folder that cannot be read shows nothing either way
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if now.Match(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		special := d.Type()&(fs.ModeNamedPipe|fs.ModeSocket) != 0 // shown at any name: fs/special.go
		if !d.IsDir() && !special && (was == nil || was.Match(rel)) {
			hidden = append(hidden, rel)
		}
		return nil
	})
	return hidden
}

// refuseHiding refuses a change of the patterns that would hide the
// scratch files hidden from the next mount: they stay in the scratch
// folder, and no path of the mount would reach them.
func refuseHiding(c *cli.Context, dirs instance.Dirs, s instance.Settings, was stage.Scratch, hidden []string) error {
	mnt := "MOUNT"
	if st, live := liveMount(dirs, s); live && st.Mountpoint != "" {
		mnt = st.Mountpoint
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d scratch file(s) on this workstation would no longer match a scratch pattern, and the next mount would not show them:\n", len(hidden))
	for i, h := range hidden {
		if i == 10 {
			fmt.Fprintf(&b, "  … and %d more\n", len(hidden)-i)
			break
		}
		fmt.Fprintf(&b, "  %s\n", h)
	}
	again := "lamina scratch " + c.Command.Name
	for _, a := range c.Args().Slice() {
		again += " '" + a + "'"
	}
	fmt.Fprint(&b, "Keep or drop them first, with the mount up: ")
	if kept := scratchKeptName(hidden[0], was); kept != "" {
		fmt.Fprintf(&b, "`mv %s %s` (a name no pattern matches) saves one as a version;\n", path.Join(mnt, hidden[0]), path.Join(mnt, kept))
	}
	fmt.Fprintf(&b, "`cp` copies one out of the mount; `rm` deletes it. Then run `%s` again. The files are in %s.", again, scratchDir(s))
	return exitf(1, "%s", b.String())
}

// scratchKeptName is a name for the scratch file rel that the patterns in force
// do not match, so that mv to it in the mount saves the file as a version:
// beside it, else beside the nearest folder above it that no pattern
// holds (`w/.snakemake/log/x.log` → `w/x.log.kept`); "" when none is.
func scratchKeptName(rel string, patterns stage.Scratch) string {
	base := path.Base(rel) + ".kept"
	if !patterns.Match(rel + ".kept") {
		return rel + ".kept"
	}
	for dir := path.Dir(rel); ; dir = path.Dir(dir) {
		if cand := path.Join(dir, base); !patterns.Match(cand) {
			return cand
		}
		if dir == "." {
			return ""
		}
	}
}

// noteScratchKeys says which existing keys the added patterns match: they
// stay keys in the mount (fs: a name of the catalog is never scratch), and
// only new names that match are scratch.
func noteScratchKeys(c *cli.Context, added stage.Scratch) {
	in, err := openInstance(c)
	if err != nil {
		return
	}
	defer in.Close()
	vs, err := in.Catalog.List(c.Context, catalog.Query{})
	if err != nil {
		return
	}
	var keys []string
	for _, v := range vs {
		if added.Match(v.Key) {
			keys = append(keys, v.Key)
		}
	}
	if len(keys) == 0 {
		return
	}
	more := ""
	if len(keys) > 3 {
		keys, more = keys[:3], ", …"
	}
	fmt.Fprintf(c.App.ErrWriter, "lamina: note: existing keys match (%s%s): they stay keys in the mount; new files with such names are scratch\n", strings.Join(keys, ", "), more)
}

// checkScratchPattern refuses what would not match one name, or would
// match every name (then nothing written through a mount would be kept).
func checkScratchPattern(p string) error {
	switch {
	case p == "" || strings.Contains(p, "/"):
		return exitf(2, "scratch pattern %q: one name pattern, without '/' (a folder name matches everything under it)", p)
	case strings.Trim(p, "*") == "":
		return exitf(2, "scratch pattern %q would match every name: nothing written through a mount would get a version", p)
	}
	if _, err := path.Match(p, ""); err != nil {
		return exitf(2, "scratch pattern %q: %v", p, err)
	}
	return nil
}
