package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/lamina-bio/lamina/curate"
	"github.com/lamina-bio/lamina/dataset"
	"github.com/lamina-bio/lamina/instance"
	"github.com/lamina-bio/lamina/ontology"
	"github.com/urfave/cli/v2"
)

func cmdOntology() *cli.Command {
	return &cli.Command{
		Name:  "ontology",
		Usage: "import ontologies and check metadata values against them",
		Description: "Entities: " + entityHelp() + ", or any other lowercase name for a custom OBO file.\n" +
			"Sources are stored in the instance's storage, shared by everyone who uses it.",
		Subcommands: []*cli.Command{
			cmdOntologyImport(), cmdOntologySources(), cmdOntologyDefault(),
			cmdOntologySearch(), cmdOntologyValidate(), cmdOntologyStandardize(),
			cmdOntologyInspect(), cmdOntologyShow(),
		},
	}
}

func entityHelp() string {
	var parts []string
	for _, e := range ontology.Entities() {
		ont := e.Ontology
		if ont == "" {
			var per []string
			for _, org := range []string{"human", "mouse"} {
				if o := e.ByOrganism[org]; o != "" {
					per = append(per, o+" for "+org)
				}
			}
			ont = strings.Join(per, ", ")
		}
		parts = append(parts, e.Name+" ("+ont+")")
	}
	return strings.Join(parts, ", ")
}

func organismFlag() *cli.StringFlag {
	return &cli.StringFlag{Name: "organism", Usage: "human or mouse, for per-organism entities (gene, developmental_stage)"}
}

// sourceVersionFlag picks a source other than the default.
func sourceVersionFlag() *cli.StringFlag {
	return &cli.StringFlag{Name: "version", Usage: "use this imported version (or digest prefix) instead of the default"}
}

func cmdOntologyImport() *cli.Command {
	return &cli.Command{
		Name:      "import",
		Usage:     "import an ontology (OBO, cellxgene JSON, GO table) or gene table from a path or URL",
		ArgsUsage: "ENTITY --source PATH|URL",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "source", Aliases: []string{"s"}, Usage: "file path or http(s) URL; gzip is read transparently"},
			organismFlag(),
			&cli.StringFlag{Name: "version", Usage: "version name to record instead of the one the file gives"},
			&cli.BoolFlag{Name: "no-default", Usage: "keep the current default version of the entity"},
			&cli.BoolFlag{Name: "allow-dangling", Usage: "import a file whose parents in its own prefix are defined nowhere in it (a cut file, usually), with a warning"},
			formatFlag("table", "json"),
		},
		Action: func(c *cli.Context) error {
			format, err := checkFormat(c, "table", "json")
			if err != nil {
				return err
			}
			if f := missing(c, "source"); c.NArg() != 1 || f != "" {
				return exitf(2, "%susage: lamina ontology import ENTITY --source PATH|URL (entities: %s, or a custom lowercase name)", f, entityNames())
			}
			in, err := openInstance(c)
			if err != nil {
				return err
			}
			defer in.Close()
			location := c.String("source")
			total := int64(-1)
			if !isURL(location) {
				fi, err := os.Stat(location)
				if err != nil {
					return fileFlagError("source", location, err) // errors.go
				}
				if fi.IsDir() {
					// It said "adir: read: read adir: is a directory".
					return exitf(exitUsage, "--source %s is a folder: give a file (OBO, cellxgene JSON, a GO or gene table) or an http(s) URL", location)
				}
				total = fi.Size()
			}
			bar := newProgress("importing", total, format == "json")
			res, err := in.ImportOntology(c.Context, location, instance.OntologyImportOptions{
				Entity: c.Args().First(), Organism: c.String("organism"), Version: c.String("version"),
				NoDefault: c.Bool("no-default"), AllowDangling: c.Bool("allow-dangling"), Client: httpClient(), Progress: bar.Func(), Size: bar.SetTotal,
			})
			bar.Done()
			if errors.Is(err, ontology.ErrOrganism) {
				return exitf(exitUsage, "%s: use --organism", strings.TrimPrefix(err.Error(), "ontology: "))
			}
			if err != nil {
				return err
			}
			if format == "json" {
				warnings := res.Warnings
				if warnings == nil {
					warnings = []string{}
				}
				return writeJSON(c.App.Writer, struct {
					instance.OntologySource
					Unchanged bool     `json:"unchanged"`
					Warnings  []string `json:"warnings"`
				}{res.Source, res.Unchanged, warnings})
			}
			s := res.Source
			if res.Unchanged {
				fmt.Fprintf(c.App.Writer, "unchanged: %s %s was already imported from these bytes (digest %.12s, %s by %s); nothing written\n",
					describeSource(s), s.Version, s.Digest, s.ImportedAt.Local().Format("2006-01-02 15:04"), s.ImportedBy)
				return nil
			}
			def := "kept the current default"
			if s.Default {
				def = "now the default"
			}
			fmt.Fprintf(c.App.Writer, "imported %s %s: %d terms (%d obsolete), digest %.12s, %s\n",
				describeSource(s), s.Version, s.Terms, s.Obsolete, s.Digest, def)
			const maxWarnings = 5
			for i, w := range res.Warnings {
				if i == maxWarnings {
					fmt.Fprintf(c.App.ErrWriter, "lamina: warning: … and %d more\n", len(res.Warnings)-maxWarnings)
					break
				}
				fmt.Fprintln(c.App.ErrWriter, "lamina: warning:", w)
			}
			return nil
		},
	}
}

// describeSource names a source for people: "celltype (CL)", "gene (Ensembl, human)".
func describeSource(s instance.OntologySource) string {
	if s.Organism != "" {
		return fmt.Sprintf("%s (%s, %s)", s.Entity, s.Ontology, s.Organism)
	}
	return fmt.Sprintf("%s (%s)", s.Entity, s.Ontology)
}

func entityNames() string {
	var names []string
	for _, e := range ontology.Entities() {
		names = append(names, e.Name)
	}
	return strings.Join(names, ", ")
}

func isURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}

