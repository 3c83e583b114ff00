package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/lamina-bio/lamina/catalog"
	"github.com/lamina-bio/lamina/instance"
	"github.com/urfave/cli/v2"
)

func cmdSearch() *cli.Command {
	return &cli.Command{
		Name:      "search",
		Usage:     "full-text search over keys, descriptions, labels, feature values and term names, best first",
		ArgsUsage: "WORDS...",
		Description: examples(
			"lamina search pbmc \"T cell\"",
			"lamina search counts -n 5 --format json"),
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "limit", Aliases: []string{"n"}, Value: 20, Usage: "at most this many results"},
			formatFlag(),
		},
		Action: func(c *cli.Context) error {
			format, err := checkFormat(c)
			if err != nil {
				return err
			}
			if c.Int("limit") < 0 { // as ls refuses one
				return exitf(2, "--limit %d: give a number of results", c.Int("limit"))
			}
			query := strings.Join(c.Args().Slice(), " ")
			if len(catalog.Words(query)) == 0 { // before the catalog's "search for what?" (ErrInvalid): the usage
				return exitf(2, "usage: lamina search WORDS... (words of two or more letters or digits, found in keys, descriptions, labels, feature values and term names)")
			}
			in, err := openInstance(c)
			if err != nil {
				return err
			}
			defer in.Close()
			hits, err := searchCatalog(c.Context, in, in.Catalog, query, c.Int("limit"), c.App.ErrWriter)
			if err != nil {
				return err
			}
			if format == "json" {
				return writeJSON(c.App.Writer, hits)
			}
			var rows [][]string
			for _, h := range hits {
				rows = append(rows, []string{fmt.Sprintf("%.2f", h.Score), h.Version.Key, fmt.Sprint(h.Version.Version), h.Version.UID,
					strings.Join(h.Fields, ","), h.Version.Description})
			}
			return writeRows(c, format, []string{"SCORE", "KEY", "VERSION", "UID", "MATCHED", "DESCRIPTION"},
				[]string{"score", "key", "version", "uid", "fields", "description"}, rows) // JSON: fields, the rest in version
		},
	}
}

// searchCatalog is cat's Search, finding a version annotated with a term
// by the names the imported ontologies give the term too (termNames): a
// term renamed since ("fat cell", now "adipocyte") is found by either
// name. A mount daemon's catalog (catalogrpc) does this itself, with its
// instance (namedSearch). warn is told when the ontologies cannot be read;
// the search then finds terms by their recorded names (and the names of
// the sources that could be read).
func searchCatalog(ctx context.Context, in *instance.Instance, cat catalog.Catalog, query string, limit int, warn io.Writer) ([]catalog.Hit, error) {
	ts, ok := cat.(catalog.TermSearcher)
	if !ok {
		return cat.Search(ctx, query, limit)
	}
	names, err := termNames(ctx, in, query)
	if err != nil {
		fmt.Fprintf(warn, "lamina: note: terms are found by the names recorded when they were annotated only: %v\n", err)
	}
	return ts.SearchWith(ctx, query, catalog.SearchOptions{Limit: limit, TermNames: names})
}

// ontologyWait bounds how long search waits for the ontology registry and
// indexes: a storage that is away must not hold a command that reads only
// the catalog (its retries would take about half a minute).
const ontologyWait = 3 * time.Second

// termNames returns, for the words of query, the terms of every imported
// source (the default versions and the others) whose name holds a word
// starting with one of them, id → their names in those sources. Term ids
// are stable across versions, names are not: a version records the name
// of its day, and search finds it by the names of every imported version
// (the default's, and the one it recorded, among them). Synonyms are left
// out (docs/annotate.md, "Term names at query time").
func termNames(ctx context.Context, in *instance.Instance, query string) (map[string][]string, error) {
	words := catalog.Words(query)
	if len(words) == 0 {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, ontologyWait)
	defer cancel()
	srcs, err := in.OntologySources(ctx)
	if err != nil {
		return nil, fmt.Errorf("the ontology registry: %w", err)
	}
	var names map[string][]string
	var first error // of a source left out; the others still count
	for _, s := range srcs {
		x, err := in.LoadSource(ctx, s)
		if err != nil {
			if first == nil {
				first = fmt.Errorf("ontology %s %s: %w", s.Entity, s.Version, err)
			}
			continue
		}
		for _, w := range words {
			x.NamesWithWord(w, func(id, name string) {
				if names == nil {
					names = map[string][]string{}
				}
				if !slices.Contains(names[id], name) {
					names[id] = append(names[id], name)
				}
			})
		}
	}
	return names, first
}

// namedSearch is a mount daemon's catalog for its clients: Search is
// searchCatalog's, with the daemon's instance, so that `lamina search`
// finds terms by their names now while a mount serves the catalog.
type namedSearch struct {
	catalog.Catalog
	in  *instance.Instance
	ts  catalog.TermSearcher
	log *slog.Logger
}

func (n namedSearch) Search(ctx context.Context, query string, limit int) ([]catalog.Hit, error) {
	names, err := termNames(ctx, n.in, query)
	if err != nil {
		n.log.Warn("search finds terms by their recorded names only", "err", err)
	}
	return n.ts.SearchWith(ctx, query, catalog.SearchOptions{Limit: limit, TermNames: names})
}
