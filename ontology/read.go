package ontology

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"regexp"
	"slices"
	"strings"
)

// Format names an input format.
type Format int

// The formats Read understands. FormatAuto sniffs the decompressed bytes.
const (
	FormatAuto      Format = iota
	FormatOBO              // OBO 1.2/1.4
	FormatCellxgene        // cellxgene-ontology-guide JSON term list
	FormatGOTable          // GO.db export: go_id, name, namespace, ... (TSV)
	FormatGeneTable        // org.Hs.eg.db export (TSV) or GENCODE genes (CSV)
)

func (f Format) String() string {
	switch f {
	case FormatOBO:
		return "obo"
	case FormatCellxgene:
		return "cellxgene-json"
	case FormatGOTable:
		return "go-table"
	case FormatGeneTable:
		return "gene-table"
	}
	return "auto"
}

// ImportOptions say what a source is. Entity is required by Import; Read
// accepts an empty Entity and then only reports what the file says.
type ImportOptions struct {
	Entity   string // celltype, gene, ... or a custom name (lowercase)
	Organism string // human or mouse; needed for developmental_stage and gene unless the ids tell
	Version  string // overrides the version found in the source
	Format   Format
	Client   *http.Client // for http(s) locations; nil means http.DefaultClient
	// AllowDangling imports a source with many parents in its own prefix
	// that it defines nowhere (see checkDangling), with a warning. Without
	// an Entity, Read only warns.
	AllowDangling bool
}

// Import reads the source at location (a path or an http(s) URL, gzip or
// not) and returns it complete, or an error naming the file and line; it
// never returns a partial Source.
func Import(ctx context.Context, location string, opts ImportOptions) (*Source, error) {
	if opts.Entity == "" {
		return nil, fmt.Errorf("ontology: import %s: no entity given", location)
	}
	rc, err := Open(ctx, location, opts.Client)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return Read(rc, location, opts)
}

// ReadOBO reads an OBO 1.2 or 1.4 file. Files that declare format-version
// 1.4 are held to its rules (one name, scoped synonyms, two or more
// intersection_of); older files get a warning for the same problems, as
// real 1.2 releases break them.
func ReadOBO(r io.Reader, name string) (*Source, error) {
	return Read(r, name, ImportOptions{Format: FormatOBO})
}

// ReadOBO, ReadCellxgeneJSON, ReadGOTable and ReadGeneTable read one format;
// name is used in error messages and to find a version.

func ReadCellxgeneJSON(r io.Reader, name string) (*Source, error) {
	return Read(r, name, ImportOptions{Format: FormatCellxgene})
}

func ReadGOTable(r io.Reader, name string) (*Source, error) {
	return Read(r, name, ImportOptions{Format: FormatGOTable})
}

func ReadGeneTable(r io.Reader, name string) (*Source, error) {
	return Read(r, name, ImportOptions{Format: FormatGeneTable})
}

// Read reads a source in any supported format (gzip or not) from r; name is
// the file or URL for messages. With opts.Entity set it also resolves the
// ontology, organism and version the catalog records.
func Read(r io.Reader, name string, opts ImportOptions) (*Source, error) {
	in, err := newInput(r, name)
	if err != nil {
		return nil, err
	}
	format := opts.Format
	if format == FormatAuto {
		if format, err = sniff(in); err != nil {
			return nil, err
		}
	}
	var src *Source
	switch format {
	case FormatOBO:
		var f *oboFile
		if f, err = parseOBO(in, name); err == nil {
			src = &Source{Ontology: oboOntologyName(f), Version: versionFrom(f.dataVersion), Terms: f.terms, Warnings: f.warnings}
		}
	case FormatCellxgene:
		src, err = readCellxgene(in, name)
	case FormatGOTable:
		src, err = readGOTable(in, name)
	case FormatGeneTable:
		src, err = readGeneTable(in, name)
	default:
		err = fmt.Errorf("ontology: %s: unknown format %d", name, format)
	}
	if err != nil {
		return nil, err
	}
	src.Warnings = append(src.Warnings, in.cutWarning(name)...)
	// Only an import refuses: reading a file (ReadOBO) reports it.
	if err := checkDangling(src, name, opts.AllowDangling || opts.Entity == ""); err != nil {
		return nil, err
	}
	if src.Digest, err = in.digest(); err != nil {
		return nil, err
	}
	if src.Version == "" {
		src.Version = versionFrom(path.Base(name))
	}
	if opts.Version != "" {
		src.Version = opts.Version
	}
	if src.Version == "" {
		// Nothing in the file names its release: the content is the version.
		src.Version = "sha256-" + src.Digest[:12]
	}
	if opts.Entity != "" {
		if len(src.Terms) == 0 {
			return nil, syntaxErr(name, 0, "no terms found")
		}
		if err := resolveEntity(src, name, opts); err != nil {
			return nil, err
		}
	}
	return src, nil
}