// httpClient fetches sources: it gives up on a server that does not answer,
// but not on a large download that is progressing.
func httpClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.ResponseHeaderTimeout = time.Minute
	return &http.Client{Transport: t}
}

var sourceHeader = []string{"ENTITY", "ORGANISM", "ONTOLOGY", "VERSION", "TERMS", "OBSOLETE", "DIGEST", "DEFAULT", "IMPORTED", "BY"}

// sourceCSVHeader names sourceHeader's columns as the JSON does.
var sourceCSVHeader = []string{"entity", "organism", "ontology", "version", "terms", "obsolete", "digest", "default", "imported_at", "imported_by"}

func printSources(c *cli.Context, format string, ss []instance.OntologySource) error {
	w := c.App.Writer
	if format == "json" {
		if ss == nil {
			ss = []instance.OntologySource{}
		}
		return writeJSON(w, ss)
	}
	machine := format == "csv"
	rows := make([][]string, 0, len(ss))
	for _, s := range ss {
		digest, imported, def := s.Digest[:min(12, len(s.Digest))], s.ImportedAt.Local().Format("2006-01-02 15:04"), ""
		if s.Default {
			def = "*"
		}
		if machine {
			digest, imported, def = s.Digest, s.ImportedAt.Format(time.RFC3339Nano), fmt.Sprint(s.Default)
		}
		org := s.Organism
		if org == "" && !machine {
			org = "-"
		}
		rows = append(rows, []string{s.Entity, org, s.Ontology, s.Version, fmt.Sprint(s.Terms), fmt.Sprint(s.Obsolete), digest, def, imported, s.ImportedBy})
	}
	if machine {
		return writeCSV(w, sourceCSVHeader, rows)
	}
	if len(ss) == 0 {
		fmt.Fprintln(c.App.ErrWriter, "no ontologies imported yet: lamina ontology import ENTITY --source PATH|URL")
		return nil
	}
	return table(w, sourceHeader, rows)
}

func cmdOntologySources() *cli.Command {
	return &cli.Command{
		Name:      "sources",
		Usage:     "list imported ontology sources (* marks the default of each entity)",
		ArgsUsage: "[ENTITY]",
		Flags:     []cli.Flag{formatFlag()},
		Action: func(c *cli.Context) error {
			format, err := checkFormat(c)
			if err != nil {
				return err
			}
			if c.NArg() > 1 {
				return exitf(2, "usage: lamina ontology sources [ENTITY]")
			}
			in, err := openInstance(c)
			if err != nil {
				return err
			}
			defer in.Close()
			all, err := in.OntologySources(c.Context)
			if err != nil {
				return err
			}
			var ss []instance.OntologySource
			for _, s := range all {
				if c.NArg() == 0 || s.Entity == c.Args().First() {
					ss = append(ss, s)
				}
			}
			return printSources(c, format, ss)
		},
	}
}

func cmdOntologyDefault() *cli.Command {
	return &cli.Command{
		Name:      "default",
		Usage:     "show or switch the default version of an entity's ontology",
		ArgsUsage: "ENTITY [VERSION]",
		Flags:     []cli.Flag{organismFlag(), formatFlag("table", "json")},
		Action: func(c *cli.Context) error {
			format, err := checkFormat(c, "table", "json")
			if err != nil {
				return err
			}
			if c.NArg() < 1 || c.NArg() > 2 {
				return exitf(2, "usage: lamina ontology default ENTITY [VERSION] [--organism human|mouse]")
			}
			in, err := openInstance(c)
			if err != nil {
				return err
			}
			defer in.Close()
			entity, version := c.Args().Get(0), c.Args().Get(1)
			var prev, s instance.OntologySource
			if version == "" {
				s, err = in.ResolveOntology(c.Context, entity, c.String("organism"), "")
			} else {
				prev, _ = in.ResolveOntology(c.Context, entity, c.String("organism"), "")
				s, err = in.SetDefaultOntology(c.Context, entity, c.String("organism"), version)
			}
			if err != nil {
				return err
			}
			if format == "json" {
				return writeJSON(c.App.Writer, s)
			}
			switch {
			case version == "":
				fmt.Fprintf(c.App.Writer, "%s: default is %s (%d terms, digest %.12s)\n", describeSource(s), s.Version, s.Terms, s.Digest)
			case prev.Digest == s.Digest:
				fmt.Fprintf(c.App.Writer, "%s: %s is already the default\n", describeSource(s), s.Version)
			default:
				fmt.Fprintf(c.App.Writer, "%s: default is now %s (was %s)\n", describeSource(s), s.Version, prev.Version)
			}
			return nil
		},
	}
}

// openIndex opens the instance and loads the index of the source the
// command's ENTITY argument, --organism and --version select.
func openIndex(c *cli.Context) (*instance.Instance, *ontology.Index, instance.OntologySource, error) {
	in, err := openInstance(c)
	if err != nil {
		return nil, nil, instance.OntologySource{}, err
	}
	x, s, err := in.LoadOntology(c.Context, c.Args().First(), c.String("organism"), c.String("version"))
	if err != nil {
		in.Close()
		return nil, nil, s, err
	}
	return in, x, s, nil
}

type hitJSON struct {
	ID       string  `json:"id"`
	Name     string  `json:"name"`
	Matched  string  `json:"matched"`
	Rank     string  `json:"rank"`
	Score    float64 `json:"score"`
	Obsolete bool    `json:"obsolete"`
}

