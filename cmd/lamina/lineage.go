package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/instance"
	"github.com/lamina-bio/lamina/lineage"
	"github.com/lamina-bio/lamina/ref"
	"github.com/urfave/cli/v2"
)

func cmdLineage() *cli.Command {
	return &cli.Command{
		Name:      "lineage",
		Usage:     "show where a version came from and where it went",
		ArgsUsage: "KEY[@vN] | UID",
		Description: examples(
			"lamina lineage norm/counts.csv",
			"lamina lineage norm/counts.csv --up --depth 2",
			"lamina lineage norm/counts.csv --format mermaid > lineage.mmd"),
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "format", Aliases: []string{"f"}, Value: "text", Usage: "one of " + strings.Join(lineage.Formats, ", ")},
			&cli.IntFlag{Name: "depth", Aliases: []string{"d"}, Usage: "versions to go up and down (0: all)"},
			&cli.BoolFlag{Name: "up", Usage: "upstream (alone: only upstream)"},
			&cli.BoolFlag{Name: "down", Usage: "downstream (alone: only downstream)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return exitf(2, "usage: lamina lineage KEY[@vN] [--format %s] [--depth N]", strings.Join(lineage.Formats, "|"))
			}
			format, err := checkFormat(c, lineage.Formats...)
			if err != nil {
				return err
			}
			if d := c.Int("depth"); d < 0 {
				return exitf(2, "--depth %d: give the number of versions to go up and down, 0 for no limit", d)
			}
			cat, err := openRuns(c)
			if err != nil {
				return err
			}
			defer cat.Close()
			v, err := resolveSpec(c, cat, c.Args().First())
			if err != nil {
				return runNotVersion(c.Context, cat, c.Args().First(), err) // runs.go
			}
			trashNote(c.App.ErrWriter, v) // trashnote.go
			g, err := lineage.Walk(c.Context, withoutReruns(cat, c.App.ErrWriter), v, lineage.Options{Depth: c.Int("depth"),
				NoUp: c.Bool("down") && !c.Bool("up"), NoDown: c.Bool("up") && !c.Bool("down")}) // both: both ways
			if err != nil {
				return err
			}
			host, _ := os.Hostname()
			for _, n := range g.Nodes {
				if n.Run != nil && lineage.Vanished(*n.Run, host) {
					if r, err := lineage.Abandon(c.Context, cat, *n.Run); err == nil {
						n.Run = &r // a dead run is not shown running
					}
				}
			}
			return lineage.Write(c.App.Writer, g, format)
		},
	}
}

// resolveSpec finds the version KEY, KEY@vN, a uid or a path into the
// instance's mount (keypath.go) names (trashed versions too, by number or
// uid).
func resolveSpec(c *cli.Context, cat catalog.Catalog, arg string) (catalog.Version, error) {
	name := ""
	if dirs, err := instance.UserDirs(); err == nil {
		if in, err := dirs.Current(c.String("instance")); err == nil {
			name = in.Name
		}
	}
	ka, err := newKeyPaths(name).withUIDs(c.Context, cat).arg(arg, false)
	if err != nil {
		return catalog.Version{}, err
	}
	spec := ka.Spec
	s, err := ref.ParseSpec(spec)
	if err != nil {
		if ferr := folderOfKeys(c.Context, cat, spec); ferr != nil { // keypath.go
			return catalog.Version{}, ferr
		}
		return catalog.Version{}, err // a bad key: exit 2, as get and show give (withExitCode)
	}
	if s.UID != "" {
		v, err := cat.ByUID(c.Context, s.UID)
		if errors.Is(err, catalog.ErrNotFound) {
			if kv, kerr := cat.ByKey(c.Context, spec, 0); kerr == nil {
				return kv, nil
			}
		}
		if err != nil {
			err = folderNamed(c.Context, cat, spec, err) // keypath.go
		}
		return v, err
	}
	v, err := catalog.ByKeyWithTrash(c.Context, cat, s.Key, s.Version)
	if errors.Is(err, catalog.ErrNotFound) && s.Version <= 0 {
		// A key whose versions are all in the trash (a delete, an rm)
		// still has their lineage: point to the newest.
		if all, verr := cat.Versions(c.Context, s.Key, true); verr == nil && len(all) > 0 {
			newest := all[0]
			for _, tv := range all {
				if tv.Version > newest.Version {
					newest = tv
				}
			}
			if newest.Trashed {
				return v, catalog.Errorf(catalog.ErrNotFound, "%q is in the trash; `lamina lineage %s` shows the lineage of its newest version there (`lamina ls --versions %s` lists them, `lamina restore %s` brings them back)",
					s.Key, newest.Ref(), s.Key, s.Key)
			}
		}
	}
	if err != nil {
		err = folderNamed(c.Context, cat, spec, err) // keypath.go
	}
	if errors.Is(err, catalog.ErrNotFound) && ka.Bare {
		err = fmt.Errorf("%w%s", err, ka.note())
	}
	return v, err
}

// noReruns is a lineage source that takes a daemon of an older lamina,
// which lacks the call (catalogrpc protocol 5), for one that knows of no
// rerun, and says so once on w: the rest of the lineage still reads
// through it.
type noReruns struct {
	lineage.Source
	w    io.Writer
	said bool
}

// withoutReruns returns src, reading through a daemon that lacks Reruns.
func withoutReruns(src lineage.Source, w io.Writer) lineage.Source {
	return &noReruns{Source: src, w: w}
}

func (s *noReruns) Reruns(ctx context.Context, uid string) ([]string, error) {
	got, err := s.Source.Reruns(ctx, uid)
	if errors.Is(err, errors.ErrUnsupported) {
		if !s.said {
			s.said = true
			fmt.Fprintln(s.w, "lamina: note: the mount daemon runs an older lamina that does not record reruns (runs that wrote a version's bytes again): none are shown; remount to see them")
		}
		return nil, nil
	}
	return got, err
}