// checkDangling refuses a source whose parents (is_a and part_of) in its own
// id prefix are defined nowhere in it: the mark of a file cut at a line
// boundary, which parses cleanly (CL cut at 600 kB: 1,303 of 2,804 terms,
// 104 such parents). Every real file in the test data has none, slims and
// import modules included; a cut leaves from 0.2% (CL cut at 98%) to 70%
// of them. A release may still have an editing slip, so one in a thousand
// is tolerated, with a warning, as is any number with allow.
func checkDangling(src *Source, name string, allow bool) error {
	own := src.Ontology + ":"
	defined := make(map[string]bool, len(src.Terms))
	for i := range src.Terms {
		defined[src.Terms[i].ID] = true
		for _, a := range src.Terms[i].AltIDs {
			defined[a] = true
		}
	}
	parents := map[string]bool{}
	var dangling []string
	for i := range src.Terms {
		for _, list := range [][]string{src.Terms[i].Parents, src.Terms[i].PartOf} {
			for _, p := range list {
				if !strings.HasPrefix(p, own) || parents[p] {
					continue
				}
				parents[p] = true
				if !defined[p] {
					dangling = append(dangling, p)
				}
			}
		}
	}
	if len(dangling) == 0 {
		return nil
	}
	slices.Sort(dangling)
	examples := strings.Join(dangling[:min(3, len(dangling))], ", ")
	if len(dangling) > 3 {
		examples += ", …"
	}
	msg := fmt.Sprintf("%d of the %d parents in %s are defined nowhere in the file (%s): is it truncated?",
		len(dangling), len(parents), src.Ontology, examples)
	if !allow && len(dangling)*1000 > len(parents) {
		return syntaxErr(name, 0, "%s (--allow-dangling imports it anyway)", msg)
	}
	src.Warnings = append(src.Warnings, name+": "+msg)
	return nil
}

var reGencode = regexp.MustCompile(`^ENS[A-Z]*G\d+(\.\d+)?,`)

// sniff tells the format from the first decompressed bytes.
func sniff(in *input) (Format, error) {
	head, err := in.r.Peek(512)
	if err != nil && err != io.EOF {
		return 0, in.readErr(1, err)
	}
	h := bytes.TrimLeft(bytes.TrimPrefix(head, []byte("\xef\xbb\xbf")), " \t\r\n")
	switch {
	case len(h) == 0:
		return 0, syntaxErr(in.name, 1, "empty input")
	case h[0] == '{' && bytes.HasPrefix(bytes.TrimLeft(h[1:], " \t\r\n"), []byte(`"graphs"`)):
		// Its parse error ("cannot unmarshal array") said nothing useful.
		return 0, unsupported(in.name, "OBO Graphs JSON")
	case h[0] == '{':
		return FormatCellxgene, nil
	case h[0] == '<':
		return 0, unsupported(in.name, "OWL (XML)") // RDF/XML or OWL/XML
	case bytes.HasPrefix(h, []byte("Prefix(")), bytes.HasPrefix(h, []byte("Ontology(")):
		return 0, unsupported(in.name, "OWL (functional syntax)")
	case bytes.HasPrefix(h, []byte("@prefix")), bytes.HasPrefix(h, []byte("PREFIX ")):
		return 0, unsupported(in.name, "OWL (Turtle)")
	case bytes.HasPrefix(h, []byte("go_id\t")):
		return FormatGOTable, nil
	case bytes.HasPrefix(h, []byte("ensembl_gene_id\t")), reGencode.Match(h):
		return FormatGeneTable, nil
	}
	return FormatOBO, nil
}