func cmdOntologySearch() *cli.Command {
	return &cli.Command{
		Name:      "search",
		Usage:     "find terms by name, synonym, prefix or a close spelling",
		ArgsUsage: "ENTITY QUERY",
		Description: examples(
			"lamina ontology search celltype \"T cell\" -n 5",
			"lamina ontology search gene CD4 --organism human --format json"),
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "limit", Aliases: []string{"n"}, Value: 20, Usage: "at most this many results"},
			&cli.BoolFlag{Name: "obsolete", Usage: "include obsolete terms"},
			organismFlag(), sourceVersionFlag(), formatFlag(),
		},
		Action: func(c *cli.Context) error {
			format, err := checkFormat(c)
			if err != nil {
				return err
			}
			query := strings.TrimSpace(strings.Join(c.Args().Tail(), " "))
			if c.NArg() < 2 || query == "" {
				return exitf(2, "usage: lamina ontology search ENTITY QUERY [--limit N]")
			}
			if c.Int("limit") < 1 {
				return exitf(2, "--limit must be at least 1")
			}
			in, x, s, err := openIndex(c)
			if err != nil {
				return err
			}
			defer in.Close()
			hits := x.Search(query, ontology.SearchOptions{Limit: c.Int("limit"), Obsolete: c.Bool("obsolete")})
			out := make([]hitJSON, len(hits))
			rows := make([][]string, len(hits))
			for i, h := range hits {
				out[i] = hitJSON{h.ID, h.Name, h.Matched, h.Rank.String(), h.Score, h.Obsolete}
				matched := ""
				if h.Matched != h.Name {
					matched = h.Matched
				}
				name := h.Name
				if h.Obsolete {
					name += " (obsolete)"
				}
				rows[i] = []string{h.ID, name, matched, h.Rank.String()}
			}
			switch format {
			case "json":
				return writeJSON(c.App.Writer, out)
			case "csv":
				for i, h := range hits {
					rows[i] = []string{h.ID, h.Name, h.Matched, h.Rank.String(), fmt.Sprint(h.Obsolete)}
				}
				return writeCSV(c.App.Writer, []string{"id", "name", "matched", "rank", "obsolete"}, rows)
			}
			if len(hits) == 0 {
				fmt.Fprintf(c.App.ErrWriter, "no %s term matches %q in %s %s\n", s.Entity, query, s.Ontology, s.Version)
				return nil
			}
			return table(c.App.Writer, []string{"ID", "NAME", "MATCHED", "RANK"}, rows)
		},
	}
}

func valuesFlag() *cli.StringFlag {
	return &cli.StringFlag{Name: "file", Usage: "read values from this file, one a line (- for stdin)"}
}

// readValues returns the values after ENTITY, or those of --file, or of
// stdin when there are neither. Lines keep their spaces ("Monocyte " is a
// value to check); only the line ending and empty lines are dropped.
func readValues(c *cli.Context) ([]string, error) {
	args := c.Args().Slice()[1:]
	file := c.String("file")
	if len(args) > 0 {
		if file != "" {
			return nil, exitf(2, "give values as arguments or with --file, not both")
		}
		return args, nil
	}
	var r io.Reader = c.App.Reader
	if file != "" && file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return nil, fileFlagError("file", file, err) // errors.go
		}
		defer f.Close()
		r = f
	} else if f, ok := r.(*os.File); ok && file == "" {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			return nil, exitf(2, "no values: give them as arguments, with --file, or on stdin")
		}
	}
	var vals []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for first := true; sc.Scan(); first = false {
		line := sc.Text()
		if first {
			// A byte order mark (Notepad, Excel's "UTF-8 text") is no
			// part of the first value: left in, "\ufeffT cell" failed.
			// The table readers drop it too (dataset.NewTextReader).
			line = strings.TrimPrefix(line, "\ufeff")
		}
		if v := strings.TrimSuffix(line, "\r"); v != "" {
			vals = append(vals, v)
		}
	}
	if err := sc.Err(); err != nil {
		if file != "" && file != "-" {
			return nil, fileFlagError("file", file, err)
		}
		return nil, fmt.Errorf("read values: %w", err)
	}
	if len(vals) == 0 {
		return nil, exitf(2, "no values to check")
	}
	return vals, nil
}

type validationJSON struct {
	Value      string   `json:"value"`
	Valid      bool     `json:"valid"`
	ID         string   `json:"id,omitempty"`
	IDs        []string `json:"ids,omitempty"` // a name several terms have: all of them, and no id
	Name       string   `json:"name,omitempty"`
	Obsolete   bool     `json:"obsolete,omitempty"`
	ReplacedBy []string `json:"replaced_by,omitempty"`
	Message    string   `json:"message"`
}

func cmdOntologyValidate() *cli.Command {
	return &cli.Command{
		Name:      "validate",
		Usage:     "check values are exact term names or ids (case-sensitive); exit 1 if any is not",
		ArgsUsage: "ENTITY [VALUE...]",
		Flags:     []cli.Flag{valuesFlag(), organismFlag(), sourceVersionFlag(), formatFlag()},
		Action: func(c *cli.Context) error {
			format, err := checkFormat(c)
			if err != nil {
				return err
			}
			if c.NArg() < 1 {
				return exitf(2, "usage: lamina ontology validate ENTITY VALUE... (or --file F, or values on stdin)")
			}
			vals, err := readValues(c)
			if err != nil {
				return err
			}
			in, x, s, err := openIndex(c)
			if err != nil {
				return err
			}
			defer in.Close()
			failed := 0
			var obsolete []string // their messages, which name the replacement
			out := make([]validationJSON, len(vals))
			rows := make([][]string, len(vals))
			for i, v := range vals {
				r := x.Validate(v)
				if !r.Valid {
					failed++
					if r.Obsolete {
						obsolete = append(obsolete, r.Message())
					}
				}
				out[i] = validationJSON{v, r.Valid, r.ID, r.IDs, r.Name, r.Obsolete, r.ReplacedBy, r.Message()}
				mark := "✓"
				if !r.Valid {
					mark = "✗"
				}
				rows[i] = []string{mark, r.Message()}
			}
			w := c.App.Writer
			switch format {
			case "json":
				err = writeJSON(w, out)
			case "csv":
				for i, o := range out {
					rows[i] = []string{o.Value, fmt.Sprint(o.Valid), joinIDs(o.ID, o.IDs), o.Name, o.Message}
				}
				err = writeCSV(w, []string{"value", "valid", "id", "name", "message"}, rows)
			default:
				for _, r := range rows {
					fmt.Fprintln(w, r[0], r[1])
				}
			}
			if err != nil {
				return err
			}
			if failed > 0 {
				// Standardize maps spellings; an obsolete term needs its
				// replacement, which the term names (replaced_by, consider).
				hint := "; `lamina ontology standardize` maps synonyms, case and white space"
				switch {
				case len(obsolete) == failed && failed <= 3:
					hint = ":\n" + strings.Join(obsolete, "\n")
				case len(obsolete) == failed:
					hint = "; they are obsolete: use the replacement each line names"
				case len(obsolete) > 0:
					hint += "; an obsolete term needs the replacement its line names"
				}
				return exitf(1, "%d of %d values are not valid %s terms (%s %s)%s",
					failed, len(vals), s.Entity, s.Ontology, s.Version, hint)
			}
			return nil
		},
	}
}

