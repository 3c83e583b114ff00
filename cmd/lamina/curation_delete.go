package main

import (
	"errors"
	"fmt"
	"slices"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/instance"
	"github.com/urfave/cli/v2"
)

// deleteCommand is `lamina feature|label|schema delete NAME...`: it
// deletes each named kind that nothing uses (the catalog checks and
// deletes in one transaction) and says why it keeps the others, going on
// with the next name; it exits 1 if it kept any. A name refused only for
// names deleted after it (a label's children) is tried again once they
// are gone. Its JSON is the list of
// the deleted records, as `ls --format json` shows them. Every name is
// looked up first (names lists those of the kind): an unknown one (a
// typo) refuses the command before anything is deleted, as `lamina
// delete` does; `collection delete nope c1` deleted c1, then exited 1.
func deleteCommand[T any](kind, extra string, names func(c *cli.Context, in *instance.Instance) ([]string, error),
	del func(c *cli.Context, in *instance.Instance, name string) (T, error), done func(T) string) *cli.Command {
	return &cli.Command{
		Name:      "delete",
		Usage:     "delete " + kind + "s that nothing uses (" + extra + ")",
		ArgsUsage: "NAME...",
		Flags:     []cli.Flag{formatFlag("table", "json")},
		Action: func(c *cli.Context) error {
			format, err := checkFormat(c, "table", "json")
			if err != nil {
				return err
			}
			if c.NArg() == 0 {
				return exitf(2, "usage: lamina %s delete NAME...", kind)
			}
			in, err := openInstance(c)
			if err != nil {
				return err
			}
			defer in.Close()
			all, err := names(c, in)
			if err != nil {
				return err
			}
			// A name given twice is one (as lamina delete takes a key):
			// label delete a a deleted a, then said no label "a" and
			// exited 1. Unlike rm a a, every name is checked before
			// anything goes, so the second a named what the command
			// itself deleted.
			args := slices.Clone(c.Args().Slice())
			seen := map[string]bool{}
			args = slices.DeleteFunc(args, func(n string) bool { dup := seen[n]; seen[n] = true; return dup })
			unknown := 0
			for _, name := range args {
				if err := catalog.CheckLookup(kind, name); err != nil {
					return err // not UTF-8: said so, exit 2, as every other command does
				}
				if !slices.Contains(all, name) {
					fmt.Fprintf(c.App.ErrWriter, "lamina: no %s %q%s\n", kind, name, catalog.DidYouMean(catalog.Closest(name, all)))
					unknown++
				}
			}
			if unknown > 0 {
				if format == "json" {
					writeJSON(c.App.Writer, []T{})
				}
				return exitf(exitNotFound, "%s: nothing deleted", plural(unknown, "unknown "+kind))
			}
			deleted := []T{}
			kept := 0
			// A name in use only by others this command deletes (label
			// delete par kid: kid is under par) is tried again once they
			// are gone, a pass at a time while a pass deletes any: the
			// order the names come in does not matter.
			todo := args
			var refused []error
			for len(todo) > 0 {
				var again []string
				refused = nil
				before := len(deleted)
				for _, name := range todo {
					r, err := del(c, in, name)
					if errors.Is(err, catalog.ErrConflict) {
						again, refused = append(again, name), append(refused, err)
						continue
					}
					if errors.Is(err, catalog.ErrNotFound) {
						fmt.Fprintf(c.App.ErrWriter, "lamina: %v\n", err)
						kept++
						continue
					}
					if err != nil {
						if format == "json" && len(deleted) > 0 {
							writeJSON(c.App.Writer, deleted)
						}
						return err
					}
					deleted = append(deleted, r)
					if format != "json" {
						if err := printf(c, "deleted %s\n", done(r)); err != nil {
							return err
						}
					}
				}
				if len(deleted) == before {
					break // nothing more goes
				}
				todo = again
			}
			for _, err := range refused {
				fmt.Fprintf(c.App.ErrWriter, "lamina: %v\n", err)
				kept++
			}
			if format == "json" {
				if err := writeJSON(c.App.Writer, deleted); err != nil {
					return err
				}
			}
			if kept > 0 {
				return exitf(1, "%s not deleted (above)", plural(kept, kind))
			}
			return nil
		},
	}
}

// namesOf returns the names of the records rs (a list call's).
func namesOf[T any](rs []T, err error, name func(T) string) ([]string, error) {
	if err != nil {
		return nil, err
	}
	ns := make([]string, len(rs))
	for i, r := range rs {
		ns[i] = name(r)
	}
	return ns, nil
}