// unsupported refuses a source in a format lamina does not read, naming
// the OBO file to import instead: OWL and OBO Graphs JSON are the other
// files of an OBO Foundry release (cl.owl, cl-basic.json), whose parse
// errors (`expected "tag: value", got "<?xml…"`) did not say so.
func unsupported(name, format string) error {
	base := path.Base(strings.TrimSuffix(strings.TrimSuffix(name, ".gz"), "/"))
	obo := ""
	if ext := path.Ext(base); ext != "" && ext != base && !strings.Contains(base, "?") {
		obo = strings.TrimSuffix(base, ext) + ".obo"
	}
	msg := "this is " + format + ", which lamina does not read: import the release's OBO file instead"
	if obo != "" && obo != base {
		msg += ", " + obo + " beside " + base
	}
	msg += " (CL's: cl-basic.obo, http://purl.obolibrary.org/obo/cl/cl-basic.obo)"
	return syntaxErr(name, 0, "%s", msg)
}

var (
	reDate    = regexp.MustCompile(`\d{4}-\d{2}-\d{2}`)
	reVersion = regexp.MustCompile(`(?i)-v(\d[\w.-]*?)\.(json|obo|tsv|csv|gz)`)
)

// versionFrom finds a release in a data-version or file name:
// "cl/releases/2022-12-15/cl-basic.owl" -> "2022-12-15",
// "EFO-ontology-v3.90.0.json.gz" -> "3.90.0".
func versionFrom(s string) string {
	if s == "" {
		return ""
	}
	if m := reVersion.FindStringSubmatch(s); m != nil {
		return m[1]
	}
	if m := reDate.FindString(s); m != "" {
		return m
	}
	if strings.ContainsAny(s, "./") { // a file name without a release in it
		return ""
	}
	return s
}

// ---- cellxgene JSON ----

type cxgTerm struct {
	Label       string          `json:"label"`
	Deprecated  bool            `json:"deprecated"`
	Ancestors   map[string]int  `json:"ancestors"`
	Synonyms    []string        `json:"synonyms"`
	Description string          `json:"description"`
	ReplacedBy  json.RawMessage `json:"replaced_by"`
	Consider    json.RawMessage `json:"consider"`
}

func readCellxgene(in *input, name string) (*Source, error) {
	data, err := io.ReadAll(in.r)
	if err != nil {
		return nil, in.readErr(bytes.Count(data, []byte{'\n'})+1, err)
	}
	var m map[string]cxgTerm
	if err := json.Unmarshal(data, &m); err != nil {
		line := 0
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			line = bytes.Count(data[:min(int(se.Offset), len(data))], []byte{'\n'}) + 1
		case errors.As(err, &te):
			line = bytes.Count(data[:min(int(te.Offset), len(data))], []byte{'\n'}) + 1
		}
		if err == io.ErrUnexpectedEOF || strings.Contains(err.Error(), "unexpected end of JSON") {
			return nil, &SyntaxError{File: name, Line: bytes.Count(data, []byte{'\n'}) + 1, Msg: "JSON ends early (truncated file?)", Err: err}
		}
		return nil, &SyntaxError{File: name, Line: line, Msg: "invalid cellxgene JSON", Err: err}
	}
	terms := make([]Term, 0, len(m))
	for id, c := range m {
		if id == "" {
			return nil, syntaxErr(name, 0, "term with an empty id")
		}
		t := Term{ID: id, Name: c.Label, Obsolete: c.Deprecated, Definition: c.Description}
		for _, s := range c.Synonyms {
			t.Synonyms = append(t.Synonyms, Synonym{Text: s, Scope: Exact}) // the JSON keeps EXACT synonyms only
		}
		for a, d := range c.Ancestors {
			if d == 1 { // the closure mixes is_a and part_of; distance 1 are the direct parents
				t.Parents = append(t.Parents, a)
			}
		}
		slices.Sort(t.Parents)
		t.ReplacedBy = cxgIDs(c.ReplacedBy)
		t.Consider = cxgIDs(c.Consider)
		terms = append(terms, t)
	}
	slices.SortFunc(terms, func(a, b Term) int { return strings.Compare(a.ID, b.ID) })
	return &Source{Ontology: dominantPrefix(terms), Terms: terms, Warnings: []string{mixedParents}}, nil
}