type candidateJSON struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Via  string `json:"via,omitempty"`
}

type standardJSON struct {
	Value      string          `json:"value"`
	Standard   string          `json:"standard"`
	ID         string          `json:"id,omitempty"`
	IDs        []string        `json:"ids,omitempty"` // a name several terms have: all of them, and no id
	Match      string          `json:"match"`
	Changed    bool            `json:"changed"`
	Via        string          `json:"via,omitempty"`
	Candidates []candidateJSON `json:"candidates,omitempty"`
	// Leads: the terms an unmatched value is a BROAD or NARROW synonym of
	// (never mapped; Reason names them).
	Leads []leadJSON `json:"leads,omitempty"`
	// Related: the terms a RELATED synonym equal to an unmatched value
	// names (one without --related, or several: never mapped).
	Related []candidateJSON `json:"related,omitempty"`
	Reason  string          `json:"reason"`
}

type leadJSON struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Via   string `json:"via"`
	Scope string `json:"scope"` // BROAD or NARROW
}

func toStandardJSON(r ontology.Standardization) standardJSON {
	o := standardJSON{Value: r.Value, Standard: r.Standard(), ID: r.ID, IDs: r.IDs, Match: r.Match.String(),
		Changed: r.Changed(), Via: r.Via, Reason: r.Reason()}
	for _, cand := range r.Candidates {
		o.Candidates = append(o.Candidates, candidateJSON(cand))
	}
	for _, l := range r.Leads {
		o.Leads = append(o.Leads, leadJSON{l.ID, l.Name, l.Via, l.Scope.String()})
	}
	for _, c := range r.Related {
		o.Related = append(o.Related, candidateJSON(c))
	}
	return o
}

func cmdOntologyStandardize() *cli.Command {
	return &cli.Command{
		Name:      "standardize",
		Usage:     "map values to standard term names (case, white space, EXACT synonyms, obsolete terms)",
		ArgsUsage: "ENTITY [VALUE...]",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "related", Usage: "also map through RELATED synonyms"},
			valuesFlag(), organismFlag(), sourceVersionFlag(), formatFlag(),
		},
		Action: func(c *cli.Context) error {
			format, err := checkFormat(c)
			if err != nil {
				return err
			}
			if c.NArg() < 1 {
				return exitf(2, "usage: lamina ontology standardize ENTITY VALUE... (or --file F, or values on stdin)")
			}
			vals, err := readValues(c)
			if err != nil {
				return err
			}
			in, x, _, err := openIndex(c)
			if err != nil {
				return err
			}
			defer in.Close()
			opts := ontology.StandardizeOptions{Related: c.Bool("related")}
			out := make([]standardJSON, len(vals))
			rows := make([][]string, len(vals))
			for i, v := range vals {
				r := x.Standardize(v, opts)
				out[i] = toStandardJSON(r)
				o := out[i]
				switch {
				case !r.Matched():
					rows[i] = []string{showValue(v), "unchanged", "", o.Reason}
				case !o.Changed:
					rows[i] = []string{showValue(v), "=", shortIDs(r.TermIDs()), o.Reason}
				default:
					rows[i] = []string{showValue(v), "-> " + orIDs(o.Standard, r.TermIDs()), shortIDs(r.TermIDs()), o.Reason}
				}
			}
			switch format {
			case "json":
				return writeJSON(c.App.Writer, out)
			case "csv":
				for i, o := range out {
					rows[i] = []string{o.Value, o.Standard, joinIDs(o.ID, o.IDs), o.Match, o.Reason}
				}
				return writeCSV(c.App.Writer, []string{"value", "standard", "id", "match", "reason"}, rows)
			}
			return table(c.App.Writer, []string{"VALUE", "STANDARD", "ID", "NOTE"}, rows)
		},
	}
}

// nameID is "T cell (CL:0000084)", or the id alone for a term without a
// name (OBO allows one): " (X:1) has no parents" read as a broken line.
func nameID(name, id string) string {
	if name == "" {
		return id
	}
	return name + " (" + id + ")"
}

// orIDs is name, or the ids of a term that has none.
func orIDs(name string, ids []string) string {
	if name == "" {
		return shortIDs(ids)
	}
	return name
}

// joinIDs is the id, or the ids of a name several terms have, for a cell.
func joinIDs(id string, ids []string) string {
	if len(ids) > 0 {
		return strings.Join(ids, ", ")
	}
	return id
}

// shortIDs lists ids for a table cell: the first three of a name many
// terms have (the note lists more, --format json all of them).
func shortIDs(ids []string) string {
	if len(ids) > 3 {
		return fmt.Sprintf("%s, … (%d)", strings.Join(ids[:3], ", "), len(ids))
	}
	return strings.Join(ids, ", ")
}

// showValue is a value for a table cell: quoted (curate.Quote, as curate
// shows values) when its white space would be invisible, or it has bytes
// that are not UTF-8 (\xe9) or characters a terminal would not show, which
// inspect used to print raw; a long value cut with its length (a 1.2 MB
// value padded inspect's table to 3.6 MB). JSON keeps values whole.
func showValue(v string) string {
	if strings.TrimSpace(v) != v || strings.Contains(v, "  ") || !utf8.ValidString(v) ||
		strings.IndexFunc(v, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return curate.Quote(v)
	}
	if short, cut := curate.Cut(v); cut {
		return fmt.Sprintf("%s… (%d bytes)", short, len(v))
	}
	return v
}

