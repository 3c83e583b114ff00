package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/lamina-bio/lamina/cache"
	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/instance"
	"github.com/urfave/cli/v2"
)

func cmdGet() *cli.Command {
	return &cli.Command{
		Name:      "get",
		Usage:     "write the bytes of a version to a file, a folder or stdout",
		ArgsUsage: "KEY[@vN] | UID",
		Description: examples(
			"lamina get experiments/exp1/counts.csv@v1 -o counts-v1.csv",
			"lamina get scrna/pbmc.zarr -o data/",
			"lamina get experiments/exp1/counts.csv -o - | head"),
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "where to write: a path, a folder to write into (existing, or ending in /), or - for stdout (default: the key's name in the current folder)"},
			&cli.BoolFlag{Name: "force", Usage: "replace an existing file (a folder, for a folder artifact); with -o -, write what is not text to a terminal too"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return exitf(2, "usage: lamina get KEY[@vN] | UID [-o PATH|-]")
			}
			in, err := openInstance(c)
			if err != nil {
				return err
			}
			defer in.Close()
			v, err := resolveArg(c.Context, in, c.Args().First())
			if err != nil {
				return err
			}
			trashNote(c.App.ErrWriter, v) // trashnote.go
			out := c.String("output")
			if out == "-" {
				// Binary bytes on a terminal garble it: refused, as curl
				// does, unless --force.
				var dst io.Writer = c.App.Writer
				guard := &binaryGuard{w: dst}
				if isTerminal(dst) && !c.Bool("force") { // track.go
					dst = guard
				}
				w := bufio.NewWriterSize(dst, 1<<20)
				err := in.WriteTo(c.Context, v, w, nil)
				if err == nil {
					err = w.Flush()
				}
				if err == nil && dst == guard {
					err = guard.Flush()
				}
				if errors.Is(err, errBinaryTerminal) {
					return exitf(2, "refusing to write binary to a terminal: use -o FILE or pipe it (--force writes it anyway)")
				}
				if err == nil {
					// An input once its bytes were written, not for a get
					// refused or failed.
					trackGet(c.Context, in.Catalog, in.Run, v) // run.go
				}
				return err
			}
			switch fi, err := os.Stat(out); {
			case out == "":
				out = path.Base(v.Key)
			case strings.HasSuffix(out, "/") || (err == nil && fi.IsDir()):
				// Into a folder, as cp does.
				if err := os.MkdirAll(out, 0o755); err != nil {
					return err
				}
				out = filepath.Join(out, path.Base(v.Key))
			}
			bar := newProgress("getting", v.Size, false)
			defer bar.Done()
			if err := in.Export(c.Context, v, out, c.Bool("force"), bar.Func()); err != nil {
				return err
			}
			trackGet(c.Context, in.Catalog, in.Run, v) // run.go
			return nil
		},
	}
}

// errBinaryTerminal is binaryGuard's refusal.
var errBinaryTerminal = errors.New("binary content for a terminal")

// sniffLen is how much of the content looksBinary reads.
const sniffLen = 8 << 10

// binaryGuard passes the content on to a terminal once its first sniffLen
// bytes (all of it, if less) look like text; else it writes nothing and
// fails with errBinaryTerminal. Flush decides on a shorter content.
type binaryGuard struct {
	w    io.Writer
	head []byte // held until decided
	text bool   // decided: it is
}

func (g *binaryGuard) Write(p []byte) (int, error) {
	if g.text {
		return g.w.Write(p)
	}
	g.head = append(g.head, p...)
	if len(g.head) < sniffLen {
		return len(p), nil
	}
	if err := g.Flush(); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush decides on what is held and writes it when it is text.
func (g *binaryGuard) Flush() error {
	if g.text {
		return nil
	}
	if looksBinary(g.head) {
		return errBinaryTerminal
	}
	g.text = true
	_, err := g.w.Write(g.head)
	g.head = nil
	return err
}

// looksBinary reports whether content, of which b is the start (or all),
// is not text: a NUL byte or invalid UTF-8 in its first sniffLen bytes.
func looksBinary(b []byte) bool {
	if len(b) > sniffLen {
		b = b[:sniffLen]
		// A character cut at the end of the sample is no sign of binary.
		for i := 1; i < utf8.UTFMax && i <= len(b); i++ {
			if utf8.RuneStart(b[len(b)-i]) {
				if !utf8.FullRune(b[len(b)-i:]) {
					b = b[:len(b)-i]
				}
				break
			}
		}
	}
	return bytes.IndexByte(b, 0) >= 0 || !utf8.Valid(b)
}

// resolveArg resolves a version spec as in.Resolve does, a path into the
// instance's mount as the key it shows (keypath.go), and a folder
// artifact's key with a trailing '/' as shell completion types it
// (scrna/pbmc.zarr/) to that artifact.
func resolveArg(ctx context.Context, in *instance.Instance, arg string) (catalog.Version, error) {
	return resolveWith(ctx, in, newKeyPaths(in.Settings.Name).withUIDs(ctx, in.Catalog), arg)
}

// resolveWith is resolveArg with the paths of kp, for several arguments.
func resolveWith(ctx context.Context, in *instance.Instance, kp *keyPaths, arg string) (catalog.Version, error) {
	ka, err := kp.arg(arg, false)
	if err != nil {
		return catalog.Version{}, err
	}
	spec := ka.Spec
	v, err := in.Resolve(ctx, spec)
	if err != nil && strings.HasSuffix(spec, "/") {
		if fv, ferr := in.Resolve(ctx, strings.TrimSuffix(spec, "/")); ferr == nil && fv.Kind == cache.KindFolder {
			return fv, nil
		}
		if ferr := folderOfKeys(ctx, in.Catalog, spec); ferr != nil {
			return catalog.Version{}, ferr
		}
	}
	if err != nil {
		err = folderNamed(ctx, in.Catalog, spec, err) // keypath.go
	}
	if errors.Is(err, catalog.ErrNotFound) && ka.Bare {
		err = fmt.Errorf("%w%s", err, ka.note())
	}
	return v, err
}