// mixedParents is the warning every cellxgene JSON source carries: the file
// gives a closure over is_a and part_of together, so a term's Parents are
// its is_a and its part_of parents alike (Source.MixedParents).
const mixedParents = "cellxgene JSON: its parents are is_a and part_of parents alike (the file does not say which)"

// MixedParents reports whether the source's Parents mix is_a and part_of
// (a cellxgene JSON source): show them as parents, not as is_a.
func (s *Source) MixedParents() bool { return slices.Contains(s.Warnings, mixedParents) }

// cxgIDs reads a string or a list of strings and turns the odd forms
// "obo.HsapDv_0000226" and "http://purl.obolibrary.org/obo/BTO_0000895"
// into CURIEs.
func cxgIDs(raw json.RawMessage) []string {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		var one string
		if json.Unmarshal(raw, &one) != nil || one == "" {
			return nil
		}
		list = []string{one}
	}
	for i, s := range list {
		list[i] = curie(s)
	}
	return list
}

func curie(s string) string {
	for _, p := range []string{"http://purl.obolibrary.org/obo/", "obo."} {
		if rest, ok := strings.CutPrefix(s, p); ok {
			if i := strings.IndexByte(rest, '_'); i > 0 && !strings.Contains(rest, ":") {
				return rest[:i] + ":" + rest[i+1:]
			}
		}
	}
	return s
}

// ---- tables ----

// lines calls fn for each line of the decompressed input with its number,
// reporting read errors (a gzip that ends early) at the line they hit.
func lines(in *input, name string, fn func(n int, line string) error) error {
	n := 0
	for {
		s, err := in.readLine()
		if err != nil && err != io.EOF {
			return in.readErr(n+1, err)
		}
		if s == "" && err == io.EOF {
			return nil
		}
		n++
		if e := in.checkLine(name, n, s, err == io.EOF); e != nil {
			return e
		}
		if e := fn(n, strings.TrimRight(s, "\r\n")); e != nil {
			return e
		}
		if err == io.EOF {
			return nil
		}
	}
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "|")
}

var goColumns = []string{"go_id", "name", "namespace", "definition", "synonyms", "alt_ids", "is_a", "part_of", "regulates", "negatively_regulates", "positively_regulates", "is_obsolete"}