type suggestionJSON struct {
	ID      string   `json:"id"`
	IDs     []string `json:"ids,omitempty"` // every id of a name several terms have
	Name    string   `json:"name"`
	Matched string   `json:"matched,omitempty"`
	Score   float64  `json:"score"`
}

type reportJSON struct {
	Value       string           `json:"value"`
	Count       int              `json:"count"`
	Status      string           `json:"status"` // valid, mapped, ambiguous, unknown
	Standard    *standardJSON    `json:"standard,omitempty"`
	Suggestions []suggestionJSON `json:"suggestions,omitempty"`
}

type inspectionJSON struct {
	Entity    string `json:"entity"`
	Ontology  string `json:"ontology"`
	Version   string `json:"version"`
	File      string `json:"file"`
	Column    string `json:"column"`
	Rows      int    `json:"rows"`
	Empty     int    `json:"empty"`
	Validated int    `json:"validated"`
	Mapped    int    `json:"mapped"`
	Failed    int    `json:"failed"`
	// Unsuggested counts the values not found that got no suggestions:
	// only the curate.MaxListed most frequent do.
	Unsuggested int          `json:"unsuggested"`
	Values      []reportJSON `json:"values"`
}

func cmdOntologyInspect() *cli.Command {
	return &cli.Command{
		Name:      "inspect",
		Usage:     "report which values of a table column validate, which map through synonyms, and suggestions for the rest",
		ArgsUsage: "ENTITY --column COL FILE",
		Description: "FILE is a table: " + inspectFormats + ". An AnnData's column is looked up in obs, then var;\n" +
			"obs.COL or var.COL names one of them. The table lists the 20 most frequent values of each status\n" +
			"(suggestions for those not found); --format json lists every value.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "column", Aliases: []string{"c"}, Usage: "column to inspect (obs.COL or var.COL in an AnnData)"},
			&cli.BoolFlag{Name: "related", Usage: "also map through RELATED synonyms"},
			organismFlag(), sourceVersionFlag(), formatFlag("table", "json"),
		},
		Action: func(c *cli.Context) error {
			format, err := checkFormat(c, "table", "json")
			if err != nil {
				return err
			}
			if f := missing(c, "column"); c.NArg() != 2 || f != "" {
				return exitf(2, "%susage: lamina ontology inspect ENTITY --column COL FILE (%s)", f, inspectFormats)
			}
			file, col := c.Args().Get(1), c.String("column")
			vals, empty, err := readColumn(file, col, c.App.ErrWriter)
			if err != nil {
				return unreadable(err)
			}
			in, x, s, err := openIndex(c)
			if err != nil {
				return err
			}
			defer in.Close()
			// As curate: suggestions for the most frequent unknown values
			// only (curate.MaxListed), and the table lists as many of each
			// status; --format json has every value.
			res := x.InspectSuggesting(vals, ontology.StandardizeOptions{Related: c.Bool("related")}, curate.MaxListed)
			out := inspectionJSON{Entity: s.Entity, Ontology: s.Ontology, Version: s.Version, File: file, Column: col,
				Rows: len(vals) + empty, Empty: empty, Values: []reportJSON{}}
			listed := listedReports(res.Reports)
			var rows [][]string
			unlisted := map[string][2]int{} // status: values, rows
			for k, r := range res.Reports {
				o := reportJSON{Value: r.Value, Count: r.Count}
				var term string
				switch {
				case r.Valid:
					o.Status, term = "valid", shortIDs(x.Validate(r.Value).TermIDs())
					out.Validated++
				case r.Standard.Matched():
					st := toStandardJSON(r.Standard)
					o.Status, o.Standard = "mapped", &st
					term = fmt.Sprintf("-> %s: %s", nameID(st.Standard, shortIDs(r.Standard.TermIDs())), st.Reason)
					out.Mapped++
				default:
					o.Status = "unknown"
					if r.Standard.Match == ontology.Ambiguous {
						o.Status = "ambiguous"
					}
					if r.Standard.Match != ontology.NoMatch || r.Standard.Obsolete != "" || len(r.Standard.Related) > 0 || len(r.Standard.Leads) > 0 {
						st := toStandardJSON(r.Standard)
						o.Standard = &st
						term = st.Reason
					}
					var names []string
					for _, sg := range r.Suggestions {
						o.Suggestions = append(o.Suggestions, suggestionJSON{sg.ID, sg.IDs, sg.Name, sg.Matched, sg.Score})
						names = append(names, sg.String())
					}
					if len(names) > 0 {
						if term != "" {
							term += "; "
						}
						term += "did you mean " + strings.Join(names, ", ")
					} else if term == "" {
						term = "no close term"
					}
					out.Failed++
				}
				if !r.Valid && !r.Standard.Matched() && !r.Suggested {
					out.Unsuggested++
				}
				out.Values = append(out.Values, o)
				if !listed[k] {
					class := o.Status
					if class != "valid" && class != "mapped" {
						class = "not found"
					}
					u := unlisted[class]
					unlisted[class] = [2]int{u[0] + 1, u[1] + r.Count}
					continue
				}
				rows = append(rows, []string{showValue(r.Value), fmt.Sprint(r.Count), o.Status, term})
			}
			if format == "json" {
				return writeJSON(c.App.Writer, out)
			}
			if err := table(c.App.Writer, []string{"VALUE", "ROWS", "STATUS", "TERM"}, rows); err != nil {
				return err
			}
			for _, class := range [][2]string{{"valid", "valid values"}, {"mapped", "values that map"}, {"not found", "values not found"}} {
				if u := unlisted[class[0]]; u[0] > 0 {
					fmt.Fprintf(c.App.Writer, "… and %d more %s (%d rows), not listed: --format json lists them all\n", u[0], class[1], u[1])
				}
			}
			fmt.Fprintf(c.App.Writer, "\n%s: %d distinct values in %d rows against %s %s: %d valid, %d map to a standard term, %d not found",
				col, len(res.Reports), out.Rows, s.Ontology, s.Version, out.Validated, out.Mapped, out.Failed)
			if empty > 0 {
				fmt.Fprintf(c.App.Writer, ", %d missing", empty) // empty, NA, NaN, null: not checked
			}
			fmt.Fprintln(c.App.Writer)
			return nil
		},
	}
}

// listedReports marks the reports inspect's table lists: of each status
// (valid, mapped, not found) the curate.MaxListed most frequent, ties in
// first-seen order. The values not found that are listed are those
// InspectSuggesting gave suggestions (the same rule).
func listedReports(rs []ontology.Report) []bool {
	listed := make([]bool, len(rs))
	var valid, mapped []int
	for k, r := range rs {
		switch {
		case r.Valid:
			valid = append(valid, k)
		case r.Standard.Matched():
			mapped = append(mapped, k)
		default:
			listed[k] = r.Suggested
		}
	}
	for _, ks := range [][]int{valid, mapped} {
		sort.SliceStable(ks, func(i, j int) bool { return rs[ks[i]].Count > rs[ks[j]].Count })
		for _, k := range ks[:min(len(ks), curate.MaxListed)] {
			listed[k] = true
		}
	}
	return listed
}

// inspectFormats names the tables inspect reads, for usage and errors.
const inspectFormats = "CSV or TSV (gzip too), Parquet, h5ad or AnnData zarr"

// readColumn returns the non-empty values of one column of a table and how
// many were empty. Parquet and AnnData (h5ad, zarr) are read as curate reads
// them (package dataset); any other file is read as text (readTextColumn).
func readColumn(path, column string, warn io.Writer) ([]string, int, error) {
	switch dataset.DetectFormat(path) {
	case dataset.Parquet, dataset.H5AD, dataset.AnnDataZarr:
		return readTableColumn(path, column, warn)
	case dataset.FCS:
		return nil, 0, exitf(2, "%s is an FCS file, which has channels, not table columns: inspect reads %s", path, inspectFormats)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, 0, err
	}
	if fi.IsDir() {
		return nil, 0, exitf(2, "%s is a folder but not an AnnData zarr: inspect reads %s", path, inspectFormats)
	}
	return readTextColumn(path, column)
}

// readTableColumn reads column from the tables of a Parquet or AnnData
// file: the first table that has it (obs before var), or SLOT.NAME.
func readTableColumn(path, column string, warn io.Writer) ([]string, int, error) {
	ts, err := dataset.Tables(path)
	if err != nil {
		return nil, 0, err
	}

	col := findColumn(ts, column)
	if col == nil {
		for _, t := range ts {
			if err := t.UnreadErr(column); err != nil {
				return nil, 0, unreadable(fmt.Errorf("%s: %w", path, err))
			}
		}
		var parts []string
		for _, t := range ts {
			names := make([]string, len(t.Columns))
			for i, c := range t.Columns {
				names[i] = c.Name
			}
			list := columnNames(names)
			if t.Slot != "" {
				list = t.Slot + ": " + list
			}
			parts = append(parts, list)
		}
		return nil, 0, exitf(2, "%s has no column %q; its columns: %s", path, column, strings.Join(parts, "; "))
	}
	for i := range ts {
		if c, ok := ts[i].Col(col.Name); ok && c == col {
			tableWarnings(warn, path, ts[i:i+1], col.Name)
		}
	}
	var vals []string
	empty := 0
	// A float column's NaN is missing, as curate counts it (pandas'
	// missing value): it was the value "NaN", an alias of SCN11A.
	floats := col.Dtype == "float" && col.Exact == nil
	for i := range col.Len() {
		if floats && math.IsNaN(col.Floats[i]) {
			empty++
		} else if v := col.Text(i); v != "" {
			vals = append(vals, v)
		} else {
			empty++
		}
	}
	return vals, empty, nil
}

// findColumn returns the column called name in the first table that has
// one, else the column SLOT.NAME names; nil when there is none.
func findColumn(ts []dataset.Table, name string) *dataset.Series {
	for i := range ts {
		if c, ok := ts[i].Col(name); ok {
			return c
		}
	}
	if slot, rest, ok := strings.Cut(name, "."); ok && slot != "" {
		for i := range ts {
			if ts[i].Slot == slot {
				if c, ok := ts[i].Col(rest); ok {
					return c
				}
			}
		}
	}
	return nil
}

// readTextColumn returns the cells of one column of a CSV or TSV file
// (gzip read transparently) that are not missing, and how many were:
// empty, or pandas' NA spellings (dataset.MissingText). The
// delimiter is a tab for .tsv and .tab files, and a header line with tabs
// but no commas. A file that does not look like text is refused, so that no
// error shows its bytes.
func readTextColumn(path, column string) ([]string, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 64<<10)
	var r io.Reader = br
	if magic, _ := br.Peek(2); bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, 0, fmt.Errorf("%s: %w", path, err)
		}
		defer gz.Close()
		r = gz
	}
	rd := bufio.NewReaderSize(r, 64<<10)
	head, _ := rd.Peek(4096)
	if !looksLikeText(head) {
		return nil, 0, exitf(2, "%s does not look like a CSV or TSV table (it has binary bytes): inspect reads %s", path, inspectFormats)
	}
	if i := bytes.IndexByte(head, '\n'); i >= 0 {
		head = head[:i]
	}
	name := strings.TrimSuffix(strings.ToLower(path), ".gz")
	tsv := strings.HasSuffix(name, ".tsv") || strings.HasSuffix(name, ".tab") ||
		(bytes.IndexByte(head, '\t') >= 0 && bytes.IndexByte(head, ',') < 0)
	format := dataset.CSV
	if tsv {
		format = dataset.TSV
	}
	// As curate and save read it: every row has the header's number of
	// fields (a short or long row is an error, not a missing value).
	cr := dataset.NewTextReader(rd, format)
	header, err := cr.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, 0, fmt.Errorf("%s is empty", path)
		}
		return nil, 0, textErr(path, err)
	}
	if err := dataset.CheckUTF8(cr, header); err != nil {
		return nil, 0, textErr(path, err)
	}
	idx, n := -1, 0
	for i, h := range header {
		if h == column {
			if idx < 0 {
				idx = i
			}
			n++
		}
	}
	if idx < 0 {
		return nil, 0, exitf(2, "%s has no column %q; its columns: %s", path, column, columnNames(header))
	}
	if n > 1 {
		// Curate refuses such a table: which column is meant is a guess.
		return nil, 0, exitf(2, "%s: %s: more than one column has this name; rename or remove all but one", path, columnNames([]string{column}))
	}
	var vals []string
	empty := 0
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, 0, textErr(path, err)
		}
		if err := dataset.CheckUTF8(cr, rec); err != nil {
			return nil, 0, textErr(path, err)
		}
		if dataset.MissingText(rec[idx]) { // NA, NaN, null: missing, as curate reads them
			empty++
			continue
		}
		vals = append(vals, rec[idx])
	}
	return vals, empty, nil
}