func readGOTable(in *input, name string) (*Source, error) {
	var terms []Term
	seen := map[string]int{}
	err := lines(in, name, func(n int, line string) error {
		f := strings.Split(line, "\t")
		if n == 1 {
			if !slices.Equal(f, goColumns) {
				return syntaxErr(name, n, "GO table header must be %s", strings.Join(goColumns, ","))
			}
			return nil
		}
		if line == "" {
			return nil
		}
		if len(f) != len(goColumns) {
			return syntaxErr(name, n, "expected %d tab-separated fields, got %d (truncated file?)", len(goColumns), len(f))
		}
		if f[0] == "" {
			return syntaxErr(name, n, "row without go_id")
		}
		if first, dup := seen[f[0]]; dup {
			return syntaxErr(name, n, "duplicate id %s (first at line %d)", f[0], first)
		}
		seen[f[0]] = n
		var obs bool
		switch f[11] {
		case "true":
			obs = true
		case "false":
		default:
			return syntaxErr(name, n, "is_obsolete must be true or false, got %q", f[11])
		}
		t := Term{ID: f[0], Name: f[1], Namespace: f[2], Definition: f[3], AltIDs: splitList(f[5]),
			Parents: splitList(f[6]), PartOf: splitList(f[7]), Obsolete: obs}
		for _, s := range splitList(f[4]) {
			// GO.db lost the synonym scopes: RELATED keeps them out of
			// automatic standardisation.
			t.Synonyms = append(t.Synonyms, Synonym{Text: s, Scope: Related})
		}
		terms = append(terms, t)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &Source{Ontology: "GO", Terms: terms}, nil
}

var orgHsColumns = []string{"ensembl_gene_id", "symbol", "ncbi_gene_id", "name", "gene_type", "chromosome", "synonyms"}

// readGeneTable reads the org.Hs.eg.db export (TSV with a header) or a
// GENCODE gene list (CSV, no header: gene_id, gene_name, gene_version,
// gene_length, gene_type). A gene's aliases are EXACT synonyms, so that an
// alias shared by two genes is reported as ambiguous rather than skipped.
func readGeneTable(in *input, name string) (*Source, error) {
	var terms []Term
	byID := map[string]int{}
	tsv := false
	err := lines(in, name, func(n int, line string) error {
		if n == 1 && strings.HasPrefix(line, "ensembl_gene_id\t") {
			if f := strings.Split(line, "\t"); !slices.Equal(f, orgHsColumns) {
				return syntaxErr(name, n, "gene table header must be %s", strings.Join(orgHsColumns, ","))
			}
			tsv = true
			return nil
		}
		if line == "" {
			return nil
		}
		var t Term
		if tsv {
			f := strings.Split(line, "\t")
			if len(f) != len(orgHsColumns) {
				return syntaxErr(name, n, "expected %d tab-separated fields, got %d (truncated file?)", len(orgHsColumns), len(f))
			}
			t = Term{ID: f[0], Name: f[1], Definition: f[3], Namespace: f[4]}
			for _, a := range splitList(f[6]) {
				t.Synonyms = append(t.Synonyms, Synonym{Text: a, Scope: Exact})
			}
		} else {
			f := strings.Split(line, ",")
			if len(f) != 5 {
				return syntaxErr(name, n, "expected 5 comma-separated fields (gene_id, gene_name, gene_version, gene_length, gene_type), got %d", len(f))
			}
			t = Term{ID: f[0], Name: f[1], Namespace: f[4]}
		}
		if t.ID == "" {
			return syntaxErr(name, n, "row without an Ensembl gene id")
		}
		if i, dup := byID[t.ID]; dup {
			// One Ensembl id for several NCBI genes (ST7 and ST7-OT3): the
			// first symbol names the term, the others are Symbol synonyms
			// (each gene's symbol stays its own standard name).
			old := &terms[i]
			if t.Name != "" && t.Name != old.Name {
				old.Synonyms = append(old.Synonyms, Synonym{Text: t.Name, Scope: Symbol})
			}
			old.Synonyms = append(old.Synonyms, t.Synonyms...)
			return nil
		}
		byID[t.ID] = len(terms)
		terms = append(terms, t)
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i := range terms {
		terms[i].Synonyms = symbolsFirst(terms[i].Synonyms)
	}
	return &Source{Ontology: "Ensembl", Organism: geneOrganism(terms), Terms: terms}, nil
}

// symbolsFirst drops the aliases that repeat one of the term's Symbol
// synonyms (CHURC1-FNTB lists FNTB as an alias, FNTB's own row makes it a
// symbol): the index keeps one synonym per text and term, and a symbol
// must match as a name, not as an alias.
func symbolsFirst(syns []Synonym) []Synonym {
	symbols := map[string]bool{}
	for _, s := range syns {
		if s.Scope == Symbol {
			symbols[s.Text] = true
		}
	}
	if len(symbols) == 0 {
		return syns
	}
	return slices.DeleteFunc(syns, func(s Synonym) bool { return s.Scope != Symbol && symbols[s.Text] })
}

// geneOrganism tells the organism from the Ensembl id prefix of the
// first gene (ENSG human, ENSMUSG mouse).
func geneOrganism(terms []Term) string {
	if len(terms) == 0 {
		return ""
	}
	switch id := terms[0].ID; {
	case strings.HasPrefix(id, "ENSMUSG"):
		return "mouse"
	case strings.HasPrefix(id, "ENSG"):
		return "human"
	}
	return ""
}