// textErr words a CSV or TSV parse error as curate does (dataset's
// reader): "PATH: cannot read the file's structure: line 3: wrong number
// of fields".
func textErr(path string, err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w: line %d: %v", path, dataset.ErrCorrupt, pe.Line, pe.Err)
	}
	return fmt.Errorf("%s: %w", path, err)
}

// looksLikeText reports whether the start of a file can be text: binary
// formats have NUL bytes early, text (UTF-8 or Latin-1) has none.
func looksLikeText(b []byte) bool { return bytes.IndexByte(b, 0) < 0 }

// columnNames lists a header for a message, quoting a name that has
// characters a terminal would not show as they are.
func columnNames(names []string) string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = n
		if !utf8.ValidString(n) || strings.IndexFunc(n, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
			out[i] = strconv.Quote(n)
		}
	}
	return strings.Join(out, ", ")
}

type termJSON struct {
	ID         string        `json:"id"`
	Name       string        `json:"name"`
	Definition string        `json:"definition,omitempty"`
	Namespace  string        `json:"namespace,omitempty"`
	Synonyms   []synonymJSON `json:"synonyms,omitempty"`
	Parents    []relatedJSON `json:"parents,omitempty"`
	PartOf     []relatedJSON `json:"part_of,omitempty"`
	// ParentsMixed: the source does not tell is_a from part_of (cellxgene
	// JSON), so Parents holds both.
	ParentsMixed bool          `json:"parents_is_a_or_part_of,omitempty"`
	AltIDs       []string      `json:"alt_ids,omitempty"`
	Obsolete     bool          `json:"obsolete,omitempty"`
	ReplacedBy   []relatedJSON `json:"replaced_by,omitempty"`
	// Replacement: the live term at the end of a chain of replacements,
	// when replaced_by is obsolete too (what standardize maps to).
	Replacement *relatedJSON  `json:"replacement,omitempty"`
	Consider    []relatedJSON `json:"consider,omitempty"`
	Children    int           `json:"children"`
}

type synonymJSON struct {
	Text  string `json:"text"`
	Scope string `json:"scope"`
}

type relatedJSON struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"` // empty for a term outside the source
}

func cmdOntologyShow() *cli.Command {
	return &cli.Command{
		Name:      "show",
		Usage:     "show a term (by name or id), or walk the hierarchy from it",
		ArgsUsage: "ENTITY TERM",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "parents", Usage: "direct parents"},
			&cli.BoolFlag{Name: "children", Usage: "direct children"},
			&cli.BoolFlag{Name: "ancestors", Usage: "every term above, nearest first"},
			&cli.BoolFlag{Name: "descendants", Usage: "every term below, nearest first"},
			&cli.BoolFlag{Name: "part-of", Usage: "follow part_of edges as well as is_a"},
			organismFlag(), sourceVersionFlag(), formatFlag(),
		},
		Action: func(c *cli.Context) error {
			format, err := checkFormat(c)
			if err != nil {
				return err
			}
			if c.NArg() < 2 {
				return exitf(2, "usage: lamina ontology show ENTITY TERM [--parents|--children|--ancestors|--descendants] [--part-of]")
			}
			var walk string
			for _, f := range []string{"parents", "children", "ancestors", "descendants"} {
				if c.Bool(f) {
					if walk != "" {
						return exitf(2, "pick one of --parents, --children, --ancestors, --descendants")
					}
					walk = f
				}
			}
			rel := ontology.IsA
			if c.Bool("part-of") {
				rel |= ontology.PartOf
			}
			in, x, s, err := openIndex(c)
			if err != nil {
				return err
			}
			defer in.Close()
			mixed := x.Source().MixedParents()
			if mixed && (walk != "" || c.Bool("part-of")) {
				fmt.Fprintf(c.App.ErrWriter, "lamina: note: %s %s (cellxgene JSON) does not tell is_a from part_of: its parents are both, with or without --part-of\n", s.Ontology, s.Version)
			}
			name := strings.Join(c.Args().Slice()[1:], " ")
			// A name several terms have (the Uberon module's "anatomical
			// entity", a symbol on several Ensembl ids) is refused with
			// their ids: showing or walking from one of them would answer
			// for a term the user may not mean.
			several := func(ids []string) error {
				parts := make([]string, len(ids))
				for i, id := range ids {
					parts[i] = id
					if t, ok := x.Term(id); ok {
						parts[i] = nameID(t.Name, id)
					}
				}
				return exitf(1, "%q names several %s terms in %s %s: %s; show one by its id", name, s.Entity, s.Ontology, s.Version, strings.Join(parts, ", "))
			}
			t, rerr := x.Resolve(name) // a name or id, obsolete terms too
			var amb *ontology.AmbiguousError
			if errors.As(rerr, &amb) {
				return several(amb.IDs)
			}
			ok := rerr == nil
			if !ok {
				// As standardize resolves: case and white space, an EXACT
				// synonym, an obsolete term's replacement; never a guess.
				st := x.Standardize(name, ontology.StandardizeOptions{})
				if st.Match == ontology.Ambiguous {
					return exitf(1, "%q names several %s terms in %s %s: %s; show one by its id", name, s.Entity, s.Ontology, s.Version,
						strings.TrimPrefix(st.Reason(), "ambiguous: could be "))
				}
				if ids := st.TermIDs(); len(ids) > 1 {
					return several(ids)
				}
				if st.Matched() {
					t, ok = x.Term(st.TermIDs()[0])
					if ok && format != "json" {
						fmt.Fprintf(c.App.ErrWriter, "%q: %s\n", name, st.Reason())
					}
				}
			}
			if !ok {
				msg := fmt.Sprintf("no %s term named %q in %s %s", s.Entity, name, s.Ontology, s.Version)
				if st := x.Standardize(name, ontology.StandardizeOptions{}); len(st.Related) > 0 || len(st.Leads) > 0 {
					msg += ": " + unmatchedReason(st) // the terms it is a synonym of, as standardize names them
				}
				if sg := x.Suggest(name, 3); len(sg) > 0 {
					var names []string
					for _, g := range sg {
						names = append(names, fmt.Sprintf("%q (%s)", g.Name, g.IDList()))
					}
					msg += "; did you mean " + strings.Join(names, ", ")
				}
				return exitf(1, "%s", msg)
			}
			related := func(ids []string) []relatedJSON {
				out := make([]relatedJSON, 0, len(ids))
				for _, id := range ids {
					r := relatedJSON{ID: id}
					if p, ok := x.Term(id); ok {
						r.Name = p.Name
					}
					out = append(out, r)
				}
				return out
			}
			walkIDs := func(rel ontology.Relation) ([]string, error) {
				switch walk {
				case "parents":
					return x.Parents(t.ID, rel)
				case "children":
					return x.Children(t.ID, rel)
				case "ancestors":
					return x.Ancestors(t.ID, rel)
				}
				return x.Descendants(t.ID, rel)
			}
			if walk != "" {
				ids, err := walkIDs(rel)
				if err != nil {
					return err
				}
				terms := related(ids)
				switch format {
				case "json":
					return writeJSON(c.App.Writer, terms)
				case "csv":
					rows := make([][]string, len(terms))
					for i, r := range terms {
						rows[i] = []string{r.ID, r.Name}
					}
					return writeCSV(c.App.Writer, []string{"id", "name"}, rows)
				}
				if len(terms) == 0 {
					// Queries follow part_of too: "no ancestors" alone
					// reads as if a query on this term matched nothing.
					if rel&ontology.PartOf == 0 && !mixed {
						if more, _ := walkIDs(rel | ontology.PartOf); len(more) > 0 {
							fmt.Fprintf(c.App.ErrWriter, "%s has no %s by is_a; following part_of as well (as queries do), it has %d: add --part-of\n", nameID(t.Name, t.ID), walk, len(more))
							return nil
						}
						fmt.Fprintf(c.App.ErrWriter, "%s has no %s, by is_a or part_of\n", nameID(t.Name, t.ID), walk)
						return nil
					}
					fmt.Fprintf(c.App.ErrWriter, "%s has no %s\n", nameID(t.Name, t.ID), walk)
					return nil
				}
				rows := make([][]string, len(terms))
				for i, r := range terms {
					n := r.Name
					if _, in := x.Term(r.ID); !in {
						n = "(not in " + s.Ontology + ")"
					}
					rows[i] = []string{r.ID, n}
				}
				return table(c.App.Writer, []string{"ID", "NAME"}, rows)
			}
			if format == "csv" {
				return exitf(2, "--format csv lists terms: use it with --parents, --children, --ancestors or --descendants")
			}
			kids, _ := x.Children(t.ID, rel)
			tj := termJSON{ID: t.ID, Name: t.Name, Definition: t.Definition, Namespace: t.Namespace,
				Parents: related(t.Parents), PartOf: related(t.PartOf), AltIDs: t.AltIDs, Obsolete: t.Obsolete,
				ReplacedBy: related(t.ReplacedBy), Consider: related(t.Consider), Children: len(kids), ParentsMixed: mixed}
			for _, sy := range t.Synonyms {
				tj.Synonyms = append(tj.Synonyms, synonymJSON{sy.Text, sy.Scope.String()})
			}
			if r, ok := x.Replacement(t.ID); ok && t.Obsolete && !slices.Contains(t.ReplacedBy, r) {
				tj.Replacement = &related([]string{r})[0]
			}
			if format == "json" {
				return writeJSON(c.App.Writer, tj)
			}
			w := c.App.Writer
			row := func(k, v string) {
				if v != "" {
					fmt.Fprintf(w, "%-12s %s\n", k, v)
				}
			}
			list := func(rs []relatedJSON) string {
				var parts []string
				for _, r := range rs {
					parts = append(parts, nameID(r.Name, r.ID))
				}
				return strings.Join(parts, ", ")
			}
			row("id", t.ID)
			row("name", t.Name)
			if t.Obsolete {
				row("obsolete", "yes")
				row("replaced_by", list(tj.ReplacedBy))
				if tj.Replacement != nil {
					row("replacement", list([]relatedJSON{*tj.Replacement})+" (replaced_by is obsolete too)")
				}
				row("consider", list(tj.Consider))
			}
			row("definition", t.Definition)
			row("namespace", t.Namespace)
			for _, sy := range tj.Synonyms {
				row("synonym", fmt.Sprintf("%s (%s)", sy.Text, sy.Scope))
			}
			row("alt_ids", strings.Join(t.AltIDs, ", "))
			if mixed {
				row("is_a/part_of", list(tj.Parents)) // the source does not say which
			} else {
				row("is_a", list(tj.Parents))
			}
			row("part_of", list(tj.PartOf))
			row("children", fmt.Sprint(len(kids)))
			row("source", fmt.Sprintf("%s %s %s", describeSource(s), s.Version, s.Digest[:min(12, len(s.Digest))]))
			return nil
		},
	}
}

// tableWarnings writes the warnings (dataset.Table.Warnings) about the
// columns names of the tables of the file at path to w.
func tableWarnings(w io.Writer, path string, ts []dataset.Table, names ...string) {
	for _, t := range ts {
		for _, name := range names {
			for _, m := range t.Warnings[name] {
				fmt.Fprintf(w, "lamina: warning: %s: %s\n", path, m)
			}
		}
	}
}
